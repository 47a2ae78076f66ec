//! The pipeline with the OX applier against the project's OX emulator, and builders of the
//! listener files the converter writes for each object type (ListenerUDMVersion 1 strings).

use std::time::Duration;

use ox_connector::app::Daemon;
use ox_connector::emulator::{
    Emulator, EmulatorHandle, EmulatorSettings, StateSnapshot, UserSnapshot, ADMIN_GUIDE_PROPERTIES,
};
use ox_connector::ox::soap::{Credentials, OxClient};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{files, wait_for, TestEnv};

pub(crate) const MASTER: &str = "oxadminmaster";
pub(crate) const MASTER_PASSWORD: &str = "master-secret-Pw1";
pub(crate) const DOMAIN: &str = "dc=example,dc=org";

/// A test environment with a real nats-server and the OX emulator.
pub(crate) struct OxEnv {
    pub env: TestEnv,
    pub ox: EmulatorHandle,
    next_file: u32,
}

impl OxEnv {
    /// The emulator with exactly the OX properties docs/operations.md tells admins to set.
    pub(crate) async fn start() -> Self {
        let config = EmulatorSettings::new(MASTER, MASTER_PASSWORD)
            .with_properties(&ADMIN_GUIDE_PROPERTIES)
            .expect("known properties");
        Self::start_with(config).await
    }

    /// The emulator at OX's default configuration.
    pub(crate) async fn start_at_ox_defaults() -> Self {
        Self::start_with(EmulatorSettings::new(MASTER, MASTER_PASSWORD)).await
    }

    /// With the emulator started from `config` (its master login must be [`MASTER`]).
    pub(crate) async fn start_with(config: EmulatorSettings) -> Self {
        let mut env = TestEnv::start().await;
        let ox = Emulator::start(config).await.unwrap();
        env.settings.ox.soap_server = ox.base_url();
        env.settings.ox.master_admin = MASTER.into();
        env.settings.ox.master_password = Some(ox_connector::provision::settings::Secret::new(
            MASTER_PASSWORD,
        ));
        env.settings.ox.domainname = "example.org".into();
        Self {
            env,
            ox,
            next_file: 0,
        }
    }

    pub(crate) async fn daemon(&self) -> OxDaemon {
        let token = CancellationToken::new();
        let daemon = Daemon::start_ox(self.env.settings.clone(), token.clone())
            .await
            .expect("daemon starts");
        OxDaemon { daemon, token }
    }

    /// Writes the next listener file (names increase) and returns its name.
    pub(crate) fn write(&mut self, content: Value) -> String {
        self.next_file += 1;
        let name = files::name(self.next_file);
        files::write(&self.env.listener_dir(), &name, &content);
        name
    }

    /// Waits until every listener file is applied (gone) and the queue is not blocked.
    pub(crate) async fn settle(&self) {
        wait_for(
            "every listener file applied",
            Duration::from_secs(30),
            || self.env.queued_files().is_empty(),
        )
        .await;
    }

    pub(crate) fn state(&self) -> StateSnapshot {
        self.ox.state()
    }

    /// The OX user `name` of `context` as the emulator has it now; panics if it is not there.
    #[track_caller]
    pub(crate) fn ox_user(&self, context: i32, name: &str) -> UserSnapshot {
        let state = self.state();
        let ctx = state.context(context);
        ctx.and_then(|c| c.user(name))
            .unwrap_or_else(|| panic!("no user {name} in OX context {context}"))
            .clone()
    }

    pub(crate) fn blocked(&self) -> Value {
        super::status_file(self.env.data.path())["blocked"].clone()
    }

    /// A SOAP client of the emulator with the master credentials, to change OX behind the
    /// connector's back the way an OX admin or user would.
    pub(crate) fn ox_client(&self) -> OxClient {
        OxClient::builder(self.ox.base_url())
            .master(Credentials::new(MASTER, MASTER_PASSWORD))
            .build()
            .unwrap()
    }

    /// The admin credentials of a context the daemon created (from its secrets file).
    pub(crate) fn context_admin(&self, context: i32) -> Credentials {
        let path = self.env.data.path().join("secrets/contexts.json");
        let credentials: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let login = &credentials[context.to_string()];
        Credentials::new(
            login["adminuser"].as_str().unwrap(),
            login["adminpass"].as_str().unwrap(),
        )
    }
}

pub(crate) struct OxDaemon {
    pub daemon: Daemon,
    token: CancellationToken,
}

impl OxDaemon {
    pub(crate) async fn stop(self) {
        self.token.cancel();
        self.daemon.wait().await.expect("daemon stops cleanly");
    }
}

fn file(dn: String, id: &str, module: &str, object: Value) -> Value {
    let options = if object.is_null() {
        Value::Null
    } else {
        json!(["default"])
    };
    json!({"dn": dn, "id": id, "object": object, "options": options, "udm_object_type": module})
}

