//! OX groups (`groups/group` with `isOxGroup`), with the context admin's credentials.
//!
//! A UDM group becomes one OX group **per context of its members**: its `users` (DNs) are
//! resolved to OX user ids through the state store (never by asking OX), bucketed by the
//! members' contexts, and in each context the OX group gets the full member list. A context
//! whose bucket is empty has no OX group (it is deleted there: OX groups are never empty). The
//! OX name and display name come from the UDM property named by `OX_GROUP_IDENTIFIER`
//! (default `name`); a rename changes the OX group in place (same id). OX's own group `users`
//! is never touched. `isOxGroup` switched off, or the group deleted: its OX groups are deleted.
//!
//! Members that are not known yet (a group that arrives before its users) are left out; when
//! such a user is created or moves, its groups are applied again ([`reapply_groups_of`]), so
//! membership converges.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::apply::{NameSpace, Outcome, Scope, ScopeKey};
use crate::message::ProvisioningMessage;
use crate::ox::soap::{Group, OxError};

use super::compare::{
    by_id_and_name, Compare, Drift, InContext, InContextCompare, Known, Placement,
};
use super::keys::names;
use super::kind_parts::{BatchRank, Kind};
use super::state::{ObjectState, OxIds, OxRef, StateError};
use super::udm::{self, Properties};
use super::{deleted, ProvisionError, Provisioner};

pub const TOPIC: &str = super::topic::GROUP;

/// The `groups/group` kind.
pub static KIND: Kind = Kind {
    topic: TOPIC,
    wanted_by_ox: true,
    rank: BatchRank::both(30),
    docs: "docs/ox/group.md",
    keys: |p, message, previous| Box::pin(keys(p, message, previous)),
    apply: |p, message, previous| Box::pin(apply(p, message, previous)),
    compare: Some(Compare::InContext(InContextCompare {
        placement: Placement::PerContext,
        compare: |at, known| Box::pin(compare(at, known)),
        // The remembered members let an unchanged group skip OX; a repair must send them.
        before_repair: Some(|state| {
            state
                .ox
                .per_context
                .values_mut()
                .for_each(|r| r.members.clear())
        }),
    })),
};

/// What a group change touches besides the group itself (see [`super::scope`]): its old and
/// new name, its old and new members (read), and the contexts of its OX groups and members.
async fn keys(
    p: &Provisioner,
    message: &ProvisioningMessage,
    previous: Option<&ObjectState>,
) -> Result<Scope, StateError> {
    let new = message.body.new.as_ref();
    let old = previous.map(|s| &s.object);
    let mut keys: BTreeSet<ScopeKey> = previous
        .into_iter()
        .flat_map(|s| s.ox.per_context.keys())
        .map(|c| ScopeKey::InContext(*c))
        .collect();
    let group_names = [new, old]
        .into_iter()
        .flatten()
        .filter_map(|o| group_name(p, &message.object_id, o));
    keys.extend(names(NameSpace::GroupName, group_names));
    let old_names = previous.into_iter().flat_map(|s| s.ox.per_context.values());
    keys.extend(names(NameSpace::GroupName, old_names.map(|r| &r.name)));
    let members: Vec<String> = [new, old]
        .into_iter()
        .flatten()
        .flat_map(|o| udm::texts(o, "users"))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let states = p.state.get_many_by_dn(&members).await?;
    for (dn, state) in members.iter().zip(states) {
        keys.insert(ScopeKey::reads_dn(dn));
        if let Some(context) = state.and_then(|(_, s)| s.ox.context) {
            keys.insert(ScopeKey::InContext(context));
        }
    }
    Ok(Scope::Keys(keys))
}

pub async fn apply(
    p: &Provisioner,
    message: &ProvisioningMessage,
    previous: Option<ObjectState>,
) -> Result<Outcome, ProvisionError> {
    let after = sync(
        p,
        &message.object_id,
        message.body.new.as_ref(),
        previous,
        None,
    )
    .await?;
    match (&message.body.new, after) {
        (Some(object), ox) => {
            let state = Provisioner::applied_state(message, object.clone(), ox);
            p.state.put(&message.object_id, &state).await?;
        }
        (None, _) => p.state.remove(&message.object_id).await?,
    }
    Ok(Outcome::Applied)
}

