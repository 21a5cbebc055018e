//! The edge every request crosses. Rate limits per client address: crossing one gets 429 with
//! `Retry-After` and `RateLimit` headers in the endpoint's own format, another address still
//! passes, and a forged `X-Forwarded-For` lifts nothing unless it comes from a proxy in
//! `TRUST_PROXY`. Wrong methods get JSON, and every answer carries the security headers.

use mcp_oauth_testkit::http::{Pkce, TestServer};
use serde_json::{Value, json};

fn registration() -> Value {
    json!({"redirect_uris": ["http://127.0.0.1:9/callback"], "client_name": "Limited", "token_endpoint_auth_method": "none"})
}

async fn register_as(server: &TestServer, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = server.http.post(server.url("/register")).json(&registration());
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_a_limit_gets_429_in_the_endpoints_format_and_other_addresses_still_pass() {
    let server = TestServer::start(&["--rate-limit-register", "3/1m", "--trust-proxy", "127.0.0.1"]).await;
    for n in 0..3 {
        let allowed = register_as(&server, None).await;
        assert_eq!(allowed.status(), 201);
        assert_eq!(allowed.headers()["ratelimit-policy"], "3;w=60");
        let state = allowed.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(state.starts_with(&format!("limit=3, remaining={}, reset=", 2 - n)), "{state}");
    }
    let refused = register_as(&server, None).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "an OAuth JSON error: {body}");

    // Behind a trusted proxy, each forwarded client has its own count.
    assert_eq!(register_as(&server, Some("198.51.100.7")).await.status(), 201, "another address passes");
    let spoofed_chain = register_as(&server, Some("198.51.100.99, 127.0.0.1")).await;
    assert_eq!(spoofed_chain.status(), 201, "read from the right: the nearest untrusted hop counts");

    // From a peer that is not a trusted proxy, the header changes nothing.
    let untrusting = TestServer::start(&["--rate-limit-register", "1/1m"]).await;
    assert_eq!(register_as(&untrusting, None).await.status(), 201);
    assert_eq!(register_as(&untrusting, Some("203.0.113.5")).await.status(), 429, "a forged X-Forwarded-For lifts nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_registration_quota_holds_under_the_per_minute_limit() {
    let server = TestServer::start(&["--registration-quota", "2/1h"]).await;
    assert_eq!(register_as(&server, None).await.status(), 201);
    assert_eq!(register_as(&server, None).await.status(), 201);
    let refused = register_as(&server, None).await;
    assert_eq!(refused.status(), 429, "within 60 a minute, but over 2 an hour");
    assert_eq!(refused.headers()["ratelimit-policy"], "2;w=3600");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_page_answers_in_html_and_mcp_in_json_rpc() {
    let server = TestServer::start(&["--rate-limit-authorize", "1/1m", "--rate-limit-mcp", "1/1m"]).await;
    let client = server.client("none").await;
    let pkce = Pkce::new();
    assert_eq!(server.authorize(&client, &pkce, &[]).await.status(), 200);
    let refused = server.authorize(&client, &pkce, &[]).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused.text().await.unwrap().contains("too many requests"), "a readable page");

    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let first = server.http.post(server.resource()).json(&ping).send().await.unwrap();
    assert_eq!(first.status(), 401, "the first /mcp request reaches the guard");
    let limited = server.http.post(server.resource()).json(&ping).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0", "a JSON-RPC error: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("too many requests"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_answers_are_json_and_carry_the_security_headers() {
    let server = TestServer::start(&[]).await;
    let wrong_method = server.http.get(server.url("/token")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(wrong_method.headers()["allow"].to_str().unwrap().contains("POST"), "{:?}", wrong_method.headers());
    assert_eq!(wrong_method.headers()["x-content-type-options"], "nosniff");
    assert!(!wrong_method.headers().contains_key("strict-transport-security"), "not on http");
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    let health = server.http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.headers()["x-content-type-options"], "nosniff", "on every response");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stores = mcp_oauth_adapters::memory::MemoryStore::default().stores();
    let https = TestServer::serve(listener, "https://mcp.example".into(), &["--login", "dev"], stores).await;
    let health = https.http.get(format!("http://{address}/health")).send().await.unwrap();
    assert_eq!(health.headers()["strict-transport-security"], "max-age=31536000", "an https BASE_URI gets HSTS");
}

/// Secret guessing is stopped per client_id, whatever address it comes from, and another
/// client sharing the address is not locked out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_a_client_secret_locks_that_client_id_only() {
    let server = TestServer::start(&["--rate-limit-client-auth-failures", "3/15m", "--trust-proxy", "127.0.0.1"]).await;
    let target = server.client("client_secret_basic").await;
    let bystander = server.client("client_secret_basic").await;
    let guess = |client_id: String, secret: &'static str, from: &'static str| {
        let request = server
            .http
            .post(server.url("/token"))
            .basic_auth(client_id, Some(secret))
            .header("x-forwarded-for", from)
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "nothing")]);
        async move { request.send().await.unwrap() }
    };
    for from in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(guess(target.client_id.clone(), "wrong", from).await.status(), 401, "a wrong secret is invalid_client");
    }
    let locked = guess(target.client_id.clone(), "wrong", "198.51.100.4").await;
    assert_eq!(locked.status(), 429, "from a fresh address too: the client_id is locked");
    assert!(locked.headers().contains_key("retry-after"));
    let right_secret = target.secret.clone().unwrap();
    let also_locked = server
        .http
        .post(server.url("/token"))
        .basic_auth(&target.client_id, Some(right_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "nothing")])
        .send()
        .await
        .unwrap();
    assert_eq!(also_locked.status(), 429, "until the window ends, even the right secret waits");
    let other = guess(bystander.client_id.clone(), "wrong", "198.51.100.1").await;
    assert_eq!(other.status(), 401, "another client is not locked out");
}

