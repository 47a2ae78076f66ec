//! The sorted snapshot of the listener folder: the truth about what is queued.
//!
//! File-system events only say "look again"; what is pending is always decided by listing the
//! folder (depth 1) and sorting by name. Byte-wise name order is chronological order because
//! every field of `%Y-%m-%d-%H-%M-%S-%f` is zero-padded.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Timelike, Utc};

/// A file name that looks like a listener file: `YYYY-MM-DD-HH-MM-SS[-ffffff].json`.
///
/// Names without microseconds are accepted because admins write them by hand to re-provision
/// an object (docs/queue.md §1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListenerFileName(String);

impl ListenerFileName {
    /// Returns the name if it is a listener file name.
    pub fn new(name: &str) -> Option<Self> {
        is_listener_file_name(name).then(|| Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The time in the name, read as host local time (the container has the host's zone).
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        let stem = self.0.strip_suffix(".json")?;
        let (seconds, micros) = match stem.len() {
            19 => (stem, "0"),
            _ => stem.split_at_checked(19).map(|(s, f)| (s, &f[1..]))?,
        };
        let naive = NaiveDateTime::parse_from_str(seconds, "%Y-%m-%d-%H-%M-%S").ok()?;
        let micros: u32 = format!("{micros:0<6}").parse().ok()?;
        let naive = naive.with_nanosecond(micros * 1000)?;
        Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }
}

impl Ord for ListenerFileName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.as_bytes().cmp(other.0.as_bytes())
    }
}

impl PartialOrd for ListenerFileName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ListenerFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `name` is a listener file name (and not `*.converting.tmp`, `old.db`, …).
pub fn is_listener_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".json") else {
        return false;
    };
    let bytes = stem.as_bytes();
    // YYYY-MM-DD-HH-MM-SS: digits with dashes at 4, 7, 10, 13, 16.
    let seconds_ok = bytes.len() >= 19
        && bytes[..19].iter().enumerate().all(|(i, b)| match i {
            4 | 7 | 10 | 13 | 16 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    let fraction = &bytes[bytes.len().min(19)..];
    let fraction_ok = fraction.is_empty()
        || (fraction.len() >= 2
            && fraction.len() <= 7
            && fraction[0] == b'-'
            && fraction[1..].iter().all(u8::is_ascii_digit));
    // A real date and time: `2026-13-45-99-99-99` has the shape but names no moment, and its
    // place in the order (and its age) would be made up.
    seconds_ok
        && fraction_ok
        && NaiveDateTime::parse_from_str(&stem[..19], "%Y-%m-%d-%H-%M-%S").is_ok()
}

/// One queued listener file found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedFile {
    pub name: ListenerFileName,
    /// The folder it is in, shared by every file of a listing (a path per file would cost a
    /// 100,000-file backlog about 10 MB).
    dir: Arc<Path>,
    /// A symbolic link is never followed: it is reported so that it can be quarantined.
    pub is_symlink: bool,
    /// What the entry is if it is neither a regular file nor a symbolic link (a named pipe,
    /// a socket, a device): reading it could block forever, so it is quarantined unread.
    pub special: Option<&'static str>,
}

impl QueuedFile {
    /// Where the file is.
    pub fn path(&self) -> PathBuf {
        self.dir.join(self.name.as_str())
    }
}

/// What a special file is, in words; `None` for regular files, links and folders.
fn special_kind(file_type: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if file_type.is_socket() {
        Some("a socket")
    } else if file_type.is_block_device() || file_type.is_char_device() {
        Some("a device file")
    } else {
        None
    }
}

/// Lists the listener files directly in `dir`, sorted by name. Sub-folders (also ones named
/// `*.json`), other names and `*.converting.tmp` files are not listener files and are left out.
pub fn scan(dir: &Path) -> std::io::Result<Vec<QueuedFile>> {
    scan_up_to(dir, None)
}

