//! The two load generators: wrk (Debian's) for single requests, and a small driver of our own
//! for what wrk cannot chain (a refresh token each answer replaces, a whole authorization
//! flow). Both report requests per second and the 50th and 99th latency percentiles.

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The fixed shape of every measure.
pub const THREADS: usize = 2;
pub const CONNECTIONS: usize = 32;
pub const DURATION: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx, and socket errors.
    pub errors: u64,
}

/// A wrk script: how each request is made.
pub enum Request<'a> {
    /// The same body every time.
    Post { headers: &'a [(&'a str, String)], body: String },
    /// A JSON-RPC body whose `"id":0` is replaced by an id unique per request.
    Rpc { headers: &'a [(&'a str, String)], body: String },
}

fn lua_string(value: &str) -> String {
    format!("{value:?}")
}

fn script(request: &Request) -> String {
    let headers = |headers: &[(&str, String)]| {
        headers
            .iter()
            .map(|(name, value)| format!("wrk.headers[{}] = {}\n", lua_string(name), lua_string(value)))
            .collect::<String>()
    };
    match request {
        Request::Post { headers: h, body } => format!("wrk.method = \"POST\"\nwrk.body = {}\n{}", lua_string(body), headers(h)),
        Request::Rpc { headers: h, body } => {
            let (before, after) = body.split_once("\"id\":0").expect("the body has \"id\":0");
            format!(
                "wrk.method = \"POST\"\n{}\
                 local thread_id = 0\nlocal counter = 0\n\
                 function setup(thread) thread_id = thread_id + 1; thread:set(\"tid\", thread_id) end\n\
                 function request()\n  counter = counter + 1\n  \
                 return wrk.format(nil, nil, nil, {} .. '\"id\":\"' .. tid .. '-' .. counter .. '\"' .. {})\nend\n",
                headers(h),
                lua_string(before),
                lua_string(after)
            )
        }
    }
}

fn milliseconds(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

/// Runs wrk at the fixed shape (or `connections` and `duration`) against `url`.
pub fn wrk(url: &str, request: &Request, connections: usize, duration: Duration) -> Load {
    let path: PathBuf = std::env::temp_dir().join(format!("bench-{}-{}.lua", std::process::id(), rand_suffix()));
    std::fs::write(&path, script(request)).unwrap();
    let output = Command::new("wrk")
        .args(["-t", &THREADS.to_string(), "-c", &connections.to_string(), "-d", &format!("{}s", duration.as_secs())])
        .args(["--latency", "--timeout", "10s", "-s"])
        .arg(&path)
        .arg(url)
        .output()
        .expect("wrk runs (./scripts/bench installs it)");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&output.stdout);
    let mut load = Load::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(rps)) => load.rps = rps.parse().unwrap_or(0.0),
            (Some("50%"), Some(value)) => load.p50_ms = milliseconds(value).unwrap_or(f64::NAN),
            (Some("99%"), Some(value)) => load.p99_ms = milliseconds(value).unwrap_or(f64::NAN),
            _ => {}
        }
        if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            load.errors += count.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(errors) = line.strip_prefix("Socket errors:") {
            load.errors += errors.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum::<u64>();
        }
    }
    assert!(load.rps > 0.0, "wrk measured nothing against {url}: {text}{}", String::from_utf8_lossy(&output.stderr));
    load
}

fn rand_suffix() -> String {
    mcp_oauth_domain::secret::generate_secret()[..8].to_owned()
}

/// Runs `CONNECTIONS` workers for `DURATION`, each repeating `step` on its own state (made by
/// `start`); a step returns whether it succeeded.
pub async fn drive<S, Start, StartFut, Step, StepFut>(start: Start, step: Step) -> Load
where
    S: Send + 'static,
    Start: Fn(usize) -> StartFut,
    StartFut: Future<Output = S>,
    Step: Fn(S) -> StepFut + Send + Sync + 'static,
    StepFut: Future<Output = (S, bool)> + Send,
{
    let step = Arc::new(step);
    let deadline = Instant::now() + DURATION;
    let mut workers = Vec::new();
    for worker in 0..CONNECTIONS {
        let mut state = start(worker).await;
        let step = step.clone();
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let began = Instant::now();
                let (next, ok) = step(state).await;
                state = next;
                latencies.push(began.elapsed());
                errors += u64::from(!ok);
            }
            (latencies, errors)
        }));
    }
    let began = Instant::now();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (worker_latencies, worker_errors) = worker.await.unwrap();
        latencies.extend(worker_latencies);
        errors += worker_errors;
    }
    let elapsed = began.elapsed().max(DURATION);
    latencies.sort();
    let percentile = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)));
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    Load {
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: ms(percentile(0.5)),
        p99_ms: ms(percentile(0.99)),
        errors,
    }
}
