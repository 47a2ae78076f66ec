//! Prometheus metrics: every metric name and label of the daemon, the recorder, and the gauges
//! that are read at scrape time.
//!
//! Counters and histograms are recorded only by the `emit()`s in [`super::events`] (steps never
//! call metric macros). Labels are bounded: object type (the UDM module), operation, outcome,
//! OX fault kind, admin action — never file names, DNs or error text.
//!
//! The recorder is process-wide (the `metrics` facade has one global recorder); [`install`]
//! sets it up once and every daemon of the process renders from it. Without it (library use,
//! unit tests) the macros do nothing.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Listener files queued on JetStream (first publish; a re-publish after a restart is not counted).
pub const FILES_SEEN: &str = "ox_connector_files_seen_total";
/// Changes applied to OX, by `object_type`, `operation` and `outcome` (`applied` or `ignored`).
pub const FILES_APPLIED: &str = "ox_connector_files_applied_total";
/// Changes acknowledged without applying them because their listener file was gone (an admin
/// skipped or removed it), by `object_type`.
pub const FILES_SKIPPED: &str = "ox_connector_files_skipped_total";
/// Broken listener files moved to `listener/broken/`.
pub const FILES_QUARANTINED: &str = "ox_connector_files_quarantined_total";
/// Failed attempts at the head of the queue (each is retried), by `object_type` and
/// `error_kind` (`transient` or `rejected`).
pub const RETRIES: &str = "ox_connector_retries_total";
/// Time to apply one change (successful attempts), by `object_type` and `operation`.
pub const APPLY_DURATION: &str = "ox_connector_apply_duration_seconds";
/// OX SOAP calls, by `service`, `operation` and `outcome` (`ok` or the error kind).
pub const OX_REQUEST_DURATION: &str = "ox_connector_ox_request_duration_seconds";
/// Failed OX SOAP calls by `kind`: the OX fault (`invalid_data`, `no_such_user`, …) or
/// `connect`, `timeout`, `transport`, `http`, `not_soap`, `decode`, `config`.
pub const OX_FAULTS: &str = "ox_connector_ox_faults_total";
/// Admin actions through the admin API, by `action` (`skip`, `retry`, `requeue_broken`,
/// `reconcile`, `state_import`).
pub const ADMIN_ACTIONS: &str = "ox_connector_admin_actions_total";
/// Reconcile runs, by `trigger` (`admin`, `periodic`) and `result` (`clean`, `drift`, `failed`).
pub const RECONCILE_RUNS: &str = "ox_connector_reconcile_runs_total";
/// Differences found by the last reconcile run, by `kind` (`missing_in_ox`, `unknown_in_ox`,
/// `differs`, `stale_id`).
pub const RECONCILE_DRIFT: &str = "ox_connector_reconcile_drift";
/// Unix time of the last finished reconcile run.
pub const RECONCILE_LAST_RUN: &str = "ox_connector_reconcile_last_run_timestamp_seconds";

// Read at scrape time.
/// Listener files waiting in `listener/` (queued on JetStream or not yet).
pub const QUEUE_DEPTH: &str = "ox_connector_queue_depth";
/// Messages in the JetStream stream not yet acknowledged by the OX subscriber.
pub const QUEUE_MESSAGES: &str = "ox_connector_queue_messages";
/// Age of the oldest waiting listener file (by the time in its name), 0 when none waits.
pub const QUEUE_OLDEST_AGE: &str = "ox_connector_queue_oldest_age_seconds";
/// 1 while the head of the queue keeps failing.
pub const QUEUE_BLOCKED: &str = "ox_connector_queue_blocked";
/// Seconds since the queue is blocked, 0 when it is not.
pub const QUEUE_BLOCKED_SECONDS: &str = "ox_connector_queue_blocked_seconds";
/// 1 while the JetStream queue refuses new messages because it is full.
pub const QUEUE_FULL: &str = "ox_connector_queue_full";
/// Files in `listener/broken/`.
pub const QUARANTINED_FILES: &str = "ox_connector_quarantined_files";
/// 1 while the connection to NATS is up.
pub const NATS_CONNECTED: &str = "ox_connector_nats_connected";
/// Reconnects to NATS since the daemon started.
pub const NATS_RECONNECTS: &str = "ox_connector_nats_reconnects_total";
/// OX SOAP calls allowed at once now (the adaptive limit, `crate::ox::limit`).
pub const OX_CALL_LIMIT: &str = "ox_connector_ox_call_limit";
/// OX SOAP calls in flight now.
pub const OX_CALLS_IN_FLIGHT: &str = "ox_connector_ox_calls_in_flight";
/// The shortest OX SOAP call seen lately (the adaptive limit's latency floor).
pub const OX_LATENCY_FLOOR: &str = "ox_connector_ox_latency_floor_seconds";

