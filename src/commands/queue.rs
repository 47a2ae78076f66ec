//! The admin commands `ox-connector queue …`, `reconcile` and `state import`: each finds the
//! running daemon from `--data-dir` alone (`run/admin.json` and the token in `secrets/`), asks
//! its admin API, and prints a short plain answer — or, with `--json`, the API's JSON.
//!
//! Exit codes: 0 done / all well; 1 a problem was reported (queue blocked or not ready, a
//! refused request, drift found in a dry run); 2 the daemon is not running.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::admin::client::{AdminClient, AdminClientError};
use crate::admin::StatusReport;
use crate::config::DEFAULT_DATA_DIR;
use crate::ops::import::{ImportAction, ImportReport, ImportRequest};
use crate::ops::queue::{
    self, ItemDetail, Location, QueueList, RequeueRequest, RequeueResult, SkipRequest, SkipResult,
};
use crate::ops::ready::Readiness;
use crate::ops::reconcile::{ReconcileReport, ReconcileRequest};
use crate::status::DaemonStatus;
use crate::telemetry::progress::Step;

/// Options every admin command has.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The app's data directory; the running daemon is found through <data-dir>/run/admin.json.
    #[arg(long, env = "OX_CONNECTOR_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Print JSON (the admin API's answer) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ox-connector queue`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub command: QueueCommand,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// One screen: is the daemon running, what waits, what blocks and why, quarantined files;
    /// during a backlog the pace of the last minute and an estimate of the time left.
    /// Exit code 0 all well, 1 blocked or not ready, 2 not running.
    Status(Common),
    /// The status screen, refreshed every --interval until Ctrl-C, with a progress bar of what
    /// was applied since the watch started.
    Watch {
        #[command(flatten)]
        common: Common,
        /// How often to refresh.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: Duration,
    },
    /// The waiting changes in the order they will be applied.
    List {
        #[command(flatten)]
        common: Common,
        /// Show at most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One waiting, quarantined or skipped file and what the connector remembers of its object
    /// (passwords, hashes and keys redacted).
    Show {
        #[command(flatten)]
        common: Common,
        /// A listener file name, an entry UUID, or `blocked` (the change the queue waits for).
        id: String,
    },
    /// Skip a waiting change: its file moves to listener/skipped/ (with who, when and why in
    /// <name>.skipped.txt), and the queue goes on. The safe form of `rm`.
    Skip {
        #[command(flatten)]
        common: Common,
        /// A listener file name, an entry UUID (if it has one waiting change), or `blocked`.
        id: String,
        /// Why (kept in the sidecar file and the log).
        #[arg(long)]
        reason: Option<String>,
        /// Who skips (kept in the sidecar file and the log).
        #[arg(long, env = "USER", default_value_t = who_runs_this())]
        by: String,
    },
    /// Retry the failing change now instead of waiting for the next attempt.
    Retry {
        #[command(flatten)]
        common: Common,
        #[arg(long, env = "USER", default_value_t = who_runs_this(), hide = true)]
        by: String,
    },
    /// Pause OX provisioning (e.g. during OX maintenance) without stopping the daemon: changes
    /// being applied finish, the rest waits in the queue until `queue resume` (or --for ends).
    Pause {
        #[command(flatten)]
        common: Common,
        /// End the pause by itself after this long (e.g. 30min, 2h); default: until resumed.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Who pauses (kept in the log).
        #[arg(long, env = "USER", default_value_t = who_runs_this())]
        by: String,
    },
    /// End a pause: OX provisioning goes on where it stopped.
    Resume {
        #[command(flatten)]
        common: Common,
        /// Who resumes (kept in the log).
        #[arg(long, env = "USER", default_value_t = who_runs_this())]
        by: String,
    },
    /// Put a skipped file (listener/skipped/NAME) or a fixed quarantined one
    /// (listener/broken/NAME) back into the queue; it is applied again.
    #[command(alias = "requeue-broken")]
    Requeue {
        #[command(flatten)]
        common: Common,
        /// The file name in listener/skipped/ or listener/broken/.
        name: String,
        #[arg(long, env = "USER", default_value_t = who_runs_this(), hide = true)]
        by: String,
    },
}

/// `ox-connector reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub common: Common,
    /// Only report (the default).
    #[arg(long, conflicts_with = "apply")]
    pub dry_run: bool,
    /// Repair: apply missing and differing objects again through the queue, correct stale ids.
    #[arg(long)]
    pub apply: bool,
    /// Only this OX context.
    #[arg(long)]
    pub context: Option<i32>,
}

