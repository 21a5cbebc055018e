//! Drives a real server over loopback HTTP: start it, register clients, walk the
//! authorization flow the way a browser and an MCP client would.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::Parser;
use mcp_oauth_adapters::memory::MemoryStore;
use mcp_oauth_app::config::{Config, Settings};
use mcp_oauth_domain::service::Stores;
use reqwest::header::{self, HeaderMap};
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use url::Url;

pub const REDIRECT_URI: &str = "http://127.0.0.1:3000/callback";

/// A server running in this process on an ephemeral loopback port.
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    /// The in-process server, if this is not a view of another process.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// An HTTP client that, like an OAuth client, does not follow redirects. Every test client is
/// made here: the workspace builds reqwest with rustls but no crypto provider of its own.
pub fn http_client() -> reqwest::Client {
    mcp_oauth_adapters::install_tls_provider();
    reqwest::Client::builder().redirect(Policy::none()).build().expect("client builds")
}

impl TestServer {
    /// Starts a server with memory storage; `args` are extra command-line flags.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_with(args, MemoryStore::default().stores()).await
    }

    pub async fn start_with(args: &[&str], stores: Stores) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        Self::serve(listener, base, args, stores).await
    }

    /// Serves on `listener` with `base` as BASE_URI, which may name another address.
    pub async fn serve(listener: TcpListener, base: String, args: &[&str], stores: Stores) -> Self {
        let mut argv = vec!["mcp-oauth-server", "--base-uri", &base];
        argv.extend_from_slice(args);
        let config = Config::try_parse_from(argv).expect("valid test configuration");
        let settings = Settings::parse(config).expect("valid test settings");
        let mcp = mcp_oauth_app::server::local_mcp_backend(&settings);
        let storage = mcp_oauth_app::server::Storage { stores, mcp, rate_limits: mcp_oauth_app::server::local_rate_limits() };
        let shutdown = mcp_oauth_app::shutdown::Shutdown::default();
        let app = mcp_oauth_app::server::build(&settings, storage, &shutdown);
        let task = tokio::spawn(async move {
            let timeout = settings.config.shutdown_timeout;
            let limits = mcp_oauth_app::server::connection_limits(&settings.config);
            mcp_oauth_app::shutdown::serve(listener, app, shutdown, timeout, limits).await.expect("server runs");
        });
        Self { base, http: http_client(), task: Some(task) }
    }

    /// Talks to a server running elsewhere (another process) at `base`.
    pub fn remote(base: String, http: reqwest::Client) -> Self {
        Self { base, http, task: None }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn resource(&self) -> String {
        self.url("/mcp")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn register(&self, metadata: Value) -> (u16, Value) {
        let response = self.http.post(self.url("/register")).json(&metadata).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Registers a client whose token endpoint auth method is `method`.
    pub async fn client(&self, method: &str) -> TestClient {
        let (status, body) = self
            .register(json!({
                "redirect_uris": [REDIRECT_URI],
                "client_name": "Test client",
                "token_endpoint_auth_method": method,
            }))
            .await;
        assert_eq!(status, 201, "{body}");
        TestClient {
            client_id: body["client_id"].as_str().unwrap().to_owned(),
            secret: body["client_secret"].as_str().map(str::to_owned),
            method: method.to_owned(),
        }
    }

    /// GET /authorize with the usual parameters plus `extra` (which may override them).
    pub async fn authorize(&self, client: &TestClient, pkce: &Pkce, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("state", "state-123"),
        ];
        for (name, value) in extra {
            params.retain(|(n, _)| n != name);
            if !value.is_empty() {
                params.push((name, value));
            }
        }
        let mut url = Url::parse(&self.url("/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        self.http.get(url).send().await.unwrap()
    }

    /// Opens the consent page and returns what its form needs to be posted.
    pub async fn consent_form(&self, client: &TestClient, pkce: &Pkce) -> ConsentForm {
        let response = self.authorize(client, pkce, &[]).await;
        assert_eq!(response.status(), 200, "the consent page is shown");
        ConsentForm::read(response).await
    }

    pub async fn post_consent(&self, form: &ConsentForm, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post_consent_with_cookie(form, fields, Some(&form.cookie)).await
    }

    pub async fn post_consent_with_cookie(
        &self,
        form: &ConsentForm,
        fields: &[(&str, &str)],
        cookie: Option<&str>,
    ) -> reqwest::Response {
        let mut body: Vec<(&str, &str)> = vec![("request_id", &form.request_id), ("csrf_token", &form.csrf_token)];
        body.extend_from_slice(fields);
        let mut request = self.http.post(self.url("/authorize")).form(&body);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    /// Walks authorize and consent as `user`; returns the authorization code.
    pub async fn code(&self, client: &TestClient, pkce: &Pkce, user: &str) -> String {
        let form = self.consent_form(client, pkce).await;
        let response = self.post_consent(&form, &[("username", user), ("decision", "approve")]).await;
        assert_eq!(response.status(), 302);
        let params = redirect_params(&response);
        params.get("code").cloned().expect("the redirect carries a code")
    }

    pub async fn token(&self, client: &TestClient, form: &[(&str, &str)]) -> (u16, HeaderMap, Value) {
        let mut body: Vec<(&str, &str)> = form.to_vec();
        let mut request = self.http.post(self.url("/token"));
        request = client.authenticate(request, &mut body);
        let response = request.form(&body).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn exchange(&self, client: &TestClient, code: &str, pkce: &Pkce) -> (u16, Value) {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ];
        let (status, _, body) = self.token(client, &form).await;
        (status, body)
    }

    pub async fn refresh(&self, client: &TestClient, refresh_token: &str) -> (u16, Value) {
        let (status, _, body) = self.token(client, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await;
        (status, body)
    }

    /// Runs the whole flow as `user` and returns the token response.
    pub async fn tokens(&self, client: &TestClient, user: &str) -> Value {
        let pkce = Pkce::new();
        let code = self.code(client, &pkce, user).await;
        let (status, body) = self.exchange(client, &code, &pkce).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn introspect(&self, basic: (&str, &str), token: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/introspect"))
            .basic_auth(basic.0, Some(basic.1))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn revoke(&self, client: &TestClient, token: &str) -> u16 {
        let mut body = vec![("token", token)];
        let request = client.authenticate(self.http.post(self.url("/revoke")), &mut body);
        request.form(&body).send().await.unwrap().status().as_u16()
    }

    /// POSTs an MCP initialize to /mcp with `token`; returns the status and headers.
    pub async fn mcp_initialize(&self, token: Option<&str>) -> reqwest::Response {
        let mut request =
            self.http.post(self.resource()).header(header::ACCEPT, "application/json, text/event-stream").json(&json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
            }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }
}

/// A registered client and the credentials it authenticates with.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub client_id: String,
    pub secret: Option<String>,
    pub method: String,
}

impl TestClient {
    fn authenticate<'a>(
        &'a self,
        request: reqwest::RequestBuilder,
        body: &mut Vec<(&'a str, &'a str)>,
    ) -> reqwest::RequestBuilder {
        match (self.method.as_str(), &self.secret) {
            ("client_secret_basic", Some(secret)) => {
                let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                let value = STANDARD.encode(format!("{}:{}", encode(&self.client_id), encode(secret)));
                request.header(header::AUTHORIZATION, format!("Basic {value}"))
            }
            ("client_secret_post", Some(secret)) => {
                body.push(("client_id", &self.client_id));
                body.push(("client_secret", secret));
                request
            }
            _ => {
                body.push(("client_id", &self.client_id));
                request
            }
        }
    }
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = mcp_oauth_domain::secret::generate_secret();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self { verifier, challenge }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// What the consent page's form carries, and the CSRF cookie set with it.
#[derive(Debug, Clone)]
pub struct ConsentForm {
    pub request_id: String,
    pub csrf_token: String,
    pub cookie: String,
    pub html: String,
    pub headers: HeaderMap,
}

fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("the form has a {name} field")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

impl ConsentForm {
    pub async fn read(response: reqwest::Response) -> Self {
        let headers = response.headers().clone();
        let cookie = headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("the consent page sets a CSRF cookie")
            .to_owned();
        let html = response.text().await.unwrap();
        Self {
            request_id: hidden_field(&html, "request_id"),
            csrf_token: hidden_field(&html, "csrf_token"),
            cookie,
            html,
            headers,
        }
    }
}

/// The query parameters of a redirect response's Location.
pub fn redirect_params(response: &reqwest::Response) -> HashMap<String, String> {
    let location = response.headers().get(header::LOCATION).expect("a redirect has a Location").to_str().unwrap();
    Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

/// The redirect's Location without its query.
pub fn redirect_target(response: &reqwest::Response) -> String {
    let location = response.headers().get(header::LOCATION).unwrap().to_str().unwrap();
    let mut url = Url::parse(location).unwrap();
    url.set_query(None);
    url.to_string()
}

/// The value of one series in a Prometheus scrape (0 when it is not there yet).
pub fn series(scrape: &str, name_and_labels: &str) -> f64 {
    scrape.lines().find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// The MCP session workers the server at `base` holds: its `mcp_sessions` gauge.
pub async fn held_mcp_workers(http: &reqwest::Client, base: &str) -> f64 {
    let scrape = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    series(&scrape, "mcp_sessions")
}

/// Whether the server at `base` comes to hold `count` MCP session workers within `within`.
pub async fn holds_mcp_workers_within(http: &reqwest::Client, base: &str, count: f64, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while held_mcp_workers(http, base).await != count {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    true
}
