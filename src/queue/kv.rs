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

/// A key (or key token) for any string: KV keys allow `[-_=.a-zA-Z0-9/]`; entry UUIDs normally
/// fit and are used as they are. Anything else is hex-encoded behind an `x.` prefix, which a
/// UUID cannot have.
pub fn encode_key(value: &str) -> String {
    let fits = !value.is_empty()
        && !value.starts_with('.')
        && !value.ends_with('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=');
    if fits {
        value.to_owned()
    } else {
        let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x.{hex}")
    }
}

/// The string behind a key made by [`encode_key`].
pub fn decode_key(key: &str) -> String {
    match key.strip_prefix("x.") {
        Some(encoded) => {
            let bytes: Vec<u8> = (0..encoded.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(encoded.get(i..i + 2)?, 16).ok())
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        None => key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_for_any_string() {
        for value in ["c41e7a90-3d2b-103f-9b0c-11a2b3c4d5e6", "weird id/ü", ".x"] {
            assert_eq!(decode_key(&encode_key(value)), value);
        }
        assert_eq!(encode_key("c41e7a90-3d2b"), "c41e7a90-3d2b");
    }
}
