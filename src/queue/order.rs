//! Which of the messages the consumer holds may be applied now, so that independent changes
//! run at the same time and dependent ones in stream order.
//!
//! Every held message has a [`Scope`] (what it touches, from [`crate::apply::Applier::scope`]).
//! A message may start once every message admitted before it whose scope overlaps its own has
//! finished. [`Scope::Everything`] overlaps all: such a message waits for all before it, and
//! all after it wait for it.
//!
//! A scope is computed from the state as it is when the message arrives, but messages still
//! held before it will change that state (a user created in context 1 that the next message
//! moves to context 2 is, at that point, not in context 1 yet). So a message **inherits** the
//! scope of every held message that names one of the same objects ([`ScopeKey::Object`]):
//! whatever the earlier change touches, the later one may find its object there. And nothing is
//! admitted while an `Everything` message is held, so that the scopes of the messages after it
//! are computed from the state it leaves behind.
//!
//! Held messages are indexed by what their keys are about (an object, a DN, a context), so a new
//! message finds what it waits for and what it inherits from by looking up its own keys; the
//! rule is [`Scope::overlaps`], and a test checks the index against it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::apply::{Scope, ScopeKey};

/// The held messages and their dependencies. `T` is what the consumer keeps per message.
pub struct Order<T> {
    /// By admission number (the order messages arrived in, which is stream order).
    entries: BTreeMap<u64, Entry<T>>,
    /// Stream sequence → admission number.
    by_sequence: HashMap<u64, u64>,
    /// Admitted, not started, nothing before them in the way; in admission order.
    ready: VecDeque<u64>,
    next_admission: u64,
    /// The held messages with [`Scope::Everything`], by admission number.
    barriers: BTreeSet<u64>,
    /// Who holds what: a new message looks up its own keys instead of comparing itself with
    /// every held message (up to 256).
    holders: HashMap<Resource, Holders>,
}

/// What a [`ScopeKey`] is about; keys about the same resource may exclude each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Resource {
    Uuid(Arc<str>),
    Dn(Arc<str>),
    Context(i32),
    Name(crate::apply::NameSpace, Arc<str>),
    GroupInContext(Arc<str>, i32),
    ContextNames,
}

/// How a key holds its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Alone (the object itself, a context).
    Exclusive,
    /// A part of it, alongside other parts ([`ScopeKey::SharedDn`]): a change of it.
    Part,
    /// Reading it ([`ScopeKey::ReadsDn`]).
    Read,
}

fn resource(key: &ScopeKey) -> (Resource, Hold) {
    match key {
        ScopeKey::Object(uuid) => (Resource::Uuid(uuid.clone()), Hold::Exclusive),
        ScopeKey::Dn(dn) => (Resource::Dn(dn.clone()), Hold::Exclusive),
        ScopeKey::SharedDn(dn) => (Resource::Dn(dn.clone()), Hold::Part),
        ScopeKey::ReadsDn(dn) => (Resource::Dn(dn.clone()), Hold::Read),
        ScopeKey::Context(id) => (Resource::Context(*id), Hold::Exclusive),
        ScopeKey::InContext(id) => (Resource::Context(*id), Hold::Part),
        ScopeKey::Name(space, value) => (Resource::Name(*space, value.clone()), Hold::Exclusive),
        ScopeKey::GroupInContext(dn, id) => {
            (Resource::GroupInContext(dn.clone(), *id), Hold::Exclusive)
        }
        ScopeKey::ContextNames => (Resource::ContextNames, Hold::Exclusive),
    }
}

/// The held messages holding one resource, by admission number.
#[derive(Default)]
struct Holders {
    exclusive: BTreeSet<u64>,
    parts: BTreeSet<u64>,
    reads: BTreeSet<u64>,
}

impl Holders {
    fn of(&mut self, hold: Hold) -> &mut BTreeSet<u64> {
        match hold {
            Hold::Exclusive => &mut self.exclusive,
            Hold::Part => &mut self.parts,
            Hold::Read => &mut self.reads,
        }
    }

    /// Those a new holder in `hold` must wait for (see [`Scope::overlaps`]).
    fn excluding(&self, hold: Hold) -> impl Iterator<Item = &u64> {
        let others = (hold == Hold::Exclusive).then(|| self.parts.iter().chain(&self.reads));
        self.exclusive.iter().chain(others.into_iter().flatten())
    }

