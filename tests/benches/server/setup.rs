//! What the measures run against: the release binary per storage, the bare baseline, an
//! upstream MCP server, and the flows that make tokens and sessions.

use std::time::Duration;

use mcp_oauth_testkit::http::{ConsentForm, Pkce, http_client, redirect_params};
use mcp_oauth_testkit::jwt_provider::{JwtProvider, Key, claims};
use mcp_oauth_testkit::mcp::RawSession;
use mcp_oauth_testkit::process::{ServerProcess, example_binary, free_port};
use mcp_oauth_testkit::redis_server::TestRedis;
use serde_json::{Value, json};

use crate::load::{CONNECTIONS, DURATION, Request, wrk};
use crate::{Report, echo_call, echo_request, rpc_headers};

/// The resource server credential every instance accepts at /introspect.
pub const RS: (&str, &str) = ("bench-rs", "bench-rs-secret");
const REDIRECT: &str = "http://127.0.0.1:3000/callback";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Memory,
    Redis,
    Sqlite,
}

impl Storage {
    pub fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::Sqlite => "sqlite",
        }
    }
}

fn resident_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// The baseline server.
pub struct Bare {
    pub base: String,
    child: std::process::Child,
}

impl Bare {
    pub async fn start() -> Self {
        Self::start_binary(&example_binary("bare_baseline")).await
    }

