//! The JSON-RPC edge of /mcp: whatever goes wrong in transport, the client gets a JSON-RPC
//! error body, never plain text.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use rmcp::model::ErrorCode;

use crate::guard::{UNAUTHORIZED_OR_UNKNOWN_SESSION, jsonrpc_error};

/// rmcp's own limit on request bodies, enforced here first so the answer is JSON-RPC.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// JSON-RPC error code for a transport failure with `status`.
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::NOT_FOUND => UNAUTHORIZED_OR_UNKNOWN_SESSION,
        s if s.is_server_error() => ErrorCode::INTERNAL_ERROR,
        _ => ErrorCode::INVALID_REQUEST,
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"))
}

pub async fn jsonrpc_errors(request: Request, next: Next) -> Response {
    let request = if request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, jsonrpc_error(ErrorCode::INVALID_REQUEST, "the request body is too large"))
                .into_response();
        };
        if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
            return (StatusCode::BAD_REQUEST, jsonrpc_error(ErrorCode::PARSE_ERROR, "parse error: the body is not valid JSON"))
                .into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, 64 * 1024).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let message = if text.trim().is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    let mut converted = (status, jsonrpc_error(code_for(status), &message)).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            converted.headers_mut().insert(name, value.clone());
        }
    }
    converted
}
