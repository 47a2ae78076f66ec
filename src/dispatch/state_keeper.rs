//! The state keeper: remembers the last message of every object, so that a new subscriber can
//! be given the current state of everything (prefill) before the live changes.
//!
//! A durable consumer on the incoming stream writes each message into the `provisioning-state`
//! bucket under `<realm>.<topic>.<object>` (a delete removes the key), together with its stream
//! sequence; its acknowledged position tells how far the bucket is complete.

use std::borrow::Cow;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream::Stream, AckKind};
use futures::TryStreamExt;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::message::ProvisioningMessage;
use crate::queue::kv::{encode_key, BucketError};
use crate::telemetry::Chain;

pub const BUCKET: &str = "provisioning-state";

/// Messages asked for per pull request.
const REQUEST_BATCH: usize = 64;

/// One object's last message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateEntry {
    /// Its sequence in the incoming stream.
    pub seq: u64,
    pub message: ProvisioningMessage,
}

/// Why the state keeper or a prefill could not go on; each keeps the NATS error.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Open(#[from] BucketError),
    /// The state keeper's consumer on the incoming stream cannot be read.
    #[error("{0}")]
    Consumer(#[source] async_nats::Error),
    /// The `provisioning-state` bucket cannot be read.
    #[error("{0}")]
    Read(#[source] async_nats::Error),
}

/// The bucket key of an object.
pub fn key(realm: &str, topic: &str, object_id: &str) -> String {
    format!("{realm}.{topic}.{}", encode_key(object_id))
}

pub async fn open(js: &jetstream::Context) -> Result<kv::Store, BucketError> {
    crate::queue::kv::open_bucket(js, BUCKET, "provisioning: last message of every object").await
}

/// Keeps the bucket up to date until `stop` is cancelled. `client` is the client `incoming`
/// was opened with.
pub async fn run(
    client: &async_nats::Client,
    incoming: Stream,
    state: kv::Store,
    stop: CancellationToken,
) -> Result<(), StateError> {
    // Created by the dispatcher at start-up, before anything is published.
    let consumer: jetstream::consumer::PullConsumer = incoming
        .get_consumer(crate::queue::STATE_KEEPER)
        .await
        .map_err(StateError::Consumer)?;
    // One message in flight (`max_ack_pending` 1), so that a message written again after a
    // failure or a crash never overwrites a newer one of the same object; a request asks for
    // many, so there is not one pull request per message.
    let mut messages = crate::queue::Pulled::batched(client, &consumer, REQUEST_BATCH);
    loop {
        let Some(delivered) = messages.next(&stop).await else {
            return Ok(());
        };
        let seq = delivered.info().map(|i| i.stream_sequence).unwrap_or(0);
        if let Ok(peek) = serde_json::from_slice::<Peek>(&delivered.payload) {
            let key = key(&peek.realm, &peek.topic, &peek.object_id);
            let written: Result<(), async_nats::Error> = if peek.body.new.is_none() {
                state.purge(&key).await.map_err(Into::into)
            } else {
                state
                    .put(&key, entry_json(seq, &delivered.payload).into())
                    .await
                    .map(drop)
                    .map_err(Into::into)
            };
            if let Err(e) = written {
                tracing::warn!(error = %Chain(&*e), "Cannot record an object's state; retrying.");
                let _ = delivered
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
                continue;
            }
        }
        // Not waiting for the server's confirmation: a lost ack only brings the message back
        // (written again, the same value), and the next one is delivered only after this ack.
        if let Err(e) = delivered.ack().await {
            tracing::debug!(error = %e, "State keeper: cannot acknowledge.");
        }
    }
}

/// What the state keeper needs of a message: where it goes and whether it is a deletion. (It
/// stores the message as it came; decoding it whole and encoding it again cost more than
/// anything else the state keeper does.)
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    realm: Cow<'a, str>,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    object_id: Cow<'a, str>,
    body: PeekBody,
}

#[derive(Deserialize)]
struct PeekBody {
    new: Option<IgnoredAny>,
}

/// The JSON of a [`StateEntry`] with the message's own JSON.
fn entry_json(seq: u64, message: &[u8]) -> Vec<u8> {
    let mut json = Vec::with_capacity(message.len() + 32);
    json.extend_from_slice(format!(r#"{{"seq":{seq},"message":"#).as_bytes());
    json.extend_from_slice(message);
    json.push(b'}');
    json
}

/// The incoming sequence up to which the bucket is complete.
pub async fn position(incoming: &Stream) -> Result<u64, StateError> {
    let mut consumer: jetstream::consumer::PullConsumer = incoming
        .get_consumer(crate::queue::STATE_KEEPER)
        .await
        .map_err(StateError::Consumer)?;
    let info = consumer
        .info()
        .await
        .map_err(|e| StateError::Consumer(e.into()))?;
    Ok(info.ack_floor.stream_sequence)
}

/// The entries of `realm`, in no particular order.
pub async fn entries(state: &kv::Store, realm: &str) -> Result<Vec<StateEntry>, StateError> {
    let read = |e: async_nats::Error| StateError::Read(e);
    let prefix = format!("{realm}.");
    let keys: Vec<String> = state
        .keys()
        .await
        .map_err(|e| read(e.into()))?
        .try_collect()
        .await
        .map_err(|e| read(e.into()))?;
    let mut entries = Vec::new();
    for key in keys.into_iter().filter(|k| k.starts_with(&prefix)) {
        if let Some(bytes) = state.get(&key).await.map_err(|e| read(e.into()))? {
            if let Ok(entry) = serde_json::from_slice(&bytes) {
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::ListenerFile;

    #[test]
    fn a_message_is_stored_as_it_came_and_read_back_whole() {
        let text = r#"{"dn": "uid=anna,dc=x", "id": "u-1", "udm_object_type": "users/user",
            "object": {"username": "anna", "note": "quote \" and ü"}, "options": []}"#;
        let file = ListenerFile::parse(
            std::path::Path::new("2026-12-03-06-00-00-000001.json"),
            "2026-12-03-06-00-00-000001.json".into(),
            text.as_bytes().to_vec(),
        )
        .unwrap();
        let message = ProvisioningMessage::from_listener_file(&file);
        let payload = serde_json::to_vec(&message).unwrap();

        let peek: Peek = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            key(&peek.realm, &peek.topic, &peek.object_id),
            "udm.users/user.u-1"
        );
        assert!(peek.body.new.is_some());
        let entry: StateEntry = serde_json::from_slice(&entry_json(42, &payload)).unwrap();
        assert_eq!(entry.seq, 42);
        assert_eq!(entry.message, message);
    }
}
