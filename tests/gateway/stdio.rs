//! `/mcp` in front of server-everything over stdio: one child per session, started with the
//! caller's identity in its environment, and never left behind (DELETE, crash, idle expiry,
//! revocation, shutdown), which the process table shows.

// Resource subscriptions are deprecated only for the 2026-07-28 revision; these speak 2025-06-18.
#![allow(deprecated)]

use std::time::{Duration, Instant};

use mcp_oauth_testkit::http::TestServer;
use mcp_oauth_testkit::mcp::{RawSession, TestClientHandler, connect};
use mcp_oauth_testkit::process::free_port;
use mcp_oauth_testkit::upstream::everything_command;
use rmcp::model::{ReadResourceRequestParams, SubscribeRequestParams};
use serde_json::json;

use super::{call, sampling_and_progress_pass, text};

/// A mark only this test's children carry in their environment.
fn mark() -> String {
    format!("GATEWAY_TEST_MARK={}", mcp_oauth_domain::secret::generate_secret())
}

/// Live processes whose environment holds `mark` (zombies are not alive), with that environment.
fn processes_with(mark: &str) -> Vec<(u32, Vec<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let vars: Vec<String> = environ.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')));
        if !zombie && vars.iter().any(|v| v == mark) {
            found.push((pid, vars));
        }
    }
    found
}

async fn until(what: &str, within: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within {within:?}");
}

/// This server in front of server-everything on stdio, its children marked with `mark`.
async fn stdio_server(mark: &str, extra: &[&str]) -> TestServer {
    let command = everything_command();
    let mut args = vec!["--mcp-upstream-command", &command, "--mcp-upstream-env", mark];
    args.extend_from_slice(extra);
    TestServer::start(&args).await
}

fn no_process_left(mark: &str) -> impl Fn() -> bool + '_ {
    move || processes_with(mark).is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rmcp_client_uses_server_everything_over_stdio() {
    let mark = mark();
    let server = stdio_server(&mark, &[]).await;
    let client = server.client("none").await;
    let token = server.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();

    let handler = TestClientHandler::default();
    let mcp = connect(&server.resource(), &token, handler.clone()).await;
    let name = mcp.peer_info().and_then(|i| i.server_info.as_ref().map(|s| s.name.clone())).unwrap_or_default();
    assert!(name.contains("everything"), "{name}");
    let children = processes_with(&mark);
    assert_eq!(children.len(), 1, "one child for the session");

    let env = text(&mcp.call_tool(call("get-env", json!({}))).await.unwrap());
    let env: serde_json::Value = serde_json::from_str(&env).unwrap();
    assert_eq!(env["MCP_SUBJECT"], "alice", "the child learns its caller at spawn");
    assert_eq!(env["MCP_CLIENT_ID"], client.client_id.as_str());
    assert_eq!(env["MCP_SCOPE"], "mcp");
    assert!(env.get("CARGO").is_none() && env.get("RUST_LOG").is_none(), "nothing else of ours reaches it: {env}");

    let echo = mcp.call_tool(call("echo", json!({"message": "over stdio"}))).await.unwrap();
    assert!(text(&echo).contains("over stdio"), "{echo:?}");
    let resources = mcp.list_all_resources().await.unwrap();
    let first = resources.first().expect("server-everything lists resources");
    assert!(!mcp.read_resource(ReadResourceRequestParams::new(first.uri.clone())).await.unwrap().contents.is_empty());
    assert!(!mcp.list_all_prompts().await.unwrap().is_empty());

    sampling_and_progress_pass(&mcp, &handler).await;
    let elicited = mcp.call_tool(call("trigger-elicitation-request", json!({}))).await.unwrap();
    assert!(text(&elicited).contains("name-answer"), "elicitation travels back and forth: {elicited:?}");
    assert_eq!(handler.seen.lock().unwrap().elicitations.len(), 1);

    mcp.subscribe(SubscribeRequestParams::new(first.uri.clone())).await.unwrap();
    mcp.call_tool(call("toggle-subscriber-updates", json!({}))).await.unwrap();
    let seen = handler.seen.clone();
    until("a resource-update notification", Duration::from_secs(15), || !seen.lock().unwrap().updated.is_empty()).await;

    assert!(mcp.cancel().await.is_ok(), "the session ends cleanly (DELETE)");
    until("the child ending with its session", Duration::from_secs(10), no_process_left(&mark)).await;
}

fn initialize() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
}

/// The JSON-RPC answer in a POST response, JSON or SSE.
async fn answer(response: reqwest::Response) -> serde_json::Value {
    // A stream that never completes is a failure, not a hung test run.
    let body = tokio::time::timeout(Duration::from_secs(30), response.text()).await.expect("the answer completes").unwrap();
    let data = body.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).find(|d| d.starts_with('{'));
    serde_json::from_str(data.unwrap_or(&body)).unwrap_or_else(|_| panic!("not JSON-RPC: {body}"))
}

