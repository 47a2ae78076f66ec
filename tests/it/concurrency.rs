//! Concurrent application keeps every order that matters.
//!
//! A mixed stream of changes (contexts, users, groups, resources; creates, modifies, moves,
//! deletes; `ox_connector::workload`) is applied by the daemon with the OX applier against the
//! emulator (2 ms per SOAP call, so applies overlap), with `--apply-concurrency 8`. Every apply
//! is timed. What each change touches is worked out here from the changes alone, independently
//! of the daemon's own scopes: its object; a context change touches everything in the OX
//! contexts it changes and every other context change; a group change touches its old and new
//! members (the workload's names are unique per object, so no two objects share one). Then for every two changes that share something, the earlier one (in stream
//! order: the files form one batch, queued by type, then by name) must have finished before the later one started — and the run must actually have
//! applied changes at the same time, and end in the expected OX state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ox_connector::app::Daemon;
use ox_connector::apply::{Applier, ApplyError, Outcome, Scope};
use ox_connector::emulator::FaultSettings;
use ox_connector::listener::batch::Ranks;
use ox_connector::message::ProvisioningMessage;
use ox_connector::provision::{kind, OxApplier};
use ox_connector::workload::{Change, ObjectKind, Workload, WorkloadSettings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::ox::OxEnv;
use crate::support::wait_for;

/// When one change was applied (its last, successful attempt).
#[derive(Debug, Clone)]
struct Applied {
    started: Instant,
    finished: Instant,
    /// Every call of the applier for this change (a failed attempt is retried).
    calls: usize,
}

/// The OX applier, timing every successful apply by listener file.
struct Timed {
    inner: OxApplier,
    applied: Arc<Mutex<BTreeMap<String, Applied>>>,
}

impl Applier for Timed {
    async fn apply(&self, message: &ProvisioningMessage) -> Result<Outcome, ApplyError> {
        let started = Instant::now();
        let result = self.inner.apply(message).await;
        let file = message.source_file().unwrap_or_default().to_owned();
        let mut applied = self.applied.lock().unwrap();
        let calls = applied.get(&file).map_or(0, |a: &Applied| a.calls) + 1;
        if result.is_ok() || calls == 1 {
            applied.insert(
                file,
                Applied {
                    started,
                    finished: Instant::now(),
                    calls,
                },
            );
        }
        result
    }

    async fn scope(&self, message: &ProvisioningMessage) -> Scope {
        self.inner.scope(message).await
    }
}

/// The files were all in the folder at the daemon's first look: one batch, queued by type
/// first, then by name (`ox_connector::listener::batch`, the original connector's order).
fn stream_order(changes: &[Change]) -> Vec<Change> {
    let ranks = Ranks::new(kind::batch_ranks());
    let mut ordered = changes.to_vec();
    ordered.sort_by_key(|c| {
        let module = c.content["udm_object_type"].as_str().unwrap_or_default();
        (
            ranks.rank(module, c.content["object"].is_null()),
            c.file.clone(),
        )
    });
    ordered
}

/// What a change touches, worked out from the stream alone.
#[derive(Debug)]
struct Touches {
    /// The OX contexts it is in (before and after).
    contexts: BTreeSet<i32>,
    /// A context change: it touches everything in its contexts, and context names are unique
    /// across OX, so context changes share them.
    context_names: bool,
    /// A user's DN, or a group's old and new members.
    members: BTreeSet<String>,
    group: bool,
}

impl Touches {
    fn shares_with(&self, other: &Touches) -> bool {
        let contexts = !self.contexts.is_disjoint(&other.contexts);
        match (self.context_names, other.context_names) {
            (true, true) => true,
            (true, false) | (false, true) => contexts,
            // A group and its old or new member.
            (false, false) => {
                self.group != other.group && !self.members.is_disjoint(&other.members)
            }
        }
    }
}

/// Replays the stream and says, per change, which OX contexts it touches.
fn touched(changes: &[Change]) -> Vec<Touches> {
    let context_of = |content: &Value| {
        content["object"]["oxContext"]
            .as_str()
            .and_then(|c| c.parse::<i32>().ok())
            .or_else(|| content["object"]["oxContext"].as_i64().map(|c| c as i32))
    };
    let texts = |content: &Value, key: &str| -> Vec<String> {
        content["object"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_lowercase))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Where each user or resource is (by DN, as groups name their members), and each group's
    // members.
    let mut where_is: BTreeMap<String, i32> = BTreeMap::new();
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The id of each context, by DN (a deletion carries no object).
    let mut context_ids: BTreeMap<String, i32> = BTreeMap::new();
    let in_contexts = |contexts: BTreeSet<i32>, members: BTreeSet<String>, group| Touches {
        contexts,
        context_names: false,
        members,
        group,
    };
    changes
        .iter()
        .map(|change| {
            let dn = change.content["dn"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase();
            match change.object {
                ObjectKind::Context => {
                    let id = change.content["object"]["contextid"]
                        .as_str()
                        .and_then(|id| id.parse::<i32>().ok());
                    let contexts = match id {
                        Some(id) => context_ids.insert(dn, id).into_iter().chain([id]).collect(),
                        None => context_ids.remove(&dn).into_iter().collect(),
                    };
                    Touches {
                        contexts,
                        context_names: true,
                        members: BTreeSet::new(),
                        group: false,
                    }
                }
                ObjectKind::User | ObjectKind::Resource => {
                    let mut contexts: BTreeSet<i32> =
                        where_is.get(&dn).copied().into_iter().collect();
                    match context_of(&change.content) {
                        Some(context) => {
                            contexts.insert(context);
                            where_is.insert(dn.clone(), context);
                        }
                        None => {
                            where_is.remove(&dn);
                        }
                    }
                    in_contexts(contexts, BTreeSet::from([dn]), false)
                }
                ObjectKind::Group => {
                    let new = texts(&change.content, "users");
                    let old = members.insert(dn, new.clone()).unwrap_or_default();
                    in_contexts(
                        old.iter()
                            .chain(&new)
                            .filter_map(|member| where_is.get(member).copied())
                            .collect(),
                        old.iter().chain(&new).cloned().collect(),
                        true,
                    )
                }
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_changes_run_together_and_every_shared_thing_keeps_its_order() {
    let ox_env = OxEnv::start().await;
    ox_env.ox.set_faults(FaultSettings {
        latency_ms: 2,
        ..FaultSettings::default()
    });
    let workload = Workload::generate(WorkloadSettings {
        changes: 1_200,
        contexts: 8,
        seed: 7,
        group_replacements: 0.0,
    });
    workload.write_all(&ox_env.env.listener_dir()).unwrap();

    let applied = Arc::new(Mutex::new(BTreeMap::new()));
    let mut settings = ox_env.env.settings.clone();
    settings.apply_concurrency = 8;
    let token = CancellationToken::new();
    let daemon = {
        let (ox_settings, data_dir) = (settings.ox.clone(), settings.data_dir.clone());
        let applied = applied.clone();
        Daemon::start_with(
            settings,
            move |js| async move {
                OxApplier::open(ox_settings, &data_dir, &js)
                    .await
                    .map(|inner| Timed { inner, applied })
                    .map_err(|e| e.to_string())
            },
            token.clone(),
        )
        .await
        .unwrap()
    };
    wait_for(
        "every listener file applied",
        Duration::from_secs(240),
        || ox_env.env.queued_files().is_empty(),
    )
    .await;
    token.cancel();
    daemon.wait().await.unwrap();

    let differences = workload.expected.diff(&ox_env.ox.state());
    assert!(
        differences.is_empty(),
        "OX is not in the expected state: {:?}",
        &differences[..differences.len().min(10)]
    );

    let applied = applied.lock().unwrap().clone();
    let changes = stream_order(&workload.changes);
    let touches = touched(&changes);
    let times: Vec<Option<&Applied>> = changes.iter().map(|c| applied.get(&c.file)).collect();
    let mut overlapping = 0usize;
    let mut checked = 0usize;
    for (i, earlier) in changes.iter().enumerate() {
        let Some(earlier_time) = times[i] else {
            continue; // Nothing to do in OX (e.g. a stale or ignored change) counts as applied.
        };
        for (j, later) in changes.iter().enumerate().skip(i + 1) {
            let Some(later_time) = times[j] else {
                continue;
            };
            let shared =
                later.entry_uuid == earlier.entry_uuid || touches[i].shares_with(&touches[j]);
            if shared {
                checked += 1;
                assert!(
                    earlier_time.finished <= later_time.started,
                    "{} ({:?} {:?}, touching {:?}) was still being applied when {} ({:?} {:?}, \
                     touching {:?}) started: {:?} {:?}",
                    earlier.file,
                    earlier.object,
                    earlier.kind,
                    touches[i],
                    later.file,
                    later.object,
                    later.kind,
                    touches[j],
                    earlier_time,
                    later_time,
                );
            } else if later_time.started < earlier_time.finished
                && earlier_time.started < later_time.finished
            {
                overlapping += 1;
            }
        }
    }
    assert!(
        checked > 10_000,
        "only {checked} ordered pairs were checked"
    );
    assert!(
        overlapping > 100,
        "independent changes were hardly applied at the same time ({overlapping} \
         overlapping pairs)"
    );
}

/// Fails the change of `b` as "name taken" until the change of `a` (slow) was applied.
struct HeldName {
    freed: Arc<std::sync::atomic::AtomicBool>,
}

impl Applier for HeldName {
    async fn apply(&self, message: &ProvisioningMessage) -> Result<Outcome, ApplyError> {
        use std::sync::atomic::Ordering;
        if message.object_id == "a" {
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.freed.store(true, Ordering::SeqCst);
            return Ok(Outcome::Applied);
        }
        if self.freed.load(Ordering::SeqCst) {
            Ok(Outcome::Applied)
        } else {
            Err(ApplyError::name_taken(
                "User anna already exists in this context",
            ))
        }
    }

    async fn scope(&self, message: &ProvisioningMessage) -> Scope {
        let key = ox_connector::apply::ScopeKey::Object(message.object_id.as_str().into());
        Scope::Keys(BTreeSet::from([key]))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_refused_for_a_taken_name_is_retried_as_soon_as_an_earlier_change_finished() {
    let env = crate::support::TestEnv::start().await;
    let mut settings = env.settings.clone();
    settings.retry_delay = Duration::from_secs(120);
    let dir = env.listener_dir();
    crate::support::files::write(
        &dir,
        &crate::support::files::name(1),
        &crate::support::files::user("a", "anna"),
    );
    crate::support::files::write(
        &dir,
        &crate::support::files::name(2),
        &crate::support::files::user("b", "anna2"),
    );
    let token = CancellationToken::new();
    let freed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let daemon = Daemon::start_with(
        settings,
        move |_| async move { Ok::<_, std::convert::Infallible>(HeldName { freed }) },
        token.clone(),
    )
    .await
    .unwrap();
    // Far less than the retry delay.
    wait_for("both changes applied", Duration::from_secs(20), || {
        env.queued_files().is_empty()
    })
    .await;
    token.cancel();
    daemon.wait().await.unwrap();
}

/// An overloaded OX (HTTP 503 beyond 4 calls at once, 4 workers at 5 ms) loses no change: the
/// adaptive limit backs off, the refused calls are retried, and OX ends in the expected state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_ox_loses_no_change_and_the_limit_backs_off() {
    use ox_connector::emulator::{CapacitySettings, EmulatorSettings, ADMIN_GUIDE_PROPERTIES};
    let mut config = EmulatorSettings::new(
        crate::support::ox::MASTER,
        crate::support::ox::MASTER_PASSWORD,
    )
    .with_properties(&ADMIN_GUIDE_PROPERTIES)
    .expect("known properties");
    config.faults.latency_ms = 5;
    config.capacity = CapacitySettings {
        workers: Some(4),
        overload_beyond: Some(4),
    };
    let mut env = OxEnv::start_with(config).await;
    env.env.settings.apply_concurrency = 16;
    let workload = Workload::generate(WorkloadSettings {
        changes: 400,
        contexts: 1,
        seed: 11,
        group_replacements: 0.0,
    });
    workload.write_all(&env.env.listener_dir()).unwrap();
    let daemon = env.daemon().await;
    wait_for(
        "every listener file applied",
        Duration::from_secs(240),
        || env.env.queued_files().is_empty(),
    )
    .await;
    let status = daemon.daemon.status().get();
    daemon.stop().await;
    let differences = workload.expected.diff(&env.ox.state());
    assert!(
        differences.is_empty(),
        "{:?}",
        &differences[..differences.len().min(10)]
    );
    let refused: u64 = env.ox.calls().values().map(|c| c.faults).sum();
    assert!(
        refused > 0,
        "the emulator was not overloaded; the test proves nothing"
    );
    let calls = status
        .ox_calls
        .expect("the status shows the calls towards OX");
    assert!(calls.limit < 16, "the limit backed off: {calls:?}");
}
