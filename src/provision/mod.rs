//! ④ Provisioning: turns provisioning messages into OX SOAP calls ([`OxApplier`]).
//!
//! One file per OX object kind — [`context`], [`user`] (with the attribute mapping in
//! [`user_mapping`] and its mail addresses in [`user_mail`]), [`group`], [`resource`], [`access_profile`], [`functional_account`],
//! listed once in [`kind::KINDS`] — each owning its topic, batch rank, ordering keys, an
//! `apply` that decides, from the message and the remembered state
//! ([`state::StateStore`]), whether the object is created, changed, moved or deleted in OX,
//! and its reconcile comparison. What the kinds share sits below them, so that no two import
//! each other in a circle: [`topic`], [`kind_parts`], [`keys`], [`compare`].
//!
//! Rules shared by all kinds (`docs/provisioning.md`):
//! - every handler is idempotent: "create" of an object that already exists in OX adopts and
//!   changes it, "delete" of something already gone succeeds, a re-delivered message changes
//!   nothing;
//! - state is written only after OX accepted the change;
//! - a message older than the last change applied to the same object (by listener file name)
//!   is stale and ignored;
//! - an error is returned as transient (OX unreachable, busy) or rejected (OX refused the
//!   data, credentials missing); either way the queue retries it and shows why.

pub mod access_profile;
pub mod compare;
pub mod context;
pub mod credentials;
pub mod functional_account;
pub mod group;
pub mod keys;
pub mod kind;
pub mod kind_parts;
pub mod resource;
pub mod rights;
pub mod scope;
pub mod settings;
pub mod state;
pub mod topic;
pub mod udm;
pub mod user;
pub mod user_mail;
pub mod user_mapping;

use std::path::PathBuf;
use std::sync::Arc;

use async_nats::jetstream;

use crate::apply::{Applier, ApplyError, Outcome, QueuedMessages, Scope};
use crate::message::ProvisioningMessage;
use crate::ox::soap::{Credentials, OxClient, OxError};
use access_profile::AccessProfiles;
use credentials::{AdminLogin, ContextCredentials, CredentialsError};
use settings::OxSettings;
use state::{ObjectState, StateError, StateStore};

/// Why a change could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Ox(#[from] OxError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(
        "no admin credentials for OX context {context} in {file}: create the context through UCS \
         (oxmail/oxcontext) or add its admin login to that file"
    )]
    NoCredentials { context: i32, file: PathBuf },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Mapping(#[from] user_mapping::MappingError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<ProvisionError> for ApplyError {
    fn from(error: ProvisionError) -> Self {
        let transient = match &error {
            ProvisionError::Ox(e) => e.is_retryable(),
            ProvisionError::State(_) | ProvisionError::Credentials(CredentialsError::Store(_)) => {
                true
            }
            ProvisionError::Io { .. } => true,
            _ => false,
        };
        let ox_fault = match &error {
            ProvisionError::Ox(e) => Some(e.label()),
            _ => None,
        };
        let applied = if transient {
            ApplyError::transient(crate::telemetry::error_chain(&error))
        } else {
            ApplyError::rejected(crate::telemetry::error_chain(&error))
        };
        let name_taken = matches!(&error, ProvisionError::Ox(e) if e.is_conflict());
        ApplyError {
            ox_fault,
            name_taken,
            ..applied
        }
    }
}

/// What the handlers share.
pub struct Provisioner {
    pub ox: OxClient,
    pub settings: OxSettings,
    pub state: StateStore,
    pub credentials: ContextCredentials,
    pub profiles: AccessProfiles,
    pub mapping: user_mapping::UserMapping,
    /// The queue, to find a context creation queued behind an object that needs it.
    pub queued: Option<Arc<dyn QueuedMessages>>,
}

impl Provisioner {
    /// Like [`Provisioner::context_admin`], but if the context is unknown and its creation is
    /// queued behind the current message, that creation is applied first.
    pub async fn context_admin_or_pull_forward(
        &self,
        context: i32,
    ) -> Result<Credentials, ProvisionError> {
        match self.context_admin(context) {
            Err(ProvisionError::NoCredentials { .. })
                if context::pull_forward(self, context).await? =>
            {
                self.context_admin(context)
            }
            other => other,
        }
    }

    /// The context admin's credentials for `context`.
    pub fn context_admin(&self, context: i32) -> Result<Credentials, ProvisionError> {
        match self.credentials.get(&context.to_string())? {
            Some(login) => Ok(Credentials::new(login.adminuser, login.adminpass)),
            None => Err(ProvisionError::NoCredentials {
                context,
                file: self.settings.credentials_file.clone(),
            }),
        }
    }

    /// The context admin's login name, if known.
    pub fn context_admin_name(&self, context: i32) -> Option<String> {
        self.credentials
            .get(&context.to_string())
            .ok()
            .flatten()
            .map(|login| login.adminuser)
    }

