//! The pipeline benchmarks: `cargo bench --bench pipeline` runs them all, prints one table per
//! benchmark and writes `target/bench-results.json`. Figures and how to read them:
//! `docs/performance.md`.
//!
//! - `ingest`: N listener files already in the folder → published and acknowledged on
//!   JetStream by the real `ox-connector run` binary with its embedded nats-server (OX is down,
//!   so nothing is applied); files/s and the daemon's peak RSS.
//! - `e2e`: a mixed stream of changes (contexts, users, groups, resources; creates, modifies,
//!   moves, deletes) applied against the in-process OX emulator at 0 ms and 5 ms latency, each
//!   once with `--apply-concurrency 1` (one change after the other) and once with the default
//!   (independent OX contexts at the same time); objects/s, p50/p99 apply latency, SOAP calls
//!   per change (the emulator's totals; by change type only in the run with concurrency 1,
//!   where the emulator's counters before and after each apply belong to that change), the
//!   share of the sequential limit (1000 / latency: one round trip after the other), the most
//!   changes in flight, stalls, the state store's size, and whether the emulator's final state
//!   is the expected one.
//! - `idle`: RSS and CPU of the idle daemon binary and of its nats-server.
//! - `growth`: ingest and end to end (default concurrency) at 1k, 10k and 100k changes.
//! - `oop`: out of process, as an admin runs it (`pipeline/out_of_process.rs`): the daemon binary with
//!   its embedded nats-server and the emulator binary as another process, files already in the
//!   folder, time until the folder is empty; one context with 2,000 user creates and 1,000 mixed
//!   changes at 5 ms (one by one and concurrent), 50 ms and 0 ms, with 8 emulator workers at
//!   20 ms (the adaptive limit over time), with overload faults; 10 contexts × 500 creates.
//!
//! Arguments (after `--`): any of `ingest e2e idle growth oop` to choose (default: all), `--quick`
//! for small sizes (a smoke run), `--skip-0ms` / `--skip-5ms` to leave out one
//! latency of `e2e`, `--concurrency N` for the concurrency compared with 1 and used by `growth`
//! (default: 16, the daemon's default), `--sizes 100000` (comma-separated) for the sizes of
//! `growth` (and the one of `ingest`: the last).
//!
//! `RUST_LOG` (e.g. `RUST_LOG=info`) prints the log of the in-process daemon (`e2e`, `growth`)
//! to stderr.
//!
//! The daemon's nats-server requires authentication: the benchmark's own connections use the
//! daemon's service identity from `<data-dir>/secrets/nats-users.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use ox_connector::app::Daemon;
use ox_connector::apply::{Applier, ApplyError, Outcome, Scope};
use ox_connector::cli::OxArgs;
use ox_connector::config::{RawSettings, Settings};
use ox_connector::dispatch::identity::{self, Identity, Role};
use ox_connector::emulator::{
    Emulator, EmulatorHandle, EmulatorSettings, Failure, FaultSettings, ADMIN_GUIDE_PROPERTIES,
};
use ox_connector::message::ProvisioningMessage;
use ox_connector::provision::OxApplier;
use ox_connector::workload::{ChangeKind, ObjectKind, Workload, WorkloadSettings};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The daemon's allocator (`src/main.rs`), so that the in-process daemon runs as shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MASTER: &str = "oxadminmaster";
const MASTER_PASSWORD: &str = "bench-Master-Pw1";
const DAEMON: &str = env!("CARGO_BIN_EXE_ox-connector");
/// The default of `--apply-concurrency`.
const DEFAULT_CONCURRENCY: usize = 16;

#[path = "pipeline/out_of_process.rs"]
mod out_of_process;

