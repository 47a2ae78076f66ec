//! How an envelope reaches OX: a [`Transport`] posts it to a service URL with its `SOAPAction`
//! and returns the HTTP status and body, or a [`TransportError`] saying how the exchange
//! failed. [`HttpTransport`] (reqwest, one keep-alive connection pool) is the one the daemon
//! uses; the client's unit tests give it one that answers from memory, so everything above the
//! wire — writing the request, sorting the answer into result, fault or error kind, the
//! limiter, telemetry — is tested without a server.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// One envelope to post.
#[derive(Debug)]
pub struct Post<'a> {
    /// `<base>/webservices/<Service>`.
    pub url: &'a str,
    /// The `SOAPAction` header's value, quoted: `"urn:<operation>"`.
    pub soap_action: &'a str,
    pub envelope: String,
    /// Largest answer to read; a longer one is [`TransportErrorKind::TooLarge`].
    pub max_response_bytes: usize,
}

/// OX's answer: its HTTP status and body (a fault comes with status 500).
#[derive(Debug, Clone)]
pub struct Answered {
    pub status: u16,
    pub body: Vec<u8>,
}

/// How an exchange failed before an answer was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// The TCP/TLS connection could not be established.
    Connect,
    /// The exchange did not complete within the timeout.
    Timeout,
    /// The connection broke while sending or receiving.
    Broken,
    /// The transport is set up wrongly (TLS setup, a URL it cannot use).
    Config,
    /// The answer is longer than [`Post::max_response_bytes`].
    TooLarge,
}

/// A failed exchange: its kind, one line for the admin (the causes included, each once), and
/// the error it came from.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct TransportError {
    pub kind: TransportErrorKind,
    pub detail: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    pub fn new(kind: TransportErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    /// A failure caused by `source`; the detail is its text and that of its causes.
    pub fn caused_by(
        kind: TransportErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            detail: crate::telemetry::error_chain(&source),
            source: Some(Box::new(source)),
        }
    }
}

/// The answer to a [`Post`], once there.
pub type Posting<'a> = Pin<Box<dyn Future<Output = Result<Answered, TransportError>> + Send + 'a>>;

/// Posts SOAP envelopes. Shared by every clone of a client.
pub trait Transport: Send + Sync + std::fmt::Debug {
    fn post<'a>(&'a self, post: Post<'a>) -> Posting<'a>;
}

/// The HTTP transport: one keep-alive `reqwest` client.
#[derive(Debug)]
pub struct HttpTransport {
    http: reqwest::Client,
}

impl HttpTransport {
    /// `timeout` bounds a whole exchange (connect, send, answer), `connect_timeout` the
    /// connection.
    pub fn new(timeout: Duration, connect_timeout: Duration) -> Result<Self, TransportError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .map_err(|e| TransportError::caused_by(TransportErrorKind::Config, e))?;
        Ok(Self { http })
    }

    async fn exchange(&self, post: Post<'_>) -> Result<Answered, TransportError> {
        let response = self
            .http
            .post(post.url)
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=UTF-8")
            .header("SOAPAction", post.soap_action)
            .body(post.envelope)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status().as_u16();
        let body = read_body(response, post.max_response_bytes).await?;
        Ok(Answered { status, body })
    }
}

impl Transport for HttpTransport {
    fn post<'a>(&'a self, post: Post<'a>) -> Posting<'a> {
        Box::pin(self.exchange(post))
    }
}

/// Reads the answer's body, refusing one longer than `limit` bytes as soon as that is known
/// (from `Content-Length`, or while reading), so a hostile or broken server cannot make the
/// client buffer an unbounded answer. A body that trickles in is cut off by the timeout.
async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, TransportError> {
    let too_large = |size: String| {
        TransportError::new(
            TransportErrorKind::TooLarge,
            format!("the answer is {size} bytes, more than the limit of {limit} bytes"),
        )
    };
    if let Some(length) = response.content_length() {
        if length > limit as u64 {
            return Err(too_large(length.to_string()));
        }
    }
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large(format!("more than {}", body.len() + chunk.len())));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sorts reqwest errors into connect / timeout / broken (as onvif-rs does).
fn classify(error: reqwest::Error) -> TransportError {
    let kind = if error.is_timeout() {
        TransportErrorKind::Timeout
    } else if error.is_connect() {
        TransportErrorKind::Connect
    } else if error.is_builder() {
        TransportErrorKind::Config
    } else {
        TransportErrorKind::Broken
    };
    TransportError::caused_by(kind, error)
}
