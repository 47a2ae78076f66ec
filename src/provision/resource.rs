//! OX resources (`oxresources/oxresources`), with the context admin's credentials.
//!
//! | UDM | OX `Resource` |
//! |---|---|
//! | `name` | `name` (look-up key) |
//! | `displayname` (default: the name) | `displayname` |
//! | `description` | `description` (empty clears) |
//! | `resourceMailAddress` | `email` |
//! | `oxContext` (default `DEFAULT_CONTEXT`) | the context |
//!
//! `available` is always true; `resourceadmin` is not sent (UDM puts it on the admin user).
//! A context change creates the resource in the new context, then deletes it in the old one.

use crate::apply::{NameSpace, Outcome, Scope, ScopeKey};
use crate::message::ProvisioningMessage;
use crate::ox::soap::{Credentials, OxError, Resource};

use super::compare::{
    by_id_and_name, field_diff, joined, Compare, Drift, InContext, InContextCompare, Known,
    Placement,
};
use super::keys::{contexts_of, names};
use super::kind_parts::{BatchRank, Kind};
use super::state::{ObjectState, OxIds, OxRef};
use super::udm::{self, Properties};
use super::{ProvisionError, Provisioner};

pub const TOPIC: &str = super::topic::RESOURCE;

/// The `oxresources/oxresources` kind.
pub static KIND: Kind = Kind {
    topic: TOPIC,
    wanted_by_ox: true,
    rank: BatchRank::both(50),
    docs: "docs/ox/resource.md",
    keys: |p, message, previous| Box::pin(std::future::ready(Ok(keys(p, message, previous)))),
    apply: |p, message, previous| Box::pin(apply(p, message, previous)),
    compare: Some(Compare::InContext(InContextCompare {
        placement: Placement::OneContext,
        compare: |at, known| Box::pin(compare(at, known)),
        before_repair: None,
    })),
};

/// What a resource change touches besides the resource itself (see [`super::scope`]): its
/// contexts before and after, and its old and new name and address.
fn keys(p: &Provisioner, message: &ProvisioningMessage, previous: Option<&ObjectState>) -> Scope {
    let new = message.body.new.as_ref();
    let default = Some(p.settings.default_context);
    let contexts = contexts_of(previous, new, default);
    let mut keys: std::collections::BTreeSet<ScopeKey> =
        contexts.into_iter().map(ScopeKey::InContext).collect();
    for object in [new, previous.map(|s| &s.object)].into_iter().flatten() {
        keys.extend(names(NameSpace::ResourceName, udm::text(object, "name")));
        keys.extend(names(
            NameSpace::Mail,
            udm::text(object, "resourceMailAddress"),
        ));
    }
    let old_name = previous.and_then(|s| s.ox.object.as_ref()).map(|o| &o.name);
    keys.extend(names(NameSpace::ResourceName, old_name));
    Scope::Keys(keys)
}

pub async fn apply(
    p: &Provisioner,
    message: &ProvisioningMessage,
    previous: Option<ObjectState>,
) -> Result<Outcome, ProvisionError> {
    let before = previous
        .as_ref()
        .and_then(|s| Some((s.ox.context?, s.ox.object.clone()?)));
    let Some(object) = &message.body.new else {
        let Some((context, old)) = before else {
            return Ok(Outcome::Ignored(
                "delete of a resource that was never provisioned".into(),
            ));
        };
        delete(p, context, &old).await?;
        p.state.remove(&message.object_id).await?;
        return Ok(Outcome::Applied);
    };
    let context = udm::integer(object, "oxContext")
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(p.settings.default_context);
    let resource = wanted(object).ok_or_else(|| {
        ProvisionError::Invalid(format!("the resource {} has no name", message.dn))
    })?;
    let name = resource.name.clone().unwrap_or_default();
    let auth = p.context_admin_or_pull_forward(context).await?;
    let id = match &before {
        Some((old_context, old)) if *old_context == context => {
            let mut change = resource.clone();
            change.id = Some(old.id);
            match p.ox.change_resource(context, &change, &auth).await {
                Ok(()) => old.id,
                Err(e) if e.is_not_found() => create(p, context, &resource, &auth).await?,
                Err(e) => return Err(e.into()),
            }
        }
        Some((old_context, old)) => {
            let id = create(p, context, &resource, &auth).await?;
            delete(p, *old_context, old).await?;
            id
        }
        None => create(p, context, &resource, &auth).await?,
    };
    let ox = OxIds::in_context(context, id, name);
    p.state
        .put(
            &message.object_id,
            &Provisioner::applied_state(message, object.clone(), ox),
        )
        .await?;
    Ok(Outcome::Applied)
}

