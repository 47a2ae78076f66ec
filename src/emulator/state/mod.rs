//! The emulated OX data and its rules: contexts with their admin, users, groups, resources and
//! secondary accounts; id assignment, uniqueness, authentication and OX's fault texts
//! (`ox-soap.md` §4, §8.2, §9). No XML here: the SOAP layer decodes requests into the typed
//! objects of [`crate::ox::soap::types`] and calls one method per operation.

use std::collections::{BTreeMap, HashMap};

mod account;
mod context;
mod group;
mod resource;
mod snapshot;
mod user;

pub(super) use super::properties::{OxPropertySettings, PropertyError};
pub use snapshot::{ContextSnapshot, ObjectRef, StateSnapshot, UserSnapshot};

use crate::ox::soap::types::{
    Account, AccountDataOnCreate, Context, Credentials, Group, Resource, SoapObject, User,
    UserModuleAccess,
};
use crate::ox::soap::FaultKind;

/// An OX business exception: detail kind and message (without `; exceptionId`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct OxFault {
    pub kind: FaultKind,
    pub message: String,
}

impl OxFault {
    fn new(kind: FaultKind, message: impl Into<String>) -> OxFault {
        OxFault {
            kind,
            message: message.into(),
        }
    }

    fn auth() -> OxFault {
        OxFault::new(FaultKind::InvalidCredentials, "Authentication failed")
    }

    fn invalid(message: impl Into<String>) -> OxFault {
        OxFault::new(FaultKind::InvalidData, message)
    }
}

type OxResult<T> = Result<T, OxFault>;

/// Prefix OX puts before the text of a by-name lookup that found nothing (`ox-soap.md` §8.2).
const NO_SUCH_OBJECT: &str = "com.openexchange.admin.rmi.exceptions.NoSuchObjectException: ";

/// The whole emulated OX.
#[derive(Debug)]
pub(super) struct OxState {
    master: Credentials,
    options: OxPropertySettings,
    /// The configuration at start, restored by [`OxState::reset`].
    initial_options: OxPropertySettings,
    contexts: BTreeMap<i32, Ctx>,
}

#[derive(Clone, Debug)]
pub(super) struct Ctx {
    data: Context,
    admin_id: i32,
    access_combination: Option<String>,
    users: BTreeMap<i32, UserRecord>,
    groups: BTreeMap<i32, Group>,
    resources: BTreeMap<i32, Resource>,
    accounts: Vec<Account>,
    /// Lookup indexes (user records are large; scanning them for every call would make the
    /// emulator the bottleneck of benchmarks with many users).
    index: Indexes,
    /// Next id for users and groups (one sequence, as the examples show).
    next_id: i32,
    next_resource_id: i32,
    next_account_id: i32,
}

#[derive(Clone, Debug)]
struct UserRecord {
    /// Stored as OX returns it from `create` (password included; `getData` hides it).
    user: User,
    access: UserModuleAccess,
}

/// Ids by key; a key may map to several ids where OX allows duplicates (display names with
/// uniqueness switched off).
#[derive(Clone, Debug, Default)]
pub(super) struct Index(HashMap<String, Vec<i32>>);

impl Index {
    fn insert(&mut self, key: Option<String>, id: i32) {
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            self.0.entry(key).or_default().push(id);
        }
    }

    fn remove(&mut self, key: Option<String>, id: i32) {
        if let Some(key) = key {
            if let Some(ids) = self.0.get_mut(&key) {
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.0.remove(&key);
                }
            }
        }
    }

    /// The first id under `key` other than `me`.
    fn other_than(&self, key: &str, me: Option<i32>) -> Option<i32> {
        self.0
            .get(key)
            .and_then(|ids| ids.iter().copied().find(|id| Some(*id) != me))
    }
}

#[derive(Clone, Debug, Default)]
struct Indexes {
    /// Keys of names are lower-cased in lower-case mode (see [`OxPropertySettings::lowercase_names`]).
    lowercase: bool,
    user_names: Index,
    display_names: Index,
    primary_mails: Index,
    group_names: Index,
    resource_names: Index,
    resource_mails: Index,
}

