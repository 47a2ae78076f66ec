//! What applying a message touches in OX ([`Scope`]), so that the queue applies changes that
//! share nothing at the same time (`docs/queue.md`, "Consuming, in order").
//!
//! The one place that decides the default: a message of a topic no [`super::kind`] knows, or
//! whose keys cannot be worked out (the state store cannot be read), touches everything and is
//! applied alone. Otherwise the message holds its object (entry UUID, DN, old DN), plus what its
//! kind says ([`super::kind_parts::Kind::keys`], next to each kind's provisioning code):
//! - a user holds the contexts it is in and goes to as a part ([`ScopeKey::InContext`]), every
//!   OX-unique name it holds or gives up (login, display name, primary address, aliases:
//!   [`ScopeKey::Name`]), its part of each of its groups ([`ScopeKey::SharedDn`]) and, when it
//!   is created, moved or deleted, each OX group of those groups in its contexts
//!   ([`ScopeKey::GroupInContext`]: it re-applies or empties them);
//! - a group holds its old and new name, reads its old and new members ([`ScopeKey::ReadsDn`])
//!   and holds a part of the contexts of its OX groups and of its members;
//! - a resource holds its contexts as a part and its old and new name and address;
//! - a context holds itself (its id before and after: a deletion takes everything in the
//!   context along) and the names of all contexts ([`ScopeKey::ContextNames`]: they are unique
//!   across OX), so context changes are applied one after the other, and side by side with
//!   changes of other contexts;
//! - access profiles (re-applied to users everywhere) and functional accounts (rebuilt in every
//!   context of their members) hold everything: applied alone.
//!
//! The helpers the kinds' `keys` share are in [`super::keys`], below the kinds (this module
//! asks the registry, which names the kinds).

use crate::apply::{Scope, ScopeKey};
use crate::message::ProvisioningMessage;

use super::state::StateError;
use super::{kind, Provisioner};

/// The scope of `message`, from the state store as it is now.
pub async fn of(p: &Provisioner, message: &ProvisioningMessage) -> Result<Scope, StateError> {
    let Some(kind) = kind::of_topic(&message.topic) else {
        return Ok(Scope::Everything);
    };
    let previous = p.state.get(&message.object_id).await?;
    let Scope::Keys(mut keys) = (kind.keys)(p, message, previous.as_ref()).await? else {
        return Ok(Scope::Everything);
    };
    keys.insert(ScopeKey::Object(message.object_id.as_str().into()));
    keys.insert(ScopeKey::dn(&message.dn));
    if let Some(previous) = &previous {
        keys.insert(ScopeKey::dn(&previous.dn));
    }
    Ok(Scope::Keys(keys))
}
