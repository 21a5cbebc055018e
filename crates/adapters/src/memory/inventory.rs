//! The operator's view of the in-memory records: a scan of the maps.

use std::collections::HashSet;

use async_trait::async_trait;
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::client::Client;
use mcp_oauth_domain::identity::{ClientId, Subject};
use mcp_oauth_domain::inventory::{HeldGrant, Holder, Inventory, RecordCounts, grants_of};

use mcp_oauth_domain::ports::FamilyId;

use super::MemoryStore;
use super::compact::family_key;

#[async_trait]
impl Inventory for MemoryStore {
    async fn clients(&self) -> Result<Vec<Client>, StorageError> {
        let mut clients = Vec::new();
        self.inner.clients.for_each_live(|_, client| clients.push(client.clone()));
        Ok(clients)
    }

    async fn delete_client(&self, client_id: &ClientId) -> Result<bool, StorageError> {
        Ok(self.inner.clients.take(client_id).is_some())
    }

    async fn grants(&self, holder: &Holder) -> Result<Vec<HeldGrant>, StorageError> {
        let mut held = Vec::new();
        let mut collect = |family: &FamilyId, subject: &Subject, client_id: &ClientId| {
            if holder.holds(subject, client_id) {
                held.push((family.clone(), subject.clone(), client_id.clone()));
            }
        };
        let revoked = self.inner.revoked_access_families();
        self.inner.access_tokens.for_each_live(|_, kept| {
            if !revoked.contains(&family_key(&kept.family)) {
                collect(&kept.family, kept.subject(), kept.client_id());
            }
        });
        self.inner
            .refresh
            .for_each_live(|_, record| collect(&record.grant.family, &record.grant.subject, &record.grant.client_id));
        Ok(grants_of(holder, held.iter().map(|(family, subject, client_id)| (family, subject, client_id))))
    }

    async fn counts(&self) -> Result<RecordCounts, StorageError> {
        let i = &self.inner;
        let mut revoked = HashSet::new();
        let revoked_access = i.revoked_access_families();
        let mut access_tokens = 0;
        i.access_tokens.for_each_live(|_, kept| access_tokens += u64::from(!revoked_access.contains(&family_key(&kept.family))));
        revoked.extend(revoked_access);
        i.refresh_families.for_each_live(|family, state| {
            if state.revoked {
                revoked.insert(*family);
            }
        });
        Ok(RecordCounts {
            clients: i.clients.count_live(),
            pending_authorizations: i.pending.count_live(),
            authorization_codes: i.codes.count_live(),
            access_tokens,
            refresh_tokens: i.refresh.count_live(),
            revoked_families: revoked.len() as u64,
            login_sessions: i.login_sessions.count_live(),
            login_attempts: i.login_attempts.count_live(),
            remembered_consents: i.consents.count_live(),
            upstream_grants: i.upstream_tokens.count_live(),
            client_documents: i.documents.count_live(),
        })
    }

    async fn purge_expired(&self) -> Result<u64, StorageError> {
        Ok(self.inner.purge() as u64)
    }
}
