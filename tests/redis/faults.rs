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
