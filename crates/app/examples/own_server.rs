//! Your own rmcp MCP server behind mcp-oauth-server's authorization, in one file.
//!
//! `cargo run -p mcp-oauth-app --example own_server` serves it at http://localhost:3232/mcp,
//! with the same settings as the server binary (environment or flags: LOGIN, STORAGE_URL,
//! TOOL_SCOPES, ...). Every request that reaches a tool carries a token validated for this
//! resource; `Caller` hands it to the tool.

use clap::Parser;
use mcp_oauth_app::config::Config;
use mcp_oauth_resource::caller::Caller;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

#[derive(Clone)]
struct Greeter {
    tool_router: ToolRouter<Self>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct GreetArgs {
    /// How to greet.
    greeting: String,
}

#[tool_router]
impl Greeter {
    fn new() -> Self {
        Self { tool_router: Self::tool_router() }
    }

    #[tool(description = "Greets the signed-in user by name")]
    async fn greet(&self, Caller(caller): Caller, Parameters(args): Parameters<GreetArgs>) -> Result<CallToolResult, ErrorData> {
        let line = format!("{}, {} (client {}, scope {})", args.greeting, caller.subject, caller.client_id, caller.scope);
        Ok(CallToolResult::success(vec![ContentBlock::text(line)]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Greeter {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() {
    mcp_oauth_adapters::install_tls_provider();
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new("info")).init();
    if let Err(error) = mcp_oauth_app::serve_with(Config::parse(), |_| Greeter::new()).await {
        eprintln!("own_server: {error}");
        std::process::exit(1);
    }
}
