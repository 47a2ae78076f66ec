//! ⑥ Done: the only code that deletes listener files.
//!
//! A listener file is deleted after the change it carries was applied (or deliberately ignored)
//! and before the message is acknowledged. If the daemon dies between the two, the message comes
//! again, finds its file gone and is skipped, so nothing is applied twice.

use std::path::{Path, PathBuf};

/// What happened to the listener file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Deleted,
    /// Already gone (an admin removed it, or the host did after a successful trigger run).
    AlreadyGone,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot delete the applied listener file: {source}")]
pub struct DeleteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Deletes `name` from `listener_dir` after its change was applied.
pub fn delete_applied(listener_dir: &Path, name: &str) -> Result<Removal, DeleteError> {
    let path = listener_dir.join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(Removal::Deleted),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Removal::AlreadyGone),
        Err(source) => Err(DeleteError { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_applied_file_is_deleted_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        assert_eq!(
            delete_applied(dir.path(), "a.json").unwrap(),
            Removal::Deleted
        );
        assert_eq!(
            delete_applied(dir.path(), "a.json").unwrap(),
            Removal::AlreadyGone
        );
    }
}
