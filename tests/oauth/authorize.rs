use mcp_oauth_testkit::http::{ConsentForm, Pkce, REDIRECT_URI, TestServer, redirect_params, redirect_target};

fn is_html_page(response: &reqwest::Response) -> bool {
    response.headers()["content-type"].to_str().unwrap().starts_with("text/html")
}

#[tokio::test]
async fn untrusted_client_or_redirect_is_a_page_never_a_redirect() {
    let server = TestServer::start(&[]).await;
    let client = server.client("none").await;
    let pkce = Pkce::new();
    let mut unknown = client.clone();
    unknown.client_id = "no-such-client".into();
    for (client, extra) in [
        (&unknown, vec![]),
        (&client, vec![("redirect_uri", "https://evil.example/cb")]),
        (&client, vec![("redirect_uri", "http://127.0.0.1:3000/other")]),
        (&client, vec![("redirect_uri", "")]),
        (&client, vec![("client_id", "")]),
    ] {
        let response = server.authorize(client, &pkce, &extra).await;
        assert_eq!(response.status(), 400, "{extra:?}");
        assert!(response.headers().get("location").is_none());
        assert!(is_html_page(&response));
    }
}

#[tokio::test]
async fn request_errors_redirect_with_error_state_and_iss() {
    let server = TestServer::start(&[]).await;
    let client = server.client("none").await;
    let pkce = Pkce::new();
    let resource = server.resource();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (vec![("code_challenge", "too-short")], "invalid_request"),
        (vec![("response_type", "token")], "unsupported_response_type"),
        (vec![("response_type", "")], "invalid_request"),
        (vec![("scope", "admin")], "invalid_scope"),
        (vec![("resource", "https://other.example/mcp")], "invalid_target"),
    ];
    for (extra, error) in cases {
        let response = server.authorize(&client, &pkce, &extra).await;
        assert_eq!(response.status(), 302, "{extra:?}");
        assert_eq!(redirect_target(&response), REDIRECT_URI);
        let params = redirect_params(&response);
        assert_eq!(params.get("error").map(String::as_str), Some(error), "{extra:?}");
        assert_eq!(params["state"], "state-123");
        assert_eq!(params["iss"], server.base);
    }
    // The right resource, in any case of scheme and host, is accepted.
    let upper = resource.replace("http://127.0.0.1", "HTTP://127.0.0.1");
    assert_eq!(server.authorize(&client, &pkce, &[("resource", &upper)]).await.status(), 200);
}

#[tokio::test]
async fn a_loopback_redirect_may_use_any_port() {
    let server = TestServer::start(&[]).await;
    let client = server.client("none").await;
    let pkce = Pkce::new();
    let response = server.authorize(&client, &pkce, &[("redirect_uri", "http://127.0.0.1:49152/callback")]).await;
    assert_eq!(response.status(), 200);
    let form = ConsentForm::read(response).await;
    let response = server.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
    assert_eq!(redirect_target(&response), "http://127.0.0.1:49152/callback");
}

#[tokio::test]
async fn the_consent_page_is_escaped_strict_and_bound_to_a_csrf_cookie() {
    let server = TestServer::start(&[]).await;
    let (_, body) = server
        .register(serde_json::json!({
            "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none",
            "client_name": "<script>alert('x')</script>"
        }))
        .await;
    let client = mcp_oauth_testkit::http::TestClient {
        client_id: body["client_id"].as_str().unwrap().into(),
        secret: None,
        method: "none".into(),
    };
    let form = server.consent_form(&client, &Pkce::new()).await;
    assert!(!form.html.contains("<script>"), "user-supplied text is escaped");
    assert!(form.html.contains("&#60;script&#62;") || form.html.contains("&lt;script&gt;"));
    assert!(form.html.contains("127.0.0.1"), "the page shows the redirect host");
    assert!(form.html.contains("Development login"));
    assert!(form.html.contains("<form method=\"post\""));
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(form.headers["cache-control"], "no-store");
    let cookie = form.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(cookie.contains(&form.csrf_token));
}

