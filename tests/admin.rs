//! The admin API and its CLI, against the real binary on each storage: every command's effect
//! is checked through the public endpoints, and a Redis pair shows one command reaching both
//! instances.

use std::process::Command;

use mcp_oauth_testkit::forwarder::Forwarder;
use mcp_oauth_testkit::http::{TestServer, http_client};
use mcp_oauth_testkit::process::{ServerProcess, free_port, server_binary};
use mcp_oauth_testkit::redis_server::TestRedis;
use serde_json::Value;

const ADMIN_TOKEN: &str = "admin-token-for-the-tests-0123456789abcdef";
const RS: (&str, &str) = ("rs", "rs-secret");

/// Runs `mcp-oauth-server admin ARGS` against the admin API at `addr` with `token`: its exit
/// code, stdout and stderr.
async fn admin(addr: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(server_binary());
    command.env_clear().env("ADMIN_ADDR", addr).env("ADMIN_TOKEN", token).arg("admin").args(args);
    let output = tokio::task::spawn_blocking(move || command.output().expect("the binary runs")).await.unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(output.stdout), text(output.stderr))
}

/// The `--json` answer of a command that must succeed.
async fn admin_json(addr: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = admin(addr, ADMIN_TOKEN, &all).await;
    assert_eq!(code, 0, "admin {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("admin {args:?} printed no JSON ({e}): {stdout}"))
}

async fn mcp_status(server: &TestServer, token: &str) -> u16 {
    server.mcp_initialize(Some(token)).await.status().as_u16()
}

fn admin_env(addr: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("ADMIN_ADDR", addr.to_owned()),
        ("INTROSPECTION_CLIENT_ID", RS.0.to_owned()),
        ("INTROSPECTION_CLIENT_SECRET", RS.1.to_owned()),
        ("AUDIT_LOG", "stdout".to_owned()),
    ]
}

