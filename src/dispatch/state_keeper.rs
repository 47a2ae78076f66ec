//! The state keeper: remembers the last message of every object, so that a new subscriber can
//! be given the current state of everything (prefill) before the live changes.
//!
//! A durable consumer on the incoming stream writes each message into the `provisioning-state`
//! bucket under `<realm>.<topic>.<object>` (a delete removes the key), together with its stream
//! sequence; its acknowledged position tells how far the bucket is complete.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream::Stream, AckKind};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::message::ProvisioningMessage;
use crate::queue::kv::encode_key;

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

/// The bucket key of an object.
pub fn key(realm: &str, topic: &str, object_id: &str) -> String {
    format!("{realm}.{topic}.{}", encode_key(object_id))
}

pub async fn open(js: &jetstream::Context) -> Result<kv::Store, String> {
    crate::queue::kv::open_bucket(js, BUCKET, "provisioning: last message of every object")
        .await
        .map_err(|e| e.to_string())
}

/// Keeps the bucket up to date until `stop` is cancelled. `client` is the client `incoming`
/// was opened with.
pub async fn run(
    client: &async_nats::Client,
    incoming: Stream,
    state: kv::Store,
    stop: CancellationToken,
) -> Result<(), String> {
    // Created by the dispatcher at start-up, before anything is published.
    let consumer: jetstream::consumer::PullConsumer = incoming
        .get_consumer(crate::queue::STATE_KEEPER)
        .await
        .map_err(|e| e.to_string())?;
    // One message in flight (`max_ack_pending` 1), so that a message written again after a
    // failure or a crash never overwrites a newer one of the same object; a request asks for
    // many, so there is not one pull request per message.
    let mut messages = crate::queue::Pulled::batched(client, &consumer, REQUEST_BATCH);
    loop {
        let Some(delivered) = messages.next(&stop).await else {
            return Ok(());
        };
        let seq = delivered.info().map(|i| i.stream_sequence).unwrap_or(0);
        if let Ok(message) = serde_json::from_slice::<ProvisioningMessage>(&delivered.payload) {
            let key = key(&message.realm, &message.topic, &message.object_id);
            let written = if message.body.new.is_none() {
                state.purge(&key).await.map_err(|e| e.to_string())
            } else {
                let entry = StateEntry { seq, message };
                match serde_json::to_vec(&entry) {
                    Ok(json) => state
                        .put(&key, json.into())
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            };
            if let Err(e) = written {
                tracing::warn!(error = %e, "Cannot record an object's state; retrying.");
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

/// The incoming sequence up to which the bucket is complete.
pub async fn position(incoming: &Stream) -> Result<u64, String> {
    let mut consumer: jetstream::consumer::PullConsumer = incoming
        .get_consumer(crate::queue::STATE_KEEPER)
        .await
        .map_err(|e| e.to_string())?;
    let info = consumer.info().await.map_err(|e| e.to_string())?;
    Ok(info.ack_floor.stream_sequence)
}

/// The entries of `realm`, in no particular order.
pub async fn entries(state: &kv::Store, realm: &str) -> Result<Vec<StateEntry>, String> {
    let prefix = format!("{realm}.");
    let keys: Vec<String> = state
        .keys()
        .await
        .map_err(|e| e.to_string())?
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    for key in keys.into_iter().filter(|k| k.starts_with(&prefix)) {
        if let Some(bytes) = state.get(&key).await.map_err(|e| e.to_string())? {
            if let Ok(entry) = serde_json::from_slice(&bytes) {
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}
