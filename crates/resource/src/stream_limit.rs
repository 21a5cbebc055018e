//! How many responses one session may hold open on this instance at once: its GET stream and
//! the streams of its requests in flight. Each open stream holds a connection and buffers,
//! so a client that opens streams without end is refused (429, a JSON-RPC error) instead.
//! Counted per instance: a stream is a connection to this process.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use dashmap::DashMap;
use futures::StreamExt;

use crate::transport::SESSION_HEADER;

pub struct StreamLimit {
    open: DashMap<String, usize>,
    max: usize,
}

impl StreamLimit {
    pub fn new(max_per_session: usize) -> Arc<Self> {
        Arc::new(Self { open: DashMap::new(), max: max_per_session })
    }

    fn open(self: &Arc<Self>, session: &str) -> Option<OpenStream> {
        let mut count = self.open.entry(session.to_owned()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        metrics::gauge!("mcp_open_streams").increment(1.0);
        Some(OpenStream { limit: self.clone(), session: session.to_owned() })
    }

    /// Open streams of `session` here.
    pub fn count(&self, session: &str) -> usize {
        self.open.get(session).map_or(0, |c| *c)
    }
}

/// One open stream; closing it (dropping) frees its place.
struct OpenStream {
    limit: Arc<StreamLimit>,
    session: String,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("mcp_open_streams").decrement(1.0);
        self.limit.open.remove_if_mut(&self.session, |_, count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
    }
}

pub async fn limit_streams(State(limit): State<Arc<StreamLimit>>, request: Request, next: Next) -> Response {
    let Some(session) = request.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        return next.run(request).await;
    };
    let Some(open) = limit.open(&session) else {
        let message = format!("this session holds {} open streams here, the most allowed; close one first", limit.max);
        return crate::guard::over_limit(&message);
    };
    let response = next.run(request).await;
    if !crate::transport::is_event_stream(response.headers()) {
        return response;
    }
    // The place is held until the stream's body is dropped: finished, or its client gone.
    let (parts, body) = response.into_parts();
    let body = Body::from_stream(body.into_data_stream().map(move |chunk| {
        let _held = &open;
        chunk
    }));
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_held_while_open_and_freed_when_dropped() {
        let limit = StreamLimit::new(2);
        let first = limit.open("s").unwrap();
        let _second = limit.open("s").unwrap();
        assert!(limit.open("s").is_none(), "two open: full");
        assert!(limit.open("t").is_some(), "another session has its own count");
        drop(first);
        assert_eq!(limit.count("s"), 1);
        assert!(limit.open("s").is_some());
    }
}
