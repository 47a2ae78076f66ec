//! ③ The durable queues on NATS JetStream: stream and consumer layout, publishing, the ordered
//! consumer (its next step, deleting the file, is given to it: [`consume::OnApplied`]), a look
//! into a subscriber's queue for provisioning ([`peek`]), key-value buckets, and the embedded
//! `nats-server` used when no URL is configured.
//!
//! Layout (documented in `docs/provisioning.md`):
//! - the **incoming** stream `PROVISIONING` on `provisioning.<realm>.<topic>`: publishers write
//!   here. Interest retention: a message stays until every consumer on it (the state keeper and
//!   one dispatcher per subscriber, all created before anything is published) has acknowledged
//!   it. Bounded, discard new (a full stream refuses messages; the listener files wait on disk).
//! - one stream **per subscriber** `SUB_<name>` on `subscriber.<name>.<realm>.<topic>`, filled by
//!   that subscriber's dispatcher with the messages matching its subscription (redacted for it),
//!   read by the subscriber's own durable consumer `<name>`: explicit acks, `max_ack_pending` =
//!   the messages the subscriber holds at once (256 for OX; the subscriber itself keeps the order
//!   its ordering keys demand, [`order`]), no `max_deliver` (never skips on its own). Work-queue
//!   retention, bounded, discard new: a full queue holds its dispatcher back, and only it.
//! - every stream has a duplicate window for `Nats-Msg-Id`, so a re-publish is not stored twice.

pub mod consume;
pub mod embedded;
pub mod kv;
pub mod order;
pub mod pause;
pub mod peek;
pub mod publish;
pub mod storage;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

/// Name of the incoming stream.
pub const STREAM: &str = "PROVISIONING";
/// The OX subscriber's name.
pub const OX_SUBSCRIBER: &str = "ox-connector";
/// Durable consumer of the state keeper on the incoming stream.
pub const STATE_KEEPER: &str = "state-keeper";
/// Messages the state keeper holds at once: its consumer's `max_ack_pending` and the size of
/// its pull requests (`dispatch::state_keeper`).
pub const STATE_KEEPER_IN_FLIGHT: usize = 256;
/// How long the server remembers message ids for de-duplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The oldest nats-server the daemon works with: consumer pause (`queue pause`), and a stream
/// that comes back from a SIGKILL without a consumer waiting for a message it lost, came in 2.11.
pub const MINIMUM_SERVER_VERSION: (u64, u64, u64) = (2, 11, 0);

/// A nats-server older than [`MINIMUM_SERVER_VERSION`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "nats-server {version} is too old: ox-connector needs {minimum} or newer (scripts/setup \
     installs a current one; the Docker image ships one)"
)]
pub struct ServerTooOld {
    pub version: String,
    pub minimum: String,
}

/// Refuses a nats-server older than [`MINIMUM_SERVER_VERSION`] (`version` as its INFO gives it,
/// e.g. `2.15.1` or `2.12.0-beta.1`).
pub fn check_server_version(version: &str) -> Result<(), ServerTooOld> {
    let (major, minor, patch) = MINIMUM_SERVER_VERSION;
    let release = version.split(['-', '+']).next().unwrap_or_default();
    let numbers: Vec<u64> = release
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .chain(std::iter::repeat(0))
        .take(3)
        .collect();
    if (numbers[0], numbers[1], numbers[2]) < MINIMUM_SERVER_VERSION {
        return Err(ServerTooOld {
            version: version.to_owned(),
            minimum: format!("{major}.{minor}.{patch}"),
        });
    }
    Ok(())
}

/// Bounds of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueLimits {
    pub max_messages: i64,
    pub max_bytes: i64,
}

/// Consumer timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerTiming {
    /// After this long without an ack or progress report the server redelivers; it is also how
    /// long a message waits after a crash before it comes again.
    pub ack_wait: Duration,
}

