//! Apache Parquet output for [`Table`], written from the Parquet and Thrift
//! specifications (no Parquet or Thrift crate).
//!
//! What is written: the magic `PAR1`; one column chunk per column, each a
//! single DATA_PAGE (page format v1) after its Thrift page header; the
//! `FileMetaData` footer in the Thrift compact protocol; its length (4 bytes,
//! little-endian); `PAR1` again. The file holds one row group (also when the
//! table has no rows or no columns).
//!
//! Every column is OPTIONAL (maximum definition level 1, maximum repetition
//! level 0), so a missing value is a null. A page holds the definition levels
//! (RLE/bit-packed hybrid, bit width 1, prefixed by their byte length as
//! 4-byte little-endian; no repetition levels) and then the non-null values
//! in PLAIN encoding:
//!
//! | [`Values`] | physical type | annotation |
//! |---|---|---|
//! | `Float` | DOUBLE (8 bytes LE) | |
//! | `Int` | INT64 (8 bytes LE) | |
//! | `Text` | BYTE_ARRAY (4-byte LE length, UTF-8 bytes) | converted type UTF8, logical type STRING |
//! | `Bool` | BOOLEAN (1 bit a value, LSB first) | |
//!
//! What is not written: no compression (codec UNCOMPRESSED), no dictionary
//! pages, no min/max statistics (only the null count, in the column
//! metadata), no page or column indexes, no key-value metadata, no
//! nested or repeated columns, a single row group.

use super::{Table, Values};

const MAGIC: &[u8; 4] = b"PAR1";

// Parquet enums (parquet.thrift).
const TYPE_BOOLEAN: i32 = 0;
const TYPE_INT64: i32 = 2;
const TYPE_DOUBLE: i32 = 5;
const TYPE_BYTE_ARRAY: i32 = 6;
const CONVERTED_UTF8: i32 = 0;
const REPETITION_OPTIONAL: i32 = 1;
const ENCODING_PLAIN: i32 = 0;
const ENCODING_RLE: i32 = 3;
const CODEC_UNCOMPRESSED: i32 = 0;
const PAGE_DATA: i32 = 0;

// Thrift compact protocol type codes.
const CT_I32: u8 = 5;
const CT_I64: u8 = 6;
const CT_BINARY: u8 = 8;
const CT_LIST: u8 = 9;
const CT_STRUCT: u8 = 12;
const CT_STOP: u8 = 0;

/// The table as the bytes of one Parquet file.
///
/// Panics when a page would not fit Parquet's 32-bit sizes (over 2 GiB in a
/// column or over `i32::MAX` rows), far beyond the tables written here.
pub(super) fn write(table: &Table) -> Vec<u8> {
    let rows = table.height();
    let mut out = MAGIC.to_vec();
    let mut chunks = Vec::with_capacity(table.width());
    for column in table.columns() {
        let values = column.values();
        let page = page_body(values);
        let header = page_header(rows, page.len());
        let offset = out.len();
        out.extend_from_slice(&header);
        out.extend_from_slice(&page);
        chunks.push(Chunk {
            offset,
            size: header.len() + page.len(),
            nulls: (0..rows).filter(|&i| values.is_null(i)).count(),
        });
    }
    let footer = file_metadata(table, &chunks);
    out.extend_from_slice(&footer);
    out.extend_from_slice(&to_u32(footer.len(), "Parquet footer size").to_le_bytes());
    out.extend_from_slice(MAGIC);
    out
}

/// Where a column chunk lies in the file.
struct Chunk {
    /// Offset of its page header.
    offset: usize,
    /// Page header and page, in bytes.
    size: usize,
    nulls: usize,
}

fn physical_type(values: &Values) -> i32 {
    match values {
        Values::Float(_) => TYPE_DOUBLE,
        Values::Int(_) => TYPE_INT64,
        Values::Text(_) => TYPE_BYTE_ARRAY,
        Values::Bool(_) => TYPE_BOOLEAN,
    }
}

/// A v1 data page: definition levels (length-prefixed hybrid runs), then
/// the non-null values, PLAIN.
fn page_body(values: &Values) -> Vec<u8> {
    let defined: Vec<bool> = (0..values.len()).map(|i| !values.is_null(i)).collect();
    let levels = definition_levels(&defined);
    let mut page = Vec::with_capacity(4 + levels.len() + 8 * values.len());
    page.extend_from_slice(&to_u32(levels.len(), "Parquet definition levels").to_le_bytes());
    page.extend_from_slice(&levels);
    match values {
        Values::Float(v) => {
            for x in v.iter().flatten() {
                page.extend_from_slice(&x.to_le_bytes());
            }
        }
        Values::Int(v) => {
            for x in v.iter().flatten() {
                page.extend_from_slice(&x.to_le_bytes());
            }
        }
        Values::Text(v) => {
            for s in v.iter().flatten() {
                page.extend_from_slice(&to_u32(s.len(), "Parquet text value").to_le_bytes());
                page.extend_from_slice(s.as_bytes());
            }
        }
        Values::Bool(v) => page.extend_from_slice(&bit_pack(v.iter().flatten().copied())),
    }
    page
}

