//! The pipeline against a real nats-server: listener files → JetStream → ordered apply →
//! file deleted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::{files, status_file, wait_for, RecordingApplier, TestEnv};

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn files_are_applied_in_name_order_and_deleted_only_after_their_apply() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    // Written out of order before the daemon starts, and more while it runs.
    files::write_users(&dir, [3, 1, 2]);
    let applier = RecordingApplier::new(dir.clone());
    let daemon = env.daemon(applier.clone()).await;
    files::write_users(&dir, [4, 6, 5]);
    wait_for("six applied files", T, || applier.applied().len() == 6).await;
    wait_for("an empty listener folder", T, || {
        env.queued_files().is_empty()
    })
    .await;

    let applied = applier.applied();
    let sorted: Vec<String> = (1..=6).map(files::name).collect();
    assert_eq!(
        applied[..3],
        sorted[..3],
        "files present at start go in name order"
    );
    let mut rest = applied[3..].to_vec();
    rest.sort();
    assert_eq!(rest, sorted[3..]);
    assert!(
        applier.calls().iter().all(|c| c.file_existed),
        "a file was deleted before its change was applied: {:?}",
        applier.calls()
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_failing_apply_keeps_the_file_blocks_the_queue_and_retries_in_order() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    applier.fail(&files::name(2), u32::MAX);
    files::write_users(&dir, 1..=3);
    let daemon = env.daemon(applier.clone()).await;

    wait_for("three attempts at the failing file", T, || {
        applier.attempts_at(&files::name(2)) >= 3
    })
    .await;
    assert_eq!(applier.applied(), [files::name(1)]);
    assert_eq!(env.queued_files(), [files::name(2), files::name(3)]);
    let blocked = &status_file(env.data.path())["blocked"];
    assert_eq!(blocked["file"], files::name(2));
    assert_eq!(blocked["entry_uuid"], "u2");
    assert_eq!(blocked["error"], "OX is not reachable (test)");
    assert!(blocked["attempts"].as_u64().unwrap() >= 2, "{blocked}");

    applier.heal(&files::name(2));
    wait_for("all applied", T, || applier.applied().len() == 3).await;
    assert_eq!(
        applier.applied(),
        [files::name(1), files::name(2), files::name(3)]
    );
    wait_for("an empty listener folder", T, || {
        env.queued_files().is_empty()
    })
    .await;
    wait_for("the blocked status to clear", T, || {
        status_file(env.data.path())["blocked"].is_null()
    })
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_file_removed_by_an_admin_is_skipped_without_applying_it() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    applier.fail(&files::name(1), u32::MAX);
    files::write_users(&dir, 1..=3);
    let daemon = env.daemon(applier.clone()).await;
    wait_for("the queue to block on the first file", T, || {
        applier.attempts_at(&files::name(1)) >= 1
    })
    .await;

    // The admin removes the poison file and one queued behind it.
    std::fs::remove_file(dir.join(files::name(2))).unwrap();
    std::fs::remove_file(dir.join(files::name(1))).unwrap();

    wait_for("the last file applied", T, || {
        applier.applied() == [files::name(3)]
    })
    .await;
    assert_eq!(
        applier.attempts_at(&files::name(2)),
        0,
        "a removed file was applied"
    );
    assert!(env.queued_files().is_empty());
    daemon.stop().await;
}

#[tokio::test]
async fn broken_json_is_quarantined_after_the_grace_period_and_later_files_continue() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    files::write_raw(&dir, &files::name(1), b"{\"dn\": \"uid=x\", \"id\": ");
    files::write(&dir, &files::name(2), &files::user("u2", "user2"));
    let applier = RecordingApplier::new(dir.clone());
    let daemon = env.daemon(applier.clone()).await;

    wait_for("the file after the broken one", T, || {
        applier.applied() == [files::name(2)]
    })
    .await;
    let broken = dir.join("broken");
    wait_for("the quarantine", T, || broken.join(files::name(1)).exists()).await;
    assert!(!dir.join(files::name(1)).exists());
    assert_eq!(
        std::fs::read(broken.join(files::name(1))).unwrap(),
        b"{\"dn\": \"uid=x\", \"id\": ",
        "the quarantined file is kept as it was"
    );
    let why =
        std::fs::read_to_string(broken.join(format!("{}.error.txt", files::name(1)))).unwrap();
    assert!(
        why.contains(&files::name(1)) && why.contains("invalid JSON"),
        "{why}"
    );
    assert!(applier.calls().iter().all(|c| c.file != files::name(1)));

    // Files after the quarantine still go through.
    files::write(&dir, &files::name(3), &files::user("u3", "user3"));
    wait_for("a later file", T, || applier.applied().len() == 2).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_converting_tmp_file_is_ignored_until_it_is_renamed() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    let daemon = env.daemon(applier.clone()).await;

    let tmp = dir.join(format!("{}.converting.tmp", files::name(1)));
    std::fs::write(&tmp, files::converter_json(&files::user("u1", "user1"))).unwrap();
    files::write(&dir, &files::name(2), &files::user("u2", "user2"));
    wait_for("the renamed file", T, || {
        applier.applied() == [files::name(2)]
    })
    .await;
    assert!(tmp.exists(), "the temporary file was touched");
    assert!(
        !dir.join("broken").exists(),
        "the temporary file was quarantined"
    );

    std::fs::rename(&tmp, dir.join(files::name(1))).unwrap();
    wait_for("the file once renamed", T, || applier.applied().len() == 2).await;
    assert_eq!(applier.applied()[1], files::name(1));
    daemon.stop().await;
}

