//! `ox-connector trigger`: what the App Center's `listener_trigger` runs, and the only thing the
//! UCS host learns about the daemon's progress.
//!
//! The host converter runs the trigger (as root, without arguments) whenever listener files
//! exist, after taking its own snapshot of `listener/*.json`. Exit code 0 makes the host delete
//! every file of that snapshot that is still there, so **0 must mean "every file present at the
//! start is done"**; any other code keeps the files and the host runs the trigger again ≈5 s
//! later (docs/trigger.md).
//!
//! What this module owns:
//! - the snapshot, taken like the host's (`*.json` directly in `listener/`, no dot-names). A
//!   snapshotted listener file is *done* once it is gone from `listener/`: deleted by the daemon
//!   after its change was applied, moved to `broken/` (quarantined), or removed by an admin.
//!   A `*.json` entry that is not a listener file name is never taken by the daemon, so the
//!   host would delete it unapplied after an exit 0: it keeps the trigger from exiting 0;
//! - the lock `<data-dir>/run/trigger.lock`: two triggers never run at once, the second waits
//!   for the first within its own time budget, then gives up with [`Verdict::Busy`];
//! - the verdict, one summary line for stdout (the host logs it at INFO) and the problems for
//!   stderr (logged at WARNING), and the exit code of each situation ([`Verdict::exit_code`]).
//!
//! What it must not do: apply, move or delete listener files itself. It only wakes the daemon
//! and reads its status through the admin API ([`AdminClient`]); when the daemon is not running,
//! it says so and touches nothing.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use crate::admin::client::{AdminClient, AdminClientError};
use crate::admin::StatusReport;
use crate::config::DEFAULT_DATA_DIR;
use crate::data_lock::PidLock;
use crate::listener::quarantine::BROKEN_DIR;
use crate::listener::{is_listener_file_name, ListenerFileName};

/// The lock file, relative to the data directory.
pub const LOCK_FILE: &str = "run/trigger.lock";

/// How often the listener folder (and a held lock) is looked at while waiting, at most.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Timeout of one call to the daemon's admin API (loopback, so it answers in milliseconds; a
/// daemon that does not answer within this is as good as not running).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// At most this many entries of one kind are listed on stderr; the rest are counted.
const MAX_LISTED: usize = 5;

/// Flags of `ox-connector trigger`. The App Center passes no arguments, so every flag has a
/// default and an environment variable (set in the image or by the app settings).
#[derive(Debug, Clone, Args)]
pub struct TriggerArgs {
    /// The app's data directory, the same as the daemon's; listener files are in its
    /// `listener/` folder.
    #[arg(long, env = "OX_CONNECTOR_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// How long to wait, in all, for the lock and for the daemon to finish the listener files
    /// present at the start. The App Center converts no new changes while the trigger runs, so
    /// keep this short: a run that ends early only means another run ≈5 s later.
    #[arg(long, env = "OX_CONNECTOR_TRIGGER_WAIT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

/// How a trigger run ended. Each situation has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every listener file present at the start is done (applied, quarantined or removed).
    Done,
    /// The daemon is still working on files from the start; nothing blocks it.
    StillWorking,
    /// Files from the start stay because a change keeps failing, or because a `*.json` entry
    /// is not a listener file. An admin may have to act (stderr says what).
    Blocked,
    /// The daemon does not answer; nothing was applied or deleted by this run.
    NotRunning,
    /// The data directory, the listener folder or the daemon's token cannot be used.
    Misconfigured,
    /// Another trigger held the lock for the whole wait.
    Busy,
}

impl Verdict {
    /// The process exit code. 1 (an unexpected error) and 2 (invalid command line, from clap)
    /// are left to the generic handling in `main`.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Done => 0,
            Self::StillWorking => 3,
            Self::Blocked => 4,
            Self::NotRunning => 5,
            Self::Misconfigured => 6,
            Self::Busy => 7,
        }
    }
}

/// The outcome of a run: the verdict, one summary line and the problems, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub verdict: Verdict,
    /// For stdout (logged at INFO on the host).
    pub summary: String,
    /// For stderr (logged at WARNING on the host); empty when nothing needs attention.
    pub problems: Vec<String>,
}

