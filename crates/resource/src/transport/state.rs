//! rmcp's hook for restoring a session on another instance, kept in the session store.

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::{SessionState, SessionStoreError};

use crate::ports::McpSessionStore;

pub(super) struct SharedSessionState(pub(super) Arc<dyn McpSessionStore>);

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