/// Browser-based MCP clients get their preflights answered, without credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_allow_the_mcp_headers_and_never_credentials() {
    let server = TestServer::start(&[]).await;
    let preflight = server
        .http
        .request(reqwest::Method::OPTIONS, server.resource())
        .header("origin", "https://inspector.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type, mcp-session-id, mcp-protocol-version")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for name in ["authorization", "mcp-session-id", "mcp-protocol-version", "last-event-id", "mcp-name"] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    assert!(!headers.contains_key("access-control-allow-credentials"), "credentials are never allowed");
    let answer = server.http.post(server.resource()).header("origin", "https://inspector.example").send().await.unwrap();
    let exposed = answer.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate") && exposed.contains("mcp-session-id"), "{exposed}");

    // With CORS_ORIGINS, only the listed origins are answered for.
    let listed = TestServer::start(&["--cors-origins", "https://inspector.example"]).await;
    let preflight = |origin: &'static str| {
        listed
            .http
            .request(reqwest::Method::OPTIONS, listed.url("/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://inspector.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://inspector.example");
    let other = preflight("https://elsewhere.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"), "{:?}", other.headers());
}

/// Quotas bound what the server keeps whatever the rate: live clients in total, pending
/// authorizations per address. Each refusal is in the endpoint's format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_bound_live_clients_and_pending_authorizations() {
    let server = TestServer::start(&["--max-clients", "2", "--pending-authorization-quota", "2/10m"]).await;
    let client = server.client("none").await;
    assert_eq!(register_as(&server, None).await.status(), 201);
    let full = register_as(&server, None).await;
    assert_eq!(full.status(), 503, "a third live client is refused");
    let body: Value = full.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    let pkce = Pkce::new();
    for _ in 0..2 {
        assert_eq!(server.authorize(&client, &pkce, &[]).await.status(), 200);
    }
    let refused = server.authorize(&client, &pkce, &[]).await;
    assert_eq!(refused.status(), 429, "a third waiting authorization from this address");
    assert!(refused.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

/// Input limits at the edge: an over-long state is refused without being echoed, and an
/// over-long target or header gets our JSON, not hyper's empty answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_input_is_refused_in_our_format_and_never_echoed() {
    let server = TestServer::start(&[]).await;
    let client = server.client("none").await;
    let pkce = Pkce::new();
    let state = "s".repeat(2049);
    let refused = server.authorize(&client, &pkce, &[("state", &state)]).await;
    assert_eq!(refused.status(), 302, "errors after the redirect URI is verified go back to it");
    let params = mcp_oauth_testkit::http::redirect_params(&refused);
    assert_eq!(params["error"], "invalid_request");
    assert!(!params.contains_key("state"), "the over-long state is not echoed: {params:?}");
    let scope = vec!["mcp"; 300].join(" ");
    let params = mcp_oauth_testkit::http::redirect_params(&server.authorize(&client, &pkce, &[("scope", &scope)]).await);
    assert_eq!(params["error"], "invalid_scope");
    assert!(params["error_description"].contains("longer than"), "{params:?}");

    let long_target = server.http.get(server.url(&format!("/health?{}", "q".repeat(9 * 1024)))).send().await.unwrap();
    assert_eq!(long_target.status(), 414);
    let body: Value = long_target.json().await.unwrap();
    assert_eq!(body["error"], "uri_too_long");
    let long_header = server.http.get(server.url("/health")).header("x-filler", "h".repeat(9 * 1024)).send().await.unwrap();
    assert_eq!(long_header.status(), 431);
    let body: Value = long_header.json().await.unwrap();
    assert_eq!(body["error"], "request_header_fields_too_large");
    let mut many = server.http.get(server.url("/health"));
    for n in 0..80 {
        many = many.header(format!("x-h{n}"), "v");
    }
    assert_eq!(many.send().await.unwrap().status(), 431, "too many header fields");
    assert_eq!(server.http.get(server.url("/health")).send().await.unwrap().status(), 200, "and the next request passes");
}

/// Over https the page cookies carry the `__Host-` prefix (Secure, `Path=/`), and the consent
/// post reads them under that name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_cookies_carry_the_host_prefix() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stores = mcp_oauth_adapters::memory::MemoryStore::default().stores();
    let _serving = TestServer::serve(listener, "https://mcp.example".into(), &["--login", "dev"], stores).await;
    let server = TestServer::remote(format!("http://{address}"), mcp_oauth_testkit::http::http_client());
    let client = server.client("none").await;
    let form = server.consent_form(&client, &Pkce::new()).await;
    let set_cookie = form.headers["set-cookie"].to_str().unwrap();
    assert!(set_cookie.starts_with("__Host-mcp_oauth_csrf_"), "{set_cookie}");
    assert!(set_cookie.contains("Secure") && set_cookie.contains("Path=/;"), "{set_cookie}");
    let unprefixed = form.cookie.trim_start_matches("__Host-").to_owned();
    let refused =
        server.post_consent_with_cookie(&form, &[("username", "alice"), ("decision", "approve")], Some(&unprefixed)).await;
    assert_eq!(refused.status(), 403, "the cookie without its prefix is not the consent's");
    let approved = server.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
    assert_eq!(approved.status(), 302);
    assert!(mcp_oauth_testkit::http::redirect_params(&approved).contains_key("code"));
}
