//! The real binary, as users run it.

use mcp_oauth_testkit::http::{
    Pkce, TestClient, TestServer, held_mcp_workers, holds_mcp_workers_within, http_client, redirect_params, series,
};
use mcp_oauth_testkit::process::{ServerProcess, free_port};
use serde_json::json;

/// A view of a child process through the same helpers the in-process tests use.
fn remote(process: &ServerProcess) -> TestServer {
    TestServer::remote(process.base.clone(), http_client())
}

#[tokio::test]
async fn no_token_code_or_secret_ever_reaches_the_logs() {
    let mut process = ServerProcess::start(
        free_port(),
        &[("RUST_LOG", "trace"), ("INTROSPECTION_CLIENT_ID", "rs"), ("INTROSPECTION_CLIENT_SECRET", "rs-secret-value")],
    )
    .await;
    let server = remote(&process);
    let client = server.client("client_secret_basic").await;
    let pkce = Pkce::new();
    let form = server.consent_form(&client, &pkce).await;
    let redirect = server.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
    let code = redirect_params(&redirect)["code"].clone();
    let (status, tokens) = server.exchange(&client, &code, &pkce).await;
    assert_eq!(status, 200);
    let (_, refreshed) = server.refresh(&client, tokens["refresh_token"].as_str().unwrap()).await;
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(server.introspect(("rs", "rs-secret-value"), access).await.1["active"], true);
    assert_eq!(server.mcp_initialize(Some(access)).await.status(), 200);
    assert_eq!(server.revoke(&client, refreshed["refresh_token"].as_str().unwrap()).await, 200);
    process.stop();

    let logs = process.logs();
    assert!(logs.contains("authorization code exchanged"), "the logs were captured at trace level");
    let secrets = [
        ("client secret", client.secret.clone().unwrap()),
        ("introspection secret", "rs-secret-value".to_owned()),
        ("code", code),
        ("code verifier", pkce.verifier.clone()),
        ("csrf token", form.csrf_token.clone()),
        ("consent request id", form.request_id.clone()),
        ("access token", tokens["access_token"].as_str().unwrap().to_owned()),
        ("refresh token", tokens["refresh_token"].as_str().unwrap().to_owned()),
        ("rotated access token", access.to_owned()),
        ("rotated refresh token", refreshed["refresh_token"].as_str().unwrap().to_owned()),
    ];
    for (what, secret) in secrets {
        assert!(!logs.contains(&secret), "the {what} appears in the logs");
    }
}

#[tokio::test]
async fn the_binary_serves_internal_mode_with_defaults() {
    let process = ServerProcess::start(free_port(), &[]).await;
    let server = remote(&process);
    let (status, meta) = server.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!((status, meta["issuer"].clone()), (200, json!(process.base)));
    let client: TestClient = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    assert_eq!(server.mcp_initialize(tokens["access_token"].as_str()).await.status(), 200);
}

