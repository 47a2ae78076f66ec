//! The `ox-connector` binary: parses the command line, sets up logging, runs the subcommand.
//! `anyhow` is used here only, at the edge.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ox_connector::cli::{Cli, Command};
use ox_connector::config::Settings;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc: every change allocates many short-lived buffers (JSON,
/// SOAP XML, NATS messages), and glibc's malloc and free took about 9 % of the end-to-end
/// profile (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Run(_) | Command::Demo(_) | Command::OxEmulator(_)
    ) {
        die_quietly_on_a_closed_pipe();
    }
    // The demo prints its own progress; only problems are logged.
    let filter = match cli.command {
        Command::Demo(_) | Command::Queue(_) | Command::Reconcile(_) | Command::State(_) => "warn",
        _ => ox_connector::telemetry::DEFAULT_FILTER,
    };
    ox_connector::telemetry::init(cli.log_format, filter);
    let shutdown = CancellationToken::new();
    tokio::spawn(ox_connector::shutdown::cancel_on_signal(shutdown.clone()));
    let result = match cli.command {
        Command::Run(args) => match Settings::from_raw((*args).into()) {
            Ok(settings) => ox_connector::app::run(settings, shutdown)
                .await
                .context("the daemon failed"),
            Err(e) => Err(e.into()),
        },
        Command::Demo(args) => ox_connector::demo::run(args, shutdown)
            .await
            .context("the demo failed"),
        Command::OxEmulator(args) => ox_connector::emulator::run(args, shutdown)
            .await
            .context("the OX emulator failed"),
        Command::Trigger(args) => {
            let report = ox_connector::commands::trigger::run(args).await;
            report.print();
            // The exit code is the trigger's interface to the App Center. Exiting here skips
            // no cleanup that matters: the kernel releases the trigger lock.
            std::process::exit(report.verdict.exit_code());
        }
        // Admin commands print their own answers and errors; the exit code says how it went.
        Command::Queue(args) => {
            std::process::exit(ox_connector::commands::queue::queue(args).await)
        }
        Command::Reconcile(args) => {
            std::process::exit(ox_connector::commands::reconcile::reconcile(args).await)
        }
        Command::Subscriptions(args) => {
            std::process::exit(ox_connector::commands::subscriptions::run(args).await)
        }
        Command::State(args) => {
            std::process::exit(ox_connector::commands::state::state(args).await)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Said once, in the log format chosen (JSON stays JSON), with the whole cause chain;
        // not again as `Error: …` (with a backtrace under RUST_BACKTRACE) by the runtime.
        Err(e) => {
            let causes: Vec<String> = e.chain().map(ToString::to_string).collect();
            tracing::error!(
                error = %ox_connector::telemetry::error_chain(e.as_ref()),
                cause_chain = %ox_connector::telemetry::List(&causes),
                "ox-connector stopped with an error."
            );
            ExitCode::FAILURE
        }
    }
}

/// Commands that print for a reader (`queue status | head`) end quietly when the reader is
/// gone, like every Unix tool, instead of panicking in `println!` with exit code 101. The
/// daemon keeps Rust's default (SIGPIPE ignored): its sockets report EPIPE as an error.
fn die_quietly_on_a_closed_pipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: installs the default disposition, no handler code runs; changing a signal's
    // disposition is thread-safe, and nothing in this process relies on SIGPIPE being ignored
    // for these short-lived commands.
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        tracing::debug!(error = %e, "Cannot restore the default SIGPIPE disposition.");
    }
}
