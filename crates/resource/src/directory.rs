//! The operator's view of MCP sessions (the admin API): who holds which, and ending them all for
//! a user or a client whose grants were revoked. An ended session is unknown to every instance
//! sharing the store: its next request gets 404, as after an idle timeout.

use chrono::{DateTime, Utc};
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::identity::{ClientId, Subject};
use mcp_oauth_domain::inventory::Holder;
use serde::Serialize;

use crate::owner::owner_parts;
use crate::ports::McpSessionStore;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnedSession {
    pub id: String,
    pub client_id: String,
    pub subject: String,
    pub last_used: DateTime<Utc>,
}

impl OwnedSession {
    fn held_by(&self, holder: &Holder) -> bool {
        Subject::parse(&self.subject).is_ok_and(|subject| holder.holds(&subject, &ClientId::from(self.client_id.clone())))
    }
}

/// The live sessions, most recently used first; only `holder`'s when given.
pub async fn sessions(store: &dyn McpSessionStore, holder: Option<&Holder>) -> Result<Vec<OwnedSession>, StorageError> {
    let mut owned: Vec<OwnedSession> = store
        .list()
        .await?
        .into_iter()
        .filter_map(|entry| {
            let (client_id, subject) = owner_parts(&entry.owner)?;
            Some(OwnedSession { id: entry.id, client_id, subject, last_used: entry.last_used })
        })
        .filter(|session| holder.is_none_or(|holder| session.held_by(holder)))
        .collect();
    owned.sort_by_key(|session| std::cmp::Reverse(session.last_used));
    Ok(owned)
}

/// Ends every session `holder` has; returns how many.
pub async fn end_sessions(store: &dyn McpSessionStore, holder: &Holder) -> Result<usize, StorageError> {
    let owned = sessions(store, Some(holder)).await?;
    for session in &owned {
        store.end(&session.id).await?;
    }
    Ok(owned.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryMcpSessions;

    #[tokio::test]
    async fn sessions_are_listed_and_ended_by_their_user_or_client() {
        let store = MemoryMcpSessions::new(std::time::Duration::from_secs(60));
        let owner = |client: &str, subject: &str| serde_json::json!([client, subject]).to_string();
        for (id, client, subject) in [("s1", "c1", "alice"), ("s2", "c2", "alice"), ("s3", "c1", "bob")] {
            store.claim(id, &owner(client, subject), 10).await.unwrap();
        }
        let alice = Holder::User(Subject::parse("alice").unwrap());
        let listed = sessions(&store, Some(&alice)).await.unwrap();
        assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<std::collections::BTreeSet<_>>(), ["s1", "s2"].into());
        assert_eq!(sessions(&store, None).await.unwrap().len(), 3);
        assert_eq!(end_sessions(&store, &Holder::Client(ClientId::from("c1"))).await.unwrap(), 2);
        let left = sessions(&store, None).await.unwrap();
        assert_eq!(left.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s2"]);
        assert!(!store.touch("s1", &owner("c1", "alice")).await.unwrap(), "an ended session is unknown");
    }
}
