//! Access profiles (`oxmail/accessprofile`): named sets of OX module rights that users refer to
//! by name in `oxAccess`. No SOAP call of their own.
//!
//! The profiles live in memory and in `<data-dir>/ModuleAccessDefinitions.properties`, written
//! like the original (a header, then `name=right1,right2,…` with lower-case UDM right names,
//! sorted, each line followed by a blank line). Until a profile object arrives, the defaults that
//! the UCS join script creates (`none`, `webmail`, `webmail_drive`, `pim`, `pim_drive`,
//! `groupware`, `premium`) are known, so users get the rights their profile promises. Unlike the
//! original, a changed profile is re-applied to the users that use it (see `user`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::apply::{Outcome, Scope};
use crate::message::ProvisioningMessage;
use crate::ox::soap::User;

use super::kind::{BatchRank, Kind};
use super::state::{ObjectState, OxIds};
use super::udm::{self, Properties};
use super::{ProvisionError, Provisioner};

pub const TOPIC: &str = "oxmail/accessprofile";

/// The `oxmail/accessprofile` kind.
pub static KIND: Kind = Kind {
    topic: TOPIC,
    wanted_by_ox: true,
    rank: BatchRank::both(10),
    docs: "docs/ox/access-profile.md",
    // Re-applied to users everywhere: applied alone.
    keys: |_, _, _| Box::pin(std::future::ready(Ok(Scope::Everything))),
    apply: |p, message, previous| Box::pin(apply(p, message, previous)),
};

/// The profiles file in the data directory.
pub const FILE_NAME: &str = "ModuleAccessDefinitions.properties";

/// Stores the profile (or forgets it) and, when its rights changed, gives every OX user that
/// uses it the new rights.
pub async fn apply(
    p: &Provisioner,
    message: &ProvisioningMessage,
    previous: Option<ObjectState>,
) -> Result<Outcome, ProvisionError> {
    let old_name = previous.as_ref().and_then(|s| udm::text(&s.object, "name"));
    let io = |source| ProvisionError::Io {
        path: p.profiles.file.clone(),
        source,
    };
    let Some(object) = &message.body.new else {
        if let Some(old) = old_name {
            p.profiles.set(&old, None).map_err(io)?;
        }
        p.state.remove(&message.object_id).await?;
        return Ok(Outcome::Applied);
    };
    let name = udm::text(object, "name").ok_or_else(|| {
        ProvisionError::Invalid(format!("the access profile {} has no name", message.dn))
    })?;
    if let Some(old) = old_name.filter(|old| *old != name) {
        p.profiles.set(&old, None).map_err(io)?;
    }
    let rights = rights_of(object);
    if p.profiles.set(&name, Some(rights.clone())).map_err(io)? {
        reapply_to_users(p, &name, &rights).await?;
    }
    p.state
        .put(
            &message.object_id,
            &Provisioner::applied_state(message, object.clone(), OxIds::default()),
        )
        .await?;
    Ok(Outcome::Applied)
}