pub(crate) fn context(id: &str, contextid: i32, quota: Option<i64>) -> Value {
    let mut object =
        json!({"contextid": contextid.to_string(), "name": format!("context{contextid}")});
    if let Some(quota) = quota {
        object["oxQuota"] = json!(quota.to_string());
    }
    file(
        format!("cn=context{contextid},cn=open-xchange,{DOMAIN}"),
        id,
        "oxmail/oxcontext",
        object,
    )
}

pub(crate) fn context_deleted(id: &str, contextid: i32) -> Value {
    file(
        format!("cn=context{contextid},cn=open-xchange,{DOMAIN}"),
        id,
        "oxmail/oxcontext",
        Value::Null,
    )
}

pub(crate) fn user_dn(username: &str) -> String {
    format!("uid={username},cn=users,{DOMAIN}")
}

pub(crate) fn group_dn(name: &str) -> String {
    format!("cn={name},cn=groups,{DOMAIN}")
}

/// An OX user in `context` with the usual properties; `extra` is merged over them.
pub(crate) fn user(id: &str, username: &str, context: i32, extra: Value) -> Value {
    let mut object = json!({
        "username": username,
        "firstname": "First",
        "lastname": username,
        "displayName": format!("First {username}"),
        "mailPrimaryAddress": format!("{username}@example.org"),
        "mailAlternativeAddress": [],
        "isOxUser": "OK",
        "oxAccess": "premium",
        "oxContext": context.to_string(),
        "groups": [],
        "disabled": "0",
    });
    merge(&mut object, extra);
    file(user_dn(username), id, "users/user", object)
}

pub(crate) fn user_deleted(id: &str, username: &str) -> Value {
    file(user_dn(username), id, "users/user", Value::Null)
}

pub(crate) fn group(id: &str, name: &str, members: &[&str], extra: Value) -> Value {
    let mut object = json!({
        "name": name,
        "isOxGroup": "OK",
        "users": members.iter().map(|m| user_dn(m)).collect::<Vec<_>>(),
    });
    merge(&mut object, extra);
    file(group_dn(name), id, "groups/group", object)
}

pub(crate) fn group_deleted(id: &str, name: &str) -> Value {
    file(group_dn(name), id, "groups/group", Value::Null)
}

pub(crate) fn resource(id: &str, name: &str, context: i32, extra: Value) -> Value {
    let mut object = json!({
        "name": name,
        "displayname": format!("Room {name}"),
        "description": "",
        "resourceMailAddress": format!("{name}@example.org"),
        "oxContext": context.to_string(),
    });
    merge(&mut object, extra);
    file(
        format!("cn={name},cn=oxresources,cn=open-xchange,{DOMAIN}"),
        id,
        "oxresources/oxresources",
        object,
    )
}

pub(crate) fn resource_deleted(id: &str, name: &str) -> Value {
    file(
        format!("cn={name},cn=oxresources,cn=open-xchange,{DOMAIN}"),
        id,
        "oxresources/oxresources",
        Value::Null,
    )
}

pub(crate) fn access_profile(id: &str, name: &str, rights: &[&str]) -> Value {
    let mut object = json!({"name": name, "displayName": name});
    for right in rights {
        object[*right] = json!("TRUE");
    }
    file(
        format!("cn={name},cn=accessprofiles,cn=open-xchange,{DOMAIN}"),
        id,
        "oxmail/accessprofile",
        object,
    )
}

pub(crate) fn functional_account(id: &str, name: &str, mail: &str, users: &[&str]) -> Value {
    file(
        format!("cn={name},cn=functional_accounts,cn=open-xchange,{DOMAIN}"),
        id,
        "oxmail/functional_account",
        json!({
            "name": name,
            "mailPrimaryAddress": mail,
            "personal": format!("{name} team"),
            "users": users.iter().map(|u| user_dn(u)).collect::<Vec<_>>(),
            "groups": [],
        }),
    )
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
        into.extend(extra);
    }
}

/// Starts the real `ox-connector run` binary on `data_dir` with its embedded nats-server,
/// JSON logs at debug level and the OX emulator at `ox_url`; `extra` are more flags of `run`.
/// Returns the child and a task that yields everything it logged once it exits.
pub(crate) fn spawn_daemon_binary(
    data_dir: &std::path::Path,
    ox_url: &str,
    extra: &[&str],
) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    spawn_daemon_binary_logging(data_dir, ox_url, extra, "debug")
}

/// [`spawn_daemon_binary`] with `RUST_LOG` set to `rust_log`.
pub(crate) fn spawn_daemon_binary_logging(
    data_dir: &std::path::Path,
    ox_url: &str,
    extra: &[&str],
    rust_log: &str,
) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    use tokio::io::AsyncReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ox-connector"))
        .args(["--log-format", "json", "run", "--data-dir"])
        .arg(data_dir)
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("NATS_URL")
        .env("RUST_LOG", rust_log)
        .env("OX_SOAP_SERVER", ox_url)
        .env("OX_MASTER_ADMIN", MASTER)
        .env("OX_MASTER_PASSWORD", MASTER_PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.unwrap();
        text
    });
    (child, log)
}
