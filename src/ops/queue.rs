//! The queue as an admin sees it: what waits (in the order it will be applied), what one item
//! holds (secrets redacted), skipping an item and putting a quarantined file back.
//!
//! - **Order**: the OX subscriber's queue (`SUB_ox-connector`) is the truth for what is queued (a batch is queued
//!   dependencies first, so the stream order can differ from the file-name order); listener
//!   files not on the stream yet (the queue is full, NATS is down, the batch is settling) come
//!   after them, in name order.
//! - **Skip** moves the listener file to `listener/skipped/` with `<name>.skipped.txt` beside it
//!   (who, when, why, what) and wakes the consumer: a message whose file is gone is
//!   acknowledged without being applied (`queue::consume`), so the head of a blocked queue is
//!   released at once and a later one when its turn comes. Nothing is deleted.
//! - **Requeue** moves a skipped file, or a fixed one from `listener/broken/`, back into
//!   `listener/` (after checking that it is valid now) with a new requeue generation, so it is
//!   published again; its note becomes `.requeued.txt`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::redact::redacted;
use super::{Ops, OpsError};
use crate::listener::quarantine::BROKEN_DIR;
use crate::listener::requeue::{self, base_name};
use crate::listener::{is_listener_file_name, scan, ListenerFile, ListenerFileName};
use crate::message::{Operation, ProvisioningMessage};
use crate::status::Blocked;

pub use crate::listener::requeue::SKIPPED_DIR;
/// The id that names the item the queue is blocked on.
pub const BLOCKED_ID: &str = "blocked";

/// Where an item is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// At the head of the queue and failing.
    Blocked,
    /// Failing too (applied at the same time as the head, and failing as well).
    Failing,
    /// On the JetStream queue, waiting for its turn.
    Queued,
    /// On the queue, but its listener file is gone: it is skipped when its turn comes.
    FileRemoved,
    /// In `listener/`, not on the queue yet.
    NotQueuedYet,
    /// In `listener/`, but not a valid listener file (quarantined after the grace period).
    Unreadable,
}

impl ItemState {
    pub fn label(self) -> &'static str {
        match self {
            ItemState::Blocked => "BLOCKED",
            ItemState::Failing => "FAILING",
            ItemState::Queued => "queued",
            ItemState::FileRemoved => "file removed",
            ItemState::NotQueuedYet => "not queued yet",
            ItemState::Unreadable => "unreadable",
        }
    }
}

/// One waiting change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueItem {
    /// 1 is applied next.
    pub position: usize,
    /// The JetStream sequence, if queued.
    pub sequence: Option<u64>,
    pub file: Option<String>,
    pub object_type: String,
    /// `modify` or `delete`.
    pub operation: String,
    pub dn: String,
    pub entry_uuid: String,
    pub state: ItemState,
    /// Why the file is unreadable, for [`ItemState::Unreadable`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /queue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueList {
    pub items: Vec<QueueItem>,
    /// Messages on the JetStream queue (not yet applied).
    pub queued_messages: u64,
    /// Listener files in `listener/`.
    pub pending_files: usize,
    /// Whether items were left out because of the limit.
    pub truncated: bool,
}

/// Where a shown file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// Waiting in `listener/`.
    Pending,
    /// Quarantined in `listener/broken/`.
    Broken,
    /// Skipped by an admin, in `listener/skipped/`.
    Skipped,
}

/// `GET /queue/items/{id}`: one file and what the connector remembers of its object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemDetail {
    pub location: Location,
    pub file: String,
    pub path: PathBuf,
    /// The file's JSON, secrets redacted; `None` if it is not JSON.
    pub content: Option<Value>,
    /// Why the file is not a valid listener file, if it is not.
    pub invalid: Option<String>,
    /// The sidecar (`.error.txt` of a quarantined file, `.skipped.txt` of a skipped one).
    pub note: Option<String>,
    /// Set when the queue is blocked on this file.
    pub blocked: Option<Blocked>,
    /// The last state of the object applied to OX (from the state store), secrets redacted.
    pub remembered: Option<Value>,
    /// Other pending files of the same object.
    pub other_pending: Vec<String>,
}

/// `POST /queue/skip`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkipRequest {
    /// A file name, an entry UUID, or `blocked`.
    pub id: String,
    /// Who asks (shown in the log and the sidecar).
    pub by: String,
    pub reason: Option<String>,
}

