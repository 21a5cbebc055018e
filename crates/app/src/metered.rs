//! Every storage port measured: each call counted by backend, operation and outcome
//! (`storage_operations_total`), timed (`storage_operation_duration_seconds`), and run in a
//! debug-level `storage` span, so a trace follows a request into its storage. A wrapper per
//! port, around whichever adapter the configuration chose.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::client::Client;
use mcp_oauth_domain::grace::SealedSuccessor;
use mcp_oauth_domain::identity::ClientId;
use mcp_oauth_domain::inventory::{HeldGrant, Holder, Inventory, RecordCounts};
use mcp_oauth_domain::login::{
    ConsentStore, LoginAttempt, LoginAttemptStore, LoginSession, LoginSessionStore, RememberedConsent, UpstreamGrant,
    UpstreamTokenStore,
};
use mcp_oauth_domain::metadata_document::{CachedDocument, DocumentCache};
use mcp_oauth_domain::ports::{
    AccessTokenRecord, AccessTokenStore, Admission, AuthorizationCodeStore, AuthorizationGrant, ClientStore, FamilyId, Issue,
    PendingAuthStore, PendingAuthorization, Redemption, RefreshGrant, RefreshRecord, RefreshStore, Registration, Rotation,
    StorageHealth, Successor,
};
use mcp_oauth_domain::rate_limit::{RateLimitStore, WindowCount};
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::service::Stores;
use mcp_oauth_resource::ports::{Claim, McpSessionStore, SessionEntry};
use metrics::{Counter, Histogram};
use tracing::Instrument;

use crate::metric_handles::Handles;

/// A port `P` of `backend`, measured.
pub struct Metered<P: ?Sized> {
    inner: Arc<P>,
    backend: &'static str,
    /// By operation and outcome: its count, and its latency (by operation).
    handles: Handles<(&'static str, &'static str), (Counter, Histogram)>,
}

impl<P: ?Sized> Metered<P> {
    pub fn new(inner: Arc<P>, backend: &'static str) -> Arc<Self> {
        Arc::new(Self { inner, backend, handles: Handles::default() })
    }

    async fn measure<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let span = tracing::debug_span!("storage", backend = self.backend, operation);
        let started = Instant::now();
        let result = call.instrument(span).await;
        let outcome = outcome(&result);
        let backend = self.backend;
        let (count, latency) = self.handles.get(&(operation, outcome), || {
            let count = metrics::counter!("storage_operations_total", "backend" => backend, "operation" => operation, "outcome" => outcome);
            let latency = metrics::histogram!("storage_operation_duration_seconds", "backend" => backend, "operation" => operation);
            ((operation, outcome), (count, latency))
        });
        count.increment(1);
        latency.record(started.elapsed().as_secs_f64());
        result
    }
}

fn outcome<T>(result: &Result<T, StorageError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(StorageError::Unavailable(_)) => "unavailable",
        Err(StorageError::Corrupt(_)) => "corrupt",
    }
}

