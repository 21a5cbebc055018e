//! Response streams of requests in flight, and the stream each POST answer is sent on.

use std::pin::Pin;
use std::task::{Context, Poll};

use dashmap::DashMap;
use futures::Stream;
use rmcp::model::{RequestId, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use tokio::sync::mpsc;

/// Response streams of requests in flight, by session and JSON-RPC request id. rmcp routes
/// progress and server-to-client requests to the originating request's stream itself; other
/// notifications about a request (its log messages) are delivered through here.
#[derive(Default)]
pub struct RequestStreams {
    pub(super) open: DashMap<(String, String), mpsc::UnboundedSender<ServerJsonRpcMessage>>,
}

pub(super) fn request_key(session: &str, request: &RequestId) -> (String, String) {
    (session.to_owned(), request.to_string())
}

impl RequestStreams {
    /// Sends `message` on the response stream of `request`; false if that stream is gone.
    pub fn send(&self, session: &str, request: &RequestId, message: ServerJsonRpcMessage) -> bool {
        self.open.get(&request_key(session, request)).is_some_and(|sender| sender.send(message).is_ok())
    }
}

/// A response stream: messages queued on `side` go out before whatever rmcp sends after them,
/// and are flushed before the stream ends with rmcp's.
pub(super) struct MergedStream {
    inner: Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>>,
    side: mpsc::UnboundedReceiver<ServerJsonRpcMessage>,
    /// An rmcp message held back while queued messages go first.
    held: Option<ServerSseMessage>,
    inner_done: bool,
    /// Called once, when the stream ends or is dropped, with whether rmcp's stream completed.
    on_end: Option<OnEnd>,
}

pub(super) type OnEnd = Box<dyn FnOnce(bool) + Send + Sync>;

impl MergedStream {
    pub(super) fn new(
        inner: impl Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        side: mpsc::UnboundedReceiver<ServerJsonRpcMessage>,
        on_end: Option<OnEnd>,
    ) -> Self {
        Self { inner: Box::pin(inner), side, held: None, inner_done: false, on_end }
    }

    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.inner_done);
        }
    }
}

impl Stream for MergedStream {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(Some(message)) = self.side.poll_recv(cx) {
            return Poll::Ready(Some(ServerSseMessage::from_message(message)));
        }
        if let Some(item) = self.held.take() {
            return Poll::Ready(Some(item));
        }
        if !self.inner_done {
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    return Poll::Ready(Some(match self.side.try_recv() {
                        Ok(queued) => {
                            self.held = Some(item);
                            ServerSseMessage::from_message(queued)
                        }
                        Err(_) => item,
                    }));
                }
                Poll::Ready(None) => self.inner_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match self.side.try_recv() {
            Ok(message) => Poll::Ready(Some(ServerSseMessage::from_message(message))),
            Err(_) => {
                self.finish();
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for MergedStream {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::StreamExt;

    use super::*;

    fn message(id: i64) -> ServerJsonRpcMessage {
        serde_json::from_value(serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": {} })).unwrap()
    }

    fn id_of(item: &ServerSseMessage) -> i64 {
        serde_json::to_value(item.message.as_deref().unwrap()).unwrap()["id"].as_i64().unwrap()
    }

    fn recorder() -> (Arc<Mutex<Vec<bool>>>, OnEnd) {
        let ends = Arc::new(Mutex::new(Vec::new()));
        let seen = ends.clone();
        (ends, Box::new(move |completed| seen.lock().unwrap().push(completed)))
    }

    #[tokio::test]
    async fn queued_messages_go_before_rmcps_and_are_flushed_before_the_end() {
        let (side, receiver) = mpsc::unbounded_channel();
        side.send(message(1)).unwrap();
        let inner = futures::stream::iter([ServerSseMessage::from_message(message(2))]);
        let (ends, on_end) = recorder();
        let mut merged = MergedStream::new(inner, receiver, Some(on_end));
        assert_eq!(id_of(&merged.next().await.unwrap()), 1, "the queued log message first");
        side.send(message(3)).unwrap();
        assert_eq!(id_of(&merged.next().await.unwrap()), 3, "queued before rmcp's next item: still first");
        assert_eq!(id_of(&merged.next().await.unwrap()), 2);
        side.send(message(4)).unwrap();
        drop(side);
        assert_eq!(id_of(&merged.next().await.unwrap()), 4, "queued after rmcp's last item: flushed before the end");
        assert!(merged.next().await.is_none());
        assert_eq!(*ends.lock().unwrap(), [true], "ended once, complete");
        drop(merged);
        assert_eq!(ends.lock().unwrap().len(), 1, "dropping an ended stream does not end it again");
    }

    #[tokio::test]
    async fn a_stream_dropped_before_its_answer_reports_it_incomplete() {
        let (_side, receiver) = mpsc::unbounded_channel();
        let inner = futures::stream::pending::<ServerSseMessage>();
        let (ends, on_end) = recorder();
        drop(MergedStream::new(inner, receiver, Some(on_end)));
        assert_eq!(*ends.lock().unwrap(), [false]);
    }

    #[test]
    fn a_request_stream_is_found_by_session_and_request_id() {
        let streams = RequestStreams::default();
        let (sender, mut receiver) = mpsc::unbounded_channel();
        streams.open.insert(request_key("s1", &RequestId::Number(5)), sender);
        assert!(streams.send("s1", &RequestId::Number(5), message(9)));
        assert!(receiver.try_recv().is_ok());
        assert!(!streams.send("s2", &RequestId::Number(5), message(9)), "another session's request");
        drop(receiver);
        assert!(!streams.send("s1", &RequestId::Number(5), message(9)), "a closed stream reports false");
    }
}