/// Buckets of the apply and OX call histograms, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns the handle to render it; `None` if
/// another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = [APPLY_DURATION, OX_REQUEST_DURATION]
                .iter()
                .try_fold(PrometheusBuilder::new(), |builder, name| {
                    builder.set_buckets_for_metric(Matcher::Full((*name).into()), DURATION_BUCKETS)
                });
            let handle = match builder.map(|b| b.install_recorder()) {
                Ok(Ok(handle)) => handle,
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(error = %e, "Cannot set up the metrics recorder; /metrics stays empty.");
                    return None;
                }
            };
            describe();
            start_at_zero();
            Some(handle)
        })
        .clone()
}

/// The process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, …, the standard names), collected at every scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The build info and the counters that exist from the start (at 0).
fn start_at_zero() {
    process_collector().describe();
    use metrics::{counter, gauge};
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for name in COUNTERS_FROM_ZERO {
        counter!(name).absolute(0);
    }
    for action in ADMIN_ACTION_NAMES {
        counter!(ADMIN_ACTIONS, "action" => action).absolute(0);
    }
    use super::progress::{OPERATIONS, OPERATION_OBJECTS_DONE, OPERATION_OBJECTS_IN_PHASE};
    for operation in OPERATIONS {
        gauge!(OPERATION_OBJECTS_DONE, "operation" => operation).set(0.0);
        gauge!(OPERATION_OBJECTS_IN_PHASE, "operation" => operation).set(0.0);
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(FILES_SEEN, "Listener files queued on JetStream.");
    describe_counter!(
        FILES_APPLIED,
        "Changes applied to OX (or with nothing to do)."
    );
    describe_counter!(
        FILES_SKIPPED,
        "Changes skipped because their listener file was removed."
    );
    describe_counter!(
        FILES_QUARANTINED,
        "Broken listener files moved to listener/broken/."
    );
    describe_counter!(RETRIES, "Failed attempts at the head of the queue.");
    describe_histogram!(APPLY_DURATION, Unit::Seconds, "Time to apply one change.");
    describe_histogram!(OX_REQUEST_DURATION, Unit::Seconds, "OX SOAP calls.");
    describe_counter!(OX_FAULTS, "Failed OX SOAP calls by kind.");
    describe_counter!(ADMIN_ACTIONS, "Admin actions through the admin API.");
    describe_counter!(RECONCILE_RUNS, "Reconcile runs.");
    describe_gauge!(
        RECONCILE_DRIFT,
        "Differences found by the last reconcile run."
    );
    describe_gauge!(RECONCILE_LAST_RUN, "Unix time of the last reconcile run.");
    describe_gauge!(QUEUE_DEPTH, "Listener files waiting in listener/.");
    describe_gauge!(
        QUEUE_MESSAGES,
        "Messages in the JetStream queue not yet applied."
    );
    describe_gauge!(
        QUEUE_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest waiting file."
    );
    describe_gauge!(
        QUEUE_BLOCKED,
        "1 while the head of the queue keeps failing."
    );
    describe_gauge!(
        QUEUE_BLOCKED_SECONDS,
        Unit::Seconds,
        "How long the queue is blocked."
    );
    describe_gauge!(QUEUE_FULL, "1 while the JetStream queue is full.");
    describe_gauge!(QUARANTINED_FILES, "Files in listener/broken/.");
    describe_gauge!(NATS_CONNECTED, "1 while connected to NATS.");
    describe_gauge!(
        APPLY_RATE,
        "Changes applied per second, over the last minute."
    );
    describe_gauge!(
        QUEUE_ETA,
        "Expected seconds until the waiting listener files are applied at the last minute's pace; -1 without a pace."
    );
    describe_counter!(NATS_RECONNECTS, "Reconnects to NATS since the start.");
    describe_gauge!(
        OX_CALL_LIMIT,
        "OX SOAP calls allowed at once now (adaptive)."
    );
    describe_gauge!(OX_CALLS_IN_FLIGHT, "OX SOAP calls in flight now.");
    describe_gauge!(
        super::progress::OPERATION_OBJECTS_DONE,
        "Objects done in the current phase of a reconcile or state import."
    );
    describe_gauge!(
        super::progress::OPERATION_OBJECTS_IN_PHASE,
        "Objects in the current phase of a reconcile or state import."
    );
    describe_gauge!(
        OX_LATENCY_FLOOR,
        "The shortest OX SOAP call seen lately (the adaptive limit's floor)."
    );
}

/// Changes applied per second over the last minute.
pub const APPLY_RATE: &str = "ox_connector_queue_apply_rate_changes_per_second";
/// Expected seconds until the waiting listener files are applied at that pace (absent without one).
pub const QUEUE_ETA: &str = "ox_connector_queue_eta_seconds";

/// Always 1; its labels say which build runs (`version`).
pub const BUILD_INFO: &str = "ox_connector_build_info";
/// Messages waiting in each subscriber's own queue, by `subscription` (a bounded set: the
/// registered subscriptions).
pub const SUBSCRIBER_QUEUE_MESSAGES: &str = "ox_connector_subscriber_queue_messages";

/// Counters without labels (and the admin actions), shown as 0 from the start so that
/// `rate()` and alerts work before the first event.
const COUNTERS_FROM_ZERO: [&str; 3] = [FILES_SEEN, FILES_QUARANTINED, NATS_RECONNECTS];
const ADMIN_ACTION_NAMES: [&str; 5] = ["skip", "retry", "requeue", "reconcile", "state_import"];

/// What is measured at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// `(subscription, messages waiting)` per subscriber queue.
    pub subscriber_queues: Vec<(String, u64)>,
    pub queue_depth: usize,
    pub queue_messages: Option<u64>,
    pub oldest_age: Option<Duration>,
    pub blocked_for: Option<Duration>,
    pub queue_full: bool,
    pub quarantined: usize,
    pub nats_connected: bool,
    pub nats_reconnects: u64,
    /// The calls towards OX, when they are limited adaptively.
    pub ox_calls: Option<crate::status::OxCalls>,
}

