//! Issue #17 and #16's admin-facing fixes through the real daemon and the `ox-connector`
//! binary: un-skipping, credentials that reload, `queue show` of hostile quarantined files.

use std::time::Duration;

use ox_connector::emulator::{FaultRule, FaultSettings};
use serde_json::json;

use crate::support::cli;
use crate::support::ox::*;
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(30);

/// Makes every user creation fail until the faults are cleared.
fn refuse_user_creation(t: &OxEnv) {
    t.ox.set_faults(FaultSettings {
        rules: vec![FaultRule {
            service: Some("OXUserService".into()),
            operation: Some("createByModuleAccess".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
}

async fn block_and_skip(t: &mut OxEnv, id: &str, name: &str) -> String {
    let dir = t.env.data.path().to_owned();
    let file = t.write(user(id, name, 10, json!({})));
    wait_for("the queue to block", WAIT, || {
        t.blocked()["file"] == file.as_str()
    })
    .await;
    let skip = cli::run(&dir, &["queue", "skip", "blocked", "--reason", "later"]).await;
    assert_eq!(skip.code, 0, "{}{}", skip.stdout, skip.stderr);
    t.settle().await;
    file
}

fn in_ox(t: &OxEnv, name: &str) -> bool {
    t.state()
        .context(10)
        .is_some_and(|c| c.user(name).is_some())
}

/// Issue #17 item 1: a skipped file moved back (by `mv` as the note says, or with
/// `queue requeue`) is published again and applied, although name and content are unchanged.
#[tokio::test]
async fn a_skipped_file_put_back_is_applied() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let listener = t.env.listener_dir();
    let skipped = listener.join("skipped");

    refuse_user_creation(&t);
    let carl = block_and_skip(&mut t, "u-carl", "carl").await;
    let dora = block_and_skip(&mut t, "u-dora", "dora").await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(skipped.join(&carl))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "skipped files are for root only");
    t.ox.set_faults(FaultSettings::default());

    // By hand, as the skip note says.
    std::fs::rename(skipped.join(&carl), listener.join(&carl)).unwrap();
    wait_for("carl in OX after mv", WAIT, || in_ox(&t, "carl")).await;
    t.settle().await;
    assert!(skipped.join(format!("{carl}.requeued.txt")).is_file());
    assert!(!skipped.join(format!("{carl}.skipped.txt")).exists());

    // With the command.
    let requeue = cli::run(&dir, &["queue", "requeue", &dora]).await;
    assert_eq!(requeue.code, 0, "{}{}", requeue.stdout, requeue.stderr);
    wait_for("dora in OX after requeue", WAIT, || in_ox(&t, "dora")).await;
    t.settle().await;

    daemon.stop().await;
}

fn set_master_password_in_file(t: &OxEnv, password: &str) {
    let path = t.env.data.path().join("secrets/contexts.json");
    let mut credentials: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    credentials["master"]["adminpass"] = json!(password);
    std::fs::write(&path, serde_json::to_vec_pretty(&credentials).unwrap()).unwrap();
}

/// Issue #17 item 2: the documented fix of a wrong master password — edit the credentials file,
/// `queue retry` — works without a restart, and a restart with the unchanged (wrong) setting
/// does not undo it; a changed setting is copied into the file again.
#[tokio::test]
async fn a_fixed_master_password_in_the_credentials_file_is_used_without_a_restart() {
    let mut t = OxEnv::start().await;
    t.env.settings.ox.master_password = Some(ox_connector::provision::settings::Secret::new(
        "wrong-master-password",
    ));
    let daemon = t.daemon().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let ctx10 = t.write(context("ctx-10", 10, None));
    wait_for("the queue to block on the context", WAIT, || {
        t.blocked()["file"] == ctx10.as_str()
            && t.blocked()["error"]
                .as_str()
                .is_some_and(|e| e.contains("invalid_credentials") || e.contains("uthentication"))
    })
    .await;

    set_master_password_in_file(&t, MASTER_PASSWORD);
    let retry = cli::run(&dir, &["queue", "retry"]).await;
    assert_eq!(retry.code, 0, "{}", retry.stderr);
    wait_for("context 10 in OX", WAIT, || t.state().context(10).is_some()).await;
    t.settle().await;
    daemon.stop().await;

    // The same (wrong) setting at the next start: the admin's fix in the file stays.
    let daemon = t.daemon().await;
    t.write(context("ctx-20", 20, None));
    wait_for("context 20 in OX", WAIT, || t.state().context(20).is_some()).await;
    daemon.stop().await;

    // A changed setting is copied into the file.
    t.env.settings.ox.master_password = Some(ox_connector::provision::settings::Secret::new(
        "changed-setting",
    ));
    let daemon = t.daemon().await;
    let credentials: serde_json::Value = serde_json::from_slice(
        &std::fs::read(t.env.data.path().join("secrets/contexts.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(credentials["master"]["adminpass"], "changed-setting");
    daemon.stop().await;
}

/// Issue #16 item 7: an unusable `oxContext` blocks the change with the reason; the file stays.
#[tokio::test]
async fn an_unusable_ox_context_blocks_with_the_reason_instead_of_being_dropped() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    for (n, bad) in ["abc", "99999999999999999999"].into_iter().enumerate() {
        let file = t.write(user(
            &format!("u-bad{n}"),
            &format!("bad{n}"),
            10,
            json!({"oxContext": bad}),
        ));
        wait_for("the queue to block on it", WAIT, || {
            t.blocked()["file"] == file.as_str()
        })
        .await;
        let error = t.blocked()["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains(&format!("oxContext \"{bad}\" is not an OX context id")),
            "{error}"
        );
        assert!(t.env.listener_dir().join(&file).is_file(), "the file stays");
        let skip = cli::run(&dir, &["queue", "skip", "blocked"]).await;
        assert_eq!(skip.code, 0, "{}", skip.stderr);
    }
    daemon.stop().await;
}

/// Issue #16 items 6 and 9: `queue show` of a quarantined symbolic link does not follow it, a
/// huge quarantined file is not read into memory, and a skip's `by`/`reason` cannot forge lines
/// in its note.
#[tokio::test]
async fn hostile_set_aside_files_and_skip_notes_are_handled_safely() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let broken = t.env.listener_dir().join("broken");
    std::fs::create_dir_all(&broken).unwrap();

    let link = "2025-01-01-00-00-00-000001.json";
    std::os::unix::fs::symlink(dir.join("secrets/contexts.json"), broken.join(link)).unwrap();
    let show = cli::run(&dir, &["queue", "show", link]).await;
    assert_ne!(show.code, 0, "{}", show.stdout);
    assert!(!show.stdout.contains("adminpass"), "{}", show.stdout);
    assert!(!show.stderr.contains("adminpass"), "{}", show.stderr);

    let huge = "2025-01-01-00-00-00-000002.json";
    let file = std::fs::File::create(broken.join(huge)).unwrap();
    file.set_len(ox_connector::listener::MAX_FILE_BYTES + 1)
        .unwrap();
    let show = cli::run(&dir, &["queue", "show", huge]).await;
    assert_ne!(show.code, 0, "{}", show.stdout);
    assert!(
        show.stderr.contains("more than the limit"),
        "{}",
        show.stderr
    );

    refuse_user_creation(&t);
    let carl = t.write(user("u-carl", "carl", 10, json!({})));
    wait_for("the queue to block", WAIT, || {
        t.blocked()["file"] == carl.as_str()
    })
    .await;
    let skip = cli::run(
        &dir,
        &[
            "queue",
            "skip",
            "blocked",
            "--by",
            "eve\nskipped by: root",
            "--reason",
            "x\nreason: approved by root",
        ],
    )
    .await;
    assert_eq!(skip.code, 0, "{}", skip.stderr);
    let note = std::fs::read_to_string(
        t.env
            .listener_dir()
            .join(format!("skipped/{carl}.skipped.txt")),
    )
    .unwrap();
    let lines: Vec<&str> = note.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("skipped by:"))
            .count(),
        1,
        "{note}"
    );
    assert!(!lines.contains(&"reason: approved by root"), "{note}");
    t.ox.set_faults(FaultSettings::default());
    daemon.stop().await;
}

