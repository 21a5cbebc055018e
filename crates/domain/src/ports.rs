//! The five storage ports. Every record is keyed by the SHA-256 digest of the secret that
//! names it (token, code or request id), never by the secret itself.
//!
//! Each store keeps a record for its port's lifetime and must make it invisible afterwards.
//! Take-once operations (`take`, `redeem`, `rotate`) must be atomic in the backend, across
//! processes where the backend is shared.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::StorageError;
use crate::grace::SealedSuccessor;
use crate::identity::{ClientId, Subject};
use crate::pkce::CodeChallenge;
use crate::redirect_uri::RedirectUri;
use crate::resource::ResourceUri;
use crate::scope::Scope;
use crate::secret::TokenDigest;

const CLIENT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
const PENDING_AUTH_LIFETIME: Duration = Duration::from_secs(10 * 60);
const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);
const ACCESS_TOKEN_RECORD_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
const REFRESH_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long each kind of record is kept. The domain's policy holds them and stamps each record
/// with its end ([`Expiring`]); stores keep a record exactly until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub client: Duration,
    pub pending_auth: Duration,
    pub code: Duration,
    pub access_token: Duration,
    pub refresh: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            client: CLIENT_LIFETIME,
            pending_auth: PENDING_AUTH_LIFETIME,
            code: CODE_LIFETIME,
            access_token: ACCESS_TOKEN_RECORD_LIFETIME,
            refresh: REFRESH_LIFETIME,
        }
    }
}

/// A record that says until when a store must keep it; backends derive their TTL from it.
pub trait Expiring {
    fn kept_until(&self) -> DateTime<Utc>;

    /// How much longer a store must keep the record (at least a millisecond, so that a TTL of
    /// zero never means "forever" to a backend).
    fn remaining(&self, now: DateTime<Utc>) -> Duration {
        (self.kept_until() - now).to_std().unwrap_or_default().max(Duration::from_millis(1))
    }
}

/// The end of a lifetime that starts at `start`, saturating instead of overflowing.
pub fn lifetime_end(start: DateTime<Utc>, lifetime: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lifetime).ok().and_then(|d| start.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Records written before each carried its expiry are read back with the fixed lifetime from
/// the moment they are read; the backend still holds the TTL it set when they were stored, so
/// they end no later than before.
mod legacy {
    use super::*;

    pub fn pending_expiry() -> DateTime<Utc> {
        lifetime_end(Utc::now(), PENDING_AUTH_LIFETIME)
    }

    pub fn code_expiry() -> DateTime<Utc> {
        lifetime_end(Utc::now(), CODE_LIFETIME)
    }

    pub fn access_token_retention() -> DateTime<Utc> {
        lifetime_end(Utc::now(), ACCESS_TOKEN_RECORD_LIFETIME)
    }
}

/// Identifies one authorization (one consent) and every token descended from it, so that a
/// replayed code or refresh token can revoke them all together.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FamilyId(String);

impl FamilyId {
    pub fn generate() -> Self {
        Self(crate::secret::generate_secret())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FamilyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Result of adding a token to a family: a revoked family accepts no new members, which closes
/// the race between a revocation and a concurrent issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Stored,
    FamilyRevoked,
}

/// Whether the storage backend answers at all (readiness probes ask this), and its orderly end.
#[async_trait]
pub trait StorageHealth: Send + Sync {
    async fn ping(&self) -> Result<(), StorageError>;

    /// Writes out what is buffered and releases the backend, at shutdown. Backends that write
    /// through (memory, Redis) have nothing to do.
    async fn close(&self) {}
}

/// A client store's answer to a registration under a cap on live clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Stored,
    /// `max_live` unexpired clients are kept already: nothing was stored.
    Full,
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Keeps the client until its `expires_at`, unless `max_live` unexpired clients other
    /// than this one are kept already. The count and the insert are one atomic step, across
    /// every instance where the store is shared, so racing registrations never pass the cap.
    async fn insert(&self, client: &Client, max_live: u32) -> Result<Registration, StorageError>;
    async fn get(&self, client_id: &ClientId) -> Result<Option<Client>, StorageError>;
    /// Replaces a live client's record with `client`, whose `expires_at` is later: each use
    /// keeps a registration alive. A client that is gone stays gone, and an end never moves
    /// earlier.
    async fn prolong(&self, client: &Client) -> Result<(), StorageError>;
}

/// An authorization request waiting for the user's login and consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub client_id: ClientId,
    pub redirect_uri: RedirectUri,
    pub code_challenge: CodeChallenge,
    pub scope: Scope,
    pub resource: ResourceUri,
    pub state: Option<String>,
    /// The consent form's CSRF token, bound to this request.
    pub csrf_digest: TokenDigest,
    pub created_at: DateTime<Utc>,
    #[serde(default = "legacy::pending_expiry")]
    pub expires_at: DateTime<Utc>,
}