/// Applies the group `object` (or its absence) given what was applied before, in the contexts
/// `only` (all if `None`; the OX groups of other contexts stay as they are); returns its OX
/// groups per context.
async fn sync(
    p: &Provisioner,
    entry_uuid: &str,
    object: Option<&Properties>,
    previous: Option<ObjectState>,
    only: Option<&BTreeSet<i32>>,
) -> Result<OxIds, ProvisionError> {
    let before = previous.map(|s| s.ox.per_context).unwrap_or_default();
    let in_scope = |context: &i32| only.is_none_or(|only| only.contains(context));
    let name = object.and_then(|o| group_name(p, entry_uuid, o));
    let wanted = match (object, &name) {
        (Some(object), Some(name))
            if udm::flag(object, "isOxGroup") && !name.eq_ignore_ascii_case("users") =>
        {
            members_by_context(p, object).await?
        }
        _ => BTreeMap::new(),
    };
    let mut after: BTreeMap<i32, OxRef> = before
        .iter()
        .filter(|(context, _)| !in_scope(context))
        .map(|(context, group)| (*context, group.clone()))
        .collect();
    let wanted = wanted.into_iter().filter(|(context, _)| in_scope(context));
    for (context, mut members) in wanted {
        let name = name.clone().unwrap_or_default();
        members.sort_unstable();
        if let Some(known) = before.get(&context) {
            if known.name == name && !known.members.is_empty() && known.members == members {
                // OX has this group as it should be: nothing to send.
                after.insert(context, known.clone());
                continue;
            }
        }
        let auth = p.context_admin(context)?;
        let mut group = Group {
            name: Some(name.clone()),
            displayname: Some(name.clone()),
            members: members.clone(),
            ..Group::default()
        };
        let id = match before.get(&context) {
            Some(known) => {
                group.id = Some(known.id);
                match p.ox.change_group(context, &group, &auth).await {
                    Ok(()) => known.id,
                    Err(e) if e.is_not_found() => create(p, context, &group, &auth).await?,
                    Err(e) => return Err(e.into()),
                }
            }
            None => create(p, context, &group, &auth).await?,
        };
        after.insert(context, OxRef { id, name, members });
    }
    for (context, gone) in before
        .iter()
        .filter(|(c, _)| in_scope(c) && !after.contains_key(*c))
    {
        delete_ox_group(p, *context, gone.id).await?;
    }
    Ok(OxIds {
        per_context: after,
        ..OxIds::default()
    })
}

/// Creates the group, or adopts and changes a group of that name.
async fn create(
    p: &Provisioner,
    context: i32,
    group: &Group,
    auth: &crate::ox::soap::Credentials,
) -> Result<i32, ProvisionError> {
    match p.ox.create_group(context, group, auth).await {
        Ok(created) => created.id.ok_or_else(|| {
            ProvisionError::Invalid("OX created the group but returned no id".into())
        }),
        Err(e) if e.is_conflict() => {
            let name = group.name.clone().unwrap_or_default();
            let existing =
                p.ox.get_group(context, &Group::with_name(name), auth)
                    .await?;
            let id = existing
                .id
                .ok_or_else(|| ProvisionError::Invalid("OX returned a group without id".into()))?;
            let mut change = group.clone();
            change.id = Some(id);
            p.ox.change_group(context, &change, auth).await?;
            Ok(id)
        }
        Err(e) => Err(e.into()),
    }
}

fn group_name(p: &Provisioner, entry_uuid: &str, object: &Properties) -> Option<String> {
    let identifier = &p.settings.group_identifier;
    if identifier.eq_ignore_ascii_case("entryUUID") {
        Some(entry_uuid.to_owned())
    } else {
        udm::text(object, identifier)
    }
}

/// The OX user ids of the group's members, by context.
async fn members_by_context(
    p: &Provisioner,
    object: &Properties,
) -> Result<BTreeMap<i32, Vec<i32>>, ProvisionError> {
    let dns = udm::texts(object, "users");
    let members = p.state.get_many_by_dn(&dns).await?;
    let mut buckets: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (dn, member) in dns.iter().zip(members) {
        match member {
            Some((_, member)) if member.object_type == super::topic::USER => {
                if let (Some(context), Some(user)) = (member.ox.context, member.ox.object) {
                    let ids = buckets.entry(context).or_default();
                    if !ids.contains(&user.id) {
                        ids.push(user.id);
                    }
                }
            }
            _ => tracing::debug!(member = %dn, "Group member is not a known OX user (yet)."),
        }
    }
    Ok(buckets)
}

/// Applies the groups listed in a user's `groups` again in `contexts` (where the user appeared
/// or left), after the user was created or moved.
///
/// Users of different contexts may do this for the same group at the same time (their
/// messages share the group, see [`super::scope`]): each changes only its contexts' part of the
/// group's state, written back only if nobody else wrote it meanwhile, else read and done again.
pub async fn reapply_groups_of(
    p: &Provisioner,
    user: &Properties,
    contexts: &BTreeSet<i32>,
) -> Result<(), ProvisionError> {
    for dn in udm::texts(user, "groups") {
        let Some(uuid) = p.state.entry_uuid_of(&dn).await? else {
            continue;
        };
        let uuid = uuid.as_str();
        update_group(p, uuid, |state| async move {
            let object = state.object.clone();
            let ox = sync(p, uuid, Some(&object), Some(state.clone()), Some(contexts)).await?;
            Ok(ObjectState { ox, ..state })
        })
        .await?;
    }
    Ok(())
}

