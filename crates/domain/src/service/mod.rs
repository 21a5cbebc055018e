//! The authorization server's rules. HTTP handlers parse requests into the types here and
//! translate the results; storage is reached only through the ports.

mod admin;
mod authorize;
mod client_auth;
mod clients;
mod consent;
mod introspect;
mod register;
mod token;

use std::sync::Arc;

use chrono::Duration;

pub use admin::{ClientDetails, ClientEntry, ClientOrigin, DeletionError};
pub use authorize::{AuthorizeError, ConsentDecision, ConsentError, ConsentPrompt, SignedIn};
pub use client_auth::ClientCredentials;
pub use clients::{DocumentSource, LookupError, RegistrationPolicy};
pub use introspect::Introspection;
pub use register::RegisteredClient;
pub use token::TokenResponse;

use crate::client::Client;
use crate::clock::Clock;
use crate::identity::ClientId;
use crate::inventory::Inventory;
use crate::login::{ConsentStore, LoginAttemptStore, LoginSessionStore, UpstreamTokenStore, VaultKey};
use crate::metadata_document::DocumentCache;
use crate::ports::{
    AccessTokenStore, AuthorizationCodeStore, ClientStore, Lifetimes, PendingAuthStore, RefreshStore, StorageHealth,
};
use crate::resource::{Issuer, ResourceUri};
use crate::scope::Scope;
use crate::secret::TokenDigest;

/// One adapter's implementation of every port.
#[derive(Clone)]
pub struct Stores {
    pub clients: Arc<dyn ClientStore>,
    pub pending: Arc<dyn PendingAuthStore>,
    pub codes: Arc<dyn AuthorizationCodeStore>,
    pub access_tokens: Arc<dyn AccessTokenStore>,
    pub refresh: Arc<dyn RefreshStore>,
    pub login_sessions: Arc<dyn LoginSessionStore>,
    pub login_attempts: Arc<dyn LoginAttemptStore>,
    pub consents: Arc<dyn ConsentStore>,
    pub upstream_tokens: Arc<dyn UpstreamTokenStore>,
    pub documents: Arc<dyn DocumentCache>,
    pub inventory: Arc<dyn Inventory>,
    pub health: Arc<dyn StorageHealth>,
}

impl Stores {
    /// Every port served by one adapter value (and its clones).
    pub fn sharing<S>(store: S) -> Self
    where
        S: ClientStore
            + PendingAuthStore
            + AuthorizationCodeStore
            + AccessTokenStore
            + RefreshStore
            + LoginSessionStore
            + LoginAttemptStore
            + ConsentStore
            + UpstreamTokenStore
            + DocumentCache
            + Inventory
            + StorageHealth
            + 'static,
    {
        let store = Arc::new(store);
        Self {
            clients: store.clone(),
            pending: store.clone(),
            codes: store.clone(),
            access_tokens: store.clone(),
            refresh: store.clone(),
            login_sessions: store.clone(),
            login_attempts: store.clone(),
            consents: store.clone(),
            upstream_tokens: store.clone(),
            documents: store.clone(),
            inventory: store.clone(),
            health: store,
        }
    }
}

/// A credential with which a resource server may call the introspection endpoint.
#[derive(Debug, Clone)]
pub struct ResourceServerCredential {
    pub client_id: ClientId,
    pub secret_digest: TokenDigest,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub issuer: Issuer,
    /// The resources tokens may be issued for; the first is the default audience.
    pub resources: Vec<ResourceUri>,
    /// Every scope a client may request; a request without `scope` gets all of them.
    pub scopes: Scope,
    pub access_token_ttl: Duration,
    /// How long a retry of a just-rotated refresh token gets the same successor back; zero
    /// turns the grace window off.
    pub refresh_grace: Duration,
    pub resource_servers: Vec<ResourceServerCredential>,
    /// How long each kind of record lives. Every record is stamped with its end from these,
    /// and the stores keep it exactly that long, so what the rules report (a refresh token's
    /// `exp`) is what the stores enforce.
    pub lifetimes: Lifetimes,
    /// How long an approval given by a signed-in user is remembered; zero asks every time.
    pub consent_ttl: std::time::Duration,
    /// Seals the upstream's tokens kept with each family (upstream login only).
    pub vault_key: Option<VaultKey>,
    /// How many registered clients may live at once; a registration past it is refused.
    pub max_clients: u32,
    /// What clients may register themselves.
    pub registration: RegistrationPolicy,
    /// Clients configured at start (`CLIENTS_FILE`), found before any other.
    pub configured_clients: Vec<Client>,
}

pub struct AuthorizationServer {
    stores: Stores,
    policy: Policy,
    clock: Arc<dyn Clock>,
    documents: Option<DocumentSource>,
}

impl AuthorizationServer {
    pub fn new(stores: Stores, policy: Policy, clock: Arc<dyn Clock>) -> Self {
        assert!(!policy.resources.is_empty(), "an authorization server issues tokens for at least one resource");
        Self { stores, policy, clock, documents: None }
    }

    /// Accepts Client ID Metadata Documents as client ids, had from `source`.
    pub fn with_documents(self, source: DocumentSource) -> Self {
        Self { documents: Some(source), ..self }
    }

    /// Whether an https client id is taken as a metadata document (AS metadata says so).
    pub fn accepts_documents(&self) -> bool {
        self.documents.is_some() && self.policy.registration.allows_documents()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The end of a lifetime that starts now.
    fn lifetime_end(&self, lifetime: std::time::Duration) -> chrono::DateTime<chrono::Utc> {
        crate::ports::lifetime_end(self.clock.now(), lifetime)
    }
}
