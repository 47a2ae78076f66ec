//! A hostile or broken OX: answers with entity bombs, oversized or endless bodies, deep nesting,
//! or bytes that trickle in. The SOAP client must give a clear error quickly and bounded in
//! memory, never hang or expand the answer.

use std::time::{Duration, Instant};

use ox_connector::ox::soap::{Credentials, OxClient, OxErrorKind, User};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How a fake OX answers every request.
#[derive(Clone)]
enum Answer {
    /// A complete HTTP answer.
    Bytes(Vec<u8>),
    /// Headers announcing `length` bytes, then nothing more.
    Announce { length: u64 },
    /// A chunked body of `total` bytes, sent as fast as possible.
    Endless { total: usize },
    /// Headers, then one byte every `every`, forever.
    Trickle { every: Duration },
}

async fn fake_ox(answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                // Read the request head (the body is small; one read is enough here).
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = match answer {
                    Answer::Bytes(bytes) => socket.write_all(&bytes).await,
                    Answer::Announce { length } => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {length}\r\n\r\n<"
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok(())
                    }
                    Answer::Endless { total } => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n";
                        let _ = socket.write_all(head.as_bytes()).await;
                        let chunk = vec![b'a'; 64 * 1024];
                        let mut sent = 0;
                        while sent < total {
                            let frame = format!("{:x}\r\n", chunk.len());
                            if socket.write_all(frame.as_bytes()).await.is_err()
                                || socket.write_all(&chunk).await.is_err()
                                || socket.write_all(b"\r\n").await.is_err()
                            {
                                return;
                            }
                            sent += chunk.len();
                        }
                        socket.write_all(b"0\r\n\r\n").await
                    }
                    Answer::Trickle { every } => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 100000\r\n\r\n";
                        let _ = socket.write_all(head.as_bytes()).await;
                        loop {
                            tokio::time::sleep(every).await;
                            if socket.write_all(b" ").await.is_err() {
                                return;
                            }
                        }
                    }
                };
            });
        }
    });
    format!("http://{addr}")
}

fn http_200(body: &str) -> Answer {
    Answer::Bytes(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

async fn call(
    base: &str,
    timeout: Duration,
    limit: Option<usize>,
) -> ox_connector::ox::soap::OxError {
    let mut builder = OxClient::builder(base).timeout(timeout);
    if let Some(limit) = limit {
        builder = builder.max_response_bytes(limit);
    }
    let ox = builder.build().unwrap();
    ox.user_exists(
        10,
        &User::with_name("jdoe"),
        &Credentials::new("oxadmin", "pw"),
    )
    .await
    .expect_err("a hostile answer must be an error")
}

#[tokio::test]
async fn a_billion_laughs_answer_is_refused_without_expanding_entities() {
    let lol = (1..10)
        .map(|i| {
            let prev = if i == 1 {
                "lol".to_owned()
            } else {
                format!("&lol{};", i - 1)
            };
            format!("<!ENTITY lol{i} \"{}\">", prev.repeat(10))
        })
        .collect::<String>();
    let body = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [{lol}]><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>&lol9;</soap:Body></soap:Envelope>"
    );
    let base = fake_ox(http_200(&body)).await;
    let started = Instant::now();
    let error = call(&base, Duration::from_secs(5), None).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(error.kind(), OxErrorKind::NotSoap, "{error}");
    assert!(
        error
            .to_string()
            .contains("document type declaration is not allowed"),
        "{error}"
    );
}

#[tokio::test]
async fn a_deeply_nested_answer_is_refused() {
    let body = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let base = fake_ox(http_200(&body)).await;
    let error = call(&base, Duration::from_secs(5), None).await;
    assert!(error.to_string().contains("nested deeper than"), "{error}");
}

#[tokio::test]
async fn an_answer_announcing_a_huge_length_is_refused_before_reading_it() {
    let base = fake_ox(Answer::Announce {
        length: 50 * 1024 * 1024 * 1024,
    })
    .await;
    let started = Instant::now();
    let error = call(&base, Duration::from_secs(20), None).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.kind(), OxErrorKind::Decode, "{error}");
    assert!(error.to_string().contains("more than the limit"), "{error}");
}

#[tokio::test]
async fn an_endless_chunked_answer_is_cut_off_at_the_limit() {
    let base = fake_ox(Answer::Endless {
        total: 64 * 1024 * 1024,
    })
    .await;
    let error = call(&base, Duration::from_secs(20), Some(1024 * 1024)).await;
    assert_eq!(error.kind(), OxErrorKind::Decode, "{error}");
    assert!(
        error
            .to_string()
            .contains("more than the limit of 1048576 bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn a_slow_loris_answer_ends_with_a_timeout() {
    let base = fake_ox(Answer::Trickle {
        every: Duration::from_millis(100),
    })
    .await;
    let started = Instant::now();
    let error = call(&base, Duration::from_secs(1), None).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.kind(), OxErrorKind::Timeout, "{error}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn garbage_and_truncated_answers_are_clear_errors() {
    for (body, expected) in [
        ("\u{0}\u{1}\u{2}not xml at all", "OXUserService.exists"),
        (
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>",
            "OXUserService.exists",
        ),
        ("<html><body>502 Bad Gateway</body></html>", "root element"),
    ] {
        let base = fake_ox(http_200(body)).await;
        let error = call(&base, Duration::from_secs(5), None).await;
        assert!(error.to_string().contains(expected), "{body:?}: {error}");
    }
}
