//! Runs the real `mcp-oauth-server` binary as a child process on a free loopback port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary, built by `cargo test --workspace` next to this test executable (the app
/// crate's own integration tests make cargo build it).
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("tests run from target/<profile>/deps");
    let binary = profile_dir.join("mcp-oauth-server");
    assert!(binary.exists(), "{} is missing: run `cargo build --workspace --bins` first", binary.display());
    binary
}

/// An example of the app crate (`crates/app/examples/NAME.rs`), built by
/// `cargo build --workspace --all-targets` into `target/<profile>/examples`.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("tests run from target/<profile>/deps");
    let binary = profile_dir.join("examples").join(name);
    assert!(binary.exists(), "{} is missing: run `cargo build --workspace --all-targets` first", binary.display());
    binary
}

/// A free port on loopback, released for the child to take.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct ServerProcess {
    pub base: String,
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl ServerProcess {
    /// Starts the server binary with `env` on `port` and waits until /health answers.
    pub async fn start(port: u16, env: &[(&str, &str)]) -> Self {
        Self::start_binary(server_binary(), port, env).await
    }

    /// Starts `binary` (the server, or a program embedding it) the same way.
    pub async fn start_binary(binary: PathBuf, port: u16, env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("mcp-oauth-server-{port}-{}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let child = Command::new(binary)
            .env_clear()
            .env("PORT", port.to_string())
            .env("BASE_URI", &base)
            .envs(env.iter().copied())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .expect("the server binary starts");
        // A free port is only free until someone takes it: another test's server may answer on
        // it. Unless its log level hides it, this child's own "listening" line says it is ours.
        let log_level = env.iter().find(|(name, _)| *name == "RUST_LOG").map_or("info", |(_, level)| *level);
        let announces = ["info", "debug", "trace"].iter().any(|level| log_level.starts_with(level));
        let mut process = Self { base, port, log, child };
        process.wait_ready(announces).await;
        process
    }

    async fn wait_ready(&mut self, announces: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = crate::http::http_client();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited with {status}: {}", self.logs());
            }
            let listening = !announces || self.logs().contains("listening");
            if listening && client.get(format!("{}/health", self.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not become ready: {}", self.logs());
    }

    /// The child's process id (for its resident memory, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once `needle` is in it `times` times. Lines reach the file through the server's
    /// writer thread, a moment after the request they belong to; fails after 5 s.
    pub async fn wait_for_log(&self, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if logs.matches(needle).count() >= times {
                return logs;
            }
            assert!(Instant::now() < deadline, "`{needle}` did not appear {times} times: {logs}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` (`TERM`, `INT`) without waiting.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
    }

    /// Waits up to `within` for the process to exit; its status, or None if it still runs.
    pub async fn exit_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Asks the server to stop (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Ends the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
