//! The watcher: turns the listener folder into an ordered stream of validated files.
//!
//! `notify` events and a periodic rescan both just mean "look again": every pass lists the
//! folder ([`scan`](mod@super::scan)), skips files it already handed on, reads the others in name
//! order and hands each to a [`Sink`] (the publisher). A lost event therefore never loses a file.
//!
//! The files new at one pass form a batch, queued dependencies first ([`super::batch`]).
//!
//! A file that cannot be read or validated is retried on every pass until the grace period ends
//! (it may still be being written by hand), then quarantined. It never holds up the files after
//! it. A sink that cannot take a file right now (queue full, NATS down) ends the pass, so no later
//! file overtakes it; the next pass starts again from the first file not yet handed on.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::batch;
use super::format::read_bounded;
use super::quarantine::quarantine;
use super::requeue;
use super::scan::{newest, scan_up_to, QueuedFile};
use super::{ListenerFile, ListenerFileName};
use crate::telemetry::{error_chain, events, Chain};

/// How many bytes of a pass's new files are kept from reading them for sorting until they are
/// parsed: a backlog of 10,000 ordinary files (about 600 bytes each) is read once, and a larger
/// one costs no more memory than this (16 MiB before: 8 MiB less at a 100,000-file backlog,
/// docs/performance.md).
const READ_AHEAD: usize = 8 << 20;

/// Settings of the watcher.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// The listener folder, `<data-dir>/listener`.
    pub dir: PathBuf,
    /// How often the folder is listed even without file-system events.
    pub rescan_interval: Duration,
    /// How long a broken file is retried before it is quarantined.
    pub broken_grace: Duration,
    /// After a file-system event, how long to wait for the rest of a batch before looking.
    pub batch_settle: Duration,
}

/// Why a sink did not take a file.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Not now (queue full, server unreachable). The files in `unstored` — files taken
    /// earlier that were not stored after all, and maybe this one — are offered again on the
    /// next pass, in order.
    ///
    /// The cause is the sink's own error: the watcher does not look into it (the listener
    /// step knows nothing of the queue behind the sink), only logs it whole.
    #[error("{cause}")]
    Later {
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
        unstored: Vec<String>,
    },
    /// Never (e.g. too large for the queue); the file is quarantined with this reason. A
    /// string: the message the admin reads in the quarantine note, complete with its cause.
    #[error("{0}")]
    Refused(String),
}

/// Why a file in the listener folder is not a valid listener file.
#[derive(Debug, thiserror::Error)]
enum NotAListenerFile {
    #[error("{0}: is a symbolic link; listener files must be regular files")]
    Symlink(PathBuf),
    #[error("{path}: is {kind}; listener files must be regular files")]
    Special { path: PathBuf, kind: &'static str },
    #[error(transparent)]
    Invalid(#[from] super::ListenerFileError),
}

/// Where validated listener files go, in name order. A sink may take a file before it is
/// stored for good (a publish pipeline); [`Sink::flush`] waits until everything taken is.
pub trait Sink: Send {
    fn accept(&mut self, file: ListenerFile) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Waits until every file taken so far is stored.
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }
}

/// Watches the listener folder until `shutdown` is cancelled. `wake` asks for a pass now.
/// `ranks` orders each batch (see [`batch`]).
pub async fn run<S: Sink>(
    settings: WatchSettings,
    ranks: batch::Ranks,
    mut sink: S,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    std::fs::create_dir_all(&settings.dir)?;
    // Kept alive for as long as the loop runs: dropping it stops the events.
    let _watcher = watch_events(&settings, wake.clone());
    let mut state = PassState {
        ranks,
        ..PassState::default()
    };
    loop {
        state.pass(&settings, &mut sink, &shutdown).await;
        if let Err(SinkError::Later { unstored, .. }) = sink.flush().await {
            state.take_back(&unstored);
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            // Let a batch the converter is writing land completely before looking.
            () = wake.notified() => tokio::time::sleep(settings.batch_settle).await,
            () = tokio::time::sleep(settings.rescan_interval) => {}
        }
    }
}

/// Starts `notify` on the folder; every event wakes the loop. Without it (e.g. inotify limits
/// reached) the periodic rescan still finds every file, only later.
fn watch_events(settings: &WatchSettings, wake: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // A file removed (by `done` after its apply, or by an admin) or only read brings
        // nothing new: waking for it would rescan a large backlog after every applied change.
        // Errors too (e.g. an event queue overflow) are a reason to look again.
        if let Ok(event) = &event {
            if matches!(
                event.kind,
                notify::EventKind::Remove(_) | notify::EventKind::Access(_)
            ) {
                return;
            }
        }
        wake.notify_one();
    })
    .and_then(|mut watcher| {
        watcher.watch(&settings.dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    match watcher {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(
                dir = %settings.dir.display(),
                error = %Chain(&e),
                rescan_interval_s = settings.rescan_interval.as_secs_f64(),
                "Cannot watch the listener folder for changes; relying on the periodic rescan."
            );
            None
        }
    }
}

/// Lists the folder so that no file is missing before the newest one listed.
///
/// A directory listing may skip entries created while it runs (readdir gives no promise about
/// them), so one listing can show a file and miss older ones the converter wrote just before it
/// (found by the cluster failover test: files queued as 1676, 1678, 1680, 1677, 1679). A file the
/// first listing shows existed before the second one started, and so did every file the
/// converter named before it (it writes them in name order): the second listing shows them all.
/// Its files named after the first listing's newest wait for the next pass.
fn scan_settled(dir: &std::path::Path) -> std::io::Result<Vec<QueuedFile>> {
    // The first listing is only asked for its newest name: a large backlog is kept in memory
    // once, not twice.
    let Some(newest) = newest(dir)? else {
        return Ok(Vec::new());
    };
    scan_up_to(dir, Some(&newest))
}

/// A pass's new file: its rank in the batch, and its bytes if they were kept from reading it
/// for its rank.
type NewFile<'a> = (u8, &'a QueuedFile, Option<Vec<u8>>);