#[tokio::main]
async fn main() {
    // The in-process daemon's log (e2e, growth), only when asked for.
    if std::env::var_os("RUST_LOG").is_some() {
        ox_connector::telemetry::init(ox_connector::telemetry::LogFormat::Human, "warn");
    }
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let concurrency = take_value(&mut args, "--concurrency")
        .map(|v| match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => panic!("--concurrency takes a number of at least 1, not {v:?}"),
        })
        .unwrap_or(DEFAULT_CONCURRENCY);
    let chosen_sizes: Option<Vec<usize>> = take_value(&mut args, "--sizes").map(|v| {
        v.split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("--sizes takes numbers, e.g. 100000")
            })
            .collect()
    });
    let quick = args.iter().any(|a| a == "--quick");
    let chosen: BTreeSet<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| chosen.is_empty() || chosen.contains(name);
    let sizes: &[usize] = match &chosen_sizes {
        Some(sizes) => sizes,
        None if quick => &[1_000, 5_000],
        None => &[1_000, 10_000, 100_000],
    };
    let e2e_size = if quick { 2_000 } else { 10_000 };

    let mut results = serde_json::Map::new();
    results.insert("machine".into(), machine());
    results.insert("quick".into(), json!(quick));
    eprintln!("machine: {}", results["machine"]);

    if run("idle") {
        let idle = idle(if quick { 5 } else { 15 }).await;
        print_table(
            "Idle daemon (after start-up has settled)",
            &["process", "RSS MiB", "CPU %"],
            &[
                vec![
                    "ox-connector".into(),
                    format!("{:.1}", idle["daemon_rss_mib"].as_f64().unwrap_or(0.0)),
                    format!("{:.2}", idle["daemon_cpu_percent"].as_f64().unwrap_or(0.0)),
                ],
                vec![
                    "nats-server".into(),
                    format!("{:.1}", idle["nats_rss_mib"].as_f64().unwrap_or(0.0)),
                    format!("{:.2}", idle["nats_cpu_percent"].as_f64().unwrap_or(0.0)),
                ],
            ],
        );
        results.insert("idle".into(), idle);
    }

    if run("ingest") || run("growth") {
        let wanted: Vec<usize> = if run("growth") {
            sizes.to_vec()
        } else {
            vec![*sizes.last().unwrap_or(&100_000)]
        };
        let mut rows = Vec::new();
        let mut all = Vec::new();
        for &n in &wanted {
            let result = ingest(n).await;
            rows.push(vec![
                n.to_string(),
                format!("{:.0}", result["files_per_s"].as_f64().unwrap_or(0.0)),
                format!(
                    "{:.0}",
                    result["files_per_s_after_start"].as_f64().unwrap_or(0.0)
                ),
                format!("{:.1}", result["us_per_file"].as_f64().unwrap_or(0.0)),
                format!(
                    "{:.0}",
                    result["files_per_s_to_ox_queue"].as_f64().unwrap_or(0.0)
                ),
                format!(
                    "{:.1}",
                    result["daemon_peak_rss_mib"].as_f64().unwrap_or(0.0)
                ),
                format!("{:.1}", result["nats_peak_rss_mib"].as_f64().unwrap_or(0.0)),
            ]);
            all.push(result);
        }
        print_table(
            "Ingest: files already in the folder → stored on JetStream (and in the OX queue)",
            &[
                "files",
                "files/s",
                "files/s after start",
                "µs/file",
                "files/s to the OX queue",
                "daemon peak RSS MiB",
                "nats peak RSS MiB",
            ],
            &rows,
        );
        results.insert("ingest".into(), Value::Array(all));
    }

    if run("e2e") || run("growth") {
        // (changes, latency ms, concurrency)
        let mut runs: Vec<(usize, u64, usize)> = Vec::new();
        if run("e2e") {
            for latency in [0, 5] {
                if !args.iter().any(|a| a == &format!("--skip-{latency}ms")) {
                    runs.push((e2e_size, latency, 1));
                    runs.push((e2e_size, latency, concurrency));
                }
            }
        }
        if run("growth") {
            for &n in sizes {
                runs.push((n, 0, concurrency));
            }
        }
        runs.sort();
        runs.dedup();
        let mut rows = Vec::new();
        let mut all = Vec::new();
        for (n, latency, concurrency) in runs {
            let result = end_to_end(n, latency, concurrency).await;
            let share = result["share_of_sequential_limit"]
                .as_f64()
                .map_or("-".to_owned(), |s| format!("{:.0} %", s * 100.0));
            rows.push(vec![
                n.to_string(),
                latency.to_string(),
                concurrency.to_string(),
                format!("{:.0}", result["objects_per_s"].as_f64().unwrap_or(0.0)),
                format!("{:.2}", result["start_up_s"].as_f64().unwrap_or(0.0)),
                format!(
                    "{:.0}",
                    result["objects_per_s_after_start_up"]
                        .as_f64()
                        .unwrap_or(0.0)
                ),
                format!("{:.2}", result["apply_ms_p50"].as_f64().unwrap_or(0.0)),
                format!("{:.2}", result["apply_ms_p99"].as_f64().unwrap_or(0.0)),
                format!(
                    "{:.2}",
                    result["soap_calls_per_change"].as_f64().unwrap_or(0.0)
                ),
                share,
                result["concurrent_contexts"]["max_changes_in_flight"].to_string(),
                result["stalls_over_1s"]
                    .as_array()
                    .map_or(0, Vec::len)
                    .to_string(),
                format!(
                    "{:.1}",
                    result["state_store_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0
                ),
                result["state_matches"].to_string(),
                result["files_left"].to_string(),
            ]);
            print_calls(&result);
            all.push(result);
        }
        print_table(
            "End to end: mixed changes in the folder → applied to the OX emulator",
            &[
                "changes",
                "OX latency ms",
                "concurrency",
                "objects/s",
                "start-up s",
                "objects/s after start-up",
                "apply p50 ms",
                "apply p99 ms",
                "SOAP calls/change",
                "of sequential limit",
                "max in flight",
                "stalls > 1 s",
                "state store MiB",
                "state as expected",
                "files left",
            ],
            &rows,
        );
        results.insert("end_to_end".into(), Value::Array(all));
    }

    if run("oop") {
        let mut rows = Vec::new();
        let mut all = Vec::new();
        for scenario in out_of_process::scenarios(quick, concurrency) {
            let result = out_of_process::run(&scenario).await;
            let number = |key: &str, digits: usize| {
                result[key]
                    .as_f64()
                    .map_or("-".to_owned(), |v| format!("{v:.digits$}"))
            };
            let limits = result["limit_over_time"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|s| s[1].as_u64())
                        .map(|l| l.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            rows.push(vec![
                scenario.name.to_owned(),
                result["changes"].to_string(),
                scenario.concurrency.to_string(),
                number("seconds_until_empty", 1),
                number("objects_per_s", 0),
                number("sequential_limit_per_s", 0),
                number("soap_calls_per_change", 2),
                number("faults_per_change", 3),
                result["files_left"].to_string(),
                limits,
            ]);
            all.push(result);
        }
        print_table(
            "Out of process: daemon and emulator binaries, files in the folder → folder empty",
            &[
                "scenario",
                "changes",
                "--apply-concurrency",
                "s",
                "objects/s",
                "sequential limit/s",
                "SOAP calls/change",
                "faults/change",
                "files left",
                "limit each second",
            ],
            &rows,
        );
        results.insert("out_of_process".into(), Value::Array(all));
    }

    let out = target_dir().join("bench-results.json");
    let text = serde_json::to_string_pretty(&Value::Object(results)).unwrap_or_default();
    match std::fs::write(&out, text) {
        Ok(()) => println!("\nwrote {}", out.display()),
        Err(e) => eprintln!("cannot write {}: {e}", out.display()),
    }
}

/// Removes `name VALUE` or `name=VALUE` from `args` and returns the value.
fn take_value(args: &mut Vec<String>, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    if let Some(i) = args.iter().position(|a| a.starts_with(&prefix)) {
        return Some(args.remove(i)[prefix.len()..].to_owned());
    }
    let i = args.iter().position(|a| a == name)?;
    args.remove(i);
    if i < args.len() {
        Some(args.remove(i))
    } else {
        panic!("{name} needs a value");
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

// ---------------------------------------------------------------------------------------------
// Ingest and idle: the daemon binary as a child process.

/// A running `ox-connector run` child process.
struct Child {
    child: tokio::process::Child,
    data: PathBuf,
    nats_port: u16,
}

impl Child {
    async fn spawn(data: &Path, ox: &EmulatorHandle) -> Child {
        let nats_port = free_port();
        let log = std::fs::File::create(data.join("daemon.log")).expect("log file");
        let child = tokio::process::Command::new(DAEMON)
            .arg("run")
            .arg("--data-dir")
            .arg(data)
            .args(["--nats-port", &nats_port.to_string()])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--queue-max-messages", "10000000"])
            .args(["--queue-max-bytes", "20000000000"])
            .env_remove("NATS_URL")
            .env_remove("RUST_LOG")
            .env("OX_SOAP_SERVER", ox.base_url())
            .env("OX_MASTER_ADMIN", MASTER)
            .env("OX_MASTER_PASSWORD", MASTER_PASSWORD)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the daemon binary starts");
        Child {
            child,
            data: data.to_owned(),
            nats_port,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    fn nats_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("nats/nats-server.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    async fn jetstream(&self) -> jetstream::Context {
        let url = format!("nats://127.0.0.1:{}", self.nats_port);
        jetstream::new(service_client(&self.data, &url).await)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

async fn emulator(latency_ms: u64) -> EmulatorHandle {
    let ox = Emulator::start(
        EmulatorSettings::new(MASTER, MASTER_PASSWORD)
            .with_properties(&ADMIN_GUIDE_PROPERTIES)
            .expect("known properties"),
    )
    .await
    .expect("the emulator starts");
    ox.set_faults(FaultSettings {
        latency_ms,
        ..FaultSettings::default()
    });
    ox
}

async fn ingest(n: usize) -> Value {
    let data = tempfile::tempdir().expect("temp dir");
    let workload = Workload::generate(WorkloadSettings::new(n));
    let written = Instant::now();
    workload
        .write_all(&data.path().join("listener"))
        .expect("write listener files");
    eprintln!("ingest {n}: wrote the files in {:?}", written.elapsed());
    let ox = emulator(0).await;
    // OX is down: the first change blocks, so this measures publishing alone.
    ox.set_faults(FaultSettings {
        down: Some(Failure::Http { status: 503 }),
        ..FaultSettings::default()
    });

    let started = Instant::now();
    let child = Child::spawn(data.path(), &ox).await;
    let js = child.jetstream().await;
    let ox_queue = ox_connector::queue::subscriber_stream(ox_connector::queue::OX_SUBSCRIBER);
    let (mut first, mut all_stored, mut all_queued) = (None, None, None);
    let deadline = started + Duration::from_secs(1200);
    let (stored, queued) = loop {
        // The incoming stream keeps a message only until the dispatchers and the state keeper
        // have taken it (interest retention): its last sequence counts what was stored.
        let stored = match js.get_stream(ox_connector::queue::STREAM).await {
            Ok(mut stream) => stream
                .info()
                .await
                .map(|i| i.state.last_sequence)
                .unwrap_or(0),
            Err(_) => 0,
        };
        // The OX subscriber's queue keeps them all: OX is down.
        let queued = match js.get_stream(&ox_queue).await {
            Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        let now = started.elapsed();
        if stored > 0 && first.is_none() {
            first = Some(now);
        }
        if stored >= n as u64 && all_stored.is_none() {
            all_stored = Some(now);
        }
        if queued >= n as u64 && all_queued.is_none() {
            all_queued = Some(now);
        }
        // Once all are stored, give the dispatcher up to two minutes to catch up.
        let waited_for_dispatch = all_stored.is_some_and(|t| now > t + Duration::from_secs(120));
        if (all_stored.is_some() && all_queued.is_some())
            || waited_for_dispatch
            || Instant::now() > deadline
        {
            break (stored, queued);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let total = all_stored.unwrap_or_else(|| started.elapsed());
    let daemon_peak = proc_kib(child.pid(), "VmHWM") as f64 / 1024.0;
    let nats_peak = child
        .nats_pid()
        .map(|p| proc_kib(p, "VmHWM") as f64 / 1024.0)
        .unwrap_or(0.0);
    // CPU time per file: a measure of the cost that other work on the machine disturbs less
    // than the rate (it includes what the processes did after the last file, until now).
    let ticks = clock_ticks_per_second();
    let daemon_cpu_s = cpu_ticks(child.pid()) as f64 / ticks;
    let nats_cpu_s = child
        .nats_pid()
        .map_or(0.0, |p| cpu_ticks(p) as f64 / ticks);
    let store_bytes = dir_size(&data.path().join("nats"));
    child.stop().await;
    ox.stop().await;
    let after_start = total.saturating_sub(first.unwrap_or_default());
    let result = json!({
        "files": n,
        "stored": stored,
        "queued_for_ox": queued,
        "seconds": total.as_secs_f64(),
        "first_stored_after_s": first.unwrap_or_default().as_secs_f64(),
        "all_queued_for_ox_after_s": all_queued.map(|t| t.as_secs_f64()),
        "files_per_s": n as f64 / total.as_secs_f64(),
        "files_per_s_to_ox_queue": all_queued.map(|t| n as f64 / t.as_secs_f64()),
        "files_per_s_after_start": n as f64 / after_start.as_secs_f64().max(1e-9),
        "us_per_file": total.as_secs_f64() * 1e6 / n as f64,
        "daemon_peak_rss_mib": daemon_peak,
        "nats_peak_rss_mib": nats_peak,
        "daemon_cpu_us_per_file": daemon_cpu_s * 1e6 / n as f64,
        "nats_cpu_us_per_file": nats_cpu_s * 1e6 / n as f64,
        "jetstream_store_bytes": store_bytes,
    });
    eprintln!("ingest {n}: {result}");
    assert_eq!(stored, n as u64, "not every file was queued");
    assert_eq!(
        queued, n as u64,
        "not every file reached the OX subscriber's queue"
    );
    result
}

async fn idle(seconds: u64) -> Value {
    let data = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(data.path().join("listener")).expect("listener dir");
    let ox = emulator(0).await;
    let child = Child::spawn(data.path(), &ox).await;
    let _js = child.jetstream().await;
    // Let start-up (stream, consumer, buckets) finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = child.pid();
    let nats = child.nats_pid().unwrap_or(0);
    let (d0, n0, t0) = (cpu_ticks(pid), cpu_ticks(nats), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (d1, n1, elapsed) = (cpu_ticks(pid), cpu_ticks(nats), t0.elapsed());
    let hz = clock_ticks_per_second();
    let percent =
        |a: u64, b: u64| (b.saturating_sub(a)) as f64 / hz / elapsed.as_secs_f64() * 100.0;
    let result = json!({
        "seconds": elapsed.as_secs_f64(),
        "daemon_rss_mib": proc_kib(pid, "VmRSS") as f64 / 1024.0,
        "daemon_cpu_percent": percent(d0, d1),
        "daemon_threads": proc_kib(pid, "Threads"),
        "nats_rss_mib": proc_kib(nats, "VmRSS") as f64 / 1024.0,
        "nats_cpu_percent": percent(n0, n1),
    });
    child.stop().await;
    ox.stop().await;
    eprintln!("idle: {result}");
    result
}

// ---------------------------------------------------------------------------------------------
// End to end: the daemon in-process (embedded nats-server), each apply timed.

/// One applied change.
struct Record {
    file: String,
    started: Instant,
    finished: Instant,
    /// The SOAP calls it made, when changes are applied one at a time (see [`Timed`]).
    calls: Option<BTreeMap<String, u64>>,
}

impl Record {
    fn elapsed(&self) -> Duration {
        self.finished.duration_since(self.started)
    }
}

/// The changes being applied at one moment, and the most seen at once.
#[derive(Default)]
struct InFlight {
    now: usize,
    max: usize,
    /// How many applies found this many in flight (themselves included) when they started.
    at_start: BTreeMap<usize, u64>,
    /// The OX contexts of the users and resources being applied, with their counts.
    contexts: BTreeMap<i64, usize>,
    max_contexts: usize,
}

impl InFlight {
    fn start(&mut self, context: Option<i64>) {
        self.now += 1;
        self.max = self.max.max(self.now);
        *self.at_start.entry(self.now).or_default() += 1;
        if let Some(context) = context {
            *self.contexts.entry(context).or_default() += 1;
            self.max_contexts = self.max_contexts.max(self.contexts.len());
        }
    }

    fn end(&mut self, context: Option<i64>) {
        self.now -= 1;
        if let Some(context) = context {
            if let Some(n) = self.contexts.get_mut(&context) {
                *n -= 1;
                if *n == 0 {
                    self.contexts.remove(&context);
                }
            }
        }
    }
}

/// What the timed applier saw.
#[derive(Default)]
struct Observed {
    records: Vec<Record>,
    in_flight: InFlight,
    /// How long each [`Applier::scope`] took (only asked with a concurrency above 1).
    scopes: Vec<Duration>,
    /// Failed attempts (file, error); the queue retries them after the retry delay.
    errors: Vec<(String, String)>,
}

/// The OX applier, timed, with the changes in flight. With `count_calls` (concurrency 1) also
/// the SOAP calls each change made: the emulator's counters before and after the apply, which
/// belong to that change only when nothing else is applied at the same time.
#[derive(Clone)]
struct Timed {
    inner: OxApplier,
    ox: Arc<EmulatorHandle>,
    count_calls: bool,
    observed: Arc<Mutex<Observed>>,
}

impl Timed {
    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn counters(ox: &EmulatorHandle) -> BTreeMap<String, u64> {
    ox.calls().into_iter().map(|(k, v)| (k, v.calls)).collect()
}

/// The OX context a user or resource change goes to (or leaves, for a delete).
fn context_of(message: &ProvisioningMessage) -> Option<i64> {
    let body = &message.body;
    body.new
        .as_ref()
        .or(body.old.as_ref())
        .and_then(|o| ox_connector::provision::udm::integer(o, "oxContext"))
}

impl Applier for Timed {
    async fn apply(&self, message: &ProvisioningMessage) -> Result<Outcome, ApplyError> {
        let context = context_of(message);
        self.observed().in_flight.start(context);
        let before = self.count_calls.then(|| counters(&self.ox));
        let started = Instant::now();
        let result = self.inner.apply(message).await;
        let finished = Instant::now();
        let calls = before.map(|before| {
            counters(&self.ox)
                .into_iter()
                .filter_map(|(op, n)| {
                    let delta = n - before.get(&op).copied().unwrap_or(0);
                    (delta > 0).then_some((op, delta))
                })
                .collect()
        });
        let file = message.source_file().unwrap_or_default().to_owned();
        let mut observed = self.observed();
        observed.in_flight.end(context);
        match &result {
            Ok(_) => observed.records.push(Record {
                file,
                started,
                finished,
                calls,
            }),
            Err(e) => observed.errors.push((file, e.message.clone())),
        }
        result
    }

    async fn scope(&self, message: &ProvisioningMessage) -> Scope {
        let started = Instant::now();
        let scope = self.inner.scope(message).await;
        self.observed().scopes.push(started.elapsed());
        scope
    }
}

fn bench_settings(
    data: &Path,
    ox: &EmulatorHandle,
    nats_port: u16,
    apply_concurrency: usize,
) -> Settings {
    Settings::from_raw(RawSettings {
        data_dir: data.to_owned(),
        nats_url: None,
        nats_server_bin: None,
        nats_port,
        nats_replicas: 1,
        rescan_interval: Duration::from_secs(2),
        broken_grace: Duration::from_secs(60),
        batch_settle: Duration::from_millis(200),
        retry_delay: Duration::from_secs(1),
        ack_wait: Duration::from_secs(15),
        apply_concurrency,
        queue_max_messages: 10_000_000,
        queue_max_bytes: 20_000_000_000,
        admin_listen: "127.0.0.1:0".parse().expect("address"),
        reconcile_interval: Duration::ZERO,
        ox: OxArgs {
            ox_soap_server: Some(ox.base_url()),
            ox_master_admin: Some(MASTER.into()),
            ox_master_password: Some(MASTER_PASSWORD.into()),
            domainname: Some("example.org".into()),
            ox_soap_timeout: Duration::from_secs(60),
            ..OxArgs::default()
        },
    })
    .expect("valid settings")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn end_to_end(n: usize, latency_ms: u64, concurrency: usize) -> Value {
    let label = format!("e2e {n} @ {latency_ms} ms, concurrency {concurrency}");
    let data = tempfile::tempdir().expect("temp dir");
    let workload = Workload::generate(WorkloadSettings::new(n));
    workload
        .write_all(&data.path().join("listener"))
        .expect("write listener files");
    let ox = Arc::new(emulator(latency_ms).await);
    let nats_port = free_port();
    let settings = bench_settings(data.path(), &ox, nats_port, concurrency);
    let observed = Arc::new(Mutex::new(Observed::default()));
    let token = CancellationToken::new();

    let started = Instant::now();
    let daemon = {
        let (ox_settings, data_dir) = (settings.ox.clone(), settings.data_dir.clone());
        let (ox, observed) = (ox.clone(), observed.clone());
        Daemon::start_with(
            settings,
            move |js| async move {
                OxApplier::open(ox_settings, &data_dir, &js)
                    .await
                    .map(|inner| Timed {
                        inner,
                        ox,
                        count_calls: concurrency == 1,
                        observed,
                    })
                    .map_err(|e| e.to_string())
            },
            token.clone(),
        )
        .await
        .expect("the daemon starts")
    };
    let lock = || observed.lock().unwrap_or_else(|p| p.into_inner());
    let listener = data.path().join("listener");
    // Slow is measured, stuck is not: give up only when nothing was applied for two minutes.
    let stuck_after = Duration::from_secs(120);
    let (mut last_done, mut last_progress) = (0, Instant::now());
    loop {
        let done = lock().records.len();
        if done >= n {
            break;
        }
        if done > last_done {
            (last_done, last_progress) = (done, Instant::now());
        }
        if last_progress.elapsed() > stuck_after {
            eprintln!(
                "{label}: stuck: {done} applied, none in the last {stuck_after:?}; status: {:?}",
                std::fs::read_to_string(data.path().join("status.json")).unwrap_or_default()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The emulator's totals: every SOAP call of the run, whatever ran at the same time.
    let per_op = counters(&ox);
    let Observed {
        records,
        in_flight,
        scopes,
        errors,
    } = std::mem::take(&mut *lock());
    let finished = records
        .iter()
        .map(|r| r.finished)
        .max()
        .unwrap_or_else(Instant::now);
    let seconds = finished.duration_since(started).as_secs_f64();
    let left = ox_connector::listener::scan(&listener)
        .map(|f| f.len())
        .unwrap_or(0);

    // The state store's size, read from the embedded server.
    let js = jetstream::new(service_client(data.path(), daemon.nats_url()).await);
    let mut store = serde_json::Map::new();
    let mut store_bytes = 0u64;
    for bucket in ["ox-objects", "ox-dn-index", "ox-credentials"] {
        if let Ok(mut stream) = js.get_stream(format!("KV_{bucket}")).await {
            if let Ok(info) = stream.info().await {
                store_bytes += info.state.bytes;
                store.insert(
                    bucket.into(),
                    json!({"keys": info.state.messages, "bytes": info.state.bytes}),
                );
            }
        }
    }
    let diff = workload.expected.diff(&ox.state());
    // The embedded nats-server's peak (the daemon runs in this process: its own peak is the
    // benchmark's, emulator included, and not reported).
    let nats_peak = std::fs::read_to_string(data.path().join("nats/nats-server.pid"))
        .ok()
        .and_then(|pid| pid.trim().parse().ok())
        .map_or(0.0, |pid| proc_kib(pid, "VmHWM") as f64 / 1024.0);
    token.cancel();
    daemon.wait().await.expect("the daemon stops");
    let jetstream_dir = dir_size(&data.path().join("nats"));

    let mut durations: Vec<Duration> = records.iter().map(Record::elapsed).collect();
    durations.sort();
    let applied = records.len();
    let total_calls: u64 = per_op.values().sum();
    let calls_per_change = total_calls as f64 / applied.max(1) as f64;

    // Per change type: only where each apply's calls are its own (concurrency 1).
    let by_file: BTreeMap<&str, (ObjectKind, ChangeKind)> = workload
        .changes
        .iter()
        .map(|c| (c.file.as_str(), (c.object, c.kind)))
        .collect();
    let per_type = (concurrency == 1).then(|| {
        let mut per_type: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for record in &records {
            let calls: u64 = record.calls.iter().flat_map(|c| c.values()).sum();
            if let Some((object, kind)) = by_file.get(record.file.as_str()) {
                let entry = per_type
                    .entry(format!("{} {}", object.as_str(), kind.as_str()))
                    .or_default();
                entry.0 += 1;
                entry.1 += calls;
            }
        }
        per_type
            .into_iter()
            .map(|(k, (changes, calls))| {
                (
                    k,
                    json!({"changes": changes, "soap_calls": calls,
                           "calls_per_change": calls as f64 / changes.max(1) as f64}),
                )
            })
            .collect::<serde_json::Map<String, Value>>()
    });

    // Time in which no change was being applied, between one apply's end (the latest so far)
    // and the next one's start: the queue's own overhead, and stalls (a pull answered late, a
    // retry). With concurrency 1 this is the time between two applies.
    let mut by_start: Vec<&Record> = records.iter().collect();
    by_start.sort_by_key(|r| r.started);
    // (gap, the record after it, the record whose end it counts from)
    let mut gaps: Vec<(Duration, usize, usize)> = Vec::new();
    let mut latest: Option<usize> = None;
    for (i, record) in by_start.iter().enumerate() {
        if let Some(l) = latest {
            let gap = record
                .started
                .saturating_duration_since(by_start[l].finished);
            gaps.push((gap, i, l));
        }
        if latest.is_none_or(|l| record.finished > by_start[l].finished) {
            latest = Some(i);
        }
    }
    let mut sorted_gaps: Vec<Duration> = gaps.iter().map(|(g, _, _)| *g).collect();
    sorted_gaps.sort();
    let stalls: Vec<Value> = gaps
        .iter()
        .filter(|(g, _, _)| *g > Duration::from_secs(1))
        .map(|&(g, next, previous)| {
            json!({"seconds": g.as_secs_f64(), "after_change": next,
                   "after_file": by_start[previous].file, "before_file": by_start[next].file,
                   "at_s": by_start[previous].finished.duration_since(started).as_secs_f64()})
        })
        .collect();
    let objects_per_s = applied as f64 / seconds;
    // Start-up (nats-server, streams, the first look at the folder) until the first apply.
    let first_apply = by_start.first().map_or(finished, |r| r.started);
    let start_up_s = first_apply.duration_since(started).as_secs_f64();
    let objects_per_s_after_start_up =
        applied as f64 / finished.duration_since(first_apply).as_secs_f64().max(1e-9);
    let sequential_limit = (latency_ms > 0).then(|| 1000.0 / latency_ms as f64);
    let busy: f64 = durations.iter().map(Duration::as_secs_f64).sum();
    let mut scopes = scopes;
    scopes.sort();
    let result = json!({
        "changes": n,
        "latency_ms": latency_ms,
        "apply_concurrency": concurrency,
        "applied": applied,
        "seconds": seconds,
        "objects_per_s": objects_per_s,
        "start_up_s": start_up_s,
        "objects_per_s_after_start_up": objects_per_s_after_start_up,
        "apply_ms_p50": percentile(&durations, 0.50),
        "apply_ms_p99": percentile(&durations, 0.99),
        "apply_ms_max": percentile(&durations, 1.0),
        "apply_ms_mean": busy * 1000.0 / durations.len().max(1) as f64,
        "scope_ms_p50": percentile(&scopes, 0.50),
        "scope_ms_p99": percentile(&scopes, 0.99),
        "between_applies_ms_p50": percentile(&sorted_gaps, 0.50),
        "between_applies_ms_p99": percentile(&sorted_gaps, 0.99),
        "stalls_over_1s": stalls,
        "apply_errors": errors.len(),
        "apply_error_samples": errors.iter().take(10)
            .map(|(file, e)| json!({"file": file, "error": e})).collect::<Vec<_>>(),
        "soap_calls": total_calls,
        "soap_calls_per_change": calls_per_change,
        "sequential_limit_per_s": sequential_limit,
        "share_of_sequential_limit": sequential_limit.map(|l| objects_per_s / l),
        "sequential_limit_by_calls_per_s": sequential_limit.map(|l| l / calls_per_change.max(1e-9)),
        "soap_calls_by_change_type": per_type,
        "soap_calls_by_operation": per_op,
        "state_store": store,
        "state_store_bytes": store_bytes,
        "jetstream_dir_bytes": jetstream_dir,
        "nats_peak_rss_mib": nats_peak,
        "objects_in_ox": workload.expected.objects(),
        "files_left": left,
        "state_matches": diff.is_empty(),
        "state_differences": diff.iter().take(20).collect::<Vec<_>>(),
        "concurrent_contexts": {
            "apply_concurrency": concurrency,
            "max_changes_in_flight": in_flight.max,
            "mean_changes_in_flight": busy / seconds.max(1e-9),
            "applies_by_in_flight_at_start": in_flight.at_start,
            "max_contexts_in_flight": in_flight.max_contexts,
        },
    });
    eprintln!(
        "{label}: {applied} applied in {seconds:.1} s, at most {} at once; {} files left; \
         state as expected: {}",
        in_flight.max,
        left,
        diff.is_empty()
    );
    if !diff.is_empty() {
        eprintln!("  first differences: {:?}", &diff[..diff.len().min(10)]);
    }
    if let Ok(ox) = Arc::try_unwrap(ox) {
        ox.stop().await;
    }
    result
}

fn print_calls(result: &Value) {
    let Some(types) = result["soap_calls_by_change_type"].as_object() else {
        return;
    };
    let rows: Vec<Vec<String>> = types
        .iter()
        .map(|(k, v)| {
            vec![
                k.clone(),
                v["changes"].to_string(),
                format!("{:.2}", v["calls_per_change"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    print_table(
        &format!(
            "SOAP calls per change ({} changes, {} ms, concurrency 1)",
            result["changes"], result["latency_ms"]
        ),
        &["change", "count", "SOAP calls/change"],
        &rows,
    );
}

/// A client of the daemon's embedded nats-server with the daemon's service identity, once the
/// daemon has written it and the server accepts it.
async fn service_client(data: &Path, url: &str) -> async_nats::Client {
    for _ in 0..1200 {
        if let Some(identity) = service_identity(data) {
            if let Ok(client) = identity.connect_options().connect(url).await {
                return client;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot connect to the embedded nats-server at {url} as the service");
}

/// The service identity from `<data-dir>/secrets/nats-users.json`, read only:
/// `Identities::load` adds missing identities and writes the file, which would race with the
/// daemon writing it at start.
fn service_identity(data: &Path) -> Option<Identity> {
    let bytes = std::fs::read(data.join(identity::FILE)).ok()?;
    let by_user: BTreeMap<String, Identity> = serde_json::from_slice(&bytes).ok()?;
    by_user.into_values().find(|i| i.role == Role::Service)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn print_table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:>w$}", w = widths[i]))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    println!("\n{title}");
    println!("{}", line(header.iter().map(|h| (*h).to_owned()).collect()));
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in rows {
        println!("{}", line(row.clone()));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `kB` field (or a plain number such as `Threads`) of `/proc/<pid>/status`.
fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    get(11) + get(12)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn dir_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text).trim().to_owned()
        })
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_mib": proc_meminfo_mib(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "os": std::fs::read_to_string("/etc/os-release").unwrap_or_default().lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME=")).unwrap_or("").trim_matches('"'),
        "rustc": command_output("rustc", &["--version"]),
        "nats_server": command_output("nats-server", &["--version"])
            .replace("nats-server: ", ""),
        "commit": command_output("git", &["rev-parse", "--short", "HEAD"]),
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

fn proc_meminfo_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}
