//! Imports the Python connector's cache into the state store, so that an upgrade from the
//! Python app neither creates objects twice nor loses deletes and renames.
//!
//! The Python connector kept the last processed file of every object in `listener/old/<id>.json`
//! (queue format, with `oxDbId`, `oxDbUsername`, `oxDbGroupname` added to `object`) and a DN
//! index in `listener/old.db` (GNU dbm). The DN index is not read: it is rebuilt from the `dn` of
//! the old files (the state store indexes every imported object by DN).
//!
//! Per object type, what becomes the remembered state ([`ObjectState`]):
//!
//! | type | OX ids |
//! |---|---|
//! | `oxmail/oxcontext` | `contextid` |
//! | `users/user` (OX user) | context `oxContext`; id `oxDbId`, name `oxDbUsername` (else the `OX_USER_IDENTIFIER` property); without `oxDbId` the id is looked up in OX by name |
//! | `users/user` (no OX user) | none (remembered so that groups know it is not an OX user) |
//! | `groups/group` | per context of its members: the OX group named `oxDbGroupname` (else the `OX_GROUP_IDENTIFIER` property), id looked up in OX |
//! | `oxresources/oxresources` | context `oxContext` (else `DEFAULT_CONTEXT`), id looked up in OX by `name` |
//! | `oxmail/functional_account` | the contexts of its member users, by address |
//! | `oxmail/accessprofile` | none |
//!
//! An object that OX does not know (look-up answered "no such …") is imported without OX ids:
//! its next change creates it. If OX cannot be asked (down, no credentials for the context), the
//! object is imported without those ids and the report says so; its next change adopts the OX
//! object of that name (create → "exists" → change), but a *delete* arriving before any change
//! would then not reach OX — run the import while OX is reachable.
//!
//! Objects the state store knows already are never overwritten (the store is newer). Dry run by
//! default: the report says what would be imported.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::OpsError;
use crate::listener::{ListenerFile, ListenerFileError};
use crate::ox::soap::{Group, Resource, User};
use crate::provision::state::{ObjectState, OxIds, OxRef};
use crate::provision::udm::{self, Properties};
use crate::provision::{
    access_profile, context, functional_account, group, kind, resource, user, OxApplier,
    Provisioner,
};
use crate::telemetry::progress::Progress;

/// Keys the Python connector added to `object`; they are not UDM properties.
pub const ENRICHMENT_KEYS: &[&str] = &["oxDbId", "oxDbUsername", "oxDbGroupname"];
/// Written to the data directory after the automatic import at the first start.
pub const DONE_MARKER: &str = "state-import.json";

/// `POST /state/import`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportRequest {
    /// The old data directory, its `listener/` folder, or the `old/` folder itself.
    pub from: PathBuf,
    /// Write to the state store (otherwise only report).
    pub apply: bool,
}

/// What happens to one old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportAction {
    /// Imported (or would be, in a dry run).
    Import,
    /// The state store knows the object already; left alone.
    AlreadyKnown,
    /// Not an object the connector provisions, or a delete.
    Ignored,
}

/// One old file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportEntry {
    pub file: String,
    pub entry_uuid: String,
    pub object_type: String,
    pub dn: String,
    pub action: ImportAction,
    pub ox: OxIds,
    /// What the admin should know (an id looked up, OX not reachable, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The report of an import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportReport {
    /// The folder the old files were read from.
    pub from: PathBuf,
    pub apply: bool,
    pub entries: Vec<ImportEntry>,
    /// Files that could not be read.
    pub problems: Vec<String>,
}

impl ImportEntry {
    /// The entry of an old file, to be imported unless found otherwise.
    fn of(file: &ListenerFile) -> Self {
        ImportEntry {
            file: file.name.clone(),
            entry_uuid: file.entry_uuid.clone(),
            object_type: file.udm_object_type.clone(),
            dn: file.dn.clone(),
            action: ImportAction::Import,
            ox: OxIds::default(),
            note: None,
        }
    }
}

