//! The MCP resource server of mcp-oauth-server: `/mcp` on Streamable HTTP, only for valid
//! tokens issued for it, with sessions bound to their user and shared by every instance.
//!
//! A request travels: `guard` (bearer token, RFC 6750 / RFC 9728 challenges) → `edge`
//! (JSON-RPC errors for transport failures) → `tool_scopes` (per-tool scopes) → `owner` (the
//! session belongs to the token's subject) → `transport` (rmcp's Streamable HTTP, routed between instances over the session
//! `ports`) → the MCP server (`demo`, the reference server and conformance fixtures). The ports
//! have a `memory` and a `redis` implementation. Token validation is the OAuth domain's port
//! (`TokenValidator`); nothing here reaches into the authorization server.

pub mod caller;
pub mod demo;
pub mod directory;
pub mod edge;
pub mod gateway;
pub mod guard;
pub mod memory;
pub mod metadata;
pub mod owner;
pub mod ports;
#[cfg(feature = "redis")]
pub mod redis;
pub mod stream_limit;
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
use owner::SessionRules;
use transport::RoutedSessionManager;

/// The resource server's routes, and the validator its readiness depends on.
pub struct ResourceRoutes {
    pub validator: Arc<dyn TokenValidator>,
    pub router: Router,
}

/// `mcp` (what answers /mcp) behind the guard, the JSON-RPC edge, per-tool scopes and session
/// ownership, beside the RFC 9728 metadata at both well-known URLs.
fn guarded(
    mcp: Router,
    guard: BearerGuard,
    metadata: ProtectedResource,
    sessions: SessionRules,
    tools: tool_scopes::ToolScopes,
) -> ResourceRoutes {
    let validator = guard.validator.clone();
    // Without TOOL_SCOPES the layer would pass every request on: it is left out, as each
    // middleware layer costs every request a clone of the layers inside it.
    let tool_guard = (!tools.is_empty())
        .then(|| Arc::new(tool_scopes::ToolScopeGuard { scopes: tools, resource_metadata: guard.resource_metadata.clone() }));
    let streams = stream_limit::StreamLimit::new(sessions.max_streams);
    // Outermost first, composed once around `mcp`: with `Router::layer` each would be boxed,
    // and every request would clone the chain of boxes at each layer (README, Benchmarks).
    let layers = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(Arc::new(guard), guard::require_bearer))
        .layer(axum::middleware::from_fn(edge::jsonrpc_errors))
        .option_layer(tool_guard.map(|guard| axum::middleware::from_fn_with_state(guard, tool_scopes::enforce)))
        .layer(axum::middleware::from_fn_with_state(owner::Ownership::new(sessions), owner::bind_to_owner))
        .layer(axum::middleware::from_fn_with_state(streams, stream_limit::limit_streams));
    let mcp = Router::new().fallback_service(layers.service(mcp));
    let router = Router::new()
        .route("/.well-known/oauth-protected-resource", get(metadata::protected_resource))
        .route("/.well-known/oauth-protected-resource/mcp", get(metadata::protected_resource))
        .with_state(Arc::new(metadata))
        .nest("/mcp", mcp);
    ResourceRoutes { validator, router }
}

/// `/mcp` serving `service` (the demo server, or an embedded one) on rmcp's transport.
pub fn routes<S>(
    guard: BearerGuard,
    metadata: ProtectedResource,
    sessions: SessionRules,
    tools: tool_scopes::ToolScopes,
    service: StreamableHttpService<S, RoutedSessionManager>,
) -> ResourceRoutes
where
    S: ServerHandler + Send + 'static,
{
    let service = transport::SharedService::new(service, transport::Answers::JsonWhenQuick);
    guarded(Router::new().fallback_service(service), guard, metadata, sessions, tools)
}

async fn published_keys(signer: &gateway::identity::IdentitySigner) -> axum::response::Response {
    use axum::response::IntoResponse;
    match signer.jwks().await {
        Ok(keys) => axum::Json(keys).into_response(),
        Err(error) => {
            tracing::warn!(code = "temporarily_unavailable", cause = %error, "identity signing keys unavailable");
            let body =
                serde_json::json!({"error": "temporarily_unavailable", "error_description": "the signing keys are unavailable"});
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

/// `/mcp` in front of a stdio MCP server, one child per session ([`gateway::stdio`]), behind
/// the same layers as [`routes`].
pub fn stdio_routes(
    guard: BearerGuard,
    metadata: ProtectedResource,
    sessions: SessionRules,
    tools: tool_scopes::ToolScopes,
    service: StreamableHttpService<gateway::stdio::Ghost, gateway::stdio::StdioSessionManager>,
) -> ResourceRoutes {
    let mcp = Router::new()
        // A stdio server's messages are relayed as the stream they arrive as, the shape the
        // same server answers in over HTTP.
        .fallback_service(transport::SharedService::new(service, transport::Answers::Streamed))
        .layer(axum::middleware::from_fn(gateway::stdio::require_session));
    guarded(mcp, guard, metadata, sessions, tools)
}

/// `/mcp` as a gateway to the user's own MCP server ([`gateway::forward`]), behind the same
/// layers as [`routes`]. With JWT identity, the keys that verify it are published at
/// `/.well-known/jwks.json`.
pub fn gateway_routes(
    guard: BearerGuard,
    metadata: ProtectedResource,
    sessions: SessionRules,
    tools: tool_scopes::ToolScopes,
    gateway: gateway::GatewaySettings,
) -> ResourceRoutes {
    let signer = match &gateway.identity {
        gateway::identity::CallerIdentity::Jwt(signer) => Some(signer.clone()),
        gateway::identity::CallerIdentity::Headers => None,
    };
    let forwarder = Arc::new(gateway::Gateway::new(gateway, sessions.store.clone()));
    let mcp = Router::new().fallback(gateway::forward).with_state(forwarder);
    let mut routes = guarded(mcp, guard, metadata, sessions, tools);
    if let Some(signer) = signer {
        routes.router = routes.router.route("/.well-known/jwks.json", get(async move || published_keys(&signer).await));
    }
    routes
}
