//! The SQLite adapter, for one node whose state survives restarts and crashes.
//!
//! The SQL uses `$N` placeholders and integer epoch-millisecond times so that a Postgres
//! adapter can reuse most of it. One-time operations are single atomic statements; writes of
//! several statements run under `BEGIN IMMEDIATE`, so a read never has to upgrade to a write
//! lock (the case a busy timeout cannot resolve).
//!
//! Writes share one connection and reads have a pool of their own. SQLite lets one writer in at
//! a time; writers on several connections found the lock taken and slept in SQLite's busy
//! handler (1, 2, 5, 10 ms and on) while it was free again, which under load put refresh
//! grants' p99 at 136 ms. On one connection they wait their turn in the pool's queue instead.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::client::Client;
use mcp_oauth_domain::grace::SealedSuccessor;
use mcp_oauth_domain::identity::ClientId;
use mcp_oauth_domain::ports::{
    AccessTokenRecord, AccessTokenStore, Admission, AuthorizationCodeStore, AuthorizationGrant, ClientStore, Expiring, FamilyId,
    Issue, PendingAuthStore, PendingAuthorization, Redemption, RefreshGrant, RefreshRecord, RefreshState, RefreshStore,
    Registration, Rotation, StorageHealth, Successor,
};
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::service::Stores;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};

mod inventory;
mod login;

/// Every table of records, each with its `expires_at`, in the order of [`RecordCounts`]'s fields.
///
/// [`RecordCounts`]: mcp_oauth_domain::inventory::RecordCounts
const TABLES: [&str; 11] = [
    "clients",
    "pending_authorizations",
    "authorization_codes",
    "access_tokens",
    "refresh_tokens",
    "revoked_families",
    "login_sessions",
    "login_attempts",
    "remembered_consents",
    "upstream_grants",
    "client_documents",
];

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Why a database could not be opened; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot use SQLite database {location}: {reason}")]
pub struct OpenError {
    pub location: String,
    pub reason: String,
}

#[derive(Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn unavailable(error: sqlx::Error) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

fn encode<T: Serialize>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|e| StorageError::Corrupt(e.to_string()))
}

fn decode<T: DeserializeOwned>(row: &SqliteRow, column: &str) -> Result<T, StorageError> {
    let text: String = row.try_get(column).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| StorageError::Corrupt(e.to_string()))
}

fn datetime(millis: i64) -> Result<DateTime<Utc>, StorageError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| StorageError::Corrupt(format!("bad time {millis}")))
}

