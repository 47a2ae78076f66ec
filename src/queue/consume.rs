//! The ordered consumer: takes the head of the queue, applies it, and only then lets go of it.
//!
//! For each message, in stream order and one at a time (`max_ack_pending = 1`):
//! 1. its listener file is gone (an admin removed it) → acknowledge and log it as skipped;
//! 2. otherwise call the [`Applier`]; while it works, report progress so the server does not
//!    redeliver;
//! 3. on success → `done` deletes the listener file → acknowledge (and wait for the server to
//!    confirm the ack) → next message;
//! 4. on failure → record "blocked" in the status, wait the retry delay (reporting progress),
//!    then go to 1 with the **same** message. Nothing behind it moves meanwhile.
//!
//! Shutdown is checked only between steps: an apply that started is finished and its result
//! recorded; a message waiting for its retry is handed back (nak) so it comes first at restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::apply::{Applier, ApplyErrorKind, Outcome};
use crate::message::ProvisioningMessage;
use crate::status::{Blocked, StatusBoard};
use crate::telemetry::events;

/// Settings of the ordered consumer.
#[derive(Debug, Clone)]
pub struct ConsumeSettings {
    /// The folder the listener files are in (to check that a file still exists and delete it).
    pub listener_dir: PathBuf,
    /// Wait between two attempts at a failing message.
    pub retry_delay: Duration,
    /// The consumer's ack wait; progress is reported three times per period.
    pub ack_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("cannot read from the JetStream consumer: {0}")]
    Stream(String),
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Applied (or nothing to do) and acknowledged.
    Applied,
    /// Its listener file was gone; acknowledged without applying.
    Skipped,
    /// Shutdown came while it waited for a retry; handed back to the server.
    HandedBack,
}

/// Consumes the queue until `shutdown` is cancelled. `retry_now` cuts a retry wait short.
pub async fn run<A: Applier>(
    consumer: PullConsumer,
    applier: Arc<A>,
    settings: ConsumeSettings,
    status: StatusBoard,
    retry_now: Arc<Notify>,
    shutdown: CancellationToken,
) -> Result<(), ConsumeError> {
    let mut messages = super::OneAtATime::new(&consumer)
        .await
        .map_err(ConsumeError::Stream)?;
    loop {
        let Some(message) = messages
            .next(&shutdown)
            .await
            .map_err(ConsumeError::Stream)?
        else {
            return Ok(());
        };
        handle(
            message, &*applier, &settings, &status, &retry_now, &shutdown,
        )
        .await;
    }
}

/// Handles one delivered message until it is acknowledged or handed back.
pub async fn handle<A: Applier>(
    delivered: jetstream::Message,
    applier: &A,
    settings: &ConsumeSettings,
    status: &StatusBoard,
    retry_now: &Notify,
    shutdown: &CancellationToken,
) -> Handled {
    let message: ProvisioningMessage = match serde_json::from_slice(&delivered.payload) {
        Ok(message) => message,
        Err(error) => {
            let sequence = delivered.info().map(|i| i.stream_sequence).unwrap_or(0);
            events::MessageUndecodable {
                subject: delivered.subject.as_str(),
                sequence,
                error: &error,
            }
            .emit();
            // It can never be applied, and it did not come from a listener file.
            let _ = delivered.ack_with(AckKind::Term).await;
            return Handled::Skipped;
        }
    };
    let progress_every = settings.ack_wait / 3;
    let mut attempts = 0u64;
    let mut blocked_since = None;
    loop {
        if !source_file_exists(&message, settings) {
            events::MessageSkipped { message: &message }.emit();
            acknowledge(&delivered).await;
            status.clear_blocked();
            return Handled::Skipped;
        }
        attempts += 1;
        let started = std::time::Instant::now();
        let result = with_progress(&delivered, progress_every, applier.apply(&message)).await;
        match result {
            Ok(outcome) => {
                if let Some(file) = message.source_file() {
                    if let Err(error) = crate::done::delete_applied(&settings.listener_dir, file) {
                        events::FileDeleteError { error: &error }.emit();
                    }
                }
                acknowledge(&delivered).await;
                status.clear_blocked();
                let ignored = match &outcome {
                    Outcome::Applied => None,
                    Outcome::Ignored(reason) => Some(reason.as_str()),
                };
                events::MessageApplied {
                    message: &message,
                    attempts,
                    ignored,
                    elapsed: started.elapsed(),
                }
                .emit();
                return Handled::Applied;
            }
            Err(error) => {
                events::MessageApplyError {
                    message: &message,
                    error: &error,
                    attempts,
                    retry_in: settings.retry_delay,
                }
                .emit();
                let since = *blocked_since.get_or_insert_with(Utc::now);
                status.set_blocked(Blocked {
                    file: message.source_file().map(str::to_owned),
                    object_type: message.topic.clone(),
                    dn: message.dn.clone(),
                    entry_uuid: message.object_id.clone(),
                    error: error.message.clone(),
                    error_kind: match error.kind {
                        ApplyErrorKind::Transient => "transient".into(),
                        ApplyErrorKind::Rejected => "rejected".into(),
                    },
                    since,
                    attempts,
                });
                let wait = tokio::time::sleep(settings.retry_delay);
                let waited = tokio::select! {
                    () = shutdown.cancelled() => false,
                    () = retry_now.notified() => true,
                    () = with_progress(&delivered, progress_every, wait) => true,
                };
                if !waited {
                    // Redeliver it first at the next start instead of after the ack wait.
                    let _ = delivered.ack_with(AckKind::Nak(None)).await;
                    return Handled::HandedBack;
                }
            }
        }
    }
}

/// Runs `work`, telling the server every `every` that the message is still being worked on.
async fn with_progress<T>(
    delivered: &jetstream::Message,
    every: Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = ticker.tick() => {
                if let Err(e) = delivered.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %e, "Cannot report progress to JetStream.");
                }
            }
        }
    }
}

/// Acknowledges and waits for the server's confirmation. A lost ack only means the message
/// comes again; its listener file is gone by then, so it is skipped.
async fn acknowledge(delivered: &jetstream::Message) {
    if let Err(e) = delivered.double_ack().await {
        tracing::warn!(error = %e, "JetStream did not confirm an acknowledgement; the change may be delivered again and will then be skipped.");
    }
}

fn source_file_exists(message: &ProvisioningMessage, settings: &ConsumeSettings) -> bool {
    match message.source_file() {
        // symlink_metadata: a file that is there counts, whatever it points to.
        Some(file) => std::fs::symlink_metadata(settings.listener_dir.join(file)).is_ok(),
        None => true,
    }
}
