//! The App Center host loop (simulated converter + the shipped `listener_trigger`) against the
//! daemon: a stream of changes in converter batches, and an OX outage. The test applier stands
//! in for OX: what it applied successfully is what "is in OX".

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::converter::{assert_same_state, group, user, HostConverter, Ldap, TriggerRun};
use crate::support::wait_for;
use crate::support::{RecordingApplier, TestEnv};
use crate::trigger::{lock_is_held, start_daemon, wait_for_more_failures};

const T: Duration = Duration::from_secs(60);

/// The converter of a test host, running the repository's `listener_trigger` with the
/// container's environment (the image sets the data directory; the test binary stands in for
/// /usr/local/bin/ox-connector).
fn host_converter(
    env: &TestEnv,
    ldap: &Ldap,
    work_dir: &Path,
    trigger_wait: &str,
) -> HostConverter {
    let trigger = Path::new(env!("CARGO_MANIFEST_DIR")).join("listener_trigger/listener_trigger");
    let container_env = vec![
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        (
            "OX_CONNECTOR_BIN".to_owned(),
            env!("CARGO_BIN_EXE_ox-connector").to_owned(),
        ),
        (
            "OX_CONNECTOR_DATA_DIR".to_owned(),
            env.data.path().display().to_string(),
        ),
        (
            "OX_CONNECTOR_TRIGGER_WAIT".to_owned(),
            trigger_wait.to_owned(),
        ),
    ];
    let mut converter =
        HostConverter::new(ldap, &env.listener_dir(), &trigger, work_dir, container_env);
    converter.interval = Duration::from_millis(100);
    converter
}

/// The host's promise, checked at every trigger exit: after an exit 0 it deletes the files of
/// its snapshot, so each of them must already be in OX; after any other exit it deletes nothing.
fn check_run(run: &TriggerRun, applier: &RecordingApplier) {
    if run.exit_code == Some(0) {
        let applied: HashSet<String> = applier.applied().into_iter().collect();
        for name in &run.snapshot {
            assert!(
                applied.contains(name),
                "the trigger exited 0 while {name} was not applied: {run:?}"
            );
        }
    } else {
        assert!(run.deleted.is_empty(), "{run:?}");
    }
}

/// Runs the loop until every change is converted and applied, checking every trigger run.
async fn drain(converter: &mut HostConverter, applier: &RecordingApplier, done: impl Fn() -> bool) {
    let deadline = Instant::now() + T;
    loop {
        if let Some(run) = converter.cycle().await {
            check_run(&run, applier);
        }
        if done() && converter.raw_pending() == 0 && converter.queued().is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the loop did not drain: {:?}",
            converter.queued()
        );
    }
}

