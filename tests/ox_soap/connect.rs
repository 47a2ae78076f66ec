//! Connection errors keep their cause: the OxError's text carries reqwest's source chain (DNS,
//! TLS, connection refused), and `source()` still gives the typed chain.

use std::error::Error as _;

use ox_connector::ox::soap::{Credentials, OxClient, OxError, OxErrorKind};

use crate::support::env;

async fn failure(url: &str) -> OxError {
    let client = OxClient::builder(url)
        .master(Credentials::new("oxadminmaster", "secret"))
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    client.context_exists(10).await.unwrap_err()
}

/// Every level of `source()`, for the assertion messages.
fn chain(error: &OxError) -> Vec<String> {
    let mut levels = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        levels.push(cause.to_string());
        source = cause.source();
    }
    levels
}

#[tokio::test]
async fn an_unresolvable_host_names_the_dns_failure() {
    let err = failure("http://ox.invalid").await;
    assert_eq!(err.kind(), OxErrorKind::Connect, "{:?}", chain(&err));
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.contains("ox.invalid"), "{text}");
    assert!(text.contains("dns error"), "{text}");
    assert!(err.source().is_some(), "the typed chain stays available");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_refused_port_says_connection_refused() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = failure(&format!("http://127.0.0.1:{port}")).await;
    assert_eq!(err.kind(), OxErrorKind::Connect, "{:?}", chain(&err));
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
}

#[tokio::test]
async fn https_to_a_plain_http_port_names_the_tls_failure() {
    let env = env().await;
    let url = env.ox.base_url().replace("http://", "https://");
    let err = failure(&url).await;
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        matches!(err.kind(), OxErrorKind::Connect | OxErrorKind::Transport),
        "{text}"
    );
    // reqwest alone says only "error sending request for url (…)"; the cause is rustls'.
    let top = "error sending request for url";
    assert!(text.contains(top), "{text}");
    let cause = &text[text.find(top).unwrap()..];
    assert!(
        cause.contains("InvalidContentType")
            || cause.contains("corrupt message")
            || cause.to_lowercase().contains("tls"),
        "{text}"
    );
}
