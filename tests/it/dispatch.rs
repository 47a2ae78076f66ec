//! The provisioning dispatcher against the daemon's embedded nats-server (with its generated
//! users): per-subscriber queues, topic patterns, prefill, permissions, redaction, full queues.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt;
use ox_connector::app::Daemon;
use ox_connector::config::NatsTarget;
use ox_connector::dispatch::SubscriptionRequest;
use ox_connector::message::{Operation, ProvisioningMessage};
use ox_connector::queue::embedded::EmbeddedSettings;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::{files, wait_for, RecordingApplier, TestEnv};

const T: Duration = Duration::from_secs(20);

struct Setup {
    env: TestEnv,
    daemon: Daemon,
    token: CancellationToken,
    applier: RecordingApplier,
}

impl Setup {
    /// A daemon with its own embedded nats-server and NATS users, the test applier as OX.
    async fn start() -> Self {
        let mut env = TestEnv::start().await;
        env.settings.nats = NatsTarget::Embedded(EmbeddedSettings {
            binary: None,
            dir: env.data.path().join("nats"),
            port: 0,
            users: None,
        });
        let applier = RecordingApplier::new(env.listener_dir());
        let token = CancellationToken::new();
        let daemon = Daemon::start(env.settings.clone(), applier.clone(), token.clone())
            .await
            .unwrap();
        Self {
            env,
            daemon,
            token,
            applier,
        }
    }

    async fn stop(self) {
        self.token.cancel();
        self.daemon.wait().await.unwrap();
    }

    /// Stops the daemon and starts it again on the same data directory.
    async fn restart(self) -> Self {
        self.token.cancel();
        self.daemon.wait().await.unwrap();
        let token = CancellationToken::new();
        let daemon = Daemon::start(
            self.env.settings.clone(),
            self.applier.clone(),
            token.clone(),
        )
        .await
        .unwrap();
        Self {
            daemon,
            token,
            ..self
        }
    }

    fn password(&self, user: &str) -> String {
        let users: Value = serde_json::from_slice(
            &std::fs::read(self.env.data.path().join("secrets/nats-users.json")).unwrap(),
        )
        .unwrap();
        users[user]["password"].as_str().unwrap().to_owned()
    }

    /// A connection as `user`, collecting the server's error messages.
    async fn connect_as(&self, user: &str) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        let client =
            async_nats::ConnectOptions::with_user_and_password(user.into(), self.password(user))
                .custom_inbox_prefix(format!("_INBOX_{user}"))
                .event_callback(move |event| {
                    let sink = sink.clone();
                    async move {
                        if let async_nats::Event::ServerError(e) = event {
                            sink.lock().unwrap().push(e.to_string());
                        }
                    }
                })
                .connect(self.daemon.nats_url())
                .await
                .unwrap();
        (client, errors)
    }

    async fn subscribe(
        &self,
        name: &str,
        topics: &[&str],
        prefill: bool,
        redact: Option<Vec<String>>,
    ) {
        self.daemon
            .dispatch()
            .register(SubscriptionRequest {
                name: name.into(),
                realm: "udm".into(),
                topics: topics.iter().map(|t| (*t).to_owned()).collect(),
                prefill,
                redact,
                max_messages: None,
                max_bytes: None,
            })
            .await
            .unwrap();
    }

    /// Reads `count` messages from subscriber `name`'s queue as that subscriber, acking each.
    async fn consume(&self, name: &str, count: usize) -> Vec<ProvisioningMessage> {
        let (client, _) = self.connect_as(&format!("subscriber-{name}")).await;
        let js = jetstream::new(client);
        let stream = js.get_stream(format!("SUB_{name}")).await.unwrap();
        let consumer: PullConsumer = stream.get_consumer(name).await.unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut out = Vec::new();
        while out.len() < count {
            let message = tokio::time::timeout(T, messages.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{name} got only {} of {count} messages: {:?}",
                        out.len(),
                        out.iter()
                            .map(|m: &ProvisioningMessage| (&m.object_id, m.op))
                            .collect::<Vec<_>>()
                    )
                })
                .unwrap()
                .unwrap();
            out.push(serde_json::from_slice(&message.payload).unwrap());
            message.double_ack().await.unwrap();
        }
        out
    }

    /// Number of messages waiting in subscriber `name`'s queue.
    async fn queued(&self, name: &str) -> u64 {
        let mut stream = jetstream::new(self.connect_as("ox-connector-service").await.0)
            .get_stream(format!("SUB_{name}"))
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }
}

