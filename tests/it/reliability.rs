//! The reliability suite: the real `ox-connector run` binary provisions a few thousand mixed
//! changes into the OX emulator while it is killed with SIGKILL at random points and restarted,
//! the nats-server is killed and restarted, and OX is down for a while and faults randomly.
//!
//! A daemon that exits by itself (it gives up when JetStream does not answer while it starts) is
//! started again, as the container's `--restart=always` does.
//!
//! Checked continuously: no listener file disappears before its change shows in OX (the
//! object's version in the emulator is at least the file's; an object that is absent is
//! accepted only if a later deletion of it had been written, since while that deletion is
//! applied the object is gone but its file still there), and no object's version ever goes
//! back (no change applied out of order). Checked at the end: no listener file is left, none
//! was quarantined, and the emulator's state equals the state computed from the changes.
//!
//! Beside it two probes of issue #16 with a daemon on its own (embedded) nats-server: the
//! nats-server SIGKILLed during a backlog (the queue must be exactly empty afterwards), and
//! second daemons started on the same data directory (they must exit at once and change
//! nothing).
//!
//! The short runs are part of `cargo nextest run`; the long ones (100 kills, …) are ignored
//! by default: `cargo nextest run --test it --run-ignored only reliability` (docs/performance.md).
//! `RELIABILITY_SEED=<n>` runs either with another seed (the changes and the chaos schedule);
//! `RELIABILITY_KEEP=<dir>` keeps the daemon's log, its status file, the nats-server's log and
//! the emulator's final state in `<dir>` after the run, passed or failed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ox_connector::emulator::{
    Emulator, EmulatorHandle, EmulatorSettings, Failure, FaultRule, FaultSettings,
    ADMIN_GUIDE_PROPERTIES,
};
use ox_connector::workload::{Change, ChangeKind, ObjectKind, Workload, WorkloadSettings};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::ox::{MASTER, MASTER_PASSWORD};
use crate::support::{files, TestEnv};

struct Run {
    changes: usize,
    kills: usize,
    nats_restarts: usize,
    ox_outages: usize,
    seed: u64,
}

#[tokio::test]
async fn kills_restarts_and_ox_faults_lose_nothing_and_keep_every_object_in_order() {
    chaos(Run {
        changes: 1500,
        kills: 20,
        nats_restarts: 3,
        ox_outages: 2,
        seed: 7,
    })
    .await;
}

#[tokio::test]
#[ignore = "long: about ten minutes; run with --run-ignored only"]
async fn reliability_long_a_hundred_kills() {
    chaos(Run {
        changes: 5000,
        kills: 100,
        nats_restarts: 10,
        ox_outages: 5,
        seed: 11,
    })
    .await;
}

/// Random OX faults while OX is "up": a few SOAP faults, 503s from a proxy and broken
/// connections.
fn flaky_ox() -> FaultSettings {
    FaultSettings {
        rules: vec![
            FaultRule {
                fraction: Some(0.02),
                ..FaultRule::default()
            },
            FaultRule {
                fraction: Some(0.01),
                fail: Failure::Http { status: 503 },
                ..FaultRule::default()
            },
            FaultRule {
                fraction: Some(0.01),
                fail: Failure::Reset,
                ..FaultRule::default()
            },
        ],
        ..FaultSettings::default()
    }
}

fn spawn_daemon(data: &Path, nats_url: &str, ox: &EmulatorHandle) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join("daemon.log"))
        .unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ox-connector"))
        .arg("run")
        .arg("--data-dir")
        .arg(data)
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--ack-wait", "1s", "--retry-delay", "200ms"])
        .args(["--rescan-interval", "500ms", "--batch-settle", "50ms"])
        .env("NATS_URL", nats_url)
        .env_remove("RUST_LOG")
        .env("OX_SOAP_SERVER", ox.base_url())
        .env("OX_MASTER_ADMIN", MASTER)
        .env("OX_MASTER_PASSWORD", MASTER_PASSWORD)
        .env("DOMAINNAME", "example.org")
        .env("OX_SOAP_TIMEOUT", "5s")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Starts the daemon again if it exited by itself, as the container's `--restart=always` does
