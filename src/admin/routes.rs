//! The admin API's routes into the daemon-side operations of [`crate::ops`]: readiness,
//! metrics, the queue, reconcile and state import.
//!
//! | method and path | token | what |
//! |---|---|---|
//! | `GET /ready` | no on loopback | [`Readiness`]: 200 ready, 503 with the reasons |
//! | `GET /metrics` | no on loopback | Prometheus text format |
//! | `GET /queue?limit=N` | yes | [`QueueList`]: the waiting changes in order |
//! | `GET /queue/items/{id}` | yes | [`ItemDetail`]: one file (name, entry UUID or `blocked`), secrets redacted |
//! | `POST /queue/skip` | yes | [`SkipRequest`] → [`SkipResult`] |
//! | `POST /queue/requeue` (old name `/queue/requeue-broken`) | yes | [`RequeueRequest`] → [`RequeueResult`] |
//! | `POST /reconcile` | yes | [`ReconcileRequest`] → [`ReconcileReport`], or its progress and then the report as a stream ([`stream`]) |
//! | `POST /state/import` | yes | [`ImportRequest`] → [`ImportReport`], likewise |
//!
//! When the API listens on another address than loopback, `/ready` and `/metrics` need the
//! token too. Refusals answer `{"error": "…"}` with 400, 404, 409 or 503.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{stream, AdminState};
use crate::ops::import::{self, ImportAction, ImportReport, ImportRequest};
use crate::ops::queue::{
    self, ItemDetail, QueueList, RequeueRequest, RequeueResult, SkipRequest, SkipResult,
};
use crate::ops::ready::{self, Readiness};
use crate::ops::reconcile::{self, ReconcileReport, ReconcileRequest};
use crate::ops::{ErrorBody, Ops, OpsError};
use crate::telemetry::metrics::Scrape;
use crate::telemetry::progress::Progress;

/// The read-only endpoints that may be open on loopback, and the token-only ones.
pub fn routes() -> (Router<AdminState>, Router<AdminState>) {
    let reads = Router::new()
        .route("/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler));
    let protected = Router::new()
        .route("/queue", get(list_handler))
        .route("/queue/items/{id}", get(show_handler))
        .route("/queue/skip", post(skip_handler))
        .route("/queue/requeue", post(requeue_handler))
        .route("/queue/requeue-broken", post(requeue_handler))
        .route("/reconcile", post(reconcile_handler))
        .route("/state/import", post(import_handler));
    (reads, protected)
}

/// The HTTP status of a refusal.
pub(super) fn status_of(error: &OpsError) -> StatusCode {
    match error {
        OpsError::NotFound(_) => StatusCode::NOT_FOUND,
        OpsError::Conflict(_) => StatusCode::CONFLICT,
        OpsError::Invalid(_) => StatusCode::BAD_REQUEST,
        OpsError::Unavailable(_)
        | OpsError::State(_)
        | OpsError::Publish(_)
        | OpsError::Ox(_)
        | OpsError::Queue(_) => StatusCode::SERVICE_UNAVAILABLE,
        OpsError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for OpsError {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        let body = ErrorBody {
            error: crate::telemetry::error_chain(&self),
        };
        (status, Json(body)).into_response()
    }
}

fn ops(state: &AdminState) -> Result<Arc<Ops>, OpsError> {
    state
        .ops
        .clone()
        .ok_or_else(|| OpsError::Unavailable("not available in this daemon".into()))
}

async fn ready_handler(State(state): State<AdminState>) -> Result<Response, OpsError> {
    let ops = ops(&state)?;
    let readiness: Readiness = ready::readiness(&ops).await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(readiness)).into_response())
}