impl SqliteStore {
    /// Opens (creating, readable by its owner only, if missing) the database at `url`
    /// (`sqlite://path/to/file.db` or `sqlite::memory:`) and upgrades its schema.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let fail = |reason: String| OpenError { location: url.to_owned(), reason };
        let in_memory = url.contains(":memory:");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| fail(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(if in_memory { SqliteJournalMode::Memory } else { SqliteJournalMode::Wal })
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if !in_memory {
            create_private(options.get_filename()).map_err(|e| fail(format!("cannot create the database file: {e}")))?;
        }
        let pool = |connections: u32| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                .min_connections(if in_memory { 1 } else { 0 })
                .idle_timeout(if in_memory { None } else { Some(Duration::from_secs(600)) })
                .max_lifetime(if in_memory { None } else { Some(Duration::from_secs(3600)) })
                .acquire_timeout(Duration::from_secs(5))
        };
        let writer = pool(1).connect_with(options.clone()).await.map_err(|e| fail(e.to_string()))?;
        MIGRATOR.run(&writer).await.map_err(|e| fail(format!("schema migration failed: {e}")))?;
        // An in-memory database lives as long as its one connection, which must also read.
        let reader = if in_memory { writer.clone() } else { pool(8).connect_lazy_with(options) };
        Ok(Self { reader, writer })
    }

    pub fn stores(&self) -> Stores {
        Stores::sharing(self.clone())
    }

    /// The pool that reads.
    pub fn pool(&self) -> &SqlitePool {
        &self.reader
    }

    /// Deletes every expired row; returns how many.
    pub async fn sweep(&self) -> Result<u64, StorageError> {
        let now = now_ms();
        let mut removed = 0;
        for table in TABLES {
            // Table names are the constants of TABLES, never input.
            let statement = format!("DELETE FROM {table} WHERE expires_at <= $1");
            removed += sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(now)
                .execute(&self.writer)
                .await
                .map_err(unavailable)?
                .rows_affected();
        }
        Ok(removed)
    }

    /// Sweeps every `period` while the runtime runs.
    pub fn spawn_sweeper(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                if let Err(e) = store.sweep().await {
                    tracing::warn!(error = %e, "sqlite sweep failed");
                }
            }
        })
    }

    /// Runs `sql`, a read that binds a key as $1 and now as $2 and yields a `body`, and decodes it.
    async fn fetch_body<T: DeserializeOwned>(&self, sql: &'static str, key: &str) -> Result<Option<T>, StorageError> {
        let row = sqlx::query(sql).bind(key).bind(now_ms()).fetch_optional(&self.reader).await.map_err(unavailable)?;
        row.map(|r| decode(&r, "body")).transpose()
    }

    /// Runs `sql`, a `DELETE … RETURNING body` binding a key as $1 and now as $2, on the
    /// writer, and decodes what it took.
    async fn take_body<T: DeserializeOwned>(&self, sql: &'static str, key: &str) -> Result<Option<T>, StorageError> {
        let row = sqlx::query(sql).bind(key).bind(now_ms()).fetch_optional(&self.writer).await.map_err(unavailable)?;
        row.map(|r| decode(&r, "body")).transpose()
    }

    /// Runs `sql`, an insert binding a key as $1, a body as $2 and the record's end as $3.
    async fn insert_body(&self, sql: &'static str, key: &str, record: &(impl Serialize + Expiring)) -> Result<(), StorageError> {
        let (body, until) = (encode(record)?, record.kept_until().timestamp_millis());
        sqlx::query(sql).bind(key).bind(body).bind(until).execute(&self.writer).await.map_err(unavailable)?;
        Ok(())
    }

    /// Runs an admission insert (`INSERT_ACCESS_TOKEN`, `INSERT_REFRESH`): stored unless the
    /// family is revoked.
    async fn admit(
        &self,
        sql: &'static str,
        token: &TokenDigest,
        family: &FamilyId,
        record: &(impl Serialize + Expiring),
    ) -> Result<Admission, StorageError> {
        let mut connection = self.writer.acquire().await.map_err(unavailable)?;
        admit_on(&mut connection, sql, token, family, record).await
    }

    async fn immediate(&self) -> Result<Transaction<'static, Sqlite>, StorageError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(unavailable)
    }

    /// Writes a family's tombstone and deletes its rows from `table`, in one transaction.
    async fn revoke(&self, family: &FamilyId, delete_members: &'static str, until: DateTime<Utc>) -> Result<(), StorageError> {
        let mut tx = self.immediate().await?;
        sqlx::query(
            "INSERT INTO revoked_families (family, expires_at) VALUES ($1, $2) \
             ON CONFLICT (family) DO UPDATE SET expires_at = MAX(revoked_families.expires_at, excluded.expires_at)",
        )
        .bind(family.as_str())
        .bind(until.timestamp_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query(delete_members).bind(family.as_str()).execute(&mut *tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert(&self, client: &Client, max_live: u32) -> Result<Registration, StorageError> {
        // One statement: SQLite runs it alone, so the count and the insert cannot interleave.
        let sql = "INSERT INTO clients (client_id, body, expires_at) SELECT $1, $2, $3 \
                   WHERE EXISTS (SELECT 1 FROM clients WHERE client_id = $1 AND expires_at > $4) \
                      OR (SELECT COUNT(*) FROM clients WHERE expires_at > $4) < $5 \
                   ON CONFLICT (client_id) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at";
        let stored = sqlx::query(sql)
            .bind(client.client_id.as_str())
            .bind(encode(client)?)
            .bind(client.kept_until().timestamp_millis())
            .bind(now_ms())
            .bind(i64::from(max_live))
            .execute(&self.writer)
            .await
            .map_err(unavailable)?;
        Ok(if stored.rows_affected() == 1 { Registration::Stored } else { Registration::Full })
    }

    async fn get(&self, client_id: &ClientId) -> Result<Option<Client>, StorageError> {
        self.fetch_body("SELECT body FROM clients WHERE client_id = $1 AND expires_at > $2", client_id.as_str()).await
    }

    async fn prolong(&self, client: &Client) -> Result<(), StorageError> {
        let sql = "UPDATE clients SET body = $2, expires_at = $3 WHERE client_id = $1 AND expires_at > $4 AND expires_at < $3";
        sqlx::query(sql)
            .bind(client.client_id.as_str())
            .bind(encode(client)?)
            .bind(client.kept_until().timestamp_millis())
            .bind(now_ms())
            .execute(&self.writer)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl PendingAuthStore for SqliteStore {
    async fn insert(&self, request: &TokenDigest, pending: &PendingAuthorization) -> Result<(), StorageError> {
        let sql = "INSERT INTO pending_authorizations (digest, body, expires_at) VALUES ($1, $2, $3)";
        self.insert_body(sql, &request.to_hex(), pending).await
    }

    async fn get(&self, request: &TokenDigest) -> Result<Option<PendingAuthorization>, StorageError> {
        let sql = "SELECT body FROM pending_authorizations WHERE digest = $1 AND expires_at > $2";
        self.fetch_body(sql, &request.to_hex()).await
    }

    async fn take(&self, request: &TokenDigest) -> Result<Option<PendingAuthorization>, StorageError> {
        let sql = "DELETE FROM pending_authorizations WHERE digest = $1 AND expires_at > $2 RETURNING body";
        self.take_body(sql, &request.to_hex()).await
    }
}

#[async_trait]
impl AuthorizationCodeStore for SqliteStore {
    async fn insert(&self, code: &TokenDigest, grant: &AuthorizationGrant) -> Result<(), StorageError> {
        let sql = "INSERT INTO authorization_codes (digest, body, expires_at) VALUES ($1, $2, $3)";
        self.insert_body(sql, &code.to_hex(), grant).await
    }

    async fn redeem(&self, code: &TokenDigest) -> Result<Redemption, StorageError> {
        let row = sqlx::query(
            "UPDATE authorization_codes SET redemptions = redemptions + 1 \
             WHERE digest = $1 AND expires_at > $2 RETURNING body, redemptions, issued",
        )
        .bind(code.to_hex())
        .bind(now_ms())
        .fetch_optional(&self.writer)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(Redemption::Unknown);
        };
        let grant = decode(&row, "body")?;
        let redemptions: i64 = row.try_get("redemptions").map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let issued: bool = row.try_get("issued").map_err(|e| StorageError::Corrupt(e.to_string()))?;
        Ok(if redemptions == 1 { Redemption::Redeemed(grant) } else { Redemption::Replayed { grant, issued } })
    }

    /// One transaction: both tokens and the code's mark, or nothing.
    async fn issue(&self, code: &TokenDigest, tokens: Issue<'_>) -> Result<Admission, StorageError> {
        let mut tx = self.immediate().await?;
        let family = &tokens.access.family;
        let mut admitted = admit_on(&mut tx, INSERT_ACCESS_TOKEN, tokens.access_token, family, tokens.access).await?;
        if let Some((token, grant)) = tokens.refresh
            && admitted == Admission::Stored
        {
            admitted = admit_on(&mut tx, INSERT_REFRESH, token, family, grant).await?;
        }
        if admitted == Admission::FamilyRevoked {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(admitted);
        }
        sqlx::query("UPDATE authorization_codes SET issued = TRUE WHERE digest = $1")
            .bind(code.to_hex())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Admission::Stored)
    }
}

/// Inserts unless the family has a live tombstone, in one statement.
/// Runs an `INSERT_*` admission on `connection` (a transaction's, or the pool's): the row,
/// unless its family is revoked.
async fn admit_on(
    connection: &mut sqlx::SqliteConnection,
    sql: &'static str,
    token: &TokenDigest,
    family: &FamilyId,
    record: &(impl Serialize + Expiring),
) -> Result<Admission, StorageError> {
    let result = sqlx::query(sql)
        .bind(token.to_hex())
        .bind(family.as_str())
        .bind(encode(record)?)
        .bind(record.kept_until().timestamp_millis())
        .bind(now_ms())
        .execute(connection)
        .await
        .map_err(unavailable)?;
    Ok(admission(result.rows_affected()))
}

const INSERT_ACCESS_TOKEN: &str = "INSERT INTO access_tokens (digest, family, body, expires_at) \
     SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
     (SELECT 1 FROM revoked_families WHERE family = $2 AND expires_at > $5)";

const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (digest, family, body, expires_at) \
     SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
     (SELECT 1 FROM revoked_families WHERE family = $2 AND expires_at > $5)";

fn admission(rows: u64) -> Admission {
    if rows == 1 { Admission::Stored } else { Admission::FamilyRevoked }
}

#[async_trait]
impl AccessTokenStore for SqliteStore {
    async fn insert(&self, token: &TokenDigest, record: &AccessTokenRecord) -> Result<Admission, StorageError> {
        self.admit(INSERT_ACCESS_TOKEN, token, &record.family, record).await
    }

    async fn get(&self, token: &TokenDigest) -> Result<Option<AccessTokenRecord>, StorageError> {
        self.fetch_body("SELECT body FROM access_tokens WHERE digest = $1 AND expires_at > $2", &token.to_hex()).await
    }

    async fn remove(&self, token: &TokenDigest) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM access_tokens WHERE digest = $1")
            .bind(token.to_hex())
            .execute(&self.writer)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn revoke_family(&self, family: &FamilyId, until: DateTime<Utc>) -> Result<(), StorageError> {
        self.revoke(family, "DELETE FROM access_tokens WHERE family = $1", until).await
    }
}

fn refresh_record(row: &SqliteRow) -> Result<RefreshRecord, StorageError> {
    let grant = decode(row, "body")?;
    let rotated_at: Option<i64> = row.try_get("rotated_at").map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let successor: Option<String> = row.try_get("successor").map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let state = match (rotated_at, successor) {
        (None, _) => RefreshState::Active,
        (Some(at), Some(sealed)) => RefreshState::Rotated {
            at: datetime(at)?,
            successor: SealedSuccessor::try_from(sealed).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        },
        (Some(_), None) => {
            return Err(StorageError::Corrupt("a rotated refresh token without its successor".into()));
        }
    };
    Ok(RefreshRecord { grant, state })
}

#[async_trait]
impl RefreshStore for SqliteStore {
    async fn insert(&self, token: &TokenDigest, grant: &RefreshGrant) -> Result<Admission, StorageError> {
        self.admit(INSERT_REFRESH, token, &grant.family, grant).await
    }

    async fn get(&self, token: &TokenDigest) -> Result<Option<RefreshRecord>, StorageError> {
        let row = sqlx::query("SELECT body, rotated_at, successor FROM refresh_tokens WHERE digest = $1 AND expires_at > $2")
            .bind(token.to_hex())
            .bind(now_ms())
            .fetch_optional(&self.reader)
            .await
            .map_err(unavailable)?;
        row.map(|r| refresh_record(&r)).transpose()
    }

    async fn rotate(
        &self,
        token: &TokenDigest,
        at: DateTime<Utc>,
        sealed: &SealedSuccessor,
        successor: Successor<'_>,
    ) -> Result<Rotation, StorageError> {
        let now = now_ms();
        let mut tx = self.immediate().await?;
        let claimed = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $1, successor = $2 \
             WHERE digest = $3 AND expires_at > $4 AND rotated_at IS NULL",
        )
        .bind(at.timestamp_millis())
        .bind(String::from(sealed.clone()))
        .bind(token.to_hex())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        let rotation = if claimed == 1 {
            let family = &successor.grant.family;
            match admit_on(&mut tx, INSERT_REFRESH, successor.token, family, successor.grant).await? {
                Admission::Stored => {
                    admit_on(&mut tx, INSERT_ACCESS_TOKEN, successor.access_token, family, successor.access).await?;
                    Rotation::Rotated
                }
                Admission::FamilyRevoked => Rotation::Unknown,
            }
        } else {
            let row = sqlx::query("SELECT body, rotated_at, successor FROM refresh_tokens WHERE digest = $1 AND expires_at > $2")
                .bind(token.to_hex())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
            match row.map(|r| refresh_record(&r)).transpose()? {
                Some(RefreshRecord { state: RefreshState::Rotated { at, successor }, .. }) => {
                    Rotation::AlreadyRotated { at, successor }
                }
                _ => Rotation::Unknown,
            }
        };
        if rotation == Rotation::Rotated {
            tx.commit().await.map_err(unavailable)?;
        } else {
            tx.rollback().await.map_err(unavailable)?;
        }
        Ok(rotation)
    }

    async fn revoke_family(&self, family: &FamilyId, until: DateTime<Utc>) -> Result<(), StorageError> {
        self.revoke(family, "DELETE FROM refresh_tokens WHERE family = $1", until).await
    }
}

#[async_trait]
impl StorageHealth for SqliteStore {
    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.reader).await.map(|_| ()).map_err(unavailable)
    }

    /// Checkpoints the write-ahead log into the database file, then closes every connection.
    async fn close(&self) {
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.writer).await {
            tracing::warn!(%error, "SQLite checkpoint at shutdown failed; the log is replayed at the next start");
        }
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Creates `path` readable and writable by its owner only, if it is not there: it holds
/// digests and sealed tokens. SQLite gives its -wal and -shm files the same mode.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}