impl ImportReport {
    pub fn count(&self, action: ImportAction) -> usize {
        self.entries.iter().filter(|e| e.action == action).count()
    }

    /// Entries with a note (look-ups that failed or found nothing).
    pub fn noted(&self) -> impl Iterator<Item = &ImportEntry> {
        self.entries.iter().filter(|e| e.note.is_some())
    }
}

/// The folder with the old files: `<from>/listener/old`, `<from>/old`, or `<from>`.
pub fn old_dir(from: &Path) -> Option<PathBuf> {
    [
        from.join("listener").join("old"),
        from.join("old"),
        from.to_owned(),
    ]
    .into_iter()
    .find(|dir| dir.is_dir())
}

/// Import order: what others refer to first — each kind's batch rank for a change (the same
/// order the watcher queues a batch in); types without a kind last.
fn rank(object_type: &str) -> u8 {
    kind::of_topic(object_type).map_or(u8::MAX, |kind| kind.rank.change)
}

/// Reads the old files and imports them (or reports what would be imported); says how far it
/// is through `progress` (phase `old files`).
pub async fn import(
    ox: &OxApplier,
    request: &ImportRequest,
    progress: &Progress,
) -> Result<ImportReport, OpsError> {
    let p = ox.provisioner();
    let dir = old_dir(&request.from).ok_or_else(|| {
        OpsError::NotFound(format!(
            "{} has no listener/old/ folder of the Python connector",
            request.from.display()
        ))
    })?;
    let (files, problems) = read_old_files(&dir)?;

    let mut lookup = Lookup::new(p);
    // Users by DN (lower case): context and OX id, for groups and functional accounts.
    let mut users_by_dn = UsersByDn::new();
    let mut groups_by_dn = GroupsByDn::new();
    let mut report = ImportReport {
        from: dir.clone(),
        apply: request.apply,
        entries: Vec::new(),
        problems,
    };
    let total = files.len();
    for (done, (file, mtime)) in files.into_iter().enumerate() {
        progress.report(PHASE, done, total);
        let mut entry = ImportEntry::of(&file);
        let Some(raw_object) = &file.object else {
            entry.action = ImportAction::Ignored;
            entry.note = Some("a delete; nothing to remember".into());
            report.entries.push(entry);
            continue;
        };
        let mut object = raw_object.clone();
        for key in ENRICHMENT_KEYS {
            object.remove(*key);
        }
        let known = p
            .state
            .get(&file.entry_uuid)
            .await
            .map_err(OpsError::from)?;
        let seen = (&mut users_by_dn, &mut groups_by_dn);
        let Some((ox_ids, note)) = ox_ids_of(p, &mut lookup, &file, &object, seen).await else {
            entry.action = ImportAction::Ignored;
            entry.note = Some("not an object type provisioned to OX".into());
            report.entries.push(entry);
            continue;
        };
        entry.ox = ox_ids.clone();
        entry.note = note;
        if known.is_some() {
            entry.action = ImportAction::AlreadyKnown;
            entry.note = None;
        } else if request.apply {
            let state = ObjectState {
                object_type: file.udm_object_type.clone(),
                dn: file.dn.clone(),
                object,
                ox: ox_ids,
                source_file: None,
                applied_at: mtime,
                groups_pending: Default::default(),
            };
            p.state
                .put(&file.entry_uuid, &state)
                .await
                .map_err(OpsError::from)?;
        }
        report.entries.push(entry);
    }
    progress.report(PHASE, total, total);
    Ok(report)
}

/// The phase of an import's progress.
const PHASE: &str = "old files";

