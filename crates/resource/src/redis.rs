//! MCP sessions shared by every instance: `mcp:session:{id}` (hash: owner, owner index, state,
//! level) and `mcp:subs:{id}` (set of subscribed URIs), both with the idle timeout as TTL,
//! renewed by the owner's every use; `mcp:owner:{digest of owner}`, the owner's sessions
//! scored by their last use, which the per-owner cap counts; and a bus on the pub/sub channel
//! `mcp:bus`.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use mcp_oauth_adapters::redis::RedisStore;
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::secret::TokenDigest;

use crate::ports::{Claim, McpSessionStore, Payloads, SessionBus, SessionEntry};
use redis::Script;
use tokio::sync::broadcast;

/// Milliseconds for a Redis TTL, at least one.
fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Renews the session if `subject` owns it, and its place in its owner's index (named in the
/// hash). KEYS: session hash, subscriptions. ARGV: subject, ttl, now ms, session id.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        local index = redis.call('HGET', KEYS[1], 'index')
        if index then
          redis.call('ZADD', index, 'XX', ARGV[3], ARGV[4])
          redis.call('PEXPIRE', index, ARGV[2])
        end
        return 1
        "#,
    )
});

/// Claims a new session for its owner unless the owner has `max` sessions used within the idle
/// timeout; 1 claimed, 0 full. KEYS: session hash, owner index. ARGV: owner, ttl, now ms,
/// session id, max.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[2]))
        if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 0 end
        redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'index', KEYS[2])
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        return 1
        "#,
    )
});

/// Ends a session and takes it out of its owner's index. KEYS: session hash, subscriptions.
/// ARGV: session id.
static END: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local index = redis.call('HGET', KEYS[1], 'index')
        redis.call('DEL', KEYS[1], KEYS[2])
        if index then redis.call('ZREM', index, ARGV[1]) end
        return 1
        "#,
    )
});

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default()
}

pub struct RedisMcpSessions {
    store: RedisStore,
    idle_timeout: Duration,
}

impl RedisMcpSessions {
    pub fn new(store: RedisStore, idle_timeout: Duration) -> Self {
        Self { store, idle_timeout }
    }

    fn keys(&self, session: &str) -> (String, String) {
        (self.store.key("mcp:session", session), self.store.key("mcp:subs", session))
    }

    async fn set_field(&self, session: &str, field: &'static str, value: &str) -> Result<(), StorageError> {
        let (key, value, ttl) = (self.keys(session).0, value.to_owned(), ms(self.idle_timeout));
        self.store
            .run(async move |c| {
                redis::pipe().atomic().hset(&key, field, value).ignore().pexpire(&key, ttl as i64).ignore().query_async(c).await
            })
            .await
    }

    async fn get_field(&self, session: &str, field: &'static str) -> Result<Option<String>, StorageError> {
        let key = self.keys(session).0;
        self.store.run(async move |c| redis::cmd("HGET").arg(&key).arg(field).query_async(c).await).await
    }
}

#[async_trait]
impl McpSessionStore for RedisMcpSessions {
    async fn claim(&self, session: &str, subject: &str, max: u32) -> Result<Claim, StorageError> {
        let (hash, index) = (self.keys(session).0, self.store.key("mcp:owner", &TokenDigest::of(subject).to_hex()));
        let (owner, id, ttl) = (subject.to_owned(), session.to_owned(), ms(self.idle_timeout));
        let claimed: i64 = self
            .store
            .run(async move |c| {
                CLAIM.key(hash).key(index).arg(owner).arg(ttl).arg(now_ms()).arg(id).arg(max).invoke_async(c).await
            })
            .await?;
        Ok(if claimed == 1 { Claim::Claimed } else { Claim::Full })
    }

    async fn touch(&self, session: &str, subject: &str) -> Result<bool, StorageError> {
        let ((hash, subs), subject, ttl) = (self.keys(session), subject.to_owned(), ms(self.idle_timeout));
        let id = session.to_owned();
        let owned: i64 = self
            .store
            .run(async move |c| TOUCH.key(hash).key(subs).arg(subject).arg(ttl).arg(now_ms()).arg(id).invoke_async(c).await)
            .await?;
        Ok(owned == 1)
    }

    async fn end(&self, session: &str) -> Result<(), StorageError> {
        let ((hash, subs), id) = (self.keys(session), session.to_owned());
        let _: i64 = self.store.run(async move |c| END.key(hash).key(subs).arg(id).invoke_async(c).await).await?;
        Ok(())
    }

    async fn save_state(&self, session: &str, state: &str) -> Result<(), StorageError> {
        self.set_field(session, "state", state).await
    }

    async fn load_state(&self, session: &str) -> Result<Option<String>, StorageError> {
        self.get_field(session, "state").await
    }

    async fn set_log_level(&self, session: &str, level: &str) -> Result<(), StorageError> {
        self.set_field(session, "level", level).await
    }

    async fn log_level(&self, session: &str) -> Result<Option<String>, StorageError> {
        self.get_field(session, "level").await
    }

