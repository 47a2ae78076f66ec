//! `OxClient`: the [`Transport`] (by default one keep-alive `reqwest` client), the normalised
//! server URL, the master credentials, and the generic call (write the request, post the
//! envelope, sort the answer into result or [`OxError`]). The per-service methods live in the sibling `*_service`
//! modules; each is one [`OxClient::invoke`] with the operation's children.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;

use super::answer::Answer;
use super::envelope::{read_response, redact_passwords, Request, Service};
use super::error::{OxError, OxErrorKind};
use super::transport::{HttpTransport, Post, Transport, TransportError, TransportErrorKind};
use super::types::Credentials;
use crate::ox::limit::Limiter;

/// Default for [`OxClientBuilder::timeout`]: generous, OX context creation can take seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`OxClientBuilder::max_response_bytes`]: OX's answers to the connector's calls
/// are a few KiB; anything near this is not an answer the connector can use.
pub(super) const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Client of the OX admin SOAP API. Cheap to clone (one shared connection pool).
#[derive(Clone, Debug)]
pub struct OxClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    transport: Arc<dyn Transport>,
    /// Normalised base URL without trailing slash, e.g. `https://ox.example.org`.
    base: String,
    master: Master,
    log_envelopes: bool,
    max_response_bytes: usize,
    limiter: Option<Limiter>,
}

/// Where the master admin credentials come from: fixed, or asked for before every call (so an
/// admin's fix of the credentials file takes effect without a restart).
#[derive(Clone)]
enum Master {
    Fixed(Credentials),
    Source(Arc<dyn Fn() -> Credentials + Send + Sync>),
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Master::Fixed(credentials) => credentials.fmt(f),
            Master::Source(_) => f.write_str("Master::Source"),
        }
    }
}

/// Settings of an [`OxClient`].
#[derive(Clone, Debug)]
pub struct OxClientBuilder {
    server: String,
    timeout: Duration,
    connect_timeout: Duration,
    master: Master,
    log_envelopes: bool,
    max_response_bytes: usize,
    limiter: Option<Limiter>,
    /// `None`: an [`HttpTransport`] with the timeouts above.
    transport: Option<Arc<dyn Transport>>,
}

