//! The official conformance suite's tool fixtures (`test_*`), beside the reference tools.

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, LoggingLevel, ResourceContents};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde_json::{Value, json};

use super::McpServer;
use super::media::{TINY_PNG, TINY_WAV};
use super::tools::{MessageArgs, PromptArgs, elicitation_summary, failure, text};

fn json_schema_2020_12() -> Arc<JsonObject> {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": { "name": { "type": "string" }, "address": { "$ref": "#/$defs/address" } },
        "additionalProperties": false
    });
    Arc::new(schema.as_object().cloned().unwrap_or_default())
}

#[tool_router(router = fixture_tools, vis = "pub(super)")]
impl McpServer {
    #[tool(description = "Returns simple text content")]
    async fn test_simple_text(&self) -> CallToolResult {
        CallToolResult::success(vec![text("This is a simple text response for testing.")])
    }

    #[tool(description = "Returns image content")]
    async fn test_image_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::image(TINY_PNG, "image/png")])
    }

    #[tool(description = "Returns audio content")]
    async fn test_audio_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::audio(TINY_WAV, "audio/wav")])
    }

    #[tool(description = "Returns an embedded resource")]
    async fn test_embedded_resource(&self) -> CallToolResult {
        let contents = ResourceContents::text("This is an embedded resource content.", "test://embedded-resource");
        CallToolResult::success(vec![ContentBlock::resource(contents)])
    }

    #[tool(description = "Returns text, image and resource content together")]
    async fn test_multiple_content_types(&self) -> CallToolResult {
        let resource =
            ResourceContents::text(json!({ "test": "data", "value": 123 }).to_string(), "test://mixed-content-resource")
                .with_mime_type("application/json");
        CallToolResult::success(vec![
            text("Multiple content types test:"),
            ContentBlock::image(TINY_PNG, "image/png"),
            ContentBlock::resource(resource),
        ])
    }

    #[tool(description = "Sends log notifications while it runs")]
    async fn test_tool_with_logging(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        self.log(&context, LoggingLevel::Info, "Tool execution started").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.log(&context, LoggingLevel::Info, "Tool processing data").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.log(&context, LoggingLevel::Info, "Tool execution completed").await;
        CallToolResult::success(vec![text("Tool with logging executed successfully")])
    }

    #[tool(description = "Reports progress while it runs")]
    async fn test_tool_with_progress(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.progress(&context, progress, 100.0, None).await;
        }
        CallToolResult::success(vec![text("Tool with progress executed successfully")])
    }

    #[tool(description = "Always fails, as a tool error")]
    async fn test_error_handling(&self) -> CallToolResult {
        failure("This tool intentionally returns an error for testing")
    }

    #[tool(description = "Asks the client's LLM to answer a prompt")]
    async fn test_sampling(
        &self,
        Parameters(args): Parameters<PromptArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        match self.sample(&context, args.prompt, 100).await {
            Ok(answer) => CallToolResult::success(vec![text(format!("LLM response: {answer}"))]),
            Err(e) => failure(e),
        }
    }

    #[tool(description = "Asks the user for input")]
    async fn test_elicitation(
        &self,
        Parameters(args): Parameters<MessageArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let schema = json!({
            "type": "object",
            "properties": {
                "username": { "type": "string", "description": "User's response" },
                "email": { "type": "string", "description": "User's email address" }
            },
            "required": ["username", "email"]
        });
        match self.elicit(&context, &args.message, schema).await {
            Ok(result) => {
                let value = serde_json::to_value(&result).unwrap_or(Value::Null);
                CallToolResult::success(vec![text(format!("User response: {value}"))])
            }
            Err(e) => failure(e),
        }
    }

    #[tool(description = "Elicits input with a default for every primitive type (SEP-1034)")]
    async fn test_elicitation_sep1034_defaults(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "default": "John Doe" },
                "age": { "type": "integer", "default": 30 },
                "score": { "type": "number", "default": 95.5 },
                "status": { "type": "string", "enum": ["active", "inactive", "pending"], "default": "active" },
                "verified": { "type": "boolean", "default": true }
            }
        });
        match self.elicit(&context, "Please review and update the form fields with defaults", schema).await {
            Ok(result) => CallToolResult::success(vec![text(elicitation_summary("Elicitation completed: ", &result))]),
            Err(e) => failure(e),
        }
    }

    #[tool(description = "Elicits input with every enum variant (SEP-1330)")]
    async fn test_elicitation_sep1330_enums(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let schema = json!({
            "type": "object",
            "properties": {
                "untitledSingle": { "type": "string", "enum": ["option1", "option2", "option3"] },
                "titledSingle": { "type": "string", "oneOf": [
                    { "const": "value1", "title": "First Option" },
                    { "const": "value2", "title": "Second Option" },
                    { "const": "value3", "title": "Third Option" }
                ] },
                "legacyEnum": { "type": "string", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"] },
                "untitledMulti": { "type": "array", "items": { "type": "string", "enum": ["option1", "option2", "option3"] } },
                "titledMulti": { "type": "array", "items": { "anyOf": [
                    { "const": "value1", "title": "First Choice" },
                    { "const": "value2", "title": "Second Choice" },
                    { "const": "value3", "title": "Third Choice" }
                ] } }
            }
        });
        match self.elicit(&context, "Please select options from the enum fields", schema).await {
            Ok(result) => CallToolResult::success(vec![text(elicitation_summary("Elicitation completed: ", &result))]),
            Err(e) => failure(e),
        }
    }

    #[tool(description = "Tool with JSON Schema 2020-12 features", input_schema = json_schema_2020_12())]
    async fn json_schema_2020_12_tool(&self) -> CallToolResult {
        CallToolResult::success(vec![text("JSON Schema 2020-12 tool executed")])
    }
}
