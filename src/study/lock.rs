//! `DIR/.lock`: one writer per study folder. Created exclusively
//! (`create_new`) with the owner's pid and host; a lock whose pid is no
//! longer alive on this host is stale and taken over. Removed on drop.
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const LOCK_FILE: &str = ".lock";

/// Holds a study folder's lock until dropped.
#[derive(Debug)]
pub struct StudyLock {
    path: PathBuf,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether a process with this pid exists on this machine (Linux `/proc`;
/// elsewhere every pid counts as alive, so a stale lock must be removed by hand).
pub fn pid_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl StudyLock {
    /// Takes the lock of `dir` (which must exist), or says who holds it.
    pub fn acquire(dir: &Path) -> Result<StudyLock> {
        let path = dir.join(LOCK_FILE);
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let body = format!("pid {}\nhost {}\n", std::process::id(), hostname());
                    f.write_all(body.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| Error::io(&path, e))?;
                    return Ok(StudyLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let field = |key: &str| {
                        text.lines()
                            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
                    };
                    let pid = field("pid ").and_then(|p| p.parse::<u32>().ok());
                    let host = field("host ").unwrap_or_default();
                    let same_host = host.is_empty() || host == hostname();
                    match pid {
                        Some(p) if same_host && !pid_alive(p) => {
                            // stale: its owner died (kill -9, crash); take it over
                            let _ = std::fs::remove_file(&path);
                        }
                        Some(p) => {
                            return Err(Error::value(
                                "study folder",
                                format!(
                                    "{} is in use by another `ptycho study` (pid {p}{}); wait for it to finish, \
                                     or delete {} if that process is gone",
                                    dir.display(),
                                    if same_host {
                                        String::new()
                                    } else {
                                        format!(" on {host}")
                                    },
                                    path.display()
                                ),
                            ));
                        }
                        None if text.is_empty() => {
                            // a lock being written right now, or left empty by a crash
                            return Err(Error::value(
                                "study folder",
                                format!(
                                    "{} is locked ({} has no owner yet); retry, or delete it if no study is running",
                                    dir.display(),
                                    path.display()
                                ),
                            ));
                        }
                        None => {
                            return Err(Error::format(
                                &path,
                                "unreadable lock file; delete it if no study is running",
                            ));
                        }
                    }
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::value(
            "study folder",
            format!("could not take {} (another process keeps taking it)", path.display()),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StudyLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_stale_lock_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = StudyLock::acquire(dir.path()).unwrap();
        let err = StudyLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        // a pid that cannot exist (above Linux's pid_max of 2^22)
        std::fs::write(
            dir.path().join(LOCK_FILE),
            format!("pid 99999999\nhost {}\n", hostname()),
        )
        .unwrap();
        let _lock = StudyLock::acquire(dir.path()).unwrap();
    }
}