async fn ready(dir: &std::path::Path) -> serde_json::Value {
    let (url, _) = cli::endpoint(dir);
    reqwest::get(format!("{url}/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn check<'a>(ready: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {ready}"))
}

/// Issue #17 item 5: a wrong master password makes the daemon not ready before any change
/// fails (one authenticated OX call at the start).
#[tokio::test]
async fn a_wrong_master_password_is_not_ready_before_the_first_change() {
    let mut t = OxEnv::start().await;
    t.env.settings.ox.master_password = Some(ox_connector::provision::settings::Secret::new(
        "wrong-master-password",
    ));
    let daemon = t.daemon().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let ready = ready(&dir).await;
    assert_eq!(ready["ready"], false, "{ready}");
    let ox = check(&ready, "ox");
    assert!(
        ox["detail"]
            .as_str()
            .unwrap()
            .contains("OX refused the master login"),
        "{ox}"
    );
    let status = cli::run(&dir, &["queue", "status"]).await;
    assert_eq!(status.code, 1, "{}", status.stdout);
    assert!(
        status
            .stdout
            .contains("NOT READY: ox: OX refused the master login"),
        "{}",
        status.stdout
    );
    daemon.stop().await;
}

/// Issue #17 item 5: a `listener/` the daemon cannot write in (here: a read-only file system)
/// makes it not ready, naming the folder. Needs root to mount; skipped otherwise.
#[tokio::test]
async fn an_unwritable_listener_folder_is_not_ready() {
    let t = OxEnv::start().await;
    let listener = t.env.listener_dir();
    std::fs::create_dir_all(&listener).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&listener)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a read-only tmpfs here (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(listener.clone());
    let daemon = t.daemon().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let ready = ready(&dir).await;
    assert_eq!(ready["ready"], false, "{ready}");
    let detail = check(&ready, "listener")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("cannot write in") && detail.contains("listener"),
        "{detail}"
    );
    daemon.stop().await;
}

