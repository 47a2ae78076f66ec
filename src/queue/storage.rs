//! The disk under the embedded nats-server's JetStream store: how much space it has, and what
//! the daemon does when it runs full.
//!
//! nats-server (2.10 and later) answers a message it cannot write for want of space with
//! nothing at all — the publisher's PubAck times out — and keeps refusing that stream's
//! messages after space returns, until it opens its store again. So the daemon watches the free
//! space itself: a full disk is reported as the reason the queue takes nothing (status,
//! `queue status`, the log, once), and once space is back the embedded server is restarted
//! gracefully, which makes it write again.

use std::path::Path;
use std::time::Duration;

/// Below this much free space the store's file system counts as full.
pub const FULL_BELOW: u64 = 1024 * 1024;
/// A full file system counts as usable again from this much free space on (not at the first
/// freed byte: a store that writes again at once would fill it up again at once).
pub const USABLE_FROM: u64 = 8 * 1024 * 1024;
/// How often the free space is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Bytes an unprivileged process may still write on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stats = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let free = u64::from(stats.blocks_available()).saturating_mul(u64::from(stats.fragment_size()));
    Ok(free)
}

/// What changed about the space of the store since the last look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceChange {
    /// The file system has just run full; `free` bytes are left.
    RanFull { free: u64 },
    /// Space has returned after the file system was full.
    Returned { free: u64 },
}

/// Follows the free space of a store's file system, with hysteresis ([`FULL_BELOW`],
/// [`USABLE_FROM`]).
#[derive(Debug, Default)]
pub struct SpaceWatch {
    full: bool,
}

impl SpaceWatch {
    /// Takes the free space measured now; says whether the file system ran full or came back.
    pub fn observe(&mut self, free: u64) -> Option<SpaceChange> {
        if !self.full && free < FULL_BELOW {
            self.full = true;
            return Some(SpaceChange::RanFull { free });
        }
        if self.full && free >= USABLE_FROM {
            self.full = false;
            return Some(SpaceChange::Returned { free });
        }
        None
    }

    pub fn is_full(&self) -> bool {
        self.full
    }
}

/// The reason shown while the store's file system is full.
pub fn full_reason(dir: &Path, free: u64) -> String {
    format!(
        "no space left on the file system of the NATS store {} ({free} bytes free): free space \
         there; the listener files wait on disk and are queued once space returns",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_back_are_reported_once_each_with_hysteresis() {
        let mut watch = SpaceWatch::default();
        assert_eq!(watch.observe(USABLE_FROM * 10), None);
        assert_eq!(
            watch.observe(FULL_BELOW - 1),
            Some(SpaceChange::RanFull {
                free: FULL_BELOW - 1
            })
        );
        assert_eq!(watch.observe(0), None);
        assert_eq!(watch.observe(USABLE_FROM - 1), None, "not yet usable");
        assert!(watch.is_full());
        assert_eq!(
            watch.observe(USABLE_FROM),
            Some(SpaceChange::Returned { free: USABLE_FROM })
        );
        assert_eq!(watch.observe(USABLE_FROM), None);
    }

    #[test]
    fn the_free_space_of_a_folder_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}
