//! Differential test of concurrent apply: a seeded stream of changes in one OX context is
//! applied once with `--apply-concurrency 1` (one change after the other, in queue order) and
//! once with concurrency (up to 16, adaptive), each by a fresh daemon against a fresh emulator
//! with random per-call latency, so the interleavings vary. Both final OX states must be equal,
//! and equal to the state the stream itself describes (the last state of every object).
//!
//! The streams are what UDM writes: creates, modifies, renames (the DN changes, and UDM rewrites
//! the member DNs of the user's groups — one group change each), a user deleted and a new one
//! (new entry UUID) created under the freed login, display-name swaps through a temporary name,
//! a mail alias handed from one user to another, group member changes, group and resource
//! creates and deletes. Every stream can be applied one change after the other: at each point
//! every OX-unique name belongs to one object.
//!
//! `cargo nextest run -E 'test(/differential/)'` runs the CI share (a few seeds); the long mode
//! is `DIFFERENTIAL_SEEDS=200 DIFFERENTIAL_CHANGES=2000 cargo nextest run --run-ignored only -E
//! 'test(/differential::long/)'`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ox_connector::emulator::{
    EmulatorSettings, FaultSettings, StateSnapshot, ADMIN_GUIDE_PROPERTIES,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::support::files;
use crate::support::ox::{self, OxEnv, MASTER, MASTER_PASSWORD};

const CONTEXT: i32 = 10;

#[derive(Debug, Clone)]
struct User {
    login: String,
    display: String,
    mail: String,
    aliases: BTreeSet<String>,
    version: u64,
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    /// Member entry UUIDs.
    members: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Resource {
    name: String,
    mail: String,
    version: u64,
}

/// The generator's model of the directory, and the stream so far.
struct Stream {
    rng: StdRng,
    files: Vec<Value>,
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, Group>,
    resources: BTreeMap<String, Resource>,
    /// Logins given up by a rename or a delete, to be taken by a new user.
    freed_logins: Vec<String>,
    next: u64,
}

impl Stream {
    fn generate(seed: u64, changes: usize) -> Self {
        let mut stream = Self {
            rng: StdRng::seed_from_u64(seed),
            files: vec![ox::context("ctx-10", CONTEXT, None)],
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            resources: BTreeMap::new(),
            freed_logins: Vec::new(),
            next: 0,
        };
        while stream.files.len() < changes {
            stream.step();
        }
        stream
    }

    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn pick_user(&mut self) -> Option<String> {
        let uuids: Vec<&String> = self.users.keys().collect();
        uuids.choose(&mut self.rng).map(|u| (*u).clone())
    }

    fn step(&mut self) {
        let roll = self.rng.random_range(0..100);
        let enough_users = self.users.len() >= 4;
        match roll {
            _ if !enough_users => self.create_user(),
            0..=21 => self.create_user(),
            22..=39 => self.modify_user(),
            40..=47 => self.rename_user(),
            48..=54 => self.delete_user(),
            55..=59 => self.swap_display_names(),
            60..=64 => self.hand_over_alias(),
            65..=76 => self.change_members(),
            77..=81 => self.create_group(),
            82..=84 => self.delete_group(),
            85..=90 => self.create_resource(),
            91..=94 => self.modify_resource(),
            _ => self.delete_resource(),
        }
    }

    fn user_file(&self, uuid: &str) -> Value {
        let u = &self.users[uuid];
        let groups: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.members.contains(uuid))
            .map(|g| ox::group_dn(&g.name))
            .collect();
        ox::user(
            uuid,
            &u.login,
            CONTEXT,
            json!({
                "displayName": u.display,
                "mailPrimaryAddress": u.mail,
                "mailAlternativeAddress": u.aliases.iter().collect::<Vec<_>>(),
                "roomNumber": format!("v{}", u.version),
                "groups": groups,
            }),
        )
    }

    fn group_file(&self, uuid: &str) -> Value {
        let g = &self.groups[uuid];
        let members: Vec<&str> = g
            .members
            .iter()
            .map(|m| self.users[m].login.as_str())
            .collect();
        ox::group(uuid, &g.name, &members, json!({}))
    }

