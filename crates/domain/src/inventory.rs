//! What an operator asks of the stores, apart from the request path: every registered client,
//! the grants a user or a client holds, how many records of each kind are kept, and the sweep.
//! These may scan every record, so nothing on a request's way uses them.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::client::Client;
use crate::error::StorageError;
use crate::identity::{ClientId, Subject};
use crate::ports::FamilyId;

/// Whose grants an operator means: one user's, through any client, or one client's, for any user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    User(Subject),
    Client(ClientId),
}

impl Holder {
    pub fn holds(&self, subject: &Subject, client_id: &ClientId) -> bool {
        match self {
            Self::User(user) => user == subject,
            Self::Client(client) => client == client_id,
        }
    }
}

/// One authorization (a family of tokens) and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGrant {
    pub family: FamilyId,
    pub subject: Subject,
    pub client_id: ClientId,
}

/// Collects the grants of `holder` among `(family, subject, client)` triples, once per family.
pub fn grants_of<'a>(
    holder: &Holder,
    records: impl IntoIterator<Item = (&'a FamilyId, &'a Subject, &'a ClientId)>,
) -> Vec<HeldGrant> {
    let mut held = BTreeMap::new();
    for (family, subject, client_id) in records {
        if holder.holds(subject, client_id) && !held.contains_key(family) {
            let grant = HeldGrant { family: family.clone(), subject: subject.clone(), client_id: client_id.clone() };
            held.insert(family.clone(), grant);
        }
    }
    held.into_values().collect()
}

/// Live records of each kind in a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordCounts {
    pub clients: u64,
    pub pending_authorizations: u64,
    pub authorization_codes: u64,
    pub access_tokens: u64,
    pub refresh_tokens: u64,
    pub revoked_families: u64,
    pub login_sessions: u64,
    pub login_attempts: u64,
    pub remembered_consents: u64,
    pub upstream_grants: u64,
    pub client_documents: u64,
}

impl RecordCounts {
    /// The counts in the order of the fields above, as a backend that counts a table per kind
    /// lists them.
    pub fn from_ordered(counts: [u64; 11]) -> Self {
        let [
            clients,
            pending_authorizations,
            authorization_codes,
            access_tokens,
            refresh_tokens,
            revoked_families,
            login_sessions,
            login_attempts,
            remembered_consents,
            upstream_grants,
            client_documents,
        ] = counts;
        Self {
            clients,
            pending_authorizations,
            authorization_codes,
            access_tokens,
            refresh_tokens,
            revoked_families,
            login_sessions,
            login_attempts,
            remembered_consents,
            upstream_grants,
            client_documents,
        }
    }
}

#[async_trait]
pub trait Inventory: Send + Sync {
    /// Every live registered client (configured clients and metadata documents are not stored
    /// as registrations).
    async fn clients(&self) -> Result<Vec<Client>, StorageError>;
    /// Deletes a registered client's record; whether there was a live one.
    async fn delete_client(&self, client_id: &ClientId) -> Result<bool, StorageError>;
    /// The families in which `holder` has an access or refresh token kept, once each.
    async fn grants(&self, holder: &Holder) -> Result<Vec<HeldGrant>, StorageError>;
    async fn counts(&self) -> Result<RecordCounts, StorageError>;
    /// Frees what has expired now, rather than at the next sweep; how many records. Backends
    /// that expire records by themselves (Redis) free only their indexes.
    async fn purge_expired(&self) -> Result<u64, StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_gets_each_of_its_families_once() {
        let (f1, f2) = (FamilyId::generate(), FamilyId::generate());
        let (alice, bob) = (Subject::parse("alice").unwrap(), Subject::parse("bob").unwrap());
        let (c1, c2) = (ClientId::from("c1"), ClientId::from("c2"));
        let records = [(&f1, &alice, &c1), (&f1, &alice, &c1), (&f2, &bob, &c1)];
        assert_eq!(grants_of(&Holder::User(alice.clone()), records).len(), 1);
        assert_eq!(grants_of(&Holder::Client(c1.clone()), records).len(), 2);
        assert!(grants_of(&Holder::Client(c2), records).is_empty());
    }
}
