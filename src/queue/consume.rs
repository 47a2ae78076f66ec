//! The ordered consumer: takes messages from the head of the queue, applies them, and only
//! then lets go of each.
//!
//! The consumer holds up to `max_in_flight` messages (the JetStream consumer's
//! `max_ack_pending`). Each held message gets its [`Scope`](crate::apply::Scope) from the
//! applier — the scopes of all messages delivered together are read at the same time, since
//! reading them one by one took most of the consumer's time — and [`super::order`] decides
//! which may be applied now: messages that touch nothing in common (users with names of their
//! own, also in one OX context) are applied at the same time, up to `concurrency` at once; the
//! others in stream order. With `concurrency = 1` every message is applied alone, one after the
//! other. A message refused because a name is still taken ([`crate::apply::ApplyError::name_taken`]) is tried
//! again as soon as an earlier message finished.
//!
//! For each message:
//! 1. its listener file is gone (an admin removed it) → acknowledge and log it as skipped;
//! 2. otherwise call the [`Applier`]; while it works, report progress so the server does not
//!    redeliver;
//! 3. on success → `done` deletes the listener file → acknowledge;
//! 4. on failure → record "blocked" in the status, wait the retry delay (reporting progress),
//!    then go to 1 with the **same** message. Whatever depends on it waits meanwhile.
//!
//! At start, the consumer is created afresh by the caller
//! ([`super::recreate_subscriber_consumer`]), so messages that were in flight when the daemon
//! stopped come first and in order. Shutdown is checked only between steps: an apply that
//! started is finished and its result recorded; a message waiting for its retry is handed back
//! (nak); held messages that have not started are left to the next start.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use chrono::Utc;
use futures::FutureExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::order::Order;
use crate::apply::{Applier, ApplyErrorKind, Outcome, Scope};
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
    /// Most messages applied at the same time (1: one after the other).
    pub concurrency: usize,
    /// Most messages held (delivered, not yet acknowledged); the consumer's `max_ack_pending`.
    pub max_in_flight: usize,
}

impl ConsumeSettings {
    /// How often a held message is reported as in progress: three times per ack wait.
    fn progress_every(&self) -> Duration {
        self.ack_wait / 3
    }

    /// The consumer's `max_ack_pending` for these settings.
    pub fn max_ack_pending(&self) -> i64 {
        if self.concurrency <= 1 {
            1
        } else {
            i64::try_from(self.max_in_flight.max(self.concurrency)).unwrap_or(i64::MAX)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// What waits for that message would wait for ever; the caller starts the consumer afresh,
    /// which delivers the message again.
    #[error("a task applying a message failed: {0}")]
    ApplyTask(String),
}

/// What every apply task and scope reader shares.
struct Shared<A> {
    applier: Arc<A>,
    settings: ConsumeSettings,
    status: StatusBoard,
    retry_now: Arc<Notify>,
    shutdown: CancellationToken,
    /// The stream sequence of every change applied, as it finishes: a change refused because
    /// a name is still taken is tried again once an earlier change finished.
    finished: tokio::sync::broadcast::Sender<u64>,
}

/// A message the consumer holds.
struct Held {
    delivered: jetstream::Message,
    message: Arc<ProvisioningMessage>,
}

/// Consumes the queue until `shutdown` is cancelled. `retry_now` cuts a retry wait short.
/// `client` is the client `consumer` was opened with.
pub async fn run<A: Applier>(
    client: &async_nats::Client,
    consumer: PullConsumer,
    applier: Arc<A>,
    settings: ConsumeSettings,
    status: StatusBoard,
    retry_now: Arc<Notify>,
    shutdown: CancellationToken,
) -> Result<(), ConsumeError> {
    let max_held = usize::try_from(settings.max_ack_pending()).unwrap_or(1);
    let mut messages = super::Pulled::batched(client, &consumer, max_held);
    let progress_every = settings.progress_every();
    let concurrency = settings.concurrency.max(1);
    let shared = Arc::new(Shared {
        applier,
        settings,
        status,
        retry_now,
        shutdown: shutdown.clone(),
        finished: tokio::sync::broadcast::channel(max_held.max(16)).0,
    });
    let mut order: Order<Held> = Order::default();
    let mut running: JoinSet<u64> = JoinSet::new();
    // Delivered messages whose scopes are being read, all at the same time.
    let mut scoping: Option<Scoping> = None;
    // Applies that finished while scopes were being read: recorded only once those messages are
    // admitted, because a scope read before such an apply's writes must still inherit from it.
    let mut finished_meanwhile: Vec<u64> = Vec::new();
    // Delivered after a message that touches everything, in the same batch: their scopes may
    // be stale once it is applied, so they are read again then.
    let mut unscoped: Vec<jetstream::Message> = Vec::new();
    let mut progress = tokio::time::interval(progress_every);
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        while running.len() < concurrency {
            let Some((sequence, held)) = order.next_ready() else {
                break;
            };
            let (delivered, message) = (held.delivered.clone(), held.message.clone());
            let shared = shared.clone();
            running.spawn(async move {
                handle(sequence, delivered, &message, &shared).await;
                sequence
            });
        }
        let may_admit = scoping.is_none() && order.admits();
        if may_admit && !unscoped.is_empty() {
            let batch = std::mem::take(&mut unscoped);
            scoping = Some(scope_all(batch, shared.clone()));
            continue;
        }
        let room = max_held.saturating_sub(order.len() + unscoped.len());
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Ok(()),
            Some(finished) = running.join_next() => match finished {
                Ok(sequence) if scoping.is_some() => {
                    let _ = shared.finished.send(sequence);
                    finished_meanwhile.push(sequence);
                }
                Ok(sequence) => {
                    let _ = shared.finished.send(sequence);
                    order.finish(sequence);
                }
                Err(e) => break Err(ConsumeError::ApplyTask(e.to_string())),
            },
            scoped = async {
                match scoping.as_mut() {
                    Some(scoping) => scoping.await,
                    None => std::future::pending().await,
                }
            } => {
                scoping = None;
                admit(scoped, &mut order, &mut unscoped);
                for sequence in finished_meanwhile.drain(..) {
                    order.finish(sequence);
                }
            },
            next = messages.next(&shutdown), if may_admit && room > 0 => {
                match next {
                    Some(first) => {
                        // With whatever else has arrived already.
                        let mut batch = vec![first];
                        while batch.len() < room {
                            match messages.next(&shutdown).now_or_never() {
                                Some(Some(delivered)) => batch.push(delivered),
                                _ => break,
                            }
                        }
                        scoping = Some(scope_all(batch, shared.clone()));
                    }
                    None => break Ok(()),
                }
            },
            _ = progress.tick() => {
                // Held messages not started yet; those being applied report their own.
                let waiting = order.waiting().map(|held| &held.delivered).chain(&unscoped);
                for delivered in waiting {
                    if let Err(e) = delivered.ack_with(AckKind::Progress).await {
                        tracing::debug!(error = %e, "Cannot report progress to JetStream.");
                    }
                }
            }
        }
    };
    // Let started applies finish (a message waiting for its retry is handed back).
    while running.join_next().await.is_some() {}
    order.drain_waiting();
    result
}

