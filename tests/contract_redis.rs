//! The storage contract against a real redis-server, plus what only Redis must show: native
//! TTLs on every key, the documented key layout, and one round trip per token validation.

use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_testkit::contract::{Backend, sample_pending};
use mcp_oauth_testkit::redis_server::TestRedis;

async fn redis() -> Backend {
    let server = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let store = server.store().await;
    Backend { stores: store.stores(), keep_alive: Box::new(server) }
}

mcp_oauth_testkit::contract_suite!(redis_store, redis);

#[tokio::test]
async fn keys_follow_the_layout_and_carry_their_lifetime_as_a_ttl() {
    let server = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let store = server.store().await;
    let key = TokenDigest::of("request");
    store.stores().pending.insert(&key, &sample_pending()).await.unwrap();
    let mut connection = server.connection();
    let name = format!("auth:pending:{}", key.to_hex());
    let ttl: i64 = redis::cmd("PTTL").arg(&name).query(&mut connection).unwrap();
    assert!((590_000..=600_000).contains(&ttl), "pending authorizations live 10 minutes: {ttl}");
    let raw: String = redis::cmd("GET").arg(&name).query(&mut connection).unwrap();
    assert!(!raw.contains("request"), "the key holds a digest, the value no raw secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_windows() {
    let server = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let store = server.store().await;
    let limits = std::sync::Arc::new(mcp_oauth_adapters::redis::RedisRateLimits::new(store));
    mcp_oauth_testkit::rate_limit_contract::rate_limit_contract(limits).await;
    drop(server);
}
