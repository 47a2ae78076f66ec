//! Synthetic change streams for the benchmarks and the reliability suite: a seeded, reproducible
//! mix of listener files (contexts, users, groups, resources; creates, modifies, moves,
//! deletes) together with the OX state they must produce.
//!
//! The daemon never uses this module. Every change carries a per-object **version** where the
//! emulator shows it (a user's `room_number`, a resource's `description`, a context's
//! `maxQuota`), so a test can tell from the emulator's state which change of an object was
//! applied last: [`Workload::applied_version`] and [`Expected::diff`].
//!
//! The stream is consistent the way UDM is: users are created in live contexts, a context is
//! deleted only after its users and resources were moved out, a group change adds or removes
//! one member (or, in [`WorkloadSettings::group_replacements`] of them, sets the whole list;
//! members come from any context), deleting a user also changes the groups it was in, and
//! every file carries the object's full current state.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::emulator::StateSnapshot;

/// The base DN of the generated objects.
pub const BASE_DN: &str = "dc=example,dc=org";
/// The mail domain of the generated objects.
pub const MAIL_DOMAIN: &str = "example.org";

/// What a change does to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Create,
    Modify,
    /// A user or resource changing its OX context.
    Move,
    Delete,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Modify => "modify",
            ChangeKind::Move => "move",
            ChangeKind::Delete => "delete",
        }
    }
}

/// The kind of object a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    Context,
    User,
    Group,
    Resource,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Context => "context",
            ObjectKind::User => "user",
            ObjectKind::Group => "group",
            ObjectKind::Resource => "resource",
        }
    }
}

/// One listener file of the stream.
#[derive(Debug, Clone)]
pub struct Change {
    /// The listener file name; names sort in stream order.
    pub file: String,
    /// The file's JSON content (the converter's five keys).
    pub content: Value,
    pub kind: ChangeKind,
    pub object: ObjectKind,
    /// The entry UUID.
    pub entry_uuid: String,
    /// The object's name (context: its id) — how it is found in the emulator's state.
    pub name: String,
    /// The object's version after this change (1 for the create).
    pub version: u64,
}

/// Shape of a generated stream.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadSettings {
    /// Number of listener files.
    pub changes: usize,
    /// Contexts created at the start.
    pub contexts: usize,
    pub seed: u64,
    /// The share of group changes that set the whole member list at once (a script, an
    /// import: 1–4 users of any context); the others add or remove one member.
    pub group_replacements: f64,
}

impl WorkloadSettings {
    pub fn new(changes: usize) -> Self {
        Self {
            changes,
            contexts: (changes / 500).clamp(2, 50),
            seed: 42,
            group_replacements: 0.0,
        }
    }
}

/// A generated stream and the OX state it must produce.
#[derive(Debug, Clone)]
pub struct Workload {
    pub changes: Vec<Change>,
    pub expected: Expected,
}

/// The OX state a stream must produce: per context its quota, users, groups (member user
/// names) and resources. OX's own objects (the context admin, group `users`) are left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    pub contexts: BTreeMap<i32, ExpectedContext>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpectedContext {
    pub quota: i64,
    /// User name → (display name, primary mail, version).
    pub users: BTreeMap<String, (String, String, u64)>,
    /// Group name → member user names.
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// Resource name → (mail, version).
    pub resources: BTreeMap<String, (String, u64)>,
}

