//! Registered clients kept in this process for a few seconds (`CLIENT_CACHE_TTL`), in front
//! of a shared store: every token request and authorization looks its client up, and on Redis
//! that was a round trip each time. A client is never changed in place except to live longer,
//! so a copy stays right; what a copy delays is a deletion made on another instance, by at
//! most the TTL (one made here drops the copy at once). Only found clients are kept, so a new
//! registration is seen at once everywhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::client::Client;
use mcp_oauth_domain::identity::ClientId;
use mcp_oauth_domain::inventory::{HeldGrant, Holder, Inventory, RecordCounts};
use mcp_oauth_domain::ports::{ClientStore, Registration};
use mcp_oauth_domain::service::Stores;

/// Copies kept at most; past it the cache is cleared (a flood of distinct ids must not grow it).
const MAX_ENTRIES: usize = 10_000;

pub struct CachedClients {
    clients: Arc<dyn ClientStore>,
    inventory: Arc<dyn Inventory>,
    ttl: Duration,
    copies: DashMap<ClientId, (Client, Instant)>,
}

impl CachedClients {
    /// `stores` with its client lookups cached for `ttl`; zero leaves them as they are.
    pub fn wrap(stores: Stores, ttl: Duration) -> Stores {
        if ttl.is_zero() {
            return stores;
        }
        let cached =
            Arc::new(Self { clients: stores.clients.clone(), inventory: stores.inventory.clone(), ttl, copies: DashMap::new() });
        Stores { clients: cached.clone(), inventory: cached, ..stores }
    }

    fn keep(&self, client: &Client) {
        if self.copies.len() >= MAX_ENTRIES {
            self.copies.clear();
        }
        self.copies.insert(client.client_id.clone(), (client.clone(), Instant::now() + self.ttl));
    }
}

#[async_trait]
impl ClientStore for CachedClients {
    async fn insert(&self, client: &Client, max_live: u32) -> Result<Registration, StorageError> {
        self.clients.insert(client, max_live).await
    }

    async fn get(&self, client_id: &ClientId) -> Result<Option<Client>, StorageError> {
        if let Some(copy) = self.copies.get(client_id)
            && copy.1 > Instant::now()
        {
            return Ok(Some(copy.0.clone()));
        }
        let found = self.clients.get(client_id).await?;
        match &found {
            Some(client) => self.keep(client),
            None => {
                self.copies.remove(client_id);
            }
        }
        Ok(found)
    }

    async fn prolong(&self, client: &Client) -> Result<(), StorageError> {
        self.clients.prolong(client).await?;
        // The copy follows, or the next use would prolong again from the stale end.
        if let Some(mut copy) = self.copies.get_mut(&client.client_id) {
            copy.0 = client.clone();
        }
        Ok(())
    }
}

#[async_trait]
impl Inventory for CachedClients {
    async fn clients(&self) -> Result<Vec<Client>, StorageError> {
        self.inventory.clients().await
    }

    async fn delete_client(&self, client_id: &ClientId) -> Result<bool, StorageError> {
        self.copies.remove(client_id);
        self.inventory.delete_client(client_id).await
    }

    async fn grants(&self, holder: &Holder) -> Result<Vec<HeldGrant>, StorageError> {
        self.inventory.grants(holder).await
    }

    async fn counts(&self) -> Result<RecordCounts, StorageError> {
        self.inventory.counts().await
    }

    async fn purge_expired(&self) -> Result<u64, StorageError> {
        self.inventory.purge_expired().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use chrono::{TimeDelta, Utc};
    use mcp_oauth_domain::client::RegistrationRequest;
    use mcp_oauth_domain::scope::Scope;

    fn client(id: &str) -> Client {
        let metadata = RegistrationRequest { redirect_uris: Some(vec!["http://127.0.0.1:9/cb".into()]), ..Default::default() }
            .validate(&Scope::parse("mcp").unwrap())
            .unwrap();
        Client {
            client_id: id.into(),
            secret_digest: None,
            metadata,
            issued_at: Utc::now(),
            expires_at: Utc::now() + TimeDelta::days(1),
        }
    }

    #[tokio::test]
    async fn copies_last_the_ttl_deletions_here_are_seen_at_once_and_absence_is_never_kept() {
        let shared = MemoryStore::new().stores();
        let here = CachedClients::wrap(shared.clone(), Duration::from_millis(300));
        assert_eq!(here.clients.get(&"a".into()).await.unwrap(), None);
        shared.clients.insert(&client("a"), u32::MAX).await.unwrap();
        assert!(here.clients.get(&"a".into()).await.unwrap().is_some(), "a registration elsewhere is seen at once");

        shared.inventory.delete_client(&"a".into()).await.unwrap();
        assert!(here.clients.get(&"a".into()).await.unwrap().is_some(), "deleted elsewhere: the copy stands for the TTL");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(here.clients.get(&"a".into()).await.unwrap(), None, "and no longer");

        shared.clients.insert(&client("b"), u32::MAX).await.unwrap();
        assert!(here.clients.get(&"b".into()).await.unwrap().is_some());
        assert!(here.inventory.delete_client(&"b".into()).await.unwrap());
        assert_eq!(here.clients.get(&"b".into()).await.unwrap(), None, "deleted here: gone at once");
    }
}
