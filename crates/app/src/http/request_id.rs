//! Every request carries an id: each of its log lines names it, with the route, and the answer
//! returns it in `X-Request-Id`. An id a client sent is kept only when it is a short token, so
//! nothing arbitrary reaches the logs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::HeaderValue;
use tower_http::request_id::{MakeRequestId, RequestId};

const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 64;

#[derive(Clone, Copy, Default)]
pub struct RandomId;

impl MakeRequestId for RandomId {
    /// 64 random bits in hex: enough to tell requests apart, and no secret (no digest needed).
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let mut hex = [0u8; 16];
        let mut bits = rand::random::<u64>();
        for digit in hex.iter_mut().rev() {
            *digit = b"0123456789abcdef"[(bits & 0xf) as usize];
            bits >>= 4;
        }
        HeaderValue::from_bytes(&hex).ok().map(RequestId::new)
    }
}

fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

/// A client's id that is not a short token is dropped, and one is made for the request instead.
pub fn drop_unusable_id(mut request: Request) -> Request {
    if request.headers().get(HEADER).is_some_and(|value| !acceptable(value)) {
        request.headers_mut().remove(HEADER);
    }
    request
}

/// The route template a request matched, for logs and metric labels: never the raw path. `/mcp`
/// is served by rmcp behind a fallback, which axum names no template.
pub fn route_template(request: &Request) -> &str {
    match request.extensions().get::<MatchedPath>() {
        Some(matched) => matched.as_str(),
        None if request.uri().path() == "/mcp" || request.uri().path().starts_with("/mcp/") => "/mcp",
        None => "unmatched",
    }
}

/// The peer's address, written by the log layer itself: formatted into a string first, it cost
/// every request an allocation.
struct Peer(Option<IpAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => Ok(()),
        }
    }
}

/// The request's span, made before routing: the route is named in it once matched
/// (`metrics::Tracked`).
pub fn span(request: &Request) -> tracing::Span {
    let route = tracing::field::Empty;
    let id = request.headers().get(HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // The socket's peer; behind a proxy, the rate limits' TRUST_PROXY reading is the client.
    let peer = Peer(request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()));
    // Who is calling, once a handler or the bearer guard knows (`tracing::Span::record`).
    let (client_id, subject) = (tracing::field::Empty, tracing::field::Empty);
    tracing::info_span!("request", method = %request.method(), route, request_id = id, %peer, client_id, subject)
}

/// The access log: one line per answered request, inside its span, under the target `access`
/// (`RUST_LOG=info,access=off` silences it). Route templates, never the raw path or query,
/// which may carry codes.
pub fn access<B>(response: &axum::http::Response<B>, latency: Duration, _: &tracing::Span) {
    let status = response.status().as_u16();
    let latency_ms = latency.as_secs_f64() * 1000.0;
    tracing::info!(target: "access", status, latency_ms, "answered");
}
