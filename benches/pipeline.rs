//! The pipeline benchmarks: `cargo bench --bench pipeline` runs them all, prints one table per
//! benchmark and writes `target/bench-results.json`. Figures and how to read them:
//! `docs/performance.md`.
//!
//! - `ingest`: N listener files already in the folder → published and acknowledged on
//!   JetStream by the real `ox-connector run` binary with its embedded nats-server (OX is down,
//!   so nothing is applied); files/s and the daemon's peak RSS.
//! - `e2e`: a mixed stream of changes (contexts, users, groups, resources; creates, modifies,
//!   moves, deletes) applied against the in-process OX emulator at 0 ms and 5 ms latency;
//!   objects/s, p50/p99 apply latency, SOAP calls per change by type, the state store's size,
//!   and whether the emulator's final state is the expected one.
//! - `idle`: RSS and CPU of the idle daemon binary and of its nats-server.
//! - `growth`: ingest and end to end at 1k, 10k and 100k changes.
//!
//! Arguments (after `--`): any of `ingest e2e idle growth` to choose (default: all), `--quick`
//! for small sizes (a smoke run, about two minutes), `--skip-0ms` / `--skip-5ms` to leave out one
//! latency of `e2e`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use ox_connector::app::Daemon;
use ox_connector::apply::{Applier, ApplyError, Outcome};
use ox_connector::cli::OxArgs;
use ox_connector::config::{RawSettings, Settings};
use ox_connector::emulator::{Emulator, EmulatorConfig, EmulatorHandle, Failure, FaultConfig};
use ox_connector::message::ProvisioningMessage;
use ox_connector::provision::OxApplier;
use ox_connector::workload::{ChangeKind, ObjectKind, Workload, WorkloadConfig};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const MASTER: &str = "oxadminmaster";
const MASTER_PASSWORD: &str = "bench-Master-Pw1";
const DAEMON: &str = env!("CARGO_BIN_EXE_ox-connector");

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let quick = args.iter().any(|a| a == "--quick");
    let chosen: BTreeSet<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| chosen.is_empty() || chosen.contains(name);
    let sizes: &[usize] = if quick {
        &[1_000, 5_000]
    } else {
        &[1_000, 10_000, 100_000]
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
                    "{:.1}",
                    result["daemon_peak_rss_mib"].as_f64().unwrap_or(0.0)
                ),
                format!("{:.1}", result["nats_peak_rss_mib"].as_f64().unwrap_or(0.0)),
            ]);
            all.push(result);
        }
        print_table(
            "Ingest: files already in the folder → acknowledged on JetStream",
            &[
                "files",
                "files/s",
                "files/s after start",
                "µs/file",
                "daemon peak RSS MiB",
                "nats peak RSS MiB",
            ],
            &rows,
        );
        results.insert("ingest".into(), Value::Array(all));
    }

    if run("e2e") || run("growth") {
        let mut runs: Vec<(usize, u64)> = Vec::new();
        if run("e2e") {
            for latency in [0, 5] {
                if !args.iter().any(|a| a == &format!("--skip-{latency}ms")) {
                    runs.push((e2e_size, latency));
                }
            }
        }
        if run("growth") {
            for &n in sizes {
                if !runs.contains(&(n, 0)) {
                    runs.push((n, 0));
                }
            }
        }
        runs.sort();
        let mut rows = Vec::new();
        let mut all = Vec::new();
        for (n, latency) in runs {
            let result = end_to_end(n, latency).await;
            rows.push(vec![
                n.to_string(),
                latency.to_string(),
                format!("{:.0}", result["objects_per_s"].as_f64().unwrap_or(0.0)),
                format!("{:.2}", result["apply_ms_p50"].as_f64().unwrap_or(0.0)),
                format!("{:.2}", result["apply_ms_p99"].as_f64().unwrap_or(0.0)),
                format!(
                    "{:.2}",
                    result["soap_calls_per_change"].as_f64().unwrap_or(0.0)
                ),
                format!(
                    "{:.1}",
                    result["state_store_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0
                ),
                result["state_matches"].to_string(),
            ]);
            print_calls(&result);
            all.push(result);
        }
        print_table(
            "End to end: mixed changes in the folder → applied to the OX emulator",
            &[
                "changes",
                "OX latency ms",
                "objects/s",
                "apply p50 ms",
                "apply p99 ms",
                "SOAP calls/change",
                "state store MiB",
                "state as expected",
            ],
            &rows,
        );
        results.insert("end_to_end".into(), Value::Array(all));
    }

    let out = target_dir().join("bench-results.json");
    let text = serde_json::to_string_pretty(&Value::Object(results)).unwrap_or_default();
    match std::fs::write(&out, text) {
        Ok(()) => println!("\nwrote {}", out.display()),
        Err(e) => eprintln!("cannot write {}: {e}", out.display()),
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
        for _ in 0..600 {
            if let Ok(client) = async_nats::connect(&url).await {
                return jetstream::new(client);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the embedded nats-server did not come up at {url}");
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
    let ox = Emulator::start(EmulatorConfig::new(MASTER, MASTER_PASSWORD))
        .await
        .expect("the emulator starts");
    ox.set_faults(FaultConfig {
        latency_ms,
        ..FaultConfig::default()
    });
    ox
}

async fn ingest(n: usize) -> Value {
    let data = tempfile::tempdir().expect("temp dir");
    let workload = Workload::generate(WorkloadConfig::new(n));
    let written = Instant::now();
    workload
        .write_all(&data.path().join("listener"))
        .expect("write listener files");
    eprintln!("ingest {n}: wrote the files in {:?}", written.elapsed());
    let ox = emulator(0).await;
    // OX is down: the first change blocks, so this measures publishing alone.
    ox.set_faults(FaultConfig {
        down: Some(Failure::Http { status: 503 }),
        ..FaultConfig::default()
    });

    let started = Instant::now();
    let child = Child::spawn(data.path(), &ox).await;
    let js = child.jetstream().await;
    let mut first = None;
    let deadline = started + Duration::from_secs(1200);
    let stored = loop {
        let stored = match js.get_stream("PROVISIONING").await {
            Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        if stored > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        if stored >= n as u64 || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let total = started.elapsed();
    let daemon_peak = proc_kib(child.pid(), "VmHWM") as f64 / 1024.0;
    let nats_peak = child
        .nats_pid()
        .map(|p| proc_kib(p, "VmHWM") as f64 / 1024.0)
        .unwrap_or(0.0);
    let store_bytes = dir_size(&data.path().join("nats"));
    child.stop().await;
    ox.stop().await;
    let after_start = total.saturating_sub(first.unwrap_or_default());
    let result = json!({
        "files": n,
        "stored": stored,
        "seconds": total.as_secs_f64(),
        "first_stored_after_s": first.unwrap_or_default().as_secs_f64(),
        "files_per_s": n as f64 / total.as_secs_f64(),
        "files_per_s_after_start": n as f64 / after_start.as_secs_f64().max(1e-9),
        "us_per_file": total.as_secs_f64() * 1e6 / n as f64,
        "daemon_peak_rss_mib": daemon_peak,
        "nats_peak_rss_mib": nats_peak,
        "jetstream_store_bytes": store_bytes,
    });
    eprintln!("ingest {n}: {result}");
    assert_eq!(stored, n as u64, "not every file was queued");
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
    elapsed: Duration,
    calls: BTreeMap<String, u64>,
    finished: Instant,
}

/// The OX applier, timed, with the SOAP calls each change made (the emulator's counters
/// before and after; changes are applied one at a time).
#[derive(Clone)]
struct Timed {
    inner: OxApplier,
    ox: Arc<EmulatorHandle>,
    records: Arc<Mutex<Vec<Record>>>,
}

fn counters(ox: &EmulatorHandle) -> BTreeMap<String, u64> {
    ox.calls().into_iter().map(|(k, v)| (k, v.calls)).collect()
}

impl Applier for Timed {
    async fn apply(&self, message: &ProvisioningMessage) -> Result<Outcome, ApplyError> {
        let before = counters(&self.ox);
        let started = Instant::now();
        let result = self.inner.apply(message).await;
        let elapsed = started.elapsed();
        if result.is_ok() {
            let after = counters(&self.ox);
            let calls = after
                .into_iter()
                .filter_map(|(op, n)| {
                    let delta = n - before.get(&op).copied().unwrap_or(0);
                    (delta > 0).then_some((op, delta))
                })
                .collect();
            let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
            records.push(Record {
                file: message.source_file().unwrap_or_default().to_owned(),
                elapsed,
                calls,
                finished: Instant::now(),
            });
        }
        result
    }
}

fn bench_settings(data: &Path, ox: &EmulatorHandle, nats_port: u16) -> Settings {
    Settings::from_raw(RawSettings {
        data_dir: data.to_owned(),
        nats_url: None,
        nats_server_bin: None,
        nats_port,
        rescan_interval: Duration::from_secs(2),
        broken_grace: Duration::from_secs(60),
        batch_settle: Duration::from_millis(200),
        retry_delay: Duration::from_secs(1),
        ack_wait: Duration::from_secs(15),
        apply_concurrency: 8,
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

async fn end_to_end(n: usize, latency_ms: u64) -> Value {
    let data = tempfile::tempdir().expect("temp dir");
    let workload = Workload::generate(WorkloadConfig::new(n));
    workload
        .write_all(&data.path().join("listener"))
        .expect("write listener files");
    let ox = Arc::new(emulator(latency_ms).await);
    let nats_port = free_port();
    let settings = bench_settings(data.path(), &ox, nats_port);
    let records = Arc::new(Mutex::new(Vec::<Record>::new()));
    let token = CancellationToken::new();

    let started = Instant::now();
    let daemon = {
        let (ox_settings, data_dir) = (settings.ox.clone(), settings.data_dir.clone());
        let (ox, records) = (ox.clone(), records.clone());
        Daemon::start_with(
            settings,
            move |js| async move {
                OxApplier::open(ox_settings, &data_dir, &js)
                    .await
                    .map(|inner| Timed { inner, ox, records })
                    .map_err(|e| e.to_string())
            },
            token.clone(),
        )
        .await
        .expect("the daemon starts")
    };
    let listener = data.path().join("listener");
    let timeout = Duration::from_secs(120 + (n as u64) * (latency_ms + 2) / 100);
    loop {
        let done = records.lock().map(|r| r.len()).unwrap_or(0);
        if done >= n {
            break;
        }
        if started.elapsed() > timeout {
            eprintln!(
                "e2e {n} @ {latency_ms} ms: timed out with {done} applied; status: {:?}",
                std::fs::read_to_string(data.path().join("status.json")).unwrap_or_default()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let records = std::mem::take(&mut *records.lock().unwrap_or_else(|p| p.into_inner()));
    let finished = records
        .last()
        .map(|r| r.finished)
        .unwrap_or_else(Instant::now);
    let seconds = finished.duration_since(started).as_secs_f64();
    let left = ox_connector::listener::scan(&listener)
        .map(|f| f.len())
        .unwrap_or(0);

    // The state store's size, read from the embedded server.
    let js = jetstream::new(
        async_nats::connect(format!("nats://127.0.0.1:{nats_port}"))
            .await
            .expect("connect to the embedded nats-server"),
    );
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
    token.cancel();
    daemon.wait().await.expect("the daemon stops");
    let jetstream_dir = dir_size(&data.path().join("nats"));

    // Per change: latency, SOAP calls by object type and change kind.
    let by_file: BTreeMap<&str, (ObjectKind, ChangeKind)> = workload
        .changes
        .iter()
        .map(|c| (c.file.as_str(), (c.object, c.kind)))
        .collect();
    let mut durations: Vec<Duration> = records.iter().map(|r| r.elapsed).collect();
    durations.sort();
    let mut per_type: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut per_op: BTreeMap<String, u64> = BTreeMap::new();
    let mut total_calls = 0u64;
    for record in &records {
        let calls: u64 = record.calls.values().sum();
        total_calls += calls;
        for (op, k) in &record.calls {
            *per_op.entry(op.clone()).or_default() += k;
        }
        if let Some((object, kind)) = by_file.get(record.file.as_str()) {
            let entry = per_type
                .entry(format!("{} {}", object.as_str(), kind.as_str()))
                .or_default();
            entry.0 += 1;
            entry.1 += calls;
        }
    }
    let per_type: serde_json::Map<String, Value> = per_type
        .into_iter()
        .map(|(k, (changes, calls))| {
            (
                k,
                json!({"changes": changes, "soap_calls": calls,
                       "calls_per_change": calls as f64 / changes.max(1) as f64}),
            )
        })
        .collect();
    // Time between one apply's end and the next one's start: the queue's own overhead, and
    // stalls (a pull that is answered late).
    let gaps: Vec<Duration> = records
        .windows(2)
        .map(|w| {
            let next_start = w[1].finished - w[1].elapsed;
            next_start.saturating_duration_since(w[0].finished)
        })
        .collect();
    let mut sorted_gaps = gaps.clone();
    sorted_gaps.sort();
    let stalls: Vec<Value> = gaps
        .iter()
        .enumerate()
        .filter(|(_, g)| **g > Duration::from_secs(1))
        .map(|(i, g)| {
            json!({"seconds": g.as_secs_f64(), "after_change": i + 1,
                   "after_file": records[i].file, "before_file": records[i + 1].file,
                   "at_s": records[i].finished.duration_since(started).as_secs_f64()})
        })
        .collect();
    let applied = records.len();
    let calls_per_change = total_calls as f64 / applied.max(1) as f64;
    let objects_per_s = applied as f64 / seconds;
    let sequential_limit = if latency_ms > 0 {
        Some(1000.0 / latency_ms as f64)
    } else {
        None
    };
    let result = json!({
        "changes": n,
        "latency_ms": latency_ms,
        "applied": applied,
        "seconds": seconds,
        "objects_per_s": objects_per_s,
        "apply_ms_p50": percentile(&durations, 0.50),
        "apply_ms_p99": percentile(&durations, 0.99),
        "apply_ms_max": percentile(&durations, 1.0),
        "apply_ms_mean": durations.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0
            / durations.len().max(1) as f64,
        "between_applies_ms_p50": percentile(&sorted_gaps, 0.50),
        "between_applies_ms_p99": percentile(&sorted_gaps, 0.99),
        "stalls_over_1s": stalls,
        "soap_calls_per_change": calls_per_change,
        "sequential_limit_per_s": sequential_limit,
        "share_of_sequential_limit": sequential_limit.map(|l| objects_per_s / l),
        "soap_calls_by_change_type": per_type,
        "soap_calls_by_operation": per_op,
        "state_store": store,
        "state_store_bytes": store_bytes,
        "jetstream_dir_bytes": jetstream_dir,
        "objects_in_ox": workload.expected.objects(),
        "files_left": left,
        "state_matches": diff.is_empty(),
        "state_differences": diff.iter().take(20).collect::<Vec<_>>(),
        "concurrent_contexts": "not implemented yet",
    });
    eprintln!(
        "e2e {n} @ {latency_ms} ms: {applied} applied in {seconds:.1} s; state as expected: {}",
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
            "SOAP calls per change ({} changes, {} ms)",
            result["changes"], result["latency_ms"]
        ),
        &["change", "count", "SOAP calls/change"],
        &rows,
    );
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
