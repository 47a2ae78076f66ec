//! `ox-connector reconcile`: asks the daemon to compare its state store with OX (and with
//! `--apply` to repair through the queue), shows the progress, and prints the differences.

use clap::Args;

use super::common::{print_json, Common};
use super::progress::run_long_operation;
use crate::ops::reconcile::{ReconcileReport, ReconcileRequest};

/// `ox-connector reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub common: Common,
    /// Only report (the default).
    #[arg(long, conflicts_with = "apply")]
    pub dry_run: bool,
    /// Repair: apply missing and differing objects again through the queue, correct stale ids.
    #[arg(long)]
    pub apply: bool,
    /// Only this OX context.
    #[arg(long)]
    pub context: Option<i32>,
}

/// Runs `ox-connector reconcile`; returns the exit code.
pub async fn reconcile(args: ReconcileArgs) -> i32 {
    let request = ReconcileRequest {
        context: args.context,
        apply: args.apply,
    };
    let report: ReconcileReport =
        match run_long_operation(&args.common, "reconcile", "/reconcile", &request).await {
            Ok(report) => report,
            Err(code) => return code,
        };
    let drift = report.drift.len();
    let code = if drift > 0 && !report.apply { 1 } else { 0 };
    if args.common.json {
        print_json(&report);
        return code;
    }
    let contexts = report
        .contexts
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "Reconcile{}: contexts {}; {} remembered objects compared; {} differences.",
        if report.apply { "" } else { " (dry run)" },
        if contexts.is_empty() {
            "-".into()
        } else {
            contexts
        },
        report.compared,
        drift
    );
    for note in &report.notes {
        println!("note: {note}");
    }
    if drift > 0 {
        println!(
            "{:<14} {:<9} {:>4}  {:<20} DETAIL",
            "KIND", "TYPE", "CTX", "NAME"
        );
        for d in &report.drift {
            let pending = if d.pending_change {
                " [change waiting]"
            } else {
                ""
            };
            let dn =
                d.dn.as_deref()
                    .map(|dn| format!(" ({dn})"))
                    .unwrap_or_default();
            println!(
                "{:<14} {:<9} {:>4}  {:<20} {}{dn}{pending}",
                d.kind.text(),
                d.object,
                d.context
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                d.name,
                d.detail
            );
        }
        if report.apply {
            println!(
                "Queued {} repairs; they are applied in order (see: ox-connector queue status). Objects unknown in OX were left alone.",
                report.repairs_queued
            );
        } else {
            println!("To repair: ox-connector reconcile --apply (missing and differing objects are applied again through the queue, stale ids corrected; objects unknown in OX are left alone).");
        }
    }
    code
}