/// LOG_FORMAT=json: every line is one JSON object; each answered request has an access line
/// naming its status, inside its span with the request id the answer returned, the route
/// template and the peer; no token or code is in them.
#[tokio::test]
async fn json_logs_parse_and_carry_each_request_id() {
    let mut process = ServerProcess::start(free_port(), &[("LOG_FORMAT", "json"), ("RUST_LOG", "debug")]).await;
    let server = remote(&process);
    let client = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    assert_eq!(server.mcp_initialize(tokens["access_token"].as_str()).await.status(), 200);
    let answer = server.http.get(server.url("/.well-known/oauth-authorization-server")).send().await.unwrap();
    let request_id = answer.headers()["x-request-id"].to_str().unwrap().to_owned();
    let unknown = server.http.get(server.url("/no/such/path?code=secret-looking")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    process.stop();

    let logs = process.logs();
    let lines: Vec<serde_json::Value> =
        logs.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    let access: Vec<&serde_json::Value> = lines.iter().filter(|l| l["target"] == "access").collect();
    assert!(access.len() >= 6, "an access line per request: {logs}");
    let metadata = access
        .iter()
        .find(|l| l["span"]["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("the answer's request id is in the log: {logs}"));
    assert_eq!(metadata["fields"]["status"], 200);
    assert_eq!(metadata["span"]["route"], "/.well-known/oauth-authorization-server");
    assert_eq!(metadata["span"]["peer"], "127.0.0.1");
    assert!(access.iter().any(|l| l["fields"]["status"] == 404));
    let token_line = access.iter().find(|l| l["span"]["route"] == "/token").expect("the code exchange's access line");
    assert_eq!(token_line["span"]["client_id"], client.client_id.as_str(), "the caller is named once known");
    let mcp_line = access.iter().find(|l| l["span"]["route"] == "/mcp").expect("the /mcp access line, under its template");
    assert_eq!((&mcp_line["span"]["subject"], &mcp_line["span"]["client_id"]), (&json!("alice"), &json!(client.client_id)));
    for secret in [tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap(), "secret-looking"] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

/// A scripted flow moves each counter by what it did: requests by route template and status,
/// tokens issued by grant, a refusal by its error, a registration, a revocation, a rate-limit
/// trip; with METRICS_ADDR the metrics leave the public listener.
#[tokio::test]
async fn metrics_count_a_scripted_flow() {
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut process = ServerProcess::start(
        free_port(),
        &[("METRICS_ADDR", metrics_addr.as_str()), ("RATE_LIMIT_REVOKE", "2/1m"), ("REFRESH_GRACE", "0")],
    )
    .await;
    let server = remote(&process);
    let scrape = async || {
        let response = http_client().get(format!("http://{metrics_addr}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    assert_eq!(server.http.get(server.url("/metrics")).send().await.unwrap().status(), 404, "not on the public listener");
    let before = scrape().await;

    let client = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    let session = mcp_oauth_testkit::mcp::RawSession::open(&server.resource(), tokens["access_token"].as_str().unwrap()).await;
    let stream = session.request(reqwest::Method::GET).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let streaming = scrape().await;
    assert_eq!(series(&streaming, "mcp_open_streams"), 1.0, "the open GET stream is counted: {streaming}");
    assert_eq!(series(&streaming, "mcp_sessions") - series(&before, "mcp_sessions"), 1.0, "the session is counted");
    drop(stream);
    let deleted = session.request(reqwest::Method::DELETE).send().await.unwrap();
    assert!(deleted.status().is_success());
    let mut ended = scrape().await;
    for _ in 0..50 {
        if series(&ended, "mcp_sessions") == series(&before, "mcp_sessions") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        ended = scrape().await;
    }
    assert_eq!(series(&ended, "mcp_sessions"), series(&before, "mcp_sessions"), "a deleted session is no longer counted");
    let (status, _) = server.refresh(&client, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let (status, _) = server.refresh(&client, "not-a-refresh-token").await;
    assert_eq!(status, 400);
    let (status, _) = server.refresh(&client, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "a reused refresh token");
    for _ in 0..3 {
        server.revoke(&client, "not-a-token").await;
    }
    let after = scrape().await;
    process.stop();

    let moved = |name: &str| series(&after, name) - series(&before, name);
    assert_eq!(moved(r#"oauth_registrations_total{outcome="registered"}"#), 1.0, "{after}");
    assert_eq!(moved(r#"oauth_tokens_issued_total{grant_type="authorization_code"}"#), 1.0);
    assert_eq!(moved(r#"oauth_tokens_issued_total{grant_type="refresh_token"}"#), 1.0);
    assert_eq!(moved(r#"oauth_token_refusals_total{grant_type="refresh_token",error="invalid_grant"}"#), 2.0);
    assert_eq!(moved(r#"oauth_events_total{event="refresh_reuse_detected",result="family_revoked"}"#), 1.0, "{after}");
    assert_eq!(moved(r#"oauth_events_total{event="refresh_rotated",result="rotated"}"#), 1.0);
    assert_eq!(moved(r#"oauth_events_total{event="code_issued",result="issued"}"#), 1.0);
    // Storage: every port call counted by backend, operation and outcome, and timed.
    assert_eq!(moved(r#"storage_operations_total{backend="memory",operation="codes.redeem",outcome="ok"}"#), 1.0);
    assert!(moved(r#"storage_operations_total{backend="memory",operation="access_tokens.get",outcome="ok"}"#) >= 2.0);
    assert!(
        after.contains(
            r#"storage_operation_duration_seconds_bucket{backend="memory",operation="refresh_tokens.rotate",le="0.001"}"#
        )
    );
    assert_eq!(moved("oauth_revocations_total"), 2.0);
    assert_eq!(moved(r#"rate_limit_refusals_total{limit="revoke"}"#), 1.0);
    assert_eq!(moved(r#"http_requests_total{route="/token",method="POST",status="200"}"#), 2.0);
    assert_eq!(moved(r#"http_requests_total{route="/revoke",method="POST",status="429"}"#), 1.0);
    assert!(after.contains(r#"http_request_duration_seconds_bucket{route="/token",method="POST",le="0.005"}"#), "{after}");
    assert!(!after.contains(tokens["access_token"].as_str().unwrap()));
    assert!(series(&after, "process_resident_memory_bytes") > 1_000_000.0, "process metrics: {after}");
}

/// AUDIT_LOG: a scripted flow yields exactly its events, in order, one JSON line each, with
/// the request's id and client address, and no secret.
#[tokio::test]
async fn the_audit_trail_records_a_flow_and_a_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit.jsonl");
    let trail_path = trail.display().to_string();
    let mut process = ServerProcess::start(
        free_port(),
        &[
            ("AUDIT_LOG", trail_path.as_str()),
            ("REFRESH_GRACE", "0"),
            ("INTROSPECTION_CLIENT_ID", "rs"),
            ("INTROSPECTION_CLIENT_SECRET", "rs-secret-value"),
        ],
    )
    .await;
    let server = remote(&process);
    let client = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    let first_refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, rotated) = server.refresh(&client, first_refresh).await;
    assert_eq!(status, 200);
    assert_eq!(server.refresh(&client, first_refresh).await.0, 400, "reuse of a rotated refresh token");
    assert_eq!(server.revoke(&client, rotated["access_token"].as_str().unwrap()).await, 200);
    assert_eq!(server.introspect(("rs", "wrong"), "anything").await.0, 401);
    process.stop();

    let text = std::fs::read_to_string(&trail).unwrap();
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = events.iter().map(|e| e["fields"]["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "client_registered",
            "login",
            "consent",
            "code_issued",
            "code_redeemed",
            "refresh_rotated",
            "refresh_reuse_detected",
            "revocation",
            "introspection_refused"
        ],
        "{text}"
    );
    let reuse = &events[6];
    assert_eq!(reuse["fields"]["result"], "family_revoked");
    assert_eq!(reuse["fields"]["subject"], "alice");
    assert_eq!(reuse["fields"]["client_id"], client.client_id.as_str());
    assert_eq!(reuse["span"]["route"], "/token");
    assert_eq!(reuse["span"]["peer"], "127.0.0.1");
    assert!(reuse["span"]["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(reuse["timestamp"].is_string());
    for secret in [first_refresh, rotated["refresh_token"].as_str().unwrap(), tokens["access_token"].as_str().unwrap(), "wrong"] {
        assert!(!text.contains(secret), "a secret reached the audit trail");
    }
}

/// LOG_SPANS: each span's close is logged with its time, inside the chain of spans it ran in,
/// so one request is followed from its route into the OAuth step and each storage call.
#[tokio::test]
async fn spans_follow_a_request_into_the_domain_and_its_storage() {
    let mut process =
        ServerProcess::start(free_port(), &[("RUST_LOG", "debug,rmcp=warn"), ("LOG_SPANS", "true"), ("LOG_FORMAT", "json")])
            .await;
    let server = remote(&process);
    let client = server.client("none").await;
    server.tokens(&client, "alice").await;
    process.stop();
    let lines: Vec<serde_json::Value> = process.logs().lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let redeemed = lines
        .iter()
        .find(|line| line["span"]["name"] == "storage" && line["span"]["operation"] == "codes.redeem")
        .expect("the code redemption's storage span is logged");
    let chain: Vec<&str> = redeemed["spans"].as_array().unwrap().iter().map(|span| span["name"].as_str().unwrap()).collect();
    assert_eq!(chain, ["request", "oauth.token"], "{redeemed}");
    assert_eq!(redeemed["spans"][0]["route"], "/token");
    assert_eq!(redeemed["span"]["backend"], "memory");
    assert!(redeemed["fields"]["time.busy"].is_string(), "{redeemed}");
}

/// A server started with `env`, and an access token of alice's.
async fn with_alice(env: &[(&str, &str)]) -> (ServerProcess, TestServer, String) {
    let process = ServerProcess::start(free_port(), env).await;
    let server = remote(&process);
    let client = server.client("none").await;
    let token = server.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    (process, server, token)
}

/// The session workers `server` holds.
async fn held_workers(server: &TestServer) -> f64 {
    held_mcp_workers(&server.http, &server.base).await
}

/// Waits until `server` holds `count` workers, failing with `never` after 5 s.
async fn until_held(server: &TestServer, count: f64, never: &str) {
    assert!(holds_mcp_workers_within(&server.http, &server.base, count, std::time::Duration::from_secs(5)).await, "{never}");
}

/// MCP_SESSION_WORKER_IDLE: an unused session's worker is released (the `mcp_sessions` gauge
/// falls back) and the session, kept in storage, is restored by its next request, log level
/// included.
#[tokio::test]
async fn an_idle_sessions_worker_is_released_and_the_session_restored_on_use() {
    let (_process, server, token) = with_alice(&[("MCP_SESSION_WORKER_IDLE", "1s")]).await;
    let before = held_workers(&server).await;
    let session = mcp_oauth_testkit::mcp::RawSession::open(&server.resource(), &token).await;
    let level = json!({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "error"}});
    assert_eq!(session.call(level).await.0, 200);
    assert_eq!(held_workers(&server).await - before, 1.0, "the session's worker is held");
    until_held(&server, before, "the idle worker was never released").await;
    let echo =
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "again"}}});
    let (status, messages) = session.call(echo).await;
    assert_eq!(status, 200, "the released session is restored: {messages:?}");
    assert!(
        messages.iter().any(|m| m["result"]["content"][0]["text"].as_str().is_some_and(|t| t.contains("again"))),
        "{messages:?}"
    );
    assert_eq!(held_workers(&server).await - before, 1.0, "and held again");
}

/// MCP_SESSION_WORKER_IDLE releases only a copy with nothing to lose: an open GET stream keeps
/// it (and stays open), so does a resource subscription's updater; once both are gone, it goes.
#[tokio::test]
async fn an_open_stream_or_a_subscription_keeps_an_idle_sessions_worker() {
    let idle = std::time::Duration::from_secs(1);
    let (_process, server, token) = with_alice(&[("MCP_SESSION_WORKER_IDLE", "1s"), ("RESOURCE_UPDATE_INTERVAL", "1s")]).await;
    let before = held_workers(&server).await;
    let session = mcp_oauth_testkit::mcp::RawSession::open(&server.resource(), &token).await;
    let listening = session.request(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(listening.status(), 200);
    let mut events = mcp_oauth_testkit::mcp::EventStream::new(listening);
    let subscribe =
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": {"uri": "test://watched-resource"}});
    assert_eq!(session.call(subscribe).await.0, 200);

    tokio::time::sleep(idle * 3).await;
    assert_eq!(held_workers(&server).await - before, 1.0, "a subscribed session with its GET stream open is held");
    let update = events.next_message(idle * 3).await.expect("updates still arrive on the GET stream");
    assert_eq!(update["method"], "notifications/resources/updated", "{update}");
    drop(events);
    tokio::time::sleep(idle * 3).await;
    assert_eq!(held_workers(&server).await - before, 1.0, "the subscription alone keeps the copy");

    let unsubscribe =
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/unsubscribe", "params": {"uri": "test://watched-resource"}});
    assert_eq!(session.call(unsubscribe).await.0, 200);
    until_held(&server, before, "the idle worker was never released").await;
}
