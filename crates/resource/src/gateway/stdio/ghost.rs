//! What rmcp serves on a stdio session: nothing. rmcp's transport runs a server on every
//! session it creates; behind a stdio upstream the child is the server, so rmcp gets one that
//! completes its own handshake, is never sent a client message, and ends with the session.

use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, InitializeRequest, InitializedNotification, NumberOrString,
};
use rmcp::transport::Transport;
use rmcp::{RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;

/// The server rmcp runs on a stdio session. Sessionless requests never reach it
/// ([`super::require_session`]), and session messages go to the child.
pub struct Ghost;

impl ServerHandler for Ghost {}

/// The transport rmcp's server for a stdio session runs on: it opens with a handshake and then
/// stays silent until `ended`.
pub struct GhostTransport {
    handshake: Vec<ClientJsonRpcMessage>,
    ended: CancellationToken,
}

impl GhostTransport {
    pub(super) fn new(ended: CancellationToken) -> Self {
        let initialize = ClientJsonRpcMessage::request(
            ClientRequest::InitializeRequest(InitializeRequest::new(Default::default())),
            NumberOrString::Number(0),
        );
        let initialized =
            ClientJsonRpcMessage::notification(ClientNotification::InitializedNotification(InitializedNotification {
                ..Default::default()
            }));
        Self { handshake: vec![initialized, initialize], ended }
    }
}

impl Transport<RoleServer> for GhostTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        _item: rmcp::model::ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        std::future::ready(Ok(()))
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        if let Some(message) = self.handshake.pop() {
            return Some(message);
        }
        self.ended.cancelled().await;
        None
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.ended.cancel();
        Ok(())
    }
}
