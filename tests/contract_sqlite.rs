//! The storage contract against SQLite on temporary files, plus what only SQLite must show:
//! in-place schema upgrades, the sweep, and clear errors for unusable files.

use std::borrow::Cow;

use mcp_oauth_adapters::sqlite::SqliteStore;
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_testkit::contract::{Backend, SHORT, sample_pending, short_lived_pending};

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("store.db").display())
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(&dir)).await.expect("a fresh file opens");
    Backend { stores: store.stores(), keep_alive: Box::new((store, dir)) }
}

mcp_oauth_testkit::contract_suite!(sqlite_store, sqlite);

#[tokio::test]
async fn in_memory_databases_work() {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    let stores = store.stores();
    let key = TokenDigest::of("k");
    stores.pending.insert(&key, &sample_pending()).await.unwrap();
    assert!(stores.pending.take(&key).await.unwrap().is_some());
}

#[tokio::test]
async fn the_sweep_deletes_expired_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(&dir)).await.unwrap();
    let stores = store.stores();
    for i in 0..20 {
        stores.pending.insert(&TokenDigest::of(&i.to_string()), &short_lived_pending()).await.unwrap();
    }
    assert_eq!(store.sweep().await.unwrap(), 0, "nothing has expired yet");
    tokio::time::sleep(SHORT + std::time::Duration::from_millis(200)).await;
    assert_eq!(store.sweep().await.unwrap(), 20);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_authorizations").fetch_one(store.pool()).await.unwrap();
    assert_eq!(left, 0);
}

/// A database at `url` with only the first `migrations` of the schema, as an older release left it.
async fn older_database(url: &str, migrations: usize) -> sqlx::SqlitePool {
    let options: sqlx::sqlite::SqliteConnectOptions =
        url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let mut older = sqlx::migrate!("../migrations");
    older.migrations = Cow::Owned(older.migrations[..migrations].to_vec());
    older.run(&pool).await.unwrap();
    pool
}

#[tokio::test]
async fn a_database_made_by_an_older_migration_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    {
        // Build the database as the first release did: only the first migration.
        let pool = older_database(&url, 1).await;
        sqlx::query("INSERT INTO pending_authorizations (digest, body, expires_at) VALUES ($1, $2, $3)")
            .bind(TokenDigest::of("old").to_hex())
            .bind(serde_json::to_string(&sample_pending()).unwrap())
            .bind(i64::MAX)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let store = SqliteStore::open(&url).await.expect("the old database is upgraded");
    let indexes: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'refresh_tokens_family'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(indexes, 1, "the second migration ran");
    assert!(store.stores().pending.get(&TokenDigest::of("old")).await.unwrap().is_some(), "old rows survive");
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "these are my notes, not a database ".repeat(200)).unwrap();
    let error = SqliteStore::open(&format!("sqlite://{}", path.display())).await.err().expect("refused");
    let message = error.to_string();
    assert!(message.contains("notes.db"), "{message}");
    assert!(message.to_lowercase().contains("not a database") || message.contains("file is not"), "{message}");
}

#[tokio::test]
async fn a_read_only_database_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readonly.db");
    std::fs::write(&path, "").unwrap();
    let error = SqliteStore::open(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .err()
        .expect("a database that cannot be written is refused");
    let message = error.to_string();
    assert!(message.contains("readonly.db") && message.contains("readonly"), "{message}");
}

#[tokio::test]
async fn access_tokens_stored_before_the_table_rename_are_still_valid() {
    let dir = tempfile::tempdir().unwrap();
    let url = url(&dir);
    let family = mcp_oauth_domain::ports::FamilyId::generate();
    let record = mcp_oauth_testkit::contract::sample_access_token(&family);
    {
        // The schema before migration 4, whose access-token table was `access_sessions`.
        let pool = older_database(&url, 3).await;
        sqlx::query("INSERT INTO access_sessions (digest, family, body, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(TokenDigest::of("old-access-token").to_hex())
            .bind(family.to_string())
            .bind(serde_json::to_string(&record).unwrap())
            .bind(i64::MAX)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let store = SqliteStore::open(&url).await.expect("the database is upgraded");
    let kept = store.stores().access_tokens.get(&TokenDigest::of("old-access-token")).await.unwrap();
    assert_eq!(kept, Some(record), "the row moved with the table");
    let old: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'access_sessions%'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(old, 0, "no table or index keeps the old name");
}
