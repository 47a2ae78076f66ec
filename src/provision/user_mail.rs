//! A user's mail addresses in OX: its aliases, its default sender address, and the check that
//! OX will take them.
//!
//! OX refuses a user whose `primaryEmail`, `email1`, `email2`, `email3`,
//! `defaultSenderAddress` or an alias is not an e-mail address its parser accepts, with the bare
//! text `Invalid email address` ([`mail_address`]), and it cannot remove a user's primary
//! address. The connector knows both before calling OX, so such a change is not sent: it blocks
//! with a reason that names the user, the UDM property and the value.

use std::collections::BTreeSet;

use crate::ox::soap::{mail_address, xml_chars};
use crate::ox::soap::{Credentials, User};

use super::udm::{self, Properties};
use super::{ProvisionError, Provisioner};

/// `[primary] + mailAlternativeAddress`, without duplicates.
pub(super) fn aliases(object: &Properties) -> Vec<String> {
    let mut seen = BTreeSet::new();
    udm::text(object, "mailPrimaryAddress")
        .into_iter()
        .chain(udm::texts(object, "mailAlternativeAddress"))
        .filter(|a| seen.insert(a.to_lowercase()))
        .collect()
}

/// Refuses, before anything is sent, the UDM user `object` at `dn` when the OX user made of it
/// would have no primary address or an address OX refuses (its `primaryEmail`, `email1`,
/// `email2`, `email3` and aliases as [`super::user`] builds them; the default sender address is
/// always one of its aliases).
pub(super) fn check(p: &Provisioner, dn: &str, object: &Properties) -> Result<(), ProvisionError> {
    for field in ["primaryEmail", "email1"] {
        let value = p.mapping.value_of(field, object);
        if value.is_none_or(|(_, v)| v.trim().is_empty()) {
            let property = p.mapping.source(field).unwrap_or("mailPrimaryAddress");
            return Err(ProvisionError::Invalid(format!(
                "not sent: the user {dn} has no {property} (OX's {field}); OX needs a primary \
                 mail address for every user and cannot remove it. Give the user a {property} \
                 in UCS (or take away isOxUser to remove the user from OX), then skip this \
                 change (`ox-connector queue skip blocked`)"
            )));
        }
    }
    let fields = ["primaryEmail", "email1", "email2", "email3"];
    let mut addresses: Vec<(String, String)> = fields
        .iter()
        .filter_map(|field| p.mapping.value_of(field, object))
        .map(|(property, value)| (property.to_owned(), value))
        .collect();
    let primary = udm::text(object, "mailPrimaryAddress");
    for alias in aliases(object) {
        let is_primary = primary
            .as_ref()
            .is_some_and(|p| p.eq_ignore_ascii_case(&alias));
        let property = if is_primary {
            "mailPrimaryAddress"
        } else {
            "mailAlternativeAddress"
        };
        addresses.push((property.into(), alias));
    }
    // A character XML 1.0 forbids gets the SOAP client's own, more precise refusal.
    let refused = |value: &str| {
        !mail_address::ox_accepts(value) && !value.chars().any(|c| !xml_chars::is_xml_char(c))
    };
    match addresses.into_iter().find(|(_, value)| refused(value)) {
        None => Ok(()),
        Some((property, value)) => Err(ProvisionError::Invalid(format!(
            "not sent: the user {dn} has {property} {value:?}, which is not an e-mail address \
             OX accepts (OX would refuse the user with \"Invalid email address\"). Fix the \
             address in UCS (a new change follows), then skip this change \
             (`ox-connector queue skip blocked`)"
        ))),
    }
}

/// The default sender address to send on a change, or `None` to leave OX's value alone.
///
/// Only when the primary address changed or an address was dropped is OX asked for the current
/// value (OX keeps it among the user's addresses, so after additions alone it is still valid):
/// it is kept unless it was the old primary address (then it follows the new primary) or is not
/// one of the user's addresses any more (OX would refuse it; then it becomes the primary
/// address).
pub(super) async fn default_sender(
    p: &Provisioner,
    object: &Properties,
    context: i32,
    id: i32,
    auth: &Credentials,
    previous: Option<&Properties>,
) -> Result<Option<String>, ProvisionError> {
    let primary = udm::text(object, "mailPrimaryAddress");
    let addresses = aliases(object);
    let old_primary = previous.and_then(|old| udm::text(old, "mailPrimaryAddress"));
    let still_valid = previous.is_some_and(|old| {
        old_primary == primary
            && aliases(old)
                .iter()
                .all(|a| addresses.iter().any(|n| n.eq_ignore_ascii_case(a)))
    });
    if still_valid {
        return Ok(None);
    }
    let current = match p.ox.get_user(context, &User::with_id(id), auth).await {
        Ok(user) => user.default_sender_address,
        Err(e) if e.is_not_found() => return Err(e.into()),
        Err(_) => None,
    };
    let mut wanted = match (&current, &old_primary) {
        (Some(current), Some(old)) if current.eq_ignore_ascii_case(old) => primary.clone(),
        (Some(current), _) => Some(current.clone()),
        (None, _) => primary.clone(),
    };
    if !wanted
        .as_ref()
        .is_some_and(|w| addresses.iter().any(|a| a.eq_ignore_ascii_case(w)))
    {
        wanted = primary;
    }
    Ok(wanted.filter(|w| Some(w) != current.as_ref()))
}
