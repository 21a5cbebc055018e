//! The Redis adapter, for several instances sharing one Redis. One multiplexed connection
//! (rmcp-style `ConnectionManager`: cheap to clone, reconnects by itself) serves every request.
//! Every key carries its port's lifetime as a native TTL; one-time operations are GETDEL or
//! Lua scripts, atomic in Redis itself.
//!
//! Key layout, under a configurable prefix (default `auth:`):
//! `client:{client_id}`, `pending:{digest}`, `exch:{digest}` (hash: grant, redemptions),
//! `installation:{digest}` (access tokens), `refresh:{digest}` (hash: grant, rotated),
//! `family:installation:{family}` and `family:refresh:{family}` (sets of digests), and
//! `revoked:{family}` (tombstones).

mod inventory;
mod login;
mod rate_limit;
pub use rate_limit::RedisRateLimits;
mod scripts;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::client::Client;
use mcp_oauth_domain::grace::SealedSuccessor;
use mcp_oauth_domain::identity::ClientId;
use mcp_oauth_domain::ports::{
    AccessTokenRecord, AccessTokenStore, Admission, AuthorizationCodeStore, AuthorizationGrant, ClientStore, Expiring, FamilyId,
    Issue, PendingAuthStore, PendingAuthorization, Redemption, RefreshGrant, RefreshRecord, RefreshState, RefreshStore,
    Registration, Rotation, StorageHealth, Successor,
};
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::service::Stores;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, IntoConnectionInfo};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How to reach Redis and lay out keys.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://…` or `rediss://…` (TLS).
    pub url: String,
    /// Used when the URL carries no password.
    pub password: Option<String>,
    pub prefix: String,
    /// Bound on every operation, reconnection included.
    pub timeout: Duration,
    /// PEM certificate(s) to trust for `rediss://`, besides the public roots: a private CA.
    pub ca_certificate: Option<Vec<u8>>,
}

/// Why Redis could not be used at start-up.
#[derive(Debug, thiserror::Error)]
#[error("cannot use Redis at {location}: {reason}")]
pub struct OpenError {
    pub location: String,
    pub reason: String,
}

#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
    round_trips: Arc<AtomicU64>,
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn encode<T: Serialize>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|e| StorageError::Corrupt(e.to_string()))
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::Corrupt(e.to_string()))
}

/// Shows the URL without its password.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

/// `rotated` field of a refresh hash: "{epoch ms}|{sealed successor}".
fn rotated_value(at: DateTime<Utc>, sealed: &SealedSuccessor) -> String {
    format!("{}|{}", at.timestamp_millis(), String::from(sealed.clone()))
}

fn parse_rotated(value: &str) -> Result<RefreshState, StorageError> {
    let corrupt = || StorageError::Corrupt("malformed rotation record".into());
    let (at, sealed) = value.split_once('|').ok_or_else(corrupt)?;
    let at = DateTime::from_timestamp_millis(at.parse().map_err(|_| corrupt())?).ok_or_else(corrupt)?;
    let successor = SealedSuccessor::try_from(sealed.to_owned()).map_err(|_| corrupt())?;
    Ok(RefreshState::Rotated { at, successor })
}

