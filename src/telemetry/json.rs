//! The JSON log line format (`--log-format json`): one object per line with stable keys for
//! Loki and similar — `time` (RFC 3339, UTC), `level` (lower case), `message`, `target`, then the
//! event's fields as they are named in [`super::events`] (`file`, `dn`, `entry_uuid`,
//! `object_type`, `operation`, `error`, `ox_fault`, …). Numbers and booleans stay JSON numbers
//! and booleans, lists logged as [`super::List`] JSON arrays; everything else becomes a string.

use std::fmt;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one JSON object.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writeln!(writer, "{}", line(event))
    }
}

/// The JSON line of `event`, keys in a fixed order: time, level, message, target, fields.
pub fn line(event: &Event<'_>) -> String {
    let mut fields = Fields::default();
    event.record(&mut fields);
    let meta = event.metadata();
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let message = fields
        .message
        .take()
        .unwrap_or(Value::String(String::new()));
    let fixed = [
        ("time", Value::String(time)),
        (
            "level",
            Value::String(meta.level().as_str().to_ascii_lowercase()),
        ),
        ("message", message),
        ("target", Value::String(meta.target().to_owned())),
    ];
    // Written by hand to keep the fixed keys first (serde_json's map sorts its keys).
    let mut text = String::from("{");
    let fixed_keys: Vec<&str> = fixed.iter().map(|(k, _)| *k).collect();
    let rest = fields
        .rest
        .into_iter()
        .filter(|(key, _)| !fixed_keys.contains(&key.as_str()));
    for (i, (key, value)) in fixed
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(rest)
        .enumerate()
    {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&Value::String(key).to_string());
        text.push(':');
        text.push_str(&value.to_string());
    }
    text.push('}');
    text
}

#[derive(Default)]
struct Fields {
    message: Option<Value>,
    rest: Vec<(String, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.rest.push((field.name().to_owned(), value));
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        // A [`super::List`] field stays a JSON array.
        if text.starts_with('[') {
            if let Ok(list @ Value::Array(_)) = serde_json::from_str(&text) {
                return self.put(field, list);
            }
        }
        self.put(field, Value::from(text));
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::prelude::*;

    use super::*;
    use crate::telemetry::sink::Sink;

    #[test]
    fn every_line_is_one_json_object_with_the_stable_keys() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLines)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                file = "2025-01-01-00-00-00-000001.json",
                dn = "uid=a,dc=x",
                attempts = 3u64,
                retry = true,
                files = %crate::telemetry::List(&["a.json", "b.json"]),
                "Cannot apply \"change\"."
            );
        });
        let text = sink.text();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "warn");
        assert_eq!(line["message"], "Cannot apply \"change\".");
        assert_eq!(line["file"], "2025-01-01-00-00-00-000001.json");
        assert_eq!(line["dn"], "uid=a,dc=x");
        assert_eq!(line["attempts"], 3);
        assert_eq!(line["retry"], true);
        assert_eq!(line["files"], serde_json::json!(["a.json", "b.json"]));
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
        assert!(text.starts_with("{\"time\":"), "{text}");
    }
}
