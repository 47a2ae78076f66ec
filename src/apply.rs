//! The contract between the ordered queue and whatever applies a message (the OX subscriber).
//!
//! The queue calls [`Applier::apply`] once per attempt and advances only on `Ok`. An `Err` keeps
//! the message at the head of the queue and it is tried again after the retry delay: order is
//! never broken by skipping ahead. Appliers must therefore be idempotent: a message may be
//! applied again after a crash between "applied" and "acknowledged".
//!
//! An applier may also say what a message touches ([`Applier::scope`]): messages whose scopes
//! share nothing are applied at the same time, all others in stream order
//! ([`crate::queue::order`]). The default scope is [`Scope::Everything`]: one at a time.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
    /// The target refused because a name is still taken: a change applied before it may free
    /// the name, so it is tried again as soon as such a change finished (not only after the
    /// retry delay).
    pub name_taken: bool,
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
            name_taken: false,
        }
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            kind: ApplyErrorKind::Rejected,
            message: message.into(),
            ox_fault: None,
            name_taken: false,
        }
    }

    /// Refused because a name (login, mail address, …) is still taken.
    pub fn name_taken(message: impl Into<String>) -> Self {
        Self {
            name_taken: true,
            ..Self::rejected(message)
        }
    }
}

impl crate::telemetry::events::ApplyFailure for ApplyError {
    fn rejected(&self) -> bool {
        self.kind == ApplyErrorKind::Rejected
    }

    fn ox_fault(&self) -> Option<&'static str> {
        self.ox_fault
    }
}

/// A look at the messages queued behind the one being applied, for an applier that must apply a
/// later message first (an OX context whose creation is queued behind its first user). The
/// queue implements it ([`crate::queue::peek`]) and the wiring passes it in: the applier never
/// sees the stream.
pub trait QueuedMessages: Send + Sync {
    /// The first decodable queued message of `topic` at stream sequence `from` or later, with
    /// its sequence; `None` when there is none (or the queue cannot be read).
    fn next_of_topic<'a>(&'a self, topic: &'a str, from: u64) -> Queued<'a>;
}

/// A queued message with its stream sequence, once found ([`QueuedMessages::next_of_topic`]).
pub type Queued<'a> = Pin<Box<dyn Future<Output = Option<(u64, ProvisioningMessage)>> + Send + 'a>>;

/// One thing a message reads or changes in the target system.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeKey {
    /// The message's own object, by its entry UUID.
    Object(Arc<str>),
    /// The message's own object, by its DN (lower case): members and group memberships are
    /// given as DNs, and a DN can pass from one object to another (deleted, then created again).
    Dn(Arc<str>),
    /// A part of the object at this DN (lower case), such as a user's membership in a group:
    /// several messages may change their parts at once, but not while another holds
    /// [`ScopeKey::Dn`] of the object.
    SharedDn(Arc<str>),
    /// Another object the message reads (a group's member): not while a message holding its
    /// [`ScopeKey::Dn`] changes it.
    ReadsDn(Arc<str>),
    /// An OX context and everything in it: held by a change of the context itself.
    Context(i32),
    /// Something in an OX context (a user, group or resource there): such changes run side by
    /// side, but not while the context itself changes ([`ScopeKey::Context`]).
    InContext(i32),
    /// An OX-unique name held or given up (old and new values, lower case). Kept per name, not
    /// per context: coarser than OX's rule (most names are unique per context), never finer.
    Name(NameSpace, Arc<str>),
    /// The OX group of the group at this DN (lower case) in one context: changed by a member
    /// user that is created, moved or deleted there (it re-applies or empties that group).
    GroupInContext(Arc<str>, i32),
    /// The names of all OX contexts, unique across OX: held by every context change.
    ContextNames,
}

/// Which OX-unique names a [`ScopeKey::Name`] is among.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NameSpace {
    /// A user's login name.
    Login,
    /// A user's display name.
    DisplayName,
    /// A mail address: a user's primary address or alias, a resource's address.
    Mail,
    GroupName,
    ResourceName,
}

