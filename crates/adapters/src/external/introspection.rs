//! RFC 7662 introspection with a cache. Positive answers are kept for at most the smaller of
//! the token's remaining lifetime and the configured TTL, which bounds how long a revocation
//! takes to be seen; negative answers for a second; failures not at all. Concurrent lookups of
//! one token make one call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::validation::{Expectations, TokenClaims, TokenRejection, TokenValidator, ValidatedToken, accept_claims};
use moka::Expiry;
use moka::future::Cache;
use serde::Deserialize;
use serde_json::Value;

const NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// How the resource server authenticates to the introspection endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Debug, Deserialize)]
struct Answer {
    active: bool,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    aud: Option<Value>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
}

/// `aud` is a string or an array of strings (RFC 7662 section 2.2, RFC 7519 section 4.1.3).
pub(super) fn audiences(aud: Option<Value>) -> Vec<String> {
    match aud {
        Some(Value::String(one)) => vec![one],
        Some(Value::Array(many)) => many.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => vec![],
    }
}

type Decision = Result<ValidatedToken, &'static str>;

#[derive(Clone)]
struct Cached {
    decision: Decision,
    keep: Duration,
}

struct KeepFor;

impl Expiry<TokenDigest, Cached> for KeepFor {
    fn expire_after_create(&self, _key: &TokenDigest, value: &Cached, _created_at: Instant) -> Option<Duration> {
        Some(value.keep)
    }
}

pub struct IntrospectionValidator {
    client: reqwest::Client,
    endpoint: String,
    client_id: String,
    client_secret: String,
    auth: IntrospectionAuth,
    expected: Expectations,
    cache_ttl: Duration,
    cache: Cache<TokenDigest, Cached>,
}

impl IntrospectionValidator {
    pub fn new(
        client: reqwest::Client,
        endpoint: String,
        (client_id, client_secret): (String, String),
        auth: IntrospectionAuth,
        expected: Expectations,
        cache_ttl: Duration,
    ) -> Self {
        let cache = Cache::builder().max_capacity(100_000).expire_after(KeepFor).build();
        Self { client, endpoint, client_id, client_secret, auth, expected, cache_ttl, cache }
    }

    async fn ask(&self, token: &str) -> Result<Cached, TokenRejection> {
        let mut form = vec![("token", token), ("token_type_hint", "access_token")];
        let mut request = self.client.post(&self.endpoint).header("accept", "application/json");
        match self.auth {
            IntrospectionAuth::ClientSecretBasic => {
                let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                request = request.basic_auth(encode(&self.client_id), Some(encode(&self.client_secret)));
            }
            IntrospectionAuth::ClientSecretPost => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", &self.client_secret));
            }
        }
        let unavailable = |e: String| TokenRejection::Unavailable(format!("introspection at {}: {e}", self.endpoint));
        let response = request.form(&form).send().await.map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            // Our credential refused or the server failing says nothing about the token.
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        let answer: Answer = response.json().await.map_err(|e| unavailable(e.to_string()))?;
        let claims = TokenClaims {
            active: answer.active,
            subject: answer.sub,
            client_id: answer.client_id,
            scope: answer.scope,
            audience: audiences(answer.aud),
            issuer: answer.iss.or_else(|| Some(self.expected.issuer.clone())),
            expires_at: answer.exp,
            issued_at: answer.iat,
            not_before: answer.nbf,
        };
        Ok(match accept_claims(claims, &self.expected, Utc::now()) {
            Ok(token) => {
                let remaining = (token.expires_at - Utc::now()).to_std().unwrap_or_default();
                Cached { keep: remaining.min(self.cache_ttl), decision: Ok(token) }
            }
            Err(TokenRejection::Invalid(reason)) => Cached { decision: Err(reason), keep: NEGATIVE_TTL },
            Err(unavailable) => return Err(unavailable),
        })
    }
}

#[async_trait]
impl TokenValidator for IntrospectionValidator {
    async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenRejection> {
        let cached = self
            .cache
            .try_get_with(TokenDigest::of(token), self.ask(token))
            .await
            .map_err(|e: Arc<TokenRejection>| (*e).clone())?;
        let ValidatedToken { expires_at, .. } = cached.decision.as_ref().map_err(|r| TokenRejection::Invalid(r))?;
        if *expires_at <= Utc::now() {
            return Err(TokenRejection::Invalid("token expired"));
        }
        cached.decision.map_err(TokenRejection::Invalid)
    }
}