    fn resource_file(&self, uuid: &str) -> Value {
        let r = &self.resources[uuid];
        ox::resource(
            uuid,
            &r.name,
            CONTEXT,
            json!({"resourceMailAddress": r.mail, "description": format!("v{}", r.version)}),
        )
    }

    /// The groups of `uuid` change as UDM changes them: one group change each.
    fn rewrite_groups_of(&mut self, uuid: &str) {
        let groups: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.members.contains(uuid))
            .map(|(id, _)| id.clone())
            .collect();
        for group in groups {
            let file = self.group_file(&group);
            self.files.push(file);
        }
    }

    fn create_user(&mut self) {
        let n = self.fresh();
        let login = match self.freed_logins.pop() {
            Some(login) if self.rng.random_bool(0.6) => login,
            Some(login) => {
                self.freed_logins.push(login);
                format!("user{n}")
            }
            None => format!("user{n}"),
        };
        let uuid = format!("u-{n}");
        let aliases = if self.rng.random_bool(0.3) {
            BTreeSet::from([format!("alias{n}@example.org")])
        } else {
            BTreeSet::new()
        };
        self.users.insert(
            uuid.clone(),
            User {
                display: format!("Person {n}"),
                mail: format!("mail{n}@example.org"),
                login,
                aliases,
                version: 1,
            },
        );
        let file = self.user_file(&uuid);
        self.files.push(file);
        // Sometimes straight into a group (UDM changes the group too).
        if self.rng.random_bool(0.3) {
            let groups: Vec<String> = self.groups.keys().cloned().collect();
            if let Some(group) = groups.choose(&mut self.rng) {
                self.groups.get_mut(group).unwrap().members.insert(uuid);
                let file = self.group_file(group);
                self.files.push(file);
            }
        }
    }

    fn modify_user(&mut self) {
        let Some(uuid) = self.pick_user() else { return };
        self.users.get_mut(&uuid).unwrap().version += 1;
        let file = self.user_file(&uuid);
        self.files.push(file);
    }

    fn rename_user(&mut self) {
        let Some(uuid) = self.pick_user() else { return };
        let n = self.fresh();
        let user = self.users.get_mut(&uuid).unwrap();
        let old = std::mem::replace(&mut user.login, format!("renamed{n}"));
        user.version += 1;
        self.freed_logins.push(old);
        let file = self.user_file(&uuid);
        self.files.push(file);
        self.rewrite_groups_of(&uuid);
    }

    fn delete_user(&mut self) {
        let Some(uuid) = self.pick_user() else { return };
        let user = self.users.remove(&uuid).unwrap();
        self.files.push(ox::user_deleted(&uuid, &user.login));
        self.freed_logins.push(user.login);
        let groups: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.members.contains(&uuid))
            .map(|(id, _)| id.clone())
            .collect();
        for group in groups {
            self.groups.get_mut(&group).unwrap().members.remove(&uuid);
            let file = self.group_file(&group);
            self.files.push(file);
        }
    }

    fn swap_display_names(&mut self) {
        let (Some(a), Some(b)) = (self.pick_user(), self.pick_user()) else {
            return;
        };
        if a == b {
            return;
        }
        let n = self.fresh();
        let (display_a, display_b) = (
            self.users[&a].display.clone(),
            self.users[&b].display.clone(),
        );
        for (uuid, display) in [
            (&a, format!("Temporary {n}")),
            (&b, display_a),
            (&a, display_b),
        ] {
            self.users.get_mut(uuid).unwrap().display = display;
            let file = self.user_file(uuid);
            self.files.push(file);
        }
    }

    fn hand_over_alias(&mut self) {
        let (Some(from), Some(to)) = (self.pick_user(), self.pick_user()) else {
            return;
        };
        let Some(alias) = self.users[&from].aliases.iter().next().cloned() else {
            let n = self.fresh();
            let user = self.users.get_mut(&from).unwrap();
            user.aliases.insert(format!("alias{n}@example.org"));
            let file = self.user_file(&from);
            self.files.push(file);
            return;
        };
        if from == to {
            return;
        }
        self.users.get_mut(&from).unwrap().aliases.remove(&alias);
        let file = self.user_file(&from);
        self.files.push(file);
        self.users.get_mut(&to).unwrap().aliases.insert(alias);
        let file = self.user_file(&to);
        self.files.push(file);
    }

    fn change_members(&mut self) {
        let groups: Vec<String> = self.groups.keys().cloned().collect();
        let (Some(group), Some(user)) = (groups.choose(&mut self.rng).cloned(), self.pick_user())
        else {
            return self.create_group();
        };
        let members = &mut self.groups.get_mut(&group).unwrap().members;
        if !members.remove(&user) {
            members.insert(user);
        }
        let file = self.group_file(&group);
        self.files.push(file);
    }

    fn create_group(&mut self) {
        let n = self.fresh();
        let uuid = format!("g-{n}");
        let mut members = BTreeSet::new();
        for _ in 0..self.rng.random_range(0..=3) {
            if let Some(user) = self.pick_user() {
                members.insert(user);
            }
        }
        self.groups.insert(
            uuid.clone(),
            Group {
                name: format!("group{n}"),
                members,
            },
        );
        let file = self.group_file(&uuid);
        self.files.push(file);
    }

    fn delete_group(&mut self) {
        let groups: Vec<String> = self.groups.keys().cloned().collect();
        let Some(uuid) = groups.choose(&mut self.rng).cloned() else {
            return;
        };
        let group = self.groups.remove(&uuid).unwrap();
        self.files.push(ox::group_deleted(&uuid, &group.name));
    }

    fn create_resource(&mut self) {
        let n = self.fresh();
        let uuid = format!("r-{n}");
        self.resources.insert(
            uuid.clone(),
            Resource {
                name: format!("room{n}"),
                mail: format!("room{n}@rooms.example.org"),
                version: 1,
            },
        );
        let file = self.resource_file(&uuid);
        self.files.push(file);
    }

    fn modify_resource(&mut self) {
        let uuids: Vec<String> = self.resources.keys().cloned().collect();
        let Some(uuid) = uuids.choose(&mut self.rng).cloned() else {
            return self.create_resource();
        };
        self.resources.get_mut(&uuid).unwrap().version += 1;
        let file = self.resource_file(&uuid);
        self.files.push(file);
    }

    fn delete_resource(&mut self) {
        let uuids: Vec<String> = self.resources.keys().cloned().collect();
        let Some(uuid) = uuids.choose(&mut self.rng).cloned() else {
            return;
        };
        let resource = self.resources.remove(&uuid).unwrap();
        self.files.push(ox::resource_deleted(&uuid, &resource.name));
    }

    /// The OX state the stream describes.
    fn expected(&self) -> OxState {
        let users = self
            .users
            .values()
            .map(|u| {
                let mut aliases = u.aliases.clone();
                aliases.insert(u.mail.clone());
                (
                    u.login.clone(),
                    (u.display.clone(), u.mail.clone(), aliases, u.version),
                )
            })
            .collect();
        let groups = self
            .groups
            .values()
            // OX groups are never empty: a group without members has none in OX.
            .filter(|g| !g.members.is_empty())
            .map(|g| {
                let members = g.members.iter().map(|m| self.users[m].login.clone());
                (g.name.clone(), members.collect())
            })
            .collect();
        let resources = self
            .resources
            .values()
            .map(|r| (r.name.clone(), (r.mail.clone(), r.version)))
            .collect();
        OxState {
            users,
            groups,
            resources,
        }
    }
}

