//! The session manager for a stdio upstream: the shared one, with each session's messages
//! taken by a pump (the child runs here) or a relay (it runs on another instance).

use std::sync::Arc;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManagerError;
use rmcp::transport::streamable_http_server::session::{EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager};
use tokio_util::sync::CancellationToken;

use super::StdioSettings;
use super::ghost::GhostTransport;
use super::limits::ProcessLimits;
use super::relay::Relays;
use crate::transport::{McpBackend, RoutedSessionManager};

/// What every pump and relay of this instance shares.
pub(super) struct Upstream {
    pub(super) settings: StdioSettings,
    pub(super) limits: Arc<ProcessLimits>,
    pub(super) backend: McpBackend,
    pub(super) routed: Arc<RoutedSessionManager>,
    pub(super) relays: Arc<Relays>,
    /// Cancelled at the shutdown deadline: every child ends.
    pub(super) closing: CancellationToken,
}

pub struct StdioSessionManager {
    upstream: Arc<Upstream>,
}

impl StdioSessionManager {
    pub(super) fn new(
        routed: RoutedSessionManager,
        backend: McpBackend,
        settings: StdioSettings,
        closing: CancellationToken,
    ) -> Self {
        let limits = ProcessLimits::new(settings.max_processes, settings.max_processes_per_user);
        let relays = Relays::start(backend.bus.clone());
        let upstream = Upstream { settings, limits, backend, routed: Arc::new(routed), relays, closing };
        Self { upstream: Arc::new(upstream) }
    }

    fn routed(&self) -> &RoutedSessionManager {
        &self.upstream.routed
    }
}

impl SessionManager for StdioSessionManager {
    type Error = LocalSessionManagerError;
    type Transport = GhostTransport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.routed().create_session().await?;
        let ended = CancellationToken::new();
        let pump = super::pump::Pump::new(self.upstream.clone(), id.to_string(), transport, ended.clone());
        self.upstream.settings.children.spawn(pump.run());
        Ok((id, GhostTransport::new(ended)))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.routed().initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.routed().has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.routed().close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.routed().create_stream(id, message).await
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        match message {
            // An answer to a request of the child may reach any instance; only the copy whose
            // tag its id carries takes it, so every copy is offered it over the bus.
            ClientJsonRpcMessage::Response(_) | ClientJsonRpcMessage::Error(_) => self.routed().accept_message(id, message).await,
            // Anything else reaches the child once: here through the pump, or through the
            // relay to the instance running it. Sent to every copy, it would reach it twice.
            _ => self.routed().accept_here(id, message).await,
        }
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.routed().create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.routed().resume(id, last_event_id).await
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(match self.routed().restore_session(id.clone()).await? {
            RestoreOutcome::Restored(transport) => {
                let ended = CancellationToken::new();
                let relay = super::relay::RelayPump::new(self.upstream.clone(), id.to_string(), transport, ended.clone());
                self.upstream.settings.children.spawn(relay.run());
                RestoreOutcome::Restored(GhostTransport::new(ended))
            }
            RestoreOutcome::AlreadyPresent => RestoreOutcome::AlreadyPresent,
            _ => RestoreOutcome::NotSupported,
        })
    }

    fn event_store(&self) -> Option<std::sync::Arc<dyn EventStore>> {
        self.routed().event_store()
    }
}