/// Why a stream or consumer could not be set up; the cause is the NATS error (or what is wrong
/// with the stream found).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot create or update the JetStream stream {stream}: {source}")]
    Stream {
        stream: String,
        #[source]
        source: async_nats::Error,
    },
    #[error("cannot create or update the JetStream consumer {consumer}: {source}")]
    Consumer {
        consumer: String,
        #[source]
        source: async_nats::Error,
    },
}

impl SetupError {
    fn stream(stream: &str, source: impl Into<async_nats::Error>) -> Self {
        Self::Stream {
            stream: stream.to_owned(),
            source: source.into(),
        }
    }

    fn consumer(consumer: &str, source: impl Into<async_nats::Error>) -> Self {
        Self::Consumer {
            consumer: consumer.to_owned(),
            source: source.into(),
        }
    }
}

/// The incoming stream's configuration, with `replicas` copies of every message (1 on a single
/// server; 3 or 5 on a JetStream cluster).
pub fn incoming_stream_config(limits: QueueLimits, replicas: usize) -> stream::Config {
    queue_stream_config(
        STREAM.to_owned(),
        "UCS provisioning messages, as published".to_owned(),
        crate::message::SUBJECT_PREFIX,
        stream::RetentionPolicy::Interest,
        limits,
        replicas,
    )
}

/// The number of replicas of everything the daemon creates: those of the incoming stream, which
/// the daemon creates first with `--replicas` (1 while it does not exist).
pub async fn replicas(js: &jetstream::Context) -> Result<usize, SetupError> {
    match js.get_stream(STREAM).await {
        Ok(stream) => Ok(stream.cached_info().config.num_replicas.max(1)),
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(js_error)
                if js_error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(1)
            }
            _ => Err(SetupError::stream(STREAM, e)),
        },
    }
}

/// A queue stream: file storage, bounded, discard new, duplicate window, direct gets.
fn queue_stream_config(
    name: String,
    description: String,
    subject_prefix: &str,
    retention: stream::RetentionPolicy,
    limits: QueueLimits,
    replicas: usize,
) -> stream::Config {
    stream::Config {
        name,
        description: Some(description),
        subjects: vec![format!("{subject_prefix}.>")],
        retention,
        storage: stream::StorageType::File,
        max_messages: limits.max_messages,
        max_bytes: limits.max_bytes,
        discard: stream::DiscardPolicy::New,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas.max(1),
        allow_direct: true,
        ..Default::default()
    }
}

/// `SUB_<name>`: the stream of subscriber `name`.
pub fn subscriber_stream(name: &str) -> String {
    format!("SUB_{name}")
}

/// `subscriber.<name>`: the subject prefix of subscriber `name`'s queue.
pub fn subscriber_subject_prefix(name: &str) -> String {
    format!("subscriber.{name}")
}

/// The subject of a message of `realm`/`topic` in subscriber `name`'s queue.
pub fn subscriber_subject(name: &str, realm: &str, topic: &str) -> String {
    format!("{}.{realm}.{topic}", subscriber_subject_prefix(name))
}

/// The configuration of subscriber `name`'s stream.
pub fn subscriber_stream_config(
    name: &str,
    limits: QueueLimits,
    replicas: usize,
) -> stream::Config {
    queue_stream_config(
        subscriber_stream(name),
        format!("the provisioning queue of subscriber {name}"),
        &subscriber_subject_prefix(name),
        stream::RetentionPolicy::WorkQueue,
        limits,
        replicas,
    )
}

/// The subscriber's own consumer on its stream: explicit acks, `max_in_flight` messages
/// delivered and not yet acknowledged (1 for a subscriber that takes one at a time).
pub fn subscriber_consumer_config(
    name: &str,
    timing: ConsumerTiming,
    max_in_flight: i64,
) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(name.to_owned()),
        description: Some(format!("subscriber {name}: ordered, explicit acks")),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: consumer::DeliverPolicy::All,
        ack_wait: timing.ack_wait,
        max_ack_pending: max_in_flight.max(1),
        max_deliver: -1,
        ..Default::default()
    }
}

