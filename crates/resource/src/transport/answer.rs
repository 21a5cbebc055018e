//! How a POST's answer leaves: a request answered at once, with nothing sent before its
//! answer, gets that answer as one `application/json` body; anything else keeps rmcp's event
//! stream.
//!
//! The transport lets the server choose either for any request (the client must accept both).
//! An event stream costs a quick answer several writes (the priming event, the message, the
//! end of the chunked body), and on loopback the kernel's send path was most of the time a
//! `tools/call` took; one JSON body leaves in one. Streams stay where they matter: a request
//! that sends progress, logs or requests of its own before its answer switches to the stream
//! the moment it does, and one that takes longer than [`SETTLE`] gets its stream (with the
//! priming event to resume from) then, so slow work is never held without a response.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Response, header};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// How long an answer may take and still leave as JSON: past it the event stream starts.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);

/// Whether a request's answer may be sent as JSON: the client said it accepts JSON (and did
/// not give it `q=0`).
pub(crate) fn accepts_json(request: &axum::extract::Request) -> bool {
    request.headers().get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|accept| {
        accept.split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
            !refused
                && (media.eq_ignore_ascii_case("application/json")
                    || media == "*/*"
                    || media.eq_ignore_ascii_case("application/*"))
        })
    })
}

/// `response` as one JSON body if its event stream carries its answer alone and ends within
/// [`SETTLE`]; otherwise the same event stream, from its first event.
pub(crate) async fn settle(response: Response<Body>) -> Response<Body> {
    if !super::is_event_stream(response.headers()) || !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let mut events = body.into_data_stream();
    let mut seen: Vec<Bytes> = Vec::new();
    let mut answer: Option<String> = None;
    let deadline = tokio::time::sleep(SETTLE);
    tokio::pin!(deadline);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            () = &mut deadline => return Response::from_parts(parts, replay(seen, events)),
        };
        let Some(Ok(event)) = event else { break };
        match message_of(&event) {
            // The priming event and keep-alive comments: only a stream needs them.
            None => seen.push(event),
            Some(message) if answer.is_none() && is_answer(&message) => {
                answer = Some(message);
                seen.push(event);
            }
            Some(_) => {
                seen.push(event);
                return Response::from_parts(parts, replay(seen, events));
            }
        }
    }
    let Some(answer) = answer else {
        return Response::from_parts(parts, replay(seen, events));
    };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove("x-accel-buffering");
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(answer))
}

/// The events already read, then the rest of the stream.
fn replay(seen: Vec<Bytes>, rest: impl Stream<Item = Result<Bytes, axum::Error>> + Send + 'static) -> Body {
    Body::from_stream(futures::stream::iter(seen.into_iter().map(Ok)).chain(rest))
}

/// The data of one event as rmcp's SSE body frames it (one event per frame); `None` for an
/// event without data (the priming event) and for comments.
fn message_of(event: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(event).ok()?;
    let mut data: Option<String> = None;
    for line in text.lines() {
        let Some(value) = line.strip_prefix("data:") else { continue };
        let value = value.strip_prefix(' ').unwrap_or(value);
        match &mut data {
            Some(data) => {
                data.push('\n');
                data.push_str(value);
            }
            None => data = Some(value.to_owned()),
        }
    }
    data.filter(|d| !d.is_empty())
}

/// Whether a JSON-RPC message is an answer (a result or an error), not a notification or a
/// request of the server's, which carry a method.
fn is_answer(message: &str) -> bool {
    #[derive(Deserialize)]
    struct Shape {
        method: Option<IgnoredAny>,
    }
    serde_json::from_str::<Shape>(message).is_ok_and(|shape| shape.method.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(events: Vec<&'static str>, then_pending: bool) -> Response<Body> {
        let events = futures::stream::iter(events.into_iter().map(|e| Ok::<_, std::convert::Infallible>(Bytes::from(e))));
        let body =
            if then_pending { Body::from_stream(events.chain(futures::stream::pending())) } else { Body::from_stream(events) };
        Response::builder().header(header::CONTENT_TYPE, "text/event-stream").header("mcp-session-id", "s1").body(body).unwrap()
    }

    async fn text(response: Response<Body>) -> String {
        String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap()
    }

    const PRIMING: &str = "data: \nid: 0\nretry: 3000\n\n";
    const ANSWER: &str = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
    const PROGRESS: &str = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";

    #[tokio::test]
    async fn an_answer_alone_leaves_as_json_with_the_other_headers_kept() {
        let response = settle(stream_of(vec![PRIMING, ANSWER], false)).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()["mcp-session-id"], "s1");
        assert_eq!(text(response).await, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
    }

    #[tokio::test]
    async fn a_notification_before_the_answer_keeps_the_stream_whole() {
        let response = settle(stream_of(vec![PRIMING, PROGRESS, ANSWER], false)).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(text(response).await, [PRIMING, PROGRESS, ANSWER].concat());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_gets_its_stream_after_the_wait() {
        let response = settle(stream_of(vec![PRIMING], true)).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
        let first = response.into_body().into_data_stream().next().await.unwrap().unwrap();
        assert_eq!(first, PRIMING, "the priming event is sent first, to resume from");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_whose_stream_does_not_end_stays_a_stream() {
        let response = settle(stream_of(vec![PRIMING, ANSWER], true)).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    }

    #[test]
    fn json_is_accepted_by_its_media_range_or_a_wildcard() {
        let with = |accept: &str| axum::http::Request::builder().header(header::ACCEPT, accept).body(Body::empty()).unwrap();
        assert!(accepts_json(&with("application/json, text/event-stream")));
        assert!(accepts_json(&with("text/event-stream;q=1, Application/JSON;q=0.5")));
        assert!(accepts_json(&with("*/*")));
        assert!(!accepts_json(&with("text/event-stream")));
        assert!(!accepts_json(&with("text/event-stream, application/json;q=0")));
        assert!(!accepts_json(&axum::http::Request::builder().body(Body::empty()).unwrap()));
    }
}