fn object(id: &str, module: &str, extra: Value) -> Value {
    let mut object = json!({"name": id, "isOxUser": "OK", "oxContext": "10"});
    if let (Some(o), Some(e)) = (object.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    json!({"dn": format!("cn={id},dc=example,dc=org"), "id": id, "object": object,
           "options": [], "udm_object_type": module})
}

fn ids(messages: &[ProvisioningMessage]) -> Vec<String> {
    messages.iter().map(|m| m.object_id.clone()).collect()
}

#[tokio::test]
async fn two_subscribers_get_exactly_their_topics_in_order() {
    let s = Setup::start().await;
    s.subscribe("people", &["users/.*"], false, None).await;
    s.subscribe("teams", &["groups/group"], false, None).await;
    let dir = s.env.listener_dir();
    for n in 1..=6 {
        // One file per batch: the queue order is the file order.
        let module = if n % 2 == 0 {
            "groups/group"
        } else {
            "users/user"
        };
        files::write(
            &dir,
            &files::name(n),
            &object(&format!("o{n}"), module, json!({})),
        );
        wait_for("the file to be applied", T, || {
            s.applier.applied().len() == n as usize
        })
        .await;
    }
    assert_eq!(ids(&s.consume("people", 3).await), ["o1", "o3", "o5"]);
    assert_eq!(ids(&s.consume("teams", 3).await), ["o2", "o4", "o6"]);
    assert_eq!(s.queued("people").await, 0, "nothing else reached people");
    assert_eq!(s.queued("teams").await, 0, "nothing else reached teams");
    s.stop().await;
}

#[tokio::test]
async fn a_blocked_subscriber_does_not_delay_another() {
    let s = Setup::start().await;
    s.subscribe("people", &["users/user"], false, None).await;
    // The OX subscriber is stuck at its first message for good.
    s.applier.fail(&files::name(1), u32::MAX);
    let dir = s.env.listener_dir();
    for n in 1..=5 {
        files::write(
            &dir,
            &files::name(n),
            &object(&format!("u{n}"), "users/user", json!({})),
        );
    }
    assert_eq!(
        ids(&s.consume("people", 5).await),
        ["u1", "u2", "u3", "u4", "u5"]
    );
    assert!(
        s.applier.applied().is_empty(),
        "the OX subscriber is still blocked"
    );
    s.stop().await;
}

#[tokio::test]
async fn prefill_sends_the_current_state_then_the_live_changes_without_gap_or_duplicate() {
    let s = Setup::start().await;
    let dir = s.env.listener_dir();
    let mut n = 0;
    let mut write = |value: Value| {
        n += 1;
        files::write(&dir, &files::name(n), &value);
        n as usize
    };
    write(object("u1", "users/user", json!({"v": 1})));
    write(object("u2", "users/user", json!({"v": 1})));
    write(object("u3", "users/user", json!({"v": 1})));
    write(object("g1", "groups/group", json!({})));
    write(object("u2", "users/user", json!({"v": 2})));
    let last = write(
        json!({"dn": "cn=u3,dc=example,dc=org", "id": "u3", "object": null,
                             "options": null, "udm_object_type": "users/user"}),
    );
    wait_for("the history to be applied", T, || {
        s.applier.calls().len() >= last
    })
    .await;

    s.subscribe("late", &["users/.*"], true, None).await;
    // (Were u1 changed before the prefill has read the state, it would arrive only as that live
    // change, with its latest state; waiting makes the expected messages exact.)
    let dispatch = s.daemon.dispatch().clone();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let list = dispatch.list().await.unwrap();
        let late = list.iter().find(|(sub, _)| sub.name == "late").unwrap();
        if late.0.prefill_status == ox_connector::dispatch::PrefillStatus::Done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the prefill did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    write(object("u4", "users/user", json!({"v": 1})));
    write(object("u1", "users/user", json!({"v": 2})));

    let got = s.consume("late", 4).await;
    let snapshots: Vec<_> = got.iter().filter(|m| m.op == Operation::Snapshot).collect();
    let mut snapshot_ids: Vec<&str> = snapshots.iter().map(|m| m.object_id.as_str()).collect();
    snapshot_ids.sort();
    assert_eq!(
        snapshot_ids,
        ["u1", "u2"],
        "current objects only, no group, no deleted u3"
    );
    let u2 = snapshots.iter().find(|m| m.object_id == "u2").unwrap();
    assert_eq!(u2.body.new.as_ref().unwrap()["v"], 2, "the latest state");
    assert!(
        got[..2].iter().all(|m| m.op == Operation::Snapshot),
        "prefill comes first"
    );
    assert_eq!(
        ids(&got[2..]),
        ["u4", "u1"],
        "then the live changes, in order"
    );
    assert_eq!(got[3].body.new.as_ref().unwrap()["v"], 2);
    assert_eq!(s.queued("late").await, 0, "no duplicate at the seam");
    s.stop().await;
}

/// An earlier version kept the state of objects in the bucket `provisioning-state`, and its state
/// keeper took one message at a time: after the upgrade a new subscriber's prefill has the
/// bucket's objects too, the bucket is gone and the state keeper takes many at once.
#[tokio::test]
async fn after_an_upgrade_the_prefill_has_the_objects_of_the_earlier_versions_bucket() {
    let s = Setup::start().await;
    let dir = s.env.listener_dir();
    files::write(
        &dir,
        &files::name(1),
        &object("u1", "users/user", json!({"v": 1})),
    );
    wait_for("u1 to be applied", T, || !s.applier.calls().is_empty()).await;
    // What the earlier version left: u0 only in its bucket, and its state keeper's window.
    let service = jetstream::new(s.connect_as("ox-connector-service").await.0);
    let earlier = ox_connector::listener::ListenerFile::parse(
        std::path::Path::new("2026-12-01-06-00-00-000001.json"),
        "2026-12-01-06-00-00-000001.json".into(),
        serde_json::to_vec(&object("u0", "users/user", json!({"v": 0}))).unwrap(),
    )
    .unwrap();
    let entry = json!({"seq": 1, "message": ProvisioningMessage::from_listener_file(&earlier)});
    service
        .create_key_value(jetstream::kv::Config {
            bucket: "provisioning-state".into(),
            history: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .put(
            "udm.users/user.u0",
            serde_json::to_vec(&entry).unwrap().into(),
        )
        .await
        .unwrap();
    let incoming = service.get_stream("PROVISIONING").await.unwrap();
    let mut one_at_a_time =
        ox_connector::queue::state_keeper_consumer_config(s.env.settings.consumer_timing());
    one_at_a_time.max_ack_pending = 1;
    incoming.update_consumer(one_at_a_time).await.unwrap();

    let s = s.restart().await;
    let service = jetstream::new(s.connect_as("ox-connector-service").await.0);
    assert!(
        service.get_key_value("provisioning-state").await.is_err(),
        "the bucket is moved and removed"
    );
    let mut keeper: PullConsumer = service
        .get_stream("PROVISIONING")
        .await
        .unwrap()
        .get_consumer("state-keeper")
        .await
        .unwrap();
    assert_eq!(keeper.info().await.unwrap().config.max_ack_pending, 256);
    s.subscribe("late", &["users/.*"], true, None).await;
    let got = s.consume("late", 2).await;
    assert!(got.iter().all(|m| m.op == Operation::Snapshot));
    let mut snapshot_ids = ids(&got);
    snapshot_ids.sort();
    assert_eq!(snapshot_ids, ["u0", "u1"]);
    s.stop().await;
}

#[tokio::test]
async fn publishers_and_subscribers_are_held_to_their_realm_and_queue() {
    let s = Setup::start().await;
    s.subscribe("alpha", &["users/user"], false, None).await;
    s.subscribe("beta", &["users/user"], false, None).await;

    let (publisher, errors) = s.connect_as("publisher-udm").await;
    publisher
        .publish("provisioning.ldap.users/user", "{}".into())
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    wait_for("the publish permission error", T, || {
        errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.to_lowercase().contains("permissions violation"))
    })
    .await;

    let (alpha, errors) = s.connect_as("subscriber-alpha").await;
    let mut js = jetstream::new(alpha);
    // A forbidden request is never answered: do not wait the default 5 s for it.
    js.set_timeout(Duration::from_secs(1));
    assert!(
        js.get_stream("SUB_beta").await.is_err(),
        "alpha read beta's queue"
    );
    wait_for("the subscribe permission error", T, || {
        errors
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("SUB_beta"))
    })
    .await;
    // Its own queue is fine.
    assert!(js.get_stream("SUB_alpha").await.is_ok());
    s.stop().await;
}

#[tokio::test]
async fn redacted_fields_never_reach_a_subscriber() {
    let s = Setup::start().await;
    s.subscribe("default", &["users/user"], false, None).await;
    s.subscribe(
        "custom",
        &["users/user"],
        false,
        Some(vec!["*phone*".into()]),
    )
    .await;
    let secrets = json!({"password": "{crypt}$6$x", "userPassword": ["{crypt}$6$y"],
                         "sambaNTPassword": "8846F7EAEE8FB117AD06BDD830B7586C",
                         "krb5Key": ["MIIB"], "mobilePhone": "+49 1"});
    files::write(
        &s.env.listener_dir(),
        &files::name(1),
        &object("u1", "users/user", secrets),
    );
    let default = &s.consume("default", 1).await[0];
    let body = default.body.new.as_ref().unwrap();
    for field in ["password", "userPassword", "sambaNTPassword", "krb5Key"] {
        assert!(!body.contains_key(field), "{field} reached the subscriber");
    }
    assert_eq!(body["mobilePhone"], "+49 1");
    let raw = serde_json::to_string(default).unwrap();
    assert!(!raw.contains("8846F7EAEE8FB117AD06BDD830B7586C") && !raw.contains("$6$"));
    let custom = &s.consume("custom", 1).await[0];
    let body = custom.body.new.as_ref().unwrap();
    assert!(!body.contains_key("mobilePhone"));
    assert!(
        body.contains_key("userPassword"),
        "only the configured fields are removed"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_full_queue_shows_as_full_and_loses_nothing_once_drained() {
    let s = Setup::start().await;
    s.daemon
        .dispatch()
        .register(SubscriptionRequest {
            name: "small".into(),
            realm: "udm".into(),
            topics: vec!["users/user".into()],
            prefill: false,
            redact: None,
            max_messages: Some(3),
            max_bytes: None,
        })
        .await
        .unwrap();
    let dir = s.env.listener_dir();
    for n in 1..=8 {
        files::write(
            &dir,
            &files::name(n),
            &object(&format!("u{n}"), "users/user", json!({})),
        );
    }
    let dispatch = s.daemon.dispatch().clone();
    let mut full = false;
    let deadline = tokio::time::Instant::now() + T;
    while !full {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never showed as full"
        );
        let list = dispatch.list().await.unwrap();
        full = list
            .iter()
            .any(|(sub, status)| sub.name == "small" && status.full.is_some());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.queued("small").await, 3);
    let got = s.consume("small", 8).await;
    assert_eq!(
        ids(&got),
        (1..=8).map(|n| format!("u{n}")).collect::<Vec<_>>()
    );
    let list = dispatch.list().await.unwrap();
    assert!(list.iter().all(|(_, status)| status.full.is_none()));
    s.stop().await;
}

#[tokio::test]
async fn a_message_a_subscriber_keeps_failing_stays_at_the_head_and_is_reported() {
    let s = Setup::start().await;
    s.subscribe("flaky", &["users/user"], false, None).await;
    let dir = s.env.listener_dir();
    for n in 1..=2 {
        files::write(
            &dir,
            &files::name(n),
            &object(&format!("u{n}"), "users/user", json!({})),
        );
    }
    let (client, _) = s.connect_as("subscriber-flaky").await;
    let js = jetstream::new(client);
    let consumer: PullConsumer = js
        .get_stream("SUB_flaky")
        .await
        .unwrap()
        .get_consumer("flaky")
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    // The subscriber fails twice on its first message: it comes again, before the second.
    for _ in 0..3 {
        let message = tokio::time::timeout(T, messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let got: ProvisioningMessage = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(got.object_id, "u1", "a failing message stays at the head");
        message
            .ack_with(async_nats::jetstream::AckKind::Nak(None))
            .await
            .unwrap();
    }
    let list = s.daemon.dispatch().list().await.unwrap();
    let (_, status) = list.iter().find(|(sub, _)| sub.name == "flaky").unwrap();
    assert!(status.redelivered >= 1, "{status:?}");
    assert_eq!(status.queued, 2, "nothing was dropped");
    s.stop().await;
}

/// A dispatcher that stopped with messages in flight — taken from the incoming stream, some of
/// their copies stored, none acknowledged — copies them again first, in order, without storing
/// a copy twice, before the newer messages (which JetStream would otherwise deliver first: the
/// unacknowledged ones come back only after the ack wait).
#[tokio::test]
async fn a_dispatcher_restarted_with_messages_in_flight_keeps_the_incoming_order() {
    use ox_connector::dispatch::forward::{self, Report};
    use ox_connector::dispatch::subscription::TopicMatcher;
    use ox_connector::dispatch::{PrefillStatus, Subscription};
    use ox_connector::queue::publish::{PublishError, Publisher};
    use ox_connector::queue::{self, ConsumerTiming, QueueLimits};

    struct Quiet;
    impl Report for Quiet {
        fn stored(&self, _: usize) {}
        fn refused(&self, error: &PublishError) {
            panic!("a copy was refused: {error}");
        }
    }

    let env = TestEnv::start().await;
    let js = env.jetstream().await;
    let limits = QueueLimits {
        max_messages: 1_000,
        max_bytes: 16 * 1024 * 1024,
    };
    // A long ack wait: the messages left in flight would come back only after it.
    let timing = ConsumerTiming {
        ack_wait: Duration::from_secs(60),
    };
    let incoming = queue::setup_incoming(&js, limits, 1).await.unwrap();
    queue::setup_subscriber(&js, "people", limits, timing)
        .await
        .unwrap();
    let consumer = queue::ensure_consumer(
        &incoming,
        queue::dispatcher_consumer_config("people", "udm", None, timing),
    )
    .await
    .unwrap();
    let publisher = Publisher::new(js.clone());
    // Among the ten in flight, one the subscription does not want (a group).
    let messages: Vec<ProvisioningMessage> = (1..=30)
        .map(|n| {
            let file = files::name(n);
            let mut content = files::user(&format!("u{n}"), &format!("user{n}"));
            if n == 5 {
                content["udm_object_type"] = "groups/group".into();
            }
            let raw = files::converter_json(&content);
            let path = std::path::PathBuf::from(&file);
            let parsed = ox_connector::listener::ListenerFile::parse(&path, file, raw).unwrap();
            ProvisioningMessage::from_listener_file(&parsed)
        })
        .collect();
    for message in &messages[..10] {
        publisher.publish(message).await.unwrap();
    }
    // The previous run took the first ten and stored the copies of the first three.
    let mut taken = consumer.fetch().max_messages(10).messages().await.unwrap();
    let mut in_flight = 0;
    while let Some(message) = taken.next().await {
        message.unwrap();
        in_flight += 1;
    }
    assert_eq!(in_flight, 10);
    let wanted: Vec<ProvisioningMessage> = messages
        .iter()
        .filter(|m| m.topic == "users/user")
        .cloned()
        .collect();
    for message in &wanted[..3] {
        let subject = queue::subscriber_subject("people", "udm", &message.topic);
        publisher
            .publish_to(subject, message, &message.id.to_string())
            .await
            .unwrap();
    }
    for message in &messages[10..] {
        publisher.publish(message).await.unwrap();
    }

    let subscription = Subscription {
        name: "people".into(),
        realm: "udm".into(),
        topics: vec!["users/user".into()],
        prefill: false,
        redact: Vec::new(),
        limits,
        prefill_status: PrefillStatus::NotRequested,
        start_after: 0,
        created: chrono::Utc::now(),
    };
    let matcher = TopicMatcher::new(&subscription.topics).unwrap();
    let stop = CancellationToken::new();
    let run = {
        let (client, incoming, consumer, publisher, stop) = (
            js.client(),
            incoming.clone(),
            consumer.clone(),
            publisher.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let source = forward::Source {
                client: &client,
                incoming: &incoming,
                consumer: &consumer,
            };
            forward::run(source, publisher, &subscription, &matcher, &Quiet, &stop).await
        })
    };
    let mut queue = js.get_stream("SUB_people").await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while queue.info().await.unwrap().state.messages < 29 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every copy arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    run.await.unwrap().unwrap();

    let state = queue.info().await.unwrap().state.clone();
    assert_eq!(
        state.messages, 29,
        "a copy was stored twice, or one the subscription does not want"
    );
    let mut copied = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        let raw = queue.get_raw_message(sequence).await.unwrap();
        let message: ProvisioningMessage = serde_json::from_slice(&raw.payload).unwrap();
        copied.push(message.object_id);
    }
    assert_eq!(copied, ids(&wanted), "the queue is not in incoming order");
}
