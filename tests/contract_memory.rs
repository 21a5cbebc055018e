//! The storage contract against the in-memory adapter, plus what only it must show: the sweep
//! frees expired records.

use std::time::Duration;

use mcp_oauth_adapters::memory::MemoryStore;
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_testkit::contract::{Backend, SHORT, short_lived_pending};

async fn memory() -> Backend {
    Backend { stores: MemoryStore::new().stores(), keep_alive: Box::new(()) }
}

mcp_oauth_testkit::contract_suite!(memory_store, memory);

#[tokio::test]
async fn the_periodic_sweep_frees_expired_records() {
    let store = MemoryStore::new();
    let stores = store.stores();
    for i in 0..100 {
        let key = TokenDigest::of(&i.to_string());
        let pending = short_lived_pending();
        stores.pending.insert(&key, &pending).await.unwrap();
    }
    assert_eq!(store.held_records(), 100);
    let sweeper = store.spawn_sweeper(Duration::from_millis(100));
    tokio::time::sleep(SHORT + Duration::from_millis(400)).await;
    assert_eq!(store.held_records(), 0, "expired records are freed, not only hidden");
    sweeper.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_windows() {
    mcp_oauth_testkit::rate_limit_contract::rate_limit_contract(std::sync::Arc::new(
        mcp_oauth_adapters::memory::MemoryRateLimits::default(),
    ))
    .await;
}
