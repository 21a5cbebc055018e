//! `TOOL_SCOPES`: a tool call the token's scopes do not cover gets 403 with the whole scope
//! challenge, `tools/list` shows only what the token may call, a mismatched `Mcp-Name` is
//! refused, and a token re-authorized with the larger set (step-up) passes.

use mcp_oauth_testkit::http::{ConsentForm, Pkce, TestClient, TestServer, redirect_params};
use mcp_oauth_testkit::mcp::{RawSession, messages};
use serde_json::{Value, json};

async fn token_with_scope(server: &TestServer, client: &TestClient, scope: &str) -> String {
    let pkce = Pkce::new();
    let page = server.authorize(client, &pkce, &[("scope", scope)]).await;
    assert_eq!(page.status(), 200);
    let form = ConsentForm::read(page).await;
    let approved = server.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
    let code = redirect_params(&approved)["code"].clone();
    let (status, tokens) = server.exchange(client, &code, &pkce).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], scope);
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn call(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": {"a": 1, "b": 2}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_need_their_scopes_and_step_up_grants_them() {
    let server = TestServer::start(&["--scopes", "mcp admin", "--tool-scopes", "add=admin,*=mcp"]).await;
    let client = server.client("none").await;
    let basic = token_with_scope(&server, &client, "mcp").await;
    let session = RawSession::open(&server.resource(), &basic).await;

    let listed = session.post_json(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    let names: Vec<String> = messages(&listed.text().await.unwrap())
        .iter()
        .flat_map(|m| m["result"]["tools"].as_array().cloned().unwrap_or_default())
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    assert!(!names.contains(&"add".to_owned()), "a tool the token may not call is not listed: {names:?}");

    let refused = session.post_json(call("add")).await;
    assert_eq!(refused.status(), 403);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains("scope=\"admin mcp\""), "every scope the call needs: {challenge}");
    assert!(challenge.contains("resource_metadata=\""), "{challenge}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");

    let mismatched = session
        .request(reqwest::Method::POST)
        .header("content-type", "application/json")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .body(call("add").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(mismatched.status(), 400, "the header and the body must name the same tool");

    // Step-up: authorize again with the larger set.
    let elevated = token_with_scope(&server, &client, "admin mcp").await;
    let session = RawSession::open(&server.resource(), &elevated).await;
    let allowed = session.post_json(call("add")).await;
    assert_eq!(allowed.status(), 200);
    let answer = messages(&allowed.text().await.unwrap());
    assert!(answer.iter().any(|m| m["id"] == 2 && m.get("result").is_some()), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_base_scope_is_refused_at_mcp() {
    let server = TestServer::start(&["--scopes", "mcp profile"]).await;
    let client = server.client("none").await;
    let profile_only = token_with_scope(&server, &client, "profile").await;
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let refused = server
        .http
        .post(server.resource())
        .bearer_auth(&profile_only)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"mcp\""), "{challenge}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0", "a JSON-RPC error body: {body}");

    let both = token_with_scope(&server, &client, "mcp profile").await;
    let session = RawSession::open(&server.resource(), &both).await;
    assert!(session.id.is_some(), "a token with the base scope passes");
}
