//! The real `ox-connector run` binary with its embedded nats-server, against the OX emulator.

use std::time::Duration;

use ox_connector::emulator::{Emulator, EmulatorSettings, ADMIN_GUIDE_PROPERTIES};
use serde_json::json;

use crate::support::ox::{context, user, MASTER, MASTER_PASSWORD};
use crate::support::{files, wait_for};

#[tokio::test]
async fn the_daemon_binary_provisions_ox_stops_on_sigterm_and_never_logs_secrets() {
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
        &user("u-1", "anna", 10, json!({})),
    );

    let (mut child, log) =
        crate::support::ox::spawn_daemon_binary(data.path(), &ox.base_url(), &[]);

    wait_for("both files applied", Duration::from_secs(30), || {
        files::listener_files(&listener).is_empty()
    })
    .await;
    assert!(ox.state().context(10).unwrap().user("anna").is_some());
    let pid_file = data.path().join("nats/nats-server.pid");
    let nats_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the daemon stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let nats = nix::unistd::Pid::from_raw(nats_pid);
    wait_for("the nats-server to exit", Duration::from_secs(10), || {
        nix::sys::signal::kill(nats, None).is_err()
    })
    .await;

    let log = log.await.unwrap();
    let mut warnings = Vec::new();
    for line in log.lines() {
        let parsed: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            parsed.get("level").is_some() && parsed.get("time").is_some(),
            "{line}"
        );
        if matches!(parsed["level"].as_str(), Some("WARN" | "ERROR")) {
            warnings.push(line);
        }
    }
    // A run without faults, stopped by SIGTERM, gives an admin nothing to look into.
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert!(log.contains("Applied change."), "{log}");
    let credentials: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("secrets/contexts.json")).unwrap())
            .unwrap();
    let admin_password = credentials["10"]["adminpass"].as_str().unwrap();
    assert_eq!(credentials["master"]["adminpass"], MASTER_PASSWORD);
    for secret in [MASTER_PASSWORD, admin_password] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    let token = std::fs::read_to_string(data.path().join("secrets/admin-token")).unwrap();
    assert!(
        !log.contains(token.trim()),
        "the admin token reached the log"
    );
    ox.stop().await;
}

/// Issue #16 item 5: async-nats writes the CONNECT (NATS password) and payloads (password
/// hashes) into its trace events; none of it may reach the log at `RUST_LOG=trace`.
#[tokio::test]
async fn a_trace_level_log_contains_no_secret() {
    let ox = Emulator::start(EmulatorSettings::new(MASTER, MASTER_PASSWORD))
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let listener = data.path().join("listener");
    const USER_PASSWORD: &str = "user-Plain-Secret-9";
    const USER_HASH: &str = "{crypt}$6$saltsalt$HashOfTheUsersPassword";
    const KRB5_KEY: &str = "S3Krb5KeyMaterialXyz";
    files::write(&listener, &files::name(1), &context("ctx-10", 10, None));
    files::write(
        &listener,
        &files::name(2),
        &user(
            "u-1",
            "anna",
            10,
            json!({"password": USER_PASSWORD, "userPassword": [USER_HASH], "krb5Key": [KRB5_KEY]}),
        ),
    );
    let (mut child, log) =
        crate::support::ox::spawn_daemon_binary_logging(data.path(), &ox.base_url(), &[], "trace");
    wait_for("both files applied", Duration::from_secs(60), || {
        files::listener_files(&listener).is_empty()
    })
    .await;
    let credentials: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("secrets/contexts.json")).unwrap())
            .unwrap();
    let nats_users: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.path().join("secrets/nats-users.json")).unwrap(),
    )
    .unwrap();
    let token = std::fs::read_to_string(data.path().join("secrets/admin-token")).unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the daemon stops after SIGTERM")
        .unwrap();
    let log = log.await.unwrap();
    assert!(
        log.contains("\"level\":\"trace\""),
        "the log is at trace level"
    );

    let mut secrets = vec![
        MASTER_PASSWORD.to_owned(),
        credentials["10"]["adminpass"].as_str().unwrap().to_owned(),
        USER_PASSWORD.to_owned(),
        "HashOfTheUsersPassword".to_owned(),
        KRB5_KEY.to_owned(),
        token.trim().to_owned(),
    ];
    let identities = nats_users
        .as_array()
        .cloned()
        .or_else(|| {
            nats_users
                .as_object()
                .map(|o| o.values().cloned().collect())
        })
        .unwrap_or_default();
    let nats_passwords: Vec<String> = identities
        .iter()
        .filter_map(|i| i["password"].as_str().map(str::to_owned))
        .collect();
    assert!(!nats_passwords.is_empty(), "{nats_users}");
    secrets.extend(nats_passwords);
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret ({}…) reached the trace log",
            &secret[..4]
        );
    }
    ox.stop().await;
}

#[tokio::test]
async fn the_demo_applies_its_batches_and_prints_the_ox_state() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ox-connector"))
        .arg("demo")
        .env_remove("NATS_URL")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // The demo logs problems only: the rename OX refuses at its default configuration.
    for line in stderr.lines() {
        assert!(
            line.contains("Cannot apply change") && line.contains("Changing username is disabled!"),
            "unexpected log line: {line}\n{stdout}"
        );
    }
    for expected in [
        "OX configuration as on UCS: OX's defaults and com.openexchange.user.enforceUniqueDisplayName=false",
        "OX refused a change; the queue waits for it",
        "error: OXUserService.change: invalid_data fault: Changing username is disabled! (",
        "ox-connector queue skip blocked",
        "USERNAME_CHANGEABLE=true in OX's configuration",
        "Batch 1/3: initial sync",
        "applied 10/10",
        "Context 10 (context10)",
        "Context 20 (context20), quota 5120 MB, admin oxadmin-context20",
        "cschulz2  Clara Schulz-Berg",
        "room-101  Meeting room 101",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("dkaya"),
        "the deleted user is gone:\n{stdout}"
    );
}