/// Messages being given their scopes: sequence, scope, message.
type Scoping = Pin<Box<dyn Future<Output = Vec<(u64, Scope, Held)>> + Send>>;

/// Decodes `batch` and reads the scope of each message, all at the same time.
fn scope_all<A: Applier>(batch: Vec<jetstream::Message>, shared: Arc<Shared<A>>) -> Scoping {
    Box::pin(async move {
        let scoped = batch.into_iter().map(|delivered| {
            let shared = shared.clone();
            async move {
                let sequence = delivered.info().map(|i| i.stream_sequence).unwrap_or(0);
                let message = decode(&delivered, sequence).await?;
                let scope = if shared.settings.concurrency <= 1 {
                    Scope::Everything
                } else {
                    shared.applier.scope(&message).await
                };
                let message = Arc::new(message);
                Some((sequence, scope, Held { delivered, message }))
            }
        });
        futures::future::join_all(scoped)
            .await
            .into_iter()
            .flatten()
            .collect()
    })
}

/// The message in `delivered`; `None` (and it is dropped from the queue) if it cannot be
/// decoded.
async fn decode(delivered: &jetstream::Message, sequence: u64) -> Option<ProvisioningMessage> {
    match serde_json::from_slice(&delivered.payload) {
        Ok(message) => Some(message),
        Err(error) => {
            events::MessageUndecodable {
                subject: delivered.subject.as_str(),
                sequence,
                error: &error,
            }
            .emit();
            // It can never be applied, and it did not come from a listener file.
            let _ = delivered.ack_with(AckKind::Term).await;
            None
        }
    }
}

/// Adds scoped messages to `order`, in stream order. Those after a message that touches
/// everything go to `unscoped`, to be given their scopes again once it is applied.
fn admit(
    scoped: Vec<(u64, Scope, Held)>,
    order: &mut Order<Held>,
    unscoped: &mut Vec<jetstream::Message>,
) {
    for (sequence, scope, held) in scoped {
        if let Some(earlier) = order.get_mut(sequence) {
            // Delivered again (the server missed an ack or a progress report): keep the newer
            // delivery's handle, it is the one the server expects the ack on.
            earlier.delivered = held.delivered;
        } else if order.admits() {
            order.admit(sequence, scope, held);
        } else {
            unscoped.push(held.delivered);
        }
    }
}

