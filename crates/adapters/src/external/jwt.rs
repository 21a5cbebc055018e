//! RFC 9068 JWT access tokens, verified with the provider's published keys (JWKS). Only
//! asymmetric algorithms are accepted, so a public key can never double as an HMAC secret.
//! An unknown `kid` refetches the key set, at most once per refresh interval.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_oauth_domain::validation::{Expectations, TokenRejection, TokenValidator, ValidatedToken, accept_claims};
use tokio::sync::{Mutex, RwLock};

use super::claims::WireClaims;

const ALLOWED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

#[derive(Default)]
struct KeySet {
    keys: HashMap<Option<String>, DecodingKey>,
    fetched_at: Option<Instant>,
}

pub struct JwtValidator {
    client: reqwest::Client,
    jwks_uri: String,
    expected: Expectations,
    accepted_types: Vec<String>,
    refresh_interval: Duration,
    keys: RwLock<KeySet>,
    refreshing: Mutex<()>,
}

impl JwtValidator {
    pub fn new(
        client: reqwest::Client,
        jwks_uri: String,
        expected: Expectations,
        accepted_types: Vec<String>,
        refresh_interval: Duration,
    ) -> Self {
        Self {
            client,
            jwks_uri,
            expected,
            accepted_types: accepted_types.into_iter().map(|t| t.to_ascii_lowercase()).collect(),
            refresh_interval,
            keys: RwLock::default(),
            refreshing: Mutex::new(()),
        }
    }

    async fn fetch(&self) -> Result<(), TokenRejection> {
        let unavailable = |e: String| TokenRejection::Unavailable(format!("JWKS at {}: {e}", self.jwks_uri));
        let response = self.client.get(&self.jwks_uri).send().await.map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        let set: JwkSet = response.json().await.map_err(|e| unavailable(e.to_string()))?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok().map(|key| (jwk.common.key_id.clone(), key)))
            .collect();
        *self.keys.write().await = KeySet { keys, fetched_at: Some(Instant::now()) };
        Ok(())
    }

    async fn lookup(&self, kid: &Option<String>) -> Option<DecodingKey> {
        let set = self.keys.read().await;
        match set.keys.get(kid) {
            Some(key) => Some(key.clone()),
            // Without a kid, a set of one key names it.
            None if kid.is_none() && set.keys.len() == 1 => set.keys.values().next().cloned(),
            None => None,
        }
    }

    /// The key for `kid`, refetching the set when it is unknown and the last fetch is older
    /// than the refresh interval; concurrent misses share one fetch.
    async fn key(&self, kid: &Option<String>) -> Result<DecodingKey, TokenRejection> {
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
        self.lookup(kid).await.ok_or(TokenRejection::Invalid("token is signed with an unknown key"))
    }
}

#[async_trait]
impl TokenValidator for JwtValidator {
    /// Ready once the key set has been fetched: from then on tokens verify without the
    /// authorization server.
    async fn readiness(&self) -> Result<(), String> {
        if self.keys.read().await.fetched_at.is_some() {
            return Ok(());
        }
        let _refreshing = self.refreshing.lock().await;
        if self.keys.read().await.fetched_at.is_some() {
            return Ok(());
        }
        self.fetch().await.map_err(|e| e.to_string())
    }

    async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenRejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Invalid("malformed JWT"))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(TokenRejection::Invalid("JWT algorithm not allowed"));
        }
        if let Some(typ) = &header.typ
            && !self.accepted_types.contains(&typ.to_ascii_lowercase())
        {
            return Err(TokenRejection::Invalid("JWT is not an access token (typ)"));
        }
        let key = self.key(&header.kid).await?;
        // jsonwebtoken checks the signature; every claim rule is the domain's.
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<WireClaims>(token, &key, &validation)
            .map_err(|_| TokenRejection::Invalid("JWT signature or encoding is invalid"))?;
        accept_claims(data.claims.into_claims(None), &self.expected, Utc::now())
    }
}
