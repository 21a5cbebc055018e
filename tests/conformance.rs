//! The official MCP conformance suite (server side), both pinned versions, against the real
//! server, and against server-everything both directly and through this server's gateway
//! (Streamable HTTP and stdio). The suite sends no Authorization header, so a forwarder adds a
//! token obtained through the real OAuth flow; the server itself is not weakened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use mcp_oauth_testkit::forwarder::Forwarder;
use mcp_oauth_testkit::http::TestServer;
use mcp_oauth_testkit::upstream::{Everything, everything_command};

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// Runs one pinned version; returns its closing "Total:" line.
fn run_suite(package: &str, url: &str) -> String {
    let dir = suite_dir();
    let node = dir.join("node_modules/.bin/node");
    assert!(node.exists(), "run `npm ci` in tests/conformance first (./scripts/test does it)");
    let output = Command::new(node)
        .current_dir(&dir)
        .arg(dir.join(format!("node_modules/{package}/dist/index.js")))
        .args(["server", "--url", url, "--expected-failures", "expected-failures.yaml"])
        .output()
        .expect("the conformance suite runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let total = stdout.lines().find(|l| l.starts_with("Total:")).unwrap_or("no total").to_owned();
    if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
        println!("{stdout}");
    }
    println!("{package}: {total}");
    assert!(output.status.success(), "{package} failed:\n{stdout}\n{stderr}");
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_conformance_suite_passes() {
    let server = TestServer::start(&["--access-token-ttl", "1h"]).await;
    let client = server.client("none").await;
    let tokens = server.tokens(&client, "conformance").await;
    let forwarder = Forwarder::start(vec![server.base.clone()], tokens["access_token"].as_str().map(str::to_owned)).await;
    let url = format!("{}/mcp", forwarder.base.replace("127.0.0.1", "localhost"));
    let (first, second) =
        tokio::task::spawn_blocking(move || (run_suite("conformance-0.1", &url), run_suite("conformance-0.2", &url)))
            .await
            .unwrap();
    println!("conformance 0.1.16: {first}; 0.2.0-alpha.12: {second}");
}

/// Each scenario's passed and failed checks, from the suite's summary, without the
/// expected-failures list (server-everything is not this project's server).
fn scenarios(package: &str, url: &str) -> BTreeMap<String, (u32, u32)> {
    let dir = suite_dir();
    let output = Command::new(dir.join("node_modules/.bin/node"))
        .current_dir(&dir)
        .arg(dir.join(format!("node_modules/{package}/dist/index.js")))
        .args(["server", "--url", url])
        .output()
        .expect("the conformance suite runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
        println!("{package} at {url}:\n{stdout}");
    }
    let mut results = BTreeMap::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("✓ ").or_else(|| line.strip_prefix("✗ ")) else { continue };
        let Some((name, counts)) = rest.split_once(": ") else { continue };
        let numbers: Vec<u32> = counts.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
        if let [passed, failed] = numbers[..] {
            results.insert(name.to_owned(), (passed, failed));
        }
    }
    assert!(!results.is_empty(), "{package} printed no summary:\n{stdout}");
    results
}

/// What one scenario reports, check by check.
fn scenario_detail(package: &str, url: &str, scenario: &str) -> String {
    let dir = suite_dir();
    let output = Command::new(dir.join("node_modules/.bin/node"))
        .current_dir(&dir)
        .arg(dir.join(format!("node_modules/{package}/dist/index.js")))
        .args(["server", "--url", url, "--scenario", scenario])
        .output()
        .expect("the conformance suite runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every check that passes against server-everything directly passes through the gateway.
fn assert_no_worse(package: &str, route: &str, direct: &BTreeMap<String, (u32, u32)>, url: &str) {
    let through = scenarios(package, url);
    for (scenario, (passed, _)) in direct {
        let (through_passed, through_failed) = through.get(scenario).copied().unwrap_or_default();
        assert!(
            through_passed >= *passed,
            "{package} over {route}: {scenario} passes {passed} checks directly but {through_passed} through the gateway \
             ({through_failed} failed):\n{}",
            scenario_detail(package, url, scenario)
        );
    }
    let direct_total: u32 = direct.values().map(|c| c.0).sum();
    let through_total: u32 = through.values().map(|c| c.0).sum();
    println!("{package} over {route}: {through_total} checks pass through the gateway, {direct_total} directly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_passes_what_server_everything_passes_directly() {
    let upstream = Everything::start().await;
    let command = everything_command();
    let http = TestServer::start(&["--mcp-upstream-url", &upstream.url]).await;
    // The suite opens a session per scenario and ends none.
    let stdio = TestServer::start(&["--mcp-upstream-command", &command, "--max-upstream-processes-per-user", "64"]).await;
    let mut routes = Vec::new();
    for server in [&http, &stdio] {
        let client = server.client("none").await;
        let tokens = server.tokens(&client, "conformance").await;
        let forwarder = Forwarder::start(vec![server.base.clone()], tokens["access_token"].as_str().map(str::to_owned)).await;
        routes.push((format!("{}/mcp", forwarder.base.replace("127.0.0.1", "localhost")), forwarder));
    }
    let direct = upstream.url.replace("127.0.0.1", "localhost");
    let urls: Vec<String> = routes.iter().map(|(url, _)| url.clone()).collect();
    tokio::task::spawn_blocking(move || {
        for package in ["conformance-0.1", "conformance-0.2"] {
            let upstream_direct = scenarios(package, &direct);
            assert_no_worse(package, "Streamable HTTP", &upstream_direct, &urls[0]);
            assert_no_worse(package, "stdio", &upstream_direct, &urls[1]);
        }
    })
    .await
    .unwrap();
}
