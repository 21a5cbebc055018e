//! The library entry point: `examples/own_server.rs`, an rmcp server of its own, runs behind
//! the same authorization and reads the caller's identity in a tool.

use mcp_oauth_testkit::http::TestServer;
use mcp_oauth_testkit::mcp::{TestClientHandler, connect};
use mcp_oauth_testkit::process::{ServerProcess, example_binary, free_port};
use serde_json::json;

use super::{call, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_server_sees_the_signed_in_user_and_refuses_without_a_token() {
    let port = free_port();
    let server = ServerProcess::start_binary(example_binary("own_server"), port, &[]).await;
    let on = TestServer::remote(server.base.clone(), mcp_oauth_testkit::http::http_client());
    let unauthenticated =
        on.http.post(server.resource()).json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).send().await;
    assert_eq!(unauthenticated.unwrap().status(), 401, "the embedded server is behind the bearer guard");

    let client = on.client("none").await;
    let token = on.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let mcp = connect(&server.resource(), &token, TestClientHandler::default()).await;
    let tools = mcp.list_all_tools().await.unwrap();
    assert_eq!(tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>(), ["greet"], "its own tools, not the demo's");
    let greeted = text(&mcp.call_tool(call("greet", json!({"greeting": "Hello"}))).await.unwrap());
    assert!(greeted.starts_with("Hello, alice (client "), "{greeted}");
    assert!(greeted.contains(&client.client_id), "{greeted}");
    mcp.cancel().await.unwrap();
}
