//! The HTTP surface: routes, shared state, and the layers every request passes.

mod authorize;
mod client_auth;
mod cookies;
pub mod error;
mod extract;
pub mod head_limits;
mod login;
mod metadata;
pub mod metrics;
mod oauth;
pub mod rate_limit;
mod request_id;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use mcp_oauth_domain::login::Login;
use mcp_oauth_domain::ports::StorageHealth;
use mcp_oauth_domain::service::AuthorizationServer;
use mcp_oauth_domain::validation::TokenValidator;
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::pages::{self, HomePage};
use error::plain_json_error;
use mcp_oauth_resource::ResourceRoutes;

/// OAuth requests are small; anything larger is refused before it is parsed.
const OAUTH_BODY_LIMIT: usize = 64 * 1024;

pub struct AppState {
    pub auth: Arc<AuthorizationServer>,
    /// Limits per client_id at /token, /introspect and /revoke.
    pub clients: rate_limit::ClientLimits,
    /// The upstream sign-in; `None` with the development login.
    pub login: Option<Arc<Login>>,
    pub settings: Settings,
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    plain_json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "an unexpected error occurred")
}

async fn not_found() -> Response {
    plain_json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// axum adds the `Allow` header to this answer.
async fn method_not_allowed() -> Response {
    plain_json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take this method")
}

/// Liveness: the process answers.
async fn health_check() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// What readiness depends on: storage, and in front of /mcp the token validator.
#[derive(Clone)]
struct Readiness {
    storage: Arc<dyn StorageHealth>,
    validator: Option<Arc<dyn TokenValidator>>,
}

/// Readiness: storage answers, and tokens can be validated.
async fn ready(State(readiness): State<Readiness>) -> Response {
    let storage = readiness.storage.ping().await.map_err(|error| {
        tracing::warn!(%error, "storage is not reachable");
        "unreachable".to_owned()
    });
    let validation = match &readiness.validator {
        Some(validator) => {
            validator.readiness().await.inspect_err(|reason| tracing::warn!(%reason, "tokens cannot be validated"))
        }
        None => Ok(()),
    };
    let mut body = json!({ "storage": storage.as_ref().map_or_else(|e| e.as_str(), |()| "ok") });
    if readiness.validator.is_some() {
        body["token_validation"] = json!(validation.as_ref().map_or_else(|e| e.as_str(), |()| "ok"));
    }
    if storage.is_ok() && validation.is_ok() {
        body["status"] = json!("ready");
        axum::Json(body).into_response()
    } else {
        body["status"] = json!("unavailable");
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

/// Browser-based MCP clients call discovery, registration, token and /mcp cross-origin. No
/// endpoint relies on cookies except the consent form, which is same-origin.
/// Browser-based MCP clients (the Inspector's web UI) register, exchange tokens and call /mcp
/// from the page: these headers may be sent and read. Credentials (cookies) are never allowed
/// cross-origin, so the consent page's cookies cannot be ridden.
fn cors(origins: &[String]) -> CorsLayer {
    let allowed = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allowed)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-method"),
            HeaderName::from_static("mcp-name"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("x-request-id"),
        ])
}

/// What guards every route: the body timeout and the rate limits.
pub struct Edge {
    pub body_read_timeout: std::time::Duration,
    /// Whether `BASE_URI` is https: browsers are then told to use nothing else (HSTS).
    pub https: bool,
    pub rate_limits: Arc<dyn mcp_oauth_domain::rate_limit::RateLimitStore>,
    pub limits: crate::config::RateLimitSettings,
    /// Origins CORS answers for; empty: any.
    pub cors_origins: Vec<String>,
    /// Whether `/metrics` is served here (`METRICS_ADDR` unset) rather than on its own listener.
    pub metrics_here: bool,
}

impl Edge {
    /// The `scope` limit, if its quota is not off.
    fn limit(
        &self,
        scope: &'static str,
        quota: Option<mcp_oauth_domain::rate_limit::Quota>,
        format: rate_limit::Format,
    ) -> Option<Arc<rate_limit::RateLimit>> {
        let (store, trusted) = (self.rate_limits.clone(), self.limits.trusted.clone());
        quota.map(|quota| Arc::new(rate_limit::RateLimit { store, trusted, scope, quota, format }))
    }

    /// `route` behind the `scope` limit, if its quota is not off.
    fn limited<S: Clone + Send + Sync + 'static>(
        &self,
        route: MethodRouter<S>,
        scope: &'static str,
        quota: Option<mcp_oauth_domain::rate_limit::Quota>,
        format: rate_limit::Format,
    ) -> MethodRouter<S> {
        match self.limit(scope, quota, format) {
            Some(limit) => route.layer(axum::middleware::from_fn_with_state(limit, rate_limit::limit)),
            None => route,
        }
    }
}

