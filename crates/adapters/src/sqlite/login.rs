//! The login ports on SQLite: one table per record; an attempt is taken by one
//! `DELETE … RETURNING`, so a replayed callback finds nothing.

use async_trait::async_trait;
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::login::{
    ConsentStore, LoginAttempt, LoginAttemptStore, LoginSession, LoginSessionStore, RememberedConsent, UpstreamGrant,
    UpstreamTokenStore,
};
use mcp_oauth_domain::metadata_document::{CachedDocument, DocumentCache};
use mcp_oauth_domain::ports::FamilyId;
use mcp_oauth_domain::secret::TokenDigest;

use super::{SqliteStore, unavailable};

const UPSERT_CONSENT: &str = "INSERT INTO remembered_consents (digest, body, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (digest) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at";
const UPSERT_DOCUMENT: &str = "INSERT INTO client_documents (digest, body, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (digest) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at";
const UPSERT_GRANT: &str = "INSERT INTO upstream_grants (family, body, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (family) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at";

impl SqliteStore {
    async fn delete_key(&self, sql: &'static str, key: &str) -> Result<(), StorageError> {
        sqlx::query(sql).bind(key).execute(&self.writer).await.map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl LoginSessionStore for SqliteStore {
    async fn insert(&self, session: &TokenDigest, record: &LoginSession) -> Result<(), StorageError> {
        let sql = "INSERT INTO login_sessions (digest, body, expires_at) VALUES ($1, $2, $3)";
        self.insert_body(sql, &session.to_hex(), record).await
    }

    async fn get(&self, session: &TokenDigest) -> Result<Option<LoginSession>, StorageError> {
        self.fetch_body("SELECT body FROM login_sessions WHERE digest = $1 AND expires_at > $2", &session.to_hex()).await
    }

    async fn remove(&self, session: &TokenDigest) -> Result<(), StorageError> {
        self.delete_key("DELETE FROM login_sessions WHERE digest = $1", &session.to_hex()).await
    }
}

#[async_trait]
impl LoginAttemptStore for SqliteStore {
    async fn insert(&self, state: &TokenDigest, attempt: &LoginAttempt) -> Result<(), StorageError> {
        let sql = "INSERT INTO login_attempts (digest, body, expires_at) VALUES ($1, $2, $3)";
        self.insert_body(sql, &state.to_hex(), attempt).await
    }

    async fn get(&self, state: &TokenDigest) -> Result<Option<LoginAttempt>, StorageError> {
        self.fetch_body("SELECT body FROM login_attempts WHERE digest = $1 AND expires_at > $2", &state.to_hex()).await
    }

    async fn take(&self, state: &TokenDigest) -> Result<Option<LoginAttempt>, StorageError> {
        let sql = "DELETE FROM login_attempts WHERE digest = $1 AND expires_at > $2 RETURNING body";
        self.take_body(sql, &state.to_hex()).await
    }
}

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn remember(&self, key: &TokenDigest, consent: &RememberedConsent) -> Result<(), StorageError> {
        self.insert_body(UPSERT_CONSENT, &key.to_hex(), consent).await
    }

    async fn recall(&self, key: &TokenDigest) -> Result<Option<RememberedConsent>, StorageError> {
        self.fetch_body("SELECT body FROM remembered_consents WHERE digest = $1 AND expires_at > $2", &key.to_hex()).await
    }
}

#[async_trait]
impl UpstreamTokenStore for SqliteStore {
    async fn put(&self, family: &FamilyId, grant: &UpstreamGrant) -> Result<(), StorageError> {
        self.insert_body(UPSERT_GRANT, family.as_str(), grant).await
    }

    async fn get(&self, family: &FamilyId) -> Result<Option<UpstreamGrant>, StorageError> {
        self.fetch_body("SELECT body FROM upstream_grants WHERE family = $1 AND expires_at > $2", family.as_str()).await
    }

    async fn remove(&self, family: &FamilyId) -> Result<(), StorageError> {
        self.delete_key("DELETE FROM upstream_grants WHERE family = $1", family.as_str()).await
    }
}

#[async_trait]
impl DocumentCache for SqliteStore {
    async fn put(&self, url: &TokenDigest, document: &CachedDocument) -> Result<(), StorageError> {
        self.insert_body(UPSERT_DOCUMENT, &url.to_hex(), document).await
    }

    async fn get(&self, url: &TokenDigest) -> Result<Option<CachedDocument>, StorageError> {
        self.fetch_body("SELECT body FROM client_documents WHERE digest = $1 AND expires_at > $2", &url.to_hex()).await
    }

    async fn remove(&self, url: &TokenDigest) -> Result<(), StorageError> {
        self.delete_key("DELETE FROM client_documents WHERE digest = $1", &url.to_hex()).await
    }
}