    /// The baseline run by `binary` (itself, or a script that runs it under callgrind).
    pub async fn start_binary(binary: &std::path::Path) -> Self {
        let port = free_port();
        let child = std::process::Command::new(binary)
            .env("PORT", port.to_string())
            .spawn()
            .expect("the baseline starts (./scripts/bench builds it)");
        // Dropping it kills and reaps the child, whatever happens next.
        let bare = Self { base: format!("http://127.0.0.1:{port}"), child };
        let http = http_client();
        // Under callgrind it takes seconds to start.
        for _ in 0..600 {
            if http.get(format!("{}/health", bare.base)).send().await.is_ok() {
                return bare;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the baseline did not start");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One release server, with the limits that would throttle a benchmark turned off (every
/// request comes from one address and one user).
pub struct Instance {
    pub base: String,
    pub process: ServerProcess,
    pub redis: Option<TestRedis>,
    _sqlite: Option<tempfile::TempDir>,
}

pub const UNLIMITED: [(&str, &str); 15] = [
    ("RATE_LIMIT_REGISTER", "off"),
    ("REGISTRATION_QUOTA", "off"),
    ("PENDING_AUTHORIZATION_QUOTA", "off"),
    ("RATE_LIMIT_AUTHORIZE", "off"),
    ("RATE_LIMIT_TOKEN", "off"),
    ("RATE_LIMIT_INTROSPECT", "off"),
    ("RATE_LIMIT_REVOKE", "off"),
    ("RATE_LIMIT_MCP", "off"),
    ("RATE_LIMIT_MCP_SESSIONS", "off"),
    ("RATE_LIMIT_CLIENT", "off"),
    ("MAX_CLIENTS", "10000000"),
    ("MAX_SESSIONS_PER_USER", "1000000"),
    // wrk keeps every connection's request in flight on the one session.
    ("MAX_STREAMS_PER_SESSION", "1024"),
    ("INTROSPECTION_CLIENT_ID", RS.0),
    ("INTROSPECTION_CLIENT_SECRET", RS.1),
];

impl Instance {
    pub async fn start(storage: Storage, extra: &[(&str, &str)]) -> Self {
        Self::start_binary(mcp_oauth_testkit::process::server_binary(), storage, extra).await
    }

    /// The same, with another build of the server.
    pub async fn start_binary(binary: std::path::PathBuf, storage: Storage, extra: &[(&str, &str)]) -> Self {
        let (redis, sqlite) = match storage {
            Storage::Memory => (None, None),
            Storage::Redis => (Some(tokio::task::spawn_blocking(TestRedis::start).await.unwrap()), None),
            Storage::Sqlite => (None, Some(tempfile::tempdir().unwrap())),
        };
        let url = match (&redis, &sqlite) {
            (Some(redis), _) => redis.url(),
            (_, Some(dir)) => format!("sqlite://{}", dir.path().join("bench.db").display()),
            _ => "memory".to_owned(),
        };
        let mut env: Vec<(&str, &str)> = UNLIMITED.to_vec();
        env.push(("STORAGE_URL", &url));
        env.push(("TOKEN_VAULT_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
        env.extend_from_slice(extra);
        let process = ServerProcess::start_binary(binary, free_port(), &env).await;
        Self { base: process.base.clone(), process, redis, _sqlite: sqlite }
    }

    pub fn resident_mb(&self) -> f64 {
        resident_mb(self.process.pid())
    }

    /// CPU seconds the server has used, user and system: what a request costs the server,
    /// steadier than a rate on a machine whose neighbours take its cores.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.process.pid())).unwrap_or_default();
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
        ticks / 100.0
    }

    /// A public client and an access token for /mcp.
    pub async fn access_token(&self) -> (String, String) {
        let http = http_client();
        let (client_id, tokens) = one_flow(&http, &self.base).await.expect("a flow completes");
        (client_id, tokens["access_token"].as_str().unwrap().to_owned())
    }

    /// A client, its connection and its first refresh token.
    pub async fn refresh_chain(&self) -> (reqwest::Client, String, String) {
        let http = http_client();
        let (client_id, tokens) = one_flow(&http, &self.base).await.expect("a flow completes");
        (http, client_id, tokens["refresh_token"].as_str().unwrap().to_owned())
    }

    pub async fn session(&self, token: &str) -> String {
        RawSession::open(&format!("{}/mcp", self.base), token).await.id.unwrap()
    }

    /// Redis commands per operation, from INFO commandstats around one of each: those sent,
    /// and those scripts ran, by name (`evalsha 2, get 1`).
    pub async fn redis_commands(&self, redis: &TestRedis, token: &str) -> Vec<(String, String)> {
        let http = http_client();
        let mut counts = Vec::new();
        let mut last = commands(redis);
        let mut count = |name: &str, counts: &mut Vec<(String, String)>| {
            let now = commands(redis);
            let mut delta: Vec<(String, u64)> = now
                .iter()
                .map(|(command, calls)| (command.clone(), calls - last.get(command).copied().unwrap_or(0)))
                .filter(|(_, calls)| *calls > 0)
                .collect();
            delta.sort();
            let total: u64 = delta.iter().map(|(_, calls)| calls).sum();
            let named = delta.iter().map(|(command, calls)| format!("{command} {calls}")).collect::<Vec<_>>().join(", ");
            counts.push((name.to_owned(), format!("{total} ({named})")));
            last = now;
        };
        let client_id = register(&http, &self.base).await.unwrap();
        count("register", &mut counts);
        let pkce = Pkce::new();
        let form = consent_page(&http, &self.base, &client_id, &pkce).await.unwrap();
        count("consent page (GET /authorize)", &mut counts);
        let code = approve(&http, &self.base, &form).await.unwrap();
        count("approval (POST /authorize)", &mut counts);
        let tokens = exchange(&http, &self.base, &client_id, &code, &pkce).await.unwrap();
        count("code exchange", &mut counts);
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
        ];
        http.post(format!("{}/token", self.base)).form(&form).send().await.unwrap();
        count("refresh", &mut counts);
        http.get(format!("{}/mcp", self.base)).bearer_auth(token).header("accept", "text/event-stream").send().await.unwrap();
        count("token validation (GET /mcp, no session)", &mut counts);
        counts
    }
}

/// Calls per command name, INFO itself left out.
fn commands(redis: &TestRedis) -> std::collections::HashMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut redis.connection()).unwrap();
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter(|line| !line.starts_with("info:"))
        .filter_map(|line| {
            let (name, stats) = line.split_once(':')?;
            Some((name.to_owned(), stats.split(',').next()?.strip_prefix("calls=")?.parse().ok()?))
        })
        .collect()
}

async fn register(http: &reqwest::Client, base: &str) -> Option<String> {
    let metadata = json!({"redirect_uris": [REDIRECT], "client_name": "bench", "token_endpoint_auth_method": "none"});
    let response = http.post(format!("{base}/register")).json(&metadata).send().await.ok()?;
    let body: Value = response.json().await.ok()?;
    Some(body["client_id"].as_str()?.to_owned())
}

async fn consent_page(http: &reqwest::Client, base: &str, client_id: &str, pkce: &Pkce) -> Option<ConsentForm> {
    let mut url = url::Url::parse(&format!("{base}/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
        ("state", "s"),
    ]);
    let response = http.get(url).send().await.ok()?;
    response.status().is_success().then_some(())?;
    Some(ConsentForm::read(response).await)
}

async fn approve(http: &reqwest::Client, base: &str, form: &ConsentForm) -> Option<String> {
    let body = [
        ("request_id", form.request_id.as_str()),
        ("csrf_token", &form.csrf_token),
        ("username", "alice"),
        ("decision", "approve"),
    ];
    let response = http.post(format!("{base}/authorize")).header("cookie", &form.cookie).form(&body).send().await.ok()?;
    redirect_params(&response).get("code").cloned()
}

async fn exchange(http: &reqwest::Client, base: &str, client_id: &str, code: &str, pkce: &Pkce) -> Option<Value> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &pkce.verifier),
        ("client_id", client_id),
    ];
    let response = http.post(format!("{base}/token")).form(&form).send().await.ok()?;
    response.status().is_success().then_some(())?;
    response.json().await.ok()
}

