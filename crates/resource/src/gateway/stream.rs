//! Bounds on what the upstream sends back: a JSON answer is read whole (up to the limit) and
//! must be JSON; an SSE stream passes through as it arrives, and ends when one event grows
//! past the limit.

use bytes::Bytes;
use futures::{Stream, StreamExt};

pub async fn bounded_json(answer: reqwest::Response, limit: usize) -> Result<Bytes, &'static str> {
    let mut body = Vec::new();
    let mut chunks = answer.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| "the answer broke off")?;
        if body.len() + chunk.len() > limit {
            return Err("the answer is too large");
        }
        body.extend_from_slice(&chunk);
    }
    if !body.is_empty() && serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return Err("the answer is not JSON");
    }
    Ok(body.into())
}

/// Passes an SSE byte stream through, counting the bytes since the last event boundary.
pub fn bounded_events(
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    limit: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut pending = 0usize;
    let mut tail = [0u8; 2];
    upstream
        .map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            for &byte in chunk.iter() {
                pending += 1;
                if byte == b'\n' && (tail[1] == b'\n' || (tail[1] == b'\r' && tail[0] == b'\n')) {
                    pending = 0;
                }
                tail = [tail[1], byte];
            }
            if pending > limit {
                tracing::warn!(limit, "an upstream event exceeded the message limit; the stream ends");
                return Err(std::io::Error::other("upstream event too large"));
            }
            Ok(chunk)
        })
        .take_while(|item| futures::future::ready(item.is_ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_pass_until_one_grows_past_the_limit() {
        let chunks: Vec<reqwest::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"data: {\"a\":1}\n\n")),
            Ok(Bytes::from_static(b"data: {\"b\":2}\n\n")),
            Ok(Bytes::from(format!("data: {}", "x".repeat(100)))),
            Ok(Bytes::from_static(b"data: never\n\n")),
        ];
        let passed: Vec<_> = bounded_events(futures::stream::iter(chunks), 40).collect().await;
        assert_eq!(passed.len(), 2, "the oversized event and what follows are cut off");
    }
}
