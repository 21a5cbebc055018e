//! MCP sessions on rmcp's Streamable HTTP transport: who owns each session, when it expires,
//! and on which stream a request's notifications travel.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use futures::{Stream, StreamExt};
use mcp_oauth_domain::mcp_sessions::{McpSessionStore, SessionBus};
use mcp_oauth_domain::secret::generate_secret;
use mcp_oauth_domain::validation::ValidatedToken;
use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, JsonRpcError, JsonRpcNotification, RequestId, ServerJsonRpcMessage, ServerNotification};
use rmcp::transport::Transport;
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError};
use rmcp::transport::streamable_http_server::session::{
    EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager, SessionState, SessionStoreError,
};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::shutdown::Shutdown;

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

/// A response stream: messages queued on `side` go out before whatever rmcp sends after them,
/// and are flushed before the stream ends with rmcp's.
struct MergedStream {
    inner: Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>>,
    side: mpsc::UnboundedReceiver<ServerJsonRpcMessage>,
    /// An rmcp message held back while queued messages go first.
    held: Option<ServerSseMessage>,
    inner_done: bool,
    /// Called once, when the stream ends or is dropped, with whether rmcp's stream completed.
    on_end: Option<OnEnd>,
}

type OnEnd = Box<dyn FnOnce(bool) + Send + Sync>;

impl MergedStream {
    fn new(
        inner: impl Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        side: mpsc::UnboundedReceiver<ServerJsonRpcMessage>,
        on_end: Option<OnEnd>,
    ) -> Self {
        Self { inner: Box::pin(inner), side, held: None, inner_done: false, on_end }
    }

    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.inner_done);
        }
    }
}

impl Stream for MergedStream {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(Some(message)) = self.side.poll_recv(cx) {
            return Poll::Ready(Some(ServerSseMessage::from_message(message)));
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
                            ServerSseMessage::from_message(queued)
                        }
                        Err(_) => item,
                    }));
                }
                Poll::Ready(None) => self.inner_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match self.side.try_recv() {
            Ok(message) => Poll::Ready(Some(ServerSseMessage::from_message(message))),
            Err(_) => {
                self.finish();
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for MergedStream {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A request whose response stream is gone before its answer: the client cannot receive the
/// answer, so its work stops as if the client had cancelled it.
fn cancel_abandoned(sessions: Arc<LocalSessionManager>, session: String, request_id: RequestId) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let cancelled = serde_json::json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": { "requestId": request_id, "reason": "the response stream was closed" },
    });
    let Ok(message) = serde_json::from_value::<ClientJsonRpcMessage>(cancelled) else {
        return;
    };
    handle.spawn(async move {
        let _ = sessions.accept_message(&SessionId::from(session), message).await;
    });
}

/// What instances tell each other about the sessions they share.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum BusMessage {
    /// A client-to-server message (a response to a server request, a notification) that
    /// arrived at `origin`; the copy of the session that awaits it may live elsewhere.
    Inbox { session: String, origin: String, message: ClientJsonRpcMessage },
    /// A notification tied to no request, for whichever instance holds the client's GET stream.
    Outbox { session: String, message: ServerJsonRpcMessage },
    /// The session ended at `origin`: close every other copy.
    Close { session: String, origin: String },
}

type LocalTransport = <LocalSessionManager as SessionManager>::Transport;

/// Notifications about no particular request travel on the GET stream, wherever it is open.
fn unscoped(message: &ServerJsonRpcMessage) -> bool {
    matches!(
        message,
        ServerJsonRpcMessage::Notification(JsonRpcNotification {
            notification: ServerNotification::ResourceUpdatedNotification(_)
                | ServerNotification::ResourceListChangedNotification(_)
                | ServerNotification::ToolListChangedNotification(_)
                | ServerNotification::PromptListChangedNotification(_)
                | ServerNotification::LoggingMessageNotification(_),
            ..
        })
    )
}

