//! The ordered consumer on its own, against a real nats-server: it hands every applied message
//! to the step it is given ([`consume::OnApplied`]) before acknowledging it, skips what that
//! step no longer wants, and retries a failure in place.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ox_connector::apply::{Applier, ApplyError, Outcome};
use ox_connector::listener::ListenerFile;
use ox_connector::message::ProvisioningMessage;
use ox_connector::queue::consume::{self, ConsumeSettings, OnApplied, Steps};
use ox_connector::queue::publish::Publisher;
use ox_connector::queue::{self, ConsumerTiming, QueueLimits};
use ox_connector::status::StatusBoard;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::support::{files, wait_for, TestEnv};

const SUBSCRIBER: &str = "consumer-test";

/// What happened, in order: `apply <file>`, `failed <file>`, `applied <file>`.
type Log = Arc<Mutex<Vec<String>>>;

/// Applies everything, except that the first attempt at `fail_once` fails.
struct LoggingApplier {
    log: Log,
    fail_once: Mutex<Option<String>>,
}

impl Applier for LoggingApplier {
    async fn apply(&self, message: &ProvisioningMessage) -> Result<Outcome, ApplyError> {
        let file = message.source_file().unwrap_or("-").to_owned();
        let mut fail_once = self.fail_once.lock().unwrap();
        if fail_once.as_deref() == Some(file.as_str()) {
            *fail_once = None;
            self.log.lock().unwrap().push(format!("failed {file}"));
            return Err(ApplyError::transient("OX is busy"));
        }
        self.log.lock().unwrap().push(format!("apply {file}"));
        Ok(Outcome::Applied)
    }
}

/// The step after apply, recording what it was given; `withdrawn` is no longer wanted.
struct RecordingStep {
    log: Log,
    withdrawn: String,
}

impl OnApplied for RecordingStep {
    fn still_wanted(&self, message: &ProvisioningMessage) -> bool {
        message.source_file() != Some(self.withdrawn.as_str())
    }

    fn applied(&self, message: &ProvisioningMessage) {
        let file = message.source_file().unwrap_or("-");
        self.log.lock().unwrap().push(format!("applied {file}"));
    }
}

#[tokio::test]
async fn the_consumer_hands_each_applied_message_to_the_next_step_before_acknowledging_it() {
    let env = TestEnv::start().await;
    let js = env.jetstream().await;
    let client = async_nats::connect(env.nats.url()).await.unwrap();
    let limits = QueueLimits {
        max_messages: 1_000,
        max_bytes: 16 * 1024 * 1024,
    };
    let timing = ConsumerTiming {
        ack_wait: Duration::from_secs(30),
    };
    queue::setup_subscriber(&js, SUBSCRIBER, limits, timing)
        .await
        .unwrap();
    let publisher = Publisher::new(js.clone());
    let names: Vec<String> = (1..=4).map(files::name).collect();
    for (n, name) in names.iter().enumerate() {
        let raw = files::converter_json(&files::user(&format!("u{n}"), &format!("user{n}")));
        let path = std::path::PathBuf::from(name);
        let file = ListenerFile::parse(&path, name.clone(), raw).unwrap();
        let message = ProvisioningMessage::from_listener_file(&file);
        let subject = queue::subscriber_subject(SUBSCRIBER, "udm", &message.topic);
        publisher
            .publish_to(subject, &message, &message.id.to_string())
            .await
            .unwrap();
    }
    queue::recreate_subscriber_consumer(&js, SUBSCRIBER, timing, 1)
        .await
        .unwrap();
    let consumer = jetstream_consumer(&client).await;

    let log = Log::default();
    let settings = ConsumeSettings {
        retry_delay: Duration::from_millis(50),
        ack_wait: timing.ack_wait,
        concurrency: 1,
        max_in_flight: 1,
    };
    let steps = Steps {
        applier: Arc::new(LoggingApplier {
            log: log.clone(),
            fail_once: Mutex::new(Some(names[2].clone())),
        }),
        on_applied: Arc::new(RecordingStep {
            log: log.clone(),
            withdrawn: names[1].clone(),
        }),
        settings,
        status: StatusBoard::new(None),
        retry_now: Arc::new(Notify::new()),
    };
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let (client, stop) = (client.clone(), stop.clone());
        async move { consume::run(&client, consumer, steps, stop).await }
    });
    let expected = [
        format!("apply {}", names[0]),
        format!("applied {}", names[0]),
        format!("failed {}", names[2]),
        format!("apply {}", names[2]),
        format!("applied {}", names[2]),
        format!("apply {}", names[3]),
        format!("applied {}", names[3]),
    ];
    wait_for("every message applied", Duration::from_secs(20), || {
        log.lock().unwrap().len() >= expected.len()
    })
    .await;
    assert_eq!(*log.lock().unwrap(), expected);
    // Every message, the skipped one too, is acknowledged: nothing is left to deliver.
    let stream = js
        .get_stream(queue::subscriber_stream(SUBSCRIBER))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let info = stream
            .consumer_info(SUBSCRIBER)
            .await
            .expect("the consumer exists");
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages left unacknowledged: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(log.lock().unwrap().len(), expected.len(), "nothing twice");
}

async fn jetstream_consumer(
    client: &async_nats::Client,
) -> async_nats::jetstream::consumer::PullConsumer {
    async_nats::jetstream::new(client.clone())
        .get_stream(queue::subscriber_stream(SUBSCRIBER))
        .await
        .unwrap()
        .get_consumer(SUBSCRIBER)
        .await
        .unwrap()
}
