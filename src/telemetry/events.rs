//! One struct per event the pipeline reports, named `<Noun><Verb>[Error]`.
//!
//! Each `emit()` writes the log line (fields first, then a sentence) so that the wording and the
//! level of every event live in one place. Field names are stable for log processors:
//! `file`, `dn`, `entry_uuid`, `object_type`, `operation`, `error`.

use std::path::Path;
use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::apply::{ApplyError, ApplyErrorKind};
use crate::message::ProvisioningMessage;

fn file_of(message: &ProvisioningMessage) -> &str {
    message.source_file().unwrap_or("-")
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
    }
}

/// A broken listener file could not be moved to quarantine (it stays and is retried).
pub struct FileQuarantineError<'a> {
    pub file: &'a str,
    pub error: &'a std::io::Error,
}

impl FileQuarantineError<'_> {
    pub fn emit(&self) {
        error!(file = self.file, error = %self.error, "Cannot quarantine a broken listener file.");
    }
}

/// A listener file was published to JetStream.
pub struct MessagePublished<'a> {
    pub message: &'a ProvisioningMessage,
    pub sequence: u64,
    pub duplicate: bool,
}

impl MessagePublished<'_> {
    pub fn emit(&self) {
        debug!(
            file = file_of(self.message),
            object_type = %self.message.topic,
            dn = %self.message.dn,
            entry_uuid = %self.message.object_id,
            sequence = self.sequence,
            duplicate = self.duplicate,
            "Queued listener file."
        );
    }
}

/// Publishing failed; the file stays and the pass is repeated later, keeping the order.
pub struct MessagePublishError<'a> {
    pub file: &'a str,
    pub error: &'a dyn std::error::Error,
    pub queue_full: bool,
}

impl MessagePublishError<'_> {
    pub fn emit(&self) {
        if self.queue_full {
            warn!(
                file = self.file,
                error = %self.error,
                "The JetStream queue is full; listener files wait on disk until it drains."
            );
        } else {
            warn!(file = self.file, error = %self.error, "Cannot queue listener file; will retry.");
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
    pub message: &'a ProvisioningMessage,
    pub attempts: u64,
    pub ignored: Option<&'a str>,
}

impl MessageApplied<'_> {
    pub fn emit(&self) {
        let m = self.message;
        match self.ignored {
            None => info!(
                file = file_of(m),
                object_type = %m.topic,
                operation = ?m.op,
                dn = %m.dn,
                entry_uuid = %m.object_id,
                attempts = self.attempts,
                "Applied change."
            ),
            Some(reason) => info!(
                file = file_of(m),
                object_type = %m.topic,
                operation = ?m.op,
                dn = %m.dn,
                entry_uuid = %m.object_id,
                reason,
                "Nothing to do for this change."
            ),
        }
    }
}

/// A message was acknowledged without applying it because its listener file is gone.
pub struct MessageSkipped<'a> {
    pub message: &'a ProvisioningMessage,
}

impl MessageSkipped<'_> {
    pub fn emit(&self) {
        let m = self.message;
        info!(
            file = file_of(m),
            object_type = %m.topic,
            dn = %m.dn,
            entry_uuid = %m.object_id,
            "Listener file was removed before it was applied; skipped the change."
        );
    }
}

/// Applying the head of the queue failed; it is retried after the delay.
pub struct MessageApplyError<'a> {
    pub message: &'a ProvisioningMessage,
    pub error: &'a ApplyError,
    pub attempts: u64,
    pub retry_in: Duration,
}

impl MessageApplyError<'_> {
    pub fn emit(&self) {
        let m = self.message;
        let kind = match self.error.kind {
            ApplyErrorKind::Transient => "transient",
            ApplyErrorKind::Rejected => "rejected",
        };
        // The first failure, and then every 60th (about every 5 minutes at the default delay),
        // is worth a line; in between the status shows the attempt count.
        let level_line = self.attempts == 1 || self.attempts % 60 == 0;
        if !level_line {
            debug!(
                file = file_of(m),
                entry_uuid = %m.object_id,
                attempts = self.attempts,
                error = %self.error,
                "Change still failing."
            );
            return;
        }
        macro_rules! line {
            ($level:ident) => {
                $level!(
                    file = file_of(m),
                    object_type = %m.topic,
                    operation = ?m.op,
                    dn = %m.dn,
                    entry_uuid = %m.object_id,
                    error_kind = kind,
                    error = %self.error,
                    attempts = self.attempts,
                    retry_in_s = self.retry_in.as_secs_f64(),
                    "Cannot apply change; the queue waits for it and retries."
                )
            };
        }
        match self.error.kind {
            ApplyErrorKind::Transient => line!(warn),
            ApplyErrorKind::Rejected => line!(error),
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
            error = %self.error,
            "Dropped a message that is not a provisioning message."
        );
    }
}

/// The applied listener file could not be deleted.
pub struct FileDeleteError<'a> {
    pub error: &'a crate::done::DeleteError,
}

impl FileDeleteError<'_> {
    pub fn emit(&self) {
        error!(
            error = %self.error,
            "The change was applied but its listener file could not be deleted; fix the \
             permissions, then remove the file by hand."
        );
    }
}