    /// Those that change the resource (whose later readers inherit their scope).
    fn changing(&self) -> impl Iterator<Item = &u64> {
        self.exclusive.iter().chain(&self.parts)
    }

    fn is_empty(&self) -> bool {
        self.exclusive.is_empty() && self.parts.is_empty() && self.reads.is_empty()
    }
}

struct Entry<T> {
    sequence: u64,
    scope: Scope,
    /// Earlier held messages it must wait for.
    blockers: usize,
    /// Later held messages waiting for it.
    dependents: Vec<u64>,
    started: bool,
    item: T,
}

impl<T> Default for Order<T> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            by_sequence: HashMap::new(),
            ready: VecDeque::new(),
            next_admission: 0,
            barriers: BTreeSet::new(),
            holders: HashMap::new(),
        }
    }
}

impl<T> Order<T> {
    /// How many messages are held (waiting or being applied).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a message may be admitted now: not while one that touches everything is held.
    pub fn admits(&self) -> bool {
        self.barriers.is_empty()
    }

    /// The item of the held message with this stream sequence.
    pub fn get_mut(&mut self, sequence: u64) -> Option<&mut T> {
        let admission = self.by_sequence.get(&sequence)?;
        self.entries.get_mut(admission).map(|e| &mut e.item)
    }

    /// Adds a message after all held ones. Returns its scope after inheritance.
    pub fn admit(&mut self, sequence: u64, scope: Scope, item: T) -> &Scope {
        let scope = self.inherit(scope);
        let admission = self.next_admission;
        self.next_admission += 1;
        let blockers: BTreeSet<u64> = match &scope {
            Scope::Everything => self.entries.keys().copied().collect(),
            Scope::Keys(keys) => {
                let mut blockers = self.barriers.clone();
                for (resource, hold) in keys.iter().map(resource) {
                    if let Some(holders) = self.holders.get(&resource) {
                        blockers.extend(holders.excluding(hold));
                    }
                }
                blockers
            }
        };
        for blocker in &blockers {
            if let Some(entry) = self.entries.get_mut(blocker) {
                entry.dependents.push(admission);
            }
        }
        match &scope {
            Scope::Everything => {
                self.barriers.insert(admission);
            }
            Scope::Keys(keys) => {
                for (resource, hold) in keys.iter().map(resource) {
                    self.holders
                        .entry(resource)
                        .or_default()
                        .of(hold)
                        .insert(admission);
                }
            }
        }
        if blockers.is_empty() {
            self.ready.push_back(admission);
        }
        self.by_sequence.insert(sequence, admission);
        let entry = self.entries.entry(admission).or_insert(Entry {
            sequence,
            scope,
            blockers: blockers.len(),
            dependents: Vec::new(),
            started: false,
            item,
        });
        &entry.scope
    }

    /// `scope` widened by the scopes of the held messages that change an object it was
    /// computed from (its own object, or one it reads such as a group's member).
    fn inherit(&self, scope: Scope) -> Scope {
        let Scope::Keys(mut keys) = scope else {
            return Scope::Everything;
        };
        if !self.barriers.is_empty() {
            // Not reached while admission is paused behind such a message; kept for safety.
            return Scope::Everything;
        }
        let changers: BTreeSet<u64> = keys
            .iter()
            .filter(|key| key.read_object().is_some())
            .filter_map(|key| self.holders.get(&resource(key).0))
            .flat_map(Holders::changing)
            .copied()
            .collect();
        for changer in changers {
            if let Some(Scope::Keys(earlier)) = self.entries.get(&changer).map(|e| &e.scope) {
                keys.extend(earlier.iter().cloned());
            }
        }
        Scope::Keys(keys)
    }

    /// Forgets what a message no longer held held.
    fn release(&mut self, admission: u64, scope: &Scope) {
        match scope {
            Scope::Everything => {
                self.barriers.remove(&admission);
            }
            Scope::Keys(keys) => {
                for (resource, hold) in keys.iter().map(resource) {
                    if let Some(holders) = self.holders.get_mut(&resource) {
                        holders.of(hold).remove(&admission);
                        if holders.is_empty() {
                            self.holders.remove(&resource);
                        }
                    }
                }
            }
        }
    }

    /// The held messages that have not started.
    pub fn waiting(&self) -> impl Iterator<Item = &T> {
        self.entries
            .values()
            .filter(|e| !e.started)
            .map(|e| &e.item)
    }

