//! A real `redis-server` for tests, on a free loopback port (started by the `redis-test` crate),
//! ready when it answers PING, and restartable on the same port to simulate an outage.

use std::time::{Duration, Instant};

use mcp_oauth_adapters::redis::{RedisOptions, RedisStore};
use redis_test::server::RedisServer;

pub struct TestRedis {
    server: Option<RedisServer>,
    pub port: u16,
}

fn wait_ready(port: u16) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_millis(200))
            && redis::cmd("PING").query::<String>(&mut connection).is_ok()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("redis-server on port {port} did not answer PING");
}

impl TestRedis {
    pub fn start() -> Self {
        let server = RedisServer::new();
        let port = server.host_and_port().expect("a TCP server").1;
        wait_ready(port);
        Self { server: Some(server), port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server: every connection drops, as in an outage.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }

    /// Starts a fresh server on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let addr = redis::ConnectionAddr::Tcp("127.0.0.1".into(), self.port);
        self.server = Some(RedisServer::new_with_addr_and_modules(addr, &[], false));
        wait_ready(self.port);
    }

    pub fn options(&self) -> RedisOptions {
        RedisOptions {
            url: self.url(),
            password: None,
            prefix: "auth:".into(),
            timeout: Duration::from_secs(2),
            ca_certificate: None,
        }
    }

    pub async fn store(&self) -> RedisStore {
        RedisStore::open(self.options()).await.expect("the test redis-server accepts connections")
    }

    /// A plain connection for looking at what the server holds.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