impl RedisStore {
    pub async fn open(options: RedisOptions) -> Result<Self, OpenError> {
        crate::install_tls_provider();
        let fail = |reason: String| OpenError { location: redacted(&options.url), reason };
        let mut info = options.url.as_str().into_connection_info().map_err(|e| fail(e.to_string()))?;
        if info.redis_settings().password().is_none()
            && let Some(password) = &options.password
        {
            let settings = info.redis_settings().clone().set_password(password.clone());
            info = info.set_redis_settings(settings);
        }
        let client = match &options.ca_certificate {
            Some(pem) => {
                let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) };
                redis::Client::build_with_tls(info, certificates)
            }
            None => redis::Client::open(info),
        }
        .map_err(|e| fail(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = tokio::time::timeout(options.timeout * 2, ConnectionManager::new_with_config(client.clone(), config))
            .await
            .map_err(|_| fail("timed out connecting".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let store =
            Self { client, connection, prefix: options.prefix.into(), timeout: options.timeout, round_trips: Arc::default() };
        store.ping().await.map_err(|e| fail(e.to_string()))?;
        Ok(store)
    }

    pub fn stores(&self) -> Stores {
        Stores::sharing(self.clone())
    }

    /// Round trips to Redis made through this store and its clones so far.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// The key `{prefix}{kind}:{id}`. Public so that the MCP session store shares this
    /// connection and prefix.
    pub fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs one operation on the shared connection within the storage timeout, mapping Redis
    /// errors to storage errors.
    pub async fn run<T: FromRedisValue + Send>(
        &self,
        operation: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, StorageError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.timeout, operation(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            // An answer of the wrong shape is a bug or foreign data, not an outage.
            Ok(Err(error)) if matches!(error.kind(), redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse) => {
                Err(StorageError::Corrupt(error.to_string()))
            }
            Ok(Err(error)) => Err(StorageError::Unavailable(error.to_string())),
            Err(_) => Err(StorageError::Unavailable(format!("no answer from Redis within {:?}", self.timeout))),
        }
    }

    async fn set(&self, key: String, value: String, lifetime: Duration) -> Result<(), StorageError> {
        self.run(async move |c| redis::cmd("SET").arg(&key).arg(value).arg("PX").arg(ms(lifetime)).query_async(c).await).await
    }

    async fn get_json<T: DeserializeOwned>(&self, key: String) -> Result<Option<T>, StorageError> {
        let text: Option<String> = self.run(async move |c| redis::cmd("GET").arg(&key).query_async(c).await).await?;
        text.as_deref().map(decode).transpose()
    }

    async fn admit(
        &self,
        kind: &str,
        token: &TokenDigest,
        family: &FamilyId,
        value: String,
        mode: &str,
        lifetime: Duration,
    ) -> Result<Admission, StorageError> {
        let (record, set, tombstone) = (
            self.key(kind, &token.to_hex()),
            self.key(&format!("family:{kind}"), family.as_str()),
            self.key("revoked", family.as_str()),
        );
        let stored: i64 = self
            .run(async move |c| {
                scripts::ADMIT
                    .key(record)
                    .key(set)
                    .key(tombstone)
                    .arg(value)
                    .arg(ms(lifetime))
                    .arg(token.to_hex())
                    .arg(mode)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(if stored == 1 { Admission::Stored } else { Admission::FamilyRevoked })
    }

    async fn revoke(&self, kind: &str, family: &FamilyId, until: DateTime<Utc>) -> Result<(), StorageError> {
        let lifetime = (until - Utc::now()).to_std().unwrap_or_default();
        let (set, tombstone, member_prefix) =
            (self.key(&format!("family:{kind}"), family.as_str()), self.key("revoked", family.as_str()), self.key(kind, ""));
        let _: i64 = self
            .run(async move |c| {
                scripts::REVOKE.key(set).key(tombstone).arg(ms(lifetime)).arg(member_prefix).invoke_async(c).await
            })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl StorageHealth for RedisStore {
    async fn ping(&self) -> Result<(), StorageError> {
        let _: String = self.run(async |c| redis::cmd("PING").query_async(c).await).await?;
        Ok(())
    }
}

#[async_trait]
impl ClientStore for RedisStore {
    async fn insert(&self, client: &Client, max_live: u32) -> Result<Registration, StorageError> {
        let now = Utc::now();
        let (record, live) = (self.key("client", client.client_id.as_str()), self.key("clients", "live"));
        let (value, lifetime) = (encode(client)?, ms(client.remaining(now)));
        let (id, until) = (client.client_id.as_str().to_owned(), client.kept_until().timestamp_millis());
        let stored: i64 = self
            .run(async move |c| {
                scripts::REGISTER
                    .key(record)
                    .key(live)
                    .arg(value)
                    .arg(lifetime)
                    .arg(id)
                    .arg(until)
                    .arg(now.timestamp_millis())
                    .arg(max_live)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(if stored == 1 { Registration::Stored } else { Registration::Full })
    }

    async fn get(&self, client_id: &ClientId) -> Result<Option<Client>, StorageError> {
        self.get_json(self.key("client", client_id.as_str())).await
    }

    async fn prolong(&self, client: &Client) -> Result<(), StorageError> {
        let (record, live) = (self.key("client", client.client_id.as_str()), self.key("clients", "live"));
        let (value, lifetime) = (encode(client)?, ms(client.remaining(Utc::now())));
        let (id, until) = (client.client_id.as_str().to_owned(), client.kept_until().timestamp_millis());
        let _: i64 = self
            .run(async move |c| {
                scripts::PROLONG.key(record).key(live).arg(value).arg(lifetime).arg(id).arg(until).invoke_async(c).await
            })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl PendingAuthStore for RedisStore {
    async fn insert(&self, request: &TokenDigest, pending: &PendingAuthorization) -> Result<(), StorageError> {
        self.set(self.key("pending", &request.to_hex()), encode(pending)?, pending.remaining(Utc::now())).await
    }

    async fn get(&self, request: &TokenDigest) -> Result<Option<PendingAuthorization>, StorageError> {
        self.get_json(self.key("pending", &request.to_hex())).await
    }

    async fn take(&self, request: &TokenDigest) -> Result<Option<PendingAuthorization>, StorageError> {
        let key = self.key("pending", &request.to_hex());
        let text: Option<String> = self.run(async move |c| redis::cmd("GETDEL").arg(&key).query_async(c).await).await?;
        text.as_deref().map(decode).transpose()
    }
}

#[async_trait]
impl AuthorizationCodeStore for RedisStore {
    async fn insert(&self, code: &TokenDigest, grant: &AuthorizationGrant) -> Result<(), StorageError> {
        let (key, grant, lifetime) = (self.key("exch", &code.to_hex()), encode(grant)?, ms(grant.remaining(Utc::now())));
        self.run(async move |c| {
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&key)
                .arg("grant")
                .arg(grant)
                .arg("redemptions")
                .arg(0)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(lifetime)
                .ignore()
                .query_async(c)
                .await
        })
        .await
    }

    async fn redeem(&self, code: &TokenDigest) -> Result<Redemption, StorageError> {
        let key = self.key("exch", &code.to_hex());
        let answer: Option<(i64, String, String)> =
            self.run(async move |c| scripts::REDEEM.key(key).invoke_async(c).await).await?;
        Ok(match answer {
            None => Redemption::Unknown,
            Some((1, grant, _)) => Redemption::Redeemed(decode(&grant)?),
            Some((_, grant, issued)) => Redemption::Replayed { grant: decode(&grant)?, issued: issued == "1" },
        })
    }

    /// One round trip: the tokens, their families and the code's mark in one script. (HSET on
    /// a code that expired in between would recreate it without a TTL; the script marks only
    /// an existing code.)
    async fn issue(&self, code: &TokenDigest, tokens: Issue<'_>) -> Result<Admission, StorageError> {
        let now = Utc::now();
        let family = tokens.access.family.as_str();
        let refresh_digest = tokens.refresh.map(|(token, _)| token.to_hex()).unwrap_or_default();
        let keys = [
            self.key("exch", &code.to_hex()),
            self.key("revoked", family),
            self.key("installation", &tokens.access_token.to_hex()),
            self.key("family:installation", family),
            self.key("refresh", &refresh_digest),
            self.key("family:refresh", family),
        ];
        let (refresh, refresh_ttl) = match tokens.refresh {
            Some((_, grant)) => (encode(grant)?, ms(grant.remaining(now))),
            None => (String::new(), 1),
        };
        let access = (encode(tokens.access)?, ms(tokens.access.remaining(now)), tokens.access_token.to_hex());
        let stored: i64 = self
            .run(async move |c| {
                let mut invocation = scripts::ISSUE.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation.arg(access.0).arg(access.1).arg(access.2).arg(refresh).arg(refresh_ttl).arg(refresh_digest);
                invocation.invoke_async(c).await
            })
            .await?;
        Ok(if stored == 1 { Admission::Stored } else { Admission::FamilyRevoked })
    }
}

#[async_trait]
impl AccessTokenStore for RedisStore {
    async fn insert(&self, token: &TokenDigest, record: &AccessTokenRecord) -> Result<Admission, StorageError> {
        self.admit("installation", token, &record.family, encode(record)?, "string", record.remaining(Utc::now())).await
    }

    /// One round trip: token validation is a single GET.
    async fn get(&self, token: &TokenDigest) -> Result<Option<AccessTokenRecord>, StorageError> {
        self.get_json(self.key("installation", &token.to_hex())).await
    }

    async fn remove(&self, token: &TokenDigest) -> Result<(), StorageError> {
        let key = self.key("installation", &token.to_hex());
        self.run(async move |c| redis::cmd("DEL").arg(&key).query_async(c).await).await
    }

    async fn revoke_family(&self, family: &FamilyId, until: DateTime<Utc>) -> Result<(), StorageError> {
        self.revoke("installation", family, until).await
    }
}

#[async_trait]
impl RefreshStore for RedisStore {
    async fn insert(&self, token: &TokenDigest, grant: &RefreshGrant) -> Result<Admission, StorageError> {
        self.admit("refresh", token, &grant.family, encode(grant)?, "hash", grant.remaining(Utc::now())).await
    }

    async fn get(&self, token: &TokenDigest) -> Result<Option<RefreshRecord>, StorageError> {
        let key = self.key("refresh", &token.to_hex());
        let (grant, rotated): (Option<String>, Option<String>) =
            self.run(async move |c| redis::cmd("HMGET").arg(&key).arg("grant").arg("rotated").query_async(c).await).await?;
        let Some(grant) = grant else { return Ok(None) };
        let state = match rotated {
            None => RefreshState::Active,
            Some(value) => parse_rotated(&value)?,
        };
        Ok(Some(RefreshRecord { grant: decode(&grant)?, state }))
    }

    async fn rotate(
        &self,
        token: &TokenDigest,
        at: DateTime<Utc>,
        sealed: &SealedSuccessor,
        successor: Successor<'_>,
    ) -> Result<Rotation, StorageError> {
        let family = &successor.grant.family.as_str();
        let keys = [
            self.key("refresh", &token.to_hex()),
            self.key("refresh", &successor.token.to_hex()),
            self.key("family:refresh", family),
            self.key("revoked", family),
            self.key("installation", &successor.access_token.to_hex()),
            self.key("family:installation", family),
        ];
        let now = Utc::now();
        let args = (
            rotated_value(at, sealed),
            encode(successor.grant)?,
            ms(successor.grant.remaining(now)),
            successor.token.to_hex(),
            encode(successor.access)?,
            ms(successor.access.remaining(now)),
            successor.access_token.to_hex(),
        );
        let answer: (i64, String) = self
            .run(async move |c| {
                let mut invocation = scripts::ROTATE.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                let (rotated, grant, lifetime, member, access, access_lifetime, access_member) = args;
                invocation.arg(rotated).arg(grant).arg(lifetime).arg(member).arg(access).arg(access_lifetime).arg(access_member);
                invocation.invoke_async(c).await
            })
            .await?;
        match answer {
            (1, _) => Ok(Rotation::Rotated),
            (2, value) => match parse_rotated(&value)? {
                RefreshState::Rotated { at, successor } => Ok(Rotation::AlreadyRotated { at, successor }),
                RefreshState::Active => Ok(Rotation::Unknown),
            },
            _ => Ok(Rotation::Unknown),
        }
    }

    async fn revoke_family(&self, family: &FamilyId, until: DateTime<Utc>) -> Result<(), StorageError> {
        self.revoke("refresh", family, until).await
    }
}
