//! The gateway in front of the user's own MCP server over Streamable HTTP
//! (`MCP_UPSTREAM_URL`). `/mcp` keeps its guard and session ownership; this forwards POST, GET
//! (SSE) and DELETE to the upstream, streaming its answers back, so server-to-client requests,
//! notifications and resumption (`Last-Event-ID`) pass through unchanged.
//!
//! The client sees only this server's session id; the upstream's is kept in the shared session
//! record (the session's transport state), so any instance can forward any request and one
//! user can never name another's upstream session. The client's token is never forwarded:
//! the upstream learns the caller from `identity`.

pub mod identity;
pub mod stdio;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_oauth_domain::secret::generate_secret;
use mcp_oauth_domain::validation::ValidatedToken;
use rmcp::model::ErrorCode;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::guard::{UNAUTHORIZED_OR_UNKNOWN_SESSION, UNAVAILABLE, jsonrpc_error};
use crate::ports::McpSessionStore;
use crate::transport::SESSION_HEADER;
use identity::{CLIENT_ID_HEADER, CallerIdentity, SCOPE_HEADER, SUBJECT_HEADER};

/// The upstream failed or answered nothing usable (HTTP 502).
pub const UPSTREAM_FAILED: ErrorCode = ErrorCode(-32002);

/// Request headers that pass to the upstream; everything else (the client's `Authorization`,
/// cookies, identity headers it made up) stays here.
const FORWARDED_REQUEST_HEADERS: [&str; 6] =
    ["content-type", "accept", "last-event-id", "mcp-protocol-version", "mcp-method", "mcp-name"];
/// Response headers that pass back; the session id is replaced by ours.
const FORWARDED_RESPONSE_HEADERS: [&str; 3] = ["content-type", "cache-control", "mcp-protocol-version"];

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub upstream: Url,
    pub identity: CallerIdentity,
    /// Bound on connecting and on the upstream starting to answer (`MCP_UPSTREAM_TIMEOUT`);
    /// an open SSE stream is not cut by it.
    pub timeout: Duration,
    /// Largest message in either direction.
    pub max_message_bytes: usize,
    /// Hosts allowed in the `Host` header (DNS-rebinding protection, as rmcp's transport does
    /// for the demo server).
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed; empty: the Origin header is not checked.
    pub allowed_origins: Vec<String>,
}

impl GatewaySettings {
    /// Whether `Host` names this server and `Origin`, when sent, is allowed.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let host = host.rsplit_once(':').filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit())).map_or(host, |(h, _)| h);
        let host_ok = self.allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host.trim_matches(['[', ']'])));
        let origin_ok = self.allowed_origins.is_empty()
            || headers
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|origin| self.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)));
        host_ok && origin_ok
    }
}

pub struct Gateway {
    http: reqwest::Client,
    settings: GatewaySettings,
    sessions: Arc<dyn McpSessionStore>,
}

/// What another instance needs to go on forwarding a session.
#[derive(Serialize, Deserialize)]
struct ForwardedSession {
    upstream_session: String,
}

fn failure(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (status, jsonrpc_error(code, message)).into_response()
}

fn unknown_session() -> Response {
    failure(StatusCode::NOT_FOUND, UNAUTHORIZED_OR_UNKNOWN_SESSION, "session not found")
}

fn storage_failed(error: mcp_oauth_domain::StorageError) -> Response {
    tracing::warn!(code = "temporarily_unavailable", cause = %error, "MCP session storage unavailable");
    failure(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, "session storage is temporarily unavailable; retry shortly")
}

impl Gateway {
    pub fn new(settings: GatewaySettings, sessions: Arc<dyn McpSessionStore>) -> Self {
        mcp_oauth_adapters::install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with rustls builds");
        Self { http, settings, sessions }
    }

    async fn upstream_session(&self, ours: &str) -> Result<Option<String>, Response> {
        let state = self.sessions.load_state(ours).await.map_err(storage_failed)?;
        Ok(state.and_then(|s| serde_json::from_str::<ForwardedSession>(&s).ok()).map(|s| s.upstream_session))
    }

    async fn upstream_request(
        &self,
        method: Method,
        headers: &HeaderMap,
        caller: &ValidatedToken,
    ) -> Result<reqwest::RequestBuilder, Response> {
        let mut request = self.http.request(method, self.settings.upstream.clone());
        for name in FORWARDED_REQUEST_HEADERS {
            for value in headers.get_all(name) {
                request = request.header(name, value);
            }
        }
        Ok(match &self.settings.identity {
            CallerIdentity::Jwt(signer) => match signer.sign(caller, self.settings.upstream.as_str()).await {
                Ok(jwt) => request.bearer_auth(jwt),
                Err(error) => {
                    tracing::warn!(code = "temporarily_unavailable", cause = %error, "no identity signing key");
                    return Err(failure(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE, "the identity signing key is unavailable"));
                }
            },
            CallerIdentity::Headers => request
                .header(SUBJECT_HEADER, &caller.subject)
                .header(CLIENT_ID_HEADER, &caller.client_id)
                .header(SCOPE_HEADER, caller.scope.to_string()),
        })
    }
}

