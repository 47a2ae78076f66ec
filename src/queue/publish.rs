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

use std::collections::VecDeque;

use async_nats::jetstream::{self, context::PublishAckFuture, context::PublishErrorKind};
use async_nats::HeaderMap;

use crate::message::{ProvisioningMessage, HEADER_SOURCE_FILE};

/// Why a message was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The stream reached its limits, or the disk under its store is full; retry once the
    /// subscriber has caught up or space returns.
    #[error("the queue is full: {0}")]
    QueueFull(String),
    /// The message exceeds the server's maximum payload; it will never fit.
    #[error(
        "the message is {size} bytes, more than the NATS server's maximum payload of {limit} bytes"
    )]
    TooLarge { size: usize, limit: usize },
    /// NATS unreachable, timed out, or another server-side refusal; retry later.
    #[error("cannot publish to JetStream: {0}")]
    Unavailable(String),
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
}

impl Publisher {
    pub fn new(js: jetstream::Context) -> Self {
        Self { js }
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
        self.send_to(subject, message, msg_id, None)
            .await?
            .await
            .map(|ack| Published {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            })
            .map_err(classify)
    }

    /// Sends `message` on its own subject (stored only right after the message with id
    /// `after`, if given) and returns the future of its PubAck.
    async fn send(
        &self,
        message: &ProvisioningMessage,
        after: Option<&str>,
    ) -> Result<PublishAckFuture, PublishError> {
        self.send_to(message.subject(), message, &message.id.to_string(), after)
            .await
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
    message: ProvisioningMessage,
    ack: PublishAckFuture,
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
        match self.publisher.send(&message, self.last_id.as_deref()).await {
            Ok(ack) => {
                self.last_id = Some(message.id.to_string());
                self.in_flight.push_back(InFlight { message, ack });
                self.confirm(self.window).await
            }
            Err(error @ (PublishError::TooLarge { .. } | PublishError::Encode(_))) => Confirmed {
                stored: Vec::new(),
                failure: Some(PipelineFailure {
                    error,
                    unstored: Vec::new(),
                }),
            },
            Err(error) => {
                let mut confirmed = self.confirm(0).await;
                let failure = confirmed.failure.get_or_insert(PipelineFailure {
                    error,
                    unstored: Vec::new(),
                });
                failure.unstored.push(message);
                self.last_id = None;
                confirmed
            }
        }
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
            match oldest.ack.await {
                Ok(ack) => confirmed.stored.push(Stored {
                    message: oldest.message,
                    published: Published {
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                    },
                }),
                Err(e) if e.kind() == PublishErrorKind::WrongLastMessageId => {
                    // The run broke at a duplicate (or the server forgot the last id): send
                    // this message and everything after it again as a new run.
                    let mut again = vec![oldest.message];
                    again.extend(self.drain().await);
                    self.last_id = None;
                    for message in again {
                        match self.publisher.send(&message, self.last_id.as_deref()).await {
                            Ok(ack) => {
                                self.last_id = Some(message.id.to_string());
                                self.in_flight.push_back(InFlight { message, ack });
                            }
                            Err(error) => {
                                let mut unstored = self.drain().await;
                                unstored.push(message);
                                self.last_id = None;
                                confirmed.failure = Some(PipelineFailure { error, unstored });
                                return confirmed;
                            }
                        }
                    }
                }
                Err(e) => {
                    let mut unstored = vec![oldest.message];
                    unstored.extend(self.drain().await);
                    self.last_id = None;
                    confirmed.failure = Some(PipelineFailure {
                        error: classify(e),
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
    async fn drain(&mut self) -> Vec<ProvisioningMessage> {
        let mut out = Vec::with_capacity(self.in_flight.len());
        while let Some(flight) = self.in_flight.pop_front() {
            let _ = flight.ack.await;
            out.push(flight.message);
        }
        out
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
        PublishError::QueueFull(text)
    } else {
        PublishError::Unavailable(text)
    }
}