/// `ox-connector state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Import the Python connector's cache (listener/old/*.json) into the state store, so that
    /// an upgrade neither re-creates nor loses objects. Dry run unless --apply.
    Import {
        #[command(flatten)]
        common: Common,
        /// The Python connector's data directory, its listener/ folder, or listener/old/ itself.
        #[arg(long)]
        from: PathBuf,
        /// Write to the state store (otherwise only show what would be imported).
        #[arg(long)]
        apply: bool,
    },
}

const NOT_RUNNING: i32 = 2;

/// Who runs the command when `USER` is not set (a root shell in the container has none):
/// `SUDO_USER` or `LOGNAME`, else the name of the user id, else `uid N`.
fn who_runs_this() -> String {
    ["SUDO_USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|user| user.name)
        })
        .unwrap_or_else(|| format!("uid {}", nix::unistd::getuid()))
}

fn client(common: &Common, timeout: Duration) -> Result<AdminClient, AdminClientError> {
    AdminClient::from_data_dir(&common.data_dir, timeout)
}

fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("ox-connector: cannot encode the answer: {e}"),
    }
}

/// Prints a failed request; returns the exit code.
fn failed(error: &AdminClientError) -> i32 {
    eprintln!("ox-connector: {error}");
    if matches!(error, AdminClientError::NotRunning(_)) {
        NOT_RUNNING
    } else {
        1
    }
}

/// Runs `ox-connector queue …`; returns the exit code.
pub async fn queue(args: QueueArgs) -> i32 {
    match args.command {
        QueueCommand::Status(common) => status(&common).await,
        QueueCommand::Watch { common, interval } => watch(&common, interval).await,
        QueueCommand::List { common, limit } => {
            let result = async {
                client(&common, Duration::from_secs(30))?
                    .get_json::<QueueList>(&format!("/queue?limit={limit}"))
                    .await
            }
            .await;
            answer(result, common.json, print_list)
        }
        QueueCommand::Show { common, id } => {
            let result = async {
                client(&common, Duration::from_secs(30))?
                    .get_json::<ItemDetail>(&format!("/queue/items/{}", encode(&id)))
                    .await
            }
            .await;
            answer(result, common.json, print_detail)
        }
        QueueCommand::Skip {
            common,
            id,
            reason,
            by,
        } => skip(&common, id, reason, by).await,
        QueueCommand::Retry { common, by } => retry(&common, by).await,
        QueueCommand::Pause {
            common,
            duration,
            by,
        } => pause(&common, duration, by).await,
        QueueCommand::Resume { common, by } => resume(&common, by).await,
        QueueCommand::Requeue { common, name, by } => requeue(&common, name, by).await,
    }
}

/// Prints an answer of the daemon (as JSON with `--json`) and returns the exit code.
fn answer<T: Serialize>(
    result: Result<T, AdminClientError>,
    json: bool,
    print: impl FnOnce(&T),
) -> i32 {
    match result {
        Ok(value) if json => {
            print_json(&value);
            0
        }
        Ok(value) => {
            print(&value);
            0
        }
        Err(e) => failed(&e),
    }
}

async fn retry(common: &Common, by: String) -> i32 {
    let result = async {
        client(common, Duration::from_secs(10))?
            .by(by)
            .retry()
            .await
    }
    .await;
    match result {
        Ok(()) if common.json => {
            print_json(&serde_json::json!({"retry": "requested"}));
            0
        }
        Ok(()) => {
            println!(
                "Asked the daemon to retry the failing change now. See: ox-connector queue status"
            );
            0
        }
        Err(e) => failed(&e),
    }
}

async fn requeue(common: &Common, name: String, by: String) -> i32 {
    let request = RequeueRequest { name, by };
    let result = async {
        client(common, Duration::from_secs(10))?
            .post_json::<_, RequeueResult>("/queue/requeue", &request)
            .await
    }
    .await;
    answer(result, common.json, |done| {
        println!(
            "Put {} back into the queue ({}); it is queued within seconds.",
            done.file,
            done.moved_to.display()
        );
    })
}

/// What to do about a full queue. A JetStream store without disk space (error 10047) does not
/// drain by applying changes: the disk has to get space first.
fn queue_full_advice(reason: &str) -> &'static str {
    if ["insufficient storage", "10047", "no space left"]
        .iter()
        .any(|sign| reason.contains(sign))
    {
        "  The disk of the JetStream store (<data-dir>/nats) has no space left: free space there, \
         or lower OX_CONNECTOR_QUEUE_MAX_BYTES. Listener files wait on disk; nothing is lost."
    } else {
        "  Listener files wait on disk; nothing is lost. It drains as changes are applied."
    }
}

