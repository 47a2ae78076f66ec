//! Reconcile: compares what the state store remembers with what OX really holds, and repairs
//! the difference through the queue.
//!
//! Per context (all, or `--context N`): OX's contexts (`list`), users (`listAll` +
//! `getMultipleData`), groups (`list`) and resources (`list`) against the remembered contexts,
//! users, groups and resources. Kinds of drift:
//!
//! | kind | meaning | `--apply` |
//! |---|---|---|
//! | `missing_in_ox` | remembered, but OX has neither its id nor its name | the remembered object is applied again (OX creates it) |
//! | `differs` | same id and name, but fields differ (name, quota; display name, given/sur name, mail; members; display name, mail, description) | applied again (OX gets the UCS values) |
//! | `stale_id` | OX has the name under another id (restored or re-created in OX) | the remembered id is corrected, then applied again |
//! | `unknown_in_ox` | OX has it, the connector does not know it (made in OX directly, or its UCS object was never provisioned) | nothing: delete it in OX or provision it from UCS |
//!
//! "Applied again" means a provisioning message with the remembered object is queued on
//! JetStream (publisher `ox-connector-reconcile`), so the repair goes through the normal apply
//! path, in order with every other change, with retries and the blocked status. Objects with a
//! change waiting in `listener/` are reported but not repaired (that change applies anyway).
//! Context admins and OX's `users` group are never reported. Functional accounts and access
//! profiles are not compared.
//!
//! This is the driver: each object kind compares itself, next to its provisioning code
//! ([`crate::provision::kind_parts::Kind::compare`]: what it lists in OX, which fields, what
//! "differs" means); here the contexts are walked, every kind in
//! [`crate::provision::kind::KINDS`] is asked, and the drift is planned, repaired and reported.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Ops, OpsError};
use crate::message::{Body, Operation, ProvisioningMessage, REALM_UDM, SCHEMA};
use crate::ox::soap::OxError;
use crate::provision::compare::{Compare, InContext, InContextCompare, Known, Run};
use crate::provision::kind::{self, KINDS};
use crate::provision::state::ObjectState;
use crate::provision::{OxApplier, Provisioner};
use crate::queue::publish::Publisher;
use crate::telemetry::progress::Progress;

pub use crate::provision::compare::{Drift, DriftKind};

/// The publisher name of repair messages.
pub const PUBLISHER: &str = "ox-connector-reconcile";

/// `POST /reconcile`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReconcileRequest {
    /// Only this OX context.
    pub context: Option<i32>,
    /// Repair (otherwise only report).
    pub apply: bool,
}

/// The result of a reconcile run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub apply: bool,
    pub contexts: Vec<i32>,
    /// Remembered objects compared.
    pub compared: usize,
    pub drift: Vec<Drift>,
    /// What could not be compared, and why.
    pub notes: Vec<String>,
    /// Repair messages queued (with `apply`).
    pub repairs_queued: usize,
}

impl ReconcileReport {
    pub fn count(&self, kind: DriftKind) -> usize {
        self.drift.iter().filter(|d| d.kind == kind).count()
    }

    /// Counts by metric label, every kind listed.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        DriftKind::ALL
            .iter()
            .map(|k| (k.label(), self.count(*k)))
            .collect()
    }
}

fn ox_error(e: OxError) -> OpsError {
    OpsError::Ox(e)
}

/// Compares the state store with OX; with `apply`, queues the repairs. Says how far it is
/// through `progress` (phases `contexts`, `users in context N`, `groups in context N`,
/// `resources in context N`, `repairs`).
pub async fn reconcile(
    ops: &Ops,
    request: &ReconcileRequest,
    progress: &Progress,
) -> Result<ReconcileReport, OpsError> {
    let applier = ops.ox.get().ok_or_else(|| {
        OpsError::Unavailable("this daemon does not provision OX; nothing to reconcile".into())
    })?;
    let p = applier.provisioner();
    let remembered = p.state.all().await.map_err(OpsError::from)?;
    let run = Run {
        p,
        remembered: &remembered,
        only: request.context,
        progress,
    };
    let mut report = compare(&run).await?;
    report.apply = request.apply;
    let pending = pending_objects(&ops.listener_dir);
    for d in &mut report.drift {
        d.pending_change = d
            .entry_uuid
            .as_ref()
            .is_some_and(|u| pending.contains(u.as_str()));
    }
    plan_repairs(&mut report);
    if request.apply {
        report.repairs_queued = repair(ops, p, &remembered, &report, progress).await?;
    }
    Ok(report)
}