/// Register, consent page, approval, code exchange: the client id and the token response.
pub async fn one_flow(http: &reqwest::Client, base: &str) -> Option<(String, Value)> {
    let client_id = register(http, base).await?;
    let pkce = Pkce::new();
    let form = consent_page(http, base, &client_id, &pkce).await?;
    let code = approve(http, base, &form).await?;
    let tokens = exchange(http, base, &client_id, &code, &pkce).await?;
    Some((client_id, tokens))
}

/// tools/call through the gateway to server-everything over Streamable HTTP, next to the same
/// call made to server-everything directly.
pub async fn gateway_measures(report: &mut Report) {
    let upstream = mcp_oauth_testkit::upstream::Everything::start().await;
    let instance = Instance::start(Storage::Memory, &[("MCP_UPSTREAM_URL", upstream.url.as_str())]).await;
    let (_, token) = instance.access_token().await;
    let session = instance.session(&token).await;
    let headers = rpc_headers(&token, &session);
    let through =
        wrk(&format!("{}/mcp", instance.base), &Request::Rpc { headers: &headers, body: echo_call() }, CONNECTIONS, DURATION);

    let direct_session = RawSession::open(&upstream.url, "unused").await.id.unwrap();
    let direct_headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("Accept", "application/json, text/event-stream".to_owned()),
        ("Mcp-Protocol-Version", "2025-06-18".to_owned()),
        ("Mcp-Session-Id", direct_session),
    ];
    let direct = wrk(&upstream.url, &Request::Rpc { headers: &direct_headers, body: echo_call() }, CONNECTIONS, DURATION);
    report.baselines.insert("upstream direct", direct);
    println!(
        "{:<58} {:>9.0} rps  p50 {:>6.2} ms  p99 {:>6.2} ms",
        "upstream direct (server-everything)", direct.rps, direct.p50_ms, direct.p99_ms
    );
    report.add("gateway: MCP tools/call echo to server-everything", through, "upstream direct");
}

/// Token validation in external mode: tools/call on a server that validates by introspection
/// at an authorization server (cached, and with the cache off).
pub async fn external_measures(report: &mut Report) {
    let ports = [free_port(), free_port()];
    let resources = ports.map(|port| format!("http://127.0.0.1:{port}/mcp")).join(",");
    let authorization = Instance::start(Storage::Memory, &[("AUTH_MODE", "auth_server"), ("RESOURCES", &resources)]).await;
    for (port, (label, ttl)) in ports.into_iter().zip([("cached", "30s"), ("uncached", "0")]) {
        let env = [("AUTH_SERVER_URL", authorization.base.as_str()), ("INTROSPECTION_CACHE_TTL", ttl)];
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let (_, token) = access_token_for(&authorization.base, &resource).await;
        let load = external_load(port, &env, &token).await;
        report.add(format!("external (introspection, {label}): MCP tools/call echo"), load, "bare POST");
    }
    // JWT access tokens (RFC 9068) from a provider the bench plays: the JWKS is fetched once,
    // then every request is a signature check (ES256) and the claims' checks.
    let key = Key::es256("bench");
    let provider = JwtProvider::start(&[&key]).await;
    let port = free_port();
    let token = key.sign(&claims(&provider.issuer, &format!("http://127.0.0.1:{port}/mcp")));
    let env = [("AUTH_SERVER_URL", provider.issuer.as_str()), ("TOKEN_VALIDATION", "jwt")];
    report.add("external (JWT, ES256): MCP tools/call echo", external_load(port, &env, &token).await, "bare POST");
}