    /// Dispatches one message to the handler of its object kind.
    pub async fn apply(&self, message: &ProvisioningMessage) -> Result<Outcome, ProvisionError> {
        let previous = self.state.get(&message.object_id).await?;
        if let (Some(previous), Some(file)) = (&previous, message.source_file()) {
            if previous
                .source_file
                .as_deref()
                .is_some_and(|last| file.as_bytes() < last.as_bytes())
            {
                return Ok(Outcome::Ignored(format!(
                    "a newer change of this object ({}) was already applied",
                    previous.source_file.as_deref().unwrap_or_default()
                )));
            }
        }
        match kind::of_topic(&message.topic) {
            Some(kind) => (kind.apply)(self, message, previous).await,
            None => Ok(Outcome::Ignored(format!(
                "{} objects are not provisioned to OX",
                message.topic
            ))),
        }
    }

    /// The state to remember after `message` was applied.
    pub fn applied_state(
        message: &ProvisioningMessage,
        object: udm::Properties,
        ox: state::OxIds,
    ) -> ObjectState {
        ObjectState {
            object_type: message.topic.clone(),
            dn: message.dn.clone(),
            object,
            ox,
            source_file: message.source_file().map(str::to_owned),
            applied_at: chrono::Utc::now(),
            groups_pending: Default::default(),
        }
    }
}

/// The OX subscriber's [`Applier`].
#[derive(Clone)]
pub struct OxApplier {
    inner: Arc<Provisioner>,
}

impl OxApplier {
    /// Opens the state store and the credentials file, keeps the credentials file's `master`
    /// entry in step with `OX_MASTER_ADMIN`/`OX_MASTER_PASSWORD` (when the password is set),
    /// loads the access profiles and the attribute mapping from `data_dir`, and builds the OX
    /// client. It looks at the OX subscriber's queue in `js` for context creations queued behind
    /// an object that needs them.
    pub async fn open(
        settings: OxSettings,
        data_dir: &std::path::Path,
        js: &jetstream::Context,
    ) -> Result<Self, ProvisionError> {
        let queued = crate::queue::peek::SubscriberQueue::open(js, crate::queue::OX_SUBSCRIBER)
            .await
            .map(|queue| Arc::new(queue) as Arc<dyn QueuedMessages>);
        Self::open_limited(settings, None, data_dir, js, queued).await
    }

    /// Like [`OxApplier::open`], with the SOAP calls in flight limited by `limiter`, and
    /// `queued` the queue to find a context creation in (`None`: not looked for).
    pub async fn open_limited(
        settings: OxSettings,
        limiter: Option<crate::ox::limit::Limiter>,
        data_dir: &std::path::Path,
        js: &jetstream::Context,
        queued: Option<Arc<dyn QueuedMessages>>,
    ) -> Result<Self, ProvisionError> {
        let access_profiles_file = data_dir.join(access_profile::FILE_NAME);
        let mapping_file = data_dir.join(user_mapping::FILE_NAME);
        let mapping = user_mapping::UserMapping::load(&mapping_file)?;
        let state = StateStore::open(js).await?;
        let credentials = ContextCredentials::open(settings.credentials_file.clone(), js).await?;
        if let Some(password) = &settings.master_password {
            credentials
                .adopt_master_setting(AdminLogin {
                    adminuser: settings.master_admin.clone(),
                    adminpass: password.expose().to_owned(),
                })
                .await?;
        }
        let (master_source, master_admin) = (credentials.clone(), settings.master_admin.clone());
        let mut ox = OxClient::builder(settings.soap_server.clone())
            .timeout(settings.soap_timeout)
            .master_source(move || match master_source.master_login() {
                Some(login) => Credentials::new(login.adminuser, login.adminpass),
                None => Credentials::new(master_admin.clone(), ""),
            });
        if let Some(limiter) = limiter {
            ox = ox.limiter(limiter);
        }
        let ox = ox.build()?;
        let profiles = AccessProfiles::load(access_profiles_file.clone()).map_err(|source| {
            ProvisionError::Io {
                path: access_profiles_file,
                source,
            }
        })?;
        Ok(Self {
            inner: Arc::new(Provisioner {
                ox,
                settings,
                state,
                credentials,
                profiles,
                mapping,
                queued,
            }),
        })
    }

    pub fn provisioner(&self) -> &Provisioner {
        &self.inner
    }
}

impl Applier for OxApplier {
    async fn apply(&self, message: &ProvisioningMessage) -> Result<Outcome, ApplyError> {
        self.inner.apply(message).await.map_err(ApplyError::from)
    }

    async fn scope(&self, message: &ProvisioningMessage) -> Scope {
        scope::of(&self.inner, message).await.unwrap_or_else(|e| {
            // Without the state its scope is unknown: apply it alone.
            tracing::debug!(error = %e, "Cannot tell what a change touches.");
            Scope::Everything
        })
    }
}

/// The result of deleting something in OX: an object that is gone already counts as deleted
/// (removed by hand, or by an attempt that crashed before the state store learnt of it).
fn deleted<T>(result: Result<T, OxError>) -> Result<(), ProvisionError> {
    match result {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

/// A random password of `length` characters from `[A-Za-z0-9]` with at least one lower-case
/// letter, one upper-case letter and one digit (the original's rule for context admins).
pub fn random_password(length: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    loop {
        let password: String = (0..length)
            .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
            .collect();
        if password.chars().any(|c| c.is_ascii_lowercase())
            && password.chars().any(|c| c.is_ascii_uppercase())
            && password.chars().any(|c| c.is_ascii_digit())
        {
            return password;
        }
    }
}
