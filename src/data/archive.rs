//! Reading zip archives (`.npz` datasets, `wts.h5.zip` bundles) with
//! errors that name the file, and a bound on declared member sizes checked
//! before anything is allocated.
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// A member may declare at most this many times the archive's size (or
/// 1 GiB, whichever is more): larger claims are refused as zip bombs.
const MAX_EXPANSION: u64 = 1100;

/// The members of the zip at `path` whose names pass `keep`, in archive
/// order, as `(name, bytes)`. `kind` names the file type in errors
/// (".npz archive", "bundle").
pub fn read_members(path: &Path, kind: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<(String, Vec<u8>)>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Err(Error::format(path, format!("empty file (not a {kind})")));
    }
    let mut zip = ::zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::format(path, format!("not a readable {kind} (zip): {e}")))?;
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
        let declared = member.size();
        if declared > len.saturating_mul(MAX_EXPANSION).max(1 << 30) {
            return Err(Error::format(
                path,
                format!("member `{name}` declares {declared} bytes, far more than the {kind} holds"),
            ));
        }
        let mut bytes = Vec::with_capacity(declared.min(1 << 30) as usize);
        member
            .read_to_end(&mut bytes)
            .map_err(|e| Error::format(path, format!("member `{name}` is truncated or corrupt: {e}")))?;
        out.push((name, bytes));
    }
    Ok(out)
}
