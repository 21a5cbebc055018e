//! The MCP server behind the bearer guard, on rmcp's Streamable HTTP transport.

use std::sync::Arc;

use mcp_oauth_domain::validation::ValidatedToken;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

#[derive(Clone)]
pub struct McpServer {
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// The message to echo back.
    pub message: String,
}

fn caller(parts: &axum::http::request::Parts) -> Result<&ValidatedToken, ErrorData> {
    parts
        .extensions
        .get::<ValidatedToken>()
        .ok_or_else(|| ErrorData::internal_error("the request carries no validated token", None))
}

#[tool_router]
impl McpServer {
    pub fn new() -> Self {
        Self { tool_router: Self::tool_router() }
    }

    #[tool(description = "Echoes back the input")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("Echo: {}", args.message))]))
    }

    #[tool(description = "Returns who is calling: the subject, client and scopes of the bearer token")]
    async fn whoami(
        &self,
        rmcp::handler::server::tool::Extension(parts): rmcp::handler::server::tool::Extension<axum::http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let token = caller(&parts)?;
        let body = serde_json::json!({
            "sub": token.subject,
            "client_id": token.client_id,
            "scope": token.scope.to_string(),
            "aud": token.audience,
            "exp": token.expires_at.timestamp(),
        });
        Ok(CallToolResult::success(vec![ContentBlock::text(body.to_string())]))
    }
}

impl Default for McpServer {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("mcp-oauth-server", env!("CARGO_PKG_VERSION"));
        info
    }
}

/// The Streamable HTTP service for /mcp. `allowed_hosts` guards against DNS rebinding.
pub fn service(allowed_hosts: Vec<String>) -> StreamableHttpService<McpServer, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts);
    StreamableHttpService::new(|| Ok(McpServer::new()), Arc::new(LocalSessionManager::default()), config)
}
