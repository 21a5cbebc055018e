//! The login ports on Redis: one key per record with its end as a native TTL; a login
//! attempt is taken with GETDEL, so a replayed callback loses on every instance.
//!
//! Keys: `login_session:{digest}`, `login_attempt:{digest}`, `consent:{digest}`,
//! `upstream_grant:{family}`.

use async_trait::async_trait;
use chrono::Utc;
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::login::{
    ConsentStore, LoginAttempt, LoginAttemptStore, LoginSession, LoginSessionStore, RememberedConsent, UpstreamGrant,
    UpstreamTokenStore,
};
use mcp_oauth_domain::metadata_document::{CachedDocument, DocumentCache};
use mcp_oauth_domain::ports::{Expiring, FamilyId};
use mcp_oauth_domain::secret::TokenDigest;

use super::{RedisStore, decode, encode};

impl RedisStore {
    async fn delete(&self, key: String) -> Result<(), StorageError> {
        let _: i64 = self.run(async move |c| redis::cmd("DEL").arg(&key).query_async(c).await).await?;
        Ok(())
    }
}

#[async_trait]
impl LoginSessionStore for RedisStore {
    async fn insert(&self, session: &TokenDigest, record: &LoginSession) -> Result<(), StorageError> {
        self.set(self.key("login_session", &session.to_hex()), encode(record)?, record.remaining(Utc::now())).await
    }

    async fn get(&self, session: &TokenDigest) -> Result<Option<LoginSession>, StorageError> {
        self.get_json(self.key("login_session", &session.to_hex())).await
    }

    async fn remove(&self, session: &TokenDigest) -> Result<(), StorageError> {
        self.delete(self.key("login_session", &session.to_hex())).await
    }
}

#[async_trait]
impl LoginAttemptStore for RedisStore {
    async fn insert(&self, state: &TokenDigest, attempt: &LoginAttempt) -> Result<(), StorageError> {
        self.set(self.key("login_attempt", &state.to_hex()), encode(attempt)?, attempt.remaining(Utc::now())).await
    }

    async fn get(&self, state: &TokenDigest) -> Result<Option<LoginAttempt>, StorageError> {
        self.get_json(self.key("login_attempt", &state.to_hex())).await
    }

    async fn take(&self, state: &TokenDigest) -> Result<Option<LoginAttempt>, StorageError> {
        let key = self.key("login_attempt", &state.to_hex());
        let text: Option<String> = self.run(async move |c| redis::cmd("GETDEL").arg(&key).query_async(c).await).await?;
        text.as_deref().map(decode).transpose()
    }
}

#[async_trait]
impl ConsentStore for RedisStore {
    async fn remember(&self, key: &TokenDigest, consent: &RememberedConsent) -> Result<(), StorageError> {
        self.set(self.key("consent", &key.to_hex()), encode(consent)?, consent.remaining(Utc::now())).await
    }

    async fn recall(&self, key: &TokenDigest) -> Result<Option<RememberedConsent>, StorageError> {
        self.get_json(self.key("consent", &key.to_hex())).await
    }
}

#[async_trait]
impl UpstreamTokenStore for RedisStore {
    async fn put(&self, family: &FamilyId, grant: &UpstreamGrant) -> Result<(), StorageError> {
        self.set(self.key("upstream_grant", family.as_str()), encode(grant)?, grant.remaining(Utc::now())).await
    }

    async fn get(&self, family: &FamilyId) -> Result<Option<UpstreamGrant>, StorageError> {
        self.get_json(self.key("upstream_grant", family.as_str())).await
    }

    async fn remove(&self, family: &FamilyId) -> Result<(), StorageError> {
        self.delete(self.key("upstream_grant", family.as_str())).await
    }
}

#[async_trait]
impl DocumentCache for RedisStore {
    async fn put(&self, url: &TokenDigest, document: &CachedDocument) -> Result<(), StorageError> {
        self.set(self.key("client_document", &url.to_hex()), encode(document)?, document.remaining(Utc::now())).await
    }

    async fn get(&self, url: &TokenDigest) -> Result<Option<CachedDocument>, StorageError> {
        self.get_json(self.key("client_document", &url.to_hex())).await
    }

    async fn remove(&self, url: &TokenDigest) -> Result<(), StorageError> {
        self.delete(self.key("client_document", &url.to_hex())).await
    }
}