/// The durable name of subscriber `name`'s dispatcher on the incoming stream.
pub fn dispatcher_consumer(name: &str) -> String {
    format!("dispatch-{name}")
}

/// Most messages a dispatcher holds (delivered, not acknowledged).
pub const DISPATCH_IN_FLIGHT: i64 = 256;

/// The dispatcher's consumer on the incoming stream, from `start` (a stream sequence) on, or
/// from the beginning.
pub fn dispatcher_consumer_config(
    name: &str,
    realm: &str,
    start: Option<u64>,
    timing: ConsumerTiming,
) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(dispatcher_consumer(name)),
        description: Some(format!("copies {realm} messages into the queue of {name}")),
        filter_subject: crate::message::subject(realm, ">"),
        // Cumulative: the dispatcher copies in order, many in flight (`dispatch::forward`).
        ack_policy: consumer::AckPolicy::All,
        deliver_policy: match start {
            Some(sequence) => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: sequence,
            },
            None => consumer::DeliverPolicy::All,
        },
        ack_wait: timing.ack_wait,
        max_ack_pending: DISPATCH_IN_FLIGHT,
        max_deliver: -1,
        ..Default::default()
    }
}

/// The state keeper's consumer on the incoming stream (every realm).
pub fn state_keeper_consumer_config(timing: ConsumerTiming) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(STATE_KEEPER.to_owned()),
        description: Some("keeps the last state of every object, for prefill".to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: consumer::DeliverPolicy::All,
        ack_wait: timing.ack_wait,
        max_ack_pending: STATE_KEEPER_IN_FLIGHT as i64,
        max_deliver: -1,
        ..Default::default()
    }
}

/// Creates the incoming stream, or brings an existing one in line with the code's definition
/// (limits, replicas). A stream of an earlier layout (other retention) is recreated if it is
/// empty.
pub async fn setup_incoming(
    js: &jetstream::Context,
    limits: QueueLimits,
    replicas: usize,
) -> Result<stream::Stream, SetupError> {
    let wanted = incoming_stream_config(limits, replicas);
    ensure_stream(js, wanted).await
}

/// Creates or updates a stream; an empty stream whose retention differs is recreated, a
/// non-empty one is an error (JetStream cannot change retention in place).
pub async fn ensure_stream(
    js: &jetstream::Context,
    wanted: stream::Config,
) -> Result<stream::Stream, SetupError> {
    let name = wanted.name.clone();
    let mut stream = js
        .get_or_create_stream(wanted.clone())
        .await
        .map_err(|e| SetupError::stream(&name, e))?;
    let info = stream
        .info()
        .await
        .map_err(|e| SetupError::stream(&name, e))?
        .clone();
    if info.config.retention != wanted.retention {
        if info.state.messages > 0 {
            return Err(SetupError::stream(
                &name,
                format!(
                    "it has {} messages and an older layout ({:?} retention); let it drain with the \
                     previous version first",
                    info.state.messages, info.config.retention
                ),
            ));
        }
        js.delete_stream(&name)
            .await
            .map_err(|e| SetupError::stream(&name, e))?;
        return js
            .create_stream(wanted)
            .await
            .map_err(|e| SetupError::stream(&name, e));
    }
    let current = &info.config;
    if current.max_messages != wanted.max_messages
        || current.max_bytes != wanted.max_bytes
        || current.subjects != wanted.subjects
        || current.num_replicas != wanted.num_replicas
    {
        js.update_stream(wanted)
            .await
            .map_err(|e| SetupError::stream(&name, e))?;
    }
    Ok(stream)
}