/// (`appcenter/preinst`): the daemon gives up when JetStream does not answer in time while it
/// starts (the nats-server may be down or just restarting). Returns 1 if it had exited.
async fn restart_if_exited(
    daemon: &mut tokio::process::Child,
    spawn: impl Fn() -> tokio::process::Child,
) -> usize {
    match daemon.try_wait() {
        Ok(Some(status)) => {
            eprintln!("the daemon exited by itself ({status}); starting it again");
            tokio::time::sleep(Duration::from_millis(100)).await;
            *daemon = spawn();
            1
        }
        _ => 0,
    }
}

/// The highest version of each object the emulator shows (users and resources by name across
/// contexts, contexts by id).
fn versions(state: &ox_connector::emulator::StateSnapshot) -> BTreeMap<(ObjectKind, String), u64> {
    let version = |text: Option<&str>| {
        text.and_then(|t| t.strip_prefix('v'))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let mut out: BTreeMap<(ObjectKind, String), u64> = BTreeMap::new();
    for ctx in &state.contexts {
        let quota = ctx.data.max_quota.unwrap_or(0).max(0) as u64;
        out.insert((ObjectKind::Context, ctx.id.to_string()), quota);
        for user in &ctx.users {
            let v = version(user.data.room_number.as_deref());
            let entry = out
                .entry((ObjectKind::User, user.name.clone()))
                .or_default();
            *entry = (*entry).max(v);
        }
        for resource in &ctx.resources {
            let v = version(resource.description.as_deref());
            let name = resource.name.clone().unwrap_or_default();
            let entry = out.entry((ObjectKind::Resource, name)).or_default();
            *entry = (*entry).max(v);
        }
    }
    out
}

/// The incoming stream with the OX subscriber's dispatcher, and the OX subscriber's queue with
/// its consumer: messages and sequences of each stream, and per consumer (pending, ack pending,
/// waiting pulls, delivered, ack floor) as stream sequences.
async fn queue_report(js: &async_nats::jetstream::Context) -> String {
    use ox_connector::queue;
    let mut out = Vec::new();
    for (stream, consumer) in [
        (
            queue::STREAM.to_owned(),
            queue::dispatcher_consumer(queue::OX_SUBSCRIBER),
        ),
        (
            queue::subscriber_stream(queue::OX_SUBSCRIBER),
            queue::OX_SUBSCRIBER.to_owned(),
        ),
    ] {
        let report = match js.get_stream(&stream).await {
            Ok(mut s) => {
                let state = match s.info().await {
                    Ok(i) => format!(
                        "{} messages, sequences {}..={}",
                        i.state.messages, i.state.first_sequence, i.state.last_sequence
                    ),
                    Err(e) => e.to_string(),
                };
                let consumer = match s
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&consumer)
                    .await
                {
                    Ok(mut c) => match c.info().await {
                        Ok(i) => format!(
                            "{consumer} ({}, {}, {}, {}, {})",
                            i.num_pending,
                            i.num_ack_pending,
                            i.num_waiting,
                            i.delivered.stream_sequence,
                            i.ack_floor.stream_sequence
                        ),
                        Err(e) => format!("{consumer}: {e}"),
                    },
                    Err(e) => format!("{consumer}: {e}"),
                };
                format!("{state}, consumer {consumer}")
            }
            Err(e) => e.to_string(),
        };
        out.push(format!("{stream}: {report}"));
    }
    format!(
        "{} (consumers: pending, ack pending, waiting, delivered, ack floor)",
        out.join("; ")
    )
}

