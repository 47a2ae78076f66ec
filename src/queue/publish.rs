//! Publishing provisioning messages to JetStream, each confirmed by its PubAck.
//!
//! [`Publisher::publish`] sends one message and waits until it is stored. [`Pipeline`] keeps up
//! to a window of messages in flight (sent, PubAck pending) and still keeps the stream in file
//! order when a publish fails half-way (a full queue, a lost connection): every message but the
//! first of a run carries `Nats-Expected-Last-Msg-Id` = the id of the message sent before it, so
//! the server stores a message only directly after its predecessor. Once one message is
//! refused, every later one in flight is refused too; they are all offered again later, in
//! order. (The server checks for a duplicate before the expectation, so a message stored
//! before — a re-publish after a restart — is confirmed as a duplicate; the message after it then
//! breaks the chain, and the pipeline sends the rest again starting a new run.)
//!
//! A PubAck awaited when the client reconnects is given up at once (see [`super::Connection`]):
//! the messages in flight then count as not stored and are offered again; any of them stored
//! already is recognised by its id.

use std::collections::VecDeque;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::HeaderMap;

use super::Connection;

use crate::message::{ProvisioningMessage, HEADER_SOURCE_FILE};

/// Why a message was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The stream reached its limits, or the disk under its store is full; retry once the
    /// subscriber has caught up or space returns.
    #[error("the queue is full: {0}")]
    QueueFull(#[source] jetstream::context::PublishError),
    /// The message exceeds the server's maximum payload; it will never fit.
    #[error(
        "the message is {size} bytes, more than the NATS server's maximum payload of {limit} bytes"
    )]
    TooLarge { size: usize, limit: usize },
    /// NATS unreachable, timed out, or another server-side refusal; retry later.
    #[error("cannot publish to JetStream: {0}")]
    Unavailable(#[source] jetstream::context::PublishError),
    /// The client reconnected before the PubAck came; the message may or may not be stored
    /// (offered again, a stored one is recognised by its id).
    #[error(
        "cannot publish to JetStream: the connection to NATS was lost before the message was confirmed"
    )]
    ConnectionLost,
    #[error("cannot encode the message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub sequence: u64,
    /// The server already had a message with this id (a re-publish after a restart).
    pub duplicate: bool,
}

/// Publishes provisioning messages.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    connection: Connection,
}

impl Publisher {
    pub fn new(js: jetstream::Context) -> Self {
        let connection = Connection::of(&js.client());
        Self { js, connection }
    }

    /// Publishes `message` with its id as `Nats-Msg-Id` and waits until JetStream stored it.
    pub async fn publish(&self, message: &ProvisioningMessage) -> Result<Published, PublishError> {
        self.publish_to(message.subject(), message, &message.id.to_string())
            .await
    }

    /// Publishes `message` on `subject` with the de-duplication id `msg_id` and waits until
    /// JetStream stored it.
    pub async fn publish_to(
        &self,
        subject: String,
        message: &ProvisioningMessage,
        msg_id: &str,
    ) -> Result<Published, PublishError> {
        let sent_on = self.connection.epoch();
        let ack = self.send_to(subject, message, msg_id, None).await?;
        self.await_ack(ack, sent_on)
            .await
            .map(|ack| Published {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            })
            .map_err(AckError::into_publish_error)
    }

    /// Sends `outgoing` (stored only right after the message with id `after`, if given).
    async fn send(
        &self,
        outgoing: Outgoing,
        after: Option<&str>,
    ) -> Result<InFlight, (Outgoing, PublishError)> {
        let sent_on = self.connection.epoch();
        match self
            .send_to(
                outgoing.subject.clone(),
                &outgoing.message,
                &outgoing.msg_id,
                after,
            )
            .await
        {
            Ok(ack) => Ok(InFlight {
                outgoing,
                ack,
                sent_on,
            }),
            Err(error) => Err((outgoing, error)),
        }
    }

    /// Waits for the PubAck of a message sent at connection `sent_on`, or until the client has
    /// reconnected since (then it never comes).
    async fn await_ack(&self, ack: PublishAckFuture, sent_on: u64) -> Result<PublishAck, AckError> {
        match self.connection.unless_reconnected(sent_on, ack).await {
            Some(ack) => ack.map_err(AckError::Refused),
            None => Err(AckError::ConnectionLost),
        }
    }

