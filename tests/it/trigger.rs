//! `ox-connector trigger` as a real process against a daemon running in the test: its exit code
//! and messages in each situation, and two triggers at once.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use ox_connector::admin::client::AdminClient;

use crate::support::{files, wait_for, RecordingApplier, RunningDaemon, TestEnv};

const T: Duration = Duration::from_secs(20);

fn trigger_command(data_dir: &Path, wait: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ox-connector"));
    command
        .arg("trigger")
        .env_clear()
        .env("OX_CONNECTOR_DATA_DIR", data_dir)
        .env("OX_CONNECTOR_TRIGGER_WAIT", wait)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs the trigger to its end.
async fn trigger(data_dir: &Path, wait: &str) -> Output {
    trigger_command(data_dir, wait).output().await.unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the trigger's exit code, showing what it printed if it differs.
#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}{}",
        stdout(output),
        stderr(output)
    );
}

/// Starts the daemon and waits until its admin API is published (a trigger started before that
/// would find no daemon, which is another test).
pub(crate) async fn start_daemon(env: &TestEnv, applier: &RecordingApplier) -> RunningDaemon {
    let daemon = env.daemon(applier.clone()).await;
    let endpoint = env.data.path().join("run/admin.json");
    wait_for("the admin API", T, || endpoint.exists()).await;
    daemon
}

/// A daemon whose queue is blocked at the first of `count` listener files (its change fails
/// until healed).
async fn blocked_at_the_first_of(count: u32) -> (TestEnv, RecordingApplier, RunningDaemon) {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    applier.fail(&files::name(1), u32::MAX);
    files::write_users(&dir, 1..=count);
    let daemon = start_daemon(&env, &applier).await;
    wait_until_blocked_at(&env, &files::name(1)).await;
    (env, applier, daemon)
}

