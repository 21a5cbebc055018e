//! The transport's edges: Host checking, malformed JSON-RPC, where notifications travel, and
//! the stateless 2026-07-28 revision.

use mcp_oauth_testkit::mcp::{RawSession, messages};
use serde_json::json;

use crate::server_and_token;

#[tokio::test]
async fn a_foreign_host_is_refused_and_the_right_one_works() {
    let (server, token) = server_and_token(&[], "alice").await;
    let session = RawSession::open(&server.resource(), &token).await;
    let ping = json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" }).to_string();
    let evil = session
        .request(reqwest::Method::POST)
        .header("host", "evil.example.com")
        .header("content-type", "application/json")
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert!(evil.status().is_client_error(), "{}", evil.status());
    let port = server.base.rsplit(':').next().unwrap();
    let good = session
        .request(reqwest::Method::POST)
        .header("host", format!("localhost:{port}"))
        .header("content-type", "application/json")
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
}

#[tokio::test]
async fn origins_outside_the_allow_list_are_refused() {
    let (server, token) = server_and_token(&["--allowed-origins", "https://app.example"], "alice").await;
    let session = RawSession::open(&server.resource(), &token).await;
    let ping = json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" }).to_string();
    let send = |origin: &'static str| {
        session
            .request(reqwest::Method::POST)
            .header("origin", origin)
            .header("content-type", "application/json")
            .body(ping.clone())
            .send()
    };
    assert_eq!(send("https://evil.example").await.unwrap().status(), 403);
    assert_eq!(send("https://app.example").await.unwrap().status(), 200);
}

#[tokio::test]
async fn malformed_json_rpc_gets_json_rpc_errors() {
    let (server, token) = server_and_token(&[], "alice").await;
    let session = RawSession::open(&server.resource(), &token).await;

    let response = session.post_raw("{not json".into()).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700, "parse error: {body}");

    let response = session.post_json(json!({ "id": 1, "method": 42 })).await;
    assert!(response.status().is_client_error());
    let body: serde_json::Value = response.json().await.unwrap();
    assert!([-32600, -32700].contains(&body["error"]["code"].as_i64().unwrap()), "invalid request: {body}");

    let (_, answer) = session.call(json!({ "jsonrpc": "2.0", "id": 2, "method": "no/such/method" })).await;
    assert_eq!(answer.last().unwrap()["error"]["code"], -32601, "method not found: {answer:?}");

    let (_, answer) = session
        .call(json!({ "jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": { "url": "test://static-text" } }))
        .await;
    assert_eq!(answer.last().unwrap()["error"]["code"], -32602, "invalid params: {answer:?}");

    // Bad tool arguments are a tool execution error the model can correct (MCP 2025-11-25).
    let (_, answer) = session
        .call(
            json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": { "name": "add", "arguments": { "a": "x" } } }),
        )
        .await;
    assert_eq!(answer.last().unwrap()["result"]["isError"], true, "{answer:?}");

    let (_, answer) =
        session.call(json!({ "jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": { "name": "complex_prompt" } })).await;
    assert_eq!(answer.last().unwrap()["error"]["code"], -32602);

    let huge = format!("{{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}", "y".repeat(8 << 20));
    let response = session.post_raw(huge).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["jsonrpc"], "2.0");

    let unknown = RawSession {
        id: Some("no-such-session".into()),
        ..RawSession {
            url: session.url.clone(),
            token: session.token.clone(),
            id: None,
            http: mcp_oauth_testkit::http::http_client(),
        }
    };
    let response = unknown.post_json(json!({ "jsonrpc": "2.0", "id": 8, "method": "ping" })).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        -32001,
        "an unknown session is a JSON-RPC error too"
    );
    let response = session
        .request(reqwest::Method::POST)
        .header("content-type", "application/json")
        .header("accept", "text/html")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["jsonrpc"], "2.0");

    // None of that hurt the session.
    let (status, answer) = session.call(json!({ "jsonrpc": "2.0", "id": 6, "method": "ping" })).await;
    assert_eq!((status, answer[0]["result"].clone()), (200, json!({})));
}

#[tokio::test]
async fn a_requests_logs_and_progress_travel_on_its_own_response_stream() {
    let (server, token) = server_and_token(&[], "alice").await;
    // No GET stream is ever opened: whatever arrives, arrives on the POST response.
    let session = RawSession::open(&server.resource(), &token).await;
    let (_, answer) = session
        .call(json!({ "jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": { "name": "test_tool_with_logging", "arguments": {} } }))
        .await;
    let methods: Vec<String> = answer.iter().map(|m| m["method"].as_str().unwrap_or("response").to_owned()).collect();
    assert_eq!(methods, ["notifications/message", "notifications/message", "notifications/message", "response"], "{answer:?}");
    assert_eq!(answer[0]["params"]["data"], "Tool execution started");
    assert_eq!(answer[3]["id"], 10);

    let (_, answer) = session
        .call(json!({ "jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": { "name": "test_tool_with_progress", "arguments": {}, "_meta": { "progressToken": "p-1" } } }))
        .await;
    let progress: Vec<f64> = answer
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_f64().unwrap())
        .collect();
    assert_eq!(progress, [0.0, 50.0, 100.0]);
    assert!(answer.iter().all(|m| m["method"] != "notifications/progress" || m["params"]["progressToken"] == "p-1"));
}

#[tokio::test]
async fn the_2026_07_28_revision_is_served_statelessly() {
    let (server, token) = server_and_token(&[], "alice").await;
    let response = mcp_oauth_testkit::http::http_client()
        .post(server.resource())
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .body(json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": { "name": "echo", "arguments": { "message": "stateless" },
                "_meta": { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} } }
        }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_none(), "no session is created");
    let answer = messages(&response.text().await.unwrap());
    assert_eq!(answer.last().unwrap()["result"]["content"][0]["text"], "Echo: stateless", "{answer:?}");
}

/// Each streamed answer leaves in several small writes; with Nagle's algorithm on the
/// server's socket every later write waits for the client's delayed ACK (40 ms or more on
/// Linux), once per call. The median of sequential calls on one connection shows it.
#[tokio::test]
async fn streamed_answers_on_a_kept_alive_connection_do_not_wait_for_delayed_acks() {
    let (server, token) = server_and_token(&[], "alice").await;
    let session = RawSession::open(&server.resource(), &token).await;
    let mut latencies = Vec::new();
    for id in 1..=21 {
        let call = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": "echo", "arguments": { "message": "hi" } } });
        let started = std::time::Instant::now();
        let (status, answer) = session.call(call).await;
        latencies.push(started.elapsed());
        assert_eq!((status, answer.last().unwrap()["id"].clone()), (200, json!(id)));
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(median < std::time::Duration::from_millis(25), "median {median:?}: calls wait for delayed ACKs");
}
