//! OX admin credentials: `contexts.json`, the original connector's credentials file.
//!
//! ```json
//! {
//!   "10": {"adminpass": "…", "adminuser": "oxadmin"},
//!   "master": {"adminpass": "…", "adminuser": "oxadminmaster"}
//! }
//! ```
//!
//! The file (path from `OX_CREDENTIALS_FILE`, mode 0600, keys sorted, indent 2) is what admins
//! read and edit — for example to add the credentials of a context made directly in OX, or to
//! fix the master password — so it is authoritative: it is re-read whenever it changes on disk,
//! for the context admins and the master admin alike (the OX client asks for the master login
//! before every call). The App Center settings `OX_MASTER_ADMIN`/`OX_MASTER_PASSWORD` are
//! copied into its `master` entry when they change ([`ContextCredentials::adopt_master_setting`]):
//! at the first start and at the first start after the setting was changed; in between, an edit
//! of the file wins. Every change the connector makes
//! (a context created or deleted, the master login from the settings) is written to the
//! `ox-credentials` key-value bucket and then to the file, atomically. If the file is lost, it is
//! restored from the bucket at start-up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

const BUCKET: &str = "ox-credentials";
/// The key of the master admin's entry.
pub const MASTER: &str = "master";

/// One admin login. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminLogin {
    pub adminuser: String,
    pub adminpass: String,
}

