//! MCP sessions across two instances: a session created on A is fully usable through B.
//! rmcp's own client talks through a round-robin forwarder that also adds its bearer token,
//! so consecutive requests of one session alternate between the instances.

// Sampling, logging and subscriptions are deprecated only for the 2026-07-28 revision.
#![allow(deprecated)]

use std::time::Duration;

use mcp_oauth_testkit::forwarder::Forwarder;
use mcp_oauth_testkit::http::TestServer;
use mcp_oauth_testkit::mcp::{EventStream, RawSession, TestClientHandler, connect};
use rmcp::model::{CallToolRequestParams, LoggingLevel, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams};
use serde_json::{Value, json};

use crate::multi_instance::Cluster;

async fn token(front: &TestServer, user: &str) -> String {
    let client = front.client("none").await;
    front.tokens(&client, user).await["access_token"].as_str().unwrap().to_owned()
}

fn call(name: &'static str, arguments: Value) -> CallToolRequestParams {
    let params = CallToolRequestParams::new(name);
    match arguments {
        Value::Object(map) => params.with_arguments(map),
        _ => params,
    }
}

fn text(result: &rmcp::model::CallToolResult) -> String {
    result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_is_usable_through_either_instance_for_every_feature() {
    let cluster = Cluster::start(&[("RESOURCE_UPDATE_INTERVAL", "1")]).await;
    let front = cluster.front();
    let alice = token(&front, "alice").await;
    // Each request the client makes goes to the other instance than the one before.
    let both = Forwarder::start(vec![cluster.a.base.clone(), cluster.b.base.clone()], None).await;
    let handler = TestClientHandler::default();
    let client = connect(&format!("{}/mcp", both.base), &alice, handler.clone()).await;

    for round in 0..4 {
        let echo = client.call_tool(call("echo", json!({"message": format!("round {round}")}))).await.unwrap();
        assert_eq!(text(&echo), format!("Echo: round {round}"));
        let me: Value = serde_json::from_str(&text(&client.call_tool(call("whoami", Value::Null)).await.unwrap())).unwrap();
        assert_eq!(me["sub"], "alice");
    }

    // Server-to-client requests: the tool runs on one instance, the client's answer is posted
    // to the other and must find its way back.
    for round in 0..3 {
        let sampled = client.call_tool(call("test_sampling", json!({"prompt": format!("q{round}")}))).await.unwrap();
        assert_eq!(text(&sampled), format!("LLM response: canned answer to: q{round}"));
        let elicited = client.call_tool(call("test_elicitation", json!({"message": "who?"}))).await.unwrap();
        assert!(text(&elicited).contains("username-answer"), "{elicited:?}");
    }

    // Progress and logs, and a log level set through one instance obeyed by the other.
    client.call_tool(call("longRunningOperation", json!({"duration": 0.2, "steps": 2}))).await.unwrap();
    client.call_tool(call("test_tool_with_logging", Value::Null)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    {
        let seen = handler.seen.lock().unwrap();
        assert!(seen.progress.len() >= 2, "progress arrived: {:?}", seen.progress);
        assert_eq!(seen.logs.len(), 3);
    }
    client.set_level(SetLevelRequestParams::new(LoggingLevel::Error)).await.unwrap();
    for _ in 0..2 {
        client.call_tool(call("test_tool_with_logging", Value::Null)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handler.seen.lock().unwrap().logs.len(), 3, "the level holds on both instances");

    // A subscription made through one instance reports on the GET stream wherever it is, and
    // an unsubscribe through the other instance ends it.
    client.subscribe(SubscribeRequestParams::new("test://watched-resource")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!handler.seen.lock().unwrap().updated.is_empty(), "updates arrive");
    client.call_tool(call("echo", json!({"message": "shift"}))).await.unwrap();
    client.unsubscribe(UnsubscribeRequestParams::new("test://watched-resource")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = handler.seen.lock().unwrap().updated.len();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(handler.seen.lock().unwrap().updated.len(), settled, "no updates after unsubscribing elsewhere");

    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_delete_and_idle_expiry_hold_on_every_instance() {
    let cluster = Cluster::start(&[("MCP_SESSION_IDLE_TIMEOUT", "2")]).await;
    let front = cluster.front();
    let (alice, bob) = (token(&front, "alice").await, token(&front, "bob").await);
    let ping = json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" });
    let url_a = format!("{}/mcp", cluster.a.base);
    let url_b = format!("{}/mcp", cluster.b.base);

    let on_a = RawSession::open(&url_a, &alice).await;
    let on_b = RawSession {
        url: url_b.clone(),
        token: alice.clone(),
        id: on_a.id.clone(),
        http: mcp_oauth_testkit::http::http_client(),
    };
    assert_eq!(on_b.call(ping.clone()).await.0, 200, "B serves the session A created");
    for url in [&url_a, &url_b] {
        let as_bob = RawSession {
            url: url.clone(),
            token: bob.clone(),
            id: on_a.id.clone(),
            http: mcp_oauth_testkit::http::http_client(),
        };
        assert_eq!(as_bob.call(ping.clone()).await.0, 404, "bob gets 404 at {url}");
    }

    let deleted = on_b.request(reqwest::Method::DELETE).send().await.unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(on_a.call(ping.clone()).await.0, 404, "deleted on B, gone on A");
    assert_eq!(on_b.call(ping.clone()).await.0, 404);

    let idle = RawSession::open(&url_b, &alice).await;
    let other = RawSession {
        url: url_a.clone(),
        token: alice.clone(),
        id: idle.id.clone(),
        http: mcp_oauth_testkit::http::http_client(),
    };
    assert_eq!(other.call(ping.clone()).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(idle.call(ping.clone()).await.0, 200, "use on one instance keeps it alive for both");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(other.call(ping.clone()).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(idle.call(ping.clone()).await.0, 404, "expired on B");
    assert_eq!(other.call(ping).await.0, 404, "and on A");
}

/// The exact crossing, without relying on the forwarder's rhythm: the tool call's stream is
/// on A, the client's answer is posted to B, and the result must still arrive on A's stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_posted_to_b_reaches_the_tool_waiting_on_a() {
    let cluster = Cluster::start(&[("RESOURCE_UPDATE_INTERVAL", "1")]).await;
    let alice = token(&cluster.front(), "alice").await;
    let (url_a, url_b) = (format!("{}/mcp", cluster.a.base), format!("{}/mcp", cluster.b.base));
    let on_a = RawSession::open_with(&url_a, &alice, json!({ "sampling": {}, "elicitation": {} })).await;
    let on_b = on_a.via(&url_b);

    for (id, tool, arguments) in
        [(20, "test_sampling", json!({"prompt": "cross"})), (21, "test_elicitation", json!({"message": "cross"}))]
    {
        let call =
            json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": tool, "arguments": arguments } });
        let mut stream = EventStream::new(on_a.post_json(call).await);
        let request = stream.next_message(Duration::from_secs(5)).await.expect("the server asks the client");
        let answer = match request["method"].as_str() {
            Some("sampling/createMessage") => {
                json!({ "role": "assistant", "model": "m", "content": { "type": "text", "text": "from B" } })
            }
            Some("elicitation/create") => {
                json!({ "action": "accept", "content": { "username": "from B", "email": "b@example.com" } })
            }
            other => panic!("unexpected {other:?}: {request}"),
        };
        let posted = on_b.post_json(json!({ "jsonrpc": "2.0", "id": request["id"], "result": answer })).await;
        assert_eq!(posted.status(), 202, "B accepts the answer");
        let result = stream.next_message(Duration::from_secs(5)).await.expect("the tool finishes on A");
        assert_eq!(result["id"], id);
        assert!(result["result"]["content"][0]["text"].as_str().unwrap().contains("from B"), "{result}");
    }

    // Subscribe through A; the GET stream is open on B and receives the updates; an
    // unsubscribe through B ends them.
    let mut listening =
        EventStream::new(on_b.request(reqwest::Method::GET).header("accept", "text/event-stream").send().await.unwrap());
    let (status, _) = on_a.call(json!({ "jsonrpc": "2.0", "id": 30, "method": "resources/subscribe", "params": { "uri": "test://watched-resource" } })).await;
    assert_eq!(status, 200);
    let update = listening.next_message(Duration::from_secs(5)).await.expect("an update reaches B's GET stream");
    assert_eq!(update["method"], "notifications/resources/updated");
    let (status, _) = on_b.call(json!({ "jsonrpc": "2.0", "id": 31, "method": "resources/unsubscribe", "params": { "uri": "test://watched-resource" } })).await;
    assert_eq!(status, 200);
    // At most one update may already be on its way; after that, silence.
    let _ = listening.next_message(Duration::from_millis(1500)).await;
    assert!(listening.next_message(Duration::from_millis(2500)).await.is_none(), "unsubscribed through B");
}

/// Both copies of one session ask the client something at once, each counting its request
/// ids from zero; each answer is posted to the other instance and must reach the copy that
/// asked, not the other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_requests_from_two_copies_get_their_own_answers() {
    let cluster = Cluster::start(&[]).await;
    let alice = token(&cluster.front(), "alice").await;
    let (url_a, url_b) = (format!("{}/mcp", cluster.a.base), format!("{}/mcp", cluster.b.base));
    let on_a = RawSession::open_with(&url_a, &alice, json!({ "sampling": {} })).await;
    let on_b = on_a.via(&url_b);
    let call = |id: i64, prompt: &str| json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": "test_sampling", "arguments": { "prompt": prompt } } });
    let mut from_a = EventStream::new(on_a.post_json(call(40, "asked on A")).await);
    let mut from_b = EventStream::new(on_b.post_json(call(41, "asked on B")).await);
    let asked_a = from_a.next_message(Duration::from_secs(5)).await.expect("A asks");
    let asked_b = from_b.next_message(Duration::from_secs(5)).await.expect("B asks");
    assert_ne!(asked_a["id"], asked_b["id"], "the two copies' requests are told apart");
    let answer = |request: &Value, text: &str| json!({ "jsonrpc": "2.0", "id": request["id"], "result": { "role": "assistant", "model": "m", "content": { "type": "text", "text": text } } });
    assert_eq!(on_b.post_json(answer(&asked_a, "answer for A")).await.status(), 202);
    assert_eq!(on_a.post_json(answer(&asked_b, "answer for B")).await.status(), 202);
    let result_a = from_a.next_message(Duration::from_secs(5)).await.expect("A's tool finishes");
    let result_b = from_b.next_message(Duration::from_secs(5)).await.expect("B's tool finishes");
    assert_eq!(result_a["result"]["content"][0]["text"], "LLM response: answer for A");
    assert_eq!(result_b["result"]["content"][0]["text"], "LLM response: answer for B");
}

/// MCP_SESSION_WORKER_IDLE releases B's unused copy of a session; A's copy, with a GET stream
/// open and a subscription, goes on: its updates still arrive. A release is not a session's
/// end, so the other instances are not told to close theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_one_instances_copy_leaves_the_others_streaming() {
    let cluster = Cluster::start(&[("RESOURCE_UPDATE_INTERVAL", "1"), ("MCP_SESSION_WORKER_IDLE", "1s")]).await;
    let alice = token(&cluster.front(), "alice").await;
    let (url_a, url_b) = (format!("{}/mcp", cluster.a.base), format!("{}/mcp", cluster.b.base));
    let on_a = RawSession::open(&url_a, &alice).await;
    let on_b = on_a.via(&url_b);
    let mut listening =
        EventStream::new(on_a.request(reqwest::Method::GET).header("accept", "text/event-stream").send().await.unwrap());
    let subscribe =
        json!({ "jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": { "uri": "test://watched-resource" } });
    assert_eq!(on_a.call(subscribe).await.0, 200);
    let echo = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "echo", "arguments": { "message": "via B" } } });
    assert_eq!(on_b.call(echo).await.0, 200, "B restores a copy");

    let http = mcp_oauth_testkit::http::http_client();
    assert!(
        mcp_oauth_testkit::http::holds_mcp_workers_within(&http, &cluster.b.base, 0.0, Duration::from_secs(5)).await,
        "B's unused copy was never released"
    );
    // Drain what arrived before the release, then updates must go on arriving on A.
    while listening.next_message(Duration::from_millis(200)).await.is_some() {}
    let update = listening.next_message(Duration::from_secs(3)).await.expect("A's copy still streams after B's release");
    assert_eq!(update["method"], "notifications/resources/updated", "{update}");
}
