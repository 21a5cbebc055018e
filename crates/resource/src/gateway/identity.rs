//! How an upstream MCP server learns who is calling: never the client's token (MCP forbids
//! passing it through), but a short-lived JWT this server signs (ES256), verifiable with the
//! keys it publishes at `/.well-known/jwks.json`, or plain headers for an upstream only this
//! server can reach.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_oauth_domain::secret::generate_secret;
use mcp_oauth_domain::validation::ValidatedToken;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// How long an identity JWT is valid: long enough for one forwarded request to arrive.
pub const IDENTITY_TTL: Duration = Duration::from_secs(60);

/// Headers an upstream reads in `headers` mode; the same names arriving from a client are
/// dropped, so a client cannot claim to be someone else.
pub const SUBJECT_HEADER: &str = "x-mcp-subject";
pub const CLIENT_ID_HEADER: &str = "x-mcp-client-id";
pub const SCOPE_HEADER: &str = "x-mcp-scope";

/// The signing key for identity JWTs, and its public half as a JWK.
pub struct IdentitySigner {
    issuer: String,
    key: EncodingKey,
    kid: String,
    jwk: Value,
}

impl std::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySigner").field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the identity signing key is unusable: {0}")]
pub struct KeyError(String);

fn pem_body(pem: &str) -> Result<Vec<u8>, KeyError> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    STANDARD.decode(body).map_err(|e| KeyError(format!("not PEM: {e}")))
}

impl IdentitySigner {
    /// A fresh P-256 key, for one process.
    pub fn generate(issuer: &str) -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("the system random source works");
        Self::from_pkcs8(issuer, pkcs8.as_ref()).expect("a generated key is valid")
    }

    /// A P-256 private key in PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
    pub fn from_pem(issuer: &str, pem: &str) -> Result<Self, KeyError> {
        Self::from_pkcs8(issuer, &pem_body(pem)?)
    }

    fn from_pkcs8(issuer: &str, der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
            .map_err(|e| KeyError(format!("not a P-256 PKCS#8 key: {e}")))?;
        let point = pair.public_key().as_ref();
        let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
        // The key id names the public key, so every instance with the same key agrees on it.
        let kid = mcp_oauth_domain::secret::TokenDigest::of(&format!("{x}.{y}")).to_hex()[..16].to_owned();
        let jwk = json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig" });
        Ok(Self { issuer: issuer.to_owned(), key: EncodingKey::from_ec_der(der), kid, jwk })
    }

    /// The published key set.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// A JWT that tells `audience` (the upstream's URL) who is calling.
    pub fn sign(&self, caller: &ValidatedToken, audience: &str) -> String {
        let now = Utc::now().timestamp();
        let claims = json!({
            "iss": self.issuer,
            "aud": audience,
            "sub": caller.subject,
            "client_id": caller.client_id,
            "scope": caller.scope.to_string(),
            "iat": now,
            "exp": now + IDENTITY_TTL.as_secs() as i64,
            "jti": generate_secret(),
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("ES256 signing with a valid key cannot fail")
    }
}

/// How the upstream learns the caller (`MCP_UPSTREAM_IDENTITY`).
#[derive(Debug, Clone)]
pub enum CallerIdentity {
    Jwt(std::sync::Arc<IdentitySigner>),
    Headers,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_oauth_domain::scope::Scope;

    #[test]
    fn identity_jwts_verify_with_the_published_key() {
        let signer = IdentitySigner::generate("https://mcp.example");
        let caller = ValidatedToken {
            subject: "alice".into(),
            client_id: "c1".into(),
            scope: Scope::parse("mcp").unwrap(),
            audience: vec![],
            issued_at: None,
            expires_at: Utc::now(),
            family: None,
        };
        let jwt = signer.sign(&caller, "http://127.0.0.1:8000/mcp");
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(signer.jwks()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&["http://127.0.0.1:8000/mcp"]);
        validation.set_issuer(&["https://mcp.example"]);
        let claims = jsonwebtoken::decode::<Value>(&jwt, &key, &validation).unwrap().claims;
        assert_eq!((claims["sub"].as_str(), claims["client_id"].as_str()), (Some("alice"), Some("c1")));
        let other = IdentitySigner::generate("https://mcp.example");
        assert_ne!(other.jwks(), signer.jwks());
    }
}
