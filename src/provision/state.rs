//! The OX subscriber's state store, in NATS JetStream key-value buckets (no extra database).
//!
//! - `ox-objects`: per entry UUID, the last object applied to OX and the OX ids it got
//!   ([`ObjectState`]). It tells a create from a change, finds objects under their old names
//!   after a rename, knows where a user was before a context change, and resolves group members
//!   to OX user ids without asking OX.
//! - `ox-dn-index`: DN → entry UUID, for resolving members given as DNs.
//!
//! The OX subscriber is the only writer of both buckets, so reads are served from a cache of
//! what this process read or wrote last (`cache`); the DN index is written only when an
//! object's DN changes (or is not known to be indexed, after a start).
//!
//! Writes happen only after OX accepted the change; a crash between the two only means the
//! change is applied again, which the handlers tolerate (they are idempotent).
//!
//! A deleted OX context takes everything in it along. Instead of rewriting every object that
//! referred to it (a scan of the whole store per context deletion, which made large runs
//! quadratic), the store remembers when each context was deleted (key
//! `meta.deleted-contexts`) and drops references to it from any state applied before that
//! moment when the state is read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::udm::Properties;
use crate::locks::lock;
use crate::message::sha256_hex;
use crate::queue::kv::{decode_key, encode_key, open_bucket};

mod cache;
use cache::Cache;

const OBJECTS_BUCKET: &str = "ox-objects";
/// The key of the deleted contexts in the objects bucket. Entry UUID keys never contain a `.`
/// except behind the `x.` prefix (see `encode_key`), so it cannot collide with one.
const DELETED_CONTEXTS_KEY: &str = "meta.deleted-contexts";
const DN_BUCKET: &str = "ox-dn-index";

/// A reference to an OX object: its id and its name at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OxRef {
    pub id: i32,
    pub name: String,
    /// A group's OX member ids (sorted) as last applied, so an unchanged group is not sent
    /// to OX again. Empty for other objects (and for groups remembered before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<i32>,
}

/// The OX side of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OxIds {
    /// The OX context of a user, resource or context (its own id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<i32>,
    /// The OX user, resource or group (in `context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<OxRef>,
    /// A group's OX group per context (groups are split by the contexts of their members).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_context: BTreeMap<i32, OxRef>,
}

impl OxIds {
    /// The ids of an object that lives in one context (a user or a resource).
    pub fn in_context(context: i32, id: i32, name: String) -> Self {
        Self {
            context: Some(context),
            object: Some(OxRef {
                id,
                name,
                members: Vec::new(),
            }),
            ..Self::default()
        }
    }
}

/// What the store remembers about one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectState {
    pub object_type: String,
    pub dn: String,
    /// The UDM properties last applied.
    pub object: Properties,
    pub ox: OxIds,
    /// The listener file of the last applied change: an older file of the same object that
    /// arrives later (a re-publish after a long outage) is stale and not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file: Option<String>,
    pub applied_at: DateTime<Utc>,
    /// A user's contexts whose groups are still to be applied again after its create or move:
    /// written with the user's new state and cleared once they are, so that a retry after a
    /// failure (or a crash) in between finishes them although the user is in place already.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub groups_pending: BTreeSet<i32>,
}

/// A failed read or write of the state store: what was being done, and the NATS (or JSON)
/// error it failed with.
#[derive(Debug, thiserror::Error)]
#[error("state store: {context}: {source}")]
pub struct StateError {
    context: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StateError {
    fn new(
        context: &'static str,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            context,
            source: error.into(),
        }
    }
}

/// Handle to the state store; cheap to clone.
#[derive(Clone)]
pub struct StateStore {
    objects: kv::Store,
    dns: kv::Store,
    /// Context id → when it was deleted (mirror of `meta.deleted-contexts`).
    deleted_contexts: Arc<Mutex<BTreeMap<i32, DateTime<Utc>>>>,
    objects_cache: Arc<Cache<Cached>>,
    /// DN key → entry UUID (`None`: no object at that DN).
    dns_cache: Arc<Cache<Option<String>>>,
}

