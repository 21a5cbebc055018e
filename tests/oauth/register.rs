use mcp_oauth_testkit::http::TestServer;
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
    let long_host = format!("https://{}.example/cb", "h".repeat(5000));
    for uris in [
        json!(["http://app.example/cb"]),
        json!(["javascript:alert(1)"]),
        json!(["JAVASCRIPT:alert(1)"]),
        json!(["data:text/html,<script>alert(1)</script>"]),
        json!(["vbscript:msgbox(1)"]),
        json!(["file:///etc/passwd"]),
        json!(["blob:https://app.example/1"]),
        json!(["about:blank"]),
        json!(["https://app.example/cb#fragment"]),
        json!(["not a url"]),
        json!(["https://evil.example\\@app.example/cb"]),
        json!(["https:///cb"]),
        json!(["https://app.example/c b"]),
        json!(["https://app.example/cb\t"]),
        json!(["https://app.example/cb\r\nSet-Cookie: x=1"]),
        json!(["https://app.example/cb\u{0}"]),
        json!(["https://user:pass@app.example/cb"]),
        json!([long_host]),
        json!([format!("https://app.example/{}", "p".repeat(2048))]),
        json!(["https://app.example/cb", "http://evil.example/cb"]),
        json!((0..11).map(|i| format!("https://app.example/{i}")).collect::<Vec<_>>()),
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
        json!({"redirect_uris": uris, "client_name": "n".repeat(201)}),
        json!({"redirect_uris": uris, "client_name": "line\nbreak"}),
        json!({"redirect_uris": uris, "contacts": vec!["ops@app.example"; 11]}),
        json!({"redirect_uris": uris, "contacts": ["c".repeat(255)]}),
        json!({"redirect_uris": uris, "policy_uri": format!("https://app.example/{}", "p".repeat(2048))}),
        json!({"redirect_uris": uris, "software_version": "v".repeat(201)}),
        json!({"redirect_uris": uris, "application_type": "desktop"}),
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

#[tokio::test]
async fn the_location_starts_with_the_registered_string_byte_for_byte() {
    let server = TestServer::start(&[]).await;
    let registered = "https://app.example/cb?tenant=a%2Fb&x=";
    let (status, body) = server.register(json!({"redirect_uris": [registered], "token_endpoint_auth_method": "none"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["redirect_uris"][0], registered);
    let client = mcp_oauth_testkit::http::TestClient {
        client_id: body["client_id"].as_str().unwrap().to_owned(),
        secret: None,
        method: "none".into(),
    };
    let pkce = mcp_oauth_testkit::http::Pkce::new();
    let page = server.authorize(&client, &pkce, &[("redirect_uri", registered)]).await;
    let form = mcp_oauth_testkit::http::ConsentForm::read(page).await;
    let answer = server.post_consent(&form, &[("decision", "deny")]).await;
    let location = answer.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{registered}&error=access_denied")), "{location}");
}
