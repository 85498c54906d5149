//! NumPy `.npy` arrays and `.npz` archives: the subset of the format that
//! datasets use, with errors that name the file, the key and the problem.
//!
//! Reading accepts little- and big-endian numbers, C and Fortran order, the
//! dtypes in [`NpyData`] and 0-d arrays; it refuses pickled object arrays and
//! headers whose declared size does not match the data (before allocating).
//! Writing produces version 1.0 files (C order, little-endian) inside an
//! uncompressed zip with fixed timestamps, so equal arrays give equal bytes.
use std::io::{Seek, Write};
use std::path::Path;

use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use num_complex::{Complex32, Complex64};

use crate::error::{Error, Result};

/// The element data of an array, in C order.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    C64(Vec<Complex32>),
    C128(Vec<Complex64>),
    /// Fixed-width unicode (`<U…`), trailing NULs removed.
    Str(Vec<String>),
}

/// A decoded array: shape and C-order data.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl NpyData {
    /// The NumPy dtype name, for messages.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyData::Bool(_) => "bool",
            NpyData::U8(_) => "uint8",
            NpyData::U16(_) => "uint16",
            NpyData::U32(_) => "uint32",
            NpyData::U64(_) => "uint64",
            NpyData::I8(_) => "int8",
            NpyData::I16(_) => "int16",
            NpyData::I32(_) => "int32",
            NpyData::I64(_) => "int64",
            NpyData::F32(_) => "float32",
            NpyData::F64(_) => "float64",
            NpyData::C64(_) => "complex64",
            NpyData::C128(_) => "complex128",
            NpyData::Str(_) => "str",
        }
    }

    /// True for integer and boolean dtypes.
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            NpyData::Bool(_)
                | NpyData::U8(_)
                | NpyData::U16(_)
                | NpyData::U32(_)
                | NpyData::U64(_)
                | NpyData::I8(_)
                | NpyData::I16(_)
                | NpyData::I32(_)
                | NpyData::I64(_)
        )
    }

    /// Real numbers of any numeric dtype as f64 (`None` for complex, str).
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        Some(match self {
            NpyData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
            NpyData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::U16(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::U32(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::U64(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I8(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I16(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::F64(v) => v.clone(),
            _ => return None,
        })
    }

    /// Complex numbers (complex64, or complex128 narrowed) as complex64,
    /// taking the values; `Err(self)` for any other dtype.
    pub fn into_complex32(self) -> std::result::Result<Vec<Complex32>, NpyData> {
        match self {
            NpyData::C64(v) => Ok(v),
            NpyData::C128(v) => Ok(v
                .into_iter()
                .map(|c| Complex32::new(c.re as f32, c.im as f32))
                .collect()),
            other => Err(other),
        }
    }
}

/// Element types that can be written.
pub trait NpyElement: Copy {
    /// dtype descriptor, e.g. `<f4`.
    const DESCR: &'static str;
    fn write_le(self, out: &mut Vec<u8>);
}

macro_rules! npy_element {
    ($t:ty, $d:literal) => {
        impl NpyElement for $t {
            const DESCR: &'static str = $d;
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
npy_element!(f32, "<f4");
npy_element!(f64, "<f8");
npy_element!(i64, "<i8");
npy_element!(i32, "<i4");
npy_element!(u8, "|u1");

impl NpyElement for Complex32 {
    const DESCR: &'static str = "<c8";
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.re.to_le_bytes());
        out.extend_from_slice(&self.im.to_le_bytes());
    }
}

fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_txt = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // magic(6) + version(2) + len(2) + dict + '\n' padded to a multiple of 64
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    dict.push_str(&" ".repeat(pad));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Encodes a numeric array as `.npy` bytes.
pub fn encode<T: NpyElement>(shape: &[usize], data: &[T]) -> Vec<u8> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    let mut out = header_bytes(T::DESCR, shape);
    out.reserve(std::mem::size_of_val(data));
    for &x in data {
        x.write_le(&mut out);
    }
    out
}

/// Encodes a 0-d unicode string (`<U…`), as `numpy.array("...")` would.
pub fn encode_str(s: &str) -> Vec<u8> {
    let chars: Vec<char> = s.chars().collect();
    let width = chars.len().max(1);
    let mut out = header_bytes(&format!("<U{width}"), &[]);
    for i in 0..width {
        let c = chars.get(i).map(|&c| c as u32).unwrap_or(0);
        out.extend_from_slice(&c.to_le_bytes());
    }
    out
}

/// Writes named `.npy` members into an uncompressed zip (`.npz`), in order,
/// with a fixed timestamp.
pub fn write_npz<W: Write + Seek>(sink: W, members: &[(&str, Vec<u8>)]) -> std::io::Result<W> {
    let mut zip = ::zip::ZipWriter::new(sink);
    let options = ::zip::write::SimpleFileOptions::default()
        .compression_method(::zip::CompressionMethod::Stored)
        .last_modified_time(::zip::DateTime::default())
        .unix_permissions(0o644)
        .large_file(members.iter().any(|(_, b)| b.len() as u64 >= u32::MAX as u64));
    for (name, bytes) in members {
        zip.start_file(format!("{name}.npy"), options)
            .map_err(std::io::Error::other)?;
        zip.write_all(bytes)?;
    }
    zip.finish().map_err(std::io::Error::other)
}

/// Parsed `.npy` header.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let field = |key: &str| -> std::result::Result<&str, String> {
        let pat = format!("'{key}':");
        let at = text.find(&pat).ok_or_else(|| format!("header has no '{key}'"))?;
        Ok(text[at + pat.len()..].trim_start())
    };
    let d = field("descr")?;
    let descr = if let Some(rest) = d.strip_prefix('\'') {
        rest.split('\'').next().unwrap_or_default().to_string()
    } else {
        return Err("structured dtypes are not supported".into());
    };
    let f = field("fortran_order")?;
    let fortran_order = if f.starts_with("True") {
        true
    } else if f.starts_with("False") {
        false
    } else {
        return Err("bad 'fortran_order'".into());
    };
    let s = field("shape")?;
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.split(')').next())
        .ok_or("bad 'shape'")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<usize>().map_err(|_| format!("bad shape entry `{t}`")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Header {
        descr,
        fortran_order,
        shape,
    })
}