/// Implements `$port` for `Metered<dyn $port>`, each method delegating under its measure.
macro_rules! metered {
    ($port:ident, $name:literal { $(fn $method:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* }) => {
        #[async_trait]
        impl $port for Metered<dyn $port> {
            $(async fn $method(&self $(, $arg: $ty)*) -> Result<$ret, StorageError> {
                self.measure(concat!($name, ".", stringify!($method)), self.inner.$method($($arg),*)).await
            })*
        }
    };
}

metered!(ClientStore, "clients" {
    fn insert(&self, client: &Client, max_live: u32) -> Registration;
    fn get(&self, client_id: &ClientId) -> Option<Client>;
    fn prolong(&self, client: &Client) -> ();
});

metered!(PendingAuthStore, "pending" {
    fn insert(&self, request: &TokenDigest, pending: &PendingAuthorization) -> ();
    fn get(&self, request: &TokenDigest) -> Option<PendingAuthorization>;
    fn take(&self, request: &TokenDigest) -> Option<PendingAuthorization>;
});

metered!(AuthorizationCodeStore, "codes" {
    fn insert(&self, code: &TokenDigest, grant: &AuthorizationGrant) -> ();
    fn redeem(&self, code: &TokenDigest) -> Redemption;
    fn issue(&self, code: &TokenDigest, tokens: Issue<'_>) -> Admission;
});

metered!(AccessTokenStore, "access_tokens" {
    fn insert(&self, token: &TokenDigest, record: &AccessTokenRecord) -> Admission;
    fn get(&self, token: &TokenDigest) -> Option<AccessTokenRecord>;
    fn remove(&self, token: &TokenDigest) -> ();
    fn revoke_family(&self, family: &FamilyId, until: DateTime<Utc>) -> ();
});

metered!(RefreshStore, "refresh_tokens" {
    fn insert(&self, token: &TokenDigest, grant: &RefreshGrant) -> Admission;
    fn get(&self, token: &TokenDigest) -> Option<RefreshRecord>;
    fn rotate(&self, token: &TokenDigest, at: DateTime<Utc>, sealed: &SealedSuccessor, successor: Successor<'_>) -> Rotation;
    fn revoke_family(&self, family: &FamilyId, until: DateTime<Utc>) -> ();
});

metered!(LoginSessionStore, "login_sessions" {
    fn insert(&self, session: &TokenDigest, record: &LoginSession) -> ();
    fn get(&self, session: &TokenDigest) -> Option<LoginSession>;
    fn remove(&self, session: &TokenDigest) -> ();
});

metered!(LoginAttemptStore, "login_attempts" {
    fn insert(&self, state: &TokenDigest, attempt: &LoginAttempt) -> ();
    fn get(&self, state: &TokenDigest) -> Option<LoginAttempt>;
    fn take(&self, state: &TokenDigest) -> Option<LoginAttempt>;
});

metered!(ConsentStore, "consents" {
    fn remember(&self, key: &TokenDigest, consent: &RememberedConsent) -> ();
    fn recall(&self, key: &TokenDigest) -> Option<RememberedConsent>;
});

metered!(UpstreamTokenStore, "upstream_tokens" {
    fn put(&self, family: &FamilyId, grant: &UpstreamGrant) -> ();
    fn get(&self, family: &FamilyId) -> Option<UpstreamGrant>;
    fn remove(&self, family: &FamilyId) -> ();
});

metered!(DocumentCache, "documents" {
    fn put(&self, url: &TokenDigest, document: &CachedDocument) -> ();
    fn get(&self, url: &TokenDigest) -> Option<CachedDocument>;
    fn remove(&self, url: &TokenDigest) -> ();
});

metered!(Inventory, "inventory" {
    fn clients(&self) -> Vec<Client>;
    fn delete_client(&self, client_id: &ClientId) -> bool;
    fn grants(&self, holder: &Holder) -> Vec<HeldGrant>;
    fn counts(&self) -> RecordCounts;
    fn purge_expired(&self) -> u64;
});

metered!(RateLimitStore, "rate_limits" {
    fn hit(&self, key: &str, window: Duration) -> WindowCount;
    fn peek(&self, key: &str) -> Option<WindowCount>;
});

metered!(McpSessionStore, "mcp_sessions" {
    fn claim(&self, session: &str, subject: &str, max: u32) -> Claim;
    fn touch(&self, session: &str, subject: &str) -> bool;
    fn end(&self, session: &str) -> ();
    fn save_state(&self, session: &str, state: &str) -> ();
    fn load_state(&self, session: &str) -> Option<String>;
    fn set_log_level(&self, session: &str, level: &str) -> ();
    fn log_level(&self, session: &str) -> Option<String>;
    fn set_subscribed(&self, session: &str, uri: &str, subscribed: bool) -> ();
    fn is_subscribed(&self, session: &str, uri: &str) -> bool;
    fn list(&self) -> Vec<SessionEntry>;
});

#[async_trait]
impl StorageHealth for Metered<dyn StorageHealth> {
    async fn ping(&self) -> Result<(), StorageError> {
        self.measure("health.ping", self.inner.ping()).await
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

/// Every port of `stores`, measured as `backend`.
pub fn stores(stores: Stores, backend: &'static str) -> Stores {
    Stores {
        clients: Metered::new(stores.clients, backend),
        pending: Metered::new(stores.pending, backend),
        codes: Metered::new(stores.codes, backend),
        access_tokens: Metered::new(stores.access_tokens, backend),
        refresh: Metered::new(stores.refresh, backend),
        login_sessions: Metered::new(stores.login_sessions, backend),
        login_attempts: Metered::new(stores.login_attempts, backend),
        consents: Metered::new(stores.consents, backend),
        upstream_tokens: Metered::new(stores.upstream_tokens, backend),
        documents: Metered::new(stores.documents, backend),
        inventory: Metered::new(stores.inventory, backend),
        health: Metered::new(stores.health, backend),
    }
}
