//! The bearer guard in front of /mcp (RFC 6750, RFC 9728 section 5.1): only valid tokens issued
//! for this resource pass, and the validated token rides along in the request extensions.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcp_oauth_domain::ErrorCode as OAuthErrorCode;
use mcp_oauth_domain::rate_limit::Quota;
use mcp_oauth_domain::scope::Scope;
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::validation::{TokenRejection, TokenValidator};
use rmcp::model::ErrorCode;
use serde_json::json;

/// Retry later: a dependency (storage, the authorization server) did not answer. The standard
/// codes are rmcp's; this one and the next are this server's, in JSON-RPC's
/// implementation-defined range.
pub const UNAVAILABLE: ErrorCode = ErrorCode(-32000);
/// Authorization required, or no such session (as the official SDKs use it).
pub const UNAUTHORIZED_OR_UNKNOWN_SESSION: ErrorCode = ErrorCode(-32001);

pub struct BearerGuard {
    pub validator: Arc<dyn TokenValidator>,
    /// Where clients find the protected-resource metadata, named in every challenge.
    pub resource_metadata: String,
    /// What the 401 challenge asks a first authorization to request.
    pub scope: String,
    /// What every token must carry to reach /mcp at all (`MCP_REQUIRED_SCOPES`).
    pub required: Scope,
}

/// The digest of the bearer token a request presented: never the token itself. The gateway
/// checks through it that the grant behind a stdio child is still alive.
#[derive(Clone, Copy, Debug)]
pub struct PresentedToken(pub TokenDigest);

impl BearerGuard {
    fn challenge(&self, error: Option<&str>) -> Response {
        let mut value = format!("Bearer resource_metadata=\"{}\", scope=\"{}\"", self.resource_metadata, self.scope);
        if let Some(description) = error {
            let code = OAuthErrorCode::InvalidToken.as_str();
            value.push_str(&format!(", error=\"{code}\", error_description=\"{description}\""));
        }
        let body = jsonrpc_error(UNAUTHORIZED_OR_UNKNOWN_SESSION, error.unwrap_or("authorization required"));
        let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// 403 with an `insufficient_scope` challenge naming every scope `needed` (RFC 6750 section 3.1,
/// MCP "Scope Challenge Handling": the whole set in one challenge).
pub fn insufficient_scope(resource_metadata: &str, needed: &Scope, description: &str) -> Response {
    let challenge = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{needed}\", resource_metadata=\"{resource_metadata}\", error_description=\"{description}\""
    );
    let body = jsonrpc_error(ErrorCode::INVALID_REQUEST, &format!("insufficient scope: {description}"));
    let mut response = (StatusCode::FORBIDDEN, body).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// A JSON-RPC error body for a transport-level failure, which answers no particular request.
pub fn jsonrpc_error(code: ErrorCode, message: &str) -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code.0, "message": message } }))
}

/// A bound on `/mcp` refusing a request (a session or stream cap): 429 with a JSON-RPC error.
pub fn over_limit(message: &str) -> Response {
    (StatusCode::TOO_MANY_REQUESTS, jsonrpc_error(UNAVAILABLE, message)).into_response()
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers) for `quota`, with
/// `remaining` requests left in a window that ends in `resets_in`.
pub fn rate_limit_headers(headers: &mut axum::http::HeaderMap, quota: &Quota, remaining: u32, resets_in: Duration) {
    headers.insert("ratelimit-policy", HeaderValue::from_str(&quota.to_string()).expect("digits and ;w="));
    headers.insert("ratelimit", HeaderValue::from_str(&quota.state(remaining, resets_in)).expect("digits and commas"));
}

/// The headers of a request `quota` refused: `Retry-After` in whole seconds, and the rate-limit
/// headers with nothing remaining.
pub fn refusal_headers(headers: &mut axum::http::HeaderMap, quota: &Quota, retry_after: Duration) {
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs_f64().ceil() as u64));
    rate_limit_headers(headers, quota, 0, retry_after);
}

/// The token of an `Authorization: Bearer` header (RFC 6750 section 2.1; the scheme in any case).
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

pub async fn require_bearer(State(guard): State<Arc<BearerGuard>>, mut request: Request, next: Next) -> Response {
    let Some(token) = bearer_token(request.headers()) else {
        return guard.challenge(None);
    };
    match guard.validator.validate(token).await {
        Ok(validated) if !guard.required.is_subset_of(&validated.scope) => {
            tracing::info!(subject = %validated.subject, required = %guard.required, "MCP request refused: insufficient scope");
            let description = format!("this server needs the scope {}", guard.required);
            insufficient_scope(&guard.resource_metadata, &guard.required, &description)
        }
        Ok(validated) => {
            // The request's span (its access line, its audit events) names the caller.
            let span = tracing::Span::current();
            span.record("client_id", validated.client_id.as_str());
            span.record("subject", validated.subject.as_str());
            let presented = PresentedToken(TokenDigest::of(token));
            request.extensions_mut().insert(validated);
            request.extensions_mut().insert(presented);
            next.run(request).await
        }
        Err(TokenRejection::Invalid(reason)) => guard.challenge(Some(reason)),
        Err(TokenRejection::Unavailable(cause)) => {
            // The same shape as every endpoint's failure log (mcp_oauth_app::http::error).
            tracing::warn!(code = "temporarily_unavailable", description = "token validation unavailable", %cause, "request failed");
            let body = jsonrpc_error(UNAVAILABLE, "token validation is temporarily unavailable; retry shortly");
            (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], body).into_response()
        }
        Err(TokenRejection::Misconfigured(cause)) => {
            tracing::error!(code = "misconfigured", description = "tokens cannot be validated", %cause, "configuration error");
            let body =
                jsonrpc_error(UNAVAILABLE, "this server cannot validate tokens: its configuration needs fixing by its operator");
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}
