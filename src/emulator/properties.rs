//! The OX configuration properties the emulator honours, set like OX's own files
//! (`--ox-property NAME=VALUE`, [`super::EmulatorSettings::with_property`],
//! `POST /emulator/properties`). Defaults are those of a fresh OX App Suite installation: the
//! values in the property files OX ships, or the code's fallback where no file sets one. The
//! rule each property switches is listed in `docs/ox-emulator.md` with its OX source.

use serde::{Deserialize, Serialize};

/// The switches, typed. Field docs name the property, its file and OX's default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OxPropertySettings {
    /// `com.openexchange.user.enforceUniqueDisplayName` (user.properties, default `true`).
    pub unique_display_names: bool,
    /// `AUTO_TO_LOWERCASE_UID`: lower-case user/group/resource names and auth logins
    /// (AdminUser.properties, default `false`).
    pub lowercase_names: bool,
    /// `MASTER_ACCOUNT_OVERRIDE`: the master admin may act in every context
    /// (AdminDaemon.properties, default `false`).
    pub master_override: bool,
    /// `CHECK_USER_UID_FOR_NOT_ALLOWED_CHARS`: user names must match `[$@%.+a-zA-Z0-9_-]`
    /// (AdminUser.properties, default `true`).
    pub check_user_names: bool,
    /// `CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS`: group names must match `[ $@%.+a-zA-Z0-9_-]`
    /// (Group.properties, default `true`).
    pub check_group_names: bool,
    /// `CHECK_RES_UID_FOR_NOT_ALLOWED_CHARS`: resource names must match `[ $@%.+a-zA-Z0-9_-]`
    /// (Resource.properties, default `true`).
    pub check_resource_names: bool,
    /// `USERNAME_CHANGEABLE`: users may be renamed (AdminUser.properties, default `false`).
    pub username_changeable: bool,
    /// `PRIMARY_MAIL_UNCHANGEABLE`: a user's primary mail address may not change
    /// (AdminUser.properties ships `false`; the code falls back to `true` when the line is
    /// missing).
    pub primary_mail_unchangeable: bool,
}

impl Default for OxPropertySettings {
    fn default() -> Self {
        OxPropertySettings {
            unique_display_names: true,
            lowercase_names: false,
            master_override: false,
            check_user_names: true,
            check_group_names: true,
            check_resource_names: true,
            username_changeable: false,
            primary_mail_unchangeable: false,
        }
    }
}

/// One property: its name, the OX file that holds it, and the switch it sets.
pub struct Property {
    pub name: &'static str,
    pub file: &'static str,
    field: fn(&mut OxPropertySettings) -> &mut bool,
}

/// Every property the emulator knows.
pub const PROPERTIES: [Property; 8] = [
    Property {
        name: "com.openexchange.user.enforceUniqueDisplayName",
        file: "user.properties",
        field: |o| &mut o.unique_display_names,
    },
    Property {
        name: "AUTO_TO_LOWERCASE_UID",
        file: "AdminUser.properties",
        field: |o| &mut o.lowercase_names,
    },
    Property {
        name: "MASTER_ACCOUNT_OVERRIDE",
        file: "AdminDaemon.properties",
        field: |o| &mut o.master_override,
    },
    Property {
        name: "CHECK_USER_UID_FOR_NOT_ALLOWED_CHARS",
        file: "AdminUser.properties",
        field: |o| &mut o.check_user_names,
    },
    Property {
        name: "CHECK_GROUP_UID_FOR_NOT_ALLOWED_CHARS",
        file: "Group.properties",
        field: |o| &mut o.check_group_names,
    },
    Property {
        name: "CHECK_RES_UID_FOR_NOT_ALLOWED_CHARS",
        file: "Resource.properties",
        field: |o| &mut o.check_resource_names,
    },
    Property {
        name: "USERNAME_CHANGEABLE",
        file: "AdminUser.properties",
        field: |o| &mut o.username_changeable,
    },
    Property {
        name: "PRIMARY_MAIL_UNCHANGEABLE",
        file: "AdminUser.properties",
        field: |o| &mut o.primary_mail_unchangeable,
    },
];

