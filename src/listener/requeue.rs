//! Re-queued listener files: a file that comes back from `listener/skipped/` or
//! `listener/broken/` must be published again, although its name and content are the same.
//!
//! The message id is derived from name and content, and JetStream drops a message whose id it
//! saw within its duplicate window; a file moved back would be dropped as a duplicate and wait
//! forever. Every re-queue therefore gets a **generation**: a token stored in
//! `listener/.requeued/<name>` and mixed into the message id. It is written once per re-queue
//! and read on every publish, so a re-publish of the same re-queued file after a restart keeps
//! its id (and is de-duplicated as it should).
//!
//! A re-queue happens through `ox-connector queue requeue NAME` (which calls [`requeue_from`])
//! or by hand with `mv` (the command the skip and quarantine notes print): the watcher sees a
//! new file whose note (`<name>.skipped.txt`, `<name>.error.txt`) is still in `skipped/` or
//! `broken/` while the file itself is gone from there ([`adopt_moved_back`]). Either way the
//! note is renamed to `<name>.requeued.txt` (so it is adopted once) and the generation is new.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The hidden folder (ignored by the scan and the trigger) holding one generation per name.
pub const LEDGER_DIR: &str = ".requeued";
/// Sub-folder of the listener folder with the files an admin skipped.
pub const SKIPPED_DIR: &str = "skipped";
/// The note of a skipped file, and of a quarantined one.
const NOTE_SUFFIXES: [(&str, &str); 2] = [
    (SKIPPED_DIR, ".skipped.txt"),
    (super::quarantine::BROKEN_DIR, ".error.txt"),
];
/// The note of a file that went back into the queue.
pub const REQUEUED_SUFFIX: &str = ".requeued.txt";
/// Ledger entries of files no longer waiting are kept this long: well past the server's
/// duplicate window, so a later re-queue of the same name never reuses an id it remembers.
const LEDGER_KEEP: Duration = Duration::from_secs(3 * 24 * 3600);