/// `queue pause`: asks the daemon to pause OX provisioning.
async fn pause(common: &Common, duration: Option<Duration>, by: String) -> i32 {
    let request = crate::admin::pause::PauseRequest {
        seconds: duration.map(|d| d.as_secs().max(1)),
    };
    let result = async {
        client(common, Duration::from_secs(10))?
            .by(by)
            .post_json::<_, crate::status::Paused>("/queue/pause", &request)
            .await
    }
    .await;
    match result {
        Ok(paused) if common.json => {
            print_json(&paused);
            0
        }
        Ok(paused) => {
            println!("{}", paused_line(&paused));
            println!("Changes wait in the queue meanwhile. Resume with: ox-connector queue resume");
            0
        }
        Err(e) => failed(&e),
    }
}

/// `queue resume`: asks the daemon to end a pause.
async fn resume(common: &Common, by: String) -> i32 {
    let result = async {
        client(common, Duration::from_secs(10))?
            .by(by)
            .post_empty("/queue/resume")
            .await
    }
    .await;
    match result {
        Ok(()) if common.json => {
            print_json(&serde_json::json!({"paused": false}));
            0
        }
        Ok(()) => {
            println!("OX provisioning goes on. See: ox-connector queue status");
            0
        }
        Err(e) => failed(&e),
    }
}

fn paused_line(paused: &crate::status::Paused) -> String {
    match paused.until {
        Some(until) => format!(
            "PAUSED: OX provisioning is paused until {} (in {}).",
            time(until),
            human((until - Utc::now()).to_std().unwrap_or_default())
        ),
        None => "PAUSED: OX provisioning is paused until `ox-connector queue resume`.".to_owned(),
    }
}

/// Percent-encodes a path segment (ids are file names or UUIDs; be safe anyway).
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A duration as an admin reads it: `45 s`, `12 min`, `3 h 12 min`, `2 d 3 h`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn since(t: chrono::DateTime<Utc>) -> String {
    human((Utc::now() - t).to_std().unwrap_or_default())
}

fn time(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[derive(Serialize)]
struct StatusJson {
    running: bool,
    status: Option<StatusReport>,
    ready: Option<Readiness>,
    queue: Option<QueueList>,
    /// When not running: the last status the daemon wrote.
    last_status: Option<DaemonStatus>,
    pending_files: usize,
    quarantined: Vec<String>,
    skipped: Vec<String>,
}

async fn status(common: &Common) -> i32 {
    let listener = common.data_dir.join("listener");
    let online = async {
        let client = client(common, Duration::from_secs(10))?;
        let status = client.status().await?;
        let (_, ready) = client.get_any::<Readiness>("/ready").await?;
        let queue = client.get_json::<QueueList>("/queue?limit=5").await.ok();
        Ok::<_, AdminClientError>((status, ready, queue))
    }
    .await;
    let quarantined = queue::quarantined(&listener);
    let skipped = queue::skipped(&listener);
    let pending = crate::listener::scan(&listener)
        .map(|f| f.len())
        .unwrap_or(0);
    match online {
        Ok((status, ready, list)) => {
            let code = if ready.ready { 0 } else { 1 };
            if common.json {
                print_json(&StatusJson {
                    running: true,
                    status: Some(status),
                    ready: Some(ready),
                    queue: list,
                    last_status: None,
                    pending_files: pending,
                    quarantined,
                    skipped,
                });
                return code;
            }
            print_running(&listener, &status, &ready, list.as_ref());
            print_side_folders(&quarantined, &skipped);
            code
        }
        Err(error) => {
            let last: Option<DaemonStatus> =
                std::fs::read(common.data_dir.join(crate::status::STATUS_FILE))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
            if common.json {
                print_json(&StatusJson {
                    running: false,
                    status: None,
                    ready: None,
                    queue: None,
                    last_status: last,
                    pending_files: pending,
                    quarantined,
                    skipped,
                });
                return NOT_RUNNING;
            }
            println!("ox-connector is NOT running ({error}).");
            print_queue_line(&listener, pending, None);
            if let Some(last) = &last {
                println!("Last status written {} ago:", since(last.updated));
                if last.blocked.is_none() && last.queue_full.is_none() {
                    println!("  the queue was neither blocked nor full.");
                }
                print_blocked(last);
            }
            print_side_folders(&quarantined, &skipped);
            println!(
                "Start it (App Center: univention-app start ox-connector) and look at its log."
            );
            NOT_RUNNING
        }
    }
}

/// The plain `queue status` of a running daemon, up to the side folders.
fn print_running(
    listener: &Path,
    status: &StatusReport,
    ready: &Readiness,
    list: Option<&QueueList>,
) {
    let d = &status.daemon;
    println!(
        "ox-connector is running (pid {}, up {}).",
        d.pid,
        since(d.started)
    );
    if ready.ready {
        println!("Ready: yes (NATS connected, OX answers and takes the master login, listener/ writable, the queue moves).");
    } else {
        for check in ready.checks.iter().filter(|c| !c.ok) {
            println!("NOT READY: {}: {}", check.name, check.detail);
        }
    }
    print_queue_line(listener, status.pending_files, list);
    if let Some(line) = progress_line(status.pending_files, status.applied_last_minute) {
        println!("{line}");
    }
    if let Some(calls) = d.ox_calls {
        println!("{}", ox_calls_line(&calls));
    }
    print_blocked(d);
    if let Some(list) = list.filter(|l| !l.items.is_empty()) {
        println!("Next:");
        for line in items_table(&list.items, false).lines() {
            println!("  {line}");
        }
    }
}

/// `Progress: 2100 applied in the last minute (35.0/s); 4286 wait, about 2 min left.` while
/// files wait; `None` for an empty queue.
fn progress_line(pending: usize, applied_last_minute: u64) -> Option<String> {
    if pending == 0 {
        return None;
    }
    // Below one per second a rate per second reads as 0.0: say it per minute then.
    let rate = match applied_last_minute {
        0..60 => format!("{applied_last_minute}/min"),
        _ => format!("{:.1}/s", applied_last_minute as f64 / 60.0),
    };
    Some(
        match crate::telemetry::progress::eta(pending as u64, applied_last_minute) {
            Some(eta) => format!(
                "Progress: {applied_last_minute} applied in the last minute ({rate}); {pending} \
                 wait, about {} left.",
                human(eta)
            ),
            None => format!(
                "Progress: nothing applied in the last minute; {pending} wait (no estimate)."
            ),
        },
    )
}

/// A text progress bar of `done` out of `total`, e.g. `[#########...........]  45 %`.
fn progress_bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 30;
    let share = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    };
    let filled = (share * WIDTH as f64).round() as usize;
    format!(
        "[{}{}] {:>3.0} %",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        share * 100.0
    )
}