/// The Python connector's files in `dir`, in import order (by kind, then name), and the
/// problems of those that cannot be read.
fn read_old_files(dir: &Path) -> Result<(OldFiles, Vec<String>), OpsError> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(OpsError::io(format!("{}", dir.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let parsed = std::fs::read(&path)
            .map_err(|source| ListenerFileError::Read {
                path: path.clone(),
                source,
            })
            .and_then(|raw| ListenerFile::parse(&path, name.clone(), raw));
        match parsed {
            Ok(file) => {
                let mtime = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(chrono::DateTime::<chrono::Utc>::from)
                    .unwrap_or_else(|_| chrono::Utc::now());
                files.push((file, mtime));
            }
            // The report's problem line; the error's text names the file and its cause.
            Err(e) => problems.push(crate::telemetry::error_chain(&e)),
        }
    }
    files.sort_by(|(a, _), (b, _)| {
        (rank(&a.udm_object_type), &a.name).cmp(&(rank(&b.udm_object_type), &b.name))
    });
    Ok((files, problems))
}

/// Listener files with their modification times.
type OldFiles = Vec<(ListenerFile, chrono::DateTime<chrono::Utc>)>;

/// The OX ids (and a note) of an object of the old files; `None` if its kind is not
/// provisioned to OX. Users and groups seen so far (by DN, lower case) feed the groups and
/// functional accounts that follow them.
async fn ox_ids_of(
    p: &Provisioner,
    lookup: &mut Lookup<'_>,
    file: &ListenerFile,
    object: &Properties,
    (users_by_dn, groups_by_dn): (&mut UsersByDn, &mut GroupsByDn),
) -> Option<(OxIds, Option<String>)> {
    let raw_object = file.object.as_ref()?;
    let found = match file.udm_object_type.as_str() {
        context::TOPIC => match context::context_id(object) {
            Some(id) => (
                OxIds {
                    context: Some(id),
                    ..OxIds::default()
                },
                None,
            ),
            None => (OxIds::default(), Some("no valid contextid".to_owned())),
        },
        user::TOPIC => {
            let (ids, note) = user_ids(p, lookup, file, raw_object).await;
            users_by_dn.insert(
                file.dn.to_lowercase(),
                ids.context.zip(ids.object.as_ref().map(|o| o.id)),
            );
            (ids, note)
        }
        group::TOPIC => {
            groups_by_dn.insert(file.dn.to_lowercase(), udm::texts(object, "users"));
            group_ids(p, lookup, file, raw_object, users_by_dn).await
        }
        resource::TOPIC => resource_ids(p, lookup, object).await,
        functional_account::TOPIC => (fa_ids(object, users_by_dn, groups_by_dn), None),
        access_profile::TOPIC => (OxIds::default(), None),
        _ => return None,
    };
    Some(found)
}

/// Users by DN (lower case): context and OX id, for groups and functional accounts.
type UsersByDn = HashMap<String, Option<(i32, i32)>>;
/// Groups by DN (lower case): their members' DNs.
type GroupsByDn = HashMap<String, Vec<String>>;

/// Imports `<data-dir>/listener/old/` once, at the first start of the daemon after an upgrade
/// from the Python app (before any change is applied), and leaves [`DONE_MARKER`] behind.
pub async fn import_at_first_start(ox: &OxApplier, data_dir: &Path) {
    let marker = data_dir.join(DONE_MARKER);
    let old = data_dir.join("listener").join("old");
    if marker.exists() || !old.is_dir() {
        return;
    }
    tracing::info!(from = %old.display(), "Found the Python connector's state; importing it before applying changes.");
    let request = ImportRequest {
        from: old.clone(),
        apply: true,
    };
    match import(ox, &request, &Progress::new("state_import")).await {
        Ok(report) => {
            crate::telemetry::events::StateImported {
                from: &report.from,
                imported: report.count(ImportAction::Import),
                already_known: report.count(ImportAction::AlreadyKnown),
                problems: report.problems.len() + report.noted().count(),
                automatic: true,
            }
            .emit();
            for entry in report.noted() {
                tracing::warn!(
                    file = %entry.file,
                    object_type = %entry.object_type,
                    dn = %entry.dn,
                    note = entry.note.as_deref().unwrap_or_default(),
                    "Imported an object of the Python connector without all its OX ids."
                );
            }
            for problem in &report.problems {
                tracing::warn!(error = %problem, "Cannot import a file of the Python connector.");
            }
            let summary = serde_json::json!({
                "imported_at": chrono::Utc::now(),
                "from": report.from,
                "imported": report.count(ImportAction::Import),
                "already_known": report.count(ImportAction::AlreadyKnown),
                "problems": report.problems,
            });
            let bytes = serde_json::to_vec_pretty(&summary).unwrap_or_default();
            if let Err(e) = crate::atomic_file::write(&marker, &bytes) {
                tracing::warn!(file = %marker.display(), error = %e, "Cannot record that the state was imported.");
            }
        }
        Err(e) => tracing::error!(
            from = %old.display(),
            error = %e,
            "Cannot import the Python connector's state; run `ox-connector state import` once OX and NATS are reachable."
        ),
    }
}

/// OX look-ups by name, giving up after the first connection failure.
struct Lookup<'a> {
    p: &'a Provisioner,
    unreachable: Option<String>,
}

