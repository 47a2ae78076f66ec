//! OX users (`users/user` with `isOxUser`), with the context admin's credentials.
//!
//! - An OX user is a UDM user with `isOxUser` (`OK`/`true`) and an `oxContext`; its OX name is
//!   the UDM property named by `OX_USER_IDENTIFIER` (default `username`; `entryUUID` for the
//!   entry UUID). Without `oxContext` the change is ignored (logged); an `oxContext` that is no
//!   context id (`abc`) is refused, so the change blocks with the reason; the context's admin is
//!   never created, changed or deleted.
//! - Create: `createByModuleAccess` (fields from [`super::user_mapping`], module rights of the
//!   access profile in `oxAccess`, language and time zone from the settings, a random password
//!   nobody knows — OX users log in through the mail system or SSO). A user that already exists
//!   in OX under that name is adopted and changed; a user of another entry UUID at the same DN is
//!   replaced (deleted, then created).
//! - Before anything is sent, the user's mail addresses are checked like OX checks them
//!   ([`super::user_mail`]): a user without a primary address or with one OX would refuse blocks,
//!   naming the DN, the UDM property and the value.
//! - Change: `change` with every mapped field (empty text clears), a rename when the OX name
//!   changed, the default sender address kept unless it was the old primary address or is no
//!   longer one of the user's addresses; `changeByModuleAccess` when `oxAccess` changed.
//! - Context change: `copyUser` into the new context (keeping the user's OX data), `change` there,
//!   then delete the user in the old context and delete the groups left empty there. Each step
//!   tolerates a retry after a crash: a user of that name in the new context is adopted, also
//!   when the old one is gone already (deleted by the attempt that crashed before the state
//!   store learnt of the move).
//! - Delete (also `isOxUser` switched off): `delete`, then the OX groups of the user's UDM
//!   groups that it leaves empty in that context are deleted (found in the state store, which
//!   remembers every OX group's members: OX itself drops a deleted user from its groups).
//! - After a create or a move the user's groups are applied again, so that a group that arrived
//!   before its member converges.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::apply::{NameSpace, Outcome, Scope, ScopeKey};
use crate::message::ProvisioningMessage;
use crate::ox::soap::{Credentials, OxError, User, UserModuleAccess};

use super::compare::{
    by_id_and_name, field_diff, joined, Compare, Drift, InContext, InContextCompare, Known,
    Placement,
};
use super::keys::{contexts_of, names};
use super::kind_parts::{BatchRank, Kind};
use super::rights::access_of;
use super::state::{ObjectState, OxIds, OxRef, StateError};
use super::udm::{self, Properties};
use super::user_mail::{self, aliases, default_sender};
use super::user_mapping::MailServers;
use super::{deleted, group, random_password, ProvisionError, Provisioner};

pub const TOPIC: &str = super::topic::USER;

