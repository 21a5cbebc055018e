//! Limits on a request's head (target and headers), answered in our JSON like every other
//! error. hyper's own limits sit above these as a backstop: a head over hyper's buffer
//! (`MAX_HEAD_BUFFER`) never reaches the router, and hyper answers it with an empty 431.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::error::plain_json_error;

/// The longest request target (path and query) answered; real OAuth and MCP requests stay far
/// below (an authorization request with every parameter at its limit is under 4 KiB).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The longest single header value, and the whole header block.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
pub const MAX_HEADERS_BYTES: usize = 32 * 1024;
/// How many header fields a request may carry; hyper is allowed more, so that these get our
/// answer.
pub const MAX_HEADER_COUNT: usize = 64;
/// hyper's read buffer for a request head, and its header-count backstop.
pub const MAX_HEAD_BUFFER: usize = 64 * 1024;
pub const HYPER_MAX_HEADERS: usize = 200;

pub async fn check(request: Request, next: Next) -> Response {
    let target = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return plain_json_error(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request target is over {MAX_URI_BYTES} bytes"),
        );
    }
    let headers = request.headers();
    let mut total = 0;
    for (name, value) in headers {
        let size = name.as_str().len() + value.len();
        if size > MAX_HEADER_BYTES {
            return too_large(&format!("the header {name} is over {MAX_HEADER_BYTES} bytes"));
        }
        total += size;
    }
    if total > MAX_HEADERS_BYTES {
        return too_large(&format!("the request's headers are over {MAX_HEADERS_BYTES} bytes together"));
    }
    if headers.len() > MAX_HEADER_COUNT {
        return too_large(&format!("the request has more than {MAX_HEADER_COUNT} header fields"));
    }
    next.run(request).await
}

fn too_large(description: &str) -> Response {
    plain_json_error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "request_header_fields_too_large", description)
}
