//! rmcp's own client exercises every tool, resource and prompt, answering sampling and
//! elicitation itself.

// Logging and subscriptions are deprecated only for the 2026-07-28 revision.
#![allow(deprecated)]

use std::time::Duration;

use mcp_oauth_testkit::mcp::{TestClientHandler, connect};
use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, CompleteRequestParams, GetPromptRequestParams, PaginatedRequestParams,
    ReadResourceRequestParams, Reference, ResourceContents, SubscribeRequestParams, UnsubscribeRequestParams,
};
use serde_json::{Value, json};

use crate::server_and_token;

fn args(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn call(name: &'static str, arguments: Value) -> CallToolRequestParams {
    let params = CallToolRequestParams::new(name);
    if arguments.is_null() { params } else { params.with_arguments(args(arguments)) }
}

fn texts(result: &rmcp::model::CallToolResult) -> Vec<String> {
    result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_answers_including_sampling_and_elicitation() {
    let (server, token) = server_and_token(&[], "alice").await;
    let handler = TestClientHandler::default();
    let client = connect(&server.resource(), &token, handler.clone()).await;
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("mcp-oauth-server"));
    let capabilities = serde_json::to_value(&info.capabilities).unwrap();
    for capability in ["tools", "resources", "prompts", "logging", "completions"] {
        assert!(capabilities.get(capability).is_some(), "{capability} is advertised");
    }
    assert_eq!(capabilities["resources"]["subscribe"], true);

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in [
        "echo",
        "add",
        "longRunningOperation",
        "sampleLLM",
        "getTinyImage",
        "annotatedMessage",
        "getResourceReference",
        "elicitInputs",
        "whoami",
        "test_simple_text",
        "test_image_content",
        "test_audio_content",
        "test_embedded_resource",
        "test_multiple_content_types",
        "test_tool_with_logging",
        "test_tool_with_progress",
        "test_error_handling",
        "test_sampling",
        "test_elicitation",
        "test_elicitation_sep1034_defaults",
        "test_elicitation_sep1330_enums",
        "json_schema_2020_12_tool",
    ] {
        assert!(names.contains(&expected), "{expected} is listed");
    }
    let long = tools.iter().find(|t| t.name == "longRunningOperation").unwrap();
    let required = long.input_schema.get("required").cloned().unwrap_or(json!([]));
    assert_eq!(required, json!([]), "arguments with defaults are optional");

    let echo = client.call_tool(call("echo", json!({"message": "hi"}))).await.unwrap();
    assert_eq!(texts(&echo), ["Echo: hi"]);
    let add = client.call_tool(call("add", json!({"a": 2, "b": 3.5}))).await.unwrap();
    assert_eq!(texts(&add), ["The sum of 2 and 3.5 is 5.5."]);

    let image = client.call_tool(call("getTinyImage", Value::Null)).await.unwrap();
    assert_eq!(image.content.len(), 3);
    assert_eq!(image.content[1].as_image().unwrap().mime_type, "image/png");

    let annotated =
        client.call_tool(call("annotatedMessage", json!({"messageType": "error", "includeImage": true}))).await.unwrap();
    let annotated = serde_json::to_value(&annotated).unwrap();
    assert_eq!(annotated["content"][0]["annotations"]["priority"], 1.0);
    assert_eq!(annotated["content"][0]["annotations"]["audience"], json!(["user", "assistant"]));
    assert_eq!(annotated["content"][1]["type"], "image");

    let reference = client.call_tool(call("getResourceReference", json!({"resourceId": 7}))).await.unwrap();
    let embedded = reference.content[1].as_resource().expect("an embedded resource");
    assert!(
        matches!(&embedded.resource, ResourceContents::TextResourceContents { uri, .. } if uri == "test://static/resource/7")
    );

    let sampled = client.call_tool(call("sampleLLM", json!({"prompt": "why is the sky blue?"}))).await.unwrap();
    assert_eq!(texts(&sampled), ["LLM sampling result: canned answer to: Resource sampleLLM context: why is the sky blue?"]);
    let sampled = client.call_tool(call("test_sampling", json!({"prompt": "hello"}))).await.unwrap();
    assert_eq!(texts(&sampled), ["LLM response: canned answer to: hello"]);

    let elicited = client.call_tool(call("elicitInputs", Value::Null)).await.unwrap();
    assert!(texts(&elicited)[0].contains("action=accept") && texts(&elicited)[0].contains("Ada Lovelace"), "{elicited:?}");
    let elicited = client.call_tool(call("test_elicitation", json!({"message": "who are you?"}))).await.unwrap();
    assert!(texts(&elicited)[0].contains("username-answer"));
    let defaults = client.call_tool(call("test_elicitation_sep1034_defaults", Value::Null)).await.unwrap();
    assert!(texts(&defaults)[0].contains("John Doe"));
    let enums = client.call_tool(call("test_elicitation_sep1330_enums", Value::Null)).await.unwrap();
    assert!(texts(&enums)[0].starts_with("Elicitation completed: action=accept"));
    {
        let seen = handler.seen.lock().unwrap();
        assert_eq!(seen.sampling_prompts.len(), 2);
        let schema = &seen.elicitations[0]["requestedSchema"];
        for field in ["name", "check", "email", "homepage", "birthdate", "integer", "number", "color"] {
            assert!(schema["properties"].get(field).is_some(), "elicitInputs asks for {field}");
        }
        assert_eq!(schema["properties"]["email"]["format"], "email");
        assert_eq!(schema["required"], json!(["name"]));
    }

    for (tool, kind) in [
        ("test_simple_text", "text"),
        ("test_image_content", "image"),
        ("test_audio_content", "audio"),
        ("test_embedded_resource", "resource"),
    ] {
        let result = serde_json::to_value(client.call_tool(call(tool, Value::Null)).await.unwrap()).unwrap();
        assert_eq!(result["content"][0]["type"], kind, "{tool}");
    }
    let mixed = serde_json::to_value(client.call_tool(call("test_multiple_content_types", Value::Null)).await.unwrap()).unwrap();
    assert_eq!(
        mixed["content"].as_array().unwrap().iter().map(|c| c["type"].clone()).collect::<Vec<_>>(),
        [json!("text"), json!("image"), json!("resource")]
    );
    let error = client.call_tool(call("test_error_handling", Value::Null)).await.unwrap();
    assert_eq!(error.is_error, Some(true), "a tool's own failure is an isError result");

    let me = client.call_tool(call("whoami", Value::Null)).await.unwrap();
    let me: Value = serde_json::from_str(&texts(&me)[0]).unwrap();
    assert_eq!((me["sub"].as_str(), me["aud"].clone()), (Some("alice"), json!([server.resource()])));

    let schema_tool = tools.iter().find(|t| t.name == "json_schema_2020_12_tool").unwrap();
    assert_eq!(schema_tool.input_schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_logs_reach_the_client_and_logs_respect_the_level() {
    let (server, token) = server_and_token(&[], "alice").await;
    let handler = TestClientHandler::default();
    let client = connect(&server.resource(), &token, handler.clone()).await;

    let result = client.call_tool(call("longRunningOperation", json!({"duration": 0.3, "steps": 3}))).await.unwrap();
    assert!(texts(&result)[0].starts_with("Long running operation completed"));
    client.call_tool(call("test_tool_with_progress", Value::Null)).await.unwrap();
    client.call_tool(call("test_tool_with_logging", Value::Null)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    {
        let seen = handler.seen.lock().unwrap();
        let progress: Vec<f64> = seen.progress.iter().map(|p| p.progress).collect();
        assert!(progress.starts_with(&[1.0, 2.0, 3.0]), "{progress:?}");
        let logs: Vec<String> = seen.logs.iter().map(|l| l.data.as_str().unwrap_or_default().to_owned()).collect();
        assert_eq!(logs, ["Tool execution started", "Tool processing data", "Tool execution completed"]);
    }

    client.set_level(rmcp::model::SetLevelRequestParams::new(rmcp::model::LoggingLevel::Error)).await.unwrap();
    client.call_tool(call("test_tool_with_logging", Value::Null)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handler.seen.lock().unwrap().logs.len(), 3, "info messages are filtered out at level error");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_page_read_template_and_subscribe() {
    let (server, token) = server_and_token(&["--resource-update-interval", "1"], "alice").await;
    let handler = TestClientHandler::default();
    let client = connect(&server.resource(), &token, handler.clone()).await;

    let first = client.list_resources(None).await.unwrap();
    assert_eq!(first.resources.len(), 10);
    assert_eq!(first.resources[0].uri, "test://static/resource/1");
    let cursor = first.next_cursor.clone().expect("more pages");
    let second = client.list_resources(Some(PaginatedRequestParams::default().with_cursor(Some(cursor)))).await.unwrap();
    assert_eq!(second.resources[0].uri, "test://static/resource/11");
    let all = client.list_all_resources().await.unwrap();
    assert_eq!(all.len(), 103);
    let bad = client.list_resources(Some(PaginatedRequestParams::default().with_cursor(Some("garbage".into())))).await;
    assert!(format!("{bad:?}").contains("-32602"), "a bad cursor is invalid params: {bad:?}");

    let odd = client.read_resource(ReadResourceRequestParams::new("test://static/resource/3")).await.unwrap();
    assert!(matches!(&odd.contents[0], ResourceContents::TextResourceContents { mime_type: Some(m), .. } if m == "text/plain"));
    let even = client.read_resource(ReadResourceRequestParams::new("test://static/resource/4")).await.unwrap();
    assert!(
        matches!(&even.contents[0], ResourceContents::BlobResourceContents { mime_type: Some(m), .. } if m == "application/octet-stream")
    );
    let templated = client.read_resource(ReadResourceRequestParams::new("test://template/42/data")).await.unwrap();
    assert!(
        matches!(&templated.contents[0], ResourceContents::TextResourceContents { text, .. } if text.contains("Data for ID: 42"))
    );
    let unknown = client.read_resource(ReadResourceRequestParams::new("test://nope")).await;
    assert!(format!("{unknown:?}").contains("-32002"), "an unknown resource is -32002: {unknown:?}");

    let templates = client.list_resource_templates(None).await.unwrap();
    assert!(templates.resource_templates.iter().any(|t| t.uri_template == "test://static/resource/{id}"));

    client.subscribe(SubscribeRequestParams::new("test://watched-resource")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let updates = handler.seen.lock().unwrap().updated.len();
    assert!(updates >= 1, "a subscribed resource reports updates");
    client.unsubscribe(UnsubscribeRequestParams::new("test://watched-resource")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = handler.seen.lock().unwrap().updated.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(handler.seen.lock().unwrap().updated.len(), after, "no updates after unsubscribe");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_render_and_completion_suggests() {
    let (server, token) = server_and_token(&[], "alice").await;
    let client = connect(&server.resource(), &token, TestClientHandler::default()).await;
    let prompts = client.list_all_prompts().await.unwrap();
    for name in [
        "simple_prompt",
        "complex_prompt",
        "resource_prompt",
        "test_simple_prompt",
        "test_prompt_with_arguments",
        "test_prompt_with_embedded_resource",
        "test_prompt_with_image",
    ] {
        assert!(prompts.iter().any(|p| p.name == name), "{name}");
    }
    let get = |name: &'static str, arguments: Value| {
        let params = GetPromptRequestParams::new(name);
        let params = if arguments.is_null() { params } else { params.with_arguments(args(arguments)) };
        client.get_prompt(params)
    };
    let simple = serde_json::to_value(get("simple_prompt", Value::Null).await.unwrap()).unwrap();
    assert_eq!(simple["messages"][0]["role"], "user");
    let complex =
        serde_json::to_value(get("complex_prompt", json!({"temperature": "0.7", "style": "formal"})).await.unwrap()).unwrap();
    let kinds: Vec<Value> =
        complex["messages"].as_array().unwrap().iter().map(|m| json!([m["role"], m["content"]["type"]])).collect();
    assert_eq!(kinds, [json!(["user", "text"]), json!(["assistant", "text"]), json!(["user", "image"])]);
    let missing = get("complex_prompt", json!({"style": "formal"})).await;
    assert!(format!("{missing:?}").contains("-32602"), "a missing required argument is invalid params: {missing:?}");
    let resource = serde_json::to_value(get("resource_prompt", json!({"resourceId": "5"})).await.unwrap()).unwrap();
    assert_eq!(resource["messages"][1]["content"]["resource"]["uri"], "test://static/resource/5");
    let args_prompt =
        serde_json::to_value(get("test_prompt_with_arguments", json!({"arg1": "hello", "arg2": "world"})).await.unwrap())
            .unwrap();
    assert_eq!(args_prompt["messages"][0]["content"]["text"], "Prompt with arguments: arg1='hello', arg2='world'");
    let embedded =
        serde_json::to_value(get("test_prompt_with_embedded_resource", json!({"resourceUri": "test://x"})).await.unwrap())
            .unwrap();
    assert_eq!(embedded["messages"][0]["content"]["resource"]["uri"], "test://x");
    let image = serde_json::to_value(get("test_prompt_with_image", Value::Null).await.unwrap()).unwrap();
    assert_eq!(image["messages"][0]["content"]["type"], "image");

    let complete = |reference: Reference, name: &str, value: &str| {
        client.complete(CompleteRequestParams::new(reference, ArgumentInfo::new(name, value)))
    };
    let styles = complete(Reference::for_prompt("complex_prompt"), "style", "f").await.unwrap();
    assert_eq!(styles.completion.values, ["formal", "friendly"]);
    let temperature = complete(Reference::for_prompt("complex_prompt"), "temperature", "0.").await.unwrap();
    assert_eq!(temperature.completion.values, ["0.5", "0.7"]);
    let ids = complete(Reference::for_resource("test://static/resource/{id}"), "id", "9").await.unwrap();
    assert_eq!(ids.completion.values, ["9", "90", "91", "92", "93", "94", "95", "96", "97", "98", "99"]);
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_demo_fixtures_false_hides_the_conformance_fixtures() {
    for (flag, shown) in [("true", true), ("false", false)] {
        let server = mcp_oauth_testkit::http::TestServer::start(&["--mcp-demo-fixtures", flag]).await;
        let client = server.client("none").await;
        let token = server.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
        let mcp = connect(&server.resource(), &token, TestClientHandler::default()).await;
        let tools = mcp.list_all_tools().await.unwrap();
        assert!(tools.iter().any(|t| t.name == "echo"), "the reference tools stay");
        assert_eq!(tools.iter().any(|t| t.name.starts_with("test_")), shown, "fixture tools with {flag}");
        let prompts = mcp.list_all_prompts().await.unwrap();
        assert_eq!(prompts.iter().any(|p| p.name.starts_with("test_")), shown, "fixture prompts with {flag}");
        let resources = mcp.list_all_resources().await.unwrap();
        assert_eq!(resources.iter().any(|r| r.uri == "test://static-text"), shown, "fixture resources with {flag}");
        let read = mcp.read_resource(rmcp::model::ReadResourceRequestParams::new("test://static-text")).await;
        assert_eq!(read.is_ok(), shown);
    }
}
