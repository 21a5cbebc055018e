//! A provider's published signing keys (JWKS), fetched on first use. An unknown `kid`
//! refetches the set, at most once per refresh interval, and concurrent misses share one fetch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::{Mutex, RwLock};

#[derive(Default)]
struct KeySet {
    keys: HashMap<Option<String>, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    Unavailable(String),
    UnknownKey,
}

pub struct JwksCache {
    client: reqwest::Client,
    uri: String,
    refresh_interval: Duration,
    keys: RwLock<KeySet>,
    refreshing: Mutex<()>,
}

impl JwksCache {
    pub fn new(client: reqwest::Client, uri: String, refresh_interval: Duration) -> Self {
        Self { client, uri, refresh_interval, keys: RwLock::default(), refreshing: Mutex::new(()) }
    }

    async fn fetch(&self) -> Result<(), JwksError> {
        let unavailable = |e: String| JwksError::Unavailable(format!("JWKS at {}: {e}", self.uri));
        let response =
            crate::outbound::send("jwks", "keys", self.client.get(&self.uri)).await.map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        let set: JwkSet = response.json().await.map_err(|e| unavailable(e.to_string()))?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok().map(|key| (jwk.common.key_id.clone(), Arc::new(key))))
            .collect();
        *self.keys.write().await = KeySet { keys, fetched_at: Some(Instant::now()) };
        Ok(())
    }

    async fn lookup(&self, kid: &Option<String>) -> Option<Arc<DecodingKey>> {
        let set = self.keys.read().await;
        match set.keys.get(kid) {
            Some(key) => Some(key.clone()),
            // Without a kid, a set of one key names it.
            None if kid.is_none() && set.keys.len() == 1 => set.keys.values().next().cloned(),
            None => None,
        }
    }

    /// The key named `kid`. A refetched set holds new keys, so `Arc::ptr_eq` tells whether a key
    /// is still the one the set holds.
    pub async fn key(&self, kid: &Option<String>) -> Result<Arc<DecodingKey>, JwksError> {
        if let Some(key) = self.lookup(kid).await {
            return Ok(key);
        }
        let _one_fetch = self.refreshing.lock().await;
        if let Some(key) = self.lookup(kid).await {
            return Ok(key);
        }
        let stale = self.keys.read().await.fetched_at.is_none_or(|at| at.elapsed() >= self.refresh_interval);
        if stale {
            self.fetch().await?;
        }
        self.lookup(kid).await.ok_or(JwksError::UnknownKey)
    }

    /// Ready once the set has been fetched.
    pub async fn ready(&self) -> Result<(), String> {
        if self.keys.read().await.fetched_at.is_some() {
            return Ok(());
        }
        let _refreshing = self.refreshing.lock().await;
        if self.keys.read().await.fetched_at.is_some() {
            return Ok(());
        }
        self.fetch().await.map_err(|e| match e {
            JwksError::Unavailable(detail) => detail,
            JwksError::UnknownKey => "no usable key".into(),
        })
    }
}
