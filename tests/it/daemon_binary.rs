//! The real `ox-connector run` binary with its embedded nats-server.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{files, status_file, wait_for};

#[tokio::test]
async fn the_daemon_starts_its_own_nats_server_keeps_unapplied_files_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let listener = data.path().join("listener");
    files::write(&listener, &files::name(1), &files::user("u1", "user1"));

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ox-connector"))
        .args(["run", "--data-dir"])
        .arg(data.path())
        .args([
            "--retry-delay",
            "200ms",
            "--log-format",
            "json",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env_remove("NATS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Without OX provisioning in this build, the first change blocks the queue, and its file
    // must stay: nothing is deleted that did not reach OX.
    wait_for("the blocked status", Duration::from_secs(30), || {
        status_file(data.path())["blocked"]["file"] == files::name(1)
    })
    .await;
    assert!(listener.join(files::name(1)).exists());
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
    assert!(listener.join(files::name(1)).exists());

    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    for line in stderr.lines() {
        let parsed: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            parsed.get("level").is_some() && parsed.get("timestamp").is_some(),
            "{line}"
        );
    }
    assert!(stderr.contains("not implemented in this build"), "{stderr}");
}
