//! The last state of every object, for prefill: a file of the daemon's data directory
//! (`state/provisioning-state.redb`, [`PATH`]), written by the state keeper.
//!
//! Each object (`<realm>.<topic>.<object>`) has its newest message and that message's sequence
//! in the incoming stream; a deleted object keeps its delete's sequence (a tombstone). A write
//! never replaces a newer sequence, so a message delivered again after newer ones of its object
//! changes nothing.
//!
//! Not a JetStream bucket (as in earlier versions): there nats-server stored every change a
//! third time, and each replaced value made it load an older block of the bucket to remove it;
//! at a 100,000-file backlog that was half of its memory (docs/performance.md). A bucket left by
//! an earlier version is moved into the file at start ([`StateStore::take_over_bucket`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_nats::jetstream;
use bytes::Bytes;
use futures::TryStreamExt;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::message::ProvisioningMessage;

/// Where the file is, under the data directory.
pub const PATH: &str = "state/provisioning-state.redb";

/// The JetStream bucket earlier versions kept the state in.
pub const OLD_BUCKET: &str = "provisioning-state";

/// Key: `<realm>.<topic>.<object>`; value: the incoming sequence and the message as it came
/// (JSON), `None` for a deleted object.
const OBJECTS: TableDefinition<&str, (u64, Option<&[u8]>)> = TableDefinition::new("objects");

/// The file's page cache. redb's default (1 GiB) grows with the file; at a 100,000-file
/// backlog 8 MiB cost the daemon about 10 MiB more than 2 MiB, at the same rate (the pages
/// not cached are read from the kernel's page cache).
const CACHE_BYTES: usize = 2 * 1024 * 1024;

/// One object's last message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateEntry {
    /// Its sequence in the incoming stream.
    pub seq: u64,
    pub message: ProvisioningMessage,
}

/// What to record of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// `<realm>.<topic>.<object>` ([`super::state_keeper::key`]).
    pub key: String,
    /// The message's sequence in the incoming stream.
    pub seq: u64,
    /// The message as it came, or `None` for a deletion.
    pub message: Option<Bytes>,
}