/// Booleans one bit each, the first in the lowest bit, the last byte padded
/// with zeros.
fn bit_pack(bits: impl IntoIterator<Item = bool>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, b) in bits.into_iter().enumerate() {
        if i % 8 == 0 {
            out.push(0);
        }
        if b {
            *out.last_mut().expect("pushed above") |= 1 << (i % 8);
        }
    }
    out
}

/// Definition levels (0 null, 1 defined) in the RLE/bit-packed hybrid
/// encoding, bit width 1, without the length prefix: a run of 8 or more
/// equal levels (or one that reaches the end) as an RLE run, the rest in
/// bit-packed runs of whole groups of 8 (only the last group padded).
fn definition_levels(defined: &[bool]) -> Vec<u8> {
    let n = defined.len();
    let run_len = |i: usize| defined[i..].iter().take_while(|&&d| d == defined[i]).count();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let run = run_len(i);
        if run >= 8 || i + run == n {
            // RLE run: header = count << 1, then the level in ceil(1/8) = 1 byte.
            put_varint(&mut out, (run as u64) << 1);
            out.push(u8::from(defined[i]));
            i += run;
        } else {
            // Bit-packed groups of 8 until the next group starts a long run.
            let mut end = i;
            loop {
                end += 8;
                if end >= n || run_len(end) >= 8 {
                    break;
                }
            }
            let groups = (end - i) / 8;
            // Header = (groups << 1) | 1.
            put_varint(&mut out, ((groups as u64) << 1) | 1);
            out.extend_from_slice(&bit_pack(defined[i..end.min(n)].iter().copied()));
            i = end;
        }
    }
    out
}

/// The Thrift `PageHeader` of a DATA_PAGE of `rows` levels and `size` bytes.
fn page_header(rows: usize, size: usize) -> Vec<u8> {
    let size = to_i32(size, "Parquet page size");
    let mut t = Compact::default();
    t.i32(1, PAGE_DATA);
    t.i32(2, size); // uncompressed_page_size
    t.i32(3, size); // compressed_page_size
    t.begin_struct(5); // data_page_header
    t.i32(1, to_i32(rows, "Parquet row count")); // num_values, nulls included
    t.i32(2, ENCODING_PLAIN);
    t.i32(3, ENCODING_RLE); // definition levels
    t.i32(4, ENCODING_RLE); // repetition levels (none written)
    t.end_struct();
    t.finish()
}

/// The Thrift `FileMetaData`: schema, the one row group, created_by.
fn file_metadata(table: &Table, chunks: &[Chunk]) -> Vec<u8> {
    let rows = to_i64(table.height());
    let mut t = Compact::default();
    t.i32(1, 1); // version
    t.list(2, CT_STRUCT, table.width() + 1); // schema
    t.begin_element();
    t.binary(4, b"schema");
    t.i32(5, to_i32(table.width(), "Parquet column count"));
    t.end_struct();
    for column in table.columns() {
        t.begin_element();
        t.i32(1, physical_type(column.values()));
        t.i32(3, REPETITION_OPTIONAL);
        t.binary(4, column.name().as_bytes());
        if let Values::Text(_) = column.values() {
            t.i32(6, CONVERTED_UTF8);
            t.begin_struct(10); // logicalType (a union)
            t.begin_struct(1); // STRING: an empty StringType
            t.end_struct();
            t.end_struct();
        }
        t.end_struct();
    }
    t.i64(3, rows);
    t.list(4, CT_STRUCT, 1); // row_groups
    t.begin_element();
    t.list(1, CT_STRUCT, chunks.len()); // columns
    for (column, chunk) in table.columns().iter().zip(chunks) {
        t.begin_element(); // ColumnChunk
        t.i64(2, to_i64(chunk.offset)); // file_offset
        t.begin_struct(3); // meta_data: ColumnMetaData
        t.i32(1, physical_type(column.values()));
        t.list(2, CT_I32, 2); // encodings
        t.list_i32(ENCODING_PLAIN);
        t.list_i32(ENCODING_RLE);
        t.list(3, CT_BINARY, 1); // path_in_schema
        t.list_binary(column.name().as_bytes());
        t.i32(4, CODEC_UNCOMPRESSED);
        t.i64(5, rows); // num_values, nulls included
        t.i64(6, to_i64(chunk.size)); // total_uncompressed_size
        t.i64(7, to_i64(chunk.size)); // total_compressed_size
        t.i64(9, to_i64(chunk.offset)); // data_page_offset
        t.begin_struct(12); // statistics
        t.i64(3, to_i64(chunk.nulls)); // null_count
        t.end_struct();
        t.end_struct();
        t.end_struct();
    }
    t.i64(2, to_i64(chunks.iter().map(|c| c.size).sum())); // total_byte_size
    t.i64(3, rows); // num_rows
    t.end_struct();
    t.binary(
        6,
        format!("ptycho-workbench version {}", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
    t.finish()
}

fn to_i32(n: usize, what: &str) -> i32 {
    i32::try_from(n).unwrap_or_else(|_| panic!("{what} {n} exceeds Parquet's 32-bit limit"))
}

fn to_u32(n: usize, what: &str) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| panic!("{what} of {n} bytes exceeds Parquet's 32-bit limit"))
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).expect("sizes fit in i64")
}

