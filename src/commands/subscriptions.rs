//! `ox-connector subscriptions list|add|remove`: manages the subscriptions of the running daemon
//! through its admin API (found from `--data-dir`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::admin::client::{AdminClient, AdminClientError};
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

/// Runs the subcommand; prints to stdout.
pub async fn run(args: SubscriptionsArgs) -> Result<(), AdminClientError> {
    let client = AdminClient::from_data_dir(&args.data_dir, Duration::from_secs(30))?;
    match args.action {
        SubscriptionsAction::List => {
            let all = client.subscriptions().await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
            } else {
                print_table(&all);
            }
        }
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
            let subscription = client.add_subscription(&request).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&subscription).unwrap_or_default()
                );
            } else {
                println!(
                    "Registered {}: queue SUB_{}, NATS user subscriber-{} (password in {}/secrets/nats-users.json).",
                    subscription.name,
                    subscription.name,
                    subscription.name,
                    args.data_dir.display()
                );
            }
        }
        SubscriptionsAction::Remove { name } => {
            client.remove_subscription(&name).await?;
            if args.json {
                println!("{}", serde_json::json!({"removed": name}));
            } else {
                println!("Removed {name} with its queue.");
            }
        }
    }
    Ok(())
}

/// `subscriptions list` as a table: one line per subscription.
fn print_table(all: &[SubscriptionReport]) {
    println!(
        "{:<20} {:<6} {:<8} {:>8} {:>11}  {:<8} topics",
        "name", "realm", "prefill", "queued", "redelivered", "state"
    );
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
        println!(
            "{:<20} {:<6} {:<8} {:>8} {:>11}  {:<8} {}",
            s.name,
            s.realm,
            prefill,
            report.status.queued,
            report.status.redelivered,
            state,
            s.topics.join(" ")
        );
    }
}
