//! Instructions a request, counted by valgrind's callgrind in the server and in the baseline:
//! the same for the same binary and requests whatever else the machine does, so a change to
//! the request path shows here when the rates of a noisy machine hide it. Counts the process's
//! own instructions, not the kernel's (sockets, wakeups), which rates include.

use std::path::{Path, PathBuf};
use std::process::Command;

use mcp_oauth_testkit::process::{example_binary, server_binary};

use crate::setup::{Bare, Instance, Storage};
use crate::{Report, echo_call, echo_request, introspection_request};

/// Requests measured per route, one after another on one connection, after as many to warm up.
const REQUESTS: usize = 500;

/// A script that runs `binary` under callgrind, counting nothing until told to.
fn under_callgrind(dir: &Path, name: &str, binary: &Path) -> PathBuf {
    let script = dir.join(name);
    let body = format!(
        "#!/bin/sh\nexec /usr/bin/valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file={dir}/{name}.%p --log-file={dir}/{name}.%p.log {} \"$@\"\n",
        binary.display(),
        dir = dir.display()
    );
    std::fs::write(&script, body).unwrap();
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    script
}

fn callgrind_control(option: &str, pid: u32) {
    let status = Command::new("callgrind_control").args([option, &pid.to_string()]).output();
    assert!(status.is_ok_and(|o| o.status.success()), "callgrind_control {option} {pid}");
}

/// The instructions counted since the last dump, from the dump this writes.
fn dump(dir: &Path, name: &str, pid: u32) -> u64 {
    callgrind_control("--dump", pid);
    let mut newest = (0, 0u64);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(part) = file.strip_prefix(&format!("{name}.{pid}.")).and_then(|p| p.parse::<u32>().ok()) else { continue };
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let total = text.lines().find_map(|l| l.strip_prefix("totals: ")?.trim().parse().ok()).unwrap_or(0);
        newest = newest.max((part, total));
    }
    newest.1
}

/// Sends `request` `REQUESTS` times on one connection: each must succeed.
async fn send(http: &reqwest::Client, request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder) {
    for _ in 0..REQUESTS {
        let response = request(http).send().await.expect("the request is answered");
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.unwrap();
    }
}

/// How one route's request is made.
type Route<'a> = Box<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + 'a>;

/// Instructions a request on `pid` for each of `routes`, warmed up first.
async fn count(dir: &Path, name: &str, pid: u32, routes: Vec<(&'static str, Route<'_>)>) -> Vec<(&'static str, f64)> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    let mut counted = Vec::new();
    for (route, request) in routes {
        send(&http, &request).await;
        callgrind_control("--instr=on", pid);
        send(&http, &request).await;
        callgrind_control("--instr=off", pid);
        counted.push((route, dump(dir, name, pid) as f64 / REQUESTS as f64));
    }
    counted
}

/// This build's instructions a request, against the baseline's.
pub async fn instructions(report: &mut Report) {
    count_builds(report, &[("", server_binary(), Vec::new())]).await;
}

/// A build to count: its label, its binary and its settings.
pub type Build<'a> = (&'a str, PathBuf, Vec<(&'a str, &'a str)>);

/// Each build's instructions a request, against the baseline's.
pub async fn count_builds(report: &mut Report, builds: &[Build<'_>]) {
    if !Path::new("/usr/bin/valgrind").exists() {
        println!("instructions: skipped (valgrind is not installed; ./scripts/bench installs it)");
        return;
    }
    // `BENCH_CALLGRIND_DIR` keeps the profiles, for callgrind_annotate; else a temporary one.
    let temporary = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("BENCH_CALLGRIND_DIR").map_or_else(|| temporary.path().to_owned(), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    let bare = Bare::start_binary(&under_callgrind(&dir, "bare", &example_binary("bare_baseline"))).await;
    let bare_base = &bare.base;
    let bare_url = format!("{bare_base}/mcp");
    let bare_counts = count(
        &dir,
        "bare",
        bare.pid(),
        vec![
            ("GET /health", Box::new(|h: &reqwest::Client| h.get(format!("{bare_base}/health"))) as Route),
            (
                "POST",
                Box::new(|h: &reqwest::Client| h.post(&bare_url).header("content-type", "application/json").body(echo_call())),
            ),
        ],
    )
    .await;
    let (bare_health, bare_post) = (bare_counts[0].1, bare_counts[1].1);
    for (label, binary, settings) in builds {
        let name = format!("server{}", report.instructions.len());
        let instance = Instance::start_binary(under_callgrind(&dir, &name, binary), Storage::Memory, settings).await;
        for (route, instructions) in count_server(&dir, &name, &instance).await {
            let baseline = if route == "GET /health" { bare_health } else { bare_post };
            let ratio = baseline / instructions;
            let route = format!("{label}{route}");
            println!("{:<58} {instructions:>9.0} instructions a request  {ratio:>5.2} x bare", format!("instructions: {route}"));
            report.instructions.insert(route, (instructions, ratio));
        }
    }
    println!("{:<58} {bare_health:>9.0} / {bare_post:>.0}", "instructions: bare GET / POST");
}

async fn count_server(dir: &Path, name: &str, instance: &Instance) -> Vec<(&'static str, f64)> {
    let (_, token) = instance.access_token().await;
    let session = instance.session(&token).await;
    let introspection = introspection_request(&token);
    let crate::load::Request::Post { headers: introspection_headers, body: introspection_body } = &introspection else {
        unreachable!()
    };
    let server = &instance.base;
    count(
        dir,
        name,
        instance.process.pid(),
        vec![
            ("GET /health", Box::new(|h: &reqwest::Client| h.get(format!("{server}/health"))) as Route),
            (
                "POST /introspect",
                Box::new(|h: &reqwest::Client| {
                    let mut request = h.post(format!("{server}/introspect")).body(introspection_body.clone());
                    for (name, value) in introspection_headers.iter() {
                        request = request.header(*name, value);
                    }
                    request
                }),
            ),
            ("MCP tools/call echo", Box::new(|h: &reqwest::Client| echo_request(h, server, &token, &session))),
        ],
    )
    .await
}
