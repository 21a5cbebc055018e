use mcp_oauth_testkit::http::{Pkce, REDIRECT_URI, TestServer};

#[tokio::test]
async fn a_code_exchange_returns_bearer_tokens_with_no_store() {
    let server = TestServer::start(&[]).await;
    for method in ["none", "client_secret_basic", "client_secret_post"] {
        let client = server.client(method).await;
        let pkce = Pkce::new();
        let code = server.code(&client, &pkce, "alice").await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ];
        let (status, headers, body) = server.token(&client, &form).await;
        assert_eq!(status, 200, "{method}: {body}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "mcp");
        assert_eq!(body["access_token"].as_str().unwrap().len(), 43);
        assert_eq!(body["refresh_token"].as_str().unwrap().len(), 43);
    }
}

#[tokio::test]
async fn access_token_ttl_is_configurable() {
    let server = TestServer::start(&["--access-token-ttl", "10m"]).await;
    let client = server.client("none").await;
    assert_eq!(server.tokens(&client, "alice").await["expires_in"], 600);
}

#[tokio::test]
async fn wrong_verifier_redirect_or_client_is_invalid_grant_and_spends_the_code() {
    let server = TestServer::start(&[]).await;
    let client = server.client("none").await;
    let other = server.client("none").await;

    let pkce = Pkce::new();
    let code = server.code(&client, &pkce, "alice").await;
    let wrong = Pkce::new();
    assert_eq!(server.exchange(&client, &code, &wrong).await.1["error"], "invalid_grant");
    assert_eq!(server.exchange(&client, &code, &pkce).await.1["error"], "invalid_grant", "the code is spent");

    let code = server.code(&client, &pkce, "alice").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:3001/callback"),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    let (status, _, body) = server.token(&client, &form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "redirect_uri differs from /authorize");

    let code = server.code(&client, &pkce, "alice").await;
    let (status, body) = server.exchange(&other, &code, &pkce).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "another client's code");

    let (status, body) = server.exchange(&client, "never-issued", &pkce).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_the_first_tokens() {
    let server = TestServer::start(&[]).await;
    let client = server.client("none").await;
    let pkce = Pkce::new();
    let code = server.code(&client, &pkce, "alice").await;
    let (status, first) = server.exchange(&client, &code, &pkce).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(server.mcp_initialize(Some(access)).await.status(), 200);

    let (status, body) = server.exchange(&client, &code, &pkce).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(server.mcp_initialize(Some(access)).await.status(), 401, "the first access token is revoked");
    let (status, _) = server.refresh(&client, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "so is the first refresh token");
}

#[tokio::test]
async fn missing_unknown_and_repeated_parameters() {
    let server = TestServer::start(&[]).await;
    let client = server.client("none").await;
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "invalid_request"),
        (vec![("grant_type", "password")], "unsupported_grant_type"),
        (vec![("grant_type", "client_credentials")], "unsupported_grant_type"),
        (vec![("grant_type", "authorization_code")], "invalid_request"),
        (vec![("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI)], "invalid_request"),
        (
            vec![("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", REDIRECT_URI), ("code_verifier", "short")],
            "invalid_request",
        ),
        (vec![("grant_type", "refresh_token")], "invalid_request"),
        (vec![("grant_type", "refresh_token"), ("refresh_token", "unknown")], "invalid_grant"),
        (vec![("grant_type", "refresh_token"), ("grant_type", "refresh_token")], "invalid_request"),
    ];
    for (form, error) in cases {
        let (status, headers, body) = server.token(&client, &form).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{form:?}");
        assert_eq!(headers["cache-control"], "no-store");
    }
    let junk = server.http.post(server.url("/token")).header("content-type", "application/json").body("{}").send().await.unwrap();
    assert_eq!(junk.status(), 400);
    assert_eq!(junk.json::<serde_json::Value>().await.unwrap()["error"], "invalid_request");
    let big = "a=".to_owned() + &"b".repeat(100_000);
    let huge = server
        .http
        .post(server.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client() {
    let server = TestServer::start(&[]).await;
    let basic = server.client("client_secret_basic").await;
    let post = server.client("client_secret_post").await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", "x")];

    let mut wrong = basic.clone();
    wrong.secret = Some("wrong".into());
    let (status, headers, body) = server.token(&wrong, &form).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"), "Basic was used, so it is challenged");

    let mut wrong = post.clone();
    wrong.secret = Some("wrong".into());
    let (status, headers, body) = server.token(&wrong, &form).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(headers.get("www-authenticate").is_none());

    let mut as_basic = post.clone();
    as_basic.method = "client_secret_basic".into();
    assert_eq!(server.token(&as_basic, &form).await.0, 401, "a client must use the method it registered");
    let mut as_public = basic.clone();
    as_public.method = "none".into();
    assert_eq!(server.token(&as_public, &form).await.0, 401, "a confidential client must authenticate");
    let mut unknown = basic.clone();
    unknown.client_id = "unknown".into();
    assert_eq!(server.token(&unknown, &form).await.0, 401);

    let anonymous = server.http.post(server.url("/token")).form(&form).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let both = server
        .http
        .post(server.url("/token"))
        .basic_auth(&basic.client_id, basic.secret.as_deref())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_secret", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400, "two authentication methods at once");
}

#[tokio::test]
async fn refresh_rotates_narrows_scope_and_checks_the_resource() {
    let server = TestServer::start(&["--scopes", "mcp mcp:extra"]).await;
    let client = server.client("client_secret_post").await;
    let tokens = server.tokens(&client, "alice").await;
    assert_eq!(tokens["scope"], "mcp mcp:extra");
    let r1 = tokens["refresh_token"].as_str().unwrap();

    let (status, _, narrowed) =
        server.token(&client, &[("grant_type", "refresh_token"), ("refresh_token", r1), ("scope", "mcp")]).await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["scope"], "mcp");
    assert_ne!(narrowed["refresh_token"].as_str().unwrap(), r1, "the refresh token rotates");
    let r2 = narrowed["refresh_token"].as_str().unwrap();

    let (status, _, body) =
        server.token(&client, &[("grant_type", "refresh_token"), ("refresh_token", r2), ("scope", "mcp admin")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
    let (status, _, body) = server
        .token(&client, &[("grant_type", "refresh_token"), ("refresh_token", r2), ("resource", "https://other.example/mcp")])
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")));
    let (status, _, widened) = server.token(&client, &[("grant_type", "refresh_token"), ("refresh_token", r2)]).await;
    assert_eq!(status, 200);
    assert_eq!(widened["scope"], "mcp mcp:extra", "the refresh token keeps the original grant");

    let other = server.client("client_secret_post").await;
    let r3 = widened["refresh_token"].as_str().unwrap();
    let (status, body) = server.refresh(&other, r3).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "another client's refresh token");
    assert_eq!(server.refresh(&client, r3).await.0, 200, "and it was not spent by the foreign attempt");
}

#[tokio::test]
async fn a_client_registered_without_refresh_gets_no_refresh_token() {
    let server = TestServer::start(&[]).await;
    let (_, body) = server
        .register(serde_json::json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code"]}))
        .await;
    let client = mcp_oauth_testkit::http::TestClient {
        client_id: body["client_id"].as_str().unwrap().into(),
        secret: None,
        method: "none".into(),
    };
    let tokens = server.tokens(&client, "alice").await;
    assert!(tokens.get("refresh_token").is_none());
    let (status, body) = server.refresh(&client, "anything").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
}
