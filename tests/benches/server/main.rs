//! The whole server under load, against a bare axum baseline measured in the same run: the
//! release binary per storage (memory, a redis-server on a free port, a SQLite file), driven
//! at a fixed shape (2 threads, 32 connections, 10 s). Prints each measure's rps, p50 and p99
//! and its ratio to the baseline, resident memory, and Redis commands per operation, and writes
//! them to `target/bench/server.json`. A benchmark: it measures, it never fails on a figure.
//!
//! Run: `./scripts/bench` (builds the release binary and the baseline, installs wrk).

mod instructions;
mod load;
mod setup;

use std::collections::BTreeMap;

use load::{CONNECTIONS, DURATION, Load, Request, drive, wrk};
use serde::Serialize;
use serde_json::{Value, json};
use setup::{Instance, Storage};

#[derive(Serialize)]
struct Measure {
    name: String,
    load: Load,
    baseline: &'static str,
    ratio: f64,
}

#[derive(Default, Serialize)]
struct Report {
    machine: String,
    baselines: BTreeMap<&'static str, Load>,
    measures: Vec<Measure>,
    memory_mb: BTreeMap<String, f64>,
    /// Median latencies of requests sent one at a time.
    latency_ms: BTreeMap<String, f64>,
    redis_commands: BTreeMap<String, String>,
    sustained: Option<Value>,
    /// Per route: instructions a request, and the baseline's over the server's.
    instructions: BTreeMap<String, (f64, f64)>,
}

impl Report {
    fn add(&mut self, name: impl Into<String>, load: Load, baseline: &'static str) {
        let name = name.into();
        let ratio = load.rps / self.baselines[baseline].rps;
        println!(
            "{name:<58} {:>9.0} rps  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {:>4}  {ratio:>5.2} x {baseline}",
            load.rps, load.p50_ms, load.p99_ms, load.errors
        );
        self.measures.push(Measure { name, load, baseline, ratio });
    }

    fn latency(&mut self, name: impl Into<String>, milliseconds: f64) {
        let name = name.into();
        println!("{name:<58} {milliseconds:>9.2} ms (p50, one at a time)");
        self.latency_ms.insert(name, milliseconds);
    }

    fn memory(&mut self, name: impl Into<String>, megabytes: f64) {
        let name = name.into();
        println!("{name:<58} {megabytes:>9.1} MB");
        self.memory_mb.insert(name, megabytes);
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    format!("{} cores, {cpu}; load generator on the same cores", std::thread::available_parallelism().map_or(0, |n| n.get()))
}

fn rpc_headers(token: &str, session: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {token}")),
        ("Content-Type", "application/json".into()),
        ("Accept", "application/json, text/event-stream".into()),
        ("Mcp-Protocol-Version", "2025-06-18".into()),
        ("Mcp-Session-Id", session.to_owned()),
    ]
}

/// A tools/call echo on `session` at `base`'s /mcp, sent one at a time.
fn echo_request(http: &reqwest::Client, base: &str, token: &str, session: &str) -> reqwest::RequestBuilder {
    let mut request = http.post(format!("{base}/mcp")).body(echo_call());
    for (name, value) in rpc_headers(token, session) {
        request = request.header(name, value);
    }
    request
}

fn echo_call() -> String {
    json!({"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hello"}}})
        .to_string()
}

fn introspection_request(token: &str) -> Request<'static> {
    let headers: &'static [(&'static str, String)] = Box::leak(Box::new([
        ("Authorization", format!("Basic {}", base64_basic(setup::RS.0, setup::RS.1))),
        ("Content-Type", "application/x-www-form-urlencoded".to_owned()),
    ]));
    Request::Post { headers, body: format!("token={token}") }
}

fn base64_basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
}

