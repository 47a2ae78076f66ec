//! A client of the admin API for the commands that talk to a running daemon
//! ([`crate::commands`]: `queue`, `reconcile`, `state import`, `subscriptions`, `trigger`).

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Endpoint, StatusReport, ENDPOINT_FILE, TOKEN_FILE};

/// Header naming the admin behind a request, for the daemon's log.
pub const HEADER_BY: &str = "x-ox-connector-by";

#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// No endpoint file, or nothing answers there: the daemon is not running. `source` is why
    /// nothing answered (refused, timed out); `None` when there is no endpoint file.
    #[error("the ox-connector daemon is not running (no answer at {at})")]
    NotRunning {
        at: String,
        #[source]
        source: Option<reqwest::Error>,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The endpoint file is there but is not what the daemon writes.
    #[error("{path} is not the daemon's endpoint file: {source}")]
    Endpoint {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The HTTP client could not be set up (TLS backend, resolver).
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("the daemon refused the request: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    /// The answer is not the JSON expected.
    #[error("unexpected answer from the daemon: {0}")]
    Decode(#[source] reqwest::Error),
    /// The streamed answer of a long operation is not what was expected, or ended early.
    #[error("unexpected answer from the daemon: {0}")]
    Stream(#[source] super::stream::StreamError),
    /// The request could not be made (not a sign that the daemon is down).
    #[error("cannot send the request to the daemon: {0}")]
    Request(#[source] reqwest::Error),
}

impl AdminClientError {
    /// A failed `send`: nothing answering is [`AdminClientError::NotRunning`]; anything else
    /// keeps its cause.
    fn unsent(base: &str, error: reqwest::Error) -> Self {
        if error.is_connect() || error.is_timeout() {
            Self::NotRunning {
                at: base.to_owned(),
                source: Some(error),
            }
        } else {
            Self::Request(error)
        }
    }
}

/// Talks to the daemon whose data directory is given.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
    /// Who the requests are made for (see [`HEADER_BY`]).
    by: Option<String>,
}

impl AdminClient {
    /// Finds the running daemon from `<data-dir>/run/admin.json` and its token.
    pub fn from_data_dir(data_dir: &Path, timeout: Duration) -> Result<Self, AdminClientError> {
        let endpoint_file = data_dir.join(ENDPOINT_FILE);
        let endpoint: Endpoint = match std::fs::read(&endpoint_file) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| AdminClientError::Endpoint {
                    path: endpoint_file.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AdminClientError::NotRunning {
                    at: endpoint_file.display().to_string(),
                    source: None,
                })
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
            .map_err(AdminClientError::Client)?;
        Ok(Self {
            base: endpoint.url,
            token,
            http,
            by: None,
        })
    }

    /// Names the admin behind the requests (logged by the daemon).
    pub fn by(mut self, who: impl Into<String>) -> Self {
        // One line: a header value cannot hold a line break.
        let who: String = who
            .into()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.by = Some(who);
        self
    }

    /// The daemon's base URL, e.g. `http://127.0.0.1:7781`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET path`, decoded from JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, AdminClientError> {
        let response = self.send(self.http.get(self.url(path))).await?;
        response.json().await.map_err(AdminClientError::Decode)
    }

    /// `POST path` with a JSON body, the answer decoded from JSON.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, AdminClientError> {
        let response = self.send(self.http.post(self.url(path)).json(body)).await?;
        response.json().await.map_err(AdminClientError::Decode)
    }

    /// `POST path` of a long operation with a JSON body, asking for its progress as a stream
    /// ([`super::stream`]): every progress step goes to `on_progress`, then the report is
    /// decoded. A failure after the operation started is [`AdminClientError::Refused`] with the
    /// status the plain answer would have had.
    pub async fn post_streaming<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        mut on_progress: impl FnMut(crate::telemetry::progress::Step),
    ) -> Result<T, AdminClientError> {
        use super::stream::{Reader, StreamError, NDJSON};
        let request = self
            .http
            .post(self.url(path))
            .header(reqwest::header::ACCEPT, NDJSON)
            .json(body);
        let mut response = self.send(request).await?;
        let mut reader = Reader::default();
        while let Some(chunk) = response.chunk().await.map_err(AdminClientError::Decode)? {
            match reader.feed::<T>(&chunk, &mut on_progress) {
                None => continue,
                Some(Ok(report)) => return Ok(report),
                Some(Err(StreamError::Failed { status, message })) => {
                    return Err(AdminClientError::Refused {
                        status,
                        body: message,
                    })
                }
                Some(Err(e)) => return Err(AdminClientError::Stream(e)),
            }
        }
        Err(AdminClientError::Stream(StreamError::Truncated))
    }

    /// `GET path` whatever the HTTP status (for `/ready`, which answers 503 with a body).
    pub async fn get_any<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(u16, T), AdminClientError> {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| AdminClientError::unsent(&self.base, e))?;
        let status = response.status().as_u16();
        let body = response.json().await.map_err(AdminClientError::Decode)?;
        Ok((status, body))
    }

    pub async fn status(&self) -> Result<StatusReport, AdminClientError> {
        let response = self.send(self.http.get(self.url("/status"))).await?;
        response.json().await.map_err(AdminClientError::Decode)
    }

    /// Asks the daemon to look at the listener folder now.
    pub async fn pick_up(&self) -> Result<(), AdminClientError> {
        self.send(self.http.post(self.url("/queue/pick-up")))
            .await
            .map(drop)
    }

    /// `POST path` without a body, ignoring the answer's body.
    pub async fn post_empty(&self, path: &str) -> Result<(), AdminClientError> {
        self.send(self.http.post(self.url(path))).await.map(drop)
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
        response.json().await.map_err(AdminClientError::Decode)
    }

    /// Registers a subscription.
    pub async fn add_subscription(
        &self,
        request: &crate::dispatch::SubscriptionRequest,
    ) -> Result<crate::dispatch::Subscription, AdminClientError> {
        let response = self
            .send(self.http.post(self.url("/subscriptions")).json(request))
            .await?;
        response.json().await.map_err(AdminClientError::Decode)
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
        let mut request = request.bearer_auth(&self.token);
        if let Some(by) = &self.by {
            // From bytes: a name like "Jürgen" is not visible ASCII, which `&str` would demand.
            if let Ok(value) = reqwest::header::HeaderValue::from_bytes(by.as_bytes()) {
                request = request.header(HEADER_BY, value);
            }
        }
        let response = request
            .send()
            .await
            .map_err(|e| AdminClientError::unsent(&self.base, e))?;
        let status = response.status();
        if status.is_success() {
            Ok(response)
        } else {
            let text = response.text().await.unwrap_or_default();
            // Operations endpoints answer `{"error": "…"}`; show the text only.
            let body = serde_json::from_str::<crate::ops::ErrorBody>(&text)
                .map(|e| e.error)
                .unwrap_or(text);
            Err(AdminClientError::Refused {
                status: status.as_u16(),
                body: body.trim().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir_with_endpoint(endpoint: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        std::fs::write(dir.path().join(ENDPOINT_FILE), endpoint).unwrap();
        std::fs::write(dir.path().join(TOKEN_FILE), "token\n").unwrap();
        dir
    }

    #[test]
    fn a_broken_endpoint_file_is_named_and_keeps_the_json_error() {
        let dir = data_dir_with_endpoint("{\"url\": ");
        let error = AdminClient::from_data_dir(dir.path(), Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            matches!(&error, AdminClientError::Endpoint { path, .. } if path.ends_with(ENDPOINT_FILE)),
            "{error:?}"
        );
        let source = std::error::Error::source(&error).unwrap();
        assert!(source.is::<serde_json::Error>(), "{source:?}");
    }

    #[tokio::test]
    async fn nothing_answering_is_not_running_and_says_why() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = data_dir_with_endpoint(&format!(
            "{{\"url\": \"http://127.0.0.1:{port}\", \"pid\": 1}}"
        ));
        let client = AdminClient::from_data_dir(dir.path(), Duration::from_secs(5)).unwrap();
        let error = client.status().await.unwrap_err();
        assert!(
            matches!(
                &error,
                AdminClientError::NotRunning {
                    source: Some(_),
                    ..
                }
            ),
            "{error:?}"
        );
        let chain = crate::telemetry::error_chain(&error);
        assert!(
            chain.starts_with(
                "the ox-connector daemon is not running (no answer at http://127.0.0.1:"
            ),
            "{chain}"
        );
        assert!(
            chain.len() > error.to_string().len(),
            "the cause is kept: {chain}"
        );
    }

    #[test]
    fn no_endpoint_file_is_not_running_without_a_cause() {
        let dir = tempfile::tempdir().unwrap();
        let error = AdminClient::from_data_dir(dir.path(), Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            matches!(&error, AdminClientError::NotRunning { source: None, .. }),
            "{error:?}"
        );
    }
}