/// `queue watch`: the status screen again every `interval`, with a bar of what was applied
/// since the watch started, until Ctrl-C. On a terminal the screen is redrawn in place.
async fn watch(common: &Common, interval: Duration) -> i32 {
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    let listener = common.data_dir.join("listener");
    let count = || {
        crate::listener::scan(&listener)
            .map(|f| f.len())
            .unwrap_or(0)
    };
    let first = count();
    loop {
        if terminal {
            // Clear the screen and go home: redraw in place.
            print!("\x1b[2J\x1b[H");
        }
        let code = status(common).await;
        let now = count();
        if first > 0 {
            println!(
                "Since the watch started: {} {} of {first} applied.",
                progress_bar(first.saturating_sub(now), first),
                first.saturating_sub(now)
            );
        }
        if code == NOT_RUNNING {
            return code;
        }
        if !terminal {
            println!("---");
        }
        tokio::time::sleep(interval).await;
    }
}

fn print_queue_line(listener: &Path, pending: usize, list: Option<&QueueList>) {
    let on_queue = list
        .map(|l| format!(", {} on the JetStream queue", l.queued_messages))
        .unwrap_or_default();
    match queue::oldest_age(listener) {
        Some((name, age)) => println!(
            "Queue: {} wait{}{on_queue}; oldest {name} ({} old).",
            plural(pending as u64, "listener file"),
            if pending == 1 { "s" } else { "" },
            human(age)
        ),
        None => println!("Queue: empty (no listener file waits{on_queue})."),
    }
}

/// The adaptive limit of calls towards OX, for `queue status`.
fn ox_calls_line(calls: &crate::status::OxCalls) -> String {
    let floor = calls
        .latency_floor_us
        .map(|us| format!(", latency floor {:.1} ms", us as f64 / 1000.0))
        .unwrap_or_default();
    format!(
        "OX calls: limit {} of {} at once, {} in flight{floor}.",
        calls.limit, calls.max, calls.in_flight
    )
}

fn print_blocked(d: &DaemonStatus) {
    for line in blocked_lines(d) {
        println!("{line}");
    }
}

