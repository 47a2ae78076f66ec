//! The typed snapshot of the emulated OX (`GET /emulator/state`).

use serde::{Deserialize, Serialize};

use super::*;

impl OxState {
    pub(crate) fn snapshot(&self) -> StateSnapshot {
        StateSnapshot {
            contexts: self
                .contexts
                .iter()
                .map(|(&id, c)| ContextSnapshot {
                    id,
                    name: c.data.name.clone().unwrap_or_default(),
                    admin: c.users.get(&c.admin_id).map(|a| ObjectRef {
                        id: c.admin_id,
                        name: a.user.name.clone().unwrap_or_default(),
                    }),
                    access_combination: c.access_combination.clone(),
                    data: c.data.clone(),
                    users: c
                        .users
                        .iter()
                        .map(|(&uid, r)| UserSnapshot {
                            id: uid,
                            name: r.user.name.clone().unwrap_or_default(),
                            data: User {
                                password: None,
                                ..r.user.clone()
                            },
                            module_access: r.access.clone(),
                        })
                        .collect(),
                    groups: c.groups.values().cloned().collect(),
                    resources: c.resources.values().cloned().collect(),
                    secondary_accounts: c
                        .accounts
                        .iter()
                        .map(|a| Account {
                            password: None,
                            transport_password: None,
                            ..a.clone()
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A typed snapshot of the emulated OX (also the JSON of `GET /emulator/state`). Passwords are
/// left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateSnapshot {
    pub contexts: Vec<ContextSnapshot>,
}

/// One context and its content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContextSnapshot {
    pub id: i32,
    pub name: String,
    /// The context admin.
    pub admin: Option<ObjectRef>,
    /// Set by `createModuleAccessByName`.
    pub access_combination: Option<String>,
    /// The context as `getData` returns it (`maxQuota`, `loginMappings`, `enabled`, …).
    pub data: Context,
    pub users: Vec<UserSnapshot>,
    pub groups: Vec<Group>,
    pub resources: Vec<Resource>,
    pub secondary_accounts: Vec<Account>,
}

/// An id and a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub id: i32,
    pub name: String,
}

/// One user: all stored fields (without password) and the module rights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserSnapshot {
    pub id: i32,
    pub name: String,
    pub data: User,
    pub module_access: UserModuleAccess,
}

impl StateSnapshot {
    /// The context with `id`.
    pub fn context(&self, id: i32) -> Option<&ContextSnapshot> {
        self.contexts.iter().find(|c| c.id == id)
    }
}

impl ContextSnapshot {
    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<&UserSnapshot> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The user with `id`.
    pub fn user_by_id(&self, id: i32) -> Option<&UserSnapshot> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name.as_deref() == Some(name))
    }

    /// The resource named `name`.
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.name.as_deref() == Some(name))
    }
}
