//! MCP sessions on rmcp's Streamable HTTP transport: who owns each session, when it expires,
//! and on which stream a request's notifications travel.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use futures::Stream;
use mcp_oauth_domain::secret::generate_secret;
use mcp_oauth_domain::validation::ValidatedToken;
use rmcp::model::{ClientJsonRpcMessage, RequestId, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::mpsc;

use super::{McpServer, McpSettings};

pub const SESSION_HEADER: &str = "mcp-session-id";

/// Response streams of requests in flight, by session and JSON-RPC request id. rmcp routes
/// progress and server-to-client requests to the originating request's stream itself; other
/// notifications about a request (its log messages) are delivered through here.
#[derive(Default)]
pub struct RequestStreams {
    open: DashMap<(String, String), mpsc::UnboundedSender<ServerJsonRpcMessage>>,
}

fn request_key(session: &str, request: &RequestId) -> (String, String) {
    (session.to_owned(), request.to_string())
}

impl RequestStreams {
    /// Sends `message` on the response stream of `request`; false if that stream is gone.
    pub fn send(&self, session: &str, request: &RequestId, message: ServerJsonRpcMessage) -> bool {
        self.open.get(&request_key(session, request)).is_some_and(|sender| sender.send(message).is_ok())
    }
}

/// One request's response stream: notifications queued through [`RequestStreams`] go out
/// before whatever rmcp sends after them, and are flushed before the stream ends.
struct RequestStream {
    inner: Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>>,
    side: mpsc::UnboundedReceiver<ServerJsonRpcMessage>,
    /// An rmcp message held back while queued notifications go first.
    held: Option<ServerSseMessage>,
    inner_done: bool,
    registration: Option<((String, String), Arc<RequestStreams>)>,
}

fn sse(message: ServerJsonRpcMessage) -> ServerSseMessage {
    ServerSseMessage::from_message(message)
}

impl Stream for RequestStream {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(Some(message)) = self.side.poll_recv(cx) {
            return Poll::Ready(Some(sse(message)));
        }
        if let Some(item) = self.held.take() {
            return Poll::Ready(Some(item));
        }
        if !self.inner_done {
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    return Poll::Ready(Some(match self.side.try_recv() {
                        Ok(queued) => {
                            self.held = Some(item);
                            sse(queued)
                        }
                        Err(_) => item,
                    }));
                }
                Poll::Ready(None) => self.inner_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match self.side.try_recv() {
            Ok(message) => Poll::Ready(Some(sse(message))),
            Err(_) => {
                if let Some((key, streams)) = self.registration.take() {
                    streams.open.remove(&key);
                }
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if let Some((key, streams)) = self.registration.take() {
            streams.open.remove(&key);
        }
    }
}

/// rmcp's local session manager, with each POST stream registered in [`RequestStreams`].
pub struct RoutedSessionManager {
    inner: LocalSessionManager,
    streams: Arc<RequestStreams>,
}

impl SessionManager for RoutedSessionManager {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let registration = match &message {
            ClientJsonRpcMessage::Request(request) => {
                let (sender, receiver) = mpsc::unbounded_channel();
                let key = request_key(id, &request.id);
                self.streams.open.insert(key.clone(), sender);
                Some((key, receiver))
            }
            _ => None,
        };
        let inner = match self.inner.create_stream(id, message).await {
            Ok(inner) => inner,
            Err(e) => {
                if let Some((key, _)) = &registration {
                    self.streams.open.remove(key);
                }
                return Err(e);
            }
        };
        let (registration, side) = match registration {
            Some((key, receiver)) => (Some((key, self.streams.clone())), receiver),
            None => (None, mpsc::unbounded_channel().1),
        };
        Ok(RequestStream { inner: Box::pin(inner), side, held: None, inner_done: false, registration })
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.inner.restore_session(id).await
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

/// Which user owns each session, and when each was last used.
pub struct SessionOwners {
    owners: DashMap<String, (String, Instant)>,
    idle_timeout: Duration,
}

impl SessionOwners {
    pub fn new(idle_timeout: Duration) -> Self {
        Self { owners: DashMap::new(), idle_timeout }
    }

    /// Whether `subject` owns the live session `id`; a use keeps it alive.
    fn touch(&self, id: &str, subject: &str) -> bool {
        let Some(mut entry) = self.owners.get_mut(id) else { return false };
        let (owner, last_used) = entry.value_mut();
        if last_used.elapsed() > self.idle_timeout {
            drop(entry);
            self.owners.remove(id);
            return false;
        }
        if owner != subject {
            return false;
        }
        *last_used = Instant::now();
        true
    }

    pub fn sweep(&self) {
        self.owners.retain(|_, (_, last_used)| last_used.elapsed() <= self.idle_timeout);
    }
}

/// Binds sessions to the token's subject. A request on a session the caller does not own is
/// sent on as a request on a session id nobody has, so rmcp answers it exactly as it answers
/// an unknown session (404) and nothing reveals that the session exists.
pub async fn bind_to_owner(State(owners): State<Arc<SessionOwners>>, mut request: Request, next: Next) -> Response {
    let Some(subject) = request.extensions().get::<ValidatedToken>().map(|t| t.subject.clone()) else {
        return next.run(request).await;
    };
    let session = request.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let deleting = request.method() == axum::http::Method::DELETE;
    if let Some(id) = &session
        && !owners.touch(id, &subject)
    {
        if deleting {
            // rmcp acknowledges deleting an unknown session; the transport spec wants 404, as
            // for any other request on a session that is not there.
            return (axum::http::StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
        }
        let nobody = HeaderValue::from_str(&format!("unknown-{}", generate_secret())).expect("base64url is header-safe");
        request.headers_mut().insert(SESSION_HEADER, nobody);
    }
    let response = next.run(request).await;
    match (&session, response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok())) {
        (None, Some(created)) => {
            owners.owners.insert(created.to_owned(), (subject, Instant::now()));
        }
        (Some(id), _) if deleting && response.status().is_success() => {
            owners.owners.remove(id);
        }
        _ => {}
    }
    response
}

/// The Streamable HTTP service for /mcp. `allowed_hosts` guards against DNS rebinding.
pub fn service(
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    settings: McpSettings,
    streams: Arc<RequestStreams>,
) -> StreamableHttpService<McpServer, RoutedSessionManager> {
    let mut local = LocalSessionManager::default();
    local.session_config.keep_alive = Some(settings.session_idle_timeout);
    let manager = Arc::new(RoutedSessionManager { inner: local, streams: streams.clone() });
    let mut config = StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts);
    if !allowed_origins.is_empty() {
        config = config.with_allowed_origins(allowed_origins);
    }
    let settings = Arc::new(settings);
    StreamableHttpService::new(move || Ok(McpServer::new(settings.clone(), streams.clone())), manager, config)
}
