//! The gateway in front of a stdio MCP server (`MCP_UPSTREAM_COMMAND`): one child process per
//! MCP session, started at `initialize` and ended with its session (DELETE, idle expiry, its
//! owner's grant revoked, a crash, shutdown).
//!
//! rmcp's Streamable HTTP transport still answers the client (SSE, event ids, resumption,
//! Host and Origin checks); only the server behind a session changes. Where the demo server
//! would run, a `pump` carries the session's messages to the child and back unchanged. A session
//! lives on the instance whose child runs it; another instance that receives one of its requests
//! restores a copy that `relay`s over the session bus to that instance.
//!
//! The 2026-07-28 revision lets a request come without a session. A child process needs one,
//! so such a request is refused (JSON-RPC error, HTTP 400) with a hint to send `initialize`.

pub mod command;
mod ghost;
mod limits;
mod manager;
mod pump;
pub(crate) mod relay;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::ErrorCode;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use tokio_util::task::TaskTracker;

use crate::edge::MAX_BODY_BYTES;
use crate::guard::jsonrpc_error;
use crate::ports::GrantStatus;
use crate::transport::{McpBackend, SESSION_HEADER, TransportSettings};
pub use command::UpstreamCommand;
pub use ghost::Ghost;
pub use manager::StdioSessionManager;

#[derive(Clone)]
pub struct StdioSettings {
    pub command: UpstreamCommand,
    /// Children this instance runs at once (`MAX_UPSTREAM_PROCESSES`).
    pub max_processes: usize,
    /// Children one user may have on this instance (`MAX_UPSTREAM_PROCESSES_PER_USER`).
    pub max_processes_per_user: usize,
    /// How often a session checks that it is still in use and its owner's grant still holds.
    pub check_interval: Duration,
    /// Whether a token is still granted; `None` (external mode) skips the check, and the child
    /// then ends with its session's idle expiry.
    pub grants: Option<Arc<dyn GrantStatus>>,
    /// Children still running when the server stops are ended before it exits.
    pub children: TaskTracker,
}

/// The Streamable HTTP service for /mcp in front of the stdio upstream.
pub fn service(
    transport: TransportSettings,
    backend: McpBackend,
    settings: StdioSettings,
) -> StreamableHttpService<Ghost, StdioSessionManager> {
    // The pump ends idle sessions itself: a session used only through relays must not expire
    // where its child runs.
    let (routed, _) = crate::transport::session_manager(&transport, &backend, false);
    let closing = transport.closing.clone();
    let manager = StdioSessionManager::new(routed, backend.clone(), settings, closing);
    let config = crate::transport::http_config(transport, &backend);
    StreamableHttpService::new(|| Ok(Ghost), Arc::new(manager), config)
}

/// A message needs a session unless it is the `initialize` that opens one.
pub async fn require_session(request: Request, next: Next) -> Response {
    if request.method() != Method::POST || request.headers().contains_key(SESSION_HEADER) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, jsonrpc_error(ErrorCode::INVALID_REQUEST, "the message is too large"))
            .into_response();
    };
    let method = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|m| m.get("method").and_then(|v| v.as_str()).map(str::to_owned));
    if method.as_deref().is_some_and(|m| m != "initialize") {
        let message = "this server's upstream is a stdio process, which needs a session: send initialize first";
        return (StatusCode::BAD_REQUEST, jsonrpc_error(ErrorCode::INVALID_REQUEST, message)).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}