impl StateStore {
    /// Opens (creating if needed) the buckets. The handle caches what it reads and writes, so
    /// it is for the buckets' only writer (the OX subscriber); any other reader sees what it
    /// read first and should open a handle of its own for each look.
    pub async fn open(js: &jetstream::Context) -> Result<Self, StateError> {
        let open = |name, description| async move {
            open_bucket(js, name, description)
                .await
                .map_err(|e| StateError::new("open", e))
        };
        let objects = open(
            OBJECTS_BUCKET,
            "ox-connector: last applied object per entry UUID",
        )
        .await?;
        let deleted = match objects
            .get(DELETED_CONTEXTS_KEY)
            .await
            .map_err(|e| StateError::new("read deleted contexts", e))?
        {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StateError::new("decode deleted contexts", e))?,
            None => BTreeMap::new(),
        };
        Ok(Self {
            objects,
            dns: open(DN_BUCKET, "ox-connector: DN to entry UUID").await?,
            deleted_contexts: Arc::new(Mutex::new(deleted)),
            objects_cache: Arc::new(Cache::new(CACHED_OBJECTS)),
            dns_cache: Arc::new(Cache::new(CACHED_DNS)),
        })
    }

    /// Remembers that OX context `id` was deleted now: states applied before this moment no
    /// longer refer to it when they are read.
    pub async fn forget_context(&self, id: i32) -> Result<(), StateError> {
        let bytes = {
            let mut deleted = lock(&self.deleted_contexts);
            deleted.insert(id, Utc::now());
            serde_json::to_vec(&*deleted)
                .map_err(|e| StateError::new("encode deleted contexts", e))?
        };
        self.objects
            .put(DELETED_CONTEXTS_KEY, bytes.into())
            .await
            .map_err(|e| StateError::new("write deleted contexts", e))?;
        Ok(())
    }

    /// Drops the references of `state` to contexts deleted after it was applied.
    fn without_deleted_contexts(&self, mut state: ObjectState) -> ObjectState {
        let deleted = lock(&self.deleted_contexts);
        if deleted.is_empty() || state.object_type == super::topic::CONTEXT {
            return state;
        }
        let gone = |id: &i32| deleted.get(id).is_some_and(|at| *at > state.applied_at);
        if state.ox.context.as_ref().is_some_and(gone) {
            state.ox.context = None;
            state.ox.object = None;
        }
        let applied_at = state.applied_at;
        state
            .ox
            .per_context
            .retain(|id, _| deleted.get(id).is_none_or(|at| *at <= applied_at));
        state
    }

    /// The remembered state of `entry_uuid`.
    pub async fn get(&self, entry_uuid: &str) -> Result<Option<ObjectState>, StateError> {
        Ok(self
            .get_versioned(entry_uuid)
            .await?
            .map(|(state, _)| state))
    }

    /// Like [`StateStore::get`], with the revision to pass to
    /// [`StateStore::replace_if_unchanged`].
    pub async fn get_versioned(
        &self,
        entry_uuid: &str,
    ) -> Result<Option<(ObjectState, u64)>, StateError> {
        let stored = self.read(entry_uuid).await?.stored;
        Ok(stored.map(|(state, revision)| (self.without_deleted_contexts(state), revision)))
    }

    /// What the bucket holds for `entry_uuid`, from the cache if this process read or wrote it
    /// recently.
    async fn read(&self, entry_uuid: &str) -> Result<Cached, StateError> {
        self.objects_cache
            .get_or_fetch(entry_uuid, || async {
                Ok(Cached {
                    stored: self.fetch(entry_uuid).await?,
                    dn_indexed: false,
                })
            })
            .await
    }

    async fn fetch(&self, entry_uuid: &str) -> Result<Option<(ObjectState, u64)>, StateError> {
        let entry = self
            .objects
            .entry(encode_key(entry_uuid))
            .await
            .map_err(|e| StateError::new("read object", e))?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Ok(None);
        };
        let state: ObjectState = serde_json::from_slice(&entry.value)
            .map_err(|e| StateError::new("decode object", e))?;
        Ok(Some((state, entry.revision)))
    }

    /// Writes `state` (whose DN is unchanged) for `entry_uuid` only if it is still at
    /// `revision`; `Ok(false)`: someone changed it meanwhile, read it again. For the parts of an
    /// object that changes applied at the same time share (a group's OX groups per context).
    pub async fn replace_if_unchanged(
        &self,
        entry_uuid: &str,
        state: &ObjectState,
        revision: u64,
    ) -> Result<bool, StateError> {
        let dn_indexed = self.read(entry_uuid).await?.dn_indexed;
        let bytes = serde_json::to_vec(state).map_err(|e| StateError::new("encode object", e))?;
        let written = self
            .objects
            .update(encode_key(entry_uuid), bytes.into(), revision)
            .await;
        match written {
            Ok(revision) => {
                let now = Cached {
                    stored: Some((state.clone(), revision)),
                    dn_indexed,
                };
                self.objects_cache.written(entry_uuid, Some(now));
                Ok(true)
            }
            Err(e) => {
                self.objects_cache.written(entry_uuid, None);
                if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                    Ok(false)
                } else {
                    Err(StateError::new("write object", e))
                }
            }
        }
    }

    /// The entry UUID of the object at `dn`, if known.
    pub async fn entry_uuid_of(&self, dn: &str) -> Result<Option<String>, StateError> {
        let key = dn_key(dn);
        self.dns_cache
            .get_or_fetch(&key, || async {
                let value = self
                    .dns
                    .get(&key)
                    .await
                    .map_err(|e| StateError::new("read DN index", e))?;
                Ok(value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
            })
            .await
    }

    /// The state of the object at `dn`, if known.
    pub async fn get_by_dn(&self, dn: &str) -> Result<Option<(String, ObjectState)>, StateError> {
        let Some(uuid) = self.entry_uuid_of(dn).await? else {
            return Ok(None);
        };
        Ok(self.get(&uuid).await?.map(|state| (uuid, state)))
    }

    /// [`StateStore::get_by_dn`] of each of `dns`, in that order, 16 lookups at a time (a
    /// group may have thousands of members).
    pub async fn get_many_by_dn(
        &self,
        dns: &[String],
    ) -> Result<Vec<Option<(String, ObjectState)>>, StateError> {
        use futures::{StreamExt, TryStreamExt};
        let lookups = dns.iter().cloned().map(|dn| {
            let store = self.clone();
            async move { store.get_by_dn(&dn).await }
        });
        futures::stream::iter(lookups)
            .buffered(16)
            .try_collect()
            .await
    }

    /// Remembers `state` for `entry_uuid` and points its DN at it (dropping the old DN).
    pub async fn put(&self, entry_uuid: &str, state: &ObjectState) -> Result<(), StateError> {
        let previous = self.read(entry_uuid).await?;
        let previous_dn = previous.stored.as_ref().map(|(s, _)| s.dn.as_str());
        let same_dn = previous_dn.is_some_and(|old| old.eq_ignore_ascii_case(&state.dn));
        let bytes = serde_json::to_vec(state).map_err(|e| StateError::new("encode object", e))?;
        // Independent keys: written concurrently, one round trip instead of three.
        let write_object = async {
            self.objects
                .put(encode_key(entry_uuid), bytes.into())
                .await
                .map_err(|e| StateError::new("write object", e))
        };
        let write_dn = async {
            if same_dn && previous.dn_indexed {
                return Ok(());
            }
            let key = dn_key(&state.dn);
            let written = self
                .dns
                .put(&key, entry_uuid.to_owned().into_bytes().into())
                .await;
            let now = written.as_ref().ok().map(|_| Some(entry_uuid.to_owned()));
            self.dns_cache.written(&key, now);
            written
                .map(drop)
                .map_err(|e| StateError::new("write DN index", e))
        };
        let forget_old_dn = async {
            match previous_dn.filter(|_| !same_dn) {
                Some(old) => self.forget_dn(old, entry_uuid).await,
                None => Ok(()),
            }
        };
        let written = tokio::try_join!(write_object, write_dn, forget_old_dn);
        let cached = written.as_ref().ok().map(|(revision, _, _)| Cached {
            stored: Some((state.clone(), *revision)),
            dn_indexed: true,
        });
        self.objects_cache.written(entry_uuid, cached);
        written.map(drop)
    }

    /// Forgets `entry_uuid` (after its deletion in OX).
    pub async fn remove(&self, entry_uuid: &str) -> Result<(), StateError> {
        let removed = async {
            if let Some((state, _)) = self.read(entry_uuid).await?.stored {
                self.forget_dn(&state.dn, entry_uuid).await?;
            }
            self.objects
                .purge(encode_key(entry_uuid))
                .await
                .map_err(|e| StateError::new("remove object", e))
        }
        .await;
        let cached = removed.as_ref().ok().map(|()| Cached {
            stored: None,
            dn_indexed: false,
        });
        self.objects_cache.written(entry_uuid, cached);
        removed
    }

    /// Every remembered object (for re-applying dependents and for reconciling).
    pub async fn all(&self) -> Result<Vec<(String, ObjectState)>, StateError> {
        use futures::TryStreamExt;
        let keys: Vec<String> = self
            .objects
            .keys()
            .await
            .map_err(|e| StateError::new("list objects", e))?
            .try_collect()
            .await
            .map_err(|e| StateError::new("list objects", e))?;
        let mut all = Vec::with_capacity(keys.len());
        for key in keys.into_iter().filter(|k| !k.starts_with("meta.")) {
            let uuid = decode_key(&key);
            if let Some(state) = self.get(&uuid).await? {
                all.push((uuid, state));
            }
        }
        Ok(all)
    }

    async fn forget_dn(&self, dn: &str, entry_uuid: &str) -> Result<(), StateError> {
        // Only if the DN still points here: another object may have taken the DN over.
        if self.entry_uuid_of(dn).await?.as_deref() == Some(entry_uuid) {
            let key = dn_key(dn);
            let purged = self.dns.purge(&key).await;
            self.dns_cache
                .written(&key, purged.as_ref().ok().map(|()| None));
            purged.map_err(|e| StateError::new("remove DN", e))?;
        }
        Ok(())
    }
}

/// How many objects the cache keeps: more than the OX subscriber holds at once (256), so a
/// message's scope and its apply read the same entry, and groups read by many members' changes
/// stay in it.
const CACHED_OBJECTS: usize = 2048;
/// How many DNs the cache keeps (a DN and an entry UUID: about 150 bytes each).
const CACHED_DNS: usize = 8192;

/// What the objects bucket holds for an entry UUID.
#[derive(Clone)]
struct Cached {
    /// The state and its revision in the bucket; `None`: no state.
    stored: Option<(ObjectState, u64)>,
    /// The DN index is known to point at the state's DN.
    dn_indexed: bool,
}

/// DNs compare case-insensitively in LDAP; the key is a digest of the lower-cased DN.
fn dn_key(dn: &str) -> String {
    sha256_hex(dn.to_lowercase().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_are_compared_case_insensitively() {
        assert_eq!(dn_key("uid=A,dc=X"), dn_key("uid=a,dc=x"));
    }
}
