//! The Streamable HTTP service for /mcp.

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::{McpServer, McpSettings};

pub fn service(allowed_hosts: Vec<String>, settings: McpSettings) -> StreamableHttpService<McpServer, LocalSessionManager> {
    let settings = Arc::new(settings);
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts);
    StreamableHttpService::new(move || Ok(McpServer::new(settings.clone())), Arc::new(LocalSessionManager::default()), config)
}
