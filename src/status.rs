//! The daemon's status as an admin (and `ox-connector trigger`) needs it: is the queue blocked,
//! by what and since when; is the JetStream queue full.
//!
//! Kept in memory behind a `watch` channel for in-process readers, and mirrored atomically into
//! `<data-dir>/status.json` whenever it changes, for other processes. It changes when the queue
//! blocks, retries or unblocks and when the queue fills or drains — not per applied message.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// File name of the status mirror inside the data directory.
pub const STATUS_FILE: &str = "status.json";

/// What the daemon reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub started: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The oldest message that keeps failing, if any (what waits for it cannot go on).
    pub blocked: Option<Blocked>,
    /// How many other messages keep failing (changes applied at the same time can fail at the
    /// same time).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub also_blocked: usize,
    /// The listener files of those other failing messages (`queue list` marks them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_blocked_files: Vec<String>,
    /// Set while the JetStream queue refuses new messages because it is full.
    pub queue_full: Option<QueueFull>,
    /// Set while OX provisioning is paused (`ox-connector queue pause`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Paused>,
    /// The calls towards OX, read when the status is: the adaptive limit of calls at once, the
    /// calls in flight and the latency floor (`crate::ox::limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ox_calls: Option<OxCalls>,
}

/// The calls towards OX at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OxCalls {
    /// Calls allowed at once now.
    pub limit: usize,
    /// The most the limit may grow to (`--apply-concurrency`).
    pub max: usize,
    pub in_flight: usize,
    /// The shortest call seen lately, in microseconds; absent before the first call.
    pub latency_floor_us: Option<u64>,
}

/// The head of the queue cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub file: Option<String>,
    pub object_type: String,
    pub dn: String,
    pub entry_uuid: String,
    /// The last error, one line, no secrets (e.g. the OX fault text).
    pub error: String,
    /// `transient` (waiting may help) or `rejected` (an admin probably has to act).
    pub error_kind: String,
    pub since: DateTime<Utc>,
    pub attempts: u64,
}

/// The queue is full; listener files wait on disk until it drains.
/// A paused queue, as `queue status` shows it (set by `queue::pause`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    /// When the pause ends by itself; `None`: only with `queue resume`.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueFull {
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// Shared handle to the status; cheap to clone.
#[derive(Clone)]
pub struct StatusBoard {
    inner: Arc<Inner>,
}

struct Inner {
    tx: watch::Sender<DaemonStatus>,
    file: Option<PathBuf>,
    /// Every failing message by stream sequence; the first is shown as `blocked`.
    blocked: std::sync::Mutex<std::collections::BTreeMap<u64, Blocked>>,
    /// Whether the last write of the status file failed (so that a full disk is reported once
    /// per episode, not at every update).
    write_failing: std::sync::atomic::AtomicBool,
    /// Reads the calls towards OX (the adaptive limiter, `crate::ox::limit`), once the OX
    /// client exists. A reader rather than the limiter itself, so that the status board, which
    /// the queue uses, does not depend on the OX client.
    ox_calls: OnceLock<OxCallsReader>,
}

/// Tells the calls towards OX at the moment it is called.
pub type OxCallsReader = Arc<dyn Fn() -> OxCalls + Send + Sync>;

