//! Operations: what an admin needs when provisioning stops — the queue seen from outside
//! ([`queue`]: list, show, skip, requeue quarantined files), readiness ([`ready`]), importing
//! the Python connector's cache ([`import`]) and comparing the state store with OX
//! ([`reconcile`]); all run inside the daemon. The `ox-connector queue | reconcile | state`
//! commands that call them through the admin API live in `crate::commands` (`queue`, `reconcile`, `state`).
//!
//! Nothing here deletes a listener file (that is `done`'s job alone): skipping and requeueing
//! *move* files, and repairs go through the queue like every other change.

pub mod import;
pub mod queue;
pub mod ready;
pub mod reconcile;
pub mod redact;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use async_nats::jetstream;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::provision::OxApplier;
use crate::status::StatusBoard;

/// What the admin API's operations need from the running daemon.
pub struct Ops {
    pub data_dir: PathBuf,
    pub listener_dir: PathBuf,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub status: StatusBoard,
    /// Wakes the watcher (a requeued file is picked up at once).
    pub wake: Arc<Notify>,
    /// Cuts the consumer's retry wait short (a skipped head is acknowledged at once).
    pub retry_now: Arc<Notify>,
    /// The Prometheus recorder, if this process installed it.
    pub metrics: Option<PrometheusHandle>,
    /// The OX applier (state store, credentials, OX client); unset when the daemon runs
    /// another applier (tests).
    pub ox: Arc<OnceLock<OxApplier>>,
    /// Probes whether OX answers, for `/ready`.
    pub probe: Option<ready::OxProbe>,
    /// Whether the master login worked, for `/ready`.
    pub login: ready::LoginCheck,
    /// Whether `listener/` is writable, for `/ready`.
    pub listener_check: ready::ListenerCheck,
    /// Whether `/metrics` and `/ready` are served without the token (the API is on loopback).
    pub open_reads: bool,
}

/// Why an operation could not be done; the text is for the admin.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The state store cannot be read or written (NATS down, a bad record).
    #[error(transparent)]
    State(#[from] crate::provision::state::StateError),
    /// A repair could not be put into the queue.
    #[error(transparent)]
    Publish(#[from] crate::queue::publish::PublishError),
    /// The OX subscriber's JetStream queue cannot be read (NATS down, the stream missing).
    #[error("cannot read the JetStream queue: {0}")]
    Queue(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// OX did not answer a read as expected.
    #[error("OX: {0}")]
    Ox(#[source] crate::ox::soap::OxError),
}

impl OpsError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// The error body of a refused admin API request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
