//! A stateful OX App Suite SOAP emulator for tests, benchmarks and the demo
//! (`ox-connector ox-emulator`). It serves the six provisioning services the connector uses at
//! `/webservices/<Service>` (and their WSDL at `?wsdl`), keeps contexts, users, groups,
//! resources and secondary accounts in memory, and answers like OX: same wire format, same
//! fault texts, same ids and uniqueness rules (`shared/design/ox-soap.md`). It is not a mock:
//! it behaves like OX with OX's default configuration (properties switch OX's rules, as in
//! OX's own files), and what OX rejects, it rejects.
//!
//! In-process use (tests):
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ox_connector::emulator::{Emulator, EmulatorSettings};
//! let ox = Emulator::start(EmulatorSettings::new("oxadminmaster", "secret")).await?;
//! let url = ox.base_url(); // OX_SOAP_SERVER for the client
//! // … drive the connector …
//! let state = ox.state();
//! assert!(state.context(10).is_none());
//! ox.stop().await;
//! # let _ = url; Ok(()) }
//! ```
//!
//! Control endpoints (also for out-of-process use): `GET /emulator/state` (the
//! [`StateSnapshot`] as JSON), `POST /emulator/reset`, `GET|POST /emulator/faults`
//! ([`FaultSettings`]), `GET /emulator/calls` (per-operation counters), `GET|POST
//! /emulator/properties` (OX's configuration properties, [`OxPropertySettings`]). See
//! `docs/ox-emulator.md`.

mod capacity;
mod dispatch;
mod faults;
mod http;
mod properties;
mod soap;
mod state;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use clap::Args;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::locks::lock;
use crate::ox::soap::Credentials;

pub use capacity::CapacitySettings;
pub use faults::{Failure, FaultRule, FaultSettings};
pub use http::CallStats;
pub use properties::{
    OxPropertySettings, PropertyError, ADMIN_GUIDE_PROPERTIES, PROPERTIES, UCS_APP_PROPERTIES,
};
pub use state::{ContextSnapshot, ObjectRef, StateSnapshot, UserSnapshot};

/// Flags of `ox-connector ox-emulator`. `Debug` redacts the master password.
#[derive(Args)]
#[command(
    after_help = "SOAP: POST /webservices/<Service>, WSDL: GET /webservices/<Service>?wsdl \
for OXContextService, OXUserService, OXGroupService, OXResourceService, OXUserCopyService, \
OXSecondaryAccountService.\n\
Control: GET /emulator/state (JSON snapshot), POST /emulator/reset, GET|POST /emulator/faults \
(latency, fault injection, down; JSON), GET /emulator/calls (per-operation counters), \
GET|POST /emulator/properties (OX configuration properties; JSON).\n\
Details: docs/ox-emulator.md"
)]
pub struct EmulatorArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port; the address is
    /// printed on stdout).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Listen on an address that is not loopback although the control endpoints
    /// (/emulator/state, /reset, /faults) have no authentication.
    #[arg(long)]
    pub allow_remote: bool,
    /// Login of the OX master admin (credentials of OXContextService and copyUser).
    #[arg(long)]
    pub master_admin: String,
    /// Password of the OX master admin.
    #[arg(long)]
    pub master_password: String,
    /// Fixed latency added to every SOAP call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Random extra latency per SOAP call, uniform in 0..=N milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_jitter_ms: u64,
    /// Fraction (0.0–1.0) of SOAP calls that fail with a StorageException fault.
    #[arg(long, default_value_t = 0.0)]
    pub fail_fraction: f64,
    /// Leave unset fields out of answers instead of writing `xsi:nil` elements like OX.
    #[arg(long)]
    pub lean: bool,
    /// Set an OX configuration property, as in OX's property files (repeatable), e.g.
    /// `USERNAME_CHANGEABLE=true`, `PRIMARY_MAIL_UNCHANGEABLE=true`,
    /// `com.openexchange.user.enforceUniqueDisplayName=false`. Without any, the emulator
    /// behaves like OX with its default configuration. Known: see docs/ox-emulator.md.
    #[arg(long = "ox-property", value_name = "NAME=VALUE", value_parser = properties::parse_assignment)]
    pub ox_properties: Vec<(String, String)>,
    /// Alias of `--ox-property com.openexchange.user.enforceUniqueDisplayName=false`.
    #[arg(long)]
    pub allow_duplicate_display_names: bool,
    /// Alias of `--ox-property AUTO_TO_LOWERCASE_UID=true`.
    #[arg(long)]
    pub lowercase_names: bool,
    /// Alias of `--ox-property MASTER_ACCOUNT_OVERRIDE=true`.
    #[arg(long)]
    pub master_override: bool,
    /// Alias of `--ox-property CHECK_USER_UID_FOR_NOT_ALLOWED_CHARS=false`.
    #[arg(long)]
    pub allow_any_user_name: bool,
    /// Work on at most N SOAP calls at once (OX's worker threads); calls beyond queue.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Refuse a SOAP call with HTTP 503 while N calls are in the server (worked on or queued):
    /// an overloaded OX.
    #[arg(long, value_name = "N")]
    pub overload_beyond: Option<usize>,
}

