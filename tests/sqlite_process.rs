//! SQLite storage through the real binary: what survives a restart and a crash, and whether
//! concurrent flows on one file stay healthy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_oauth_testkit::http::{TestServer, http_client};
use mcp_oauth_testkit::process::{ServerProcess, free_port, server_binary};
use serde_json::json;

const RS: (&str, &str) = ("rs", "rs-secret");

fn db_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("state.db").display())
}

async fn start(port: u16, url: &str) -> ServerProcess {
    ServerProcess::start(port, &[("STORAGE_URL", url), ("INTROSPECTION_CLIENT_ID", RS.0), ("INTROSPECTION_CLIENT_SECRET", RS.1)])
        .await
}

fn remote(process: &ServerProcess) -> TestServer {
    TestServer::remote(process.base.clone(), http_client())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_tokens_and_family_rules_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (url, port) = (db_url(&dir), free_port());
    let mut process = start(port, &url).await;
    let server = remote(&process);
    let client = server.client("client_secret_basic").await;
    let first = server.tokens(&client, "alice").await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, second) = server.refresh(&client, &r1).await;
    assert_eq!(status, 200);
    let (a2, r2) = (second["access_token"].as_str().unwrap().to_owned(), second["refresh_token"].as_str().unwrap().to_owned());
    process.stop();
    use std::os::unix::fs::PermissionsExt;
    for file in ["state.db", "state.db-wal", "state.db-shm"] {
        if let Ok(meta) = std::fs::metadata(dir.path().join(file)) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file} is readable by its owner only");
        }
    }

    let process = start(port, &url).await;
    let server = remote(&process);
    assert_eq!(server.mcp_initialize(Some(&a2)).await.status(), 200, "the access token survived");
    assert_eq!(server.introspect(RS, &a2).await.1["sub"], "alice");
    let again = server.tokens(&client, "bob").await;
    assert!(again["access_token"].is_string(), "the client and its secret survived");
    let (status, third) = server.refresh(&client, &r2).await;
    assert_eq!(status, 200, "the refresh token survived: {third}");
    let a3 = third["access_token"].as_str().unwrap();

    // r1 was rotated before the restart and its successor has since been used: reuse revokes
    // the whole family, from the rows written before and after the restart alike.
    let (status, reuse) = server.refresh(&client, &r1).await;
    assert_eq!((status, reuse["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(server.mcp_initialize(Some(a3)).await.status(), 401);
    assert_eq!(server.introspect(RS, &a2).await.1, json!({"active": false}));
    assert_eq!(server.mcp_initialize(again["access_token"].as_str()).await.status(), 200, "another authorization is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_answered_with_200_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (url, port) = (db_url(&dir), free_port());
    let mut process = start(port, &url).await;
    let client = remote(&process).client("none").await;
    let issued = Arc::new(Mutex::new(Vec::<String>::new()));
    let base = process.base.clone();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (issued, base, client) = (issued.clone(), base.clone(), client.clone());
            tokio::spawn(async move {
                for _ in 0..200 {
                    let (base, client) = (base.clone(), client.clone());
                    let flow =
                        tokio::spawn(async move { TestServer::remote(base, http_client()).tokens(&client, "alice").await });
                    match flow.await {
                        Ok(tokens) => issued.lock().unwrap().push(tokens["access_token"].as_str().unwrap().to_owned()),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    process.kill();
    for worker in workers {
        worker.await.unwrap();
    }
    let issued = issued.lock().unwrap().clone();
    println!("{} tokens were answered with 200 before SIGKILL", issued.len());
    assert!(issued.len() >= 10, "the stream of requests was under way ({} tokens)", issued.len());

    {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&pool).await.unwrap();
        assert_eq!(check, "ok");
        pool.close().await;
    }
    let process = start(port, &url).await;
    let server = remote(&process);
    for token in &issued {
        assert_eq!(server.introspect(RS, token).await.1["active"], true, "a token answered with 200 before the crash");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_flows_on_one_file_see_no_server_errors() {
    let dir = tempfile::tempdir().unwrap();
    let process = start(free_port(), &db_url(&dir)).await;
    let flows: Vec<_> = (0..50)
        .map(|i| {
            let base = process.base.clone();
            tokio::spawn(async move {
                let server = TestServer::remote(base, http_client());
                let client = server.client(if i % 2 == 0 { "none" } else { "client_secret_post" }).await;
                let tokens = server.tokens(&client, &format!("user-{i}")).await;
                let (status, refreshed) = server.refresh(&client, tokens["refresh_token"].as_str().unwrap()).await;
                assert_eq!(status, 200, "{refreshed}");
                assert_eq!(server.mcp_initialize(refreshed["access_token"].as_str()).await.status(), 200);
                assert_eq!(server.revoke(&client, refreshed["refresh_token"].as_str().unwrap()).await, 200);
            })
        })
        .collect();
    for flow in flows {
        flow.await.expect("every flow completes without a 5xx");
    }
}

#[test]
fn unusable_database_files_are_clear_startup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_sqlite = dir.path().join("notes.txt");
    std::fs::write(&not_sqlite, "not a database at all ".repeat(100)).unwrap();
    let read_only = dir.path().join("frozen.db");
    std::fs::write(&read_only, "").unwrap();
    for (url, name) in [
        (format!("sqlite://{}", not_sqlite.display()), "notes.txt"),
        (format!("sqlite://{}?mode=ro", read_only.display()), "frozen.db"),
    ] {
        let output = std::process::Command::new(server_binary())
            .env_clear()
            .env("PORT", free_port().to_string())
            .env("STORAGE_URL", &url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(name), "the error names the file: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