/// What `queue status` says about a blocked queue or a full one.
fn blocked_lines(d: &DaemonStatus) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(paused) = d
        .paused
        .as_ref()
        .filter(|p| p.until.is_none_or(|u| u > Utc::now()))
    {
        lines.push(paused_line(paused));
    }
    if let Some(b) = &d.blocked {
        lines.push(format!(
            "BLOCKED since {} ({}), {} so far:",
            time(b.since),
            since(b.since),
            plural(b.attempts, "attempt")
        ));
        lines.push(format!(
            "  file:        {}",
            b.file.as_deref().unwrap_or("-")
        ));
        lines.push(format!("  object:      {} {}", b.object_type, b.dn));
        lines.push(format!("  entry UUID:  {}", b.entry_uuid));
        lines.push(format!("  error:       {} ({})", b.error, b.error_kind));
        if b.error.contains("invalid_credentials") || b.error.contains("Authentication failed") {
            lines.push("  OX refused the admin login: check OX_MASTER_ADMIN/OX_MASTER_PASSWORD (App Center settings)".into());
            lines.push("  and the context admins in <data-dir>/secrets/contexts.json, then: ox-connector queue retry".into());
        } else if b.error_kind == "transient" {
            lines.push("  It is retried automatically; fix OX or the connection, or retry now: ox-connector queue retry".into());
        } else {
            lines.push("  Fix the object in UCS (or OX), then: ox-connector queue retry".into());
        }
        if let Some(file) = &b.file {
            lines.push(format!(
                "  Or give up on this change: ox-connector queue skip {file} --reason \"…\""
            ));
        }
        if d.also_blocked > 0 {
            lines.push(format!(
                "  {} failing as well (changes that do not wait for this one): ox-connector queue list",
                plural(d.also_blocked as u64, "more change")
            ));
        }
    }
    if let Some(full) = &d.queue_full {
        lines.push(format!(
            "QUEUE FULL since {} ({}): {}",
            time(full.since),
            since(full.since),
            full.reason
        ));
        lines.push(queue_full_advice(&full.reason).into());
    }
    lines
}

fn print_side_folders(quarantined: &[String], skipped: &[String]) {
    if quarantined.is_empty() {
        println!("Quarantined: none.");
    } else {
        println!(
            "Quarantined in listener/broken/ ({}): {}",
            quarantined.len(),
            quarantined.join(", ")
        );
        println!("  Why: listener/broken/<name>.error.txt. After fixing: ox-connector queue requeue <name>");
    }
    if !skipped.is_empty() {
        println!("Skipped by an admin (listener/skipped/): {}", skipped.len());
    }
}