/// The routes of whichever halves this process serves; what it does not serve answers 404.
pub fn router(
    oauth: Option<Arc<AppState>>,
    resource: Option<ResourceRoutes>,
    health: Arc<dyn StorageHealth>,
    home: Arc<HomePage>,
    edge: Edge,
) -> Router {
    use rate_limit::Format::{Html, JsonRpc, OAuthJson};
    let limits = &edge.limits;
    let readiness = Readiness { storage: health, validator: resource.as_ref().map(|r| r.validator.clone()) };
    let mut app = Router::new()
        .route("/", get(async move || pages::home(&home)))
        .route("/health", get(health_check))
        .route("/health/ready", get(ready).with_state(readiness));
    if edge.metrics_here {
        app = app.route("/metrics", get(metrics::scrape));
    }
    if let Some(state) = oauth {
        app = app.merge(
            Router::new()
                .route(
                    "/register",
                    edge.limited(
                        edge.limited(post(oauth::register), "register", limits.register, OAuthJson),
                        "registrations",
                        limits.registration_quota,
                        OAuthJson,
                    ),
                )
                .route(
                    "/authorize",
                    edge.limited(
                        edge.limited(get(authorize::show), "pending", limits.pending_authorization_quota, Html)
                            .post(authorize::decide),
                        "authorize",
                        limits.authorize,
                        Html,
                    ),
                )
                .route("/login/callback", get(login::callback))
                .route("/logout", get(login::logout).post(login::logout))
                .route("/token", edge.limited(post(oauth::token), "token", limits.token, OAuthJson))
                .route("/introspect", edge.limited(post(oauth::introspect), "introspect", limits.introspect, OAuthJson))
                .route("/revoke", edge.limited(post(oauth::revoke), "revoke", limits.revoke, OAuthJson))
                .route("/.well-known/oauth-authorization-server", get(metadata::authorization_server))
                .layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT))
                .with_state(state),
        );
    }
    if let Some(resource) = resource {
        let router = match edge.limit("mcp", limits.mcp, JsonRpc) {
            Some(limit) => resource.router.layer(axum::middleware::from_fn_with_state(limit, rate_limit::limit)),
            None => resource.router,
        };
        app = app.merge(router);
    }
    // Per route, where axum names the route a request matched.
    let routes = app.fallback(not_found).method_not_allowed_fallback(method_not_allowed).layer(metrics::TrackLayer::default());
    // What every request passes, composed once around the router rather than applied to each
    // route with `Router::layer`: there each layer is boxed per route and the whole chain of
    // boxes cloned for every request (a quarter of a small request's instructions, README).
    // A body that trickles in slower than BODY_READ_TIMEOUT ends in an error, freeing its
    // connection (the header timeout guards the headers).
    let hsts = edge.https.then(|| {
        SetResponseHeaderLayer::if_not_present(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"))
    });
    let edge_layers = ServiceBuilder::new()
        .map_request(request_id::drop_unusable_id)
        .layer(SetRequestIdLayer::x_request_id(request_id::RandomId))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_id::span).on_response(request_id::access).on_failure(()))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors(&edge.cors_origins))
        .option_layer(hsts)
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(head_limits::HeadLimitsLayer)
        .layer(RequestBodyTimeoutLayer::new(edge.body_read_timeout));
    Router::new().fallback_service(edge_layers.service(routes))
}
