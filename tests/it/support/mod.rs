//! Test support: a real nats-server per test, a daemon on a temp data dir, a recording applier,
//! helpers that write listener files the way the App Center converter does, and a simulated UCS
//! host (directory, converter, trigger loop).

pub(crate) mod applier;
pub(crate) mod cli;
pub(crate) mod converter;
pub(crate) mod files;
pub(crate) mod ox;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ox_connector::app::Daemon;
use ox_connector::cli::OxArgs;
use ox_connector::config::{ox_settings, NatsTarget, Settings};
use ox_connector::queue::embedded::{EmbeddedSettings, NatsServer};
use ox_connector::queue::QueueLimits;
use tokio_util::sync::CancellationToken;

pub(crate) use applier::RecordingApplier;

/// Polls `condition` every 20 ms until it holds; panics with `what` after `timeout`.
pub(crate) async fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A test environment: a nats-server of its own (killed on drop) and a temp data dir.
pub(crate) struct TestEnv {
    pub nats: NatsServer,
    pub data: tempfile::TempDir,
    _nats_dir: tempfile::TempDir,
    pub settings: Settings,
}

impl TestEnv {
    pub(crate) async fn start() -> Self {
        let nats_dir = tempfile::tempdir().unwrap();
        let nats = NatsServer::start(EmbeddedSettings {
            binary: None,
            dir: nats_dir.path().to_owned(),
            port: 0,
            users: None,
        })
        .await
        .expect("nats-server must be installed for the integration tests");
        let data = tempfile::tempdir().unwrap();
        let settings = Settings {
            data_dir: data.path().to_owned(),
            nats: NatsTarget::External {
                url: nats.url().to_owned(),
                replicas: 1,
            },
            rescan_interval: Duration::from_millis(200),
            broken_grace: Duration::from_secs(1),
            batch_settle: Duration::from_millis(50),
            retry_delay: Duration::from_millis(300),
            ack_wait: Duration::from_secs(2),
            apply_concurrency: 8,
            queue_limits: QueueLimits {
                max_messages: 10_000,
                max_bytes: 64 * 1024 * 1024,
            },
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            reconcile_interval: None,
            ox: ox_settings(
                OxArgs {
                    ox_soap_timeout: Duration::from_secs(10),
                    ..OxArgs::default()
                },
                data.path(),
            )
            .unwrap(),
        };
        Self {
            nats,
            data,
            _nats_dir: nats_dir,
            settings,
        }
    }

    pub(crate) fn listener_dir(&self) -> PathBuf {
        self.settings.listener_dir()
    }

    /// Starts the daemon with `applier`; stop it with [`RunningDaemon::stop`].
    pub(crate) async fn daemon(&self, applier: RecordingApplier) -> RunningDaemon {
        let token = CancellationToken::new();
        let daemon = Daemon::start(self.settings.clone(), applier, token.clone())
            .await
            .expect("daemon starts");
        RunningDaemon { daemon, token }
    }

    /// Names of the listener files still queued.
    pub(crate) fn queued_files(&self) -> Vec<String> {
        files::listener_files(&self.listener_dir())
    }

    pub(crate) async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(async_nats::connect(self.nats.url()).await.unwrap())
    }
}

pub(crate) struct RunningDaemon {
    pub daemon: Daemon,
    token: CancellationToken,
}

impl RunningDaemon {
    /// Orderly shutdown, as on SIGTERM.
    pub(crate) async fn stop(self) {
        self.token.cancel();
        self.daemon.wait().await.expect("daemon stops cleanly");
    }
}

/// Reads the daemon's status file.
pub(crate) fn status_file(data_dir: &Path) -> serde_json::Value {
    let text = std::fs::read(data_dir.join("status.json")).unwrap_or_default();
    serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null)
}

/// Fails naming the first of `expected` that `text` does not contain.
#[track_caller]
pub(crate) fn assert_contains_all(text: &str, expected: &[&str]) {
    for part in expected {
        assert!(text.contains(part), "{part:?} missing: {text}");
    }
}
