//! One struct per event the pipeline reports, named `<Noun><Verb>[Error]`.
//!
//! Each `emit()` writes the log line (fields first, then a sentence) and records its metrics
//! (names in [`super::metrics`]), so that the wording, the level and the numbers of every event
//! live in one place. Field names are stable for log processors:
//! `file`, `dn`, `entry_uuid`, `object_type`, `operation`, `error`, `ox_fault`.

use std::path::Path;
use std::time::Duration;

use metrics::{counter, histogram};
use tracing::{debug, error, info, warn};

use super::metrics as m;

/// What an event logs of a provisioning message. Implemented by
/// `message::ProvisioningMessage`; the events take this view (and plain data otherwise) so that
/// telemetry, which every step uses, imports none of them.
pub trait MessageFields {
    /// The listener file the message came from, `-` if none.
    fn file(&self) -> &str;
    fn object_type(&self) -> &str;
    fn operation(&self) -> &'static str;
    fn dn(&self) -> &str;
    fn entry_uuid(&self) -> &str;
}

/// What an event logs of a failed attempt to apply a message (implemented by
/// `apply::ApplyError`).
pub trait ApplyFailure: std::fmt::Display {
    /// The target refused the change (an admin probably has to act); otherwise it is transient.
    fn rejected(&self) -> bool;
    /// The kind of OX fault behind the error (`invalid_data`, `connect`, …).
    fn ox_fault(&self) -> Option<&'static str>;
}

fn file_of(message: &dyn MessageFields) -> &str {
    message.file()
}

fn operation_of(message: &dyn MessageFields) -> &'static str {
    message.operation()
}

/// A listener file could not be parsed; it is retried until the grace period ends.
pub struct FileParseFailed<'a> {
    pub file: &'a str,
    pub error: &'a str,
    pub grace: Duration,
}

impl FileParseFailed<'_> {
    pub fn emit(&self) {
        warn!(
            file = self.file,
            error = self.error,
            grace_s = self.grace.as_secs(),
            "Listener file is not usable; it is retried and quarantined if it stays broken."
        );
    }
}

/// A broken listener file was moved to `listener/broken/`.
pub struct FileQuarantined<'a> {
    pub file: &'a str,
    pub error: &'a str,
    pub moved_to: &'a Path,
}

impl FileQuarantined<'_> {
    pub fn emit(&self) {
        error!(
            file = self.file,
            error = self.error,
            moved_to = %self.moved_to.display(),
            "Quarantined a broken listener file; the files after it go on."
        );
        counter!(m::FILES_QUARANTINED).increment(1);
    }
}

/// A broken listener file could not be moved to quarantine (it stays and is retried).
pub struct FileQuarantineError<'a> {
    pub file: &'a str,
    /// The listener folder.
    pub dir: &'a std::path::Path,
    pub error: &'a std::io::Error,
}

impl FileQuarantineError<'_> {
    /// Logged once per episode (until a quarantine works again), with what to do.
    pub fn emit(&self) {
        let what_to_do = if self.error.raw_os_error() == Some(libc::ENOSPC) {
            "The file system of the listener folder is full: free space there. Until then the \
             broken file stays where it is (it does not hold up the other files)."
        } else {
            "Check the owner and mode of listener/broken/. Until then the broken file stays where \
             it is (it does not hold up the other files)."
        };
        error!(
            file = self.file,
            dir = %self.dir.display(),
            error = %super::Chain(self.error),
            "Cannot quarantine a broken listener file. {what_to_do}"
        );
    }
}

/// A listener file was published to JetStream.
pub struct MessagePublished<'a> {
    pub message: &'a dyn MessageFields,
    pub sequence: u64,
    pub duplicate: bool,
}

impl MessagePublished<'_> {
    pub fn emit(&self) {
        debug!(
            file = file_of(self.message),
            object_type = %self.message.object_type(),
            dn = %self.message.dn(),
            entry_uuid = %self.message.entry_uuid(),
            sequence = self.sequence,
            duplicate = self.duplicate,
            "Queued listener file."
        );
        if !self.duplicate {
            counter!(m::FILES_SEEN).increment(1);
        }
    }
}

