//! `ox-connector demo`: the whole product on one machine in a minute.
//!
//! Starts the OX emulator with the configuration of a UCS installation of OX App Suite (OX's
//! defaults plus what the App Center's OX app sets), the daemon with its embedded nats-server
//! on a data directory (a temporary one by default), writes realistic listener files in three
//! converter batches — an initial sync (two contexts, an access profile, users, groups with
//! members, a resource), a round of changes (a rename, a move to another context, a changed
//! profile) and deletions — shows the progress of each batch, and prints the resulting OX
//! state as tables. OX refuses the rename at its default configuration: the demo shows what
//! the admin sees then and applies the fix (the OX property, then the automatic retry).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::app::Daemon;
use crate::config::{ox_settings, NatsTarget, Settings};
use crate::emulator::{
    changed_properties, Emulator, EmulatorSettings, PropertyError, StateSnapshot,
    UCS_APP_PROPERTIES,
};
use crate::listener::write;
use crate::provision::settings::Secret;
use crate::queue::embedded::EmbeddedSettings;
use crate::queue::QueueLimits;

/// Flags of `ox-connector demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Data directory to use (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Emulated OX latency per SOAP call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub ox_latency_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the OX emulator: {0}")]
    Emulator(std::io::Error),
    #[error("cannot configure the OX emulator: {0}")]
    Property(#[from] PropertyError),
    #[error("cannot prepare the data directory: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Daemon(#[from] crate::app::AppError),
    #[error("batch {batch} was not applied within {seconds} s: {reason}")]
    Stuck {
        batch: usize,
        seconds: u64,
        reason: String,
    },
    #[error("{0}")]
    Settings(#[from] crate::config::SettingError),
}

const DOMAIN: &str = "dc=example,dc=org";
const BATCH_TIMEOUT: Duration = Duration::from_secs(120);

/// The OX emulator with the configuration of a UCS installation of OX App Suite.
async fn start_emulator(
    master_password: &str,
    latency_ms: u64,
) -> Result<crate::emulator::EmulatorHandle, DemoError> {
    let mut config = EmulatorSettings::new("oxadminmaster", master_password)
        .with_properties(&UCS_APP_PROPERTIES)?;
    config.faults.latency_ms = latency_ms;
    let configured = changed_properties(&config.options).join(", ");
    let ox = Emulator::start(config).await.map_err(DemoError::Emulator)?;
    println!("OX App Suite emulator listening on {}", ox.base_url());
    println!(
        "OX configuration as on UCS: OX's defaults and {configured} (the App Center's OX app)"
    );
    Ok(ox)
}

/// The daemon's settings: embedded nats-server in `data_dir`, OX = the emulator.
fn daemon_settings(
    ox: &crate::emulator::EmulatorHandle,
    master_password: String,
    data_dir: &std::path::Path,
) -> Result<Settings, DemoError> {
    let mut ox_args = crate::config::OxArgs {
        ox_soap_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    ox_args.ox_soap_server = Some(ox.base_url());
    ox_args.domainname = Some("example.org".into());
    let mut ox_settings = ox_settings(ox_args, data_dir)?;
    ox_settings.master_password = Some(Secret::new(master_password));
    Ok(Settings {
        nats: NatsTarget::Embedded(EmbeddedSettings {
            binary: None,
            dir: data_dir.join("nats"),
            port: 0,
            users: None,
        }),
        data_dir: data_dir.to_owned(),
        rescan_interval: Duration::from_secs(2),
        broken_grace: Duration::from_secs(60),
        batch_settle: Duration::from_millis(200),
        retry_delay: Duration::from_secs(1),
        ack_wait: Duration::from_secs(15),
        apply_concurrency: 8,
        queue_limits: QueueLimits {
            max_messages: 100_000,
            max_bytes: 1 << 30,
        },
        admin_listen: "127.0.0.1:0"
            .parse()
            .map_err(|_| std::io::Error::other("bad address"))?,
        reconcile_interval: None,
        ox: ox_settings,
    })
}

/// Runs the demo.
pub async fn run(args: DemoArgs, shutdown: CancellationToken) -> Result<(), DemoError> {
    let temp = match &args.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("ox-connector-demo-")
                .tempdir()?,
        ),
    };
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| temp.as_ref().map(|t| t.path().to_owned()))
        .unwrap_or_default();
    let master_password = crate::provision::random_password(24);
    let ox = start_emulator(&master_password, args.ox_latency_ms).await?;
    println!("Data directory: {}", data_dir.display());
    let settings = daemon_settings(&ox, master_password, &data_dir)?;
    let listener_dir = settings.listener_dir();
    let stop = shutdown.child_token();
    let daemon = Daemon::start_ox(settings, stop.clone()).await?;
    println!("ox-connector daemon running (embedded nats-server)\n");

    let batches = batches();
    let total = batches.len();
    let mut result = Ok(());
    for (n, batch) in batches.into_iter().enumerate() {
        if shutdown.is_cancelled() {
            break;
        }
        let Batch { title, files, fix } = batch;
        println!(
            "Batch {}/{total}: {title} — {} listener files",
            n + 1,
            files.len()
        );
        for file in &files {
            // Distinct, increasing names like the converter's microsecond time stamps.
            tokio::time::sleep(Duration::from_micros(2)).await;
            write::write(&listener_dir, &write::name_now(), file)?;
        }
        let waited = Waiting {
            daemon: &daemon,
            ox: &ox,
            listener_dir: &listener_dir,
            batch: n + 1,
            count: files.len(),
            fix,
            shutdown: &shutdown,
        };
        if let Err(e) = waited.wait().await {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() && !shutdown.is_cancelled() {
        println!();
        print_state(&ox.state());
    }
    stop.cancel();
    daemon.wait().await?;
    ox.stop().await;
    result
}

/// A batch of listener files, and the OX property that makes OX accept what it refuses at
/// its default configuration.
struct Batch {
    title: &'static str,
    files: Vec<Value>,
    fix: Option<(&'static str, &'static str)>,
}

/// Waiting for one batch: progress, and the admin's view of a refusal and its fix.
struct Waiting<'a> {
    daemon: &'a Daemon,
    ox: &'a crate::emulator::EmulatorHandle,
    listener_dir: &'a std::path::Path,
    batch: usize,
    count: usize,
    fix: Option<(&'static str, &'static str)>,
    shutdown: &'a CancellationToken,
}