/// What a skip did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkipResult {
    pub file: String,
    pub moved_to: PathBuf,
    pub object_type: String,
    pub dn: String,
    pub entry_uuid: String,
    /// Whether the queue was blocked on this file.
    pub was_blocked: bool,
}

/// `POST /queue/requeue` (and its old name `/queue/requeue-broken`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequeueRequest {
    /// The name in `listener/skipped/` or `listener/broken/`.
    pub name: String,
    pub by: String,
}

/// What a requeue did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequeueResult {
    pub file: String,
    pub moved_to: PathBuf,
}

/// `POST /queue/retry`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RetryRequest {
    pub by: String,
}

/// Quarantined files in `listener/broken/` (without their sidecars), sorted.
pub fn quarantined(listener_dir: &Path) -> Vec<String> {
    listener_files_in(&listener_dir.join(BROKEN_DIR))
}

/// Files in `listener/skipped/` (without their sidecars), sorted.
pub fn skipped(listener_dir: &Path) -> Vec<String> {
    listener_files_in(&listener_dir.join(SKIPPED_DIR))
}

/// The listener files set aside in `dir` (a numbered second file of a name counts), sorted.
fn listener_files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| is_listener_file_name(base_name(name)))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Age of the oldest waiting listener file: how long ago it was written (its modification
/// time). Not the time in its name: that is the UCS host's local time, and a container whose
/// time zone differs from the host's (no `/etc/localtime` copied in, or the host's zone changed
/// since) would be off by the difference.
pub fn oldest_age(listener_dir: &Path) -> Option<(String, std::time::Duration)> {
    let first = scan(listener_dir).ok()?.into_iter().next()?;
    let written = std::fs::symlink_metadata(first.path())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok());
    let age = written
        .or_else(|| {
            first
                .name
                .timestamp()
                .and_then(|t| (Utc::now() - t).to_std().ok())
        })
        .unwrap_or_default();
    Some((first.name.to_string(), age))
}

/// The waiting changes in the order they will be applied, at most `limit`.
pub async fn list(ops: &Ops, limit: usize) -> Result<QueueList, OpsError> {
    let status = ops.status.get();
    let blocked_file = status.blocked.and_then(|b| b.file);
    let failing_too: HashSet<String> = status.also_blocked_files.into_iter().collect();
    let files = scan(&ops.listener_dir).map_err(OpsError::io("cannot list the listener folder"))?;
    let on_disk: HashSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let (stream, info) = ox_queue(ops).await?;
    let queued_messages = info.messages;
    let (first, last) = (info.first_sequence, info.last_sequence);

    let mut items = Vec::new();
    let mut listed_messages = 0u64;
    let mut queued_files = HashSet::new();
    let mut sequence = first;
    while queued_messages > 0 && sequence <= last && items.len() < limit {
        let Ok(raw) = stream
            .raw_message_builder()
            .sequence(sequence)
            .next_by_subject(format!(
                "{}.>",
                crate::queue::subscriber_subject_prefix(crate::queue::OX_SUBSCRIBER)
            ))
            .send()
            .await
        else {
            break;
        };
        sequence = raw.sequence + 1;
        listed_messages += 1;
        let Ok(message) = serde_json::from_slice::<ProvisioningMessage>(&raw.payload) else {
            continue;
        };
        let file = message.source_file().map(str::to_owned);
        let state = match &file {
            Some(f) if blocked_file.as_deref() == Some(f.as_str()) => ItemState::Blocked,
            Some(f) if failing_too.contains(f) => ItemState::Failing,
            Some(f) if !on_disk.contains(f.as_str()) => ItemState::FileRemoved,
            _ => ItemState::Queued,
        };
        if let Some(f) = &file {
            queued_files.insert(f.clone());
        }
        items.push(QueueItem {
            position: items.len() + 1,
            sequence: Some(raw.sequence),
            file,
            object_type: message.topic.clone(),
            operation: operation_name(message.op).into(),
            dn: message.dn.clone(),
            entry_uuid: message.object_id.clone(),
            state,
            error: None,
        });
    }
    let all_messages_listed = listed_messages >= queued_messages;
    let mut truncated = !all_messages_listed;
    if all_messages_listed {
        for file in files
            .iter()
            .filter(|f| !queued_files.contains(f.name.as_str()))
        {
            if items.len() >= limit {
                truncated = true;
                break;
            }
            let Some(item) = not_queued_item(items.len() + 1, file) else {
                continue;
            };
            items.push(item);
        }
    }
    Ok(QueueList {
        items,
        queued_messages,
        pending_files: files.len(),
        truncated,
    })
}

