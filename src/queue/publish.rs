//! Publishing provisioning messages to JetStream, one at a time, each confirmed by its PubAck.
//!
//! The next file is published only after the previous one is stored, so the stream holds the
//! messages in file order even when a publish fails half-way (a full queue, a lost connection).

use async_nats::jetstream::{self, context::PublishErrorKind};
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
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            message.id.to_string().as_str(),
        );
        if let Some(file) = message.source_file() {
            headers.insert(HEADER_SOURCE_FILE, file);
        }
        let ack = self
            .js
            .publish_with_headers(message.subject(), headers, payload.into())
            .await
            .map_err(classify)?
            .await
            .map_err(classify)?;
        Ok(Published {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
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