enum Found {
    Id(i32),
    NotInOx,
    Unknown(String),
}

impl<'a> Lookup<'a> {
    fn new(p: &'a Provisioner) -> Self {
        Self {
            p,
            unreachable: None,
        }
    }

    async fn find(&mut self, context: i32, kind: &str, name: &str) -> Found {
        if let Some(why) = &self.unreachable {
            return Found::Unknown(why.clone());
        }
        let auth = match self.p.context_admin(context) {
            Ok(auth) => auth,
            Err(e) => return Found::Unknown(e.to_string()),
        };
        let ox = &self.p.ox;
        let result = match kind {
            "user" => ox
                .get_user(context, &User::with_name(name), &auth)
                .await
                .map(|u| u.id),
            "group" => ox
                .get_group(context, &Group::with_name(name), &auth)
                .await
                .map(|g| g.id),
            _ => ox
                .get_resource(context, &Resource::with_name(name), &auth)
                .await
                .map(|r| r.id),
        };
        match result {
            Ok(Some(id)) => Found::Id(id),
            Ok(None) => Found::Unknown(format!("OX returned the {kind} {name} without id")),
            Err(e) if e.is_not_found() => Found::NotInOx,
            Err(e) => {
                let why = format!("OX could not be asked: {e}");
                if e.is_retryable() {
                    self.unreachable = Some(why.clone());
                }
                Found::Unknown(why)
            }
        }
    }
}

fn enrichment_id(object: &Properties) -> Option<i32> {
    udm::integer(object, "oxDbId").and_then(|id| i32::try_from(id).ok())
}

async fn user_ids(
    p: &Provisioner,
    lookup: &mut Lookup<'_>,
    file: &ListenerFile,
    raw: &Properties,
) -> (OxIds, Option<String>) {
    let Some(context) = udm::flag(raw, "isOxUser")
        .then(|| udm::integer(raw, "oxContext"))
        .flatten()
        .and_then(|c| i32::try_from(c).ok())
    else {
        return (OxIds::default(), None);
    };
    let identifier = &p.settings.user_identifier;
    let name = udm::text(raw, "oxDbUsername").or_else(|| {
        if identifier.eq_ignore_ascii_case("entryUUID") {
            Some(file.entry_uuid.clone())
        } else {
            udm::text(raw, identifier)
        }
    });
    let Some(name) = name else {
        return (
            OxIds::default(),
            Some(format!("no OX user name ({identifier})")),
        );
    };
    let ids = |id| OxIds {
        context: Some(context),
        object: Some(OxRef {
            id,
            name: name.clone(),
            members: Vec::new(),
        }),
        ..OxIds::default()
    };
    if let Some(id) = enrichment_id(raw) {
        return (ids(id), None);
    }
    match lookup.find(context, "user", &name).await {
        Found::Id(id) => (
            ids(id),
            Some(format!("no oxDbId; OX id {id} looked up by name")),
        ),
        Found::NotInOx => (
            OxIds::default(),
            Some(format!(
                "not in OX context {context}; created on its next change"
            )),
        ),
        Found::Unknown(why) => (OxIds::default(), Some(why)),
    }
}

