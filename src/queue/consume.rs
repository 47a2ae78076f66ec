//! The ordered consumer: takes messages from the head of the queue, applies them, and only
//! then lets go of each.
//!
//! The consumer holds up to `max_in_flight` messages (the JetStream consumer's
//! `max_ack_pending`). Each held message gets its [`Scope`] from the
//! applier — the scopes of all messages delivered together are read at the same time, since
//! reading them one by one took most of the consumer's time — and [`super::order`] decides
//! which may be applied now: messages that touch nothing in common (users with names of their
//! own, also in one OX context) are applied at the same time, up to `concurrency` at once; the
//! others in stream order. With `concurrency = 1` every message is applied alone, one after the
//! other. A message refused because a name is still taken
//! ([`crate::apply::ApplyError::name_taken`]) is tried again as soon as an earlier message
//! finished.
//!
//! For each message:
//! 1. the next step no longer wants it ([`OnApplied::still_wanted`]: its listener file is gone,
//!    an admin removed it) → acknowledge and log it as skipped;
//! 2. otherwise call the [`Applier`]; while it works, report progress so the server does not
//!    redeliver;
//! 3. on success → hand it to the next step ([`OnApplied::applied`]: the wiring deletes the
//!    listener file) → acknowledge;
//! 4. on failure → record "blocked" in the status, wait the retry delay (reporting progress),
//!    then go to 1 with the **same** message. Whatever depends on it waits meanwhile.
//!
//! At start, the consumer is created afresh by the caller
//! ([`super::recreate_subscriber_consumer`]), so messages that were in flight when the daemon
//! stopped come first and in order. Shutdown is checked only between steps: an apply that
//! started is finished and its result recorded; a message waiting for its retry is handed back
//! (nak); held messages that have not started are left to the next start. The same happens
//! when the NATS client connects again ([`Ended::Reconnected`]): the caller opens the consumer
//! afresh.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use super::order::Order;
use super::Ended;
use crate::apply::{Applier, ApplyError, ApplyErrorKind, Outcome, Scope};
use crate::message::ProvisioningMessage;
use crate::status::{Blocked, StatusBoard};
use crate::telemetry::events;

/// The step after apply, given to the consumer by the wiring (`app.rs`: the message's listener
/// file, which [`crate::done`] deletes). The consumer acknowledges a message only after
/// [`OnApplied::applied`] returned: if the daemon dies in between, the message comes again and
/// [`OnApplied::still_wanted`] says it is done.
pub trait OnApplied: Send + Sync + 'static {
    /// Whether `message` is still to be applied; `false` (its listener file is gone) → it is
    /// acknowledged and logged as skipped without being applied.
    fn still_wanted(&self, message: &ProvisioningMessage) -> bool;
    /// `message` was applied (or deliberately ignored); called before it is acknowledged. A
    /// failure is reported by the step itself: the change is in the target system either way.
    fn applied(&self, message: &ProvisioningMessage);
}

