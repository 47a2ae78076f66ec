//! The UCS host side of the App Center integration, simulated (`appcenter-contract.md` §2, §3,
//! §5 and the checklist in §12):
//!
//! - [`Ldap`] is the directory plus the host's listener module: every change stores the object
//!   and writes a *raw* file (4 keys, local-time name, plain non-atomic write).
//! - [`HostConverter`] is `univention-appcenter-listener-converter`: a conversion pass turns the
//!   raw files into listener files (sorted batch, de-duplicated by entry UUID keeping the last
//!   file, the object looked up *at conversion time*, `<name>.converting.tmp` then a rename),
//!   then the trigger runs with the host's contract (snapshot of `*.json` first, no arguments,
//!   a clean environment, stdout logged as INFO and stderr as WARNING, exit 0 → delete every
//!   snapshotted file still present, non-zero → keep), then the loop sleeps. Runs are never
//!   concurrent: everything takes `&mut self`.
//!
//! End-state checks compare [`Ldap::expected`] with what the target received. Today the target
//! is the test applier, replayed with [`HostConverter::replay`]; with the OX emulator, the
//! observed side becomes the emulator's state and `Ldap::expected` stays the reference.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Local, TimeDelta};
use serde_json::{json, Value};

use super::files::converter_json;

/// One object in the simulated directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub dn: String,
    pub object_type: String,
    pub object: Value,
    pub options: Vec<String>,
}

/// The directory and the host listener module that writes raw files. Clones share the state.
#[derive(Clone)]
pub(crate) struct Ldap {
    inner: Arc<Mutex<LdapState>>,
}

struct LdapState {
    raw_dir: PathBuf,
    /// Entry UUID → the object now; `None` once deleted.
    objects: BTreeMap<String, Option<Entry>>,
    last_name_time: Option<DateTime<Local>>,
}

impl Ldap {
    /// A directory whose listener module writes raw files into `raw_dir` (the host's
    /// `/var/lib/univention-appcenter/listener/ox-connector/`).
    pub(crate) fn new(raw_dir: &Path) -> Self {
        std::fs::create_dir_all(raw_dir).unwrap();
        Self {
            inner: Arc::new(Mutex::new(LdapState {
                raw_dir: raw_dir.to_owned(),
                objects: BTreeMap::new(),
                last_name_time: None,
            })),
        }
    }

    /// Adds or changes (or moves) an object; returns the raw file's name, which is also the
    /// name of the listener file it may become.
    pub(crate) fn modify(&self, entry_uuid: &str, entry: Entry) -> String {
        let mut state = self.inner.lock().unwrap();
        let (dn, object_type) = (entry.dn.clone(), entry.object_type.clone());
        state.objects.insert(entry_uuid.to_owned(), Some(entry));
        state.write_raw(entry_uuid, &dn, &object_type, "modify")
    }

    /// Deletes an object; returns the raw file's name.
    pub(crate) fn delete(&self, entry_uuid: &str) -> String {
        let mut state = self.inner.lock().unwrap();
        let entry = state
            .objects
            .get(entry_uuid)
            .cloned()
            .flatten()
            .unwrap_or_else(|| panic!("deleting {entry_uuid}, which does not exist"));
        state.objects.insert(entry_uuid.to_owned(), None);
        state.write_raw(entry_uuid, &entry.dn, &entry.object_type, "delete")
    }

    /// The object as a UDM look-up by entry UUID finds it now.
    fn lookup(&self, entry_uuid: &str) -> Option<Entry> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .get(entry_uuid)
            .cloned()
            .flatten()
    }

    /// What the target must hold in the end: entry UUID → the object now, `None` if deleted.
    pub(crate) fn expected(&self) -> BTreeMap<String, Option<Value>> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .iter()
            .map(|(id, entry)| (id.clone(), entry.as_ref().map(|e| e.object.clone())))
            .collect()
    }
}

impl LdapState {
    /// Writes a raw file the way the listener module does: 4 keys, sorted, indent 4, ASCII,
    /// no trailing newline, plain write (a reader may see it half-written).
    fn write_raw(
        &mut self,
        entry_uuid: &str,
        dn: &str,
        object_type: &str,
        command: &str,
    ) -> String {
        let name = self.next_name();
        let raw = json!({
            "command": command,
            "dn": dn,
            "entry_uuid": entry_uuid,
            "object_type": object_type,
        });
        std::fs::write(self.raw_dir.join(&name), converter_json(&raw)).unwrap();
        name
    }

    /// `%Y-%m-%d-%H-%M-%S-%f.json` in local time. Strictly increasing: the listener is
    /// single-threaded, so two events never share a name.
    fn next_name(&mut self) -> String {
        let now = Local::now();
        let time = match self.last_name_time {
            Some(last) if now <= last => last + TimeDelta::microseconds(1),
            _ => now,
        };
        self.last_name_time = Some(time);
        time.format("%Y-%m-%d-%H-%M-%S-%6f.json").to_string()
    }
}

