//! rmcp's local session manager, extended so that a session can be served by several instances.

use std::sync::Arc;

use dashmap::DashMap;
use futures::{Stream, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, RequestId, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError};
use rmcp::transport::streamable_http_server::session::{EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::bus::{BusMessage, InstanceTag};
use super::copies::{Copies, ReleasePolicy};
use super::outbox::{LocalTransport, OutboxTransport};
use super::streams::{MergedStream, RequestStreams, request_key};
use crate::ports::SessionBus;

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

/// rmcp's local session manager, extended so that a session can be served by several
/// instances: each POST stream is registered in [`RequestStreams`], client messages and
/// session ends are shared over the bus, and GET streams receive the bus's notifications.
pub struct RoutedSessionManager {
    inner: Arc<LocalSessionManager>,
    streams: Arc<RequestStreams>,
    standalone: Arc<DashMap<String, Vec<mpsc::UnboundedSender<ServerJsonRpcMessage>>>>,
    bus: Arc<dyn SessionBus>,
    /// Tells this instance's bus messages from the others'.
    instance: InstanceTag,
    /// Cancelled when the server starts to stop: GET streams end so that connections drain.
    draining: CancellationToken,
    /// The session copies held here, released when unused ([`super::copies`]).
    copies: Arc<Copies>,
}

impl RoutedSessionManager {
    /// `release`: when copies unused here are released; none, and they last until their
    /// session ends.
    pub(super) fn new(
        inner: LocalSessionManager,
        streams: Arc<RequestStreams>,
        copies: Arc<Copies>,
        bus: Arc<dyn SessionBus>,
        draining: CancellationToken,
        release: Option<(ReleasePolicy, CancellationToken)>,
    ) -> Self {
        let manager = Self {
            inner: Arc::new(inner),
            streams,
            standalone: Arc::default(),
            bus,
            instance: InstanceTag::generate(),
            draining,
            copies,
        };
        manager.spawn_listener();
        if let Some((policy, stop)) = release {
            manager.copies.spawn_sweeper(policy, stop);
        }
        manager
    }

    fn spawn_listener(&self) {
        let (inner, standalone, instance) = (self.inner.clone(), self.standalone.clone(), self.instance.as_str().to_owned());
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

    /// Hands `message` to this instance's copy of the session only, not to the others'.
    pub(crate) async fn accept_here(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), LocalSessionManagerError> {
        self.inner.accept_message(id, message).await
    }

    /// The transport of a copy this instance now holds.
    fn wrap(&self, id: &SessionId, inner: LocalTransport) -> OutboxTransport {
        let released = self.copies.hold(id);
        OutboxTransport::new(inner, id.to_string(), self.bus.clone(), self.instance.clone(), released)
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

    /// rmcp asks this first for every request on a session, so it is where a copy counts as
    /// used, and where a request waits for a release under way to finish and then restores.
    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.copies.use_copy(id).await;
        self.inner.has_session(id).await
    }

    /// Called for a DELETE, and by rmcp once a copy's server has ended. Only a session's end is
    /// told to the other instances; a released copy's is not, as their copies go on.
    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.inner.close_session(id).await;
        if self.copies.closed(id) {
            return closed;
        }
        self.publish(BusMessage::Close { session: id.to_string(), origin: self.instance.as_str().to_owned() }).await;
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
                let in_use = self.copies.in_use(id);
                MergedStream::new(
                    inner,
                    receiver,
                    Some(Box::new(move |completed| {
                        drop(in_use);
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
        self.publish(BusMessage::Inbox { session: id.to_string(), origin: self.instance.as_str().to_owned(), message }).await;
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
        let in_use = self.copies.in_use(id);
        Ok(MergedStream::new(
            inner,
            receiver,
            Some(Box::new(move |_| {
                drop(in_use);
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
        let resumed = self.inner.resume(id, last_event_id).await?.take_until(self.draining.clone().cancelled_owned());
        let in_use = self.copies.in_use(id);
        Ok(MergedStream::new(resumed, mpsc::unbounded_channel().1, Some(Box::new(move |_| drop(in_use)))))
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