impl Indexes {
    fn name_key(&self, name: &str) -> String {
        if self.lowercase {
            name.to_lowercase()
        } else {
            name.to_string()
        }
    }

    fn name(&self, name: &Option<String>) -> Option<String> {
        name.as_deref().map(|n| self.name_key(n))
    }
}

impl Ctx {
    /// The next id of the sequence users and groups share.
    fn take_next_id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Stores a new (not admin) user under the next id, as a member of the default group;
    /// returns the id.
    fn add_user(&mut self, mut user: User, access: UserModuleAccess) -> i32 {
        let id = self.take_next_id();
        user.id = Some(id);
        user.contextadmin = Some(false);
        user.default_group = Some(Box::new(default_group_ref()));
        if let Some(group) = self.groups.get_mut(&DEFAULT_GROUP_ID) {
            group.members.push(id);
        }
        self.insert_user(id, UserRecord { user, access });
        id
    }

    fn insert_user(&mut self, id: i32, record: UserRecord) {
        self.index_user(&record.user, id, true);
        self.users.insert(id, record);
    }

    /// Replaces the stored fields of user `id` (which must exist), keeping the indexes right.
    fn replace_user(&mut self, id: i32, user: User) {
        if let Some(old) = self.users.get(&id).map(|r| r.user.clone()) {
            self.index_user(&old, id, false);
        }
        self.index_user(&user, id, true);
        if let Some(record) = self.users.get_mut(&id) {
            record.user = user;
        }
    }

    fn remove_user(&mut self, id: i32) {
        if let Some(record) = self.users.remove(&id) {
            self.index_user(&record.user, id, false);
        }
    }

    fn index_user(&mut self, user: &User, id: i32, add: bool) {
        let ix = &mut self.index;
        let name = ix.name(&user.name);
        let (display, mail) = (user.display_name.clone(), user.primary_email.clone());
        if add {
            ix.user_names.insert(name, id);
            ix.display_names.insert(display, id);
            ix.primary_mails.insert(mail, id);
        } else {
            ix.user_names.remove(name, id);
            ix.display_names.remove(display, id);
            ix.primary_mails.remove(mail, id);
        }
    }

    fn insert_group(&mut self, id: i32, group: Group) {
        let key = self.index.name(&group.name);
        self.index.group_names.insert(key, id);
        self.groups.insert(id, group);
    }

    fn remove_group(&mut self, id: i32) -> Option<Group> {
        let group = self.groups.remove(&id)?;
        let key = self.index.name(&group.name);
        self.index.group_names.remove(key, id);
        Some(group)
    }

    fn insert_resource(&mut self, id: i32, resource: Resource) {
        let key = self.index.name(&resource.name);
        self.index.resource_names.insert(key, id);
        self.index.resource_mails.insert(resource.email.clone(), id);
        self.resources.insert(id, resource);
    }

    fn remove_resource(&mut self, id: i32) -> Option<Resource> {
        let resource = self.resources.remove(&id)?;
        let key = self.index.name(&resource.name);
        self.index.resource_names.remove(key, id);
        self.index.resource_mails.remove(resource.email.clone(), id);
        Some(resource)
    }
}

/// The objects of a context that OX finds by id, else by name (users, groups, resources), and
/// OX's fault texts when it does not (`ox-soap.md` §8.2, §9.4).
pub(super) trait Lookup: Sized {
    /// The kind as OX's texts name it: `user`, `group`, `resource`.
    const NOUN: &'static str;
    /// The fault of an unknown id or name.
    const NOT_FOUND: FaultKind;
    fn id(&self) -> Option<i32>;
    fn name(&self) -> &Option<String>;
    fn exists(context: &Ctx, id: i32) -> bool;
    /// The index of the (normalised) names.
    fn names(context: &Ctx) -> &Index;
    /// The stored object as `getData` returns it.
    fn view(context: &Ctx, id: i32) -> Self;

    /// The fault of a missing reference, or one with neither id nor name.
    fn no_reference() -> OxFault {
        let noun = Self::NOUN;
        OxFault::invalid(format!("One {noun}object has no {noun}id or {noun}name"))
    }