fn to_c_order<T: Clone>(shape: &[usize], fortran: bool, v: Vec<T>) -> Vec<T> {
    if !fortran || shape.len() < 2 {
        return v;
    }
    let a = ArrayD::from_shape_vec(IxDyn(shape).f(), v).expect("sizes checked");
    a.as_standard_layout().iter().cloned().collect()
}

fn chunks<const K: usize, T>(bytes: &[u8], f: impl Fn([u8; K]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(K)
        .map(|c| f(c.try_into().expect("exact chunk")))
        .collect()
}

/// Decodes `.npy` bytes. `what` names the array in errors (`file.npz:key`).
pub fn decode(bytes: &[u8], path: &Path, what: &str) -> Result<NpyArray> {
    let bad = |reason: String| Error::format(path, format!("array `{what}`: {reason}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a NumPy .npy array (bad magic)".into()));
    }
    let (hlen, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("truncated header".into()))?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text".into()))?;
    let h = parse_header(text).map_err(bad)?;
    if h.descr.contains('O') {
        return Err(bad("pickled object arrays are not read (they could run code)".into()));
    }
    let body = &bytes[end..];
    let count = h
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {:?} is too large", h.shape)))?;
    if h.descr.len() < 2 || !h.descr.is_ascii() {
        return Err(bad(format!("unsupported dtype `{}`", h.descr)));
    }
    let (order, kind) = h.descr.split_at(1);
    let big = match order {
        "<" | "|" | "=" => false,
        ">" => true,
        _ => return Err(bad(format!("unsupported dtype `{}`", h.descr))),
    };
    let (code, size_txt) = kind.split_at(1.min(kind.len()));
    let item: usize = size_txt
        .parse()
        .map_err(|_| bad(format!("unsupported dtype `{}`", h.descr)))?;
    let item_bytes =
        if code == "U" { item.checked_mul(4) } else { Some(item) }.ok_or_else(|| bad("dtype too wide".into()))?;
    let need = count
        .checked_mul(item_bytes)
        .ok_or_else(|| bad(format!("shape {:?} is too large", h.shape)))?;
    if body.len() < need {
        return Err(bad(format!(
            "truncated: shape {:?} of {} needs {need} bytes, file has {}",
            h.shape,
            h.descr,
            body.len()
        )));
    }
    let body = &body[..need];
    macro_rules! num {
        ($t:ty, $k:literal) => {
            chunks::<$k, $t>(body, |b| {
                if big {
                    <$t>::from_be_bytes(b)
                } else {
                    <$t>::from_le_bytes(b)
                }
            })
        };
    }
    let data = match (code, item) {
        ("b", 1) => NpyData::Bool(body.iter().map(|&b| b != 0).collect()),
        ("u", 1) => NpyData::U8(body.to_vec()),
        ("u", 2) => NpyData::U16(num!(u16, 2)),
        ("u", 4) => NpyData::U32(num!(u32, 4)),
        ("u", 8) => NpyData::U64(num!(u64, 8)),
        ("i", 1) => NpyData::I8(body.iter().map(|&b| b as i8).collect()),
        ("i", 2) => NpyData::I16(num!(i16, 2)),
        ("i", 4) => NpyData::I32(num!(i32, 4)),
        ("i", 8) => NpyData::I64(num!(i64, 8)),
        ("f", 4) => NpyData::F32(num!(f32, 4)),
        ("f", 8) => NpyData::F64(num!(f64, 8)),
        ("c", 8) => {
            let f = num!(f32, 4);
            NpyData::C64(f.chunks_exact(2).map(|p| Complex32::new(p[0], p[1])).collect())
        }
        ("c", 16) => {
            let f = num!(f64, 8);
            NpyData::C128(f.chunks_exact(2).map(|p| Complex64::new(p[0], p[1])).collect())
        }
        ("U", _) => {
            let units = num!(u32, 4);
            NpyData::Str(
                units
                    .chunks(item.max(1))
                    .map(|c| {
                        c.iter()
                            .take_while(|&&u| u != 0)
                            .filter_map(|&u| char::from_u32(u))
                            .collect()
                    })
                    .collect(),
            )
        }
        _ => return Err(bad(format!("unsupported dtype `{}`", h.descr))),
    };
    let data = match data {
        NpyData::Bool(v) => NpyData::Bool(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::U8(v) => NpyData::U8(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::U16(v) => NpyData::U16(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::U32(v) => NpyData::U32(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::U64(v) => NpyData::U64(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::I8(v) => NpyData::I8(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::I16(v) => NpyData::I16(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::I32(v) => NpyData::I32(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::I64(v) => NpyData::I64(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::F32(v) => NpyData::F32(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::F64(v) => NpyData::F64(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::C64(v) => NpyData::C64(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::C128(v) => NpyData::C128(to_c_order(&h.shape, h.fortran_order, v)),
        NpyData::Str(v) => NpyData::Str(to_c_order(&h.shape, h.fortran_order, v)),
    };
    Ok(NpyArray { shape: h.shape, data })
}

/// Reads every member of an `.npz` archive (stored or deflated).
/// Keys are member names without `.npy`, in archive order. An archive that
/// cannot be read is an error; a member that cannot be decoded gives an
/// `Err` in its slot (the caller decides whether that member matters).
pub fn read_npz(path: &Path) -> Result<Vec<(String, Result<NpyArray>)>> {
    let members = super::archive::read_members(path, ".npz archive", |name| name.ends_with(".npy"))?;
    Ok(members
        .into_iter()
        .map(|(name, bytes)| {
            let key = name.strip_suffix(".npy").expect("kept only .npy members");
            (key.to_string(), decode(&bytes, path, key))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_64_byte_aligned_and_parses_back() {
        let bytes = encode(&[2, 3], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let a = decode(&bytes, Path::new("x.npy"), "x").unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, NpyData::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    }

    #[test]
    fn unicode_scalar_round_trip() {
        let a = decode(&encode_str("{\"a\": \"µm\"}"), Path::new("m.npy"), "m").unwrap();
        assert!(a.shape.is_empty());
        assert_eq!(a.data, NpyData::Str(vec!["{\"a\": \"µm\"}".into()]));
    }

    #[test]
    fn truncated_data_is_reported_with_sizes() {
        let mut bytes = encode(&[4], &[1.0f64, 2.0, 3.0, 4.0]);
        bytes.truncate(bytes.len() - 3);
        let e = decode(&bytes, Path::new("t.npz"), "xcoords").unwrap_err().to_string();
        assert!(
            e.contains("t.npz") && e.contains("xcoords") && e.contains("truncated"),
            "{e}"
        );
    }

    #[test]
    fn empty_or_non_ascii_dtypes_are_errors() {
        for descr in ["", "<", "é4", "<é"] {
            let bytes = header_bytes(descr, &[1]);
            let e = decode(&bytes, Path::new("d.npy"), "x").unwrap_err().to_string();
            assert!(e.contains("unsupported dtype"), "{descr}: {e}");
        }
    }

    #[test]
    fn huge_declared_shape_is_refused_before_allocating() {
        let mut bytes = header_bytes("<f8", &[1 << 40, 1 << 30]);
        bytes.extend_from_slice(&[0u8; 16]);
        let e = decode(&bytes, Path::new("h.npy"), "x").unwrap_err().to_string();
        assert!(e.contains("too large") || e.contains("truncated"), "{e}");
    }
}