/// Asks every kind: first the contexts, then, in each context (OX's and every context a
/// remembered object is in), the kinds that live in contexts, in batch order.
async fn compare(run: &Run<'_>) -> Result<ReconcileReport, OpsError> {
    let mut report = ReconcileReport::default();
    let mut in_ox = BTreeSet::new();
    run.progress.report("contexts", 0, 1);
    for compare in KINDS.iter().filter_map(|k| match &k.compare {
        Some(Compare::Contexts(compare)) => Some(compare),
        _ => None,
    }) {
        let found = compare(run).await.map_err(ox_error)?;
        report.compared += found.compared;
        report.drift.extend(found.drift);
        in_ox.extend(found.in_ox);
    }
    run.progress.report("contexts", 1, 1);
    report.contexts = contexts_to_compare(run, &in_ox);
    for &c in &report.contexts {
        let auth = match run.p.context_admin(c) {
            Ok(auth) => auth,
            Err(e) => {
                report.notes.push(format!(
                    "context {c}: users, groups and resources not compared: {e}"
                ));
                continue;
            }
        };
        let at = InContext {
            p: run.p,
            c,
            exists: in_ox.contains(&c),
            auth,
            progress: run.progress,
        };
        for (topic, part) in in_context_kinds() {
            let known = known_in_context(run, topic, part, c);
            report
                .drift
                .extend((part.compare)(&at, &known).await.map_err(ox_error)?);
            report.compared += known.len();
        }
    }
    Ok(report)
}

/// The kinds compared in each context, with their topics, in batch order.
fn in_context_kinds() -> impl Iterator<Item = (&'static str, &'static InContextCompare)> {
    KINDS.iter().filter_map(|k| match &k.compare {
        Some(Compare::InContext(part)) => Some((k.topic, part)),
        _ => None,
    })
}

/// The contexts whose objects are compared, in order: OX's and every context a remembered
/// object is in (those the run wants).
fn contexts_to_compare(run: &Run<'_>, in_ox: &BTreeSet<i32>) -> Vec<i32> {
    let in_state = run
        .remembered
        .iter()
        .flat_map(|(_, s)| s.ox.context.iter().chain(s.ox.per_context.keys()))
        .copied()
        .filter(|c| run.wants(*c));
    let all: BTreeSet<i32> = in_ox.iter().copied().chain(in_state).collect();
    all.into_iter().collect()
}

/// The remembered objects of `topic` in context `c`, with their OX ids there.
fn known_in_context<'a>(
    run: &Run<'a>,
    topic: &str,
    part: &InContextCompare,
    c: i32,
) -> Vec<Known<'a>> {
    run.remembered
        .iter()
        .filter(|(_, s)| s.object_type == topic)
        .filter_map(|(uuid, state)| {
            let ox = part.placement.in_context(state, c)?.clone();
            Some(Known { uuid, state, ox })
        })
        .collect()
}

/// Entry UUIDs of the objects with a change waiting in `listener/`.
fn pending_objects(listener_dir: &std::path::Path) -> HashSet<String> {
    crate::listener::scan(listener_dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| crate::listener::ListenerFile::read(&f.path()).ok())
        .map(|f| f.entry_uuid)
        .collect()
}

