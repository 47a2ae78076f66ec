//! ④ Provisioning: applies provisioning messages to OX App Suite.
//!
//! The OX implementation of [`Applier`] is being built (issue 5). Until then the daemon uses
//! [`NotConfigured`], which refuses every change: the queue blocks at its first message with a
//! clear reason, and no listener file is deleted without its change having reached OX.

pub mod access_profile;
pub mod credentials;
pub mod settings;
pub mod state;
pub mod udm;

use crate::apply::{Applier, ApplyError, Outcome};
use crate::message::ProvisioningMessage;

/// Refuses every change because OX provisioning is not part of this build yet.
#[derive(Debug, Default, Clone, Copy)]
pub struct NotConfigured;

impl Applier for NotConfigured {
    async fn apply(&self, _message: &ProvisioningMessage) -> Result<Outcome, ApplyError> {
        Err(ApplyError::rejected(
            "OX provisioning is not implemented in this build of ox-connector; the change stays queued",
        ))
    }
}
