//! Rate-limit windows of a single process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::rate_limit::{RateLimitStore, WindowCount};

/// Windows by key; ended ones are dropped as new ones start, so a quiet key costs nothing.
#[derive(Default)]
pub struct MemoryRateLimits {
    windows: DashMap<String, (Instant, u32)>,
}

impl MemoryRateLimits {
    /// Drops ended windows.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.windows.retain(|_, (ends, _)| *ends > now);
    }

    /// Sweeps every `period` until the windows are dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        super::sweep_while_alive(Arc::downgrade(self), period, Self::sweep)
    }
}

#[async_trait]
impl RateLimitStore for MemoryRateLimits {
    async fn hit(&self, key: &str, window: Duration) -> Result<WindowCount, StorageError> {
        let now = Instant::now();
        let mut entry = self.windows.entry(key.to_owned()).or_insert((now + window, 0));
        if entry.0 <= now {
            *entry = (now + window, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        Ok(WindowCount { used: entry.1, resets_in: entry.0 - now })
    }

    async fn peek(&self, key: &str) -> Result<Option<WindowCount>, StorageError> {
        let now = Instant::now();
        Ok(self.windows.get(key).filter(|e| e.0 > now).map(|e| WindowCount { used: e.1, resets_in: e.0 - now }))
    }
}
