//! The login ports in memory.

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

use super::MemoryStore;

#[async_trait]
impl LoginSessionStore for MemoryStore {
    async fn insert(&self, session: &TokenDigest, record: &LoginSession) -> Result<(), StorageError> {
        self.inner.login_sessions.insert(*session, record.clone(), record.remaining(Utc::now()));
        Ok(())
    }

    async fn get(&self, session: &TokenDigest) -> Result<Option<LoginSession>, StorageError> {
        Ok(self.inner.login_sessions.get(session))
    }

    async fn remove(&self, session: &TokenDigest) -> Result<(), StorageError> {
        self.inner.login_sessions.remove(session);
        Ok(())
    }
}

#[async_trait]
impl LoginAttemptStore for MemoryStore {
    async fn insert(&self, state: &TokenDigest, attempt: &LoginAttempt) -> Result<(), StorageError> {
        self.inner.login_attempts.insert(*state, attempt.clone(), attempt.remaining(Utc::now()));
        Ok(())
    }

    async fn get(&self, state: &TokenDigest) -> Result<Option<LoginAttempt>, StorageError> {
        Ok(self.inner.login_attempts.get(state))
    }

    async fn take(&self, state: &TokenDigest) -> Result<Option<LoginAttempt>, StorageError> {
        Ok(self.inner.login_attempts.take(state))
    }
}

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn remember(&self, key: &TokenDigest, consent: &RememberedConsent) -> Result<(), StorageError> {
        self.inner.consents.insert(*key, consent.clone(), consent.remaining(Utc::now()));
        Ok(())
    }

    async fn recall(&self, key: &TokenDigest) -> Result<Option<RememberedConsent>, StorageError> {
        Ok(self.inner.consents.get(key))
    }
}

#[async_trait]
impl UpstreamTokenStore for MemoryStore {
    async fn put(&self, family: &FamilyId, grant: &UpstreamGrant) -> Result<(), StorageError> {
        self.inner.upstream_tokens.insert(family.clone(), grant.clone(), grant.remaining(Utc::now()));
        Ok(())
    }

    async fn get(&self, family: &FamilyId) -> Result<Option<UpstreamGrant>, StorageError> {
        Ok(self.inner.upstream_tokens.get(family))
    }

    async fn remove(&self, family: &FamilyId) -> Result<(), StorageError> {
        self.inner.upstream_tokens.remove(family);
        Ok(())
    }
}

#[async_trait]
impl DocumentCache for MemoryStore {
    async fn put(&self, url: &TokenDigest, document: &CachedDocument) -> Result<(), StorageError> {
        self.inner.documents.insert(*url, document.clone(), document.remaining(Utc::now()));
        Ok(())
    }

    async fn get(&self, url: &TokenDigest) -> Result<Option<CachedDocument>, StorageError> {
        Ok(self.inner.documents.get(url))
    }

    async fn remove(&self, url: &TokenDigest) -> Result<(), StorageError> {
        self.inner.documents.remove(url);
        Ok(())
    }
}