/// Creates (or updates, keeping its position) a durable pull consumer on `stream`.
pub async fn ensure_consumer(
    stream: &stream::Stream,
    wanted: consumer::pull::Config,
) -> Result<consumer::PullConsumer, SetupError> {
    let name = wanted.durable_name.clone().unwrap_or_default();
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(&name, wanted.clone())
        .await
        .map_err(|e| SetupError::consumer(&name, e))?;
    let current = consumer.cached_info().config.clone();
    // A subscriber may have widened its own window (see `recreate_subscriber_consumer`).
    if current.ack_wait != wanted.ack_wait || current.max_ack_pending < wanted.max_ack_pending {
        let mut update = wanted;
        // The start position is fixed at creation; an update must repeat it.
        update.deliver_policy = current.deliver_policy;
        return stream
            .create_consumer(update)
            .await
            .map_err(|e| SetupError::consumer(&name, e));
    }
    Ok(consumer)
}

/// How long one pull request waits on the server for a message. The client gives up on a
/// request 5 s after that (async-nats' margin for a lost answer).
pub const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// How often a consumer waiting for a message looks whether its client has reconnected:
/// async-nats counts its connections but does not announce a new one. Once a second keeps an
/// idle daemon's wake-ups rare (at 100 ms the waiting consumers alone cost 0.3 % CPU) and still
/// asks again within a second of a restart.
const RECONNECT_CHECK: Duration = Duration::from_secs(1);

/// Tells whether a NATS client has connected again since a moment. An answer to a request sent
/// before a reconnect never comes: a restarted server has forgotten the request, and an answer
/// sent to the lost connection is gone. So whoever waits for one gives up on a reconnect
/// instead of at its timeout (5-10 s), and asks again.
#[derive(Clone)]
pub struct Connection {
    statistics: Arc<async_nats::Statistics>,
}

impl Connection {
    pub fn of(client: &async_nats::Client) -> Self {
        Self {
            statistics: client.statistics(),
        }
    }

    /// The client's count of connections so far: the moment for `Connection::reconnected_since`.
    pub fn epoch(&self) -> u64 {
        self.statistics.connects.load(Ordering::Relaxed)
    }

    /// Runs `work` to its end, or until the client has connected again after `epoch`: then
    /// `None` (what `work` waited for will not come).
    pub async fn unless_reconnected<T>(
        &self,
        epoch: u64,
        work: impl std::future::IntoFuture<Output = T>,
    ) -> Option<T> {
        tokio::select! {
            biased;
            done = work => Some(done),
            () = self.reconnected_since(epoch) => None,
        }
    }

    /// Completes once the client has connected again after `epoch` (looked at every
    /// [`RECONNECT_CHECK`]).
    async fn reconnected_since(&self, epoch: u64) {
        while self.epoch() == epoch {
            tokio::time::sleep(RECONNECT_CHECK).await;
        }
    }
}

/// The first message of `stream` on `subject` at or after sequence `from`; `None` when there is
/// none (or it cannot be read: said at debug level).
pub async fn next_on_subject(
    stream: &stream::Stream,
    subject: &str,
    from: u64,
) -> Option<jetstream::message::StreamMessage> {
    match stream
        .raw_message_builder()
        .sequence(from)
        .next_by_subject(subject.to_owned())
        .send()
        .await
    {
        Ok(found) => Some(found),
        Err(e) => {
            // Mostly "no message": none (further) on that subject.
            tracing::debug!(error = %e, subject, "No further message on the subject.");
            None
        }
    }
}

/// Why a loop over [`Pulled`] messages returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown.
    Stopped,
    /// The NATS client connected again ([`Pulled::ending_at_reconnect`]): a pull request from
    /// before may still be answered next to a new one, out of order, so the caller starts
    /// afresh (the OX queue's consumer opened anew starts again at its first unacknowledged
    /// message; a dispatcher copies what it had in flight again, in order). Seen in the cluster
    /// failover test as 2301, 2303, 2305, 2307, 2302 before.
    Reconnected,
}

