//! OX module rights as access profiles name them: the 23 rights (UDM name → OX
//! `UserModuleAccess` field) and the OX rights of a profile. Shared by [`super::access_profile`]
//! (which stores profiles and re-applies changed ones) and [`super::user`] (which gives a user its
//! profile's rights), so that neither kind imports the other for them.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::ox::soap::UserModuleAccess;

/// The UDM names of the 23 rights an access profile can grant, each with the OX
/// `UserModuleAccess` field it sets.
pub const RIGHTS: [(&str, &str); 23] = [
    ("usm", "USM"),
    ("activesync", "activeSync"),
    ("calendar", "calendar"),
    ("collectemailaddresses", "collectEmailAddresses"),
    ("contacts", "contacts"),
    ("delegatetask", "delegateTask"),
    ("deniedportal", "deniedPortal"),
    ("editgroup", "editGroup"),
    ("editpassword", "editPassword"),
    ("editpublicfolders", "editPublicFolders"),
    ("editresource", "editResource"),
    ("globaladdressbookdisabled", "globalAddressBookDisabled"),
    ("ical", "ical"),
    ("infostore", "infostore"),
    ("multiplemailaccounts", "multipleMailAccounts"),
    ("readcreatesharedfolders", "readCreateSharedFolders"),
    ("subscription", "subscription"),
    ("syncml", "syncml"),
    ("tasks", "tasks"),
    ("vcard", "vcard"),
    ("webdav", "webdav"),
    ("webdavxml", "webdavXml"),
    ("webmail", "webmail"),
];

/// A profile: the UDM names of the rights it grants.
pub type Rights = BTreeSet<String>;

/// All 23 rights, each true if the profile grants it.
pub fn access_of(rights: &Rights) -> UserModuleAccess {
    let fields: serde_json::Map<String, Value> = RIGHTS
        .iter()
        .map(|(udm_name, ox_field)| ((*ox_field).to_owned(), json!(rights.contains(*udm_name))))
        .collect();
    serde_json::from_value(Value::Object(fields)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_grants_exactly_its_rights_and_denies_the_others() {
        let rights: Rights = ["calendar", "webmail"].map(String::from).into();
        let access = serde_json::to_value(access_of(&rights)).unwrap();
        let granted: Vec<&str> = RIGHTS
            .iter()
            .filter(|(_, field)| access[*field] == json!(true))
            .map(|(udm, _)| *udm)
            .collect();
        assert_eq!(granted, ["calendar", "webmail"]);
        assert!(RIGHTS.iter().all(|(_, field)| access[*field].is_boolean()));
    }
}