fn plan_repairs(report: &mut ReconcileReport) {
    for d in &mut report.drift {
        d.repair = Some(
            match (d.kind, d.pending_change) {
                (DriftKind::UnknownInOx, _) => "none: delete it in OX or provision it from UCS",
                (_, true) => "none: a waiting change of this object applies first",
                (DriftKind::StaleId, _) => "correct the remembered id, apply again",
                (DriftKind::MissingInOx | DriftKind::Differs, _) => "apply again",
            }
            .to_owned(),
        );
    }
}

/// Queues the repairs; returns how many messages were queued.
async fn repair(
    ops: &Ops,
    p: &Provisioner,
    remembered: &[(String, ObjectState)],
    report: &ReconcileReport,
    progress: &Progress,
) -> Result<usize, OpsError> {
    let states: HashMap<&str, &ObjectState> =
        remembered.iter().map(|(u, s)| (u.as_str(), s)).collect();
    let corrected = correct_stale_ids(p, &states, report).await?;
    let targets = repair_targets(&states, report);
    let lost_contexts = lost_contexts(&states, report);
    let publisher = Publisher::new(ops.js.clone());
    for (done, (uuid, state)) in targets.iter().enumerate() {
        progress.report("repairs", done, targets.len());
        forget_before_repair(p, uuid, state, &corrected).await?;
        let message = repair_message(uuid, state);
        if lost_contexts.contains(uuid) {
            if let Some(applier) = ops.ox.get() {
                recreate_lost_context(ops, applier, &message).await?;
                continue;
            }
        }
        publisher.publish(&message).await.map_err(OpsError::from)?;
        tracing::info!(
            object_type = %state.object_type,
            dn = %state.dn,
            entry_uuid = %uuid,
            "Queued a repair of an object that differs from OX."
        );
    }
    progress.report("repairs", targets.len(), targets.len());
    Ok(targets.len())
}

/// The contexts OX lost (of the kind that compares the contexts). Such a context blocks every
/// waiting change of it, so its repair is applied at once instead of being queued behind the
/// very changes it unblocks.
fn lost_contexts<'a>(
    states: &HashMap<&str, &ObjectState>,
    report: &'a ReconcileReport,
) -> HashSet<&'a str> {
    report
        .drift
        .iter()
        .filter(|d| d.kind == DriftKind::MissingInOx)
        .filter_map(|d| d.entry_uuid.as_deref())
        .filter(|uuid| {
            states
                .get(uuid)
                .and_then(|s| kind::of_topic(&s.object_type))
                .is_some_and(|k| matches!(k.compare, Some(Compare::Contexts(_))))
        })
        .collect()
}

/// Writes what the object's kind forgets before a repair applies it again
/// ([`InContextCompare::before_repair`]), if it forgets anything.
async fn forget_before_repair(
    p: &Provisioner,
    uuid: &str,
    state: &ObjectState,
    corrected: &HashMap<String, ObjectState>,
) -> Result<(), OpsError> {
    let Some(forget) = in_context_part(&state.object_type).and_then(|part| part.before_repair)
    else {
        return Ok(());
    };
    let mut forced = corrected
        .get(uuid)
        .cloned()
        .unwrap_or_else(|| state.clone());
    forget(&mut forced);
    p.state.put(uuid, &forced).await.map_err(OpsError::from)
}

/// How the kind of `topic` is compared in a context, if it is.
fn in_context_part(topic: &str) -> Option<&'static InContextCompare> {
    match &kind::of_topic(topic)?.compare {
        Some(Compare::InContext(part)) => Some(part),
        _ => None,
    }
}

