//! The emulator's HTTP side: the axum router (`/webservices/<Service>` SOAP and `?wsdl`, the
//! OX 6 alias `/servlet/axis2/services/<Service>`, and the `/emulator/*` control endpoints),
//! latency and fault injection around each SOAP call, and the call counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::locks::lock;
use crate::ox::soap::Service;

use super::capacity::{Capacity, CapacitySettings};
use super::faults::{Failure, FaultSettings};
use super::soap::{self, SoapError};
use super::state::{OxState, StateSnapshot};

/// Calls and faults of one `Service.operation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStats {
    pub calls: u64,
    pub faults: u64,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<OxState>,
    pub(crate) faults: Mutex<FaultSettings>,
    pub(crate) initial_faults: FaultSettings,
    pub(crate) calls: Mutex<BTreeMap<String, CallStats>>,
    /// Write nil elements for unset fields, as OX does (off = "lean" answers).
    pub(crate) nil_for_none: bool,
    /// Workers and overload limit of the emulated server.
    capacity: Capacity,
    exception_base: i32,
    exception_counter: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        state: OxState,
        faults: FaultSettings,
        nil_for_none: bool,
        capacity: CapacitySettings,
    ) -> Shared {
        Shared {
            state: Mutex::new(state),
            initial_faults: faults.clone(),
            faults: Mutex::new(faults),
            calls: Mutex::new(BTreeMap::new()),
            nil_for_none,
            capacity: Capacity::new(capacity),
            exception_base: rand::random::<i32>(),
            exception_counter: AtomicU64::new(1),
        }
    }

    /// OX's `exceptionId <n>-<m>`: a per-process number and a counter.
    fn next_exception_id(&self) -> String {
        let n = self.exception_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.exception_base)
    }

    pub(crate) fn snapshot(&self) -> StateSnapshot {
        lock(&self.state).snapshot()
    }

    /// Back to the start: no contexts, the start-up fault settings, no call counts.
    pub(crate) fn reset(&self) {
        lock(&self.state).reset();
        *lock(&self.faults) = self.initial_faults.clone();
        lock(&self.calls).clear();
    }

    fn count(&self, key: String, fault: bool) {
        let mut calls = lock(&self.calls);
        let stats = calls.entry(key).or_default();
        stats.calls += 1;
        stats.faults += u64::from(fault);
    }
}

/// The shipped WSDL of a service (address still `http://localhost/…`).
pub(crate) fn wsdl_template(service: Service) -> &'static str {
    match service {
        Service::Context => include_str!("wsdl/OXContextService.wsdl"),
        Service::User => include_str!("wsdl/OXUserService.wsdl"),
        Service::Group => include_str!("wsdl/OXGroupService.wsdl"),
        Service::Resource => include_str!("wsdl/OXResourceService.wsdl"),
        Service::UserCopy => include_str!("wsdl/OXUserCopyService.wsdl"),
        Service::SecondaryAccount => include_str!("wsdl/OXSecondaryAccountService.wsdl"),
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/webservices/{service}", get(wsdl).post(soap_call))
        .route(
            "/servlet/axis2/services/{service}",
            get(wsdl).post(soap_call),
        )
        .route("/emulator/state", get(state))
        .route("/emulator/reset", post(reset))
        .route("/emulator/faults", get(get_faults).post(set_faults))
        .route("/emulator/calls", get(calls))
        .route(
            "/emulator/properties",
            get(get_properties).post(set_properties),
        )
        .with_state(shared)
}

const XML: &str = "text/xml;charset=UTF-8";

fn xml_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, XML)], body).into_response()
}

async fn wsdl(Path(name): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(service) = Service::from_name(&name) else {
        return (StatusCode::NOT_FOUND, "No such service").into_response();
    };
    let wants_wsdl = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.eq_ignore_ascii_case("wsdl")));
    if !wants_wsdl {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
            format!("<html><body>OX emulator: {name}. Append ?wsdl for the WSDL.</body></html>"),
        )
            .into_response();
    }
    // The address points back at this emulator, as seen by the client (its Host header).
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let location = format!("http://{host}/webservices/{name}");
    let wsdl =
        wsdl_template(service).replace(&format!("http://localhost/webservices/{name}"), &location);
    xml_response(StatusCode::OK, wsdl)
}

