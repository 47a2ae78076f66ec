//! Wiring: starts the steps of the flow as tasks and stops them in flow order.
//!
//! Start: data folders → NATS (embedded child process or the configured URL) → JetStream stream
//! and consumer → the watcher (① listener files → ② messages → ③ publish) and the ordered
//! consumer (③ → ④ apply → ⑥ delete file → ack); the consumer is given the "delete file" step
//! (`ListenerFiles`) and provisioning its look into the queue ([`queue::peek`]) here.
//!
//! Stop (the root token is cancelled by a signal or a test): first the watcher, so nothing new is
//! published; then the consumer, which finishes the change it is applying (an OX call is never
//! cut off halfway) or hands back the one waiting for a retry; then the NATS connection is
//! flushed and the embedded server stopped with SIGTERM so JetStream writes everything out.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::apply::Applier;
use crate::config::{NatsTarget, Settings};
use crate::dispatch::dispatcher::Auth;
use crate::dispatch::identity::{self, Identities, Identity, Role};
use crate::dispatch::state_store::StateStore;
use crate::dispatch::{Dispatch, SubscriptionRequest};
use crate::listener::watch::{self, Sink, SinkError};
use crate::listener::ListenerFile;
use crate::message::ProvisioningMessage;
use crate::ops::ready::OxProbe;
use crate::ops::Ops;
use crate::provision::OxApplier;
use crate::queue::embedded::{EmbeddedError, NatsServer};
use crate::queue::publish::{Confirmed, Pipeline, PipelineFailure, PublishError, Publisher};
use crate::queue::{self, consume};
use crate::status::StatusBoard;
use crate::telemetry::events;