/// Issue #17 item 3 (the part outside the OX client): `/ready` names the cause at the bottom of
/// the chain — DNS, refused connection, TLS to a plain HTTP port.
#[tokio::test]
async fn ready_names_the_cause_of_a_connection_failure() {
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused_port = plain.local_addr().unwrap().port();
    drop(plain);
    let t = OxEnv::start().await;
    let tls_to_plain = t.ox.base_url().replace("http://", "https://");
    for (server, cause) in [
        ("http://ox.invalid".to_owned(), "dns error"),
        (
            format!("http://127.0.0.1:{refused_port}"),
            "Connection refused",
        ),
        (tls_to_plain, "InvalidContentType"),
    ] {
        let mut t = OxEnv::start().await;
        t.env.settings.ox.soap_server = server.clone();
        let daemon = t.daemon().await;
        let dir = t.env.data.path().to_owned();
        cli::wait_for_api(&dir).await;
        let ready = ready(&dir).await;
        let detail = check(&ready, "ox")["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(cause), "{server}: {detail}");
        daemon.stop().await;
    }
}

fn binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ox-connector"));
    command
        .env_remove("OX_CONNECTOR_DATA_DIR")
        .env_remove("NATS_URL")
        .env_remove("NO_COLOR")
        .env("RUST_BACKTRACE", "1");
    command
}

/// Issue #17 items 5 and 6: a bad setting is refused before anything starts (no nats-server,
/// nothing in the data directory), said once, as JSON in JSON mode, without colour codes or a
/// backtrace.
#[test]
fn a_bad_setting_is_refused_once_before_anything_starts() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    for format in ["json", "human"] {
        let output = binary()
            .args(["--log-format", format, "run", "--data-dir"])
            .arg(&dir)
            .env("OX_SOAP_SERVER", "ht tp://ox example")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "said once:\n{stderr}");
        assert!(stderr.contains("OX_SOAP_SERVER"), "{stderr}");
        assert!(
            !stderr.contains("Error:") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        assert!(
            !stderr.contains('\u{1b}'),
            "no colour codes in a pipe: {stderr:?}"
        );
        if format == "json" {
            let line: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
            assert!(line["cause_chain"].is_array(), "{line}");
        }
        assert!(!dir.exists(), "nothing started");
    }
}

/// Issue #17 item 6: `queue status | head` (a reader that goes away) does not panic.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("listener")).unwrap();
    let mut child = binary()
        .args(["queue", "status", "--data-dir"])
        .arg(data.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "{stderr}");
}