impl Report {
    /// Prints the summary to stdout and the problems to stderr.
    pub fn print(&self) {
        println!("{}", self.summary);
        for problem in &self.problems {
            eprintln!("{problem}");
        }
    }

    fn early(verdict: Verdict, state: &str, problem: String) -> Self {
        Self {
            verdict,
            summary: format!("ox-connector trigger: {state}"),
            problems: vec![format!("ox-connector trigger: {problem}")],
        }
    }
}

/// Runs the trigger: lock, snapshot, wake the daemon, wait until the snapshot is done or the
/// wait is over, report.
pub async fn run(args: TriggerArgs) -> Report {
    let deadline = Instant::now() + args.wait;
    let data_dir = args.data_dir;
    let listener_dir = data_dir.join("listener");
    if let Err(report) = check_folders(&data_dir, &listener_dir) {
        return report;
    }

    let _lock = match TriggerLock::acquire(&data_dir, deadline).await {
        Ok(lock) => lock,
        Err(LockError::Busy { holder }) => {
            return Report::early(
                Verdict::Busy,
                "not run: another trigger is running",
                format!(
                    "another ox-connector trigger ({holder}) held {} for the whole wait; \
                     nothing was checked",
                    data_dir.join(LOCK_FILE).display()
                ),
            )
        }
        Err(LockError::Io { path, source }) => {
            return Report::early(
                Verdict::Misconfigured,
                "nothing checked: misconfigured",
                format!("cannot lock {}: {source}", path.display()),
            )
        }
    };

    let snapshot = match Snapshot::take(&listener_dir) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            return Report::early(
                Verdict::Misconfigured,
                "nothing checked: misconfigured",
                format!("cannot list {}: {e}", listener_dir.display()),
            )
        }
    };

    let client = match AdminClient::from_data_dir(&data_dir, REQUEST_TIMEOUT) {
        Ok(client) => client,
        Err(e) => return snapshot.report_contact_error(&listener_dir, &e),
    };
    if let Err(e) = client.pick_up().await {
        return snapshot.report_contact_error(&listener_dir, &e);
    }

    let mut progress = Progress::new(&snapshot);
    progress.wait(&listener_dir, &snapshot, deadline).await;

    let status = if progress.pending.is_empty() {
        None
    } else {
        Some(client.status().await)
    };
    progress.report(&listener_dir, &snapshot, status)
}

/// The data directory and its listener folder must exist; otherwise the report says which.
fn check_folders(data_dir: &Path, listener_dir: &Path) -> Result<(), Report> {
    if !data_dir.is_dir() {
        return Err(Report::early(
            Verdict::Misconfigured,
            "nothing checked: misconfigured",
            format!(
                "the data directory {} does not exist; set --data-dir or OX_CONNECTOR_DATA_DIR \
                 to the daemon's data directory",
                data_dir.display()
            ),
        ));
    }
    if !listener_dir.is_dir() {
        return Err(Report::early(
            Verdict::Misconfigured,
            "nothing checked: misconfigured",
            format!(
                "there is no listener folder {}; the daemon creates it when it starts, so \
                 either it never ran with this data directory or --data-dir is wrong",
                listener_dir.display()
            ),
        ));
    }
    Ok(())
}

/// The `*.json` entries of the listener folder at the start, as the host sees them.
#[derive(Debug)]
struct Snapshot {
    /// Listener file names, sorted.
    listener_files: Vec<String>,
    /// Other `*.json` names (files, links; not folders): the daemon never takes them.
    foreign: Vec<String>,
    /// What `broken/` held at the start, to tell quarantined files from applied ones later.
    broken_before: HashSet<String>,
}

