//! Ports of the MCP resource server: what every instance must agree on about a session, and
//! a bus that carries a session's messages to the instance that can deliver them.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::ports::FamilyId;

/// Whether a new session was claimed, or refused because its owner has `max` live ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Claimed,
    Full,
}

/// A live session as an operator sees it: its owner is what [`McpSessionStore::claim`] was
/// given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    pub id: String,
    pub owner: String,
    pub last_used: chrono::DateTime<chrono::Utc>,
}

/// What is kept about each MCP session. A session lives while it is used: every `touch` by
/// its owner restarts its idle timer, and an idle session disappears everywhere.
#[async_trait]
pub trait McpSessionStore: Send + Sync {
    /// Records `subject` as the owner of a new session, unless `subject` owns `max` live
    /// sessions already; counted atomically with the claim, across instances where shared.
    async fn claim(&self, session: &str, subject: &str, max: u32) -> Result<Claim, StorageError>;
    /// Whether `subject` owns the live session; only the owner's use keeps it alive.
    async fn touch(&self, session: &str, subject: &str) -> Result<bool, StorageError>;
    async fn end(&self, session: &str) -> Result<(), StorageError>;
    /// The transport's own state (the initialize request), so another instance can restore it.
    async fn save_state(&self, session: &str, state: &str) -> Result<(), StorageError>;
    async fn load_state(&self, session: &str) -> Result<Option<String>, StorageError>;
    async fn set_log_level(&self, session: &str, level: &str) -> Result<(), StorageError>;
    async fn log_level(&self, session: &str) -> Result<Option<String>, StorageError>;
    async fn set_subscribed(&self, session: &str, uri: &str, subscribed: bool) -> Result<(), StorageError>;
    async fn is_subscribed(&self, session: &str, uri: &str) -> Result<bool, StorageError>;
    /// Every live claimed session, for an operator: a scan, never on a request's way.
    async fn list(&self) -> Result<Vec<SessionEntry>, StorageError>;
}

/// The caller's account at the upstream identity provider, reached with the upstream tokens
/// kept for their authorization family: never with the MCP client's token.
#[async_trait]
pub trait UpstreamAccount: Send + Sync {
    /// Who the upstream says the family's user is (subject, verified email, name, groups).
    async fn identity(&self, family: &FamilyId) -> Result<serde_json::Value, String>;
    /// The upstream's userinfo answer for the family's user.
    async fn userinfo(&self, family: &FamilyId) -> Result<serde_json::Value, String>;
}

/// Whether the grant behind a token still holds: a revoked token (or family) is gone, an
/// expired one is still known. A stdio child ends when its owner's grant is revoked.
#[async_trait]
pub trait GrantStatus: Send + Sync {
    async fn is_live(&self, token: &mcp_oauth_domain::secret::TokenDigest) -> Result<bool, StorageError>;
}

/// The keys that sign identity JWTs for upstreams, one per rotation period, shared by every
/// instance: the first instance to need a period's key stores it, and all sign with that one.
/// Values are sealed (encrypted) private keys.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// The key stored for `period`; `proposal` becomes it if none is (atomically), kept `keep`.
    async fn key_for(&self, period: u64, proposal: &str, keep: std::time::Duration) -> Result<String, StorageError>;
    async fn existing(&self, period: u64) -> Result<Option<String>, StorageError>;
}

pub type Payloads = Pin<Box<dyn Stream<Item = String> + Send>>;

/// Messages between the instances that serve the same sessions.
#[async_trait]
pub trait SessionBus: Send + Sync {
    async fn publish(&self, payload: String) -> Result<(), StorageError>;
    /// Every payload published from now on, by any instance, this one included.
    fn listen(&self) -> Payloads;
}