/// The items as aligned columns (`#`, state, file, what), one line each, through comfy-table:
/// a row without a file (`(no file)`) lines up like the others.
fn items_table(items: &[queue::QueueItem], header: bool) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    if header {
        table.set_header(["#", "STATE", "FILE", "WHAT"]);
    }
    for item in items {
        let what = match &item.error {
            Some(error) => error.clone(),
            None => format!("{} {} {}", item.object_type, item.operation, item.dn),
        };
        table.add_row([
            item.position.to_string(),
            item.state.label().to_owned(),
            item.file.clone().unwrap_or_else(|| "(no file)".into()),
            what,
        ]);
    }
    if let Some(position) = table.column_mut(0) {
        position.set_cell_alignment(comfy_table::CellAlignment::Right);
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_list(list: &QueueList) {
    println!(
        "{} listener files wait, {} changes on the JetStream queue.",
        list.pending_files, list.queued_messages
    );
    if list.items.is_empty() {
        println!("Nothing waits.");
        return;
    }
    println!("{}", items_table(&list.items, true));
    if list.truncated {
        println!("… more (use --limit).");
    }
}

fn print_detail(d: &ItemDetail) {
    let location = match d.location {
        Location::Pending => "waiting in the queue",
        Location::Broken => "quarantined (listener/broken/)",
        Location::Skipped => "skipped by an admin (listener/skipped/)",
    };
    println!("{}: {location}", d.file);
    println!("path: {}", d.path.display());
    if let Some(b) = &d.blocked {
        println!(
            "BLOCKING the queue since {} ({}): {}",
            time(b.since),
            plural(b.attempts, "attempt"),
            b.error
        );
    }
    if let Some(invalid) = &d.invalid {
        println!("not a valid listener file: {invalid}");
    }
    if !d.other_pending.is_empty() {
        println!(
            "other waiting changes of this object: {}",
            d.other_pending.join(", ")
        );
    }
    if let Some(note) = &d.note {
        println!("--- note ---\n{}", note.trim_end());
    }
    match &d.content {
        Some(content) => println!(
            "--- file (secrets redacted) ---\n{}",
            serde_json::to_string_pretty(content).unwrap_or_default()
        ),
        None => println!("--- file --- (not JSON)"),
    }
    match &d.remembered {
        Some(state) => println!(
            "--- last state applied to OX (secrets redacted) ---\n{}",
            serde_json::to_string_pretty(state).unwrap_or_default()
        ),
        None => println!("--- last state applied to OX --- none (new to the connector)"),
    }
}

async fn skip(common: &Common, id: String, reason: Option<String>, by: String) -> i32 {
    let client = match client(common, Duration::from_secs(10)) {
        Ok(client) => client.by(by.clone()),
        Err(e) => return failed(&e),
    };
    let request = SkipRequest { id, by, reason };
    let done = match client
        .post_json::<_, SkipResult>("/queue/skip", &request)
        .await
    {
        Ok(done) => done,
        Err(e) => return failed(&e),
    };
    // Wait (briefly) until the queue has let go of it.
    let mut moved_on = !done.was_blocked;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !moved_on && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(status) = client.status().await {
            moved_on = status
                .daemon
                .blocked
                .is_none_or(|b| b.file.as_deref() != Some(done.file.as_str()));
        }
    }
    if common.json {
        print_json(&serde_json::json!({"skipped": done, "queue_moved_on": moved_on}));
        return 0;
    }
    println!(
        "Skipped {} ({} {}); moved to {}.",
        done.file,
        done.object_type,
        done.dn,
        done.moved_to.display()
    );
    if done.was_blocked {
        if moved_on {
            println!("The queue moves again.");
        } else {
            println!("The queue lets go of it at its next attempt; see: ox-connector queue status");
        }
    }
    println!(
        "The change was not applied to OX. To apply it after all: ox-connector queue requeue {}",
        done.moved_to
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    0
}

/// How often a plain progress line is printed at most while the phase stays the same.
const PLAIN_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// The progress of a long operation on stderr (stdout keeps the report alone): a bar on a
/// terminal; otherwise a line like `reconcile: users in context 10: 4000/10000` at every phase
/// change and at most every [`PLAIN_PROGRESS_INTERVAL`].
enum ProgressView {
    /// One bar per phase, made with its length and position so that it is never drawn half
    /// set up.
    Bar {
        operation: &'static str,
        style: indicatif::ProgressStyle,
        bar: Option<indicatif::ProgressBar>,
    },
    Lines {
        operation: &'static str,
        /// The phase of the last line and when it was printed.
        last: Option<(String, std::time::Instant)>,
    },
}

impl ProgressView {
    fn new(operation: &'static str) -> Self {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Self::Lines {
                operation,
                last: None,
            };
        }
        let style = indicatif::ProgressStyle::with_template(
            "{prefix}: {msg} [{wide_bar}] {pos}/{len} ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("#>.");
        Self::Bar {
            operation,
            style,
            bar: None,
        }
    }

    fn show(&mut self, step: &Step) {
        match self {
            Self::Bar {
                operation,
                style,
                bar,
            } => match bar.as_ref().filter(|b| b.message() == step.phase) {
                Some(same_phase) => {
                    same_phase.set_length(step.total);
                    same_phase.set_position(step.done);
                }
                None => {
                    if let Some(done) = bar.take() {
                        done.finish_and_clear();
                    }
                    let next = indicatif::ProgressBar::new(step.total)
                        .with_style(style.clone())
                        .with_prefix(*operation)
                        .with_message(step.phase.clone())
                        .with_position(step.done);
                    next.tick();
                    *bar = Some(next);
                }
            },
            Self::Lines { operation, last } => {
                let now = std::time::Instant::now();
                if plain_line_due(last.as_ref(), step, now) {
                    eprintln!("{}", plain_progress_line(operation, step));
                    *last = Some((step.phase.clone(), now));
                }
            }
        }
    }

    /// Clears the bar, so that the report follows on a clean screen.
    fn finish(self) {
        if let Self::Bar { bar: Some(bar), .. } = self {
            bar.finish_and_clear();
        }
    }
}

/// Whether a plain progress line is printed for `step`: a new phase, or the last line is
/// [`PLAIN_PROGRESS_INTERVAL`] old.
fn plain_line_due(
    last: Option<&(String, std::time::Instant)>,
    step: &Step,
    now: std::time::Instant,
) -> bool {
    last.is_none_or(|(phase, at)| {
        *phase != step.phase || now.duration_since(*at) >= PLAIN_PROGRESS_INTERVAL
    })
}