    fn unknown_id(id: i32, ctx_id: i32) -> OxFault {
        let noun = Self::NOUN;
        OxFault::new(
            Self::NOT_FOUND,
            format!("No such {noun} {id} in context {ctx_id}"),
        )
    }

    fn unknown_name(name: &str, ctx_id: i32) -> OxFault {
        let noun = Self::NOUN;
        OxFault::new(
            Self::NOT_FOUND,
            format!("{NO_SUCH_OBJECT}No such {noun} {name} in context {ctx_id}"),
        )
    }
}

impl Lookup for User {
    const NOUN: &'static str = "user";
    const NOT_FOUND: FaultKind = FaultKind::NoSuchUser;
    fn id(&self) -> Option<i32> {
        self.id
    }
    fn name(&self) -> &Option<String> {
        &self.name
    }
    fn exists(context: &Ctx, id: i32) -> bool {
        context.users.contains_key(&id)
    }
    fn names(context: &Ctx) -> &Index {
        &context.index.user_names
    }
    /// Password hidden.
    fn view(context: &Ctx, id: i32) -> User {
        let mut user = context.users[&id].user.clone();
        user.password = None;
        user
    }
}

impl Lookup for Group {
    const NOUN: &'static str = "group";
    const NOT_FOUND: FaultKind = FaultKind::NoSuchGroup;
    fn id(&self) -> Option<i32> {
        self.id
    }
    fn name(&self) -> &Option<String> {
        &self.name
    }
    fn exists(context: &Ctx, id: i32) -> bool {
        context.groups.contains_key(&id)
    }
    fn names(context: &Ctx) -> &Index {
        &context.index.group_names
    }
    fn view(context: &Ctx, id: i32) -> Group {
        context.groups[&id].clone()
    }
    /// OX names neither the id nor the context here.
    fn unknown_id(_id: i32, _ctx_id: i32) -> OxFault {
        OxFault::new(FaultKind::NoSuchGroup, "No such group")
    }
}

impl Lookup for Resource {
    const NOUN: &'static str = "resource";
    const NOT_FOUND: FaultKind = FaultKind::NoSuchResource;
    fn id(&self) -> Option<i32> {
        self.id
    }
    fn name(&self) -> &Option<String> {
        &self.name
    }
    fn exists(context: &Ctx, id: i32) -> bool {
        context.resources.contains_key(&id)
    }
    fn names(context: &Ctx) -> &Index {
        &context.index.resource_names
    }
    fn view(context: &Ctx, id: i32) -> Resource {
        context.resources[&id].clone()
    }
}

const DEFAULT_GROUP_ID: i32 = 1;
const ADMIN_ID: i32 = 2;

/// The module rights of users created without explicit access: OX's usual "all" set minus
/// the rights that need extra products [inf].
fn default_access() -> UserModuleAccess {
    let on = Some(true);
    let off = Some(false);
    UserModuleAccess {
        olox20: off,
        usm: off,
        active_sync: off,
        calendar: on,
        collect_email_addresses: on,
        contacts: on,
        delegate_task: on,
        denied_portal: off,
        edit_group: on,
        edit_password: on,
        edit_public_folders: on,
        edit_resource: on,
        global_address_book_disabled: off,
        ical: on,
        infostore: on,
        multiple_mail_accounts: on,
        public_folder_editable: off,
        publication: off,
        read_create_shared_folders: on,
        subscription: on,
        syncml: off,
        tasks: on,
        vcard: on,
        webdav: on,
        webdav_xml: on,
        webmail: on,
    }
}

