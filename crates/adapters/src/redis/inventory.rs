//! The operator's view of the Redis records: the live-client index, and SCAN over the token
//! keys a page at a time (never KEYS, which would stop every other instance's requests).

use async_trait::async_trait;
use chrono::Utc;
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::client::Client;
use mcp_oauth_domain::identity::{ClientId, Subject};
use mcp_oauth_domain::inventory::{HeldGrant, Holder, Inventory, RecordCounts, grants_of};
use mcp_oauth_domain::ports::{AccessTokenRecord, FamilyId, RefreshGrant};

use serde::de::DeserializeOwned;

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

/// A SCAN over the keys of one kind (or of the whole prefix), a page at a time.
pub struct Scan<'a> {
    store: &'a RedisStore,
    pattern: String,
    /// Where the next page starts; `None` once the scan is through.
    cursor: Option<u64>,
}

impl Scan<'_> {
    /// The next page of keys, never empty; `None` once every key was seen.
    pub async fn next_page(&mut self) -> Result<Option<Vec<String>>, StorageError> {
        while let Some(cursor) = self.cursor {
            let pattern = self.pattern.clone();
            let (next, keys): (u64, Vec<String>) = self
                .store
                .run(async move |c| {
                    redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(PAGE).query_async(c).await
                })
                .await?;
            self.cursor = (next != 0).then_some(next);
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
        }
        Ok(None)
    }
}

impl RedisStore {
    /// Scans the keys under `{prefix}{kind}:`, or every key of the prefix.
    pub fn scan(&self, kind: Option<&str>) -> Scan<'_> {
        let pattern = match kind {
            Some(kind) => format!("{}*", glob_literal(&self.key(kind, ""))),
            None => format!("{}*", glob_literal(&self.prefix)),
        };
        Scan { store: self, pattern, cursor: Some(0) }
    }
}

/// (family, subject, client) of each of `bodies` (a `T` in JSON each) that `holder` holds.
fn held_in<T: DeserializeOwned>(
    holder: &Holder,
    bodies: Vec<Option<String>>,
    parts: fn(T) -> (FamilyId, Subject, ClientId),
) -> Result<Vec<(FamilyId, Subject, ClientId)>, StorageError> {
    let mut held = Vec::new();
    for body in bodies.into_iter().flatten() {
        let (family, subject, client_id) = parts(decode(&body)?);
        if holder.holds(&subject, &client_id) {
            held.push((family, subject, client_id));
        }
    }
    Ok(held)
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
        let mut access_tokens = self.scan(Some("installation"));
        while let Some(keys) = access_tokens.next_page().await? {
            let bodies = self.run(async move |c| redis::cmd("MGET").arg(&keys).query_async(c).await).await?;
            held.extend(held_in(holder, bodies, |token: AccessTokenRecord| (token.family, token.subject, token.client_id))?);
        }
        let mut refresh_tokens = self.scan(Some("refresh"));
        while let Some(keys) = refresh_tokens.next_page().await? {
            let bodies = self
                .run(async move |c| {
                    let mut pipe = redis::pipe();
                    for key in &keys {
                        pipe.cmd("HGET").arg(key).arg("grant");
                    }
                    pipe.query_async(c).await
                })
                .await?;
            held.extend(held_in(holder, bodies, |grant: RefreshGrant| (grant.family, grant.subject, grant.client_id))?);
        }
        Ok(grants_of(holder, held.iter().map(|(family, subject, client_id)| (family, subject, client_id))))
    }

    async fn counts(&self) -> Result<RecordCounts, StorageError> {
        let mut counts = RecordCounts::default();
        let mut keys = self.scan(None);
        while let Some(page) = keys.next_page().await? {
            for key in page {
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
        }
        Ok(counts)
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
