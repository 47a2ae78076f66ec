//! Switches for tests and benchmarks: latency per call, fault injection (the next N calls of an
//! operation, a fraction of calls) and "OX is down". Set with `POST /emulator/faults` or
//! [`super::EmulatorHandle::set_faults`]; the JSON shape is documented in `docs/ox-emulator.md`.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The complete fault and latency configuration (replaced as a whole).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Fixed latency added to every SOAP call, in milliseconds.
    pub latency_ms: u64,
    /// Random extra latency per SOAP call, uniform in `0..=latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    /// OX is down: every SOAP call fails this way (admin endpoints keep working).
    pub down: Option<Failure>,
    /// Rules checked in order for each SOAP call; the first that fires decides.
    pub rules: Vec<FaultRule>,
}

/// When a rule fires.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// Service name (`OXUserService`); `None` = any.
    pub service: Option<String>,
    /// Operation name (`create`); `None` or `"*"` = any.
    pub operation: Option<String>,
    /// Fire for the next `count` matching calls, then never again.
    pub count: Option<u32>,
    /// Fire for this fraction (0.0–1.0) of matching calls.
    pub fraction: Option<f64>,
    /// What the failing call answers; default: a `StorageException` fault.
    pub fail: Failure,
}

/// How an injected failure looks on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Failure {
    /// A SOAP fault (`soap:Server`, HTTP 500) with the given detail exception and text.
    Fault {
        #[serde(default = "default_exception")]
        exception: String,
        #[serde(default = "default_message")]
        message: String,
    },
    /// A plain HTTP error page with this status (what a proxy in front of a down OX answers).
    Http { status: u16 },
    /// The connection breaks mid-answer (headers sent, body aborted).
    Reset,
}

fn default_exception() -> String {
    "StorageException".into()
}

fn default_message() -> String {
    "Emulated storage failure".into()
}

impl Default for Failure {
    fn default() -> Self {
        Failure::Fault {
            exception: default_exception(),
            message: default_message(),
        }
    }
}

impl FaultSettings {
    /// The latency to apply to one call.
    pub fn latency(&self) -> Duration {
        let jitter = if self.latency_jitter_ms > 0 {
            rand::rng().random_range(0..=self.latency_jitter_ms)
        } else {
            0
        };
        Duration::from_millis(self.latency_ms + jitter)
    }

    /// Decides whether the call `service.operation` fails, consuming a `count` if a rule fires.
    pub fn decide(&mut self, service: &str, operation: &str) -> Option<Failure> {
        if let Some(down) = &self.down {
            return Some(down.clone());
        }
        for rule in &mut self.rules {
            let service_ok = rule
                .service
                .as_deref()
                .is_none_or(|s| s == service || s == "*");
            let op_ok = rule
                .operation
                .as_deref()
                .is_none_or(|o| o == operation || o == "*");
            if !(service_ok && op_ok) {
                continue;
            }
            let fires = match (rule.count.as_mut(), rule.fraction) {
                (Some(0), _) => false,
                (Some(n), _) => {
                    *n -= 1;
                    true
                }
                (None, Some(fraction)) => rand::rng().random_bool(fraction.clamp(0.0, 1.0)),
                (None, None) => true,
            };
            if fires {
                return Some(rule.fail.clone());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_rule_fails_exactly_the_next_n_matching_calls() {
        let mut config: FaultSettings = serde_json::from_str(
            r#"{"rules":[{"service":"OXUserService","operation":"create","count":2}]}"#,
        )
        .unwrap();
        assert_eq!(config.decide("OXGroupService", "create"), None);
        assert_eq!(
            config.decide("OXUserService", "create"),
            Some(Failure::default())
        );
        assert_eq!(config.decide("OXUserService", "change"), None);
        assert_eq!(
            config.decide("OXUserService", "create"),
            Some(Failure::default())
        );
        assert_eq!(config.decide("OXUserService", "create"), None);
    }

    #[test]
    fn down_wins_over_rules_and_fractions_bound_the_failure_rate() {
        let mut config: FaultSettings = serde_json::from_str(
            r#"{"down":{"type":"http","status":503},"rules":[{"fraction":1.0,"fail":{"type":"reset"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            config.decide("OXUserService", "create"),
            Some(Failure::Http { status: 503 })
        );
        config.down = None;
        assert_eq!(
            config.decide("OXUserService", "create"),
            Some(Failure::Reset)
        );
        config.rules[0].fraction = Some(0.0);
        assert_eq!(config.decide("OXUserService", "create"), None);
    }

    #[test]
    fn unknown_switches_are_rejected() {
        assert!(serde_json::from_str::<FaultSettings>(r#"{"latency":5}"#).is_err());
    }
}
