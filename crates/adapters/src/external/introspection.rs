//! RFC 7662 introspection with a cache. Positive answers are kept for at most the smaller of
//! the token's remaining lifetime and the configured TTL, which bounds how long a revocation
//! takes to be seen; negative answers for a second; failures not at all. Concurrent lookups of
//! one token make one call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::validation::{Expectations, TokenRejection, TokenValidator, ValidatedToken, accept_claims};
use moka::Expiry;
use moka::future::Cache;

use super::claims::WireClaims;

const NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// How the resource server authenticates to the introspection endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionAuth {
    ClientSecretBasic,
    ClientSecretPost,
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
    /// When a readiness probe last succeeded; failures are not kept, so recovery shows at once.
    last_probe: tokio::sync::Mutex<Option<Instant>>,
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
        Self { client, endpoint, client_id, client_secret, auth, expected, cache_ttl, cache, last_probe: Default::default() }
    }

    /// Posts `token` to the introspection endpoint with this server's credential.
    async fn post(&self, token: &str) -> Result<reqwest::Response, TokenRejection> {
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
        let response = crate::outbound::send("authorization_server", "introspection", request.form(&form))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        match response.status() {
            status if status.is_success() => Ok(response),
            // Our credential refused says nothing about the token, and will not pass by itself.
            status @ (reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN) => {
                Err(TokenRejection::Misconfigured(format!(
                    "the introspection endpoint {} refused this server's credential (HTTP {}): check \
                     INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET and INTROSPECTION_AUTH_METHOD",
                    self.endpoint,
                    status.as_u16()
                )))
            }
            status => Err(unavailable(format!("HTTP {status}"))),
        }
    }

    async fn ask(&self, token: &str) -> Result<Cached, TokenRejection> {
        let unavailable = |e: String| TokenRejection::Unavailable(format!("introspection at {}: {e}", self.endpoint));
        let response = self.post(token).await?;
        let answer: WireClaims = response.json().await.map_err(|e| unavailable(e.to_string()))?;
        // RFC 7662 makes `active` the one required member: without it the answer is broken,
        // which says nothing about the token.
        if !answer.is_introspection_answer() {
            return Err(unavailable("the answer has no `active` member".into()));
        }
        // The endpoint is the configured authorization server's own: an answer without `iss`
        // speaks for it.
        let claims = answer.into_claims(Some(&self.expected.issuer));
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

/// How long a successful readiness probe stands, so probes of a healthy authorization server
/// cost it at most one introspection call per interval.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

impl IntrospectionValidator {
    /// Introspects a random token: any well-formed answer shows that the endpoint answers and
    /// accepts this server's credential.
    async fn probe(&self) -> Result<(), String> {
        let unreadable = |e: String| format!("introspection at {} gave an unreadable answer: {e}", self.endpoint);
        let response = self.post(&mcp_oauth_domain::secret::generate_secret()).await.map_err(|e| e.to_string())?;
        let answer: WireClaims = response.json().await.map_err(|e| unreadable(e.to_string()))?;
        if !answer.is_introspection_answer() {
            return Err(unreadable("no `active` member".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl TokenValidator for IntrospectionValidator {
    async fn readiness(&self) -> Result<(), String> {
        let mut last_success = self.last_probe.lock().await;
        if last_success.is_some_and(|at| at.elapsed() < PROBE_INTERVAL) {
            return Ok(());
        }
        let outcome = self.probe().await;
        *last_success = outcome.is_ok().then(Instant::now);
        outcome
    }

    async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenRejection> {
        let cached = self
            .cache
            .try_get_with(TokenDigest::of(token), self.ask(token))
            .await
            .map_err(|e: Arc<TokenRejection>| (*e).clone())?;
        let token = cached.decision.map_err(TokenRejection::Invalid)?;
        // A cached answer outlives no token: it expires with it.
        if token.expires_at <= Utc::now() {
            return Err(TokenRejection::Invalid("token expired"));
        }
        Ok(token)
    }
}