impl OxClient {
    /// Starts building a client for `server` (the value of `OX_SOAP_SERVER`, normalised by
    /// [`normalize_server_url`]).
    pub fn builder(server: impl Into<String>) -> OxClientBuilder {
        OxClientBuilder {
            server: server.into(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
            master: Master::Fixed(Credentials::default()),
            log_envelopes: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            limiter: None,
            transport: None,
        }
    }

    /// The normalised base URL, e.g. `https://ox.example.org`.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The limiter of the calls in flight, if the client has one.
    pub fn limiter(&self) -> Option<&Limiter> {
        self.inner.limiter.as_ref()
    }

    /// The master admin credentials (OXContextService and copyUser), as they are now.
    pub fn master(&self) -> Credentials {
        match &self.inner.master {
            Master::Fixed(credentials) => credentials.clone(),
            Master::Source(source) => source(),
        }
    }

    /// One operation of `service`: writes the request (`children` add the wrapper's children
    /// in schema order, then come the credentials `auth`), sends it and decodes the answer.
    pub(crate) async fn invoke<A: Answer>(
        &self,
        service: Service,
        op: &'static str,
        auth: &Credentials,
        children: impl FnOnce(&mut Request) -> &mut Request,
    ) -> Result<A, OxError> {
        let mut request = Request::new(service, op);
        children(&mut request).auth(auth);
        self.call(request).await
    }

    /// Like [`OxClient::invoke`] for the context-scoped services (user, group, resource),
    /// whose first child is the context reference `ctx`.
    pub(crate) async fn invoke_in_context<A: Answer>(
        &self,
        service: Service,
        op: &'static str,
        ctx: i32,
        auth: &Credentials,
        children: impl FnOnce(&mut Request) -> &mut Request,
    ) -> Result<A, OxError> {
        self.invoke(service, op, auth, |req| children(req.context("ctx", ctx)))
            .await
    }

    /// Sends a request and decodes the `<op>Response` element (none for void operations).
    /// Telemetry sees the exchange; a failure to decode the content comes after it.
    async fn call<A: Answer>(&self, request: Request) -> Result<A, OxError> {
        let service = request.service;
        let op = request.operation;
        let operation = format!("{}.{}", service.name(), op);
        let url = format!("{}/webservices/{}", self.inner.base, service.name());
        check_characters(&operation, &request)?;
        let body = request.finish();
        if self.inner.log_envelopes && tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(operation = %operation, envelope = %redact_passwords(&body), "Sending OX SOAP request.");
        }
        let permit = match &self.inner.limiter {
            Some(limiter) => Some(limiter.acquire().await),
            None => None,
        };
        let started = Instant::now();
        let soap_action = format!("\"urn:{op}\"");
        let post = Post {
            url: &url,
            soap_action: &soap_action,
            envelope: body,
            max_response_bytes: self.inner.max_response_bytes,
        };
        let exchanged = self
            .inner
            .transport
            .post(post)
            .await
            .map(|answered| (answered.status, answered.body))
            .map_err(|e| transport_error(&operation, e));
        let result = exchanged.and_then(|(status, bytes)| {
            if self.inner.log_envelopes && tracing::enabled!(tracing::Level::DEBUG) {
                let text = String::from_utf8_lossy(&bytes);
                tracing::debug!(operation = %operation, status, envelope = %redact_passwords(&text), "Received OX SOAP response.");
            }
            read_response(&operation, service, op, status, &bytes, A::VOID)
        });
        if let Some(permit) = permit {
            let transient = result.as_ref().err().is_some_and(OxError::is_retryable);
            permit.finish(started.elapsed(), transient);
        }
        crate::telemetry::events::OxCallFinished {
            operation: &operation,
            elapsed: started.elapsed(),
            error: result
                .as_ref()
                .err()
                .map(|e| (e.label(), e as &(dyn std::error::Error + 'static))),
        }
        .emit();
        A::decode(&operation, result?)
    }
}

impl OxClientBuilder {
    /// Timeout of a whole call (connect, send, answer).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Timeout of establishing the connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Master admin credentials (`OX_MASTER_ADMIN` and its password).
    pub fn master(mut self, credentials: Credentials) -> Self {
        self.master = Master::Fixed(credentials);
        self
    }

    /// Master admin credentials asked for before every call that needs them.
    pub fn master_source(
        mut self,
        source: impl Fn() -> Credentials + Send + Sync + 'static,
    ) -> Self {
        self.master = Master::Source(Arc::new(source));
        self
    }

    /// Log every envelope at DEBUG level, passwords redacted. Off by default: envelopes hold
    /// personal data.
    pub fn log_envelopes(mut self, on: bool) -> Self {
        self.log_envelopes = on;
        self
    }

    /// Largest answer accepted; a longer one is refused without reading it all
    /// ([`OxErrorKind::Decode`]).
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Limits the calls in flight at once by `limiter` (shared by clones of the client).
    pub fn limiter(mut self, limiter: Limiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Posts the envelopes through `transport` instead of HTTP (the timeouts then do not
    /// apply: they are the HTTP transport's).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    pub fn build(self) -> Result<OxClient, OxError> {
        let base = normalize_server_url(&self.server)?;
        let transport = match self.transport {
            Some(transport) => transport,
            None => Arc::new(
                HttpTransport::new(self.timeout, self.connect_timeout)
                    .map_err(|e| transport_error("", e))?,
            ),
        };
        Ok(OxClient {
            inner: Arc::new(Inner {
                transport,
                base,
                master: self.master,
                log_envelopes: self.log_envelopes,
                max_response_bytes: self.max_response_bytes,
                limiter: self.limiter,
            }),
        })
    }
}

/// Normalises `OX_SOAP_SERVER` into a base URL without trailing slash:
///
/// - empty ⇒ `http://127.0.0.1` (the original connector's default);
/// - no scheme ⇒ `https://` (the App Center's initial value is `https://<fqdn>`);
/// - a path ending in `/webservices` (or `/webservices/<Service>`, `?wsdl`) is cut back to
///   the base, since services are addressed as `<base>/webservices/<Service>`;
/// - default ports are dropped, and `:80` under `https` becomes the https default port: OX
///   advertises `:80` even behind TLS, which the original connector rewrote to `:443`.
pub fn normalize_server_url(server: &str) -> Result<String, OxError> {
    let server = server.trim();
    let with_scheme = if server.is_empty() {
        "http://127.0.0.1".to_string()
    } else if server.contains("://") {
        server.to_string()
    } else {
        format!("https://{server}")
    };
    let invalid = |detail: String| OxError::new(OxErrorKind::Config, "", detail);
    let mut url = Url::parse(&with_scheme)
        .map_err(|e| invalid(format!("OX_SOAP_SERVER {server:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!(
            "OX_SOAP_SERVER {server:?} must be an http:// or https:// URL with a host"
        )));
    }
    if url.scheme() == "https" && url.port() == Some(80) {
        // `set_port` cannot fail for http(s) URLs with a host (checked above).
        let _ = url.set_port(None);
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().to_string();
    let base_path = match path.find("/webservices") {
        Some(i) => &path[..i],
        None => path.as_str(),
    };
    let base_path = base_path.trim_end_matches('/').to_string();
    url.set_path(&base_path);
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Refuses a request with a character XML 1.0 forbids in a field that must not change
/// silently, and warns about descriptive fields it was dropped from (`xml_chars`).
fn check_characters(operation: &str, request: &Request) -> Result<(), OxError> {
    if let Some(field) = request.refused_field() {
        return Err(OxError::new(
            OxErrorKind::InvalidValue,
            operation,
            format!(
                "the value of {field} contains a character XML 1.0 forbids (a control \
                 character such as U+0001); OX cannot receive it. Remove it from the UDM object"
            ),
        ));
    }
    for field in request.dropped_fields() {
        tracing::warn!(operation, field = %field, "Dropped characters XML 1.0 forbids from a text field before sending it to OX.");
    }
    Ok(())
}

/// The [`OxError`] of a failed exchange, keeping its cause chain.
fn transport_error(operation: &str, error: TransportError) -> OxError {
    let kind = match error.kind {
        TransportErrorKind::Connect => OxErrorKind::Connect,
        TransportErrorKind::Timeout => OxErrorKind::Timeout,
        TransportErrorKind::Broken => OxErrorKind::Transport,
        TransportErrorKind::Config => OxErrorKind::Config,
        TransportErrorKind::TooLarge => OxErrorKind::Decode,
    };
    let TransportError { detail, source, .. } = error;
    OxError::new(kind, operation, detail).with_boxed_source(source)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::super::transport::{Answered, Posting};
    use super::super::{FaultKind, User};
    use super::*;

    /// Answers every post with the next of its scripted answers and records what was posted.
    #[derive(Debug, Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<Answered, TransportError>>>,
        /// URL, SOAPAction and envelope of each post.
        posted: Mutex<Vec<(String, String, String)>>,
    }

    impl Transport for Scripted {
        fn post<'a>(&'a self, post: Post<'a>) -> Posting<'a> {
            self.posted.lock().unwrap().push((
                post.url.to_owned(),
                post.soap_action.to_owned(),
                post.envelope,
            ));
            let next = self.answers.lock().unwrap().pop_front();
            Box::pin(async move { next.expect("a scripted answer for every post") })
        }
    }

    fn client(answers: Vec<Result<Answered, TransportError>>) -> (OxClient, Arc<Scripted>) {
        let transport = Arc::new(Scripted {
            answers: Mutex::new(answers.into()),
            ..Scripted::default()
        });
        let client = OxClient::builder("https://ox.example.org/webservices/")
            .transport(transport.clone())
            .build()
            .unwrap();
        (client, transport)
    }

    fn answer(status: u16, body: &str) -> Result<Answered, TransportError> {
        Ok(Answered {
            status,
            body: body.as_bytes().to_vec(),
        })
    }

    fn envelope(body: &str) -> String {
        format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{body}</s:Body></s:Envelope>"#
        )
    }

    const NO_SUCH_USER: &str = r#"<s:Fault><faultcode>s:Server</faultcode><faultstring>No such user jdoe in context 10; exceptionId 1170523631-7</faultstring><detail><NoSuchUserException xmlns="http://soap.admin.openexchange.com"/></detail></s:Fault>"#;

    async fn get_user(ox: &OxClient) -> Result<User, OxError> {
        let admin = Credentials::new("oxadmin", "ctx-secret");
        ox.get_user(10, &User::with_name("jdoe"), &admin).await
    }

    #[tokio::test]
    async fn a_fault_answer_becomes_a_typed_fault_of_the_posted_operation() {
        let (ox, transport) = client(vec![answer(500, &envelope(NO_SUCH_USER))]);
        let error = get_user(&ox).await.unwrap_err();
        assert_eq!(error.kind(), OxErrorKind::Fault(FaultKind::NoSuchUser));
        assert!(error.is_not_found());
        assert!(
            !error.is_retryable(),
            "a missing user does not come back by waiting"
        );
        assert_eq!(error.operation(), "OXUserService.getData");
        assert_eq!(error.fault_text(), Some("No such user jdoe in context 10"));
        let fault = error.fault().unwrap();
        assert_eq!(fault.exception_id.as_deref(), Some("1170523631-7"));
        let posted = transport.posted.lock().unwrap();
        let (url, action, envelope) = &posted[0];
        assert_eq!(url, "https://ox.example.org/webservices/OXUserService");
        assert_eq!(action, "\"urn:getData\"");
        assert!(envelope.contains("jdoe") && envelope.contains("ctx-secret"));
    }

    #[tokio::test]
    async fn transport_failures_keep_their_kind_and_their_causes() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused by peer");
        let cases = vec![
            (
                Err(TransportError::caused_by(
                    TransportErrorKind::Connect,
                    refused,
                )),
                OxErrorKind::Connect,
                true,
            ),
            (
                Err(TransportError::new(
                    TransportErrorKind::Timeout,
                    "timed out",
                )),
                OxErrorKind::Timeout,
                true,
            ),
            (
                Err(TransportError::new(TransportErrorKind::Broken, "reset")),
                OxErrorKind::Transport,
                true,
            ),
            (
                Err(TransportError::new(
                    TransportErrorKind::TooLarge,
                    "too large",
                )),
                OxErrorKind::Decode,
                false,
            ),
            (
                answer(503, "<html>busy</html>"),
                OxErrorKind::Http(503),
                true,
            ),
            (answer(429, ""), OxErrorKind::Http(429), true),
            (
                answer(404, "<html>no</html>"),
                OxErrorKind::Http(404),
                false,
            ),
            (
                answer(200, "<html>login</html>"),
                OxErrorKind::NotSoap,
                false,
            ),
            (answer(200, &envelope("")), OxErrorKind::Decode, false),
        ];
        for (answered, kind, retryable) in cases {
            let (ox, _) = client(vec![answered]);
            let error = get_user(&ox).await.unwrap_err();
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(error.is_retryable(), retryable, "{error}");
            if kind == OxErrorKind::Connect {
                // Issue 17: the transport's causes reach the logs and the status.
                let chain = crate::telemetry::error_chain(&error);
                assert!(chain.contains("refused by peer"), "{chain}");
                assert!(std::error::Error::source(&error).is_some());
            }
        }
    }

    #[tokio::test]
    async fn a_storage_fault_is_retryable_and_the_next_attempt_succeeds() {
        let storage = r#"<s:Fault><faultcode>s:Server</faultcode><faultstring>Database down</faultstring><detail><StorageException xmlns="http://soap.admin.openexchange.com"/></detail></s:Fault>"#;
        let exists = r#"<ns:existsResponse xmlns:ns="http://soap.admin.openexchange.com"><ns:return>true</ns:return></ns:existsResponse>"#;
        let (ox, transport) = client(vec![
            answer(500, &envelope(storage)),
            answer(200, &envelope(exists)),
        ]);
        let admin = Credentials::new("oxadmin", "ctx-secret");
        let user = User::with_name("jdoe");
        let error = ox.user_exists(10, &user, &admin).await.unwrap_err();
        assert_eq!(error.kind(), OxErrorKind::Fault(FaultKind::Storage));
        assert!(error.is_retryable());
        assert!(ox.user_exists(10, &user, &admin).await.unwrap());
        assert_eq!(
            transport.posted.lock().unwrap().len(),
            2,
            "no retry of its own"
        );
    }

    #[tokio::test]
    async fn a_forbidden_character_is_refused_without_posting() {
        let (ox, transport) = client(vec![]);
        let admin = Credentials::new("oxadmin", "ctx-secret");
        let error = ox
            .get_user(10, &User::with_name("j\u{1}doe"), &admin)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), OxErrorKind::InvalidValue);
        assert!(transport.posted.lock().unwrap().is_empty());
    }

    #[test]
    fn server_urls_are_normalised_like_the_original_connector() {
        let cases = [
            ("", "http://127.0.0.1"),
            ("ox.example.org", "https://ox.example.org"),
            ("https://ox.example.org/", "https://ox.example.org"),
            ("https://ox.example.org:80/", "https://ox.example.org"),
            ("https://ox.example.org:443", "https://ox.example.org"),
            ("http://ox.example.org:80", "http://ox.example.org"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            (
                "https://ox.example.org/webservices/",
                "https://ox.example.org",
            ),
            (
                "https://ox.example.org/ox/webservices/OXUserService?wsdl",
                "https://ox.example.org/ox",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_server_url(input).unwrap(), expected, "{input}");
        }
        assert!(normalize_server_url("ftp://x").is_err());
        assert!(normalize_server_url("http://").is_err());
    }
}
