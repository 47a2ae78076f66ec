//! `POST /queue/pause` and `POST /queue/resume`: OX provisioning paused and resumed without
//! stopping the daemon ([`crate::queue::pause`]). The pause shows in `/status` (and so in
//! `ox-connector queue status`).

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AdminState;
use crate::queue::pause::{self, Paused};

/// `POST /queue/pause`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PauseRequest {
    /// Seconds until the pause ends by itself; `None`: until `queue resume`.
    pub seconds: Option<u64>,
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/queue/pause", post(pause_queue))
        .route("/queue/resume", post(resume_queue))
}

fn who(headers: &HeaderMap) -> String {
    headers
        .get(super::client::HEADER_BY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("admin API")
        .to_owned()
}

/// A 503 with the reason: a refusal's text, or a pause that failed with its whole cause chain.
fn unavailable(reason: impl Into<String>) -> (StatusCode, String) {
    (StatusCode::SERVICE_UNAVAILABLE, reason.into())
}

fn failed(error: crate::queue::SetupError) -> (StatusCode, String) {
    unavailable(crate::telemetry::error_chain(&error))
}

async fn pause_queue(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Json(request): Json<PauseRequest>,
) -> Result<Json<Paused>, (StatusCode, String)> {
    let ops = state
        .ops
        .as_ref()
        .ok_or_else(|| unavailable("no queue here"))?;
    let paused = pause::pause(
        &ops.js,
        crate::queue::OX_SUBSCRIBER,
        request.seconds.map(Duration::from_secs),
    )
    .await
    .map_err(failed)?;
    tracing::warn!(by = %who(&headers), until = ?paused.until, "Paused OX provisioning.");
    state.status.set_paused(Some(paused.clone()));
    Ok(Json(paused))
}

async fn resume_queue(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<StatusCode, (StatusCode, String)> {
    let ops = state
        .ops
        .as_ref()
        .ok_or_else(|| unavailable("no queue here"))?;
    pause::resume(&ops.js, crate::queue::OX_SUBSCRIBER)
        .await
        .map_err(failed)?;
    tracing::info!(by = %who(&headers), "Resumed OX provisioning.");
    state.status.set_paused(None);
    Ok(StatusCode::NO_CONTENT)
}
