//! Readiness: is the daemon able to do its work right now? NATS connected, OX answering, and
//! the queue neither blocked nor full — with the reason when not (`GET /ready`).
//!
//! OX is probed by fetching a WSDL (`<OX_SOAP_SERVER>/webservices/OXContextService?wsdl`): it
//! needs no credentials, so a probe every few seconds neither fills OX's logs with logins nor
//! locks an account. Wrong credentials show up as a blocked queue instead. The answer is cached
//! for [`PROBE_TTL`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Ops;

/// How long an OX probe result is reused.
pub const PROBE_TTL: Duration = Duration::from_secs(5);

/// One check of `/ready`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// `GET /ready`: 200 when every check passes, 503 otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl Readiness {
    /// The failed checks as one line, e.g. `ox: connection refused; queue: blocked on …`.
    pub fn reasons(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Asks OX whether it answers, caching the answer for a few seconds.
pub struct OxProbe {
    url: String,
    http: reqwest::Client,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl OxProbe {
    /// A probe of the OX server `soap_server` (the value of `OX_SOAP_SERVER`).
    pub fn new(soap_server: &str) -> Option<Self> {
        let base = crate::ox::soap::normalize_server_url(soap_server).ok()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        Some(Self {
            url: format!("{base}/webservices/OXContextService?wsdl"),
            http,
            last: Mutex::new(None),
        })
    }

    /// `Ok` if OX answered the last probe (at most [`PROBE_TTL`] ago), else why not.
    pub async fn check(&self) -> Result<(), String> {
        if let Some((at, result)) = &*self.last.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < PROBE_TTL {
                return result.clone();
            }
        }
        let result = match self.http.get(&self.url).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!(
                "OX answered HTTP {} at {}",
                response.status(),
                self.url
            )),
            Err(e) if e.is_timeout() => {
                Err(format!("OX did not answer within 5 s at {}", self.url))
            }
            Err(e) if e.is_connect() => Err(format!("cannot connect to OX at {}", self.url)),
            Err(e) => Err(format!("cannot reach OX at {}: {e}", self.url)),
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), result.clone()));
        result
    }
}

/// Runs every check.
pub async fn readiness(ops: &Ops) -> Readiness {
    let mut checks = Vec::new();
    let state = ops.client.connection_state();
    checks.push(Check {
        name: "nats".into(),
        ok: state == async_nats::connection::State::Connected,
        detail: format!("{state}"),
    });
    if let (Some(probe), Some(_)) = (&ops.probe, ops.ox.get()) {
        let result = probe.check().await;
        checks.push(Check {
            name: "ox".into(),
            ok: result.is_ok(),
            detail: result.err().unwrap_or_else(|| "answers".into()),
        });
    }
    let status = ops.status.get();
    let queue = match (&status.blocked, &status.queue_full) {
        (Some(b), _) => Check {
            name: "queue".into(),
            ok: false,
            detail: format!(
                "blocked on {} ({} {}) since {} after {} attempt(s): {}",
                b.file.as_deref().unwrap_or("-"),
                b.object_type,
                b.dn,
                b.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                b.attempts,
                b.error
            ),
        },
        (None, Some(full)) => Check {
            name: "queue".into(),
            ok: false,
            detail: format!(
                "full since {}: {}",
                full.since
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                full.reason
            ),
        },
        (None, None) => Check {
            name: "queue".into(),
            ok: true,
            detail: "moving".into(),
        },
    };
    checks.push(queue);
    Readiness {
        ready: checks.iter().all(|c| c.ok),
        checks,
    }
}