async fn group_ids(
    p: &Provisioner,
    lookup: &mut Lookup<'_>,
    file: &ListenerFile,
    raw: &Properties,
    users_by_dn: &HashMap<String, Option<(i32, i32)>>,
) -> (OxIds, Option<String>) {
    let identifier = &p.settings.group_identifier;
    let name = udm::text(raw, "oxDbGroupname").or_else(|| {
        if identifier.eq_ignore_ascii_case("entryUUID") {
            Some(file.entry_uuid.clone())
        } else {
            udm::text(raw, identifier)
        }
    });
    let Some(name) = name.filter(|n| !n.eq_ignore_ascii_case("users")) else {
        return (OxIds::default(), None);
    };
    if !udm::flag(raw, "isOxGroup") {
        return (OxIds::default(), None);
    }
    let mut contexts: Vec<i32> = Vec::new();
    for dn in udm::texts(raw, "users") {
        let known = match users_by_dn.get(&dn.to_lowercase()) {
            Some(found) => *found,
            None => match p.state.get_by_dn(&dn).await {
                Ok(Some((_, s))) => s.ox.context.zip(s.ox.object.map(|o| o.id)),
                _ => None,
            },
        };
        if let Some((context, _)) = known {
            if !contexts.contains(&context) {
                contexts.push(context);
            }
        }
    }
    contexts.sort_unstable();
    let mut per_context = BTreeMap::new();
    let mut notes = Vec::new();
    for context in contexts {
        match lookup.find(context, "group", &name).await {
            Found::Id(id) => {
                per_context.insert(
                    context,
                    OxRef {
                        id,
                        name: name.clone(),
                        members: Vec::new(),
                    },
                );
            }
            Found::NotInOx => notes.push(format!("not in OX context {context}")),
            Found::Unknown(why) => notes.push(format!("context {context}: {why}")),
        }
    }
    let ids = OxIds {
        per_context,
        ..OxIds::default()
    };
    (ids, (!notes.is_empty()).then(|| notes.join("; ")))
}

async fn resource_ids(
    p: &Provisioner,
    lookup: &mut Lookup<'_>,
    object: &Properties,
) -> (OxIds, Option<String>) {
    let Some(name) = udm::text(object, "name") else {
        return (OxIds::default(), Some("no name".into()));
    };
    let context = udm::integer(object, "oxContext")
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(p.settings.default_context);
    match lookup.find(context, "resource", &name).await {
        Found::Id(id) => (
            OxIds {
                context: Some(context),
                object: Some(OxRef {
                    id,
                    name,
                    members: Vec::new(),
                }),
                ..OxIds::default()
            },
            None,
        ),
        Found::NotInOx => (
            OxIds::default(),
            Some(format!(
                "not in OX context {context}; created on its next change"
            )),
        ),
        Found::Unknown(why) => (OxIds::default(), Some(why)),
    }
}

fn fa_ids(
    object: &Properties,
    users_by_dn: &HashMap<String, Option<(i32, i32)>>,
    groups_by_dn: &HashMap<String, Vec<String>>,
) -> OxIds {
    let Some(address) = udm::text(object, "mailPrimaryAddress").map(|a| a.to_lowercase()) else {
        return OxIds::default();
    };
    let mut member_dns = udm::texts(object, "users");
    for group in udm::texts(object, "groups") {
        if let Some(members) = groups_by_dn.get(&group.to_lowercase()) {
            member_dns.extend(members.iter().cloned());
        }
    }
    let per_context = member_dns
        .iter()
        .filter_map(|dn| users_by_dn.get(&dn.to_lowercase()).copied().flatten())
        .map(|(context, _)| {
            (
                context,
                OxRef {
                    id: 0,
                    name: address.clone(),
                    members: Vec::new(),
                },
            )
        })
        .collect();
    OxIds {
        per_context,
        ..OxIds::default()
    }
}
