//! Functional accounts (`oxmail/functional_account`): shared mailboxes that OX shows to their
//! users as secondary accounts (OXSecondaryAccountService, OX ≥ 7.10.6), with the context admin's
//! credentials.
//!
//! Like the original, every change rebuilds the account: in each context of the old and new
//! members, `delete` the account by its primary address for all users; then, per context, one
//! `create` per member user with `name`, `primaryAddress` (`mailPrimaryAddress`), `personal`,
//! `mailEndpointSource = primary` and a `login` from `OX_FUNCTIONAL_ACCOUNT_LOGIN_TEMPLATE`.
//! Members come from `users` (DNs) and from the members of the groups in `groups`; users that
//! are not OX users are left out. Template placeholders: `{{fa_entry_uuid}}`,
//! `{{fa_email_address}}`, the user's `{{entry_uuid}}` and `{{dn}}`, and any property of the user
//! (`{{username}}`); an unknown placeholder is an error naming it.

use std::collections::{BTreeMap, BTreeSet};

use crate::apply::{Outcome, Scope};
use crate::message::ProvisioningMessage;
use crate::ox::soap::AccountDataOnCreate;

use super::kind_parts::{BatchRank, Kind};
use super::state::{ObjectState, OxIds, OxRef};
use super::udm::{self, Properties};
use super::{deleted, ProvisionError, Provisioner};

pub const TOPIC: &str = super::topic::FUNCTIONAL_ACCOUNT;

/// The `oxmail/functional_account` kind.
pub static KIND: Kind = Kind {
    topic: TOPIC,
    wanted_by_ox: true,
    rank: BatchRank::both(40),
    docs: "docs/ox/functional-account.md",
    // Rebuilt in every context of its members: applied alone.
    keys: |_, _, _| Box::pin(std::future::ready(Ok(Scope::Everything))),
    apply: |p, message, previous| Box::pin(apply(p, message, previous)),
    // Not compared: reconcile does not list OX's secondary accounts (one per member user);
    // any change of the account rebuilds them all.
    compare: None,
};

/// A member user of a functional account.
struct Member {
    entry_uuid: String,
    dn: String,
    id: i32,
    object: Properties,
}

pub async fn apply(
    p: &Provisioner,
    message: &ProvisioningMessage,
    previous: Option<ObjectState>,
) -> Result<Outcome, ProvisionError> {
    let before: BTreeSet<i32> = previous
        .as_ref()
        .map(|s| s.ox.per_context.keys().copied().collect())
        .unwrap_or_default();
    let old_address = previous
        .as_ref()
        .and_then(|s| s.ox.per_context.values().next().map(|r| r.name.clone()));
    let new_address = message
        .body
        .new
        .as_ref()
        .and_then(|o| udm::text(o, "mailPrimaryAddress"))
        .map(|a| a.to_lowercase());
    let members = match &message.body.new {
        Some(object) => members_by_context(p, object).await?,
        None => BTreeMap::new(),
    };

    // Remove the account everywhere it may be, under its old and its new address.
    let contexts: BTreeSet<i32> = before.iter().chain(members.keys()).copied().collect();
    let addresses: BTreeSet<&String> = old_address.iter().chain(new_address.iter()).collect();
    remove_everywhere(p, &contexts, &addresses).await?;

    match (&message.body.new, &new_address) {
        (Some(object), Some(address)) => {
            let per_context = create_for_members(p, message, object, address, &members).await?;
            record(p, message, object, per_context).await?;
        }
        (Some(object), None) => record(p, message, object, BTreeMap::new()).await?,
        (None, _) => p.state.remove(&message.object_id).await?,
    }
    Ok(Outcome::Applied)
}

