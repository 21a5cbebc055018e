//! `/mcp` as a gateway to a real MCP server from the registry
//! (`@modelcontextprotocol/server-everything` over Streamable HTTP, started per test on a free
//! port): the rmcp client, through this server's OAuth, uses the upstream's tools, resources,
//! prompts, sampling and progress; sessions stay bound to their user; an upstream that is gone
//! gets a 502, never a 401.

mod embedded;
mod stdio;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_oauth_testkit::http::TestServer;
use mcp_oauth_testkit::mcp::{RawSession, TestClientHandler, connect};
use mcp_oauth_testkit::process::free_port;
use mcp_oauth_testkit::upstream::Everything;
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::json;

fn call(name: &str, arguments: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned()).with_arguments(arguments.as_object().cloned().unwrap_or_default())
}

fn text(result: &rmcp::model::CallToolResult) -> String {
    result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect::<Vec<_>>().join("\n")
}

/// A server-to-client request (sampling) travels back through the gateway and its answer
/// forward again, and the progress notifications of a long operation arrive.
async fn sampling_and_progress_pass(
    mcp: &rmcp::service::RunningService<rmcp::RoleClient, TestClientHandler>,
    handler: &TestClientHandler,
) {
    let sampled = mcp.call_tool(call("trigger-sampling-request", json!({"prompt": "hello", "maxTokens": 20}))).await.unwrap();
    assert!(text(&sampled).contains("canned answer"), "{sampled:?}");
    assert_eq!(handler.seen.lock().unwrap().sampling_prompts.len(), 1);
    let params = call("trigger-long-running-operation", json!({"duration": 1, "steps": 2}));
    let result = mcp.send_request(rmcp::model::ClientRequest::CallToolRequest(rmcp::model::Request::new(params))).await.unwrap();
    assert!(matches!(result, rmcp::model::ServerResult::CallToolResult(_)), "{result:?}");
    assert!(!handler.seen.lock().unwrap().progress.is_empty(), "progress notifications pass through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rmcp_client_uses_server_everything_through_the_gateway() {
    let upstream = Everything::start().await;
    let server = TestServer::start(&["--mcp-upstream-url", &upstream.url]).await;
    let client = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    let token = tokens["access_token"].as_str().unwrap();

    let handler = TestClientHandler::default();
    let mcp = connect(&server.resource(), token, handler.clone()).await;
    let info = mcp.peer_info().expect("the upstream's initialize answer reaches the client");
    let name = info.server_info.as_ref().map(|i| i.name.clone()).unwrap_or_default();
    assert!(name.contains("everything"), "{name}");
    let tools = mcp.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "echo") && tools.iter().any(|t| t.name == "get-sum"), "{tools:?}");
    let echo = mcp.call_tool(call("echo", json!({"message": "through the gateway"}))).await.unwrap();
    assert!(text(&echo).contains("through the gateway"), "{echo:?}");
    let sum = mcp.call_tool(call("get-sum", json!({"a": 2, "b": 3}))).await.unwrap();
    assert!(text(&sum).contains('5'), "{sum:?}");

    let resources = mcp.list_all_resources().await.unwrap();
    let first = resources.first().expect("server-everything lists resources");
    let read = mcp.read_resource(ReadResourceRequestParams::new(first.uri.clone())).await.unwrap();
    assert!(!read.contents.is_empty());
    let prompts = mcp.list_all_prompts().await.unwrap();
    let simple = prompts.iter().find(|p| p.arguments.as_ref().is_none_or(|a| a.iter().all(|a| a.required != Some(true))));
    if let Some(prompt) = simple {
        let got = mcp.get_prompt(GetPromptRequestParams::new(prompt.name.clone())).await.unwrap();
        assert!(!got.messages.is_empty());
    }

    sampling_and_progress_pass(&mcp, &handler).await;
    assert!(mcp.cancel().await.is_ok(), "the session ends cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_stay_with_their_user_and_the_upstreams_id_is_never_shown() {
    let upstream = Everything::start().await;
    let server = TestServer::start(&["--mcp-upstream-url", &upstream.url, "--mcp-upstream-identity", "headers"]).await;
    let client = server.client("none").await;
    let alice = server.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let mallory = server.tokens(&client, "mallory").await["access_token"].as_str().unwrap().to_owned();

    let session = RawSession::open(&server.resource(), &alice).await;
    let id = session.id.clone().expect("a session id");
    assert_eq!(id.len(), 43, "the client sees this server's own session id: {id}");
    let ping = json!({"jsonrpc": "2.0", "id": 7, "method": "ping"});
    assert_eq!(session.post_json(ping.clone()).await.status(), 200);

    let foreign = mcp_oauth_testkit::http::http_client()
        .post(server.resource())
        .bearer_auth(&mallory)
        .header("mcp-session-id", &id)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404, "another user's session does not exist for mallory");

    let deleted = session.request(reqwest::Method::DELETE).send().await.unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(session.post_json(ping).await.status(), 404, "a deleted session is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_gone_gets_a_502_json_rpc_error_never_a_401() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let server = TestServer::start(&["--mcp-upstream-url", &url, "--mcp-upstream-timeout", "2s"]).await;
    let client = server.client("none").await;
    let token = server.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let response = server.mcp_initialize(Some(&token)).await;
    assert_eq!(response.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(5));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(body["error"]["message"].as_str().unwrap().contains("unreachable"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_jwt_keys_are_published() {
    let upstream = Everything::start().await;
    let server = TestServer::start(&["--mcp-upstream-url", &upstream.url]).await;
    let (status, jwks) = server.get_json("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(jwks["keys"][0].get("d").is_none(), "only the public key is published");
    let (_, metadata) = server.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(metadata["jwks_uri"], server.url("/.well-known/jwks.json"), "the AS metadata names the keys");
}

/// A Python FastMCP server of the user's own verifies the gateway's identity JWT against the
/// gateway's JWKS and names the user who signed in; the client's token never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_upstream_verifies_the_identity_jwt_and_sees_the_signed_in_user() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("upstreams");
    let python = dir.join(".venv/bin/python");
    assert!(python.exists(), "create tests/upstreams/.venv first (./scripts/test does it)");
    let port = free_port();
    let mut child = Command::new(python)
        .current_dir(&dir)
        .args(["identity_server.py", &port.to_string(), &format!("{base}/.well-known/jwks.json"), &base])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python starts");
    let url = format!("http://127.0.0.1:{port}/mcp");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python MCP server did not listen");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stores = mcp_oauth_adapters::memory::MemoryStore::default().stores();
    let server = TestServer::serve(listener, base, &["--mcp-upstream-url", &url], stores).await;
    let client = server.client("none").await;
    let token = server.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let mcp = connect(&server.resource(), &token, TestClientHandler::default()).await;
    let result = mcp.call_tool(CallToolRequestParams::new("whoami")).await.unwrap();
    let answer = text(&result);
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(result.is_error, Some(true), "{answer}");
    assert_eq!(answer, format!("alice via {}", client.client_id));
}

/// Two instances on one Redis forward one session: the upstream's session id lives in the
/// shared session record, and both sign identity JWTs with the one key kept there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_instance_on_one_redis_forwards_a_session() {
    use mcp_oauth_testkit::forwarder::Forwarder;
    use mcp_oauth_testkit::process::ServerProcess;
    use mcp_oauth_testkit::redis_server::TestRedis;

    let upstream = Everything::start().await;
    let redis = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let front = Forwarder::start(vec![format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}")], None).await;
    let storage = redis.url();
    let env = [
        ("STORAGE_URL", storage.as_str()),
        ("BASE_URI", front.base.as_str()),
        ("MCP_UPSTREAM_URL", upstream.url.as_str()),
        ("MCP_UPSTREAM_IDENTITY", "jwt"),
        ("TOKEN_VAULT_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
    ];
    let a = ServerProcess::start(port_a, &env).await;
    let b = ServerProcess::start(port_b, &env).await;
    let keys = |base: String| async move {
        let keys: serde_json::Value = reqwest::get(format!("{base}/.well-known/jwks.json")).await.unwrap().json().await.unwrap();
        keys
    };
    let (on_a, on_b) = (keys(a.base.clone()).await, keys(b.base.clone()).await);
    assert_eq!(on_a["keys"].as_array().map(Vec::len), Some(1), "{on_a}");
    assert_eq!(on_a, on_b, "both instances sign with the key kept in Redis");
    let on_a = TestServer::remote(a.base.clone(), mcp_oauth_testkit::http::http_client());
    let client = on_a.client("none").await;
    let token = on_a.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();

    let session = RawSession::open(&a.resource(), &token).await;
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    let via_b = session.via(&b.resource());
    let answer = via_b.post_json(ping.clone()).await;
    assert_eq!(answer.status(), 200, "B forwards A's session: {}", b.logs());
    let echo =
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "via B"}}});
    let body = via_b.post_json(echo).await.text().await.unwrap();
    assert!(body.contains("via B"), "{body}");
    let deleted = via_b.request(reqwest::Method::DELETE).send().await.unwrap();
    assert!(deleted.status().is_success());
    assert_eq!(session.post_json(ping).await.status(), 404, "ended on B, gone on A");
    drop((a, b, front, redis));
}
