//! The four login records and their ports, one per concern. Like the OAuth ports, every
//! record is keyed by the digest of the secret that names it (a cookie value, a `state`) or by
//! its family, and says until when it must be kept.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::identity::UpstreamIdentity;
use super::vault::SealedTokens;
use crate::error::StorageError;
use crate::identity::{ClientId, Subject};
use crate::ports::{Expiring, FamilyId};
use crate::resource::ResourceUri;
use crate::scope::Scope;
use crate::secret::TokenDigest;

/// A browser signed in at the upstream, under the digest of its session cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSession {
    pub identity: UpstreamIdentity,
    /// The upstream's tokens from this login, sealed under the session's own digest.
    pub tokens: SealedTokens,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One trip to the upstream, under the digest of the `state` sent with it. Holds no secret:
/// the PKCE verifier and the nonce are derived from `state` with the login key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginAttempt {
    /// The pending authorization request the login is for.
    pub pending: TokenDigest,
    /// The digest of the cookie that binds the attempt to the browser that started it.
    pub browser: TokenDigest,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An approval the user gave for (user, client, scopes, resource), remembered until it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedConsent {
    pub subject: Subject,
    pub client_id: ClientId,
    pub approved_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl RememberedConsent {
    /// The record's key: one per (user, client, scopes, resource).
    pub fn key(subject: &Subject, client_id: &ClientId, scope: &Scope, resource: &ResourceUri) -> TokenDigest {
        // Length-prefixed, so no two tuples serialise alike.
        let parts = [subject.as_str(), client_id.as_str(), &scope.to_string(), resource.as_str()];
        let joined: String = parts.iter().map(|p| format!("{}:{p}", p.len())).collect();
        TokenDigest::of(&joined)
    }
}

/// The upstream tokens and identity of one authorization family, for MCP tools to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamGrant {
    pub identity: UpstreamIdentity,
    /// Sealed under the family id.
    pub tokens: SealedTokens,
    pub expires_at: DateTime<Utc>,
}

macro_rules! expiring {
    ($($record:ty),*) => {
        $(impl Expiring for $record {
            fn kept_until(&self) -> DateTime<Utc> {
                self.expires_at
            }
        })*
    };
}
expiring!(LoginSession, LoginAttempt, RememberedConsent, UpstreamGrant);

#[async_trait]
pub trait LoginSessionStore: Send + Sync {
    async fn insert(&self, session: &TokenDigest, record: &LoginSession) -> Result<(), StorageError>;
    async fn get(&self, session: &TokenDigest) -> Result<Option<LoginSession>, StorageError>;
    async fn remove(&self, session: &TokenDigest) -> Result<(), StorageError>;
}

#[async_trait]
pub trait LoginAttemptStore: Send + Sync {
    async fn insert(&self, state: &TokenDigest, attempt: &LoginAttempt) -> Result<(), StorageError>;
    async fn get(&self, state: &TokenDigest) -> Result<Option<LoginAttempt>, StorageError>;
    /// Removes and returns the attempt; of concurrent takes (a replayed callback, on any
    /// instance), exactly one gets it.
    async fn take(&self, state: &TokenDigest) -> Result<Option<LoginAttempt>, StorageError>;
}

#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Stores or replaces the approval under `key` ([`RememberedConsent::key`]).
    async fn remember(&self, key: &TokenDigest, consent: &RememberedConsent) -> Result<(), StorageError>;
    async fn recall(&self, key: &TokenDigest) -> Result<Option<RememberedConsent>, StorageError>;
}

#[async_trait]
pub trait UpstreamTokenStore: Send + Sync {
    /// Stores or replaces the family's upstream grant.
    async fn put(&self, family: &FamilyId, grant: &UpstreamGrant) -> Result<(), StorageError>;
    async fn get(&self, family: &FamilyId) -> Result<Option<UpstreamGrant>, StorageError>;
    async fn remove(&self, family: &FamilyId) -> Result<(), StorageError>;
}
