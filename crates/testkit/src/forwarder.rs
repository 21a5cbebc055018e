//! A small HTTP forwarder on loopback. Tests put it in front of a server to add a bearer token
//! for clients that cannot send one (the conformance suite), or to spread requests over several
//! instances round-robin. Bodies stream both ways, so SSE passes through.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

struct Targets {
    upstreams: Vec<String>,
    next: AtomicUsize,
    bearer: Option<String>,
    client: reqwest::Client,
}

pub struct Forwarder {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HOP_BY_HOP: [&str; 6] = ["connection", "keep-alive", "transfer-encoding", "upgrade", "te", "content-length"];

async fn forward(State(targets): State<Arc<Targets>>, request: Request) -> Response {
    let upstream = &targets.upstreams[targets.next.fetch_add(1, Ordering::Relaxed) % targets.upstreams.len()];
    let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{upstream}{path}");
    let (parts, body) = request.into_parts();
    let mut outgoing = targets.client.request(parts.method, url);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    if let Some(token) = &targets.bearer {
        outgoing = outgoing.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(bytes) => bytes,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    match outgoing.body(body).send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if !HOP_BY_HOP.contains(&name.as_str()) {
                    response = response.header(name, value);
                }
            }
            response.body(Body::from_stream(answer.bytes_stream())).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(error) => {
            let mut response = (StatusCode::BAD_GATEWAY, error.to_string()).into_response();
            response.headers_mut().insert("x-forwarder-error", HeaderValue::from_static("1"));
            response
        }
    }
}

impl Forwarder {
    /// Forwards to `upstreams` in turn, adding `Authorization: Bearer <bearer>` when given.
    /// The `Host` header is passed through unchanged.
    pub async fn start(upstreams: Vec<String>, bearer: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let client = crate::http::http_client();
        let targets = Arc::new(Targets { upstreams, next: AtomicUsize::new(0), bearer, client });
        let app = Router::new().fallback(forward).with_state(targets);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, task }
    }
}