/// Issue #17 item 6: a second change failing at the same time is listed as FAILING, not as
/// `queued`; and a skip by a shell without `USER` names the user instead of `unknown`.
#[tokio::test]
async fn every_failing_change_is_listed_as_failing_and_skips_name_the_user() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(context("ctx-20", 20, None));
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    refuse_user_creation(&t);
    let anna = t.write(user("u-anna", "anna", 10, json!({})));
    let bob = t.write(user("u-bob", "bob", 20, json!({})));
    wait_for("both to fail", WAIT, || {
        let status = crate::support::status_file(&dir);
        status["blocked"]["file"] == anna.as_str() && status["also_blocked"] == 1
    })
    .await;
    let list = cli::run(&dir, &["queue", "list", "--json"]).await.json();
    let states: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["file"].as_str().unwrap().to_owned(),
                i["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        states.contains(&(anna.clone(), "blocked".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&(bob.clone(), "failing".into())),
        "{states:?}"
    );

    let mut skip = binary();
    skip.args(["queue", "skip", &bob, "--data-dir"])
        .arg(&dir)
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("SUDO_USER");
    let skip = tokio::process::Command::from(skip).output().await.unwrap();
    assert!(
        skip.status.success(),
        "{}",
        String::from_utf8_lossy(&skip.stderr)
    );
    let note = std::fs::read_to_string(
        t.env
            .listener_dir()
            .join(format!("skipped/{bob}.skipped.txt")),
    )
    .unwrap();
    assert!(!note.contains("skipped by: unknown"), "{note}");
    t.ox.set_faults(FaultSettings::default());
    daemon.stop().await;
}

