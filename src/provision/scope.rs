//! What applying a message touches in OX ([`Scope`]), so that the queue applies changes that
//! share nothing at the same time (`docs/provisioning.md`, "Concurrency").
//!
//! Every message holds its object (entry UUID, DN, old DN). Besides:
//! - a user or resource holds its OX context before and after the change (a move holds
//!   both); a user also holds its part of each group it is or was in
//!   ([`ScopeKey::SharedDn`]): creating or moving it re-applies those groups in its contexts;
//! - a group holds itself, reads its old and new members ([`ScopeKey::ReadsDn`]) and holds the
//!   contexts of its OX groups and of its members;
//! - a context holds itself (its id before and after: a deletion takes everything in the
//!   context along) and the names of all contexts ([`ScopeKey::ContextNames`]: they are unique
//!   across OX), so context changes are applied one after the other, and side by side with
//!   changes of other contexts;
//! - access profiles (re-applied to users everywhere) and functional accounts (rebuilt in every
//!   context of their members) hold everything: applied alone.

use std::collections::BTreeSet;

use crate::apply::{Scope, ScopeKey};
use crate::message::ProvisioningMessage;

use super::state::{ObjectState, StateError};
use super::udm::{self, Properties};
use super::{context, group, resource, user, Provisioner};

/// The scope of `message`, from the state store as it is now.
pub async fn of(p: &Provisioner, message: &ProvisioningMessage) -> Result<Scope, StateError> {
    let topic = message.topic.as_str();
    if [
        super::access_profile::TOPIC,
        super::functional_account::TOPIC,
    ]
    .contains(&topic)
    {
        return Ok(Scope::Everything);
    }
    let previous = p.state.get(&message.object_id).await?;
    let mut keys = BTreeSet::from([
        ScopeKey::Object(message.object_id.as_str().into()),
        ScopeKey::dn(&message.dn),
    ]);
    if let Some(previous) = &previous {
        keys.insert(ScopeKey::dn(&previous.dn));
    }
    let new = message.body.new.as_ref();
    let old = previous.as_ref().map(|s| &s.object);
    match topic {
        user::TOPIC => {
            keys.extend(contexts_of(previous.as_ref(), new, None));
            for dn in [new, old]
                .into_iter()
                .flatten()
                .flat_map(|o| udm::texts(o, "groups"))
            {
                keys.insert(ScopeKey::shared_dn(&dn));
            }
        }
        context::TOPIC => {
            keys.insert(ScopeKey::ContextNames);
            let ids = [
                previous.as_ref().and_then(|s| s.ox.context),
                new.and_then(context::context_id),
            ];
            keys.extend(ids.into_iter().flatten().map(ScopeKey::Context));
        }
        resource::TOPIC => {
            let default = Some(p.settings.default_context);
            keys.extend(contexts_of(previous.as_ref(), new, default));
        }
        group::TOPIC => {
            if let Some(previous) = &previous {
                keys.extend(
                    previous
                        .ox
                        .per_context
                        .keys()
                        .map(|c| ScopeKey::Context(*c)),
                );
            }
            let members: BTreeSet<String> = [new, old]
                .into_iter()
                .flatten()
                .flat_map(|o| udm::texts(o, "users"))
                .collect();
            let states =
                futures::future::try_join_all(members.iter().map(|dn| p.state.get_by_dn(dn)))
                    .await?;
            for (dn, state) in members.iter().zip(states) {
                keys.insert(ScopeKey::reads_dn(dn));
                if let Some(context) = state.and_then(|(_, s)| s.ox.context) {
                    keys.insert(ScopeKey::Context(context));
                }
            }
        }
        // Not provisioned to OX: ignored, touches only itself.
        _ => {}
    }
    Ok(Scope::Keys(keys))
}

/// The contexts of a user or resource: where it is (by the state store) and where it goes
/// (its `oxContext`, else `default`: a resource without one goes to the default context).
fn contexts_of(
    previous: Option<&ObjectState>,
    new: Option<&Properties>,
    default: Option<i32>,
) -> Vec<ScopeKey> {
    let before = previous.and_then(|s| s.ox.context);
    let after = new.and_then(|o| {
        udm::integer(o, "oxContext")
            .and_then(|c| i32::try_from(c).ok())
            .or(default)
    });
    [before, after]
        .into_iter()
        .flatten()
        .map(ScopeKey::Context)
        .collect()
}