/// Sets the scrape-time gauges and renders every metric in the Prometheus text format.
pub fn render(handle: &PrometheusHandle, scrape: &Scrape) -> String {
    use metrics::{counter, gauge};
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    gauge!(QUEUE_DEPTH).set(scrape.queue_depth as f64);
    if let Some(messages) = scrape.queue_messages {
        gauge!(QUEUE_MESSAGES).set(messages as f64);
    }
    gauge!(QUEUE_OLDEST_AGE).set(scrape.oldest_age.unwrap_or_default().as_secs_f64());
    gauge!(QUEUE_BLOCKED).set(flag(scrape.blocked_for.is_some()));
    gauge!(QUEUE_BLOCKED_SECONDS).set(scrape.blocked_for.unwrap_or_default().as_secs_f64());
    gauge!(QUEUE_FULL).set(flag(scrape.queue_full));
    gauge!(QUARANTINED_FILES).set(scrape.quarantined as f64);
    gauge!(NATS_CONNECTED).set(flag(scrape.nats_connected));
    for (subscription, queued) in &scrape.subscriber_queues {
        gauge!(SUBSCRIBER_QUEUE_MESSAGES, "subscription" => subscription.clone())
            .set(*queued as f64);
    }
    let applied = super::progress::applied_last_minute();
    gauge!(APPLY_RATE).set(applied as f64 / 60.0);
    let eta = super::progress::eta(scrape.queue_depth as u64, applied);
    gauge!(QUEUE_ETA).set(eta.map_or(-1.0, |d| d.as_secs_f64()));
    counter!(NATS_RECONNECTS).absolute(scrape.nats_reconnects);
    process_collector().collect();
    if let Some(calls) = scrape.ox_calls {
        gauge!(OX_CALL_LIMIT).set(calls.limit as f64);
        gauge!(OX_CALLS_IN_FLIGHT).set(calls.in_flight as f64);
        if let Some(floor) = calls.latency_floor_us {
            gauge!(OX_LATENCY_FLOOR).set(floor as f64 / 1e6);
        }
    }
    handle.run_upkeep();
    handle.render()
}