impl ScopeKey {
    /// The message's own object at `dn`.
    pub fn dn(dn: &str) -> Self {
        Self::Dn(dn.to_lowercase().into())
    }

    /// A shared part of the object at `dn`.
    pub fn shared_dn(dn: &str) -> Self {
        Self::SharedDn(dn.to_lowercase().into())
    }

    /// The object at `dn`, read.
    pub fn reads_dn(dn: &str) -> Self {
        Self::ReadsDn(dn.to_lowercase().into())
    }

    /// The name `value` among `space`.
    pub fn name(space: NameSpace, value: &str) -> Self {
        Self::Name(space, value.to_lowercase().into())
    }

    /// The OX group of the group at `dn` in `context`.
    pub fn group_in_context(dn: &str, context: i32) -> Self {
        Self::GroupInContext(dn.to_lowercase().into(), context)
    }

    /// The object this key says the message changes (whose later readers inherit the scope of
    /// the change), if any.
    pub fn changed_object(&self) -> Option<ObjectRef<'_>> {
        match self {
            Self::Object(uuid) => Some(ObjectRef::Uuid(uuid)),
            Self::Dn(dn) | Self::SharedDn(dn) => Some(ObjectRef::Dn(dn)),
            Self::ReadsDn(_)
            | Self::Context(_)
            | Self::InContext(_)
            | Self::Name(..)
            | Self::GroupInContext(..)
            | Self::ContextNames => None,
        }
    }

    /// The object whose state this key says the message's scope was computed from, if any.
    pub fn read_object(&self) -> Option<ObjectRef<'_>> {
        match self {
            Self::Object(uuid) => Some(ObjectRef::Uuid(uuid)),
            Self::Dn(dn) | Self::ReadsDn(dn) => Some(ObjectRef::Dn(dn)),
            Self::SharedDn(_)
            | Self::Context(_)
            | Self::InContext(_)
            | Self::Name(..)
            | Self::GroupInContext(..)
            | Self::ContextNames => None,
        }
    }
}

/// An object named by a [`ScopeKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRef<'a> {
    Uuid(&'a str),
    Dn(&'a str),
}

/// What applying a message reads or changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Anything: applied alone, after everything before it and before everything after it.
    Everything,
    /// Only these: applied at the same time as messages whose keys are all different.
    Keys(BTreeSet<ScopeKey>),
}

impl Scope {
    /// Whether two messages with these scopes must be applied one after the other.
    pub fn overlaps(&self, other: &Scope) -> bool {
        match (self, other) {
            (Self::Keys(a), Self::Keys(b)) => {
                let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
                small.iter().any(|key| match key {
                    ScopeKey::Dn(dn) => {
                        large.contains(key)
                            || large.contains(&ScopeKey::SharedDn(dn.clone()))
                            || large.contains(&ScopeKey::ReadsDn(dn.clone()))
                    }
                    // Shared parts and reads exclude only the object's own changes.
                    ScopeKey::SharedDn(dn) | ScopeKey::ReadsDn(dn) => {
                        large.contains(&ScopeKey::Dn(dn.clone()))
                    }
                    ScopeKey::Context(id) => {
                        large.contains(key) || large.contains(&ScopeKey::InContext(*id))
                    }
                    // Things in a context exclude only the context's own changes.
                    ScopeKey::InContext(id) => large.contains(&ScopeKey::Context(*id)),
                    _ => large.contains(key),
                })
            }
            _ => true,
        }
    }
}

/// Applies provisioning messages to a target system, in order.
pub trait Applier: Send + Sync + 'static {
    fn apply(
        &self,
        message: &ProvisioningMessage,
    ) -> impl Future<Output = Result<Outcome, ApplyError>> + Send;

    /// What applying `message` would touch, given that every message before it was applied
    /// (earlier messages still in flight are accounted for by the queue: a message inherits
    /// the scope of each earlier one that names the same object). When unsure, say
    /// [`Scope::Everything`].
    fn scope(&self, _message: &ProvisioningMessage) -> impl Future<Output = Scope> + Send {
        std::future::ready(Scope::Everything)
    }
}