/// ULEB128: 7 bits a byte, lowest first, the high bit set on all but the last.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n & 0x7F) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// 0, -1, 1, -2, … → 0, 1, 2, 3, …
fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// A Thrift compact-protocol encoder for one top-level struct: fields are
/// written in increasing id order; nested structs (fields or list
/// elements) keep their own last field id on a stack.
#[derive(Default)]
struct Compact {
    buf: Vec<u8>,
    /// The id of the last field written in the current struct.
    last_field: i16,
    /// The enclosing structs' last field ids.
    outer: Vec<i16>,
}

impl Compact {
    /// A field header: the id as a delta in the high nibble when it is
    /// 1..=15 after the previous one, else the type byte and the id as a
    /// zigzag varint.
    fn field(&mut self, id: i16, ty: u8) {
        let delta = id - self.last_field;
        if (1..=15).contains(&delta) {
            self.buf.push(((delta as u8) << 4) | ty);
        } else {
            self.buf.push(ty);
            put_varint(&mut self.buf, zigzag(i64::from(id)));
        }
        self.last_field = id;
    }

    fn i32(&mut self, id: i16, v: i32) {
        self.field(id, CT_I32);
        put_varint(&mut self.buf, zigzag(i64::from(v)));
    }

    fn i64(&mut self, id: i16, v: i64) {
        self.field(id, CT_I64);
        put_varint(&mut self.buf, zigzag(v));
    }

    fn binary(&mut self, id: i16, bytes: &[u8]) {
        self.field(id, CT_BINARY);
        self.list_binary(bytes);
    }

    /// A struct-valued field; its fields follow, then [`Compact::end_struct`].
    fn begin_struct(&mut self, id: i16) {
        self.field(id, CT_STRUCT);
        self.begin_element();
    }

    /// A struct as a list element (no field header); its fields follow,
    /// then [`Compact::end_struct`].
    fn begin_element(&mut self) {
        self.outer.push(self.last_field);
        self.last_field = 0;
    }

    fn end_struct(&mut self) {
        self.buf.push(CT_STOP);
        self.last_field = self.outer.pop().expect("end_struct matches a begin");
    }

    /// A list-valued field of `len` elements of type `elem`; the elements
    /// follow.
    fn list(&mut self, id: i16, elem: u8, len: usize) {
        self.field(id, CT_LIST);
        if len < 15 {
            self.buf.push(((len as u8) << 4) | elem);
        } else {
            self.buf.push(0xF0 | elem);
            put_varint(&mut self.buf, len as u64);
        }
    }

    fn list_i32(&mut self, v: i32) {
        put_varint(&mut self.buf, zigzag(i64::from(v)));
    }

