//! What an operator may do to the authorization server (the admin API): see and delete
//! clients, revoke every grant of a user or a client, count and purge records. Each deletion
//! and revoked family is audited; the admin API audits the command itself.

use crate::audit::{self, Event};
use crate::client::Client;
use crate::error::StorageError;
use crate::identity::ClientId;
use crate::inventory::{Holder, RecordCounts};
use crate::metadata_document::DocumentUrl;

use super::AuthorizationServer;

/// Where a client's registration comes from, which decides what deleting it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOrigin {
    /// `CLIENTS_FILE`: changed only there.
    Configured,
    /// Dynamic registration (RFC 7591).
    Registered,
    /// A Client ID Metadata Document, as last fetched.
    Document,
}

impl ClientOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configured => "configured",
            Self::Registered => "registered",
            Self::Document => "metadata_document",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientEntry {
    pub client: Client,
    pub origin: ClientOrigin,
}

/// A client with what it holds now.
#[derive(Debug, Clone)]
pub struct ClientDetails {
    pub entry: ClientEntry,
    /// Live authorizations (token families) of the client.
    pub grants: usize,
    /// Distinct users among them.
    pub users: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DeletionError {
    #[error("client {0} is configured in CLIENTS_FILE; remove it there and restart")]
    Configured(ClientId),
    #[error("no client {0}")]
    Unknown(ClientId),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl AuthorizationServer {
    /// Configured clients, then live registrations.
    pub async fn list_clients(&self) -> Result<Vec<ClientEntry>, StorageError> {
        let configured = self
            .policy
            .configured_clients
            .iter()
            .map(|client| ClientEntry { client: client.clone(), origin: ClientOrigin::Configured });
        let mut registered: Vec<Client> = self.stores.inventory.clients().await?;
        registered.sort_by_key(|client| client.issued_at);
        let registered = registered.into_iter().map(|client| ClientEntry { client, origin: ClientOrigin::Registered });
        Ok(configured.chain(registered).collect())
    }

    /// The client and what it holds; a metadata-document client only as cached (never fetched
    /// for an operator's look).
    pub async fn client_details(&self, client_id: &ClientId) -> Result<Option<ClientDetails>, StorageError> {
        let Some(entry) = self.stored_client(client_id).await? else { return Ok(None) };
        let grants = self.stores.inventory.grants(&Holder::Client(client_id.clone())).await?;
        let users: std::collections::BTreeSet<&str> = grants.iter().map(|g| g.subject.as_str()).collect();
        Ok(Some(ClientDetails { entry, grants: grants.len(), users: users.len() }))
    }

    async fn stored_client(&self, client_id: &ClientId) -> Result<Option<ClientEntry>, StorageError> {
        if let Some(client) = self.policy.configured_clients.iter().find(|c| &c.client_id == client_id) {
            return Ok(Some(ClientEntry { client: client.clone(), origin: ClientOrigin::Configured }));
        }
        if let Some(url) = DocumentUrl::parse(client_id.as_str()) {
            let cached = self.stores.documents.get(&url.digest()).await?.filter(|d| d.expires_at > self.clock.now());
            return Ok(cached.map(|document| ClientEntry {
                client: super::clients::document_client(&url, &document),
                origin: ClientOrigin::Document,
            }));
        }
        let client = self.stores.clients.get(client_id).await?.filter(|c| c.expires_at > self.clock.now());
        Ok(client.map(|client| ClientEntry { client, origin: ClientOrigin::Registered }))
    }

    /// Deletes a registered client (or drops a metadata document's cached copy) and revokes
    /// every grant it holds; returns how many. A client with grants but no registration left
    /// (it expired) still has them revoked.
    pub async fn delete_client(&self, client_id: &ClientId) -> Result<usize, DeletionError> {
        if self.policy.configured_clients.iter().any(|c| &c.client_id == client_id) {
            return Err(DeletionError::Configured(client_id.clone()));
        }
        let existed = match DocumentUrl::parse(client_id.as_str()) {
            Some(url) => {
                let key = url.digest();
                let cached = self.stores.documents.get(&key).await?.is_some();
                self.stores.documents.remove(&key).await?;
                cached
            }
            None => self.stores.inventory.delete_client(client_id).await?,
        };
        let revoked = self.revoke_grants(&Holder::Client(client_id.clone())).await?;
        if !existed && revoked == 0 {
            return Err(DeletionError::Unknown(client_id.clone()));
        }
        audit::record(Event::ClientDeleted, "", client_id.as_str(), "deleted", &format!("admin; {revoked} grants revoked"));
        Ok(revoked)
    }

    /// Revokes every grant `holder` has: refresh and access tokens of each family, and the
    /// upstream tokens kept with it. Returns how many families.
    pub async fn revoke_grants(&self, holder: &Holder) -> Result<usize, StorageError> {
        let grants = self.stores.inventory.grants(holder).await?;
        for grant in &grants {
            self.revoke_family(&grant.family).await?;
            audit::record(Event::Revocation, grant.subject.as_str(), grant.client_id.as_str(), "family_revoked", "admin");
        }
        Ok(grants.len())
    }

    pub async fn record_counts(&self) -> Result<RecordCounts, StorageError> {
        self.stores.inventory.counts().await
    }

    pub async fn purge_expired(&self) -> Result<u64, StorageError> {
        self.stores.inventory.purge_expired().await
    }
}