/// How to start an emulator in-process. `Debug` redacts the master password.
#[derive(Clone)]
pub struct EmulatorSettings {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    pub master_admin: String,
    pub master_password: String,
    pub options: OxPropertySettings,
    /// Latency and faults at start (and after a reset).
    pub faults: FaultSettings,
    /// Leave unset fields out of answers instead of writing nil elements.
    pub lean: bool,
    /// Workers and overload limit (unlimited by default).
    pub capacity: CapacitySettings,
}

impl EmulatorSettings {
    /// Defaults: `127.0.0.1:0`, OX's default options, no faults, nil elements like OX.
    pub fn new(master_admin: impl Into<String>, master_password: impl Into<String>) -> Self {
        EmulatorSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            master_admin: master_admin.into(),
            master_password: master_password.into(),
            options: OxPropertySettings::default(),
            faults: FaultSettings::default(),
            lean: false,
            capacity: CapacitySettings::default(),
        }
    }

    /// Sets one OX configuration property (e.g. `USERNAME_CHANGEABLE`, `true`).
    pub fn with_property(mut self, name: &str, value: &str) -> Result<Self, PropertyError> {
        self.options.set(name, value)?;
        Ok(self)
    }

    /// Sets several OX configuration properties, e.g. [`ADMIN_GUIDE_PROPERTIES`].
    pub fn with_properties(mut self, properties: &[(&str, &str)]) -> Result<Self, PropertyError> {
        self.options.set_all(properties.iter().copied())?;
        Ok(self)
    }
}

impl TryFrom<&EmulatorArgs> for EmulatorSettings {
    type Error = PropertyError;

    fn try_from(args: &EmulatorArgs) -> Result<Self, PropertyError> {
        let mut faults = FaultSettings {
            latency_ms: args.latency_ms,
            latency_jitter_ms: args.latency_jitter_ms,
            ..FaultSettings::default()
        };
        if args.fail_fraction > 0.0 {
            faults.rules.push(FaultRule {
                fraction: Some(args.fail_fraction),
                ..FaultRule::default()
            });
        }
        let mut options = OxPropertySettings::default();
        let aliases = [
            (
                args.allow_duplicate_display_names,
                PROPERTIES[0].name,
                "false",
            ),
            (args.lowercase_names, "AUTO_TO_LOWERCASE_UID", "true"),
            (args.master_override, "MASTER_ACCOUNT_OVERRIDE", "true"),
            (
                args.allow_any_user_name,
                "CHECK_USER_UID_FOR_NOT_ALLOWED_CHARS",
                "false",
            ),
        ];
        let aliased = aliases
            .iter()
            .filter(|(on, _, _)| *on)
            .map(|(_, name, value)| (*name, *value));
        options.set_all(aliased)?;
        let explicit = args
            .ox_properties
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()));
        options.set_all(explicit)?;
        Ok(EmulatorSettings {
            listen: args.listen,
            master_admin: args.master_admin.clone(),
            master_password: args.master_password.clone(),
            options,
            faults,
            lean: args.lean,
            capacity: CapacitySettings {
                workers: args.workers,
                overload_beyond: args.overload_beyond,
            },
        })
    }
}

impl fmt::Debug for EmulatorArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorArgs")
            .field("listen", &self.listen)
            .field("master_admin", &self.master_admin)
            .field("master_password", &"<redacted>")
            .field("latency_ms", &self.latency_ms)
            .field("latency_jitter_ms", &self.latency_jitter_ms)
            .field("fail_fraction", &self.fail_fraction)
            .field("lean", &self.lean)
            .field("ox_properties", &self.ox_properties)
            .field(
                "allow_duplicate_display_names",
                &self.allow_duplicate_display_names,
            )
            .field("lowercase_names", &self.lowercase_names)
            .field("master_override", &self.master_override)
            .field("allow_any_user_name", &self.allow_any_user_name)
            .field("workers", &self.workers)
            .field("overload_beyond", &self.overload_beyond)
            .finish()
    }
}

impl fmt::Debug for EmulatorSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorSettings")
            .field("listen", &self.listen)
            .field("master_admin", &self.master_admin)
            .field("master_password", &"<redacted>")
            .field("options", &self.options)
            .field("faults", &self.faults)
            .field("lean", &self.lean)
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Starts emulators.
pub struct Emulator;

