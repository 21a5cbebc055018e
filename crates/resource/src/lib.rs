//! The MCP resource server of mcp-oauth-server: `/mcp` on Streamable HTTP, only for valid
//! tokens issued for it, with sessions bound to their user and shared by every instance.
//!
//! A request travels: `guard` (bearer token, RFC 6750 / RFC 9728 challenges) → `edge`
//! (JSON-RPC errors for transport failures) → `tool_scopes` (per-tool scopes) → `owner` (the
//! session belongs to the token's subject) → `transport` (rmcp's Streamable HTTP, routed between instances over the session
//! `ports`) → the MCP server (`demo`, the reference server and conformance fixtures). The ports
//! have a `memory` and a `redis` implementation. Token validation is the OAuth domain's port
//! (`TokenValidator`); nothing here reaches into the authorization server.

pub mod demo;
pub mod edge;
pub mod gateway;
pub mod guard;
pub mod memory;
pub mod metadata;
pub mod owner;
pub mod ports;
#[cfg(feature = "redis")]
pub mod redis;
pub mod tool_scopes;
pub mod transport;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use mcp_oauth_domain::validation::TokenValidator;
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::StreamableHttpService;

use guard::BearerGuard;
use metadata::ProtectedResource;
use ports::McpSessionStore;
use transport::RoutedSessionManager;

fn tool_guard(guard: &BearerGuard, scopes: tool_scopes::ToolScopes) -> Arc<tool_scopes::ToolScopeGuard> {
    Arc::new(tool_scopes::ToolScopeGuard { scopes, resource_metadata: guard.resource_metadata.clone() })
}

/// The resource server's routes, and the validator its readiness depends on.
pub struct ResourceRoutes {
    pub validator: Arc<dyn TokenValidator>,
    pub router: Router,
}

/// `/mcp` behind its guard, session ownership and JSON-RPC edge, and its RFC 9728 metadata at
/// both well-known URLs.
pub fn routes<S>(
    guard: BearerGuard,
    metadata: ProtectedResource,
    sessions: Arc<dyn McpSessionStore>,
    tools: tool_scopes::ToolScopes,
    service: StreamableHttpService<S, RoutedSessionManager>,
) -> ResourceRoutes
where
    S: ServerHandler + Send + 'static,
{
    let validator = guard.validator.clone();
    let mcp = Router::new()
        .fallback_service(service)
        .layer(axum::middleware::from_fn_with_state(sessions, owner::bind_to_owner))
        .layer(axum::middleware::from_fn_with_state(tool_guard(&guard, tools), tool_scopes::enforce))
        .layer(axum::middleware::from_fn(edge::jsonrpc_errors))
        .layer(axum::middleware::from_fn_with_state(Arc::new(guard), guard::require_bearer));
    let router = Router::new()
        .route("/.well-known/oauth-protected-resource", get(metadata::protected_resource))
        .route("/.well-known/oauth-protected-resource/mcp", get(metadata::protected_resource))
        .with_state(Arc::new(metadata))
        .nest("/mcp", mcp);
    ResourceRoutes { validator, router }
}

/// `/mcp` as a gateway to the user's own MCP server: the same guard, JSON-RPC edge and session
/// ownership as [`routes`], then [`gateway::forward`]. With JWT identity, the keys that verify
/// it are published at `/.well-known/jwks.json`.
pub fn gateway_routes(
    guard: BearerGuard,
    metadata: ProtectedResource,
    sessions: Arc<dyn McpSessionStore>,
    tools: tool_scopes::ToolScopes,
    gateway: gateway::GatewaySettings,
) -> ResourceRoutes {
    let validator = guard.validator.clone();
    let jwks = match &gateway.identity {
        gateway::identity::CallerIdentity::Jwt(signer) => Some(signer.jwks()),
        gateway::identity::CallerIdentity::Headers => None,
    };
    let forwarder = Arc::new(gateway::Gateway::new(gateway, sessions.clone()));
    let mcp = Router::new()
        .fallback(gateway::forward)
        .with_state(forwarder)
        .layer(axum::middleware::from_fn_with_state(sessions, owner::bind_to_owner))
        .layer(axum::middleware::from_fn_with_state(tool_guard(&guard, tools), tool_scopes::enforce))
        .layer(axum::middleware::from_fn(edge::jsonrpc_errors))
        .layer(axum::middleware::from_fn_with_state(Arc::new(guard), guard::require_bearer));
    let mut router = Router::new()
        .route("/.well-known/oauth-protected-resource", get(metadata::protected_resource))
        .route("/.well-known/oauth-protected-resource/mcp", get(metadata::protected_resource))
        .with_state(Arc::new(metadata))
        .nest("/mcp", mcp);
    if let Some(jwks) = jwks {
        router = router.route("/.well-known/jwks.json", get(async move || axum::Json(jwks.clone())));
    }
    ResourceRoutes { validator, router }
}
