//! The progress of a long operation (`reconcile`, `state import`) on stderr while the daemon
//! streams it: a bar on a terminal, plain lines otherwise.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::common::{client, failed, Common};
use crate::telemetry::progress::Step;

/// How long a long operation may take before the command gives up waiting for its report.
const LONG_OPERATION_TIMEOUT: Duration = Duration::from_secs(3600);

/// How often a plain progress line is printed at most while the phase stays the same.
const PLAIN_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// Posts `request` to the daemon's `path` as a long operation named `operation`: its progress
/// on stderr while it runs, then its report. A failure is printed with its causes and comes
/// back as the exit code.
pub(super) async fn run_long_operation<Q: Serialize, R: DeserializeOwned>(
    common: &Common,
    operation: &'static str,
    path: &str,
    request: &Q,
) -> Result<R, i32> {
    let mut view = ProgressView::new(operation);
    let result = async {
        client(common, LONG_OPERATION_TIMEOUT)?
            .post_streaming::<_, R>(path, request, |step| view.show(&step))
            .await
    }
    .await;
    view.finish();
    result.map_err(|e| failed(&e))
}

/// The progress of a long operation on stderr (stdout keeps the report alone): a bar on a
/// terminal; otherwise a line like `reconcile: users in context 10: 4000/10000` at every phase
/// change and at most every [`PLAIN_PROGRESS_INTERVAL`].
pub(super) enum ProgressView {
    /// One bar per phase, made with its length and position so that it is never drawn half
    /// set up.
    Bar {
        operation: &'static str,
        style: indicatif::ProgressStyle,
        bar: Option<indicatif::ProgressBar>,
    },
    Lines {
        operation: &'static str,
        /// The phase of the last line and when it was printed.
        last: Option<(String, std::time::Instant)>,
    },
}

impl ProgressView {
    pub(super) fn new(operation: &'static str) -> Self {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Self::Lines {
                operation,
                last: None,
            };
        }
        let style = indicatif::ProgressStyle::with_template(
            "{prefix}: {msg} [{wide_bar}] {pos}/{len} ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("#>.");
        Self::Bar {
            operation,
            style,
            bar: None,
        }
    }

    pub(super) fn show(&mut self, step: &Step) {
        match self {
            Self::Bar {
                operation,
                style,
                bar,
            } => match bar.as_ref().filter(|b| b.message() == step.phase) {
                Some(same_phase) => {
                    same_phase.set_length(step.total);
                    same_phase.set_position(step.done);
                }
                None => {
                    if let Some(done) = bar.take() {
                        done.finish_and_clear();
                    }
                    let next = indicatif::ProgressBar::new(step.total)
                        .with_style(style.clone())
                        .with_prefix(*operation)
                        .with_message(step.phase.clone())
                        .with_position(step.done);
                    next.tick();
                    *bar = Some(next);
                }
            },
            Self::Lines { operation, last } => {
                let now = std::time::Instant::now();
                if plain_line_due(last.as_ref(), step, now) {
                    eprintln!("{}", plain_progress_line(operation, step));
                    *last = Some((step.phase.clone(), now));
                }
            }
        }
    }

    /// Clears the bar, so that the report follows on a clean screen.
    pub(super) fn finish(self) {
        if let Self::Bar { bar: Some(bar), .. } = self {
            bar.finish_and_clear();
        }
    }
}

/// Whether a plain progress line is printed for `step`: a new phase, or the last line is
/// [`PLAIN_PROGRESS_INTERVAL`] old.
fn plain_line_due(
    last: Option<&(String, std::time::Instant)>,
    step: &Step,
    now: std::time::Instant,
) -> bool {
    last.is_none_or(|(phase, at)| {
        *phase != step.phase || now.duration_since(*at) >= PLAIN_PROGRESS_INTERVAL
    })
}

/// `reconcile: users in context 10: 4000/10000`.
fn plain_progress_line(operation: &str, step: &Step) -> String {
    format!("{operation}: {}: {}/{}", step.phase, step.done, step.total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_progress_lines_come_at_phase_changes_and_then_every_few_seconds() {
        let step = |phase: &str, done| Step {
            phase: phase.into(),
            done,
            total: 10000,
        };
        assert_eq!(
            plain_progress_line("reconcile", &step("users in context 10", 4000)),
            "reconcile: users in context 10: 4000/10000"
        );
        let start = std::time::Instant::now();
        let printed = ("users in context 10".to_owned(), start);
        assert!(plain_line_due(None, &step("contexts", 0), start));
        assert!(!plain_line_due(
            Some(&printed),
            &step("users in context 10", 10),
            start + Duration::from_secs(1)
        ));
        assert!(plain_line_due(
            Some(&printed),
            &step("users in context 10", 10),
            start + PLAIN_PROGRESS_INTERVAL
        ));
        assert!(plain_line_due(
            Some(&printed),
            &step("groups in context 10", 0),
            start + Duration::from_secs(1)
        ));
    }
}