impl Expiring for PendingAuthorization {
    fn kept_until(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

impl Expiring for Client {
    fn kept_until(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

#[async_trait]
pub trait PendingAuthStore: Send + Sync {
    async fn insert(&self, request: &TokenDigest, pending: &PendingAuthorization) -> Result<(), StorageError>;
    async fn get(&self, request: &TokenDigest) -> Result<Option<PendingAuthorization>, StorageError>;
    /// Removes and returns the request; of concurrent takes, exactly one gets it.
    async fn take(&self, request: &TokenDigest) -> Result<Option<PendingAuthorization>, StorageError>;
}

/// What an authorization code stands for until it is exchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationGrant {
    pub client_id: ClientId,
    /// The redirect_uri exactly as sent to /authorize; the token request must repeat it.
    pub redirect_uri: String,
    pub code_challenge: CodeChallenge,
    pub scope: Scope,
    pub resource: ResourceUri,
    pub subject: Subject,
    pub family: FamilyId,
    pub issued_at: DateTime<Utc>,
    /// The code's end; the record is kept until then so that a replay is recognised.
    #[serde(default = "legacy::code_expiry")]
    pub expires_at: DateTime<Utc>,
}

impl Expiring for AuthorizationGrant {
    fn kept_until(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// This call redeemed the code.
    Redeemed(AuthorizationGrant),
    /// The code was redeemed before. `issued` tells whether that first redemption has stored
    /// its tokens yet: if so they must be revoked; if not, it is still in flight and the
    /// replay is only refused.
    Replayed {
        grant: AuthorizationGrant,
        issued: bool,
    },
    Unknown,
}

/// What a redeemed code is exchanged for: an access token, and a refresh token when the client
/// may refresh, both of the code's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issue<'a> {
    pub access_token: &'a TokenDigest,
    pub access: &'a AccessTokenRecord,
    pub refresh: Option<(&'a TokenDigest, &'a RefreshGrant)>,
}

#[async_trait]
pub trait AuthorizationCodeStore: Send + Sync {
    async fn insert(&self, code: &TokenDigest, grant: &AuthorizationGrant) -> Result<(), StorageError>;
    /// Marks the code redeemed and reports whether this call was the first. The record stays
    /// until it expires so that later attempts are recognised as replays.
    async fn redeem(&self, code: &TokenDigest) -> Result<Redemption, StorageError>;
    /// Stores the redemption's tokens and records on the code that they are stored, in one
    /// step: a replay that finds the mark revokes them, and finds it only once they exist. A
    /// revoked family (a replay won the race) stores nothing.
    async fn issue(&self, code: &TokenDigest, tokens: Issue<'_>) -> Result<Admission, StorageError>;
}

/// What is stored about an issued access token (under its digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenRecord {
    pub subject: Subject,
    pub client_id: ClientId,
    pub scope: Scope,
    pub audience: ResourceUri,
    pub family: FamilyId,
    pub issued_at: DateTime<Utc>,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// How long the record is kept: past the token's expiry, for the access-token lifetime of
    /// the policy, so that a family revocation still finds it.
    #[serde(default = "legacy::access_token_retention")]
    pub retained_until: DateTime<Utc>,
}

impl Expiring for AccessTokenRecord {
    fn kept_until(&self) -> DateTime<Utc> {
        self.retained_until
    }
}

#[async_trait]
pub trait AccessTokenStore: Send + Sync {
    async fn insert(&self, token: &TokenDigest, record: &AccessTokenRecord) -> Result<Admission, StorageError>;
    async fn get(&self, token: &TokenDigest) -> Result<Option<AccessTokenRecord>, StorageError>;
    async fn remove(&self, token: &TokenDigest) -> Result<(), StorageError>;
    /// Removes every access token of the family and refuses new ones for it until `until`.
    async fn revoke_family(&self, family: &FamilyId, until: DateTime<Utc>) -> Result<(), StorageError>;
}

/// What a refresh token grants; a successor inherits it, with its own issue and expiry. The
/// record carries its expiry: stores keep it until then, and introspection reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredRefreshGrant")]
pub struct RefreshGrant {
    pub client_id: ClientId,
    pub subject: Subject,
    pub scope: Scope,
    pub resource: ResourceUri,
    pub family: FamilyId,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A refresh grant as stored; releases before the expiry was kept stored none, and their
/// grants lived the fixed [`REFRESH_LIFETIME`] from issue.
#[derive(Deserialize)]
struct StoredRefreshGrant {
    client_id: ClientId,
    subject: Subject,
    scope: Scope,
    resource: ResourceUri,
    family: FamilyId,
    issued_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
}

impl From<StoredRefreshGrant> for RefreshGrant {
    fn from(stored: StoredRefreshGrant) -> Self {
        let legacy = || lifetime_end(stored.issued_at, REFRESH_LIFETIME);
        Self {
            expires_at: stored.expires_at.unwrap_or_else(legacy),
            client_id: stored.client_id,
            subject: stored.subject,
            scope: stored.scope,
            resource: stored.resource,
            family: stored.family,
            issued_at: stored.issued_at,
        }
    }
}

impl Expiring for RefreshGrant {
    fn kept_until(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RefreshState {
    Active,
    /// Used once; `successor` is what that use returned, sealed under the used token.
    Rotated {
        at: DateTime<Utc>,
        successor: SealedSuccessor,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub grant: RefreshGrant,
    pub state: RefreshState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// This call rotated the token; the successor is stored.
    Rotated,
    /// Another call rotated it first (or earlier); nothing was stored.
    AlreadyRotated { at: DateTime<Utc>, successor: SealedSuccessor },
    /// Unknown, expired or revoked; nothing was stored.
    Unknown,
}

/// What a winning rotation writes: the successor refresh token, and the access token issued
/// with it, in the same family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Successor<'a> {
    pub token: &'a TokenDigest,
    pub grant: &'a RefreshGrant,
    pub access_token: &'a TokenDigest,
    pub access: &'a AccessTokenRecord,
}

#[async_trait]
pub trait RefreshStore: Send + Sync {
    async fn insert(&self, token: &TokenDigest, grant: &RefreshGrant) -> Result<Admission, StorageError>;
    async fn get(&self, token: &TokenDigest) -> Result<Option<RefreshRecord>, StorageError>;
    /// Atomically moves `token` from Active to `Rotated { at, successor: sealed }` and stores
    /// the successor as Active with its access token: all or nothing, so a retry that reads
    /// the rotation finds the successor's tokens working. Of concurrent rotations of one
    /// token, exactly one returns `Rotated`.
    async fn rotate(
        &self,
        token: &TokenDigest,
        at: DateTime<Utc>,
        sealed: &SealedSuccessor,
        successor: Successor<'_>,
    ) -> Result<Rotation, StorageError>;
    /// Removes every refresh token of the family and refuses new ones for it until `until`.
    async fn revoke_family(&self, family: &FamilyId, until: DateTime<Utc>) -> Result<(), StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_grant_carries_its_expiry_and_old_records_read_with_the_fixed_lifetime() {
        let issued_at = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let grant = RefreshGrant {
            client_id: ClientId::from("c"),
            subject: Subject::parse("alice").unwrap(),
            scope: Scope::parse("mcp").unwrap(),
            resource: ResourceUri::parse("https://mcp.example/mcp").unwrap(),
            family: FamilyId::generate(),
            issued_at,
            expires_at: issued_at + chrono::Duration::hours(1),
        };
        let stored = serde_json::to_value(&grant).unwrap();
        assert_eq!(serde_json::from_value::<RefreshGrant>(stored.clone()).unwrap(), grant, "the expiry round-trips");
        let mut legacy = stored;
        legacy.as_object_mut().unwrap().remove("expires_at");
        let read: RefreshGrant = serde_json::from_value(legacy).unwrap();
        assert_eq!(read.expires_at, issued_at + chrono::Duration::days(7), "stored before expiries were kept: 7 days");
        assert_eq!(grant.remaining(issued_at + chrono::Duration::hours(2)), std::time::Duration::from_millis(1));
    }

    #[test]
    fn records_stored_before_they_carried_their_end_read_back_with_the_fixed_lifetime() {
        let record = AccessTokenRecord {
            subject: Subject::parse("alice").unwrap(),
            client_id: ClientId::from("c"),
            scope: Scope::parse("mcp").unwrap(),
            audience: ResourceUri::parse("https://mcp.example/mcp").unwrap(),
            family: FamilyId::generate(),
            issued_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
            retained_until: Utc::now() + chrono::Duration::days(1),
        };
        let mut stored = serde_json::to_value(&record).unwrap();
        stored.as_object_mut().unwrap().remove("retained_until");
        let read: AccessTokenRecord = serde_json::from_value(stored).unwrap();
        let kept = read.remaining(Utc::now()).as_secs();
        assert!((7 * 24 * 3600 - 5..=7 * 24 * 3600).contains(&kept), "kept the fixed 7 days: {kept}");
        assert_eq!(read.expires_at, record.expires_at);
    }
}
