//! Two server processes on one Redis behind one BASE_URI: any instance serves any request.

use std::collections::HashSet;
use std::sync::Arc;

use mcp_oauth_testkit::forwarder::Forwarder;
use mcp_oauth_testkit::http::{ConsentForm, Pkce, TestServer, http_client, redirect_params};
use mcp_oauth_testkit::process::{ServerProcess, free_port};
use mcp_oauth_testkit::redis_server::TestRedis;
use serde_json::json;

const RS: (&str, &str) = ("rs", "rs-secret");

/// Two instances on one Redis, and a round-robin forwarder that is their shared BASE_URI.
pub struct Cluster {
    pub a: ServerProcess,
    pub b: ServerProcess,
    pub front: Forwarder,
    /// Runs as long as the cluster does.
    _redis: TestRedis,
}

impl Cluster {
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        let redis = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
        let (port_a, port_b) = (free_port(), free_port());
        let (url_a, url_b) = (format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}"));
        let front = Forwarder::start(vec![url_a, url_b], None).await;
        let url = redis.url();
        let mut env = vec![
            ("STORAGE_URL", url.as_str()),
            ("BASE_URI", front.base.as_str()),
            ("INTROSPECTION_CLIENT_ID", RS.0),
            ("INTROSPECTION_CLIENT_SECRET", RS.1),
        ];
        env.extend_from_slice(extra);
        let a = ServerProcess::start(port_a, &env).await;
        let b = ServerProcess::start(port_b, &env).await;
        Self { a, b, front, _redis: redis }
    }

    /// Talks to one instance directly; requests still name the shared BASE_URI's resource.
    pub fn direct(&self, process: &ServerProcess) -> TestServer {
        TestServer::remote(process.base.clone(), http_client())
    }

    pub fn front(&self) -> TestServer {
        TestServer::remote(self.front.base.clone(), http_client())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_started_on_a_completes_on_b_and_tokens_work_everywhere() {
    let cluster = Cluster::start(&[]).await;
    let (a, b) = (cluster.direct(&cluster.a), cluster.direct(&cluster.b));
    let client = a.client("client_secret_basic").await;
    let pkce = Pkce::new();
    let page = b.authorize(&client, &pkce, &[]).await;
    assert_eq!(page.status(), 200, "B knows the client A registered");
    let form = ConsentForm::read(page).await;
    let redirect = a.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
    let params = redirect_params(&redirect);
    assert_eq!(params["iss"], cluster.front.base, "both instances are one issuer");
    let (status, tokens) = b.exchange(&client, &params["code"], &pkce).await;
    assert_eq!(status, 200, "B redeems the code A issued");
    let access = tokens["access_token"].as_str().unwrap();

    let resource = format!("{}/mcp", cluster.front.base);
    for instance in [&a, &b] {
        let response = instance
            .http
            .post(format!("{}/mcp", instance.base))
            .bearer_auth(access)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the token works on {}", instance.base);
        assert_eq!(instance.introspect(RS, access).await.1["aud"], json!(resource));
    }

    // A revocation on A is seen by B on the very next request.
    assert_eq!(a.revoke(&client, access).await, 200);
    assert_eq!(b.introspect(RS, access).await.1, json!({"active": false}));
    let refused = b
        .http
        .post(format!("{}/mcp", b.base))
        .bearer_auth(access)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_redemptions_of_one_code_across_both_yield_one_token_response() {
    let cluster = Cluster::start(&[]).await;
    let front = Arc::new(cluster.front());
    let client = front.client("none").await;
    let pkce = Arc::new(Pkce::new());
    let code = front.code(&client, &pkce, "alice").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let attempts: Vec<_> = (0..200)
        .map(|_| {
            let (front, client, pkce, code, barrier) =
                (front.clone(), client.clone(), pkce.clone(), code.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                front.exchange(&client, &code, &pkce).await.0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "exactly one token response");
    assert!(statuses.iter().all(|s| [200, 400].contains(s)), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_across_both_yield_one_successor_and_reuse_still_revokes() {
    let cluster = Cluster::start(&[("REFRESH_GRACE", "5s")]).await;
    let front = Arc::new(cluster.front());
    let client = front.client("none").await;
    let tokens = front.tokens(&client, "alice").await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let refreshes: Vec<_> = (0..20)
        .map(|_| {
            let (front, client, r1, barrier) = (front.clone(), client.clone(), r1.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                front.refresh(&client, &r1).await
            })
        })
        .collect();
    let mut successors = HashSet::new();
    let mut access = None;
    for refresh in refreshes {
        let (status, body) = refresh.await.unwrap();
        assert_eq!(status, 200, "within the grace window every racer gets the successor: {body}");
        successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
        access = body["access_token"].as_str().map(str::to_owned);
    }
    assert_eq!(successors.len(), 1, "one successor");
    let r2 = successors.into_iter().next().unwrap();
    let access = access.unwrap();

    // The successor is used on one instance; the old token replayed on the other revokes all.
    let (a, b) = (cluster.direct(&cluster.a), cluster.direct(&cluster.b));
    let (status, third) = a.refresh(&client, &r2).await;
    assert_eq!(status, 200);
    let (status, reuse) = b.refresh(&client, &r1).await;
    assert_eq!((status, reuse["error"].as_str()), (400, Some("invalid_grant")));
    for token in [access.as_str(), third["access_token"].as_str().unwrap()] {
        assert_eq!(a.introspect(RS, token).await.1, json!({"active": false}));
    }
    assert_eq!(a.refresh(&client, third["refresh_token"].as_str().unwrap()).await.0, 400);
}

/// A limit kept in Redis holds across instances: requests to either count against one window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_instances() {
    let cluster = Cluster::start(&[("RATE_LIMIT_REGISTER", "4/1m")]).await;
    let metadata = json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "x", "token_endpoint_auth_method": "none"});
    let http = http_client();
    let mut statuses = Vec::new();
    for base in [&cluster.a.base, &cluster.b.base, &cluster.a.base, &cluster.b.base, &cluster.a.base, &cluster.b.base] {
        statuses.push(http.post(format!("{base}/register")).json(&metadata).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 201, 429, 429], "one window for both instances");
}

/// A metadata document fetched by one instance is reused by the other: the cache is in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_document_fetched_by_one_instance_serves_both() {
    use mcp_oauth_testkit::documents::{Answer, DocumentHost, client_document};
    let host = DocumentHost::start().await;
    let client_id = host.url("/shared");
    let redirect = "https://claude.ai/api/mcp/auth_callback";
    host.publish("/shared", Answer::json(&client_document(&client_id, "Shared", &[redirect]), Some("max-age=300")));
    let ca = host.ca_file.display().to_string();
    let cluster = Cluster::start(&[("CIMD_CA_CERT", ca.as_str()), ("CIMD_ALLOW_PRIVATE_NETWORKS", "true")]).await;
    let client = mcp_oauth_testkit::http::TestClient { client_id, secret: None, method: "none".into() };
    for instance in [&cluster.a, &cluster.b] {
        let page = cluster.direct(instance).authorize(&client, &Pkce::new(), &[("redirect_uri", redirect)]).await;
        assert_eq!(page.status(), 200);
    }
    assert_eq!(host.fetches("/shared"), 1, "the second instance used the first one's copy");
}
