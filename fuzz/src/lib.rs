//! What the HTTP fuzz targets share: the real router on memory storage, with a registered
//! confidential client, a valid access token and an MCP session, driven in-process (no
//! sockets) so that each input costs one request. The oracle is the project's rule for bad
//! input: an answer in the protocol's format, never a panic, a 5xx or an empty error body.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, header};
use clap::Parser;
use http_body_util::BodyExt;
use mcp_oauth_app::config::{Config, Settings};
use mcp_oauth_testkit::http::TestServer;
use tower::ServiceExt;

/// Every limit off: the fuzzer sends far more than any one address may.
const ARGS: &[&str] = &[
    "--rate-limit-register",
    "off",
    "--registration-quota",
    "off",
    "--pending-authorization-quota",
    "off",
    "--rate-limit-authorize",
    "off",
    "--rate-limit-token",
    "off",
    "--rate-limit-introspect",
    "off",
    "--rate-limit-revoke",
    "off",
    "--rate-limit-mcp",
    "off",
    "--rate-limit-client",
    "off",
    "--rate-limit-client-auth-failures",
    "off",
    "--max-sessions-per-user",
    "1000",
];

pub struct Harness {
    runtime: tokio::runtime::Runtime,
    app: Router,
    host: String,
    client_id: String,
    client_secret: String,
    pub token: String,
    pub session: String,
}

/// One request of a fuzz input.
pub struct Call<'a> {
    pub path: &'static str,
    pub content_type: &'static str,
    pub authorization: Option<&'a str>,
    pub session: Option<&'a str>,
    pub body: &'a [u8],
}

pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(Harness::start)
}

impl Harness {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (app, host, client_id, client_secret, token) = runtime.block_on(async {
            let stores = mcp_oauth_adapters::memory::MemoryStore::default().stores();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let host = listener.local_addr().unwrap().to_string();
            let base = format!("http://{host}");
            // A served copy on the same stores walks the authorization flow for the token.
            let served = TestServer::serve(listener, base.clone(), ARGS, stores.clone()).await;
            let client = served.client("client_secret_basic").await;
            let token = served.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
            let mut argv = vec!["mcp-oauth-server", "--base-uri", &base];
            argv.extend_from_slice(ARGS);
            let settings = Settings::parse(Config::try_parse_from(argv).unwrap()).unwrap();
            let mcp = mcp_oauth_app::server::local_mcp_backend(&settings);
            let storage =
                mcp_oauth_app::server::Storage { stores, mcp, rate_limits: mcp_oauth_app::server::local_rate_limits() };
            let shutdown = mcp_oauth_app::shutdown::Shutdown::default();
            let app = mcp_oauth_app::server::build(&settings, storage, &shutdown);
            std::mem::forget((served, shutdown));
            (app, host, client.client_id, client.secret.unwrap(), token)
        });
        let mut harness = Self { runtime, app, host, client_id, client_secret, token, session: String::new() };
        harness.session = harness.open_session();
        harness
    }

    fn open_session(&self) -> String {
        let initialize = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}});
        let request = self
            .request("/mcp", "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Body::from(initialize.to_string()))
            .unwrap();
        let response = self.send(request);
        response.headers()["mcp-session-id"].to_str().unwrap().to_owned()
    }

    fn request(&self, path: &str, content_type: &str) -> axum::http::request::Builder {
        Request::post(path)
            .header(header::HOST, &self.host)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT, "application/json, text/event-stream")
    }

    fn send(&self, mut request: Request<Body>) -> axum::response::Response {
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 50_000))));
        self.runtime.block_on(self.app.clone().oneshot(request)).unwrap()
    }

    /// Sends `call` and checks the answer against the rule for bad input.
    pub fn check(&self, call: Call<'_>) {
        let mut builder = self.request(call.path, call.content_type);
        // A value that is not header text cannot arrive over HTTP at all.
        if let Some(value) = call.authorization.and_then(|a| HeaderValue::from_str(a).ok()) {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        if let Some(session) = call.session {
            builder = builder.header("mcp-session-id", session).header("mcp-protocol-version", "2025-06-18");
        }
        let response = self.send(builder.body(Body::from(call.body.to_vec())).unwrap());
        let status = response.status();
        assert!(!status.is_server_error(), "{} answered {status} to {:?}", call.path, String::from_utf8_lossy(call.body));
        if status.is_client_error() {
            let body = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), response.into_body().collect()).await })
                .expect("an error body is never held open")
                .expect("an error body is readable")
                .to_bytes();
            assert!(!body.is_empty(), "{} answered {status} with an empty body", call.path);
        }
    }

    /// The client's id with any secret but its own never authenticates.
    pub fn refuses_wrong_secret(&self, secret: &str) {
        use base64::Engine;
        if secret == self.client_secret {
            return;
        }
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", self.client_id));
        let request = self
            .request("/token", "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, format!("Basic {credentials}"))
            .body(Body::from("grant_type=refresh_token&refresh_token=unknown"))
            .unwrap();
        let status = self.send(request).status();
        assert_eq!(status, 401, "a wrong secret for the real client id got {status}");
    }
}
