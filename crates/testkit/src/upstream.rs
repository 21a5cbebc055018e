//! Real MCP servers from the registries to put behind this server: the reference
//! server-everything (npm, installed in `tests/upstreams` by the test command), over
//! Streamable HTTP on a free loopback port or as a stdio command.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

/// `tests/upstreams`, where `npm ci` installed the upstream servers and their Node.
pub fn upstreams_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/upstreams")
}

/// server-everything over Streamable HTTP on a free loopback port.
pub struct Everything {
    pub url: String,
    child: Child,
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Everything {
    pub async fn start() -> Self {
        let dir = upstreams_dir();
        let node = dir.join("node_modules/.bin/node");
        assert!(node.exists(), "run `npm ci` in tests/upstreams first (./scripts/test does it)");
        let port = free_port();
        let mut child = Command::new(node)
            .current_dir(&dir)
            .arg("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        let url = format!("http://127.0.0.1:{port}/mcp");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { url, child };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("server-everything did not listen on {port}");
    }
}

/// server-everything on stdio, as MCP_UPSTREAM_COMMAND would name it.
pub fn everything_command() -> String {
    let dir = upstreams_dir();
    let node = dir.join("node_modules/.bin/node");
    assert!(node.exists(), "run `npm ci` in tests/upstreams first (./scripts/test does it)");
    let script = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    format!("'{}' '{}' stdio", node.display(), script.display())
}