/// What the test compares of one OX context: users (display name, primary address, aliases,
/// version), groups (member logins) and resources (address, version), by name.
#[derive(Debug, PartialEq)]
struct OxState {
    users: BTreeMap<String, (String, String, BTreeSet<String>, u64)>,
    groups: BTreeMap<String, BTreeSet<String>>,
    resources: BTreeMap<String, (String, u64)>,
}

fn version(text: Option<&str>) -> u64 {
    text.and_then(|t| t.strip_prefix('v'))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl OxState {
    fn of(state: &StateSnapshot) -> Self {
        let ctx = state.context(CONTEXT).expect("the context exists");
        let admin = ctx.admin.as_ref().map(|a| a.id);
        let logins: BTreeMap<i32, &str> =
            ctx.users.iter().map(|u| (u.id, u.name.as_str())).collect();
        let users = ctx
            .users
            .iter()
            .filter(|u| Some(u.id) != admin)
            .map(|u| {
                let d = &u.data;
                let aliases = d.aliases.iter().cloned().collect();
                let display = d.display_name.clone().unwrap_or_default();
                let mail = d.primary_email.clone().unwrap_or_default();
                let version = version(d.room_number.as_deref());
                (u.name.clone(), (display, mail, aliases, version))
            })
            .collect();
        let groups = ctx
            .groups
            .iter()
            .filter(|g| g.id != Some(1))
            .map(|g| {
                let members = g.members.iter().map(|id| {
                    logins
                        .get(id)
                        .map_or_else(|| format!("#{id}"), |l| (*l).to_owned())
                });
                (g.name.clone().unwrap_or_default(), members.collect())
            })
            .collect();
        let resources = ctx
            .resources
            .iter()
            .map(|r| {
                let mail = r.email.clone().unwrap_or_default();
                let version = version(r.description.as_deref());
                (r.name.clone().unwrap_or_default(), (mail, version))
            })
            .collect();
        OxState {
            users,
            groups,
            resources,
        }
    }
}

/// Applies `stream` with `concurrency` against a fresh emulator (per-call latency 0–`jitter`
/// ms, random) and returns the final OX state. The files arrive in chunks, as the listener
/// writes them while the daemon works.
async fn apply(stream: &Stream, concurrency: usize, jitter: u64) -> OxState {
    // Renames need USERNAME_CHANGEABLE=true, as docs/operations.md tells admins to set.
    let mut config = EmulatorSettings::new(MASTER, MASTER_PASSWORD)
        .with_properties(&ADMIN_GUIDE_PROPERTIES)
        .expect("known properties");
    config.faults = FaultSettings {
        latency_jitter_ms: jitter,
        ..FaultSettings::default()
    };
    let mut env = OxEnv::start_with(config).await;
    env.env.settings.apply_concurrency = concurrency;
    let daemon = env.daemon().await;
    let dir = env.env.listener_dir();
    for (n, chunk) in stream.files.chunks(100).enumerate() {
        for (i, content) in chunk.iter().enumerate() {
            let number = u32::try_from(n * 100 + i + 1).unwrap();
            files::write(&dir, &files::name(number), content);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Generous: one change after the other in a debug build on a loaded machine is slow.
    let changes = u32::try_from(stream.files.len()).unwrap_or(u32::MAX);
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(60)
        + Duration::from_millis(100) * changes;
    while !env.env.queued_files().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "concurrency {concurrency}: not every listener file was applied; blocked: {}",
            env.blocked()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let state = OxState::of(&env.state());
    daemon.stop().await;
    state
}

/// Runs `seeds` streams of `changes` changes; panics on the first difference.
async fn differential(seeds: std::ops::Range<u64>, changes: usize) {
    for seed in seeds {
        let stream = Stream::generate(seed, changes);
        let expected = stream.expected();
        let one_by_one = apply(&stream, 1, 2).await;
        let concurrent = apply(&stream, 16, 3).await;
        assert_eq!(
            one_by_one, expected,
            "seed {seed}: one change after the other does not give the state of the stream"
        );
        assert_eq!(
            concurrent, one_by_one,
            "seed {seed}: concurrent apply differs from one change after the other"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_apply_ends_in_the_same_state_as_one_change_after_the_other() {
    differential(0..6, 400).await;
}

/// The long mode: `DIFFERENTIAL_SEEDS` seeds (default 100) of `DIFFERENTIAL_CHANGES` changes
/// (default 2,000), starting after the CI seeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long; run with --run-ignored only"]
async fn long() {
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seeds = number("DIFFERENTIAL_SEEDS", 100);
    let changes = usize::try_from(number("DIFFERENTIAL_CHANGES", 2_000)).unwrap();
    differential(1_000..1_000 + seeds, changes).await;
}
