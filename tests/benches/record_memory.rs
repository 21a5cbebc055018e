//! What each kept record costs in memory: a registration (typical, and with every field at its
//! limit), a pending authorization at its limits, and an idle MCP session (the session store's
//! record and rmcp's worker), on the memory store; and registrations and pending
//! authorizations in Redis (`used_memory`). Live heap bytes are counted by a wrapping
//! allocator, so the figures do not depend on the machine's load.
//!
//! Run: `cargo bench -p mcp-oauth-tests --bench record_memory`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use chrono::{TimeDelta, Utc};
use mcp_oauth_adapters::memory::MemoryStore;
use mcp_oauth_domain::client::{
    Client, MAX_CONTACT_LEN, MAX_CONTACTS, MAX_NAME_LEN, MAX_REDIRECT_URIS, MAX_URL_LEN, RegistrationRequest,
};
use mcp_oauth_domain::pkce::{CodeChallenge, CodeVerifier};
use mcp_oauth_domain::ports::PendingAuthorization;
use mcp_oauth_domain::redirect_uri::RedirectUri;
use mcp_oauth_domain::resource::ResourceUri;
use mcp_oauth_domain::scope::Scope;
use mcp_oauth_domain::secret::{TokenDigest, generate_secret};
use mcp_oauth_testkit::redis_server::TestRedis;
use tower::ServiceExt;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only the sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const N: usize = 2_000;

type MakeClient = fn(String) -> Client;

fn typical_client(id: String) -> Client {
    let metadata = RegistrationRequest {
        redirect_uris: Some(vec!["http://127.0.0.1:33418/callback".into()]),
        client_name: Some("Claude Code".into()),
        token_endpoint_auth_method: Some("none".into()),
        ..Default::default()
    };
    client(id, metadata)
}

fn maximal_client(id: String) -> Client {
    let url = |tag: &str| format!("https://app.example/{tag}/{}", "u".repeat(MAX_URL_LEN - 30));
    let metadata = RegistrationRequest {
        redirect_uris: Some((0..MAX_REDIRECT_URIS).map(|i| url(&format!("cb{i}"))).collect()),
        client_name: Some("n".repeat(MAX_NAME_LEN)),
        client_uri: Some(url("home")),
        logo_uri: Some(url("logo")),
        tos_uri: Some(url("tos")),
        policy_uri: Some(url("policy")),
        contacts: Some((0..MAX_CONTACTS).map(|i| format!("{i}{}", "c".repeat(MAX_CONTACT_LEN - 20)) + "@mail.example").collect()),
        software_id: Some("s".repeat(MAX_NAME_LEN)),
        software_version: Some("v".repeat(MAX_NAME_LEN)),
        ..Default::default()
    };
    client(id, metadata)
}

fn client(id: String, request: RegistrationRequest) -> Client {
    let metadata = request.validate(&Scope::parse("mcp").unwrap()).expect("valid at every limit");
    Client {
        client_id: id.into(),
        secret_digest: None,
        metadata,
        issued_at: Utc::now(),
        expires_at: Utc::now() + TimeDelta::days(30),
    }
}

fn maximal_pending() -> PendingAuthorization {
    let redirect = format!("https://app.example/{}", "r".repeat(2000));
    PendingAuthorization {
        client_id: generate_secret().into(),
        redirect_uri: RedirectUri::parse(&redirect).unwrap(),
        code_challenge: CodeChallenge::of(&CodeVerifier::parse(&"v".repeat(43)).unwrap()),
        scope: Scope::parse("mcp").unwrap(),
        resource: ResourceUri::parse("https://mcp.example/mcp").unwrap(),
        state: Some("s".repeat(2048)),
        csrf_digest: TokenDigest::of("csrf"),
        created_at: Utc::now(),
        expires_at: Utc::now() + TimeDelta::minutes(10),
    }
}

fn per_record(before: isize, count: usize) -> f64 {
    (LIVE.load(Ordering::Relaxed) - before) as f64 / count as f64
}

