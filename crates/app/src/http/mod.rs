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
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::extract::State;
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
    pub health: Arc<dyn StorageHealth>,
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    plain_json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "an unexpected error occurred")
}

async fn not_found() -> Response {
    plain_json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Liveness: the process answers.
async fn health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Readiness: storage answers too.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.health.ping().await {
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

/// `mcp` is the MCP service with its own layers; the bearer guard goes outermost.
pub fn router(state: Arc<AppState>, guard: Arc<BearerGuard>, mcp: Router) -> Router {
    let oauth = Router::new()
        .route("/register", post(oauth::register))
        .route("/authorize", get(authorize::show).post(authorize::decide))
        .route("/token", post(oauth::token))
        .route("/introspect", post(oauth::introspect))
        .route("/revoke", post(oauth::revoke))
        .route("/.well-known/oauth-authorization-server", get(metadata::authorization_server))
        .route("/.well-known/oauth-protected-resource", get(metadata::protected_resource))
        .route("/.well-known/oauth-protected-resource/mcp", get(metadata::protected_resource))
        .route("/health/ready", get(ready))
        .layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT))
        .with_state(state);
    let mcp = mcp.layer(axum::middleware::from_fn_with_state(guard, guard::require_bearer));
    Router::new()
        .merge(oauth)
        .nest("/mcp", mcp)
        .route("/health", get(health))
        .fallback(not_found)
        .layer(cors())
        .layer(CatchPanicLayer::custom(panic_response))
}