/// The properties `docs/operations.md` tells admins to set on the OX server for the connector
/// (renames of users with the default `OX_USER_IDENTIFIER=username`). The test and benchmark
/// environments run the emulator with exactly these.
pub const ADMIN_GUIDE_PROPERTIES: [(&str, &str); 1] = [("USERNAME_CHANGEABLE", "true")];

/// What the OX App Suite app of the Univention App Center sets beyond OX's defaults (the
/// prerequisite the OX Connector documentation names; "configured by default in version
/// 7.10.6-ucs7"). The demo runs with these.
pub const UCS_APP_PROPERTIES: [(&str, &str); 1] =
    [("com.openexchange.user.enforceUniqueDisplayName", "false")];

/// A property that cannot be set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error("unknown OX property {name:?}; the emulator knows {known}")]
    Unknown { name: String, known: String },
    #[error("OX property {name}: {value:?} is neither true nor false")]
    NotBoolean { name: String, value: String },
    #[error("expected NAME=VALUE, got {0:?}")]
    Syntax(String),
    #[error("OX property {0} cannot change while contexts exist (reset the emulator first)")]
    NotAtRuntime(String),
}

impl OxPropertySettings {
    /// Sets one property by OX's name; the value is `true` or `false` (any case, trimmed).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), PropertyError> {
        let name = name.trim();
        let property =
            PROPERTIES
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| PropertyError::Unknown {
                    name: name.to_string(),
                    known: PROPERTIES.map(|p| p.name).join(", "),
                })?;
        let value = match value.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(PropertyError::NotBoolean {
                    name: name.to_string(),
                    value: value.to_string(),
                })
            }
        };
        *(property.field)(self) = value;
        Ok(())
    }

    /// Sets every `(name, value)` pair.
    pub fn set_all<'a>(
        &mut self,
        properties: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), PropertyError> {
        properties
            .into_iter()
            .try_for_each(|(name, value)| self.set(name, value))
    }

    /// Every property with its current value, as OX's files would spell it.
    pub fn to_properties(&self) -> Vec<(&'static str, bool)> {
        let mut copy = self.clone();
        PROPERTIES
            .iter()
            .map(|p| (p.name, *(p.field)(&mut copy)))
            .collect()
    }
}

/// Parses `NAME=VALUE` (the `--ox-property` argument).
pub(super) fn parse_assignment(text: &str) -> Result<(String, String), PropertyError> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| PropertyError::Syntax(text.to_string()))?;
    OxPropertySettings::default().set(name, value)?;
    Ok((name.trim().to_string(), value.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_set_by_ox_names_and_typos_are_refused() {
        let mut options = OxPropertySettings::default();
        options.set("USERNAME_CHANGEABLE", "TRUE").unwrap();
        options
            .set("com.openexchange.user.enforceUniqueDisplayName", " false ")
            .unwrap();
        assert!(options.username_changeable);
        assert!(!options.unique_display_names);
        let typo = options.set("USERNAME_CHANGABLE", "true").unwrap_err();
        assert!(typo.to_string().contains("USERNAME_CHANGEABLE"), "{typo}");
        assert!(matches!(
            options.set("USERNAME_CHANGEABLE", "yes"),
            Err(PropertyError::NotBoolean { .. })
        ));
        assert_eq!(
            parse_assignment("PRIMARY_MAIL_UNCHANGEABLE=true").unwrap(),
            ("PRIMARY_MAIL_UNCHANGEABLE".into(), "true".into())
        );
        assert!(parse_assignment("PRIMARY_MAIL_UNCHANGEABLE").is_err());
    }

    #[test]
    fn every_property_round_trips_through_its_switch() {
        for property in &PROPERTIES {
            for value in [true, false] {
                let mut options = OxPropertySettings::default();
                options.set(property.name, &value.to_string()).unwrap();
                let listed = options.to_properties();
                assert!(
                    listed.contains(&(property.name, value)),
                    "{}",
                    property.name
                );
            }
        }
    }
}