/// Chains of refresh grants, one per connection: each answer's refresh token is the next
/// request's, as a client rotating its tokens does.
async fn refresh_load(instance: &Instance) -> Load {
    let base = instance.base.clone();
    let mut chains = Vec::new();
    for _ in 0..CONNECTIONS {
        chains.push(instance.refresh_chain().await);
    }
    let chains = std::sync::Mutex::new(chains);
    drive(
        |_| {
            let chain = chains.lock().unwrap().pop().unwrap();
            async move { chain }
        },
        move |(http, client_id, refresh): (reqwest::Client, String, String)| {
            let url = format!("{base}/token");
            async move {
                let form =
                    [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", client_id.as_str())];
                let answer = http.post(&url).form(&form).send().await;
                let next = match answer {
                    Ok(response) if response.status().is_success() => {
                        response.json::<Value>().await.ok().and_then(|body| body["refresh_token"].as_str().map(str::to_owned))
                    }
                    _ => None,
                };
                let ok = next.is_some();
                ((http, client_id, next.unwrap_or(refresh)), ok)
            }
        },
    )
    .await
}

/// Whole authorization flows, one after another per connection: register, the consent page,
/// the approval, the code exchange.
async fn flow_load(instance: &Instance) -> Load {
    let base = instance.base.clone();
    drive(
        |_| async { mcp_oauth_testkit::http::http_client() },
        move |http: reqwest::Client| {
            let base = base.clone();
            async move {
                let ok = setup::one_flow(&http, &base).await.is_some();
                (http, ok)
            }
        },
    )
    .await
}

/// The same shape as the refresh chains, against the baseline: one POST per step.
async fn bare_driver(bare: &str) -> Load {
    let url = format!("{bare}/token");
    drive(
        |_| async { mcp_oauth_testkit::http::http_client() },
        move |http: reqwest::Client| {
            let url = url.clone();
            async move {
                let ok = match http.post(&url).form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]).send().await {
                    Ok(response) => response.status().is_success() && response.json::<Value>().await.is_ok(),
                    Err(_) => false,
                };
                (http, ok)
            }
        },
    )
    .await
}

async fn storage_measures(report: &mut Report, storage: Storage) {
    let name = storage.name();
    let instance = Instance::start(storage, &[]).await;
    if name == "memory" {
        report.memory(format!("{name}: resident, idle"), instance.resident_mb());
    }
    let (_, token) = instance.access_token().await;
    let load = wrk(&format!("{}/introspect", instance.base), &introspection_request(&token), CONNECTIONS, DURATION);
    report.add(format!("{name}: POST /introspect (valid token, Basic)"), load, "bare POST");

    let session = instance.session(&token).await;
    let headers = rpc_headers(&token, &session);
    let load =
        wrk(&format!("{}/mcp", instance.base), &Request::Rpc { headers: &headers, body: echo_call() }, CONNECTIONS, DURATION);
    report.add(format!("{name}: MCP tools/call echo, one session"), load, "bare POST");

    report.add(format!("{name}: refresh grant (rotation)"), refresh_load(&instance).await, "bare driver");
    report.add(
        format!("{name}: complete flows (register, authorize, approve, token)"),
        flow_load(&instance).await,
        "bare driver",
    );
    report.memory(format!("{name}: resident, after"), instance.resident_mb());

    if let Some(redis) = &instance.redis {
        for (operation, count) in instance.redis_commands(redis, &token).await {
            println!("{:<58} {count}", format!("redis commands: {operation}"));
            report.redis_commands.insert(operation, count);
        }
    }
}

