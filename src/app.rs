//! Wiring: starts the steps of the flow as tasks and stops them in flow order.
//!
//! Start: data folders → NATS (embedded child process or the configured URL) → JetStream stream
//! and consumer → the watcher (① listener files → ② messages → ③ publish) and the ordered
//! consumer (③ → ④ apply → ⑥ delete file → ack).
//!
//! Stop (the root token is cancelled by a signal or a test): first the watcher, so nothing new is
//! published; then the consumer, which finishes the change it is applying (an OX call is never
//! cut off halfway) or hands back the one waiting for a retry; then the NATS connection is
//! flushed and the embedded server stopped with SIGTERM so JetStream writes everything out.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::apply::Applier;
use crate::config::{NatsTarget, Settings};
use crate::listener::watch::{self, Sink, SinkError};
use crate::listener::ListenerFile;
use crate::message::ProvisioningMessage;
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
    EmbeddedNats(#[from] EmbeddedError),
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot open the admin API on {addr}: {source}")]
    Admin {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up OX provisioning: {0}")]
    Applier(String),
    #[error("stopped before the queue was ready")]
    Cancelled,
    #[error("the daemon did not stop within {0:?}")]
    ShutdownTimeout(Duration),
}

/// A running daemon.
pub struct Daemon {
    shutdown: CancellationToken,
    listener_stop: CancellationToken,
    consumer_stop: CancellationToken,
    listener_task: JoinHandle<()>,
    consumer_task: JoinHandle<()>,
    admin_stop: CancellationToken,
    admin_task: JoinHandle<()>,
    nats_task: Option<(CancellationToken, JoinHandle<()>)>,
    client: async_nats::Client,
    status: StatusBoard,
    wake: Arc<Notify>,
    retry_now: Arc<Notify>,
}

impl Daemon {
    /// Starts every step. Returns once the queue is ready and the tasks run; cancelling
    /// `shutdown` then stops the daemon (see [`Daemon::wait`]).
    pub async fn start<A: Applier>(
        settings: Settings,
        applier: A,
        shutdown: CancellationToken,
    ) -> Result<Self, AppError> {
        Self::start_with(settings, |_| async { Ok(applier) }, shutdown).await
    }

    /// Starts the daemon with the OX applier (state store and credentials in NATS).
    pub async fn start_ox(
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Self, AppError> {
        let (ox, data_dir) = (settings.ox.clone(), settings.data_dir.clone());
        Self::start_with(
            settings,
            |js| async move {
                OxApplier::open(ox, &data_dir, &js)
                    .await
                    .map_err(|e| e.to_string())
            },
            shutdown,
        )
        .await
    }

    /// Like [`Daemon::start`], with the applier made once NATS is connected.
    pub async fn start_with<A, F, Fut>(
        settings: Settings,
        make_applier: F,
        shutdown: CancellationToken,
    ) -> Result<Self, AppError>
    where
        A: Applier,
        F: FnOnce(jetstream::Context) -> Fut,
        Fut: std::future::Future<Output = Result<A, String>>,
    {
        for dir in [settings.data_dir.clone(), settings.listener_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| AppError::DataDir { path: dir, source })?;
        }
        let status = StatusBoard::new(Some(settings.status_file()));
        let admin_error = |source| AppError::Admin {
            addr: settings.admin_listen,
            source,
        };
        let token = admin::ensure_token(&settings.data_dir).map_err(admin_error)?;
        let admin_listener = tokio::net::TcpListener::bind(settings.admin_listen)
            .await
            .map_err(admin_error)?;

        let (url, nats_task) = match &settings.nats {
            NatsTarget::External { url } => (url.clone(), None),
            NatsTarget::Embedded(options) => {
                let server = NatsServer::start(options.clone()).await?;
                let url = server.url().to_owned();
                let stop = CancellationToken::new();
                let task =
                    tokio::spawn(supervise_nats(server, options.binary.clone(), stop.clone()));
                (url, Some((stop, task)))
            }
        };
        let client = connect(&url).await?;
        let js = jetstream::new(client.clone());
        let consumer = setup_queue(&js, &settings, &shutdown).await?;
        let applier = make_applier(js.clone()).await.map_err(AppError::Applier)?;

        let wake = Arc::new(Notify::new());
        let retry_now = Arc::new(Notify::new());
        let listener_stop = CancellationToken::new();
        let consumer_stop = CancellationToken::new();

        let sink = PublishSink {
            pipeline: Pipeline::new(Publisher::new(js.clone()), crate::queue::publish::WINDOW),
            status: status.clone(),
            failing: false,
        };
        let listener_task = tokio::spawn({
            let (settings, wake, stop) = (settings.watch(), wake.clone(), listener_stop.clone());
            async move {
                if let Err(e) = watch::run(settings, sink, wake, stop).await {
                    tracing::error!(error = %e, "The listener folder watcher stopped.");
                }
            }
        });
        let consumer_task = tokio::spawn(consume_until_stopped(
            consumer,
            Arc::new(applier),
            settings.consume(),
            status.clone(),
            retry_now.clone(),
            consumer_stop.clone(),
        ));
        let admin_stop = CancellationToken::new();
        let admin_task = tokio::spawn({
            let state = AdminState {
                status: status.clone(),
                wake: wake.clone(),
                retry_now: retry_now.clone(),
                listener_dir: settings.listener_dir(),
                token: Arc::from(token),
            };
            let (data_dir, stop) = (settings.data_dir.clone(), admin_stop.clone());
            async move {
                if let Err(e) = admin::serve(admin_listener, state, &data_dir, stop).await {
                    tracing::error!(error = %e, "The admin API stopped.");
                }
            }
        });
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
            client,
            status,
            wake,
            retry_now,
        })
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
        self.retry_now.notify_one();
    }

    /// Waits until the root token is cancelled, then stops in flow order.
    pub async fn wait(self) -> Result<(), AppError> {
        self.shutdown.cancelled().await;
        let stop = async {
            self.listener_stop.cancel();
            let _ = self.listener_task.await;
            self.consumer_stop.cancel();
            let _ = self.consumer_task.await;
            self.admin_stop.cancel();
            let _ = self.admin_task.await;
            if let Err(e) = self.client.flush().await {
                tracing::warn!(error = %e, "Cannot flush the NATS connection.");
            }
            drop(self.client);
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
        let _ = self.listener_task.await;
        let _ = self.consumer_task.await;
        let _ = self.admin_task.await;
        if let Some((_, task)) = self.nats_task {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Runs the daemon with the OX applier until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), AppError> {
    Daemon::start_ox(settings, shutdown).await?.wait().await
}

async fn connect(url: &str) -> Result<async_nats::Client, AppError> {
    async_nats::ConnectOptions::new()
        .name("ox-connector")
        .retry_on_initial_connect()
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("Connected to NATS."),
                async_nats::Event::Disconnected => {
                    tracing::warn!("Lost the connection to NATS; reconnecting.")
                }
                other => tracing::debug!(event = %other, "NATS connection event."),
            }
        })
        .connect(url)
        .await
        .map_err(|e| AppError::Connect {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

/// Creates the stream and consumer, retrying while NATS is not reachable yet.
async fn setup_queue(
    js: &jetstream::Context,
    settings: &Settings,
    shutdown: &CancellationToken,
) -> Result<jetstream::consumer::PullConsumer, AppError> {
    let mut attempts = 0u32;
    loop {
        match queue::setup(js, settings.queue_limits, settings.consumer_timing()).await {
            Ok(consumer) => return Ok(consumer),
            Err(e) => {
                attempts += 1;
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

async fn consume_until_stopped<A: Applier>(
    consumer: jetstream::consumer::PullConsumer,
    applier: Arc<A>,
    settings: consume::ConsumeSettings,
    status: StatusBoard,
    retry_now: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let result = consume::run(
            consumer.clone(),
            applier.clone(),
            settings.clone(),
            status.clone(),
            retry_now.clone(),
            stop.clone(),
        )
        .await;
        match result {
            Ok(()) => return,
            Err(e) => tracing::error!(error = %e, "The queue consumer failed; restarting it."),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(settings.retry_delay) => {}
        }
    }
}

/// Keeps the embedded nats-server running: restarts it if it dies, stops it on `stop`.
async fn supervise_nats(
    mut server: NatsServer,
    binary: Option<std::path::PathBuf>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                server.stop().await;
                return;
            }
            status = server.exited() => {
                tracing::error!(status = %status, "The embedded nats-server exited; restarting it.");
                while let Err(e) = server.restart(binary.clone()).await {
                    tracing::error!(error = %e, "Cannot restart the embedded nats-server; retrying.");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        }
    }
}

/// Hands validated listener files to the publish pipeline and reports the queue's state.
struct PublishSink {
    pipeline: Pipeline,
    status: StatusBoard,
    /// Whether the last publish failed (so that a failure is logged once, not per pass).
    failing: bool,
}

impl PublishSink {
    /// Reports what the pipeline confirmed; a failure becomes [`SinkError::Later`] naming the
    /// files to offer again.
    fn report(&mut self, confirmed: Confirmed) -> Result<(), SinkError> {
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
            self.status.set_queue_full(error.to_string());
        }
        Err(SinkError::Later {
            reason: error.to_string(),
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
