//! Rate limits: how many requests one key (a client address) may make per window, counted in
//! fixed windows by a store every instance shares (or by this process alone).

use std::time::Duration;

use async_trait::async_trait;

use crate::StorageError;

/// `limit` requests per `window`: `300/5s`, `60/1m`, `100/15m`; `off` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub window: Duration,
}

impl Quota {
    /// `None` for `off`.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (limit, window) = raw.split_once('/').ok_or_else(|| format!("`{raw}` is not a quota like 300/5s, or off"))?;
        let limit: u32 = limit.trim().parse().map_err(|_| format!("`{raw}`: the limit must be a whole number"))?;
        let window = window.trim();
        let split = window.find(|c: char| !c.is_ascii_digit()).unwrap_or(window.len());
        let (amount, unit) = window.split_at(split);
        let amount: u64 = if amount.is_empty() { 1 } else { amount.parse().map_err(|_| format!("`{raw}`: bad window"))? };
        let seconds = match unit {
            "s" | "" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(format!("`{raw}`: the window's unit must be s, m or h")),
        };
        if limit == 0 || amount == 0 {
            return Err(format!("`{raw}`: limit and window must be positive (or say off)"));
        }
        Ok(Some(Self { limit, window: Duration::from_secs(amount * seconds) }))
    }

    /// The answer to a request that was the `count`th of its window.
    pub fn judge(&self, count: WindowCount) -> Verdict {
        let remaining = self.limit.saturating_sub(count.used);
        if count.used > self.limit {
            Verdict::Limited { retry_after: count.resets_in.max(Duration::from_secs(1)) }
        } else {
            Verdict::Allowed { remaining, resets_in: count.resets_in }
        }
    }
}

impl Quota {
    /// The `RateLimit` header's value (draft-ietf-httpapi-ratelimit-headers) for a window with
    /// `remaining` requests left that ends in `resets_in`.
    pub fn state(&self, remaining: u32, resets_in: Duration) -> String {
        let reset = resets_in.as_secs_f64().ceil() as u64;
        format!("limit={}, remaining={remaining}, reset={reset}", self.limit)
    }
}

/// The `RateLimit-Policy` header's value: `300;w=5`.
impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{};w={}", self.limit, self.window.as_secs())
    }
}

/// Requests counted in the current window, this one included, and when the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub used: u32,
    pub resets_in: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed { remaining: u32, resets_in: Duration },
    Limited { retry_after: Duration },
}

/// Counts requests per key in fixed windows; atomic, so that racing requests, on any instance
/// sharing the store, are all counted.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts one request for `key` in its current `window` (which starts with its first).
    async fn hit(&self, key: &str, window: Duration) -> Result<WindowCount, StorageError>;
    /// The count of `key`'s current window without adding to it; `None` if none is open.
    async fn peek(&self, key: &str) -> Result<Option<WindowCount>, StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_and_judge() {
        let quota = Quota::parse("300/5s").unwrap().unwrap();
        assert_eq!(quota, Quota { limit: 300, window: Duration::from_secs(5) });
        assert_eq!(Quota::parse("100/15m").unwrap().unwrap().window, Duration::from_secs(900));
        assert_eq!(Quota::parse("60/m").unwrap().unwrap().window, Duration::from_secs(60));
        assert_eq!(Quota::parse("off").unwrap(), None);
        for bad in ["300", "0/5s", "5/0s", "x/5s", "5/5d"] {
            assert!(Quota::parse(bad).is_err(), "{bad}");
        }
        let used = |used| WindowCount { used, resets_in: Duration::from_secs(3) };
        assert_eq!(quota.judge(used(300)), Verdict::Allowed { remaining: 0, resets_in: Duration::from_secs(3) });
        assert_eq!(quota.judge(used(301)), Verdict::Limited { retry_after: Duration::from_secs(3) });
        let ending = WindowCount { used: 400, resets_in: Duration::from_millis(10) };
        assert_eq!(quota.judge(ending), Verdict::Limited { retry_after: Duration::from_secs(1) }, "never Retry-After: 0");
    }
}
