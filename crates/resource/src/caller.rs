//! Who is calling, for an MCP server behind this one's authorization: the validated bearer
//! token of the request, as a tool or prompt argument.
//!
//! ```ignore
//! #[tool(description = "Deploys, as the signed-in user")]
//! async fn deploy(&self, Caller(caller): Caller) -> Result<CallToolResult, ErrorData> {
//!     let who = &caller.subject; // also caller.client_id, caller.scope
//! }
//! ```

use mcp_oauth_domain::validation::ValidatedToken;
use rmcp::ErrorData;
use rmcp::RoleServer;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::service::RequestContext;

/// The token the request was authorized with: its subject, client, scope, audience and expiry.
#[derive(Debug, Clone)]
pub struct Caller(pub ValidatedToken);

impl Caller {
    /// The caller of the request `context` belongs to; `None` off the guarded route.
    pub fn of(context: &RequestContext<RoleServer>) -> Option<Self> {
        let parts = context.extensions.get::<axum::http::request::Parts>()?;
        parts.extensions.get::<ValidatedToken>().cloned().map(Self)
    }
}

impl<C: AsRequestContext> FromContextPart<C> for Caller {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        Self::of(context.as_request_context())
            .ok_or_else(|| ErrorData::internal_error("the request carries no validated token", None))
    }
}