async fn metrics_handler(State(state): State<AdminState>) -> Result<Response, OpsError> {
    let ops = ops(&state)?;
    let Some(handle) = &ops.metrics else {
        return Err(OpsError::Unavailable("metrics are not recorded".into()));
    };
    let status = ops.status.get();
    let ox_queue = crate::queue::subscriber_stream(crate::queue::OX_SUBSCRIBER);
    let queue_messages = match ops.js.get_stream(ox_queue).await {
        Ok(mut stream) => stream.info().await.ok().map(|i| i.state.messages),
        Err(_) => None,
    };
    let subscriber_queues = match &state.dispatch {
        Some(dispatch) => dispatch
            .list()
            .await
            .map(|all| {
                all.into_iter()
                    .map(|(subscription, status)| (subscription.name, status.queued))
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let now = chrono::Utc::now();
    let scrape = Scrape {
        subscriber_queues,
        queue_depth: crate::listener::scan(&ops.listener_dir)
            .map(|f| f.len())
            .unwrap_or_default(),
        queue_messages,
        oldest_age: queue::oldest_age(&ops.listener_dir).map(|(_, age)| age),
        blocked_for: status
            .blocked
            .map(|b| (now - b.since).to_std().unwrap_or_default()),
        queue_full: status.queue_full.is_some(),
        quarantined: queue::quarantined(&ops.listener_dir).len(),
        nats_connected: ops.client.connection_state() == async_nats::connection::State::Connected,
        nats_reconnects: ops
            .client
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(1),
        ox_calls: status.ox_calls,
    };
    let text = crate::telemetry::metrics::render(handle, &scrape);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list_handler(
    State(state): State<AdminState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<QueueList>, OpsError> {
    let ops = ops(&state)?;
    queue::list(&ops, query.limit.unwrap_or(50)).await.map(Json)
}

async fn show_handler(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<ItemDetail>, OpsError> {
    let ops = ops(&state)?;
    queue::show(&ops, &id).await.map(Json)
}

async fn skip_handler(
    State(state): State<AdminState>,
    Json(request): Json<SkipRequest>,
) -> Result<Json<SkipResult>, OpsError> {
    let ops = ops(&state)?;
    queue::skip(&ops, &request).map(Json)
}

async fn requeue_handler(
    State(state): State<AdminState>,
    Json(request): Json<RequeueRequest>,
) -> Result<Json<RequeueResult>, OpsError> {
    let ops = ops(&state)?;
    queue::requeue(&ops, &request).map(Json)
}

async fn reconcile_handler(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Json(request): Json<ReconcileRequest>,
) -> Result<Response, OpsError> {
    let ops = ops(&state)?;
    // Refused before a stream starts, with its HTTP status.
    ox_applier(&ops, "nothing to reconcile")?;
    stream::answer(&headers, "reconcile", |progress: Progress| async move {
        run_reconcile(&ops, &request, &progress).await
    })
    .await
}

/// The OX applier, or why there is `nothing` to do without one.
fn ox_applier<'a>(
    ops: &'a Ops,
    nothing: &str,
) -> Result<&'a crate::provision::OxApplier, OpsError> {
    ops.ox.get().ok_or_else(|| {
        OpsError::Unavailable(format!("this daemon does not provision OX; {nothing}"))
    })
}

/// Reconciles and logs the outcome.
async fn run_reconcile(
    ops: &Ops,
    request: &ReconcileRequest,
    progress: &Progress,
) -> Result<ReconcileReport, OpsError> {
    let result = reconcile::reconcile(ops, request, progress).await;
    progress.finish();
    match &result {
        Ok(report) => crate::telemetry::events::ReconcileFinished {
            trigger: "admin",
            drift: &report.counts(),
            repairs_queued: report.repairs_queued,
            apply: report.apply,
        }
        .emit(),
        Err(e) => crate::telemetry::events::ReconcileFailed {
            trigger: "admin",
            error: e,
        }
        .emit(),
    }
    result
}

async fn import_handler(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Json(request): Json<ImportRequest>,
) -> Result<Response, OpsError> {
    let ops = ops(&state)?;
    ox_applier(&ops, "nothing to import into")?;
    stream::answer(&headers, "state_import", |progress: Progress| async move {
        run_import(&ops, &request, &progress).await
    })
    .await
}

/// Imports and logs what was imported.
async fn run_import(
    ops: &Ops,
    request: &ImportRequest,
    progress: &Progress,
) -> Result<ImportReport, OpsError> {
    let applier = ox_applier(ops, "nothing to import into")?;
    let report = import::import(applier, request, progress).await?;
    progress.finish();
    if request.apply {
        crate::telemetry::events::StateImported {
            from: &report.from,
            imported: report.count(ImportAction::Import),
            already_known: report.count(ImportAction::AlreadyKnown),
            problems: report.problems.len() + report.noted().count(),
            automatic: false,
        }
        .emit();
    }
    Ok(report)
}