async fn start(storage_url: &str, base: Option<&str>) -> (ServerProcess, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut env = admin_env(&addr);
    env.push(("STORAGE_URL", storage_url.to_owned()));
    if let Some(base) = base {
        env.push(("BASE_URI", base.to_owned()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (ServerProcess::start(free_port(), &env).await, addr)
}

/// Every command on one storage, each checked through the public endpoints.
async fn every_command(storage_url: &str) {
    let (mut process, addr) = start(storage_url, None).await;
    let server = TestServer::remote(process.base.clone(), http_client());
    let (c1, c2) = (server.client("client_secret_basic").await, server.client("none").await);
    let alice_c1 = server.tokens(&c1, "alice").await;
    let bob_c1 = server.tokens(&c1, "bob").await;
    let alice_c2 = server.tokens(&c2, "alice").await;
    let token = |tokens: &Value| tokens["access_token"].as_str().unwrap().to_owned();
    let opened = server.mcp_initialize(Some(&token(&alice_c1))).await;
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"].to_str().unwrap().to_owned();

    let (code, listed, _) = admin(&addr, ADMIN_TOKEN, &["clients", "list"]).await;
    assert_eq!(code, 0);
    assert!(listed.contains(&c1.client_id) && listed.contains(&c2.client_id), "{listed}");
    let shown = admin_json(&addr, &["clients", "show", &c1.client_id]).await;
    assert_eq!((shown["grants"].as_u64(), shown["users"].as_u64()), (Some(2), Some(2)), "{shown}");
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_basic");
    assert!(shown.get("secret_digest").is_none() && !shown.to_string().contains(c1.secret.as_deref().unwrap()));

    let sessions = admin_json(&addr, &["sessions", "list", "--user", "alice"]).await;
    let sessions = sessions["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(
        (sessions[0]["id"].as_str(), sessions[0]["client_id"].as_str()),
        (Some(session.as_str()), Some(c1.client_id.as_str()))
    );
    assert!(admin_json(&addr, &["sessions", "list", "--user", "bob"]).await["sessions"].as_array().unwrap().is_empty());

    let stats = admin_json(&addr, &["stats"]).await;
    assert_eq!(
        (stats["records"]["access_tokens"].as_u64(), stats["records"]["refresh_tokens"].as_u64()),
        (Some(3), Some(3)),
        "{stats}"
    );
    assert_eq!(stats["records"]["clients"].as_u64(), Some(2));
    assert_eq!(stats["mcp_sessions"].as_u64(), Some(1));

    // Revoking alice's tokens: both her grants, her session; bob keeps his.
    let (code, said, _) = admin(&addr, ADMIN_TOKEN, &["tokens", "revoke", "--user", "alice"]).await;
    assert_eq!((code, said.trim()), (0, "2 grants revoked, 1 MCP sessions ended"));
    assert_eq!(mcp_status(&server, &token(&alice_c1)).await, 401);
    assert_eq!(mcp_status(&server, &token(&alice_c2)).await, 401);
    let (status, refused) = server.refresh(&c2, alice_c2["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(mcp_status(&server, &token(&bob_c1)).await, 200, "bob's grant is untouched");
    assert_eq!(server.introspect(RS, &token(&bob_c1)).await.1["active"], true);

    // Deleting c1: its registration and bob's grant through it.
    let (code, said, _) = admin(&addr, ADMIN_TOKEN, &["clients", "delete", &c1.client_id]).await;
    assert_eq!(code, 0);
    assert!(said.starts_with(&format!("deleted {}: 1 grants revoked", c1.client_id)), "{said}");
    assert_eq!(server.introspect(RS, &token(&bob_c1)).await.1["active"], false);
    let (status, refused) = server.refresh(&c1, bob_c1["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("invalid_client")), "the client is gone");
    let (code, _, missing) = admin(&addr, ADMIN_TOKEN, &["clients", "show", &c1.client_id]).await;
    assert_eq!(code, 1);
    assert!(missing.contains("no client") && missing.contains("404"), "{missing}");

    // Generated client ids are base64url: one may begin with `-`, and is an id, not a flag.
    let (code, _, missing) = admin(&addr, ADMIN_TOKEN, &["clients", "show", "-Cq3-like-a-flag"]).await;
    assert_eq!(code, 1);
    assert!(missing.contains("no client -Cq3-like-a-flag"), "{missing}");
    let (code, said, refused) = admin(&addr, ADMIN_TOKEN, &["tokens", "revoke", "--client", "-Cq3-like-a-flag"]).await;
    assert_eq!((code, said.trim()), (0, "0 grants revoked, 0 MCP sessions ended"), "{refused}");

    let (code, purged, _) = admin(&addr, ADMIN_TOKEN, &["purge-expired"]).await;
    assert_eq!(code, 0, "{purged}");
    assert!(purged.contains("expired records purged"));

    // Refused without the token, by the CLI and on the wire.
    let (code, _, refused) = admin(&addr, "wrong-token-wrong-token-wrong-token", &["stats"]).await;
    assert_eq!(code, 1);
    assert!(refused.contains("ADMIN_TOKEN") && refused.contains("401"), "{refused}");
    let bare = http_client().get(format!("http://{addr}/admin/stats")).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    assert!(bare.headers().contains_key("www-authenticate"));
    assert_eq!(bare.json::<Value>().await.unwrap()["error"], "invalid_token");

    process.stop();
    let audit: Vec<Value> = process
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["fields"]["event"] == "admin_action")
        .collect();
    let results: Vec<&str> = audit.iter().map(|event| event["fields"]["result"].as_str().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| **r == "refused").count(), 2, "{results:?}");
    assert!(results.iter().filter(|r| **r == "done").count() >= 8, "{results:?}");
    assert!(audit.iter().all(|event| !event.to_string().contains(ADMIN_TOKEN)), "the token is never logged");
    let logs = process.logs();
    assert!(logs.contains("\"client_deleted\""), "the deletion is audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_memory() {
    every_command("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    every_command(&format!("sqlite://{}", dir.path().join("admin.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_redis() {
    let redis = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    every_command(&redis.url()).await;
}

/// Two instances on one Redis: a revocation through A's admin API ends the user's tokens and
/// sessions on B too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_reaches_every_instance_on_redis() {
    let redis = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let front = Forwarder::start(vec![format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}")], None).await;
    let (addr_a, addr_b) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let url = redis.url();
    let mut started = Vec::new();
    for (port, addr) in [(port_a, &addr_a), (port_b, &addr_b)] {
        let mut env = admin_env(addr);
        env.extend([("STORAGE_URL", url.clone()), ("BASE_URI", front.base.clone())]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        started.push(ServerProcess::start(port, &env).await);
    }
    let (a, b) =
        (TestServer::remote(started[0].base.clone(), http_client()), TestServer::remote(started[1].base.clone(), http_client()));
    let client = a.client("none").await;
    let alice = a.tokens(&client, "alice").await["access_token"].as_str().unwrap().to_owned();
    let opened = b.mcp_initialize(Some(&alice)).await;
    assert_eq!(opened.status(), 200);
    let listed = admin_json(&addr_a, &["sessions", "list"]).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "A lists the session opened on B: {listed}");
    let counted = admin_json(&addr_b, &["clients", "list"]).await;
    assert_eq!(counted["clients"].as_array().unwrap().len(), 1, "B lists the client registered on A");

    let (code, said, _) = admin(&addr_a, ADMIN_TOKEN, &["tokens", "revoke", "--user", "alice"]).await;
    assert_eq!((code, said.trim()), (0, "1 grants revoked, 1 MCP sessions ended"));
    assert_eq!(mcp_status(&a, &alice).await, 401);
    assert_eq!(mcp_status(&b, &alice).await, 401, "revoked through A, refused on B");
    assert!(admin_json(&addr_b, &["sessions", "list"]).await["sessions"].as_array().unwrap().is_empty());
}