/// The generation of `name`'s latest re-queue, if it was ever re-queued.
pub fn generation(listener_dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(listener_dir.join(LEDGER_DIR).join(name)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Gives `name` a new generation. Called before the file goes back into `listener/`.
pub fn new_generation(listener_dir: &Path, name: &str) -> std::io::Result<String> {
    let ledger = listener_dir.join(LEDGER_DIR);
    std::fs::create_dir_all(&ledger)?;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let generation = format!("{nanos:x}");
    crate::atomic_file::write(&ledger.join(name), generation.as_bytes())?;
    Ok(generation)
}

/// `x.json` for `x.json` and `x.json.3` (a second file of the same name set aside).
pub fn base_name(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

/// A file that went back into the queue by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedBack {
    /// The listener file name.
    pub name: String,
    /// Where it had been: `skipped` or `broken`.
    pub from: &'static str,
}

/// Finds the files among `new_names` that were moved back by hand from `skipped/` or
/// `broken/`, gives each a new generation and renames its note to `.requeued.txt`.
pub fn adopt_moved_back(
    listener_dir: &Path,
    new_names: &HashSet<&str>,
) -> std::io::Result<Vec<MovedBack>> {
    let mut adopted = Vec::new();
    if new_names.is_empty() {
        return Ok(adopted);
    }
    for (dir_name, suffix) in NOTE_SUFFIXES {
        let dir = listener_dir.join(dir_name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let note = entry.file_name().to_string_lossy().into_owned();
            let Some(stored) = note.strip_suffix(suffix) else {
                continue;
            };
            let name = base_name(stored);
            if !new_names.contains(name) || dir.join(stored).exists() {
                continue;
            }
            new_generation(listener_dir, name)?;
            retire_note(&dir.join(&note), &dir.join(stored), "by hand (mv)")?;
            adopted.push(MovedBack {
                name: name.to_owned(),
                from: dir_name,
            });
        }
    }
    Ok(adopted)
}

/// Puts `stored` (a file in `skipped/` or `broken/`) back into the queue as `listener/<name>`:
/// new generation, note renamed, then the file moved. Returns the new path.
pub fn requeue_from(
    listener_dir: &Path,
    stored: &Path,
    note_suffix: &str,
    by: &str,
) -> std::io::Result<PathBuf> {
    let stored_name = stored
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = base_name(&stored_name).to_owned();
    let target = listener_dir.join(&name);
    new_generation(listener_dir, &name)?;
    let note = note_path(stored, note_suffix);
    if note.exists() {
        retire_note(&note, stored, &format!("by {by}"))?;
    }
    std::fs::rename(stored, &target)?;
    Ok(target)
}

/// `<stored><suffix>`, the note beside a set-aside file.
pub fn note_path(stored: &Path, suffix: &str) -> PathBuf {
    let mut name = stored.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    stored.with_file_name(name)
}

/// Appends when and how the file went back and renames the note to `.requeued.txt`.
fn retire_note(note: &Path, stored: &Path, how: &str) -> std::io::Result<()> {
    let mut text = std::fs::read_to_string(note).unwrap_or_default();
    text.push_str(&format!(
        "\nput back into the queue at {} {how}; it is queued again.\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ));
    let requeued = note_path(stored, REQUEUED_SUFFIX);
    crate::atomic_file::write(&requeued, text.as_bytes())?;
    match std::fs::remove_file(note) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes ledger entries of files no longer in `listener/` and older than `LEDGER_KEEP`.
pub fn prune(listener_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(listener_dir.join(LEDGER_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > LEDGER_KEEP);
        if old && !listener_dir.join(entry.file_name()).exists() {
            // Best effort: a leftover entry only makes a later id differ, which is harmless.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "2025-01-01-00-00-00-000001.json";

    #[test]
    fn a_file_moved_back_by_hand_gets_a_new_generation_once() {
        let dir = tempfile::tempdir().unwrap();
        let skipped = dir.path().join(SKIPPED_DIR);
        std::fs::create_dir_all(&skipped).unwrap();
        std::fs::write(skipped.join(format!("{NAME}.skipped.txt")), "why\n").unwrap();
        std::fs::write(dir.path().join(NAME), "{}").unwrap();
        assert_eq!(generation(dir.path(), NAME), None);

        let names = HashSet::from([NAME]);
        let adopted = adopt_moved_back(dir.path(), &names).unwrap();
        assert_eq!(
            adopted,
            vec![MovedBack {
                name: NAME.into(),
                from: SKIPPED_DIR
            }]
        );
        let first = generation(dir.path(), NAME).unwrap();
        let note = std::fs::read_to_string(skipped.join(format!("{NAME}.requeued.txt"))).unwrap();
        assert!(
            note.starts_with("why\n") && note.contains("by hand"),
            "{note}"
        );
        // Adopted once: the note is gone, the generation stays.
        assert!(adopt_moved_back(dir.path(), &names).unwrap().is_empty());
        assert_eq!(generation(dir.path(), NAME).unwrap(), first);
    }

    #[test]
    fn a_note_whose_file_is_still_set_aside_is_not_a_requeue() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join(format!("{NAME}.error.txt")), "bad").unwrap();
        std::fs::write(broken.join(NAME), "{").unwrap();
        let names = HashSet::from([NAME]);
        assert!(adopt_moved_back(dir.path(), &names).unwrap().is_empty());
        assert_eq!(generation(dir.path(), NAME), None);
    }

    #[test]
    fn every_requeue_is_a_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let skipped = dir.path().join(SKIPPED_DIR);
        std::fs::create_dir_all(&skipped).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..3 {
            let stored = skipped.join(format!("{NAME}.1"));
            std::fs::write(&stored, "{}").unwrap();
            std::fs::write(note_path(&stored, ".skipped.txt"), "x").unwrap();
            let target = requeue_from(dir.path(), &stored, ".skipped.txt", "root").unwrap();
            assert_eq!(target, dir.path().join(NAME));
            assert!(seen.insert(generation(dir.path(), NAME).unwrap()));
            std::fs::remove_file(target).unwrap();
        }
    }
}