/// A consumer's messages, asked for with pull requests of at most `batch` messages each.
///
/// A request is sent only when the previous one is answered (its `batch` messages arrived, or
/// the server's timeout ended it), on an inbox of its own. async-nats' continuous `messages()`
/// stream is not used: it counts the requests it has open in a background task that can report
/// a request as sent only after the request's message already arrived; the late count then
/// makes it believe a request is open that the server has already answered, and it waits for its
/// own fallback (expiry + 5 s, 35 s with the usual 30 s) before asking again. With one message in
/// flight that stalled a consumer for 35 s about once per few thousand messages (measured: one
/// stall in 3,000 plain messages, no faults).
///
/// A restarted nats-server has forgotten the open request, and the client would notice only
/// when it times out ([`PULL_EXPIRES`] + 5 s). So once the client has reconnected, a new request
/// is sent at once. The old one is still read until it ends (its messages first): if only the
/// connection was lost, it may still be answered — not by a single server (it drops the request
/// with the connection), but a cluster's consumer leader on another node keeps it, and hands
/// out messages in turn between it and the new one, so across a reconnect the messages may come
/// out of order. Fine for the state keeper (the state file keeps the newest
/// whatever the order); the OX queue's consumer and the dispatchers end instead and start
/// afresh ([`Pulled::ending_at_reconnect`], [`Ended::Reconnected`]).
///
/// [`Pulled::next`] may be dropped at any point (raced in a `select!`) without losing a
/// message: a request is sent by a task of its own and kept until it is answered.
pub struct Pulled {
    consumer: consumer::PullConsumer,
    batch: usize,
    /// The consumer's client: a reconnect supersedes the open request.
    connection: Connection,
    /// The count of connections when the current request was sent (read just before: a
    /// reconnect in between only makes it superseded at once).
    sent_on: u64,
    request: Request,
    /// Requests sent before the client reconnected, oldest first, until they end.
    superseded: VecDeque<consumer::pull::Batch>,
    /// The count of connections when these messages were first asked for, if they end at the
    /// next reconnect ([`Pulled::ending_at_reconnect`]).
    ends_after: Option<u64>,
}

enum Request {
    None,
    /// Being sent.
    Opening(tokio::task::JoinHandle<Result<consumer::pull::Batch, consumer::pull::BatchError>>),
    /// Sent; how many messages it has brought so far.
    Open(Box<consumer::pull::Batch>, usize),
}

impl Pulled {
    /// Up to `batch` messages per request (a consumer with that many messages in flight).
    /// `client` is the client `consumer` was opened with.
    pub fn batched(
        client: &async_nats::Client,
        consumer: &consumer::PullConsumer,
        batch: usize,
    ) -> Self {
        Self {
            consumer: consumer.clone(),
            batch: batch.max(1),
            connection: Connection::of(client),
            sent_on: 0,
            request: Request::None,
            superseded: VecDeque::new(),
            ends_after: None,
        }
    }

    /// Makes [`Pulled::next`] end (`None`) once the client has connected again, instead of
    /// asking again while a request from before may still be answered: the server hands out
    /// messages in turn between the open requests, so one that must come in order (the OX
    /// queue) would not. [`Pulled::reconnected`] then tells this end from a stop.
    pub fn ending_at_reconnect(mut self) -> Self {
        self.ends_after = Some(self.connection.epoch());
        self
    }

    /// Whether the client has connected again since these messages ended at a reconnect.
    pub fn reconnected(&self) -> bool {
        self.ends_after
            .is_some_and(|epoch| self.connection.epoch() != epoch)
    }