/// Watches the listener folder and the emulator while the run goes on.
struct Checker {
    dir: PathBuf,
    by_file: BTreeMap<String, Change>,
    /// Files the converter has written (appended to after each write).
    written: Arc<Mutex<Vec<String>>>,
    seen_written: usize,
    /// Written files not yet seen gone.
    pending: BTreeSet<String>,
    highest: BTreeMap<(ObjectKind, String), u64>,
    violations: Vec<String>,
    checked: usize,
}

impl Checker {
    /// Whether a later deletion of the object may have been applied when OX was read: its file
    /// was written by then. (The deletion's file is removed only after OX applied it, so while
    /// it is being applied the object is already gone but the file still there; such a change
    /// cannot be told apart from one that was never applied, and is accepted.)
    fn later_delete_applied(&self, change: &Change) -> bool {
        self.by_file
            .range(change.file.clone()..)
            .any(|(file, later)| {
                later.entry_uuid == change.entry_uuid
                    && later.kind == ChangeKind::Delete
                    && self.seen(file)
            })
    }

    /// Whether the converter wrote `file` already.
    fn seen(&self, file: &str) -> bool {
        self.written.lock().unwrap()[..self.seen_written]
            .iter()
            .any(|f| f == file)
    }

    fn look(&mut self, ox: &EmulatorHandle) {
        // Written before the listing, so a written file missing from the listing was removed.
        {
            let written = self.written.lock().unwrap();
            self.pending
                .extend(written[self.seen_written..].iter().cloned());
            self.seen_written = written.len();
        }
        let now: BTreeSet<String> = files::listener_files(&self.dir).into_iter().collect();
        let gone: Vec<String> = self.pending.difference(&now).cloned().collect();
        for file in &gone {
            self.pending.remove(file);
        }
        // Read OX after listing: a file gone before the listing was applied before it.
        let state = ox.state();
        // Listed again after reading OX: a later deletion whose file is gone by now was applied
        // before OX was read (else the object would still have been there).
        let after: BTreeSet<String> = files::listener_files(&self.dir).into_iter().collect();
        let versions = versions(&state);
        for ((kind, name), version) in &versions {
            let highest = self.highest.entry((*kind, name.clone())).or_default();
            if *version < *highest {
                self.violations.push(format!(
                    "{kind:?} {name}: version {version} seen after version {highest} (applied out of order)"
                ));
            }
            *highest = (*highest).max(*version);
        }
        for file in &gone {
            let Some(change) = self.by_file.get(file) else {
                continue;
            };
            self.checked += 1;
            let shown = versions.get(&(change.object, change.name.clone())).copied();
            let ok = match (change.object, change.kind) {
                (ObjectKind::Group, ChangeKind::Delete) => {
                    Workload::applied_version(change, &state).is_none()
                }
                (ObjectKind::Group, _) => true,
                (_, ChangeKind::Delete) => shown.is_none(),
                // Absent is fine if a later deletion of the object is gone (applied) too.
                _ => match shown {
                    Some(v) => v >= change.version,
                    None => self.later_delete_applied(change),
                },
            };
            if !ok {
                let history: Vec<String> = self
                    .by_file
                    .iter()
                    .filter(|(_, c)| c.entry_uuid == change.entry_uuid)
                    .map(|(f, c)| {
                        format!(
                            "{f} {:?} v{} {} in {}",
                            c.kind,
                            c.version,
                            if after.contains(f) { "queued" } else { "gone" },
                            c.content["object"]["oxContext"]
                        )
                    })
                    .collect();
                let contexts: Vec<i32> = state.contexts.iter().map(|c| c.id).collect();
                self.violations.push(format!(
                    "{file} ({:?} {:?} {} v{}) was deleted before its change was applied: OX shows {shown:?}; history: {history:?}; OX contexts: {contexts:?}",
                    change.object, change.kind, change.name, change.version
                ));
            }
        }
    }
}

/// At the end of a run (passed or failed), copies the daemon's log, its status, the
/// nats-server's log and the emulator's state to the folder named by `RELIABILITY_KEEP`, if set.
struct KeepOnFailure {
    data: PathBuf,
    nats_dir: PathBuf,
    ox: Arc<EmulatorHandle>,
}