/// Whether `BENCH_ONLY` (a comma-separated list of sections: memory, redis, sqlite, gateway,
/// external, resident, instructions, sustained) selects `section`; unset, every section runs. The baselines
/// always run, so a partial run's ratios are still to a baseline of its own.
fn selected(section: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

/// `BENCH_AGAINST=<another build of the server>` (or `this` for this build) with, optionally,
/// `BENCH_AGAINST_ENV=NAME=VALUE,...` for it: introspection and tools/call on memory,
/// alternating three times between this build and the other, so that a change (or a setting)
/// is measured against its predecessor under the same noise, in rps and in the server's CPU
/// time a request; and each build's instructions a request, which no noise moves.
async fn against(report: &mut Report, other: std::ffi::OsString) {
    let other = if other == "this" { mcp_oauth_testkit::process::server_binary() } else { other.into() };
    let settings = std::env::var("BENCH_AGAINST_ENV").unwrap_or_default();
    let settings: Vec<(&str, &str)> = settings.split(',').filter_map(|pair| pair.split_once('=')).collect();
    let counted = [
        ("this build: ", mcp_oauth_testkit::process::server_binary(), Vec::new()),
        ("against: ", other.clone(), settings.clone()),
    ];
    instructions::count_builds(report, &counted).await;
    let builds = [
        ("this build", Instance::start(Storage::Memory, &[]).await),
        ("against", Instance::start_binary(other, Storage::Memory, &settings).await),
    ];
    let mut prepared = Vec::new();
    for (label, instance) in &builds {
        let (_, token) = instance.access_token().await;
        let session = instance.session(&token).await;
        let answer = echo_request(&reqwest::Client::new(), &instance.base, &token, &session).send().await.unwrap();
        println!("{label}: tools/call answered as {:?}", answer.headers().get("content-type"));
        prepared.push((*label, instance, token, session));
    }
    let measured = |instance: &Instance, url: String, request: &Request| {
        let cpu = instance.cpu_seconds();
        let load = wrk(&url, request, CONNECTIONS, DURATION);
        let per_request = (instance.cpu_seconds() - cpu) / (load.rps * DURATION.as_secs_f64()) * 1e6;
        (load, per_request)
    };
    for round in 1..=3 {
        for (label, instance, token, session) in &prepared {
            let (load, cpu) = measured(instance, format!("{}/introspect", instance.base), &introspection_request(token));
            report.add(format!("{label} ({round}): POST /introspect, {cpu:.1} µs CPU a request"), load, "bare POST");
            let headers = rpc_headers(token, session);
            let call = Request::Rpc { headers: &headers, body: echo_call() };
            let (load, cpu) = measured(instance, format!("{}/mcp", instance.base), &call);
            report.add(format!("{label} ({round}): MCP tools/call echo, {cpu:.1} µs CPU a request"), load, "bare POST");
        }
    }
}

async fn run() -> Report {
    let mut report = Report { machine: machine(), ..Report::default() };
    println!("{}\n", report.machine);
    let bare = setup::Bare::start().await;
    let bare_headers = [("Content-Type", "application/json".to_owned())];
    report.baselines.insert(
        "bare POST",
        wrk(&format!("{}/mcp", bare.base), &Request::Rpc { headers: &bare_headers, body: echo_call() }, CONNECTIONS, DURATION),
    );
    report.baselines.insert("bare driver", bare_driver(&bare.base).await);
    for (name, load) in &report.baselines {
        println!("{name:<58} {:>9.0} rps  p50 {:>6.2} ms  p99 {:>6.2} ms", load.rps, load.p50_ms, load.p99_ms);
    }
    if let Some(other) = std::env::var_os("BENCH_AGAINST") {
        against(&mut report, other).await;
        return report;
    }
    for storage in [Storage::Memory, Storage::Redis, Storage::Sqlite] {
        if selected(storage.name()) {
            storage_measures(&mut report, storage).await;
        }
    }
    if selected("gateway") {
        setup::gateway_measures(&mut report).await;
    }
    if selected("external") {
        setup::external_measures(&mut report).await;
    }
    if selected("resident") {
        setup::memory_measures(&mut report).await;
    }
    if selected("instructions") {
        instructions::instructions(&mut report).await;
    }
    if selected("sustained") {
        report.sustained = Some(setup::sustained(&mut report).await);
    }
    drop(bare);
    report
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = runtime.block_on(run());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("\nwritten to {}", path.display());
}