/// `reconcile: users in context 10: 4000/10000`.
fn plain_progress_line(operation: &str, step: &Step) -> String {
    format!("{operation}: {}: {}/{}", step.phase, step.done, step.total)
}

/// Runs `ox-connector reconcile`; returns the exit code.
pub async fn reconcile(args: ReconcileArgs) -> i32 {
    let request = ReconcileRequest {
        context: args.context,
        apply: args.apply,
    };
    let mut view = ProgressView::new("reconcile");
    let result = async {
        client(&args.common, Duration::from_secs(3600))?
            .post_streaming::<_, ReconcileReport>("/reconcile", &request, |s| view.show(&s))
            .await
    }
    .await;
    view.finish();
    let report = match result {
        Ok(report) => report,
        Err(e) => return failed(&e),
    };
    let drift = report.drift.len();
    let code = if drift > 0 && !report.apply { 1 } else { 0 };
    if args.common.json {
        print_json(&report);
        return code;
    }
    let contexts = report
        .contexts
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "Reconcile{}: contexts {}; {} remembered objects compared; {} differences.",
        if report.apply { "" } else { " (dry run)" },
        if contexts.is_empty() {
            "-".into()
        } else {
            contexts
        },
        report.compared,
        drift
    );
    for note in &report.notes {
        println!("note: {note}");
    }
    if drift > 0 {
        println!(
            "{:<14} {:<9} {:>4}  {:<20} DETAIL",
            "KIND", "TYPE", "CTX", "NAME"
        );
        for d in &report.drift {
            let pending = if d.pending_change {
                " [change waiting]"
            } else {
                ""
            };
            let dn =
                d.dn.as_deref()
                    .map(|dn| format!(" ({dn})"))
                    .unwrap_or_default();
            println!(
                "{:<14} {:<9} {:>4}  {:<20} {}{dn}{pending}",
                d.kind.text(),
                d.object,
                d.context
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                d.name,
                d.detail
            );
        }
        if report.apply {
            println!(
                "Queued {} repairs; they are applied in order (see: ox-connector queue status). Objects unknown in OX were left alone.",
                report.repairs_queued
            );
        } else {
            println!("To repair: ox-connector reconcile --apply (missing and differing objects are applied again through the queue, stale ids corrected; objects unknown in OX are left alone).");
        }
    }
    code
}

