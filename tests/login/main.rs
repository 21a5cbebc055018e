//! Signing users in at a real upstream identity provider (panva's `oidc-provider`, started per
//! test on a free port): the whole flow, the login session, remembered consent, the access
//! policy, upstream refusal, tampered callbacks and an upstream that stops.

mod id_tokens;
mod multi_instance;

use std::sync::Arc;

use mcp_oauth_testkit::http::{Pkce, REDIRECT_URI, TestClient, TestServer};
use mcp_oauth_testkit::idp::{TestIdp, UpstreamBrowser};
use reqwest::header;
use tokio::net::TcpListener;
use url::Url;

const RS: (&str, &str) = ("resource-server", "rs-secret");

/// A server on its own port, signing users in at a fresh provider that knows its callback.
async fn server_with_idp(extra: &[&str], access_token_ttl: u64) -> (TestServer, TestIdp) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp = TestIdp::start(&[format!("{base}/login/callback")], access_token_ttl).await;
    let mut args: Vec<String> = idp.login_args();
    args.extend(["--introspection-client-id", RS.0, "--introspection-client-secret", RS.1].map(str::to_owned));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stores = mcp_oauth_adapters::memory::MemoryStore::default().stores();
    (TestServer::serve(listener, base, &args, stores).await, idp)
}

/// The user's browser at our server: keeps our cookies (CSRF, login session, sign-in binding).
struct Browser {
    http: reqwest::Client,
}

impl Browser {
    fn new() -> Self {
        mcp_oauth_adapters::install_tls_provider();
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_provider(jar).build().unwrap();
        Self { http }
    }

    async fn get(&self, url: &Url) -> reqwest::Response {
        self.http.get(url.clone()).send().await.unwrap()
    }
}

fn authorize_url(server: &TestServer, client: &TestClient, pkce: &Pkce) -> Url {
    let mut url = Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "client-state"),
    ]);
    url
}

