//! Pieces the kinds' ordering keys ([`super::kind_parts::Kind::keys`]) share: the contexts an
//! object is in and goes to, and OX-unique names as keys. Below the kinds' files, apart from
//! [`super::scope`] (which asks the registry of kinds), so that no kind imports the registry.

use std::collections::BTreeSet;

use crate::apply::{NameSpace, ScopeKey};

use super::state::ObjectState;
use super::udm::{self, Properties};

/// The contexts of a user or resource as parts: where it is (by the state store) and where it
/// goes (its `oxContext`, else `default`: a resource without one goes to the default context).
pub fn contexts_of(
    previous: Option<&ObjectState>,
    new: Option<&Properties>,
    default: Option<i32>,
) -> BTreeSet<i32> {
    let before = previous.and_then(|s| s.ox.context);
    let after = new.and_then(|o| {
        udm::integer(o, "oxContext")
            .and_then(|c| i32::try_from(c).ok())
            .or(default)
    });
    [before, after].into_iter().flatten().collect()
}

/// `values` among `space`, as keys (empty values name nothing).
pub fn names<I, S>(space: NameSpace, values: I) -> impl Iterator<Item = ScopeKey>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    values
        .into_iter()
        .filter(|v| !v.as_ref().trim().is_empty())
        .map(move |v| ScopeKey::name(space, v.as_ref()))
}