    fn list_binary(&mut self, bytes: &[u8]) {
        put_varint(&mut self.buf, bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    /// The top-level struct's bytes, with its STOP.
    fn finish(mut self) -> Vec<u8> {
        assert!(self.outer.is_empty(), "a nested struct was left open");
        self.buf.push(CT_STOP);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn varint(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, n);
        out
    }

    #[test]
    fn varints_and_zigzag_match_hand_computed_bytes() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7F]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xAC, 0x02]);
        assert_eq!(
            varint(u64::MAX),
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
        );
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
        assert_eq!(zigzag(2), 4);
        assert_eq!(zigzag(i64::MAX), u64::MAX - 1);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn thrift_field_headers_use_deltas_and_fall_back_to_long_form() {
        let mut t = Compact::default();
        t.i32(1, 3); // delta 1, I32: 0x15, zigzag(3) = 6
        t.i64(17, -1); // delta 16: long form 0x06, zigzag(17) = 34 = 0x22; value zigzag(-1) = 1
        t.begin_struct(18); // delta 1, STRUCT: 0x1C
        t.binary(2, b"ab"); // delta 2 from a fresh 0, BINARY: 0x28, length 2
        t.end_struct(); // STOP
        t.list(19, CT_I32, 2); // delta 1 from 18 again, LIST: 0x19; header 0x25
        t.list_i32(0);
        t.list_i32(3);
        t.list(20, CT_STRUCT, 15); // long list header: 0xFC, size 15
        for _ in 0..15 {
            t.begin_element();
            t.end_struct();
        }
        assert_eq!(
            t.finish(),
            [
                [
                    0x15, 0x06, 0x06, 0x22, 0x01, 0x1C, 0x28, 0x02, b'a', b'b', 0x00, 0x19, 0x25, 0x00, 0x06, 0x19,
                    0xFC, 0x0F
                ]
                .as_slice(),
                &[0x00; 15],
                &[0x00]
            ]
            .concat()
        );
    }

    #[test]
    fn definition_levels_match_hand_computed_runs() {
        let levels = |bits: &[u8]| definition_levels(&bits.iter().map(|&b| b == 1).collect::<Vec<_>>());
        assert_eq!(levels(&[]), Vec::<u8>::new());
        // Short mixed: one bit-packed group, header (1 << 1) | 1, bits 0, 1, 3 set.
        assert_eq!(levels(&[1, 1, 0, 1]), [0x03, 0b0000_1011]);
        // All defined: one RLE run, header 10 << 1, level 1.
        assert_eq!(levels(&[1; 10]), [0x14, 0x01]);
        // All null: RLE of zeros.
        assert_eq!(levels(&[0; 3]), [0x06, 0x00]);
        // 16 ones (RLE), then 0 1 0 reaching the end as one padded group.
        let mut v = vec![1; 16];
        v.extend([0, 1, 0]);
        assert_eq!(levels(&v), [0x20, 0x01, 0x03, 0b0000_0010]);
        // Alternating group, 8 nulls (RLE), a final 1 (RLE of one).
        let v = [0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(levels(&v), [0x03, 0xAA, 0x10, 0x00, 0x02, 0x01]);
        // 1000 alternating levels: 125 groups, header 251 = [0xFB, 0x01].
        let v: Vec<u8> = (0..1000).map(|i| (i % 2) as u8).collect();
        let bytes = levels(&v);
        assert_eq!(bytes[..2], [0xFB, 0x01]);
        assert_eq!(bytes.len(), 2 + 125);
        assert!(bytes[2..].iter().all(|&b| b == 0xAA));
    }

    #[test]
    fn booleans_pack_lowest_bit_first() {
        assert_eq!(bit_pack([true, false, false, true]), [0b0000_1001]);
        let nine = [true, true, true, true, true, true, true, true, true];
        assert_eq!(bit_pack(nine), [0xFF, 0x01]);
        assert_eq!(bit_pack([]), Vec::<u8>::new());
    }

    #[test]
    fn file_is_framed_by_magic_and_footer_length_points_at_the_metadata() {
        let t = Table::new(vec![
            Column::new("x", vec![Some(1.5), None]),
            Column::new("s", vec!["a", "b"]),
        ])
        .unwrap();
        let bytes = write(&t);
        assert_eq!(&bytes[..4], b"PAR1");
        assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
        let n = bytes.len();
        let footer_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
        let footer = &bytes[n - 8 - footer_len..n - 8];
        assert_eq!(footer, file_metadata_of(&t, &bytes));
        // FileMetaData starts with version: field 1, I32, zigzag(1) = 2.
        assert_eq!(footer[..2], [0x15, 0x02]);
        assert_eq!(*footer.last().unwrap(), CT_STOP);
        // The first page header follows the magic: type DATA_PAGE (0).
        assert_eq!(bytes[4..6], [0x15, 0x00]);
    }

    /// The footer recomputed from the chunk layout the file should have.
    fn file_metadata_of(t: &Table, bytes: &[u8]) -> Vec<u8> {
        let mut offset = 4;
        let chunks: Vec<Chunk> = t
            .columns()
            .iter()
            .map(|c| {
                let page = page_body(c.values());
                let size = page_header(t.height(), page.len()).len() + page.len();
                let chunk = Chunk {
                    offset,
                    size,
                    nulls: (0..c.len()).filter(|&i| c.values().is_null(i)).count(),
                };
                offset += size;
                chunk
            })
            .collect();
        let meta = file_metadata(t, &chunks);
        assert_eq!(offset + meta.len() + 8, bytes.len());
        meta
    }

    #[test]
    fn a_page_holds_length_prefixed_levels_then_non_null_values() {
        let page = page_body(&Values::Text(vec![Some("ab".into()), None, Some(String::new())]));
        // levels: one padded group 0b101, 2 bytes; values: "ab" and "".
        assert_eq!(page, [2, 0, 0, 0, 0x03, 0b101, 2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]);
        let page = page_body(&Values::Int(vec![]));
        assert_eq!(page, [0, 0, 0, 0]);
    }
}
