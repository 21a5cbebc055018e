//! REGISTRATION (open, cimd, token, closed), clients configured at start, and what the
//! metadata advertises under each.

use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_testkit::documents::{Answer, DocumentHost, client_document};
use mcp_oauth_testkit::http::{REDIRECT_URI, TestClient, TestServer};
use serde_json::{Value, json};

fn dcr_request() -> Value {
    json!({"redirect_uris": [REDIRECT_URI], "client_name": "Registered", "token_endpoint_auth_method": "none"})
}

async fn register_with(server: &TestServer, token: Option<&str>) -> reqwest::Response {
    let mut request = server.http.post(server.url("/register")).json(&dcr_request());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn metadata(server: &TestServer) -> Value {
    server.get_json("/.well-known/oauth-authorization-server").await.1
}

#[tokio::test]
async fn open_registration_advertises_both_ways_in() {
    let server = TestServer::start(&[]).await;
    let metadata = metadata(&server).await;
    assert_eq!(metadata["registration_endpoint"], server.url("/register"));
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    assert_eq!(register_with(&server, None).await.status(), 201);
    // A client the server does not know is told so, and registers again.
    let stranger = TestClient { client_id: "never-registered".into(), secret: None, method: "none".into() };
    let (status, headers, body) = server.token(&stranger, &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn cimd_mode_refuses_registration_and_takes_documents() {
    let host = DocumentHost::start().await;
    let client_id = host.url("/claude");
    let redirect = "https://claude.ai/api/mcp/auth_callback";
    host.publish("/claude", Answer::json(&client_document(&client_id, "Claude", &[redirect]), None));
    let mut flags = host.trusting_flags();
    flags.extend(["--registration".to_owned(), "cimd".to_owned()]);
    let server = TestServer::start(&flags.iter().map(String::as_str).collect::<Vec<_>>()).await;

    let refused = register_with(&server, None).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
    assert!(body["error_description"].as_str().unwrap().contains("Client ID Metadata Document"));
    let metadata = metadata(&server).await;
    assert!(metadata.get("registration_endpoint").is_none(), "{metadata}");
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    let client = TestClient { client_id, secret: None, method: "none".into() };
    let page = server.authorize(&client, &mcp_oauth_testkit::http::Pkce::new(), &[("redirect_uri", redirect)]).await;
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn token_mode_requires_the_initial_access_token() {
    let token = "initial-access-token-0123456789";
    let server = TestServer::start(&["--registration", "token", "--registration-token", token]).await;
    for presented in [None, Some("wrong-token-0123456789")] {
        let refused = register_with(&server, presented).await;
        assert_eq!(refused.status(), 401, "{presented:?}");
        assert!(refused.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
    assert_eq!(register_with(&server, Some(token)).await.status(), 201);
    assert_eq!(metadata(&server).await["registration_endpoint"], server.url("/register"));
}

#[tokio::test]
async fn closed_mode_serves_only_the_configured_clients() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clients.toml");
    let digest = TokenDigest::of("configured-secret").to_hex();
    let toml = format!(
        r#"
[[clients]]
client_id = "team-app"
client_name = "Team app"
redirect_uris = ["{REDIRECT_URI}"]
token_endpoint_auth_method = "client_secret_post"
client_secret_sha256 = "{digest}"
"#
    );
    std::fs::write(&file, toml).unwrap();
    let server = TestServer::start(&["--registration", "closed", "--clients-file", file.to_str().unwrap()]).await;
    assert_eq!(register_with(&server, None).await.status(), 403);
    let metadata = metadata(&server).await;
    assert!(metadata.get("registration_endpoint").is_none());
    assert!(metadata.get("client_id_metadata_document_supported").is_none());

    let team = TestClient {
        client_id: "team-app".into(),
        secret: Some("configured-secret".into()),
        method: "client_secret_post".into(),
    };
    let tokens = server.tokens(&team, "alice").await;
    assert!(tokens["access_token"].is_string());
    let wrong = TestClient { secret: Some("guess".into()), ..team };
    let (status, _, _) = server.token(&wrong, &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
    assert_eq!(status, 401);

    let document =
        TestClient { client_id: "https://claude.ai/oauth/mcp-oauth-client-metadata".into(), secret: None, method: "none".into() };
    let page = server.authorize(&document, &mcp_oauth_testkit::http::Pkce::new(), &[]).await;
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("does not accept Client ID Metadata Documents"));
}

#[test]
fn bad_registration_settings_stop_the_server_with_a_message() {
    use clap::Parser;
    use mcp_oauth_app::config::{Config, Settings};
    let settings = |args: &[&str]| {
        let mut argv = vec!["mcp-oauth-server"];
        argv.extend_from_slice(args);
        Settings::parse(Config::try_parse_from(argv).unwrap()).map(|_| ()).unwrap_err()
    };
    assert!(settings(&["--registration", "token"]).contains("REGISTRATION_TOKEN"));
    assert!(settings(&["--registration", "closed"]).contains("CLIENTS_FILE"));
    assert!(settings(&["--clients-file", "/no/such/file.toml"]).contains("cannot be read"));
    assert!(settings(&["--cimd-allowed-hosts", "a b"]).contains("CIMD_ALLOWED_HOSTS"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clients.json");
    let confidential_without_secret = json!({"clients": [{"client_id": "x", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "client_secret_basic"}]});
    std::fs::write(&file, confidential_without_secret.to_string()).unwrap();
    assert!(settings(&["--clients-file", file.to_str().unwrap()]).contains("needs client_secret_sha256"));
}

/// A registration unused for CLIENT_IDLE_TTL is deleted, but one holding live tokens is not,
/// and each use extends it.
#[tokio::test]
async fn idle_clients_are_deleted_but_not_those_holding_tokens() {
    let server = TestServer::start(&["--client-idle-ttl", "2s"]).await;
    let idle = server.client("none").await;
    let used = server.client("none").await;
    let tokens = server.tokens(&used, "alice").await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

    let (status, _, body) = server.token(&idle, &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "the idle client is gone: {body}");
    let page = server.authorize(&idle, &mcp_oauth_testkit::http::Pkce::new(), &[]).await;
    assert!(page.status().is_client_error());
    let (status, refreshed) = server.refresh(&used, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "a client with a live refresh token is kept: {refreshed}");
}