impl Snapshot {
    fn take(listener_dir: &Path) -> std::io::Result<Self> {
        let mut listener_files = Vec::new();
        let mut foreign = Vec::new();
        for entry in std::fs::read_dir(listener_dir)? {
            let Ok(entry) = entry else {
                // Gone while listing: not part of the snapshot.
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            // The host's glob("*.json") leaves out dot-names.
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            // Sub-folders are ignored by the daemon, and the host's delete of a snapshot entry
            // (a file removal, errors ignored) cannot remove them either.
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            if is_listener_file_name(&name) {
                listener_files.push(name);
            } else {
                foreign.push(name);
            }
        }
        listener_files.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        foreign.sort();
        Ok(Self {
            listener_files,
            foreign,
            broken_before: names_in(&listener_dir.join(BROKEN_DIR)),
        })
    }

    /// The daemon could not be reached (or its token not read) before any waiting.
    fn report_contact_error(&self, listener_dir: &Path, error: &AdminClientError) -> Report {
        let total = self.listener_files.len() + self.foreign.len();
        let (verdict, state, problem) = contact_error(error);
        let problem = format!(
            "{problem}. Nothing was applied or deleted: the {total} listener file(s) in {} \
             stay queued",
            listener_dir.display()
        );
        Report {
            verdict,
            summary: format!(
                "ox-connector trigger: applied 0, pending {total} of {total} listener files; \
                 {state}"
            ),
            problems: vec![format!("ox-connector trigger: {problem}")],
        }
    }
}

/// What became of the snapshot while waiting.
#[derive(Debug)]
struct Progress {
    /// Snapshotted listener files still in the folder, in name order.
    pending: Vec<String>,
    /// Snapshotted foreign `*.json` entries still in the folder.
    foreign: Vec<String>,
}

impl Progress {
    fn new(snapshot: &Snapshot) -> Self {
        Self {
            pending: snapshot.listener_files.clone(),
            foreign: snapshot.foreign.clone(),
        }
    }

    fn update(&mut self, present: &HashSet<String>) {
        self.pending.retain(|name| present.contains(name));
        self.foreign.retain(|name| present.contains(name));
    }

    /// Polls the listener folder until every snapshotted file is done or `deadline` passes.
    async fn wait(&mut self, listener_dir: &Path, snapshot: &Snapshot, deadline: Instant) {
        // Listing a folder of 100 000 files (the initial sync of a large domain) takes tens of
        // milliseconds; poll less often then, to leave the CPU to the daemon.
        let poll_interval = POLL_INTERVAL.max(
            Duration::from_micros(2)
                .saturating_mul(u32::try_from(snapshot.listener_files.len()).unwrap_or(u32::MAX)),
        );
        loop {
            // A listing that fails now (it worked a moment ago) is retried at the next poll; the
            // files count as pending meanwhile, which is the safe side.
            if let Ok(present) = present_names(listener_dir) {
                self.update(&present);
            }
            let now = Instant::now();
            if self.pending.is_empty() || now >= deadline {
                break;
            }
            tokio::time::sleep(poll_interval.min(deadline - now)).await;
        }
    }

    fn report(
        &self,
        listener_dir: &Path,
        snapshot: &Snapshot,
        status: Option<Result<StatusReport, AdminClientError>>,
    ) -> Report {
        let total = snapshot.listener_files.len() + snapshot.foreign.len();
        let pending = self.pending.len() + self.foreign.len();
        let done = total - pending;
        let quarantined = quarantined(listener_dir, snapshot, &self.pending);
        let mut problems = Vec::new();
        quarantine_problems(listener_dir, &quarantined, &mut problems);

        let verdict = match status {
            None if self.foreign.is_empty() => Verdict::Done,
            None => Verdict::Blocked,
            Some(Err(e)) => {
                let (verdict, _, problem) = contact_error(&e);
                problems.push(format!(
                    "{problem}; {pending} listener file(s) from the start are still queued"
                ));
                verdict
            }
            // The status is only asked for while listener files from the start are pending.
            Some(Ok(report)) => daemon_problems(&report, &mut problems),
        };
        self.foreign_problems(listener_dir, &mut problems);

        let state = match verdict {
            Verdict::Done => "done",
            Verdict::StillWorking => "the daemon is still working on them",
            Verdict::Blocked => "blocked (see the warnings)",
            Verdict::NotRunning => "the daemon is not running",
            Verdict::Misconfigured => "misconfigured (see the warnings)",
            Verdict::Busy => "another trigger is running",
        };
        let mut summary = format!("ox-connector trigger: applied {}", done - quarantined.len());
        if !quarantined.is_empty() {
            let _ = write!(summary, ", quarantined {}", quarantined.len());
        }
        let _ = write!(
            summary,
            ", pending {pending} of {total} listener files; {state}"
        );
        if let Some(oldest) = self.pending.first() {
            let _ = write!(summary, " (oldest pending: {oldest})");
        }
        Report {
            verdict,
            summary,
            problems: problems
                .into_iter()
                .map(|p| format!("ox-connector trigger: {p}"))
                .collect(),
        }
    }

