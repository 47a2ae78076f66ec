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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ops, OpsError};
use crate::message::{Body, Operation, ProvisioningMessage, REALM_UDM, SCHEMA};
use crate::ox::soap::{Context, Credentials, Group, OxError, Resource, User};
use crate::provision::state::{ObjectState, OxRef};
use crate::provision::udm::{self, Properties};
use crate::provision::user_mapping::MailServers;
use crate::provision::{context, group, resource, user, OxApplier, Provisioner};
use crate::queue::publish::Publisher;

/// The publisher name of repair messages.
pub const PUBLISHER: &str = "ox-connector-reconcile";
/// Users asked from OX per `getMultipleData` call.
const USERS_PER_CALL: usize = 100;
/// User fields compared (WSDL names); mail addresses case-insensitively.
const USER_FIELDS: &[&str] = &[
    "display_name",
    "given_name",
    "sur_name",
    "primaryEmail",
    "email1",
];

/// `POST /reconcile`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReconcileRequest {
    /// Only this OX context.
    pub context: Option<i32>,
    /// Repair (otherwise only report).
    pub apply: bool,
}

/// A kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    MissingInOx,
    StaleId,
    Differs,
    UnknownInOx,
}

impl DriftKind {
    pub const ALL: [DriftKind; 4] = [
        DriftKind::MissingInOx,
        DriftKind::StaleId,
        DriftKind::Differs,
        DriftKind::UnknownInOx,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            DriftKind::MissingInOx => "missing_in_ox",
            DriftKind::StaleId => "stale_id",
            DriftKind::Differs => "differs",
            DriftKind::UnknownInOx => "unknown_in_ox",
        }
    }

    /// Table text.
    pub fn text(self) -> &'static str {
        match self {
            DriftKind::MissingInOx => "missing in OX",
            DriftKind::StaleId => "stale id",
            DriftKind::Differs => "differs",
            DriftKind::UnknownInOx => "unknown in OX",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drift {
    pub kind: DriftKind,
    /// `context`, `user`, `group` or `resource`.
    pub object: String,
    pub context: Option<i32>,
    pub name: String,
    pub ox_id: Option<i32>,
    pub entry_uuid: Option<String>,
    pub dn: Option<String>,
    pub detail: String,
    /// A change of this object waits in `listener/`; it is not repaired.
    pub pending_change: bool,
    /// What `--apply` did (or would do).
    pub repair: Option<String>,
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
    OpsError::Unavailable(format!("OX: {e}"))
}

/// Compares the state store with OX; with `apply`, queues the repairs.
pub async fn reconcile(ops: &Ops, request: &ReconcileRequest) -> Result<ReconcileReport, OpsError> {
    let applier = ops.ox.get().ok_or_else(|| {
        OpsError::Unavailable("this daemon does not provision OX; nothing to reconcile".into())
    })?;
    let p = applier.provisioner();
    let remembered = p
        .state
        .all()
        .await
        .map_err(|e| OpsError::Unavailable(e.to_string()))?;
    let pending = pending_objects(&ops.listener_dir);
    let wanted = |c: i32| request.context.is_none_or(|only| only == c);

    let mut report = ReconcileReport {
        apply: request.apply,
        ..ReconcileReport::default()
    };
    let mut drift = Vec::new();
    let ox_contexts = compare_contexts(p, &remembered, &wanted, &mut report, &mut drift).await?;
    let contexts = contexts_to_compare(&remembered, &ox_contexts, &wanted);
    for &c in &contexts {
        let auth = match p.context_admin(c) {
            Ok(auth) => auth,
            Err(e) => {
                report.notes.push(format!(
                    "context {c}: users, groups and resources not compared: {e}"
                ));
                continue;
            }
        };
        let scope = InContext {
            p,
            c,
            exists: ox_contexts.contains_key(&c),
            auth,
            remembered: &remembered,
        };
        report.compared += compare_users(&scope, &mut drift).await?;
        report.compared += compare_groups(&scope, &mut drift).await?;
        report.compared += compare_resources(&scope, &mut drift).await?;
    }

    for d in &mut drift {
        d.pending_change = d
            .entry_uuid
            .as_ref()
            .is_some_and(|u| pending.contains(u.as_str()));
    }
    report.contexts = contexts;
    report.drift = drift;
    plan_repairs(&mut report);
    if request.apply {
        report.repairs_queued = repair(ops, p, &remembered, &report).await?;
    }
    Ok(report)
}

/// Compares the remembered contexts with OX's; returns OX's contexts (those `wanted`).
async fn compare_contexts(
    p: &Provisioner,
    remembered: &[(String, ObjectState)],
    wanted: &impl Fn(i32) -> bool,
    report: &mut ReconcileReport,
    drift: &mut Vec<Drift>,
) -> Result<BTreeMap<i32, Context>, OpsError> {
    let ox_contexts: BTreeMap<i32, Context> =
        p.ox.list_contexts("*")
            .await
            .map_err(ox_error)?
            .into_iter()
            .filter_map(|c| Some((c.id?, c)))
            .filter(|(id, _)| wanted(*id))
            .collect();
    let mut known_contexts = HashSet::new();
    for (uuid, state) in remembered
        .iter()
        .filter(|(_, s)| s.object_type == context::TOPIC)
    {
        let Some(id) = state.ox.context.filter(|c| wanted(*c)) else {
            continue;
        };
        known_contexts.insert(id);
        report.compared += 1;
        let base = Drift::about(uuid, state, "context", Some(id), &format!("context{id}"));
        let Some(ox) = ox_contexts.get(&id) else {
            drift.push(base.kind(DriftKind::MissingInOx, format!("OX has no context {id}")));
            continue;
        };
        let name = udm::text(&state.object, "name").unwrap_or_else(|| format!("context{id}"));
        let quota = udm::integer(&state.object, "oxQuota").unwrap_or(-1);
        let mut diffs = Vec::new();
        if ox.name.as_deref() != Some(name.as_str()) {
            diffs.push(field_diff("name", ox.name.as_deref(), &name));
        }
        if let Some(ox_quota) = ox.max_quota.filter(|q| *q != quota) {
            diffs.push(format!("maxQuota: OX {ox_quota}, UCS {quota}"));
        }
        if !diffs.is_empty() {
            drift.push(base.named(&name).kind(DriftKind::Differs, diffs.join("; ")));
        }
    }
    for (id, ox) in &ox_contexts {
        if !known_contexts.contains(id) {
            drift.push(Drift::unknown(
                "context",
                Some(*id),
                ox.name.clone().unwrap_or_default(),
                Some(*id),
                "OX context not created through UCS (no oxmail/oxcontext object known)".into(),
            ));
        }
    }
    Ok(ox_contexts)
}

/// The contexts whose users, groups and resources are compared, in order: OX's and every
/// context a remembered object is in (those `wanted`).
fn contexts_to_compare(
    remembered: &[(String, ObjectState)],
    ox_contexts: &BTreeMap<i32, Context>,
    wanted: &impl Fn(i32) -> bool,
) -> Vec<i32> {
    let in_state = remembered
        .iter()
        .flat_map(|(_, s)| s.ox.context.iter().chain(s.ox.per_context.keys()))
        .copied()
        .filter(|c| wanted(*c));
    let all: BTreeSet<i32> = ox_contexts.keys().copied().chain(in_state).collect();
    all.into_iter().collect()
}

/// One context being compared: what the comparisons of its users, groups and resources share.
struct InContext<'a> {
    p: &'a Provisioner,
    c: i32,
    /// Whether OX has the context; if not, everything remembered in it is missing in OX.
    exists: bool,
    /// The context admin's login.
    auth: Credentials,
    remembered: &'a [(String, ObjectState)],
}

