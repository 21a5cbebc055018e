//! Token validation, the cost every /mcp request pays, on each storage backend and through
//! the introspection cache, with allocations counted. Compare each figure with the in-memory
//! baseline of the same run: absolute numbers on shared machines are noise.
//!
//! Run: `cargo bench --bench token_validation`

use std::sync::{Arc, LazyLock};

use chrono::{TimeDelta, Utc};
use mcp_oauth_adapters::memory::MemoryStore;
use mcp_oauth_adapters::sqlite::SqliteStore;
use mcp_oauth_domain::clock::SystemClock;
use mcp_oauth_domain::ports::{AccessTokenRecord, FamilyId};
use mcp_oauth_domain::resource::ResourceUri;
use mcp_oauth_domain::scope::Scope;
use mcp_oauth_domain::secret::{TokenDigest, generate_secret};
use mcp_oauth_domain::service::Stores;
use mcp_oauth_domain::validation::{LocalTokenValidator, TokenValidator};
use mcp_oauth_testkit::redis_server::TestRedis;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());

fn resource() -> ResourceUri {
    ResourceUri::parse("http://localhost:3232/mcp").unwrap()
}

/// A validator over `stores` and a token it knows.
fn prepared(stores: Stores) -> (LocalTokenValidator, String) {
    let token = generate_secret();
    let record = AccessTokenRecord {
        subject: mcp_oauth_domain::identity::Subject::parse("alice").unwrap(),
        client_id: "client".into(),
        scope: Scope::parse("mcp").unwrap(),
        audience: resource(),
        family: FamilyId::generate(),
        issued_at: Utc::now(),
        expires_at: Utc::now() + TimeDelta::hours(1),
        retained_until: Utc::now() + TimeDelta::days(7),
    };
    RUNTIME.block_on(stores.access_tokens.insert(&TokenDigest::of(&token), &record)).unwrap();
    (LocalTokenValidator::new(stores.access_tokens.clone(), resource(), Arc::new(SystemClock)), token)
}

fn run(bencher: divan::Bencher, validator: &LocalTokenValidator, token: &str) {
    bencher.bench_local(|| RUNTIME.block_on(validator.validate(divan::black_box(token))).unwrap());
}

/// The baseline: a dashmap lookup behind the async port.
#[divan::bench]
fn memory(bencher: divan::Bencher) {
    let (validator, token) = prepared(MemoryStore::default().stores());
    run(bencher, &validator, &token);
}

#[divan::bench]
fn sqlite_file(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = RUNTIME.block_on(SqliteStore::open(&url)).unwrap();
    let (validator, token) = prepared(store.stores());
    run(bencher, &validator, &token);
}

/// One GET to a redis-server on loopback.
#[divan::bench]
fn redis_loopback(bencher: divan::Bencher) {
    let redis = TestRedis::start();
    let store = RUNTIME.block_on(redis.store());
    let (validator, token) = prepared(store.stores());
    run(bencher, &validator, &token);
}

/// A token that does not exist: the same single lookup, nothing to decode.
#[divan::bench]
fn memory_unknown_token(bencher: divan::Bencher) {
    let (validator, _) = prepared(MemoryStore::default().stores());
    let unknown = generate_secret();
    bencher.bench_local(|| RUNTIME.block_on(validator.validate(divan::black_box(&unknown))).unwrap_err());
}