async fn soap_call(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Some(service) = Service::from_name(&name) else {
        return (StatusCode::NOT_FOUND, "No such service").into_response();
    };
    let parsed = soap::parse_request(service, &body);
    let op = parsed
        .as_ref()
        .map_or("?".to_string(), |p| p.operation().to_string());
    let key = format!("{}.{op}", service.name());
    // Held until the answer is ready: the latency and the state change use a worker.
    let Ok(_slot) = shared.capacity.enter().await else {
        shared.count(key, true);
        return overloaded();
    };
    let (latency, injected) = {
        let mut faults = lock(&shared.faults);
        (faults.latency(), faults.decide(service.name(), &op))
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match injected {
        Some(Failure::Http { status }) => {
            shared.count(key, true);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return (
                status,
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("text/html")),
                    (header::CONNECTION, HeaderValue::from_static("close")),
                ],
                format!("<html><body><h1>{status}</h1></body></html>"),
            )
                .into_response();
        }
        Some(Failure::Reset) => {
            shared.count(key, true);
            // Headers go out, then the body fails: hyper aborts the connection mid-answer.
            let broken = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("emulated connection reset"))
            });
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, XML)],
                Body::from_stream(broken),
            )
                .into_response();
        }
        _ => {}
    }
    let result = match (parsed, injected) {
        (Err(e), _) => Err(e),
        (Ok(_), Some(Failure::Fault { exception, message })) => {
            Err(SoapError::Injected { exception, message })
        }
        (Ok(request), _) => {
            let mut state = lock(&shared.state);
            super::dispatch::dispatch(&mut state, service, &request)
        }
    };
    match result {
        Ok(reply) => {
            shared.count(key, false);
            xml_response(
                StatusCode::OK,
                soap::write_reply(service, &op, reply, shared.nil_for_none),
            )
        }
        Err(error) => {
            shared.count(key, true);
            let body = soap::write_fault(service, &error, &shared.next_exception_id());
            xml_response(StatusCode::INTERNAL_SERVER_ERROR, body)
        }
    }
}

/// What the servlet container in front of an overloaded OX answers.
fn overloaded() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html")),
            (header::RETRY_AFTER, HeaderValue::from_static("1")),
        ],
        "<html><body><h1>503 Service Unavailable</h1>Too many requests in progress.</body></html>",
    )
        .into_response()
}

async fn state(State(shared): State<Arc<Shared>>) -> Json<StateSnapshot> {
    Json(shared.snapshot())
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.reset();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<FaultSettings> {
    Json(lock(&shared.faults).clone())
}

async fn set_faults(
    State(shared): State<Arc<Shared>>,
    Json(config): Json<FaultSettings>,
) -> StatusCode {
    *lock(&shared.faults) = config;
    StatusCode::NO_CONTENT
}

async fn calls(State(shared): State<Arc<Shared>>) -> Json<BTreeMap<String, CallStats>> {
    Json(lock(&shared.calls).clone())
}

/// `{"USERNAME_CHANGEABLE": false, …}`: every OX property the emulator knows.
async fn get_properties(State(shared): State<Arc<Shared>>) -> Json<BTreeMap<String, bool>> {
    let state = lock(&shared.state);
    let properties = state.options().to_properties().into_iter();
    Json(properties.map(|(n, v)| (n.to_string(), v)).collect())
}

/// Sets the properties of a JSON object (`true`/`false` or their strings); 422 names a
/// property that is unknown or cannot change.
async fn set_properties(
    State(shared): State<Arc<Shared>>,
    Json(properties): Json<BTreeMap<String, serde_json::Value>>,
) -> Response {
    let values: Vec<(String, String)> = properties
        .into_iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(text) => (name, text),
            other => (name, other.to_string()),
        })
        .collect();
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    match lock(&shared.state).set_properties(&pairs) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => (StatusCode::UNPROCESSABLE_ENTITY, error.to_string()).into_response(),
    }
}
