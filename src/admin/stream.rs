//! Long operations (`POST /reconcile`, `POST /state/import`) with their progress: asked with
//! `Accept: application/x-ndjson`, the answer is a stream of JSON lines (HTTP 200, chunked) —
//! any number of progress lines, then exactly one line with the report or the error:
//!
//! ```text
//! {"progress":{"phase":"users in context 10","done":4000,"total":10000}}
//! {"progress":{"phase":"groups in context 10","done":0,"total":120}}
//! {"report":{…the same JSON as the plain answer…}}
//! ```
//!
//! or, when the operation fails after it started, `{"error":{"status":503,"message":"…"}}` with
//! the HTTP status the plain answer would have had. A request refused before the operation
//! starts (no token, a bad body) is answered as usual, with its HTTP status. Without that
//! `Accept` the endpoints answer the plain JSON report as before.
//!
//! The operation runs in a task of its own: a client that hangs up does not cut a repair short.

use std::convert::Infallible;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ops::OpsError;
use crate::telemetry::progress::{Progress, Step};

/// The media type of the stream.
pub const NDJSON: &str = "application/x-ndjson";

/// One line of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame<T> {
    Progress(Step),
    Report(T),
    Error { status: u16, message: String },
}

impl<T: Serialize> Frame<T> {
    /// The frame as one line (JSON and a line feed).
    pub fn line(&self) -> Bytes {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|e| {
            // A report that cannot be encoded becomes an error line instead of a broken stream.
            let error: Frame<()> = Frame::Error {
                status: 500,
                message: format!("cannot encode the answer: {e}"),
            };
            serde_json::to_vec(&error).unwrap_or_default()
        });
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// Whether the client asked for the stream.
pub fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().starts_with(NDJSON)))
}

/// Answers a long operation: as a stream ([`respond`]) when the client asks for one
/// ([`wants_stream`]), else with its report as JSON once it is done.
pub async fn answer<T, F>(
    headers: &HeaderMap,
    operation: &'static str,
    run: impl FnOnce(Progress) -> F,
) -> Result<Response, OpsError>
where
    T: Serialize + Send + 'static,
    F: Future<Output = Result<T, OpsError>> + Send + 'static,
{
    if wants_stream(headers) {
        return Ok(respond(operation, run));
    }
    Ok(axum::Json(run(Progress::new(operation)).await?).into_response())
}

/// Runs `operation` in a task with a [`Progress`] that feeds the stream, and answers the
/// stream: its progress lines, then the report or the error.
pub fn respond<T, F>(operation: &'static str, run: impl FnOnce(Progress) -> F) -> Response
where
    T: Serialize + Send + 'static,
    F: Future<Output = Result<T, OpsError>> + Send + 'static,
{
    let (progress, mut steps) = Progress::channel(operation);
    let mut work = tokio::spawn(run(progress));
    let (lines, body) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    tokio::spawn(async move {
        let last = loop {
            tokio::select! {
                biased;
                Some(step) = steps.recv() => {
                    // A client that went away does not stop the operation.
                    let _ = lines.send(Ok(Frame::<T>::Progress(step).line())).await;
                }
                result = &mut work => break result,
            }
        };
        while let Ok(step) = steps.try_recv() {
            let _ = lines.send(Ok(Frame::<T>::Progress(step).line())).await;
        }
        let last = match last {
            Ok(Ok(report)) => Frame::Report(report),
            Ok(Err(error)) => Frame::Error {
                status: super::routes::status_of(&error).as_u16(),
                message: crate::telemetry::error_chain(&error),
            },
            Err(panicked) => Frame::Error {
                status: 500,
                message: format!("the operation ended unexpectedly: {panicked}"),
            },
        };
        let _ = lines.send(Ok(last.line())).await;
    });
    let body = Body::from_stream(futures::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|line| (line, body))
    }));
    ([(header::CONTENT_TYPE, NDJSON)], body).into_response()
}

/// Why a stream could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the daemon refused: HTTP {status}: {message}")]
    Failed { status: u16, message: String },
    #[error("a line of the daemon's answer is not what was expected: {0}")]
    Decode(#[source] serde_json::Error),
    #[error("the daemon's answer ended before the report")]
    Truncated,
}

/// Reads the stream from its chunks: splits lines across chunk borders, hands progress to
/// `on_progress`, and ends with the report (or the error).
#[derive(Debug, Default)]
pub struct Reader {
    pending: Vec<u8>,
}