/// The transport between a session's server and rmcp's worker. Notifications tied to no
/// request go through the bus instead, so they reach the GET stream on any instance. Requests
/// to the client get ids tagged with this instance: every instance holding a copy of the
/// session counts its own ids from zero, and the client's answer, which reaches every copy,
/// must be taken only by the copy that asked.
pub struct OutboxTransport {
    inner: LocalTransport,
    session: String,
    bus: Arc<dyn SessionBus>,
    instance: Arc<str>,
}

impl OutboxTransport {
    fn tagged(&self, id: &RequestId) -> RequestId {
        RequestId::String(format!("{}.{id}", self.instance).into())
    }

    /// The copy's own id for an answer to one of its requests; None for another copy's.
    fn untagged(&self, id: &RequestId) -> Option<RequestId> {
        let RequestId::String(text) = id else {
            return Some(id.clone());
        };
        match text.split_once('.') {
            Some((tag, original)) if tag == &*self.instance => Some(match original.parse::<i64>() {
                Ok(number) => RequestId::Number(number),
                Err(_) => RequestId::String(original.into()),
            }),
            Some((tag, _)) if tag.len() == TAG_LEN && tag.bytes().all(|b| b.is_ascii_hexdigit()) => None,
            _ => Some(id.clone()),
        }
    }
}

/// Length of an instance tag: 16 hex digits.
const TAG_LEN: usize = 16;

fn instance_tag() -> String {
    mcp_oauth_domain::secret::TokenDigest::of(&generate_secret()).to_hex()[..TAG_LEN].to_owned()
}

impl Transport<RoleServer> for OutboxTransport {
    type Error = std::io::Error;

    fn send(&mut self, mut item: ServerJsonRpcMessage) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let ServerJsonRpcMessage::Request(request) = &mut item {
            request.id = self.tagged(&request.id);
        }
        let sending: Pin<Box<dyn Future<Output = Result<(), Self::Error>> + Send>> = if unscoped(&item) {
            let bus = self.bus.clone();
            let payload = serde_json::to_string(&BusMessage::Outbox { session: self.session.clone(), message: item });
            Box::pin(async move { bus.publish(payload.map_err(std::io::Error::other)?).await.map_err(std::io::Error::other) })
        } else {
            let sent = self.inner.send(item);
            Box::pin(async move { sent.await.map_err(std::io::Error::other) })
        };
        sending
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            let mut message = self.inner.receive().await?;
            let id = match &mut message {
                ClientJsonRpcMessage::Response(response) => &mut response.id,
                ClientJsonRpcMessage::Error(JsonRpcError { id: Some(id), .. }) => id,
                _ => return Some(message),
            };
            match self.untagged(id) {
                Some(own) => {
                    *id = own;
                    return Some(message);
                }
                // An answer to another copy's request: that copy has it too.
                None => continue,
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close().await.map_err(std::io::Error::other)
    }
}

/// rmcp's local session manager, extended so that a session can be served by several
/// instances: each POST stream is registered in [`RequestStreams`], client messages and
/// session ends are shared over the bus, and GET streams receive the bus's notifications.
pub struct RoutedSessionManager {
    inner: Arc<LocalSessionManager>,
    streams: Arc<RequestStreams>,
    standalone: Arc<DashMap<String, Vec<mpsc::UnboundedSender<ServerJsonRpcMessage>>>>,
    bus: Arc<dyn SessionBus>,
    /// Tells this instance's bus messages from the others'.
    instance: String,
    /// Cancelled when the server starts to stop: GET streams end so that connections drain.
    draining: CancellationToken,
}

impl RoutedSessionManager {
    fn new(
        inner: LocalSessionManager,
        streams: Arc<RequestStreams>,
        bus: Arc<dyn SessionBus>,
        draining: CancellationToken,
    ) -> Self {
        let manager =
            Self { inner: Arc::new(inner), streams, standalone: Arc::default(), bus, instance: instance_tag(), draining };
        manager.spawn_listener();
        manager
    }

