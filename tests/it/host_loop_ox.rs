//! The App Center host loop (simulated converter + the shipped `listener_trigger`) against the
//! daemon with the OX applier and the OX emulator: changes arrive in converter batches while the
//! trigger loop runs; at every trigger exit 0 each file the host then deletes must already be in
//! OX (the state store records the last applied listener file of every object); the end state in
//! the emulator is the directory's; an OX outage keeps the files until OX is back.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ox_connector::emulator::{Failure, FaultSettings};
use ox_connector::provision::state::StateStore;
use serde_json::json;

use crate::support::converter::{user, Entry, HostConverter, Ldap, TriggerRun};
use crate::support::ox::OxEnv;
use crate::support::wait_for;

const T: Duration = Duration::from_secs(60);

/// Which object each listener file name was written for, and whether it was a delete.
type Written = Arc<Mutex<HashMap<String, (String, bool)>>>;

fn host_converter(t: &OxEnv, ldap: &Ldap, work_dir: &Path) -> HostConverter {
    let trigger = Path::new(env!("CARGO_MANIFEST_DIR")).join("listener_trigger/listener_trigger");
    let container_env = vec![
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        (
            "OX_CONNECTOR_BIN".to_owned(),
            env!("CARGO_BIN_EXE_ox-connector").to_owned(),
        ),
        (
            "OX_CONNECTOR_DATA_DIR".to_owned(),
            t.env.data.path().display().to_string(),
        ),
        ("OX_CONNECTOR_TRIGGER_WAIT".to_owned(), "500ms".to_owned()),
    ];
    let mut converter = HostConverter::new(
        ldap,
        &t.env.listener_dir(),
        &trigger,
        work_dir,
        container_env,
    );
    converter.interval = Duration::from_millis(100);
    converter
}

fn context(id: i32) -> Entry {
    Entry {
        dn: format!("cn=context{id},cn=open-xchange,dc=example,dc=org"),
        object_type: "oxmail/oxcontext".into(),
        object: json!({"contextid": id.to_string(), "name": format!("context{id}")}),
        options: vec![],
    }
}

/// After an exit 0 the host deletes the snapshot: each file's change must be in OX by then,
/// i.e. the object's last applied listener file is this one or a later one (or, for a delete,
/// the object is gone from the state store).
async fn check_run(run: &TriggerRun, js: &async_nats::jetstream::Context, written: &Written) {
    if run.exit_code != Some(0) {
        assert!(run.deleted.is_empty(), "{run:?}");
        return;
    }
    // A handle of its own each time: a handle caches what it read, and only the daemon writes.
    let state = StateStore::open(js).await.unwrap();
    for name in &run.snapshot {
        let Some((uuid, delete)) = written.lock().unwrap().get(name).cloned() else {
            continue;
        };
        let remembered = state.get(&uuid).await.unwrap();
        let applied = match (&remembered, delete) {
            (None, true) => true,
            (Some(s), _) => s.source_file.as_deref().is_some_and(|f| f >= name.as_str()),
            (None, false) => false,
        };
        assert!(
            applied,
            "the trigger exited 0 while {name} ({uuid}) was not in OX: {run:?}"
        );
    }
}

#[tokio::test]
async fn converter_batches_reach_ox_and_no_file_is_deleted_before_its_change_is_in_ox() {
    let t = OxEnv::start().await;
    let daemon = t.daemon().await;
    wait_for("the admin API", T, || {
        t.env.data.path().join("run/admin.json").exists()
    })
    .await;
    let js = t.env.jetstream().await;
    let host = tempfile::tempdir().unwrap();
    let ldap = Ldap::new(&host.path().join("raw"));
    let mut converter = host_converter(&t, &ldap, host.path());
    let written: Written = Arc::default();
    let record = |name: String, uuid: &str, delete: bool| {
        written
            .lock()
            .unwrap()
            .insert(name, (uuid.to_owned(), delete));
    };
    record(ldap.modify("ctx-10", context(10)), "ctx-10", false);

    let writer = tokio::spawn({
        let (ldap, written) = (ldap.clone(), written.clone());
        async move {
            for step in 0..60u32 {
                let n = step % 10;
                let uuid = format!("user-{n}");
                let (name, delete) = if step >= 50 && n % 3 == 0 {
                    continue; // deleted at steps 40–49
                } else if step >= 40 && n % 3 == 0 {
                    (ldap.delete(&uuid), true)
                } else {
                    let department = format!("step {step}");
                    (
                        ldap.modify(
                            &uuid,
                            user(&format!("user{n}"), json!({"oxDepartment": department})),
                        ),
                        false,
                    )
                };
                written.lock().unwrap().insert(name, (uuid, delete));
                // Pacing of the directory changes, not a wait for an effect.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let deadline = Instant::now() + T;
    loop {
        if let Some(run) = converter.cycle().await {
            check_run(&run, &js, &written).await;
        }
        if writer.is_finished() && converter.raw_pending() == 0 && converter.queued().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the loop did not drain: {:?}, blocked: {}",
            converter.queued(),
            t.blocked()
        );
    }
    writer.await.unwrap();

    // The end state in OX is the directory's.
    let ox = t.state();
    let ctx = ox.context(10).expect("context 10");
    for (uuid, object) in ldap.expected() {
        let Some(n) = uuid.strip_prefix("user-") else {
            continue;
        };
        let in_ox = ctx.user(&format!("user{n}"));
        match object {
            Some(object) => {
                let user = in_ox.unwrap_or_else(|| panic!("user{n} missing in OX"));
                assert_eq!(
                    user.data.department.as_deref(),
                    object["oxDepartment"].as_str()
                );
            }
            None => assert!(in_ox.is_none(), "user{n} was deleted in LDAP but is in OX"),
        }
    }

    // OX goes down: the trigger exits non-zero and the file stays until OX is back.
    t.ox.set_faults(FaultSettings {
        down: Some(Failure::Http { status: 503 }),
        ..FaultSettings::default()
    });
    let name = ldap.modify("user-1", user("user1", json!({"oxDepartment": "outage"})));
    written
        .lock()
        .unwrap()
        .insert(name.clone(), ("user-1".into(), false));
    let mut saw_failure = false;
    for _ in 0..3 {
        if let Some(run) = converter.cycle().await {
            check_run(&run, &js, &written).await;
            saw_failure |= run.exit_code.is_some_and(|c| c != 0);
        }
    }
    assert!(
        saw_failure,
        "no trigger run failed while OX was down: {:?}",
        converter.runs().last()
    );
    assert!(
        t.env.listener_dir().join(&name).exists(),
        "the file stays while OX is down"
    );
    t.ox.set_faults(FaultSettings::default());
    let deadline = Instant::now() + T;
    while !converter.queued().is_empty() {
        if let Some(run) = converter.cycle().await {
            check_run(&run, &js, &written).await;
        }
        assert!(Instant::now() < deadline, "not applied after OX came back");
    }
    let department = t
        .state()
        .context(10)
        .unwrap()
        .user("user1")
        .unwrap()
        .data
        .department
        .clone();
    assert_eq!(department.as_deref(), Some("outage"));
    daemon.stop().await;
}
