//! NATS identities of the embedded server: one user per role, least privilege.
//!
//! | role | user | may publish | may subscribe |
//! |---|---|---|---|
//! | the daemon's own service (streams, dispatchers, state keeper, buckets) | `ox-connector-service` | everything | everything |
//! | publisher of a realm | `publisher-<realm>` | `provisioning.<realm>.>` | its inbox `_INBOX_publisher-<realm>.>` |
//! | subscriber | `subscriber-<name>` | pull, ack and info requests of its own queue `SUB_<name>` only | its inbox `_INBOX_subscriber-<name>.>` |
//!
//! Passwords are random, kept in `<data-dir>/secrets/nats-users.json` (mode 0600), and written
//! into the server's `auth.conf` (mode 0600, next to its configuration); a change is applied with
//! a configuration reload (SIGHUP), without a restart. With an external server (`NATS_URL`) its
//! operator manages users and permissions instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::queue::embedded::NatsUser;

/// File of the identities, relative to the data directory.
pub const FILE: &str = "secrets/nats-users.json";

/// What an identity may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    Service,
    Publisher { realm: String },
    Subscriber { name: String },
}

/// One NATS user. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    pub password: String,
    #[serde(flatten)]
    pub role: Role,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Role {
    /// The user name of this role.
    pub fn user(&self) -> String {
        match self {
            Role::Service => "ox-connector-service".into(),
            Role::Publisher { realm } => format!("publisher-{realm}"),
            Role::Subscriber { name } => format!("subscriber-{name}"),
        }
    }
}

impl Identity {
    /// The inbox prefix this identity's connections must use (its replies arrive there).
    pub fn inbox_prefix(&self) -> String {
        match self.role {
            Role::Service => "_INBOX".into(),
            _ => format!("_INBOX_{}", self.user),
        }
    }

    /// The server-side user with its permissions.
    pub fn nats_user(&self) -> NatsUser {
        let inbox = format!("{}.>", self.inbox_prefix());
        let (publish, subscribe) = match &self.role {
            Role::Service => (vec![">".into()], vec![">".into()]),
            Role::Publisher { realm } => (vec![crate::message::subject(realm, ">")], vec![inbox]),
            Role::Subscriber { name } => {
                let stream = crate::queue::subscriber_stream(name);
                (
                    vec![
                        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"),
                        format!("$JS.API.CONSUMER.INFO.{stream}.{name}"),
                        format!("$JS.API.STREAM.INFO.{stream}"),
                        format!("$JS.API.STREAM.MSG.GET.{stream}"),
                        format!("$JS.ACK.{stream}.>"),
                    ],
                    vec![inbox],
                )
            }
        };
        NatsUser {
            user: self.user.clone(),
            password: self.password.clone(),
            publish,
            subscribe,
        }
    }

    /// Connect options for this identity.
    pub fn connect_options(&self) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_user_and_password(self.user.clone(), self.password.clone())
            .custom_inbox_prefix(self.inbox_prefix())
    }
}

/// The identities file.
#[derive(Debug, Clone)]
pub struct Identities {
    file: PathBuf,
    by_user: BTreeMap<String, Identity>,
}

impl Identities {
    /// Loads the file, creating the service and `publisher-udm` identities if missing.
    pub fn load(data_dir: &Path) -> std::io::Result<Self> {
        let file = data_dir.join(FILE);
        let by_user = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let mut this = Self { file, by_user };
        this.ensure(Role::Service)?;
        this.ensure(Role::Publisher {
            realm: crate::message::REALM_UDM.into(),
        })?;
        Ok(this)
    }

    /// The identity of `role`, created (and saved) if it does not exist yet.
    pub fn ensure(&mut self, role: Role) -> std::io::Result<Identity> {
        let user = role.user();
        if let Some(identity) = self.by_user.get(&user) {
            return Ok(identity.clone());
        }
        let identity = Identity {
            user: user.clone(),
            password: crate::provision::random_password(32),
            role,
        };
        self.by_user.insert(user, identity.clone());
        self.save()?;
        Ok(identity)
    }

    /// The identity of `role`, if it exists.
    pub fn by_role(&self, role: &Role) -> Option<Identity> {
        self.by_user.get(&role.user()).cloned()
    }

    /// Forgets the identity of `role`.
    pub fn remove(&mut self, role: &Role) -> std::io::Result<()> {
        if self.by_user.remove(&role.user()).is_some() {
            self.save()?;
        }
        Ok(())
    }

    /// All server-side users.
    pub fn nats_users(&self) -> Vec<NatsUser> {
        self.by_user.values().map(Identity::nats_user).collect()
    }

    fn save(&self) -> std::io::Result<()> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec_pretty(&self.by_user).map_err(std::io::Error::other)?;
        crate::atomic_file::write_with_mode(&self.file, &json, Some(0o600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_created_once_and_kept_secret() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Identities::load(dir.path()).unwrap();
        let sub = ids.ensure(Role::Subscriber { name: "crm".into() }).unwrap();
        assert!(!format!("{sub:?}").contains(&sub.password));
        let again = Identities::load(dir.path()).unwrap();
        assert_eq!(again.nats_users().len(), 3);
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let user = sub.nats_user();
        assert!(user
            .publish
            .contains(&"$JS.API.CONSUMER.MSG.NEXT.SUB_crm.crm".to_string()));
        assert_eq!(user.subscribe, ["_INBOX_subscriber-crm.>"]);
    }
}