impl Waiting<'_> {
    async fn wait(mut self) -> Result<(), DemoError> {
        let started = Instant::now();
        let interactive = std::io::stdout().is_terminal();
        loop {
            let pending = crate::listener::scan(self.listener_dir)
                .map(|f| f.len())
                .unwrap_or(0);
            let applied = self.count.saturating_sub(pending);
            if interactive {
                print!("\r  applied {applied}/{}", self.count);
                let _ = std::io::stdout().flush();
            }
            if pending == 0 {
                let elapsed = started.elapsed().as_secs_f64();
                if interactive {
                    println!(" in {elapsed:.1} s");
                } else {
                    println!("  applied {}/{} in {elapsed:.1} s", self.count, self.count);
                }
                return Ok(());
            }
            let blocked = self.daemon.status().get().blocked;
            if let Some(blocked) = &blocked {
                if let Some(fix) = self.fix.take() {
                    self.show_refusal(blocked, fix)?;
                }
            }
            if started.elapsed() > BATCH_TIMEOUT || self.shutdown.is_cancelled() {
                let reason = match blocked {
                    Some(b) => format!("{}: {}", b.file.unwrap_or_default(), b.error),
                    None => format!("{pending} files still queued"),
                };
                return Err(DemoError::Stuck {
                    batch: self.batch,
                    seconds: BATCH_TIMEOUT.as_secs(),
                    reason,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What `ox-connector queue status` shows for the refusal, the two ways out, and the fix
    /// applied (as the OX admin would: the property in OX's file, OX restarted).
    fn show_refusal(
        &self,
        blocked: &crate::status::Blocked,
        (property, value): (&str, &str),
    ) -> Result<(), DemoError> {
        println!();
        println!("  OX refused a change; the queue waits for it (`ox-connector queue status`):");
        println!(
            "    BLOCKED on {} ({} {})",
            blocked.file.as_deref().unwrap_or("?"),
            blocked.object_type,
            blocked.dn
        );
        println!("    error: {}", blocked.error);
        println!("  Either drop the change and keep OX as it is:");
        println!("    ox-connector queue skip blocked --reason \"OX does not rename users\"");
        println!("  or fix OX and let the connector retry. The demo does the fix:");
        println!("    {property}={value} in OX's configuration, OX restarted");
        self.ox.set_properties(&[(property, value)])?;
        Ok(())
    }
}

fn listener_file(dn: String, id: &str, module: &str, object: Value) -> Value {
    let options = if object.is_null() {
        Value::Null
    } else {
        json!(["default"])
    };
    json!({"dn": dn, "id": id, "object": object, "options": options, "udm_object_type": module})
}

fn context(n: i32, quota: &str) -> Value {
    listener_file(
        format!("cn=context{n},cn=open-xchange,{DOMAIN}"),
        &format!("7b0d5f12-4e6a-103f-8c7d-0000000000{n:02}"),
        "oxmail/oxcontext",
        json!({"contextid": n.to_string(), "name": format!("context{n}"), "oxQuota": quota}),
    )
}

fn user(
    id: u32,
    username: &str,
    first: &str,
    last: &str,
    ctx: i32,
    access: &str,
    groups: &[&str],
) -> Value {
    // OX refuses a mail address with non-ASCII before the `@`: "Koch-Şahin" → "koch-sahin".
    let ascii = |name: &str| -> String {
        let folded = name.to_lowercase().replace('ş', "s").replace('ä', "ae");
        folded
            .replace('ö', "oe")
            .replace('ü', "ue")
            .replace('ß', "ss")
    };
    listener_file(
        format!("uid={username},cn=users,{DOMAIN}"),
        &format!("c41e7a90-3d2b-103f-9b0c-0000000001{id:02}"),
        "users/user",
        json!({
            "username": username, "firstname": first, "lastname": last,
            "displayName": format!("{first} {last}"),
            "mailPrimaryAddress": format!("{username}@example.org"),
            "mailAlternativeAddress": [format!("{}.{}@example.org", ascii(first), ascii(last))],
            "isOxUser": "OK", "oxAccess": access, "oxContext": ctx.to_string(),
            "groups": groups.iter().map(|g| format!("cn={g},cn=groups,{DOMAIN}")).collect::<Vec<_>>(),
            "phone": ["+49 421 555 01"], "mailHomeServer": "mail.example.org",
        }),
    )
}

fn group(id: u32, name: &str, members: &[&str]) -> Value {
    listener_file(
        format!("cn={name},cn=groups,{DOMAIN}"),
        &format!("e90a1c33-5f7b-103f-8d8e-0000000002{id:02}"),
        "groups/group",
        json!({
            "name": name, "isOxGroup": "OK",
            "users": members.iter().map(|m| format!("uid={m},cn=users,{DOMAIN}")).collect::<Vec<_>>(),
        }),
    )
}

fn batches() -> Vec<Batch> {
    let profile = |rights: &[&str]| {
        let mut object = json!({"name": "webmail_plus", "displayName": "Webmail plus calendar"});
        for right in rights {
            object[*right] = json!("TRUE");
        }
        listener_file(
            format!("cn=webmail_plus,cn=accessprofiles,cn=open-xchange,{DOMAIN}"),
            "5a5a5a5a-0000-103f-8000-000000000301",
            "oxmail/accessprofile",
            object,
        )
    };
    let resource = |ctx: i32| {
        listener_file(
            format!("cn=room-101,cn=oxresources,cn=open-xchange,{DOMAIN}"),
            "9b9b9b9b-0000-103f-8000-000000000401",
            "oxresources/oxresources",
            json!({"name": "room-101", "displayname": "Meeting room 101", "description": "Beamer, 8 seats",
                   "resourceMailAddress": "room-101@example.org", "oxContext": ctx.to_string()}),
        )
    };
    vec![
        initial_sync(&profile, &resource),
        changes(&profile, &resource),
        deletions(),
    ]
}

fn initial_sync(profile: &dyn Fn(&[&str]) -> Value, resource: &dyn Fn(i32) -> Value) -> Batch {
    Batch {
        title: "initial sync",
        fix: None,
        files: vec![
            group(1, "staff", &["akoch", "bweber", "cschulz"]),
            user(1, "akoch", "Anna", "Koch-Şahin", 10, "premium", &["staff"]),
            user(
                2,
                "bweber",
                "Ben",
                "Weber",
                10,
                "webmail_plus",
                &["staff", "project"],
            ),
            user(3, "cschulz", "Clara", "Schulz", 10, "groupware", &["staff"]),
            user(4, "dkaya", "Deniz", "Kaya", 20, "premium", &["project"]),
            group(2, "project", &["bweber", "dkaya"]),
            resource(10),
            profile(&["webmail", "contacts"]),
            context(10, "10240"),
            context(20, "5120"),
        ],
    }
}

fn changes(profile: &dyn Fn(&[&str]) -> Value, resource: &dyn Fn(i32) -> Value) -> Batch {
    Batch {
        title: "changes: a rename, a move to context 20, a changed profile, a moved resource",
        // OX refuses renames at its default configuration.
        fix: Some(("USERNAME_CHANGEABLE", "true")),
        files: vec![
            user(
                3,
                "cschulz2",
                "Clara",
                "Schulz-Berg",
                10,
                "groupware",
                &["staff"],
            ),
            // UDM's referential integrity updates the group with the renamed member's DN.
            group(1, "staff", &["akoch", "bweber", "cschulz2"]),
            user(
                2,
                "bweber",
                "Ben",
                "Weber",
                20,
                "webmail_plus",
                &["staff", "project"],
            ),
            profile(&["webmail", "contacts", "calendar"]),
            resource(20),
        ],
    }
}

fn deletions() -> Batch {
    Batch {
        title: "deletions",
        fix: None,
        files: vec![
            listener_file(
                format!("uid=dkaya,cn=users,{DOMAIN}"),
                "c41e7a90-3d2b-103f-9b0c-000000000104",
                "users/user",
                Value::Null,
            ),
            listener_file(
                format!("cn=project,cn=groups,{DOMAIN}"),
                "e90a1c33-5f7b-103f-8d8e-000000000202",
                "groups/group",
                Value::Null,
            ),
        ],
    }
}

/// Prints the OX state as tables: contexts, then users, groups and resources per context.
pub fn print_state(state: &StateSnapshot) {
    println!("OX state");
    println!("========");
    for ctx in &state.contexts {
        let quota = ctx.data.max_quota.map_or("-".into(), |q| {
            if q < 0 {
                "unlimited".into()
            } else {
                format!("{q} MB")
            }
        });
        println!(
            "\nContext {} ({}), quota {quota}, admin {}",
            ctx.id,
            ctx.name,
            ctx.admin.as_ref().map_or("-", |a| a.name.as_str())
        );
        let names = |ids: &[i32]| -> String {
            let mut names: Vec<&str> = ids
                .iter()
                .filter_map(|id| ctx.user_by_id(*id).map(|u| u.name.as_str()))
                .collect();
            names.sort();
            names.join(", ")
        };
        let mut rows = vec![[
            "user".to_owned(),
            "display name".into(),
            "mail".into(),
            "calendar".into(),
        ]];
        for user in &ctx.users {
            rows.push([
                user.name.clone(),
                user.data.display_name.clone().unwrap_or_default(),
                user.data.primary_email.clone().unwrap_or_default(),
                if user.module_access.calendar == Some(true) {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]);
        }
        table(&rows);
        if !ctx.groups.is_empty() {
            let mut rows = vec![["group".to_owned(), "members".into()]];
            for group in &ctx.groups {
                rows.push([
                    group.name.clone().unwrap_or_default(),
                    names(&group.members),
                ]);
            }
            table(&rows);
        }
        if !ctx.resources.is_empty() {
            let mut rows = vec![["resource".to_owned(), "display name".into(), "mail".into()]];
            for resource in &ctx.resources {
                rows.push([
                    resource.name.clone().unwrap_or_default(),
                    resource.displayname.clone().unwrap_or_default(),
                    resource.email.clone().unwrap_or_default(),
                ]);
            }
            table(&rows);
        }
    }
}

fn table<const N: usize>(rows: &[[String; N]]) {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}", w = *w))
            .collect();
        println!("  {}", cells.join("  ").trim_end());
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("  {}", rule.join("  "));
        }
    }
}
