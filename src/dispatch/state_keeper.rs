//! The state keeper: remembers the last message of every object, so that a new subscriber can
//! be given the current state of everything (prefill) before the live changes.
//!
//! A durable consumer on the incoming stream writes each message into the state file
//! ([`super::state_store`]) under `<realm>.<topic>.<object>`, together with its stream
//! sequence; its acknowledged position tells how far the file is complete.
//!
//! It takes the messages that are there (up to [`IN_FLIGHT`]), writes them in one transaction,
//! then acknowledges them: one message at a time (a round trip for the write and one for the
//! next message) fell far behind a backlog, and the incoming stream kept every message, and
//! nats-server its cache, until it caught up.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream::Stream};
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::state_store::{StateStore, StateStoreError, Write};
use crate::queue::kv::encode_key;
use crate::telemetry::Chain;

/// Messages held at once: the consumer's `max_ack_pending` and the size of a pull request.
const IN_FLIGHT: usize = crate::queue::STATE_KEEPER_IN_FLIGHT;

/// Why the state keeper or a prefill could not go on; each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state keeper's consumer on the incoming stream cannot be read.
    #[error("{0}")]
    Consumer(#[source] async_nats::Error),
    #[error(transparent)]
    Store(#[from] StateStoreError),
}

/// The state file's key of an object.
pub fn key(realm: &str, topic: &str, object_id: &str) -> String {
    format!("{realm}.{topic}.{}", encode_key(object_id))
}

/// Keeps the state file up to date until `stop` is cancelled. `client` is the client
/// `incoming` was opened with.
pub async fn run(
    client: &async_nats::Client,
    incoming: Stream,
    store: StateStore,
    stop: CancellationToken,
) -> Result<(), StateError> {
    // Created by the dispatcher at start-up, before anything is published.
    let consumer: jetstream::consumer::PullConsumer = incoming
        .get_consumer(crate::queue::STATE_KEEPER)
        .await
        .map_err(StateError::Consumer)?;
    let mut messages = crate::queue::Pulled::batched(client, &consumer, IN_FLIGHT);
    loop {
        let Some(first) = messages.next(&stop).await else {
            return Ok(());
        };
        let mut batch = vec![first];
        messages.take_arrived(&mut batch, IN_FLIGHT, &stop);
        let writes = batch
            .iter()
            .filter_map(|delivered| {
                let seq = delivered.info().ok()?.stream_sequence;
                write_for(seq, &delivered.payload)
            })
            .collect();
        if !record(&store, writes, &stop).await {
            // Not acknowledged: they come again after a restart.
            return Ok(());
        }
        // Not waiting for the server's confirmations: a lost ack only brings the message back,
        // and the file keeps the newest message of each object whatever comes again.
        for delivered in &batch {
            if let Err(e) = delivered.ack().await {
                tracing::debug!(error = %e, "State keeper: cannot acknowledge.");
            }
        }
    }
}

/// What to record of the message at `seq`; `None` for a payload that is not a provisioning
/// message (nothing to record).
fn write_for(seq: u64, payload: &Bytes) -> Option<Write> {
    let peek: Peek = serde_json::from_slice(payload).ok()?;
    Some(Write {
        key: key(&peek.realm, &peek.topic, &peek.object_id),
        seq,
        message: peek.body.new.is_some().then(|| payload.clone()),
    })
}

/// Writes `writes`, trying again every second while the file cannot be written (said once,
/// not every second: a full disk lasts); false if `stop` came first.
async fn record(store: &StateStore, writes: Vec<Write>, stop: &CancellationToken) -> bool {
    let writes: Arc<[Write]> = writes.into();
    let mut failures = 0u32;
    loop {
        let Err(e) = store.write(Arc::clone(&writes)).await else {
            if failures > 0 {
                tracing::info!(
                    attempts = failures + 1,
                    "The state of objects is recorded again."
                );
            }
            return true;
        };
        if failures == 0 {
            tracing::warn!(error = %Chain(&e), "Cannot record the state of objects; retrying every second.");
        } else {
            tracing::debug!(error = %Chain(&e), "Still cannot record the state of objects.");
        }
        failures = failures.saturating_add(1);
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
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

/// The incoming sequence up to which the state file is complete.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::ListenerFile;
    use crate::message::ProvisioningMessage;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    fn message(id: &str, username: Option<&str>) -> Bytes {
        let object = match username {
            Some(name) => format!(r#"{{"username": "{name}", "note": "quote \" and ü"}}"#),
            None => "null".to_owned(),
        };
        let text = format!(
            r#"{{"dn": "uid={id},dc=x", "id": "{id}", "udm_object_type": "users/user",
                "object": {object}, "options": []}}"#
        );
        let file = ListenerFile::parse(
            std::path::Path::new("2026-12-03-06-00-00-000001.json"),
            "2026-12-03-06-00-00-000001.json".into(),
            text.into_bytes(),
        )
        .unwrap();
        serde_json::to_vec(&ProvisioningMessage::from_listener_file(&file))
            .unwrap()
            .into()
    }

    #[tokio::test]
    async fn a_message_is_stored_as_it_came_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let payload = message("u-1", Some("anna"));
        let write = write_for(42, &payload).unwrap();
        assert_eq!(write.key, "udm.users/user.u-1");
        assert!(record(&store, vec![write], &CancellationToken::new()).await);

        let entries = store.entries("udm").await.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].seq, 42);
        let sent: ProvisioningMessage = serde_json::from_slice(&payload).unwrap();
        assert_eq!(entries[0].message, sent);
        assert!(store.entries("other").await.unwrap().is_empty());
        assert_eq!(write_for(1, &Bytes::from_static(b"not json")), None);
    }

    /// Differential: messages in stream order, cut into random batches, with random earlier
    /// messages delivered again anywhere in a batch (as after lost acks, a crash or a
    /// reconnect) — the file ends as the last message of each object says, as if they were
    /// written one at a time and never again.
    #[tokio::test]
    async fn batches_with_messages_delivered_again_end_as_one_at_a_time() {
        let stop = CancellationToken::new();
        for seed in 0..50u64 {
            let dir = tempfile::tempdir().unwrap();
            let store = StateStore::open(dir.path()).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let objects = ["a", "b", "c", "d", "e"];
            let stream: Vec<(u64, Bytes)> = (1..=60)
                .map(|seq| {
                    let id = objects[rng.random_range(0..objects.len())];
                    (seq, message(id, rng.random_bool(0.7).then_some("name")))
                })
                .collect();
            let mut expected: HashMap<String, Option<u64>> = HashMap::new();
            for (seq, payload) in &stream {
                let write = write_for(*seq, payload).unwrap();
                expected.insert(write.key, write.message.map(|_| *seq));
            }

            let mut next = 0;
            while next < stream.len() {
                let size = rng.random_range(1..=8).min(stream.len() - next);
                let mut batch: Vec<Write> = stream[next..next + size]
                    .iter()
                    .map(|(seq, payload)| write_for(*seq, payload).unwrap())
                    .collect();
                for _ in 0..rng.random_range(0..3) {
                    if next > 0 {
                        let (seq, payload) = &stream[rng.random_range(0..next)];
                        let at = rng.random_range(0..=batch.len());
                        batch.insert(at, write_for(*seq, payload).unwrap());
                    }
                }
                assert!(record(&store, batch, &stop).await);
                next += size;
            }

            let mut wanted: Vec<(String, u64)> = expected
                .into_iter()
                .filter_map(|(key, seq)| Some((key, seq?)))
                .collect();
            wanted.sort();
            let recorded: Vec<(String, u64)> = store
                .entries("udm")
                .await
                .unwrap()
                .into_iter()
                .map(|e| (key("udm", &e.message.topic, &e.message.object_id), e.seq))
                .collect();
            assert_eq!(recorded, wanted, "seed {seed}");
        }
    }
}
