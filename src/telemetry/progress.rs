//! Progress: how fast the queue drains, and how far a long admin operation is.
//!
//! The queue: changes applied per second over the last minute, for the `queue status` rate and
//! ETA, `queue watch` and the metrics. One process-wide window (like the metrics recorder):
//! [`record_applied`] is called for every applied change, [`applied_last_minute`] reads it.
//! Sixty one-second buckets, so the cost per change is one lock and an add.
//!
//! Long operations (reconcile, state import): the operation calls [`Progress::report`] with
//! its phase and counts; that sets the gauges `ox_connector_operation_objects_done` and
//! `ox_connector_operation_objects_in_phase` and, when someone listens (the admin API streams
//! it to the CLI), sends a [`Step`] — at every phase change, at the end of a phase, and
//! otherwise at most every [`STEP_INTERVAL`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const WINDOW_SECONDS: u64 = 60;

/// `(second, count)` per slot; a slot whose second is older than the window counts 0.
static WINDOW: Mutex<[(u64, u64); WINDOW_SECONDS as usize]> =
    Mutex::new([(0, 0); WINDOW_SECONDS as usize]);

fn now_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Counts one applied change now.
pub fn record_applied() {
    record_at(now_second());
}

fn record_at(second: u64) {
    let mut window = crate::locks::lock(&WINDOW);
    let slot = &mut window[(second % WINDOW_SECONDS) as usize];
    if slot.0 != second {
        *slot = (second, 0);
    }
    slot.1 += 1;
}

/// Changes applied in the last minute.
pub fn applied_last_minute() -> u64 {
    applied_before(now_second())
}

fn applied_before(now: u64) -> u64 {
    let window = crate::locks::lock(&WINDOW);
    window
        .iter()
        .filter(|(second, _)| *second + WINDOW_SECONDS > now && *second <= now)
        .map(|(_, count)| count)
        .sum()
}

/// The expected time until `remaining` changes are applied at the last minute's pace; `None`
/// when nothing was applied in the last minute (no pace to go by).
pub fn eta(remaining: u64, applied_last_minute: u64) -> Option<std::time::Duration> {
    (applied_last_minute > 0).then(|| {
        std::time::Duration::from_secs_f64(remaining as f64 * 60.0 / applied_last_minute as f64)
    })
}

/// How often an unchanged phase sends a step at most.
pub const STEP_INTERVAL: Duration = Duration::from_millis(250);

/// How far a long operation is: `done` of `total` objects in `phase` (e.g. `users in
/// context 10`, 4000 of 10000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub phase: String,
    pub done: u64,
    pub total: u64,
}

/// Where a long operation says how far it is. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Metric label: `reconcile` or `state_import`.
    operation: &'static str,
    listener: Option<mpsc::UnboundedSender<Step>>,
    last: Arc<Mutex<Last>>,
}

/// What [`Progress`] remembers between two reports.
#[derive(Debug, Default)]
struct Last {
    /// The last phase reported and its total, for [`Progress::finish`].
    reported: Option<(String, usize)>,
    /// When the last step was sent (of the phase in `reported`).
    sent_at: Option<Instant>,
}

impl Progress {
    /// Progress that goes to the metrics only.
    pub fn new(operation: &'static str) -> Self {
        Self {
            operation,
            listener: None,
            last: Arc::default(),
        }
    }

    /// Progress that goes to the metrics and to the returned receiver (see [`Progress`] for
    /// which steps are sent); the receiver ends when every clone is dropped.
    pub fn channel(operation: &'static str) -> (Self, mpsc::UnboundedReceiver<Step>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let progress = Self {
            listener: Some(tx),
            ..Self::new(operation)
        };
        (progress, rx)
    }

    /// `done` of `total` objects of `phase` are through.
    pub fn report(&self, phase: &str, done: usize, total: usize) {
        let labels = [("operation", self.operation)];
        metrics::gauge!(OPERATION_OBJECTS_DONE, &labels).set(done as f64);
        metrics::gauge!(OPERATION_OBJECTS_IN_PHASE, &labels).set(total as f64);
        let now = Instant::now();
        let mut last = crate::locks::lock(&self.last);
        let same_phase = last.reported.as_ref().is_some_and(|(p, _)| p == phase);
        last.reported = Some((phase.to_owned(), total));
        let Some(listener) = &self.listener else {
            return;
        };
        let due =
            !same_phase || done >= total || last.sent_at.is_none_or(|at| now - at >= STEP_INTERVAL);
        if !due {
            return;
        }
        last.sent_at = Some(now);
        drop(last);
        // A listener that went away (the client hung up) does not stop the operation.
        let _ = listener.send(Step {
            phase: phase.to_owned(),
            done: done as u64,
            total: total as u64,
        });
    }

    /// The operation is through: its last phase is reported as done.
    pub fn finish(&self) {
        let last = crate::locks::lock(&self.last).reported.clone();
        if let Some((phase, total)) = last {
            self.report(&phase, total, total);
        }
    }
}

/// Objects done in the current phase of a long admin operation, by `operation`.
pub const OPERATION_OBJECTS_DONE: &str = "ox_connector_operation_objects_done";
/// Objects in the current phase of a long admin operation, by `operation`.
pub const OPERATION_OBJECTS_IN_PHASE: &str = "ox_connector_operation_objects_in_phase";
/// The values of the `operation` label.
pub const OPERATIONS: [&str; 2] = ["reconcile", "state_import"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_sent_at_phase_changes_and_phase_ends_and_otherwise_seldom() {
        let (progress, mut steps) = Progress::channel("reconcile");
        progress.report("contexts", 0, 1);
        progress.report("contexts", 1, 1);
        for done in 0..1000 {
            progress.report("users in context 10", done, 1000);
        }
        progress.report("users in context 10", 1000, 1000);
        progress.report("groups in context 10", 0, 2);
        progress.finish();
        drop(progress);
        let mut sent = Vec::new();
        while let Ok(step) = steps.try_recv() {
            sent.push((step.phase, step.done, step.total));
        }
        let step = |p: &str, d, t| (p.to_owned(), d, t);
        assert_eq!(sent[0], step("contexts", 0, 1));
        assert_eq!(sent[1], step("contexts", 1, 1));
        assert_eq!(sent[2], step("users in context 10", 0, 1000));
        assert_eq!(
            sent[sent.len() - 3],
            step("users in context 10", 1000, 1000)
        );
        assert_eq!(sent[sent.len() - 2], step("groups in context 10", 0, 2));
        assert_eq!(sent[sent.len() - 1], step("groups in context 10", 2, 2));
        // A thousand reports within far less than the interval are not a thousand steps.
        assert!(sent.len() < 100, "{}", sent.len());
    }

    #[test]
    fn the_window_counts_the_last_minute_only() {
        // Far in the future, so that other tests' changes in this process do not count.
        let base = 10_000_000_000;
        for _ in 0..30 {
            record_at(base);
        }
        record_at(base + 59);
        assert_eq!(applied_before(base + 59), 31);
        assert_eq!(applied_before(base + 60), 1);
        assert_eq!(applied_before(base + 200), 0);
        assert_eq!(eta(120, 60), Some(std::time::Duration::from_secs(120)));
        assert_eq!(eta(120, 0), None);
    }
}