/// The display name OX gets when UCS has none: UDM's own default, `"<firstname> <lastname>"`,
/// else the OX name. (Reconcile expects the same, so such users show no false drift.)
pub fn default_display_name(object: &Properties, name: &str) -> String {
    let composed = [
        udm::text(object, "firstname"),
        udm::text(object, "lastname"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    if composed.is_empty() {
        name.to_owned()
    } else {
        composed
    }
}

/// The user's OX context: `None` without `oxContext`; an error naming the value when it is
/// there but no OX context id (a whole number from 1 to 2147483647), so that the change blocks
/// with the reason instead of being dropped.
fn context_of(object: &Properties) -> Result<Option<i32>, ProvisionError> {
    let Some(raw) = udm::text(object, "oxContext").filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    match raw.trim().parse::<i32>() {
        Ok(context) if context > 0 => Ok(Some(context)),
        _ => Err(ProvisionError::Invalid(format!(
            "oxContext {raw:?} is not an OX context id (a whole number from 1 to 2147483647); \
             fix the user's OX context in UCS"
        ))),
    }
}

/// The `users/user` kind.
pub static KIND: Kind = Kind {
    topic: TOPIC,
    wanted_by_ox: true,
    rank: BatchRank::both(20),
    docs: "docs/ox/user.md",
    keys: |p, message, previous| Box::pin(keys(p, message, previous)),
    apply: |p, message, previous| Box::pin(apply(p, message, previous)),
    compare: Some(Compare::InContext(InContextCompare {
        placement: Placement::OneContext,
        compare: |at, known| Box::pin(compare(at, known)),
        before_repair: None,
    })),
};

/// What a user change touches besides the user itself (see [`super::scope`]).
async fn keys(
    p: &Provisioner,
    message: &ProvisioningMessage,
    previous: Option<&ObjectState>,
) -> Result<Scope, StateError> {
    let new = message.body.new.as_ref();
    let old = previous.map(|s| &s.object);
    let contexts = contexts_of(previous, new, None);
    let mut keys: BTreeSet<ScopeKey> = contexts.iter().map(|c| ScopeKey::InContext(*c)).collect();
    for object in [new, old].into_iter().flatten() {
        keys.extend(names_of(p, message, object));
    }
    let old_login = previous.and_then(|s| s.ox.object.as_ref()).map(|o| &o.name);
    keys.extend(names(NameSpace::Login, old_login));
    let groups = groups_of([new, old]);
    keys.extend(groups.iter().map(|dn| ScopeKey::shared_dn(dn)));
    // Only a create, a move and a delete re-apply or empty the user's OX groups.
    let stays = previous.is_some_and(|s| {
        s.groups_pending.is_empty()
            && s.ox.context.is_some()
            && s.ox.object.is_some()
            && new.is_some_and(|o| udm::flag(o, "isOxUser"))
            && contexts.len() == 1
    });
    if !stays {
        let groups: Vec<String> = groups.into_iter().collect();
        let states = p.state.get_many_by_dn(&groups).await?;
        for (dn, state) in groups.iter().zip(states) {
            // A group not known (yet) may be created before this change is applied.
            if state.is_none_or(|(_, s)| udm::flag(&s.object, "isOxGroup")) {
                keys.extend(contexts.iter().map(|c| ScopeKey::group_in_context(dn, *c)));
            }
        }
    }
    Ok(Scope::Keys(keys))
}

/// The OX-unique names the UDM user `object` has in OX: login, display name, primary address
/// and aliases (as [`build`] makes them).
fn names_of(p: &Provisioner, message: &ProvisioningMessage, object: &Properties) -> Vec<ScopeKey> {
    let Ok(login) = ox_name(p, message, object) else {
        // Cannot be applied either; its addresses still count.
        return names(NameSpace::Mail, aliases(object)).collect();
    };
    let built = build(p, object, &login, false).ok();
    let built = built.as_ref();
    names(NameSpace::Login, [&login])
        .chain(names(
            NameSpace::DisplayName,
            built.and_then(|u| u.display_name.as_ref()),
        ))
        .chain(names(
            NameSpace::Mail,
            built.and_then(|u| u.primary_email.as_ref()),
        ))
        .chain(names(NameSpace::Mail, aliases(object)))
        .collect()
}

/// Applies one `users/user` change: deletes the OX user of an object that is gone or no OX user
/// any more; otherwise checks the user's addresses, creates, changes or moves the OX user and
/// remembers it (see the module doc).
pub async fn apply(
    p: &Provisioner,
    message: &ProvisioningMessage,
    previous: Option<ObjectState>,
) -> Result<Outcome, ProvisionError> {
    let was_in_ox = previous
        .as_ref()
        .and_then(|s| Some((s.ox.context?, s.ox.object.clone()?)));
    let object = match &message.body.new {
        Some(object) if udm::flag(object, "isOxUser") => object,
        new => return leave_ox(p, message, previous.as_ref(), new.as_ref(), was_in_ox).await,
    };
    let Some(context) = context_of(object)? else {
        return Ok(Outcome::Ignored(
            "the user has no oxContext attribute".into(),
        ));
    };
    let name = ox_name(p, message, object)?;
    if p.context_admin_name(context).as_deref() == Some(name.as_str()) {
        return Ok(Outcome::Ignored(format!(
            "{name} is the admin of OX context {context}; the context admin is never changed"
        )));
    }
    user_mail::check(p, &message.dn, object)?;
    let target = Target {
        message,
        object,
        name,
        context,
        auth: p.context_admin_or_pull_forward(context).await?,
    };
    let previous_object = previous.as_ref().map(|s| &s.object);
    let old_context = was_in_ox.as_ref().map(|(old_context, _)| *old_context);
    let (id, moved) = put_in_ox(p, &target, was_in_ox, previous_object).await?;
    // A created or moved user's groups are applied again, in its old and its new context.
    let mut pending = previous.map(|s| s.groups_pending).unwrap_or_default();
    if moved {
        pending.extend(old_context.into_iter().chain([context]));
    }
    record(p, target, id, pending).await?;
    Ok(Outcome::Applied)
}

/// The OX user an apply puts in OX: the UDM `object` of `message` as OX user `name` in
/// `context`, with that context's admin credentials.
struct Target<'a> {
    message: &'a ProvisioningMessage,
    object: &'a Properties,
    name: String,
    context: i32,
    auth: Credentials,
}

/// Deletes the user in OX if it was there (the UDM object was deleted or is no OX user any
/// more) and remembers the object without OX ids, so that groups can tell it is no OX user.
async fn leave_ox(
    p: &Provisioner,
    message: &ProvisioningMessage,
    previous: Option<&ObjectState>,
    new: Option<&Properties>,
    was_in_ox: Option<(i32, OxRef)>,
) -> Result<Outcome, ProvisionError> {
    if let Some((context, user)) = &was_in_ox {
        let groups = groups_of([previous.map(|s| &s.object), new]);
        delete_in_ox(p, *context, user, &groups).await?;
    }
    match new {
        Some(object) => {
            let state = Provisioner::applied_state(message, object.clone(), OxIds::default());
            p.state.put(&message.object_id, &state).await?;
        }
        None => p.state.remove(&message.object_id).await?,
    }
    Ok(match was_in_ox {
        Some(_) => Outcome::Applied,
        None if new.is_some() => Outcome::Ignored("not an OX user".into()),
        None => Outcome::Ignored("delete of a user that was never an OX user".into()),
    })
}

/// Creates, changes or moves the OX user; returns its id and whether it was created or moved
/// (then its groups need applying again).
async fn put_in_ox(
    p: &Provisioner,
    t: &Target<'_>,
    was_in_ox: Option<(i32, OxRef)>,
    previous_object: Option<&Properties>,
) -> Result<(i32, bool), ProvisionError> {
    let (object, name, context, auth) = (t.object, t.name.as_str(), t.context, &t.auth);
    match was_in_ox {
        Some((old_context, old)) if old_context != context => {
            let from = (old_context, &old);
            let id = move_user(p, object, name, from, context, auth, previous_object).await?;
            Ok((id, true))
        }
        Some((_, old)) => {
            match change(p, object, name, context, old.id, auth, previous_object).await {
                Ok(()) => Ok((old.id, false)),
                // Removed in OX by hand: create it again.
                Err(ProvisionError::Ox(e)) if e.is_not_found() => Ok((
                    create(p, t.message, object, name, context, auth).await?,
                    true,
                )),
                Err(e) => Err(e),
            }
        }
        None => Ok((
            create(p, t.message, object, name, context, auth).await?,
            true,
        )),
    }
}

/// Writes the user's new state and applies again the groups of the contexts in `pending`.
async fn record(
    p: &Provisioner,
    t: Target<'_>,
    id: i32,
    pending: BTreeSet<i32>,
) -> Result<(), ProvisionError> {
    let ox = OxIds::in_context(t.context, id, t.name);
    let mut state = Provisioner::applied_state(t.message, t.object.clone(), ox);
    // The groups read the user's new state, so it is written first; what an earlier attempt
    // left pending is finished too.
    if !pending.is_empty() && !udm::texts(t.object, "groups").is_empty() {
        state.groups_pending = pending;
        p.state.put(&t.message.object_id, &state).await?;
        group::reapply_groups_of(p, t.object, &state.groups_pending).await?;
        state.groups_pending.clear();
    }
    p.state.put(&t.message.object_id, &state).await?;
    Ok(())
}

/// The OX name of a user.
fn ox_name(
    p: &Provisioner,
    message: &ProvisioningMessage,
    object: &Properties,
) -> Result<String, ProvisionError> {
    let identifier = &p.settings.user_identifier;
    if identifier.eq_ignore_ascii_case("entryUUID") {
        return Ok(message.object_id.clone());
    }
    udm::text(object, identifier).ok_or_else(|| {
        ProvisionError::Invalid(format!(
            "the user {} has no value in {identifier} (OX_USER_IDENTIFIER), which names the OX user",
            message.dn
        ))
    })
}

/// The OX `User` for `object`: mapped fields plus what the connector always sets.
fn build(
    p: &Provisioner,
    object: &Properties,
    name: &str,
    creating: bool,
) -> Result<User, ProvisionError> {
    let servers = MailServers {
        imap: p.settings.imap_server.clone(),
        smtp: p.settings.smtp_server.clone(),
    };
    let mut fields = p.mapping.map(object, &servers, !creating);
    let primary = udm::text(object, "mailPrimaryAddress");
    if fields.get("display_name").is_none_or(|v| v == "") {
        fields.insert(
            "display_name".into(),
            json!(default_display_name(object, name)),
        );
    }
    fields.insert("name".into(), json!(name));
    fields.insert("aliases".into(), json!(aliases(object)));
    fields.insert("contextadmin".into(), json!(false));
    fields.insert("gui_spam_filter_enabled".into(), json!(true));
    let access = udm::text(object, "oxAccess").unwrap_or_default();
    fields.insert("mailenabled".into(), json!(access != "none"));
    if let Some(primary) = &primary {
        let login = if p.settings.imap_login.contains("{}") {
            p.settings.imap_login.replace("{}", primary)
        } else {
            p.settings.imap_login.clone()
        };
        fields.insert("imapLogin".into(), json!(login));
    }
    if creating {
        fields.insert("password".into(), json!(random_password(32)));
        let language = super::user_mapping::ox_language(&p.settings.language)
            .map_err(ProvisionError::Invalid)?;
        fields.insert("language".into(), json!(language));
        fields.insert("timezone".into(), json!(p.settings.timezone));
        if let Some(primary) = &primary {
            fields.insert("defaultSenderAddress".into(), json!(primary));
        }
        // email1 (the primary address) is checked before: [`user_mail::check`].
        for mandatory in ["display_name", "given_name", "sur_name"] {
            if fields.get(mandatory).is_none_or(|v| v == "") {
                return Err(ProvisionError::Invalid(format!(
                    "OX needs {mandatory} for a new user, but the UDM object has no value for it"
                )));
            }
        }
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| ProvisionError::Invalid(format!("cannot build the OX user: {e}")))
}

/// The module rights of the user's access profile; `None` if the profile is unknown (then the
/// rights are left as they are, as the original does).
fn module_access(p: &Provisioner, object: &Properties) -> Option<UserModuleAccess> {
    let name = udm::text(object, "oxAccess").unwrap_or_else(|| "none".into());
    match p.profiles.get(&name) {
        Some(rights) => Some(access_of(&rights)),
        None => {
            tracing::warn!(profile = %name, "Cannot find access profile; leaving the user's access rights untouched.");
            None
        }
    }
}

async fn create(
    p: &Provisioner,
    message: &ProvisioningMessage,
    object: &Properties,
    name: &str,
    context: i32,
    auth: &Credentials,
) -> Result<i32, ProvisionError> {
    replace_other_object_at_dn(p, message).await?;
    create_or_adopt(p, object, name, context, auth).await
}

/// Creates the OX user `name` in `context`, or adopts and changes the user of that name that
/// exists there already.
async fn create_or_adopt(
    p: &Provisioner,
    object: &Properties,
    name: &str,
    context: i32,
    auth: &Credentials,
) -> Result<i32, ProvisionError> {
    let user = build(p, object, name, true)?;
    let access = module_access(p, object);
    let created = match &access {
        Some(access) => {
            p.ox.create_user_with_access(context, &user, access, auth)
                .await
        }
        None => p.ox.create_user(context, &user, auth).await,
    };
    match created {
        Ok(created) => created.id.ok_or_else(|| {
            ProvisionError::Invalid("OX created the user but returned no id".into())
        }),
        Err(e)
            if e.is_conflict()
                && p.ox
                    .user_exists(context, &User::with_name(name), auth)
                    .await? =>
        {
            // Made in OX directly, or provisioned before the state store knew it: adopt it.
            let existing = p.ox.get_user(context, &User::with_name(name), auth).await?;
            let id = existing
                .id
                .ok_or_else(|| ProvisionError::Invalid("OX returned a user without id".into()))?;
            tracing::info!(context, user = %name, id, "User exists in OX already; adopting it.");
            change(p, object, name, context, id, auth, None).await?;
            Ok(id)
        }
        Err(e) => Err(e.into()),
    }
}

/// A user object re-created in UDM (same DN, new entry UUID) whose delete never arrived:
/// the old OX user goes first, so the new one does not merge into it.
async fn replace_other_object_at_dn(
    p: &Provisioner,
    message: &ProvisioningMessage,
) -> Result<(), ProvisionError> {
    let Some((other_uuid, other)) = p.state.get_by_dn(&message.dn).await? else {
        return Ok(());
    };
    if other_uuid == message.object_id || other.object_type != TOPIC {
        return Ok(());
    }
    if let (Some(context), Some(user)) = (other.ox.context, &other.ox.object) {
        tracing::info!(dn = %message.dn, old_entry_uuid = %other_uuid, "The user was re-created in UDM; deleting the OX user of the old object first.");
        delete_in_ox(p, context, user, &groups_of([Some(&other.object)])).await?;
    }
    p.state.remove(&other_uuid).await?;
    Ok(())
}

async fn change(
    p: &Provisioner,
    object: &Properties,
    name: &str,
    context: i32,
    id: i32,
    auth: &Credentials,
    previous: Option<&Properties>,
) -> Result<(), ProvisionError> {
    let mut user = build(p, object, name, false)?;
    user.id = Some(id);
    user.default_sender_address = default_sender(p, object, context, id, auth, previous).await?;
    p.ox.change_user(context, &user, auth).await?;
    let access_changed =
        previous.is_none_or(|old| udm::text(old, "oxAccess") != udm::text(object, "oxAccess"));
    if access_changed {
        if let Some(access) = module_access(p, object) {
            p.ox.change_user_module_access(context, &User::with_id(id), &access, auth)
                .await?;
        }
    }
    Ok(())
}

/// Moves the user `from` its old context and OX user into `context`; returns its new id.
async fn move_user(
    p: &Provisioner,
    object: &Properties,
    name: &str,
    (old_context, old): (i32, &OxRef),
    context: i32,
    auth: &Credentials,
    previous: Option<&Properties>,
) -> Result<i32, ProvisionError> {
    let groups = groups_of([previous, Some(object)]);
    // copyUser keeps the user's OX data and rights; the change after it then only needs what
    // differs from the previous object. Copy first: the name is free in the new context in
    // all but rare cases, so asking OX beforehand would cost a round trip on every move.
    let (id, known) = match p
        .ox
        .copy_user(&User::with_id(old.id), old_context, context)
        .await
    {
        Ok(copy) => match copy.id {
            Some(id) => (id, previous),
            None => {
                let found =
                    p.ox.get_user(context, &User::with_name(&old.name), auth)
                        .await?;
                let id = found.id.ok_or_else(|| {
                    ProvisionError::Invalid("OX returned a user without id".into())
                })?;
                (id, previous)
            }
        },
        // The name is taken in the new context: that user becomes this one (with its own id).
        Err(e) if e.is_conflict() => {
            let existing = p.ox.get_user(context, &User::with_name(name), auth).await?;
            let id = existing
                .id
                .ok_or_else(|| ProvisionError::Invalid("OX returned a user without id".into()))?;
            (id, None)
        }
        // The old user is gone in OX: nothing to copy. Either it was removed there by hand, or
        // an earlier attempt at this move copied it and deleted the old user but stopped (a
        // crash) before the state was written; the copy it made is then adopted.
        Err(e) if e.is_not_found() => {
            (create_or_adopt(p, object, name, context, auth).await?, None)
        }
        Err(e) => return Err(e.into()),
    };
    change(p, object, name, context, id, auth, known).await?;
    delete_in_ox(p, old_context, old, &groups).await?;
    tracing::info!(user = %name, from = old_context, to = context, "Moved the user to another OX context.");
    Ok(id)
}

/// The UDM groups (DNs) of the versions of a user.
fn groups_of<'a>(versions: impl IntoIterator<Item = Option<&'a Properties>>) -> BTreeSet<String> {
    versions
        .into_iter()
        .flatten()
        .flat_map(|object| udm::texts(object, "groups"))
        .collect()
}

