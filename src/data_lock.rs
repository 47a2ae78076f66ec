//! One daemon per data directory: an exclusive `flock` on `<data-dir>/run/daemon.lock`, held for
//! the daemon's lifetime.
//!
//! Two daemons on one data directory would both start a nats-server on one JetStream store,
//! apply changes twice and damage the store. The lock is taken before anything else (the admin
//! API, the embedded nats-server), so a second daemon exits at once and touches nothing. The
//! kernel releases the lock when its holder dies, however it dies, so a killed daemon never
//! leaves a stale lock behind. The file holds the holder's pid, for the message; it is never
//! removed (removing a locked file lets a third process lock a new one beside it).
//! Commands that only talk to a running daemon (`queue`, `trigger`, …) do not take it.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The lock file, relative to the data directory.
pub const LOCK_FILE: &str = "run/daemon.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another ox-connector daemon{} is running on the data directory {data_dir}; stop it first \
         (one daemon per data directory; its lock is {lock})",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Held {
        data_dir: PathBuf,
        lock: PathBuf,
        holder: Option<i32>,
    },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The data directory's lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: Flock<std::fs::File>,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` at once, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    data_dir: data_dir.to_owned(),
                    lock: path,
                    holder: text.trim().parse().ok(),
                });
            }
            Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
        };
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_data_dir_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        drop(first);
        let again = DataDirLock::acquire(dir.path()).expect("free once released");
        assert!(again.path().ends_with(LOCK_FILE));
    }
}