/// `body` posted to the session through B, answered as JSON-RPC within 30 s, or a failure
/// with both instances' logs.
async fn relay(
    session: &RawSession,
    body: serde_json::Value,
    a: &mcp_oauth_testkit::process::ServerProcess,
    b: &mcp_oauth_testkit::process::ServerProcess,
) -> serde_json::Value {
    let answered = tokio::time::timeout(Duration::from_secs(30), async { answer(session.post_json(body).await).await });
    answered.await.unwrap_or_else(|_| panic!("no answer through B within 30 s\n{}", both_logs(a, b)))
}

fn both_logs(a: &mcp_oauth_testkit::process::ServerProcess, b: &mcp_oauth_testkit::process::ServerProcess) -> String {
    format!("--- instance A ---\n{}\n--- instance B ---\n{}", a.logs(), b.logs())
}

/// A tools/call (id 9) that runs `seconds` upstream, answered as JSON-RPC.
fn long_call(session: &RawSession, seconds: u32) -> impl std::future::Future<Output = serde_json::Value> + use<> {
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "trigger-long-running-operation", "arguments": {"duration": seconds, "steps": 2}}});
    let request = session.request(reqwest::Method::POST).header("content-type", "application/json").body(call.to_string());
    async move { answer(request.send().await.unwrap()).await }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_bounded_and_a_crash_ends_its_session_with_a_json_rpc_error() {
    let mark = mark();
    let server = stdio_server(&mark, &["--max-upstream-processes", "3", "--max-upstream-processes-per-user", "2"]).await;
    let client = server.client("none").await;
    let token = |user: &'static str| {
        let (server, client) = (&server, &client);
        async move { server.tokens(client, user).await["access_token"].as_str().unwrap().to_owned() }
    };
    let (alice, bob, carol) = (token("alice").await, token("bob").await, token("carol").await);

    // A user at their limit gets a new session in place of their longest-idle one; when all
    // of theirs are busy, the new one is refused.
    let a1 = RawSession::open(&server.resource(), &alice).await;
    let _busy_1 = tokio::spawn(long_call(&a1, 20));
    let a2 = RawSession::open(&server.resource(), &alice).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a3 = RawSession::open(&server.resource(), &alice).await;
    assert!(a3.id.is_some(), "a third session in place of the idle second");
    let ping = json!({"jsonrpc": "2.0", "id": 10, "method": "ping"});
    let evicted = a2.post_json(ping.clone()).await.status();
    assert_eq!(evicted, 404, "the idle session made room");
    let _busy_3 = tokio::spawn(long_call(&a3, 20));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fourth = RawSession { url: server.resource(), token: alice.clone(), id: None, http: server.http.clone() };
    let refused = answer(fourth.post_json(initialize()).await).await;
    assert!(refused["error"]["message"].as_str().unwrap_or_default().contains("DELETE"), "per user: {refused}");
    let b = RawSession::open(&server.resource(), &bob).await;
    let fifth = RawSession { url: server.resource(), token: carol, id: None, http: server.http.clone() };
    let refused = answer(fifth.post_json(initialize()).await).await;
    assert!(refused["error"]["message"].as_str().unwrap_or_default().contains("at most 3"), "in all: {refused}");
    until("exactly the three children", Duration::from_secs(5), || processes_with(&mark).len() == 3).await;

    // Bob's child dies in the middle of a call: the call gets a JSON-RPC error, and the session
    // is gone.
    let bobs = processes_with(&mark).into_iter().find(|(_, env)| env.iter().any(|v| v == "MCP_SUBJECT=bob")).unwrap().0;
    let pending = tokio::spawn(long_call(&b, 20));
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::process::Command::new("kill").args(["-KILL", &bobs.to_string()]).status().unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(10), pending).await.expect("no hang").unwrap();
    assert_eq!(failed["id"], 9, "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap_or_default().contains("exited"), "{failed}");
    let mut gone = 0;
    for _ in 0..30 {
        gone = b.post_json(ping.clone()).await.status().as_u16();
        if gone == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gone, 404, "the crashed session ended");
    until("bob's place freed", Duration::from_secs(5), || processes_with(&mark).len() == 2).await;
    let again = RawSession::open(&server.resource(), &bob).await;
    assert!(again.id.is_some(), "a new session gets a new child");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_revoked_sessions_end_their_children_and_sessionless_requests_are_refused() {
    let mark = mark();
    let server = stdio_server(&mark, &["--mcp-session-idle-timeout", "2s", "--mcp-upstream-check-interval", "1s"]).await;
    let client = server.client("none").await;
    let alice = server.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();

    let sessionless = RawSession { url: server.resource(), token: alice.clone(), id: None, http: server.http.clone() };
    let refused = sessionless.post_json(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!(refused.status(), 400);
    let refused = answer(refused).await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("initialize"), "{refused}");

    let idle = RawSession::open(&server.resource(), &alice).await;
    assert_eq!(processes_with(&mark).len(), 1);
    until("the idle session's child ending", Duration::from_secs(10), no_process_left(&mark)).await;
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    assert_eq!(idle.post_json(ping.clone()).await.status(), 404, "the idle session is gone");

    // Revoking the grant (its refresh token revokes the family) ends the child while the
    // session is in use.
    let tokens = server.tokens(&client, "bob").await;
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    let used = RawSession::open(&server.resource(), access).await;
    assert_eq!(used.post_json(ping.clone()).await.status(), 200);
    assert_eq!(processes_with(&mark).len(), 1);
    assert_eq!(server.revoke(&client, refresh).await, 200);
    until("the revoked owner's child ending", Duration::from_secs(5), no_process_left(&mark)).await;
}

/// Two instances on one Redis: a session's child runs where it started; requests reaching the
/// other instance are relayed to it over the session bus. An instance that stops answering is
/// gone for the others (a clear JSON-RPC error), and one that stops ends its children first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_relay_to_the_child_and_stop_without_leaving_one() {
    use mcp_oauth_testkit::forwarder::Forwarder;
    use mcp_oauth_testkit::process::ServerProcess;
    use mcp_oauth_testkit::redis_server::TestRedis;

    let mark = mark();
    let command = everything_command();
    let redis = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let front = Forwarder::start(vec![format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}")], None).await;
    let storage = redis.url();
    let env = [
        ("STORAGE_URL", storage.as_str()),
        ("BASE_URI", front.base.as_str()),
        ("MCP_UPSTREAM_COMMAND", command.as_str()),
        ("MCP_UPSTREAM_ENV", mark.as_str()),
        // The relay's trail, for a failure to show.
        ("RUST_LOG", "info,rmcp=warn,mcp_oauth_resource::gateway::stdio=debug"),
    ];
    let mut a = ServerProcess::start(port_a, &env).await;
    let b = ServerProcess::start(port_b, &env).await;
    let (log_a, log_b) = (a.log.clone(), b.log.clone());
    // Whatever hangs fails within the bound, with both instances' relay trails.
    let steps = async {
        let on_a = TestServer::remote(a.base.clone(), mcp_oauth_testkit::http::http_client());
        let client = on_a.client("none").await;
        let token = on_a.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();

        let session = RawSession::open(&a.resource(), &token).await;
        assert_eq!(processes_with(&mark).len(), 1);
        let via_b = session.via(&b.resource());
        let echo = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "via B"}}});
        let relayed = relay(&via_b, echo, &a, &b).await;
        assert!(relayed.to_string().contains("via B"), "B relays to A's child: {relayed}\n{}", both_logs(&a, &b));
        assert_eq!(processes_with(&mark).len(), 1, "B started no child of its own");
        let deleted = via_b.request(reqwest::Method::DELETE).send().await.unwrap();
        assert!(deleted.status().is_success());
        until("A's child ending with a DELETE on B", Duration::from_secs(10), no_process_left(&mark)).await;

        // An instance that stops answering (here: stopped with SIGSTOP) is gone for B: the request
        // gets a clear JSON-RPC error and the session ends.
        let second = RawSession::open(&a.resource(), &token).await;
        let third = RawSession::open(&a.resource(), &token).await;
        let via_b = second.via(&b.resource());
        let ping = json!({"jsonrpc": "2.0", "id": 5, "method": "ping"});
        assert_eq!(relay(&via_b, ping.clone(), &a, &b).await["id"], 5);
        a.signal("STOP");
        let after = relay(&via_b, json!({"jsonrpc": "2.0", "id": 6, "method": "ping"}), &a, &b).await;
        a.signal("CONT");
        assert!(after["error"]["message"].as_str().unwrap_or_default().contains("gone"), "{after}\n{}", both_logs(&a, &b));
        let over = via_b.post_json(ping.clone()).await;
        let status = over.status();
        assert_eq!(status, 404, "and the session is over: {}\n{}", over.text().await.unwrap(), b.logs());

        // A stopping instance ends its children before it exits, and their sessions with them.
        a.stop();
        assert!(processes_with(&mark).is_empty(), "A stopped its children before it exited:\n{}", a.logs());
        assert_eq!(third.via(&b.resource()).post_json(ping).await.status(), 404, "its sessions ended with it");
    };
    if tokio::time::timeout(Duration::from_secs(120), steps).await.is_err() {
        let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
        panic!(
            "the relay test did not finish within 120 s\n--- instance A ---\n{}\n--- instance B ---\n{}",
            read(&log_a),
            read(&log_b)
        );
    }
    drop((b, front, redis));
}
