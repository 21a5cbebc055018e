//! Where a client id is looked up: clients configured at start, Client ID Metadata Documents
//! (an https client id), and dynamic registrations, in that order; and what registration may
//! do at all.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::client::Client;
use crate::error::{ErrorCode, OAuthError, StorageError};
use crate::identity::ClientId;
use crate::metadata_document::{self, CacheBounds, CachedDocument, DocumentFetcher, DocumentUrl, FetchError, HostPolicy};
use crate::ports::lifetime_end;
use crate::secret::TokenDigest;

use super::AuthorizationServer;

/// What clients may register themselves (`REGISTRATION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationPolicy {
    /// Dynamic registration open to anyone, and metadata documents.
    Open,
    /// Metadata documents only; `/register` is refused.
    Cimd,
    /// Dynamic registration with the initial access token whose digest this is (RFC 7591
    /// section 3), and metadata documents.
    Token(TokenDigest),
    /// Neither: only the clients configured at start.
    Closed,
}

impl RegistrationPolicy {
    pub fn allows_registration(&self) -> bool {
        matches!(self, Self::Open | Self::Token(_))
    }

    pub fn allows_documents(&self) -> bool {
        !matches!(self, Self::Closed)
    }
}

/// How metadata documents are had: fetched through the port, from the hosts the policy permits,
/// kept within the bounds.
#[derive(Clone)]
pub struct DocumentSource {
    pub fetcher: Arc<dyn DocumentFetcher>,
    pub hosts: HostPolicy,
    pub bounds: CacheBounds,
}

/// Why a client id could not be looked up.
#[derive(Debug)]
pub enum LookupError {
    Storage(StorageError),
    /// The client id names a metadata document that could not be had or is invalid: the
    /// reason, fit to show the user.
    Document(String),
}

impl From<StorageError> for LookupError {
    fn from(error: StorageError) -> Self {
        Self::Storage(error)
    }
}

/// A client whose metadata document vouches for it; looked up again whenever it is used.
pub(super) fn document_client(url: &DocumentUrl, document: &CachedDocument) -> Client {
    Client {
        client_id: ClientId::from(url.as_str()),
        secret_digest: None,
        metadata: document.metadata.clone(),
        issued_at: document.fetched_at,
        expires_at: DateTime::<Utc>::MAX_UTC,
    }
}

impl AuthorizationServer {
    /// The live client with this id, wherever it comes from; `None` if there is none.
    pub(super) async fn find_client(&self, client_id: &ClientId) -> Result<Option<Client>, LookupError> {
        if let Some(client) = self.policy.configured_clients.iter().find(|c| &c.client_id == client_id) {
            return Ok(Some(client.clone()));
        }
        if let Some(url) = DocumentUrl::parse(client_id.as_str()) {
            return self.document_client(&url).await.map(Some);
        }
        if client_id.as_str().starts_with("https://") {
            // No registration has such an id: an https client id is a document URL or nothing.
            return Err(LookupError::Document(
                "an https client_id must be a metadata document URL: https, with a path, no fragment or credentials, \
                 written in normalized form"
                    .into(),
            ));
        }
        let client = self.stores.clients.get(client_id).await?;
        Ok(client.filter(|c| c.expires_at > self.clock.now()))
    }

    async fn document_client(&self, url: &DocumentUrl) -> Result<Client, LookupError> {
        let refuse = |reason: String| Err(LookupError::Document(reason));
        let Some(source) = self.documents.as_ref().filter(|_| self.policy.registration.allows_documents()) else {
            return refuse("this server does not accept Client ID Metadata Documents as client ids".into());
        };
        if !source.hosts.permits(url.host()) {
            return refuse(format!("{} is not allowed to serve client metadata documents to this server", url.host()));
        }
        let key = url.digest();
        let now = self.clock.now();
        let cached = self.stores.documents.get(&key).await?.filter(|d| d.expires_at > now);
        if let Some(document) = cached.as_ref().filter(|d| d.is_fresh(now)) {
            return Ok(document_client(url, document));
        }
        let fetched = match source.fetcher.fetch(url).await {
            Ok(fetched) => fetched,
            Err(FetchError::Unreachable(reason)) if cached.is_some() => {
                let document = cached.expect("checked");
                tracing::warn!(host = url.host(), %reason, fresh_until = %document.fresh_until,
                    "client metadata document host unreachable: serving the stale copy");
                return Ok(document_client(url, &document));
            }
            Err(error) => {
                tracing::info!(host = url.host(), reason = %error, "client metadata document refused");
                return refuse(format!("the client metadata document could not be fetched: {error}"));
            }
        };
        let metadata = match metadata_document::validate(url, &fetched.body, &self.policy.scopes) {
            Ok(metadata) => metadata,
            Err(reason) => {
                // A document that turned invalid is not served from an older copy either.
                self.stores.documents.remove(&key).await?;
                tracing::info!(host = url.host(), %reason, "client metadata document invalid");
                return refuse(reason);
            }
        };
        let freshness = source.bounds.freshness(fetched.caching);
        let fresh_until = lifetime_end(now, freshness.unwrap_or_default());
        let document =
            CachedDocument { metadata, fetched_at: now, fresh_until, expires_at: lifetime_end(fresh_until, source.bounds.stale) };
        if freshness.is_some() {
            self.stores.documents.put(&key, &document).await?;
        } else {
            self.stores.documents.remove(&key).await?;
        }
        Ok(document_client(url, &document))
    }

    /// Keeps a registered client at least `keep` from now (`CLIENT_IDLE_TTL`, or longer while
    /// what it is given lives): a client is deleted only once unused for that long. Written
    /// at most about once per thirtieth of `keep`, not on every request; a failed write is
    /// logged, never the request's failure.
    pub(super) async fn keep_client(&self, client: &Client, keep: std::time::Duration) {
        if client.expires_at == DateTime::<Utc>::MAX_UTC {
            return;
        }
        let until = lifetime_end(self.clock.now(), keep);
        let slack = chrono::Duration::from_std(keep / 30).unwrap_or_default();
        if client.expires_at + slack >= until {
            return;
        }
        let prolonged = Client { expires_at: until, ..client.clone() };
        if let Err(error) = self.stores.clients.prolong(&prolonged).await {
            tracing::warn!(client_id = %client.client_id, cause = %error, "client's life not extended: storage unavailable");
        }
    }

    /// Whether dynamic registration may go ahead with the initial access token presented.
    pub(super) fn admit_registration(&self, initial_access_token: Option<&str>) -> Result<(), OAuthError> {
        match &self.policy.registration {
            RegistrationPolicy::Open => Ok(()),
            RegistrationPolicy::Token(digest) if initial_access_token.is_some_and(|t| digest.matches(t)) => Ok(()),
            RegistrationPolicy::Token(_) => {
                Err(OAuthError::new(ErrorCode::InvalidToken, "registration requires a valid initial access token"))
            }
            RegistrationPolicy::Cimd => Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "this server does not accept dynamic registration; use a Client ID Metadata Document URL as client_id",
            )),
            RegistrationPolicy::Closed => {
                Err(OAuthError::new(ErrorCode::AccessDenied, "this server does not accept new clients"))
            }
        }
    }
}
