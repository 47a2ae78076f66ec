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

/// The smallest byte limit a queue may be lowered to so that it fits the disk; below it the
/// daemon refuses to start (a queue that holds a few hundred changes is no queue).
pub const MIN_QUEUE_BYTES: i64 = 4 * 1024 * 1024;
/// Share of the space the store may get that the daemon gives its JetStream store (the rest stays
/// for listener files, status and secrets on the same disk).
const STORE_SHARE: f64 = 0.9;
/// The streams whose byte limit JetStream reserves in full: `PROVISIONING` and the OX
/// subscriber's queue.
const LIMITED_STREAMS: i64 = 2;

/// What the embedded server's JetStream store may take, and the queue limits that fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreBudget {
    /// `max_file_store` of the embedded server.
    pub max_store: i64,
    pub limits: super::QueueLimits,
    /// The byte limit asked for, if it was lowered to fit.
    pub lowered_from: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("cannot measure the free space of {dir}: {source}")]
    Measure {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the disk of {dir} has too little space for the JetStream queue: {free} bytes free, {store} \
         used by the store, the two queues need at least {needed} bytes; free space there (or \
         lower OX_CONNECTOR_QUEUE_MAX_BYTES, now {asked}, which cannot go below {min})",
        min = MIN_QUEUE_BYTES
    )]
    TooSmall {
        dir: std::path::PathBuf,
        free: u64,
        store: u64,
        needed: i64,
        asked: i64,
    },
}

/// JetStream reserves the byte limit of every bounded stream in full when it is created, and
/// refuses a stream that does not fit (`insufficient storage resources available`), which left
/// the daemon retrying for ever on a small disk. So the queue limits are compared with what the
/// store can get — the free space of its file system plus what the store holds already — before
/// the server starts: lowered to fit (the caller warns), or refused when even
/// [`MIN_QUEUE_BYTES`] does not fit.
pub fn fit(store: &Path, limits: super::QueueLimits) -> Result<StoreBudget, BudgetError> {
    let measure = |source| BudgetError::Measure {
        dir: store.to_owned(),
        source,
    };
    let existing = store
        .ancestors()
        .find(|dir| dir.exists())
        .unwrap_or(Path::new("/"));
    let free = free_bytes(existing).map_err(measure)?;
    let used: u64 = walkdir::WalkDir::new(store)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum();
    let available = free.saturating_add(used) as f64 * STORE_SHARE;
    let max_store = i64::try_from(available as u64).unwrap_or(i64::MAX);
    let fits = max_store / LIMITED_STREAMS;
    if limits.max_bytes <= fits {
        return Ok(StoreBudget {
            max_store,
            limits,
            lowered_from: None,
        });
    }
    let lowered = fits / (1024 * 1024) * (1024 * 1024);
    if lowered < MIN_QUEUE_BYTES {
        return Err(BudgetError::TooSmall {
            dir: store.to_owned(),
            free,
            store: used,
            needed: (MIN_QUEUE_BYTES * LIMITED_STREAMS) as f64 as i64,
            asked: limits.max_bytes,
        });
    }
    Ok(StoreBudget {
        max_store,
        limits: super::QueueLimits {
            max_bytes: lowered,
            ..limits
        },
        lowered_from: Some(limits.max_bytes),
    })
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

    #[test]
    fn queue_limits_that_do_not_fit_the_disk_are_lowered_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("nats");
        let limits = |max_bytes| crate::queue::QueueLimits {
            max_messages: 1000,
            max_bytes,
        };
        let small = fit(&store, limits(MIN_QUEUE_BYTES)).unwrap();
        assert_eq!(small.limits, limits(MIN_QUEUE_BYTES));
        assert_eq!(small.lowered_from, None);
        assert!(small.max_store >= 2 * MIN_QUEUE_BYTES);
        let huge = fit(&store, limits(i64::MAX / 4)).unwrap();
        assert_eq!(huge.lowered_from, Some(i64::MAX / 4));
        assert!(huge.limits.max_bytes * 2 <= huge.max_store);
        assert_eq!(huge.limits.max_messages, 1000);
    }
}