    fn spawn_listener(&self) {
        let (inner, standalone, instance) = (self.inner.clone(), self.standalone.clone(), self.instance.clone());
        let mut payloads = self.bus.listen();
        tokio::spawn(async move {
            while let Some(payload) = payloads.next().await {
                let Ok(message) = serde_json::from_str::<BusMessage>(&payload) else {
                    tracing::warn!("ignoring an unreadable session bus message");
                    continue;
                };
                match message {
                    BusMessage::Inbox { session, origin, message } if origin != instance => {
                        let id = SessionId::from(session);
                        if inner.has_session(&id).await.unwrap_or(false) {
                            let _ = inner.accept_message(&id, message).await;
                        }
                    }
                    BusMessage::Outbox { session, message } => {
                        if let Some(mut listeners) = standalone.get_mut(&session) {
                            listeners.retain(|listener| listener.send(message.clone()).is_ok());
                        }
                    }
                    BusMessage::Close { session, origin } if origin != instance => {
                        let _ = inner.close_session(&SessionId::from(session)).await;
                    }
                    _ => {}
                }
            }
        });
    }

    fn wrap(&self, id: &SessionId, inner: LocalTransport) -> OutboxTransport {
        OutboxTransport { inner, session: id.to_string(), bus: self.bus.clone(), instance: self.instance.as_str().into() }
    }

    async fn publish(&self, message: BusMessage) {
        match serde_json::to_string(&message) {
            Ok(payload) => {
                if let Err(error) = self.bus.publish(payload).await {
                    tracing::warn!(%error, "session bus publish failed");
                }
            }
            Err(error) => tracing::warn!(%error, "session bus message not serialisable"),
        }
    }
}

impl SessionManager for RoutedSessionManager {
    type Error = LocalSessionManagerError;
    type Transport = OutboxTransport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.inner.create_session().await?;
        let transport = self.wrap(&id, transport);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.inner.close_session(id).await;
        self.publish(BusMessage::Close { session: id.to_string(), origin: self.instance.clone() }).await;
        closed
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
                Some((key, receiver, request.id.clone()))
            }
            _ => None,
        };
        let inner = match self.inner.create_stream(id, message).await {
            Ok(inner) => inner,
            Err(e) => {
                if let Some((key, _, _)) = &registration {
                    self.streams.open.remove(key);
                }
                return Err(e);
            }
        };
        Ok(match registration {
            Some((key, receiver, request_id)) => {
                let (streams, sessions) = (self.streams.clone(), self.inner.clone());
                MergedStream::new(
                    inner,
                    receiver,
                    Some(Box::new(move |completed| {
                        streams.open.remove(&key);
                        if !completed {
                            cancel_abandoned(sessions, key.0, request_id);
                        }
                    })),
                )
            }
            None => MergedStream::new(inner, mpsc::unbounded_channel().1, None),
        })
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        let accepted = self.inner.accept_message(id, message.clone()).await;
        self.publish(BusMessage::Inbox { session: id.to_string(), origin: self.instance.clone(), message }).await;
        accepted
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let inner = self.inner.create_standalone_stream(id).await?.take_until(self.draining.clone().cancelled_owned());
        let (sender, receiver) = mpsc::unbounded_channel();
        self.standalone.entry(id.to_string()).or_default().push(sender);
        let (standalone, session) = (self.standalone.clone(), id.to_string());
        Ok(MergedStream::new(
            inner,
            receiver,
            Some(Box::new(move |_| {
                standalone.remove_if_mut(&session, move |_, listeners| {
                    listeners.retain(|l| !l.is_closed());
                    listeners.is_empty()
                });
            })),
        ))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?.take_until(self.draining.clone().cancelled_owned()))
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(match self.inner.restore_session(id.clone()).await? {
            RestoreOutcome::Restored(transport) => RestoreOutcome::Restored(self.wrap(&id, transport)),
            RestoreOutcome::AlreadyPresent => RestoreOutcome::AlreadyPresent,
            _ => RestoreOutcome::NotSupported,
        })
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