impl InContext<'_> {
    /// The remembered objects of `topic` that live in this context.
    fn remembered(&self, topic: &str) -> Vec<(&String, &ObjectState)> {
        self.remembered
            .iter()
            .filter(|(_, s)| s.object_type == topic)
            .filter(|(_, s)| match topic {
                group::TOPIC => s.ox.per_context.contains_key(&self.c),
                _ => s.ox.context == Some(self.c) && s.ox.object.is_some(),
            })
            .map(|(u, s)| (u, s))
            .collect()
    }
}

/// Compares the context's users (except its admin); returns how many were compared.
async fn compare_users(at: &InContext<'_>, drift: &mut Vec<Drift>) -> Result<usize, OpsError> {
    let (p, c) = (at.p, at.c);
    let mut ox_users = Vec::new();
    if at.exists {
        let ids = p.ox.list_all_users(c, &at.auth).await.map_err(ox_error)?;
        for chunk in ids.chunks(USERS_PER_CALL) {
            ox_users.extend(p.ox.get_users(c, chunk, &at.auth).await.map_err(ox_error)?);
        }
    }
    let admin = p.context_admin_name(c);
    let ox_users: Vec<(i32, String, User)> = ox_users
        .into_iter()
        .filter_map(|u| Some((u.id?, u.name.clone()?, u)))
        .filter(|(_, name, _)| admin.as_deref() != Some(name.as_str()))
        .collect();
    let users = at.remembered(user::TOPIC);
    let servers = MailServers {
        imap: p.settings.imap_server.clone(),
        smtp: p.settings.smtp_server.clone(),
    };
    let claimed = compare(
        c,
        "user",
        &users,
        &ids_and_names(&ox_users),
        |_, state, id| {
            let (_, _, ox) = ox_users.iter().find(|(i, _, _)| *i == id)?;
            user_diffs(p, &state.object, ox, &servers)
        },
        drift,
    );
    unknown_to_the_connector(drift, "user", c, &ox_users, &claimed);
    Ok(users.len())
}

