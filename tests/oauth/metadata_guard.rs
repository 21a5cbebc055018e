use mcp_oauth_testkit::http::TestServer;
use serde_json::json;

#[tokio::test]
async fn authorization_server_metadata_lists_every_endpoint_and_capability() {
    let server = TestServer::start(&[]).await;
    let (status, meta) = server.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(status, 200);
    assert_eq!(meta["issuer"], json!(server.base));
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("registration_endpoint", "/register"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(meta[field], json!(server.url(path)), "{field}");
    }
    assert_eq!(meta["response_types_supported"], json!(["code"]));
    assert_eq!(meta["grant_types_supported"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["token_endpoint_auth_methods_supported"], json!(["client_secret_basic", "client_secret_post", "none"]));
    assert_eq!(meta["scopes_supported"], json!(["mcp"]));
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
}

#[tokio::test]
async fn protected_resource_metadata_is_served_at_both_urls() {
    let server = TestServer::start(&[]).await;
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
        let (status, meta) = server.get_json(path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(meta["resource"], json!(server.resource()));
        assert_eq!(meta["authorization_servers"], json!([server.base]), "the issuer, byte for byte");
        assert_eq!(meta["scopes_supported"], json!(["mcp"]));
        assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
    }
}

#[tokio::test]
async fn issuer_is_base_uri_without_trailing_slash() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    let stores = mcp_oauth_adapters::memory::MemoryStore::default().stores();
    let server = TestServer::serve(listener, base.clone(), &[], stores).await;
    let url = format!("{base}.well-known/oauth-authorization-server");
    let meta: serde_json::Value = server.http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["issuer"], json!(base.trim_end_matches('/')));
}

#[tokio::test]
async fn mcp_without_a_valid_token_gets_a_challenge_pointing_at_resource_metadata() {
    let server = TestServer::start(&[]).await;
    let expected = format!("resource_metadata=\"{}\"", server.url("/.well-known/oauth-protected-resource/mcp"));

    let response = server.mcp_initialize(None).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer ") && challenge.contains(&expected), "{challenge}");
    assert!(!challenge.contains("error="), "no token, no error code");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");

    let response = server.mcp_initialize(Some("not-a-token")).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains(&expected) && challenge.contains("error=\"invalid_token\""), "{challenge}");

    let basic = server.http.get(server.resource()).header("authorization", "Basic YTpi").send().await.unwrap();
    assert_eq!(basic.status(), 401);
    let client = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    let in_query = server
        .http
        .get(format!("{}?access_token={}", server.resource(), tokens["access_token"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 401, "tokens are accepted only in the header");
}

#[tokio::test]
async fn health_and_unknown_routes_answer_json() {
    let server = TestServer::start(&[]).await;
    assert_eq!(server.get_json("/health").await, (200, json!({"status": "ok"})));
    let (status, body) = server.get_json("/nope").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn the_home_page_says_what_this_server_is_and_where_to_connect() {
    let server =
        TestServer::start(&["--introspection-client-id", "rs", "--introspection-client-secret", "very-secret-value"]).await;
    let response = server.http.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(response.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let html = response.text().await.unwrap();
    for expected in [
        "OAuth 2.1 authorization server and MCP".to_owned(),
        format!("<code>{}</code>", server.resource()),
        server.url("/.well-known/oauth-authorization-server"),
        server.url("/.well-known/oauth-protected-resource/mcp"),
        "<code>internal</code>".to_owned(),
        "<code>memory</code>".to_owned(),
    ] {
        assert!(html.contains(&expected), "the page shows {expected}: {html}");
    }
    assert!(!html.contains("very-secret-value"));

    let auth_only = TestServer::start(&["--auth-mode", "auth_server"]).await;
    let html = auth_only.http.get(auth_only.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<code>auth_server</code>") && !html.contains("Connect MCP clients"), "{html}");
}