#[tokio::test]
async fn approve_redirects_with_code_state_and_iss_and_deny_with_access_denied() {
    let server = TestServer::start(&[]).await;
    let client = server.client("none").await;
    let form = server.consent_form(&client, &Pkce::new()).await;
    let response = server.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
    assert_eq!(response.status(), 302);
    let params = redirect_params(&response);
    assert_eq!(params["code"].len(), 43);
    assert_eq!(params["state"], "state-123");
    assert_eq!(params["iss"], server.base);

    let form = server.consent_form(&client, &Pkce::new()).await;
    let response = server.post_consent(&form, &[("username", "alice"), ("decision", "deny")]).await;
    assert_eq!(response.status(), 302);
    let params = redirect_params(&response);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "state-123");
    assert_eq!(params["iss"], server.base);
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn replayed_forged_and_expired_posts_get_error_pages_and_no_code() {
    let server = TestServer::start(&["--scopes", "mcp"]).await;
    let client = server.client("none").await;
    let approve = [("username", "alice"), ("decision", "approve")];

    let form = server.consent_form(&client, &Pkce::new()).await;
    assert_eq!(server.post_consent(&form, &approve).await.status(), 302);
    let replay = server.post_consent(&form, &approve).await;
    assert_eq!(replay.status(), 400, "a replayed post");
    assert!(is_html_page(&replay) && replay.headers().get("location").is_none());

    let form = server.consent_form(&client, &Pkce::new()).await;
    let no_cookie = server.post_consent_with_cookie(&form, &approve, None).await;
    assert_eq!(no_cookie.status(), 403, "a post without the CSRF cookie");
    let other = server.consent_form(&client, &Pkce::new()).await;
    let wrong_cookie = server.post_consent_with_cookie(&form, &approve, Some(&other.cookie)).await;
    assert_eq!(wrong_cookie.status(), 403, "a post with another request's cookie");
    let mut forged = form.clone();
    forged.csrf_token = other.csrf_token.clone();
    let cookie = format!("{}={}", form.cookie.split('=').next().unwrap(), other.csrf_token);
    let swapped = server.post_consent_with_cookie(&forged, &approve, Some(&cookie)).await;
    assert_eq!(swapped.status(), 403, "a token from another request, even with a matching cookie");
    // The genuine form still works after the forgeries.
    assert_eq!(server.post_consent(&form, &approve).await.status(), 302);

    let mut expired = server.consent_form(&client, &Pkce::new()).await;
    expired.request_id = mcp_oauth_domain::secret::generate_secret();
    assert_eq!(server.post_consent(&expired, &approve).await.status(), 400, "an unknown or expired request");

    let form = server.consent_form(&client, &Pkce::new()).await;
    let blank = server.post_consent(&form, &[("username", "  "), ("decision", "approve")]).await;
    assert_eq!(blank.status(), 400, "approval needs a user name");
    let junk = server
        .http
        .post(server.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("%%%")
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), 400);
    assert!(is_html_page(&junk));
    assert_eq!(server.post_consent(&form, &approve).await.status(), 302, "a blank name did not spend the request");
}

#[tokio::test]
async fn a_client_forgotten_by_a_restart_is_told_to_register_again() {
    // A client registered with a server whose memory storage has since been replaced, as a
    // restart replaces it.
    let before = TestServer::start(&[]).await;
    let client = before.client("none").await;
    let after = TestServer::start(&[]).await;

    let page = after.authorize(&client, &Pkce::new(), &[]).await;
    assert_eq!(page.status(), 400);
    assert!(page.headers().get("location").is_none());
    assert!(is_html_page(&page));
    let html = page.text().await.unwrap();
    assert!(html.contains("not registered with this server"), "{html}");
    assert!(html.contains("forgets them when it restarts"), "the page says why: {html}");
    assert!(html.contains("add it again"), "the page says what to do: {html}");
    assert!(html.contains("invalid_client"));

    for method in ["none", "client_secret_post", "client_secret_basic"] {
        let mut gone = client.clone();
        gone.method = method.into();
        gone.secret = (method != "none").then(|| "secret".into());
        let (status, headers, body) = after.token(&gone, &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{method}: {body}");
        assert!(body["error_description"].as_str().unwrap().contains("register again"), "{body}");
        assert_eq!(headers.contains_key("www-authenticate"), method == "client_secret_basic", "{method}");
    }
}