/// Runs `ox-connector state …`; returns the exit code.
pub async fn state(args: StateArgs) -> i32 {
    let StateCommand::Import {
        common,
        from,
        apply,
    } = args.command;
    let from = std::path::absolute(&from).unwrap_or(from);
    let request = ImportRequest { from, apply };
    let mut view = ProgressView::new("state import");
    let result = async {
        client(&common, Duration::from_secs(3600))?
            .post_streaming::<_, ImportReport>("/state/import", &request, |s| view.show(&s))
            .await
    }
    .await;
    view.finish();
    let report = match result {
        Ok(report) => report,
        Err(e) => return failed(&e),
    };
    if common.json {
        print_json(&report);
        return 0;
    }
    let verb = if report.apply {
        "Imported"
    } else {
        "Would import (dry run)"
    };
    let mut by_type: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in report
        .entries
        .iter()
        .filter(|e| e.action == ImportAction::Import)
    {
        *by_type.entry(e.object_type.as_str()).or_default() += 1;
    }
    println!(
        "{verb} {} objects from {}: {}.",
        report.count(ImportAction::Import),
        report.from.display(),
        by_type
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "Already known (left alone): {}; not provisioned to OX: {}; unreadable files: {}.",
        report.count(ImportAction::AlreadyKnown),
        report.count(ImportAction::Ignored),
        report.problems.len()
    );
    for e in report.noted().filter(|e| e.action == ImportAction::Import) {
        println!(
            "  {} {} ({}): {}",
            e.object_type,
            e.dn,
            e.file,
            e.note.as_deref().unwrap_or_default()
        );
    }
    for p in &report.problems {
        println!("  unreadable: {p}");
    }
    if !report.apply {
        println!("To import: add --apply.");
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_without_a_file_lines_up_with_the_others() {
        let item = |position, file: Option<&str>, state| queue::QueueItem {
            position,
            sequence: None,
            file: file.map(str::to_owned),
            object_type: "users/user".into(),
            operation: "modify".into(),
            dn: "uid=a".into(),
            entry_uuid: "u".into(),
            state,
            error: None,
        };
        let text = items_table(
            &[
                item(
                    1,
                    Some("2025-01-01-00-00-00-000001.json"),
                    queue::ItemState::Blocked,
                ),
                item(12, None, queue::ItemState::FileRemoved),
            ],
            true,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let what = |line: &str| line.find("users/user").or_else(|| line.find("WHAT"));
        assert_eq!(what(lines[0]), what(lines[1]), "{text}");
        assert_eq!(what(lines[1]), what(lines[2]), "{text}");
    }

    #[test]
    fn plain_progress_lines_come_at_phase_changes_and_then_every_few_seconds() {
        let step = |phase: &str, done| Step {
            phase: phase.into(),
            done,
            total: 10000,
        };
        assert_eq!(
            plain_progress_line("reconcile", &step("users in context 10", 4000)),
            "reconcile: users in context 10: 4000/10000"
        );
        let start = std::time::Instant::now();
        let printed = ("users in context 10".to_owned(), start);
        assert!(plain_line_due(None, &step("contexts", 0), start));
        assert!(!plain_line_due(
            Some(&printed),
            &step("users in context 10", 10),
            start + Duration::from_secs(1)
        ));
        assert!(plain_line_due(
            Some(&printed),
            &step("users in context 10", 10),
            start + PLAIN_PROGRESS_INTERVAL
        ));
        assert!(plain_line_due(
            Some(&printed),
            &step("groups in context 10", 0),
            start + Duration::from_secs(1)
        ));
    }

    #[test]
    fn progress_shows_the_pace_and_the_time_left() {
        assert_eq!(progress_line(0, 100), None);
        assert_eq!(
            progress_line(4286, 2100).unwrap(),
            "Progress: 2100 applied in the last minute (35.0/s); 4286 wait, about 2 min left."
        );
        assert!(progress_line(5, 0).unwrap().contains("no estimate"));
        assert_eq!(
            progress_line(3, 4).unwrap(),
            "Progress: 4 applied in the last minute (4/min); 3 wait, about 45 s left."
        );
        assert_eq!(
            progress_bar(15, 30),
            "[###############...............]  50 %"
        );
    }

    #[test]
    fn a_store_without_space_is_not_told_to_drain_by_itself() {
        let disk = queue_full_advice(
            "publish failed: insufficient storage resources available (code 503, error code 10047)",
        );
        assert!(
            disk.contains("free space") && !disk.contains("It drains"),
            "{disk}"
        );
        let full = queue_full_advice("no space left on the file system of the NATS store");
        assert!(!full.contains("It drains"), "{full}");
        let limit = queue_full_advice("publish failed: maximum messages exceeded (code 503)");
        assert!(limit.contains("It drains"), "{limit}");
    }

    #[test]
    fn durations_read_like_an_admin_says_them() {
        assert_eq!(human(Duration::from_secs(5)), "5 s");
        assert_eq!(human(Duration::from_secs(125)), "2 min");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 720)), "3 h 12 min");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 7200)), "2 d 2 h");
    }

    #[test]
    fn a_blocked_queue_says_what_fails_how_to_go_on_and_how_many_more_fail() {
        let since = chrono::Utc::now();
        let mut status = DaemonStatus {
            pid: 1,
            started: since,
            updated: since,
            blocked: Some(crate::status::Blocked {
                file: Some("2026-12-03-06-00-00-000001.json".into()),
                object_type: "users/user".into(),
                dn: "uid=anna,dc=example,dc=org".into(),
                entry_uuid: "u-1".into(),
                error: "No such context 10".into(),
                error_kind: "rejected".into(),
                since,
                attempts: 3,
            }),
            also_blocked: 0,
            also_blocked_files: Vec::new(),
            queue_full: None,
            paused: None,
            ox_calls: None,
        };
        let lines = blocked_lines(&status);
        assert!(lines[0].starts_with("BLOCKED since"), "{lines:?}");
        assert!(lines
            .iter()
            .any(|l| l.contains("uid=anna,dc=example,dc=org")));
        assert!(lines
            .iter()
            .any(|l| l.contains("ox-connector queue skip 2026-12-03-06-00-00-000001.json")));
        assert!(!lines.iter().any(|l| l.contains("failing as well")));

        status.also_blocked = 2;
        let lines = blocked_lines(&status);
        assert_eq!(
            lines.last().map(String::as_str),
            Some(
                "  2 more changes failing as well (changes that do not wait for this one): \
                 ox-connector queue list"
            )
        );
    }

    #[test]
    fn ids_are_encoded_for_the_path() {
        assert_eq!(
            encode("2025-01-01-00-00-00-000001.json"),
            "2025-01-01-00-00-00-000001.json"
        );
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
