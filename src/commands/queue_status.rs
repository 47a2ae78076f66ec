//! `ox-connector queue status` and `queue watch`: one screen on whether the daemon runs, what
//! waits, what blocks and why, and the quarantined files. When the daemon does not answer, the
//! screen is made from the listener folder and the last status file it wrote.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use super::common::{client, human, plural, print_json, since, time, Common, NOT_RUNNING};
use super::queue::items_table;
use crate::admin::client::AdminClientError;
use crate::admin::StatusReport;
use crate::ops::queue::{self, QueueList};
use crate::ops::ready::Readiness;
use crate::status::DaemonStatus;

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

pub(super) async fn status(common: &Common) -> i32 {
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
            println!(
                "ox-connector is NOT running ({}).",
                crate::telemetry::error_chain(&error)
            );
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
pub(super) async fn watch(common: &Common, interval: Duration) -> i32 {
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

pub(super) fn paused_line(paused: &crate::status::Paused) -> String {
    match paused.until {
        Some(until) => format!(
            "PAUSED: OX provisioning is paused until {} (in {}).",
            time(until),
            human((until - Utc::now()).to_std().unwrap_or_default())
        ),
        None => "PAUSED: OX provisioning is paused until `ox-connector queue resume`.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
