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

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
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
    _lock: PidLock,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` at once, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, LockError> {
        let path = data_dir.join(LOCK_FILE);
        match PidLock::try_acquire(&path) {
            Ok(Some(lock)) => Ok(Self { _lock: lock, path }),
            Ok(None) => Err(LockError::Held {
                data_dir: data_dir.to_owned(),
                holder: PidLock::holder(&path),
                lock: path,
            }),
            Err(source) => Err(LockError::Io { path, source }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An exclusive `flock` on a file that holds its holder's pid (the daemon's lock here, the
/// trigger's in `commands::trigger`). The kernel releases it when the holder drops it or dies,
/// however it dies, so a killed process never leaves a stale lock behind.
#[derive(Debug)]
pub struct PidLock {
    _file: Flock<File>,
}

impl PidLock {
    /// Takes the lock on `path` at once (creating the file and its folder); `Ok(None)` while
    /// another process holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<Self>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match Flock::lock(open_lock_file(path)?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                // The holder's pid, for the message of whoever has to give up. Best effort: a
                // read-only lock file (another user's) still locks.
                let _ = lock.set_len(0).and_then(|()| {
                    let mut file: &File = &lock;
                    writeln!(file, "{}", std::process::id())?;
                    file.sync_all()
                });
                Ok(Some(Self { _file: lock }))
            }
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(errno.into()),
        }
    }

    /// The pid the holder of the lock on `path` wrote, if it can be read.
    pub fn holder(path: &Path) -> Option<i32> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }
}

/// Opens the lock file for writing (creating it), or read-only when it belongs to another user:
/// `flock` works on either.
fn open_lock_file(path: &Path) -> std::io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => File::open(path),
        other => other,
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
