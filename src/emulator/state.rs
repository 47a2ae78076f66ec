//! The emulated OX data and its rules: contexts with their admin, users, groups, resources and
//! secondary accounts; id assignment, uniqueness, authentication and OX's fault texts
//! (`ox-soap.md` §4, §8.2, §9). No XML here: the SOAP layer decodes requests into the typed
//! objects of [`crate::ox::soap::types`] and calls one method per operation.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::ox::soap::types::{
    Account, AccountDataOnCreate, Context, Credentials, Group, Resource, SoapObject, User,
    UserModuleAccess,
};
use crate::ox::soap::FaultKind;

/// An OX business exception: detail kind and message (without `; exceptionId`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OxFault {
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

/// Server behaviour switches (OX configuration properties the connector depends on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OxOptions {
    /// `com.openexchange.user.enforceUniqueDisplayName` (OX default `true`).
    pub unique_display_names: bool,
    /// `AUTO_TO_LOWERCASE_UID`: lower-case user/group names and auth logins (default `false`).
    pub lowercase_names: bool,
    /// Accept the master admin for context-admin calls (OX's master override; default `false`).
    pub master_override: bool,
    /// Check user names against `[$@%.+a-zA-Z0-9_-]` (`CHECK_USER_UID_FOR_NOT_ALLOWED_CHARS`).
    pub check_user_names: bool,
}

impl Default for OxOptions {
    fn default() -> Self {
        OxOptions {
            unique_display_names: true,
            lowercase_names: false,
            master_override: false,
            check_user_names: true,
        }
    }
}