/// The numbers in a summary line: (applied, quarantined, pending, total).
fn counts(summary: &str) -> (usize, usize, usize, usize) {
    let number = |key: &str| -> usize {
        summary
            .split(key)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (
        number("applied "),
        number("quarantined "),
        number("pending "),
        number(" of "),
    )
}

/// Waits until the daemon reports the queue blocked at `file`.
async fn wait_until_blocked_at(env: &TestEnv, file: &str) {
    let client = AdminClient::from_data_dir(env.data.path(), Duration::from_secs(2)).unwrap();
    let deadline = Instant::now() + T;
    loop {
        let report = client.status().await.unwrap();
        if report.daemon.blocked.and_then(|b| b.file).as_deref() == Some(file) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the queue never blocked at {file}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_trigger_waits_while_blocked_and_exits_0_once_every_file_from_its_start_is_applied() {
    let (env, applier, daemon) = blocked_at_the_first_of(3).await;

    let mut child = trigger_command(env.data.path(), "20s").spawn().unwrap();
    // Still running after two more failed attempts: it does not give up while its wait lasts.
    let data = env.data.path().to_owned();
    wait_for("the trigger to take its lock", T, || lock_is_held(&data)).await;
    wait_for_more_failures(&applier, &files::name(1), 2).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the trigger ended while the queue was blocked"
    );

    applier.heal(&files::name(1));
    let output = tokio::time::timeout(T, child.wait_with_output())
        .await
        .expect("the trigger ends once the files are applied")
        .unwrap();
    assert_exit(&output, 0);
    // Exit 0 lets the host delete the files: each one must be applied by now.
    assert_eq!(
        applier.applied(),
        (1..=3).map(files::name).collect::<Vec<_>>()
    );
    assert!(env.queued_files().is_empty());
    assert_eq!(
        stdout(&output),
        "ox-connector trigger: applied 3, pending 0 of 3 listener files; done\n"
    );
    assert_eq!(stderr(&output), "");
    daemon.stop().await;
}

#[tokio::test]
async fn a_blocked_queue_makes_the_trigger_exit_4_and_say_what_blocks_until_an_admin_removes_it() {
    let (env, applier, daemon) = blocked_at_the_first_of(2).await;

    let output = trigger(env.data.path(), "300ms").await;
    assert_exit(&output, 4);
    assert_eq!(
        stdout(&output),
        format!(
            "ox-connector trigger: applied 0, pending 2 of 2 listener files; blocked (see the \
             warnings) (oldest pending: {})\n",
            files::name(1)
        )
    );
    let problems = stderr(&output);
    assert_eq!(problems.lines().count(), 1, "{problems}");
    for needle in [
        format!("blocked at {}", files::name(1)),
        "users/user uid=user1,cn=users,dc=example,dc=org".to_owned(),
        "entry UUID u1".to_owned(),
        "OX is not reachable (test)".to_owned(),
        format!("ox-connector queue skip {}", files::name(1)),
    ] {
        assert!(
            problems.contains(&needle),
            "{needle:?} missing in {problems}"
        );
    }
    assert_eq!(env.queued_files(), [files::name(1), files::name(2)]);

    // The admin removes the file that cannot be applied: the rest goes through.
    std::fs::remove_file(env.listener_dir().join(files::name(1))).unwrap();
    let output = trigger(env.data.path(), "20s").await;
    assert_exit(&output, 0);
    assert_eq!(applier.applied(), [files::name(2)]);
    daemon.stop().await;
}

#[tokio::test]
async fn while_the_daemon_is_still_working_the_trigger_exits_3_without_warnings() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    applier.set_delay(Duration::from_secs(1));
    files::write_users(&dir, 1..=3);
    let daemon = start_daemon(&env, &applier).await;

    let output = trigger(env.data.path(), "200ms").await;
    assert_exit(&output, 3);
    assert!(
        stdout(&output)
            .contains("pending 3 of 3 listener files; the daemon is still working on them"),
        "{}",
        stdout(&output)
    );
    assert_eq!(stderr(&output), "");
    daemon.stop().await;
}

#[tokio::test]
async fn without_a_running_daemon_the_trigger_exits_5_and_touches_nothing() {
    // Never started: no endpoint file.
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("listener");
    files::write_users(&dir, 1..=2);
    let before: Vec<Vec<u8>> = (1..=2)
        .map(|n| std::fs::read(dir.join(files::name(n))).unwrap())
        .collect();
    let output = trigger(data.path(), "1s").await;
    assert_exit(&output, 5);
    assert_eq!(
        stdout(&output),
        "ox-connector trigger: applied 0, pending 2 of 2 listener files; the daemon is not running\n"
    );
    assert!(
        stderr(&output).contains("the ox-connector daemon is not running"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("Nothing was applied or deleted"));
    let after: Vec<Vec<u8>> = (1..=2)
        .map(|n| std::fs::read(dir.join(files::name(n))).unwrap())
        .collect();
    assert_eq!(before, after);

    // Crashed: the endpoint file is left behind, but nothing answers there.
    let (env, _applier, daemon) = blocked_at_the_first_of(2).await;
    daemon.daemon.crash().await;
    assert!(env.data.path().join("run/admin.json").exists());
    let output = trigger(env.data.path(), "1s").await;
    assert_exit(&output, 5);
    assert_eq!(env.queued_files(), [files::name(1), files::name(2)]);
}

#[tokio::test]
async fn a_wrong_data_directory_makes_the_trigger_exit_6() {
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("missing");
    let output = trigger(&missing, "1s").await;
    assert_exit(&output, 6);
    assert!(
        stderr(&output).contains("does not exist"),
        "{}",
        stderr(&output)
    );

    // A data directory without a listener folder: the daemon never ran there.
    let output = trigger(data.path(), "1s").await;
    assert_exit(&output, 6);
    assert!(
        stderr(&output).contains("no listener folder"),
        "{}",
        stderr(&output)
    );

    // An endpoint file that is not the daemon's.
    files::write_users(&data.path().join("listener"), [1]);
    std::fs::create_dir_all(data.path().join("run")).unwrap();
    std::fs::write(data.path().join("run/admin.json"), "not json").unwrap();
    std::fs::create_dir_all(data.path().join("secrets")).unwrap();
    std::fs::write(data.path().join("secrets/admin-token"), "t").unwrap();
    let output = trigger(data.path(), "1s").await;
    assert_exit(&output, 6);
    assert!(data.path().join("listener").join(files::name(1)).exists());
}

#[tokio::test]
async fn two_triggers_never_run_at_once() {
    let (env, applier, daemon) = blocked_at_the_first_of(2).await;

    let data = env.data.path().to_owned();
    let first = trigger_command(&data, "20s").spawn().unwrap();
    let first_pid = first.id().unwrap();
    wait_for("the first trigger to take the lock", T, || {
        lock_is_held(&data)
    })
    .await;

    // A second one with a short wait gives up and says who holds the lock.
    let second = trigger(&data, "200ms").await;
    assert_eq!(
        second.status.code(),
        Some(7),
        "{}{}",
        stdout(&second),
        stderr(&second)
    );
    assert!(
        stderr(&second).contains(&format!("another ox-connector trigger (pid {first_pid})")),
        "{}",
        stderr(&second)
    );
    // A third one with a long wait waits for the first to finish.
    let third = trigger_command(&data, "20s").spawn().unwrap();
    // Time for it to start and queue up for the lock, while the files are still pending.
    wait_for_more_failures(&applier, &files::name(1), 2).await;
    assert!(lock_is_held(&data));

    applier.heal(&files::name(1));
    let first = tokio::time::timeout(T, first.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    assert!(
        stdout(&first).contains("applied 2, pending 0 of 2"),
        "{}",
        stdout(&first)
    );
    let third = tokio::time::timeout(T, third.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        third.status.code(),
        Some(0),
        "{}{}",
        stdout(&third),
        stderr(&third)
    );
    // Its snapshot came after the first one's end: the files were gone by then.
    assert_eq!(
        stdout(&third),
        "ox-connector trigger: applied 0, pending 0 of 0 listener files; done\n"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_json_file_that_is_not_a_listener_file_keeps_the_trigger_from_exiting_0() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    files::write_users(&dir, 1..=2);
    std::fs::write(dir.join("notes.json"), "{}").unwrap();
    let daemon = start_daemon(&env, &applier).await;

    let started = Instant::now();
    let output = trigger(env.data.path(), "20s").await;
    assert_exit(&output, 4);
    // It does not wait for a file the daemon will never take.
    assert!(started.elapsed() < Duration::from_secs(10));
    // The daemon may have applied a file before the trigger looked: it is then not counted.
    let (applied, _, pending, total) = counts(&stdout(&output));
    assert_eq!((applied, pending), (total - 1, 1), "{}", stdout(&output));
    assert!(stdout(&output).ends_with("; blocked (see the warnings)\n"));
    assert!(
        stderr(&output).contains("notes.json is not a listener file"),
        "{}",
        stderr(&output)
    );
    assert!(dir.join("notes.json").exists());
    assert_eq!(applier.applied(), [files::name(1), files::name(2)]);
    daemon.stop().await;
}

#[tokio::test]
async fn a_quarantined_file_counts_as_done_and_is_reported() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    files::write_raw(&dir, &files::name(1), b"{ not json");
    files::write_users(&dir, [2]);
    let daemon = start_daemon(&env, &applier).await;

    let output = trigger(env.data.path(), "20s").await;
    assert_exit(&output, 0);
    let (applied, quarantined, pending, total) = counts(&stdout(&output));
    assert_eq!((quarantined, pending), (1, 0), "{}", stdout(&output));
    assert_eq!(applied + quarantined, total);
    assert!(stdout(&output).ends_with("; done\n"));
    let moved = dir.join("broken").join(files::name(1));
    assert!(
        stderr(&output).contains(&format!("was moved to {}", moved.display())),
        "{}",
        stderr(&output)
    );
    assert!(moved.exists());
    assert_eq!(applier.applied(), [files::name(2)]);
    daemon.stop().await;
}

/// Waits until the daemon has failed at `file` `more` more times.
pub(crate) async fn wait_for_more_failures(applier: &RecordingApplier, file: &str, more: usize) {
    let target = applier.attempts_at(file) + more;
    wait_for("more failed attempts", T, || {
        applier.attempts_at(file) >= target
    })
    .await;
}

/// Whether some process holds the trigger lock of `data_dir`.
pub(crate) fn lock_is_held(data_dir: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(file) = std::fs::File::open(data_dir.join(ox_connector::commands::trigger::LOCK_FILE))
    else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(_released_on_drop) => false,
        Err(_) => true,
    }
}