#[tokio::test]
async fn a_file_written_while_the_daemon_is_down_is_applied_after_start() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    let daemon = env.daemon(applier.clone()).await;
    files::write(&dir, &files::name(1), &files::user("u1", "user1"));
    wait_for("the first file", T, || applier.applied().len() == 1).await;
    daemon.stop().await;

    files::write(&dir, &files::name(2), &files::user("u2", "user2"));
    let daemon = env.daemon(applier.clone()).await;
    wait_for("the file written while down", T, || {
        applier.applied().len() == 2
    })
    .await;
    assert_eq!(applier.applied(), [files::name(1), files::name(2)]);
    daemon.stop().await;
}

#[tokio::test]
async fn a_crash_mid_queue_loses_nothing_and_never_applies_out_of_order() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let count = 40;
    for n in 1..=count {
        // Eight objects, five changes each, interleaved.
        let id = format!("u{}", n % 8);
        files::write(
            &dir,
            &files::name(n),
            &files::user(&id, &format!("user{n}")),
        );
    }
    let applier = RecordingApplier::new(dir.clone());
    applier.set_delay(Duration::from_millis(20));
    let daemon = env.daemon(applier.clone()).await;
    wait_for("a part of the queue", T, || applier.applied().len() >= 12).await;
    daemon.daemon.crash().await;
    let after_crash = applier.calls().len();
    assert!(
        env.queued_files().len() >= (count as usize) - after_crash,
        "files were deleted without being applied"
    );

    let daemon = env.daemon(applier.clone()).await;
    wait_for("an empty listener folder", T, || {
        env.queued_files().is_empty()
    })
    .await;
    daemon.stop().await;

    let applied = applier.applied();
    let mut distinct = applied.clone();
    distinct.dedup();
    let expected: Vec<String> = (1..=count).map(files::name).collect();
    assert_eq!(distinct, expected, "every change applied, in file order");
    assert!(
        applied.len() <= distinct.len() + 1,
        "only the change in flight at the crash may be applied twice: {applied:?}"
    );
    assert!(applier.calls().iter().all(|c| c.file_existed));

    // Re-publishing the files still queued after the restart was de-duplicated by JetStream:
    // the stream stored each file once.
    let js = env.jetstream().await;
    let mut stream = js.get_stream("PROVISIONING").await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    assert_eq!(state.last_sequence, count as u64, "duplicates were stored");
    assert_eq!(
        state.messages, 0,
        "acknowledged messages leave the work queue"
    );
}

