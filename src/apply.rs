//! The contract between the ordered queue and whatever applies a message (the OX subscriber).
//!
//! The queue calls [`Applier::apply`] once per attempt and advances only on `Ok`. An `Err` keeps
//! the message at the head of the queue and it is tried again after the retry delay: order is
//! never broken by skipping ahead. Appliers must therefore be idempotent: a message may be
//! applied again after a crash between "applied" and "acknowledged".

use std::future::Future;

use crate::message::ProvisioningMessage;

/// What applying a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The change is now in the target system.
    Applied,
    /// Nothing had to be done; the reason is logged (e.g. "not an OX user").
    Ignored(String),
}

/// Why a message could not be applied (this time).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApplyError {
    pub kind: ApplyErrorKind,
    /// One line for the admin, e.g. the OX fault text. Never contains secrets.
    pub message: String,
    /// The kind of OX fault behind the error (`invalid_data`, `connect`, …), for logs.
    pub ox_fault: Option<&'static str>,
}

/// Whether waiting can help, or an admin has to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyErrorKind {
    /// The target is unreachable, slow or busy: the retry will likely succeed by itself.
    Transient,
    /// The target refused the change (invalid data, conflict, …): it will be retried, but an
    /// admin probably has to fix the object or skip the message.
    Rejected,
}

impl ApplyError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: ApplyErrorKind::Transient,
            message: message.into(),
            ox_fault: None,
        }
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            kind: ApplyErrorKind::Rejected,
            message: message.into(),
            ox_fault: None,
        }
    }
}

/// Applies provisioning messages to a target system, one at a time and in order.
pub trait Applier: Send + Sync + 'static {
    fn apply(
        &self,
        message: &ProvisioningMessage,
    ) -> impl Future<Output = Result<Outcome, ApplyError>> + Send;
}