/// Settings of the ordered consumer.
#[derive(Debug, Clone)]
pub struct ConsumeSettings {
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
    #[error("a task applying a message failed")]
    ApplyTask(#[source] JoinError),
}

/// What the consumer is given: the applier, the step after it, and how it is driven.
pub struct Steps<A> {
    pub applier: Arc<A>,
    pub on_applied: Arc<dyn OnApplied>,
    pub settings: ConsumeSettings,
    pub status: StatusBoard,
    /// Cuts a retry wait short ([`retry_all_now`]).
    pub retry_now: Arc<Notify>,
}

/// What every apply task and scope reader shares.
struct Shared<A> {
    steps: Steps<A>,
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

/// Consumes the queue until `shutdown` is cancelled. `client` is the client `consumer` was
/// opened with.
pub async fn run<A: Applier>(
    client: &async_nats::Client,
    consumer: PullConsumer,
    steps: Steps<A>,
    shutdown: CancellationToken,
) -> Result<Ended, ConsumeError> {
    let max_held = usize::try_from(steps.settings.max_ack_pending()).unwrap_or(1);
    let mut messages = super::Pulled::batched(client, &consumer, max_held).ending_at_reconnect();
    let mut progress = tokio::time::interval(steps.settings.progress_every());
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held = Holding::new(steps, shutdown.clone(), max_held);
    let result = loop {
        held.start_ready();
        if held.rescope_unscoped() {
            continue;
        }
        let room = held.room();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Ok(Ended::Stopped),
            Some(finished) = held.running.join_next() => match finished {
                Ok(sequence) => held.finish(sequence),
                Err(e) => break Err(ConsumeError::ApplyTask(e)),
            },
            scoped = scoped(&mut held.scoping) => held.admit_scoped(scoped),
            next = messages.next(&shutdown), if held.may_admit() && room > 0 => match next {
                Some(first) => {
                    let mut batch = vec![first];
                    messages.take_arrived(&mut batch, room, &shutdown);
                    held.scope(batch);
                }
                None if messages.reconnected() => break Ok(Ended::Reconnected),
                None => break Ok(Ended::Stopped),
            },
            _ = progress.tick() => report_progress(&held.order, &held.unscoped).await,
        }
    };
    // Let started applies finish (a message waiting for its retry is handed back).
    while held.running.join_next().await.is_some() {}
    held.order.drain_waiting();
    result
}

/// The messages the consumer holds, from delivery to acknowledgement.
struct Holding<A> {
    shared: Arc<Shared<A>>,
    max_held: usize,
    concurrency: usize,
    order: Order<Held>,
    /// The applies running, each returning its message's sequence.
    running: JoinSet<u64>,
    /// Delivered messages whose scopes are being read, all at the same time.
    scoping: Option<Scoping>,
    /// Applies that finished while scopes were being read: recorded only once those messages
    /// are admitted, because a scope read before such an apply's writes must still inherit
    /// from it.
    finished_meanwhile: Vec<u64>,
    /// Delivered after a message that touches everything, in the same batch: their scopes may
    /// be stale once it is applied, so they are read again then.
    unscoped: Vec<jetstream::Message>,
}

impl<A: Applier> Holding<A> {
    fn new(steps: Steps<A>, shutdown: CancellationToken, max_held: usize) -> Self {
        let concurrency = steps.settings.concurrency.max(1);
        Self {
            shared: Arc::new(Shared {
                steps,
                shutdown,
                finished: tokio::sync::broadcast::channel(max_held.max(16)).0,
            }),
            max_held,
            concurrency,
            order: Order::default(),
            running: JoinSet::new(),
            scoping: None,
            finished_meanwhile: Vec::new(),
            unscoped: Vec::new(),
        }
    }

    /// Starts applying the messages that may be applied now, up to the concurrency.
    fn start_ready(&mut self) {
        while self.running.len() < self.concurrency {
            let Some((sequence, held)) = self.order.next_ready() else {
                break;
            };
            let (delivered, message) = (held.delivered.clone(), held.message.clone());
            let shared = self.shared.clone();
            self.running.spawn(async move {
                handle(sequence, delivered, &message, &shared).await;
                sequence
            });
        }
    }

    /// Whether newly delivered messages may be admitted now.
    fn may_admit(&self) -> bool {
        self.scoping.is_none() && self.order.admits()
    }

    /// Reads the scopes of the messages held back as unscoped again, if they may be admitted
    /// now; whether it did.
    fn rescope_unscoped(&mut self) -> bool {
        if !self.may_admit() || self.unscoped.is_empty() {
            return false;
        }
        let batch = std::mem::take(&mut self.unscoped);
        self.scope(batch);
        true
    }

    /// How many more messages may be held.
    fn room(&self) -> usize {
        self.max_held
            .saturating_sub(self.order.len() + self.unscoped.len())
    }

    fn scope(&mut self, batch: Vec<jetstream::Message>) {
        self.scoping = Some(scope_all(batch, self.shared.clone()));
    }

    /// The apply of `sequence` finished.
    fn finish(&mut self, sequence: u64) {
        let _ = self.shared.finished.send(sequence);
        if self.scoping.is_some() {
            self.finished_meanwhile.push(sequence);
        } else {
            self.order.finish(sequence);
        }
    }