/// Applies one decoded message until it is acknowledged or handed back.
async fn handle<A: Applier>(
    sequence: u64,
    delivered: jetstream::Message,
    message: &ProvisioningMessage,
    shared: &Shared<A>,
) {
    let Shared {
        applier,
        settings,
        status,
        retry_now,
        shutdown,
        finished,
    } = shared;
    let progress_every = settings.progress_every();
    let mut attempts = 0u64;
    let mut blocked_since = None;
    loop {
        if !source_file_exists(message, settings) {
            events::MessageSkipped { message }.emit();
            acknowledge(&delivered).await;
            status.clear_blocked(sequence);
            return;
        }
        attempts += 1;
        // Before the attempt, so that a change finishing while it fails is not missed.
        let finished_since = finished.subscribe();
        let started = std::time::Instant::now();
        let result = with_progress(&delivered, progress_every, applier.apply(message)).await;
        match result {
            Ok(outcome) => {
                if let Some(file) = message.source_file() {
                    if let Err(error) = crate::done::delete_applied(&settings.listener_dir, file) {
                        events::FileDeleteError { error: &error }.emit();
                    }
                }
                acknowledge(&delivered).await;
                status.clear_blocked(sequence);
                let ignored = match &outcome {
                    Outcome::Applied => None,
                    Outcome::Ignored(reason) => Some(reason.as_str()),
                };
                events::MessageApplied {
                    message,
                    attempts,
                    ignored,
                    elapsed: started.elapsed(),
                }
                .emit();
                return;
            }
            Err(error) => {
                events::MessageApplyError {
                    message,
                    error: &error,
                    attempts,
                    retry_in: settings.retry_delay,
                }
                .emit();
                let since = *blocked_since.get_or_insert_with(Utc::now);
                status.set_blocked(
                    sequence,
                    Blocked {
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
                    },
                );
                let wait = tokio::time::sleep(settings.retry_delay);
                let freed = earlier_finished(finished_since, sequence, error.name_taken);
                let waited = tokio::select! {
                    () = shutdown.cancelled() => false,
                    () = retry_now.notified() => true,
                    () = freed => true,
                    () = with_progress(&delivered, progress_every, wait) => true,
                };
                if !waited {
                    // Redeliver it first at the next start instead of after the ack wait.
                    let _ = delivered.ack_with(AckKind::Nak(None)).await;
                    return;
                }
            }
        }
    }
}

/// Returns once a change before `sequence` finished, if `name_taken` (it may have freed the
/// name); never otherwise.
async fn earlier_finished(
    mut finished: tokio::sync::broadcast::Receiver<u64>,
    sequence: u64,
    name_taken: bool,
) {
    use tokio::sync::broadcast::error::RecvError;
    if !name_taken {
        return std::future::pending().await;
    }
    loop {
        match finished.recv().await {
            Ok(other) if other < sequence => return,
            Ok(_) => {}
            // Missed some: one of them may have been earlier.
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// Cuts the retry wait of every failing change short (`retry_now` as given to [`run`]). With
/// changes of several contexts failing at once, each waits for its own retry.
pub fn retry_all_now(retry_now: &Notify) {
    retry_now.notify_waiters();
    // Also for a change that failed just now and is not waiting yet (it would miss the above).
    retry_now.notify_one();
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

/// Acknowledges without waiting for the server's confirmation (a round trip per change that
/// changes nothing): a lost ack only means the message comes again; its listener file is gone
/// by then, so it is skipped.
async fn acknowledge(delivered: &jetstream::Message) {
    if let Err(e) = delivered.ack().await {
        tracing::warn!(error = %e, "Cannot acknowledge a change; it may be delivered again and will then be skipped.");
    }
}

fn source_file_exists(message: &ProvisioningMessage, settings: &ConsumeSettings) -> bool {
    match message.source_file() {
        // symlink_metadata: a file that is there counts, whatever it points to.
        Some(file) => std::fs::symlink_metadata(settings.listener_dir.join(file)).is_ok(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_retry_request_wakes_every_waiting_change_and_one_about_to_wait() {
        let retry_now = Arc::new(Notify::new());
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let retry_now = retry_now.clone();
                tokio::spawn(async move { retry_now.notified().await })
            })
            .collect();
        // One thread: the three run (and start waiting) when this task yields.
        tokio::task::yield_now().await;
        retry_all_now(&retry_now);
        for task in waiting {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("every waiting change is woken")
                .unwrap();
        }
        retry_all_now(&retry_now);
        tokio::time::timeout(Duration::from_secs(5), retry_now.notified())
            .await
            .expect("a change that starts waiting just after the request is woken too");
    }
}
