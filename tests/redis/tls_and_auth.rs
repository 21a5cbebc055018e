//! rediss:// with a server certificate made in the test, and password authentication.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_oauth_adapters::redis::{RedisOptions, RedisStore};
use mcp_oauth_testkit::http::TestServer;
use mcp_oauth_testkit::process::free_port;

/// A redis-server process and the directory holding its certificate.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str], dir: tempfile::TempDir, port: u16) -> Server {
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not listen");
        std::thread::sleep(Duration::from_millis(25));
    }
    Server { child, _dir: dir }
}

fn options(url: String, password: Option<&str>) -> RedisOptions {
    RedisOptions {
        url,
        password: password.map(str::to_owned),
        prefix: "auth:".into(),
        timeout: Duration::from_secs(2),
        ca_certificate: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_carries_the_whole_flow_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certificate = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), certificate.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), certificate.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let port_text = port.to_string();
    let _server = spawn(
        &[
            "--port",
            "0",
            "--tls-port",
            &port_text,
            "--tls-cert-file",
            "cert.pem",
            "--tls-key-file",
            "key.pem",
            "--tls-ca-cert-file",
            "cert.pem",
            "--tls-auth-clients",
            "no",
        ],
        dir,
        port,
    );
    // The certificate is self-signed: trusted only when given as the CA.
    let untrusted = RedisStore::open(options(format!("rediss://127.0.0.1:{port}"), None)).await;
    assert!(untrusted.is_err(), "an unknown certificate is refused");
    let trusting = RedisOptions {
        ca_certificate: Some(certificate.cert.pem().into_bytes()),
        ..options(format!("rediss://127.0.0.1:{port}"), None)
    };
    let store = RedisStore::open(trusting).await.expect("TLS connects");
    let plain = RedisStore::open(options(format!("redis://127.0.0.1:{port}"), None)).await;
    assert!(plain.is_err(), "the TLS port refuses plain connections");
    let server = TestServer::start_with(&[], store.stores()).await;
    let client = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    assert_eq!(server.mcp_initialize(tokens["access_token"].as_str()).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_come_from_the_url_or_redis_password() {
    let port = free_port();
    let port_text = port.to_string();
    let _server = spawn(&["--port", &port_text, "--requirepass", "s3cret"], tempfile::tempdir().unwrap(), port);
    let url = format!("redis://127.0.0.1:{port}");
    let refused = RedisStore::open(options(url.clone(), None)).await.err().expect("no password, no entry");
    assert!(!refused.to_string().contains("s3cret"));
    assert!(RedisStore::open(options(url.clone(), Some("wrong"))).await.is_err());
    assert!(RedisStore::open(options(url.clone(), Some("s3cret"))).await.is_ok(), "REDIS_PASSWORD");
    let in_url = format!("redis://:s3cret@127.0.0.1:{port}");
    assert!(RedisStore::open(options(in_url, None)).await.is_ok(), "password in the URL");
    let error = RedisStore::open(options(format!("redis://:wrong@127.0.0.1:{port}"), None)).await.err().unwrap();
    assert!(!error.to_string().contains("wrong@"), "the error hides the password: {error}");
}