#[tokio::test]
async fn a_full_queue_shows_as_full_and_loses_nothing_once_drained() {
    let mut env = TestEnv::start().await;
    env.settings.queue_limits.max_messages = 3;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    applier.fail(&files::name(1), u32::MAX);
    files::write_users(&dir, 1..=8);
    let daemon = env.daemon(applier.clone()).await;
    wait_for("the queue-full status", T, || {
        !status_file(env.data.path())["queue_full"].is_null()
    })
    .await;
    assert_eq!(
        env.queued_files().len(),
        8,
        "files wait on disk while the queue is full"
    );

    applier.heal(&files::name(1));
    wait_for("all applied", T, || applier.applied().len() == 8).await;
    let expected: Vec<String> = (1..=8).map(files::name).collect();
    assert_eq!(applier.applied(), expected);
    wait_for("the queue-full status to clear", T, || {
        status_file(env.data.path())["queue_full"].is_null()
    })
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_restarted_nats_server_does_not_lose_or_reorder_changes() {
    let mut env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    let daemon = env.daemon(applier.clone()).await;
    files::write(&dir, &files::name(1), &files::user("u1", "user1"));
    wait_for("the first file", T, || applier.applied().len() == 1).await;

    env.nats.restart(None).await.unwrap();
    files::write_users(&dir, 2..=5);
    wait_for(
        "the files written after the restart",
        Duration::from_secs(40),
        || applier.applied().len() >= 5,
    )
    .await;
    let mut distinct = applier.applied();
    distinct.dedup();
    assert_eq!(distinct, (1..=5).map(files::name).collect::<Vec<_>>());
    daemon.stop().await;
}

/// The daemon's start-up (stream set-up, the dispatcher and its consumers, the subscription)
/// meets a nats-server restart at a different point each round; each time it comes up, and
/// every file is applied once, in order.
#[tokio::test]
async fn the_daemon_starts_whenever_during_its_start_up_the_nats_server_restarts() {
    let mut env = TestEnv::start().await;
    let dir = env.listener_dir();
    let applier = RecordingApplier::new(dir.clone());
    // Start-up takes 30-60 ms here (debug build): the restarts land all over it. A restart
    // just after start-up costs a round the JetStream request timeout (5 s, twice at most): a
    // request lost with the connection is not answered.
    let rounds = [0u64, 10, 20];
    for (round, delay) in (1..).zip(rounds) {
        files::write_users(&dir, [round]);
        let token = tokio_util::sync::CancellationToken::new();
        let starting =
            ox_connector::app::Daemon::start(env.settings.clone(), applier.clone(), token.clone());
        let restarting = async {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            env.nats.restart(None).await.unwrap();
        };
        let (daemon, ()) = tokio::join!(starting, restarting);
        let daemon = daemon.unwrap_or_else(|e| panic!("round {round}: {e}"));
        wait_for(
            &format!("the file of round {round}"),
            Duration::from_secs(40),
            || env.queued_files().is_empty(),
        )
        .await;
        token.cancel();
        daemon.wait().await.expect("the daemon stops cleanly");
    }
    let mut distinct = applier.applied();
    distinct.dedup();
    assert_eq!(
        distinct,
        (1..=3).map(files::name).collect::<Vec<_>>(),
        "{:?}",
        applier.applied()
    );
}

#[tokio::test]
async fn a_batch_is_queued_dependencies_first_whatever_the_names_say() {
    let env = TestEnv::start().await;
    let dir = env.listener_dir();
    let typed = |id: &str, module: &str, object: serde_json::Value| {
        serde_json::json!({
            "dn": format!("cn={id},dc=example,dc=org"), "id": id, "object": object,
            "options": [], "udm_object_type": module,
        })
    };
    let some = serde_json::json!({"name": "x"});
    // One converter batch, in name order: the context's file comes after its user, the group
    // before its member, a context deletion before everything else.
    let batch = [
        ("ctx-old", "oxmail/oxcontext", serde_json::Value::Null),
        ("group", "groups/group", some.clone()),
        ("user", "users/user", some.clone()),
        ("resource", "oxresources/oxresources", some.clone()),
        ("fa", "oxmail/functional_account", some.clone()),
        ("profile", "oxmail/accessprofile", some.clone()),
        ("ctx-new", "oxmail/oxcontext", some.clone()),
    ];
    for (n, (id, module, object)) in batch.iter().enumerate() {
        files::write(
            &dir,
            &files::name(n as u32 + 1),
            &typed(id, module, object.clone()),
        );
    }
    let applier = RecordingApplier::new(dir.clone());
    let daemon = env.daemon(applier.clone()).await;
    wait_for("the batch", T, || applier.applied().len() == 7).await;
    let order: Vec<usize> = applier
        .applied()
        .iter()
        .map(|f| (1..=7).position(|n| files::name(n) == *f).unwrap())
        .collect();
    let ids: Vec<&str> = order.iter().map(|i| batch[*i].0).collect();
    assert_eq!(
        ids,
        ["ctx-new", "profile", "user", "group", "fa", "resource", "ctx-old"]
    );
    daemon.stop().await;
}

fn message(n: u32) -> ox_connector::message::ProvisioningMessage {
    let raw = files::converter_json(&files::user(&format!("u{n}"), &format!("user{n}")));
    let name = files::name(n);
    let file =
        ox_connector::listener::ListenerFile::parse(std::path::Path::new(&name), name.clone(), raw)
            .unwrap();
    ox_connector::message::ProvisioningMessage::from_listener_file(&file)
}

#[tokio::test]
async fn the_publish_pipeline_keeps_file_order_through_failures_and_duplicates() {
    use ox_connector::queue::publish::{Pipeline, Publisher};
    let env = TestEnv::start().await;
    let js = env.jetstream().await;
    let limits = ox_connector::queue::QueueLimits {
        max_messages: 5,
        max_bytes: 1024 * 1024,
    };
    let stream = ox_connector::queue::setup_incoming(&js, limits, 1)
        .await
        .unwrap();
    // A consumer's interest keeps the messages (interest retention drops what nobody wants).
    ox_connector::queue::ensure_consumer(
        &stream,
        ox_connector::queue::state_keeper_consumer_config(ox_connector::queue::ConsumerTiming {
            ack_wait: T,
        }),
    )
    .await
    .unwrap();
    let mut pipeline = Pipeline::new(Publisher::new(js.clone()), 64);

    // Ten messages into a queue of five: the first five are stored, the rest come back in order.
    let mut stored = Vec::new();
    let mut failure = None;
    for n in 1..=10 {
        let confirmed = pipeline.send(message(n)).await;
        stored.extend(confirmed.stored);
        if confirmed.failure.is_some() {
            failure = confirmed.failure;
            break;
        }
    }
    if failure.is_none() {
        let confirmed = pipeline.flush().await;
        stored.extend(confirmed.stored);
        failure = confirmed.failure;
    }
    let ids = |messages: &[ox_connector::message::ProvisioningMessage]| {
        messages.iter().map(|m| m.id).collect::<Vec<_>>()
    };
    let names: Vec<u32> = (1..=5).collect();
    assert_eq!(
        stored.iter().map(|s| s.message.id).collect::<Vec<_>>(),
        ids(&names.iter().map(|n| message(*n)).collect::<Vec<_>>())
    );
    let failure = failure.expect("a full queue refuses the sixth message");
    assert!(
        matches!(
            failure.error,
            ox_connector::queue::publish::PublishError::QueueFull(_)
        ),
        "{}",
        failure.error
    );
    // Every message after the refused one was sent but none was stored after it.
    let expected_unstored: Vec<_> = (6..=10).map(message).collect();
    assert_eq!(ids(&failure.unstored)[..1], ids(&expected_unstored)[..1]);
    let mut stream = js.get_stream("PROVISIONING").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 5);

    // A publish expecting another last message is refused by the server: the chain holds.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_EXPECTED_LAST_MESSAGE_ID,
        "no-such-id",
    );
    let refused = js
        .publish_with_headers("provisioning.udm.users/user", headers, "x".into())
        .await
        .unwrap()
        .await;
    assert!(refused.is_err());

    // Room again: the first five leave the queue. Re-sending everything (duplicates first, as
    // after a restart) stores only the new ones, in file order.
    stream.purge().await.unwrap();
    let mut confirmed_all = Vec::new();
    for n in 1..=10 {
        let confirmed = pipeline.send(message(n)).await;
        assert!(
            confirmed.failure.is_none(),
            "{:?}",
            confirmed.failure.map(|f| f.error)
        );
        confirmed_all.extend(confirmed.stored);
    }
    let confirmed = pipeline.flush().await;
    assert!(confirmed.failure.is_none());
    confirmed_all.extend(confirmed.stored);
    assert_eq!(confirmed_all.len(), 10, "every message confirmed once");
    let new: Vec<_> = confirmed_all
        .iter()
        .filter(|s| !s.published.duplicate)
        .collect();
    assert_eq!(
        new.iter().map(|s| s.message.id).collect::<Vec<_>>(),
        ids(&expected_unstored),
        "only the messages not stored before are new"
    );
    assert!(
        new.windows(2)
            .all(|w| w[0].published.sequence < w[1].published.sequence),
        "stored in file order"
    );
}

