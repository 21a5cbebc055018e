//! RFC 9068 JWT access tokens, verified with the provider's published keys (JWKS). Only
//! asymmetric algorithms are accepted, so a public key can never double as an HMAC secret.
//!
//! A signature check costs far more than the rest of a request (ES256 about a quarter of a
//! millisecond of CPU), and a client sends the same token with every request, so a verified
//! token's claims are kept by its digest. They are used again only while the key that verified
//! them is still the one the key set holds under its kid (a refetched set makes new keys), and
//! the claim rules run on every request, so a kept token expires, or is refused once its key is
//! withdrawn, exactly as an unkept one would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::validation::{Expectations, TokenClaims, TokenRejection, TokenValidator, ValidatedToken, accept_claims};
use moka::Expiry;
use moka::future::Cache;

use super::claims::WireClaims;
use super::jwks::{JwksCache, JwksError};

pub(crate) const ALLOWED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// How long verified claims are kept at most, whatever the token's own lifetime.
const KEEP_AT_MOST: Duration = Duration::from_secs(300);

/// Claims whose signature `key` verified.
#[derive(Clone)]
struct Verified {
    kid: Option<String>,
    key: Arc<DecodingKey>,
    claims: TokenClaims,
}

struct UntilExpiry;

impl Expiry<TokenDigest, Verified> for UntilExpiry {
    fn expire_after_create(&self, _key: &TokenDigest, value: &Verified, _created_at: Instant) -> Option<Duration> {
        let remaining = value.claims.expires_at.map_or(0, |exp| exp.saturating_sub(Utc::now().timestamp()));
        Some(Duration::from_secs(u64::try_from(remaining).unwrap_or(0)).min(KEEP_AT_MOST))
    }
}

pub struct JwtValidator {
    jwks: JwksCache,
    expected: Expectations,
    accepted_types: Vec<String>,
    verified: Cache<TokenDigest, Verified>,
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
            jwks: JwksCache::new(client, jwks_uri, refresh_interval),
            expected,
            accepted_types: accepted_types.into_iter().map(|t| t.to_ascii_lowercase()).collect(),
            verified: Cache::builder().max_capacity(100_000).expire_after(UntilExpiry).build(),
        }
    }

    async fn key(&self, kid: &Option<String>) -> Result<Arc<DecodingKey>, TokenRejection> {
        self.jwks.key(kid).await.map_err(|e| match e {
            JwksError::Unavailable(detail) => TokenRejection::Unavailable(detail),
            JwksError::UnknownKey => TokenRejection::Invalid("token is signed with an unknown key"),
        })
    }

    /// The claims of `token` once its header and signature pass.
    async fn verify(&self, token: &str) -> Result<Verified, TokenRejection> {
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
        Ok(Verified { kid: header.kid, key, claims: data.claims.into_claims(None) })
    }
}

#[async_trait]
impl TokenValidator for JwtValidator {
    /// Ready once the key set has been fetched: from then on tokens verify without the
    /// authorization server.
    async fn readiness(&self) -> Result<(), String> {
        self.jwks.ready().await
    }

    async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenRejection> {
        let digest = TokenDigest::of(token);
        if let Some(kept) = self.verified.get(&digest).await
            && Arc::ptr_eq(&kept.key, &self.key(&kept.kid).await?)
        {
            return accept_claims(kept.claims, &self.expected, Utc::now());
        }
        let verified = self.verify(token).await?;
        let accepted = accept_claims(verified.claims.clone(), &self.expected, Utc::now())?;
        self.verified.insert(digest, verified).await;
        Ok(accepted)
    }
}