fn wanted(object: &Properties) -> Option<Resource> {
    let name = udm::text(object, "name")?;
    Some(Resource {
        displayname: Some(udm::text(object, "displayname").unwrap_or_else(|| name.clone())),
        description: Some(udm::text(object, "description").unwrap_or_default()),
        email: udm::text(object, "resourceMailAddress"),
        available: Some(true),
        name: Some(name),
        ..Resource::default()
    })
}

async fn create(
    p: &Provisioner,
    context: i32,
    resource: &Resource,
    auth: &Credentials,
) -> Result<i32, ProvisionError> {
    match p.ox.create_resource(context, resource, auth).await {
        Ok(created) => created.id.ok_or_else(|| {
            ProvisionError::Invalid("OX created the resource but returned no id".into())
        }),
        Err(e) if e.is_conflict() => {
            let name = resource.name.clone().unwrap_or_default();
            let existing =
                p.ox.get_resource(context, &Resource::with_name(name), auth)
                    .await?;
            let id = existing.id.ok_or_else(|| {
                ProvisionError::Invalid("OX returned a resource without id".into())
            })?;
            let mut change = resource.clone();
            change.id = Some(id);
            p.ox.change_resource(context, &change, auth).await?;
            Ok(id)
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete(p: &Provisioner, context: i32, old: &OxRef) -> Result<(), ProvisionError> {
    let auth = p.context_admin(context)?;
    match p
        .ox
        .delete_resource(context, &Resource::with_id(old.id), &auth)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reconcile: the context's resources (`list`) against the remembered ones, by id and name;
/// display name, address and description (case-insensitively).
async fn compare(at: &InContext<'_>, known: &[Known<'_>]) -> Result<Vec<Drift>, OxError> {
    let (p, c) = (at.p, at.c);
    at.progress
        .report(&format!("resources in context {c}"), 0, known.len());
    let ox_resources: Vec<Resource> = if at.exists {
        p.ox.list_resources(c, "*", &at.auth).await?
    } else {
        Vec::new()
    };
    let ox_resources: Vec<(i32, String, Resource)> = ox_resources
        .into_iter()
        .filter_map(|r| Some((r.id?, r.name.clone()?, r)))
        .collect();
    Ok(by_id_and_name(
        c,
        "resource",
        known,
        &ox_resources,
        |k, ox| differences(&k.state.object, ox),
    ))
}

/// How the OX resource `ox` differs from what applying `object` would give it.
fn differences(object: &Properties, ox: &Resource) -> Option<String> {
    let name = udm::text(object, "name").unwrap_or_default();
    let want = [
        (
            "displayname",
            udm::text(object, "displayname").unwrap_or(name),
            ox.displayname.clone(),
        ),
        (
            "email",
            udm::text(object, "resourceMailAddress").unwrap_or_default(),
            ox.email.clone(),
        ),
        (
            "description",
            udm::text(object, "description").unwrap_or_default(),
            ox.description.clone(),
        ),
    ];
    let diffs = want
        .iter()
        .filter(|(_, want, got)| !want.eq_ignore_ascii_case(got.as_deref().unwrap_or("")))
        .map(|(field, want, got)| field_diff(field, got.as_deref(), want))
        .collect();
    joined(diffs)
}