/// tools/call echo on one session of an `external` mode server on `port`, configured by `env`.
async fn external_load(port: u16, env: &[(&str, &str)], token: &str) -> crate::load::Load {
    let mut all: Vec<(&str, &str)> = UNLIMITED.to_vec();
    all.push(("AUTH_MODE", "external"));
    all.extend_from_slice(env);
    let external = ServerProcess::start(port, &all).await;
    let session = RawSession::open(&external.resource(), token).await.id.unwrap();
    let headers = rpc_headers(token, &session);
    wrk(&external.resource(), &Request::Rpc { headers: &headers, body: echo_call() }, CONNECTIONS, DURATION)
}

/// A token from the authorization server at `base` for `resource`.
async fn access_token_for(base: &str, resource: &str) -> (String, String) {
    let http = http_client();
    let client_id = register(&http, base).await.unwrap();
    let pkce = Pkce::new();
    let mut url = url::Url::parse(&format!("{base}/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
        ("resource", resource),
    ]);
    let form = ConsentForm::read(http.get(url).send().await.unwrap()).await;
    let code = approve(&http, base, &form).await.unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &pkce.verifier),
        ("client_id", &client_id),
        ("resource", resource),
    ];
    let tokens: Value = http.post(format!("{base}/token")).form(&form).send().await.unwrap().json().await.unwrap();
    (client_id, tokens["access_token"].as_str().expect("a token").to_owned())
}

/// Resident memory after 10,000 idle MCP sessions on the memory store, and the memory store's
/// footprint with 1,000,000 live access tokens (measured in this process: a million flows
/// over HTTP would take longer than the whole benchmark).
pub async fn memory_measures(report: &mut Report) {
    // Workers of idle sessions are released after MCP_SESSION_WORKER_IDLE (1 min by default;
    // 5 s here, so that the run need not wait): measured while held and once all are released.
    let instance = Instance::start(Storage::Memory, &[("MCP_SESSION_WORKER_IDLE", "5s")]).await;
    let (_, token) = instance.access_token().await;
    let before = instance.resident_mb();
    let url = format!("{}/mcp", instance.base);
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (url, token, opened, kept) = (url.clone(), token.clone(), opened.clone(), kept.clone());
            tokio::spawn(async move {
                let http = http_client();
                let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "idle", "version": "1"}}});
                while opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 10_000 {
                    let response = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("accept", "application/json, text/event-stream")
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let id = response.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
                    response.bytes().await.unwrap();
                    let mut kept = kept.lock().unwrap();
                    if kept.len() < RESTORED {
                        kept.extend(id);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = instance.resident_mb();
    // Released: once the server's own gauge says no worker is held, and its resident size has
    // settled (worker threads hand freed memory back when they park, at most once a second, and
    // the allocator returns pages over several seconds).
    mcp_oauth_testkit::http::holds_mcp_workers_within(&http_client(), &instance.base, 0.0, Duration::from_secs(60)).await;
    let released = settled_resident_mb(&instance).await;
    report.memory("memory: resident before 10,000 idle MCP sessions", before);
    report.memory("memory: resident with 10,000 idle MCP sessions, workers held", held);
    report.memory("memory: resident with 10,000 idle MCP sessions, workers released", released);
    let kept = std::mem::take(&mut *kept.lock().unwrap());
    let (held, restoring) = restore_latencies(&instance, &token, &kept).await;
    report.latency("MCP tools/call echo, session held (memory)", held);
    report.latency("MCP tools/call echo, restoring a released session (memory)", restoring);

    let held = million_access_tokens().await;
    report.memory("memory store: 1,000,000 live access tokens (heap growth)", held);
}

/// Released sessions whose first request is timed.
const RESTORED: usize = 200;

/// The median latency of a tools/call on a session whose worker is held, and of the first one
/// on a released session (which restores it from the store), each sent one at a time.
async fn restore_latencies(instance: &Instance, token: &str, released: &[String]) -> (f64, f64) {
    let http = http_client();
    let call = async |session: &str| {
        let started = std::time::Instant::now();
        let response = echo_request(&http, &instance.base, token, session).send().await.unwrap();
        assert!(response.status().is_success(), "tools/call answered {}", response.status());
        response.bytes().await.unwrap();
        started.elapsed().as_secs_f64() * 1000.0
    };
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let mut restoring = Vec::new();
    for session in released {
        restoring.push(call(session).await);
    }
    let held = released.first().expect("a session was kept");
    let mut calls = Vec::new();
    for _ in 0..released.len() {
        calls.push(call(held).await);
    }
    (median(calls), median(restoring))
}

/// `instance`'s resident size once it has stopped falling: five readings a second apart within
/// 0.5 MB of each other (it falls in steps, with pauses of a second or two between), or after
/// 60 s.
async fn settled_resident_mb(instance: &Instance) -> f64 {
    let mut readings = vec![instance.resident_mb()];
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        readings.push(instance.resident_mb());
        let recent = &readings[readings.len().saturating_sub(5)..];
        let spread = recent.iter().copied().fold(f64::MIN, f64::max) - recent.iter().copied().fold(f64::MAX, f64::min);
        if recent.len() == 5 && spread < 0.5 {
            break;
        }
    }
    readings[readings.len() - 1]
}

