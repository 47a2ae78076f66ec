//! OX contexts (`oxmail/oxcontext`), with the master admin's credentials.
//!
//! | UDM | OX `Context` |
//! |---|---|
//! | `contextid` | `id` |
//! | `name` | `name` |
//! | `oxQuota` (MB) | `maxQuota`; empty → `-1` (unlimited) |
//!
//! Create: `create` with `loginMappings = ["context<id>", "<id>"]` and a context admin
//! (`oxadmin` for `DEFAULT_CONTEXT`, else `oxadmin-context<id>`) with a random password, which
//! goes to the credentials file; an existing context is adopted and changed instead. Change:
//! `change` of name and quota (never `enabled`: a context an OX admin disabled stays disabled).
//! Delete: `delete` (OX removes everything in the context) and its credentials are dropped.

use std::collections::{BTreeMap, HashSet};

use crate::apply::{Outcome, Scope, ScopeKey};
use crate::message::ProvisioningMessage;
use crate::ox::soap::{Context, User};

use super::compare::{field_diff, joined, Compare, ContextsCompared, Drift, DriftKind, Run};
use super::credentials::AdminLogin;
use super::kind_parts::{BatchRank, Kind};
use super::state::{ObjectState, OxIds};
use super::udm::{self, Properties};
use super::{deleted, random_password, ProvisionError, Provisioner};

pub const TOPIC: &str = super::topic::CONTEXT;

/// The `oxmail/oxcontext` kind.
pub static KIND: Kind = Kind {
    topic: TOPIC,
    wanted_by_ox: true,
    rank: BatchRank {
        change: 0,
        // After everything that might still move out of the context.
        delete: 200,
    },
    docs: "docs/ox/context.md",
    keys: |_, message, previous| Box::pin(std::future::ready(Ok(keys(message, previous)))),
    apply: |p, message, previous| Box::pin(apply(p, message, previous)),
    compare: Some(Compare::Contexts(|run| Box::pin(compare(run)))),
};

pub async fn apply(
    p: &Provisioner,
    message: &ProvisioningMessage,
    previous: Option<ObjectState>,
) -> Result<Outcome, ProvisionError> {
    match &message.body.new {
        None => delete(p, message, previous).await,
        Some(object) => upsert(p, message, object, previous).await,
    }
}

/// What a context change touches besides the context object itself (see [`super::scope`]):
/// the context before and after (a deletion takes everything in it along) and the names of all
/// contexts (unique across OX).
fn keys(message: &ProvisioningMessage, previous: Option<&ObjectState>) -> Scope {
    let ids = [
        previous.and_then(|s| s.ox.context),
        message.body.new.as_ref().and_then(context_id),
    ];
    let keys = ids
        .into_iter()
        .flatten()
        .map(ScopeKey::Context)
        .chain([ScopeKey::ContextNames])
        .collect();
    Scope::Keys(keys)
}

/// The context id of a context object.
pub fn context_id(object: &Properties) -> Option<i32> {
    udm::integer(object, "contextid").and_then(|id| i32::try_from(id).ok())
}

fn wanted(object: &Properties, id: i32) -> Context {
    let quota = udm::integer(object, "oxQuota").unwrap_or(-1);
    Context {
        id: Some(id),
        name: Some(udm::text(object, "name").unwrap_or_else(|| format!("context{id}"))),
        max_quota: Some(quota),
        ..Context::default()
    }
}

async fn upsert(
    p: &Provisioner,
    message: &ProvisioningMessage,
    object: &Properties,
    previous: Option<ObjectState>,
) -> Result<Outcome, ProvisionError> {
    let id = context_id(object).ok_or_else(|| {
        ProvisionError::Invalid(format!("context {} has no valid contextid", message.dn))
    })?;
    let ctx = wanted(object, id);
    let known = previous.as_ref().and_then(|s| s.ox.context) == Some(id);
    if known {
        match p.ox.change_context(&ctx).await {
            Ok(()) => {}
            // Deleted in OX behind our back: create it again.
            Err(e) if e.is_not_found() => create(p, &ctx, id).await?,
            Err(e) => return Err(e.into()),
        }
    } else {
        create(p, &ctx, id).await?;
    }
    let ox = OxIds {
        context: Some(id),
        ..OxIds::default()
    };
    p.state
        .put(
            &message.object_id,
            &Provisioner::applied_state(message, object.clone(), ox),
        )
        .await?;
    Ok(Outcome::Applied)
}

/// Creates the context with its admin, or adopts and changes an existing one.
///
/// The admin's credentials are stored **before** the context is created: if the daemon dies
/// after OX created the context but before the credentials were written, the context's admin
/// would otherwise be lost for good (the retry finds the context existing and cannot know its
/// password), and every object of the context would wait forever. A retry therefore reuses
/// stored credentials. Credentials made for this attempt are dropped again if the context
/// turns out to exist already (made in OX directly: its admin is not known).
pub async fn create(p: &Provisioner, ctx: &Context, id: i32) -> Result<(), ProvisionError> {
    let key = id.to_string();
    let (login, made_now) = match p.credentials.get(&key)? {
        // An earlier attempt (or an admin) stored them.
        Some(login) => (login, false),
        None => {
            let login = AdminLogin {
                adminuser: if id == p.settings.default_context {
                    "oxadmin".to_owned()
                } else {
                    format!("oxadmin-context{id}")
                },
                adminpass: random_password(64),
            };
            p.credentials.set(&key, login.clone()).await?;
            (login, true)
        }
    };
    let mail = format!("{}@{}", login.adminuser, p.settings.domainname);
    let admin = User {
        name: Some(login.adminuser.clone()),
        password: Some(login.adminpass.clone()),
        display_name: Some("OX Admin".into()),
        given_name: Some("OX".into()),
        sur_name: Some("Admin".into()),
        primary_email: Some(mail.clone()),
        email1: Some(mail),
        timezone: Some(p.settings.timezone.clone()),
        language: Some(p.settings.language.clone()),
        ..User::default()
    };
    let mut new_ctx = ctx.clone();
    new_ctx.login_mappings = vec![format!("context{id}"), id.to_string()];
    match p.ox.create_context(&new_ctx, &admin).await {
        Ok(_) => {
            tracing::info!(context = id, "Created OX context and its admin.");
            Ok(())
        }
        Err(e) if e.is_conflict() => {
            p.ox.change_context(ctx).await?;
            if made_now {
                p.credentials.remove(&key).await?;
                tracing::warn!(
                    context = id,
                    file = %p.settings.credentials_file.display(),
                    "OX context exists already and was adopted, but its admin credentials are unknown; add them to the credentials file so that its users can be provisioned."
                );
            }
            Ok(())
        }
        // The credentials stay for the retry.
        Err(e) => Err(e.into()),
    }
}

