//! The official MCP conformance suite (server side), both pinned versions, against the real
//! server. The suite sends no Authorization header, so a forwarder adds a token obtained through
//! the real OAuth flow; the server itself is not weakened.

use std::path::{Path, PathBuf};
use std::process::Command;

use mcp_oauth_testkit::forwarder::Forwarder;
use mcp_oauth_testkit::http::TestServer;

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