impl std::fmt::Debug for AdminLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminLogin")
            .field("adminuser", &self.adminuser)
            .field("adminpass", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: cannot read the credentials file: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the credentials file is not valid: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: cannot write the credentials file: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials bucket: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

type Entries = BTreeMap<String, AdminLogin>;

/// The credentials file and its bucket. Clones share the cache.
#[derive(Clone)]
pub struct ContextCredentials {
    path: PathBuf,
    store: kv::Store,
    cache: Arc<Mutex<(Option<SystemTime>, Entries)>>,
    /// Held by a write from reading the entries to saving them: contexts of different changes
    /// are created at the same time, and neither may lose the other's login.
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl ContextCredentials {
    /// Opens the bucket and the file, restoring a missing file from the bucket.
    pub async fn open(path: PathBuf, js: &jetstream::Context) -> Result<Self, CredentialsError> {
        let store = crate::queue::kv::open_bucket(
            js,
            BUCKET,
            "ox-connector: OX admin credentials (mirror of contexts.json)",
        )
        .await
        .map_err(|e| CredentialsError::Store(e.into()))?;
        let this = Self {
            path,
            store,
            cache: Arc::new(Mutex::new((None, Entries::new()))),
            writing: Arc::new(tokio::sync::Mutex::new(())),
        };
        if this.path.exists() {
            // The file wins: bring the bucket in line with what the admin sees.
            let entries = read_file(&this.path)?;
            this.mirror(&entries).await?;
        } else {
            let entries = this.bucket_entries().await?;
            if !entries.is_empty() {
                tracing::warn!(file = %this.path.display(), "The credentials file is missing; restoring it from the state store.");
            }
            write_file(&this.path, &entries)?;
        }
        Ok(this)
    }

    /// Copies the App Center setting of the master login into the file's `master` entry if
    /// the setting changed since it was last copied (or was never copied). Otherwise the file
    /// keeps what an admin wrote into it. Returns whether it copied.
    pub async fn adopt_master_setting(&self, login: AdminLogin) -> Result<bool, CredentialsError> {
        let marker = self.setting_marker();
        let digest = crate::message::sha256_hex(
            format!("{}\n{}", login.adminuser, login.adminpass).as_bytes(),
        );
        let copied = std::fs::read_to_string(&marker).unwrap_or_default();
        if copied.trim() == digest && self.get(MASTER)?.is_some() {
            return Ok(false);
        }
        self.set(MASTER, login).await?;
        crate::atomic_file::write_with_mode(&marker, digest.as_bytes(), Some(0o600)).map_err(
            |source| CredentialsError::Write {
                path: marker.clone(),
                source,
            },
        )?;
        Ok(true)
    }

    /// Beside the file: the digest of the master setting last copied into it.
    fn setting_marker(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.path.with_file_name(format!(".{name}.master-setting"))
    }

    /// The master login as the file has it now; if the file cannot be read at the moment (an
    /// admin is half-way through editing it), the last one read.
    pub fn master_login(&self) -> Option<AdminLogin> {
        self.get(MASTER).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "Cannot read the credentials file; using the master login read before.");
            let cache = crate::locks::lock(&self.cache);
            cache.1.get(MASTER).cloned()
        })
    }

    /// The login for `key` (a context id such as `"10"`, or [`MASTER`]).
    pub fn get(&self, key: &str) -> Result<Option<AdminLogin>, CredentialsError> {
        self.with_entries(|entries| entries.get(key).cloned())
    }

    /// Stores the login for `key` (bucket first, then the file).
    pub async fn set(&self, key: &str, login: AdminLogin) -> Result<(), CredentialsError> {
        let _writing = self.writing.lock().await;
        let mut entries = self.entries()?;
        if entries.get(key) == Some(&login) {
            return Ok(());
        }
        let json = serde_json::to_vec(&login).map_err(|e| CredentialsError::Store(e.into()))?;
        self.store
            .put(key, json.into())
            .await
            .map_err(|e| CredentialsError::Store(e.into()))?;
        entries.insert(key.to_owned(), login);
        self.save(entries)
    }

    /// Forgets the login for `key`.
    pub async fn remove(&self, key: &str) -> Result<(), CredentialsError> {
        let _writing = self.writing.lock().await;
        let mut entries = self.entries()?;
        if entries.remove(key).is_none() {
            return Ok(());
        }
        self.store
            .purge(key)
            .await
            .map_err(|e| CredentialsError::Store(e.into()))?;
        self.save(entries)
    }

    fn save(&self, entries: Entries) -> Result<(), CredentialsError> {
        write_file(&self.path, &entries)?;
        let mtime = modified(&self.path);
        *crate::locks::lock(&self.cache) = (mtime, entries);
        Ok(())
    }

    /// The entries, re-read if the file changed on disk.
    fn entries(&self) -> Result<Entries, CredentialsError> {
        self.with_entries(Entries::clone)
    }

    /// `f` of the entries, re-read first if the file changed on disk (an admin edited it).
    fn with_entries<T>(&self, f: impl FnOnce(&Entries) -> T) -> Result<T, CredentialsError> {
        let mtime = modified(&self.path);
        let mut cache = crate::locks::lock(&self.cache);
        if cache.0.is_none() || cache.0 != mtime {
            let entries = if self.path.exists() {
                read_file(&self.path)?
            } else {
                Entries::new()
            };
            *cache = (mtime, entries);
        }
        Ok(f(&cache.1))
    }

    async fn bucket_entries(&self) -> Result<Entries, CredentialsError> {
        let keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(|e| CredentialsError::Store(e.into()))?
            .try_collect()
            .await
            .map_err(|e| CredentialsError::Store(e.into()))?;
        let mut entries = Entries::new();
        for key in keys {
            if let Some(bytes) = self
                .store
                .get(&key)
                .await
                .map_err(|e| CredentialsError::Store(e.into()))?
            {
                if let Ok(login) = serde_json::from_slice(&bytes) {
                    entries.insert(key, login);
                }
            }
        }
        Ok(entries)
    }

    async fn mirror(&self, entries: &Entries) -> Result<(), CredentialsError> {
        let in_bucket = self.bucket_entries().await?;
        for (key, login) in entries {
            if in_bucket.get(key) != Some(login) {
                let json =
                    serde_json::to_vec(login).map_err(|e| CredentialsError::Store(e.into()))?;
                self.store
                    .put(key, json.into())
                    .await
                    .map_err(|e| CredentialsError::Store(e.into()))?;
            }
        }
        for key in in_bucket.keys().filter(|k| !entries.contains_key(*k)) {
            self.store
                .purge(key)
                .await
                .map_err(|e| CredentialsError::Store(e.into()))?;
        }
        Ok(())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_file(path: &Path) -> Result<Entries, CredentialsError> {
    let bytes = std::fs::read(path).map_err(|source| CredentialsError::Read {
        path: path.to_owned(),
        source,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Entries::new());
    }
    serde_json::from_slice(&bytes).map_err(|source| CredentialsError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// Writes like the original: keys sorted, indent 2, mode 0600, atomically.
fn write_file(path: &Path, entries: &Entries) -> Result<(), CredentialsError> {
    let write_err = |source| CredentialsError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut json =
        serde_json::to_vec_pretty(entries).map_err(|e| write_err(std::io::Error::other(e)))?;
    json.push(b'\n');
    crate::atomic_file::write_with_mode(path, &json, Some(0o600)).map_err(write_err)
}