/// Corrects each stale remembered id to OX's (no pending change of the object waits);
/// returns the corrected states.
async fn correct_stale_ids(
    p: &Provisioner,
    states: &HashMap<&str, &ObjectState>,
    report: &ReconcileReport,
) -> Result<HashMap<String, ObjectState>, OpsError> {
    let mut corrected: HashMap<String, ObjectState> = HashMap::new();
    for d in report
        .drift
        .iter()
        .filter(|d| d.kind == DriftKind::StaleId && !d.pending_change)
    {
        let (Some(uuid), Some(id), Some(c)) = (&d.entry_uuid, d.ox_id, d.context) else {
            continue;
        };
        let Some(mut state) = corrected
            .get(uuid)
            .cloned()
            .or_else(|| states.get(uuid.as_str()).map(|s| (*s).clone()))
        else {
            continue;
        };
        let placement = in_context_part(&state.object_type).map(|part| part.placement);
        if let Some(r) = placement.and_then(|at| at.in_context_mut(&mut state, c)) {
            r.id = id;
            // OX's object under that id has its own members (groups): forget the remembered
            // ones, so that applying it again sends the full list.
            r.members.clear();
        }
        p.state.put(uuid, &state).await.map_err(OpsError::from)?;
        corrected.insert(uuid.clone(), state);
    }
    Ok(corrected)
}

/// The remembered objects to apply again (each once), in batch order (contexts first, then
/// users, groups and the rest); unknown objects and objects with a pending change are left
/// alone.
fn repair_targets<'a>(
    states: &HashMap<&'a str, &'a ObjectState>,
    report: &'a ReconcileReport,
) -> Vec<(&'a str, &'a ObjectState)> {
    let mut targets: Vec<(&str, &ObjectState)> = Vec::new();
    for d in report
        .drift
        .iter()
        .filter(|d| d.kind != DriftKind::UnknownInOx && !d.pending_change)
    {
        let Some(uuid) = d.entry_uuid.as_deref() else {
            continue;
        };
        if targets.iter().any(|(u, _)| *u == uuid) {
            continue;
        }
        if let Some(state) = states.get(uuid) {
            targets.push((uuid, state));
        }
    }
    let rank = |topic: &str| kind::of_topic(topic).map_or(u8::MAX, |k| k.rank.change);
    targets.sort_by_key(|(_, s)| rank(&s.object_type));
    targets
}

/// A modify message that applies the remembered object again.
fn repair_message(uuid: &str, state: &ObjectState) -> ProvisioningMessage {
    ProvisioningMessage {
        schema: SCHEMA,
        id: uuid::Uuid::new_v4(),
        realm: REALM_UDM.to_owned(),
        topic: state.object_type.clone(),
        op: Operation::Modify,
        publisher_name: PUBLISHER.to_owned(),
        ts: chrono::Utc::now(),
        object_id: uuid.to_owned(),
        dn: state.dn.clone(),
        options: None,
        body: Body {
            old: None,
            new: Some(state.object.clone()),
        },
        source: None,
    }
}

/// Applies the repair of a context OX lost at once and lets the waiting changes retry.
async fn recreate_lost_context(
    ops: &Ops,
    applier: &OxApplier,
    message: &ProvisioningMessage,
) -> Result<(), OpsError> {
    use crate::apply::Applier;
    applier.apply(message).await.map_err(|e| {
        OpsError::Unavailable(format!(
            "cannot re-create the lost context {}: {}",
            message.dn, e.message
        ))
    })?;
    tracing::info!(
        dn = %message.dn,
        entry_uuid = %message.object_id,
        "Re-created a context OX had lost, at once (the waiting changes of it depend on it)."
    );
    crate::queue::consume::retry_all_now(&ops.retry_now);
    Ok(())
}

/// Runs a report-only reconcile every `interval` until `stop`; the result goes to the log and
/// the metrics.
pub async fn run_periodic(
    ops: std::sync::Arc<Ops>,
    interval: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if ops.ox.get().is_none() {
            continue;
        }
        let request = ReconcileRequest::default();
        let progress = Progress::new("reconcile");
        let run = reconcile(&ops, &request, &progress);
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = run => result,
        };
        progress.finish();
        match result {
            Ok(report) => crate::telemetry::events::ReconcileFinished {
                trigger: "periodic",
                drift: &report.counts(),
                repairs_queued: 0,
                apply: false,
            }
            .emit(),
            Err(e) => crate::telemetry::events::ReconcileFailed {
                trigger: "periodic",
                error: &e,
            }
            .emit(),
        }
    }
}
