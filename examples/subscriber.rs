//! An example subscriber of the provisioning queue: a template a team can copy.
//!
//! It connects to NATS as its own user, reads its own queue (`SUB_<name>`, durable consumer
//! `<name>`) one message at a time, prints each change and acknowledges it — and only then takes
//! the next one. If it stops without acknowledging, the message comes again.
//!
//! ```sh
//! # register it (the daemon creates the queue and the NATS user subscriber-crm):
//! ox-connector subscriptions add crm --topic 'users/.*' --topic groups/group --prefill
//! # run it (its password is in <data-dir>/secrets/nats-users.json):
//! cargo run --example subscriber -- --name crm --nats-url nats://127.0.0.1:PORT \
//!     --users-file /var/lib/univention-appcenter/apps/ox-connector/data/secrets/nats-users.json
//! ```

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use clap::Parser;
use futures::StreamExt;
use serde_json::Value;

#[derive(Debug, Parser)]
struct Args {
    /// The subscriber's name, as registered.
    #[arg(long)]
    name: String,
    /// The NATS server (the daemon's embedded one listens on 127.0.0.1).
    #[arg(long, env = "NATS_URL")]
    nats_url: String,
    /// The daemon's NATS users file, to read this subscriber's password from.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// Exit after this many messages (default: run until interrupted).
    #[arg(long)]
    count: Option<usize>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let user = format!("subscriber-{}", args.name);
    let mut options = async_nats::ConnectOptions::new();
    if let Some(file) = &args.users_file {
        let users: Value = serde_json::from_slice(&std::fs::read(file)?)?;
        let password = users[&user]["password"]
            .as_str()
            .ok_or_else(|| format!("{user} is not in {}", file.display()))?;
        // Replies to this user's requests arrive under its own inbox prefix: the only
        // subjects it may subscribe to.
        options = async_nats::ConnectOptions::with_user_and_password(user.clone(), password.into())
            .custom_inbox_prefix(format!("_INBOX_{user}"));
    }
    let client = options.name(user).connect(&args.nats_url).await?;
    let js = jetstream::new(client);
    let stream = js.get_stream(format!("SUB_{}", args.name)).await?;
    let consumer: PullConsumer = stream.get_consumer(&args.name).await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(1)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await?;
    let mut seen = 0;
    while let Some(message) = messages.next().await {
        let message = message?;
        let change: Value = serde_json::from_slice(&message.payload)?;
        println!(
            "{} {} {} ({})",
            change["op"].as_str().unwrap_or("?"),
            change["topic"].as_str().unwrap_or("?"),
            change["dn"].as_str().unwrap_or("?"),
            change["object_id"].as_str().unwrap_or("?"),
        );
        // Work done: acknowledge, and wait until the server confirmed it.
        message.double_ack().await?;
        seen += 1;
        if args.count.is_some_and(|count| seen >= count) {
            break;
        }
    }
    Ok(())
}