/// Compares the context's groups (except OX's built-in `users`) and their members.
async fn compare_groups(at: &InContext<'_>, drift: &mut Vec<Drift>) -> Result<usize, OpsError> {
    let (p, c) = (at.p, at.c);
    let ox_groups: Vec<Group> = if at.exists {
        p.ox.list_groups(c, "*", &at.auth).await.map_err(ox_error)?
    } else {
        Vec::new()
    };
    let ox_groups: Vec<(i32, String, Group)> = ox_groups
        .into_iter()
        .filter_map(|g| Some((g.id?, g.name.clone()?, g)))
        .filter(|(_, name, _)| !name.eq_ignore_ascii_case("users"))
        .collect();
    let groups = at.remembered(group::TOPIC);
    let mut member_ids: HashMap<String, Vec<i32>> = HashMap::new();
    for (uuid, state) in &groups {
        member_ids.insert((*uuid).clone(), expected_members(p, &state.object, c).await);
    }
    let claimed = compare(
        c,
        "group",
        &groups,
        &ids_and_names(&ox_groups),
        |uuid, _, id| {
            let (_, _, ox) = ox_groups.iter().find(|(i, _, _)| *i == id)?;
            let mut want = member_ids.get(uuid).cloned().unwrap_or_default();
            let mut have = ox.members.clone();
            want.sort_unstable();
            have.sort_unstable();
            (want != have).then(|| format!("members: OX {have:?}, UCS {want:?}"))
        },
        drift,
    );
    unknown_to_the_connector(drift, "group", c, &ox_groups, &claimed);
    Ok(groups.len())
}

/// Compares the context's resources.
async fn compare_resources(at: &InContext<'_>, drift: &mut Vec<Drift>) -> Result<usize, OpsError> {
    let (p, c) = (at.p, at.c);
    let ox_resources: Vec<Resource> = if at.exists {
        p.ox.list_resources(c, "*", &at.auth)
            .await
            .map_err(ox_error)?
    } else {
        Vec::new()
    };
    let ox_resources: Vec<(i32, String, Resource)> = ox_resources
        .into_iter()
        .filter_map(|r| Some((r.id?, r.name.clone()?, r)))
        .collect();
    let resources = at.remembered(resource::TOPIC);
    let claimed = compare(
        c,
        "resource",
        &resources,
        &ids_and_names(&ox_resources),
        |_, state, id| {
            let (_, _, ox) = ox_resources.iter().find(|(i, _, _)| *i == id)?;
            resource_diffs(&state.object, ox)
        },
        drift,
    );
    unknown_to_the_connector(drift, "resource", c, &ox_resources, &claimed);
    Ok(resources.len())
}

fn ids_and_names<T>(ox: &[(i32, String, T)]) -> Vec<(i32, String)> {
    ox.iter().map(|(id, name, _)| (*id, name.clone())).collect()
}

/// Reports the OX objects of context `c` that no remembered object claimed.
fn unknown_to_the_connector<T>(
    drift: &mut Vec<Drift>,
    object: &str,
    c: i32,
    ox: &[(i32, String, T)],
    claimed: &HashSet<i32>,
) {
    for (id, name, _) in ox {
        if !claimed.contains(id) {
            drift.push(Drift::unknown(
                object,
                Some(c),
                name.clone(),
                Some(*id),
                format!("OX {object} {id} is not known to the connector"),
            ));
        }
    }
}

