//! Dispatchers: one task per subscriber that copies the incoming messages matching its
//! subscription, redacted for it, into its own queue — after the prefill, if it asked for one.
//!
//! Each dispatcher has its own durable consumer on the incoming stream and acknowledges a
//! message only after its copy is stored (or it does not match); the copies go out many at a
//! time and stay in incoming order ([`super::forward`]). A full subscriber queue holds back that subscriber's dispatcher
//! alone, shown as "full" in its status; the other subscribers go on. A copy re-sent after a
//! crash carries the same `Nats-Msg-Id` and is not stored twice.
//!
//! Prefill: the subscription remembers the last incoming sequence before it existed
//! (`start_after`); its live messages start right after it. Once the state keeper has recorded
//! everything up to `start_after`, the current state of every object in the subscriber's topics
//! whose last change is at or before `start_after` is sent as `snapshot` messages (dependencies
//! first), then the live messages follow: no gap and no duplicate at the seam.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, stream::Stream};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;

use super::identity::{Identities, Role};
use super::redact::{redact, DEFAULT_FIELDS};
use super::state_keeper;
use super::state_store::StateStore;
use super::subscription::{
    PrefillStatus, Registry, Subscription, SubscriptionError, SubscriptionRequest, TopicMatcher,
};
use crate::listener::batch::Ranks;
use crate::message::{Operation, ProvisioningMessage};
use crate::queue::publish::{PublishError, Publisher};
use crate::queue::{self, ConsumerTiming, QueueLimits};
use crate::telemetry::Chain;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    #[error(transparent)]
    Setup(#[from] queue::SetupError),
    #[error(transparent)]
    State(#[from] state_keeper::StateError),
    /// The incoming stream or a dispatcher's consumer on it cannot be read.
    #[error("{0}")]
    Nats(#[source] async_nats::Error),
    #[error("cannot update the NATS users: {0}")]
    Identities(#[source] std::io::Error),
}

/// Moves the `provisioning-state` bucket of an earlier version into the state file (once).
async fn take_over_state_bucket(
    js: &jetstream::Context,
    state: &StateStore,
) -> Result<(), state_keeper::StateError> {
    if let Some(moved) = state.take_over_bucket(js).await? {
        tracing::info!(
            objects = moved,
            file = %state.path().display(),
            "Moved the state of objects from the bucket provisioning-state into the state file."
        );
    }
    Ok(())
}

/// What a dispatcher reports about its subscriber.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberStatus {
    /// Set while the subscriber's queue is full (and its dispatcher waits).
    pub full: Option<String>,
    /// Messages copied into the queue since the daemon started.
    pub dispatched: u64,
    /// Messages waiting in the subscriber's queue.
    pub queued: u64,
    /// Messages the subscriber was given more than once without acknowledging them (a message
    /// that keeps failing stays at the head of its queue and counts here).
    pub redelivered: u64,
}

/// The embedded server's users, when the daemon manages them.
#[derive(Clone)]
pub struct Auth {
    pub identities: Identities,
    /// The embedded server's folder (for `auth.conf` and the reload).
    pub nats_dir: PathBuf,
    /// The embedded server's URL, to see a new user take effect.
    pub nats_url: String,
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Runs the state keeper and the dispatchers, and registers and removes subscriptions.
pub struct Dispatch {
    js: jetstream::Context,
    incoming: Stream,
    registry: Registry,
    state: StateStore,
    timing: ConsumerTiming,
    default_limits: QueueLimits,
    auth: Option<Mutex<Auth>>,
    running: Mutex<BTreeMap<String, Running>>,
    statuses: Arc<Mutex<BTreeMap<String, SubscriberStatus>>>,
    keeper: Mutex<Option<Running>>,
    /// Realm and topic patterns of every subscription, for [`Dispatch::is_wanted`].
    wanted: Mutex<BTreeMap<String, (String, TopicMatcher)>>,
    /// The order of object types in a prefill (dependencies first).
    ranks: Ranks,
}

impl Dispatch {
    /// Opens the subscriptions' bucket, moves an earlier version's state bucket into `state`,
    /// starts the state keeper and a dispatcher per registered subscription.
    pub async fn start(
        js: jetstream::Context,
        incoming: Stream,
        state: StateStore,
        timing: ConsumerTiming,
        default_limits: QueueLimits,
        auth: Option<Auth>,
        ranks: Ranks,
    ) -> Result<Arc<Self>, DispatchError> {
        let registry = Registry::open(&js).await?;
        take_over_state_bucket(&js, &state).await?;
        let keeper_stop = CancellationToken::new();
        // The state keeper's consumer exists before anything is published, so the state file
        // misses nothing (interest retention keeps messages only for existing consumers).
        queue::ensure_consumer(&incoming, queue::state_keeper_consumer_config(timing)).await?;
        // The last step that can fail: nothing is started before it, so starting again after a
        // failure (NATS not ready yet) starts nothing twice.
        let subscriptions = registry.list().await?;
        let keeper_task = tokio::spawn({
            let (client, incoming) = (js.client(), incoming.clone());
            let (state, stop) = (state.clone(), keeper_stop.clone());
            async move {
                while !stop.is_cancelled() {
                    if let Err(e) =
                        state_keeper::run(&client, incoming.clone(), state.clone(), stop.clone())
                            .await
                    {
                        tracing::error!(error = %Chain(&e), "The state keeper failed; restarting it.");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        let this = Arc::new(Self {
            js,
            incoming,
            registry,
            state,
            timing,
            default_limits,
            auth: auth.map(Mutex::new),
            running: Mutex::default(),
            statuses: Arc::default(),
            keeper: Mutex::new(Some(Running {
                stop: keeper_stop,
                task: keeper_task,
            })),
            wanted: Mutex::default(),
            ranks,
        });
        for subscription in subscriptions {
            this.spawn(subscription);
        }
        Ok(this)
    }

    /// Registers a subscription: its queue, its dispatcher (from now on), its NATS user.
    pub async fn register(
        &self,
        request: SubscriptionRequest,
    ) -> Result<Subscription, DispatchError> {
        request.validate()?;
        if self.registry.get(&request.name).await?.is_some() {
            return Err(SubscriptionError::Exists(request.name).into());
        }
        let limits = QueueLimits {
            max_messages: request
                .max_messages
                .unwrap_or(self.default_limits.max_messages),
            max_bytes: request.max_bytes.unwrap_or(self.default_limits.max_bytes),
        };
        queue::setup_subscriber(&self.js, &request.name, limits, self.timing).await?;
        let start_after = self
            .incoming
            .get_info()
            .await
            .map_err(|e| DispatchError::Nats(e.into()))?
            .state
            .last_sequence;
        queue::ensure_consumer(
            &self.incoming,
            queue::dispatcher_consumer_config(
                &request.name,
                &request.realm,
                Some(start_after + 1),
                self.timing,
            ),
        )
        .await?;
        let subscription = Subscription {
            name: request.name.clone(),
            realm: request.realm,
            topics: request.topics,
            prefill: request.prefill,
            redact: request
                .redact
                .unwrap_or_else(|| DEFAULT_FIELDS.iter().map(|f| (*f).to_owned()).collect()),
            limits,
            prefill_status: if request.prefill {
                PrefillStatus::Pending
            } else {
                PrefillStatus::NotRequested
            },
            start_after,
            created: Utc::now(),
        };
        self.registry.put(&subscription).await?;
        let identity = self.update_identities(|ids| {
            ids.ensure(Role::Subscriber {
                name: subscription.name.clone(),
            })
        })?;
        if let (Some(identity), Some(auth)) = (identity, &self.auth) {
            let url = crate::locks::lock(auth).nats_url.clone();
            wait_until_accepted(&url, &identity).await;
        }
        self.spawn(subscription.clone());
        tracing::info!(subscriber = %subscription.name, topics = ?subscription.topics, prefill = subscription.prefill, "Registered a subscription.");
        Ok(subscription)
    }

    /// Registers `request` unless a subscription of that name exists (then returns that one).
    pub async fn ensure_registered(
        &self,
        request: SubscriptionRequest,
    ) -> Result<Subscription, DispatchError> {
        match self.registry.get(&request.name).await? {
            Some(existing) => Ok(existing),
            None => self.register(request).await,
        }
    }

    /// Removes a subscription with its queue, its dispatcher and its NATS user.
    pub async fn remove(&self, name: &str) -> Result<(), DispatchError> {
        if self.registry.get(name).await?.is_none() {
            return Err(SubscriptionError::Unknown(name.to_owned()).into());
        }
        let running = crate::locks::lock(&self.running).remove(name);
        if let Some(running) = running {
            running.stop.cancel();
            let _ = running.task.await;
        }
        let _ = self
            .incoming
            .delete_consumer(&queue::dispatcher_consumer(name))
            .await;
        let _ = self.js.delete_stream(queue::subscriber_stream(name)).await;
        self.registry.remove(name).await?;
        crate::locks::lock(&self.statuses).remove(name);
        crate::locks::lock(&self.wanted).remove(name);
        self.update_identities(|ids| {
            ids.remove(&Role::Subscriber {
                name: name.to_owned(),
            })
        })?;
        tracing::info!(subscriber = name, "Removed a subscription.");
        Ok(())
    }

    /// Every subscription with its status.
    pub async fn list(&self) -> Result<Vec<(Subscription, SubscriberStatus)>, DispatchError> {
        let mut out = Vec::new();
        for subscription in self.registry.list().await? {
            let mut status = crate::locks::lock(&self.statuses)
                .get(&subscription.name)
                .cloned()
                .unwrap_or_default();
            if let Ok(stream) = self
                .js
                .get_stream(queue::subscriber_stream(&subscription.name))
                .await
            {
                status.queued = stream.cached_info().state.messages;
                let consumer: Result<PullConsumer, _> =
                    stream.get_consumer(&subscription.name).await;
                if let Ok(consumer) = consumer {
                    status.redelivered = consumer.cached_info().num_redelivered as u64;
                }
            }
            out.push((subscription, status));
        }
        Ok(out)
    }

    /// Whether some subscription of `realm` wants messages of `topic`.
    pub fn is_wanted(&self, realm: &str, topic: &str) -> bool {
        crate::locks::lock(&self.wanted)
            .values()
            .any(|(r, matcher)| r == realm && matcher.matches(topic))
    }

    /// Aborts the dispatchers and the state keeper at once, as a crash would (for tests).
    pub fn abort(&self) {
        for r in crate::locks::lock(&self.running).values() {
            r.task.abort();
        }
        if let Some(keeper) = &*crate::locks::lock(&self.keeper) {
            keeper.task.abort();
        }
    }

    /// Stops the dispatchers and the state keeper.
    pub async fn stop(&self) {
        let running: Vec<Running> = std::mem::take(&mut *crate::locks::lock(&self.running))
            .into_values()
            .collect();
        let keeper = crate::locks::lock(&self.keeper).take();
        for r in running.iter().chain(keeper.iter()) {
            r.stop.cancel();
        }
        for r in running.into_iter().chain(keeper) {
            let _ = r.task.await;
        }
    }

    /// Changes the NATS users and reloads the embedded server; `None` without one.
    fn update_identities<T>(
        &self,
        change: impl FnOnce(&mut Identities) -> std::io::Result<T>,
    ) -> Result<Option<T>, DispatchError> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let mut auth = crate::locks::lock(auth);
        let result = change(&mut auth.identities).map_err(DispatchError::Identities)?;
        let users = auth.identities.nats_users();
        queue::embedded::reload_users(&auth.nats_dir, &users).map_err(DispatchError::Identities)?;
        Ok(Some(result))
    }

    fn spawn(&self, subscription: Subscription) {
        if let Ok(matcher) = TopicMatcher::new(&subscription.topics) {
            crate::locks::lock(&self.wanted).insert(
                subscription.name.clone(),
                (subscription.realm.clone(), matcher),
            );
        }
        let stop = CancellationToken::new();
        let worker = Worker {
            js: self.js.clone(),
            incoming: self.incoming.clone(),
            registry: self.registry.clone(),
            state: self.state.clone(),
            statuses: self.statuses.clone(),
            publisher: Publisher::new(self.js.clone()),
            ranks: self.ranks.clone(),
        };
        let name = subscription.name.clone();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let connection = queue::Connection::of(&worker.js.client());
                while !stop.is_cancelled() {
                    let running = worker.run(subscription.clone(), &stop);
                    // A request lost with the connection would hold the dispatcher up until its
                    // timeout; started afresh, it copies what was in flight again, read from the
                    // stream in order (`forward`).
                    let result = connection
                        .unless_reconnected(connection.epoch(), running)
                        .await
                        .unwrap_or(Ok(queue::Ended::Reconnected));
                    match result {
                        Ok(queue::Ended::Stopped) => return,
                        Ok(queue::Ended::Reconnected) => {
                            tracing::debug!(subscriber = %subscription.name, "The NATS client reconnected; restarting the dispatcher.");
                        }
                        Err(e) => {
                            tracing::error!(subscriber = %subscription.name, error = %Chain(&e), "Dispatcher failed; restarting it.");
                            tokio::select! {
                                () = stop.cancelled() => return,
                                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
            }
        });
        crate::locks::lock(&self.running).insert(name, Running { stop, task });
    }
}

/// Waits (up to 10 s) until the server, reloading its configuration, accepts `identity`: the
/// reload after SIGHUP is asynchronous, and a subscriber told "registered" must be able to log in.
async fn wait_until_accepted(url: &str, identity: &super::identity::Identity) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let attempt = identity
            .connect_options()
            .connection_timeout(Duration::from_secs(1))
            .connect(url)
            // Refusals are expected until the reload is done, and async-nats logs each one as
            // an error ("authorization violation") that would alarm an admin for nothing.
            .with_subscriber(tracing::subscriber::NoSubscriber::default())
            .await;
        if let Ok(client) = attempt {
            drop(client);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(user = %identity.user, "The NATS server did not accept the new user within 10 s.");
}

/// Tells a dispatcher's status what became of its copies.
struct StatusReport<'a> {
    worker: &'a Worker,
    name: &'a str,
}

impl super::forward::Report for StatusReport<'_> {
    fn stored(&self, count: usize) {
        if count == 0 {
            return;
        }
        self.worker.update_status(self.name, |s| {
            if s.full.take().is_some() {
                tracing::info!(subscriber = %self.name, "The subscriber's queue accepts messages again.");
            }
            s.dispatched += count as u64;
        });
    }

    fn refused(&self, error: &PublishError) {
        let full = matches!(error, PublishError::QueueFull(_));
        self.worker.update_status(self.name, |s| {
            if full && s.full.is_none() {
                tracing::warn!(subscriber = %self.name, error = %Chain(error), "The subscriber's queue is full; its messages wait until it drains.");
                s.full = Some(crate::telemetry::error_chain(error));
            } else if !full {
                tracing::warn!(subscriber = %self.name, error = %Chain(error), "Cannot copy a message into the subscriber's queue; retrying.");
            }
        });
    }
}

/// One subscriber's dispatcher.
struct Worker {
    js: jetstream::Context,
    incoming: Stream,
    registry: Registry,
    state: StateStore,
    statuses: Arc<Mutex<BTreeMap<String, SubscriberStatus>>>,
    publisher: Publisher,
    ranks: Ranks,
}

impl Worker {
    async fn run(
        &self,
        subscription: Subscription,
        stop: &CancellationToken,
    ) -> Result<queue::Ended, DispatchError> {
        // After a restart the registry knows whether the prefill is done already.
        let mut subscription = self
            .registry
            .get(&subscription.name)
            .await
            .ok()
            .flatten()
            .unwrap_or(subscription);
        let matcher = TopicMatcher::new(&subscription.topics)?;
        if subscription.prefill_status == PrefillStatus::Pending {
            if !self.prefill(&subscription, &matcher, stop).await? {
                return Ok(queue::Ended::Stopped);
            }
            subscription.prefill_status = PrefillStatus::Done;
            self.registry.put(&subscription).await?;
        }
        let consumer: PullConsumer = self
            .incoming
            .get_consumer(&queue::dispatcher_consumer(&subscription.name))
            .await
            .map_err(DispatchError::Nats)?;
        let source = super::forward::Source {
            client: &self.js.client(),
            incoming: &self.incoming,
            consumer: &consumer,
        };
        super::forward::run(
            source,
            self.publisher.clone(),
            &subscription,
            &matcher,
            &StatusReport {
                worker: self,
                name: &subscription.name,
            },
            stop,
        )
        .await
        .map_err(|e| DispatchError::Nats(e.into()))
    }

    /// Copies one message into the subscriber's queue, waiting while the queue is full.
    /// Returns false if stopped meanwhile.
    async fn copy(
        &self,
        subscription: &Subscription,
        mut message: ProvisioningMessage,
        msg_id: &str,
        stop: &CancellationToken,
    ) -> bool {
        redact(&mut message, &subscription.redact);
        let subject = queue::subscriber_subject(&subscription.name, &message.realm, &message.topic);
        loop {
            match self
                .publisher
                .publish_to(subject.clone(), &message, msg_id)
                .await
            {
                Ok(_) => {
                    self.update_status(&subscription.name, |s| {
                        if s.full.take().is_some() {
                            tracing::info!(subscriber = %subscription.name, "The subscriber's queue accepts messages again.");
                        }
                        s.dispatched += 1;
                    });
                    return true;
                }
                Err(e) => {
                    let full = matches!(e, PublishError::QueueFull(_));
                    self.update_status(&subscription.name, |s| {
                        if full && s.full.is_none() {
                            tracing::warn!(subscriber = %subscription.name, error = %Chain(&e), "The subscriber's queue is full; its messages wait until it drains.");
                            s.full = Some(crate::telemetry::error_chain(&e));
                        } else if !full {
                            tracing::warn!(subscriber = %subscription.name, error = %Chain(&e), "Cannot copy a message into the subscriber's queue; retrying.");
                        }
                    });
                    tokio::select! {
                        () = stop.cancelled() => return false,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }

    /// Sends the current state of the subscriber's objects. Returns false if stopped.
    async fn prefill(
        &self,
        subscription: &Subscription,
        matcher: &TopicMatcher,
        stop: &CancellationToken,
    ) -> Result<bool, state_keeper::StateError> {
        // Wait until the state file holds everything up to the seam.
        loop {
            let position = state_keeper::position(&self.incoming).await?;
            let drained = self
                .incoming
                .get_info()
                .await
                .map(|i| i.state.last_sequence <= position)
                .unwrap_or(false);
            if position >= subscription.start_after || drained {
                break;
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(false),
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        let mut entries: Vec<_> = self
            .state
            .entries(&subscription.realm)
            .await
            .map_err(state_keeper::StateError::from)?
            .into_iter()
            .filter(|e| e.seq <= subscription.start_after && matcher.matches(&e.message.topic))
            .collect();
        entries.sort_by_key(|e| (self.ranks.rank(&e.message.topic, false), e.seq));
        let count = entries.len();
        for entry in entries {
            let mut message = entry.message;
            message.op = Operation::Snapshot;
            message.publisher_name = "prefill".into();
            let id = format!("prefill-{}", message.id);
            if !self.copy(subscription, message, &id, stop).await {
                return Ok(false);
            }
        }
        tracing::info!(subscriber = %subscription.name, objects = count, "Prefill done; live messages follow.");
        let _ = &self.js;
        Ok(true)
    }

    fn update_status(&self, name: &str, change: impl FnOnce(&mut SubscriberStatus)) {
        let mut statuses = crate::locks::lock(&self.statuses);
        change(statuses.entry(name.to_owned()).or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::super::identity::{Identities, Role};
    use super::*;
    use crate::queue::embedded::{reload_users, EmbeddedSettings, NatsServer};
    use crate::telemetry::sink::Sink;

    #[tokio::test]
    async fn waiting_for_the_server_to_accept_a_new_user_logs_no_error() {
        let data = tempfile::tempdir().unwrap();
        let mut identities = Identities::load(data.path()).unwrap();
        let nats_dir = data.path().join("nats");
        let server = NatsServer::start(EmbeddedSettings {
            binary: None,
            dir: nats_dir.clone(),
            port: 0,
            users: Some(identities.nats_users()),
        })
        .await
        .unwrap();
        let newcomer = identities
            .ensure(Role::Subscriber { name: "crm".into() })
            .unwrap();

        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // The test's runtime polls everything on this thread.
        let _logging = tracing::subscriber::set_default(subscriber);
        let reload_late = async {
            // The server refuses the new user a few times first.
            tokio::time::sleep(Duration::from_millis(300)).await;
            reload_users(&nats_dir, &identities.nats_users()).unwrap();
        };
        tokio::join!(wait_until_accepted(server.url(), &newcomer), reload_late);

        let log = sink.text();
        assert!(!log.contains("ERROR"), "{log}");
        assert!(!log.contains("WARN"), "accepted within the wait: {log}");
        newcomer
            .connect_options()
            .connect(server.url())
            .await
            .unwrap();
        server.stop().await;
    }
}