    async fn send_to(
        &self,
        subject: String,
        message: &ProvisioningMessage,
        msg_id: &str,
        after: Option<&str>,
    ) -> Result<PublishAckFuture, PublishError> {
        let payload = serde_json::to_vec(message)?;
        let limit = self.js.client().server_info().max_payload;
        // Headers and protocol overhead need a little room besides the payload.
        if payload.len() + 512 > limit {
            return Err(PublishError::TooLarge {
                size: payload.len(),
                limit,
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        if let Some(file) = message.source_file() {
            headers.insert(HEADER_SOURCE_FILE, file);
        }
        if let Some(after) = after {
            headers.insert(async_nats::header::NATS_EXPECTED_LAST_MESSAGE_ID, after);
        }
        self.js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(classify)
    }
}

/// How many messages the [`Pipeline`] keeps in flight by default.
pub const WINDOW: usize = 128;

/// A message JetStream confirmed.
#[derive(Debug)]
pub struct Stored {
    pub message: ProvisioningMessage,
    pub published: Published,
}

/// A publish that failed: the error, and the messages sent from the failed one on, in order.
/// None of them is stored after the failed one (some may have been stored before, as
/// duplicates or when only the confirmation was lost): all must be offered again.
#[derive(Debug)]
pub struct PipelineFailure {
    pub error: PublishError,
    pub unstored: Vec<ProvisioningMessage>,
}

/// What a [`Pipeline`] step confirmed, and the failure that ended it, if any.
#[derive(Debug, Default)]
pub struct Confirmed {
    pub stored: Vec<Stored>,
    pub failure: Option<PipelineFailure>,
}

struct InFlight {
    outgoing: Outgoing,
    ack: PublishAckFuture,
    /// The client's connection the message was sent on ([`Connection::epoch`]).
    sent_on: u64,
}

/// Why a PubAck did not confirm a message.
enum AckError {
    Refused(jetstream::context::PublishError),
    /// The client reconnected before it came.
    ConnectionLost,
}

impl AckError {
    fn into_publish_error(self) -> PublishError {
        match self {
            AckError::Refused(e) => classify(e),
            AckError::ConnectionLost => PublishError::ConnectionLost,
        }
    }
}

/// A message to publish, with its subject and `Nats-Msg-Id`.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub subject: String,
    pub msg_id: String,
    pub message: ProvisioningMessage,
}

impl Outgoing {
    /// To the incoming stream, under the message's own id.
    pub fn incoming(message: ProvisioningMessage) -> Self {
        Self {
            subject: message.subject(),
            msg_id: message.id.to_string(),
            message,
        }
    }
}

/// Publishes with up to `window` messages awaiting their PubAck, in order (see the module doc).
pub struct Pipeline {
    publisher: Publisher,
    window: usize,
    in_flight: VecDeque<InFlight>,
    /// The id of the last message sent in the current run; `None` starts a new run.
    last_id: Option<String>,
}

impl Pipeline {
    pub fn new(publisher: Publisher, window: usize) -> Self {
        Self {
            publisher,
            window: window.max(1),
            in_flight: VecDeque::new(),
            last_id: None,
        }
    }

    /// Sends `message`; when the window is full, waits for the oldest PubAcks. A message that
    /// can never be stored (too large, not encodable) fails at once with an empty `unstored`
    /// and does not disturb the others.
    pub async fn send(&mut self, message: ProvisioningMessage) -> Confirmed {
        self.send_outgoing(Outgoing::incoming(message)).await
    }

    /// Like [`Pipeline::send`], with the subject and message id given.
    pub async fn send_outgoing(&mut self, outgoing: Outgoing) -> Confirmed {
        match self.publisher.send(outgoing, self.last_id.as_deref()).await {
            Ok(flight) => {
                self.last_id = Some(flight.outgoing.msg_id.clone());
                self.in_flight.push_back(flight);
                self.confirm(self.window).await
            }
            Err((_, error @ (PublishError::TooLarge { .. } | PublishError::Encode(_)))) => {
                Confirmed {
                    stored: Vec::new(),
                    failure: Some(PipelineFailure {
                        error,
                        unstored: Vec::new(),
                    }),
                }
            }
            Err((outgoing, error)) => {
                let mut confirmed = self.confirm(0).await;
                let failure = confirmed.failure.get_or_insert(PipelineFailure {
                    error,
                    unstored: Vec::new(),
                });
                failure.unstored.push(outgoing.message);
                self.last_id = None;
                confirmed
            }
        }
    }

    /// How many messages are sent and not yet confirmed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits until every message sent is confirmed (or the first one fails).
    pub async fn flush(&mut self) -> Confirmed {
        self.confirm(0).await
    }

    /// Confirms the oldest messages until at most `keep` are in flight.
    async fn confirm(&mut self, keep: usize) -> Confirmed {
        let mut confirmed = Confirmed::default();
        while self.in_flight.len() > keep {
            let Some(oldest) = self.in_flight.pop_front() else {
                break;
            };
            match self.publisher.await_ack(oldest.ack, oldest.sent_on).await {
                Ok(ack) => confirmed.stored.push(Stored {
                    message: oldest.outgoing.message,
                    published: Published {
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                    },
                }),
                Err(AckError::Refused(e)) if e.kind() == PublishErrorKind::WrongLastMessageId => {
                    // The run broke at a duplicate (or the server forgot the last id): send
                    // this message and everything after it again as a new run.
                    let mut again = vec![oldest.outgoing];
                    again.extend(self.drain_outgoing().await);
                    self.last_id = None;
                    for outgoing in again {
                        match self.publisher.send(outgoing, self.last_id.as_deref()).await {
                            Ok(flight) => {
                                self.last_id = Some(flight.outgoing.msg_id.clone());
                                self.in_flight.push_back(flight);
                            }
                            Err((outgoing, error)) => {
                                let mut unstored = self.drain().await;
                                unstored.push(outgoing.message);
                                self.last_id = None;
                                confirmed.failure = Some(PipelineFailure { error, unstored });
                                return confirmed;
                            }
                        }
                    }
                }
                Err(e) => {
                    let mut unstored = vec![oldest.outgoing.message];
                    unstored.extend(self.drain().await);
                    self.last_id = None;
                    confirmed.failure = Some(PipelineFailure {
                        error: e.into_publish_error(),
                        unstored,
                    });
                    return confirmed;
                }
            }
        }
        confirmed
    }

    /// Waits for every message in flight (their outcome no longer matters: nothing after a
    /// refused message is stored) and returns them in order.
    ///
    /// The PubAcks are awaited together, so this takes one PubAck timeout at most. (Each
    /// PubAck's timeout starts when it is awaited: awaited one after the other, PubAcks that
    /// never come — lost with a restarted nats-server — took one timeout each, 128 × 5 s with a
    /// full window, while the watcher published nothing and did not see a shutdown.)
    async fn drain(&mut self) -> Vec<ProvisioningMessage> {
        self.drain_outgoing()
            .await
            .into_iter()
            .map(|o| o.message)
            .collect()
    }

    /// Waits for every PubAck in flight (whatever it says, all together: one timeout at most)
    /// and returns what was sent.
    async fn drain_outgoing(&mut self) -> Vec<Outgoing> {
        let publisher = &self.publisher;
        let settled = self.in_flight.drain(..).map(|flight| async move {
            let _ = publisher.await_ack(flight.ack, flight.sent_on).await;
            flight.outgoing
        });
        futures::future::join_all(settled).await
    }
}

fn classify(error: jetstream::context::PublishError) -> PublishError {
    let text = error.to_string();
    let full = matches!(error.kind(), PublishErrorKind::Other)
        && [
            "maximum messages",
            "maximum bytes",
            "insufficient resources",
            "exceeded",
            // The store's disk is full (JetStream error 10077).
            "no space left on device",
        ]
        .iter()
        .any(|needle| text.contains(needle));
    if full {
        PublishError::QueueFull(error)
    } else {
        PublishError::Unavailable(error)
    }
}
