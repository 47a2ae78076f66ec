//! The daemon's admin HTTP API: what `ox-connector trigger` and admins use to talk to a running
//! daemon.
//!
//! It listens on loopback by default (`--admin-listen`). Every endpoint except `/health` (and,
//! while it listens on loopback, `/ready` and `/metrics`) needs the bearer token from
//! `<data-dir>/secrets/admin-token` (generated on first start, mode 0600).
//! The daemon writes where it listens to `<data-dir>/run/admin.json`, so a command finds it from
//! the data directory alone ([`client::AdminClient::from_data_dir`]).
//!
//! | method and path | token | what |
//! |---|---|---|
//! | `GET /health` | no | liveness: 200 `ok` while the daemon runs |
//! | `GET /status` | yes | [`StatusReport`] as JSON |
//! | `POST /queue/pick-up` | yes | look at the listener folder now (202) |
//! | `POST /queue/retry` | yes | retry a failing change now instead of after the delay (202) |
//! | `/subscriptions…` | yes | list, register and remove subscriptions ([`subscriptions`]) |
//! | `POST /queue/pause`, `POST /queue/resume` | yes | pause and resume OX provisioning ([`pause`]) |
//!
//! The routes into the daemon-side operations of [`crate::ops`] (`/ready`, `/metrics`, queue
//! list/show/skip/requeue, reconcile, state import) are in [`routes`].

pub mod client;
pub mod pause;
pub mod routes;
pub mod stream;
pub mod subscriptions;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::status::{DaemonStatus, StatusBoard};

/// Where the token lives, relative to the data directory.
pub const TOKEN_FILE: &str = "secrets/admin-token";
/// Where the daemon says where it listens, relative to the data directory.
pub const ENDPOINT_FILE: &str = "run/admin.json";

/// What the daemon shares with the API.
#[derive(Clone)]
pub struct AdminState {
    pub status: StatusBoard,
    pub wake: Arc<Notify>,
    pub retry_now: Arc<Notify>,
    pub listener_dir: PathBuf,
    pub token: Arc<str>,
    /// The dispatcher, for the subscription routes ([`subscriptions`]).
    pub dispatch: Option<Arc<crate::dispatch::Dispatch>>,
    /// The operations context; `None` serves only the endpoints above (those of [`routes`] answer
    /// 503).
    pub ops: Option<Arc<crate::ops::Ops>>,
}

/// `GET /status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub daemon: DaemonStatus,
    /// Listener files waiting in `listener/`, in order.
    pub pending_files: usize,
    pub oldest_pending: Option<String>,
    /// Files in `listener/broken/` (without their `.error.txt`).
    pub quarantined: Vec<String>,
    /// Changes applied in the last minute (the pace for the ETA).
    #[serde(default)]
    pub applied_last_minute: u64,
}

/// The endpoint file's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub pid: u32,
}

/// Builds the router.
pub fn router(state: AdminState) -> Router {
    let open_reads = state.ops.as_ref().is_none_or(|o| o.open_reads);
    let (reads, operations) = routes::routes();
    let (open, reads) = if open_reads {
        (reads, Router::new())
    } else {
        (Router::new(), reads)
    };
    let protected = Router::new()
        .route("/status", get(status))
        .route("/queue/pick-up", post(pick_up))
        .route("/queue/retry", post(retry))
        .merge(subscriptions::routes())
        .merge(pause::routes())
        .merge(operations)
        .merge(reads)
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(open)
        .merge(protected)
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` is cancelled, and publishes its address in
/// `<data-dir>/run/admin.json` meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    data_dir: &Path,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let endpoint_file = data_dir.join(ENDPOINT_FILE);
    write_endpoint(&endpoint_file, addr)?;
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    let _ = std::fs::remove_file(&endpoint_file);
    result
}

fn write_endpoint(file: &Path, addr: SocketAddr) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let endpoint = Endpoint {
        url: format!("http://{addr}"),
        pid: std::process::id(),
    };
    let json = serde_json::to_vec_pretty(&endpoint).map_err(std::io::Error::other)?;
    crate::atomic_file::write(file, &json)
}

/// Reads the admin token, generating it on first use (mode 0600).
pub fn ensure_token(data_dir: &Path) -> std::io::Result<String> {
    let file = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&file) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::atomic_file::write_with_mode(&file, token.as_bytes(), Some(0o600))?;
    Ok(token)
}

async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), state.token.as_bytes()) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "a valid token is required (Authorization: Bearer <token from secrets/admin-token>)\n",
        )
            .into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn status(State(state): State<AdminState>) -> Json<StatusReport> {
    let pending = crate::listener::scan(&state.listener_dir).unwrap_or_default();
    let quarantined = crate::ops::queue::quarantined(&state.listener_dir);
    Json(StatusReport {
        daemon: state.status.get(),
        pending_files: pending.len(),
        oldest_pending: pending.first().map(|f| f.name.to_string()),
        quarantined,
        applied_last_minute: crate::telemetry::progress::applied_last_minute(),
    })
}

async fn pick_up(State(state): State<AdminState>) -> StatusCode {
    state.wake.notify_one();
    StatusCode::ACCEPTED
}

async fn retry(State(state): State<AdminState>, headers: axum::http::HeaderMap) -> StatusCode {
    let by = headers
        .get(client::HEADER_BY)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let by = by.as_deref().unwrap_or("admin API");
    crate::telemetry::events::RetryRequested { by }.emit();
    crate::queue::consume::retry_all_now(&state.retry_now);
    StatusCode::ACCEPTED
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn state(dir: &Path) -> AdminState {
        AdminState {
            status: StatusBoard::new(None),
            wake: Arc::new(Notify::new()),
            retry_now: Arc::new(Notify::new()),
            listener_dir: dir.to_owned(),
            token: Arc::from("secret-token"),
            dispatch: None,
            ops: None,
        }
    }

    async fn call(state: AdminState, method: &str, uri: &str, token: Option<&str>) -> StatusCode {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        router(state)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn only_health_is_open_without_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path());
        assert_eq!(
            call(s.clone(), "GET", "/health", None).await,
            StatusCode::OK
        );
        assert_eq!(
            call(s.clone(), "GET", "/status", None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(s.clone(), "GET", "/status", Some("wrong")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(s.clone(), "POST", "/queue/pick-up", None).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(s.clone(), "GET", "/status", Some("secret-token")).await,
            StatusCode::OK
        );
        assert_eq!(
            call(s.clone(), "POST", "/queue/pick-up", Some("secret-token")).await,
            StatusCode::ACCEPTED
        );
    }

    #[tokio::test]
    async fn pick_up_wakes_the_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path());
        let woken = s.wake.clone();
        call(s, "POST", "/queue/pick-up", Some("secret-token")).await;
        tokio::time::timeout(std::time::Duration::from_secs(1), woken.notified())
            .await
            .expect("the watcher was woken");
    }

    #[test]
    fn the_token_is_generated_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_token(dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(ensure_token(dir.path()).unwrap(), first);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