/// rmcp's hook for restoring a session on another instance, kept in the session store.
struct SharedSessionState(Arc<dyn McpSessionStore>);

#[async_trait::async_trait]
impl rmcp::transport::streamable_http_server::session::SessionStore for SharedSessionState {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        match self.0.load_state(session_id).await? {
            Some(text) => Ok(Some(serde_json::from_str(&text)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        Ok(self.0.save_state(session_id, &serde_json::to_string(state)?).await?)
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        Ok(self.0.end(session_id).await?)
    }
}

/// Binds sessions to the token's subject. A request on a session the caller does not own is
/// sent on as a request on a session id nobody has, so rmcp answers it exactly as it answers
/// an unknown session (404) and nothing reveals that the session exists.
pub async fn bind_to_owner(State(sessions): State<Arc<dyn McpSessionStore>>, mut request: Request, next: Next) -> Response {
    let Some(subject) = request.extensions().get::<ValidatedToken>().map(|t| t.subject.clone()) else {
        return next.run(request).await;
    };
    let unavailable = |error: mcp_oauth_domain::StorageError| {
        tracing::warn!(%error, "MCP session storage unavailable");
        let body = crate::http::guard::jsonrpc_error(-32000, "session storage is temporarily unavailable; retry shortly");
        (StatusCode::SERVICE_UNAVAILABLE, [(axum::http::header::RETRY_AFTER, "1")], body).into_response()
    };
    let session = request.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let deleting = request.method() == axum::http::Method::DELETE;
    if let Some(id) = &session {
        match sessions.touch(id, &subject).await {
            Ok(true) => {}
            Ok(false) if deleting => {
                // rmcp acknowledges deleting an unknown session; the transport spec wants 404,
                // as for any other request on a session that is not there.
                return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
            }
            Ok(false) => {
                let nobody = HeaderValue::from_str(&format!("unknown-{}", generate_secret())).expect("base64url is header-safe");
                request.headers_mut().insert(SESSION_HEADER, nobody);
            }
            Err(error) => return unavailable(error),
        }
    }
    let mut response = next.run(request).await;
    // rmcp acknowledges a DELETE with 202, which clients (the Python SDK) report as a failed
    // termination; the session is gone, so the answer is 204.
    if deleting && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    if session.is_none()
        && let Some(created) = response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok())
        && let Err(error) = sessions.claim(created, &subject).await
    {
        return unavailable(error);
    }
    response
}

/// Where the MCP server keeps its sessions and how its instances talk.
#[derive(Clone)]
pub struct McpBackend {
    pub sessions: Arc<dyn McpSessionStore>,
    pub bus: Arc<dyn SessionBus>,
}

/// The Streamable HTTP service for /mcp. `allowed_hosts` guards against DNS rebinding.
pub fn service(
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    settings: McpSettings,
    backend: McpBackend,
    shutdown: &Shutdown,
) -> StreamableHttpService<McpServer, RoutedSessionManager> {
    let streams = Arc::new(RequestStreams::default());
    let mut local = LocalSessionManager::default();
    local.session_config.keep_alive = Some(settings.session_idle_timeout);
    let manager = Arc::new(RoutedSessionManager::new(local, streams.clone(), backend.bus.clone(), shutdown.draining()));
    let mut config =
        StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts).with_cancellation_token(shutdown.closing());
    if !allowed_origins.is_empty() {
        config = config.with_allowed_origins(allowed_origins);
    }
    config.session_store = Some(Arc::new(SharedSessionState(backend.sessions.clone())));
    let settings = Arc::new(settings);
    let sessions = backend.sessions;
    StreamableHttpService::new(move || Ok(McpServer::new(settings.clone(), streams.clone(), sessions.clone())), manager, config)
}
