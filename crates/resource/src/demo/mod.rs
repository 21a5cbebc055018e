//! The demo MCP server served when no upstream is configured: the MCP Feature Reference
//! Server's tools (`tools`), resources and prompts, combined here with the official
//! conformance suite's fixtures (`fixtures`).

// Sampling, logging and resource subscriptions are deprecated for the 2026-07-28 revision but
// are part of the feature set for every earlier revision this server speaks.
#![allow(deprecated)]

mod bounds;
mod fixtures;
mod media;
mod prompts;
mod resources;
mod tools;
mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ports::{McpSessionStore, UpstreamAccount};
use crate::transport::{Copies, RequestStreams, SESSION_HEADER, ServerContext};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, CompletionInfo, CustomRequest, CustomResult, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, LoggingLevel,
    LoggingMessageNotificationParam, Notification, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Reference, ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, ServerJsonRpcMessage,
    ServerNotification, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};
use tokio::task::JoinHandle;

/// Settings that shape the demo server's behaviour.
#[derive(Clone)]
pub struct McpSettings {
    /// How often a subscribed resource reports `notifications/resources/updated`.
    pub resource_update_interval: Duration,
    /// The callers' accounts at the upstream identity provider, when users sign in there:
    /// adds the `upstream_userinfo` tool and the upstream identity to `whoami`.
    pub upstream: Option<Arc<dyn UpstreamAccount>>,
    /// Whether the conformance suite's fixtures (`test_*` tools and prompts, the
    /// `test://static-*` resources) are served; `MCP_DEMO_FIXTURES=false` hides them.
    pub fixtures: bool,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self { resource_update_interval: Duration::from_secs(10), upstream: None, fixtures: true }
    }
}

/// What this instance's copy of a session runs: rmcp creates one server per session copy.
/// What every copy must agree on (log level, subscriptions) lives in the session store.
#[derive(Default)]
struct SessionState {
    /// For sessionless (2026-07-28) requests, which have no shared session to keep it in.
    log_level: Mutex<Option<LoggingLevel>>,
    subscriptions: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Drop for SessionState {
    fn drop(&mut self) {
        let subscriptions = self.subscriptions.get_mut().unwrap_or_else(|p| p.into_inner());
        for (_, task) in subscriptions.drain() {
            task.abort();
        }
    }
}

#[derive(Clone)]
pub struct McpServer {
    tool_router: Arc<ToolRouter<Self>>,
    settings: Arc<McpSettings>,
    streams: Arc<RequestStreams>,
    sessions: Arc<dyn McpSessionStore>,
    copies: Arc<Copies>,
    state: Arc<SessionState>,
}

/// The MCP session a request belongs to, if any.
fn session_of(context: &RequestContext<RoleServer>) -> Option<String> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.headers.get(SESSION_HEADER))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn storage_error(error: mcp_oauth_domain::StorageError) -> ErrorData {
    ErrorData::internal_error(format!("session storage: {error}"), None)
}

/// Client-to-server request methods of the MCP revisions this server speaks.
const STANDARD_METHODS: [&str; 15] = [
    "initialize",
    "ping",
    "completion/complete",
    "logging/setLevel",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "tools/call",
    "tools/list",
    "server/discover",
    "subscriptions/listen",
];

fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