/// OX's check of mandatory fields: fails naming those unset or empty, in the order given.
fn require_fields(fields: &[(&str, &Option<String>)]) -> OxResult<()> {
    let missing: Vec<&str> = fields
        .iter()
        .filter(|(_, v)| non_empty(v).is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(OxFault::invalid(format!(
        "Mandatory fields not set: {}",
        missing.join(", ")
    )))
}

/// The objects whose name matches an OX list pattern (none = `*`).
fn named_like<'a, T: Lookup + Clone + 'a>(
    objects: impl Iterator<Item = &'a T>,
    pattern: Option<&str>,
) -> Vec<T> {
    let pattern = pattern.unwrap_or("*");
    objects
        .filter(|o| matches_pattern(pattern, o.name().as_deref().unwrap_or("")))
        .cloned()
        .collect()
}

/// `*` is the only wildcard of OX's list patterns (`_` is escaped).
fn matches_pattern(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let mut rest = value;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The characters of a user name outside OX's default `CHECK_USER_UID_REGEXP`
/// `[$@%.+a-zA-Z0-9_-]`, if any.
fn is_allowed_user_name(name: &str) -> Option<String> {
    illegal_chars(name, "$@%.+_-")
}

/// The characters of a group or resource name outside OX's default `CHECK_GROUP_UID_REGEXP` /
/// `CHECK_RES_UID_REGEXP` `[ $@%.+a-zA-Z0-9_-]`, if any.
fn is_allowed_group_name(name: &str) -> Option<String> {
    illegal_chars(name, " $@%.+_-")
}

fn illegal_chars(name: &str, extra: &str) -> Option<String> {
    let illegal: String = name
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || extra.contains(*c)))
        .collect();
    (!illegal.is_empty()).then_some(illegal)
}

