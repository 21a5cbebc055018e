//! Sessions belong to the user whose token created them, through the client that did.

use std::time::Duration;

use mcp_oauth_testkit::mcp::RawSession;
use serde_json::json;

use crate::{server_and_token, token_for};

fn ping() -> serde_json::Value {
    json!({ "jsonrpc": "2.0", "id": 7, "method": "ping" })
}

#[tokio::test]
async fn another_users_session_looks_exactly_like_an_unknown_one() {
    let server = mcp_oauth_testkit::http::TestServer::start(&[]).await;
    let alices_client = server.client("none").await;
    let alice = server.tokens(&alices_client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let bob = token_for(&server, "bob").await;
    let session = RawSession::open(&server.resource(), &alice).await;
    let (status, messages) = session.call(ping()).await;
    assert_eq!((status, messages[0]["result"].clone()), (200, json!({})));

    let as_bob = RawSession {
        token: bob.clone(),
        ..RawSession {
            url: session.url.clone(),
            token: String::new(),
            id: session.id.clone(),
            http: mcp_oauth_testkit::http::http_client(),
        }
    };
    let foreign = as_bob.post_json(ping()).await;
    let foreign_status = foreign.status();
    let foreign_body = foreign.text().await.unwrap();
    let stranger = RawSession {
        url: session.url.clone(),
        token: bob,
        id: Some("no-such-session".into()),
        http: mcp_oauth_testkit::http::http_client(),
    };
    let unknown = stranger.post_json(ping()).await;
    assert_eq!(foreign_status, 404);
    assert_eq!(unknown.status(), 404);
    assert_eq!(foreign_body, unknown.text().await.unwrap(), "the same answer as an unknown session");
    assert_eq!(as_bob.request(reqwest::Method::DELETE).send().await.unwrap().status(), 404, "bob cannot end it");
    assert_eq!(as_bob.request(reqwest::Method::GET).send().await.unwrap().status(), 404, "nor listen to it");

    // Alice's session is untouched by all of that, and alice with a fresh token from the same
    // client still owns it; through another client, the same user does not reach it.
    assert_eq!(session.call(ping()).await.0, 200);
    let through_another_client = RawSession { token: token_for(&server, "alice").await, ..session.via(&session.url) };
    assert_eq!(through_another_client.post_json(ping()).await.status(), 404, "another client's session is not there");
    let fresh = server.tokens(&alices_client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let alice_again = RawSession { token: fresh, ..session };
    assert_eq!(alice_again.call(ping()).await.0, 200);
}

#[tokio::test]
async fn delete_ends_the_session_and_stale_ids_get_404() {
    let (server, token) = server_and_token(&[], "alice").await;
    let session = RawSession::open(&server.resource(), &token).await;
    assert_eq!(session.call(ping()).await.0, 200);
    let deleted = session.request(reqwest::Method::DELETE).send().await.unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(session.call(ping()).await.0, 404, "a deleted session answers 404");
    let stale = RawSession { id: Some("4b0e6a1c-0000-4000-8000-000000000000".into()), ..session };
    assert_eq!(stale.call(ping()).await.0, 404);
}

#[tokio::test]
async fn idle_sessions_expire() {
    let (server, token) = server_and_token(&["--mcp-session-idle-timeout", "1"], "alice").await;
    let session = RawSession::open(&server.resource(), &token).await;
    assert_eq!(session.call(ping()).await.0, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(session.call(ping()).await.0, 200, "use keeps a session alive");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(session.call(ping()).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(session.call(ping()).await.0, 404, "an idle session has expired");
}

/// One user through one client holds at most MAX_SESSIONS_PER_USER sessions: the next is
/// refused with a JSON-RPC error, the same user through another client still gets one, and
/// ending a session frees its place.
#[tokio::test]
async fn a_users_sessions_are_capped_and_the_next_is_refused() {
    let server = mcp_oauth_testkit::http::TestServer::start(&["--max-sessions-per-user", "2"]).await;
    let first_client = server.client("none").await;
    let alice = server.tokens(&first_client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let kept = RawSession::open(&server.resource(), &alice).await;
    let ended = RawSession::open(&server.resource(), &alice).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let fresh = RawSession { id: None, ..kept.via(&server.resource()) };
    let refused = fresh.post_json(initialize.clone()).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("mcp-session-id").is_none(), "no session id for a refused session");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("2 open MCP sessions"), "{body}");
    assert_eq!(kept.call(ping()).await.0, 200, "the sessions held still work");

    let second_client = server.client("none").await;
    let through_another = server.tokens(&second_client, "alice").await["access_token"].as_str().unwrap().to_owned();
    RawSession::open(&server.resource(), &through_another).await;

    assert!(ended.request(reqwest::Method::DELETE).send().await.unwrap().status().is_success());
    RawSession::open(&server.resource(), &alice).await;
}

/// A session holds at most MAX_STREAMS_PER_SESSION open streams on an instance: while its GET
/// stream is open (the limit here is one), a request is refused; once it closes, requests pass.
#[tokio::test]
async fn a_sessions_open_streams_are_capped() {
    let server = mcp_oauth_testkit::http::TestServer::start(&["--max-streams-per-session", "1"]).await;
    let token = token_for(&server, "alice").await;
    let session = RawSession::open(&server.resource(), &token).await;
    let stream = session.request(reqwest::Method::GET).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let refused = session.post_json(ping()).await;
    assert_eq!(refused.status(), 429);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("1 open streams"), "{body}");
    drop(stream);
    let mut passed = 0;
    for _ in 0..50 {
        if session.call(ping()).await.0 == 200 {
            passed += 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(passed, 1, "the closed stream freed its place");
    assert_eq!(session.call(ping()).await.0, 200, "a finished answer holds no place");
}

/// A user who opens and ends sessions in a loop stays under MAX_SESSIONS_PER_USER but not under
/// RATE_LIMIT_MCP_SESSIONS: the session past the quota is refused with 429, `Retry-After` and
/// `RateLimit` headers and a JSON-RPC error, while another user from the same address, and the
/// sessions already open, still pass.
#[tokio::test]
async fn opening_sessions_in_a_loop_is_rate_limited_per_user() {
    let server = mcp_oauth_testkit::http::TestServer::start(&["--rate-limit-mcp-sessions", "3/1m"]).await;
    let alice = token_for(&server, "alice").await;
    let mut kept = None;
    for _ in 0..3 {
        let session = RawSession::open(&server.resource(), &alice).await;
        assert!(session.request(reqwest::Method::DELETE).send().await.unwrap().status().is_success());
        kept = Some(session);
    }
    let fresh = RawSession { id: None, ..kept.unwrap().via(&server.resource()) };
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let refused = fresh.post_json(initialize).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("mcp-session-id").is_none(), "no session for a refused request");
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.headers()["ratelimit-policy"], "3;w=60");
    assert!(refused.headers()["ratelimit"].to_str().unwrap().starts_with("limit=3, remaining=0, reset="));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(body["error"]["message"].as_str().unwrap().contains("too many MCP sessions"), "{body}");

    let bob = token_for(&server, "bob").await;
    let bobs = RawSession::open(&server.resource(), &bob).await;
    assert_eq!(bobs.call(ping()).await.0, 200, "another user from the same address is not limited");
}
