//! MCP over loopback for tests: rmcp's own client, and raw JSON-RPC over HTTP for what a
//! well-behaved client never sends.

// Sampling and logging are deprecated only for the 2026-07-28 revision; these tests speak the
// earlier ones.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};

use rmcp::model::{
    ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult,
    Implementation, LoggingMessageNotificationParam, ProgressNotificationParam, ResourceUpdatedNotificationParam,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};

/// What the test client saw the server send it.
#[derive(Default, Debug)]
pub struct Seen {
    pub progress: Vec<ProgressNotificationParam>,
    pub logs: Vec<LoggingMessageNotificationParam>,
    pub updated: Vec<String>,
    pub sampling_prompts: Vec<String>,
    pub elicitations: Vec<Value>,
}

/// A client that answers sampling with a canned completion and accepts every elicitation with
/// the schema's defaults.
#[derive(Clone, Default)]
pub struct TestClientHandler {
    pub seen: Arc<Mutex<Seen>>,
}

#[allow(deprecated)]
impl ClientHandler for TestClientHandler {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let prompt = serde_json::to_value(&params.messages).unwrap_or_default()[0]["content"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.seen.lock().unwrap().sampling_prompts.push(prompt.clone());
        let answer = json!({
            "model": "test-model", "stopReason": "endTurn", "role": "assistant",
            "content": { "type": "text", "text": format!("canned answer to: {prompt}") }
        });
        serde_json::from_value(answer).map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let request = serde_json::to_value(&request).unwrap_or_default();
        let mut content = serde_json::Map::new();
        for (name, schema) in request["requestedSchema"]["properties"].as_object().into_iter().flatten() {
            let value = schema.get("default").cloned().unwrap_or_else(|| json!(format!("{name}-answer")));
            content.insert(name.clone(), value);
        }
        self.seen.lock().unwrap().elicitations.push(request);
        serde_json::from_value(json!({ "action": "accept", "content": content }))
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.seen.lock().unwrap().progress.push(params);
    }

    async fn on_logging_message(&self, params: LoggingMessageNotificationParam, _context: NotificationContext<RoleClient>) {
        self.seen.lock().unwrap().logs.push(params);
    }

    async fn on_resource_updated(&self, params: ResourceUpdatedNotificationParam, _context: NotificationContext<RoleClient>) {
        self.seen.lock().unwrap().updated.push(params.uri);
    }

    fn get_info(&self) -> ClientConfig {
        let capabilities = ClientCapabilities::builder().enable_sampling().enable_elicitation().build();
        ClientConfig::new(capabilities, Implementation::new("mcp-oauth-tests", "1.0.0"))
    }
}

/// Connects rmcp's streamable HTTP client to `url` with `token`.
pub async fn connect(url: &str, token: &str, handler: TestClientHandler) -> RunningService<RoleClient, TestClientHandler> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    let transport = StreamableHttpClientTransport::with_client(crate::http::http_client(), config);
    handler.serve(transport).await.expect("the MCP client connects")
}

/// The JSON-RPC messages in a response body, whether it is SSE or plain JSON.
pub fn messages(body: &str) -> Vec<Value> {
    if body.trim_start().starts_with('{') || body.trim_start().starts_with('[') {
        return serde_json::from_str(body).map(|v| vec![v]).unwrap_or_default();
    }
    body.lines().filter_map(|line| line.strip_prefix("data:")).filter_map(|data| serde_json::from_str(data.trim()).ok()).collect()
}

/// Raw JSON-RPC over HTTP to `/mcp`, for the requests a well-behaved client never sends.
pub struct RawSession {
    pub url: String,
    pub token: String,
    pub id: Option<String>,
    pub http: reqwest::Client,
}

impl RawSession {
    /// Initializes a session (2025-06-18) and sends `notifications/initialized`.
    pub async fn open(url: &str, token: &str) -> Self {
        Self::open_with(url, token, json!({})).await
    }

    /// Initializes a session declaring the given client capabilities.
    pub async fn open_with(url: &str, token: &str, capabilities: Value) -> Self {
        let mut session = Self { url: url.to_owned(), token: token.to_owned(), id: None, http: crate::http::http_client() };
        let response = session
            .post_json(json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": { "protocolVersion": "2025-06-18", "capabilities": capabilities, "clientInfo": { "name": "raw", "version": "1" } }
            }))
            .await;
        assert_eq!(response.status(), 200);
        session.id = response.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
        assert!(session.id.is_some(), "initialize issues a session id");
        response.text().await.unwrap();
        let initialized = session.post_json(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;
        assert_eq!(initialized.status(), 202);
        session
    }

    pub fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, &self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(id) = &self.id {
            request = request.header("mcp-session-id", id);
        }
        request
    }

    pub async fn post_json(&self, body: Value) -> reqwest::Response {
        self.post_raw(body.to_string()).await
    }

    pub async fn post_raw(&self, body: String) -> reqwest::Response {
        self.request(reqwest::Method::POST).header("content-type", "application/json").body(body).send().await.unwrap()
    }

    /// The same session through another instance.
    pub fn via(&self, url: &str) -> Self {
        Self { url: url.to_owned(), token: self.token.clone(), id: self.id.clone(), http: crate::http::http_client() }
    }

    /// Sends a request and returns the status and every JSON-RPC message of the answer.
    pub async fn call(&self, body: Value) -> (u16, Vec<Value>) {
        let response = self.post_json(body).await;
        let status = response.status().as_u16();
        (status, messages(&response.text().await.unwrap()))
    }
}

/// A response body read as SSE, one JSON-RPC message at a time, as it arrives.
pub struct EventStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl EventStream {
    pub fn new(response: reqwest::Response) -> Self {
        Self { body: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next JSON-RPC message, or None when the stream ends or `within` passes.
    pub async fn next_message(&mut self, within: std::time::Duration) -> Option<Value> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: String = event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
                if let Ok(message) = serde_json::from_str(&data) {
                    return Some(message);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()??.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }
}