/// A line of the host's log for this app (`listener_modules/ox-connector.log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// One trigger run as the host saw it.
#[derive(Debug, Clone)]
pub(crate) struct TriggerRun {
    /// `None` if the trigger was killed by a signal.
    pub exit_code: Option<i32>,
    /// The `*.json` names in the listener folder before the run.
    pub snapshot: Vec<String>,
    /// What the host deleted after the run (only after an exit 0).
    pub deleted: Vec<String>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

/// What a listener file written by the converter carried.
#[derive(Debug, Clone)]
struct Written {
    entry_uuid: String,
    object: Option<Value>,
}

/// The converter service with its loop: convert → trigger → sleep.
pub(crate) struct HostConverter {
    ldap: Ldap,
    raw_dir: PathBuf,
    listener_dir: PathBuf,
    /// The trigger as copied "into the container" (mode 0755).
    trigger: PathBuf,
    /// The container's environment: the only environment the trigger gets.
    container_env: Vec<(String, String)>,
    /// The loop's sleep; 5 s on a real host, shorter in tests.
    pub interval: Duration,
    log: Vec<LogLine>,
    written: HashMap<String, Written>,
    runs: Vec<TriggerRun>,
    /// Raw files dropped by the batch de-duplication so far.
    pub deduplicated: usize,
}

impl HostConverter {
    /// A converter for `ldap`'s raw files that writes into `listener_dir` and runs `trigger`
    /// (copied into `work_dir` first, like the App Center's copy into the container's /tmp)
    /// with exactly `container_env`.
    pub(crate) fn new(
        ldap: &Ldap,
        listener_dir: &Path,
        trigger: &Path,
        work_dir: &Path,
        container_env: Vec<(String, String)>,
    ) -> Self {
        let copy = work_dir.join("univention-ox-connector.listener_trigger");
        std::fs::copy(trigger, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        let raw_dir = ldap.inner.lock().unwrap().raw_dir.clone();
        Self {
            ldap: ldap.clone(),
            raw_dir,
            listener_dir: listener_dir.to_owned(),
            trigger: copy,
            container_env,
            interval: Duration::from_secs(5),
            log: Vec::new(),
            written: HashMap::new(),
            runs: Vec::new(),
            deduplicated: 0,
        }
    }

    /// One pass of the loop: convert, run the trigger (if there is anything to trigger on),
    /// sleep. Returns the trigger run, if any.
    pub(crate) async fn cycle(&mut self) -> Option<TriggerRun> {
        self.convert();
        let run = self.run_trigger().await;
        tokio::time::sleep(self.interval).await;
        run
    }

    /// One conversion pass (§3.2); returns the names of the listener files written.
    pub(crate) fn convert(&mut self) -> Vec<String> {
        let mut batch: Vec<(String, Value)> = Vec::new();
        for name in json_names(&self.raw_dir) {
            let path = self.raw_dir.join(&name);
            let parsed = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
            match parsed {
                Some(raw) => batch.push((name, raw)),
                // Half-written, or broken: skipped and kept, retried in the next pass.
                None => self.log(
                    "ERROR",
                    format!(
                        "Fatal error: The following JSON file is broken: {}",
                        path.display()
                    ),
                ),
            }
        }
        // Only the last file per object survives; it keeps its own name.
        let mut last_of: HashMap<String, usize> = HashMap::new();
        for (i, (_, raw)) in batch.iter().enumerate() {
            last_of.insert(raw["entry_uuid"].as_str().unwrap_or_default().to_owned(), i);
        }
        let mut converted = Vec::new();
        for (i, (name, raw)) in batch.iter().enumerate() {
            let raw_path = self.raw_dir.join(name);
            let entry_uuid = raw["entry_uuid"].as_str().unwrap_or_default().to_owned();
            if last_of[&entry_uuid] != i {
                std::fs::remove_file(&raw_path).unwrap();
                self.deduplicated += 1;
                continue;
            }
            let (dn, object_type, object, options) = if raw["command"] == "delete" {
                (
                    raw["dn"].clone(),
                    raw["object_type"].clone(),
                    Value::Null,
                    Value::Null,
                )
            } else {
                match self.ldap.lookup(&entry_uuid) {
                    Some(entry) => (
                        json!(entry.dn),
                        json!(entry.object_type),
                        entry.object,
                        json!(entry.options),
                    ),
                    None => {
                        self.log("INFO", format!("EntryUUID {entry_uuid} not found"));
                        self.log(
                            "INFO",
                            format!(
                                "Removing corresponding listener file: {}",
                                raw_path.display()
                            ),
                        );
                        std::fs::remove_file(&raw_path).unwrap();
                        continue;
                    }
                }
            };
            let file = json!({
                "dn": dn,
                "id": entry_uuid,
                "object": object,
                "options": options,
                "udm_object_type": object_type,
            });
            std::fs::create_dir_all(&self.listener_dir).unwrap();
            let target = self.listener_dir.join(name);
            let tmp = self.listener_dir.join(format!("{name}.converting.tmp"));
            std::fs::write(&tmp, converter_json(&file)).unwrap();
            std::fs::rename(&tmp, &target).unwrap();
            std::fs::remove_file(&raw_path).unwrap();
            self.log(
                "INFO",
                format!(
                    "conversion of {} (id: {entry_uuid}, file: {})",
                    file["dn"].as_str().unwrap_or_default(),
                    target.display()
                ),
            );
            self.written.insert(
                name.clone(),
                Written {
                    entry_uuid,
                    object: (!file["object"].is_null()).then(|| file["object"].clone()),
                },
            );
            converted.push(name.clone());
        }
        converted
    }

    /// One trigger run (§5.1), or `None` when the listener folder holds no `*.json`.
    pub(crate) async fn run_trigger(&mut self) -> Option<TriggerRun> {
        let snapshot = json_names(&self.listener_dir);
        if snapshot.is_empty() {
            return None;
        }
        let output = tokio::process::Command::new(&self.trigger)
            .env_clear()
            .envs(self.container_env.iter().cloned())
            .stdin(Stdio::null())
            .output()
            .await
            .expect("the trigger can be started");
        let lines = |bytes: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(str::to_owned)
                .collect()
        };
        let (stdout, stderr) = (lines(&output.stdout), lines(&output.stderr));
        for line in &stdout {
            self.log("INFO", line.clone());
        }
        for line in &stderr {
            self.log("WARNING", line.clone());
        }
        let mut deleted = Vec::new();
        if output.status.success() {
            self.log("INFO", "Success! Removing consumed files".to_owned());
            for name in &snapshot {
                // Errors (already gone, a folder) are ignored, as on the host.
                if std::fs::remove_file(self.listener_dir.join(name)).is_ok() {
                    deleted.push(name.clone());
                }
            }
        }
        let run = TriggerRun {
            exit_code: output.status.code(),
            snapshot,
            deleted,
            stdout,
            stderr,
        };
        self.runs.push(run.clone());
        Some(run)
    }

