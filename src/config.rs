//! Settings: what `ox-connector run` was given (flags and App Center environment variables,
//! see `cli`) validated once into the types the daemon uses. No other module reads the
//! environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::listener::watch::WatchSettings;
use crate::provision::settings::{defaults, OxSettings, Secret};
use crate::queue::{
    consume::ConsumeSettings, embedded::EmbeddedSettings, ConsumerTiming, QueueLimits,
};

/// Default data directory of the App Center app (bind-mounted at the same path in the container).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/univention-appcenter/apps/ox-connector/data";

/// Where the NATS server comes from.
#[derive(Debug, Clone)]
pub enum NatsTarget {
    /// Use a running server, or a cluster: `url` may list several servers, separated by commas.
    /// Every stream and bucket the daemon creates gets `replicas` copies (a JetStream cluster
    /// keeps them on as many servers).
    External { url: String, replicas: usize },
    /// Start `nats-server` as a child process.
    Embedded(EmbeddedSettings),
}

/// Most messages the OX subscriber holds at once (delivered, not yet acknowledged), when it
/// applies several at the same time: enough to find independent changes further down the queue.
pub const MAX_IN_FLIGHT: usize = 256;

/// The servers of a NATS URL setting: one URL, or several separated by commas (the servers of
/// one cluster; the client connects to any of them and moves on when one goes).
pub fn nats_servers(url: &str) -> Result<Vec<async_nats::ServerAddr>, NatsUrlError> {
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .map(|server| {
            server
                .parse::<async_nats::ServerAddr>()
                .map_err(|source| NatsUrlError::NotAUrl {
                    server: server.to_owned(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(NatsUrlError::NoServer);
    }
    Ok(servers)
}

/// A NATS URL setting that names no usable server.
#[derive(Debug, thiserror::Error)]
pub enum NatsUrlError {
    #[error("{server:?} is not a NATS server URL: {source}")]
    NotAUrl {
        server: String,
        #[source]
        source: std::io::Error,
    },
    #[error("names no server")]
    NoServer,
}

/// Validated daemon settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub nats: NatsTarget,
    pub rescan_interval: Duration,
    pub broken_grace: Duration,
    pub batch_settle: Duration,
    pub retry_delay: Duration,
    pub ack_wait: Duration,
    /// Most changes applied to OX at the same time (changes that touch nothing in common: no
    /// shared object, OX name, group membership or context change), and the bound of the
    /// adaptive limit of SOAP calls; 1 applies them one after the other.
    pub apply_concurrency: usize,
    pub queue_limits: QueueLimits,
    /// Where the admin API listens (loopback by default).
    pub admin_listen: SocketAddr,
    /// How often the daemon compares the state store with OX (report only); `None`: never.
    pub reconcile_interval: Option<Duration>,
    pub ox: OxSettings,
}

/// A setting that cannot be used, named as the admin knows it. The reason is a message for
/// the admin (what the value must be), not a cause.
#[derive(Debug, thiserror::Error)]
#[error("setting {name}: {reason}")]
pub struct SettingError {
    pub name: &'static str,
    pub reason: String,
}

impl SettingError {
    fn new(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            name,
            reason: reason.into(),
        }
    }
}

/// The waits and the concurrency must be usable.
fn check_timing(raw: &RawSettings) -> Result<(), SettingError> {
    for (name, value) in [
        ("--rescan-interval", raw.rescan_interval),
        ("--retry-delay", raw.retry_delay),
    ] {
        if value.is_zero() {
            return Err(SettingError::new(name, "must be longer than zero"));
        }
    }
    if !(1..=MAX_IN_FLIGHT).contains(&raw.apply_concurrency) {
        return Err(SettingError::new(
            "--apply-concurrency",
            format!("must be between 1 and {MAX_IN_FLIGHT}"),
        ));
    }
    if raw.ack_wait < Duration::from_secs(1) {
        return Err(SettingError::new("--ack-wait", "must be at least 1s"));
    }
    Ok(())
}

/// The queue's bounds: positive numbers.
fn queue_limits(raw: &RawSettings) -> Result<QueueLimits, SettingError> {
    let limit = |name, value: u64| {
        i64::try_from(value)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| SettingError::new(name, "must be a positive number"))
    };
    Ok(QueueLimits {
        max_messages: limit("--queue-max-messages", raw.queue_max_messages)?,
        max_bytes: limit("--queue-max-bytes", raw.queue_max_bytes)?,
    })
}

/// The configured NATS servers, or the embedded one (which keeps one copy of everything).
fn nats_target(raw: &RawSettings) -> Result<NatsTarget, SettingError> {
    if !(1..=5).contains(&raw.nats_replicas) {
        return Err(SettingError::new(
            "--replicas (NATS_REPLICAS)",
            "must be between 1 and 5",
        ));
    }
    match raw.nats_url.as_ref().filter(|url| !url.trim().is_empty()) {
        Some(url) => {
            if let Err(e) = nats_servers(url) {
                return Err(SettingError::new(
                    "--nats-url (NATS_URL)",
                    crate::telemetry::error_chain(&e),
                ));
            }
            Ok(NatsTarget::External {
                url: url.clone(),
                replicas: raw.nats_replicas,
            })
        }
        None if raw.nats_replicas > 1 => Err(SettingError::new(
            "--replicas (NATS_REPLICAS)",
            "the embedded nats-server keeps one copy of everything; more replicas need NATS_URL \
             pointing at a JetStream cluster",
        )),
        None => Ok(NatsTarget::Embedded(EmbeddedSettings {
            binary: raw
                .nats_server_bin
                .clone()
                .filter(|p| !p.as_os_str().is_empty()),
            dir: raw.data_dir.join("nats"),
            port: raw.nats_port,
            users: None,
        })),
    }
}

/// The OX settings of the App Center app (same names and defaults as the original connector).
/// An empty value counts as unset.
// The field docs are the --help text, which clap prints verbatim: `<data-dir>` and `<id>` there
// are placeholders for admins, not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "OX settings (App Center settings)")]
pub struct OxArgs {
    /// Base URL of OX App Suite; the SOAP services are under /webservices/ [default: http://127.0.0.1]
    #[arg(long, env = "OX_SOAP_SERVER")]
    pub ox_soap_server: Option<String>,
    /// Login of the OX master admin (contexts, moving users) [default: oxadminmaster]
    #[arg(long, env = "OX_MASTER_ADMIN")]
    pub ox_master_admin: Option<String>,
    /// Password of the OX master admin; when set it is written to the credentials file's master entry
    #[arg(long, env = "OX_MASTER_PASSWORD", hide_env_values = true)]
    pub ox_master_password: Option<String>,
    /// The default OX context; its admin is oxadmin, other contexts' admins oxadmin-context<id> [default: 10]
    #[arg(long, env = "DEFAULT_CONTEXT")]
    pub default_context: Option<String>,
    /// Language of new OX users [default: de_DE]
    #[arg(long, env = "OX_LANGUAGE")]
    pub ox_language: Option<String>,
    /// Time zone of new OX users and context admins [default: Europe/Berlin]
    #[arg(long, env = "LOCAL_TIMEZONE")]
    pub local_timezone: Option<String>,
    /// IMAP login template; {} stands for the user's primary mail address [default: {}]
    #[arg(long, env = "OX_IMAP_LOGIN")]
    pub ox_imap_login: Option<String>,
    /// IMAP server URL: scheme and port, and the host for users without mailHomeServer [default: imap://localhost:143]
    #[arg(long, env = "OX_IMAP_SERVER")]
    pub ox_imap_server: Option<String>,
    /// SMTP server URL, likewise [default: smtp://localhost:587]
    #[arg(long, env = "OX_SMTP_SERVER")]
    pub ox_smtp_server: Option<String>,
    /// UDM property used as OX user name [default: username]
    #[arg(long, env = "OX_USER_IDENTIFIER")]
    pub ox_user_identifier: Option<String>,
    /// UDM property used as OX group name [default: name]
    #[arg(long, env = "OX_GROUP_IDENTIFIER")]
    pub ox_group_identifier: Option<String>,
    /// Login template of functional accounts [default: {{fa_entry_uuid}}{{username}}]
    #[arg(long, env = "OX_FUNCTIONAL_ACCOUNT_LOGIN_TEMPLATE")]
    pub ox_functional_account_login_template: Option<String>,
    /// The OX admin credentials file (contexts.json) [default: <data-dir>/secrets/contexts.json]
    #[arg(long, env = "OX_CREDENTIALS_FILE")]
    pub ox_credentials_file: Option<PathBuf>,
    /// Mail domain of context admins [default: localhost.localdomain]
    #[arg(long, env = "DOMAINNAME")]
    pub domainname: Option<String>,
    /// How long one OX SOAP call may take
    #[arg(long, env = "OX_SOAP_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub ox_soap_timeout: Duration,
}

/// The raw values, as parsed by the CLI.
#[derive(Debug, Clone)]
pub struct RawSettings {
    pub data_dir: PathBuf,
    pub nats_url: Option<String>,
    pub nats_server_bin: Option<PathBuf>,
    pub nats_port: u16,
    pub nats_replicas: usize,
    pub rescan_interval: Duration,
    pub broken_grace: Duration,
    pub batch_settle: Duration,
    pub retry_delay: Duration,
    pub ack_wait: Duration,
    pub apply_concurrency: usize,
    pub queue_max_messages: u64,
    pub queue_max_bytes: u64,
    pub admin_listen: SocketAddr,
    pub reconcile_interval: Duration,
    pub ox: OxArgs,
}

impl Settings {
    /// Validates raw settings. Empty strings count as unset, as in the App Center.
    pub fn from_raw(raw: RawSettings) -> Result<Self, SettingError> {
        if raw.data_dir.as_os_str().is_empty() {
            return Err(SettingError::new("--data-dir", "must not be empty"));
        }
        check_timing(&raw)?;
        let queue_limits = queue_limits(&raw)?;
        let nats = nats_target(&raw)?;
        let ox = ox_settings(raw.ox, &raw.data_dir)?;
        Ok(Self {
            ox,
            data_dir: raw.data_dir,
            nats,
            rescan_interval: raw.rescan_interval,
            broken_grace: raw.broken_grace,
            batch_settle: raw.batch_settle,
            retry_delay: raw.retry_delay,
            ack_wait: raw.ack_wait,
            apply_concurrency: raw.apply_concurrency,
            queue_limits,
            admin_listen: raw.admin_listen,
            reconcile_interval: Some(raw.reconcile_interval).filter(|d| !d.is_zero()),
        })
    }

    /// The replicas of every stream and bucket the daemon creates (1 with the embedded server).
    pub fn replicas(&self) -> usize {
        match &self.nats {
            NatsTarget::External { replicas, .. } => *replicas,
            NatsTarget::Embedded(_) => 1,
        }
    }

    /// `<data-dir>/listener`: the queue folder the App Center fills.
    pub fn listener_dir(&self) -> PathBuf {
        self.data_dir.join("listener")
    }

    /// `<data-dir>/status.json`: the daemon's status for other processes.
    pub fn status_file(&self) -> PathBuf {
        self.data_dir.join(crate::status::STATUS_FILE)
    }

    pub fn watch(&self) -> WatchSettings {
        WatchSettings {
            dir: self.listener_dir(),
            rescan_interval: self.rescan_interval,
            broken_grace: self.broken_grace,
            batch_settle: self.batch_settle,
        }
    }

    pub fn consume(&self) -> ConsumeSettings {
        ConsumeSettings {
            retry_delay: self.retry_delay,
            ack_wait: self.ack_wait,
            concurrency: self.apply_concurrency,
            max_in_flight: MAX_IN_FLIGHT,
        }
    }

    pub fn consumer_timing(&self) -> ConsumerTiming {
        ConsumerTiming {
            ack_wait: self.ack_wait,
        }
    }
}

/// Applies the original's defaults to the OX settings; empty means unset.
pub fn ox_settings(args: OxArgs, data_dir: &std::path::Path) -> Result<OxSettings, SettingError> {
    let set = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    let or =
        |value: Option<String>, default: &str| set(value).unwrap_or_else(|| default.to_owned());
    let default_context = match set(args.default_context) {
        None => defaults::DEFAULT_CONTEXT,
        Some(text) => text.trim().parse().map_err(|_| SettingError {
            name: "DEFAULT_CONTEXT",
            reason: format!("{text:?} is not a context id (a whole number)"),
        })?,
    };
    let soap_server = or(args.ox_soap_server, defaults::SOAP_SERVER);
    // Checked here, before anything starts (nats-server included), not at the first OX call.
    if let Err(e) = crate::ox::soap::normalize_server_url(&soap_server) {
        return Err(SettingError {
            name: "OX_SOAP_SERVER",
            reason: crate::telemetry::error_chain(&e),
        });
    }
    Ok(OxSettings {
        soap_server,
        master_admin: or(args.ox_master_admin, defaults::MASTER_ADMIN),
        master_password: set(args.ox_master_password).map(Secret::new),
        default_context,
        language: or(args.ox_language, defaults::LANGUAGE),
        timezone: or(args.local_timezone, defaults::TIMEZONE),
        imap_login: or(args.ox_imap_login, defaults::IMAP_LOGIN),
        imap_server: or(args.ox_imap_server, defaults::IMAP_SERVER),
        smtp_server: or(args.ox_smtp_server, defaults::SMTP_SERVER),
        user_identifier: or(args.ox_user_identifier, defaults::USER_IDENTIFIER),
        group_identifier: or(args.ox_group_identifier, defaults::GROUP_IDENTIFIER),
        functional_account_login_template: or(
            args.ox_functional_account_login_template,
            defaults::FUNCTIONAL_ACCOUNT_LOGIN_TEMPLATE,
        ),
        credentials_file: args
            .ox_credentials_file
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| data_dir.join(defaults::CREDENTIALS_FILE)),
        domainname: or(args.domainname, defaults::DOMAINNAME),
        soap_timeout: args.ox_soap_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSettings {
        RawSettings {
            data_dir: PathBuf::from("/data"),
            nats_url: None,
            nats_server_bin: None,
            nats_port: 0,
            nats_replicas: 1,
            rescan_interval: Duration::from_secs(2),
            broken_grace: Duration::from_secs(60),
            batch_settle: Duration::from_millis(200),
            retry_delay: Duration::from_secs(5),
            ack_wait: Duration::from_secs(15),
            apply_concurrency: 8,
            queue_max_messages: 10,
            queue_max_bytes: 1000,
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            reconcile_interval: Duration::ZERO,
            ox: OxArgs {
                ox_soap_timeout: Duration::from_secs(60),
                ..OxArgs::default()
            },
        }
    }

    #[test]
    fn an_empty_nats_url_means_the_embedded_server() {
        let settings = Settings::from_raw(RawSettings {
            nats_url: Some(" ".into()),
            ..raw()
        })
        .unwrap();
        match settings.nats {
            NatsTarget::Embedded(options) => assert_eq!(options.dir, PathBuf::from("/data/nats")),
            other => panic!("{other:?}"),
        }
        let settings = Settings::from_raw(RawSettings {
            nats_url: Some("nats://nats:4222".into()),
            ..raw()
        })
        .unwrap();
        assert!(
            matches!(settings.nats, NatsTarget::External { url, replicas: 1 } if url == "nats://nats:4222")
        );
    }

    #[test]
    fn nats_url_may_list_the_servers_of_a_cluster() {
        let servers = nats_servers("nats://a:4222, nats://b:4222,nats://c:4222").unwrap();
        assert_eq!(servers.len(), 3);
        let err = Settings::from_raw(RawSettings {
            nats_url: Some("nats://a:4222,http://b".into()),
            ..raw()
        })
        .unwrap_err();
        assert!(err.to_string().contains("\"http://b\""), "{err}");
    }

    #[test]
    fn replicas_need_a_cluster() {
        let settings = Settings::from_raw(RawSettings {
            nats_url: Some("nats://a:4222,nats://b:4222,nats://c:4222".into()),
            nats_replicas: 3,
            ..raw()
        })
        .unwrap();
        assert!(matches!(
            settings.nats,
            NatsTarget::External { replicas: 3, .. }
        ));
        let err = Settings::from_raw(RawSettings {
            nats_replicas: 3,
            ..raw()
        })
        .unwrap_err();
        assert!(err.to_string().contains("NATS_URL"), "{err}");
        let err = Settings::from_raw(RawSettings {
            nats_url: Some("nats://a:4222".into()),
            nats_replicas: 0,
            ..raw()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("setting --replicas"), "{err}");
    }

    #[test]
    fn empty_ox_settings_take_the_original_defaults() {
        let settings = Settings::from_raw(RawSettings {
            ox: OxArgs {
                ox_language: Some(String::new()),
                default_context: Some(" ".into()),
                ox_functional_account_login_template: Some(String::new()),
                ox_master_password: Some("pw".into()),
                ox_soap_timeout: Duration::from_secs(60),
                ..OxArgs::default()
            },
            ..raw()
        })
        .unwrap();
        assert_eq!(settings.ox.language, "de_DE");
        assert_eq!(settings.ox.default_context, 10);
        assert_eq!(
            settings.ox.functional_account_login_template,
            "{{fa_entry_uuid}}{{username}}"
        );
        assert_eq!(
            settings.ox.credentials_file,
            PathBuf::from("/data/secrets/contexts.json")
        );
        assert_eq!(
            format!("{:?}", settings.ox.master_password),
            "Some(<redacted>)"
        );
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let err = Settings::from_raw(RawSettings {
            retry_delay: Duration::ZERO,
            ..raw()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "setting --retry-delay: must be longer than zero"
        );
        let err = Settings::from_raw(RawSettings {
            queue_max_messages: 0,
            ..raw()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("setting --queue-max-messages"));
    }
}