/// The whole emulated OX.
#[derive(Debug)]
pub struct OxState {
    master: Credentials,
    options: OxOptions,
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
    /// Keys of names are lower-cased in lower-case mode (see [`OxOptions::lowercase_names`]).
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

fn is_allowed_user_name(name: &str) -> Option<String> {
    let illegal: String = name
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || "$@%.+_-".contains(*c)))
        .collect();
    (!illegal.is_empty()).then_some(illegal)
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl OxState {
    pub fn new(master: Credentials, options: OxOptions) -> OxState {
        OxState {
            master,
            options,
            contexts: BTreeMap::new(),
        }
    }

    /// Forgets every context.
    pub fn reset(&mut self) {
        self.contexts.clear();
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
    pub fn auth_master(&self, auth: Option<&Credentials>) -> OxResult<()> {
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

    // ----- OXContextService -----

    fn find_context_id(&self, ctx: Option<&Context>) -> OxResult<i32> {
        let ctx = ctx.ok_or_else(|| OxFault::invalid("Context is null"))?;
        if let Some(id) = ctx.id {
            return match self.contexts.contains_key(&id) {
                true => Ok(id),
                false => Err(OxFault::new(
                    FaultKind::NoSuchContext,
                    format!("Context {id} does not exist"),
                )),
            };
        }
        if let Some(name) = non_empty(&ctx.name) {
            return self
                .contexts
                .values()
                .find(|c| c.data.name.as_deref() == Some(name))
                .and_then(|c| c.data.id)
                .ok_or_else(|| {
                    OxFault::new(
                        FaultKind::NoSuchContext,
                        format!("Context {name} does not exist"),
                    )
                });
        }
        Err(OxFault::invalid("Context id or name is missing"))
    }

    /// `create`, `createModuleAccess`, `createModuleAccessByName`.
    pub fn create_context(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        admin: Option<User>,
        access: Option<UserModuleAccess>,
        access_combination: Option<String>,
    ) -> OxResult<Context> {
        self.auth_master(auth)?;
        let mut data = ctx.ok_or_else(|| OxFault::invalid("Context is null"))?;
        let admin = admin.ok_or_else(|| OxFault::invalid("Admin user is null"))?;
        let id = match data.id {
            Some(id) if id <= 0 => {
                return Err(OxFault::invalid(format!("Invalid context id {id}")))
            }
            Some(id) => id,
            None => self.contexts.keys().next_back().map_or(1, |max| max + 1),
        };
        if self.contexts.contains_key(&id) {
            return Err(OxFault::new(
                FaultKind::ContextExists,
                format!("Context {id} already exists"),
            ));
        }
        let name = non_empty(&data.name).map_or_else(|| id.to_string(), str::to_string);
        if self
            .contexts
            .values()
            .any(|c| c.data.name.as_deref() == Some(name.as_str()))
        {
            return Err(OxFault::new(
                FaultKind::ContextExists,
                format!("Context {name} already exists"),
            ));
        }
        for mapping in &data.login_mappings {
            if let Some(other) = self
                .contexts
                .values()
                .find(|c| c.data.login_mappings.contains(mapping))
            {
                return Err(OxFault::new(
                    FaultKind::ContextExists,
                    format!(
                        "Cannot map '{mapping}' to context {id}: already in use by context {}",
                        other.data.id.unwrap_or_default()
                    ),
                ));
            }
        }
        let admin_user = self.validate_new_user(None, admin, id)?;
        data.id = Some(id);
        data.name = Some(name);
        data.enabled = Some(data.enabled.unwrap_or(true));
        data.filestore_id = Some(3);
        data.filestore_name = Some(format!("{id}_ctx_store"));
        data.max_quota = Some(data.max_quota.unwrap_or(-1));
        data.used_quota = None;
        data.average_size = None;
        let access = access.unwrap_or_else(default_access);
        let mut context = Ctx {
            data: data.clone(),
            admin_id: ADMIN_ID,
            access_combination,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            resources: BTreeMap::new(),
            accounts: Vec::new(),
            index: Indexes {
                lowercase: self.options.lowercase_names,
                ..Indexes::default()
            },
            next_id: ADMIN_ID + 1,
            next_resource_id: 1,
            next_account_id: 1,
        };
        context.insert_group(
            DEFAULT_GROUP_ID,
            Group {
                displayname: Some("All users".into()),
                id: Some(DEFAULT_GROUP_ID),
                members: vec![ADMIN_ID],
                name: Some("users".into()),
            },
        );
        let mut user = admin_user;
        user.id = Some(ADMIN_ID);
        user.contextadmin = Some(true);
        user.default_group = Some(Box::new(default_group_ref()));
        context.insert_user(ADMIN_ID, UserRecord { user, access });
        self.contexts.insert(id, context);
        Ok(data)
    }

    pub fn change_context(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<()> {
        self.auth_master(auth)?;
        let id = self.find_context_id(ctx.as_ref())?;
        let Some(change) = ctx else { return Ok(()) };
        if let Some(name) = non_empty(&change.name) {
            if self
                .contexts
                .values()
                .any(|c| c.data.id != Some(id) && c.data.name.as_deref() == Some(name))
            {
                return Err(OxFault::new(
                    FaultKind::ContextExists,
                    format!("Context {name} already exists"),
                ));
            }
        }
        let context = self.ctx_mut(id);
        let data = &mut context.data;
        if let Some(name) = non_empty(&change.name) {
            data.name = Some(name.to_string());
        }
        if change.max_quota.is_some() {
            data.max_quota = change.max_quota;
        }
        if change.enabled.is_some() {
            data.enabled = change.enabled;
        }
        if !change.login_mappings.is_empty() {
            data.login_mappings = change.login_mappings.clone();
        }
        if let Some(attrs) = &change.user_attributes {
            let target = data.user_attributes.get_or_insert_with(Default::default);
            for (namespace, inner) in &attrs.0 {
                let t = target.0.entry(namespace.clone()).or_default();
                t.extend(inner.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Ok(())
    }

    pub fn set_context_enabled(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        enabled: bool,
    ) -> OxResult<()> {
        self.auth_master(auth)?;
        let id = self.find_context_id(ctx.as_ref())?;
        self.ctx_mut(id).data.enabled = Some(enabled);
        Ok(())
    }

    pub fn delete_context(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<()> {
        self.auth_master(auth)?;
        let id = self.find_context_id(ctx.as_ref())?;
        self.contexts.remove(&id);
        Ok(())
    }

    pub fn context_exists(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<bool> {
        self.auth_master(auth)?;
        match self.find_context_id(ctx.as_ref()) {
            Ok(_) => Ok(true),
            Err(f) if f.kind == FaultKind::NoSuchContext => Ok(false),
            Err(f) => Err(f),
        }
    }

    pub fn get_context(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<Context> {
        self.auth_master(auth)?;
        let id = self.find_context_id(ctx.as_ref())?;
        Ok(self.contexts[&id].data.clone())
    }

    pub fn get_context_admin_id(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<i32> {
        self.auth_master(auth)?;
        let id = self.find_context_id(ctx.as_ref())?;
        Ok(self.contexts[&id].admin_id)
    }

    pub fn list_contexts(
        &self,
        auth: Option<&Credentials>,
        pattern: Option<&str>,
    ) -> OxResult<Vec<Context>> {
        self.auth_master(auth)?;
        let pattern = pattern.unwrap_or("*");
        Ok(self
            .contexts
            .values()
            .filter(|c| {
                let name = c.data.name.as_deref().unwrap_or("");
                let id = c.data.id.unwrap_or_default().to_string();
                matches_pattern(pattern, name) || matches_pattern(pattern, &id)
            })
            .map(|c| c.data.clone())
            .collect())
    }

    // ----- OXUserService -----

    /// Mandatory fields, name rules and uniqueness of a new user (`ox-soap.md` §7, §9.11).
    fn validate_new_user(
        &self,
        context: Option<&Ctx>,
        mut user: User,
        ctx_id: i32,
    ) -> OxResult<User> {
        require_fields(&[
            ("name", &user.name),
            ("display_name", &user.display_name),
            ("password", &user.password),
            ("given_name", &user.given_name),
            ("sur_name", &user.sur_name),
            ("primaryEmail", &user.primary_email),
            ("email1", &user.email1),
        ])?;
        let name = self.normalize_name(user.name.take().unwrap_or_default());
        if self.options.check_user_names {
            if let Some(illegal) = is_allowed_user_name(&name) {
                return Err(OxFault::invalid(format!("Illegal chars: \"{illegal}\"")));
            }
        }
        user.name = Some(name);
        if user.primary_email != user.email1 {
            return Err(OxFault::invalid(
                "primarymail must have the same value as email1",
            ));
        }
        if let Some(context) = context {
            self.check_user_unique(context, &user, None, ctx_id)?;
        }
        let primary = user.primary_email.clone().unwrap_or_default();
        if !user.aliases.contains(&primary) {
            user.aliases.insert(0, primary.clone());
        }
        if non_empty(&user.default_sender_address).is_none() {
            user.default_sender_address = Some(primary);
        }
        check_sender_address(&user)?;
        user.contextadmin = Some(false);
        user.password_mech = Some(
            user.password_mech
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "{SHA-256}".into()),
        );
        user.mailenabled = Some(user.mailenabled.unwrap_or(true));
        Ok(user)
    }

    /// Name, display name and primary mail must be unique in the context (excluding `me`).
    fn check_user_unique(
        &self,
        context: &Ctx,
        user: &User,
        me: Option<i32>,
        ctx_id: i32,
    ) -> OxResult<()> {
        let ix = &context.index;
        if let Some(name) = non_empty(&user.name) {
            if ix.user_names.other_than(&ix.name_key(name), me).is_some() {
                return Err(OxFault::invalid(format!(
                    "User {name} already exists in this context"
                )));
            }
        }
        if let Some(display) = non_empty(&user.display_name) {
            if self.options.unique_display_names
                && ix.display_names.other_than(display, me).is_some()
            {
                return Err(OxFault::invalid("The displayname is already used"));
            }
        }
        if let Some(mail) = non_empty(&user.primary_email) {
            if ix.primary_mails.other_than(mail, me).is_some() {
                return Err(OxFault::invalid(format!(
                    "Primary mail address \"{mail}\" already exists in context {ctx_id}"
                )));
            }
        }
        Ok(())
    }

    pub fn create_user(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
        access: Option<UserModuleAccess>,
    ) -> OxResult<User> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let user = user.ok_or_else(|| OxFault::invalid("User is null"))?;
        let user = self.validate_new_user(Some(&self.contexts[&ctx_id]), user, ctx_id)?;
        let context = self.ctx_mut(ctx_id);
        let id = context.add_user(user, access.unwrap_or_else(default_access));
        Ok(context.users[&id].user.clone())
    }

    pub fn change_user(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        change: Option<User>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let change = change.ok_or_else(|| OxFault::invalid("User is null"))?;
        // Rename = id + new name: `find_object` looks up by id first, by name only without id.
        let id = self.find_object(ctx_id, Some(&change))?;
        let mut updated = self.contexts[&ctx_id].users[&id].user.clone();
        let mut change = change;
        if let Some(name) = change.name.take() {
            let name = self.normalize_name(name);
            if name.is_empty() {
                return Err(OxFault::invalid("Invalid username"));
            }
            if self.options.check_user_names {
                if let Some(illegal) = is_allowed_user_name(&name) {
                    return Err(OxFault::invalid(format!("Illegal chars: \"{illegal}\"")));
                }
            }
            change.name = Some(name);
        }
        // Server-managed fields cannot be changed.
        change.id = None;
        change.contextadmin = None;
        change.default_group = None;
        updated.merge_from(&change);
        if updated.primary_email != updated.email1 {
            return Err(OxFault::invalid(
                "primarymail must have the same value as email1",
            ));
        }
        let probe = User {
            name: change.name.clone(),
            display_name: change.display_name.clone(),
            primary_email: change.primary_email.clone(),
            ..User::default()
        };
        self.check_user_unique(&self.contexts[&ctx_id], &probe, Some(id), ctx_id)?;
        check_sender_address(&updated)?;
        self.ctx_mut(ctx_id).replace_user(id, updated);
        Ok(())
    }

    pub fn change_user_access(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
        access: Option<UserModuleAccess>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, user.as_ref())?;
        let access = access.ok_or_else(|| OxFault::invalid("Module access is null"))?;
        let record = self
            .ctx_mut(ctx_id)
            .users
            .get_mut(&id)
            // The id was looked up above, under the same lock.
            .expect("user found above");
        record.access.merge_from(&access);
        Ok(())
    }

    pub fn delete_user(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        users: Vec<User>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let admin_id = self.contexts[&ctx_id].admin_id;
        let ids = self.ids_to_delete(ctx_id, &users, admin_id, "Admin delete not supported")?;
        let context = self.ctx_mut(ctx_id);
        for id in ids {
            context.remove_user(id);
            for group in context.groups.values_mut() {
                group.members.retain(|m| *m != id);
            }
            context.accounts.retain(|a| a.user_id != Some(id));
        }
        Ok(())
    }

    pub fn user_exists(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
    ) -> OxResult<bool> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        match self.find_object(ctx_id, user.as_ref()) {
            Ok(_) => Ok(true),
            Err(f) if f.kind == FaultKind::NoSuchUser => Ok(false),
            Err(f) => Err(f),
        }
    }

    pub fn get_user_access(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
    ) -> OxResult<UserModuleAccess> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, user.as_ref())?;
        Ok(self.contexts[&ctx_id].users[&id].access.clone())
    }

    pub fn get_context_admin(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<User> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let context = &self.contexts[&ctx_id];
        Ok(User::view(context, context.admin_id))
    }

    /// `listAll`/`list`/`listCaseInsensitive`: users with only their `id`, as OX answers.
    pub fn list_users(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        pattern: Option<&str>,
        case_insensitive: bool,
    ) -> OxResult<Vec<User>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let pattern = pattern.unwrap_or("*");
        Ok(self.contexts[&ctx_id]
            .users
            .values()
            .filter(|r| {
                let name = r.user.name.as_deref().unwrap_or("");
                if case_insensitive {
                    matches_pattern(&pattern.to_lowercase(), &name.to_lowercase())
                } else {
                    matches_pattern(pattern, name)
                }
            })
            .map(|r| User {
                id: r.user.id,
                ..User::default()
            })
            .collect())
    }

    // ----- OXGroupService -----

    fn check_members(&self, ctx_id: i32, members: &[i32]) -> OxResult<Vec<i32>> {
        let context = &self.contexts[&ctx_id];
        let mut unique = Vec::with_capacity(members.len());
        for &m in members {
            if !context.users.contains_key(&m) {
                return Err(OxFault::new(FaultKind::NoSuchUser, "No such user"));
            }
            if !unique.contains(&m) {
                unique.push(m);
            }
        }
        Ok(unique)
    }

    pub fn create_group(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        group: Option<Group>,
    ) -> OxResult<Group> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let mut group = group.ok_or_else(|| OxFault::invalid("Group is null"))?;
        require_fields(&[("name", &group.name), ("displayname", &group.displayname)])?;
        let name = self.normalize_name(group.name.take().unwrap_or_default());
        let index = &self.contexts[&ctx_id].index;
        if index
            .group_names
            .other_than(&index.name_key(&name), None)
            .is_some()
        {
            return Err(OxFault::invalid("Group already exists!"));
        }
        group.members = self.check_members(ctx_id, &group.members)?;
        group.name = Some(name);
        let context = self.ctx_mut(ctx_id);
        let id = context.take_next_id();
        group.id = Some(id);
        context.insert_group(id, group.clone());
        Ok(group)
    }

    pub fn change_group(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        change: Option<Group>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let change = change.ok_or_else(|| OxFault::invalid("Group is null"))?;
        let id = self.find_object(ctx_id, Some(&change))?;
        let new_name = change.name.clone().map(|n| self.normalize_name(n));
        if let Some(name) = &new_name {
            if name.is_empty() {
                return Err(OxFault::invalid("Invalid group name"));
            }
            let index = &self.contexts[&ctx_id].index;
            if index
                .group_names
                .other_than(&index.name_key(name), Some(id))
                .is_some()
            {
                return Err(OxFault::invalid(format!(
                    "Group {name} already exists in this context"
                )));
            }
        }
        // OX replaces the membership with the sent list; no `members` = empty list.
        let members = self.check_members(ctx_id, &change.members)?;
        let context = self.ctx_mut(ctx_id);
        let Some(mut group) = context.remove_group(id) else {
            return Err(OxFault::new(FaultKind::NoSuchGroup, "No such group"));
        };
        if let Some(name) = new_name {
            group.name = Some(name);
        }
        if let Some(displayname) = change.displayname {
            group.displayname = Some(displayname);
        }
        group.members = members;
        context.insert_group(id, group);
        Ok(())
    }

    pub fn delete_groups(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        groups: Vec<Group>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let refusal = format!("Group with id {DEFAULT_GROUP_ID} cannot be deleted");
        let ids = self.ids_to_delete(ctx_id, &groups, DEFAULT_GROUP_ID, &refusal)?;
        let context = self.ctx_mut(ctx_id);
        for id in ids {
            context.remove_group(id);
        }
        Ok(())
    }

    pub fn get_default_group(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
    ) -> OxResult<Group> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        Ok(self.contexts[&ctx_id].groups[&DEFAULT_GROUP_ID].clone())
    }

    pub fn group_members(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        group: Option<Group>,
    ) -> OxResult<Vec<User>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, group.as_ref())?;
        Ok(self.contexts[&ctx_id].groups[&id]
            .members
            .iter()
            .map(|m| User::with_id(*m))
            .collect())
    }

    pub fn list_groups(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        pattern: Option<&str>,
    ) -> OxResult<Vec<Group>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        Ok(named_like(self.contexts[&ctx_id].groups.values(), pattern))
    }

    pub fn list_groups_for_user(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        user: Option<User>,
    ) -> OxResult<Vec<Group>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, user.as_ref())?;
        Ok(self.contexts[&ctx_id]
            .groups
            .values()
            .filter(|g| g.members.contains(&id))
            .cloned()
            .collect())
    }

    pub fn change_members(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        group: Option<Group>,
        members: Vec<User>,
        add: bool,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, group.as_ref())?;
        let mut ids = Vec::new();
        for member in &members {
            let user_id = member
                .id
                .ok_or_else(|| OxFault::invalid("One userobject has no userid"))?;
            if add && !self.contexts[&ctx_id].users.contains_key(&user_id) {
                return Err(OxFault::new(FaultKind::NoSuchUser, "No such user"));
            }
            ids.push(user_id);
        }
        let group = self
            .ctx_mut(ctx_id)
            .groups
            .get_mut(&id)
            // The id was looked up above, under the same lock.
            .expect("group found above");
        if add {
            if ids.iter().any(|m| group.members.contains(m)) {
                return Err(OxFault::invalid("Member already exists in group"));
            }
            for m in ids {
                if !group.members.contains(&m) {
                    group.members.push(m);
                }
            }
        } else {
            group.members.retain(|m| !ids.contains(m));
        }
        Ok(())
    }

    // ----- OXResourceService -----

    fn check_resource_unique(
        &self,
        ctx_id: i32,
        resource: &Resource,
        me: Option<i32>,
    ) -> OxResult<()> {
        let index = &self.contexts[&ctx_id].index;
        if let Some(name) = non_empty(&resource.name) {
            if index
                .resource_names
                .other_than(&index.name_key(name), me)
                .is_some()
            {
                return Err(OxFault::invalid(format!(
                    "Resource {name} already exists in this context"
                )));
            }
        }
        if let Some(mail) = non_empty(&resource.email) {
            if index.resource_mails.other_than(mail, me).is_some() {
                return Err(OxFault::invalid(format!(
                    "Resource e-mail address {mail} already exists in this context"
                )));
            }
        }
        Ok(())
    }

    pub fn create_resource(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        resource: Option<Resource>,
    ) -> OxResult<Resource> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let mut resource = resource.ok_or_else(|| OxFault::invalid("Resource is null"))?;
        require_fields(&[
            ("name", &resource.name),
            ("displayname", &resource.displayname),
            ("email", &resource.email),
        ])?;
        resource.name = resource.name.map(|n| self.normalize_name(n));
        self.check_resource_unique(ctx_id, &resource, None)?;
        let context = self.ctx_mut(ctx_id);
        let id = context.next_resource_id;
        context.next_resource_id += 1;
        resource.id = Some(id);
        resource.available = Some(resource.available.unwrap_or(true));
        context.insert_resource(id, resource.clone());
        Ok(resource)
    }

    pub fn change_resource(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        change: Option<Resource>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let mut change = change.ok_or_else(|| OxFault::invalid("Resource is null"))?;
        let id = self.find_object(ctx_id, Some(&change))?;
        change.id = None;
        change.name = change.name.map(|n| self.normalize_name(n));
        if change.name.as_deref() == Some("") {
            return Err(OxFault::invalid("Invalid resource name"));
        }
        self.check_resource_unique(ctx_id, &change, Some(id))?;
        let context = self.ctx_mut(ctx_id);
        if let Some(mut resource) = context.remove_resource(id) {
            resource.merge_from(&change);
            context.insert_resource(id, resource);
        }
        Ok(())
    }

    pub fn delete_resource(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        resource: Option<Resource>,
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let id = self.find_object(ctx_id, resource.as_ref())?;
        self.ctx_mut(ctx_id).remove_resource(id);
        Ok(())
    }

    pub fn list_resources(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        pattern: Option<&str>,
    ) -> OxResult<Vec<Resource>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        Ok(named_like(
            self.contexts[&ctx_id].resources.values(),
            pattern,
        ))
    }

    // ----- OXUserCopyService -----

    pub fn copy_user(
        &mut self,
        auth: Option<&Credentials>,
        user: Option<User>,
        src: Option<Context>,
        dest: Option<Context>,
    ) -> OxResult<User> {
        self.auth_master(auth)?;
        let src_id = src
            .and_then(|c| c.id)
            .ok_or_else(|| OxFault::invalid("Client sent invalid source context data object"))?;
        let dest_id = dest.and_then(|c| c.id).ok_or_else(|| {
            OxFault::invalid("Client sent invalid destination context data object")
        })?;
        for id in [src_id, dest_id] {
            if !self.contexts.contains_key(&id) {
                return Err(OxFault::new(
                    FaultKind::NoSuchContext,
                    format!("Context {id} does not exist"),
                ));
            }
        }
        let user_id = user
            .as_ref()
            .and_then(|u| u.id)
            .ok_or_else(|| OxFault::invalid("Client sent invalid user data object"))?;
        let Some(record) = self.contexts[&src_id].users.get(&user_id).cloned() else {
            return Err(OxFault::new(
                FaultKind::NoSuchUser,
                format!("No such user {user_id} in context {src_id}"),
            ));
        };
        let name = record.user.name.clone().unwrap_or_default();
        let dest_index = &self.contexts[&dest_id].index;
        if dest_index
            .user_names
            .other_than(&dest_index.name_key(&name), None)
            .is_some()
        {
            return Err(OxFault::new(
                FaultKind::UserExists,
                format!("User {name} already exists in context {dest_id}"),
            ));
        }
        let id = self.ctx_mut(dest_id).add_user(record.user, record.access);
        Ok(User::with_id(id))
    }

    // ----- OXSecondaryAccountService -----

    /// The users an account operation addresses: listed users plus members of listed groups
    /// (group 0 = all users, accepted without existence check).
    fn account_scope(&self, ctx_id: i32, users: &[i32], groups: &[i32]) -> OxResult<Vec<i32>> {
        let context = &self.contexts[&ctx_id];
        let mut scope = Vec::new();
        for &u in users {
            if !context.users.contains_key(&u) {
                return Err(OxFault::new(
                    FaultKind::NoSuchUser,
                    format!("No such user {u} in context {ctx_id}"),
                ));
            }
            scope.push(u);
        }
        for &g in groups {
            let members: Vec<i32> = if g == 0 {
                context.users.keys().copied().collect()
            } else {
                match context.groups.get(&g) {
                    Some(group) => group.members.clone(),
                    None => {
                        return Err(OxFault::new(
                            FaultKind::NoSuchUser,
                            format!("No such group {g} in context {ctx_id}"),
                        ))
                    }
                }
            };
            scope.extend(members);
        }
        scope.sort_unstable();
        scope.dedup();
        Ok(scope)
    }

    pub fn create_account(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        data: Option<AccountDataOnCreate>,
        users: &[i32],
        groups: &[i32],
    ) -> OxResult<()> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let data = data.ok_or_else(|| OxFault::invalid("Account data is missing."))?;
        if users.is_empty() && groups.is_empty() {
            return Err(OxFault::invalid("Missing users/groups in account data"));
        }
        let Some(address) = non_empty(&data.primary_address).map(str::to_string) else {
            return Err(OxFault::invalid("Primary address is empty."));
        };
        let scope = self.account_scope(ctx_id, users, groups)?;
        let context = self.ctx_mut(ctx_id);
        if let Some(dup) = context.accounts.iter().find(|a| {
            a.primary_address.as_deref() == Some(address.as_str())
                && a.user_id.is_some_and(|u| scope.contains(&u))
        }) {
            return Err(OxFault::invalid(format!(
                "Account with primary address {address} already exists for user {}",
                dup.user_id.unwrap_or_default()
            )));
        }
        for user_id in scope {
            let id = context.next_account_id;
            context.next_account_id += 1;
            let endpoint = endpoint_of(&data, context.users.get(&user_id).map(|r| &r.user));
            context.accounts.push(Account {
                context_id: Some(ctx_id),
                user_id: Some(user_id),
                id: Some(id),
                login: data.login.clone(),
                password: data.password.clone(),
                name: data.name.clone(),
                primary_address: Some(address.clone()),
                personal: data.personal.clone(),
                reply_to: data.reply_to.clone(),
                mail_server: endpoint.mail_server,
                mail_port: endpoint.mail_port,
                mail_protocol: endpoint.mail_protocol,
                mail_secure: endpoint.mail_secure,
                mail_start_tls: endpoint.mail_start_tls,
                transport_login: data.transport_login.clone(),
                transport_password: data.transport_password.clone(),
                transport_server: endpoint.transport_server,
                transport_port: endpoint.transport_port,
                transport_protocol: endpoint.transport_protocol,
                transport_secure: endpoint.transport_secure,
                transport_start_tls: endpoint.transport_start_tls,
                archive_fullname: data.archive_fullname.clone(),
                drafts_fullname: data.drafts_fullname.clone(),
                sent_fullname: data.sent_fullname.clone(),
                spam_fullname: data.spam_fullname.clone(),
                trash_fullname: data.trash_fullname.clone(),
                confirmed_spam_fullname: data.confirmed_spam_fullname.clone(),
                confirmed_ham_fullname: data.confirmed_ham_fullname.clone(),
            });
        }
        Ok(())
    }

    pub fn delete_account(
        &mut self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        primary_address: Option<&str>,
        users: &[i32],
        groups: &[i32],
    ) -> OxResult<bool> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        if users.is_empty() && groups.is_empty() {
            return Err(OxFault::invalid("Missing users/groups in account data"));
        }
        let Some(address) = primary_address.filter(|a| !a.is_empty()) else {
            return Err(OxFault::invalid("Primary address is empty."));
        };
        let scope = self.account_scope(ctx_id, users, groups)?;
        let context = self.ctx_mut(ctx_id);
        let before = context.accounts.len();
        context.accounts.retain(|a| {
            !(a.primary_address.as_deref() == Some(address)
                && a.user_id.is_some_and(|u| scope.contains(&u)))
        });
        Ok(context.accounts.len() != before)
    }

    pub fn list_accounts(
        &self,
        auth: Option<&Credentials>,
        ctx: Option<Context>,
        users: &[i32],
        groups: &[i32],
    ) -> OxResult<Vec<Account>> {
        let ctx_id = self.auth_context(ctx.as_ref(), auth)?;
        let all = users.is_empty() && groups.is_empty();
        let scope = self.account_scope(ctx_id, users, groups)?;
        Ok(self.contexts[&ctx_id]
            .accounts
            .iter()
            .filter(|a| all || a.user_id.is_some_and(|u| scope.contains(&u)))
            .map(|a| Account {
                password: None,
                transport_password: None,
                ..a.clone()
            })
            .collect())
    }

    // ----- snapshot -----

    pub fn snapshot(&self) -> StateSnapshot {
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

/// Mail and transport endpoints of a secondary account.
#[derive(Default)]
struct Endpoint {
    mail_server: Option<String>,
    mail_port: Option<i32>,
    mail_protocol: Option<String>,
    mail_secure: Option<bool>,
    mail_start_tls: Option<bool>,
    transport_server: Option<String>,
    transport_port: Option<i32>,
    transport_protocol: Option<String>,
    transport_secure: Option<bool>,
    transport_start_tls: Option<bool>,
}

/// `mailEndpointSource`/`transportEndpointSource` = `primary` take the server of the user's
/// primary account (`imapServer`/`smtpServer`); otherwise the account data's own values.
fn endpoint_of(data: &AccountDataOnCreate, user: Option<&User>) -> Endpoint {
    // `imaps://` → ("imap", secure); `imap://` → ("imap", STARTTLS).
    fn scheme(schema: Option<&str>, default: &str) -> (String, bool) {
        let schema = schema.unwrap_or(default).trim_end_matches("://");
        match schema.strip_suffix('s') {
            Some(base) if !base.is_empty() => (base.to_string(), true),
            _ => (schema.to_string(), false),
        }
    }
    let mut e = Endpoint {
        mail_server: data.mail_server.clone(),
        mail_port: data.mail_port,
        mail_protocol: data.mail_protocol.clone(),
        mail_secure: data.mail_secure,
        mail_start_tls: data.mail_start_tls,
        transport_server: data.transport_server.clone(),
        transport_port: data.transport_port,
        transport_protocol: data.transport_protocol.clone(),
        transport_secure: data.transport_secure,
        transport_start_tls: data.transport_start_tls,
    };
    let Some(user) = user else { return e };
    if data.mail_endpoint_source.as_deref() == Some("primary") {
        let (protocol, secure) = scheme(user.imap_schema.as_deref(), "imap://");
        e.mail_server = user.imap_server.clone();
        e.mail_port = user.imap_port;
        e.mail_protocol = Some(protocol);
        e.mail_secure = Some(secure);
        e.mail_start_tls = Some(!secure);
    }
    if data.transport_endpoint_source.as_deref() == Some("primary") {
        let (protocol, secure) = scheme(user.smtp_schema.as_deref(), "smtp://");
        e.transport_server = user.smtp_server.clone();
        e.transport_port = user.smtp_port;
        e.transport_protocol = Some(protocol);
        e.transport_secure = Some(secure);
        e.transport_start_tls = Some(!secure);
    }
    e
}

fn default_group_ref() -> Group {
    Group {
        displayname: Some("All users".into()),
        id: Some(DEFAULT_GROUP_ID),
        members: Vec::new(),
        name: Some("users".into()),
    }
}

/// `defaultSenderAddress` must be one of the user's addresses [inf, message not known].
fn check_sender_address(user: &User) -> OxResult<()> {
    let Some(sender) = non_empty(&user.default_sender_address) else {
        return Ok(());
    };
    let known =
        user.aliases.iter().any(|a| a == sender) || user.primary_email.as_deref() == Some(sender);
    if known {
        Ok(())
    } else {
        Err(OxFault::invalid(format!(
            "The default sender address {sender} is not one of the user's aliases"
        )))
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
    }
}
