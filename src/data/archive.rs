//! Reading zip archives (`.npz` datasets, `wts.h5.zip` bundles) with
//! errors that name the file. Hostile archives are refused before anything
//! is allocated or decompressed: member names must be plain relative names
//! (no `..`, no absolute or drive paths: zip-slip), symbolic-link members
//! are refused, and declared sizes are checked against what the archive can
//! hold (a stored member is as large as its compressed size, a deflated one
//! at most [`MAX_EXPANSION`] times it: zip bombs). The zip reader stops at
//! the declared size, so a member that lies about its size is an error too.
//! Nothing is ever extracted to disk.
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Deflate cannot expand more than 1032:1; a member that declares more than
/// this many times its compressed size is refused as a zip bomb.
pub const MAX_EXPANSION: u64 = 1100;

/// Why a member name is refused, or `None` for a plain relative name.
fn unsafe_name(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if name.is_empty() {
        Some("is empty")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else if name.starts_with(['/', '\\']) || (bytes.len() > 1 && bytes[1] == b':') {
        Some("is an absolute path")
    } else if name.split(['/', '\\']).any(|c| c == "..") {
        Some("climbs out of the archive (`..`)")
    } else {
        None
    }
}

/// The members of the zip at `path` whose names pass `keep`, in archive
/// order, as `(name, bytes)`. `kind` names the file type in errors
/// (".npz archive", "bundle"). Every member (kept or not) is checked for
/// an unsafe name, a symbolic link and an impossible size first.
pub fn read_members(path: &Path, kind: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<(String, Vec<u8>)>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    read_members_from(std::io::BufReader::new(file), len, path, kind, keep)
}

/// [`read_members`] of a zip held in memory (a zip inside a zip); `path`
/// names it in errors.
pub fn read_members_in(
    bytes: &[u8],
    path: &Path,
    kind: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    read_members_from(std::io::Cursor::new(bytes), bytes.len() as u64, path, kind, keep)
}

fn read_members_from<R: Read + std::io::Seek>(
    reader: R,
    len: u64,
    path: &Path,
    kind: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    if len == 0 {
        return Err(Error::format(path, format!("empty file (not a {kind})")));
    }
    let mut zip =
        ::zip::ZipArchive::new(reader).map_err(|e| Error::format(path, format!("not a readable {kind} (zip): {e}")))?;
    for i in 0..zip.len() {
        let member = zip
            .by_index_raw(i)
            .map_err(|e| Error::format(path, format!("corrupt {kind} member #{i}: {e}")))?;
        let name = String::from_utf8_lossy(member.name_raw()).into_owned();
        let refuse = |reason: String| Error::format(path, format!("refusing {kind} member `{name}`: {reason}"));
        if let Some(reason) = unsafe_name(&name) {
            return Err(refuse(format!("its name {reason}")));
        }
        if member.is_symlink() {
            return Err(refuse("it is a symbolic link".into()));
        }
        let (declared, compressed) = (member.size(), member.compressed_size());
        if compressed > len {
            return Err(refuse(format!(
                "it declares {compressed} compressed bytes, the file has {len}"
            )));
        }
        let limit = match member.compression() {
            ::zip::CompressionMethod::Stored => compressed,
            _ => compressed.saturating_mul(MAX_EXPANSION),
        };
        if declared > limit {
            return Err(refuse(format!(
                "it declares {declared} bytes from {compressed} compressed bytes (a zip bomb, or corrupt)"
            )));
        }
    }
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .map_err(|e| Error::format(path, format!("corrupt {kind} member #{i}: {e}")))?;
        let name = member
            .name()
            .map_err(|e| Error::format(path, format!("{kind} member #{i} has a bad name: {e}")))?
            .to_string();
        if !keep(&name) {
            continue;
        }
        // bounded by the checks above: at most MAX_EXPANSION × the file size
        let mut bytes = Vec::with_capacity(member.size() as usize);
        member
            .read_to_end(&mut bytes)
            .map_err(|e| Error::format(path, format!("member `{name}` is truncated or corrupt: {e}")))?;
        out.push((name, bytes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::unsafe_name;

    #[test]
    fn only_plain_relative_names_pass() {
        for ok in ["diffraction.npy", "autoencoder/weights.safetensors", "a..b.npy"] {
            assert_eq!(unsafe_name(ok), None, "{ok}");
        }
        for bad in ["../x.npy", "a/../../x", "/etc/passwd", "\\x", "C:x.npy", "a\\..\\b", ""] {
            assert!(unsafe_name(bad).is_some(), "{bad}");
        }
    }
}