/// After the OX user `user_id` was deleted in `context`: OX has taken it out of its groups, so
/// each of the user's UDM groups (`groups`, DNs) forgets it among its members there, and the OX
/// group it leaves empty is deleted (OX groups are never empty).
///
/// The state store remembers each OX group's members as last applied, so OX is not asked for
/// the user's groups and their members (the original connector's two look-ups per group). A
/// group remembered without members (from before they were remembered) is looked up in OX.
pub async fn member_deleted(
    p: &Provisioner,
    groups: &BTreeSet<String>,
    context: i32,
    user_id: i32,
) -> Result<(), ProvisionError> {
    for dn in groups {
        let Some(uuid) = p.state.entry_uuid_of(dn).await? else {
            continue;
        };
        update_group(p, &uuid, |mut state| async move {
            let Some(group) = state.ox.per_context.get_mut(&context) else {
                return Ok(state);
            };
            let remaining = if group.members.is_empty() {
                members_in_ox(p, context, group.id).await?
            } else {
                group.members.retain(|m| *m != user_id);
                Some(group.members.clone())
            };
            match remaining {
                Some(members) if !members.is_empty() => {}
                Some(_) => {
                    delete_ox_group(p, context, group.id).await?;
                    state.ox.per_context.remove(&context);
                }
                // Removed in OX by hand.
                None => {
                    state.ox.per_context.remove(&context);
                }
            }
            Ok(state)
        })
        .await?;
    }
    Ok(())
}

/// Deletes OX group `id` in `context` (gone already counts as deleted).
async fn delete_ox_group(p: &Provisioner, context: i32, id: i32) -> Result<(), ProvisionError> {
    let auth = p.context_admin(context)?;
    deleted(p.ox.delete_group(context, &Group::with_id(id), &auth).await)
}

/// The members of OX group `id` in `context` as OX has them; `None` if it is gone.
async fn members_in_ox(
    p: &Provisioner,
    context: i32,
    id: i32,
) -> Result<Option<Vec<i32>>, ProvisionError> {
    let auth = p.context_admin(context)?;
    match p.ox.get_group(context, &Group::with_id(id), &auth).await {
        Ok(group) => Ok(Some(group.members)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads the group `uuid`, changes it with `change` and writes it back if it changed, reading
/// and changing it again if another change wrote it in between.
async fn update_group<F, Fut>(p: &Provisioner, uuid: &str, change: F) -> Result<(), ProvisionError>
where
    F: Fn(ObjectState) -> Fut,
    Fut: std::future::Future<Output = Result<ObjectState, ProvisionError>>,
{
    loop {
        let Some((state, revision)) = p.state.get_versioned(uuid).await? else {
            return Ok(());
        };
        if state.object_type != TOPIC {
            return Ok(());
        }
        let changed = change(state.clone()).await?;
        if changed == state
            || p.state
                .replace_if_unchanged(uuid, &changed, revision)
                .await?
        {
            return Ok(());
        }
    }
}

/// Reconcile: the context's groups (`list`, except OX's own `users`) against the remembered
/// ones, by id and name; their members as applying would set them.
async fn compare(at: &InContext<'_>, known: &[Known<'_>]) -> Result<Vec<Drift>, OxError> {
    let (p, c) = (at.p, at.c);
    let ox_groups: Vec<Group> = if at.exists {
        p.ox.list_groups(c, "*", &at.auth).await?
    } else {
        Vec::new()
    };
    let ox_groups: Vec<(i32, String, Group)> = ox_groups
        .into_iter()
        .filter_map(|g| Some((g.id?, g.name.clone()?, g)))
        .filter(|(_, name, _)| !name.eq_ignore_ascii_case("users"))
        .collect();
    let phase = format!("groups in context {c}");
    at.progress.report(&phase, 0, known.len());
    let mut member_ids: HashMap<&str, Vec<i32>> = HashMap::new();
    for k in known {
        // As applying the group computes them. Should the state store fail, no member is known
        // and the group is reported as differing rather than the whole run failing.
        let mut by_context = members_by_context(p, &k.state.object)
            .await
            .unwrap_or_default();
        member_ids.insert(k.uuid, by_context.remove(&c).unwrap_or_default());
        at.progress.report(&phase, member_ids.len(), known.len());
    }
    Ok(by_id_and_name(c, "group", known, &ox_groups, |k, ox| {
        let mut want = member_ids.get(k.uuid).cloned().unwrap_or_default();
        let mut have = ox.members.clone();
        want.sort_unstable();
        have.sort_unstable();
        (want != have).then(|| format!("members: OX {have:?}, UCS {want:?}"))
    }))
}
