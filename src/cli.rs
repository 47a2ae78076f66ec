//! The command line: subcommands and their flags, each flag also readable from the environment
//! variable named in its help (that is how App Center settings arrive). Parsing only; `main`
//! dispatches and `config` validates.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

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
    Run(RunArgs),
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
    Trigger(crate::trigger::TriggerArgs),
}

/// Flags of `ox-connector run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The app's data directory; listener files are read from its `listener/` folder.
    #[arg(long, env = "OX_CONNECTOR_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// URL of the NATS server to use. Unset or empty: start an embedded nats-server with its
    /// JetStream store under <data-dir>/nats/, on 127.0.0.1.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,

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

    /// Wait between two attempts at a change that failed. The queue waits for it meanwhile.
    #[arg(long, env = "OX_CONNECTOR_RETRY_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub retry_delay: Duration,

    /// JetStream ack wait of the consumer: after a crash, the change being applied is delivered
    /// again after this long.
    #[arg(long, env = "OX_CONNECTOR_ACK_WAIT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub ack_wait: Duration,

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
}

impl From<RunArgs> for RawSettings {
    fn from(args: RunArgs) -> Self {
        Self {
            data_dir: args.data_dir,
            nats_url: args.nats_url,
            nats_server_bin: args.nats_server_bin,
            nats_port: args.nats_port,
            rescan_interval: args.rescan_interval,
            broken_grace: args.broken_grace,
            retry_delay: args.retry_delay,
            ack_wait: args.ack_wait,
            queue_max_messages: args.queue_max_messages,
            queue_max_bytes: args.queue_max_bytes,
            admin_listen: args.admin_listen,
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