/// Deletes the account under each of `addresses` for all users of each of `contexts`.
async fn remove_everywhere(
    p: &Provisioner,
    contexts: &BTreeSet<i32>,
    addresses: &BTreeSet<&String>,
) -> Result<(), ProvisionError> {
    for context in contexts {
        let auth = p.context_admin(*context)?;
        for address in addresses {
            deleted(
                p.ox.delete_secondary_account(*context, address, &[], &[0], &auth)
                    .await,
            )?;
        }
    }
    Ok(())
}

/// Creates the account `address` for each member user, context by context; returns what the
/// state remembers per context.
async fn create_for_members(
    p: &Provisioner,
    message: &ProvisioningMessage,
    object: &Properties,
    address: &str,
    members: &BTreeMap<i32, Vec<Member>>,
) -> Result<BTreeMap<i32, OxRef>, ProvisionError> {
    let mut per_context = BTreeMap::new();
    for (context, users) in members {
        let auth = p.context_admin(*context)?;
        for member in users {
            let account = AccountDataOnCreate {
                name: udm::text(object, "name"),
                primary_address: Some(address.to_owned()),
                personal: udm::text(object, "personal"),
                mail_endpoint_source: Some("primary".into()),
                login: Some(login(p, message, address, member)?),
                ..AccountDataOnCreate::default()
            };
            p.ox.create_secondary_account(*context, &account, &[member.id], &[], &auth)
                .await?;
        }
        per_context.insert(
            *context,
            OxRef {
                id: 0,
                name: address.to_owned(),
                members: Vec::new(),
            },
        );
    }
    Ok(per_context)
}

/// Remembers the account object with the contexts it was created in.
async fn record(
    p: &Provisioner,
    message: &ProvisioningMessage,
    object: &Properties,
    per_context: BTreeMap<i32, OxRef>,
) -> Result<(), ProvisionError> {
    let ox = OxIds {
        per_context,
        ..OxIds::default()
    };
    let state = Provisioner::applied_state(message, object.clone(), ox);
    p.state.put(&message.object_id, &state).await?;
    Ok(())
}

/// The account's member users (from `users` and the members of `groups`), by context.
async fn members_by_context(
    p: &Provisioner,
    object: &Properties,
) -> Result<BTreeMap<i32, Vec<Member>>, ProvisionError> {
    let mut user_dns: Vec<String> = udm::texts(object, "users");
    for group_dn in udm::texts(object, "groups") {
        if let Some((_, group)) = p.state.get_by_dn(&group_dn).await? {
            user_dns.extend(udm::texts(&group.object, "users"));
        }
    }
    let mut seen = BTreeSet::new();
    let mut buckets: BTreeMap<i32, Vec<Member>> = BTreeMap::new();
    for dn in user_dns {
        if !seen.insert(dn.to_lowercase()) {
            continue;
        }
        if let Some((entry_uuid, state)) = p.state.get_by_dn(&dn).await? {
            if let (Some(context), Some(user)) = (state.ox.context, &state.ox.object) {
                buckets.entry(context).or_default().push(Member {
                    entry_uuid,
                    dn: state.dn.clone(),
                    id: user.id,
                    object: state.object.clone(),
                });
            }
        }
    }
    Ok(buckets)
}

/// Fills the login template for one member.
fn login(
    p: &Provisioner,
    message: &ProvisioningMessage,
    address: &str,
    member: &Member,
) -> Result<String, ProvisionError> {
    let template = &p.settings.functional_account_login_template;
    let mut out = String::new();
    let mut rest = template.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let key = after[..end].trim();
        let value = match key {
            "fa_entry_uuid" => Some(message.object_id.clone()),
            "fa_email_address" => Some(address.to_owned()),
            "entry_uuid" => Some(member.entry_uuid.clone()),
            "dn" => Some(member.dn.clone()),
            property => udm::text(&member.object, property),
        };
        let value = value.ok_or_else(|| {
            ProvisionError::Invalid(format!(
                "OX_FUNCTIONAL_ACCOUNT_LOGIN_TEMPLATE uses {{{{{key}}}}}, which the user {} does not have",
                member.dn
            ))
        })?;
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}
