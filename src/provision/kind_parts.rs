//! What one OX object kind is made of ([`Kind`]): each kind's file declares one
//! `pub static KIND: Kind` next to its provisioning code, and [`super::kind::KINDS`] lists them.
//! Below the kinds' files and the registry, so that neither imports the other in a circle.

use futures::future::BoxFuture;

use crate::apply::{Outcome, Scope};
use crate::message::ProvisioningMessage;

use super::compare::Compare;
use super::state::{ObjectState, StateError};
use super::{ProvisionError, Provisioner};

/// Where a listener file of a kind goes in its batch; lower goes first. Types without a kind
/// rank at `crate::listener::batch::UNKNOWN_RANK` (100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRank {
    pub change: u8,
    pub delete: u8,
}

impl BatchRank {
    /// The same rank for changes and deletions.
    pub const fn both(rank: u8) -> Self {
        Self {
            change: rank,
            delete: rank,
        }
    }
}

/// What a change touches besides the object itself (entry UUID, DN, old DN: [`super::scope`]
/// adds those), given the object's previous state; [`Scope::Everything`] when the kind cannot
/// tell.
pub type KeysFn = for<'a> fn(
    &'a Provisioner,
    &'a ProvisioningMessage,
    Option<&'a ObjectState>,
) -> BoxFuture<'a, Result<Scope, StateError>>;

/// Applies a message to OX, given the object's previous state.
pub type ApplyFn = for<'a> fn(
    &'a Provisioner,
    &'a ProvisioningMessage,
    Option<ObjectState>,
) -> BoxFuture<'a, Result<Outcome, ProvisionError>>;

/// Everything about one OX object kind; each kind's file has one `pub static KIND`.
pub struct Kind {
    /// The UDM module, which is the message topic (`users/user`).
    pub topic: &'static str,
    /// Whether the OX subscriber's queue takes messages of this kind.
    pub wanted_by_ox: bool,
    /// Its place in a batch of listener files.
    pub rank: BatchRank,
    /// The page in `docs/` that describes how the kind is provisioned.
    pub docs: &'static str,
    /// Its ordering keys.
    pub keys: KeysFn,
    /// How it is applied.
    pub apply: ApplyFn,
    /// How `reconcile` compares it with OX; `None` for a kind that is not compared (its file
    /// says why).
    pub compare: Option<Compare>,
}
