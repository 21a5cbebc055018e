//! Where protocol errors become HTTP responses: JSON bodies with RFC codes, never HTML.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_oauth_domain::OAuthError;
use serde_json::json;

/// An OAuth error answered directly (not by redirect), as RFC 6749 section 5.2 describes.
#[derive(Debug)]
pub struct OAuthResponse(pub OAuthError);

impl From<OAuthError> for OAuthResponse {
    fn from(error: OAuthError) -> Self {
        Self(error)
    }
}

impl IntoResponse for OAuthResponse {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        log_oauth_error(&error);
        let body = json!({ "error": error.code.as_str(), "error_description": error.description });
        let mut response = (status, no_store(), Json(body)).into_response();
        if error.basic_auth_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mcp-oauth-server\", charset=\"UTF-8\""),
            );
        } else if error.code == mcp_oauth_domain::ErrorCode::InvalidToken {
            // A bearer token was wanted (RFC 6750 section 3): the initial access token of
            // RFC 7591 section 3.
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        }
        response
    }
}

/// Logs an error the server could not help (a storage outage, corrupt data) with its internal
/// cause, inside the request's span (route and request id). Client mistakes are not logged
/// here: they are the client's to fix, and the answer tells it.
pub fn log_oauth_error(error: &OAuthError) {
    if error.status() >= 500 || error.cause.is_some() {
        log_failure(error.code.as_str(), &error.description, error.cause.as_deref());
    }
}

/// The one way every endpoint logs a failure of its own.
pub fn log_failure(code: &str, description: &str, cause: Option<&str>) {
    tracing::warn!(code, description, cause = cause.unwrap_or("unknown"), "request failed");
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, for anything carrying tokens or errors
/// about them (RFC 6749 section 5.1).
pub fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store")), (header::PRAGMA, HeaderValue::from_static("no-cache"))]
}

/// A JSON error for requests that are not OAuth-shaped (unknown routes, panics, limits).
pub fn plain_json_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({ "error": error, "error_description": description }))).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use mcp_oauth_domain::{OAuthError, StorageError};

    use super::*;

    async fn render(error: OAuthError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = OAuthResponse(error).into_response();
        let (parts, body) = response.into_parts();
        let body = to_bytes(body, 1 << 16).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_storage_outage_is_503_temporarily_unavailable() {
        let (status, headers, body) = render(StorageError::Unavailable("connection refused".into()).into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(!body.to_string().contains("connection refused"), "backend details stay in the logs");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn invalid_client_challenges_basic_only_when_basic_was_used() {
        let (status, headers, _) = render(OAuthError::invalid_client("nope", true)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic"));
        let (status, headers, _) = render(OAuthError::invalid_client("nope", false)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
    }
}