    /// The next message; `None` once `stop` is cancelled. A request that ends without a
    /// message (the server's timeout, a lost connection, a status the server sends instead of
    /// a message) is simply made again: the consumer recovers by itself.
    pub async fn next(
        &mut self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Option<jetstream::Message> {
        loop {
            if self.reconnected() {
                return None;
            }
            let connects = self.connection.epoch();
            self.supersede_if_reconnected(connects);
            let step = match &mut self.request {
                Request::None => {
                    self.send_request(connects);
                    Step::Again
                }
                Request::Opening(_) => self.await_opening(stop).await,
                Request::Open(..) => self.next_of_open(stop).await,
            };
            match step {
                Step::Again => {}
                Step::Stopped => return None,
                Step::Message(message) => return Some(message),
            }
        }
    }

    /// Adds to `batch` the messages that have arrived already, without waiting, until it holds
    /// `max` (a batch is taken together: one write, one scope look-up for all of them).
    pub fn take_arrived(
        &mut self,
        batch: &mut Vec<jetstream::Message>,
        max: usize,
        stop: &tokio_util::sync::CancellationToken,
    ) {
        use futures::FutureExt;
        while batch.len() < max {
            // `next` may be dropped unfinished without losing a message.
            match self.next(stop).now_or_never() {
                Some(Some(delivered)) => batch.push(delivered),
                _ => break,
            }
        }
    }

    /// A restarted server has forgotten the open request; one that did not restart may still
    /// answer it, so it is kept (and read first) until it ends.
    fn supersede_if_reconnected(&mut self, connects: u64) {
        if !matches!(self.request, Request::Open(..)) || connects == self.sent_on {
            return;
        }
        if let Request::Open(request, _) = std::mem::replace(&mut self.request, Request::None) {
            tracing::debug!("The NATS client reconnected; asking for messages again.");
            self.superseded.push_back(*request);
        }
    }

    /// Sends a request for the next batch, by a task of its own.
    fn send_request(&mut self, connects: u64) {
        let consumer = self.consumer.clone();
        let batch = self.batch;
        self.sent_on = connects;
        self.request = Request::Opening(tokio::spawn(async move {
            consumer
                .batch()
                .max_messages(batch)
                .expires(PULL_EXPIRES)
                .messages()
                .await
        }));
    }

    /// Waits for the request being sent; on failure, waits a moment before the next.
    async fn await_opening(&mut self, stop: &tokio_util::sync::CancellationToken) -> Step {
        let Request::Opening(opening) = &mut self.request else {
            return Step::Again;
        };
        let opened = tokio::select! {
            biased;
            () = stop.cancelled() => return Step::Stopped,
            opened = opening => match opened {
                Ok(Ok(request)) => Ok(request),
                Ok(Err(e)) => Err(PullError::Request(e)),
                Err(e) => Err(PullError::Task(e)),
            },
        };
        match opened {
            Ok(request) => self.request = Request::Open(Box::new(request), 0),
            Err(e) => {
                self.request = Request::None;
                tracing::debug!(
                    error = %crate::telemetry::Chain(&e),
                    "Cannot ask for the next message; retrying."
                );
                tokio::select! {
                    () = stop.cancelled() => return Step::Stopped,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
        Step::Again
    }

    /// The next message of the open request (or of a superseded one, which the server answers
    /// first).
    async fn next_of_open(&mut self, stop: &tokio_util::sync::CancellationToken) -> Step {
        use futures::StreamExt;
        let Request::Open(request, received) = &mut self.request else {
            return Step::Again;
        };
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => return Step::Stopped,
            old = next_of(&mut self.superseded) => match old {
                Ok(message) => return Step::Message(message),
                Err(e) => {
                    tracing::debug!(error = %e, "Problem with an earlier request.");
                    return Step::Again;
                }
            },
            next = request.next() => next,
            // The request is superseded at the top of the loop.
            () = self.connection.reconnected_since(self.sent_on) => return Step::Again,
        };
        match next {
            Some(Ok(message)) => {
                *received += 1;
                if *received >= self.batch {
                    // The request is answered in full.
                    self.request = Request::None;
                }
                Step::Message(message)
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "Problem while waiting for the next message.");
                self.request = Request::None;
                Step::Again
            }
            // Timed out (no message for a while, or the request was lost): ask again.
            None => {
                self.request = Request::None;
                Step::Again
            }
        }
    }
}

/// What one turn of [`Pulled::next`] came to.
#[allow(clippy::large_enum_variant)] // Returned at once, never stored: boxing would only cost.
enum Step {
    Again,
    Stopped,
    Message(jetstream::Message),
}

/// Why a request for messages could not be made.
#[derive(Debug, thiserror::Error)]
enum PullError {
    #[error("cannot ask the consumer for messages: {0}")]
    Request(#[source] consumer::pull::BatchError),
    #[error("the task asking for messages failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// The next message of the first of `requests` that has one, dropping those that have ended;
/// pending while none has one.
fn next_of(
    requests: &mut VecDeque<consumer::pull::Batch>,
) -> impl std::future::Future<Output = Result<jetstream::Message, async_nats::Error>> + '_ {
    use futures::StreamExt;
    std::future::poll_fn(move |cx| {
        let mut i = 0;
        while let Some(request) = requests.get_mut(i) {
            match request.poll_next_unpin(cx) {
                Poll::Ready(Some(next)) => return Poll::Ready(next),
                Poll::Ready(None) => drop(requests.remove(i)),
                Poll::Pending => i += 1,
            }
        }
        Poll::Pending
    })
}

/// Creates subscriber `name`'s stream (with the replicas of the incoming stream) and its own
/// consumer.
pub async fn setup_subscriber(
    js: &jetstream::Context,
    name: &str,
    limits: QueueLimits,
    timing: ConsumerTiming,
) -> Result<consumer::PullConsumer, SetupError> {
    let replicas = replicas(js).await?;
    let stream = ensure_stream(js, subscriber_stream_config(name, limits, replicas)).await?;
    ensure_consumer(&stream, subscriber_consumer_config(name, timing, 1)).await
}

/// Deletes subscriber `name`'s consumer and creates it again with `max_in_flight`, so that it
/// delivers every message still in the queue again, in stream order.
///
/// Why: a consumer with several messages in flight that loses them (a crash, a lost
/// connection) gets them back only after its ack wait, while newer messages keep coming — out
/// of order. The subscriber's stream has work-queue retention, so a new consumer sees exactly
/// the messages not yet acknowledged, oldest first. (Those already applied have lost their
/// listener files and are skipped.)
pub async fn recreate_subscriber_consumer(
    js: &jetstream::Context,
    name: &str,
    timing: ConsumerTiming,
    max_in_flight: i64,
) -> Result<(), SetupError> {
    let stream_name = subscriber_stream(name);
    let stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|e| SetupError::stream(&stream_name, e))?;
    // A paused queue stays paused (`queue pause`).
    let pause_until = match stream.get_consumer::<consumer::pull::Config>(name).await {
        Ok(mut old) => old
            .info()
            .await
            .ok()
            .filter(|info| info.paused)
            .and_then(|info| info.config.pause_until),
        Err(_) => None,
    };
    if let Err(e) = stream.delete_consumer(name).await {
        let missing = matches!(
            e.kind(),
            jetstream::stream::ConsumerErrorKind::JetStream(ref js_error)
                if js_error.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND
        );
        if !missing {
            return Err(SetupError::consumer(name, e));
        }
    }
    stream
        .create_consumer(consumer::pull::Config {
            pause_until,
            ..subscriber_consumer_config(name, timing, max_in_flight)
        })
        .await
        .map_err(|e| SetupError::consumer(name, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_older_than_the_minimum_are_refused_naming_both_versions() {
        let err = check_server_version("2.9.10").unwrap_err().to_string();
        assert!(err.contains("2.9.10") && err.contains("2.11.0"), "{err}");
        assert!(check_server_version("2.10.22").is_err());
        assert!(check_server_version("2.11.0").is_ok());
        assert!(check_server_version("2.15.1").is_ok());
        assert!(check_server_version("2.12.0-beta.1").is_ok());
        assert!(check_server_version("3.0.0").is_ok());
    }
}
