//! `ox-connector queue …`: list, show, skip, retry, pause, resume and requeue the waiting
//! changes of a running daemon through its admin API; `queue status` and `queue watch` are in
//! `queue_status`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::common::{
    answer, client, encode, failed, plural, print_json, time, who_runs_this, Common,
};
use super::queue_status::{paused_line, status, watch};
use crate::ops::queue::{
    self, ItemDetail, Location, QueueList, RequeueRequest, RequeueResult, SkipRequest, SkipResult,
};

/// `ox-connector queue`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub command: QueueCommand,
}

// The docs are the --help text, which clap prints verbatim: `<name>` there is a placeholder for
// admins, not HTML.
#[allow(rustdoc::invalid_html_tags)]
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

/// The items as aligned columns (`#`, state, file, what), one line each, through comfy-table:
/// a row without a file (`(no file)`) lines up like the others.
pub(super) fn items_table(items: &[queue::QueueItem], header: bool) -> String {
    let mut table = super::common::plain_table();
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
    super::common::table_text(table, &[0])
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
}