fn redis_used(redis: &TestRedis) -> f64 {
    let info: String = redis::cmd("INFO").arg("memory").query(&mut redis.connection()).unwrap();
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).unwrap().trim().parse().unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let kib = |bytes: f64| format!("{:.1} KiB", bytes / 1024.0);
    println!("record                                   memory store     redis used_memory");

    runtime.block_on(async {
        let redis = TestRedis::start();
        let redis_store = redis.store().await;
        let redis_stores = mcp_oauth_adapters::redis::RedisStore::stores(&redis_store);
        let cases: [(&str, MakeClient); 2] =
            [("registration, typical", typical_client), ("registration, every field at its limit", maximal_client)];
        for (name, make) in cases {
            let clients: Vec<Client> = (0..N).map(|_| make(generate_secret())).collect();
            let memory = MemoryStore::default().stores();
            let before = LIVE.load(Ordering::Relaxed);
            for c in &clients {
                memory.clients.insert(c, u32::MAX).await.unwrap();
            }
            let in_memory = per_record(before, N);
            let used = redis_used(&redis);
            for c in &clients {
                redis_stores.clients.insert(c, u32::MAX).await.unwrap();
            }
            println!("{name:<40} {:>12} {:>16}", kib(in_memory), kib((redis_used(&redis) - used) / N as f64));
        }
        let pending: Vec<PendingAuthorization> = (0..N).map(|_| maximal_pending()).collect();
        let keys: Vec<TokenDigest> = (0..N).map(|_| TokenDigest::of(&generate_secret())).collect();
        let memory = MemoryStore::default().stores();
        let before = LIVE.load(Ordering::Relaxed);
        for (key, p) in keys.iter().zip(&pending) {
            memory.pending.insert(key, p).await.unwrap();
        }
        let in_memory = per_record(before, N);
        let used = redis_used(&redis);
        for (key, p) in keys.iter().zip(&pending) {
            redis_stores.pending.insert(key, p).await.unwrap();
        }
        println!(
            "{:<40} {:>12} {:>16}",
            "pending authorization at its limits",
            kib(in_memory),
            kib((redis_used(&redis) - used) / N as f64)
        );
    });

    let sessions = 1_000;
    let (per_session, _keep) = runtime.block_on(idle_sessions(sessions));
    println!("{:<40} {:>12} {:>16}", "idle MCP session (store + rmcp worker)", kib(per_session), "-");
}

/// Opens `count` MCP sessions on the in-process router (memory storage) and leaves them idle.
async fn idle_sessions(count: usize) -> (f64, Box<dyn std::any::Any>) {
    use clap::Parser;
    let stores = MemoryStore::default().stores();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let base = format!("http://{host}");
    let args = ["--rate-limit-mcp", "off", "--max-sessions-per-user", "100000"];
    let served = mcp_oauth_testkit::http::TestServer::serve(listener, base.clone(), &args, stores.clone()).await;
    let token = served.tokens(&served.client("none").await, "alice").await["access_token"].as_str().unwrap().to_owned();
    let mut argv = vec!["mcp-oauth-server", "--base-uri", &base];
    argv.extend_from_slice(&args);
    let settings = mcp_oauth_app::config::Settings::parse(mcp_oauth_app::config::Config::try_parse_from(argv).unwrap()).unwrap();
    let mcp = mcp_oauth_app::server::local_mcp_backend(&settings);
    let storage = mcp_oauth_app::server::Storage { stores, mcp, rate_limits: mcp_oauth_app::server::local_rate_limits() };
    let shutdown = mcp_oauth_app::shutdown::Shutdown::default();
    let app = mcp_oauth_app::server::build(&settings, storage, &shutdown);
    let initialize = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    .to_string();
    let open = |app: axum::Router| {
        let mut request = Request::post("/mcp")
            .header(header::HOST, &host)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(initialize.clone()))
            .unwrap();
        request.extensions_mut().insert(ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 50_000))));
        async move {
            let response = app.oneshot(request).await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            http_body_util::BodyExt::collect(response.into_body()).await.unwrap();
        }
    };
    open(app.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..count {
        open(app.clone()).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    (per_record(before, count), Box::new((served, shutdown, app)))
}