impl Drop for KeepOnFailure {
    fn drop(&mut self) {
        let Some(keep) = std::env::var_os("RELIABILITY_KEEP") else {
            return;
        };
        let keep = PathBuf::from(keep);
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(self.data.join("daemon.log"), keep.join("daemon.log"));
        let _ = std::fs::copy(self.data.join("status.json"), keep.join("status.json"));
        let _ = std::fs::copy(
            self.nats_dir.join("nats-server.log"),
            keep.join("nats-server.log"),
        );
        if let Ok(json) = serde_json::to_vec_pretty(&self.ox.state()) {
            let _ = std::fs::write(keep.join("ox-state.json"), json);
        }
        eprintln!(
            "reliability: kept the daemon's log and OX's state in {}",
            keep.display()
        );
    }
}

async fn chaos(mut run: Run) {
    if let Some(seed) = std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run.seed = seed;
    }
    eprintln!("reliability: seed {}", run.seed);
    let started = Instant::now();
    let mut env = TestEnv::start().await;
    let ox = Arc::new(
        Emulator::start(
            EmulatorSettings::new(MASTER, MASTER_PASSWORD)
                .with_properties(&ADMIN_GUIDE_PROPERTIES)
                .expect("known properties"),
        )
        .await
        .unwrap(),
    );
    let _keep = KeepOnFailure {
        data: env.data.path().to_owned(),
        nats_dir: env.nats.dir().to_owned(),
        ox: ox.clone(),
    };
    ox.set_faults(flaky_ox());
    let workload = Workload::generate(WorkloadSettings {
        changes: run.changes,
        contexts: 4,
        seed: run.seed,
        // Whole member lists replaced too: they touch several contexts at once.
        group_replacements: 0.25,
    });
    let data = env.data.path().to_owned();
    let dir = env.listener_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = StdRng::seed_from_u64(run.seed);

    // The converter: batches of 1–40 files every 20 ms.
    let written = Arc::new(AtomicBool::new(false));
    let written_files = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (changes, dir, written) = (workload.changes.clone(), dir.clone(), written.clone());
        let written_files = written_files.clone();
        let mut rng = StdRng::seed_from_u64(run.seed + 1);
        tokio::spawn(async move {
            let mut rest = &changes[..];
            while !rest.is_empty() {
                let n = rng.random_range(1..=40).min(rest.len());
                for change in &rest[..n] {
                    ox_connector::listener::write::write(&dir, &change.file, &change.content)
                        .unwrap();
                    written_files.lock().unwrap().push(change.file.clone());
                }
                rest = &rest[n..];
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            written.store(true, Ordering::SeqCst);
        })
    };

    // The continuous checks.
    let stop_checking = Arc::new(AtomicBool::new(false));
    let checker = Arc::new(Mutex::new(Checker {
        dir: dir.clone(),
        by_file: workload
            .changes
            .iter()
            .map(|c| (c.file.clone(), c.clone()))
            .collect(),
        written: written_files.clone(),
        seen_written: 0,
        pending: BTreeSet::new(),
        highest: BTreeMap::new(),
        violations: Vec::new(),
        checked: 0,
    }));
    let checking = {
        let (checker, ox, stop) = (checker.clone(), ox.clone(), stop_checking.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                checker.lock().unwrap().look(&ox);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            checker.lock().unwrap().look(&ox);
        })
    };

    // The chaos: kills, nats-server restarts and OX outages in random order.
    let mut events: Vec<&str> = std::iter::repeat_n("kill", run.kills)
        .chain(std::iter::repeat_n("nats", run.nats_restarts))
        .chain(std::iter::repeat_n("ox", run.ox_outages))
        .collect();
    for i in (1..events.len()).rev() {
        events.swap(i, rng.random_range(0..=i));
    }
    let nats_url = env.nats.url().to_owned();
    let spawn = || spawn_daemon(&data, &nats_url, &ox);
    let mut daemon = spawn();
    let (mut kills, mut exits) = (0, 0);
    for event in events {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..700))).await;
        exits += restart_if_exited(&mut daemon, spawn).await;
        match event {
            "kill" => {
                daemon.kill().await.unwrap();
                kills += 1;
                daemon = spawn();
            }
            "nats" => {
                env.nats.kill().await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..800))).await;
                env.nats.restart(None).await.unwrap();
            }
            _ => {
                ox.set_faults(FaultSettings {
                    down: Some(Failure::Http { status: 503 }),
                    ..FaultSettings::default()
                });
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
                ox.set_faults(flaky_ox());
            }
        }
    }
    writer.await.unwrap();
    assert!(written.load(Ordering::SeqCst));
    let chaos_done = started.elapsed();

    // Calm: everything must drain.
    ox.set_faults(FaultSettings::default());
    // Slow is fine (a loaded machine, the whole suite in parallel); stuck is not: fail when no
    // file has been applied for a minute, or after five minutes in all.
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut left, mut progress) = (usize::MAX, Instant::now());
    let mut report = Instant::now();
    let js = env.jetstream().await;
    while !files::listener_files(&dir).is_empty() {
        if report.elapsed() > Duration::from_secs(5) {
            report = Instant::now();
            eprintln!(
                "{:?}: {} listener files left; {}; status: {}",
                started.elapsed(),
                files::listener_files(&dir).len(),
                queue_report(&js).await,
                std::fs::read_to_string(data.join("status.json")).unwrap_or_default()
            );
        }
        let now_left = files::listener_files(&dir).len();
        if now_left < left {
            (left, progress) = (now_left, Instant::now());
        }
        if Instant::now() > deadline || progress.elapsed() > Duration::from_secs(60) {
            let status = std::fs::read_to_string(data.join("status.json")).unwrap_or_default();
            let log = std::fs::read_to_string(data.join("daemon.log")).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .take(30)
                .collect();
            panic!(
                "{} listener files left; status: {status}\nlog (last lines, newest first):\n{}",
                files::listener_files(&dir).len(),
                tail.join("\n")
            );
        }
        exits += restart_if_exited(&mut daemon, spawn).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_checking.store(true, Ordering::SeqCst);
    checking.await.unwrap();
    let pid = nix::unistd::Pid::from_raw(daemon.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .expect("the daemon stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");

    let checker = checker.lock().unwrap();
    eprintln!(
        "reliability: {} changes, {kills} kills, {} nats restarts, {} OX outages, {exits} exits in start-up; chaos {:?}, total {:?}; {} deletions checked",
        run.changes,
        run.nats_restarts,
        run.ox_outages,
        chaos_done,
        started.elapsed(),
        checker.checked
    );
    assert!(
        checker.violations.is_empty(),
        "{} violations, first: {:#?}",
        checker.violations.len(),
        &checker.violations[..checker.violations.len().min(10)]
    );
    assert_eq!(
        checker.checked, run.changes,
        "the checker did not see every file deletion"
    );
    let broken = dir.join("broken");
    assert!(
        !broken.exists() || std::fs::read_dir(&broken).unwrap().next().is_none(),
        "files were quarantined"
    );
    let diff = workload.expected.diff(&ox.state());
    assert!(
        diff.is_empty(),
        "the OX state differs from the expected state in {} places: {:#?}",
        diff.len(),
        &diff[..diff.len().min(20)]
    );
}

/// A daemon of its own nats-server (embedded) on a temp data dir, with a recording applier.
async fn embedded_daemon(
    env: &TestEnv,
    applier: &crate::support::RecordingApplier,
) -> (
    ox_connector::app::Daemon,
    tokio_util::sync::CancellationToken,
) {
    let token = tokio_util::sync::CancellationToken::new();
    let daemon = embedded_daemon_result(env, applier, token.clone())
        .await
        .expect("the daemon starts");
    (daemon, token)
}

/// Every change applied, the first time while its file was still there.
fn assert_all_applied_once_with_their_files(
    applier: &crate::support::RecordingApplier,
    changes: u32,
) -> usize {
    let mut first = BTreeSet::new();
    let mut again = 0;
    for call in applier.calls().into_iter().filter(|c| c.succeeded) {
        if !first.insert(call.file.clone()) {
            again += 1;
            continue;
        }
        assert!(
            call.file_existed,
            "{} was deleted before it was applied",
            call.file
        );
    }
    let expected: BTreeSet<String> = (1..=changes).map(files::name).collect();
    assert_eq!(first, expected, "every change applied");
    again
}

/// Waits until the daemon's admin API reports an empty JetStream queue (what `queue status`
/// shows as "N on the JetStream queue").
async fn wait_for_an_empty_queue(data: &Path) {
    let client =
        ox_connector::admin::client::AdminClient::from_data_dir(data, Duration::from_secs(10))
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = client
            .get_json::<ox_connector::ops::queue::QueueList>("/queue?limit=5")
            .await;
        match list {
            Ok(list) if list.queued_messages == 0 => return,
            other => assert!(
                Instant::now() < deadline,
                "the JetStream queue stays non-empty after every file was applied: {:?}",
                other.map(|l| l.queued_messages)
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct NatsKills {
    changes: u32,
    kills: usize,
    seed: u64,
}

#[tokio::test]
async fn the_embedded_nats_server_killed_during_a_backlog_leaves_an_exact_queue() {
    nats_kills(NatsKills {
        changes: 600,
        kills: 3,
        seed: 5,
    })
    .await;
}

#[tokio::test]
#[ignore = "long: a few minutes; run with --run-ignored only"]
async fn reliability_long_the_embedded_nats_server_killed_again_and_again() {
    nats_kills(NatsKills {
        changes: 4000,
        kills: 20,
        seed: 13,
    })
    .await;
}

/// Issue #16, item 3: SIGKILL of the embedded nats-server (which the daemon restarts) during a
/// backlog. Afterwards no message may stay on the queue below its consumer's ack floor: the
/// queue is exactly empty once every file is applied.
async fn nats_kills(run: NatsKills) {
    use nix::sys::signal::{kill, Signal};
    let env = TestEnv::start().await;
    let data = env.data.path().to_owned();
    let applier = crate::support::RecordingApplier::new(env.listener_dir());
    let (daemon, token) = embedded_daemon(&env, &applier).await;
    let dir = env.listener_dir();
    let mut rng = StdRng::seed_from_u64(run.seed);
    let writer = tokio::spawn({
        let dir = dir.clone();
        async move {
            for start in (1..=run.changes).step_by(40) {
                files::write_users(&dir, start..(start + 40).min(run.changes + 1));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let pid_file = data.join("nats/nats-server.pid");
    let read_pid =
        || -> Option<i32> { std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok() };
    for k in 0..run.kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..900))).await;
        let pid = read_pid().expect("the embedded nats-server's pid");
        kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        // The daemon starts it again (a new pid).
        let deadline = Instant::now() + Duration::from_secs(30);
        while read_pid().is_none_or(|p| p == pid) {
            assert!(
                Instant::now() < deadline,
                "kill {k}: nats-server not restarted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    writer.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    while !files::listener_files(&dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} listener files left",
            files::listener_files(&dir).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_an_empty_queue(&data).await;
    token.cancel();
    daemon.wait().await.expect("the daemon stops");
    let again = assert_all_applied_once_with_their_files(&applier, run.changes);
    eprintln!(
        "reliability: {} changes, nats-server SIGKILLed {} times, {again} applied again, queue empty",
        run.changes, run.kills
    );
}

struct SecondDaemons {
    changes: u32,
    attempts: usize,
    seed: u64,
}

#[tokio::test]
async fn a_second_daemon_on_the_same_data_dir_exits_at_once_and_touches_nothing() {
    second_daemons(SecondDaemons {
        changes: 400,
        attempts: 4,
        seed: 3,
    })
    .await;
}

#[tokio::test]
#[ignore = "long: a few minutes; run with --run-ignored only"]
async fn reliability_long_second_daemons_at_random_moments() {
    second_daemons(SecondDaemons {
        changes: 3000,
        attempts: 30,
        seed: 17,
    })
    .await;
}

/// Issue #16, item 1: second daemons started on the data directory of a running one at random
/// moments of a backlog — in this process and as the real binary — exit at once naming the
/// running one's pid, and change nothing: the running daemon's nats-server and admin endpoint
/// stay, nothing is applied twice.
async fn second_daemons(run: SecondDaemons) {
    let env = TestEnv::start().await;
    let data = env.data.path().to_owned();
    let applier = crate::support::RecordingApplier::new(env.listener_dir());
    let (daemon, token) = embedded_daemon(&env, &applier).await;
    crate::support::cli::wait_for_api(&data).await;
    let endpoint = std::fs::read(data.join("run/admin.json")).unwrap();
    let nats_pid = std::fs::read_to_string(data.join("nats/nats-server.pid")).unwrap();
    let dir = env.listener_dir();
    let mut rng = StdRng::seed_from_u64(run.seed);
    let writer = tokio::spawn({
        let dir = dir.clone();
        async move {
            for start in (1..=run.changes).step_by(40) {
                files::write_users(&dir, start..(start + 40).min(run.changes + 1));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let me = format!("(pid {})", std::process::id());
    for attempt in 0..run.attempts {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
        if attempt % 2 == 0 {
            let second = crate::support::RecordingApplier::new(env.listener_dir());
            let started = Instant::now();
            let stop = tokio_util::sync::CancellationToken::new();
            let err = match embedded_daemon_result(&env, &second, stop).await {
                Ok(_) => panic!("a second daemon started on one data directory"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(&me), "{err}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "took {:?}",
                started.elapsed()
            );
            assert!(second.calls().is_empty());
        } else {
            let output = tokio::time::timeout(
                Duration::from_secs(10),
                tokio::process::Command::new(env!("CARGO_BIN_EXE_ox-connector"))
                    .arg("run")
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["--admin-listen", "127.0.0.1:0"])
                    .env_remove("NATS_URL")
                    .env("OX_SOAP_SERVER", "http://127.0.0.1:9")
                    .output(),
            )
            .await
            .expect("the second daemon exits at once")
            .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success());
            assert!(stderr.contains(&me), "{stderr}");
        }
        assert_eq!(
            std::fs::read(data.join("run/admin.json")).unwrap(),
            endpoint
        );
        assert_eq!(
            std::fs::read_to_string(data.join("nats/nats-server.pid")).unwrap(),
            nats_pid,
            "the running daemon's nats-server was left alone"
        );
    }
    writer.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    while !files::listener_files(&dir).is_empty() {
        assert!(Instant::now() < deadline, "files left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_an_empty_queue(&data).await;
    token.cancel();
    daemon.wait().await.expect("the daemon stops");
    let again = assert_all_applied_once_with_their_files(&applier, run.changes);
    assert_eq!(again, 0, "nothing applied twice");
}

async fn embedded_daemon_result(
    env: &TestEnv,
    applier: &crate::support::RecordingApplier,
    token: tokio_util::sync::CancellationToken,
) -> Result<ox_connector::app::Daemon, ox_connector::app::AppError> {
    let mut settings = env.settings.clone();
    settings.nats = ox_connector::config::NatsTarget::Embedded(
        ox_connector::queue::embedded::EmbeddedSettings {
            binary: None,
            dir: env.data.path().join("nats"),
            port: 0,
            users: None,
        },
    );
    ox_connector::app::Daemon::start(settings, applier.clone(), token).await
}