/// The OX subscriber's queue and its state.
async fn ox_queue(
    ops: &Ops,
) -> Result<
    (
        async_nats::jetstream::stream::Stream,
        async_nats::jetstream::stream::State,
    ),
    OpsError,
> {
    let mut stream = ops
        .js
        .get_stream(crate::queue::subscriber_stream(crate::queue::OX_SUBSCRIBER))
        .await
        .map_err(|e| OpsError::Queue(e.into()))?;
    let info = stream.info().await.map_err(|e| OpsError::Queue(e.into()))?;
    let state = info.state.clone();
    Ok((stream, state))
}

/// The item of a listener file not in the queue yet; `None` if it is gone meanwhile.
fn not_queued_item(position: usize, file: &crate::listener::scan::QueuedFile) -> Option<QueueItem> {
    let mut item = QueueItem {
        position,
        sequence: None,
        file: Some(file.name.to_string()),
        object_type: String::new(),
        operation: String::new(),
        dn: String::new(),
        entry_uuid: String::new(),
        state: ItemState::NotQueuedYet,
        error: None,
    };
    match ListenerFile::read(&file.path()) {
        Ok(parsed) => {
            item.operation = if parsed.is_delete() {
                "delete"
            } else {
                "modify"
            }
            .into();
            item.object_type = parsed.udm_object_type;
            item.dn = parsed.dn;
            item.entry_uuid = parsed.entry_uuid;
        }
        Err(e) if e.is_not_found() => return None,
        Err(e) => {
            item.state = ItemState::Unreadable;
            item.error = Some(e.to_string());
        }
    }
    Some(item)
}

fn operation_name(op: Operation) -> &'static str {
    op.as_str()
}

