//! Redis stops while the server is serving, then comes back on the same port.

use std::time::{Duration, Instant};

use mcp_oauth_testkit::http::{TestServer, http_client};
use mcp_oauth_testkit::process::{ServerProcess, free_port};
use mcp_oauth_testkit::redis_server::TestRedis;
use serde_json::json;

/// What a request may take during an outage: the storage timeout and some slack.
const BOUND: Duration = Duration::from_millis(2500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_a_bounded_503_and_service_resumes_without_a_restart() {
    let mut redis = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let url = redis.url();
    let mut process = ServerProcess::start(free_port(), &[("STORAGE_URL", &url), ("STORAGE_TIMEOUT", "1s")]).await;
    let server = TestServer::remote(process.base.clone(), http_client());
    let client = server.client("client_secret_post").await;
    let tokens = server.tokens(&client, "alice").await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(server.get_json("/health/ready").await.0, 200);

    // A stream of /mcp requests runs through the outage; none may be answered 401.
    let base = process.base.clone();
    let (stop_stream, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let token = access.clone();
    let stream = tokio::spawn(async move {
        let probe = TestServer::remote(base, http_client());
        let mut statuses = Vec::new();
        loop {
            if stopped.try_recv().is_ok() {
                return statuses;
            }
            statuses.push(probe.mcp_initialize(Some(&token)).await.status().as_u16());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::task::block_in_place(|| redis.stop());

    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = server.register(json!({"redirect_uris": ["https://app.example/cb"]})).await;
        assert_eq!((status, body["error"].as_str()), (503, Some("temporarily_unavailable")));
        assert!(started.elapsed() < BOUND, "register answered in {:?}", started.elapsed());

        let started = Instant::now();
        let (status, body) = server.refresh(&client, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!((status, body["error"].as_str()), (503, Some("temporarily_unavailable")));
        assert!(started.elapsed() < BOUND);

        let started = Instant::now();
        let response = server.mcp_initialize(Some(&access)).await;
        assert_eq!(response.status(), 503, "a storage failure is never an invalid token");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert!(body["error"]["code"].is_i64());
        assert!(started.elapsed() < BOUND);

        assert_eq!(server.get_json("/health").await.0, 200, "the process is alive");
        assert_eq!(server.get_json("/health/ready").await.0, 503, "but not ready");
    }
    let page = server.http.get(server.url(&format!("/authorize?client_id={}", client.client_id))).send().await.unwrap();
    assert_eq!(page.status(), 503);

    let _ = stop_stream.send(());
    let statuses = stream.await.unwrap();
    assert!(statuses.contains(&503), "the stream saw the outage: {statuses:?}");
    assert!(!statuses.contains(&401), "no storage failure became a 401: {statuses:?}");
    assert!(statuses.iter().all(|s| [200, 503].contains(s)), "{statuses:?}");

    tokio::task::block_in_place(|| redis.restart());
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.get_json("/health/ready").await.0 != 200 {
        assert!(Instant::now() < deadline, "service did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The new Redis is empty, so start over: everything works again, with no restart.
    let client = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    assert_eq!(server.mcp_initialize(tokens["access_token"].as_str()).await.status(), 200);
    assert!(process.logs().contains("listening"));
    process.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_is_logged_with_its_cause_route_and_request_id() {
    let mut redis = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let url = redis.url();
    let process = ServerProcess::start(free_port(), &[("STORAGE_URL", &url), ("STORAGE_TIMEOUT", "1s")]).await;
    let server = TestServer::remote(process.base.clone(), http_client());
    let client = server.client("none").await;
    redis.stop();

    let response = server
        .http
        .post(server.url("/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "r"), ("client_id", &client.client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(!body.to_string().to_lowercase().contains("redis"), "the cause is never sent: {body}");

    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let logs = process.logs();
        if let Some(line) = logs.lines().find(|l| l.contains("request failed") && l.contains(&request_id)) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no log line for request {request_id}: {logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(line.contains("route=/token") || line.contains("route=\"/token\""), "{line}");
    assert!(line.contains("cause=") && line.contains("storage unavailable"), "the backend's message is logged: {line}");

    let echoed = server.http.get(server.url("/health")).header("x-request-id", "lb-1234").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "lb-1234", "a well-formed inbound id is kept");
    let replaced = server.http.get(server.url("/health")).header("x-request-id", "a b\"c").send().await.unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "a b\"c", "anything else is replaced");
}