/// Publishing failed; the file stays and the pass is repeated later, keeping the order.
pub struct MessagePublishError<'a> {
    pub file: &'a str,
    pub error: &'a (dyn std::error::Error + 'static),
    pub queue_full: bool,
}

impl MessagePublishError<'_> {
    pub fn emit(&self) {
        if self.queue_full {
            warn!(
                file = self.file,
                error = %super::Chain(self.error),
                "The JetStream queue is full; listener files wait on disk until it drains."
            );
        } else {
            warn!(file = self.file, error = %super::Chain(self.error), "Cannot queue listener file; will retry.");
        }
    }
}

/// The queue accepts messages again after having been full.
pub struct QueueDrained;

impl QueueDrained {
    pub fn emit(&self) {
        info!("The JetStream queue accepts messages again.");
    }
}

/// A message was applied (or had nothing to do) and its file deleted.
pub struct MessageApplied<'a> {
    pub message: &'a dyn MessageFields,
    pub attempts: u64,
    pub ignored: Option<&'a str>,
    /// How long the successful attempt took.
    pub elapsed: Duration,
}

impl MessageApplied<'_> {
    pub fn emit(&self) {
        let m = self.message;
        let (object_type, operation) = (m.object_type().to_owned(), operation_of(m));
        let outcome = if self.ignored.is_some() {
            "ignored"
        } else {
            "applied"
        };
        counter!(m::FILES_APPLIED, "object_type" => object_type.clone(), "operation" => operation, "outcome" => outcome)
            .increment(1);
        super::progress::record_applied();
        histogram!(m::APPLY_DURATION, "object_type" => object_type, "operation" => operation)
            .record(self.elapsed.as_secs_f64());
        match self.ignored {
            None => info!(
                file = file_of(m),
                object_type = %m.object_type(),
                operation = operation_of(m),
                dn = %m.dn(),
                entry_uuid = %m.entry_uuid(),
                attempts = self.attempts,
                "Applied change."
            ),
            Some(reason) => info!(
                file = file_of(m),
                object_type = %m.object_type(),
                operation = operation_of(m),
                dn = %m.dn(),
                entry_uuid = %m.entry_uuid(),
                reason,
                "Nothing to do for this change."
            ),
        }
    }
}

/// A message was acknowledged without applying it because its listener file is gone.
pub struct MessageSkipped<'a> {
    pub message: &'a dyn MessageFields,
}

impl MessageSkipped<'_> {
    pub fn emit(&self) {
        let m = self.message;
        info!(
            file = file_of(m),
            object_type = %m.object_type(),
            dn = %m.dn(),
            entry_uuid = %m.entry_uuid(),
            "Listener file was removed before it was applied; skipped the change."
        );
        counter!(m::FILES_SKIPPED, "object_type" => m.object_type().to_owned()).increment(1);
    }
}

/// Applying the head of the queue failed; it is retried after the delay.
pub struct MessageApplyError<'a> {
    pub message: &'a dyn MessageFields,
    pub error: &'a dyn ApplyFailure,
    pub attempts: u64,
    pub retry_in: Duration,
}

impl MessageApplyError<'_> {
    pub fn emit(&self) {
        let m = self.message;
        let rejected = self.error.rejected();
        let kind = if rejected { "rejected" } else { "transient" };
        counter!(m::RETRIES, "object_type" => m.object_type().to_owned(), "error_kind" => kind)
            .increment(1);
        let ox_fault = self.error.ox_fault().unwrap_or("-");
        // The first failure, and then every 60th (about every 5 minutes at the default delay),
        // is worth a line; in between the status shows the attempt count.
        let level_line = self.attempts == 1 || self.attempts % 60 == 0;
        if !level_line {
            debug!(
                file = file_of(m),
                entry_uuid = %m.entry_uuid(),
                attempts = self.attempts,
                error = %self.error,
                ox_fault,
                "Change still failing."
            );
            return;
        }
        macro_rules! line {
            ($level:ident) => {
                $level!(
                    file = file_of(m),
                    object_type = %m.object_type(),
                    operation = operation_of(m),
                    dn = %m.dn(),
                    entry_uuid = %m.entry_uuid(),
                    error_kind = kind,
                    error = %self.error,
                    ox_fault,
                    attempts = self.attempts,
                    retry_in_s = self.retry_in.as_secs_f64(),
                    "Cannot apply change; the queue waits for it and retries."
                )
            };
        }
        if rejected {
            line!(error)
        } else {
            line!(warn)
        }
    }
}

