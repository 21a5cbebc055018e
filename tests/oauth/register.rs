use mcp_oauth_tests::http::TestServer;
use serde_json::json;

#[tokio::test]
async fn public_and_confidential_clients_register_with_echoed_metadata() {
    let server = TestServer::start(&[]).await;
    let (status, body) = server
        .register(json!({"redirect_uris": ["http://127.0.0.1:6274/cb"], "client_name": "Inspector", "token_endpoint_auth_method": "none"}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["client_name"], "Inspector");
    assert_eq!(body["redirect_uris"], json!(["http://127.0.0.1:6274/cb"]));
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert!(body["client_id"].is_string() && body["client_id_issued_at"].is_i64());
    assert!(body.get("client_secret").is_none(), "public clients get no secret");

    let (status, body) = server.register(json!({"redirect_uris": ["https://app.example/cb"]})).await;
    assert_eq!(status, 201);
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic", "the default method");
    assert_eq!(body["client_secret"].as_str().unwrap().len(), 43);
    assert!(body["client_secret_expires_at"].as_i64().unwrap() > body["client_id_issued_at"].as_i64().unwrap());
    assert_eq!(body["grant_types"], json!(["authorization_code", "refresh_token"]));

    let (status, body) = server
        .register(json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_post"}))
        .await;
    assert_eq!((status, body["token_endpoint_auth_method"].as_str()), (201, Some("client_secret_post")));
}

#[tokio::test]
async fn bad_redirect_uris_are_invalid_redirect_uri() {
    let server = TestServer::start(&[]).await;
    for uris in [
        json!(["http://app.example/cb"]),
        json!(["javascript:alert(1)"]),
        json!(["data:text/html,<script>alert(1)</script>"]),
        json!(["https://app.example/cb#fragment"]),
        json!(["not a url"]),
        json!([]),
    ] {
        let (status, body) = server.register(json!({"redirect_uris": uris})).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_redirect_uri")), "{uris}");
    }
    let (status, body) = server.register(json!({"client_name": "no uris"})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_redirect_uri")));
}

#[tokio::test]
async fn bad_metadata_is_invalid_client_metadata() {
    let server = TestServer::start(&[]).await;
    let uris = json!(["https://app.example/cb"]);
    for metadata in [
        json!({"redirect_uris": uris, "token_endpoint_auth_method": "private_key_jwt"}),
        json!({"redirect_uris": uris, "grant_types": ["client_credentials"]}),
        json!({"redirect_uris": uris, "response_types": ["token"]}),
        json!({"redirect_uris": uris, "scope": "admin"}),
        json!({"redirect_uris": uris, "client_name": 42}),
        json!({"redirect_uris": "https://app.example/cb"}),
        json!({"redirect_uris": uris, "logo_uri": "javascript:alert(1)"}),
    ] {
        let (status, body) = server.register(metadata.clone()).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_client_metadata")), "{metadata}");
    }
}

#[tokio::test]
async fn malformed_wrongly_typed_and_oversized_bodies_get_json_errors() {
    let server = TestServer::start(&[]).await;
    let post = |body: String, content_type: &'static str| {
        server.http.post(server.url("/register")).header("content-type", content_type).body(body).send()
    };
    let response = post("{not json".into(), "application/json").await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"], "invalid_request");

    let response = post("{}".into(), "text/plain").await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"], "invalid_request");

    let huge = format!("{{\"client_name\": \"{}\"}}", "x".repeat(200_000));
    let response = post(huge, "application/json").await.unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"], "invalid_request");
}