/// Found by the kill -9 suite (files never queued, and a daemon that did not stop on SIGTERM):
/// when the server stopped answering with a full window in flight, the pipeline waited for the
/// PubAcks one after the other, one timeout (5 s) each — over ten minutes for 128. Now it gives
/// up on all of them within about two timeouts and hands every one back, in order.
#[tokio::test]
async fn the_publish_pipeline_gives_up_on_unanswered_pub_acks_together() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use ox_connector::queue::publish::{Pipeline, Publisher};
    let env = TestEnv::start().await;
    let js = env.jetstream().await;
    let limits = ox_connector::queue::QueueLimits {
        max_messages: 10_000,
        max_bytes: 64 * 1024 * 1024,
    };
    let stream = ox_connector::queue::setup_incoming(&js, limits, 1)
        .await
        .unwrap();
    ox_connector::queue::ensure_consumer(
        &stream,
        ox_connector::queue::state_keeper_consumer_config(ox_connector::queue::ConsumerTiming {
            ack_wait: T,
        }),
    )
    .await
    .unwrap();
    let window = 128;
    let mut pipeline = Pipeline::new(Publisher::new(js.clone()), window);

    // The server still holds the connection but answers nothing (as while it restarts).
    let pid: i32 = std::fs::read_to_string(env.nats.dir().join("nats-server.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    let started = std::time::Instant::now();
    let mut failure = None;
    for n in 1..=window as u32 {
        let confirmed = pipeline.send(message(n)).await;
        assert!(confirmed.stored.is_empty());
        if confirmed.failure.is_some() {
            failure = confirmed.failure;
            break;
        }
    }
    let failure = match failure {
        Some(failure) => failure,
        None => tokio::time::timeout(Duration::from_secs(60), pipeline.flush())
            .await
            .expect("the pipeline gives up within a minute")
            .failure
            .expect("nothing was confirmed"),
    };
    let waited = started.elapsed();
    kill(Pid::from_raw(pid), Signal::SIGCONT).unwrap();
    assert_eq!(
        failure.unstored.iter().map(|m| m.id).collect::<Vec<_>>(),
        (1..=window as u32)
            .map(|n| message(n).id)
            .collect::<Vec<_>>(),
        "every message handed back, in order"
    );
    assert!(
        waited < Duration::from_secs(20),
        "gave up after {waited:?} (one PubAck timeout is 5 s)"
    );
}

/// A work queue `WORK` on `work.>` in file storage (it survives a restart of nats-server) and its
/// consumer, with `max_in_flight` messages delivered and not yet acknowledged, for
/// `queue::Pulled`.
async fn work_queue(
    env: &TestEnv,
    max_in_flight: i64,
    ack_wait: Duration,
) -> (
    async_nats::jetstream::Context,
    async_nats::jetstream::consumer::PullConsumer,
) {
    use async_nats::jetstream::{consumer, stream};
    let js = env.jetstream().await;
    let queue = js
        .create_stream(stream::Config {
            name: "WORK".into(),
            subjects: vec!["work.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer = queue
        .create_consumer(consumer::pull::Config {
            durable_name: Some("work".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait,
            max_ack_pending: max_in_flight,
            ..Default::default()
        })
        .await
        .unwrap();
    (js, consumer)
}

/// Publishes `work.<i>` for every `i` of `numbers`, each stored before the next.
async fn publish_work(js: &async_nats::jetstream::Context, numbers: std::ops::Range<usize>) {
    for i in numbers {
        js.publish(format!("work.{i}"), "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// How [`take_in_order`] acknowledges.
#[derive(Clone, Copy, PartialEq)]
enum Ack {
    /// Waits for the server to confirm each ack (before a restart: nothing comes twice).
    Confirmed,
    /// A plain ack, as the OX subscriber sends it. After a SIGKILL and restart nats-server 2.15
    /// may leave the ack of a message delivered before it unanswered; a confirmed ack would then
    /// time out, while a plain one at worst brings the message again, which is tolerated.
    Plain,
}

/// Takes `work.<from>` up to `work.<to - 1>` from `messages` and acknowledges them; they must
/// come in order. One delivered again (its ack lost with a killed nats-server) may come twice.
async fn take_in_order(
    messages: &mut ox_connector::queue::Pulled,
    from: usize,
    to: usize,
    ack: Ack,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let mut next = from;
    while next < to {
        let message = tokio::time::timeout(T, messages.next(&stop))
            .await
            .unwrap_or_else(|_| panic!("work.{next} did not come within {T:?}"))
            .unwrap();
        let i: usize = message.subject.as_str()["work.".len()..].parse().unwrap();
        assert!(i <= next, "work.{i} came before work.{next}");
        if i == next {
            next += 1;
        }
        match ack {
            Ack::Confirmed => message.double_ack().await.unwrap(),
            Ack::Plain => message.ack().await.unwrap(),
        }
    }
}

/// Found by the kill -9 suite as a 35 s stall with nothing failing: async-nats' continuous pull
/// stream could count a request as open after its message had arrived, and then waited for its
/// own 35 s fallback. Each message is now asked for by a request of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_at_a_time_never_waits_for_a_request_already_answered() {
    let env = TestEnv::start().await;
    let (js, consumer) = work_queue(&env, 1, Duration::from_secs(1)).await;
    let count = 3000;
    let mut acks = Vec::with_capacity(count);
    for i in 0..count {
        acks.push(js.publish(format!("work.{i}"), "x".into()).await.unwrap());
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let mut messages = ox_connector::queue::Pulled::batched(&js.client(), &consumer, 1);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut longest = Duration::ZERO;
    for i in 0..count {
        let asked = std::time::Instant::now();
        let message = tokio::time::timeout(T, messages.next(&stop))
            .await
            .unwrap_or_else(|_| panic!("message {i} did not come within {T:?}"))
            .unwrap();
        longest = longest.max(asked.elapsed());
        assert_eq!(message.subject.as_str(), format!("work.{i}"), "in order");
        message.double_ack().await.unwrap();
    }
    assert!(
        longest < Duration::from_secs(3),
        "a message waited {longest:?} although it was there"
    );
}

/// A pull request the restarted nats-server no longer knows is made again as soon as the client
/// is back, not only when it times out (`PULL_EXPIRES` + 5 s after it was sent).
#[tokio::test]
async fn one_message_at_a_time_recovers_from_a_restarted_nats_server() {
    let mut env = TestEnv::start().await;
    let (js, consumer) = work_queue(&env, 1, Duration::from_secs(1)).await;
    let mut messages = ox_connector::queue::Pulled::batched(&js.client(), &consumer, 1);
    let stop = tokio_util::sync::CancellationToken::new();
    let waiting = tokio::spawn(async move {
        let message = messages.next(&stop).await.unwrap();
        let arrived = std::time::Instant::now();
        message.double_ack().await.unwrap();
        (message.subject.to_string(), arrived)
    });
    // The request is open on the server when it goes away.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.nats.kill().await;
    env.nats.restart(None).await.unwrap();
    let published = std::time::Instant::now();
    publish_work(&env.jetstream().await, 0..1).await;
    let (subject, arrived) = tokio::time::timeout(T, waiting)
        .await
        .expect("the message comes after a restart")
        .unwrap();
    assert_eq!(subject, "work.0");
    let took = arrived - published;
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// Messages a batched consumer had taken before nats-server restarted come first, then those
/// published after the restart, at once and in order.
#[tokio::test]
async fn a_batched_consumer_keeps_the_order_across_a_restarted_nats_server() {
    let mut env = TestEnv::start().await;
    // A long ack wait: a message lost on the way would come again only after the test.
    let (js, consumer) = work_queue(&env, 16, Duration::from_secs(60)).await;
    publish_work(&js, 0..12).await;
    let mut messages = ox_connector::queue::Pulled::batched(&js.client(), &consumer, 16);
    // The first request brought 0 to 11 and waits for 4 more; 6 to 11 are still unread at the
    // restart.
    take_in_order(&mut messages, 0, 6, Ack::Confirmed).await;
    env.nats.kill().await;
    env.nats.restart(None).await.unwrap();
    let published = std::time::Instant::now();
    publish_work(&env.jetstream().await, 12..40).await;
    take_in_order(&mut messages, 6, 40, Ack::Plain).await;
    let took = published.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// A reconnect to a server that did not restart: a single server drops the earlier request with
/// the lost connection, so nothing is lost or overtaken. (In a cluster the consumer's leader may
/// keep it and answer it in turn with the new one: see the next test.)
#[tokio::test]
async fn a_batched_consumer_keeps_the_order_across_a_reconnect() {
    let env = TestEnv::start().await;
    let (js, consumer) = work_queue(&env, 16, Duration::from_secs(60)).await;
    publish_work(&js, 0..4).await;
    let client = js.client();
    let mut messages = ox_connector::queue::Pulled::batched(&client, &consumer, 16);
    // The request waits for 12 more.
    take_in_order(&mut messages, 0, 4, Ack::Confirmed).await;
    client.force_reconnect().await.unwrap();
    wait_for("the client to reconnect", T, || {
        client.statistics().connects.load(Ordering::Relaxed) == 2
            && client.connection_state() == async_nats::connection::State::Connected
    })
    .await;
    let published = std::time::Instant::now();
    publish_work(&env.jetstream().await, 4..40).await;
    take_in_order(&mut messages, 4, 40, Ack::Plain).await;
    let took = published.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// A consumer that must keep the order ends at a reconnect instead of asking again (a request
/// from before could be answered in turn with a new one), and says why it ended.
#[tokio::test]
async fn a_consumer_ending_at_reconnect_ends_there_and_says_so() {
    let env = TestEnv::start().await;
    let (js, consumer) = work_queue(&env, 16, Duration::from_secs(60)).await;
    publish_work(&js, 0..4).await;
    let client = js.client();
    let mut messages =
        ox_connector::queue::Pulled::batched(&client, &consumer, 16).ending_at_reconnect();
    take_in_order(&mut messages, 0, 4, Ack::Confirmed).await;
    assert!(!messages.reconnected());
    client.force_reconnect().await.unwrap();
    wait_for("the client to reconnect", T, || {
        client.statistics().connects.load(Ordering::Relaxed) == 2
    })
    .await;
    let stop = tokio_util::sync::CancellationToken::new();
    let next = tokio::time::timeout(T, messages.next(&stop))
        .await
        .expect("ends at once");
    assert!(next.is_none(), "no message after the reconnect");
    assert!(messages.reconnected(), "ended by the reconnect, not a stop");
}

/// The next message of `consumer`, waiting up to `wait`.
async fn next_within(
    consumer: &async_nats::jetstream::consumer::PullConsumer,
    wait: Duration,
) -> Option<async_nats::jetstream::Message> {
    use futures::StreamExt;
    let mut request = consumer
        .batch()
        .max_messages(1)
        .expires(wait)
        .messages()
        .await
        .unwrap();
    request.next().await.map(|m| m.unwrap())
}

/// Found by the kill -9 suite on nats-server 2.9 (a dispatcher that stopped for good, "deleted
/// message" in the nats-server log): it could come back from a SIGKILL with a consumer whose
/// message in flight the stream no longer had, and then delivered nothing else (the daemon
/// acknowledged that message on the consumer's behalf then). The test rebuilds that state the way
/// the kill leaves it — the stream's removal on disk, the consumer's older position — by putting
/// back the consumer's state file from before the acknowledgement, and shows that the supported
/// nats-server moves on by itself.
#[tokio::test]
async fn a_consumer_whose_message_in_flight_nats_lost_moves_on_by_itself() {
    use async_nats::jetstream::{consumer, stream};
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let mut env = TestEnv::start().await;
    let js = env.jetstream().await;
    // Interest retention, as the incoming stream: a message goes once both consumers have it.
    let queue = js
        .create_stream(stream::Config {
            name: "LOST".into(),
            subjects: vec!["lost.>".into()],
            retention: stream::RetentionPolicy::Interest,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    let config = |name: &str, in_flight| consumer::pull::Config {
        durable_name: Some(name.into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(1),
        max_ack_pending: in_flight,
        ..Default::default()
    };
    let a: consumer::PullConsumer = queue.create_consumer(config("a", 1)).await.unwrap();
    let b: consumer::PullConsumer = queue.create_consumer(config("b", 2)).await.unwrap();
    for i in 1..=4 {
        js.publish(format!("lost.{i}"), "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let wait = Duration::from_secs(2);
    next_within(&a, wait)
        .await
        .unwrap()
        .double_ack()
        .await
        .unwrap();
    let second = next_within(&a, wait).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state_file = env.nats.dir().join("jetstream/$G/streams/LOST/obs/a/o.dat");
    let before_ack = std::fs::read(&state_file).unwrap();
    second.double_ack().await.unwrap();
    // b takes message 2 but not 1: 2 leaves the stream, 1 stays (2 is removed in the middle).
    let _first_of_b = next_within(&b, wait).await.unwrap();
    let second_of_b = next_within(&b, wait).await.unwrap();
    assert_eq!(second_of_b.subject.as_str(), "lost.2");
    second_of_b.double_ack().await.unwrap();
    assert!(
        queue.get_raw_message(2).await.is_err(),
        "message 2 left the stream"
    );
    // Stop (the removal is written), then give the consumer its position from before the ack.
    let pid: i32 = std::fs::read_to_string(env.nats.dir().join("nats-server.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    while kill(Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&state_file, before_ack).unwrap();
    env.nats.restart(None).await.unwrap();

    let js = env.jetstream().await;
    let queue = js.get_stream("LOST").await.unwrap();
    let mut a: consumer::PullConsumer = queue.get_consumer("a").await.unwrap();
    let info = a.info().await.unwrap();
    assert_eq!(
        (
            info.delivered.stream_sequence,
            info.ack_floor.stream_sequence
        ),
        (2, 1),
        "the consumer came back with message 2 in flight, which the stream no longer has"
    );
    let next = next_within(&a, Duration::from_secs(10))
        .await
        .expect("the consumer moves on by itself");
    assert_eq!(next.subject.as_str(), "lost.3");
}

/// How many messages wait in the OX subscriber's queue.
async fn ox_queue_messages(env: &TestEnv) -> u64 {
    let js = env.jetstream().await;
    let mut stream = js
        .get_stream(ox_connector::queue::subscriber_stream(
            ox_connector::queue::OX_SUBSCRIBER,
        ))
        .await
        .unwrap();
    stream.info().await.unwrap().state.messages
}

/// `queue pause` holds OX provisioning on the server (JetStream consumer pause) while changes
/// keep arriving; `queue status` says so; the pause outlives a restart of the daemon (which
/// creates its consumer afresh); `queue resume` applies what waited, in order.
#[tokio::test]
async fn a_paused_queue_applies_nothing_until_resumed_even_across_a_restart() {
    use crate::support::cli;
    let env = TestEnv::start().await;
    let data = env.data.path().to_owned();
    let applier = RecordingApplier::new(env.listener_dir());
    let daemon = env.daemon(applier.clone()).await;
    files::write_users(&env.listener_dir(), 1..=2);
    wait_for("the first changes applied", T, || {
        env.queued_files().is_empty()
    })
    .await;
    cli::wait_for_api(&data).await;

    let paused = cli::run(&data, &["queue", "pause"]).await;
    assert_eq!(paused.code, 0, "{}{}", paused.stdout, paused.stderr);
    assert!(paused.stdout.contains("PAUSED"), "{}", paused.stdout);
    files::write_users(&env.listener_dir(), 3..=8);
    let mut queued = 0;
    let deadline = tokio::time::Instant::now() + T;
    while queued < 6 {
        assert!(tokio::time::Instant::now() < deadline, "not queued");
        queued = ox_queue_messages(&env).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = cli::run(&data, &["queue", "status"]).await;
    assert!(
        status
            .stdout
            .contains("OX provisioning is paused until `ox-connector queue resume`"),
        "{}",
        status.stdout
    );
    assert_eq!(
        status_file(&data)["paused"]["until"],
        serde_json::Value::Null
    );

    daemon.stop().await;
    let daemon = env.daemon(applier.clone()).await;
    cli::wait_for_api(&data).await;
    let status = cli::run(&data, &["queue", "status", "--json"]).await;
    assert!(
        status.json()["status"]["daemon"]["paused"].is_object(),
        "{}",
        status.stdout
    );
    // A restarted daemon takes nothing from a paused queue (its consumer asks every few
    // seconds; give it two rounds).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ox_queue_messages(&env).await, 6, "nothing was taken");
    assert_eq!(applier.applied().len(), 2, "nothing applied while paused");

    let resumed = cli::run(&data, &["queue", "resume"]).await;
    assert_eq!(resumed.code, 0, "{}{}", resumed.stdout, resumed.stderr);
    wait_for("the waiting changes applied", T, || {
        env.queued_files().is_empty()
    })
    .await;
    let expected: Vec<String> = (1..=8).map(files::name).collect();
    assert_eq!(applier.applied(), expected, "in order");
    let status = cli::run(&data, &["queue", "status"]).await;
    assert!(!status.stdout.contains("PAUSED"), "{}", status.stdout);
    daemon.stop().await;
}

/// Issue #16 item 2: while the daemon waits for JetStream at start (here a nats-server without
/// JetStream), `/health` on its admin port answers with what it waits for instead of not at all.
#[tokio::test]
async fn health_answers_with_the_reason_while_the_daemon_waits_for_jetstream() {
    let mut env = TestEnv::start().await;
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let nats_port = free_port();
    let _plain_nats = tokio::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &nats_port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    env.settings.nats = ox_connector::config::NatsTarget::External {
        url: format!("nats://127.0.0.1:{nats_port}"),
        replicas: 1,
    };
    let admin_port = free_port();
    env.settings.admin_listen = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let starting = tokio::spawn(ox_connector::app::Daemon::start(
        env.settings.clone(),
        RecordingApplier::new(env.listener_dir()),
        token.clone(),
    ));
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + T;
    let answer = loop {
        let response = http
            .get(format!("http://127.0.0.1:{admin_port}/health"))
            .send()
            .await;
        if let Ok(response) = response {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if text.contains("JetStream") {
                break (status, text);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer from /health"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer.0, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        answer.1.starts_with("starting: JetStream is not ready"),
        "{}",
        answer.1
    );
    token.cancel();
    assert!(
        starting.await.unwrap().is_err(),
        "stopped before it was ready"
    );
}