impl Emulator {
    /// Binds `config.listen` and serves until the handle is stopped or dropped.
    pub async fn start(config: EmulatorSettings) -> std::io::Result<EmulatorHandle> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let master = Credentials::new(config.master_admin, config.master_password);
        let shared = Arc::new(http::Shared::new(
            state::OxState::new(master, config.options),
            config.faults,
            !config.lean,
            config.capacity,
        ));
        // No Nagle stalls: small SOAP answers must leave at once. Keep-alive is hyper's default.
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "Cannot set TCP_NODELAY on an emulator connection.");
            }
        });
        let token = CancellationToken::new();
        let stop = token.clone();
        let app = http::router(shared.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "The OX emulator stopped with an error.");
            }
        });
        Ok(EmulatorHandle {
            addr,
            shared,
            token,
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server (without waiting).
pub struct EmulatorHandle {
    addr: SocketAddr,
    shared: Arc<http::Shared>,
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: the value for `OX_SOAP_SERVER`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of everything stored.
    pub fn state(&self) -> StateSnapshot {
        self.shared.snapshot()
    }

    /// Forgets all contexts, restores the start-up fault settings and clears the counters.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Replaces the latency and fault settings.
    pub fn set_faults(&self, faults: FaultSettings) {
        *lock(&self.shared.faults) = faults;
    }

    /// The current latency and fault settings (counted rules show what is left).
    pub fn faults(&self) -> FaultSettings {
        lock(&self.shared.faults).clone()
    }

    /// Changes OX configuration properties of the running emulator (as an admin who edits
    /// OX's property files and restarts OX); a reset restores the start-up values.
    pub fn set_properties(&self, properties: &[(&str, &str)]) -> Result<(), PropertyError> {
        lock(&self.shared.state).set_properties(properties)
    }

    /// The current OX configuration.
    pub fn options(&self) -> OxPropertySettings {
        lock(&self.shared.state).options().clone()
    }

    /// Calls and faults per `Service.operation` since start or reset.
    pub fn calls(&self) -> BTreeMap<String, CallStats> {
        lock(&self.shared.calls).clone()
    }

    /// Stops the server and waits until it has finished open requests.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::error!(%error, "The OX emulator task failed.");
            }
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Runs the emulator until `shutdown` is cancelled or Ctrl-C.
pub async fn run(args: EmulatorArgs, shutdown: CancellationToken) -> std::io::Result<()> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "--listen {}: not a loopback address, and the emulator's control endpoints have \
                 no authentication (anyone who reaches it can read and reset its state); use \
                 127.0.0.1, or add --allow-remote",
                args.listen
            ),
        ));
    }
    let config = EmulatorSettings::try_from(&args)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let changed: Vec<String> = changed_properties(&config.options);
    let handle = Emulator::start(config).await?;
    // The address goes to stdout so that scripts can start it on port 0 and read the port.
    println!("OX emulator listening on {}", handle.base_url());
    if changed.is_empty() {
        println!("OX configuration: OX's defaults");
    } else {
        println!("OX configuration: OX's defaults and {}", changed.join(", "));
    }
    tracing::info!(addr = %handle.addr(), "OX emulator started.");
    let ctrl_c = async {
        // Without a signal handler, run until `shutdown` instead of stopping at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = ctrl_c => {}
    }
    handle.stop().await;
    tracing::info!("OX emulator stopped.");
    Ok(())
}

/// `NAME=VALUE` of every property that differs from OX's default.
pub fn changed_properties(options: &OxPropertySettings) -> Vec<String> {
    let defaults = OxPropertySettings::default().to_properties();
    options
        .to_properties()
        .into_iter()
        .filter(|p| !defaults.contains(p))
        .map(|(name, value)| format!("{name}={value}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_the_settings_hides_the_master_password() {
        let config = EmulatorSettings::new("oxadminmaster", "s3cret");
        assert!(!format!("{config:?}").contains("s3cret"));
        let args = EmulatorArgs {
            listen: config.listen,
            allow_remote: false,
            master_admin: "oxadminmaster".into(),
            master_password: "s3cret".into(),
            latency_ms: 0,
            latency_jitter_ms: 0,
            fail_fraction: 0.0,
            lean: false,
            ox_properties: vec![("USERNAME_CHANGEABLE".into(), "true".into())],
            allow_duplicate_display_names: true,
            lowercase_names: false,
            master_override: false,
            allow_any_user_name: false,
            workers: None,
            overload_beyond: None,
        };
        assert!(!format!("{args:?}").contains("s3cret"));
        let config = EmulatorSettings::try_from(&args).unwrap();
        assert_eq!(config.master_password, "s3cret");
        assert!(config.options.username_changeable && !config.options.unique_display_names);
        assert_eq!(
            changed_properties(&config.options),
            [
                "com.openexchange.user.enforceUniqueDisplayName=false",
                "USERNAME_CHANGEABLE=true"
            ]
        );
    }
}