/// OX's `Illegal chars: "…"` refusal of a name, when the check is on.
fn check_name_chars(check: bool, name: &str, allowed: fn(&str) -> Option<String>) -> OxResult<()> {
    match allowed(name).filter(|_| check) {
        Some(illegal) => Err(OxFault::invalid(format!("Illegal chars: \"{illegal}\""))),
        None => Ok(()),
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn default_group_ref() -> Group {
    Group {
        displayname: Some("All users".into()),
        id: Some(DEFAULT_GROUP_ID),
        members: Vec::new(),
        name: Some("users".into()),
    }
}

impl OxState {
    pub(super) fn new(master: Credentials, options: OxPropertySettings) -> OxState {
        OxState {
            master,
            initial_options: options.clone(),
            options,
            contexts: BTreeMap::new(),
        }
    }

    /// Forgets every context and goes back to the start-up configuration.
    pub(super) fn reset(&mut self) {
        self.contexts.clear();
        self.options = self.initial_options.clone();
    }

    /// The current configuration.
    pub(super) fn options(&self) -> &OxPropertySettings {
        &self.options
    }

    /// Changes configuration properties, as an admin who edits OX's files and restarts OX.
    /// `AUTO_TO_LOWERCASE_UID` cannot change while contexts exist: OX's stored names would not
    /// follow either.
    pub(super) fn set_properties(
        &mut self,
        properties: &[(&str, &str)],
    ) -> Result<(), PropertyError> {
        let mut options = self.options.clone();
        options.set_all(properties.iter().copied())?;
        if options.lowercase_names != self.options.lowercase_names && !self.contexts.is_empty() {
            return Err(PropertyError::NotAtRuntime("AUTO_TO_LOWERCASE_UID".into()));
        }
        self.options = options;
        Ok(())
    }

    fn same_name(&self, a: &str, b: &str) -> bool {
        if self.options.lowercase_names {
            a.to_lowercase() == b.to_lowercase()
        } else {
            a == b
        }
    }

    fn normalize_name(&self, name: String) -> String {
        if self.options.lowercase_names {
            name.to_lowercase()
        } else {
            name
        }
    }

    // ----- authentication (ox-soap.md §4) -----

    fn is_master(&self, auth: Option<&Credentials>) -> bool {
        let Some(auth) = auth else { return false };
        let login_ok = match (&auth.login, &self.master.login) {
            (Some(a), Some(m)) => self.same_name(a, m),
            _ => false,
        };
        login_ok && auth.password.is_some() && auth.password == self.master.password
    }

    /// Master credentials (OXContextService, copyUser).
    pub(super) fn auth_master(&self, auth: Option<&Credentials>) -> OxResult<()> {
        if self.is_master(auth) {
            Ok(())
        } else {
            Err(OxFault::auth())
        }
    }

    /// Context-admin credentials of `ctx`; a missing context fails authentication too (OX
    /// does not let callers probe for contexts).
    fn auth_context(&self, ctx: Option<&Context>, auth: Option<&Credentials>) -> OxResult<i32> {
        let Some(id) = ctx.and_then(|c| c.id) else {
            return Err(OxFault::auth());
        };
        if self.options.master_override && self.is_master(auth) {
            return match self.contexts.contains_key(&id) {
                true => Ok(id),
                false => Err(OxFault::new(
                    FaultKind::NoSuchContext,
                    format!("The context {id} does not exist!"),
                )),
            };
        }
        let (Some(context), Some(auth)) = (self.contexts.get(&id), auth) else {
            return Err(OxFault::auth());
        };
        let Some(admin) = context.users.get(&context.admin_id) else {
            return Err(OxFault::auth());
        };
        let login = auth.login.as_deref().unwrap_or("");
        let login_ok = admin
            .user
            .name
            .as_deref()
            .is_some_and(|n| self.same_name(n, login));
        if login_ok && auth.password.is_some() && auth.password == admin.user.password {
            Ok(id)
        } else {
            Err(OxFault::auth())
        }
    }

    fn ctx_mut(&mut self, id: i32) -> &mut Ctx {
        // Only called with ids that `auth_context` or a lookup just found.
        self.contexts
            .get_mut(&id)
            .expect("context checked by the caller")
    }

    // ----- users, groups and resources by id or name -----

    /// The id of `object` in context `ctx_id`: by id, else by name (`ox-soap.md` §9.4).
    fn find_object<T: Lookup>(&self, ctx_id: i32, object: Option<&T>) -> OxResult<i32> {
        let context = &self.contexts[&ctx_id];
        let object = object.ok_or_else(T::no_reference)?;
        if let Some(id) = object.id() {
            return match T::exists(context, id) {
                true => Ok(id),
                false => Err(T::unknown_id(id, ctx_id)),
            };
        }
        let Some(name) = non_empty(object.name()) else {
            return Err(T::no_reference());
        };
        T::names(context)
            .other_than(&context.index.name_key(name), None)
            .ok_or_else(|| T::unknown_name(name, ctx_id))
    }

    /// The ids of the objects a delete addresses (at least one); the `protected` one (the
    /// context admin, the default group) cannot be deleted and fails with `refusal`.
    fn ids_to_delete<T: Lookup>(
        &self,
        ctx_id: i32,
        objects: &[T],
        protected: i32,
        refusal: &str,
    ) -> OxResult<Vec<i32>> {
        if objects.is_empty() {
            return Err(T::no_reference());
        }
        objects
            .iter()
            .map(|o| match self.find_object(ctx_id, Some(o))? {
                id if id == protected => Err(OxFault::invalid(refusal)),
                id => Ok(id),
            })
            .collect()
    }

    /// `getData`/`getMultipleData`: each object by id, else by name.
    pub(super) fn get_data<T: Lookup>(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        objects: Vec<T>,
    ) -> OxResult<Vec<T>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let context = &self.contexts[&ctx_id];
        objects
            .iter()
            .map(|o| {
                self.find_object(ctx_id, Some(o))
                    .map(|id| T::view(context, id))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns_know_only_the_star_wildcard() {
        assert!(matches_pattern("*", "anything"));
        assert!(matches_pattern("st*f", "staff"));
        assert!(matches_pattern("*ff", "staff"));
        assert!(matches_pattern("a*b*c", "aXbYc"));
        assert!(!matches_pattern("st_ff", "staff"));
        assert!(matches_pattern("staff", "staff"));
        assert!(!matches_pattern("s*x", "staff"));
    }

    #[test]
    fn user_names_outside_the_allowed_characters_are_reported() {
        assert_eq!(is_allowed_user_name("j.doe+1@x_y-$%"), None);
        assert_eq!(is_allowed_user_name("jö doe"), Some("ö ".to_string()));
        assert_eq!(is_allowed_group_name("Domain Users"), None);
        assert_eq!(is_allowed_group_name("Grüne"), Some("ü".to_string()));
    }
}
