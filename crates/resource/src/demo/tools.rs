//! The reference server's tools, and `whoami`.

use std::time::Duration;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    Annotations, CallToolResult, ContentBlock, CreateMessageRequestParams, ElicitRequestParams, ElicitResult,
    ProgressNotificationParam, Role,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, schemars, tool, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::McpServer;
use super::bounds::{Bounded, Seconds};
use super::media::TINY_PNG;
use super::resources::{RESOURCE_COUNT, static_contents, static_uri};
use crate::caller::Caller;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Message to echo
    pub message: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AddArgs {
    /// First number
    pub a: f64,
    /// Second number
    pub b: f64,
}

fn default_duration() -> Seconds<600> {
    Seconds(10.0)
}
fn default_steps() -> Bounded<1, 1000> {
    Bounded(5)
}
fn default_max_tokens() -> u32 {
    100
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LongRunningArgs {
    /// Duration of the operation in seconds
    #[serde(default = "default_duration")]
    pub duration: Seconds<600>,
    /// Number of steps in the operation
    #[serde(default = "default_steps")]
    pub steps: Bounded<1, 1000>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SampleArgs {
    /// The prompt to send to the LLM
    pub prompt: String,
    /// Maximum number of tokens to generate
    #[serde(default = "default_max_tokens", rename = "maxTokens")]
    pub max_tokens: u32,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Error,
    Success,
    Debug,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AnnotatedArgs {
    /// Type of message to demonstrate different annotation patterns
    #[serde(rename = "messageType")]
    pub message_type: MessageType,
    /// Whether to include an example image
    #[serde(default, rename = "includeImage")]
    pub include_image: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ResourceReferenceArgs {
    /// ID of the resource to reference (1-100)
    #[serde(rename = "resourceId")]
    pub resource_id: Bounded<1, RESOURCE_COUNT>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PromptArgs {
    /// The prompt to send to the LLM
    pub prompt: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct MessageArgs {
    /// The message to show the user
    pub message: String,
}

pub(super) fn text(value: impl Into<String>) -> ContentBlock {
    ContentBlock::text(value)
}

fn annotated(content: ContentBlock, priority: f32, audience: Vec<Role>) -> ContentBlock {
    let annotations = Annotations::default().with_priority(priority).with_audience(audience);
    match content {
        ContentBlock::Text(t) => ContentBlock::Text(t.with_annotations(annotations)),
        ContentBlock::Image(i) => ContentBlock::Image(i.with_annotations(annotations)),
        other => other,
    }
}

/// A tool's own failure, shown to the user as an `isError` result.
pub(super) fn failure(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![text(message)])
}

impl McpServer {
    pub(super) async fn progress(
        &self,
        context: &RequestContext<RoleServer>,
        progress: f64,
        total: f64,
        message: Option<String>,
    ) {
        if let Some(token) = context.meta.get_progress_token() {
            let mut param = ProgressNotificationParam::new(token, progress).with_total(total);
            if let Some(message) = message {
                param = param.with_message(message);
            }
            let _ = context.peer.notify_progress(param).await;
        }
    }

    pub(super) async fn sample(
        &self,
        context: &RequestContext<RoleServer>,
        prompt: String,
        max_tokens: u32,
    ) -> Result<String, String> {
        if context.peer.peer_info().is_none_or(|i| i.capabilities.sampling.is_none()) {
            return Err("the client does not support sampling".into());
        }
        let params: CreateMessageRequestParams = serde_json::from_value(json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": max_tokens,
            "systemPrompt": "You are a helpful test server.",
            "temperature": 0.7,
        }))
        .map_err(|e| e.to_string())?;
        let result = context.peer.create_message(params).await.map_err(|e| format!("sampling failed: {e}"))?;
        let answer = serde_json::to_value(&result.message.content).unwrap_or(Value::Null);
        Ok(answer.get("text").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| answer.to_string()))
    }

    pub(super) async fn elicit(
        &self,
        context: &RequestContext<RoleServer>,
        message: &str,
        schema: Value,
    ) -> Result<ElicitResult, String> {
        if context.peer.peer_info().is_none_or(|i| i.capabilities.elicitation.is_none()) {
            return Err("the client does not support elicitation".into());
        }
        let params: ElicitRequestParams =
            serde_json::from_value(json!({ "mode": "form", "message": message, "requestedSchema": schema }))
                .map_err(|e| format!("invalid elicitation schema: {e}"))?;
        context.peer.create_elicitation(params).await.map_err(|e| format!("elicitation failed: {e}"))
    }
}

pub(super) fn elicitation_summary(prefix: &str, result: &ElicitResult) -> String {
    let value = serde_json::to_value(result).unwrap_or(Value::Null);
    let action = value.get("action").and_then(Value::as_str).unwrap_or("unknown");
    let content = value.get("content").cloned().unwrap_or(Value::Null);
    format!("{prefix}action={action}, content={content}")
}

#[tool_router(router = reference_tools, vis = "pub(super)")]
impl McpServer {
    #[tool(description = "Echoes back the input")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        CallToolResult::success(vec![text(format!("Echo: {}", args.message))])
    }

    #[tool(description = "Adds two numbers")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> CallToolResult {
        CallToolResult::success(vec![text(format!("The sum of {a} and {b} is {}.", a + b))])
    }

    #[tool(name = "longRunningOperation", description = "Demonstrates a long running operation with progress updates")]
    async fn long_running_operation(
        &self,
        Parameters(args): Parameters<LongRunningArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let (Seconds(duration), Bounded(steps)) = (args.duration, args.steps);
        let step = Duration::from_secs_f64(duration / f64::from(steps));
        for i in 1..=steps {
            tokio::select! {
                () = tokio::time::sleep(step) => {}
                () = context.ct.cancelled() => {
                    tracing::info!(steps_done = i - 1, steps, "longRunningOperation stopped: its request was cancelled");
                    return failure("cancelled");
                }
            }
            self.progress(&context, f64::from(i), f64::from(steps), None).await;
        }
        CallToolResult::success(vec![text(format!(
            "Long running operation completed. Duration: {duration} seconds, Steps: {steps}."
        ))])
    }

    #[tool(name = "sampleLLM", description = "Samples from an LLM using MCP's sampling feature")]
    async fn sample_llm(&self, Parameters(args): Parameters<SampleArgs>, context: RequestContext<RoleServer>) -> CallToolResult {
        let prompt = format!("Resource sampleLLM context: {}", args.prompt);
        match self.sample(&context, prompt, args.max_tokens).await {
            Ok(answer) => CallToolResult::success(vec![text(format!("LLM sampling result: {answer}"))]),
            Err(e) => failure(e),
        }
    }

    #[tool(name = "getTinyImage", description = "Returns the MCP_TINY_IMAGE")]
    async fn get_tiny_image(&self) -> CallToolResult {
        CallToolResult::success(vec![
            text("This is a tiny image:"),
            ContentBlock::image(TINY_PNG, "image/png"),
            text("The image above is the MCP tiny image."),
        ])
    }

    #[tool(name = "annotatedMessage", description = "Demonstrates how annotations can be used to provide metadata about content")]
    async fn annotated_message(&self, Parameters(args): Parameters<AnnotatedArgs>) -> CallToolResult {
        let mut content = vec![match args.message_type {
            MessageType::Error => annotated(text("Error: Operation failed"), 1.0, vec![Role::User, Role::Assistant]),
            MessageType::Success => annotated(text("Operation completed successfully"), 0.7, vec![Role::User]),
            MessageType::Debug => annotated(text("Debug: Cache hit ratio 0.95, latency 150ms"), 0.3, vec![Role::Assistant]),
        }];
        if args.include_image {
            content.push(annotated(ContentBlock::image(TINY_PNG, "image/png"), 0.5, vec![Role::User]));
        }
        CallToolResult::success(content)
    }

    #[tool(name = "getResourceReference", description = "Returns a resource reference that can be used by MCP clients")]
    async fn get_resource_reference(&self, Parameters(args): Parameters<ResourceReferenceArgs>) -> CallToolResult {
        let Bounded(id) = args.resource_id;
        CallToolResult::success(vec![
            text(format!("Returning resource reference for Resource {id}:")),
            ContentBlock::resource(static_contents(id)),
            text(format!("You can access this resource using the URI: {}", static_uri(id))),
        ])
    }

    #[tool(name = "elicitInputs", description = "Elicits several kinds of input from the user, with defaults")]
    async fn elicit_inputs(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "title": "Full name", "description": "Your full name", "default": "Ada Lovelace" },
                "check": { "type": "boolean", "title": "Agree", "description": "Do you agree?", "default": true },
                "email": { "type": "string", "format": "email", "title": "Email", "description": "Your email address", "default": "ada@example.com" },
                "homepage": { "type": "string", "format": "uri", "title": "Homepage", "description": "Your homepage", "default": "https://example.com" },
                "birthdate": { "type": "string", "format": "date", "title": "Birthdate", "description": "Your birthdate", "default": "1815-12-10" },
                "integer": { "type": "integer", "title": "Favourite integer", "minimum": 1, "maximum": 100, "default": 42 },
                "number": { "type": "number", "title": "Favourite number", "minimum": 0, "maximum": 1000, "default": 2.5 },
                "color": { "type": "string", "title": "Favourite colour", "enum": ["red", "green", "blue"], "default": "blue" },
                "size": { "type": "string", "title": "Size", "oneOf": [
                    { "const": "s", "title": "Small" }, { "const": "m", "title": "Medium" }, { "const": "l", "title": "Large" }
                ], "default": "m" }
            },
            "required": ["name"]
        });
        match self.elicit(&context, "Please provide inputs for the following fields:", schema).await {
            Ok(result) => CallToolResult::success(vec![text(elicitation_summary("Elicitation result: ", &result))]),
            Err(e) => failure(e),
        }
    }

    #[tool(description = "Returns who is calling: the subject, client, scopes and audience of the bearer token")]
    async fn whoami(&self, Caller(token): Caller) -> Result<CallToolResult, ErrorData> {
        let mut body = json!({
            "sub": token.subject,
            "client_id": token.client_id,
            "scope": token.scope.to_string(),
            "aud": token.audience,
            "exp": token.expires_at.timestamp(),
        });
        if let (Some(upstream), Some(family)) = (&self.settings.upstream, &token.family)
            && let Ok(identity) = upstream.identity(family).await
        {
            body["upstream"] = identity;
        }
        Ok(CallToolResult::success(vec![text(body.to_string())]))
    }
}