/// How long the orderly shutdown may take before the daemon gives up waiting.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot create {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Locked(#[from] crate::data_lock::LockError),
    #[error(transparent)]
    NoSpace(#[from] queue::storage::BudgetError),
    #[error(transparent)]
    EmbeddedNats(#[from] EmbeddedError),
    #[error(transparent)]
    State(#[from] crate::dispatch::state_store::StateStoreError),
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot use NATS at {url}: {source}")]
    ServerTooOld {
        url: String,
        #[source]
        source: queue::ServerTooOld,
    },
    #[error(
        "cannot open the admin API on {addr} (--admin-listen, OX_CONNECTOR_ADMIN_LISTEN): {source}"
    )]
    Admin {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up OX provisioning: {0}")]
    Applier(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stopped before the queue was ready")]
    Cancelled,
    #[error("the daemon did not stop within {0:?}")]
    ShutdownTimeout(Duration),
}

/// A running daemon. The stages stop in flow order ([`Daemon::wait`]): each has its own token,
/// cancelled only once the stage before it has finished.
pub struct Daemon {
    /// The root token: cancelling it (a signal, or a test) starts the orderly stop.
    shutdown: CancellationToken,
    /// Stops the listener folder watcher first: no new publishes.
    listener_stop: CancellationToken,
    /// Stops the OX consumer between two messages, after the watcher has stopped.
    consumer_stop: CancellationToken,
    /// The watcher (listener files → JetStream).
    listener_task: JoinHandle<()>,
    /// The OX subscriber (queue → OX; deletes the applied files).
    consumer_task: JoinHandle<()>,
    /// Stops the admin API, the periodic reconcile and the status heartbeat, last of the stages.
    admin_stop: CancellationToken,
    /// The admin API with the periodic reconcile and the status file's heartbeat.
    admin_task: JoinHandle<()>,
    /// The embedded nats-server's supervisor and its stop token; `None` with an external server.
    nats_task: Option<(CancellationToken, JoinHandle<()>)>,
    /// The dispatcher copying incoming messages into each subscriber's queue.
    dispatch: Arc<Dispatch>,
    /// The NATS connections (service, publisher, OX subscriber), flushed at the end.
    clients: Vec<async_nats::Client>,
    nats_url: String,
    status: StatusBoard,
    /// Wakes the watcher (`pick_up_files`, the admin API's requeue).
    wake: Arc<Notify>,
    /// Cuts the consumer's retry wait short (`retry_now`, the admin API's skip).
    retry_now: Arc<Notify>,
    /// Held until the daemon is gone: one daemon per data directory.
    _lock: crate::data_lock::DataDirLock,
}

impl Daemon {
    /// Starts every step. Returns once the queue is ready and the tasks run; cancelling
    /// `shutdown` then stops the daemon (see [`Daemon::wait`]).
    pub async fn start<A: Applier>(
        settings: Settings,
        applier: A,
        shutdown: CancellationToken,
    ) -> Result<Self, AppError> {
        let ready = |_| async { Ok::<_, std::convert::Infallible>(applier) };
        Self::start_with(settings, ready, shutdown).await
    }

    /// Starts the daemon with the OX applier (state store and credentials in NATS). At the
    /// first start after an upgrade from the Python app, its state is imported before any
    /// change is applied ([`crate::ops::import::import_at_first_start`]).
    pub async fn start_ox(
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, AppError> {
        let (ox, data_dir) = (settings.ox.clone(), settings.data_dir.clone());
        // With one change after the other there is nothing to limit.
        let limiter = (settings.apply_concurrency > 1)
            .then(|| crate::ox::limit::Limiter::new(settings.apply_concurrency));
        let ops_applier = Arc::new(OnceLock::new());
        let stash = ops_applier.clone();
        Self::start_inner(
            settings,
            |js| async move {
                // Provisioning may apply a context creation queued behind its first user.
                let queued = queue::peek::SubscriberQueue::open(&js, queue::OX_SUBSCRIBER)
                    .await
                    .map(|queue| Arc::new(queue) as Arc<dyn crate::apply::QueuedMessages>);
                let applier = OxApplier::open_limited(ox, limiter, &data_dir, &js, queued).await?;
                crate::ops::import::import_at_first_start(&applier, &data_dir).await;
                let _ = stash.set(applier.clone());
                Ok::<_, crate::provision::ProvisionError>(applier)
            },
            ops_applier,
            shutdown,
        )
        .await
    }

    /// Like [`Daemon::start`], with the applier made once NATS is connected.
    pub async fn start_with<A, E, F, Fut>(
        settings: Settings,
        make_applier: F,
        shutdown: CancellationToken,
    ) -> Result<Self, AppError>
    where
        A: Applier,
        F: FnOnce(jetstream::Context) -> Fut,
        Fut: std::future::Future<Output = Result<A, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Self::start_inner(settings, make_applier, Arc::new(OnceLock::new()), shutdown).await
    }

    /// Starts every step; `ops_applier` is filled by `make_applier` when it makes the OX
    /// applier, which the admin operations (reconcile, state import) then use.
    async fn start_inner<A, E, F, Fut>(
        mut settings: Settings,
        make_applier: F,
        ops_applier: Arc<OnceLock<OxApplier>>,
        shutdown: CancellationToken,
    ) -> Result<Self, AppError>
    where
        A: Applier,
        F: FnOnce(jetstream::Context) -> Fut,
        Fut: std::future::Future<Output = Result<A, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let lock = take_data_dir(&settings)?;
        let status = StatusBoard::new(Some(settings.status_file()));
        let admin_error = |source| AppError::Admin {
            addr: settings.admin_listen,
            source,
        };
        let (token, admin_listener) = bind_admin(&settings).await.map_err(admin_error)?;
        let starting = Starting::serve(&admin_listener).map_err(admin_error)?;

        if let NatsTarget::Embedded(options) = &settings.nats {
            settings.queue_limits = fit_the_store(&options.dir, settings.queue_limits)?;
        }
        let (url, nats_task, identities) = start_nats(&settings, &status).await?;
        let [client, publisher_client, ox_client] =
            connect_clients(&url, identities.as_ref().map(|(ids, _)| ids), &shutdown).await?;
        let (js, dispatch) = start_queue(
            &settings, &client, &url, identities, &status, &starting, &shutdown,
        )
        .await?;
        let applier = make_applier(js.clone())
            .await
            .map_err(|e| AppError::Applier(e.into()))?;
        show_ox_calls(&status, ops_applier.get());
        let wake = Arc::new(Notify::new());
        let retry_now = Arc::new(Notify::new());
        let stages = Stages {
            settings: &settings,
            client: &client,
            js: &js,
            dispatch: &dispatch,
            status: &status,
            wake: &wake,
            retry_now: &retry_now,
        };
        let listener_stop = CancellationToken::new();
        let listener_task = stages.spawn_listener(&publisher_client, &listener_stop);
        let consumer_stop = CancellationToken::new();
        let consumer_task = stages.spawn_consumer(&ox_client, applier, &consumer_stop);
        starting.done().await;
        let admin_listener =
            tokio::net::TcpListener::from_std(admin_listener).map_err(admin_error)?;
        let admin_stop = CancellationToken::new();
        let admin_task = stages.spawn_admin(admin_listener, token, ops_applier, &admin_stop);
        tracing::info!(
            data_dir = %settings.data_dir.display(),
            nats = %url,
            "ox-connector is running."
        );
        Ok(Self {
            shutdown,
            listener_stop,
            consumer_stop,
            listener_task,
            consumer_task,
            admin_stop,
            admin_task,
            nats_task,
            dispatch,
            clients: vec![client, publisher_client, ox_client],
            nats_url: url.clone(),
            status,
            wake,
            retry_now,
            _lock: lock,
        })
    }

    /// The URL of the NATS server the daemon uses (the embedded one's, if it started one).
    pub fn nats_url(&self) -> &str {
        &self.nats_url
    }

    /// The dispatcher (subscriptions and their queues).
    pub fn dispatch(&self) -> &Arc<Dispatch> {
        &self.dispatch
    }

    /// The daemon's status board.
    pub fn status(&self) -> &StatusBoard {
        &self.status
    }

    /// Asks the watcher to look at the listener folder now.
    pub fn pick_up_files(&self) {
        self.wake.notify_one();
    }

    /// Cuts the wait before the next retry of a failing change short.
    pub fn retry_now(&self) {
        crate::queue::consume::retry_all_now(&self.retry_now);
    }

    /// Waits until the root token is cancelled, then stops in flow order.
    pub async fn wait(self) -> Result<(), AppError> {
        self.shutdown.cancelled().await;
        let stop = async {
            self.listener_stop.cancel();
            let _ = self.listener_task.await;
            self.consumer_stop.cancel();
            let _ = self.consumer_task.await;
            self.dispatch.stop().await;
            self.admin_stop.cancel();
            let _ = self.admin_task.await;
            for client in self.clients {
                if let Err(e) = client.flush().await {
                    tracing::warn!(error = %e, "Cannot flush a NATS connection.");
                }
            }
            if let Some((stop, task)) = self.nats_task {
                stop.cancel();
                let _ = task.await;
            }
        };
        tokio::time::timeout(SHUTDOWN_DEADLINE, stop)
            .await
            .map_err(|_| AppError::ShutdownTimeout(SHUTDOWN_DEADLINE))?;
        tracing::info!("ox-connector stopped.");
        Ok(())
    }

    /// Stops every task at once without any of the orderly steps, as a crash (`kill -9`) would.
    /// The embedded nats-server, if any, is killed too. For tests of recovery.
    pub async fn crash(self) {
        self.listener_task.abort();
        self.consumer_task.abort();
        self.admin_task.abort();
        self.dispatch.abort();
        let _ = self.listener_task.await;
        let _ = self.consumer_task.await;
        let _ = self.admin_task.await;
        if let Some((_, task)) = self.nats_task {
            task.abort();
            let _ = task.await;
        }
    }
}

/// The status shows the OX calls in flight and their limit, when the OX applier limits them.
fn show_ox_calls(status: &StatusBoard, ox: Option<&OxApplier>) {
    if let Some(limiter) = ox.and_then(|a| a.provisioner().ox.limiter()) {
        let limiter = limiter.clone();
        status.show_ox_calls(Arc::new(move || limiter.calls()));
    }
}

/// Creates the data and listener folders and takes the data directory's lock — before
/// anything else: a second daemon on this data directory must touch nothing.
fn take_data_dir(settings: &Settings) -> Result<crate::data_lock::DataDirLock, AppError> {
    for dir in [settings.data_dir.clone(), settings.listener_dir()] {
        std::fs::create_dir_all(&dir).map_err(|source| AppError::DataDir { path: dir, source })?;
    }
    Ok(crate::data_lock::DataDirLock::acquire(&settings.data_dir)?)
}

/// The admin API's token (made at the first start) and its bound port.
async fn bind_admin(settings: &Settings) -> std::io::Result<(String, std::net::TcpListener)> {
    let token = admin::ensure_token(&settings.data_dir)?;
    let listener = tokio::net::TcpListener::bind(settings.admin_listen)
        .await
        .and_then(tokio::net::TcpListener::into_std)?;
    Ok((token, listener))
}

/// The NATS server: the embedded one started (with a user per identity) and supervised, or the
/// external one's URL. Returns the URL, the supervisor, and the identities with the store folder.
async fn start_nats(
    settings: &Settings,
    status: &StatusBoard,
) -> Result<(String, NatsTask, Option<(Identities, std::path::PathBuf)>), AppError> {
    let options = match &settings.nats {
        NatsTarget::External { url, .. } => return Ok((url.clone(), None, None)),
        NatsTarget::Embedded(options) => options,
    };
    let identities_error = |source| AppError::DataDir {
        path: settings.data_dir.join(identity::FILE),
        source,
    };
    let mut identities = Identities::load(&settings.data_dir).map_err(identities_error)?;
    identities
        .ensure(Role::Subscriber {
            name: queue::OX_SUBSCRIBER.into(),
        })
        .map_err(identities_error)?;
    let mut options = options.clone();
    options.users = Some(identities.nats_users());
    let server = NatsServer::start(options.clone()).await?;
    let url = server.url().to_owned();
    let stop = CancellationToken::new();
    let task = tokio::spawn(supervise_nats(
        server,
        options.binary.clone(),
        status.clone(),
        stop.clone(),
    ));
    Ok((url, Some((stop, task)), Some((identities, options.dir))))
}

/// The embedded nats-server's supervisor and its stop token.
type NatsTask = Option<(CancellationToken, JoinHandle<()>)>;

/// The service, publisher and OX subscriber connections, each with its identity (if any).
async fn connect_clients(
    url: &str,
    identities: Option<&Identities>,
    shutdown: &CancellationToken,
) -> Result<[async_nats::Client; 3], AppError> {
    let identity = |role: Role| identities.and_then(|ids| ids.by_role(&role));
    let client = connect(url, identity(Role::Service), shutdown).await?;
    let publisher_client = connect(
        url,
        identity(Role::Publisher {
            realm: crate::message::REALM_UDM.into(),
        }),
        shutdown,
    )
    .await?;
    let ox_client = connect(
        url,
        identity(Role::Subscriber {
            name: queue::OX_SUBSCRIBER.into(),
        }),
        shutdown,
    )
    .await?;
    Ok([client, publisher_client, ox_client])
}

/// Step ③: the incoming stream, the dispatcher and the OX subscriber's queue, each waited for
/// while the nats-server (re)starts; the queue's pause is read into the status.
async fn start_queue(
    settings: &Settings,
    client: &async_nats::Client,
    url: &str,
    identities: Option<(Identities, std::path::PathBuf)>,
    status: &StatusBoard,
    starting: &Starting,
    shutdown: &CancellationToken,
) -> Result<(jetstream::Context, Arc<Dispatch>), AppError> {
    let js = jetstream::new(client.clone());
    let incoming = until_ready(shutdown, starting, || {
        queue::setup_incoming(&js, settings.queue_limits, settings.replicas())
    })
    .await?;
    // Connected by now (the client only knows the server's version once it is).
    queue::check_server_version(&client.server_info().version).map_err(|source| {
        AppError::ServerTooOld {
            url: url.to_owned(),
            source,
        }
    })?;
    let auth = identities.map(|(identities, nats_dir)| Auth {
        identities,
        nats_dir,
        nats_url: url.to_owned(),
    });
    let state = StateStore::open(&settings.data_dir)?;
    // Like the stream above: a nats-server that is (re)starting is waited for.
    let dispatch = until_ready(shutdown, starting, || {
        Dispatch::start(
            js.clone(),
            incoming.clone(),
            state.clone(),
            settings.consumer_timing(),
            settings.queue_limits,
            auth.clone(),
            batch_ranks(),
        )
    })
    .await?;
    until_ready(shutdown, starting, || {
        dispatch.ensure_registered(ox_subscription(settings))
    })
    .await?;
    match queue::pause::paused(&js, queue::OX_SUBSCRIBER).await {
        Ok(paused) => status.set_paused(paused),
        Err(e) => tracing::debug!(error = %e, "Cannot tell whether the queue is paused."),
    }
    Ok((js, dispatch))
}

/// What the stages started after the queue share.
struct Stages<'a> {
    settings: &'a Settings,
    client: &'a async_nats::Client,
    js: &'a jetstream::Context,
    dispatch: &'a Arc<Dispatch>,
    status: &'a StatusBoard,
    wake: &'a Arc<Notify>,
    retry_now: &'a Arc<Notify>,
}