    /// The lines about snapshotted `*.json` entries that are not listener files.
    fn foreign_problems(&self, listener_dir: &Path, problems: &mut Vec<String>) {
        for name in self.foreign.iter().take(MAX_LISTED) {
            problems.push(format!(
                "{} is not a listener file (names are YYYY-MM-DD-HH-MM-SS-ffffff.json): \
                 ox-connector ignores it, and the App Center would delete it unapplied after a \
                 successful run. Rename it to a listener file name to have it applied, or move \
                 it out of the folder",
                listener_dir.join(name).display()
            ));
        }
        if self.foreign.len() > MAX_LISTED {
            problems.push(format!(
                "… and {} more *.json file(s) that are not listener files",
                self.foreign.len() - MAX_LISTED
            ));
        }
    }
}

/// The problems a running daemon reports (a blocked head, a full queue) and the verdict.
fn daemon_problems(report: &StatusReport, problems: &mut Vec<String>) -> Verdict {
    let mut verdict = Verdict::StillWorking;
    if let Some(blocked) = &report.daemon.blocked {
        verdict = Verdict::Blocked;
        let file = blocked.file.as_deref().unwrap_or("(file already removed)");
        let mut line = format!(
            "blocked at {file} ({} {}, entry UUID {}): {} — failing since {}, {} \
             attempt(s), error kind {}",
            blocked.object_type,
            blocked.dn,
            blocked.entry_uuid,
            blocked.error,
            blocked.since.format("%Y-%m-%d %H:%M:%S UTC"),
            blocked.attempts,
            blocked.error_kind
        );
        if let Some(file) = &blocked.file {
            let _ = write!(
                line,
                ". The daemon retries it; see ox-connector queue status. If the \
                 change can never be applied, skip it (kept in listener/skipped/ with \
                 a note): univention-app shell ox-connector ox-connector queue skip {file}"
            );
        }
        problems.push(line);
    }
    if let Some(full) = &report.daemon.queue_full {
        problems.push(format!(
            "the JetStream queue is full since {} ({}); listener files wait on \
             disk until it drains",
            full.since.format("%Y-%m-%d %H:%M:%S UTC"),
            full.reason
        ));
    }
    verdict
}

/// The lines about files quarantined since the start (at most [`MAX_LISTED`], then a count).
fn quarantine_problems(
    listener_dir: &Path,
    quarantined: &[(String, PathBuf)],
    problems: &mut Vec<String>,
) {
    for (name, moved_to) in quarantined.iter().take(MAX_LISTED) {
        problems.push(format!(
            "{name} could not be used and was moved to {}; {}.error.txt says why",
            moved_to.display(),
            moved_to.display()
        ));
    }
    if quarantined.len() > MAX_LISTED {
        problems.push(format!(
            "… and {} more file(s) moved to {}",
            quarantined.len() - MAX_LISTED,
            listener_dir.join(BROKEN_DIR).display()
        ));
    }
}

/// Verdict, summary state and problem line for an error talking to the daemon.
fn contact_error(error: &AdminClientError) -> (Verdict, &'static str, String) {
    let chain = crate::telemetry::error_chain(error);
    match error {
        AdminClientError::NotRunning { .. } => (
            Verdict::NotRunning,
            "the daemon is not running",
            format!("{chain}; start the app's container (univention-app start ox-connector) or see its log (univention-app logs ox-connector)"),
        ),
        AdminClientError::Read { .. } => (
            Verdict::Misconfigured,
            "misconfigured (see the warnings)",
            format!("{chain}; run the trigger as root or as the daemon's user"),
        ),
        AdminClientError::Refused { .. }
        | AdminClientError::Endpoint { .. }
        | AdminClientError::Client(_)
        | AdminClientError::Decode(_)
        | AdminClientError::Stream(_)
        | AdminClientError::Request(_) => (
            Verdict::Misconfigured,
            "misconfigured (see the warnings)",
            format!("cannot talk to the daemon: {chain}; is --data-dir the daemon's data directory?"),
        ),
    }
}

/// Snapshotted listener files that are gone from the folder and appeared in `broken/` since
/// the start, with their new path. Quarantine renames `<name>` to `broken/<name>`, or to
/// `broken/<name>.<n>` when that name is taken.
fn quarantined(
    listener_dir: &Path,
    snapshot: &Snapshot,
    pending: &[String],
) -> Vec<(String, PathBuf)> {
    let broken_dir = listener_dir.join(BROKEN_DIR);
    let mut new: Vec<String> = names_in(&broken_dir)
        .difference(&snapshot.broken_before)
        .filter(|name| !name.ends_with(".error.txt"))
        .cloned()
        .collect();
    new.sort();
    let pending: HashSet<&str> = pending.iter().map(String::as_str).collect();
    let gone: HashSet<&str> = snapshot
        .listener_files
        .iter()
        .map(String::as_str)
        .filter(|name| !pending.contains(name))
        .collect();
    new.into_iter()
        .filter_map(|moved| {
            let original = match moved.rsplit_once('.') {
                Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
                _ => moved.as_str(),
            };
            let original = ListenerFileName::new(original)?;
            gone.contains(original.as_str())
                .then(|| (original.to_string(), broken_dir.join(&moved)))
        })
        .collect()
}

/// Names directly in `dir` (empty if it cannot be read, e.g. `broken/` does not exist yet).
fn names_in(dir: &Path) -> HashSet<String> {
    present_names(dir).unwrap_or_default()
}

fn present_names(dir: &Path) -> std::io::Result<HashSet<String>> {
    Ok(std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

#[derive(Debug, thiserror::Error)]
enum LockError {
    #[error("another trigger ({holder}) holds the lock")]
    Busy { holder: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive `flock` on `<data-dir>/run/trigger.lock`, held until dropped. The kernel
/// releases it when the process ends in any way, so a killed trigger never leaves it behind.
#[derive(Debug)]
struct TriggerLock {
    _lock: PidLock,
}

impl TriggerLock {
    /// Takes the lock, waiting for another holder until `deadline` (one attempt at least).
    async fn acquire(data_dir: &Path, deadline: Instant) -> Result<Self, LockError> {
        let path = data_dir.join(LOCK_FILE);
        loop {
            match PidLock::try_acquire(&path) {
                Ok(Some(lock)) => return Ok(Self { _lock: lock }),
                Ok(None) => {
                    let now = Instant::now();
                    if now >= deadline {
                        let holder = PidLock::holder(&path)
                            .map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"));
                        return Err(LockError::Busy { holder });
                    }
                    tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
                }
                Err(source) => return Err(LockError::Io { path, source }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), "{}").unwrap();
    }

    #[test]
    fn the_snapshot_sees_what_the_hosts_glob_sees_and_sorts_out_foreign_names() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "2025-01-01-00-00-00-000002.json",
            "2025-01-01-00-00-00-000001.json",
            "2025-01-01-00-00-00-000003.json.converting.tmp",
            "notes.json",
            ".hidden.json",
            "old.db",
        ] {
            touch(dir.path(), name);
        }
        std::fs::create_dir(dir.path().join("2025-01-01-00-00-00-000009.json")).unwrap();
        std::fs::create_dir(dir.path().join("old")).unwrap();

        let snapshot = Snapshot::take(dir.path()).unwrap();
        assert_eq!(
            snapshot.listener_files,
            [
                "2025-01-01-00-00-00-000001.json",
                "2025-01-01-00-00-00-000002.json"
            ]
        );
        assert_eq!(snapshot.foreign, ["notes.json"]);
    }

    #[test]
    fn a_file_counts_as_done_once_it_is_gone_and_a_foreign_file_is_never_done() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "2025-01-01-00-00-00-000001.json",
            "2025-01-01-00-00-00-000002.json",
            "meta.json",
        ] {
            touch(dir.path(), name);
        }
        let snapshot = Snapshot::take(dir.path()).unwrap();
        let mut progress = Progress::new(&snapshot);
        std::fs::remove_file(dir.path().join("2025-01-01-00-00-00-000001.json")).unwrap();
        // A file that appears after the start is not waited for.
        touch(dir.path(), "2025-01-01-00-00-00-000003.json");
        progress.update(&present_names(dir.path()).unwrap());
        assert_eq!(progress.pending, ["2025-01-01-00-00-00-000002.json"]);

        std::fs::remove_file(dir.path().join("2025-01-01-00-00-00-000002.json")).unwrap();
        progress.update(&present_names(dir.path()).unwrap());
        let report = progress.report(dir.path(), &snapshot, None);
        assert_eq!(report.verdict, Verdict::Blocked);
        assert_eq!(
            report.summary,
            "ox-connector trigger: applied 2, pending 1 of 3 listener files; blocked (see the \
             warnings)"
        );
        assert!(report.problems[0].contains("meta.json is not a listener file"));
    }

    #[test]
    fn a_quarantined_file_is_counted_apart_from_applied_ones() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join(BROKEN_DIR);
        std::fs::create_dir(&broken).unwrap();
        // Quarantined in an earlier run: not this run's doing.
        touch(&broken, "2024-01-01-00-00-00-000001.json");
        for n in 1..=3 {
            touch(dir.path(), &format!("2025-01-01-00-00-00-00000{n}.json"));
        }
        touch(&broken, "2025-01-01-00-00-00-000002.json");
        let snapshot = Snapshot::take(dir.path()).unwrap();
        let progress = Progress::new(&snapshot);
        for n in 1..=3 {
            let name = format!("2025-01-01-00-00-00-00000{n}.json");
            std::fs::remove_file(dir.path().join(&name)).unwrap();
        }
        // Moved under a numbered name because an older file of that name was there.
        touch(&broken, "2025-01-01-00-00-00-000002.json.1");
        touch(&broken, "2025-01-01-00-00-00-000002.json.1.error.txt");
        let mut progress = progress;
        progress.update(&present_names(dir.path()).unwrap());
        let report = progress.report(dir.path(), &snapshot, None);
        assert_eq!(report.verdict, Verdict::Done);
        assert_eq!(
            report.summary,
            "ox-connector trigger: applied 2, quarantined 1, pending 0 of 3 listener files; done"
        );
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].contains("broken/2025-01-01-00-00-00-000002.json.1"));
    }

    #[test]
    fn every_situation_has_its_own_exit_code() {
        let codes: HashSet<i32> = [
            Verdict::Done,
            Verdict::StillWorking,
            Verdict::Blocked,
            Verdict::NotRunning,
            Verdict::Misconfigured,
            Verdict::Busy,
        ]
        .into_iter()
        .map(Verdict::exit_code)
        .collect();
        assert_eq!(codes.len(), 6);
        assert!(codes.contains(&0));
        assert!(!codes.contains(&1) && !codes.contains(&2));
    }

    #[tokio::test]
    async fn the_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = TriggerLock::acquire(dir.path(), Instant::now())
            .await
            .unwrap();
        let err = TriggerLock::acquire(dir.path(), Instant::now() + Duration::from_millis(150))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, LockError::Busy { holder } if *holder == format!("pid {}", std::process::id())),
            "{err:?}"
        );
        drop(first);
        TriggerLock::acquire(dir.path(), Instant::now())
            .await
            .unwrap();
    }
}
