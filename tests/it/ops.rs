//! Operations through the real daemon: the admin commands of the `ox-connector` binary, the
//! admin API's token, metrics, JSON logs, the Python state import and reconcile, against a real
//! nats-server and the OX emulator.

use std::time::Duration;

use ox_connector::emulator::{
    Emulator, EmulatorSettings, FaultRule, FaultSettings, ADMIN_GUIDE_PROPERTIES,
};
use ox_connector::ox::soap::{Context, Credentials, Group, Resource, User};
use serde_json::{json, Value};

use crate::support::cli::{self, metric};
use crate::support::files::{self, old_file};
use crate::support::ox::*;
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(30);

/// A user whose display name another user has already: OX refuses it ("The displayname is
/// already used"), which blocks the queue.
fn rejected_user(id: &str, username: &str, taken_display_name: &str) -> Value {
    user(
        id,
        username,
        10,
        json!({
            "displayName": taken_display_name,
            "userPassword": ["{crypt}$6$secret-hash-of-carl"],
            "sambaNTPassword": "NTHASH0F0CARL",
            "krb5Key": ["KRB5KEY0F0CARL"],
            "password": "plain-password-of-carl",
        }),
    )
}

#[tokio::test]
async fn a_blocked_queue_shows_the_ox_error_and_skipping_the_file_unblocks_it() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    let carl = t.write(rejected_user("u-carl", "carl", "First anna"));
    // bob takes an address carl holds, so it waits behind carl (a change that shares nothing
    // with it would be applied past it).
    let bob = t.write(user(
        "u-bob",
        "bob",
        10,
        json!({"mailAlternativeAddress": ["carl@example.org"]}),
    ));
    let daemon = t.daemon().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    wait_for("the queue to block on carl", WAIT, || {
        t.blocked()["file"] == carl.as_str()
    })
    .await;

    // One screen: running, blocked on which file/object, the OX error, attempts.
    let status = cli::run(&dir, &["queue", "status"]).await;
    assert_eq!(status.code, 1, "{}{}", status.stdout, status.stderr);
    for expected in [
        "ox-connector is running",
        "NOT READY: queue",
        "BLOCKED since",
        " so far:",
        carl.as_str(),
        "users/user uid=carl,cn=users,dc=example,dc=org",
        "u-carl",
        "The displayname is already used",
        "ox-connector queue skip",
    ] {
        assert!(
            status.stdout.contains(expected),
            "{expected:?} missing:\n{}",
            status.stdout
        );
    }
    let json = cli::run(&dir, &["queue", "status", "--json"]).await.json();
    assert_eq!(json["running"], true);
    assert_eq!(json["ready"]["ready"], false);
    assert!(json["status"]["daemon"]["blocked"]["error"]
        .as_str()
        .unwrap()
        .contains("The displayname is already used"));

    // The order: carl first (blocked), then bob.
    let list = cli::run(&dir, &["queue", "list", "--json"]).await.json();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items[0]["file"], carl.as_str());
    assert_eq!(items[0]["state"], "blocked");
    assert_eq!(items[1]["file"], bob.as_str());
    assert_eq!(items[1]["state"], "queued");
    let text = cli::run(&dir, &["queue", "list"]).await.stdout;
    assert!(text.contains("BLOCKED") && text.contains(&bob), "{text}");

    // Show: the message with its secrets redacted.
    let show = cli::run(&dir, &["queue", "show", "blocked"]).await;
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout.contains("BLOCKING the queue"),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("<redacted>"), "{}", show.stdout);
    for secret in [
        "secret-hash-of-carl",
        "NTHASH0F0CARL",
        "KRB5KEY0F0CARL",
        "plain-password-of-carl",
    ] {
        assert!(
            !show.stdout.contains(secret),
            "{secret} shown:\n{}",
            show.stdout
        );
    }
    let by_uuid = cli::run(&dir, &["queue", "show", "u-bob", "--json"])
        .await
        .json();
    assert_eq!(by_uuid["file"], bob.as_str());

    // The token: required for everything that reads the queue or changes state.
    let (url, token) = cli::endpoint(&dir);
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{url}{path}"));
    assert_eq!(get("/queue").send().await.unwrap().status(), 401);
    assert_eq!(
        get("/queue")
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get("/queue")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let skip_anonymously = http
        .post(format!("{url}/queue/skip"))
        .json(&json!({"id": carl, "by": "mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(skip_anonymously.status(), 401);
    assert_eq!(
        get("/metrics").send().await.unwrap().status(),
        200,
        "open on loopback"
    );
    let ready = get("/ready").send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert!(ready["checks"]
        .to_string()
        .contains("The displayname is already used"));
    assert!(
        t.env.queued_files().contains(&carl),
        "nothing skipped without the token"
    );

    // Skip: the file moves to skipped/, the queue goes on.
    let skip = cli::run(
        &dir,
        &[
            "queue",
            "skip",
            "blocked",
            "--reason",
            "duplicate display name",
        ],
    )
    .await;
    assert_eq!(skip.code, 0, "{}{}", skip.stdout, skip.stderr);
    assert!(
        skip.stdout.contains("The queue moves again."),
        "{}",
        skip.stdout
    );
    t.settle().await;
    let skipped = t.env.listener_dir().join("skipped");
    assert!(skipped.join(&carl).is_file());
    let note = std::fs::read_to_string(skipped.join(format!("{carl}.skipped.txt"))).unwrap();
    for expected in [
        "skipped by: test-admin",
        "reason: duplicate display name",
        "The displayname is already used",
        "mv ",
    ] {
        assert!(note.contains(expected), "{expected:?} missing:\n{note}");
    }
    let state = t.state();
    let ctx = state.context(10).unwrap();
    assert!(
        ctx.user("bob").is_some(),
        "the change after the skipped one is applied"
    );
    assert!(ctx.user("carl").is_none());

    let status = cli::run(&dir, &["queue", "status"]).await;
    assert_eq!(status.code, 0, "{}", status.stdout);
    assert!(status.stdout.contains("Ready: yes"), "{}", status.stdout);
    assert!(
        status
            .stdout
            .contains("Skipped by an admin (listener/skipped/): 1"),
        "{}",
        status.stdout
    );
    let again = cli::run(&dir, &["queue", "skip", &carl]).await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("not waiting"), "{}", again.stderr);
    daemon.stop().await;

    let stopped = cli::run(&dir, &["queue", "status"]).await;
    assert_eq!(stopped.code, 2);
    assert!(stopped.stdout.contains("NOT running"), "{}", stopped.stdout);
}

#[tokio::test]
async fn a_fixed_quarantined_file_is_requeued_and_applied() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let name = files::name(50);
    files::write_raw(&t.env.listener_dir(), &name, b"{\"dn\": \"uid=dora");
    let broken = t.env.listener_dir().join("broken");
    wait_for("the broken file to be quarantined", WAIT, || {
        broken.join(&name).is_file()
    })
    .await;
    let status = cli::run(&dir, &["queue", "status"]).await;
    assert!(
        status
            .stdout
            .contains(&format!("Quarantined in listener/broken/ (1): {name}")),
        "{}",
        status.stdout
    );

    let still_broken = cli::run(&dir, &["queue", "requeue-broken", &name]).await;
    assert_eq!(still_broken.code, 1);
    assert!(
        still_broken
            .stderr
            .contains("still not a valid listener file"),
        "{}",
        still_broken.stderr
    );

    let fixed = files::converter_json(&user("u-dora", "dora", 10, json!({})));
    std::fs::write(broken.join(&name), fixed).unwrap();
    let requeue = cli::run(&dir, &["queue", "requeue-broken", &name, "--json"]).await;
    assert_eq!(requeue.code, 0, "{}", requeue.stderr);
    assert_eq!(requeue.json()["file"], name.as_str());
    wait_for("dora in OX", WAIT, || {
        t.state()
            .context(10)
            .is_some_and(|c| c.user("dora").is_some())
    })
    .await;
    t.settle().await;
    assert!(broken.join(format!("{name}.requeued.txt")).is_file());
    assert!(ox_connector::ops::queue::quarantined(&t.env.listener_dir()).is_empty());
    let _ = t.write(user("u-x", "x", 10, json!({})));
    t.settle().await;
    daemon.stop().await;
}

#[tokio::test]
async fn metrics_count_applied_files_ox_faults_and_retries() {
    let mut t = OxEnv::start().await;
    let daemon = t.daemon().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let before = cli::metrics(&dir).await;
    t.ox.set_faults(FaultSettings {
        rules: vec![FaultRule {
            service: Some("OXUserService".into()),
            operation: Some("createByModuleAccess".into()),
            count: Some(1),
            ..Default::default()
        }],
        ..Default::default()
    });
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    t.write(user("u-bob", "bob", 10, json!({})));
    t.settle().await;
    let after = cli::metrics(&dir).await;
    let delta =
        |name: &str, labels: &[&str]| metric(&after, name, labels) - metric(&before, name, labels);

    let users = r#"object_type="users/user""#;
    assert_eq!(
        delta(
            "ox_connector_files_applied_total",
            &[users, r#"outcome="applied""#]
        ),
        2.0,
        "{after}"
    );
    assert_eq!(
        delta(
            "ox_connector_files_applied_total",
            &[r#"object_type="oxmail/oxcontext""#]
        ),
        1.0
    );
    assert!(
        delta("ox_connector_files_seen_total", &[]) >= 3.0,
        "{after}"
    );
    assert_eq!(
        delta("ox_connector_apply_duration_seconds_count", &[users]),
        2.0
    );
    assert!(
        after.contains("# TYPE ox_connector_apply_duration_seconds histogram"),
        "{after}"
    );
    assert!(
        delta(
            "ox_connector_retries_total",
            &[users, r#"error_kind="transient""#]
        ) >= 1.0
    );
    assert!(
        delta("ox_connector_ox_faults_total", &[r#"kind="storage""#]) >= 1.0,
        "{after}"
    );
    assert!(
        delta(
            "ox_connector_ox_request_duration_seconds_count",
            &[r#"service="OXUserService""#, r#"outcome="ok""#]
        ) >= 2.0
    );
    assert_eq!(metric(&after, "ox_connector_queue_depth", &[]), 0.0);
    assert_eq!(metric(&after, "ox_connector_queue_messages", &[]), 0.0);
    assert_eq!(metric(&after, "ox_connector_queue_blocked", &[]), 0.0);
    assert_eq!(metric(&after, "ox_connector_nats_connected", &[]), 1.0);
    assert_eq!(
        metric(&after, "ox_connector_nats_reconnects_total", &[]),
        0.0
    );
    for line in after.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("uid=") && !line.contains(".json"),
            "unbounded label: {line}"
        );
    }
    daemon.stop().await;
}

#[tokio::test]
async fn json_logs_have_stable_keys_and_never_contain_a_secret() {
    let ox = Emulator::start(
        EmulatorSettings::new(MASTER, MASTER_PASSWORD)
            .with_properties(&ADMIN_GUIDE_PROPERTIES)
            .expect("known properties"),
    )
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let listener = data.path().join("listener");
    files::write(&listener, &files::name(1), &context("ctx-10", 10, None));
    files::write(
        &listener,
        &files::name(2),
        &user(
            "u-anna",
            "anna",
            10,
            json!({"userPassword": ["{crypt}$6$secret-hash-of-anna"], "sambaNTPassword": "NTHASH0F0ANNA",
                   "krb5Key": ["KRB5KEY0F0ANNA"], "password": "plain-password-of-anna"}),
        ),
    );
    let carl = files::name(3);
    files::write(
        &listener,
        &carl,
        &rejected_user("u-carl", "carl", "First anna"),
    );

    let (mut child, log) = crate::support::ox::spawn_daemon_binary(
        data.path(),
        &ox.base_url(),
        &["--retry-delay", "300ms"],
    );
    wait_for("the queue to block on carl", WAIT, || {
        crate::support::status_file(data.path())["blocked"]["file"] == carl.as_str()
    })
    .await;
    cli::wait_for_api(data.path()).await;
    let skip = cli::run(data.path(), &["queue", "skip", &carl, "--reason", "test"]).await;
    assert_eq!(skip.code, 0, "{}", skip.stderr);
    wait_for("the queue to drain", WAIT, || {
        files::listener_files(&listener).is_empty()
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let log = log.await.unwrap();

    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        for key in ["time", "level", "message", "target"] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
    }
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .unwrap_or_else(|| panic!("no line {message:?} in\n{log}"))
            .clone()
    };
    let applied = find("Applied change.");
    for key in ["file", "dn", "entry_uuid", "object_type", "operation"] {
        assert!(applied.get(key).is_some(), "{key} missing: {applied}");
    }
    assert_eq!(applied["operation"], "modify");
    let failed = find("Cannot apply change");
    assert_eq!(failed["level"], "error");
    assert_eq!(failed["ox_fault"], "invalid_data");
    assert_eq!(failed["file"], carl.as_str());
    assert_eq!(failed["dn"], "uid=carl,cn=users,dc=example,dc=org");
    let skipped = find("An admin skipped a queued change");
    assert_eq!(skipped["by"], "test-admin");
    assert_eq!(skipped["entry_uuid"], "u-carl");

    let credentials: Value =
        serde_json::from_slice(&std::fs::read(data.path().join("secrets/contexts.json")).unwrap())
            .unwrap();
    let token = std::fs::read_to_string(data.path().join("secrets/admin-token")).unwrap();
    for secret in [
        MASTER_PASSWORD,
        credentials["10"]["adminpass"].as_str().unwrap(),
        token.trim(),
        "secret-hash-of",
        "NTHASH0F0",
        "KRB5KEY0F0",
        "plain-password-of",
    ] {
        assert!(!log.contains(secret), "a secret reached the log: {secret}");
    }
    ox.stop().await;
}

fn new_user(name: &str) -> User {
    User {
        name: Some(name.into()),
        password: Some("Secret-pw-1".into()),
        display_name: Some(format!("{name} display")),
        given_name: Some("Given".into()),
        sur_name: Some(name.into()),
        primary_email: Some(format!("{name}@example.org")),
        email1: Some(format!("{name}@example.org")),
        ..User::default()
    }
}

#[tokio::test]
async fn the_python_connectors_cache_is_imported_so_that_nothing_is_created_twice_or_lost() {
    let mut t = OxEnv::start().await;
    // What the Python connector made in OX: a context with users, a group and a resource.
    let ox = t.ox_client();
    let admin = User {
        name: Some("oxadmin".into()),
        password: Some("Ctx-admin-pw-1".into()),
        display_name: Some("OX Admin".into()),
        given_name: Some("OX".into()),
        sur_name: Some("Admin".into()),
        primary_email: Some("oxadmin@example.org".into()),
        email1: Some("oxadmin@example.org".into()),
        ..User::default()
    };
    ox.create_context(
        &Context {
            id: Some(10),
            name: Some("context10".into()),
            max_quota: Some(-1),
            ..Context::default()
        },
        &admin,
    )
    .await
    .unwrap();
    let secrets = t.env.data.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(
        secrets.join("contexts.json"),
        json!({"10": {"adminuser": "oxadmin", "adminpass": "Ctx-admin-pw-1"}}).to_string(),
    )
    .unwrap();
    let auth = Credentials::new("oxadmin", "Ctx-admin-pw-1");
    let mut ids = std::collections::HashMap::new();
    for name in ["anna", "bob"] {
        // The same fields the connector sends, so that later changes only change.
        let mut u = new_user(name);
        u.display_name = Some(format!("First {name}"));
        u.given_name = Some("First".into());
        let created = ox.create_user(10, &u, &auth).await.unwrap();
        ids.insert(name, created.id.unwrap());
    }
    let staff = ox
        .create_group(
            10,
            &Group {
                name: Some("staff".into()),
                displayname: Some("staff".into()),
                members: vec![ids["anna"], ids["bob"]],
                ..Group::default()
            },
            &auth,
        )
        .await
        .unwrap();
    ox.create_resource(
        10,
        &Resource {
            name: Some("room1".into()),
            displayname: Some("Room room1".into()),
            email: Some("room1@example.org".into()),
            available: Some(true),
            ..Resource::default()
        },
        &auth,
    )
    .await
    .unwrap();

    // Its cache: listener/old/<entry UUID>.json, bob without oxDbId (an old version's file).
    let python = tempfile::tempdir().unwrap();
    let old = python.path().join("listener/old");
    old_file(&old, context("ctx-10", 10, None), json!({}));
    old_file(
        &old,
        user("u-anna", "anna", 10, json!({"groups": [group_dn("staff")]})),
        json!({"oxDbId": ids["anna"].to_string(), "oxDbUsername": "anna"}),
    );
    old_file(
        &old,
        user("u-bob", "bob", 10, json!({"groups": [group_dn("staff")]})),
        json!({}),
    );
    old_file(
        &old,
        user("u-plain", "plain", 10, json!({"isOxUser": "Not"})),
        json!({}),
    );
    old_file(
        &old,
        group("g-staff", "staff", &["anna", "bob"], json!({})),
        json!({"oxDbGroupname": "staff"}),
    );
    old_file(&old, resource("r-room1", "room1", 10, json!({})), json!({}));
    old_file(
        &old,
        access_profile("p-1", "premium2", &["oxcalendar"]),
        json!({}),
    );
    std::fs::write(old.join("broken.json"), "{not json").unwrap();
    std::fs::write(python.path().join("listener/old.db"), b"GNU dbm").unwrap();

    let daemon = t.daemon().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let from = python.path().to_str().unwrap();

    // Dry run: what would be imported, nothing written.
    let dry = cli::run(&dir, &["state", "import", "--from", from]).await;
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    for expected in [
        "Would import (dry run) 7 objects",
        "3 users/user",
        "1 groups/group",
        "unreadable files: 1",
        "no oxDbId; OX id",
        "To import: add --apply.",
    ] {
        assert!(
            dry.stdout.contains(expected),
            "{expected:?} missing:\n{}",
            dry.stdout
        );
    }
    let report = cli::run(&dir, &["state", "import", "--from", from, "--json"])
        .await
        .json();
    let entry = |uuid: &str| {
        report["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["entry_uuid"] == uuid)
            .unwrap()
            .clone()
    };
    assert_eq!(
        entry("u-bob")["ox"]["object"]["id"],
        ids["bob"],
        "looked up by name"
    );
    assert_eq!(
        entry("g-staff")["ox"]["per_context"]["10"]["id"],
        staff.id.unwrap()
    );
    let again = cli::run(&dir, &["state", "import", "--from", from]).await;
    assert!(
        again.stdout.contains("Would import (dry run) 7"),
        "the dry run wrote nothing"
    );

    let apply = cli::run(&dir, &["state", "import", "--from", from, "--apply"]).await;
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert!(
        apply.stdout.contains("Imported 7 objects"),
        "{}",
        apply.stdout
    );
    let twice = cli::run(&dir, &["state", "import", "--from", from, "--apply"]).await;
    assert!(
        twice.stdout.contains("Already known (left alone): 7"),
        "{}",
        twice.stdout
    );

    // Changes now find the OX objects: nothing is created twice, deletes reach OX.
    t.write(user(
        "u-bob",
        "bob",
        10,
        json!({"oxDepartment": "Sales", "groups": [group_dn("staff")]}),
    ));
    t.write(user_deleted("u-anna", "anna"));
    t.write(resource_deleted("r-room1", "room1"));
    t.settle().await;
    let state = t.state();
    let ctx = state.context(10).unwrap();
    assert!(ctx.user("anna").is_none(), "the delete reached OX");
    let bob = ctx.user("bob").unwrap();
    assert_eq!(bob.id, ids["bob"], "changed, not created again");
    assert_eq!(bob.data.department.as_deref(), Some("Sales"));
    assert!(ctx.resource("room1").is_none());
    assert_eq!(
        ctx.group("staff").unwrap().id,
        staff.id,
        "the group was kept"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn the_python_cache_in_the_data_dir_is_imported_at_the_first_start() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    let first = t.daemon().await;
    t.settle().await;
    first.stop().await;
    let anna = t.ox_user(10, "anna").id;

    // A fresh state store (a new nats-server), but the old cache in <data-dir>/listener/old.
    let mut fresh = crate::support::TestEnv::start().await;
    fresh.settings.ox = t.env.settings.ox.clone();
    let secrets = fresh.data.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::copy(
        t.env.data.path().join("secrets/contexts.json"),
        secrets.join("contexts.json"),
    )
    .unwrap();
    fresh.settings.ox.credentials_file = secrets.join("contexts.json");
    let old = fresh.data.path().join("listener/old");
    old_file(
        &old,
        user("u-anna", "anna", 10, json!({})),
        json!({"oxDbId": anna.to_string(), "oxDbUsername": "anna"}),
    );
    let token = tokio_util::sync::CancellationToken::new();
    let daemon = ox_connector::app::Daemon::start_ox(fresh.settings.clone(), token.clone())
        .await
        .unwrap();
    assert!(fresh.data.path().join("state-import.json").is_file());
    files::write(
        &fresh.listener_dir(),
        &files::name(90),
        &user_deleted("u-anna", "anna"),
    );
    wait_for("the delete to be applied", WAIT, || {
        fresh.queued_files().is_empty()
    })
    .await;
    assert!(t.state().context(10).unwrap().user("anna").is_none());
    token.cancel();
    daemon.wait().await.unwrap();
}

#[tokio::test]
async fn reconcile_finds_each_kind_of_drift_and_repairs_it() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    for name in ["anna", "bob", "carl"] {
        t.write(user(
            &format!("u-{name}"),
            name,
            10,
            json!({"groups": [group_dn("staff")]}),
        ));
    }
    t.write(group("g-staff", "staff", &["anna", "bob"], json!({})));
    t.write(resource(
        "r-room1",
        "room1",
        10,
        json!({"description": "Big room"}),
    ));
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;

    let clean = cli::run(&dir, &["reconcile"]).await;
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    assert!(clean.stdout.contains("0 differences"), "{}", clean.stdout);

    // Drift made in OX behind the connector's back.
    let ox = t.ox_client();
    let auth = t.context_admin(10);
    let ctx = t.state().context(10).unwrap().clone();
    let carl = ctx.user("carl").unwrap().id;
    ox.delete_user(10, &User::with_id(carl), &auth)
        .await
        .unwrap();
    ox.create_user(10, &new_user("mallory"), &auth)
        .await
        .unwrap();
    let mut bob = User::with_id(ctx.user("bob").unwrap().id);
    bob.display_name = Some("Bobby Tables".into());
    ox.change_user(10, &bob, &auth).await.unwrap();
    let room = ctx.resource("room1").unwrap().id.unwrap();
    ox.change_resource(
        10,
        &Resource {
            id: Some(room),
            description: Some("changed in OX".into()),
            ..Resource::default()
        },
        &auth,
    )
    .await
    .unwrap();
    let staff = ctx.group("staff").unwrap().id.unwrap();
    ox.delete_group(10, &Group::with_id(staff), &auth)
        .await
        .unwrap();
    let anna = ctx.user("anna").unwrap().id;
    let recreated = ox
        .create_group(
            10,
            &Group {
                name: Some("staff".into()),
                displayname: Some("staff".into()),
                members: vec![anna],
                ..Group::default()
            },
            &auth,
        )
        .await
        .unwrap();
    assert_ne!(recreated.id, Some(staff));

    let dry = cli::run(&dir, &["reconcile", "--dry-run"]).await;
    assert_eq!(dry.code, 1, "{}{}", dry.stdout, dry.stderr);
    for expected in [
        "Reconcile (dry run)",
        "missing in OX  user",
        "unknown in OX  user",
        "mallory",
        "differs        user",
        "Bobby Tables",
        "differs        resource",
        "changed in OX",
        "stale id       group",
        "ox-connector reconcile --apply",
    ] {
        assert!(
            dry.stdout.contains(expected),
            "{expected:?} missing:\n{}",
            dry.stdout
        );
    }
    let report = cli::run(&dir, &["reconcile", "--json", "--context", "10"])
        .await
        .json();
    let kinds: Vec<(String, String)> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (kind, name) in [
        ("missing_in_ox", "carl"),
        ("unknown_in_ox", "mallory"),
        ("differs", "bob"),
        ("differs", "room1"),
        ("stale_id", "staff"),
    ] {
        assert!(
            kinds.contains(&(kind.to_owned(), name.to_owned())),
            "{kind} {name} not in {kinds:?}"
        );
    }
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    let metrics = cli::metrics(&dir).await;
    assert_eq!(
        metric(
            &metrics,
            "ox_connector_reconcile_drift",
            &[r#"kind="unknown_in_ox""#]
        ),
        1.0
    );

    let apply = cli::run(&dir, &["reconcile", "--apply"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    assert!(
        apply.stdout.contains("Queued 4 repairs"),
        "{}",
        apply.stdout
    );
    wait_for("the repairs in OX", WAIT, || {
        let state = t.state();
        let ctx = state.context(10).unwrap();
        let carl = ctx.user("carl");
        let staff = ctx.group("staff");
        carl.is_some()
            && ctx.user("bob").unwrap().data.display_name.as_deref() == Some("First bob")
            && ctx.resource("room1").unwrap().description.as_deref() == Some("Big room")
            && staff.is_some_and(|g| g.members.len() == 2 && !g.members.contains(&carl.unwrap().id))
    })
    .await;
    let after = cli::run(&dir, &["reconcile", "--json"]).await.json();
    let left: Vec<&str> = after["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["unknown_in_ox"], "only mallory is left: {after}");
    daemon.stop().await;
}
