//! Rate-limit windows every instance shares: `ratelimit:{key}`, a counter that expires with
//! its window, counted by one script so that racing requests are all counted.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::rate_limit::{RateLimitStore, WindowCount};
use redis::Script;

use super::RedisStore;

/// KEYS: counter. ARGV: window ms. Returns the count and the window's remaining ms.
static HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local used = redis.call('INCR', KEYS[1])
        local left = redis.call('PTTL', KEYS[1])
        if left < 0 then
            redis.call('PEXPIRE', KEYS[1], ARGV[1])
            left = tonumber(ARGV[1])
        end
        return {used, left}
        "#,
    )
});

/// KEYS: counter. Returns the count and the window's remaining ms, or nil.
static PEEK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local used = redis.call('GET', KEYS[1])
        if not used then return nil end
        return {tonumber(used), redis.call('PTTL', KEYS[1])}
        "#,
    )
});

#[derive(Clone)]
pub struct RedisRateLimits {
    store: RedisStore,
}

impl RedisRateLimits {
    pub fn new(store: RedisStore) -> Self {
        Self { store }
    }
}

#[async_trait]
impl RateLimitStore for RedisRateLimits {
    async fn hit(&self, key: &str, window: Duration) -> Result<WindowCount, StorageError> {
        let key = self.store.key("ratelimit", key);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let (used, left): (u64, u64) = self.store.run(async move |c| HIT.key(key).arg(window_ms).invoke_async(c).await).await?;
        Ok(WindowCount { used: u32::try_from(used).unwrap_or(u32::MAX), resets_in: Duration::from_millis(left) })
    }

    async fn peek(&self, key: &str) -> Result<Option<WindowCount>, StorageError> {
        let key = self.store.key("ratelimit", key);
        let found: Option<(u64, i64)> = self.store.run(async move |c| PEEK.key(key).invoke_async(c).await).await?;
        Ok(found.filter(|(_, left)| *left > 0).map(|(used, left)| WindowCount {
            used: u32::try_from(used).unwrap_or(u32::MAX),
            resets_in: Duration::from_millis(left.unsigned_abs()),
        }))
    }
}