#[derive(Debug, Clone)]
struct UserModel {
    uuid: String,
    context: i32,
    version: u64,
    alt: Vec<String>,
    groups: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct GroupModel {
    uuid: String,
    members: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct ResourceModel {
    uuid: String,
    context: i32,
    version: u64,
}

#[derive(Debug, Clone)]
struct ContextModel {
    uuid: String,
    version: u64,
}

/// Names that can be picked at random in O(1) (a `BTreeMap` cannot).
#[derive(Default)]
struct Pool {
    names: Vec<String>,
    index: std::collections::HashMap<String, usize>,
}

impl Pool {
    fn insert(&mut self, name: &str) {
        self.index.insert(name.to_owned(), self.names.len());
        self.names.push(name.to_owned());
    }

    fn remove(&mut self, name: &str) {
        if let Some(i) = self.index.remove(name) {
            self.names.swap_remove(i);
            if let Some(moved) = self.names.get(i) {
                self.index.insert(moved.clone(), i);
            }
        }
    }

    fn pick(&self, rng: &mut StdRng) -> Option<String> {
        self.names.choose(rng).cloned()
    }
}

/// The generator's model of the directory.
struct Model {
    user_pool: Pool,
    group_pool: Pool,
    resource_pool: Pool,
    rng: StdRng,
    group_replacements: f64,
    changes: Vec<Change>,
    contexts: BTreeMap<i32, ContextModel>,
    users: BTreeMap<String, UserModel>,
    groups: BTreeMap<String, GroupModel>,
    resources: BTreeMap<String, ResourceModel>,
    next_object: u64,
    next_context: i32,
}

/// The `n`-th listener file name of a stream (microseconds after 2025-01-01 00:00:00).
pub fn file_name(n: usize) -> String {
    // The date is valid, so `and_hms_opt` cannot fail.
    let base = NaiveDate::from_ymd_opt(2025, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    (base + Duration::microseconds(n as i64 + 1))
        .format("%Y-%m-%d-%H-%M-%S-%6f.json")
        .to_string()
}

pub fn user_dn(name: &str) -> String {
    format!("uid={name},cn=users,{BASE_DN}")
}

pub fn group_dn(name: &str) -> String {
    format!("cn={name},cn=groups,{BASE_DN}")
}

fn context_dn(id: i32) -> String {
    format!("cn=context{id},cn=open-xchange,{BASE_DN}")
}

fn resource_dn(name: &str) -> String {
    format!("cn={name},cn=oxresources,cn=open-xchange,{BASE_DN}")
}

fn listener_json(dn: String, uuid: &str, module: &str, object: Option<Value>) -> Value {
    let options = if object.is_some() {
        json!(["default"])
    } else {
        Value::Null
    };
    json!({
        "dn": dn,
        "id": uuid,
        "object": object.unwrap_or(Value::Null),
        "options": options,
        "udm_object_type": module,
    })
}

impl Workload {
    /// Generates a stream of `config.changes` listener files.
    pub fn generate(config: WorkloadSettings) -> Self {
        let mut model = Model {
            rng: StdRng::seed_from_u64(config.seed),
            group_replacements: config.group_replacements,
            user_pool: Pool::default(),
            group_pool: Pool::default(),
            resource_pool: Pool::default(),
            changes: Vec::with_capacity(config.changes),
            contexts: BTreeMap::new(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            resources: BTreeMap::new(),
            next_object: 0,
            next_context: 100,
        };
        for _ in 0..config.contexts.min(config.changes) {
            model.create_context();
        }
        while model.changes.len() < config.changes {
            model.step();
        }
        model.changes.truncate(config.changes);
        // Truncating may cut a sequence short (a context deletion after its moves); the
        // expected state is therefore computed by replaying what was kept.
        let expected = Expected::replay(&model.changes);
        Workload {
            changes: model.changes,
            expected,
        }
    }

    /// Writes every change into `dir` the way the converter does.
    pub fn write_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        for change in &self.changes {
            crate::listener::write::write(dir, &change.file, &change.content)?;
        }
        Ok(())
    }

    /// The version of `change`'s object that `state` shows, `None` if the object is absent.
    /// Groups have no version; they report 0 when present.
    pub fn applied_version(change: &Change, state: &StateSnapshot) -> Option<u64> {
        let version = |text: Option<&str>| {
            text.and_then(|t| t.strip_prefix('v'))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        match change.object {
            ObjectKind::Context => {
                let id: i32 = change.name.parse().ok()?;
                let ctx = state.context(id)?;
                Some(ctx.data.max_quota.unwrap_or(0).max(0) as u64)
            }
            ObjectKind::User => state.contexts.iter().find_map(|c| {
                c.users
                    .iter()
                    .find(|u| u.name == change.name)
                    .map(|u| version(u.data.room_number.as_deref()))
            }),
            ObjectKind::Resource => state.contexts.iter().find_map(|c| {
                c.resources
                    .iter()
                    .find(|r| r.name.as_deref() == Some(change.name.as_str()))
                    .map(|r| version(r.description.as_deref()))
            }),
            ObjectKind::Group => state
                .contexts
                .iter()
                .any(|c| {
                    c.groups
                        .iter()
                        .any(|g| g.name.as_deref() == Some(change.name.as_str()))
                })
                .then_some(0),
        }
    }
}

impl Model {
    fn uuid(&mut self) -> String {
        self.next_object += 1;
        format!(
            "{:08x}-0000-4000-8000-{:012x}",
            self.next_object, self.next_object
        )
    }

    fn push(
        &mut self,
        kind: ChangeKind,
        object: ObjectKind,
        uuid: &str,
        name: &str,
        version: u64,
        content: Value,
    ) {
        let file = file_name(self.changes.len());
        self.changes.push(Change {
            file,
            content,
            kind,
            object,
            entry_uuid: uuid.to_owned(),
            name: name.to_owned(),
            version,
        });
    }

    fn live_contexts(&self) -> Vec<i32> {
        self.contexts.keys().copied().collect()
    }

    fn random_context(&mut self) -> i32 {
        let ids = self.live_contexts();
        // There is always at least one context (the last one is never deleted).
        *ids.choose(&mut self.rng).unwrap_or(&100)
    }

    fn step(&mut self) {
        let roll: u32 = self.rng.random_range(0..1000);
        match roll {
            0..=299 => self.create_user(),
            300..=579 => self.modify_user(),
            580..=619 => self.move_user(),
            620..=659 => self.delete_user(),
            660..=699 => self.create_group(),
            700..=779 => self.modify_group(),
            780..=799 => self.delete_group(),
            800..=859 => self.create_resource(),
            860..=919 => self.modify_resource(),
            920..=944 => self.move_resource(),
            945..=969 => self.delete_resource(),
            970..=989 => self.modify_context(),
            990..=994 => self.create_context(),
            _ => self.delete_context(),
        }
    }

    fn context_file(&self, id: i32, version: u64) -> Value {
        listener_json(
            context_dn(id),
            &self.contexts[&id].uuid,
            "oxmail/oxcontext",
            Some(json!({
                "contextid": id.to_string(),
                "name": format!("context{id}"),
                "oxQuota": version.to_string(),
            })),
        )
    }

    fn create_context(&mut self) {
        let id = self.next_context;
        self.next_context += 1;
        let uuid = self.uuid();
        self.contexts.insert(
            id,
            ContextModel {
                uuid: uuid.clone(),
                version: 1,
            },
        );
        let content = self.context_file(id, 1);
        self.push(
            ChangeKind::Create,
            ObjectKind::Context,
            &uuid,
            &id.to_string(),
            1,
            content,
        );
    }

    fn modify_context(&mut self) {
        let id = self.random_context();
        let ctx = self.contexts.get_mut(&id).map(|c| {
            c.version += 1;
            (c.uuid.clone(), c.version)
        });
        if let Some((uuid, version)) = ctx {
            let content = self.context_file(id, version);
            self.push(
                ChangeKind::Modify,
                ObjectKind::Context,
                &uuid,
                &id.to_string(),
                version,
                content,
            );
        }
    }

    /// Moves the users and resources of a small context out, then deletes it.
    fn delete_context(&mut self) {
        if self.contexts.len() < 3 {
            return self.create_context();
        }
        let id = self.random_context();
        let users: Vec<String> = self
            .users
            .iter()
            .filter(|(_, u)| u.context == id)
            .map(|(n, _)| n.clone())
            .collect();
        let resources: Vec<String> = self
            .resources
            .iter()
            .filter(|(_, r)| r.context == id)
            .map(|(n, _)| n.clone())
            .collect();
        if users.len() + resources.len() > 20 {
            return self.modify_context();
        }
        let target = *self.contexts.keys().find(|c| **c != id).unwrap_or(&id);
        for name in users {
            self.move_user_to(&name, target);
        }
        for name in resources {
            self.move_resource_to(&name, target);
        }
        if let Some(ctx) = self.contexts.remove(&id) {
            let content = listener_json(context_dn(id), &ctx.uuid, "oxmail/oxcontext", None);
            self.push(
                ChangeKind::Delete,
                ObjectKind::Context,
                &ctx.uuid,
                &id.to_string(),
                ctx.version + 1,
                content,
            );
        }
    }

    fn user_file(&self, name: &str) -> Value {
        let u = &self.users[name];
        let groups: Vec<String> = u.groups.iter().map(|g| group_dn(g)).collect();
        listener_json(
            user_dn(name),
            &u.uuid,
            "users/user",
            Some(json!({
                "username": name,
                "firstname": "Bench",
                "lastname": name,
                "displayName": format!("Bench {name}"),
                "mailPrimaryAddress": format!("{name}@{MAIL_DOMAIN}"),
                "mailAlternativeAddress": u.alt,
                "roomNumber": format!("v{}", u.version),
                "isOxUser": "OK",
                "oxAccess": "premium",
                "oxContext": u.context.to_string(),
                "groups": groups,
                "disabled": "0",
            })),
        )
    }

    fn emit_user(&mut self, kind: ChangeKind, name: &str) {
        let content = self.user_file(name);
        let (uuid, version) = {
            let u = &self.users[name];
            (u.uuid.clone(), u.version)
        };
        self.push(kind, ObjectKind::User, &uuid, name, version, content);
    }

    fn create_user(&mut self) {
        let context = self.random_context();
        let uuid = self.uuid();
        let name = format!("u{}", self.next_object);
        self.user_pool.insert(&name);
        self.users.insert(
            name.clone(),
            UserModel {
                uuid,
                context,
                version: 1,
                alt: Vec::new(),
                groups: BTreeSet::new(),
            },
        );
        self.emit_user(ChangeKind::Create, &name);
    }

    fn modify_user(&mut self) {
        let Some(name) = self.user_pool.pick(&mut self.rng) else {
            return self.create_user();
        };
        let change_alias = self.rng.random_bool(0.1);
        if let Some(u) = self.users.get_mut(&name) {
            u.version += 1;
            if change_alias {
                u.alt = vec![format!("{name}.v{}@{MAIL_DOMAIN}", u.version)];
            }
        }
        self.emit_user(ChangeKind::Modify, &name);
    }

    /// A random existing context other than `from`, if there is one.
    fn another_context(&mut self, from: i32) -> Option<i32> {
        let others: Vec<i32> = self
            .contexts
            .keys()
            .copied()
            .filter(|c| *c != from)
            .collect();
        others.choose(&mut self.rng).copied()
    }

    fn move_user(&mut self) {
        let Some(name) = self.user_pool.pick(&mut self.rng) else {
            return self.create_user();
        };
        let from = self.users[&name].context;
        match self.another_context(from) {
            Some(to) => self.move_user_to(&name, to),
            None => self.modify_user(),
        }
    }

    fn move_user_to(&mut self, name: &str, to: i32) {
        if let Some(u) = self.users.get_mut(name) {
            u.version += 1;
            u.context = to;
        }
        self.emit_user(ChangeKind::Move, name);
    }

    fn delete_user(&mut self) {
        let Some(name) = self.user_pool.pick(&mut self.rng) else {
            return self.create_user();
        };
        self.user_pool.remove(&name);
        let Some(u) = self.users.remove(&name) else {
            return;
        };
        let content = listener_json(user_dn(&name), &u.uuid, "users/user", None);
        self.push(
            ChangeKind::Delete,
            ObjectKind::User,
            &u.uuid,
            &name,
            u.version + 1,
            content,
        );
        // UDM takes a deleted user out of its groups: each group changes.
        for group in u.groups {
            if let Some(g) = self.groups.get_mut(&group) {
                g.members.remove(&name);
                self.emit_group(ChangeKind::Modify, &group);
            }
        }
    }

    fn group_file(&self, name: &str) -> Value {
        let g = &self.groups[name];
        let users: Vec<String> = g.members.iter().map(|m| user_dn(m)).collect();
        listener_json(
            group_dn(name),
            &g.uuid,
            "groups/group",
            Some(json!({"name": name, "isOxGroup": "OK", "users": users})),
        )
    }

    fn emit_group(&mut self, kind: ChangeKind, name: &str) {
        let content = self.group_file(name);
        let uuid = self.groups[name].uuid.clone();
        self.push(kind, ObjectKind::Group, &uuid, name, 0, content);
    }

    fn random_members(&mut self) -> BTreeSet<String> {
        let count = self.rng.random_range(1..=4);
        (0..count)
            .filter_map(|_| self.user_pool.pick(&mut self.rng))
            .collect()
    }

    fn set_members(&mut self, group: &str, members: BTreeSet<String>) {
        let old = self
            .groups
            .get(group)
            .map(|g| g.members.clone())
            .unwrap_or_default();
        for gone in old.difference(&members) {
            if let Some(u) = self.users.get_mut(gone) {
                u.groups.remove(group);
            }
        }
        for new in &members {
            if let Some(u) = self.users.get_mut(new) {
                u.groups.insert(group.to_owned());
            }
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.members = members;
        }
    }

    fn create_group(&mut self) {
        let uuid = self.uuid();
        let name = format!("g{}", self.next_object);
        self.group_pool.insert(&name);
        self.groups.insert(
            name.clone(),
            GroupModel {
                uuid,
                members: BTreeSet::new(),
            },
        );
        let members = self.random_members();
        self.set_members(&name, members);
        self.emit_group(ChangeKind::Create, &name);
    }

    fn modify_group(&mut self) {
        let Some(name) = self.group_pool.pick(&mut self.rng) else {
            return self.create_group();
        };
        if self.group_replacements > 0.0 && self.rng.random_bool(self.group_replacements) {
            let members = self.random_members();
            self.set_members(&name, members);
            return self.emit_group(ChangeKind::Modify, &name);
        }
        // An admin adds a user to a group or takes one out: UDM changes one member at a time.
        let mut members = self.groups[&name].members.clone();
        let leaving = if members.len() >= 2 && self.rng.random_bool(0.5) {
            members
                .iter()
                .collect::<Vec<_>>()
                .choose(&mut self.rng)
                .map(|m| (*m).clone())
        } else {
            None
        };
        match leaving {
            Some(member) => {
                members.remove(&member);
            }
            None => {
                // A few tries find a user who is not a member yet (UDM writes no unchanged group).
                let newcomer = (0..8)
                    .filter_map(|_| self.user_pool.pick(&mut self.rng))
                    .find(|user| !members.contains(user));
                if let Some(user) = newcomer {
                    members.insert(user);
                }
            }
        }
        self.set_members(&name, members);
        self.emit_group(ChangeKind::Modify, &name);
    }

    fn delete_group(&mut self) {
        let Some(name) = self.group_pool.pick(&mut self.rng) else {
            return self.create_group();
        };
        self.set_members(&name, BTreeSet::new());
        self.group_pool.remove(&name);
        if let Some(g) = self.groups.remove(&name) {
            let content = listener_json(group_dn(&name), &g.uuid, "groups/group", None);
            self.push(
                ChangeKind::Delete,
                ObjectKind::Group,
                &g.uuid,
                &name,
                0,
                content,
            );
        }
    }

    fn resource_file(&self, name: &str) -> Value {
        let r = &self.resources[name];
        listener_json(
            resource_dn(name),
            &r.uuid,
            "oxresources/oxresources",
            Some(json!({
                "name": name,
                "displayname": format!("Room {name}"),
                "description": format!("v{}", r.version),
                "resourceMailAddress": format!("{name}@{MAIL_DOMAIN}"),
                "oxContext": r.context.to_string(),
            })),
        )
    }

    fn emit_resource(&mut self, kind: ChangeKind, name: &str) {
        let content = self.resource_file(name);
        let (uuid, version) = {
            let r = &self.resources[name];
            (r.uuid.clone(), r.version)
        };
        self.push(kind, ObjectKind::Resource, &uuid, name, version, content);
    }

    fn create_resource(&mut self) {
        let context = self.random_context();
        let uuid = self.uuid();
        let name = format!("r{}", self.next_object);
        self.resource_pool.insert(&name);
        self.resources.insert(
            name.clone(),
            ResourceModel {
                uuid,
                context,
                version: 1,
            },
        );
        self.emit_resource(ChangeKind::Create, &name);
    }

    fn modify_resource(&mut self) {
        let Some(name) = self.resource_pool.pick(&mut self.rng) else {
            return self.create_resource();
        };
        if let Some(r) = self.resources.get_mut(&name) {
            r.version += 1;
        }
        self.emit_resource(ChangeKind::Modify, &name);
    }

    fn move_resource(&mut self) {
        let Some(name) = self.resource_pool.pick(&mut self.rng) else {
            return self.create_resource();
        };
        let from = self.resources[&name].context;
        match self.another_context(from) {
            Some(to) => self.move_resource_to(&name, to),
            None => self.modify_resource(),
        }
    }

    fn move_resource_to(&mut self, name: &str, to: i32) {
        if let Some(r) = self.resources.get_mut(name) {
            r.version += 1;
            r.context = to;
        }
        self.emit_resource(ChangeKind::Move, name);
    }

    fn delete_resource(&mut self) {
        let Some(name) = self.resource_pool.pick(&mut self.rng) else {
            return self.create_resource();
        };
        self.resource_pool.remove(&name);
        if let Some(r) = self.resources.remove(&name) {
            let content =
                listener_json(resource_dn(&name), &r.uuid, "oxresources/oxresources", None);
            self.push(
                ChangeKind::Delete,
                ObjectKind::Resource,
                &r.uuid,
                &name,
                r.version + 1,
                content,
            );
        }
    }
}

impl Expected {
    /// The OX state after `changes`, computed from the files alone (the last file of each
    /// object is its final state).
    pub fn replay(changes: &[Change]) -> Self {
        let mut last: BTreeMap<&str, &Change> = BTreeMap::new();
        for change in changes {
            last.insert(&change.entry_uuid, change);
        }
        let live = |object: ObjectKind| {
            last.values()
                .filter(move |c| c.object == object && c.kind != ChangeKind::Delete)
                .map(|c| &c.content["object"])
        };
        let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
        let number = |v: &Value, key: &str| text(v, key).parse::<i64>().unwrap_or(0);
        let mut expected = Expected::default();
        for object in live(ObjectKind::Context) {
            let id = number(object, "contextid") as i32;
            expected.contexts.insert(
                id,
                ExpectedContext {
                    quota: number(object, "oxQuota"),
                    ..Default::default()
                },
            );
        }
        let mut user_context: BTreeMap<String, i32> = BTreeMap::new();
        for object in live(ObjectKind::User) {
            let context = number(object, "oxContext") as i32;
            let name = text(object, "username");
            let version = text(object, "roomNumber")
                .trim_start_matches('v')
                .parse()
                .unwrap_or(0);
            if let Some(ctx) = expected.contexts.get_mut(&context) {
                ctx.users.insert(
                    name.clone(),
                    (
                        text(object, "displayName"),
                        text(object, "mailPrimaryAddress"),
                        version,
                    ),
                );
                user_context.insert(user_dn(&name).to_lowercase(), context);
            }
        }
        for object in live(ObjectKind::Group) {
            let name = text(object, "name");
            for dn in object["users"].as_array().into_iter().flatten() {
                let dn = dn.as_str().unwrap_or_default();
                let Some(context) = user_context.get(&dn.to_lowercase()) else {
                    continue;
                };
                let user = dn
                    .strip_prefix("uid=")
                    .and_then(|rest| rest.split(',').next())
                    .unwrap_or_default()
                    .to_owned();
                if let Some(ctx) = expected.contexts.get_mut(context) {
                    ctx.groups.entry(name.clone()).or_default().insert(user);
                }
            }
        }
        for object in live(ObjectKind::Resource) {
            let context = number(object, "oxContext") as i32;
            let version = text(object, "description")
                .trim_start_matches('v')
                .parse()
                .unwrap_or(0);
            if let Some(ctx) = expected.contexts.get_mut(&context) {
                ctx.resources.insert(
                    text(object, "name"),
                    (text(object, "resourceMailAddress"), version),
                );
            }
        }
        expected
    }

    /// What the emulator's state shows, in the same shape.
    pub fn from_state(state: &StateSnapshot) -> Self {
        let mut out = Expected::default();
        for ctx in &state.contexts {
            let admin = ctx.admin.as_ref().map(|a| a.id);
            let names: BTreeMap<i32, &str> =
                ctx.users.iter().map(|u| (u.id, u.name.as_str())).collect();
            let users = ctx
                .users
                .iter()
                .filter(|u| Some(u.id) != admin)
                .map(|u| {
                    let version = u
                        .data
                        .room_number
                        .as_deref()
                        .and_then(|r| r.strip_prefix('v'))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    (
                        u.name.clone(),
                        (
                            u.data.display_name.clone().unwrap_or_default(),
                            u.data.primary_email.clone().unwrap_or_default(),
                            version,
                        ),
                    )
                })
                .collect();
            let groups = ctx
                .groups
                .iter()
                .filter(|g| g.id != Some(1))
                .map(|g| {
                    let members = g
                        .members
                        .iter()
                        .map(|id| {
                            names
                                .get(id)
                                .map(|n| (*n).to_owned())
                                .unwrap_or(format!("#{id}"))
                        })
                        .collect();
                    (g.name.clone().unwrap_or_default(), members)
                })
                .collect();
            let resources = ctx
                .resources
                .iter()
                .map(|r| {
                    let version = r
                        .description
                        .as_deref()
                        .and_then(|d| d.strip_prefix('v'))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    (
                        r.name.clone().unwrap_or_default(),
                        (r.email.clone().unwrap_or_default(), version),
                    )
                })
                .collect();
            out.contexts.insert(
                ctx.id,
                ExpectedContext {
                    quota: ctx.data.max_quota.unwrap_or(-1),
                    users,
                    groups,
                    resources,
                },
            );
        }
        out
    }

    /// The differences between this expectation and the emulator's state (empty: equal).
    pub fn diff(&self, state: &StateSnapshot) -> Vec<String> {
        let actual = Self::from_state(state);
        let mut out = Vec::new();
        let ids: BTreeSet<i32> = self
            .contexts
            .keys()
            .chain(actual.contexts.keys())
            .copied()
            .collect();
        for id in ids {
            match (self.contexts.get(&id), actual.contexts.get(&id)) {
                (Some(_), None) => out.push(format!("context {id} is missing")),
                (None, Some(_)) => out.push(format!("context {id} should not exist")),
                (Some(want), Some(have)) => {
                    if want.quota != have.quota {
                        out.push(format!(
                            "context {id}: quota {} instead of {}",
                            have.quota, want.quota
                        ));
                    }
                    diff_maps(&mut out, id, "user", &want.users, &have.users);
                    diff_maps(&mut out, id, "group", &want.groups, &have.groups);
                    diff_maps(&mut out, id, "resource", &want.resources, &have.resources);
                }
                (None, None) => {}
            }
        }
        out
    }

    /// How many objects (contexts, users, groups, resources) the state holds.
    pub fn objects(&self) -> usize {
        self.contexts
            .values()
            .map(|c| 1 + c.users.len() + c.groups.len() + c.resources.len())
            .sum()
    }
}

fn diff_maps<V: PartialEq + std::fmt::Debug>(
    out: &mut Vec<String>,
    context: i32,
    what: &str,
    want: &BTreeMap<String, V>,
    have: &BTreeMap<String, V>,
) {
    for (name, value) in want {
        match have.get(name) {
            None => out.push(format!("context {context}: {what} {name} is missing")),
            Some(actual) if actual != value => out.push(format!(
                "context {context}: {what} {name} is {actual:?}, expected {value:?}"
            )),
            Some(_) => {}
        }
    }
    for name in have.keys().filter(|n| !want.contains_key(*n)) {
        out.push(format!("context {context}: {what} {name} should not exist"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_consistent() {
        let a = Workload::generate(WorkloadSettings::new(3000));
        let b = Workload::generate(WorkloadSettings::new(3000));
        assert_eq!(a.changes.len(), 3000);
        assert_eq!(
            a.changes.iter().map(|c| &c.content).collect::<Vec<_>>(),
            b.changes.iter().map(|c| &c.content).collect::<Vec<_>>()
        );
        let names: Vec<&String> = a.changes.iter().map(|c| &c.file).collect();
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "names sort in stream order"
        );
        assert!(names
            .iter()
            .all(|n| crate::listener::is_listener_file_name(n)));
        let kinds: BTreeSet<(ObjectKind, ChangeKind)> =
            a.changes.iter().map(|c| (c.object, c.kind)).collect();
        for kind in [
            ChangeKind::Create,
            ChangeKind::Modify,
            ChangeKind::Move,
            ChangeKind::Delete,
        ] {
            assert!(kinds.contains(&(ObjectKind::User, kind)), "{kind:?}");
            assert!(kinds.contains(&(ObjectKind::Resource, kind)), "{kind:?}");
        }
        assert!(kinds.contains(&(ObjectKind::Group, ChangeKind::Delete)));
        assert!(kinds.contains(&(ObjectKind::Context, ChangeKind::Delete)));
        assert!(a.expected.objects() > 100);
        for change in &a.changes {
            crate::listener::ListenerFile::parse(
                std::path::Path::new(&change.file),
                change.file.clone(),
                crate::listener::write::converter_json(&change.content),
            )
            .unwrap();
        }
    }
}