fn location(response: &reqwest::Response) -> Url {
    Url::parse(response.headers().get(header::LOCATION).expect("a redirect").to_str().unwrap()).unwrap()
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Starts the flow in `browser`, signs in at the provider as `login`, and returns the
/// callback URL the provider sent the browser to.
async fn to_callback(server: &TestServer, browser: &Browser, client: &TestClient, pkce: &Pkce, login: &str) -> Url {
    let response = browser.get(&authorize_url(server, client, pkce)).await;
    assert_eq!(response.status(), 302, "a browser that is not signed in goes to the provider");
    let upstream = location(&response);
    assert_eq!(param(&upstream, "code_challenge_method").as_deref(), Some("S256"));
    assert!(param(&upstream, "nonce").is_some() && param(&upstream, "state").is_some());
    UpstreamBrowser::default().sign_in(&upstream, login, true).await
}

/// Approves on the consent page in `response`; returns the code sent to the client.
async fn approve(server: &TestServer, browser: &Browser, response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200, "the consent page is shown");
    let html = response.text().await.unwrap();
    assert!(!html.contains("name=\"username\""), "a signed-in user types no name");
    let form = [
        ("request_id", hidden(&html, "request_id")),
        ("csrf_token", hidden(&html, "csrf_token")),
        ("decision", "approve".to_owned()),
    ];
    let response = browser.http.post(server.url("/authorize")).form(&form).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let redirect = location(&response);
    assert_eq!(param(&redirect, "state").as_deref(), Some("client-state"));
    param(&redirect, "code").expect("a code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_upstream_and_a_second_client_reuses_the_login_and_a_remembered_approval_skips_the_page() {
    let (server, _idp) = server_with_idp(&[], 3600).await;
    let browser = Browser::new();
    let client = server.client("none").await;
    let pkce = Pkce::new();
    let callback = to_callback(&server, &browser, &client, &pkce, "alice").await;
    assert!(callback.as_str().starts_with(&server.url("/login/callback")), "{callback}");
    let response = browser.get(&callback).await;
    let html_check = response.headers().clone();
    assert!(html_check.get_all(header::SET_COOKIE).iter().any(|c| c.to_str().unwrap().starts_with("mcp_oauth_login=")));
    let page = response.text().await.unwrap();
    assert!(page.contains("alice@example.com, via 127.0.0.1"), "the page names who signed in, and where: {page}");
    assert!(!page.contains("Development login"));
    let form = [
        ("request_id", hidden(&page, "request_id")),
        ("csrf_token", hidden(&page, "csrf_token")),
        ("decision", "approve".into()),
    ];
    let response = browser.http.post(server.url("/authorize")).form(&form).send().await.unwrap();
    let code = param(&location(&response), "code").expect("a code");
    let (status, tokens) = server.exchange(&client, &code, &pkce).await;
    assert_eq!(status, 200, "{tokens}");
    let (_, introspection) = server.introspect(RS, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(introspection["sub"], "alice", "the upstream's sub is our sub");

    // A second client: the browser is still signed in, so no trip to the provider.
    let other = server.client("none").await;
    let pkce2 = Pkce::new();
    let response = browser.get(&authorize_url(&server, &other, &pkce2)).await;
    let code = approve(&server, &browser, response).await;
    assert_eq!(server.exchange(&other, &code, &pkce2).await.0, 200);

    // The first client again: the approval is remembered, straight back with a code.
    let pkce3 = Pkce::new();
    let response = browser.get(&authorize_url(&server, &client, &pkce3)).await;
    assert_eq!(response.status(), 302, "a remembered approval skips the page");
    let redirect = location(&response);
    assert!(redirect.as_str().starts_with(REDIRECT_URI), "{redirect}");
    let code = param(&redirect, "code").expect("a code");
    assert_eq!(server.exchange(&client, &code, &pkce3).await.0, 200);

    // Signing out ends the session: the next authorization goes to the provider again.
    let response = browser.get(&Url::parse(&server.url("/logout")).unwrap()).await;
    assert_eq!(response.status(), 200);
    let response = browser.get(&authorize_url(&server, &client, &Pkce::new())).await;
    assert_eq!(response.status(), 302);
    assert!(location(&response).as_str().starts_with(&_idp.issuer), "signed out: back to the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_ttl_zero_asks_every_time() {
    let (server, _idp) = server_with_idp(&["--consent-ttl", "0"], 3600).await;
    let browser = Browser::new();
    let client = server.client("none").await;
    let pkce = Pkce::new();
    let callback = to_callback(&server, &browser, &client, &pkce, "alice").await;
    let code = approve(&server, &browser, browser.get(&callback).await).await;
    assert_eq!(server.exchange(&client, &code, &pkce).await.0, 200);
    let response = browser.get(&authorize_url(&server, &client, &Pkce::new())).await;
    assert_eq!(response.status(), 200, "the page is shown again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_policy_refuses_with_a_page_and_the_client_gets_access_denied() {
    let (server, _idp) = server_with_idp(&["--allowed-email-domains", "example.org"], 3600).await;
    let browser = Browser::new();
    let client = server.client("none").await;
    let callback = to_callback(&server, &browser, &client, &Pkce::new(), "alice").await;
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), 403);
    let page = response.text().await.unwrap();
    assert!(page.contains("alice@example.com is not allowed"), "{page}");
    let href = page.split("href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&").replace("&#38;", "&");
    let back = Url::parse(&href).unwrap();
    assert!(back.as_str().starts_with(REDIRECT_URI));
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("client-state"));

    // An unverified email never counts.
    let (server, _idp) = server_with_idp(&["--allowed-email-domains", "example.com"], 3600).await;
    let client = server.client("none").await;
    let browser = Browser::new();
    let callback = to_callback(&server, &browser, &client, &Pkce::new(), "unverified-bob").await;
    assert_eq!(browser.get(&callback).await.status(), 403);
    let callback = to_callback(&server, &browser, &client, &Pkce::new(), "carol").await;
    assert_eq!(browser.get(&callback).await.status(), 200, "a verified address in the domain is let in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_at_the_provider_sends_access_denied_to_the_client() {
    let (server, _idp) = server_with_idp(&[], 3600).await;
    let browser = Browser::new();
    let client = server.client("none").await;
    let response = browser.get(&authorize_url(&server, &client, &Pkce::new())).await;
    let callback = UpstreamBrowser::default().sign_in(&location(&response), "alice", false).await;
    assert_eq!(param(&callback, "error").as_deref(), Some("access_denied"), "the provider reports the refusal");
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), 302);
    let redirect = location(&response);
    assert!(redirect.as_str().starts_with(REDIRECT_URI));
    assert_eq!(param(&redirect, "error").as_deref(), Some("access_denied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_forged_and_misdirected_callbacks_sign_nobody_in() {
    let (server, _idp) = server_with_idp(&[], 3600).await;
    let browser = Browser::new();
    let client = server.client("none").await;
    let pkce = Pkce::new();
    let callback = to_callback(&server, &browser, &client, &pkce, "alice").await;

    // Another browser (no binding cookie) presents the real callback: refused, and the real
    // one still works afterwards.
    let attacker = Browser::new();
    let response = attacker.get(&callback).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("another browser"));

    // A forged state and a missing state.
    let mut forged = callback.clone();
    forged.query_pairs_mut().clear().append_pair("state", "forged").append_pair("code", "x");
    assert_eq!(browser.get(&forged).await.status(), 400);
    let bare = Url::parse(&server.url("/login/callback")).unwrap();
    assert_eq!(browser.get(&bare).await.status(), 400);

    let code = approve(&server, &browser, browser.get(&callback).await).await;
    assert_eq!(server.exchange(&client, &code, &pkce).await.0, 200);

    // Replaying the used callback.
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("already used"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_gets_a_503_page_never_a_hang() {
    let (server, mut idp) = server_with_idp(&[], 3600).await;
    let browser = Browser::new();
    let client = server.client("none").await;
    let callback = to_callback(&server, &browser, &client, &Pkce::new(), "alice").await;
    idp.stop();
    let started = std::time::Instant::now();
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert!(response.text().await.unwrap().contains("Try again shortly"));
}

fn tool_text(result: &rmcp::model::CallToolResult) -> serde_json::Value {
    let text = result.content.iter().find_map(|c| c.as_text().map(|t| t.text.clone())).expect("a text result");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

/// MCP tools reach the caller's upstream account with the upstream token kept for their
/// authorization, refreshed once the upstream's short-lived access token has expired; the MCP
/// client's own token never leaves this server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_use_the_upstream_account_and_refresh_its_token() {
    use mcp_oauth_testkit::mcp::{TestClientHandler, connect};
    use rmcp::model::CallToolRequestParams;

    let (server, _idp) = server_with_idp(&[], 2).await;
    let browser = Browser::new();
    let client = server.client("none").await;
    let pkce = Pkce::new();
    let callback = to_callback(&server, &browser, &client, &pkce, "alice").await;
    let code = approve(&server, &browser, browser.get(&callback).await).await;
    let (_, tokens) = server.exchange(&client, &code, &pkce).await;
    let token = tokens["access_token"].as_str().unwrap();

    let mcp = connect(&server.resource(), token, TestClientHandler::default()).await;
    let listed = mcp.list_all_tools().await.unwrap();
    assert!(listed.iter().any(|t| t.name == "upstream_userinfo"), "the tool is offered with an upstream login");
    let whoami = tool_text(&mcp.call_tool(CallToolRequestParams::new("whoami")).await.unwrap());
    assert_eq!(whoami["sub"], "alice");
    assert_eq!(whoami["upstream"]["email"], "alice@example.com", "{whoami}");
    assert_eq!(whoami["upstream"]["provider"], "127.0.0.1");

    // The upstream access token lives 2 s; past that, only a refreshed one is accepted.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    for _ in 0..2 {
        let result = mcp.call_tool(CallToolRequestParams::new("upstream_userinfo")).await.unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
        let info = tool_text(&result);
        assert_eq!(info["sub"], "alice", "{info}");
        assert_eq!(info["email"], "alice@example.com");
    }

    // Revoking the authorization deletes its upstream tokens.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(server.revoke(&client, refresh).await, 200);
    let mcp_after = server.mcp_initialize(Some(token)).await;
    assert_eq!(mcp_after.status(), 401, "the family is revoked");
    let result = mcp.call_tool(CallToolRequestParams::new("upstream_userinfo")).await;
    assert!(result.is_err() || result.unwrap().is_error == Some(true), "nothing upstream is reachable any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_the_upstream_did_not_sign_for_this_login_signs_nobody_in() {
    let (server, _idp) = server_with_idp(&[], 3600).await;
    let browser = Browser::new();
    let client = server.client("none").await;
    let response = browser.get(&authorize_url(&server, &client, &Pkce::new())).await;
    // The browser is tampered with on its way to the provider: the ID token then carries
    // another nonce than the one derived for this state.
    let mut upstream = location(&response);
    let pairs: Vec<(String, String)> = upstream
        .query_pairs()
        .map(|(k, v)| (k.to_string(), if k == "nonce" { "tampered".to_owned() } else { v.into_owned() }))
        .collect();
    upstream.query_pairs_mut().clear().extend_pairs(pairs);
    let callback = UpstreamBrowser::default().sign_in(&upstream, "alice", true).await;
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("could not be verified"));
}

/// GitHub cannot run here: its code path (OAuth 2.0 with endpoints given by hand, identity
/// from the user API, client secret in the form) runs against the same provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_github_code_path_signs_in_with_hand_given_endpoints_and_userinfo() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp = TestIdp::start(&[format!("{base}/login/callback")], 3600).await;
    let (authorization, token, userinfo) =
        (format!("{}/auth", idp.issuer), format!("{}/token", idp.issuer), format!("{}/me", idp.issuer));
    let post_client = format!("{}-post", mcp_oauth_testkit::idp::CLIENT_ID);
    let args = [
        "--login",
        "github",
        "--upstream-client-id",
        &post_client,
        "--upstream-client-secret",
        mcp_oauth_testkit::idp::CLIENT_SECRET,
        "--upstream-authorization-url",
        &authorization,
        "--upstream-token-url",
        &token,
        "--upstream-userinfo-url",
        &userinfo,
        "--upstream-scopes",
        "openid email",
        "--upstream-subject-claim",
        "sub",
        "--allowed-users",
        "alice@example.com",
    ];
    let stores = mcp_oauth_adapters::memory::MemoryStore::default().stores();
    let server = TestServer::serve(listener, base, &args, stores).await;
    let browser = Browser::new();
    let client = server.client("none").await;
    let pkce = Pkce::new();
    let response = browser.get(&authorize_url(&server, &client, &pkce)).await;
    let upstream = location(&response);
    assert!(param(&upstream, "nonce").is_none(), "OAuth 2.0 without OpenID Connect sends no nonce");
    let callback = UpstreamBrowser::default().sign_in(&upstream, "alice", true).await;
    let response = browser.get(&callback).await;
    let page = response.text().await.unwrap();
    assert!(page.contains("alice@example.com, via GitHub"), "{page}");
}