    fn admit_scoped(&mut self, scoped: Vec<(u64, Scope, Held)>) {
        self.scoping = None;
        admit(scoped, &mut self.order, &mut self.unscoped);
        for sequence in self.finished_meanwhile.drain(..) {
            self.order.finish(sequence);
        }
    }
}

/// Reports the held messages not started yet as in progress; those being applied report their
/// own.
async fn report_progress(order: &Order<Held>, unscoped: &[jetstream::Message]) {
    let waiting = order.waiting().map(|held| &held.delivered).chain(unscoped);
    for delivered in waiting {
        if let Err(e) = delivered.ack_with(AckKind::Progress).await {
            tracing::debug!(error = %e, "Cannot report progress to JetStream.");
        }
    }
}

/// The scopes being read, once read; never without any.
async fn scoped(scoping: &mut Option<Scoping>) -> Vec<(u64, Scope, Held)> {
    match scoping.as_mut() {
        Some(scoping) => scoping.await,
        None => std::future::pending().await,
    }
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
                let scope = if shared.steps.settings.concurrency <= 1 {
                    Scope::Everything
                } else {
                    shared.steps.applier.scope(&message).await
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
    let Steps {
        applier,
        on_applied,
        settings,
        status,
        ..
    } = &shared.steps;
    let mut attempts = 0u64;
    let mut blocked_since = None;
    loop {
        if !on_applied.still_wanted(message) {
            events::MessageSkipped { message }.emit();
            acknowledge(&delivered).await;
            status.clear_blocked(sequence);
            return;
        }
        attempts += 1;
        // Before the attempt, so that a change finishing while it fails is not missed.
        let finished_since = shared.finished.subscribe();
        let started = std::time::Instant::now();
        let work = applier.apply(message);
        match with_progress(&delivered, settings.progress_every(), work).await {
            Ok(outcome) => {
                on_applied.applied(message);
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
                let since = *blocked_since.get_or_insert_with(Utc::now);
                let failed = Failed {
                    sequence,
                    error: &error,
                    attempts,
                    since,
                };
                if !failed
                    .wait_for_retry(&delivered, message, finished_since, shared)
                    .await
                {
                    // Redeliver it first at the next start instead of after the ack wait.
                    let _ = delivered.ack_with(AckKind::Nak(None)).await;
                    return;
                }
            }
        }
    }
}

/// A failed attempt at a message.
struct Failed<'a> {
    sequence: u64,
    error: &'a ApplyError,
    attempts: u64,
    /// The first failure in a row.
    since: DateTime<Utc>,
}

impl Failed<'_> {
    /// Reports the failure and waits for the next attempt: the retry delay, an admin's "retry
    /// now", or (a name still taken) an earlier change finishing. `false` on shutdown.
    async fn wait_for_retry<A>(
        &self,
        delivered: &jetstream::Message,
        message: &ProvisioningMessage,
        finished_since: tokio::sync::broadcast::Receiver<u64>,
        shared: &Shared<A>,
    ) -> bool {
        let settings = &shared.steps.settings;
        events::MessageApplyError {
            message,
            error: self.error,
            attempts: self.attempts,
            retry_in: settings.retry_delay,
        }
        .emit();
        shared
            .steps
            .status
            .set_blocked(self.sequence, self.blocked(message));
        let wait = tokio::time::sleep(settings.retry_delay);
        let freed = earlier_finished(finished_since, self.sequence, self.error.name_taken);
        tokio::select! {
            () = shared.shutdown.cancelled() => false,
            () = shared.steps.retry_now.notified() => true,
            () = freed => true,
            () = with_progress(delivered, settings.progress_every(), wait) => true,
        }
    }

    /// What the status shows about the blocked message.
    fn blocked(&self, message: &ProvisioningMessage) -> Blocked {
        Blocked {
            file: message.source_file().map(str::to_owned),
            object_type: message.topic.clone(),
            dn: message.dn.clone(),
            entry_uuid: message.object_id.clone(),
            error: self.error.message.clone(),
            error_kind: match self.error.kind {
                ApplyErrorKind::Transient => "transient".into(),
                ApplyErrorKind::Rejected => "rejected".into(),
            },
            since: self.since,
            attempts: self.attempts,
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
