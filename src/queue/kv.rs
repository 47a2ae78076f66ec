//! Key-value buckets on JetStream, through async-nats' own key-value API.
//!
//! Every bucket keeps one value per key in file storage, with as many replicas as the
//! provisioning queue ([`super::replicas`], set by `--replicas`).

use async_nats::jetstream::{self, kv, stream};

/// Why a bucket could not be opened; each names the bucket and keeps the NATS error.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The replica count (read from the incoming stream) is unknown.
    #[error("cannot open the key-value bucket {bucket}: {source}")]
    Replicas {
        bucket: String,
        #[source]
        source: super::SetupError,
    },
    /// The bucket exists but its stream cannot be read.
    #[error("cannot open the key-value bucket {bucket}: {source}")]
    Stream {
        bucket: String,
        #[source]
        source: jetstream::context::GetStreamError,
    },
    /// Creating the bucket or bringing it in line failed.
    #[error("cannot open the key-value bucket {bucket}: {source}")]
    Create {
        bucket: String,
        #[source]
        source: jetstream::context::CreateKeyValueError,
    },
}

/// Opens bucket `name`, creating it if needed, or bringing its description and replicas in line.
pub async fn open_bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
) -> Result<kv::Store, BucketError> {
    let bucket = || name.to_owned();
    let replicas = super::replicas(js)
        .await
        .map_err(|source| BucketError::Replicas {
            bucket: bucket(),
            source,
        })?;
    let config = kv::Config {
        bucket: name.to_owned(),
        description: description.to_owned(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    if let Ok(store) = js.get_key_value(name).await {
        let info = js
            .get_stream(format!("KV_{name}"))
            .await
            .map_err(|source| BucketError::Stream {
                bucket: bucket(),
                source,
            })?
            .cached_info()
            .config
            .clone();
        if info.num_replicas == replicas && info.description.as_deref() == Some(description) {
            return Ok(store);
        }
    }
    js.create_or_update_key_value(config)
        .await
        .map_err(|source| BucketError::Create {
            bucket: bucket(),
            source,
        })
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
