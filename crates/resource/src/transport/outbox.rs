//! The transport between a session's server and rmcp's worker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, JsonRpcError, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

use tokio_util::sync::CancellationToken;

use super::bus::{BusMessage, InstanceTag, unscoped};
use crate::ports::SessionBus;

pub(crate) type LocalTransport = <LocalSessionManager as SessionManager>::Transport;

/// The transport between a session's server and rmcp's worker. Notifications tied to no
/// request go through the bus instead, so they reach the GET stream on any instance. Requests
/// to the client get ids tagged with this instance: every instance holding a copy of the
/// session counts its own ids from zero, and the client's answer, which reaches every copy,
/// must be taken only by the copy that asked.
pub struct OutboxTransport {
    inner: LocalTransport,
    session: String,
    bus: Arc<dyn SessionBus>,
    instance: InstanceTag,
    /// Cancelled when this instance releases the copy ([`super::copies`]): the transport ends,
    /// and with it the server and rmcp's worker.
    released: CancellationToken,
    _live: LiveSession,
}

impl OutboxTransport {
    pub(super) fn new(
        inner: LocalTransport,
        session: String,
        bus: Arc<dyn SessionBus>,
        instance: InstanceTag,
        released: CancellationToken,
    ) -> Self {
        Self { inner, session, bus, instance, released, _live: LiveSession::counted() }
    }
}

/// Counts a session copy held by this instance in the `mcp_sessions` gauge while its
/// transport lives: rmcp's worker holds the transport until the session ends, by DELETE, idle
/// timeout or shutdown.
struct LiveSession;

impl LiveSession {
    fn counted() -> Self {
        metrics::gauge!("mcp_sessions").increment(1.0);
        Self
    }
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        metrics::gauge!("mcp_sessions").decrement(1.0);
    }
}

impl Transport<RoleServer> for OutboxTransport {
    type Error = std::io::Error;

    fn send(&mut self, mut item: ServerJsonRpcMessage) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let ServerJsonRpcMessage::Request(request) = &mut item {
            request.id = self.instance.tag(&request.id);
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
            let mut message = tokio::select! {
                message = self.inner.receive() => message?,
                _ = self.released.cancelled() => return None,
            };
            let id = match &mut message {
                ClientJsonRpcMessage::Response(response) => &mut response.id,
                ClientJsonRpcMessage::Error(JsonRpcError { id: Some(id), .. }) => id,
                _ => return Some(message),
            };
            match self.instance.untag(id) {
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
