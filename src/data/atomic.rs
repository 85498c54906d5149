//! Atomic file writes: write a temporary file beside the target, flush it to
//! disk, then rename it over the target. A failure (full disk, a crash, an
//! error from the writer) leaves the old file, if any, untouched and no
//! partial file behind.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce: u64 = rand::random();
    path.with_file_name(format!(".{name}.tmp-{}-{nonce:016x}", std::process::id()))
}

/// Writes `path` atomically; `write` receives a buffered writer on the
/// temporary file.
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let tmp = temp_path(path);
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io(path, e))?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes bytes to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes).map_err(|e| Error::io(path, e)))
}

/// Runs `write` on a temporary path beside `path` (for libraries such as
/// HDF5 that open files themselves), then renames it into place.
pub fn write_via_temp_path<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| {
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(path, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The writer's pid in a temp-file name `.NAME.tmp-PID-NONCE` (see `temp_path`).
fn temp_pid(name: &str) -> Option<u32> {
    let (_, tail) = name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    let (pid, nonce) = tail.split_once('-')?;
    if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the temp files that writers killed mid-write (kill -9, a crash)
/// left in `dir`: `.NAME.tmp-PID-NONCE` whose process no longer exists on
/// this machine (Linux `/proc`; elsewhere nothing is removed). Best effort;
/// returns how many were removed. Readers never open these names, so they
/// only cost space.
pub fn remove_stale_temps(dir: &Path) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let Some(pid) = temp_pid(&e.file_name().to_string_lossy()) else {
            continue;
        };
        let dead = pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists();
        if dead && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temps_of_dead_writers_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".wts.h5.zip.tmp-{dead}-00000000deadbeef"));
        let live = dir
            .path()
            .join(format!(".a.json.tmp-{}-0123456789abcdef", std::process::id()));
        let other = dir.path().join(".notes.tmp-1-x");
        for p in [&stale, &live, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(
            temp_pid(&temp_path(Path::new("/d/f.npz")).file_name().unwrap().to_string_lossy()),
            Some(std::process::id())
        );
        assert_eq!(remove_stale_temps(dir.path()), 1);
        assert!(!stale.exists() && live.exists() && other.exists());
    }

    #[test]
    fn failed_write_keeps_the_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_bytes_atomic(&path, b"old").unwrap();
        let r = write_atomic(&path, |w| {
            w.write_all(b"partial").unwrap();
            Err(Error::value("test", "writer failed"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
