//! `ox-connector state import`: asks the daemon to import the Python connector's cache into
//! its state store (a dry run unless `--apply`), shows the progress, and prints what it did.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::common::{print_json, Common};
use super::progress::run_long_operation;
use crate::ops::import::{ImportAction, ImportReport, ImportRequest};

/// `ox-connector state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Import the Python connector's cache (listener/old/*.json) into the state store, so that
    /// an upgrade neither re-creates nor loses objects. Dry run unless --apply. Its progress
    /// goes to stderr (a bar on a terminal), the report to stdout.
    Import {
        #[command(flatten)]
        common: Common,
        /// The Python connector's data directory, its listener/ folder, or listener/old/ itself.
        #[arg(long)]
        from: PathBuf,
        /// Write to the state store (otherwise only show what would be imported).
        #[arg(long)]
        apply: bool,
    },
}

/// Runs `ox-connector state …`; returns the exit code.
pub async fn state(args: StateArgs) -> i32 {
    let StateCommand::Import {
        common,
        from,
        apply,
    } = args.command;
    let from = std::path::absolute(&from).unwrap_or(from);
    let request = ImportRequest { from, apply };
    let report: ImportReport =
        match run_long_operation(&common, "state import", "/state/import", &request).await {
            Ok(report) => report,
            Err(code) => return code,
        };
    if common.json {
        print_json(&report);
        return 0;
    }
    let verb = if report.apply {
        "Imported"
    } else {
        "Would import (dry run)"
    };
    let mut by_type: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in report
        .entries
        .iter()
        .filter(|e| e.action == ImportAction::Import)
    {
        *by_type.entry(e.object_type.as_str()).or_default() += 1;
    }
    println!(
        "{verb} {} objects from {}: {}.",
        report.count(ImportAction::Import),
        report.from.display(),
        by_type
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "Already known (left alone): {}; not provisioned to OX: {}; unreadable files: {}.",
        report.count(ImportAction::AlreadyKnown),
        report.count(ImportAction::Ignored),
        report.problems.len()
    );
    for e in report.noted().filter(|e| e.action == ImportAction::Import) {
        println!(
            "  {} {} ({}): {}",
            e.object_type,
            e.dn,
            e.file,
            e.note.as_deref().unwrap_or_default()
        );
    }
    for p in &report.problems {
        println!("  unreadable: {p}");
    }
    if !report.apply {
        println!("To import: add --apply.");
    }
    0
}