/// The pending file `id` names: a file name, an entry UUID (its only pending file), or
/// `blocked`. Returns the name and the parsed file.
fn resolve_pending(ops: &Ops, id: &str) -> Result<(String, ListenerFile), OpsError> {
    let id = id.trim();
    if id == BLOCKED_ID {
        let blocked = ops.status.get().blocked.ok_or_else(|| {
            OpsError::NotFound("the queue is not blocked; name the file to skip".into())
        })?;
        let file = blocked.file.ok_or_else(|| {
            OpsError::NotFound(
                "the blocking change did not come from a listener file; it cannot be skipped"
                    .into(),
            )
        })?;
        return read_pending(ops, &file);
    }
    if ListenerFileName::new(id).is_some() {
        return read_pending(ops, id);
    }
    let mut matches = pending_of_object(&ops.listener_dir, id)?;
    match matches.len() {
        0 => Err(OpsError::NotFound(format!(
            "no waiting listener file named {id} or of the object with entry UUID {id}"
        ))),
        1 => Ok(matches.remove(0)),
        _ => Err(OpsError::Conflict(format!(
            "the object {id} has {} waiting changes ({}); name the file",
            matches.len(),
            matches
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn read_pending(ops: &Ops, name: &str) -> Result<(String, ListenerFile), OpsError> {
    let path = ops.listener_dir.join(name);
    match ListenerFile::read(&path) {
        Ok(file) => Ok((name.to_owned(), file)),
        Err(e) if e.is_not_found() => Err(OpsError::NotFound(format!(
            "{name} is not waiting in {} (already applied, skipped or quarantined?)",
            ops.listener_dir.display()
        ))),
        Err(e) => Err(OpsError::Invalid(format!(
            "{e}; it will be quarantined after the grace period"
        ))),
    }
}

/// The pending files of the object with `entry_uuid`, in name order.
fn pending_of_object(
    listener_dir: &Path,
    entry_uuid: &str,
) -> Result<Vec<(String, ListenerFile)>, OpsError> {
    let files = scan(listener_dir).map_err(OpsError::io("cannot list the listener folder"))?;
    Ok(files
        .into_iter()
        .filter_map(|f| {
            let parsed = ListenerFile::read(&f.path()).ok()?;
            (parsed.entry_uuid == entry_uuid).then(|| (f.name.to_string(), parsed))
        })
        .collect())
}

/// Shows a pending, quarantined or skipped file.
pub async fn show(ops: &Ops, id: &str) -> Result<ItemDetail, OpsError> {
    let id = id.trim();
    let blocked = ops.status.get().blocked;
    let (location, file, path) = locate(ops, id, blocked.as_ref())?;
    // Never follows a symbolic link and reads at most MAX_FILE_BYTES: a quarantined file is
    // whatever was dropped into listener/, and this runs inside the daemon.
    let bytes = crate::listener::read_bounded(&path).map_err(|e| {
        if e.is_not_found() {
            OpsError::NotFound(e.to_string())
        } else {
            OpsError::Invalid(format!("cannot show it: {e}"))
        }
    })?;
    let content: Option<Value> = serde_json::from_slice(&bytes).ok();
    let (invalid, entry_uuid) = match ListenerFile::parse(&path, file.clone(), bytes) {
        Ok(parsed) => (None, Some(parsed.entry_uuid)),
        Err(e) => (Some(e.to_string()), None),
    };
    let note = match location {
        Location::Pending => None,
        Location::Broken => read_note(&sidecar(&path, "error.txt")),
        Location::Skipped => read_note(&sidecar(&path, "skipped.txt")),
    };
    let mut remembered = None;
    let mut other_pending = Vec::new();
    if let Some(uuid) = &entry_uuid {
        if let Some(ox) = ops.ox.get() {
            if let Ok(Some(state)) = ox.provisioner().state.get(uuid).await {
                remembered = serde_json::to_value(&state).ok().map(|v| redacted(&v));
            }
        }
        other_pending = pending_of_object(&ops.listener_dir, uuid)?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| *name != file)
            .collect();
    }
    let blocked =
        blocked.filter(|b| location == Location::Pending && b.file.as_ref() == Some(&file));
    Ok(ItemDetail {
        location,
        file,
        path,
        content: content.map(|c| redacted(&c)),
        invalid,
        note,
        blocked,
        remembered,
        other_pending,
    })
}

/// A note beside a set-aside file, read like the file itself (no symbolic link, bounded).
fn read_note(path: &Path) -> Option<String> {
    let bytes = crate::listener::read_bounded(path).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn locate(
    ops: &Ops,
    id: &str,
    blocked: Option<&Blocked>,
) -> Result<(Location, String, PathBuf), OpsError> {
    if id == BLOCKED_ID {
        let file = blocked
            .and_then(|b| b.file.clone())
            .ok_or_else(|| OpsError::NotFound("the queue is not blocked".into()))?;
        let path = ops.listener_dir.join(&file);
        return Ok((Location::Pending, file, path));
    }
    if is_listener_file_name(base_name(id)) && !id.contains('/') {
        for (location, dir) in [
            (Location::Pending, ops.listener_dir.clone()),
            (Location::Broken, ops.listener_dir.join(BROKEN_DIR)),
            (Location::Skipped, ops.listener_dir.join(SKIPPED_DIR)),
        ] {
            let path = dir.join(id);
            // `symlink_metadata`: a symbolic link is found (and then refused), not followed.
            if std::fs::symlink_metadata(&path).is_ok() {
                return Ok((location, id.to_owned(), path));
            }
        }
        return Err(OpsError::NotFound(format!(
            "no file {id} in listener/, listener/broken/ or listener/skipped/"
        )));
    }
    let matches = pending_of_object(&ops.listener_dir, id)?;
    match matches.into_iter().next() {
        Some((name, _)) => {
            let path = ops.listener_dir.join(&name);
            Ok((Location::Pending, name, path))
        }
        None => Err(OpsError::NotFound(format!(
            "no waiting listener file named {id} or of the object with entry UUID {id}"
        ))),
    }
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}

/// `dir/<name>`, or `dir/<name>.<n>` if a file of that name is already there.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// `text` on one line: control characters (newlines above all) become spaces, so a skip's
/// `by` or `reason` cannot forge lines in its note.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Skips a waiting change: moves its file to `listener/skipped/` and wakes the consumer.
pub fn skip(ops: &Ops, request: &SkipRequest) -> Result<SkipResult, OpsError> {
    let (name, file) = resolve_pending(ops, &request.id)?;
    let blocked = ops
        .status
        .get()
        .blocked
        .filter(|b| b.file.as_deref() == Some(name.as_str()));
    let dir = ops.listener_dir.join(SKIPPED_DIR);
    std::fs::create_dir_all(&dir).map_err(OpsError::io(format!("{}", dir.display())))?;
    let target = free_name(&dir, &name);
    let reason = request
        .reason
        .as_deref()
        .map(one_line)
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "(no reason given)".to_owned());
    let by = one_line(&request.by);
    let skipped = Skipped {
        name: &name,
        file: &file,
        by: &by,
        reason: &reason,
        blocked: blocked.as_ref(),
        target: &target,
    };
    let text = skipped.note(&ops.listener_dir);
    // The file moves first and its note follows: a note without its file would be taken by
    // the watcher for a file moved back by hand (`requeue::adopt_moved_back`).
    move_aside(&ops.listener_dir.join(&name), &target)?;
    let note = sidecar(&target, "skipped.txt");
    if let Err(e) = crate::atomic_file::write(&note, text.as_bytes()) {
        // The skip happened; only its explanation is missing. Say so rather than undo it.
        tracing::error!(note = %note.display(), error = %e, "Cannot write the note of a skipped listener file.");
    }
    crate::telemetry::events::FileSkippedByAdmin {
        file: &name,
        object_type: &file.udm_object_type,
        dn: &file.dn,
        entry_uuid: &file.entry_uuid,
        by: &by,
        reason: &reason,
        moved_to: &target,
    }
    .emit();
    // The consumer checks for the file before every attempt; wake it if it waits for a retry.
    crate::queue::consume::retry_all_now(&ops.retry_now);
    Ok(SkipResult {
        file: name,
        moved_to: target,
        object_type: file.udm_object_type,
        dn: file.dn,
        entry_uuid: file.entry_uuid,
        was_blocked: blocked.is_some(),
    })
}

/// A change being skipped, for its note.
struct Skipped<'a> {
    name: &'a str,
    file: &'a ListenerFile,
    by: &'a str,
    reason: &'a str,
    /// The queue's block on it, if it was the blocked change.
    blocked: Option<&'a Blocked>,
    /// Where the file goes in `listener/skipped/`.
    target: &'a Path,
}

impl Skipped<'_> {
    /// The note next to the skipped file: what, when, by whom, why, and how to put it back.
    fn note(&self, listener_dir: &Path) -> String {
        let (name, file) = (self.name, self.file);
        let mut text = format!(
            "file: {name}\n\
             skipped at: {now}\n\
             skipped by: {by}\n\
             reason: {reason}\n\
             object: {object_type} {dn}\n\
             entry UUID: {uuid}\n\
             operation: {op}\n",
            now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            by = self.by,
            reason = self.reason,
            object_type = file.udm_object_type,
            dn = file.dn,
            uuid = file.entry_uuid,
            op = if file.is_delete() { "delete" } else { "modify" },
        );
        if let Some(b) = self.blocked {
            text.push_str(&format!(
                "the queue was blocked on it since {} after {} attempts: {}\n",
                b.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                b.attempts,
                one_line(&b.error)
            ));
        }
        text.push_str(&format!(
            "\nox-connector did not apply this change to OX and will not. To apply it after all,\n\
             put it back (a newer change of the same object applied meanwhile wins over it; then\n\
             re-provision the object from UCS instead):\n\
             \n    ox-connector queue requeue {stored}\n\
             \nor by hand: mv {target} {listener}/{name}\n",
            stored = self
                .target
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
            target = self.target.display(),
            listener = listener_dir.display(),
        ));
        text
    }
}

/// Moves a waiting listener file to `target` (in `listener/skipped/`), readable by root only.
fn move_aside(from: &Path, target: &Path) -> Result<(), OpsError> {
    let name = from.file_name().unwrap_or_default().to_string_lossy();
    if let Err(e) = std::fs::rename(from, target) {
        return Err(if e.kind() == std::io::ErrorKind::NotFound {
            OpsError::NotFound(format!("{name} is gone already (applied meanwhile?)"))
        } else {
            OpsError::Io {
                context: format!(
                    "cannot move {name} to {}",
                    target.parent().unwrap_or(target).display()
                ),
                source: e,
            }
        });
    }
    if let Err(e) = crate::listener::quarantine::restrict(target) {
        tracing::warn!(file = %target.display(), error = %e, "Cannot make a skipped listener file readable by root only.");
    }
    Ok(())
}

/// Puts a skipped or a (fixed) quarantined file back into the queue under its original name,
/// with a new requeue generation so that it is published again ([`crate::listener::requeue`]).
pub fn requeue(ops: &Ops, request: &RequeueRequest) -> Result<RequeueResult, OpsError> {
    let name = request.name.trim();
    if name.contains('/') || !is_listener_file_name(base_name(name)) {
        return Err(OpsError::Invalid(format!(
            "{name:?} is not the name of a file in listener/skipped/ or listener/broken/"
        )));
    }
    let (from, note_suffix) = [(SKIPPED_DIR, ".skipped.txt"), (BROKEN_DIR, ".error.txt")]
        .into_iter()
        .find(|(dir, _)| ops.listener_dir.join(dir).join(name).is_file())
        .ok_or_else(|| {
            OpsError::NotFound(format!(
                "no file {name} in {dir}/skipped/ or {dir}/broken/",
                dir = ops.listener_dir.display()
            ))
        })?;
    let stored = ops.listener_dir.join(from).join(name);
    if let Err(e) = ListenerFile::read(&stored) {
        return Err(OpsError::Invalid(format!(
            "still not a valid listener file: {e}; fix it first"
        )));
    }
    let original = base_name(name).to_owned();
    let target = ops.listener_dir.join(&original);
    if target.exists() {
        return Err(OpsError::Conflict(format!(
            "{} exists already; move it away first",
            target.display()
        )));
    }
    let moved_to = requeue::requeue_from(&ops.listener_dir, &stored, note_suffix, &request.by)
        .map_err(OpsError::io(format!("cannot move {name} back")))?;
    crate::telemetry::events::FileRequeued {
        file: &original,
        by: &request.by,
        from,
    }
    .emit();
    ops.wake.notify_one();
    Ok(RequeueResult {
        file: original,
        moved_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_quarantine_names_keep_their_base() {
        assert_eq!(
            base_name("2025-01-01-00-00-00-000001.json.2"),
            "2025-01-01-00-00-00-000001.json"
        );
        assert_eq!(
            base_name("2025-01-01-00-00-00-000001.json"),
            "2025-01-01-00-00-00-000001.json"
        );
    }

    #[test]
    fn the_age_of_a_file_does_not_depend_on_the_time_zone_of_its_name() {
        // The host (Europe/Berlin) named the file two hours ahead of this container's zone.
        let dir = tempfile::tempdir().unwrap();
        let name = (chrono::Local::now() + chrono::Duration::hours(2))
            .format("%Y-%m-%d-%H-%M-%S-000000.json")
            .to_string();
        std::fs::write(dir.path().join(&name), "{}").unwrap();
        let (oldest, age) = oldest_age(dir.path()).unwrap();
        assert_eq!(oldest, name);
        assert!(age < std::time::Duration::from_secs(60), "{age:?}");

        let name = (chrono::Local::now() - chrono::Duration::hours(2))
            .format("%Y-%m-%d-%H-%M-%S-000000.json")
            .to_string();
        std::fs::write(dir.path().join(&name), "{}").unwrap();
        let (_, age) = oldest_age(dir.path()).unwrap();
        assert!(age < std::time::Duration::from_secs(60), "{age:?}");
    }

    #[test]
    fn sidecars_are_not_listed_as_files() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join(BROKEN_DIR);
        std::fs::create_dir_all(&broken).unwrap();
        for name in [
            "2025-01-01-00-00-00-000001.json",
            "2025-01-01-00-00-00-000001.json.error.txt",
            "2025-01-01-00-00-00-000001.json.1",
            "2025-01-01-00-00-00-000002.json.requeued.txt",
        ] {
            std::fs::write(broken.join(name), "x").unwrap();
        }
        assert_eq!(
            quarantined(dir.path()),
            [
                "2025-01-01-00-00-00-000001.json",
                "2025-01-01-00-00-00-000001.json.1"
            ]
        );
    }
}
