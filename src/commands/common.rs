//! What every daemon command shares: the `--data-dir`/`--json` options ([`Common`]), finding
//! the daemon's admin API, printing its answer as text or JSON, the exit codes, and the way
//! times, durations and counts are written for an admin.
//!
//! Exit codes: 0 done / all well; 1 a problem was reported (queue blocked or not ready, a
//! refused request, drift found in a dry run); 2 the daemon is not running (`NOT_RUNNING`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use clap::Args;
use serde::Serialize;

use crate::admin::client::{AdminClient, AdminClientError};
use crate::config::DEFAULT_DATA_DIR;

/// Options every admin command has.
// The field docs are the --help text, which clap prints verbatim: `<data-dir>` there is a
// placeholder for admins, not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The app's data directory; the running daemon is found through <data-dir>/run/admin.json.
    #[arg(long, env = "OX_CONNECTOR_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Print JSON (the admin API's answer) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) const NOT_RUNNING: i32 = 2;

/// Who runs the command when `USER` is not set (a root shell in the container has none):
/// `SUDO_USER` or `LOGNAME`, else the name of the user id, else `uid N`.
pub(super) fn who_runs_this() -> String {
    ["SUDO_USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|user| user.name)
        })
        .unwrap_or_else(|| format!("uid {}", nix::unistd::getuid()))
}

pub(super) fn client(common: &Common, timeout: Duration) -> Result<AdminClient, AdminClientError> {
    AdminClient::from_data_dir(&common.data_dir, timeout)
}

pub(super) fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("ox-connector: cannot encode the answer: {e}"),
    }
}

/// Prints a failed request; returns the exit code.
pub(super) fn failed(error: &AdminClientError) -> i32 {
    eprintln!("ox-connector: {}", crate::telemetry::error_chain(error));
    if matches!(error, AdminClientError::NotRunning { .. }) {
        NOT_RUNNING
    } else {
        1
    }
}

/// Prints an answer of the daemon (as JSON with `--json`) and returns the exit code.
pub(super) fn answer<T: Serialize>(
    result: Result<T, AdminClientError>,
    json: bool,
    print: impl FnOnce(&T),
) -> i32 {
    match result {
        Ok(value) if json => {
            print_json(&value);
            0
        }
        Ok(value) => {
            print(&value);
            0
        }
        Err(e) => failed(&e),
    }
}

/// Percent-encodes a path segment (ids are file names or UUIDs; be safe anyway).
pub(super) fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A duration as an admin reads it: `45 s`, `12 min`, `3 h 12 min`, `2 d 3 h`.
pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

pub(super) fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub(super) fn since(t: chrono::DateTime<Utc>) -> String {
    human((Utc::now() - t).to_std().unwrap_or_default())
}

pub(super) fn time(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A table of plain aligned columns (no borders, never wrapped), as the list commands print.
pub(super) fn plain_table() -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    table
}

/// `table` as text: the columns `right` aligned right (numbers), no blanks at line ends.
pub(super) fn table_text(mut table: comfy_table::Table, right: &[usize]) -> String {
    for &column in right {
        if let Some(column) = table.column_mut(column) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_an_admin_says_them() {
        assert_eq!(human(Duration::from_secs(5)), "5 s");
        assert_eq!(human(Duration::from_secs(125)), "2 min");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 720)), "3 h 12 min");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 7200)), "2 d 2 h");
    }

    #[test]
    fn ids_are_encoded_for_the_path() {
        assert_eq!(
            encode("2025-01-01-00-00-00-000001.json"),
            "2025-01-01-00-00-00-000001.json"
        );
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