/// A message in the queue could not be decoded; it did not come from this publisher.
pub struct MessageUndecodable<'a> {
    pub subject: &'a str,
    pub sequence: u64,
    pub error: &'a serde_json::Error,
}

impl MessageUndecodable<'_> {
    pub fn emit(&self) {
        error!(
            subject = self.subject,
            sequence = self.sequence,
            error = %super::Chain(self.error),
            "Dropped a message that is not a provisioning message."
        );
    }
}

/// The applied listener file could not be deleted.
pub struct FileDeleteError<'a> {
    pub error: &'a (dyn std::error::Error + 'static),
}

impl FileDeleteError<'_> {
    pub fn emit(&self) {
        error!(
            error = %super::Chain(self.error),
            "The change was applied but its listener file could not be deleted; fix the \
             permissions, then remove the file by hand."
        );
    }
}

/// One OX SOAP call finished (`operation` is `Service.operation`).
pub struct OxCallFinished<'a> {
    pub operation: &'a str,
    pub elapsed: Duration,
    /// The failure's bounded label (an OX fault kind, or how the call failed) and the error.
    pub error: Option<(&'static str, &'a (dyn std::error::Error + 'static))>,
}

impl OxCallFinished<'_> {
    pub fn emit(&self) {
        let (service, operation) = self
            .operation
            .split_once('.')
            .unwrap_or(("-", self.operation));
        let outcome = self.error.map_or("ok", |(label, _)| label);
        histogram!(m::OX_REQUEST_DURATION, "service" => service.to_owned(), "operation" => operation.to_owned(), "outcome" => outcome)
            .record(self.elapsed.as_secs_f64());
        if let Some((_, error)) = self.error {
            counter!(m::OX_FAULTS, "kind" => outcome).increment(1);
            debug!(
                operation = self.operation,
                ox_fault = outcome,
                error = %super::Chain(error),
                elapsed_ms = self.elapsed.as_millis() as u64,
                "OX SOAP call failed."
            );
        }
    }
}

/// An admin skipped a queued listener file: it was moved to `listener/skipped/`.
pub struct FileSkippedByAdmin<'a> {
    pub file: &'a str,
    pub object_type: &'a str,
    pub dn: &'a str,
    pub entry_uuid: &'a str,
    pub by: &'a str,
    pub reason: &'a str,
    pub moved_to: &'a Path,
}

impl FileSkippedByAdmin<'_> {
    pub fn emit(&self) {
        warn!(
            file = self.file,
            object_type = self.object_type,
            dn = self.dn,
            entry_uuid = self.entry_uuid,
            by = self.by,
            reason = self.reason,
            moved_to = %self.moved_to.display(),
            "An admin skipped a queued change; it will not be applied to OX."
        );
        counter!(m::ADMIN_ACTIONS, "action" => "skip").increment(1);
    }
}

/// An admin put a skipped or quarantined file back into the queue (`queue requeue`).
pub struct FileRequeued<'a> {
    pub file: &'a str,
    pub by: &'a str,
    /// `skipped` or `broken`.
    pub from: &'a str,
}

impl FileRequeued<'_> {
    pub fn emit(&self) {
        info!(
            file = self.file,
            by = self.by,
            from = self.from,
            "An admin put a listener file back into the queue; it is queued again."
        );
        counter!(m::ADMIN_ACTIONS, "action" => "requeue").increment(1);
    }
}