impl Reader {
    /// Feeds one chunk; returns the report or the error once its line is complete.
    pub fn feed<T: DeserializeOwned>(
        &mut self,
        chunk: &[u8],
        on_progress: &mut impl FnMut(Step),
    ) -> Option<Result<T, StreamError>> {
        self.pending.extend_from_slice(chunk);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Frame<T>>(line) {
                Ok(Frame::Progress(step)) => on_progress(step),
                Ok(Frame::Report(report)) => return Some(Ok(report)),
                Ok(Frame::Error { status, message }) => {
                    return Some(Err(StreamError::Failed { status, message }))
                }
                Err(e) => return Some(Err(StreamError::Decode(e))),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(phase: &str, done: u64, total: u64) -> Step {
        Step {
            phase: phase.into(),
            done,
            total,
        }
    }

    #[test]
    fn frames_are_one_json_line_each() {
        let progress = Frame::<u32>::Progress(step("users in context 10", 4000, 10000)).line();
        assert_eq!(
            &progress[..],
            b"{\"progress\":{\"phase\":\"users in context 10\",\"done\":4000,\"total\":10000}}\n"
        );
        assert_eq!(&Frame::Report(7u32).line()[..], b"{\"report\":7}\n");
        let error = Frame::<u32>::Error {
            status: 503,
            message: "OX: down".into(),
        };
        assert_eq!(
            &error.line()[..],
            b"{\"error\":{\"status\":503,\"message\":\"OX: down\"}}\n"
        );
    }

    #[test]
    fn the_reader_joins_lines_split_across_chunks_and_stops_at_the_report() {
        let mut text = Vec::new();
        text.extend_from_slice(&Frame::<Vec<u32>>::Progress(step("a", 0, 2)).line());
        text.extend_from_slice(b"\n");
        text.extend_from_slice(&Frame::<Vec<u32>>::Progress(step("a", 2, 2)).line());
        text.extend_from_slice(&Frame::Report(vec![1u32, 2]).line());
        for size in [1, 3, 7, text.len()] {
            let mut reader = Reader::default();
            let mut seen = Vec::new();
            let mut report = None;
            for chunk in text.chunks(size) {
                if let Some(end) = reader.feed::<Vec<u32>>(chunk, &mut |s| seen.push(s)) {
                    report = Some(end);
                    break;
                }
            }
            assert_eq!(
                seen,
                vec![step("a", 0, 2), step("a", 2, 2)],
                "chunks of {size}"
            );
            assert!(
                matches!(&report, Some(Ok(numbers)) if numbers == &[1, 2]),
                "chunks of {size}: {report:?}"
            );
        }
    }

    #[test]
    fn the_reader_returns_the_error_line_and_refuses_garbage() {
        let mut reader = Reader::default();
        let error = Frame::<u32>::Error {
            status: 404,
            message: "no such folder".into(),
        };
        let failed = reader.feed::<u32>(&error.line(), &mut |_| {});
        assert!(
            matches!(
                &failed,
                Some(Err(StreamError::Failed { status: 404, message })) if message == "no such folder"
            ),
            "{failed:?}"
        );
        let mut reader = Reader::default();
        assert!(matches!(
            reader.feed::<u32>(b"<html>\n", &mut |_| {}),
            Some(Err(StreamError::Decode(_)))
        ));
        let mut reader = Reader::default();
        assert!(reader.feed::<u32>(b"{\"report\":", &mut |_| {}).is_none());
    }

    #[tokio::test]
    async fn the_response_streams_progress_then_the_report_or_the_error() {
        async fn body_of(response: Response) -> String {
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
        let ok = respond("reconcile", |progress| async move {
            progress.report("contexts", 0, 1);
            progress.report("contexts", 1, 1);
            Ok::<_, OpsError>(42u32)
        });
        assert_eq!(ok.headers()[header::CONTENT_TYPE], NDJSON, "the media type");
        assert_eq!(
            body_of(ok).await,
            "{\"progress\":{\"phase\":\"contexts\",\"done\":0,\"total\":1}}\n\
             {\"progress\":{\"phase\":\"contexts\",\"done\":1,\"total\":1}}\n\
             {\"report\":42}\n"
        );
        let failed = respond("state_import", |_| async {
            Err::<u32, _>(OpsError::NotFound("no listener/old/".into()))
        });
        assert_eq!(
            body_of(failed).await,
            "{\"error\":{\"status\":404,\"message\":\"no listener/old/\"}}\n"
        );
    }

    #[test]
    fn only_an_ndjson_accept_asks_for_the_stream() {
        let mut headers = HeaderMap::new();
        assert!(!wants_stream(&headers));
        headers.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(!wants_stream(&headers));
        headers.insert(
            header::ACCEPT,
            "application/json, application/x-ndjson".parse().unwrap(),
        );
        assert!(wants_stream(&headers));
    }
}
