//! The operator's view of the Redis records: the live-client index, and SCAN over the token
//! keys a page at a time (never KEYS, which would stop every other instance's requests).

use async_trait::async_trait;
use chrono::Utc;
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::client::Client;
use mcp_oauth_domain::identity::{ClientId, Subject};
use mcp_oauth_domain::inventory::{HeldGrant, Holder, Inventory, RecordCounts, grants_of};
use mcp_oauth_domain::ports::{AccessTokenRecord, FamilyId, RefreshGrant};

use super::{RedisStore, decode};

/// Keys asked for per SCAN page.
const PAGE: usize = 1000;

/// `text` matched literally in a SCAN pattern.
fn glob_literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl RedisStore {
    /// The SCAN pattern of every key under `{prefix}{kind}:`, or of every key of the prefix.
    pub fn pattern(&self, kind: Option<&str>) -> String {
        match kind {
            Some(kind) => format!("{}*", glob_literal(&self.key(kind, ""))),
            None => format!("{}*", glob_literal(&self.prefix)),
        }
    }

    /// One page of a SCAN: the next cursor (0 at the end) and the keys.
    pub async fn scan_page(&self, pattern: &str, cursor: u64) -> Result<(u64, Vec<String>), StorageError> {
        let pattern = pattern.to_owned();
        self.run(async move |c| {
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(PAGE).query_async(c).await
        })
        .await
    }

    /// (family, subject, client) of each access token among `keys` that `holder` holds.
    async fn held_access(&self, holder: &Holder, keys: Vec<String>) -> Result<Vec<(FamilyId, Subject, ClientId)>, StorageError> {
        let bodies: Vec<Option<String>> = self.run(async move |c| redis::cmd("MGET").arg(&keys).query_async(c).await).await?;
        let mut held = Vec::new();
        for body in bodies.into_iter().flatten() {
            let record: AccessTokenRecord = decode(&body)?;
            if holder.holds(&record.subject, &record.client_id) {
                held.push((record.family, record.subject, record.client_id));
            }
        }
        Ok(held)
    }

    /// (family, subject, client) of each refresh token among `keys` that `holder` holds.
    async fn held_refresh(&self, holder: &Holder, keys: Vec<String>) -> Result<Vec<(FamilyId, Subject, ClientId)>, StorageError> {
        let bodies: Vec<Option<String>> = self
            .run(async move |c| {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("HGET").arg(key).arg("grant");
                }
                pipe.query_async(c).await
            })
            .await?;
        let mut held = Vec::new();
        for body in bodies.into_iter().flatten() {
            let grant: RefreshGrant = decode(&body)?;
            if holder.holds(&grant.subject, &grant.client_id) {
                held.push((grant.family, grant.subject, grant.client_id));
            }
        }
        Ok(held)
    }
}

#[async_trait]
impl Inventory for RedisStore {
    async fn clients(&self) -> Result<Vec<Client>, StorageError> {
        let live = self.key("clients", "live");
        let now = Utc::now().timestamp_millis();
        let ids: Vec<String> = self
            .run(async move |c| redis::cmd("ZRANGEBYSCORE").arg(&live).arg(format!("({now}")).arg("+inf").query_async(c).await)
            .await?;
        let mut clients = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(PAGE) {
            let keys: Vec<String> = chunk.iter().map(|id| self.key("client", id)).collect();
            let bodies: Vec<Option<String>> = self.run(async move |c| redis::cmd("MGET").arg(&keys).query_async(c).await).await?;
            for body in bodies.into_iter().flatten() {
                clients.push(decode(&body)?);
            }
        }
        Ok(clients)
    }

    async fn delete_client(&self, client_id: &ClientId) -> Result<bool, StorageError> {
        let (record, live, id) =
            (self.key("client", client_id.as_str()), self.key("clients", "live"), client_id.as_str().to_owned());
        let (deleted, _): (i64, i64) = self
            .run(async move |c| {
                redis::pipe().atomic().cmd("DEL").arg(&record).cmd("ZREM").arg(&live).arg(&id).query_async(c).await
            })
            .await?;
        Ok(deleted > 0)
    }

    async fn grants(&self, holder: &Holder) -> Result<Vec<HeldGrant>, StorageError> {
        let mut held = Vec::new();
        for (kind, refresh) in [("installation", false), ("refresh", true)] {
            let pattern = self.pattern(Some(kind));
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan_page(&pattern, cursor).await?;
                if !keys.is_empty() {
                    let page =
                        if refresh { self.held_refresh(holder, keys).await? } else { self.held_access(holder, keys).await? };
                    held.extend(page);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(grants_of(holder, held.iter().map(|(family, subject, client_id)| (family, subject, client_id))))
    }

    async fn counts(&self) -> Result<RecordCounts, StorageError> {
        let mut counts = RecordCounts::default();
        let pattern = self.pattern(None);
        let mut cursor = 0;
        loop {
            let (next, keys) = self.scan_page(&pattern, cursor).await?;
            for key in keys {
                let kind = key.strip_prefix(&*self.prefix).and_then(|rest| rest.split_once(':')).map(|(kind, _)| kind);
                let count = match kind {
                    Some("client") => &mut counts.clients,
                    Some("pending") => &mut counts.pending_authorizations,
                    Some("exch") => &mut counts.authorization_codes,
                    Some("installation") => &mut counts.access_tokens,
                    Some("refresh") => &mut counts.refresh_tokens,
                    Some("revoked") => &mut counts.revoked_families,
                    Some("login_session") => &mut counts.login_sessions,
                    Some("login_attempt") => &mut counts.login_attempts,
                    Some("consent") => &mut counts.remembered_consents,
                    Some("upstream_grant") => &mut counts.upstream_grants,
                    Some("client_document") => &mut counts.client_documents,
                    // Indexes, family sets, MCP sessions, rate-limit windows.
                    _ => continue,
                };
                *count += 1;
            }
            if next == 0 {
                return Ok(counts);
            }
            cursor = next;
        }
    }

    /// Redis drops expired keys itself; what is left is the live-client index's ended entries.
    async fn purge_expired(&self) -> Result<u64, StorageError> {
        let live = self.key("clients", "live");
        let now = Utc::now().timestamp_millis();
        let removed: u64 =
            self.run(async move |c| redis::cmd("ZREMRANGEBYSCORE").arg(&live).arg("-inf").arg(now).query_async(c).await).await?;
        Ok(removed)
    }
}
