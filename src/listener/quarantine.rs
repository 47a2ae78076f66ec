//! Quarantine: broken listener files move to `listener/broken/` with an explanation beside them.
//!
//! A quarantined file is never deleted and never blocks the files after it. Its sidecar
//! `<name>.error.txt` says what was wrong and how to put the file back once it is fixed.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The sub-folder of the listener folder that holds quarantined files.
pub const BROKEN_DIR: &str = "broken";

/// Moves `path` (a file in `listener_dir`) to `listener_dir/broken/` and writes
/// `<name>.error.txt` beside it. Returns the new path, or `Ok(None)` if the file vanished
/// meanwhile (then there is nothing to quarantine).
pub fn quarantine(
    listener_dir: &Path,
    path: &Path,
    reason: &str,
    grace: Duration,
) -> std::io::Result<Option<PathBuf>> {
    let broken = listener_dir.join(BROKEN_DIR);
    std::fs::create_dir_all(&broken)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = free_name(&broken, &name);
    let target_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sidecar = broken.join(format!("{target_name}.error.txt"));

    let text = format!(
        "file: {name}\n\
         quarantined at: {now}\n\
         reason: {reason}\n\
         \n\
         ox-connector could not use this listener file for {grace} s and moved it out of the\n\
         queue ({listener}) so that the changes after it are not held up. Nothing was sent to OX\n\
         for it. If the change is still needed, fix the file and move it back:\n\
         \n    ox-connector queue requeue {target_name}\n\
         \nor by hand: mv {target} {listener}/{name}\n\
         \n\
         or re-provision the object from UCS (for example by changing it in the directory).\n",
        now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        grace = grace.as_secs(),
        listener = listener_dir.display(),
        target = target.display(),
    );
    crate::atomic_file::write(&sidecar, text.as_bytes())?;
    match std::fs::rename(path, &target) {
        Ok(()) => {
            // It may hold password hashes: readable by root only, like the rest of the secrets.
            restrict(&target)?;
            Ok(Some(target))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Best effort: an explanation of a file that is not there would only confuse.
            let _ = std::fs::remove_file(&sidecar);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Makes a set-aside listener file readable and writable by its owner only (mode 0600),
/// without following a symbolic link.
pub fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// `broken/<name>`, or `broken/<name>.<n>` if an earlier file of that name is already there.
fn free_name(broken: &Path, name: &str) -> PathBuf {
    let first = broken.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| broken.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_file_moves_with_its_explanation() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("2025-01-01-00-00-00-000001.json");
        std::fs::write(&file, "{").unwrap();
        let moved = quarantine(dir.path(), &file, "invalid JSON", Duration::from_secs(60))
            .unwrap()
            .unwrap();
        assert!(!file.exists());
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "{");
        let why = std::fs::read_to_string(
            dir.path()
                .join("broken/2025-01-01-00-00-00-000001.json.error.txt"),
        )
        .unwrap();
        assert!(why.contains("reason: invalid JSON"), "{why}");
        assert!(why.contains("mv "), "{why}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&moved).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "quarantined files are for root only");

        // A second file of the same name does not overwrite the first.
        std::fs::write(&file, "[").unwrap();
        let second = quarantine(dir.path(), &file, "x", Duration::from_secs(60))
            .unwrap()
            .unwrap();
        assert_ne!(second, moved);
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "{");
    }

    #[test]
    fn a_vanished_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("2025-01-01-00-00-00-000001.json");
        assert_eq!(
            quarantine(dir.path(), &file, "x", Duration::from_secs(1)).unwrap(),
            None
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("broken"))
                .unwrap()
                .count(),
            0
        );
    }
}
