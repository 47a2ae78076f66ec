//! `ox-connector subscriptions list|add|remove`: manages the subscriptions of the running daemon
//! through its admin API (found from `--data-dir`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::common::{answer, failed};
use crate::admin::client::AdminClient;
use crate::admin::subscriptions::SubscriptionReport;
use crate::config::DEFAULT_DATA_DIR;
use crate::dispatch::{PrefillStatus, SubscriptionRequest};

/// Flags of `ox-connector subscriptions`.
#[derive(Debug, Args)]
pub struct SubscriptionsArgs {
    /// The daemon's data directory (also accepted after the action, like every command's).
    #[arg(long, global = true, env = "OX_CONNECTOR_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: SubscriptionsAction,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsAction {
    /// List the subscriptions with their queue state.
    List,
    /// Register a subscription; its queue receives the matching messages from now on.
    Add {
        /// Name of the subscriber (a-z, 0-9, - and _); also its NATS user `subscriber-<name>`.
        name: String,
        /// Topic pattern, a regular expression matched against the whole topic
        /// (`users/user`, `users/.*`); repeat for more.
        #[arg(long = "topic", required = true)]
        topics: Vec<String>,
        /// Realm of the topics.
        #[arg(long, default_value = "udm")]
        realm: String,
        /// Send the current state of every matching object first.
        #[arg(long)]
        prefill: bool,
        /// Field pattern to remove from the objects before they reach this subscriber
        /// (`*` wildcards; repeat for more). Default: password hashes. `--redact none`: nothing.
        #[arg(long = "redact")]
        redact: Vec<String>,
        /// Most messages its queue holds (default: the daemon's queue limit).
        #[arg(long)]
        max_messages: Option<i64>,
        /// Most bytes its queue holds (default: the daemon's queue limit).
        #[arg(long)]
        max_bytes: Option<i64>,
    },
    /// Remove a subscription with its queue and NATS user.
    Remove { name: String },
}

/// Runs the subcommand: prints the answer (JSON with `--json`) to stdout, a failure with its
/// causes to stderr, and returns the exit code of every admin command
/// ([`super::common`]: 0 done, 1 refused, 2 the daemon is not running).
pub async fn run(args: SubscriptionsArgs) -> i32 {
    let client = match AdminClient::from_data_dir(&args.data_dir, Duration::from_secs(30)) {
        Ok(client) => client,
        Err(e) => return failed(&e),
    };
    match args.action {
        SubscriptionsAction::List => answer(client.subscriptions().await, args.json, |all| {
            println!("{}", subscriptions_table(all))
        }),
        SubscriptionsAction::Add {
            name,
            topics,
            realm,
            prefill,
            redact,
            max_messages,
            max_bytes,
        } => {
            let redact = match redact.as_slice() {
                [] => None,
                [none] if none == "none" => Some(Vec::new()),
                _ => Some(redact),
            };
            let request = SubscriptionRequest {
                name,
                realm,
                topics,
                prefill,
                redact,
                max_messages,
                max_bytes,
            };
            let data_dir = args.data_dir.display();
            answer(client.add_subscription(&request).await, args.json, |s| {
                println!(
                    "Registered {name}: queue SUB_{name}, NATS user subscriber-{name} (password in \
                     {data_dir}/secrets/nats-users.json).",
                    name = s.name
                )
            })
        }
        SubscriptionsAction::Remove { name } => {
            let result = client.remove_subscription(&name).await;
            let removed = result.map(|()| serde_json::json!({ "removed": name }));
            answer(removed, args.json, |_| {
                println!("Removed {name} with its queue.")
            })
        }
    }
}

/// `subscriptions list` as aligned columns through comfy-table, one line per subscription.
fn subscriptions_table(all: &[SubscriptionReport]) -> String {
    let mut table = super::common::plain_table();
    table.set_header([
        "NAME",
        "REALM",
        "PREFILL",
        "QUEUED",
        "REDELIVERED",
        "STATE",
        "TOPICS",
    ]);
    for report in all {
        let s = &report.subscription;
        let prefill = match s.prefill_status {
            PrefillStatus::NotRequested => "no",
            PrefillStatus::Pending => "pending",
            PrefillStatus::Done => "done",
        };
        let state = if report.status.full.is_some() {
            "FULL"
        } else {
            "ok"
        };
        table.add_row([
            s.name.clone(),
            s.realm.clone(),
            prefill.to_owned(),
            report.status.queued.to_string(),
            report.status.redelivered.to_string(),
            state.to_owned(),
            s.topics.join(" "),
        ]);
    }
    super::common::table_text(table, &[3, 4])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, queued: u64, full: bool) -> SubscriptionReport {
        serde_json::from_value(serde_json::json!({
            "subscription": {
                "name": name, "realm": "udm", "topics": ["users/user", "groups/group"],
                "prefill": false, "redact": [],
                "limits": {"max_messages": 1000, "max_bytes": 1_000_000},
                "prefill_status": "not_requested", "start_after": 0,
                "created": "2026-12-06T08:00:00Z"
            },
            "status": {
                "full": if full { Some("the queue is full") } else { None },
                "dispatched": 0, "queued": queued, "redelivered": 0
            }
        }))
        .expect("a subscription report")
    }

    #[test]
    fn the_table_lines_up_names_and_counts_of_any_length() {
        let table = subscriptions_table(&[report("a", 7, false), report("audit-log", 12345, true)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let topics_at: Vec<usize> = lines[1..]
            .iter()
            .map(|l| {
                l.find("users/user")
                    .unwrap_or_else(|| panic!("no topics: {table}"))
            })
            .collect();
        assert_eq!(topics_at[0], topics_at[1], "{table}");
        // Counts are right-aligned: the last digit of 7 under the last digit of 12345.
        let end_of = |line: &str, count: &str| {
            let at = line
                .find(count)
                .unwrap_or_else(|| panic!("{count:?} missing: {table}"));
            at + count.len()
        };
        assert_eq!(
            end_of(lines[1], " 7 "),
            end_of(lines[2], "12345 "),
            "{table}"
        );
        assert!(lines[2].contains("FULL"), "{table}");
    }
}