/// Forwards one `/mcp` request (behind the guard and the ownership check).
pub async fn forward(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let Some(caller) = request.extensions().get::<ValidatedToken>().cloned() else {
        return failure(StatusCode::UNAUTHORIZED, UNAUTHORIZED_OR_UNKNOWN_SESSION, "authorization required");
    };
    let (parts, body) = request.into_parts();
    if !gateway.settings.admits(&parts.headers) {
        return failure(StatusCode::FORBIDDEN, ErrorCode::INVALID_REQUEST, "this Host or Origin is not allowed");
    }
    let ours = parts.headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let upstream_session = match &ours {
        Some(id) => match gateway.upstream_session(id).await {
            Ok(Some(upstream)) => Some(upstream),
            Ok(None) => return unknown_session(),
            Err(response) => return response,
        },
        None => None,
    };
    let body = match axum::body::to_bytes(body, gateway.settings.max_message_bytes).await {
        Ok(body) => body,
        Err(_) => return failure(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::INVALID_REQUEST, "the message is too large"),
    };
    let mut outgoing = match gateway.upstream_request(parts.method.clone(), &parts.headers, &caller).await {
        Ok(outgoing) => outgoing,
        Err(response) => return response,
    };
    if let Some(upstream) = &upstream_session {
        outgoing = outgoing.header(SESSION_HEADER, upstream);
    }
    if !body.is_empty() {
        outgoing = outgoing.body(body);
    }
    let answer = match tokio::time::timeout(gateway.settings.timeout, outgoing.send()).await {
        Err(_) => {
            tracing::warn!(upstream = %gateway.settings.upstream, "the upstream MCP server did not answer in time");
            return failure(StatusCode::GATEWAY_TIMEOUT, UPSTREAM_FAILED, "the upstream MCP server did not answer in time");
        }
        Ok(Err(error)) => {
            tracing::warn!(upstream = %gateway.settings.upstream, %error, "the upstream MCP server is unreachable");
            return failure(StatusCode::BAD_GATEWAY, UPSTREAM_FAILED, "the upstream MCP server is unreachable");
        }
        Ok(Ok(answer)) => answer,
    };
    respond(&gateway, parts.method, ours, answer).await
}

async fn respond(gateway: &Gateway, method: Method, ours: Option<String>, answer: reqwest::Response) -> Response {
    let status = answer.status();
    if status == reqwest::StatusCode::NOT_FOUND
        && let Some(id) = &ours
    {
        // The upstream forgot the session (restart, expiry): so do we.
        let _ = gateway.sessions.end(id).await;
        return unknown_session();
    }
    if matches!(status.as_u16(), 401 | 403) {
        tracing::warn!(upstream = %gateway.settings.upstream, %status, "the upstream MCP server refused this gateway's identity");
        return failure(StatusCode::BAD_GATEWAY, UPSTREAM_FAILED, "the upstream MCP server refused the request");
    }
    if status.is_server_error() {
        tracing::warn!(upstream = %gateway.settings.upstream, %status, "the upstream MCP server failed");
        return failure(StatusCode::BAD_GATEWAY, UPSTREAM_FAILED, "the upstream MCP server failed");
    }
    let mut headers = HeaderMap::new();
    for name in FORWARDED_RESPONSE_HEADERS {
        if let Some(value) = answer.headers().get(name) {
            headers.insert(HeaderName::from_static(name), value.clone());
        }
    }
    let upstream_session = answer.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match (&ours, upstream_session) {
        (None, Some(upstream)) => {
            let id = generate_secret();
            let state = serde_json::to_string(&ForwardedSession { upstream_session: upstream }).expect("serialises");
            if let Err(error) = gateway.sessions.save_state(&id, &state).await {
                return storage_failed(error);
            }
            headers.insert(SESSION_HEADER, HeaderValue::from_str(&id).expect("base64url is header-safe"));
        }
        (Some(id), _) => {
            headers.insert(SESSION_HEADER, HeaderValue::from_str(id).expect("our ids are header-safe"));
        }
        (None, None) => {}
    }
    if method == Method::DELETE
        && status.is_success()
        && let Some(id) = &ours
        && let Err(error) = gateway.sessions.end(id).await
    {
        return storage_failed(error);
    }
    let is_stream = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = if is_stream {
        Body::from_stream(stream::bounded_events(answer.bytes_stream(), gateway.settings.max_message_bytes))
    } else {
        match stream::bounded_json(answer, gateway.settings.max_message_bytes).await {
            Ok(body) => Body::from(body),
            Err(reason) => {
                tracing::warn!(upstream = %gateway.settings.upstream, reason, "the upstream MCP server answered something unusable");
                return failure(
                    StatusCode::BAD_GATEWAY,
                    UPSTREAM_FAILED,
                    "the upstream MCP server answered something that is not JSON-RPC",
                );
            }
        }
    };
    let mut response = (status, body).into_response();
    response.headers_mut().extend(headers);
    response
}
