//! The live part of a dispatcher: copies the incoming messages of one subscription into the
//! subscriber's queue in incoming order, many in flight at once.
//!
//! Messages are pulled in batches; each matching one is redacted and sent through a publish
//! [`Pipeline`] (up to [`WINDOW`] PubAcks pending, chained with `Nats-Expected-Last-Msg-Id`, so
//! the queue holds them in incoming order even when a publish fails half-way). The dispatcher's
//! consumer acknowledges cumulatively (`AckPolicy::All`): once the copies up to a message are
//! stored, that message is acknowledged, and with it every one before it.
//!
//! After a crash, the messages that were delivered but not acknowledged would come again only
//! after the ack wait — behind newer ones. So before taking new messages, a dispatcher copies
//! those (ack floor, last delivered] again, read directly from the incoming stream in order;
//! copies stored before are recognised by their `Nats-Msg-Id` and not stored twice, and the
//! late redeliveries are no-ops for the same reason.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::context::ConsumerInfoError;
use async_nats::jetstream::{self, consumer::PullConsumer, stream::Stream};
use tokio_util::sync::CancellationToken;

use super::redact::redact;
use super::subscription::{Subscription, TopicMatcher};
use crate::message::ProvisioningMessage;
use crate::queue::publish::{Confirmed, Outgoing, Pipeline, PublishError, Publisher};
use crate::queue::{self, Ended, Pulled};

/// Most copies sent and not yet confirmed; the consumer holds twice as many messages.
pub const WINDOW: usize = 128;

/// How long a copy may wait for more messages before its PubAck is awaited on its own.
const LINGER: Duration = Duration::from_millis(2);

/// What happened to the subscriber's queue, for the dispatcher's status.
pub trait Report {
    /// `count` more copies are stored.
    fn stored(&self, count: usize);
    /// A copy was refused; the dispatcher retries it (and everything after it) in a moment.
    fn refused(&self, error: &PublishError);
}

/// Where a dispatcher reads: the incoming stream and its consumer there, with the client the
/// consumer was opened with (its pull requests are sent again after a reconnect).
pub struct Source<'a> {
    pub client: &'a async_nats::Client,
    pub incoming: &'a Stream,
    pub consumer: &'a PullConsumer,
}

/// One incoming message the dispatcher holds until its copy is stored.
struct Held {
    /// The delivery to acknowledge; `None` for a message re-read from the stream at start.
    delivered: Option<jetstream::Message>,
    /// Its copy; `None` if the subscription does not want it.
    copy: Option<Outgoing>,
}

/// Copies the live messages of `subscription` until `stop`, or until the NATS client has
/// connected again (then the caller runs it afresh, which copies what was in flight again, in
/// order). Returns an error if the dispatcher's consumer cannot be read.
pub async fn run(
    source: Source<'_>,
    publisher: Publisher,
    subscription: &Subscription,
    matcher: &TopicMatcher,
    report: &impl Report,
    stop: &CancellationToken,
) -> Result<Ended, ConsumerInfoError> {
    let mut forwarder = Forwarder {
        pipeline: Pipeline::new(publisher, WINDOW),
        held: VecDeque::new(),
        report,
    };
    for held in left_in_flight(source.incoming, source.consumer, subscription, matcher).await? {
        forwarder.held.push_back(held);
    }
    if !forwarder.resend_until_stored(stop).await {
        return Ok(Ended::Stopped);
    }
    let mut messages =
        Pulled::batched(source.client, source.consumer, 2 * WINDOW).ending_at_reconnect();
    loop {
        let next = if forwarder.pipeline.in_flight() == 0 {
            messages.next(stop).await
        } else {
            tokio::select! {
                next = messages.next(stop) => next,
                () = tokio::time::sleep(LINGER) => {
                    let confirmed = forwarder.pipeline.flush().await;
                    if !forwarder.settle(confirmed, stop).await {
                        return Ok(Ended::Stopped);
                    }
                    continue;
                }
            }
        };
        let Some(delivered) = next else {
            return Ok(if messages.reconnected() {
                Ended::Reconnected
            } else {
                Ended::Stopped
            });
        };
        let copy = copy_of(&delivered.payload, subscription, matcher);
        let confirmed = match &copy {
            Some(outgoing) => forwarder.pipeline.send_outgoing(outgoing.clone()).await,
            None => Confirmed::default(),
        };
        forwarder.held.push_back(Held {
            delivered: Some(delivered),
            copy,
        });
        if !forwarder.settle(confirmed, stop).await {
            return Ok(Ended::Stopped);
        }
    }
}

