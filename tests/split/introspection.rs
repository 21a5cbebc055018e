//! Two real processes: AUTH_MODE=auth_server and AUTH_MODE=external, over loopback.

use std::time::{Duration, Instant};

use mcp_oauth_testkit::http::{TestServer, http_client};
use mcp_oauth_testkit::mcp::{TestClientHandler, connect};
use mcp_oauth_testkit::process::{ServerProcess, free_port};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

const RS: (&str, &str) = ("mcp-rs", "rs-secret");

struct Split {
    auth: ServerProcess,
    mcp: ServerProcess,
    db: tempfile::TempDir,
}

impl Split {
    async fn start() -> Self {
        let db = tempfile::tempdir().unwrap();
        let (auth_port, mcp_port) = (free_port(), free_port());
        let auth = Self::start_auth(auth_port, mcp_port, &db).await;
        let auth_url = format!("http://127.0.0.1:{auth_port}");
        let mcp = ServerProcess::start(
            mcp_port,
            &[
                ("AUTH_MODE", "external"),
                ("AUTH_SERVER_URL", &auth_url),
                ("INTROSPECTION_CLIENT_ID", RS.0),
                ("INTROSPECTION_CLIENT_SECRET", RS.1),
                ("INTROSPECTION_CACHE_TTL", "1s"),
            ],
        )
        .await;
        Self { auth, mcp, db }
    }

    async fn start_auth(port: u16, mcp_port: u16, db: &tempfile::TempDir) -> ServerProcess {
        let resources = format!("http://127.0.0.1:{mcp_port}/mcp,https://other.example/mcp");
        let storage = format!("sqlite://{}", db.path().join("auth.db").display());
        ServerProcess::start(
            port,
            &[
                ("AUTH_MODE", "auth_server"),
                ("RESOURCES", &resources),
                ("INTROSPECTION_CLIENT_ID", RS.0),
                ("INTROSPECTION_CLIENT_SECRET", RS.1),
                ("STORAGE_URL", &storage),
            ],
        )
        .await
    }

    fn resource(&self) -> String {
        format!("{}/mcp", self.mcp.base)
    }

    fn auth_server(&self) -> TestServer {
        TestServer::remote(self.auth.base.clone(), http_client())
    }

    async fn token(&self, resource: &str) -> Value {
        let auth = self.auth_server();
        let client = auth.client("none").await;
        let pkce = mcp_oauth_testkit::http::Pkce::new();
        let page = auth.authorize(&client, &pkce, &[("resource", resource)]).await;
        assert_eq!(page.status(), 200);
        let form = mcp_oauth_testkit::http::ConsentForm::read(page).await;
        let redirect = auth.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
        let code = mcp_oauth_testkit::http::redirect_params(&redirect)["code"].clone();
        let (status, tokens) = auth.exchange(&client, &code, &pkce).await;
        assert_eq!(status, 200, "{tokens}");
        tokens
    }