/// A skipped or quarantined file was moved back into `listener/` by hand (`mv`).
pub struct FileMovedBack<'a> {
    pub file: &'a str,
    /// `skipped` or `broken`.
    pub from: &'a str,
}

impl FileMovedBack<'_> {
    pub fn emit(&self) {
        info!(
            file = self.file,
            from = self.from,
            "A listener file was moved back into the queue by hand; it is queued again."
        );
    }
}

/// Files JetStream already held (same message id): not queued again. Normal after a restart
/// (the files waiting on disk are offered again); a file that stays after its earlier message
/// was applied or skipped would otherwise wait silently, so this is logged, not hidden.
pub struct FilesAlreadyQueued<'a> {
    /// How many in this publish round.
    pub count: usize,
    /// The first few of them.
    pub files: &'a [String],
}

impl FilesAlreadyQueued<'_> {
    pub fn emit(&self) {
        info!(
            count = self.count,
            files = %super::List(self.files),
            "Listener files are already on the JetStream queue (same message id); they are applied from the earlier messages. If one stays in listener/ after its change was applied or skipped, put it back with: ox-connector queue requeue NAME"
        );
    }
}

/// An admin asked to retry the failing change now.
pub struct RetryRequested<'a> {
    pub by: &'a str,
}

impl RetryRequested<'_> {
    pub fn emit(&self) {
        info!(
            by = self.by,
            "An admin asked to retry the failing change now."
        );
        counter!(m::ADMIN_ACTIONS, "action" => "retry").increment(1);
    }
}

/// A reconcile run finished.
pub struct ReconcileFinished<'a> {
    /// `admin` or `periodic`.
    pub trigger: &'static str,
    /// Drift found, by kind label.
    pub drift: &'a [(&'static str, usize)],
    pub repairs_queued: usize,
    pub apply: bool,
}

impl ReconcileFinished<'_> {
    pub fn emit(&self) {
        let total: usize = self.drift.iter().map(|(_, n)| n).sum();
        for (kind, count) in self.drift {
            metrics::gauge!(m::RECONCILE_DRIFT, "kind" => *kind).set(*count as f64);
        }
        let result = if total == 0 { "clean" } else { "drift" };
        counter!(m::RECONCILE_RUNS, "trigger" => self.trigger, "result" => result).increment(1);
        metrics::gauge!(m::RECONCILE_LAST_RUN).set(chrono::Utc::now().timestamp() as f64);
        if self.trigger == "admin" {
            counter!(m::ADMIN_ACTIONS, "action" => "reconcile").increment(1);
        }
        let counts: Vec<String> = self.drift.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let counts = counts.join(" ");
        if total == 0 {
            info!(
                trigger = self.trigger,
                "Reconcile found no difference between the state store and OX."
            );
        } else {
            warn!(
                trigger = self.trigger,
                drift = %counts,
                apply = self.apply,
                repairs_queued = self.repairs_queued,
                "Reconcile found differences between the state store and OX."
            );
        }
    }
}

/// A reconcile run failed (OX unreachable, state store unreadable).
pub struct ReconcileFailed<'a> {
    pub trigger: &'static str,
    pub error: &'a (dyn std::error::Error + 'static),
}

impl ReconcileFailed<'_> {
    pub fn emit(&self) {
        warn!(trigger = self.trigger, error = %super::Chain(self.error), "Reconcile failed.");
        counter!(m::RECONCILE_RUNS, "trigger" => self.trigger, "result" => "failed").increment(1);
    }
}

/// The Python connector's cache was imported into the state store.
pub struct StateImported<'a> {
    pub from: &'a Path,
    pub imported: usize,
    pub already_known: usize,
    pub problems: usize,
    pub automatic: bool,
}

impl StateImported<'_> {
    pub fn emit(&self) {
        info!(
            from = %self.from.display(),
            imported = self.imported,
            already_known = self.already_known,
            problems = self.problems,
            automatic = self.automatic,
            "Imported the Python connector's state."
        );
        counter!(m::ADMIN_ACTIONS, "action" => "state_import").increment(1);
    }
}