impl Stages<'_> {
    /// Step ①→③: the watcher publishing listener files through the publisher's connection.
    fn spawn_listener(
        &self,
        publisher_client: &async_nats::Client,
        stop: &CancellationToken,
    ) -> JoinHandle<()> {
        let sink = PublishSink {
            pipeline: Pipeline::new(
                Publisher::new(jetstream::new(publisher_client.clone())),
                crate::queue::publish::WINDOW,
            ),
            dispatch: self.dispatch.clone(),
            status: self.status.clone(),
            failing: false,
        };
        let (settings, wake, stop) = (self.settings.watch(), self.wake.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(e) = watch::run(settings, batch_ranks(), sink, wake, stop).await {
                tracing::error!(error = %e, "The listener folder watcher stopped.");
            }
        })
    }

    /// Steps ③→⑥: the OX subscriber, through its own connection.
    fn spawn_consumer<A: Applier>(
        &self,
        ox_client: &async_nats::Client,
        applier: A,
        stop: &CancellationToken,
    ) -> JoinHandle<()> {
        let source = ConsumerSource {
            service: self.js.clone(),
            subscriber: ox_client.clone(),
            timing: self.settings.consumer_timing(),
        };
        let applier = Arc::new(applier);
        let on_applied: Arc<dyn consume::OnApplied> = Arc::new(ListenerFiles {
            dir: self.settings.listener_dir(),
        });
        let (settings, status, retry_now) = (
            self.settings.consume(),
            self.status.clone(),
            self.retry_now.clone(),
        );
        let steps = move || consume::Steps {
            applier: applier.clone(),
            on_applied: on_applied.clone(),
            settings: settings.clone(),
            status: status.clone(),
            retry_now: retry_now.clone(),
        };
        tokio::spawn(consume_until_stopped(source, steps, stop.clone()))
    }

    /// What the admin API's operations need from the running daemon.
    fn admin_ops(&self, ox: Arc<OnceLock<OxApplier>>) -> Arc<Ops> {
        let settings = self.settings;
        Arc::new(Ops {
            data_dir: settings.data_dir.clone(),
            listener_dir: settings.listener_dir(),
            client: self.client.clone(),
            js: self.js.clone(),
            status: self.status.clone(),
            wake: self.wake.clone(),
            retry_now: self.retry_now.clone(),
            metrics: crate::telemetry::metrics::install(),
            probe: OxProbe::new(&settings.ox.soap_server),
            login: Default::default(),
            listener_check: Default::default(),
            ox,
            open_reads: settings.admin_listen.ip().is_loopback(),
        })
    }

    /// The admin API, with the periodic reconcile and the status file's heartbeat, until `stop`.
    fn spawn_admin(
        &self,
        admin_listener: tokio::net::TcpListener,
        token: String,
        ox: Arc<OnceLock<OxApplier>>,
        stop: &CancellationToken,
    ) -> JoinHandle<()> {
        let ops = self.admin_ops(ox);
        let state = AdminState {
            status: self.status.clone(),
            wake: self.wake.clone(),
            retry_now: self.retry_now.clone(),
            listener_dir: self.settings.listener_dir(),
            token: Arc::from(token),
            dispatch: Some(self.dispatch.clone()),
            ops: Some(ops.clone()),
        };
        let (data_dir, stop) = (self.settings.data_dir.clone(), stop.clone());
        let reconcile_interval = self.settings.reconcile_interval;
        let heartbeat = self.status.clone();
        tokio::spawn(async move {
            // The periodic reconcile only reads and reports; it stops with the admin API.
            let periodic = async {
                if let Some(interval) = reconcile_interval {
                    crate::ops::reconcile::run_periodic(ops, interval, stop.clone()).await;
                }
            };
            let serve = async {
                if let Err(e) = admin::serve(admin_listener, state, &data_dir, stop.clone()).await {
                    tracing::error!(error = %e, "The admin API stopped.");
                }
            };
            // The status file's heartbeat also stops with the admin API.
            tokio::join!(serve, periodic, heartbeat.beat(stop.clone()));
        })
    }
}