/// Applies a creation of context `id` that is queued *behind* the current message, so that an
/// object of that context does not wait for it forever. This happens when the converter names a
/// context after its last change (created, then modified) and that file lands in a later batch
/// than its first user. Returns whether such a message was found and applied; it is applied
/// again, without effect, when its own turn comes.
pub async fn pull_forward(p: &Provisioner, id: i32) -> Result<bool, ProvisionError> {
    let Some(queue) = &p.queued else {
        return Ok(false);
    };
    let mut from = 1;
    while let Some((sequence, message)) = queue.next_of_topic(TOPIC, from).await {
        from = sequence + 1;
        let Some(object) = message
            .body
            .new
            .as_ref()
            .filter(|o| context_id(o) == Some(id))
        else {
            continue;
        };
        tracing::info!(
            context = id,
            file = message.source_file().unwrap_or("-"),
            "Applying a queued context change first: an object of that context waits for it."
        );
        let previous = p.state.get(&message.object_id).await?;
        upsert(p, &message, object, previous).await?;
        return Ok(true);
    }
    // No (further) queued context change.
    Ok(false)
}

async fn delete(
    p: &Provisioner,
    message: &ProvisioningMessage,
    previous: Option<ObjectState>,
) -> Result<Outcome, ProvisionError> {
    let Some(id) = previous.as_ref().and_then(|s| s.ox.context) else {
        return Ok(Outcome::Ignored(
            "delete of a context that was never provisioned".into(),
        ));
    };
    deleted(p.ox.delete_context(&Context::with_id(id)).await)?;
    p.credentials.remove(&id.to_string()).await?;
    forget_content(p, id).await?;
    p.state.remove(&message.object_id).await?;
    Ok(Outcome::Applied)
}

/// OX deleted everything in the context; the state store forgets it too, so that later
/// changes of those objects start afresh instead of addressing OX ids that are gone. The store
/// does this when it reads a state ([`super::state::StateStore::forget_context`]): one write,
/// however many objects the store holds.
async fn forget_content(p: &Provisioner, id: i32) -> Result<(), ProvisionError> {
    p.state.forget_context(id).await?;
    Ok(())
}

/// Reconcile: the remembered contexts against OX's (`list`), by id — name and quota; an OX
/// context no `oxmail/oxcontext` object made is unknown.
async fn compare(run: &Run<'_>) -> Result<ContextsCompared, crate::ox::soap::OxError> {
    let in_ox: BTreeMap<i32, Context> = run
        .p
        .ox
        .list_contexts("*")
        .await?
        .into_iter()
        .filter_map(|c| Some((c.id?, c)))
        .filter(|(id, _)| run.wants(*id))
        .collect();
    let mut found = ContextsCompared {
        drift: Vec::new(),
        compared: 0,
        in_ox: in_ox.keys().copied().collect(),
    };
    let mut known = HashSet::new();
    for (uuid, state) in run
        .remembered
        .iter()
        .filter(|(_, s)| s.object_type == TOPIC)
    {
        let Some(id) = state.ox.context.filter(|c| run.wants(*c)) else {
            continue;
        };
        known.insert(id);
        found.compared += 1;
        let base = Drift::about(uuid, state, "context", Some(id), &format!("context{id}"));
        let Some(ox) = in_ox.get(&id) else {
            let detail = format!("OX has no context {id}");
            found.drift.push(base.kind(DriftKind::MissingInOx, detail));
            continue;
        };
        let want = wanted(&state.object, id);
        let name = want.name.unwrap_or_default();
        let quota = want.max_quota.unwrap_or(-1);
        let mut diffs = Vec::new();
        if ox.name.as_deref() != Some(name.as_str()) {
            diffs.push(field_diff("name", ox.name.as_deref(), &name));
        }
        if let Some(ox_quota) = ox.max_quota.filter(|q| *q != quota) {
            diffs.push(format!("maxQuota: OX {ox_quota}, UCS {quota}"));
        }
        if let Some(detail) = joined(diffs) {
            found
                .drift
                .push(base.named(&name).kind(DriftKind::Differs, detail));
        }
    }
    for (id, ox) in in_ox.iter().filter(|(id, _)| !known.contains(*id)) {
        found.drift.push(Drift::unknown(
            "context",
            Some(*id),
            ox.name.clone().unwrap_or_default(),
            Some(*id),
            "OX context not created through UCS (no oxmail/oxcontext object known)".into(),
        ));
    }
    Ok(found)
}
