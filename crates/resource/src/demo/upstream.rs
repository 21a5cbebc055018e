//! The tool that shows an MCP server using the caller's upstream account: it calls the
//! upstream's userinfo endpoint with the upstream token kept for the caller's authorization.

use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};

use super::McpServer;
use super::tools::text;
use crate::caller::Caller;

#[tool_router(router = upstream_tools, vis = "pub(super)")]
impl McpServer {
    #[tool(
        description = "Calls the upstream identity provider's userinfo endpoint as the signed-in user, with the upstream token this server keeps for them"
    )]
    async fn upstream_userinfo(&self, Caller(token): Caller) -> Result<CallToolResult, ErrorData> {
        let (Some(upstream), Some(family)) = (&self.settings.upstream, &token.family) else {
            return Ok(CallToolResult::error(vec![text("no upstream sign-in is kept for this token")]));
        };
        match upstream.userinfo(family).await {
            Ok(info) => Ok(CallToolResult::success(vec![text(info.to_string())])),
            Err(reason) => Ok(CallToolResult::error(vec![text(format!("the upstream could not be asked: {reason}"))])),
        }
    }
}
