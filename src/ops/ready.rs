//! Readiness: is the daemon able to do its work right now? NATS connected, OX answering, and
//! the queue neither blocked nor full — with the reason when not (`GET /ready`).
//!
//! OX is probed by fetching a WSDL (`<OX_SOAP_SERVER>/webservices/OXContextService?wsdl`): it
//! needs no credentials, so a probe every few seconds neither fills OX's logs with logins nor
//! locks an account. The answer is cached for [`PROBE_TTL`]. Until one authenticated call with
//! the master login (`OXContextService.exists`) has succeeded, the daemon is not ready either
//! ([`LoginCheck`]: retried at most every [`LOGIN_RETRY`] while it fails, never again once it
//! worked — later credential problems show up as a blocked queue). And `listener/` must be
//! writable (a file is created and removed; the result is cached for [`LISTENER_TTL`]): the
//! daemon deletes applied files there.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Ops;

/// How long an OX probe result is reused.
pub const PROBE_TTL: Duration = Duration::from_secs(5);
/// How often a failed master login is tried again for `/ready`.
pub const LOGIN_RETRY: Duration = Duration::from_secs(30);
/// How long the result of the listener folder's write test is reused.
pub const LISTENER_TTL: Duration = Duration::from_secs(60);

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
        if let Some((at, result)) = &*crate::locks::lock(&self.last) {
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
            Err(e) => Err(format!(
                "cannot connect to OX at {}: {}",
                self.url,
                crate::telemetry::error_chain(&e)
            )),
        };
        *crate::locks::lock(&self.last) = Some((Instant::now(), result.clone()));
        result
    }
}

/// Whether the master login works: one authenticated OX call, remembered once it worked.
#[derive(Default)]
pub struct LoginCheck {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl LoginCheck {
    pub async fn check(&self, ox: &crate::ox::soap::OxClient) -> Result<(), String> {
        if let Some((at, result)) = &*crate::locks::lock(&self.last) {
            if result.is_ok() || at.elapsed() < LOGIN_RETRY {
                return result.clone();
            }
        }
        let result = match ox.context_exists(1).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_auth() => Err(format!(
                "OX refused the master login ({}): check OX_MASTER_ADMIN/OX_MASTER_PASSWORD or the \
                 \"master\" entry of the credentials file",
                crate::telemetry::error_chain(&e)
            )),
            Err(e) => Err(crate::telemetry::error_chain(&e)),
        };
        *crate::locks::lock(&self.last) = Some((Instant::now(), result.clone()));
        result
    }
}

/// Whether files can be created and removed in `listener/`, cached for [`LISTENER_TTL`].
#[derive(Default)]
pub struct ListenerCheck {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl ListenerCheck {
    pub fn check(&self, listener_dir: &std::path::Path) -> Result<(), String> {
        let mut last = crate::locks::lock(&self.last);
        if let Some((at, result)) = &*last {
            if at.elapsed() < LISTENER_TTL {
                return result.clone();
            }
        }
        // A dot-name: neither the watcher nor the trigger take it for a listener file.
        let probe = listener_dir.join(".ox-connector-write-test");
        let result = std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                format!(
                    "cannot write in {}: {e}; applied listener files could not be deleted \
                     (check the owner, the mode and free space)",
                    listener_dir.display()
                )
            });
        *last = Some((Instant::now(), result.clone()));
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
    if let (Some(probe), Some(applier)) = (&ops.probe, ops.ox.get()) {
        let mut result = probe.check().await;
        let has_password = applier
            .provisioner()
            .credentials
            .master_login()
            .is_some_and(|login| !login.adminpass.is_empty());
        if result.is_ok() && !has_password {
            result = Err(format!(
                "no master password: set OX_MASTER_PASSWORD (App Center setting) or the \
                 \"master\" entry of {}",
                applier.provisioner().settings.credentials_file.display()
            ));
        } else if result.is_ok() {
            result = ops.login.check(&applier.provisioner().ox).await;
        }
        checks.push(Check {
            name: "ox".into(),
            ok: result.is_ok(),
            detail: result
                .err()
                .unwrap_or_else(|| "answers, the master login works".into()),
        });
    }
    let listener = ops.listener_check.check(&ops.listener_dir);
    checks.push(Check {
        name: "listener".into(),
        ok: listener.is_ok(),
        detail: listener.err().unwrap_or_else(|| "writable".into()),
    });
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