impl Drift {
    fn about(
        uuid: &str,
        state: &ObjectState,
        object: &str,
        context: Option<i32>,
        name: &str,
    ) -> Self {
        Drift {
            kind: DriftKind::Differs,
            object: object.into(),
            context,
            name: name.into(),
            ox_id: None,
            entry_uuid: Some(uuid.to_owned()),
            dn: Some(state.dn.clone()),
            detail: String::new(),
            pending_change: false,
            repair: None,
        }
    }

    fn unknown(
        object: &str,
        context: Option<i32>,
        name: String,
        id: Option<i32>,
        detail: String,
    ) -> Self {
        Drift {
            kind: DriftKind::UnknownInOx,
            object: object.into(),
            context,
            name,
            ox_id: id,
            entry_uuid: None,
            dn: None,
            detail,
            pending_change: false,
            repair: None,
        }
    }

    fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    fn kind(mut self, kind: DriftKind, detail: String) -> Self {
        self.kind = kind;
        self.detail = detail;
        self
    }
}

/// Compares remembered objects of one kind in context `c` with OX's `(id, name)` list; returns
/// the OX ids accounted for.
fn compare(
    c: i32,
    object: &str,
    remembered: &[(&String, &ObjectState)],
    ox: &[(i32, String)],
    diffs: impl Fn(&str, &ObjectState, i32) -> Option<String>,
    drift: &mut Vec<Drift>,
) -> HashSet<i32> {
    let mut claimed = HashSet::new();
    for (uuid, state) in remembered {
        let Some(known) = remembered_ref(state, c) else {
            continue;
        };
        let base = Drift::about(uuid, state, object, Some(c), &known.name);
        let by_id = ox.iter().find(|(id, _)| *id == known.id);
        let by_name = ox
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(&known.name));
        match (by_id, by_name) {
            (Some((id, name)), _) if name.eq_ignore_ascii_case(&known.name) => {
                claimed.insert(*id);
                if let Some(detail) = diffs(uuid, state, *id) {
                    drift.push(Drift {
                        ox_id: Some(*id),
                        ..base.kind(DriftKind::Differs, detail)
                    });
                }
            }
            (_, Some((id, _))) => {
                claimed.insert(*id);
                drift.push(Drift {
                    ox_id: Some(*id),
                    ..base.kind(
                        DriftKind::StaleId,
                        format!(
                            "remembered as OX id {}, but OX has {} as id {id}",
                            known.id, known.name
                        ),
                    )
                });
            }
            (Some((id, name)), None) => {
                claimed.insert(*id);
                drift.push(Drift {
                    ox_id: Some(*id),
                    ..base.kind(
                        DriftKind::Differs,
                        format!("name: OX {name:?}, UCS {:?}", known.name),
                    )
                });
            }
            (None, None) => drift.push(Drift {
                ox_id: Some(known.id),
                ..base.kind(
                    DriftKind::MissingInOx,
                    format!("OX has no {object} {} (id {})", known.name, known.id),
                )
            }),
        }
    }
    claimed
}

fn remembered_ref(state: &ObjectState, c: i32) -> Option<OxRef> {
    match state.object_type.as_str() {
        group::TOPIC => state.ox.per_context.get(&c).cloned(),
        _ => state.ox.object.clone(),
    }
}

fn field_diff(field: &str, ox: Option<&str>, ucs: &str) -> String {
    format!("{field}: OX {:?}, UCS {ucs:?}", ox.unwrap_or(""))
}