/// Gives the embedded server's store as much as its disk allows and returns the queue limits
/// that fit it (lowered with a warning, or refused: [`queue::storage::fit`]).
fn fit_the_store(
    store: &std::path::Path,
    limits: queue::QueueLimits,
) -> Result<queue::QueueLimits, AppError> {
    let budget = queue::storage::fit(store, limits)?;
    if let Some(asked) = budget.lowered_from {
        tracing::warn!(
            asked,
            lowered = budget.limits.max_bytes,
            store = %store.display(),
            max_store = budget.max_store,
            "The queue limit does not fit the disk of the NATS store; lowered it. Free space \
             there, or set OX_CONNECTOR_QUEUE_MAX_BYTES to at most the lowered value."
        );
    }
    queue::embedded::write_store_limit(store, budget.max_store).map_err(|source| {
        AppError::DataDir {
            path: store.to_owned(),
            source,
        }
    })?;
    Ok(budget.limits)
}

/// Runs the daemon with the OX applier until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), AppError> {
    Daemon::start_ox(settings, shutdown).await?.wait().await
}

/// Connects to NATS. A lost connection is a warning, except once `shutdown` is cancelled: the
/// embedded nats-server is stopped last, while the connections are still open.
async fn connect(
    url: &str,
    identity: Option<Identity>,
    shutdown: &CancellationToken,
) -> Result<async_nats::Client, AppError> {
    let options = match &identity {
        Some(identity) => identity.connect_options(),
        None => async_nats::ConnectOptions::new(),
    };
    let name = identity
        .as_ref()
        .map_or("ox-connector".to_owned(), |i| i.user.clone());
    options
        .name(name)
        .retry_on_initial_connect()
        .event_callback({
            let stopping = shutdown.clone();
            move |event| {
                let stopping = stopping.is_cancelled();
                async move {
                    match event {
                        async_nats::Event::Connected => tracing::debug!("Connected to NATS."),
                        async_nats::Event::Disconnected if stopping => {
                            tracing::debug!("The connection to NATS ended while stopping.")
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("Lost the connection to NATS; reconnecting.")
                        }
                        other => tracing::debug!(event = %other, "NATS connection event."),
                    }
                }
            }
        })
        .connect(
            crate::config::nats_servers(url).map_err(|e| AppError::Connect {
                url: url.to_owned(),
                source: e.into(),
            })?,
        )
        .await
        .map_err(|e| AppError::Connect {
            url: url.to_owned(),
            source: e.into(),
        })
}