/// Gives the OX users whose `oxAccess` is `profile` the rights `rights`.
async fn reapply_to_users(
    p: &Provisioner,
    profile: &str,
    rights: &Rights,
) -> Result<(), ProvisionError> {
    let access = super::user::access_of(rights);
    let mut count = 0usize;
    for (_, state) in p.state.all().await? {
        if state.object_type != super::user::TOPIC
            || udm::text(&state.object, "oxAccess").as_deref() != Some(profile)
        {
            continue;
        }
        let (Some(context), Some(user)) = (state.ox.context, &state.ox.object) else {
            continue;
        };
        let auth = p.context_admin(context)?;
        match p
            .ox
            .change_user_module_access(context, &User::with_id(user.id), &access, &auth)
            .await
        {
            Ok(()) => count += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if count > 0 {
        tracing::info!(
            profile,
            users = count,
            "Gave the users of a changed access profile its new rights."
        );
    }
    Ok(())
}

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

const HEADER: &str = "# This file is generated by the ox-connector App automatically.\n\
                      # It is controlled by the UDM module oxmail/accessprofile\n\n";

/// The default profiles of the UCS join script.
fn defaults() -> BTreeMap<String, Rights> {
    let webmail = [
        "contacts",
        "webmail",
        "collectemailaddresses",
        "multiplemailaccounts",
        "subscription",
    ];
    let pim = [&webmail[..], &["calendar", "delegatetask", "tasks"]].concat();
    let groupware = [
        &pim[..],
        &["infostore", "editpublicfolders", "readcreatesharedfolders"],
    ]
    .concat();
    let premium = [
        &groupware[..],
        &["ical", "vcard", "webdav", "webdavxml", "usm"],
    ]
    .concat();
    let set = |rights: &[&str]| rights.iter().map(|r| (*r).to_owned()).collect::<Rights>();
    BTreeMap::from([
        ("none".to_owned(), Rights::new()),
        ("webmail".to_owned(), set(&webmail)),
        (
            "webmail_drive".to_owned(),
            set(&[&webmail[..], &["infostore"]].concat()),
        ),
        ("pim".to_owned(), set(&pim)),
        (
            "pim_drive".to_owned(),
            set(&[&pim[..], &["infostore"]].concat()),
        ),
        ("groupware".to_owned(), set(&groupware)),
        ("premium".to_owned(), set(&premium)),
    ])
}

/// The rights granted by the flags of an `oxmail/accessprofile` object (flags `TRUE`/`true`).
pub fn rights_of(props: &Properties) -> Rights {
    RIGHTS
        .iter()
        .filter(|(udm_name, _)| udm::flag(props, udm_name))
        .map(|(udm_name, _)| (*udm_name).to_owned())
        .collect()
}

/// The known profiles, backed by `ModuleAccessDefinitions.properties`.
pub struct AccessProfiles {
    pub file: PathBuf,
    profiles: RwLock<BTreeMap<String, Rights>>,
}

impl AccessProfiles {
    /// Loads the file (if any) over the default profiles.
    pub fn load(file: PathBuf) -> std::io::Result<Self> {
        let mut profiles = defaults();
        match std::fs::read_to_string(&file) {
            Ok(text) => profiles.extend(parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            file,
            profiles: RwLock::new(profiles),
        })
    }

    /// The rights of profile `name`, if it is known.
    pub fn get(&self, name: &str) -> Option<Rights> {
        self.profiles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Sets (or with `None` removes) profile `name` and rewrites the file. Returns whether the
    /// rights changed.
    pub fn set(&self, name: &str, rights: Option<Rights>) -> std::io::Result<bool> {
        let mut profiles = self.profiles.write().unwrap_or_else(|p| p.into_inner());
        let changed = match rights {
            Some(rights) => profiles.insert(name.to_owned(), rights.clone()) != Some(rights),
            None => profiles.remove(name).is_some(),
        };
        write(&self.file, &profiles)?;
        Ok(changed)
    }
}

fn parse(text: &str) -> BTreeMap<String, Rights> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once('='))
        .map(|(name, rights)| {
            let rights = rights
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect();
            (name.trim().to_owned(), rights)
        })
        .collect()
}

fn write(file: &Path, profiles: &BTreeMap<String, Rights>) -> std::io::Result<()> {
    let mut text = HEADER.to_owned();
    for (name, rights) in profiles {
        let rights: Vec<&str> = rights.iter().map(String::as_str).collect();
        text.push_str(&format!("{name}={}\n\n", rights.join(",")));
    }
    crate::atomic_file::write(file, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_join_script_defaults_are_known() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = AccessProfiles::load(dir.path().join("m.properties")).unwrap();
        assert_eq!(profiles.get("none"), Some(Rights::new()));
        let premium = profiles.get("premium").unwrap();
        assert!(
            premium.contains("usm") && premium.contains("calendar") && premium.contains("webmail")
        );
        assert!(!profiles.get("webmail").unwrap().contains("calendar"));
    }

    #[test]
    fn profiles_round_trip_through_the_file_like_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.properties");
        let profiles = AccessProfiles::load(file.clone()).unwrap();
        let rights = rights_of(
            json!({"name": "a=b", "calendar": "TRUE", "webmail": true, "ical": "FALSE"})
                .as_object()
                .unwrap(),
        );
        assert!(profiles.set("a=b", Some(rights)).unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# This file is generated"), "{text}");
        assert!(text.contains("\na=b=calendar,webmail\n\n"), "{text}");
        let again = AccessProfiles::load(file).unwrap();
        assert_eq!(
            again.get("a=b").unwrap().into_iter().collect::<Vec<_>>(),
            ["calendar", "webmail"]
        );
    }
}