#[tokio::test]
async fn changes_written_in_converter_batches_while_the_trigger_loop_runs_end_in_the_right_state() {
    let env = TestEnv::start().await;
    let applier = RecordingApplier::new(env.listener_dir());
    // Applying takes time, the trigger's wait is short and one change fails a few times, so
    // that runs end before the daemon is through their snapshot: those must not exit 0.
    applier.set_delay(Duration::from_millis(25));
    let daemon = start_daemon(&env, &applier).await;
    let host = tempfile::tempdir().unwrap();
    let ldap = Ldap::new(&host.path().join("raw"));
    let mut converter = host_converter(&env, &ldap, host.path(), "500ms");

    // LDAP changes keep coming while the loop converts and triggers.
    let writer = tokio::spawn({
        let (ldap, applier) = (ldap.clone(), applier.clone());
        async move {
            for step in 0..60u32 {
                let n = step % 12;
                let uuid = format!("user-{n}");
                let name = format!("user{n}");
                if n == 11 {
                    // Created and deleted at once: usually one batch, where only the delete
                    // survives; or two, where the create finds the object gone and is dropped.
                    let temp = format!("temp-{step}");
                    ldap.modify(&temp, user(&format!("temp{step}"), json!({})));
                    ldap.delete(&temp);
                } else if step >= 48 && n % 4 == 0 {
                    ldap.delete(&uuid);
                } else {
                    ldap.modify(
                        &uuid,
                        user(&name, json!({"description": format!("step {step}")})),
                    );
                    if step == 20 {
                        // OX refuses the next three attempts (about a second, longer than the
                        // trigger waits): the queue waits, and a run must end non-zero.
                        applier.fail_next(3);
                    }
                }
                if step % 7 == 0 {
                    let members: Vec<String> = (0..=n).map(|m| format!("user{m}")).collect();
                    let members: Vec<&str> = members.iter().map(String::as_str).collect();
                    ldap.modify("group-1", group("staff", &members));
                }
                if step == 30 {
                    ldap.modify("user-moved", user("mover", json!({})));
                }
                if step == 31 {
                    let mut moved = user("mover", json!({"description": "moved"}));
                    moved.dn = "uid=mover,ou=elsewhere,dc=example,dc=org".to_owned();
                    ldap.modify("user-moved", moved);
                }
                // Pacing of the directory changes, not a wait for an effect.
                tokio::time::sleep(Duration::from_millis(8)).await;
            }
        }
    });
    drain(&mut converter, &applier, || writer.is_finished()).await;
    writer.await.unwrap();
    assert!(
        converter.deduplicated > 0,
        "no batch held two changes of one object"
    );
    assert!(
        converter.runs().iter().any(|r| r.exit_code != Some(0)),
        "no trigger run had to leave files to the next run"
    );

    // A last change, held by OX until the trigger waits for it: this run must end in 0, and
    // only once the change is applied.
    let last = ldap.modify("user-1", user("user1", json!({"description": "last"})));
    applier.fail(&last, u32::MAX);
    converter.convert();
    wait_for_more_failures(&applier, &last, 1).await;
    converter.set_env("OX_CONNECTOR_TRIGGER_WAIT", "20s");
    let data_dir = env.data.path().to_owned();
    let heal = async {
        wait_for("the trigger to take its lock", T, || {
            lock_is_held(&data_dir)
        })
        .await;
        applier.heal(&last);
    };
    let (run, ()) = tokio::join!(converter.run_trigger(), heal);
    let run = run.expect("the held change is queued");
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert!(run.snapshot.contains(&last), "{run:?}");
    check_run(&run, &applier);

    assert!(converter.queued().is_empty());
    assert_same_state(&ldap.expected(), &converter.replay(&applier.applied()));
    daemon.stop().await;
}

#[tokio::test]
async fn an_ox_outage_makes_the_trigger_exit_non_zero_and_the_files_stay_until_ox_is_back() {
    let env = TestEnv::start().await;
    let applier = RecordingApplier::new(env.listener_dir());
    let daemon = start_daemon(&env, &applier).await;
    let host = tempfile::tempdir().unwrap();
    let ldap = Ldap::new(&host.path().join("raw"));
    let mut converter = host_converter(&env, &ldap, host.path(), "1s");

    // OX is down: the first change fails, and the queue waits behind it.
    let first = ldap.modify("user-1", user("user1", json!({})));
    applier.fail(&first, u32::MAX);
    let second = ldap.modify("user-2", user("user2", json!({})));
    let third = ldap.modify("group-1", group("staff", &["user1", "user2"]));
    let queued = vec![first.clone(), second, third];

    for _ in 0..3 {
        let run = converter
            .cycle()
            .await
            .expect("the trigger runs while files are queued");
        check_run(&run, &applier);
        assert!(matches!(run.exit_code, Some(3 | 4)), "{run:?}");
        assert_eq!(
            converter.queued(),
            queued,
            "a file left the queue during the outage"
        );
    }
    let last = converter.runs().last().unwrap();
    assert_eq!(last.exit_code, Some(4), "{last:?}");
    // One summary line for the INFO log, one warning saying what blocks.
    assert_eq!(last.stdout.len(), 1, "{last:?}");
    assert!(
        last.stdout[0].contains("applied 0, pending 3 of 3"),
        "{last:?}"
    );
    assert_eq!(last.stderr.len(), 1, "{last:?}");
    let warnings: Vec<&str> = converter
        .log_lines()
        .iter()
        .filter(|l| l.level == "WARNING")
        .map(|l| l.message.as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("blocked at {first}"))
                && w.contains("OX is not reachable (test)")),
        "{warnings:?}"
    );
    assert!(applier.applied().is_empty());

    // OX is back.
    applier.heal(&first);
    drain(&mut converter, &applier, || true).await;
    assert_eq!(applier.applied(), queued);
    assert_same_state(&ldap.expected(), &converter.replay(&applier.applied()));
    daemon.stop().await;
}
