//! How the in-memory store keeps its most numerous records small. Access tokens are kept for
//! the whole retention period (seven days), one an hour for each user's client, so a store
//! holds many per user: what they share (who holds them, for what) is kept once, and families
//! are keyed by the digest of their id.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use mcp_oauth_domain::identity::{ClientId, Subject};
use mcp_oauth_domain::ports::{AccessTokenRecord, FamilyId};
use mcp_oauth_domain::resource::ResourceUri;
use mcp_oauth_domain::scope::Scope;
use mcp_oauth_domain::secret::TokenDigest;

/// Who holds an access token and for what, shared by every token with the same four.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Holding {
    subject: Subject,
    client_id: ClientId,
    scope: Scope,
    audience: ResourceUri,
}

/// An access token as kept here.
#[derive(Clone)]
pub(super) struct KeptAccessToken {
    pub(super) holding: Arc<Holding>,
    pub(super) family: FamilyId,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    retained_until: DateTime<Utc>,
}

impl KeptAccessToken {
    pub(super) fn record(&self) -> AccessTokenRecord {
        let holding = &*self.holding;
        AccessTokenRecord {
            subject: holding.subject.clone(),
            client_id: holding.client_id.clone(),
            scope: holding.scope.clone(),
            audience: holding.audience.clone(),
            family: self.family.clone(),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            retained_until: self.retained_until,
        }
    }

    pub(super) fn subject(&self) -> &Subject {
        &self.holding.subject
    }

    pub(super) fn client_id(&self) -> &ClientId {
        &self.holding.client_id
    }
}

/// The holdings in use, each kept once; a sweep drops those no token refers to any more.
#[derive(Default)]
pub(super) struct Holdings {
    shared: DashMap<Arc<Holding>, ()>,
}

impl Holdings {
    pub(super) fn keep(&self, record: &AccessTokenRecord) -> KeptAccessToken {
        let holding = Holding {
            subject: record.subject.clone(),
            client_id: record.client_id.clone(),
            scope: record.scope.clone(),
            audience: record.audience.clone(),
        };
        let holding = match self.shared.get(&holding) {
            Some(existing) => existing.key().clone(),
            None => self.shared.entry(Arc::new(holding)).or_insert(()).key().clone(),
        };
        KeptAccessToken {
            holding,
            family: record.family.clone(),
            issued_at: record.issued_at,
            expires_at: record.expires_at,
            retained_until: record.retained_until,
        }
    }

    /// Drops the holdings only this map refers to; returns how many.
    pub(super) fn sweep(&self) -> usize {
        let before = self.shared.len();
        self.shared.retain(|holding, _| Arc::strong_count(holding) > 1);
        before.saturating_sub(self.shared.len())
    }

    pub(super) fn len(&self) -> usize {
        self.shared.len()
    }
}

/// A family's key in the family maps: 32 bytes in the map itself, not a 43-character string
/// beside it.
pub(super) fn family_key(family: &FamilyId) -> TokenDigest {
    TokenDigest::of(family.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holding_is_kept_once_and_dropped_with_its_last_token() {
        let record = AccessTokenRecord {
            subject: Subject::parse("alice").unwrap(),
            client_id: ClientId::from("c"),
            scope: Scope::parse("mcp files").unwrap(),
            audience: ResourceUri::parse("https://mcp.example/mcp").unwrap(),
            family: FamilyId::generate(),
            issued_at: Utc::now(),
            expires_at: Utc::now(),
            retained_until: Utc::now(),
        };
        let holdings = Holdings::default();
        let first = holdings.keep(&record);
        let second = holdings.keep(&AccessTokenRecord { family: FamilyId::generate(), ..record.clone() });
        assert!(Arc::ptr_eq(&first.holding, &second.holding), "one holding for both");
        assert_eq!(first.record(), record, "the record reads back whole");
        assert_eq!((holdings.len(), holdings.sweep()), (1, 0));
        drop(first);
        assert_eq!(holdings.sweep(), 0, "still held by the second token");
        drop(second);
        assert_eq!(holdings.sweep(), 1, "dropped with its last token");
    }
}