    async fn set_subscribed(&self, session: &str, uri: &str, subscribed: bool) -> Result<(), StorageError> {
        let (key, uri, ttl) = (self.keys(session).1, uri.to_owned(), ms(self.idle_timeout) as i64);
        self.store
            .run(async move |c| {
                let mut pipe = redis::pipe();
                pipe.atomic();
                if subscribed {
                    pipe.sadd(&key, uri).ignore();
                } else {
                    pipe.srem(&key, uri).ignore();
                }
                pipe.pexpire(&key, ttl).ignore().query_async(c).await
            })
            .await
    }

    async fn is_subscribed(&self, session: &str, uri: &str) -> Result<bool, StorageError> {
        let (key, uri) = (self.keys(session).1, uri.to_owned());
        self.store.run(async move |c| redis::cmd("SISMEMBER").arg(&key).arg(uri).query_async(c).await).await
    }

    async fn list(&self) -> Result<Vec<SessionEntry>, StorageError> {
        let prefix = self.store.key("mcp:session", "");
        let idle = chrono::Duration::from_std(self.idle_timeout).unwrap_or_default();
        let mut sessions = Vec::new();
        let mut scan = self.store.scan(Some("mcp:session"));
        while let Some(keys) = scan.next_page().await? {
            let now = chrono::Utc::now();
            let asked = keys.clone();
            let answers: Vec<(Option<String>, i64)> = self
                .store
                .run(async move |c| {
                    let mut pipe = redis::pipe();
                    for key in &asked {
                        pipe.cmd("HGET").arg(key).arg("owner").cmd("PTTL").arg(key);
                    }
                    pipe.query_async(c).await
                })
                .await?;
            for (key, (owner, left)) in keys.iter().zip(answers) {
                let (Some(owner), Some(id)) = (owner, key.strip_prefix(&prefix)) else { continue };
                if left > 0 {
                    let last_used = now - (idle - chrono::Duration::milliseconds(left));
                    sessions.push(SessionEntry { id: id.to_owned(), owner, last_used });
                }
            }
        }
        Ok(sessions)
    }
}

/// The bus on Redis pub/sub. Subscribing needs a connection of its own, which a background
/// task keeps open, reconnecting after outages.
pub struct RedisBus {
    store: RedisStore,
    channel: String,
    received: broadcast::Sender<String>,
}

impl RedisBus {
    pub fn start(store: RedisStore) -> Self {
        let channel = store.key("mcp", "bus");
        let (received, _) = broadcast::channel(1024);
        let (client, listen_on, forward) = (store.client().clone(), channel.clone(), received.clone());
        tokio::spawn(async move {
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&listen_on).await {
                        Ok(()) => {
                            let mut messages = pubsub.on_message();
                            while let Some(message) = messages.next().await {
                                if let Ok(payload) = message.get_payload::<String>() {
                                    let _ = forward.send(payload);
                                }
                            }
                            tracing::warn!("session bus subscription lost; reconnecting");
                        }
                        Err(error) => tracing::warn!(%error, "session bus cannot subscribe"),
                    },
                    Err(error) => tracing::warn!(%error, "session bus cannot connect"),
                }
                if forward.receiver_count() == 0 && forward.strong_count() == 1 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Self { store, channel, received }
    }
}

#[async_trait]
impl SessionBus for RedisBus {
    async fn publish(&self, payload: String) -> Result<(), StorageError> {
        let channel = self.channel.clone();
        let _: i64 = self.store.run(async move |c| redis::cmd("PUBLISH").arg(&channel).arg(payload).query_async(c).await).await?;
        Ok(())
    }

    fn listen(&self) -> Payloads {
        crate::memory::payloads(self.received.subscribe())
    }
}

/// Stores the proposal unless a key is there, and answers the key. KEYS: key. ARGV: value, ttl.
static KEY_FOR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local stored = redis.call('GET', KEYS[1])
        if stored then return stored end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        return ARGV[1]
        "#,
    )
});

/// Identity-signing keys every instance shares: `mcp:signing_key:{period}`, sealed.
pub struct RedisSigningKeys {
    store: RedisStore,
}

impl RedisSigningKeys {
    pub fn new(store: RedisStore) -> Self {
        Self { store }
    }
}

#[async_trait]
impl crate::ports::SigningKeyStore for RedisSigningKeys {
    async fn key_for(&self, period: u64, proposal: &str, keep: Duration) -> Result<String, StorageError> {
        let (key, proposal) = (self.store.key("mcp:signing_key", &period.to_string()), proposal.to_owned());
        self.store.run(async move |c| KEY_FOR.key(key).arg(proposal).arg(ms(keep)).invoke_async(c).await).await
    }

    async fn existing(&self, period: u64) -> Result<Option<String>, StorageError> {
        let key = self.store.key("mcp:signing_key", &period.to_string());
        self.store.run(async move |c| redis::cmd("GET").arg(&key).query_async(c).await).await
    }
}