/// Why the state file could not be opened, written or read; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateStoreError {
    /// Its folder cannot be created, or the file cannot be made private.
    #[error("cannot set up the state file {path}: {source}")]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the state file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("cannot write the state file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("cannot read the state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    /// A stored message is not a provisioning message (the file was changed by hand).
    #[error("the state file {path} holds a message that cannot be read, under {key}: {source}")]
    Decode {
        path: PathBuf,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the state file's task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The bucket of an earlier version cannot be read or removed.
    #[error("cannot move the bucket {OLD_BUCKET} into the state file: {0}")]
    OldBucket(#[source] async_nats::Error),
}

/// The state file; cheap to clone.
#[derive(Clone)]
pub struct StateStore {
    db: Arc<redb::Database>,
    path: Arc<Path>,
}

impl StateStore {
    /// Opens the file at `<data_dir>/`[`PATH`], creating it and its folder if needed.
    pub fn open(data_dir: &Path) -> Result<Self, StateStoreError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let path = data_dir.join(PATH);
        if let Some(folder) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)
                .map_err(|source| StateStoreError::Folder {
                    path: folder.to_owned(),
                    source,
                })?;
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|source| StateStoreError::Open {
                path: path.clone(),
                source,
            })?;
        // The messages are not redacted (redaction is per subscriber): root's alone.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| StateStoreError::Folder {
                path: path.clone(),
                source,
            },
        )?;
        Ok(Self {
            db: Arc::new(db),
            path: path.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `writes` in one transaction; a write whose object holds a newer (or the same)
    /// sequence is left out.
    pub async fn write(&self, writes: impl Into<Arc<[Write]>>) -> Result<(), StateStoreError> {
        let (this, writes) = (self.clone(), writes.into());
        tokio::task::spawn_blocking(move || this.write_now(&writes))
            .await
            .map_err(StateStoreError::Task)?
    }

    fn write_now(&self, writes: &[Write]) -> Result<(), StateStoreError> {
        let failed = |source: redb::Error| StateStoreError::Write {
            path: self.path.to_path_buf(),
            source,
        };
        let transaction = self.db.begin_write().map_err(|e| failed(e.into()))?;
        {
            let mut objects = transaction
                .open_table(OBJECTS)
                .map_err(|e| failed(e.into()))?;
            for write in writes {
                let newer_known = objects
                    .get(write.key.as_str())
                    .map_err(|e| failed(e.into()))?
                    .is_some_and(|known| known.value().0 >= write.seq);
                if !newer_known {
                    objects
                        .insert(write.key.as_str(), (write.seq, write.message.as_deref()))
                        .map_err(|e| failed(e.into()))?;
                }
            }
        }
        transaction.commit().map_err(|e| failed(e.into()))
    }

    /// The objects of `realm` that exist, in key order.
    pub async fn entries(&self, realm: &str) -> Result<Vec<StateEntry>, StateStoreError> {
        let (this, prefix) = (self.clone(), format!("{realm}."));
        tokio::task::spawn_blocking(move || this.entries_now(&prefix))
            .await
            .map_err(StateStoreError::Task)?
    }

    fn entries_now(&self, prefix: &str) -> Result<Vec<StateEntry>, StateStoreError> {
        let failed = |source: redb::Error| StateStoreError::Read {
            path: self.path.to_path_buf(),
            source,
        };
        let transaction = self.db.begin_read().map_err(|e| failed(e.into()))?;
        let objects = match transaction.open_table(OBJECTS) {
            Ok(objects) => objects,
            // Nothing written yet.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(failed(e.into())),
        };
        let mut entries = Vec::new();
        for row in objects.range(prefix..).map_err(|e| failed(e.into()))? {
            let (key, value) = row.map_err(|e| failed(e.into()))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            let (seq, message) = value.value();
            let Some(message) = message else { continue };
            let message =
                serde_json::from_slice(message).map_err(|source| StateStoreError::Decode {
                    path: self.path.to_path_buf(),
                    key: key.value().to_owned(),
                    source,
                })?;
            entries.push(StateEntry { seq, message });
        }
        Ok(entries)
    }

    /// Moves the objects of the `provisioning-state` bucket an earlier version kept into the
    /// file, then removes the bucket; the number moved, `None` without a bucket. Safe to
    /// repeat after a crash in between: a moved object never replaces a newer one.
    pub async fn take_over_bucket(
        &self,
        js: &jetstream::Context,
    ) -> Result<Option<usize>, StateStoreError> {
        let old = StateStoreError::OldBucket;
        let Ok(bucket) = js.get_key_value(OLD_BUCKET).await else {
            return Ok(None);
        };
        let keys: Vec<String> = bucket
            .keys()
            .await
            .map_err(|e| old(e.into()))?
            .try_collect()
            .await
            .map_err(|e| old(e.into()))?;
        let mut writes = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(value) = bucket.get(&key).await.map_err(|e| old(e.into()))? else {
                continue;
            };
            // Values of a bucket not written by the state keeper are left behind.
            let Ok(entry) = serde_json::from_slice::<StateEntry>(&value) else {
                continue;
            };
            let message = serde_json::to_vec(&entry.message).map_err(|e| old(e.into()))?;
            writes.push(Write {
                key,
                seq: entry.seq,
                message: Some(message.into()),
            });
        }
        let moved = writes.len();
        self.write(writes).await?;
        js.delete_key_value(OLD_BUCKET)
            .await
            .map_err(|e| old(e.into()))?;
        Ok(Some(moved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str, seq: u64, message: Option<&str>) -> Write {
        Write {
            key: key.to_owned(),
            seq,
            message: message.map(|m| Bytes::copy_from_slice(m.as_bytes())),
        }
    }

    fn stored(store: &StateStore, key: &str) -> Option<(u64, Option<Vec<u8>>)> {
        let transaction = store.db.begin_read().unwrap();
        let objects = transaction.open_table(OBJECTS).unwrap();
        let value = objects.get(key).unwrap()?;
        let (seq, message) = value.value();
        Some((seq, message.map(<[u8]>::to_vec)))
    }

    #[tokio::test]
    async fn a_write_never_replaces_a_newer_sequence_and_a_delete_leaves_its_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join(PATH)), 0o600);
        assert_eq!(mode(dir.path().join(PATH).parent().unwrap()), 0o700);
        store
            .write(vec![write("udm.u.a", 7, Some("v7"))])
            .await
            .unwrap();
        store
            .write(vec![write("udm.u.a", 3, Some("v3"))])
            .await
            .unwrap();
        assert_eq!(stored(&store, "udm.u.a"), Some((7, Some(b"v7".to_vec()))));
        store.write(vec![write("udm.u.a", 9, None)]).await.unwrap();
        store
            .write(vec![write("udm.u.a", 8, Some("v8"))])
            .await
            .unwrap();
        assert_eq!(stored(&store, "udm.u.a"), Some((9, None)));
        store
            .write(vec![write("udm.u.a", 11, Some("v11"))])
            .await
            .unwrap();
        assert_eq!(stored(&store, "udm.u.a"), Some((11, Some(b"v11".to_vec()))));
    }

    #[tokio::test]
    async fn the_file_is_kept_and_a_second_open_in_the_same_place_fails_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store
            .write(vec![write("udm.u.a", 1, Some("{}"))])
            .await
            .unwrap();
        let again = StateStore::open(dir.path()).err().unwrap();
        assert!(again.to_string().contains(PATH), "{again}");
        drop(store);
        let reopened = StateStore::open(dir.path()).unwrap();
        assert_eq!(
            stored(&reopened, "udm.u.a"),
            Some((1, Some(b"{}".to_vec())))
        );
    }

    #[tokio::test]
    async fn an_earlier_versions_bucket_is_moved_into_the_file_once_and_removed() {
        use crate::queue::embedded::{EmbeddedSettings, NatsServer};
        let dir = tempfile::tempdir().unwrap();
        let server = NatsServer::start(EmbeddedSettings {
            binary: None,
            dir: dir.path().join("nats"),
            port: 0,
            users: None,
        })
        .await
        .unwrap();
        let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
        let bucket = js
            .create_key_value(jetstream::kv::Config {
                bucket: OLD_BUCKET.to_owned(),
                history: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        let file = crate::listener::ListenerFile::parse(
            Path::new("2026-12-03-06-00-00-000001.json"),
            "2026-12-03-06-00-00-000001.json".into(),
            br#"{"dn": "uid=anna,dc=x", "id": "u-1", "udm_object_type": "users/user",
                "object": {"username": "anna"}, "options": []}"#
                .to_vec(),
        )
        .unwrap();
        let message = ProvisioningMessage::from_listener_file(&file);
        let entry = serde_json::to_vec(&StateEntry {
            seq: 12,
            message: message.clone(),
        })
        .unwrap();
        bucket
            .put("udm.users/user.u-1", entry.clone().into())
            .await
            .unwrap();
        bucket
            .put("udm.users/user.u-3", entry.into())
            .await
            .unwrap();
        bucket.put("udm.users/user.gone", "x".into()).await.unwrap();
        bucket.purge("udm.users/user.gone").await.unwrap();

        let store = StateStore::open(dir.path()).unwrap();
        // Newer than the bucket's (the object was deleted after an earlier move, and the
        // daemon stopped before it removed the bucket): stays.
        store
            .write(vec![write("udm.users/user.u-3", 40, None)])
            .await
            .unwrap();
        assert_eq!(store.take_over_bucket(&js).await.unwrap(), Some(2));
        let entries = store.entries("udm").await.unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!((entries[0].seq, &entries[0].message), (12, &message));
        assert_eq!(stored(&store, "udm.users/user.u-3"), Some((40, None)));
        assert!(
            js.get_key_value(OLD_BUCKET).await.is_err(),
            "the bucket is gone"
        );
        assert_eq!(store.take_over_bucket(&js).await.unwrap(), None);
        server.stop().await;
    }

    #[tokio::test]
    async fn an_unreadable_message_is_an_error_naming_the_file_and_the_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert!(store.entries("udm").await.unwrap().is_empty());
        store
            .write(vec![write("udm.users/user.x", 1, Some("not json"))])
            .await
            .unwrap();
        let error = store.entries("udm").await.err().unwrap().to_string();
        assert!(
            error.contains(PATH) && error.contains("udm.users/user.x"),
            "{error}"
        );
    }
}
