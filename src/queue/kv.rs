//! Key-value buckets on JetStream, opened in a way that works with every nats-server ≥ 2.9.
//!
//! `async_nats`' `create_key_value` first asks the server for its account info in a format that
//! nats-server 2.9 (Debian 12's package) does not answer, so the bucket's stream is created here
//! with the same settings the client would use (`KV_<bucket>` on `$KV.<bucket>.>`, one value
//! per key, roll-ups allowed, deletes denied, direct get, discard new) and then opened as a
//! bucket.

use async_nats::jetstream::{self, kv, stream};

#[derive(Debug, thiserror::Error)]
#[error("cannot open the key-value bucket {bucket}: {reason}")]
pub struct BucketError {
    pub bucket: String,
    pub reason: String,
}

/// Opens bucket `name`, creating it if needed.
pub async fn open_bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
) -> Result<kv::Store, BucketError> {
    let error = |reason: String| BucketError {
        bucket: name.to_owned(),
        reason,
    };
    if js.get_stream(format!("KV_{name}")).await.is_err() {
        let config = stream::Config {
            name: format!("KV_{name}"),
            description: Some(description.to_owned()),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            storage: stream::StorageType::File,
            num_replicas: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        };
        js.get_or_create_stream(config)
            .await
            .map_err(|e| error(e.to_string()))?;
    }
    js.get_key_value(name)
        .await
        .map_err(|e| error(e.to_string()))
}