/// The resident growth of this process from one memory store holding a million access tokens.
async fn million_access_tokens() -> f64 {
    use chrono::{TimeDelta, Utc};
    use mcp_oauth_adapters::memory::MemoryStore;
    use mcp_oauth_domain::ports::{AccessTokenRecord, FamilyId};
    use mcp_oauth_domain::secret::TokenDigest;
    let before = resident_mb(std::process::id());
    let store = MemoryStore::default();
    let stores = store.stores();
    for i in 0..1_000_000u32 {
        // One authorization each: a family of its own, as a million users would have.
        let record = AccessTokenRecord {
            expires_at: Utc::now() + TimeDelta::hours(1),
            retained_until: Utc::now() + TimeDelta::days(7),
            ..mcp_oauth_testkit::contract::sample_access_token(&FamilyId::generate())
        };
        let _ = stores.access_tokens.insert(&TokenDigest::of(&i.to_string()), &record).await;
    }
    let after = resident_mb(std::process::id());
    drop(store);
    after - before
}

/// 60 s of tools/call at 64 connections on Redis: errors, and resident memory before and after.
pub async fn sustained(report: &mut Report) -> Value {
    let instance = Instance::start(Storage::Redis, &[]).await;
    let (_, token) = instance.access_token().await;
    let session = instance.session(&token).await;
    let headers = rpc_headers(&token, &session);
    let before = instance.resident_mb();
    let request = Request::Rpc { headers: &headers, body: echo_call() };
    let url = format!("{}/mcp", instance.base);
    let mut samples = Vec::new();
    let mut loads = Vec::new();
    for _ in 0..6 {
        loads.push(wrk(&url, &request, 64, Duration::from_secs(10)));
        samples.push(instance.resident_mb());
    }
    let errors: u64 = loads.iter().map(|l| l.errors).sum();
    let rps = loads.iter().map(|l| l.rps).sum::<f64>() / loads.len() as f64;
    println!(
        "{:<58} {rps:>9.0} rps  errors {errors}  resident {before:.1} MB -> {samples:.1?} MB",
        "redis: sustained 60 s at 64 connections"
    );
    report.memory("redis: resident before sustained load", before);
    report.memory("redis: resident after 60 s sustained load", *samples.last().unwrap());
    json!({"seconds": 60, "connections": 64, "rps": rps, "errors": errors, "resident_mb_before": before, "resident_mb_every_10s": samples})
}
