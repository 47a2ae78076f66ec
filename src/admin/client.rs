//! A client of the admin API for commands that talk to a running daemon (`trigger`, `queue`).

use std::path::Path;
use std::time::Duration;

use super::{Endpoint, StatusReport, ENDPOINT_FILE, TOKEN_FILE};

#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// No endpoint file, or nothing answers there: the daemon is not running.
    #[error("the ox-connector daemon is not running (no answer at {0})")]
    NotRunning(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon refused the request: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("unexpected answer from the daemon: {0}")]
    Decode(String),
}

/// Talks to the daemon whose data directory is given.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// Finds the running daemon from `<data-dir>/run/admin.json` and its token.
    pub fn from_data_dir(data_dir: &Path, timeout: Duration) -> Result<Self, AdminClientError> {
        let endpoint_file = data_dir.join(ENDPOINT_FILE);
        let endpoint: Endpoint = match std::fs::read(&endpoint_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                AdminClientError::Decode(format!("{}: {e}", endpoint_file.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AdminClientError::NotRunning(
                    endpoint_file.display().to_string(),
                ))
            }
            Err(source) => {
                return Err(AdminClientError::Read {
                    path: endpoint_file,
                    source,
                })
            }
        };
        let token_file = data_dir.join(TOKEN_FILE);
        let token = std::fs::read_to_string(&token_file)
            .map_err(|source| AdminClientError::Read {
                path: token_file,
                source,
            })?
            .trim()
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| AdminClientError::Decode(e.to_string()))?;
        Ok(Self {
            base: endpoint.url,
            token,
            http,
        })
    }

    pub async fn status(&self) -> Result<StatusReport, AdminClientError> {
        let response = self.send(self.http.get(self.url("/status"))).await?;
        response
            .json()
            .await
            .map_err(|e| AdminClientError::Decode(e.to_string()))
    }

    /// Asks the daemon to look at the listener folder now.
    pub async fn pick_up(&self) -> Result<(), AdminClientError> {
        self.send(self.http.post(self.url("/queue/pick-up")))
            .await
            .map(drop)
    }

    /// Asks the daemon to retry a failing change now.
    pub async fn retry(&self) -> Result<(), AdminClientError> {
        self.send(self.http.post(self.url("/queue/retry")))
            .await
            .map(drop)
    }

    /// Every subscription with its status.
    pub async fn subscriptions(
        &self,
    ) -> Result<Vec<super::subscriptions::SubscriptionReport>, AdminClientError> {
        let response = self.send(self.http.get(self.url("/subscriptions"))).await?;
        response
            .json()
            .await
            .map_err(|e| AdminClientError::Decode(e.to_string()))
    }

    /// Registers a subscription.
    pub async fn add_subscription(
        &self,
        request: &crate::dispatch::SubscriptionRequest,
    ) -> Result<crate::dispatch::Subscription, AdminClientError> {
        let response = self
            .send(self.http.post(self.url("/subscriptions")).json(request))
            .await?;
        response
            .json()
            .await
            .map_err(|e| AdminClientError::Decode(e.to_string()))
    }

    /// Removes a subscription.
    pub async fn remove_subscription(&self, name: &str) -> Result<(), AdminClientError> {
        self.send(
            self.http
                .delete(self.url(&format!("/subscriptions/{name}"))),
        )
        .await
        .map(drop)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AdminClientError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|_| AdminClientError::NotRunning(self.base.clone()))?;
        let status = response.status();
        if status.is_success() {
            Ok(response)
        } else {
            Err(AdminClientError::Refused {
                status: status.as_u16(),
                body: response.text().await.unwrap_or_default().trim().to_owned(),
            })
        }
    }
}