impl McpServer {
    /// What makes each session copy's server. The tools are built once and shared: rmcp makes
    /// a server per session, and a router of its own per session was kilobytes a session.
    pub fn per_session(settings: Arc<McpSettings>) -> impl Fn(&ServerContext) -> Self + Send + Sync + 'static {
        let mut tool_router = Self::reference_tools();
        if settings.fixtures {
            tool_router += Self::fixture_tools();
        }
        if settings.upstream.is_some() {
            tool_router += Self::upstream_tools();
        }
        let tool_router = Arc::new(tool_router);
        move |context| Self {
            tool_router: tool_router.clone(),
            settings: settings.clone(),
            streams: context.streams.clone(),
            sessions: context.sessions.clone(),
            copies: context.copies.clone(),
            state: Arc::default(),
        }
    }

    async fn minimum_level(&self, session: Option<&str>) -> Option<LoggingLevel> {
        match session {
            Some(session) => {
                let stored = self.sessions.log_level(session).await.ok().flatten()?;
                serde_json::from_value(serde_json::Value::String(stored)).ok()
            }
            None => *self.state.log_level.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Sends a log notification about the request in `context`, on that request's own
    /// response stream where it has one, unless the client asked for a higher minimum level.
    pub(super) async fn log(&self, context: &RequestContext<RoleServer>, level: LoggingLevel, message: &str) {
        let session = session_of(context);
        let minimum = self.minimum_level(session.as_deref()).await;
        if minimum.is_some_and(|min| severity(level) < severity(min)) {
            return;
        }
        let param = LoggingMessageNotificationParam::new(level, serde_json::json!(message)).with_logger("mcp-oauth-server");
        if let Some(session) = session.as_deref() {
            let notification = ServerJsonRpcMessage::notification(ServerNotification::LoggingMessageNotification(
                Notification::new(param.clone()),
            ));
            if self.streams.send(session, &context.id, notification) {
                return;
            }
        }
        let _ = context.peer.notify_logging_message(param).await;
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_prompts()
            .enable_logging()
            .enable_completions()
            .build();
        let mut info = ServerConfig::new(capabilities);
        info.server_info = Implementation::new("mcp-oauth-server", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "A reference MCP server behind OAuth 2.1: tools, resources, prompts, completion, logging, \
             subscriptions, sampling and elicitation."
                .into(),
        );
        info
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let offset = match request.and_then(|r| r.cursor) {
            Some(cursor) => resources::decode_cursor(&cursor)?,
            None => 0,
        };
        let all: Vec<_> =
            resources::catalogue().into_iter().filter(|r| self.settings.fixtures || !resources::is_fixture(&r.uri)).collect();
        let end = (offset + resources::PAGE_SIZE).min(all.len());
        let page = all[offset..end].to_vec();
        let next = (end < all.len()).then(|| resources::encode_cursor(end));
        let mut result = ListResourcesResult::with_all_items(page);
        result.next_cursor = next;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(resources::templates()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if !self.settings.fixtures && resources::is_fixture(&request.uri) {
            return Err(ErrorData::resource_not_found(format!("unknown resource: {}", request.uri), None));
        }
        Ok(ReadResourceResult::new(vec![resources::read(&request.uri)?]).into())
    }

    /// The subscription is recorded in the session store, so any instance can end it; the
    /// updater runs here and stops when the store no longer lists it. While it runs, this
    /// instance keeps the session's copy, which the updater's notifications leave from.
    async fn subscribe(&self, request: SubscribeRequestParams, context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        resources::read(&request.uri)?;
        let session = session_of(&context).ok_or_else(|| ErrorData::invalid_request("subscriptions need a session", None))?;
        self.sessions.set_subscribed(&session, &request.uri, true).await.map_err(storage_error)?;
        let (peer, uri, period, sessions) =
            (context.peer.clone(), request.uri.clone(), self.settings.resource_update_interval, self.sessions.clone());
        let in_use = self.copies.in_use(&session);
        let task = tokio::spawn(async move {
            let _in_use = in_use;
            let mut ticks = tokio::time::interval(period);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match sessions.is_subscribed(&session, &uri).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    // An outage pauses updates; it does not end the subscription.
                    Err(_) => continue,
                }
                if peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri.clone())).await.is_err() {
                    break;
                }
            }
        });
        let mut subscriptions = self.state.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(previous) = subscriptions.insert(request.uri, task) {
            previous.abort();
        }
        Ok(())
    }

    async fn unsubscribe(&self, request: UnsubscribeRequestParams, context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        if let Some(session) = session_of(&context) {
            self.sessions.set_subscribed(&session, &request.uri, false).await.map_err(storage_error)?;
        }
        let mut subscriptions = self.state.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = subscriptions.remove(&request.uri) {
            task.abort();
        }
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let listed = prompts::list().into_iter().filter(|p| self.settings.fixtures || !prompts::is_fixture(&p.name)).collect();
        Ok(ListPromptsResult::with_all_items(listed))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if !self.settings.fixtures && prompts::is_fixture(&request.name) {
            return Err(ErrorData::invalid_params(format!("unknown prompt: {}", request.name), None));
        }
        Ok(prompts::get(&request.name, request.arguments.as_ref())?.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let (argument, prefix) = (request.argument.name.as_str(), request.argument.value.as_str());
        let values = match &request.r#ref {
            Reference::Prompt(prompt) => prompts::complete_prompt_argument(&prompt.name, argument, prefix),
            // Resource templates and any future reference kinds complete by argument name.
            _ => prompts::complete_prompt_argument("", argument, prefix),
        };
        let total = values.len() as u32;
        let shown: Vec<String> = values.into_iter().take(CompletionInfo::MAX_VALUES).collect();
        let has_more = (shown.len() as u32) < total;
        let info =
            CompletionInfo::with_pagination(shown, Some(total), has_more).map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
    }

    /// rmcp hands over a request of a method it knows when its params do not decode; that is
    /// invalid params (-32602), not an unknown method.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if STANDARD_METHODS.contains(&request.method.as_str()) {
            Err(ErrorData::invalid_params(format!("invalid params for {}", request.method), None))
        } else {
            Err(ErrorData::new(rmcp::model::ErrorCode::METHOD_NOT_FOUND, format!("method not found: {}", request.method), None))
        }
    }

    async fn set_level(&self, request: SetLevelRequestParams, context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        match session_of(&context) {
            Some(session) => {
                let level =
                    serde_json::to_value(request.level).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                self.sessions.set_log_level(&session, &level).await.map_err(storage_error)?;
            }
            None => *self.state.log_level.lock().unwrap_or_else(|p| p.into_inner()) = Some(request.level),
        }
        self.log(&context, LoggingLevel::Debug, &format!("Logging level set to: {:?}", request.level)).await;
        Ok(())
    }
}