#[derive(Default)]
struct PassState {
    /// Files already handed to the sink (pruned to what is still on disk at each pass).
    handed_on: HashSet<ListenerFileName>,
    /// Files that failed to parse, and since when.
    failing: HashMap<ListenerFileName, Instant>,
    /// Whether the last listing of the folder failed (to log that once).
    scan_failed: bool,
    /// Whether the last quarantine failed (a full disk: reported once per episode).
    quarantine_failed: bool,
    /// The order of the object types in a batch.
    ranks: batch::Ranks,
}

impl PassState {
    async fn pass<S: Sink>(
        &mut self,
        settings: &WatchSettings,
        sink: &mut S,
        shutdown: &CancellationToken,
    ) {
        let Some(files) = self.list(settings) else {
            return;
        };
        for (_, file, raw) in self.new_files(&files) {
            if shutdown.is_cancelled() {
                return;
            }
            let parsed = match parse(settings, file, raw) {
                Some(parsed) => parsed,
                // Gone since the listing (applied and deleted, or removed by an admin).
                None => continue,
            };
            if !self.hand_on(settings, sink, file, parsed).await {
                return;
            }
        }
    }

    /// The folder's files for this pass; forgets files that are gone. `None` when the folder
    /// cannot be listed (reported once).
    fn list(&mut self, settings: &WatchSettings) -> Option<Vec<QueuedFile>> {
        let files = match scan_settled(&settings.dir) {
            Ok(files) => {
                self.scan_failed = false;
                files
            }
            Err(e) => {
                if !std::mem::replace(&mut self.scan_failed, true) {
                    tracing::error!(dir = %settings.dir.display(), error = %e, "Cannot list the listener folder.");
                }
                return None;
            }
        };
        let present: HashSet<&ListenerFileName> = files.iter().map(|f| &f.name).collect();
        self.handed_on.retain(|name| present.contains(name));
        self.failing.retain(|name, _| present.contains(name));
        drop(present);
        self.adopt_moved_back(settings, &files);
        Some(files)
    }