/// The messages the previous run of this dispatcher took and did not finish, in order.
async fn left_in_flight(
    incoming: &Stream,
    consumer: &PullConsumer,
    subscription: &Subscription,
    matcher: &TopicMatcher,
) -> Result<Vec<Held>, ConsumerInfoError> {
    let mut consumer = consumer.clone();
    let info = consumer.info().await?;
    let (floor, delivered) = (
        info.ack_floor.stream_sequence,
        info.delivered.stream_sequence,
    );
    let filter = crate::message::subject(&subscription.realm, ">");
    let mut left = Vec::new();
    let mut sequence = floor + 1;
    while sequence <= delivered {
        // `None`: nothing more of this realm in the stream.
        let Some(raw) = queue::next_on_subject(incoming, &filter, sequence).await else {
            break;
        };
        if raw.sequence > delivered {
            break;
        }
        sequence = raw.sequence + 1;
        left.push(Held {
            delivered: None,
            copy: copy_of(&raw.payload, subscription, matcher),
        });
    }
    if !left.is_empty() {
        tracing::info!(
            subscriber = %subscription.name,
            messages = left.len(),
            "Copying the messages the dispatcher had in flight when it stopped again, first."
        );
    }
    Ok(left)
}

/// The redacted copy of an incoming message for `subscription`, if it wants it.
fn copy_of(
    payload: &[u8],
    subscription: &Subscription,
    matcher: &TopicMatcher,
) -> Option<Outgoing> {
    let mut message = serde_json::from_slice::<ProvisioningMessage>(payload).ok()?;
    let wanted = message.realm == subscription.realm && matcher.matches(&message.topic);
    if !wanted {
        return None;
    }
    redact(&mut message, &subscription.redact);
    Some(Outgoing {
        subject: queue::subscriber_subject(&subscription.name, &message.realm, &message.topic),
        msg_id: message.id.to_string(),
        message,
    })
}

struct Forwarder<'a, R> {
    pipeline: Pipeline,
    /// In incoming order: messages whose copies are not confirmed yet (and those without a
    /// copy behind them).
    held: VecDeque<Held>,
    report: &'a R,
}

impl<R: Report> Forwarder<'_, R> {
    /// Takes in what the pipeline confirmed: acknowledges every held message up to the last
    /// stored copy; after a refusal, sends the unstored copies again until they are stored.
    /// Returns false if stopped meanwhile.
    async fn settle(&mut self, confirmed: Confirmed, stop: &CancellationToken) -> bool {
        self.acknowledge(confirmed.stored.len());
        if let Some(failure) = confirmed.failure {
            self.report.refused(&failure.error);
            return self.resend_until_stored(stop).await;
        }
        true
    }

    /// Releases the held messages up to the `stored`-th copy (and those without a copy around
    /// them), acknowledging the last delivery among them.
    fn acknowledge(&mut self, mut stored: usize) {
        self.report.stored(stored);
        let mut last_delivery = None;
        while let Some(front) = self.held.front() {
            if front.copy.is_some() {
                if stored == 0 {
                    break;
                }
                stored -= 1;
            }
            let Some(released) = self.held.pop_front() else {
                break;
            };
            if released.delivered.is_some() {
                last_delivery = released.delivered;
            }
        }
        if let Some(delivered) = last_delivery {
            // Cumulative: acknowledges every earlier message too. A lost ack only means those
            // come again, and their copies are recognised as stored.
            tokio::spawn(async move {
                if let Err(e) = delivered.ack().await {
                    tracing::debug!(error = %e, "Dispatcher: cannot acknowledge.");
                }
            });
        }
    }

    /// Sends the copies of every held message again, in order, until all are stored. Returns
    /// false if stopped meanwhile.
    async fn resend_until_stored(&mut self, stop: &CancellationToken) -> bool {
        // Whatever is still in flight is confirmed first, so that what is sent again below is
        // exactly what is held, in order.
        let confirmed = self.pipeline.flush().await;
        self.acknowledge(confirmed.stored.len());
        loop {
            let copies: Vec<Outgoing> = self.held.iter().filter_map(|h| h.copy.clone()).collect();
            let mut failure = None;
            for copy in copies {
                let confirmed = self.pipeline.send_outgoing(copy).await;
                self.acknowledge(confirmed.stored.len());
                if confirmed.failure.is_some() {
                    failure = confirmed.failure;
                    break;
                }
            }
            if failure.is_none() {
                let confirmed = self.pipeline.flush().await;
                self.acknowledge(confirmed.stored.len());
                failure = confirmed.failure;
            }
            let Some(failure) = failure else {
                // Only messages without a copy may be left: release them.
                self.acknowledge(0);
                return true;
            };
            self.report.refused(&failure.error);
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}