/// Like [`scan`], but only the files named up to `newest` (all of them without it).
pub fn scan_up_to(
    dir: &Path,
    newest: Option<&ListenerFileName>,
) -> std::io::Result<Vec<QueuedFile>> {
    let mut files = Vec::new();
    let shared_dir: Arc<Path> = Arc::from(dir);
    visit(dir, |name, entry| {
        if newest.is_none_or(|newest| name <= *newest) {
            let file_type = entry.file_type();
            files.push(QueuedFile {
                name,
                dir: shared_dir.clone(),
                is_symlink: file_type.is_symlink(),
                special: special_kind(file_type),
            });
        }
    })?;
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// The newest listener file name in `dir`, without keeping the listing: a 100,000-file backlog
/// costs no memory for it.
pub fn newest(dir: &Path) -> std::io::Result<Option<ListenerFileName>> {
    let mut newest: Option<ListenerFileName> = None;
    visit(dir, |name, _| {
        if newest.as_ref().is_none_or(|n| name > *n) {
            newest = Some(name);
        }
    })?;
    Ok(newest)
}

/// Calls `found` for every entry of `dir` (depth 1, links not followed) that is not a folder and
/// has a listener file name, in the order the file system lists them.
fn visit(
    dir: &Path,
    mut found: impl FnMut(ListenerFileName, walkdir::DirEntry),
) -> std::io::Result<()> {
    for entry in walkdir::WalkDir::new(dir)
        .min_depth(1)
        .max_depth(1)
        .follow_links(false)
    {
        let entry = match entry {
            Ok(entry) => entry,
            // The folder itself unreadable or missing: the caller reports it.
            Err(e) if e.depth() == 0 => return Err(e.into()),
            // An entry that vanished while listing is simply gone.
            Err(_) => continue,
        };
        if entry.file_type().is_dir() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str().and_then(ListenerFileName::new) {
            found(name, entry);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_file_names_are_recognised() {
        for name in [
            "2025-03-07-14-02-09-381275.json",
            "2025-03-07-14-02-09.json",
            "2025-03-07-14-02-09-5.json",
        ] {
            assert!(is_listener_file_name(name), "{name}");
        }
        for name in [
            "2025-03-07-14-02-09-381275.json.converting.tmp",
            "2025-03-07-14-02-09-381275.JSON",
            "old.db",
            "meta.json",
            "2025-03-07-14-02-09-.json",
            "2025-03-07-14-02-09-1234567.json",
            "2025-03-07 14-02-09.json",
            "x2025-03-07-14-02-09.json",
            ".json",
            "2026-13-45-99-99-99-000000.json",
            "2025-02-30-10-00-00.json",
            "2025-03-07-24-00-00.json",
        ] {
            assert!(!is_listener_file_name(name), "{name}");
        }
    }

    #[test]
    fn scan_sorts_by_name_and_ignores_everything_else() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "2025-03-07-14-02-10-000001.json",
            "2025-03-07-14-02-09-381275.json",
            "2025-03-07-14-02-09.json",
            "2025-03-07-14-02-09-381274.json.converting.tmp",
            "old.db",
            "notes.txt",
        ];
        for name in names {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        std::fs::create_dir(dir.path().join("old")).unwrap();
        std::fs::create_dir(dir.path().join("2025-01-01-00-00-00.json")).unwrap();
        std::fs::write(dir.path().join("old/2025-01-01-00-00-00-1.json"), "{}").unwrap();

        let found: Vec<String> = scan(dir.path())
            .unwrap()
            .into_iter()
            .map(|f| f.name.to_string())
            .collect();
        assert_eq!(
            found,
            [
                "2025-03-07-14-02-09-381275.json",
                "2025-03-07-14-02-09.json",
                "2025-03-07-14-02-10-000001.json"
            ]
        );
    }

    #[test]
    fn the_newest_name_and_a_listing_up_to_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest(dir.path()).unwrap(), None);
        for name in [
            "2025-03-07-14-02-10-000001.json",
            "2025-03-07-14-02-09-381275.json",
            "2025-03-07-14-02-11.json.converting.tmp",
            "2025-03-07-14-02-12.json",
        ] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        std::fs::create_dir(dir.path().join("2025-03-07-14-02-13.json")).unwrap();
        let newest_name = newest(dir.path()).unwrap().unwrap();
        assert_eq!(newest_name.as_str(), "2025-03-07-14-02-12.json");
        let up_to = ListenerFileName::new("2025-03-07-14-02-10-000001.json").unwrap();
        let names = |files: Vec<QueuedFile>| -> Vec<String> {
            files.into_iter().map(|f| f.name.to_string()).collect()
        };
        assert_eq!(
            names(scan_up_to(dir.path(), Some(&up_to)).unwrap()),
            [
                "2025-03-07-14-02-09-381275.json",
                "2025-03-07-14-02-10-000001.json"
            ]
        );
        assert_eq!(scan(dir.path()).unwrap().len(), 3);
        assert!(newest(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_name_gives_the_local_time_of_the_change() {
        let name = ListenerFileName::new("2025-03-07-14-02-09-381275.json").unwrap();
        let local = name.timestamp().unwrap().with_timezone(&Local);
        assert_eq!(
            local.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            "2025-03-07 14:02:09.381275"
        );
        let short = ListenerFileName::new("2025-03-07-14-02-09-5.json").unwrap();
        let local = short.timestamp().unwrap().with_timezone(&Local);
        assert_eq!(local.format("%.6f").to_string(), ".500000");
    }
}
