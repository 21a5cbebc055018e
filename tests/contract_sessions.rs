//! The MCP session contract on every implementation of the resource server's session ports:
//! one process's memory, and a real redis-server shared by two instances.

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_resource::memory::{LocalBus, MemoryMcpSessions};
use mcp_oauth_resource::redis::{RedisBus, RedisMcpSessions};
use mcp_oauth_testkit::redis_server::TestRedis;
use mcp_oauth_testkit::session_contract::SessionBackend;

async fn memory(idle: Duration) -> SessionBackend {
    let bus = Arc::new(LocalBus::default());
    SessionBackend {
        sessions: Arc::new(MemoryMcpSessions::new(idle)),
        bus: bus.clone(),
        other_bus: bus,
        keep_alive: Box::new(()),
    }
}

async fn redis(idle: Duration) -> SessionBackend {
    let server = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let (one, two) = (server.store().await, server.store().await);
    SessionBackend {
        sessions: Arc::new(RedisMcpSessions::new(one.clone(), idle)),
        bus: Arc::new(RedisBus::start(one)),
        other_bus: Arc::new(RedisBus::start(two)),
        keep_alive: Box::new(server),
    }
}

mcp_oauth_testkit::session_contract_suite!(memory_sessions, memory);
mcp_oauth_testkit::session_contract_suite!(redis_sessions, redis);