    async fn mcp_status(&self, token: &str) -> u16 {
        TestServer::remote(self.mcp.base.clone(), http_client()).mcp_initialize(Some(token)).await.status().as_u16()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_from_the_401_leads_the_client_to_the_authorization_server() {
    let split = Split::start().await;
    let http = http_client();
    let challenge = http.post(split.resource()).json(&json!({})).send().await.unwrap();
    assert_eq!(challenge.status(), 401);
    let header = challenge.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let metadata_url = header.split("resource_metadata=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    assert_eq!(metadata_url, format!("{}/.well-known/oauth-protected-resource/mcp", split.mcp.base));
    let prm: Value = http.get(&metadata_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(prm["resource"], json!(split.resource()));
    let issuer = prm["authorization_servers"][0].as_str().unwrap().to_owned();
    assert_eq!(issuer, split.auth.base);
    let asm: Value =
        http.get(format!("{issuer}/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert_eq!(asm["issuer"], json!(issuer));
    assert!(asm["registration_endpoint"].as_str().unwrap().starts_with(&issuer));

    let tokens = split.token(&split.resource()).await;
    let access = tokens["access_token"].as_str().unwrap();
    let client = connect(&split.resource(), access, TestClientHandler::default()).await;
    let me = client.call_tool(CallToolRequestParams::new("whoami")).await.unwrap();
    let me: Value = serde_json::from_str(&me.content[0].as_text().unwrap().text).unwrap();
    assert_eq!(me["sub"], "alice");
    client.cancel().await.ok();

    // Each process serves only its half.
    assert_eq!(http.post(format!("{}/token", split.mcp.base)).send().await.unwrap().status(), 404);
    assert_eq!(http.post(format!("{}/mcp", split.auth.base)).send().await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_audiences_and_the_introspection_credential() {
    let split = Split::start().await;
    let tokens = split.token(&split.resource()).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(split.mcp_status(access).await, 200);

    // Revoked at the authorization server: refused within the cache bound (1 s here).
    let auth = split.auth_server();
    let revoke =
        auth.http.post(auth.url("/revoke")).form(&[("token", tokens["refresh_token"].as_str().unwrap())]).send().await.unwrap();
    assert_eq!(revoke.status(), 401, "revocation needs the client's identity");
    let client_id = {
        let answer: Value = auth.introspect(RS, access).await.1;
        answer["client_id"].as_str().unwrap().to_owned()
    };
    let revoked = auth.http.post(auth.url("/revoke")).form(&[("token", access), ("client_id", &client_id)]).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    let started = Instant::now();
    while split.mcp_status(access).await != 401 {
        assert!(started.elapsed() < Duration::from_millis(1600), "the revocation was not seen within the cache bound");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let foreign = split.token("https://other.example/mcp").await;
    assert_eq!(split.mcp_status(foreign["access_token"].as_str().unwrap()).await, 401, "another audience");

    let anonymous = auth.http.post(auth.url("/introspect")).form(&[("token", access)]).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "introspection needs the resource server's credential");
    assert_eq!(auth.introspect((RS.0, "wrong"), access).await.0, 401);

    // The resource server's calls to the authorization server are counted and timed.
    let scraped = reqwest::get(format!("{}/metrics", split.mcp.base)).await.unwrap().text().await.unwrap();
    let ok = r#"outbound_requests_total{peer="authorization_server",call="introspection",outcome="ok"}"#;
    assert!(mcp_oauth_testkit::http::series(&scraped, ok) >= 3.0, "{scraped}");
    assert!(scraped.contains(r#"outbound_request_duration_seconds_bucket{peer="authorization_server",call="introspection""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_server_going_down_is_503_and_its_return_restores_service() {
    let mut split = Split::start().await;
    let tokens = split.token(&split.resource()).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(split.mcp_status(&access).await, 200);
    split.auth.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = TestServer::remote(split.mcp.base.clone(), http_client()).mcp_initialize(Some(&access)).await;
    assert_eq!(response.status(), 503, "never 401: that would make clients discard good tokens");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");

    let mcp_port: u16 = split.mcp.port;
    split.auth = Split::start_auth(split.auth.port, mcp_port, &split.db).await;
    assert_eq!(split.mcp_status(&access).await, 200, "service resumes with the token still valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_is_no_bearer_token_at_mcp() {
    let split = Split::start().await;
    let tokens = split.token(&split.resource()).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let response = TestServer::remote(split.mcp.base.clone(), http_client()).mcp_initialize(Some(refresh)).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let (_, answer) = split.auth_server().introspect(RS, refresh).await;
    assert_eq!(answer, json!({"active": false}), "to a resource server a refresh token is not active");
    assert_eq!(split.mcp_status(tokens["access_token"].as_str().unwrap()).await, 200, "the access token still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_introspection_credential_is_a_configuration_error_in_the_log_and_in_readiness() {
    let db = tempfile::tempdir().unwrap();
    let (auth_port, mcp_port) = (free_port(), free_port());
    let mut auth = Split::start_auth(auth_port, mcp_port, &db).await;
    let mcp = ServerProcess::start(
        mcp_port,
        &[
            ("AUTH_MODE", "external"),
            ("AUTH_SERVER_URL", &auth.base),
            ("INTROSPECTION_CLIENT_ID", RS.0),
            ("INTROSPECTION_CLIENT_SECRET", "not-the-secret"),
        ],
    )
    .await;
    let http = http_client();
    let ready = http.get(format!("{}/health/ready", mcp.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    let reason = body["token_validation"].as_str().unwrap();
    assert!(reason.contains("INTROSPECTION_CLIENT_SECRET") && reason.contains("401"), "{reason}");
    assert!(!reason.contains("not-the-secret"), "the reason never shows the secret");

    let response = TestServer::remote(mcp.base.clone(), http_client()).mcp_initialize(Some("some-token")).await;
    assert_eq!(response.status(), 503);
    let logs = mcp.wait_for_log("configuration error", 1).await;
    assert!(logs.contains("ERROR"), "{logs}");
    assert!(logs.contains("INTROSPECTION_CLIENT_ID"), "the log names the setting: {logs}");

    // An unreachable authorization server is not ready either.
    auth.stop();
    let ready = http.get(format!("{}/health/ready", mcp.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(body["token_validation"].as_str().unwrap().contains("introspection"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_of_a_well_configured_resource_server() {
    let split = Split::start().await;
    let ready: Value = http_client().get(format!("{}/health/ready", split.mcp.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready, json!({"status": "ready", "storage": "ok", "token_validation": "ok"}));
}
