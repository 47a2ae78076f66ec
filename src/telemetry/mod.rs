//! Telemetry: the tracing subscriber (human or JSON lines, [`json`]), in [`events`] one struct
//! per event the pipeline reports, and in [`metrics`] the Prometheus metrics those events record.

pub mod events;
pub mod json;
pub mod metrics;
#[cfg(test)]
pub(crate) mod sink;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Human,
    /// One JSON object per line, for Loki and similar.
    Json,
}

/// The default log filter of the daemon.
pub const DEFAULT_FILTER: &str = "info,async_nats=warn";

/// Installs the global tracing subscriber. `RUST_LOG` overrides `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Human => registry
            .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
            .init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .event_format(json::JsonLines)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}
