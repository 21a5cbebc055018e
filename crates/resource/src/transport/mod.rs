//! MCP sessions on rmcp's Streamable HTTP transport, shared by every instance: which stream a
//! request's notifications travel on (`streams`), what instances tell each other (`bus`), the
//! transport between a session's server and rmcp (`outbox`), the session manager that routes
//! between instances (`manager`), the copies of sessions this instance holds and when they are
//! released (`copies`), the state another instance restores a session from (`state`), and
//! whether a POST's answer leaves as JSON or as a stream (`answer`).

mod answer;
pub(crate) mod bus;
mod copies;
mod manager;
pub(crate) mod outbox;
mod state;
mod streams;

use std::sync::Arc;

use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

pub use copies::{Copies, InUse};
pub use manager::RoutedSessionManager;
pub use streams::RequestStreams;

use crate::ports::{McpSessionStore, SessionBus};

pub const SESSION_HEADER: &str = "mcp-session-id";

/// Whether a response is an event stream (rmcp's SSE), by its content type.
pub(crate) fn is_event_stream(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"))
}

/// Where the MCP server keeps its sessions and how its instances talk.
#[derive(Clone)]
pub struct McpBackend {
    pub sessions: Arc<dyn McpSessionStore>,
    pub bus: Arc<dyn SessionBus>,
    /// The keys identity JWTs for an upstream are signed with, shared like the sessions.
    pub keys: Arc<dyn crate::ports::SigningKeyStore>,
}

/// How the transport treats connections and sessions.
#[derive(Clone)]
pub struct TransportSettings {
    /// Hosts allowed in the `Host` header (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed; empty: the Origin header is not checked.
    pub allowed_origins: Vec<String>,
    /// How long this instance keeps the copy (rmcp's worker and server) of a session nobody
    /// uses, with no stream open and nothing pinned to it. Past it the copy is released; the
    /// session stays in the store until its idle timeout, and its next request restores it, as
    /// on an instance that never saw it.
    pub worker_idle: std::time::Duration,
    /// The session idle timeout: a copy unused for this long is released even with a stream
    /// open, since its session has expired in the store.
    pub session_idle: std::time::Duration,
    /// Cancelled when the server starts to stop: GET streams end so that connections drain.
    pub draining: CancellationToken,
    /// Cancelled at the shutdown deadline: every session and its streams end.
    pub closing: CancellationToken,
}

/// What an MCP server behind this transport may use: the response streams of requests in
/// flight, the shared session store, and the copies held here (to keep one while it works on
/// its own, as a subscription's updater does).
#[derive(Clone)]
pub struct ServerContext {
    pub streams: Arc<RequestStreams>,
    pub sessions: Arc<dyn McpSessionStore>,
    pub copies: Arc<Copies>,
}

/// The Streamable HTTP service for /mcp, serving one `S` per session copy, made by `server`.
pub fn service<S, F>(
    settings: TransportSettings,
    backend: McpBackend,
    server: F,
) -> StreamableHttpService<S, RoutedSessionManager>
where
    S: ServerHandler + Send + 'static,
    F: Fn(&ServerContext) -> S + Send + Sync + 'static,
{
    let (manager, context) = session_manager(&settings, &backend, true);
    let config = http_config(settings, &backend);
    StreamableHttpService::new(move || Ok(server(&context)), Arc::new(manager), config)
}

/// The session manager shared by every instance; with `release`, copies unused here are
/// released as [`TransportSettings::worker_idle`] says. rmcp's own idle timer stays off: it ends
/// a copy whatever is open.
pub(crate) fn session_manager(
    settings: &TransportSettings,
    backend: &McpBackend,
    release: bool,
) -> (RoutedSessionManager, ServerContext) {
    let streams = Arc::new(RequestStreams::default());
    let copies = Arc::new(Copies::default());
    let mut local = LocalSessionManager::default();
    local.session_config.keep_alive = None;
    let policy = copies::ReleasePolicy { unused: settings.worker_idle, expired: settings.session_idle };
    let manager = RoutedSessionManager::new(
        local,
        streams.clone(),
        copies.clone(),
        backend.bus.clone(),
        settings.draining.clone(),
        release.then(|| (policy, settings.closing.clone())),
    );
    (manager, ServerContext { streams, sessions: backend.sessions.clone(), copies })
}

/// rmcp's transport settings: DNS-rebinding and Origin checks, shutdown, and the shared store
/// other instances restore sessions from.
pub(crate) fn http_config(settings: TransportSettings, backend: &McpBackend) -> StreamableHttpServerConfig {
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(settings.allowed_hosts)
        .with_cancellation_token(settings.closing);
    if !settings.allowed_origins.is_empty() {
        config = config.with_allowed_origins(settings.allowed_origins);
    }
    config.session_store = Some(Arc::new(state::SharedSessionState(backend.sessions.clone())));
    config
}

/// How a POST's answer leaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// As rmcp streams it: for a gateway, which answers in the shape its upstream does.
    Streamed,
    /// As JSON when it is quick and alone ([`answer`]): for this process's own servers.
    JsonWhenQuick,
}

/// rmcp's service behind an `Arc`: the router clones its service for every request, and
/// rmcp's clone copies its whole configuration (host and origin lists among it) each time.
pub struct SharedService<S, M> {
    service: Arc<StreamableHttpService<S, M>>,
    answers: Answers,
}

impl<S, M> SharedService<S, M> {
    pub fn new(service: StreamableHttpService<S, M>, answers: Answers) -> Self {
        Self { service: Arc::new(service), answers }
    }
}

impl<S, M> Clone for SharedService<S, M> {
    fn clone(&self) -> Self {
        Self { service: self.service.clone(), answers: self.answers }
    }
}

impl<S, M> tower::Service<axum::extract::Request> for SharedService<S, M>
where
    S: ServerHandler + Send + 'static,
    M: rmcp::transport::streamable_http_server::session::SessionManager,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        let service = self.service.clone();
        let settles = self.answers == Answers::JsonWhenQuick
            && request.method() == axum::http::Method::POST
            && answer::accepts_json(&request);
        Box::pin(async move {
            let response = service.handle(request).await.map(axum::body::Body::new);
            Ok(if settles { answer::settle(response).await } else { response })
        })
    }
}
