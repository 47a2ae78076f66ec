//! The command line: subcommands and their flags, each flag also readable from the environment
//! variable named in its help (that is how App Center settings arrive). Parsing only; `main`
//! dispatches and `config` validates.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use crate::config::OxArgs;
use crate::config::{RawSettings, DEFAULT_DATA_DIR};
use crate::telemetry::LogFormat;

/// Provisions Open-Xchange App Suite from a UCS directory: listener files → NATS JetStream → OX.
#[derive(Debug, Parser)]
#[command(name = "ox-connector", version, about, long_about = None)]
pub struct Cli {
    /// Log line format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        env = "OX_CONNECTOR_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: watch the listener folder, queue the changes on JetStream, apply them in
    /// order, delete each listener file once its change is applied.
    Run(Box<RunArgs>),
    /// Show the whole flow on this machine: the OX emulator, the daemon with its embedded
    /// nats-server, sample listener files in three batches, and the resulting OX state.
    Demo(crate::demo::DemoArgs),
    /// List, register and remove subscriptions of the running daemon.
    Subscriptions(crate::commands::subscriptions::SubscriptionsArgs),
    /// Run the stateful OX App Suite SOAP emulator (for tests, benchmarks and the demo).
    OxEmulator(crate::emulator::EmulatorArgs),
    /// Ask the running daemon to pick up the listener files now and wait (bounded) until those
    /// present at the start are applied. What the App Center's listener_trigger runs.
    ///
    /// Prints one summary line to stdout and what blocks (file, object, OX error) to stderr.
    /// Never applies or deletes anything itself. Two triggers never run at once: a second one
    /// waits for the first within its --wait, then gives up with exit code 7.
    ///
    /// Exit codes: 0 every listener file present at the start is done (applied, quarantined
    /// in listener/broken/, or removed by an admin); 3 the daemon is still working on them;
    /// 4 blocked: a change keeps failing, or a *.json file in listener/ is not a listener
    /// file; 5 the daemon is not running; 6 misconfigured (data directory, listener folder,
    /// token); 7 another trigger held the lock for the whole wait; 2 invalid command line or
    /// environment value; 1 unexpected error. See docs/trigger.md.
    Trigger(crate::commands::trigger::TriggerArgs),
    /// Queue management (talks to the running daemon): status, watch, list, show, skip, retry,
    /// requeue, pause, resume.
    Queue(crate::commands::queue::QueueArgs),
    /// Compare the state store with what OX holds; report the differences, or repair them
    /// with --apply. Its progress goes to stderr (a bar on a terminal), the report to stdout.
    Reconcile(crate::commands::reconcile::ReconcileArgs),
    /// The connector's state store: import the Python connector's cache.
    State(crate::commands::state::StateArgs),
}

/// Flags of `ox-connector run`.
// The field docs are the --help text, which clap prints verbatim: `<data-dir>` there is a
// placeholder for admins, not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The app's data directory; listener files are read from its `listener/` folder.
    #[arg(long, env = "OX_CONNECTOR_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// URL of the NATS server to use, or the URLs of several servers of one cluster separated by
    /// commas. Unset or empty: start an embedded nats-server with its JetStream store under
    /// <data-dir>/nats/, on 127.0.0.1.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,

    /// Copies of every stream and key-value bucket the daemon creates, kept on as many servers
    /// of a JetStream cluster (3 survives the loss of one server). Only with NATS_URL: the
    /// embedded server keeps one.
    #[arg(long, env = "NATS_REPLICAS", default_value_t = 1)]
    pub replicas: usize,

    /// The nats-server binary for the embedded server (default: searched in PATH and /usr/sbin).
    #[arg(long, env = "NATS_SERVER_BIN")]
    pub nats_server_bin: Option<PathBuf>,

    /// Client port of the embedded nats-server on 127.0.0.1; 0 picks a free port.
    #[arg(long, env = "OX_CONNECTOR_NATS_PORT", default_value_t = 0)]
    pub nats_port: u16,

    /// How often the listener folder is listed even without file-system events.
    #[arg(long, env = "OX_CONNECTOR_RESCAN_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub rescan_interval: Duration,

    /// How long a listener file that cannot be parsed is retried before it is moved to
    /// listener/broken/ with an explanation beside it.
    #[arg(long, env = "OX_CONNECTOR_BROKEN_GRACE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub broken_grace: Duration,

    /// After a change in the listener folder, how long to wait for the rest of the converter's
    /// batch before queueing it (files new at one look are queued dependencies first).
    #[arg(long, env = "OX_CONNECTOR_BATCH_SETTLE", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub batch_settle: Duration,

    /// Wait between two attempts at a change that failed. What depends on it (later changes of
    /// the same object or OX context) waits meanwhile.
    #[arg(long, env = "OX_CONNECTOR_RETRY_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub retry_delay: Duration,

    /// JetStream ack wait of the consumers: a message the daemon took and stopped reporting on
    /// (a lost connection) is delivered again after this long. After a restart, what was in
    /// flight comes again at once.
    #[arg(long, env = "OX_CONNECTOR_ACK_WAIT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub ack_wait: Duration,

    /// Most changes applied to OX at the same time, and the bound of the adaptive limit of
    /// SOAP calls at once (it grows while OX answers as fast as ever and backs off when OX
    /// slows down or faults). Only changes that touch nothing in common run together (no
    /// shared object, OX name, group membership or context change); every object's changes
    /// keep their order. 1: one after the other, in queue order.
    #[arg(long, env = "OX_CONNECTOR_APPLY_CONCURRENCY", default_value_t = 16)]
    pub apply_concurrency: usize,

    /// Most messages the JetStream queue holds; when full, listener files wait on disk.
    #[arg(
        long,
        env = "OX_CONNECTOR_QUEUE_MAX_MESSAGES",
        default_value_t = 100_000
    )]
    pub queue_max_messages: u64,

    /// Most bytes the JetStream queue holds; when full, listener files wait on disk.
    #[arg(long, env = "OX_CONNECTOR_QUEUE_MAX_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub queue_max_bytes: u64,

    /// Address of the admin API (health, status, queue control). Keep it on loopback: commands
    /// such as `ox-connector trigger` find it through <data-dir>/run/admin.json.
    #[arg(
        long,
        env = "OX_CONNECTOR_ADMIN_LISTEN",
        default_value = "127.0.0.1:7781"
    )]
    pub admin_listen: std::net::SocketAddr,

    /// Compare the state store with OX this often and report differences in the log and the
    /// metrics (never repairs by itself); 0 switches it off.
    #[arg(long, env = "OX_CONNECTOR_RECONCILE_INTERVAL", default_value = "0s", value_parser = humantime::parse_duration)]
    pub reconcile_interval: Duration,

    #[command(flatten)]
    pub ox: OxArgs,
}

impl From<RunArgs> for RawSettings {
    fn from(args: RunArgs) -> Self {
        Self {
            data_dir: args.data_dir,
            nats_url: args.nats_url,
            nats_server_bin: args.nats_server_bin,
            nats_port: args.nats_port,
            nats_replicas: args.replicas,
            rescan_interval: args.rescan_interval,
            broken_grace: args.broken_grace,
            batch_settle: args.batch_settle,
            retry_delay: args.retry_delay,
            ack_wait: args.ack_wait,
            apply_concurrency: args.apply_concurrency,
            queue_max_messages: args.queue_max_messages,
            queue_max_bytes: args.queue_max_bytes,
            admin_listen: args.admin_listen,
            reconcile_interval: args.reconcile_interval,
            ox: args.ox,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
