//! Telemetry: the tracing subscriber (human or JSON lines, [`json`]), in [`events`] one struct
//! per event the pipeline reports, and in [`metrics`] the Prometheus metrics those events record.

pub mod events;
pub mod json;
pub mod metrics;
pub mod progress;
#[cfg(test)]
pub(crate) mod sink;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// `error` and every `source()` below it, outermost first, joined by `": "` — the one way
/// logs, `status.json`, `queue status` and `/ready` show an error, so that the cause at the
/// bottom (a DNS failure, a TLS alert, a refused connection) is never cut off. A source whose
/// text the line already holds (an error that prints its source itself) is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// [`error_chain`] as a log field: `error = %Chain(&e)`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&error_chain(self.0))
    }
}

/// A list as a log field: `["a","b"]` — a JSON array in JSON logs ([`json`] keeps it one),
/// readable in human logs. (`?` on a `Vec` would give Rust's debug text instead.)
pub struct List<'a, T: serde::Serialize>(pub &'a [T]);

impl<T: serde::Serialize> std::fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self.0).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

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

/// Libraries whose debug and trace events carry what they send and receive: async-nats logs
/// the CONNECT (with the NATS password) and message payloads (password hashes), the HTTP stack
/// request details. They never log above INFO, whatever `RUST_LOG` asks for.
const CHATTY_LIBRARIES: [&str; 7] = [
    "async_nats",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower_http",
];

/// The filter that keeps secrets out of the log at every level: `CHATTY_LIBRARIES` are
/// capped at INFO; everything else passes on to the `RUST_LOG` filter.
pub fn secret_guard() -> tracing_subscriber::filter::Targets {
    CHATTY_LIBRARIES.iter().fold(
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::TRACE),
        |targets, library| targets.with_target(*library, tracing::Level::INFO),
    )
}

/// Colour only for a person at a terminal: never into files, pipes or `docker logs`, and never
/// when `NO_COLOR` is set (<https://no-color.org>).
pub fn colour_wanted() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Installs the global tracing subscriber. `RUST_LOG` overrides `default_filter`; the
/// [`secret_guard`] applies on top of either.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(secret_guard());
    match format {
        LogFormat::Human => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(colour_wanted()),
            )
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

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::sink::Sink;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect to OX")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect): {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_once() {
        let error = Outer(Middle(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )));
        assert_eq!(
            error_chain(&error),
            "cannot connect to OX: client error (Connect): Connection refused (os error 111)"
        );
        assert_eq!(Chain(&error).to_string(), error_chain(&error));
    }

    #[test]
    fn chatty_libraries_stay_at_info_even_when_trace_is_asked_for() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new("trace"))
            .with(secret_guard())
            .with(fmt::layer().with_writer(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "async_nats::connection", "write operation: CONNECT pass=s3cret");
            tracing::debug!(target: "hyper::proto", "body s3cret");
            tracing::info!(target: "async_nats", "connected");
            tracing::trace!(target: "ox_connector::queue", "own trace");
        });
        let text = sink.text();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("connected") && text.contains("own trace"),
            "{text}"
        );
    }
}