/// While the daemon starts, `GET /health` on the admin port answers 503 with what the daemon
/// waits for (JetStream not ready, and why) instead of not at all; the full admin API takes the
/// port over once the daemon is ready.
struct Starting {
    waiting: Arc<std::sync::Mutex<String>>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Starting {
    fn serve(listener: &std::net::TcpListener) -> std::io::Result<Self> {
        let early = tokio::net::TcpListener::from_std(listener.try_clone()?)?;
        let waiting = Arc::new(std::sync::Mutex::new("connecting to NATS".to_owned()));
        let health = {
            let waiting = waiting.clone();
            move || {
                let text = crate::locks::lock(&waiting).clone();
                async move {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        format!("starting: {text}\n"),
                    )
                }
            }
        };
        let router = axum::Router::new().route("/health", axum::routing::get(health));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let _ = axum::serve(early, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
            }
        });
        Ok(Self {
            waiting,
            stop,
            task: Some(task),
        })
    }

    fn waiting_for(&self, reason: String) {
        *crate::locks::lock(&self.waiting) = reason;
    }

    /// Hands the port over (a connection kept open by a client is cut after 2 s).
    async fn done(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Retries `step` every 2 s while NATS is not ready yet, until it succeeds or `shutdown`; what
/// it waits for is shown by `/health` meanwhile.
async fn until_ready<T, E, F, Fut>(
    shutdown: &CancellationToken,
    starting: &Starting,
    mut step: F,
) -> Result<T, AppError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempts = 0u32;
    loop {
        match step().await {
            Ok(value) => return Ok(value),
            Err(e) => {
                attempts += 1;
                starting.waiting_for(format!("JetStream is not ready ({attempts} attempts): {e}"));
                if attempts == 1 || attempts % 30 == 0 {
                    tracing::warn!(error = %e, attempts, "JetStream is not ready; retrying.");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Err(AppError::Cancelled),
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// The batch order of listener files: the OX object kinds' ranks.
fn batch_ranks() -> crate::listener::batch::Ranks {
    crate::listener::batch::Ranks::new(crate::provision::kind::batch_ranks())
}

/// The OX subscriber's subscription: the modules of the object kinds it provisions.
fn ox_subscription(settings: &Settings) -> SubscriptionRequest {
    SubscriptionRequest {
        name: queue::OX_SUBSCRIBER.into(),
        realm: crate::message::REALM_UDM.into(),
        topics: crate::provision::kind::ox_topics(),
        prefill: false,
        redact: None,
        max_messages: Some(settings.queue_limits.max_messages),
        max_bytes: Some(settings.queue_limits.max_bytes),
    }
}

/// Where the OX subscriber's consumer comes from: made afresh by the service connection, read
/// through the subscriber's own.
struct ConsumerSource {
    service: jetstream::Context,
    subscriber: async_nats::Client,
    timing: queue::ConsumerTiming,
}

/// Why the OX subscriber's consumer could not be opened.
#[derive(Debug, thiserror::Error)]
enum OpenConsumerError {
    #[error(transparent)]
    Create(#[from] queue::SetupError),
    #[error("cannot read the OX subscriber's queue: {0}")]
    Stream(#[source] jetstream::context::GetStreamError),
    #[error("cannot open the OX subscriber's consumer: {0}")]
    Consumer(#[source] async_nats::Error),
}

impl ConsumerSource {
    /// Creates the consumer afresh (see [`queue::recreate_subscriber_consumer`]) and opens it.
    async fn open(
        &self,
        max_in_flight: i64,
    ) -> Result<jetstream::consumer::PullConsumer, OpenConsumerError> {
        queue::recreate_subscriber_consumer(
            &self.service,
            queue::OX_SUBSCRIBER,
            self.timing,
            max_in_flight,
        )
        .await?;
        jetstream::new(self.subscriber.clone())
            .get_stream(queue::subscriber_stream(queue::OX_SUBSCRIBER))
            .await
            .map_err(OpenConsumerError::Stream)?
            .get_consumer(queue::OX_SUBSCRIBER)
            .await
            .map_err(OpenConsumerError::Consumer)
    }
}

/// Runs the ordered consumer until `stop`; a failed consumer is opened afresh and run again.
async fn consume_until_stopped<A: Applier>(
    source: ConsumerSource,
    steps: impl Fn() -> consume::Steps<A> + Send,
    stop: CancellationToken,
) {
    let connection = queue::Connection::of(&source.subscriber);
    loop {
        let first = steps();
        let retry_delay = first.settings.retry_delay;
        let opening = source.open(first.settings.max_ack_pending());
        // A request lost with the connection would only end at its timeout.
        let Some(opened) = connection
            .unless_reconnected(connection.epoch(), opening)
            .await
        else {
            tracing::debug!(
                "The NATS client reconnected while opening the queue consumer; opening it again."
            );
            continue;
        };
        match opened {
            Ok(consumer) => {
                match consume::run(&source.subscriber, consumer, first, stop.clone()).await {
                    Ok(queue::Ended::Stopped) => return,
                    // Opened afresh, the consumer starts again at the queue's first
                    // unacknowledged message (`queue::Ended::Reconnected`).
                    Ok(queue::Ended::Reconnected) => {
                        tracing::debug!(
                            "The NATS client reconnected; opening the queue consumer afresh."
                        );
                        continue;
                    }
                    Err(e) => tracing::error!(
                        error = %crate::telemetry::Chain(&e),
                        "The queue consumer failed; restarting it."
                    ),
                }
            }
            // NATS is not there (yet, or again): retried like the rest of the start-up.
            Err(e) => tracing::warn!(
                error = %crate::telemetry::Chain(&e),
                "Cannot open the queue consumer; retrying."
            ),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(retry_delay) => {}
        }
    }
}

/// The step after apply ([`consume::OnApplied`]): the applied change's listener file is deleted
/// ([`crate::done`]); a change whose file is gone (an admin removed it) is skipped.
struct ListenerFiles {
    dir: std::path::PathBuf,
}

impl consume::OnApplied for ListenerFiles {
    fn still_wanted(&self, message: &ProvisioningMessage) -> bool {
        match message.source_file() {
            // symlink_metadata: a file that is there counts, whatever it points to.
            Some(file) => std::fs::symlink_metadata(self.dir.join(file)).is_ok(),
            None => true,
        }
    }

    fn applied(&self, message: &ProvisioningMessage) {
        if let Some(file) = message.source_file() {
            if let Err(error) = crate::done::delete_applied(&self.dir, file) {
                events::FileDeleteError { error: &error }.emit();
            }
        }
    }
}

/// Keeps the embedded nats-server running: restarts it if it dies, stops it on `stop`. Watches
/// the free space of its store: a full file system is reported, and once space is back the
/// server is restarted so that it writes again ([`queue::storage`]).
async fn supervise_nats(
    mut server: NatsServer,
    binary: Option<std::path::PathBuf>,
    status: StatusBoard,
    stop: CancellationToken,
) {
    let mut space = queue::storage::SpaceWatch::default();
    let mut check = tokio::time::interval(queue::storage::CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                server.stop().await;
                return;
            }
            status = server.exited() => {
                tracing::error!(status = %status, "The embedded nats-server exited; restarting it.");
                if !restart_nats(&mut server, &binary, false, &stop).await {
                    return;
                }
            }
            _ = check.tick() => {
                let Ok(free) = queue::storage::free_bytes(server.dir()) else { continue };
                match space.observe(free) {
                    Some(queue::storage::SpaceChange::RanFull { free }) => {
                        let reason = queue::storage::full_reason(server.dir(), free);
                        tracing::error!("The queue takes no changes: {reason}.");
                        status.set_queue_full(reason);
                    }
                    Some(queue::storage::SpaceChange::Returned { free }) => {
                        tracing::info!(
                            free,
                            "Space returned on the file system of the NATS store; restarting the \
                             embedded nats-server so that it writes again."
                        );
                        if !restart_nats(&mut server, &binary, true, &stop).await {
                            return;
                        }
                        status.clear_queue_full();
                    }
                    None => {}
                }
            }
        }
    }
}

/// Restarts the embedded server (stopping it gracefully first if `graceful`), retrying every
/// 5 s; `false` if `stop` came first.
async fn restart_nats(
    server: &mut NatsServer,
    binary: &Option<std::path::PathBuf>,
    graceful: bool,
    stop: &CancellationToken,
) -> bool {
    let mut result = if graceful {
        server.restart_gracefully(binary.clone()).await
    } else {
        server.restart(binary.clone()).await
    };
    while let Err(e) = result {
        tracing::error!(error = %e, "Cannot restart the embedded nats-server; retrying.");
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        result = server.restart(binary.clone()).await;
    }
    true
}

/// Hands validated listener files to the publish pipeline and reports the queue's state.
struct PublishSink {
    pipeline: Pipeline,
    dispatch: Arc<Dispatch>,
    status: StatusBoard,
    /// Whether the last publish failed (so that a failure is logged once, not per pass).
    failing: bool,
}

impl PublishSink {
    /// Reports what the pipeline confirmed; a failure becomes [`SinkError::Later`] naming the
    /// files to offer again.
    fn report(&mut self, confirmed: Confirmed) -> Result<(), SinkError> {
        let duplicates: Vec<String> = confirmed
            .stored
            .iter()
            .filter(|stored| stored.published.duplicate)
            .filter_map(|stored| stored.message.source_file().map(str::to_owned))
            .collect();
        if !duplicates.is_empty() {
            events::FilesAlreadyQueued {
                count: duplicates.len(),
                files: &duplicates[..duplicates.len().min(5)],
            }
            .emit();
        }
        for stored in &confirmed.stored {
            if std::mem::take(&mut self.failing) && self.status.get().queue_full.is_some() {
                events::QueueDrained.emit();
            }
            self.status.clear_queue_full();
            events::MessagePublished {
                message: &stored.message,
                sequence: stored.published.sequence,
                duplicate: stored.published.duplicate,
            }
            .emit();
        }
        let Some(PipelineFailure { error, unstored }) = confirmed.failure else {
            return Ok(());
        };
        let queue_full = matches!(error, PublishError::QueueFull(_));
        if !std::mem::replace(&mut self.failing, true) {
            let file = unstored
                .first()
                .and_then(|m| m.source_file())
                .unwrap_or("-");
            events::MessagePublishError {
                file,
                error: &error,
                queue_full,
            }
            .emit();
        }
        if queue_full {
            // The whole chain: the cause at the bottom (e.g. JetStream's "insufficient
            // storage", error 10047) is what `queue status` tells the admin to act on.
            self.status
                .set_queue_full(crate::telemetry::error_chain(&error));
        }
        Err(SinkError::Later {
            cause: error.into(),
            unstored: unstored
                .iter()
                .filter_map(|m| m.source_file().map(str::to_owned))
                .collect(),
        })
    }
}

impl Sink for PublishSink {
    async fn accept(&mut self, file: ListenerFile) -> Result<(), SinkError> {
        let message = ProvisioningMessage::from_listener_file(&file);
        if !self.dispatch.is_wanted(&message.realm, &message.topic) {
            return Err(SinkError::Refused(format!(
                "{}: no subscription wants {} messages of type {}; register one or remove the file",
                file.name, message.realm, message.topic
            )));
        }
        let confirmed = self.pipeline.send(message).await;
        match confirmed.failure {
            Some(PipelineFailure {
                error: error @ (PublishError::TooLarge { .. } | PublishError::Encode(_)),
                ..
            }) => Err(SinkError::Refused(format!("{}: {error}", file.name))),
            _ => self.report(confirmed),
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        let confirmed = self.pipeline.flush().await;
        self.report(confirmed)
    }
}
