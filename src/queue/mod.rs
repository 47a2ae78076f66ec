//! ③ The durable queue on NATS JetStream: stream and consumer layout, publishing, the ordered
//! consumer, and the embedded `nats-server` used when no server URL is configured.
//!
//! Layout (documented in `docs/queue.md`):
//! - stream `PROVISIONING` on `provisioning.>`, file storage, **work-queue** retention (a message
//!   stays until its subscriber acknowledged it, even before the consumer exists), bounded by
//!   message count and bytes with **discard new** (a full queue refuses messages; the listener
//!   files wait on disk — nothing is dropped), a duplicate window for `Nats-Msg-Id`;
//! - durable pull consumer `ox-connector` on `provisioning.udm.>`, explicit acks,
//!   `max_ack_pending = 1` (strict order), no `max_deliver` (never skips on its own).

pub mod consume;
pub mod embedded;
pub mod kv;
pub mod publish;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

/// Name of the stream holding provisioning messages.
pub const STREAM: &str = "PROVISIONING";
/// Durable consumer of the OX subscriber.
pub const OX_CONSUMER: &str = "ox-connector";
/// How long the server remembers message ids for de-duplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Bounds of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub max_messages: i64,
    pub max_bytes: i64,
}

/// Consumer timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerTiming {
    /// After this long without an ack or progress report the server redelivers; it is also how
    /// long a message waits after a crash before it comes again.
    pub ack_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot create or update the JetStream stream {STREAM}: {0}")]
    Stream(String),
    #[error("cannot create or update the JetStream consumer {OX_CONSUMER}: {0}")]
    Consumer(String),
}

/// The stream configuration: the single definition shared by publisher and consumer.
pub fn stream_config(limits: QueueLimits) -> stream::Config {
    stream::Config {
        name: STREAM.to_owned(),
        description: Some("UCS provisioning messages (ox-connector)".to_owned()),
        subjects: vec![format!("{}.>", crate::message::SUBJECT_PREFIX)],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        max_messages: limits.max_messages,
        max_bytes: limits.max_bytes,
        discard: stream::DiscardPolicy::New,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: 1,
        ..Default::default()
    }
}

/// The OX subscriber's consumer configuration.
pub fn ox_consumer_config(timing: ConsumerTiming) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(OX_CONSUMER.to_owned()),
        description: Some("applies UDM changes to OX App Suite, in order".to_owned()),
        filter_subject: crate::message::subject(crate::message::REALM_UDM, ">"),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: consumer::DeliverPolicy::All,
        ack_wait: timing.ack_wait,
        max_ack_pending: 1,
        max_deliver: -1,
        ..Default::default()
    }
}

/// Creates the stream and the OX consumer, or brings existing ones in line with the code's
/// definition (limits and timing can change in place).
pub async fn setup(
    js: &jetstream::Context,
    limits: QueueLimits,
    timing: ConsumerTiming,
) -> Result<consumer::PullConsumer, SetupError> {
    let wanted = stream_config(limits);
    let mut stream = js
        .get_or_create_stream(wanted.clone())
        .await
        .map_err(|e| SetupError::Stream(e.to_string()))?;
    let current = stream
        .info()
        .await
        .map_err(|e| SetupError::Stream(e.to_string()))?
        .config
        .clone();
    if current.max_messages != wanted.max_messages
        || current.max_bytes != wanted.max_bytes
        || current.subjects != wanted.subjects
    {
        js.update_stream(wanted)
            .await
            .map_err(|e| SetupError::Stream(e.to_string()))?;
    }

    let wanted = ox_consumer_config(timing);
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(OX_CONSUMER, wanted.clone())
        .await
        .map_err(|e| SetupError::Consumer(e.to_string()))?;
    let current = consumer.cached_info().config.clone();
    if current.ack_wait != wanted.ack_wait || current.max_ack_pending != wanted.max_ack_pending {
        return stream
            .create_consumer(wanted)
            .await
            .map_err(|e| SetupError::Consumer(e.to_string()));
    }
    Ok(consumer)
}
