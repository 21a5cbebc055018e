//! RFC 9068 JWT access tokens, verified with the provider's published keys (JWKS). Only
//! asymmetric algorithms are accepted, so a public key can never double as an HMAC secret.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use jsonwebtoken::{Algorithm, Validation};
use mcp_oauth_domain::validation::{Expectations, TokenRejection, TokenValidator, ValidatedToken, accept_claims};

use super::claims::WireClaims;
use super::jwks::{JwksCache, JwksError};

pub(crate) const ALLOWED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

pub struct JwtValidator {
    jwks: JwksCache,
    expected: Expectations,
    accepted_types: Vec<String>,
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
        }
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
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Invalid("malformed JWT"))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(TokenRejection::Invalid("JWT algorithm not allowed"));
        }
        if let Some(typ) = &header.typ
            && !self.accepted_types.contains(&typ.to_ascii_lowercase())
        {
            return Err(TokenRejection::Invalid("JWT is not an access token (typ)"));
        }
        let key = self.jwks.key(&header.kid).await.map_err(|e| match e {
            JwksError::Unavailable(detail) => TokenRejection::Unavailable(detail),
            JwksError::UnknownKey => TokenRejection::Invalid("token is signed with an unknown key"),
        })?;
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
