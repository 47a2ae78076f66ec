//! Admin API routes for subscriptions (all need the token):
//!
//! | method and path | what |
//! |---|---|
//! | `GET /subscriptions` | every subscription with its status (`full`, `dispatched`, `queued`) |
//! | `POST /subscriptions` | register one ([`SubscriptionRequest`] as JSON): 201, 400 if invalid, 409 if the name exists |
//! | `DELETE /subscriptions/{name}` | remove one with its queue and NATS user: 204, 404 if unknown; the built-in `ox-connector` cannot be removed |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AdminState;
use crate::dispatch::{
    DispatchError, SubscriberStatus, Subscription, SubscriptionError, SubscriptionRequest,
};

/// One entry of `GET /subscriptions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionReport {
    pub subscription: Subscription,
    pub status: SubscriberStatus,
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/subscriptions", get(list).post(add))
        .route("/subscriptions/{name}", delete(remove))
}

fn error(e: DispatchError) -> Response {
    let status = match &e {
        DispatchError::Subscription(SubscriptionError::Invalid(_)) => StatusCode::BAD_REQUEST,
        DispatchError::Subscription(SubscriptionError::Exists(_)) => StatusCode::CONFLICT,
        DispatchError::Subscription(SubscriptionError::Unknown(_)) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, format!("{e}\n")).into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the dispatcher is not running\n",
    )
        .into_response()
}

async fn list(State(state): State<AdminState>) -> Response {
    let Some(dispatch) = &state.dispatch else {
        return unavailable();
    };
    match dispatch.list().await {
        Ok(all) => Json(
            all.into_iter()
                .map(|(subscription, status)| SubscriptionReport {
                    subscription,
                    status,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => error(e),
    }
}

async fn add(
    State(state): State<AdminState>,
    Json(request): Json<SubscriptionRequest>,
) -> Response {
    let Some(dispatch) = &state.dispatch else {
        return unavailable();
    };
    match dispatch.register(request).await {
        Ok(subscription) => (StatusCode::CREATED, Json(subscription)).into_response(),
        Err(e) => error(e),
    }
}

async fn remove(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    let Some(dispatch) = &state.dispatch else {
        return unavailable();
    };
    // A name is 1–64 of a-z, 0-9, - and _ (as when registering); anything else, such as
    // `../../etc`, is a bad request, not a failure to look it up.
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            format!("{name:?} is not a subscription name (1–64 characters of a-z, 0-9, - and _)\n"),
        )
            .into_response();
    }
    if name == crate::queue::OX_SUBSCRIBER {
        return (
            StatusCode::BAD_REQUEST,
            "the OX subscriber is part of the daemon and cannot be removed\n",
        )
            .into_response();
    }
    match dispatch.remove(&name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}