/// Issue #16 item 9: the emulator refuses a non-loopback address unless explicitly allowed.
#[test]
fn the_emulator_refuses_a_remote_address_without_allow_remote() {
    let output = binary()
        .args([
            "ox-emulator",
            "--listen",
            "0.0.0.0:0",
            "--master-admin",
            "a",
            "--master-password",
            "b",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

/// Issue #16 item 9: a subscription name with a path in it is a bad request (400), not 500.
#[tokio::test]
async fn removing_a_subscription_with_a_path_as_name_is_a_bad_request() {
    let t = OxEnv::start().await;
    let daemon = t.daemon().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let (url, token) = cli::endpoint(&dir);
    let response = reqwest::Client::new()
        .delete(format!("{url}/subscriptions/..%2F..%2Fetc"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    daemon.stop().await;
}

/// Issue #17 item 8: every file the documentation points to is in the repository (Markdown
/// links and `name.md` mentions in README.md, docs/ and appcenter/README.md).
#[test]
fn the_documentation_points_only_to_files_in_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md"), root.join("appcenter/README.md")];
    for entry in walkdir::WalkDir::new(root.join("docs")) {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "md") {
            pages.push(entry.path().to_owned());
        }
    }
    let link = regex::Regex::new(r"\]\(([^)#\s]+)(#[^)]*)?\)").unwrap();
    let mention = regex::Regex::new(r"`([A-Za-z0-9_./-]+\.md)`").unwrap();
    let mut missing = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let dir = page.parent().unwrap();
        let targets = link
            .captures_iter(&text)
            .chain(mention.captures_iter(&text))
            .map(|c| c[1].to_owned());
        for target in targets {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !dir.join(&target).exists() && !root.join(&target).exists() {
                missing.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

/// Issue #17 item 7: a user without a display name in UCS gets UDM's default in OX, and
/// reconcile expects that default instead of reporting drift it cannot repair.
#[tokio::test]
async fn reconcile_reports_no_drift_for_users_without_a_ucs_display_name() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    let mut anna = user(
        "u-anna",
        "anna",
        10,
        json!({"firstname": "Alice", "lastname": "Archer"}),
    );
    anna["object"]
        .as_object_mut()
        .unwrap()
        .remove("displayName");
    t.write(anna);
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    assert_eq!(
        t.ox_user(10, "anna").data.display_name.as_deref(),
        Some("Alice Archer")
    );
    let report = cli::run(&dir, &["reconcile"]).await;
    assert_eq!(report.code, 0, "{}{}", report.stdout, report.stderr);
    assert!(report.stdout.contains("0 differences"), "{}", report.stdout);
    daemon.stop().await;
}

/// Issue #17 item 4: during a backlog `queue status` shows the pace of the last minute and the
/// time left, and `/metrics` carries the same numbers.
#[tokio::test]
async fn a_backlog_shows_its_pace_and_the_time_left() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    for n in 0..3 {
        t.write(user(&format!("u-{n}"), &format!("user{n}"), 10, json!({})));
    }
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    refuse_user_creation(&t);
    let blocked = t.write(user("u-x", "userx", 10, json!({})));
    t.write(user("u-y", "usery", 10, json!({})));
    wait_for("the queue to block", WAIT, || {
        t.blocked()["file"] == blocked.as_str()
    })
    .await;
    let status = cli::run(&dir, &["queue", "status"]).await;
    assert!(
        status
            .stdout
            .contains("Progress: 4 applied in the last minute (4/min); 2 wait, about 30 s left."),
        "{}",
        status.stdout
    );
    let metrics = cli::metrics(&dir).await;
    let rate = cli::metric(
        &metrics,
        "ox_connector_queue_apply_rate_changes_per_second",
        &[],
    );
    assert!((rate - 4.0 / 60.0).abs() < 1e-6, "{rate}");
    assert_eq!(
        cli::metric(&metrics, "ox_connector_queue_eta_seconds", &[]),
        30.0
    );
    t.ox.set_faults(FaultSettings::default());
    daemon.stop().await;
}

/// Issue #17 item 5 (monitoring): the dashboard and the alert rules under docs/monitoring/ use
/// only metrics a running daemon exports; build info, process metrics and the counters that
/// start at 0 are there from the start.
#[tokio::test]
async fn the_shipped_dashboard_and_alerts_use_only_exported_metrics() {
    let mut t = OxEnv::start().await;
    let daemon = t.daemon().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    let fresh = cli::metrics(&dir).await;
    for name in [
        "ox_connector_build_info{version=",
        "ox_connector_files_seen_total 0",
        "ox_connector_files_quarantined_total 0",
        "ox_connector_admin_actions_total{action=\"skip\"} 0",
        "process_resident_memory_bytes",
        "ox_connector_subscriber_queue_messages{subscription=\"ox-connector\"}",
        "ox_connector_operation_objects_done{operation=\"state_import\"} 0",
    ] {
        assert!(fresh.contains(name), "{name} missing:\n{fresh}");
    }
    // Events that make the labelled counters and histograms appear.
    t.ox.set_faults(FaultSettings {
        rules: vec![FaultRule {
            service: Some("OXContextService".into()),
            count: Some(1),
            ..Default::default()
        }],
        ..Default::default()
    });
    t.write(context("ctx-10", 10, None));
    t.write(user("u-a", "a", 10, json!({})));
    t.settle().await;
    let exported = cli::metrics(&dir).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/monitoring");
    let name = regex::Regex::new(r"\b(ox_connector_[a-z_]+|process_[a-z_]+)").unwrap();
    let mut unknown = Vec::new();
    for file in ["alerts.yml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let used: std::collections::BTreeSet<&str> =
            name.find_iter(&text).map(|m| m.as_str()).collect();
        assert!(used.len() >= 5, "{file} names hardly any metric");
        for metric in used {
            if !exported
                .lines()
                .any(|l| !l.starts_with('#') && l.starts_with(metric))
            {
                unknown.push(format!("{file}: {metric}"));
            }
        }
    }
    assert!(unknown.is_empty(), "{unknown:#?}\n{exported}");
    daemon.stop().await;
}

/// Issue #17 item 6: `--data-dir` is taken after a subscriptions action too, and a port clash
/// of the admin API names the setting to change.
#[test]
fn the_data_dir_goes_anywhere_and_an_admin_port_clash_names_its_setting() {
    let data = tempfile::tempdir().unwrap();
    let output = binary()
        .args(["subscriptions", "list", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");
    // The exit code of every admin command for "not running" (a check script tells it apart).
    assert_eq!(output.status.code(), Some(2), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let output = binary()
        .args(["run", "--data-dir"])
        .arg(data.path())
        .args(["--admin-listen", &taken.local_addr().unwrap().to_string()])
        .env("OX_SOAP_SERVER", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--admin-listen"), "{stderr}");
}

/// Issue #17 item 7: `reconcile --apply` re-creates a context OX lost at once, so the waiting
/// change of that context that blocks the queue goes through (it is not queued behind it).
#[tokio::test]
async fn a_lost_context_is_repaired_before_the_changes_that_wait_for_it() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;
    t.ox_client()
        .delete_context(&ox_connector::ox::soap::Context::with_id(10))
        .await
        .unwrap();
    let change = t.write(user("u-anna", "anna", 10, json!({"lastname": "Changed"})));
    wait_for("the change to block on the lost context", WAIT, || {
        t.blocked()["file"] == change.as_str()
    })
    .await;
    let repair = cli::run(&dir, &["reconcile", "--apply"]).await;
    assert!(
        repair.stdout.contains("missing in OX"),
        "{}{}",
        repair.stdout,
        repair.stderr
    );
    wait_for("the waiting change applied", WAIT, || {
        t.env.queued_files().is_empty()
    })
    .await;
    assert!(t.state().context(10).is_some());
    daemon.stop().await;
}

/// The lines of `stderr` that are progress lines of `operation`, and whether every line is one.
fn progress_lines<'a>(stderr: &'a str, operation: &str) -> Vec<&'a str> {
    let line = regex::Regex::new(&format!(r"^{operation}: [a-z0-9 ]+: \d+/\d+$")).unwrap();
    for l in stderr.lines() {
        assert!(line.is_match(l), "not a progress line: {l:?}\n{stderr}");
    }
    stderr.lines().collect()
}

/// Whether `wanted` appear in `lines` in this order (other lines may come between).
fn in_order(lines: &[&str], wanted: &[&str]) -> bool {
    let mut rest = lines.iter();
    wanted.iter().all(|w| rest.any(|l| l == w))
}

/// Issue #17 item 4: `reconcile` and `state import` stream their progress from the daemon; not
/// on a terminal the command prints a plain line per phase on stderr, the report alone on
/// stdout; a client that does not ask for the stream gets the plain JSON report as before.
#[tokio::test]
async fn reconcile_and_state_import_show_their_progress_on_stderr() {
    let mut t = OxEnv::start().await;
    t.write(context("ctx-10", 10, None));
    t.write(user("u-anna", "anna", 10, json!({})));
    t.write(user("u-bob", "bob", 10, json!({})));
    t.write(group("g-staff", "staff", &["anna", "bob"], json!({})));
    let daemon = t.daemon().await;
    t.settle().await;
    let dir = t.env.data.path().to_owned();
    cli::wait_for_api(&dir).await;

    let reconcile = cli::run(&dir, &["reconcile"]).await;
    assert_eq!(
        reconcile.code, 0,
        "{}{}",
        reconcile.stdout, reconcile.stderr
    );
    assert!(
        reconcile.stdout.starts_with(
            "Reconcile (dry run): contexts 10; 4 remembered objects compared; 0 differences."
        ),
        "{}",
        reconcile.stdout
    );
    let lines = progress_lines(&reconcile.stderr, "reconcile");
    // OX lists the context admin too: three users.
    let phases = [
        "reconcile: contexts: 0/1",
        "reconcile: users in context 10: 0/3",
        "reconcile: groups in context 10: 0/1",
        "reconcile: resources in context 10: 0/0",
    ];
    assert!(in_order(&lines, &phases), "{}", reconcile.stderr);
    let json = cli::run(&dir, &["reconcile", "--json"]).await;
    assert_eq!(json.json()["compared"], 4, "only the report on stdout");

    let python = tempfile::tempdir().unwrap();
    let old = python.path().join("listener/old");
    std::fs::create_dir_all(&old).unwrap();
    for (n, content) in [
        context("ctx-20", 20, None),
        user("u-carl", "carl", 20, json!({})),
    ]
    .iter()
    .enumerate()
    {
        let file = old.join(format!("{n}.json"));
        std::fs::write(file, serde_json::to_vec(content).unwrap()).unwrap();
    }
    let from = python.path().to_str().unwrap();
    let import = cli::run(&dir, &["state", "import", "--from", from]).await;
    assert_eq!(import.code, 0, "{}{}", import.stdout, import.stderr);
    assert!(
        import
            .stdout
            .starts_with("Would import (dry run) 2 objects"),
        "{}",
        import.stdout
    );
    let metrics = cli::metrics(&dir).await;
    let gauge = |name| cli::metric(&metrics, name, &["operation=\"state_import\""]);
    assert_eq!(
        gauge("ox_connector_operation_objects_in_phase"),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        gauge("ox_connector_operation_objects_done"),
        2.0,
        "{metrics}"
    );
    let lines = progress_lines(&import.stderr, "state import");
    assert!(
        in_order(&lines, &["state import: old files: 0/2"]),
        "{}",
        import.stderr
    );
    let missing = cli::run(&dir, &["state", "import", "--from", "/nonexistent"]).await;
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("HTTP 404") && missing.stderr.contains("/nonexistent"),
        "{}",
        missing.stderr
    );

    // A client without `Accept: application/x-ndjson` gets the plain report.
    let (url, token) = cli::endpoint(&dir);
    let plain: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/reconcile"))
        .bearer_auth(&token)
        .json(&json!({"apply": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plain["compared"], 4, "{plain}");
    daemon.stop().await;
}