fn user_diffs(
    p: &Provisioner,
    object: &Properties,
    ox: &User,
    servers: &MailServers,
) -> Option<String> {
    let mut wanted = p.mapping.map(object, servers, true);
    if wanted.get("display_name").is_none_or(|v| v == "") {
        // Applying gives such a user UDM's default display name; expect the same.
        let name = ox.name.clone().unwrap_or_default();
        wanted.insert(
            "display_name".into(),
            Value::String(user::default_display_name(object, &name)),
        );
    }
    let have = serde_json::to_value(ox).unwrap_or(Value::Null);
    let text = |v: Option<&Value>| -> String {
        match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    };
    let diffs: Vec<String> = USER_FIELDS
        .iter()
        .filter(|field| wanted.contains_key(**field))
        .filter_map(|field| {
            let want = text(wanted.get(*field));
            let got = text(have.get(*field));
            let same = if field.contains("mail") || field.starts_with("email") {
                want.eq_ignore_ascii_case(&got)
            } else {
                want == got
            };
            (!same).then(|| field_diff(field, Some(&got), &want))
        })
        .collect();
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

fn resource_diffs(object: &Properties, ox: &Resource) -> Option<String> {
    let name = udm::text(object, "name").unwrap_or_default();
    let want = [
        (
            "displayname",
            udm::text(object, "displayname").unwrap_or(name),
            ox.displayname.clone(),
        ),
        (
            "email",
            udm::text(object, "resourceMailAddress").unwrap_or_default(),
            ox.email.clone(),
        ),
        (
            "description",
            udm::text(object, "description").unwrap_or_default(),
            ox.description.clone(),
        ),
    ];
    let diffs: Vec<String> = want
        .iter()
        .filter(|(_, want, got)| !want.eq_ignore_ascii_case(got.as_deref().unwrap_or("")))
        .map(|(field, want, got)| field_diff(field, got.as_deref(), want))
        .collect();
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

/// The OX ids of a group's members in context `c`, as the group handler computes them.
async fn expected_members(p: &Provisioner, object: &Properties, c: i32) -> Vec<i32> {
    let mut ids = Vec::new();
    for dn in udm::texts(object, "users") {
        if let Ok(Some((_, member))) = p.state.get_by_dn(&dn).await {
            if member.object_type == user::TOPIC && member.ox.context == Some(c) {
                if let Some(user) = member.ox.object {
                    if !ids.contains(&user.id) {
                        ids.push(user.id);
                    }
                }
            }
        }
    }
    ids
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
) -> Result<usize, OpsError> {
    let states: HashMap<&str, &ObjectState> =
        remembered.iter().map(|(u, s)| (u.as_str(), s)).collect();
    let corrected = correct_stale_ids(p, &states, report).await?;
    let targets = repair_targets(&states, report);
    // A context OX lost blocks every waiting change of it; its repair is applied now instead
    // of being queued behind the very changes it unblocks.
    let lost_contexts: HashSet<&str> = report
        .drift
        .iter()
        .filter(|d| d.kind == DriftKind::MissingInOx && d.object == "context")
        .filter_map(|d| d.entry_uuid.as_deref())
        .collect();
    let publisher = Publisher::new(ops.js.clone());
    for (uuid, state) in &targets {
        if state.object_type == group::TOPIC {
            // The remembered members let an unchanged group skip OX; a repair must send them.
            let mut forced = corrected
                .get(*uuid)
                .cloned()
                .unwrap_or_else(|| (*state).clone());
            forced
                .ox
                .per_context
                .values_mut()
                .for_each(|r| r.members.clear());
            p.state
                .put(uuid, &forced)
                .await
                .map_err(|e| OpsError::Unavailable(e.to_string()))?;
        }
        let message = repair_message(uuid, state);
        if lost_contexts.contains(uuid) {
            if let Some(applier) = ops.ox.get() {
                recreate_lost_context(ops, applier, &message).await?;
                continue;
            }
        }
        publisher
            .publish(&message)
            .await
            .map_err(|e| OpsError::Unavailable(e.to_string()))?;
        tracing::info!(
            object_type = %state.object_type,
            dn = %state.dn,
            entry_uuid = %uuid,
            "Queued a repair of an object that differs from OX."
        );
    }
    Ok(targets.len())
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
        match state.object_type.as_str() {
            group::TOPIC => {
                if let Some(r) = state.ox.per_context.get_mut(&c) {
                    r.id = id;
                    // OX's group under that id has its own members: forget the remembered ones,
                    // so that applying it again sends the full list.
                    r.members.clear();
                }
            }
            _ => {
                if let Some(r) = state.ox.object.as_mut() {
                    r.id = id;
                }
            }
        }
        p.state
            .put(uuid, &state)
            .await
            .map_err(|e| OpsError::Unavailable(e.to_string()))?;
        corrected.insert(uuid.clone(), state);
    }
    Ok(corrected)
}

/// The remembered objects to apply again (each once), contexts first, then users, groups and
/// the rest; unknown objects and objects with a pending change are left alone.
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
    let rank = |t: &str| match t {
        context::TOPIC => 0,
        user::TOPIC => 1,
        group::TOPIC => 2,
        _ => 3,
    };
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
        let run = reconcile(&ops, &request);
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = run => result,
        };
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
