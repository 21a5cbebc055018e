//! Limits on a request's head (target and headers), answered in our JSON like every other
//! error. hyper's own limits sit above these as a backstop: a head over hyper's buffer
//! (`MAX_HEAD_BUFFER`) never reaches the router, and hyper answers it with an empty 431.

use std::task::{Context, Poll};

use axum::http::{Request, StatusCode};
use axum::response::Response;
use futures::future::{Either, Ready, ready};

use super::error::plain_json_error;

/// The longest request target (path and query) answered; real OAuth and MCP requests stay far
/// below (an authorization request with every parameter at its limit is under 4 KiB).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The longest single header value, and the whole header block.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
pub const MAX_HEADERS_BYTES: usize = 32 * 1024;
/// How many header fields a request may carry. hyper's own backstop is its default of 100, so
/// these get our answer: any setting of hyper's costs every request (its header slots are then
/// allocated and filled one by one, where the default leaves them uninitialised on the stack).
pub const MAX_HEADER_COUNT: usize = 64;
/// hyper's read buffer for a request head.
pub const MAX_HEAD_BUFFER: usize = 64 * 1024;

/// Answers a request whose head is over these limits; passes the others on. A plain layer
/// rather than an axum middleware: it runs on every request, and decides without waiting.
#[derive(Clone, Copy)]
pub struct HeadLimitsLayer;

impl<S> tower::Layer<S> for HeadLimitsLayer {
    type Service = HeadLimits<S>;

    fn layer(&self, inner: S) -> HeadLimits<S> {
        HeadLimits(inner)
    }
}

#[derive(Clone)]
pub struct HeadLimits<S>(S);

impl<S, B> tower::Service<Request<B>> for HeadLimits<S>
where
    S: tower::Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match refusal(&request) {
            Some(answer) => Either::Left(ready(Ok(answer))),
            None => Either::Right(self.0.call(request)),
        }
    }
}

fn refusal<B>(request: &Request<B>) -> Option<Response> {
    let target = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(plain_json_error(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request target is over {MAX_URI_BYTES} bytes"),
        ));
    }
    let headers = request.headers();
    let mut total = 0;
    for (name, value) in headers {
        let size = name.as_str().len() + value.len();
        if size > MAX_HEADER_BYTES {
            return Some(too_large(&format!("the header {name} is over {MAX_HEADER_BYTES} bytes")));
        }
        total += size;
    }
    if total > MAX_HEADERS_BYTES {
        return Some(too_large(&format!("the request's headers are over {MAX_HEADERS_BYTES} bytes together")));
    }
    if headers.len() > MAX_HEADER_COUNT {
        return Some(too_large(&format!("the request has more than {MAX_HEADER_COUNT} header fields")));
    }
    None
}

fn too_large(description: &str) -> Response {
    plain_json_error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "request_header_fields_too_large", description)
}