    /// The next message that may start now (marked as started), with its stream sequence.
    pub fn next_ready(&mut self) -> Option<(u64, &mut T)> {
        let admission = self.ready.pop_front()?;
        let entry = self.entries.get_mut(&admission)?;
        entry.started = true;
        Some((entry.sequence, &mut entry.item))
    }

    /// Removes a finished message; the messages that waited only for it become ready.
    pub fn finish(&mut self, sequence: u64) -> Option<T> {
        let admission = self.by_sequence.remove(&sequence)?;
        let entry = self.entries.remove(&admission)?;
        debug_assert!(entry.started, "a message finished before it started");
        self.release(admission, &entry.scope);
        for dependent in entry.dependents {
            if let Some(waiting) = self.entries.get_mut(&dependent) {
                waiting.blockers -= 1;
                if waiting.blockers == 0 && !waiting.started {
                    self.ready.push_back(dependent);
                }
            }
        }
        // Keep `ready` in admission order: a later message may have become ready first.
        self.ready.make_contiguous().sort_unstable();
        Some(entry.item)
    }

    /// Removes every message that has not started, in stream order (for shutdown).
    pub fn drain_waiting(&mut self) -> Vec<T> {
        let waiting: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.started)
            .map(|(a, _)| *a)
            .collect();
        self.ready.clear();
        waiting
            .into_iter()
            .filter_map(|admission| {
                let entry = self.entries.remove(&admission)?;
                self.by_sequence.remove(&entry.sequence);
                self.release(admission, &entry.scope);
                Some(entry.item)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(keys: &[ScopeKey]) -> Scope {
        Scope::Keys(keys.iter().cloned().collect())
    }

    fn object(uuid: &str) -> ScopeKey {
        ScopeKey::Object(uuid.into())
    }

    fn ready(order: &mut Order<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| order.next_ready().map(|(_, item)| *item)).collect()
    }

    #[test]
    fn changes_in_different_contexts_run_together_and_one_context_runs_in_order() {
        let mut order = Order::default();
        order.admit(1, keys(&[object("a"), ScopeKey::Context(1)]), "a in 1");
        order.admit(2, keys(&[object("b"), ScopeKey::Context(2)]), "b in 2");
        order.admit(3, keys(&[object("c"), ScopeKey::Context(1)]), "c in 1");
        assert_eq!(ready(&mut order), ["a in 1", "b in 2"]);
        order.finish(2);
        assert!(ready(&mut order).is_empty(), "c waits for a, not for b");
        order.finish(1);
        assert_eq!(ready(&mut order), ["c in 1"]);
    }

    #[test]
    fn a_later_change_of_an_object_inherits_where_the_earlier_one_goes() {
        let mut order = Order::default();
        order.admit(
            1,
            keys(&[object("u"), ScopeKey::Context(1)]),
            "create u in 1",
        );
        // Computed before the create was applied: the store does not know u is in 1.
        let scope = order
            .admit(2, keys(&[object("u"), ScopeKey::Context(2)]), "move u to 2")
            .clone();
        assert_eq!(
            scope,
            keys(&[object("u"), ScopeKey::Context(1), ScopeKey::Context(2)])
        );
        order.admit(3, keys(&[object("v"), ScopeKey::Context(1)]), "v in 1");
        order.admit(4, keys(&[object("w"), ScopeKey::Context(3)]), "w in 3");
        assert_eq!(ready(&mut order), ["create u in 1", "w in 3"]);
        order.finish(1);
        assert_eq!(ready(&mut order), ["move u to 2"]);
        order.finish(2);
        assert_eq!(ready(&mut order), ["v in 1"]);
    }

    #[test]
    fn everything_waits_for_all_before_it_and_pauses_admission() {
        let mut order = Order::default();
        order.admit(1, keys(&[ScopeKey::Context(1)]), "in 1");
        order.admit(2, Scope::Everything, "delete context");
        assert!(!order.admits());
        assert_eq!(ready(&mut order), ["in 1"]);
        order.finish(1);
        assert_eq!(ready(&mut order), ["delete context"]);
        order.finish(2);
        assert!(order.admits());
        order.admit(3, keys(&[ScopeKey::Context(2)]), "in 2");
        assert_eq!(ready(&mut order), ["in 2"]);
    }

    #[test]
    fn members_of_one_group_in_different_contexts_run_together_but_not_with_the_group() {
        let mut order = Order::default();
        let group = "cn=staff,cn=groups";
        order.admit(
            1,
            keys(&[
                object("a"),
                ScopeKey::Context(1),
                ScopeKey::shared_dn(group),
            ]),
            "a joins in 1",
        );
        order.admit(
            2,
            keys(&[
                object("b"),
                ScopeKey::Context(2),
                ScopeKey::shared_dn(group),
            ]),
            "b joins in 2",
        );
        let scope = order
            .admit(
                3,
                keys(&[object("g"), ScopeKey::dn(group)]),
                "group changes",
            )
            .clone();
        assert!(
            scope.overlaps(&keys(&[ScopeKey::Context(2)])),
            "the group inherits where its members go"
        );
        assert_eq!(ready(&mut order), ["a joins in 1", "b joins in 2"]);
        order.finish(1);
        assert!(ready(&mut order).is_empty());
        order.finish(2);
        assert_eq!(ready(&mut order), ["group changes"]);
    }

    #[test]
    fn a_member_changed_after_its_group_does_not_take_on_the_groups_other_contexts() {
        let mut order = Order::default();
        let member = "uid=a,cn=users";
        order.admit(
            1,
            keys(&[
                object("g"),
                ScopeKey::dn("cn=g"),
                ScopeKey::reads_dn(member),
                ScopeKey::reads_dn("uid=b,cn=users"),
                ScopeKey::Context(1),
                ScopeKey::Context(2),
            ]),
            "group with members in 1 and 2",
        );
        let scope = order
            .admit(
                2,
                keys(&[object("a"), ScopeKey::dn(member), ScopeKey::Context(1)]),
                "member a changes in 1",
            )
            .clone();
        assert!(!scope.overlaps(&keys(&[ScopeKey::Context(2)])));
        order.admit(3, keys(&[object("c"), ScopeKey::Context(2)]), "c in 2");
        assert_eq!(ready(&mut order), ["group with members in 1 and 2"]);
        order.finish(1);
        assert_eq!(ready(&mut order), ["member a changes in 1", "c in 2"]);
    }

    #[test]
    fn things_in_one_context_run_together_but_not_with_the_context_itself() {
        let mut order = Order::default();
        order.admit(1, keys(&[object("a"), ScopeKey::InContext(1)]), "a in 1");
        order.admit(2, keys(&[object("b"), ScopeKey::InContext(1)]), "b in 1");
        order.admit(3, keys(&[ScopeKey::Context(1)]), "context 1 changes");
        order.admit(4, keys(&[object("c"), ScopeKey::InContext(1)]), "c in 1");
        assert_eq!(ready(&mut order), ["a in 1", "b in 1"]);
        order.finish(1);
        assert!(ready(&mut order).is_empty());
        order.finish(2);
        assert_eq!(ready(&mut order), ["context 1 changes"]);
        order.finish(3);
        assert_eq!(ready(&mut order), ["c in 1"]);
    }

    #[test]
    fn a_name_given_up_orders_the_change_that_takes_it() {
        let mut order = Order::default();
        let login = |name| ScopeKey::name(crate::apply::NameSpace::Login, name);
        order.admit(
            1,
            keys(&[object("a"), login("anna"), login("anna2")]),
            "a renames",
        );
        order.admit(2, keys(&[object("b"), login("anna")]), "b takes anna");
        order.admit(3, keys(&[object("c"), login("carl")]), "c");
        assert_eq!(ready(&mut order), ["a renames", "c"]);
        order.finish(1);
        assert_eq!(ready(&mut order), ["b takes anna"]);
    }

    #[test]
    fn ready_messages_come_in_stream_order() {
        let mut order = Order::default();
        order.admit(1, keys(&[ScopeKey::Context(1)]), "x1");
        order.admit(2, keys(&[ScopeKey::Context(2)]), "y1");
        order.admit(3, keys(&[ScopeKey::Context(2)]), "y2");
        order.admit(4, keys(&[ScopeKey::Context(1)]), "x2");
        assert_eq!(ready(&mut order), ["x1", "y1"]);
        order.finish(2);
        order.finish(1);
        assert_eq!(ready(&mut order), ["y2", "x2"]);
    }

    #[test]
    fn shutdown_hands_back_only_what_has_not_started() {
        let mut order = Order::default();
        order.admit(1, keys(&[ScopeKey::Context(1)]), "running");
        order.admit(2, keys(&[ScopeKey::Context(1)]), "waiting");
        order.admit(3, Scope::Everything, "barrier");
        assert_eq!(ready(&mut order), ["running"]);
        assert_eq!(order.drain_waiting(), ["waiting", "barrier"]);
        assert!(order.admits());
        assert_eq!(order.finish(1), Some("running"));
        assert!(order.is_empty());
    }

    /// The rule the index implements, spelled out: a message waits for every earlier held one
    /// whose scope overlaps its own (after inheriting from those that change what it reads).
    struct Reference {
        held: Vec<(u64, Scope, bool)>,
    }

    impl Reference {
        fn admit(&mut self, sequence: u64, scope: Scope) {
            let scope = match scope {
                Scope::Keys(mut keys) => {
                    let read: Vec<_> = keys.iter().filter_map(ScopeKey::read_object).collect();
                    let mut everything = false;
                    let mut inherited = BTreeSet::new();
                    for (_, earlier, _) in &self.held {
                        match earlier {
                            Scope::Everything => everything = true,
                            Scope::Keys(earlier) => {
                                if earlier
                                    .iter()
                                    .filter_map(ScopeKey::changed_object)
                                    .any(|o| read.contains(&o))
                                {
                                    inherited.extend(earlier.iter().cloned());
                                }
                            }
                        }
                    }
                    keys.extend(inherited);
                    if everything {
                        Scope::Everything
                    } else {
                        Scope::Keys(keys)
                    }
                }
                Scope::Everything => Scope::Everything,
            };
            self.held.push((sequence, scope, false));
        }

        /// The held messages that may start now, in order (marked as started).
        fn ready(&mut self) -> Vec<u64> {
            let mut ready = Vec::new();
            for i in 0..self.held.len() {
                let (sequence, scope, started) = &self.held[i];
                let blocked = self.held[..i].iter().any(|(_, e, _)| e.overlaps(scope));
                if !started && !blocked {
                    ready.push(*sequence);
                }
            }
            for (sequence, _, started) in &mut self.held {
                if ready.contains(sequence) {
                    *started = true;
                }
            }
            ready
        }

        fn finish(&mut self, sequence: u64) {
            self.held.retain(|(s, _, _)| *s != sequence);
        }
    }

    #[test]
    fn the_index_starts_messages_exactly_as_the_rule_says() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        let dns = ["uid=a", "uid=b", "cn=g", "cn=h"];
        for seed in 0..200u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut order = Order::default();
            let mut reference = Reference { held: Vec::new() };
            let mut running: Vec<u64> = Vec::new();
            for sequence in 1..=60u64 {
                if order.admits() && rng.random_bool(0.6) {
                    let scope = if rng.random_bool(0.03) {
                        Scope::Everything
                    } else {
                        let mut keys = BTreeSet::new();
                        for _ in 0..rng.random_range(1..=4) {
                            let dn = dns[rng.random_range(0..dns.len())];
                            let context = rng.random_range(1..=3);
                            keys.insert(match rng.random_range(0..9) {
                                0 => ScopeKey::Object(dn.into()),
                                1 => ScopeKey::dn(dn),
                                2 => ScopeKey::shared_dn(dn),
                                3 => ScopeKey::reads_dn(dn),
                                4 => ScopeKey::Context(context),
                                5 => ScopeKey::InContext(context),
                                6 => ScopeKey::name(crate::apply::NameSpace::Login, dn),
                                7 => ScopeKey::group_in_context(dn, context),
                                _ => ScopeKey::ContextNames,
                            });
                        }
                        Scope::Keys(keys)
                    };
                    let admitted = order.admit(sequence, scope.clone(), sequence).clone();
                    reference.admit(sequence, scope);
                    assert_eq!(Some(&admitted), reference.held.last().map(|(_, s, _)| s));
                } else if !running.is_empty() {
                    let done = running.remove(rng.random_range(0..running.len()));
                    order.finish(done);
                    reference.finish(done);
                }
                let mut started: Vec<u64> =
                    std::iter::from_fn(|| order.next_ready().map(|(s, _)| s)).collect();
                started.sort_unstable();
                assert_eq!(started, reference.ready(), "seed {seed}, step {sequence}");
                running.extend(started);
            }
        }
    }
}