    /// Sets a variable of the container's environment (on a real host: a changed app setting
    /// and a re-created container).
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        self.container_env.retain(|(k, _)| k != key);
        self.container_env.push((key.to_owned(), value.to_owned()));
    }

    /// Raw files not converted yet.
    pub(crate) fn raw_pending(&self) -> usize {
        json_names(&self.raw_dir).len()
    }

    /// `*.json` names in the listener folder.
    pub(crate) fn queued(&self) -> Vec<String> {
        json_names(&self.listener_dir)
    }

    pub(crate) fn log_lines(&self) -> &[LogLine] {
        &self.log
    }

    pub(crate) fn runs(&self) -> &[TriggerRun] {
        &self.runs
    }

    /// Replays the listener files a target applied, in order: entry UUID → the last object it
    /// got (`None`: deleted).
    pub(crate) fn replay(&self, applied: &[String]) -> BTreeMap<String, Option<Value>> {
        let mut state = BTreeMap::new();
        for name in applied {
            let written = self
                .written
                .get(name)
                .unwrap_or_else(|| panic!("{name} was applied but never written by the converter"));
            state.insert(written.entry_uuid.clone(), written.object.clone());
        }
        state
    }

    fn log(&mut self, level: &'static str, message: String) {
        self.log.push(LogLine { level, message });
    }
}

/// Panics unless `observed` holds every existing object of `expected` in its current state and
/// no deleted one (a deleted object may be absent: its create may never have reached the
/// target).
pub(crate) fn assert_same_state(
    expected: &BTreeMap<String, Option<Value>>,
    observed: &BTreeMap<String, Option<Value>>,
) {
    for (id, want) in expected {
        let got = observed.get(id).cloned().flatten();
        assert_eq!(
            &got, want,
            "object {id}: the target holds {got:?}, LDAP has {want:?}"
        );
    }
    let unknown: HashSet<&String> = observed
        .keys()
        .filter(|id| !expected.contains_key(*id))
        .collect();
    assert!(
        unknown.is_empty(),
        "the target holds unknown objects {unknown:?}"
    );
}

/// What the host's `glob("<dir>/*.json")` returns (names only, sorted): no dot-names,
/// folders included.
fn json_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A `users/user` entry as ListenerUDMVersion 1 writes it.
pub(crate) fn user(username: &str, extra: Value) -> Entry {
    let mut object = json!({
        "username": username,
        "firstname": "Test",
        "lastname": username,
        "isOxUser": "OK",
        "oxContext": "10",
        "mailPrimaryAddress": format!("{username}@example.org"),
    });
    if let (Some(object), Some(extra)) = (object.as_object_mut(), extra.as_object()) {
        object.extend(extra.clone());
    }
    Entry {
        dn: format!("uid={username},cn=users,dc=example,dc=org"),
        object_type: "users/user".to_owned(),
        object,
        options: vec!["default".to_owned()],
    }
}

/// A `groups/group` entry with members.
pub(crate) fn group(name: &str, members: &[&str]) -> Entry {
    Entry {
        dn: format!("cn={name},cn=groups,dc=example,dc=org"),
        object_type: "groups/group".to_owned(),
        object: json!({
            "name": name,
            "isOxGroup": "OK",
            "users": members
                .iter()
                .map(|m| format!("uid={m},cn=users,dc=example,dc=org"))
                .collect::<Vec<_>>(),
        }),
        options: vec!["default".to_owned()],
    }
}