/// How often a running daemon rewrites its status file even when nothing changed: `updated`
/// is its heartbeat, so after a crash `queue status` tells when it was last alive.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl StatusBoard {
    /// A board mirrored to `file` (if given).
    pub fn new(file: Option<PathBuf>) -> Self {
        let now = Utc::now();
        let status = DaemonStatus {
            pid: std::process::id(),
            started: now,
            updated: now,
            blocked: None,
            also_blocked: 0,
            also_blocked_files: Vec::new(),
            queue_full: None,
            paused: None,
            ox_calls: None,
        };
        let board = Self {
            inner: Arc::new(Inner {
                tx: watch::Sender::new(status),
                file,
                blocked: Default::default(),
                write_failing: Default::default(),
                ox_calls: OnceLock::new(),
            }),
        };
        board.persist();
        board
    }

    pub fn get(&self) -> DaemonStatus {
        let mut status = self.inner.tx.borrow().clone();
        if let Some(read) = self.inner.ox_calls.get() {
            status.ox_calls = Some(read());
        }
        status
    }

    /// Shows the calls towards OX as `read` tells them whenever the status is read (set once).
    pub fn show_ox_calls(&self, read: OxCallsReader) {
        let _ = self.inner.ox_calls.set(read);
    }

    pub fn subscribe(&self) -> watch::Receiver<DaemonStatus> {
        self.inner.tx.subscribe()
    }

    /// Records a failed attempt at the message with stream sequence `sequence`.
    pub fn set_blocked(&self, sequence: u64, blocked: Blocked) {
        let mut all = self.blocked_messages();
        all.insert(sequence, blocked);
        self.show_blocked(&all);
    }

    /// The message with stream sequence `sequence` went through (or was skipped).
    pub fn clear_blocked(&self, sequence: u64) {
        let mut all = self.blocked_messages();
        if all.remove(&sequence).is_some() {
            self.show_blocked(&all);
        }
    }

    fn blocked_messages(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Blocked>> {
        // A panic while holding the lock cannot leave the map half-changed: recover it.
        crate::locks::lock(&self.inner.blocked)
    }

    fn show_blocked(&self, all: &std::collections::BTreeMap<u64, Blocked>) {
        let first = all.values().next().cloned();
        let others = all.len().saturating_sub(1);
        let other_files = all
            .values()
            .skip(1)
            .filter_map(|b| b.file.clone())
            .collect();
        self.update(|s| {
            s.blocked = first;
            s.also_blocked = others;
            s.also_blocked_files = other_files;
        });
    }

    /// Rewrites the status file every [`HEARTBEAT`] until `stop`.
    pub async fn beat(&self, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(HEARTBEAT) => self.update(|_| {}),
            }
        }
    }

    pub fn set_queue_full(&self, reason: String) {
        if self.inner.tx.borrow().queue_full.is_none() {
            self.update(|s| {
                s.queue_full = Some(QueueFull {
                    since: Utc::now(),
                    reason,
                })
            });
        }
    }

    /// Records whether OX provisioning is paused, and until when.
    pub fn set_paused(&self, paused: Option<Paused>) {
        if self.inner.tx.borrow().paused != paused {
            self.update(|s| s.paused = paused);
        }
    }

    pub fn clear_queue_full(&self) {
        if self.inner.tx.borrow().queue_full.is_some() {
            self.update(|s| s.queue_full = None);
        }
    }

    fn update(&self, change: impl FnOnce(&mut DaemonStatus)) {
        self.inner.tx.send_modify(|s| {
            change(s);
            s.updated = Utc::now();
        });
        self.persist();
    }

    fn persist(&self) {
        let Some(file) = &self.inner.file else {
            return;
        };
        let json = match serde_json::to_vec_pretty(&*self.inner.tx.borrow()) {
            Ok(json) => json,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot serialise the daemon status.");
                return;
            }
        };
        use std::sync::atomic::Ordering;
        match crate::atomic_file::write(file, &json) {
            Ok(()) => {
                if self.inner.write_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(file = %file.display(), "The daemon status file is written again.");
                }
            }
            Err(e) => {
                if !self.inner.write_failing.swap(true, Ordering::Relaxed) {
                    let fix = if e.raw_os_error() == Some(libc::ENOSPC) {
                        "; the file system of the data directory is full: free space there"
                    } else {
                        ""
                    };
                    tracing::error!(
                        file = %file.display(),
                        error = %e,
                        "Cannot write the daemon status file; `queue status` shows an old status until it can{fix}.",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_running_daemon_rewrites_its_status_file_as_a_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(STATUS_FILE);
        let board = StatusBoard::new(Some(file.clone()));
        let read =
            || -> DaemonStatus { serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap() };
        let first = read().updated;
        let stop = tokio_util::sync::CancellationToken::new();
        let beating = tokio::spawn({
            let (board, stop) = (board.clone(), stop.clone());
            async move { board.beat(stop).await }
        });
        tokio::time::sleep(HEARTBEAT + std::time::Duration::from_millis(10)).await;
        // The paused clock does not move chrono's: wait for the wall clock to tick.
        std::thread::sleep(std::time::Duration::from_millis(5));
        tokio::time::sleep(HEARTBEAT).await;
        assert!(read().updated > first);
        stop.cancel();
        beating.await.unwrap();
    }

    #[test]
    fn the_status_file_follows_blocking_and_unblocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(STATUS_FILE);
        let board = StatusBoard::new(Some(file.clone()));
        let read =
            || -> DaemonStatus { serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap() };
        assert_eq!(read().blocked, None);
        board.set_blocked(
            7,
            Blocked {
                file: Some("f.json".into()),
                object_type: "users/user".into(),
                dn: "uid=a".into(),
                entry_uuid: "u".into(),
                error: "OX is down".into(),
                error_kind: "transient".into(),
                since: Utc::now(),
                attempts: 1,
            },
        );
        assert_eq!(read().blocked.unwrap().error, "OX is down");
        board.clear_blocked(7);
        assert_eq!(read().blocked, None);
        board.set_queue_full("maximum messages exceeded".into());
        assert!(read().queue_full.is_some());
    }

    #[test]
    fn of_several_failing_changes_the_oldest_is_shown_and_the_others_counted() {
        let board = StatusBoard::new(None);
        let failing = |file: &str| Blocked {
            file: Some(file.into()),
            object_type: "users/user".into(),
            dn: format!("uid={file}"),
            entry_uuid: file.into(),
            error: "OX is down".into(),
            error_kind: "transient".into(),
            since: Utc::now(),
            attempts: 1,
        };
        board.set_blocked(9, failing("later"));
        board.set_blocked(4, failing("older"));
        let status = board.get();
        assert_eq!(status.blocked.unwrap().file.as_deref(), Some("older"));
        assert_eq!(status.also_blocked, 1);
        assert_eq!(status.also_blocked_files.len(), 1);
        board.clear_blocked(4);
        let status = board.get();
        assert_eq!(status.blocked.unwrap().file.as_deref(), Some("later"));
        assert_eq!(status.also_blocked, 0);
        board.clear_blocked(9);
        assert_eq!(board.get().blocked, None);
    }
}
