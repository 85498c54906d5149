//! Small helpers over the `hdf5` crate: complex numbers as `{r, i}`
//! compounds (what Ptychodus and h5py use), scalar and string attributes.
use std::path::Path;

use num_complex::Complex32;

use crate::error::{Error, Result};

/// complex64 as an HDF5 compound with members `r` and `i` (float32).
#[derive(hdf5::H5Type, Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct ComplexRI {
    pub r: f32,
    pub i: f32,
}

impl From<Complex32> for ComplexRI {
    fn from(c: Complex32) -> Self {
        ComplexRI { r: c.re, i: c.im }
    }
}

impl From<ComplexRI> for Complex32 {
    fn from(c: ComplexRI) -> Self {
        Complex32::new(c.r, c.i)
    }
}

pub fn attr_f64(loc: &hdf5::Location, name: &str, value: f64, path: &Path) -> Result<()> {
    loc.new_attr::<f64>()
        .create(name)
        .and_then(|a| a.write_scalar(&value))
        .map_err(|e| Error::hdf5(path, e))
}

pub fn attr_str(loc: &hdf5::Location, name: &str, value: &str, path: &Path) -> Result<()> {
    let v: hdf5::types::VarLenUnicode = value
        .parse()
        .map_err(|_| Error::value(name, "string contains a NUL character"))?;
    loc.new_attr::<hdf5::types::VarLenUnicode>()
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .map_err(|e| Error::hdf5(path, e))
}

/// The attribute `name`, `None` if absent.
fn attribute(loc: &hdf5::Location, name: &str, path: &Path) -> Result<Option<hdf5::Attribute>> {
    let names = loc.attr_names().map_err(|e| Error::hdf5(path, e))?;
    if !names.iter().any(|n| n == name) {
        return Ok(None);
    }
    loc.attr(name).map(Some).map_err(|e| Error::hdf5(path, e))
}

/// Reads a numeric scalar attribute as f64, `None` if absent.
pub fn read_attr_f64(loc: &hdf5::Location, name: &str, path: &Path) -> Result<Option<f64>> {
    let Some(a) = attribute(loc, name, path)? else {
        return Ok(None);
    };
    let v = a
        .read_raw::<f64>()
        .map_err(|e| Error::format(path, format!("attribute `{name}` is not a number: {e}")))?;
    match v.as_slice() {
        [x] => Ok(Some(*x)),
        _ => Err(Error::format(path, format!("attribute `{name}` is not a scalar"))),
    }
}

/// Reads a string attribute (variable-length UTF-8 or ASCII), `None` if absent.
pub fn read_attr_string(loc: &hdf5::Location, name: &str, path: &Path) -> Result<Option<String>> {
    let Some(a) = attribute(loc, name, path)? else {
        return Ok(None);
    };
    if let Ok(s) = a.read_scalar::<hdf5::types::VarLenUnicode>() {
        return Ok(Some(s.as_str().to_string()));
    }
    if let Ok(s) = a.read_scalar::<hdf5::types::VarLenAscii>() {
        return Ok(Some(s.as_str().to_string()));
    }
    Ok(None)
}

/// Reads a dataset as complex64: `{r, i}` compound, or real numbers.
pub fn read_complex(ds: &hdf5::Dataset, what: &str, path: &Path) -> Result<(Vec<usize>, Vec<Complex32>)> {
    let shape = ds.shape();
    let dtype = ds.dtype().map_err(|e| Error::hdf5(path, e))?;
    let desc = dtype.to_descriptor().map_err(|e| Error::hdf5(path, e))?;
    let values = match desc {
        hdf5::types::TypeDescriptor::Compound(c) => {
            let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
            if !(names.contains(&"r") && names.contains(&"i")) {
                return Err(Error::format(
                    path,
                    format!("`{what}`: complex data must be a compound with members `r` and `i`, found {names:?}"),
                ));
            }
            ds.read_raw::<ComplexRI>()
                .map_err(|e| Error::format(path, format!("`{what}`: {e}")))?
                .into_iter()
                .map(Complex32::from)
                .collect()
        }
        hdf5::types::TypeDescriptor::Float(_)
        | hdf5::types::TypeDescriptor::Integer(_)
        | hdf5::types::TypeDescriptor::Unsigned(_) => ds
            .read_raw::<f32>()
            .map_err(|e| Error::format(path, format!("`{what}`: {e}")))?
            .into_iter()
            .map(|x| Complex32::new(x, 0.0))
            .collect(),
        other => {
            return Err(Error::format(
                path,
                format!("`{what}`: expected complex numbers, found {other}"),
            ));
        }
    };
    Ok((shape, values))
}

/// Reads a real dataset as f64 with its shape.
pub fn read_real(ds: &hdf5::Dataset, what: &str, path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    let v = ds
        .read_raw::<f64>()
        .map_err(|e| Error::format(path, format!("`{what}` is not a real array: {e}")))?;
    Ok((ds.shape(), v))
}

/// Opens dataset `name` or explains that it is missing.
pub fn dataset(group: &hdf5::Group, name: &str, path: &Path) -> Result<hdf5::Dataset> {
    if !group.link_exists(name) {
        return Err(Error::format(path, format!("missing dataset `{name}`")));
    }
    group
        .dataset(name)
        .map_err(|e| Error::format(path, format!("`{name}` is not a dataset: {e}")))
}

/// Opens an HDF5 file for reading with an error that names it.
pub fn open(path: &Path) -> Result<hdf5::File> {
    if !path.exists() {
        return Err(Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    hdf5::File::open(path).map_err(|e| Error::format(path, format!("not a readable HDF5 file: {e}")))
}

/// An HDF5 file held in memory (an archive's member), opened from a private
/// temporary copy: libhdf5 opens files, not memory. The copy is deleted
/// when this is dropped (the file is closed first: fields drop in order).
pub(crate) struct H5FromBytes {
    pub file: hdf5::File,
    /// The temporary copy (for errors of helpers that name a path).
    pub path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Opens `bytes` as an HDF5 file; `name` (the member) and `label` (the
/// archive) name it in errors.
pub(crate) fn open_bytes(bytes: &[u8], name: &str, label: &Path) -> Result<H5FromBytes> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let path = dir.path().join(name.rsplit('/').next().unwrap_or(name));
    std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
    let file = hdf5::File::open(&path).map_err(|e| Error::format(label, format!("{name}: {e}")))?;
    Ok(H5FromBytes { file, path, _dir: dir })
}