    /// This pass's batch: the files not handed on yet, dependencies first (see `batch`). Each
    /// is read to learn its type; what was read is kept for parsing it, up to READ_AHEAD bytes
    /// in all (the rest is read again when its turn comes).
    fn new_files<'a>(&self, files: &'a [QueuedFile]) -> Vec<NewFile<'a>> {
        let mut kept = 0;
        let mut new_files: Vec<NewFile<'a>> = files
            .iter()
            .filter(|file| !self.handed_on.contains(&file.name))
            .map(|file| match read_bounded(&file.path()) {
                Ok(raw) => {
                    let rank = self.ranks.rank_of(&raw);
                    let keep = kept + raw.len() <= READ_AHEAD;
                    kept += if keep { raw.len() } else { 0 };
                    (rank, file, keep.then_some(raw))
                }
                // Read again (and the reason reported) when its turn comes.
                Err(_) => (batch::UNKNOWN_RANK, file, None),
            })
            .collect();
        new_files
            .sort_by(|(a_rank, a, _), (b_rank, b, _)| a_rank.cmp(b_rank).then(a.name.cmp(&b.name)));
        new_files
    }

    /// Gives `file` to the sink, or counts its failure (quarantined once the grace period is
    /// over). Returns false when the pass must end: the sink takes nothing now, and no later
    /// file may overtake this one.
    async fn hand_on<S: Sink>(
        &mut self,
        settings: &WatchSettings,
        sink: &mut S,
        file: &QueuedFile,
        parsed: Result<ListenerFile, NotAListenerFile>,
    ) -> bool {
        let reason = match parsed {
            Ok(parsed) => {
                self.failing.remove(&file.name);
                match sink.accept(parsed).await {
                    Ok(()) => {
                        self.handed_on.insert(file.name.clone());
                    }
                    // Keep the order: nothing after this file goes before it.
                    Err(SinkError::Later { unstored, .. }) => {
                        self.take_back(&unstored);
                        return false;
                    }
                    Err(SinkError::Refused(reason)) => self.quarantine(settings, file, &reason),
                }
                return true;
            }
            Err(error) => error_chain(&error),
        };
        let since = match self.failing.entry(file.name.clone()) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                events::FileParseFailed {
                    file: file.name.as_str(),
                    error: &reason,
                    grace: settings.broken_grace,
                }
                .emit();
                *entry.insert(Instant::now())
            }
        };
        if since.elapsed() >= settings.broken_grace {
            self.quarantine(settings, file, &reason);
        }
        true
    }

    /// New files that an admin moved back from `skipped/` or `broken/` by hand get a new
    /// requeue generation, so they are published again instead of dropped as duplicates.
    fn adopt_moved_back(&mut self, settings: &WatchSettings, files: &[QueuedFile]) {
        let new_names: HashSet<&str> = files
            .iter()
            .filter(|f| !self.handed_on.contains(&f.name))
            .map(|f| f.name.as_str())
            .collect();
        match requeue::adopt_moved_back(&settings.dir, &new_names) {
            Ok(adopted) => {
                for moved in adopted {
                    events::FileMovedBack {
                        file: &moved.name,
                        from: moved.from,
                    }
                    .emit();
                }
            }
            Err(e) => tracing::error!(
                dir = %settings.dir.display(),
                error = %e,
                "Cannot record a listener file moved back into the queue; it may be taken for a duplicate."
            ),
        }
        requeue::prune(&settings.dir);
    }

    /// Files the sink took but did not store: they are offered again on the next pass.
    fn take_back(&mut self, unstored: &[String]) {
        for name in unstored {
            if let Some(name) = ListenerFileName::new(name) {
                self.handed_on.remove(&name);
            }
        }
    }

    fn quarantine(&mut self, settings: &WatchSettings, file: &QueuedFile, reason: &str) {
        match quarantine(&settings.dir, &file.path(), reason, settings.broken_grace) {
            Ok(Some(moved_to)) => {
                self.failing.remove(&file.name);
                self.quarantine_failed = false;
                events::FileQuarantined {
                    file: file.name.as_str(),
                    error: reason,
                    moved_to: &moved_to,
                }
                .emit()
            }
            Ok(None) => {
                self.failing.remove(&file.name);
            }
            Err(error) => {
                if !std::mem::replace(&mut self.quarantine_failed, true) {
                    events::FileQuarantineError {
                        file: file.name.as_str(),
                        dir: &settings.dir,
                        error: &error,
                    }
                    .emit()
                }
            }
        }
    }
}

/// Reads (unless `raw` was kept) and validates `file`; the error says why it is not a valid
/// listener file. `None` when the file is gone.
fn parse(
    settings: &WatchSettings,
    file: &QueuedFile,
    raw: Option<Vec<u8>>,
) -> Option<Result<ListenerFile, NotAListenerFile>> {
    let path = file.path();
    if file.is_symlink {
        return Some(Err(NotAListenerFile::Symlink(path)));
    }
    if let Some(kind) = file.special {
        return Some(Err(NotAListenerFile::Special { path, kind }));
    }
    let parsed = match raw {
        Some(raw) => ListenerFile::parse(&path, file.name.as_str().to_owned(), raw),
        None => ListenerFile::read(&path),
    };
    match parsed {
        Ok(mut parsed) => {
            parsed.requeue_generation = requeue::generation(&settings.dir, file.name.as_str());
            Some(Ok(parsed))
        }
        Err(e) if e.is_not_found() => None,
        Err(e) => Some(Err(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::sink::Sink as LogSink;

    struct Accepting;

    impl Sink for Accepting {
        async fn accept(&mut self, _file: ListenerFile) -> Result<(), SinkError> {
            Ok(())
        }
    }

    /// Issue #16 item 8: a quarantine that keeps failing (a full disk) is reported once, not at
    /// every rescan.
    #[tokio::test]
    async fn a_failing_quarantine_is_reported_once_per_episode() {
        let dir = tempfile::tempdir().unwrap();
        // `broken` is a file, so `broken/` cannot be made: every quarantine fails.
        std::fs::write(dir.path().join("broken"), "").unwrap();
        std::fs::write(dir.path().join("2025-01-01-00-00-00-000001.json"), "{").unwrap();
        let settings = WatchSettings {
            dir: dir.path().to_owned(),
            rescan_interval: Duration::from_secs(1),
            broken_grace: Duration::ZERO,
            batch_settle: Duration::ZERO,
        };
        let log = LogSink::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(move || writer.clone()));
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut state = PassState::default();
        let stop = CancellationToken::new();
        for _ in 0..3 {
            state.pass(&settings, &mut Accepting, &stop).await;
        }
        let text = log.text();
        assert_eq!(
            text.matches("Cannot quarantine a broken listener file")
                .count(),
            1,
            "{text}"
        );
    }
}
