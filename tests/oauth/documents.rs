//! Client ID Metadata Documents, fetched from a real https server on loopback (its certificate
//! from a test CA the server is told to trust), shaped like the documents Claude, Claude Code
//! and VS Code publish.

use std::time::{Duration, Instant};

use mcp_oauth_testkit::documents::{Answer, DocumentHost, client_document};
use mcp_oauth_testkit::http::{ConsentForm, Pkce, TestClient, TestServer, redirect_params};
use serde_json::{Value, json};

const CLAUDE_PATH: &str = "/oauth/mcp-oauth-client-metadata";
const CLAUDE_CODE_PATH: &str = "/oauth/claude-code-client-metadata";
const VSCODE_PATH: &str = "/oauth/client-metadata.json";

async fn server_trusting(host: &DocumentHost, extra: &[&str]) -> TestServer {
    let mut flags = host.trusting_flags();
    flags.extend(extra.iter().map(|f| (*f).to_owned()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestServer::start(&flags).await
}

fn public(client_id: &str) -> TestClient {
    TestClient { client_id: client_id.to_owned(), secret: None, method: "none".into() }
}

/// GET /authorize for `client` returning to `redirect_uri`.
async fn authorize(server: &TestServer, client: &TestClient, redirect_uri: &str, pkce: &Pkce) -> reqwest::Response {
    server.authorize(client, pkce, &[("redirect_uri", redirect_uri)]).await
}

/// The whole flow for a document client: the consent page's HTML and the token response.
async fn flow(server: &TestServer, client: &TestClient, redirect_uri: &str) -> (String, Value) {
    let pkce = Pkce::new();
    let page = authorize(server, client, redirect_uri, &pkce).await;
    assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());
    let form = ConsentForm::read(page).await;
    let approved = server.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
    assert_eq!(approved.status(), 302);
    assert!(approved.headers()["location"].to_str().unwrap().starts_with(redirect_uri));
    let code = redirect_params(&approved)["code"].clone();
    let (status, _, tokens) = server
        .token(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    (form.html, tokens)
}

/// The refusal page of an authorization request whose client id is `client_id`.
async fn refusal(server: &TestServer, client_id: &str) -> (u16, String) {
    let response = authorize(server, &public(client_id), "https://claude.ai/api/mcp/auth_callback", &Pkce::new()).await;
    assert!(response.headers().get("location").is_none(), "a client that cannot be verified is never redirected to");
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn claude_claude_code_and_vscode_documents_complete_a_flow() {
    let host = DocumentHost::start().await;
    let claude = host.url(CLAUDE_PATH);
    let claude_redirects = ["https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"];
    host.publish(CLAUDE_PATH, Answer::json(&client_document(&claude, "Claude", &claude_redirects), Some("max-age=3600")));
    let claude_code = host.url(CLAUDE_CODE_PATH);
    let mut claude_code_document =
        client_document(&claude_code, "Claude Code", &["http://localhost/callback", "http://127.0.0.1/callback"]);
    claude_code_document.as_object_mut().unwrap().remove("response_types");
    host.publish(CLAUDE_CODE_PATH, Answer::json(&claude_code_document, None));
    let vscode = host.url(VSCODE_PATH);
    let vscode_redirects =
        ["https://vscode.dev/redirect", "https://insiders.vscode.dev/redirect", "http://127.0.0.1/", "http://127.0.0.1:33418/"];
    let mut vscode_document = client_document(&vscode, "Visual Studio Code", &vscode_redirects);
    vscode_document["application_type"] = json!("native");
    host.publish(VSCODE_PATH, Answer::json(&vscode_document, Some("public, max-age=86400")));
    let server = server_trusting(&host, &[]).await;

    let (_, metadata) = server.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    assert!(metadata["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("none")));

    let (page, tokens) = flow(&server, &public(&claude), "https://claude.ai/api/mcp/auth_callback").await;
    assert!(page.contains("Published by <strong>localhost</strong>"), "the verified origin is shown");
    assert!(!page.contains("Check that you started this"), "Claude returns to its own site");
    // A document client refreshes, and revokes, like a registered public client.
    let client = public(&claude);
    let (status, refreshed) = server.refresh(&client, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(server.mcp_initialize(Some(access)).await.status(), 200, "its token reaches /mcp");
    assert_eq!(server.revoke(&client, refreshed["refresh_token"].as_str().unwrap()).await, 200);
    assert_eq!(server.refresh(&client, refreshed["refresh_token"].as_str().unwrap()).await.0, 400);
    assert_eq!(server.mcp_initialize(Some(access)).await.status(), 401, "revoking the grant ends its access token");

    // Claude Code lists port-less loopback URIs and comes back on an ephemeral port.
    let (page, _) = flow(&server, &public(&claude_code), "http://localhost:54321/callback").await;
    assert!(page.contains("Check that you started this"), "every redirect is on this device: the user is warned");
    flow(&server, &public(&vscode), "http://127.0.0.1:49152/").await;
    flow(&server, &public(&vscode), "https://vscode.dev/redirect").await;

    // Only what the document lists.
    let pkce = Pkce::new();
    let unlisted = authorize(&server, &public(&claude), "https://evil.example/callback", &pkce).await;
    assert_eq!(unlisted.status(), 400);
    assert!(unlisted.text().await.unwrap().contains("redirect_uri is not registered"));
    // A public client cannot introspect, whatever it is.
    let (status, body) = server.introspect((&claude, "anything"), access).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

#[tokio::test]
async fn documents_on_non_public_addresses_are_never_fetched_unless_allowed() {
    let host = DocumentHost::start().await;
    let port = host.port;
    let document = |id: &str| Answer::json(&client_document(id, "Local", &["https://claude.ai/api/mcp/auth_callback"]), None);
    for id in [format!("https://127.0.0.1:{port}/doc"), format!("https://[::1]:{port}/doc"), host.url("/doc")] {
        host.publish("/doc", document(&id));
    }
    let server = TestServer::start(&[]).await;
    for client_id in [
        format!("https://127.0.0.1:{port}/doc"),
        "https://10.1.2.3/doc".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        format!("https://[::1]:{port}/doc"),
        format!("https://[::ffff:7f00:1]:{port}/doc"),
        host.url("/doc"),
    ] {
        let (status, page) = refusal(&server, &client_id).await;
        assert_eq!(status, 400, "{client_id}");
        assert!(page.contains("not a public address"), "{client_id}: {page}");
    }
    // Other spellings of loopback are not document URLs at all, and never fetched either.
    for client_id in [format!("https://2130706433:{port}/doc"), format!("https://0x7f.1:{port}/doc")] {
        let (status, page) = refusal(&server, &client_id).await;
        assert_eq!(status, 400, "{client_id}");
        assert!(page.contains("normalized form"), "{client_id}: {page}");
    }
    assert_eq!(host.fetches("/doc"), 0, "nothing reached the host");

    // Allowed (a private deployment), the same loopback document is fetched.
    let allowed = server_trusting(&host, &[]).await;
    flow(&allowed, &public(&host.url("/doc")), "https://claude.ai/api/mcp/auth_callback").await;
    assert_eq!(host.fetches("/doc"), 1);
}

#[tokio::test]
async fn redirects_oversized_and_slow_documents_are_refused_within_bounds() {
    let host = DocumentHost::start().await;
    let moved = Answer { status: 302, headers: vec![("location", host.url("/doc"))], body: vec![], delay: Duration::ZERO };
    host.publish("/moved", moved);
    let mut huge = client_document(&host.url("/huge"), "Huge", &["https://claude.ai/api/mcp/auth_callback"]);
    huge["client_uri"] = json!(format!("https://claude.ai/{}", "x".repeat(6000)));
    host.publish("/huge", Answer::json(&huge, None));
    let slow_document = client_document(&host.url("/slow"), "Slow", &["https://claude.ai/api/mcp/auth_callback"]);
    host.publish("/slow", Answer { delay: Duration::from_secs(5), ..Answer::json(&slow_document, None) });
    let server = server_trusting(&host, &["--cimd-fetch-timeout", "1s"]).await;

    let (status, page) = refusal(&server, &host.url("/moved")).await;
    assert_eq!(status, 400);
    assert!(page.contains("redirect"), "{page}");
    assert_eq!(host.fetches("/doc"), 0, "the redirect was not followed");
    let (status, page) = refusal(&server, &host.url("/huge")).await;
    assert_eq!(status, 400);
    assert!(page.contains("larger than 5120 bytes"), "{page}");
    let started = Instant::now();
    let (status, page) = refusal(&server, &host.url("/slow")).await;
    assert_eq!(status, 400);
    assert!(page.contains("did not answer in time"), "{page}");
    assert!(started.elapsed() < Duration::from_secs(3), "refused within the timeout: {:?}", started.elapsed());
}

/// What makes a document invalid.
type Spoil = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn invalid_documents_are_refused_naming_the_reason() {
    let host = DocumentHost::start().await;
    let server = server_trusting(&host, &[]).await;
    let redirect = ["https://claude.ai/api/mcp/auth_callback"];
    let cases: [(&str, Spoil, &str); 5] = [
        ("/mismatch", Box::new(|d| d["client_id"] = json!("https://claude.ai/oauth/mcp-oauth-client-metadata")), "not the URL"),
        ("/nameless", Box::new(|d| drop(d.as_object_mut().unwrap().remove("client_name"))), "no client_name"),
        ("/secret", Box::new(|d| d["client_secret"] = json!("hunter2")), "client secret"),
        ("/basic", Box::new(|d| d["token_endpoint_auth_method"] = json!("client_secret_basic")), "not supported"),
        ("/http", Box::new(|d| d["redirect_uris"] = json!(["http://claude.ai/cb"])), "invalid"),
    ];
    for (path, spoil, reason) in cases {
        let mut document = client_document(&host.url(path), "Spoilt", &redirect);
        spoil(&mut document);
        host.publish(path, Answer::json(&document, Some("max-age=600")));
        let (status, page) = refusal(&server, &host.url(path)).await;
        assert_eq!(status, 400, "{path}");
        assert!(page.contains(reason), "{path}: {page}");
    }
    host.publish("/html", Answer { status: 200, headers: vec![], body: b"<html>hi</html>".to_vec(), delay: Duration::ZERO });
    assert!(refusal(&server, &host.url("/html")).await.1.contains("not a JSON object"));
    // Nor is a refused document ever used at the token endpoint.
    let (status, _, body) =
        server.token(&public(&host.url("/secret")), &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

#[tokio::test]
async fn documents_are_cached_as_their_host_says_and_errors_are_not() {
    let host = DocumentHost::start().await;
    let redirect = ["https://claude.ai/api/mcp/auth_callback"];
    let server = server_trusting(&host, &["--cimd-cache-min-ttl", "1s"]).await;
    let fetch_twice = async |path: &str| {
        for _ in 0..2 {
            let response = authorize(&server, &public(&host.url(path)), redirect[0], &Pkce::new()).await;
            assert_eq!(response.status(), 200, "{path}");
        }
        host.fetches(path)
    };
    host.publish("/cached", Answer::json(&client_document(&host.url("/cached"), "Cached", &redirect), Some("max-age=300")));
    assert_eq!(fetch_twice("/cached").await, 1, "the second authorization within max-age made no fetch");
    host.publish("/no-store", Answer::json(&client_document(&host.url("/no-store"), "Fresh", &redirect), Some("no-store")));
    assert_eq!(fetch_twice("/no-store").await, 2, "no-store: fetched each time");

    // An error is not cached: once the host serves the document, it is used.
    assert_eq!(refusal(&server, &host.url("/later")).await.0, 400);
    host.publish("/later", Answer::json(&client_document(&host.url("/later"), "Later", &redirect), Some("max-age=300")));
    assert_eq!(authorize(&server, &public(&host.url("/later")), redirect[0], &Pkce::new()).await.status(), 200);
    assert_eq!(host.fetches("/later"), 2);

    // Past its freshness, a copy stands in while the host fails, but not once the host serves
    // an invalid document.
    let short = client_document(&host.url("/short"), "Short", &redirect);
    host.publish("/short", Answer::json(&short, Some("max-age=1")));
    assert_eq!(authorize(&server, &public(&host.url("/short")), redirect[0], &Pkce::new()).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    host.publish("/short", Answer { status: 503, headers: vec![], body: vec![], delay: Duration::ZERO });
    let stale = authorize(&server, &public(&host.url("/short")), redirect[0], &Pkce::new()).await;
    assert_eq!(stale.status(), 200, "the stale copy served while the host is down");
    assert_eq!(host.fetches("/short"), 2);
    let mut spoilt = short;
    spoilt["client_secret"] = json!("now-with-a-secret");
    host.publish("/short", Answer::json(&spoilt, None));
    assert_eq!(refusal(&server, &host.url("/short")).await.0, 400);
    host.publish("/short", Answer { status: 503, headers: vec![], body: vec![], delay: Duration::ZERO });
    assert_eq!(refusal(&server, &host.url("/short")).await.0, 400, "the invalid document dropped the old copy");
}

#[tokio::test]
async fn allowed_and_denied_hosts_decide_who_may_publish() {
    let host = DocumentHost::start().await;
    let redirect = ["https://claude.ai/api/mcp/auth_callback"];
    host.publish("/doc", Answer::json(&client_document(&host.url("/doc"), "Doc", &redirect), None));
    let only_claude = server_trusting(&host, &["--cimd-allowed-hosts", "claude.ai, *.vscode.dev"]).await;
    let (status, page) = refusal(&only_claude, &host.url("/doc")).await;
    assert_eq!(status, 400);
    assert!(page.contains("localhost is not allowed to serve client metadata documents"), "{page}");
    let denied = server_trusting(&host, &["--cimd-denied-hosts", "localhost"]).await;
    assert_eq!(refusal(&denied, &host.url("/doc")).await.0, 400);
    assert_eq!(host.fetches("/doc"), 0);
    let listed = server_trusting(&host, &["--cimd-allowed-hosts", "localhost"]).await;
    flow(&listed, &public(&host.url("/doc")), redirect[0]).await;
}

/// tests/clients, where `npm ci` put the real clients and the Node they run on.
fn clients_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients");
    assert!(dir.join("node_modules/.bin/node").exists(), "run `npm ci` in tests/clients first (./scripts/test does it)");
    dir
}

/// A server and a host publishing a document that lists `redirect` (a loopback URI matches
/// any port), for the Node clients.
async fn published_for(redirect: &str) -> (DocumentHost, TestServer, String) {
    let host = DocumentHost::start().await;
    let client_id = host.url("/node-client");
    host.publish("/node-client", Answer::json(&client_document(&client_id, "Node client", &[redirect]), None));
    let server = server_trusting(&host, &[]).await;
    (host, server, client_id)
}

#[tokio::test]
async fn the_typescript_sdk_client_authorizes_with_a_metadata_document() {
    let redirect = "http://127.0.0.1:8976/callback";
    let (host, server, client_id) = published_for(redirect).await;
    let dir = clients_dir();
    let run = tokio::process::Command::new(dir.join("node_modules/.bin/node"))
        .current_dir(&dir)
        .args(["sdk_client.mjs", &server.resource(), &client_id, redirect])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the SDK client finishes").unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let result: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{stderr}"));
    assert_eq!(result["client_id"], client_id.as_str(), "the SDK used the document URL, not registration");
    assert_eq!(result["verified"], "localhost");
    assert!(result["tools"].as_u64().unwrap() > 0);
    assert!(host.fetches("/node-client") >= 1);
}

#[tokio::test]
async fn the_inspector_cli_authorizes_with_a_metadata_document() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let port = mcp_oauth_testkit::process::free_port();
    let callback = format!("http://127.0.0.1:{port}/oauth/callback");
    let (_host, server, client_id) = published_for("http://127.0.0.1/oauth/callback").await;
    let dir = clients_dir();
    let home = tempfile::tempdir().unwrap();
    let mut cli = tokio::process::Command::new(dir.join("node_modules/.bin/node"))
        .current_dir(&dir)
        .arg("node_modules/@modelcontextprotocol/inspector/clients/cli/build/index.js")
        .args([&server.resource(), "--method", "tools/list", "--client-metadata-url", &client_id, "--callback-url", &callback])
        .env("HOME", home.path())
        // It asks for a terminal, or leave to open a browser: the browser it opens is `true`,
        // and this test takes the browser's part.
        .env("MCP_AUTO_OPEN_ENABLED", "true")
        .env("BROWSER", "true")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(cli.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let authorization_url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(url) = line.split("Please navigate to: ").nth(1) {
                return url.trim().to_owned();
            }
        }
        panic!("the CLI ended without asking to authorize: {seen}");
    })
    .await
    .expect("the CLI asks the user to authorize");
    assert!(authorization_url.contains(&url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>()));

    // The browser's part: the consent page, approved, and the redirect to the CLI's listener.
    let page = server.http.get(&authorization_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let form = ConsentForm::read(page).await;
    let approved = server.post_consent(&form, &[("username", "inspector-user"), ("decision", "approve")]).await;
    let location = approved.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&callback), "{location}");
    server.http.get(&location).send().await.unwrap();

    let output = tokio::time::timeout(Duration::from_secs(60), cli.wait_with_output()).await.expect("the CLI finishes").unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(!listed["tools"].as_array().unwrap().is_empty(), "{listed}");
}