/// Deletes the OX user, then the OX groups it leaves empty in that context among `groups`
/// ([`group::member_deleted`]).
async fn delete_in_ox(
    p: &Provisioner,
    context: i32,
    user: &OxRef,
    groups: &BTreeSet<String>,
) -> Result<(), ProvisionError> {
    if p.context_admin_name(context).as_deref() == Some(user.name.as_str()) {
        tracing::warn!(context, user = %user.name, "Not deleting the admin of the OX context.");
        return Ok(());
    }
    let auth = p.context_admin(context)?;
    deleted(
        p.ox.delete_user(context, &User::with_id(user.id), &auth)
            .await,
    )?;
    group::member_deleted(p, groups, context, user.id).await
}

/// Users asked from OX per `getMultipleData` call when reconcile compares them.
const USERS_PER_CALL: usize = 100;
/// User fields reconcile compares (WSDL names); mail addresses case-insensitively.
const COMPARED_FIELDS: &[&str] = &[
    "display_name",
    "given_name",
    "sur_name",
    "primaryEmail",
    "email1",
];

/// Reconcile: the context's users (`listAll` + `getMultipleData`, except the context admin)
/// against the remembered ones, by id and name; the compared fields as applying would set them.
async fn compare(at: &InContext<'_>, known: &[Known<'_>]) -> Result<Vec<Drift>, OxError> {
    let (p, c) = (at.p, at.c);
    let mut ox_users = Vec::new();
    if at.exists {
        let phase = format!("users in context {c}");
        let ids = p.ox.list_all_users(c, &at.auth).await?;
        at.progress.report(&phase, 0, ids.len());
        for chunk in ids.chunks(USERS_PER_CALL) {
            ox_users.extend(p.ox.get_users(c, chunk, &at.auth).await?);
            at.progress.report(&phase, ox_users.len(), ids.len());
        }
    }
    let admin = p.context_admin_name(c);
    let ox_users: Vec<(i32, String, User)> = ox_users
        .into_iter()
        .filter_map(|u| Some((u.id?, u.name.clone()?, u)))
        .filter(|(_, name, _)| admin.as_deref() != Some(name.as_str()))
        .collect();
    let servers = MailServers {
        imap: p.settings.imap_server.clone(),
        smtp: p.settings.smtp_server.clone(),
    };
    Ok(by_id_and_name(c, "user", known, &ox_users, |k, ox| {
        differences(p, &k.state.object, ox, &servers)
    }))
}

/// How the OX user `ox` differs from what applying `object` would give it.
fn differences(
    p: &Provisioner,
    object: &Properties,
    ox: &User,
    servers: &MailServers,
) -> Option<String> {
    let mut wanted = p.mapping.map(object, servers, true);
    if wanted.get("display_name").is_none_or(|v| v == "") {
        // Applying gives such a user UDM's default display name; expect the same.
        let name = ox.name.clone().unwrap_or_default();
        let default = default_display_name(object, &name);
        wanted.insert("display_name".into(), Value::String(default));
    }
    let have = serde_json::to_value(ox).unwrap_or(Value::Null);
    let text = |v: Option<&Value>| -> String {
        match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    };
    let diffs = COMPARED_FIELDS
        .iter()
        .filter(|field| wanted.contains_key(**field))
        .filter_map(|field| {
            let want = text(wanted.get(*field));
            let got = text(have.get(*field));
            let same = if field.contains("mail") || field.starts_with("email") {
                want.eq_ignore_ascii_case(&got)
            } else {
                want == got
            };
            (!same).then(|| field_diff(field, Some(&got), &want))
        })
        .collect();
    joined(diffs)
}
