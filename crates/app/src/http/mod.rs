//! The HTTP surface: routes, shared state, and the layers every request passes.

mod authorize;
mod client_auth;
pub mod error;
mod extract;
pub mod guard;
mod metadata;
mod oauth;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mcp_oauth_domain::ports::StorageHealth;
use mcp_oauth_domain::service::AuthorizationServer;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};

use crate::config::Settings;
use error::plain_json_error;
use guard::BearerGuard;

/// OAuth requests are small; anything larger is refused before it is parsed.
const OAUTH_BODY_LIMIT: usize = 64 * 1024;

pub struct AppState {
    pub auth: Arc<AuthorizationServer>,
    pub settings: Settings,
}

/// What RFC 9728 metadata says about the MCP resource.
pub struct ProtectedResource {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes: Vec<String>,
}

/// The resource-server half: `/mcp` and its metadata.
pub struct ResourceRoutes {
    pub guard: Arc<BearerGuard>,
    pub mcp: Router,
    pub metadata: Arc<ProtectedResource>,
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    plain_json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "an unexpected error occurred")
}

async fn not_found() -> Response {
    plain_json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Liveness: the process answers.
async fn health_check() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Readiness: storage answers too.
async fn ready(State(health): State<Arc<dyn StorageHealth>>) -> Response {
    match health.ping().await {
        Ok(()) => axum::Json(json!({ "status": "ready", "storage": "ok" })).into_response(),
        Err(error) => {
            tracing::warn!(%error, "storage is not reachable");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "unavailable", "storage": "unreachable" })))
                .into_response()
        }
    }
}

/// Browser-based MCP clients call discovery, registration, token and /mcp cross-origin. No
/// endpoint relies on cookies except the consent form, which is same-origin.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers([header::WWW_AUTHENTICATE, HeaderName::from_static("mcp-session-id")])
}

/// The routes of whichever halves this process serves; what it does not serve answers 404.
pub fn router(oauth: Option<Arc<AppState>>, resource: Option<ResourceRoutes>, health: Arc<dyn StorageHealth>) -> Router {
    let mut app = Router::new().route("/health", get(health_check)).route("/health/ready", get(ready).with_state(health));
    if let Some(state) = oauth {
        app = app.merge(
            Router::new()
                .route("/register", post(oauth::register))
                .route("/authorize", get(authorize::show).post(authorize::decide))
                .route("/token", post(oauth::token))
                .route("/introspect", post(oauth::introspect))
                .route("/revoke", post(oauth::revoke))
                .route("/.well-known/oauth-authorization-server", get(metadata::authorization_server))
                .layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT))
                .with_state(state),
        );
    }
    if let Some(ResourceRoutes { guard, mcp, metadata }) = resource {
        app = app
            .merge(
                Router::new()
                    .route("/.well-known/oauth-protected-resource", get(metadata::protected_resource))
                    .route("/.well-known/oauth-protected-resource/mcp", get(metadata::protected_resource))
                    .with_state(metadata),
            )
            .nest("/mcp", mcp.layer(axum::middleware::from_fn_with_state(guard, guard::require_bearer)));
    }
    app.fallback(not_found).layer(cors()).layer(CatchPanicLayer::custom(panic_response))
}
