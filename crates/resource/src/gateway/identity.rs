//! How an upstream MCP server learns who is calling: never the client's token (MCP forbids
//! passing it through), but a short-lived JWT this server signs (ES256), verifiable with the
//! keys it publishes at `/.well-known/jwks.json`, or plain headers for an upstream only this
//! server can reach.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::login::VaultKey;
use mcp_oauth_domain::secret::generate_secret;
use mcp_oauth_domain::validation::ValidatedToken;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::ports::SigningKeyStore;

/// How long an identity JWT is valid: long enough for one forwarded request to arrive.
pub const IDENTITY_TTL: Duration = Duration::from_secs(60);

/// Headers an upstream reads in `headers` mode; the same names arriving from a client are
/// dropped, so a client cannot claim to be someone else.
pub const SUBJECT_HEADER: &str = "x-mcp-subject";
pub const CLIENT_ID_HEADER: &str = "x-mcp-client-id";
pub const SCOPE_HEADER: &str = "x-mcp-scope";

/// One signing key for identity JWTs, and its public half as a JWK.
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    pkcs8: Vec<u8>,
    kid: String,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the identity signing key is unusable: {0}")]
    Unusable(String),
    #[error("the shared identity signing key cannot be read: {0}")]
    Storage(#[from] StorageError),
}

fn pem_body(pem: &str) -> Result<Vec<u8>, KeyError> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    STANDARD.decode(body).map_err(|e| KeyError::Unusable(format!("not PEM: {e}")))
}

impl SigningKey {
    /// A fresh P-256 key.
    pub fn generate() -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("the system random source works");
        Self::from_pkcs8(pkcs8.as_ref()).expect("a generated key is valid")
    }

    /// A P-256 private key in PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_pkcs8(&pem_body(pem)?)
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
            .map_err(|e| KeyError::Unusable(format!("not a P-256 PKCS#8 key: {e}")))?;
        let point = pair.public_key().as_ref();
        let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]));
        // The key id names the public key, so every instance with the same key agrees on it.
        let kid = mcp_oauth_domain::secret::TokenDigest::of(&format!("{x}.{y}")).to_hex()[..16].to_owned();
        let jwk = json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig" });
        Ok(Self { key: EncodingKey::from_ec_der(der), pkcs8: der.to_vec(), kid, jwk })
    }
}

/// The keys of one rotation period: the one that signs, and the one before it, still
/// published so that JWTs it signed a moment ago verify.
#[derive(Clone)]
struct Ring {
    period: u64,
    current: Arc<SigningKey>,
    previous: Option<Arc<SigningKey>>,
}

/// Keys generated in turn, one per `rotation` period, kept in the shared store (sealed with
/// `vault`) so that every instance signs with the same key.
struct SharedKeys {
    store: Arc<dyn SigningKeyStore>,
    vault: VaultKey,
    rotation: Duration,
    ring: RwLock<Option<Ring>>,
}

impl SharedKeys {
    fn period_now(&self) -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        now.as_secs() / self.rotation.as_secs().max(1)
    }

    fn binding(period: u64) -> String {
        format!("identity-signing-key/{period}")
    }

    fn open(&self, period: u64, stored: &str) -> Result<SigningKey, KeyError> {
        let sealed = STANDARD.decode(stored).map_err(|_| KeyError::Unusable("a stored key is not base64".into()))?;
        let pkcs8 = self
            .vault
            .open_bytes(&sealed, &Self::binding(period))
            .ok_or_else(|| KeyError::Unusable("a stored key does not open with TOKEN_VAULT_KEY".into()))?;
        SigningKey::from_pkcs8(&pkcs8)
    }

    async fn ring(&self) -> Result<Ring, KeyError> {
        let period = self.period_now();
        if let Some(ring) = self.ring.read().await.as_ref().filter(|r| r.period == period) {
            return Ok(ring.clone());
        }
        let mut held = self.ring.write().await;
        if let Some(ring) = held.as_ref().filter(|r| r.period == period) {
            return Ok(ring.clone());
        }
        let proposal = STANDARD.encode(self.vault.seal_bytes(&SigningKey::generate().pkcs8, &Self::binding(period)));
        // Kept while JWTs it signed may still be checked: its own period and the next.
        let keep = self.rotation * 2 + IDENTITY_TTL;
        let current = Arc::new(self.open(period, &self.store.key_for(period, &proposal, keep).await?)?);
        let previous = match period.checked_sub(1) {
            Some(before) => match self.store.existing(before).await? {
                Some(stored) => self.open(before, &stored).ok().map(Arc::new),
                None => None,
            },
            None => None,
        };
        let ring = Ring { period, current, previous };
        *held = Some(ring.clone());
        Ok(ring)
    }
}

enum KeySource {
    /// `SIGNING_KEY_FILE`: the operator rotates it.
    Fixed(Arc<SigningKey>),
    Shared(SharedKeys),
}

/// Signs identity JWTs and publishes the keys that verify them.
pub struct IdentitySigner {
    issuer: String,
    keys: KeySource,
}

impl std::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.keys {
            KeySource::Fixed(key) => format!("fixed {}", key.kid),
            KeySource::Shared(shared) => format!("shared, rotated every {:?}", shared.rotation),
        };
        f.debug_struct("IdentitySigner").field("issuer", &self.issuer).field("keys", &source).finish()
    }
}

impl IdentitySigner {
    /// Always `key`.
    pub fn fixed(issuer: &str, key: SigningKey) -> Self {
        Self { issuer: issuer.to_owned(), keys: KeySource::Fixed(Arc::new(key)) }
    }

    /// A new key every `rotation`, shared through `store`, sealed with `vault`.
    pub fn shared(issuer: &str, store: Arc<dyn SigningKeyStore>, vault: VaultKey, rotation: Duration) -> Self {
        let shared = SharedKeys { store, vault, rotation, ring: RwLock::new(None) };
        Self { issuer: issuer.to_owned(), keys: KeySource::Shared(shared) }
    }

    async fn ring(&self) -> Result<Ring, KeyError> {
        match &self.keys {
            KeySource::Fixed(key) => Ok(Ring { period: 0, current: key.clone(), previous: None }),
            KeySource::Shared(shared) => shared.ring().await,
        }
    }

    /// The published key set: the signing key, and the one before it while rotating.
    pub async fn jwks(&self) -> Result<Value, KeyError> {
        let ring = self.ring().await?;
        let keys: Vec<&Value> = std::iter::once(&ring.current.jwk).chain(ring.previous.as_ref().map(|k| &k.jwk)).collect();
        Ok(json!({ "keys": keys }))
    }

    /// A JWT that tells `audience` (the upstream's URL) who is calling.
    pub async fn sign(&self, caller: &ValidatedToken, audience: &str) -> Result<String, KeyError> {
        let key = self.ring().await?.current;
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
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        Ok(jsonwebtoken::encode(&header, &claims, &key.key).expect("ES256 signing with a valid key cannot fail"))
    }
}

/// How the upstream learns the caller (`MCP_UPSTREAM_IDENTITY`).
#[derive(Debug, Clone)]
pub enum CallerIdentity {
    Jwt(Arc<IdentitySigner>),
    Headers,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemorySigningKeys;
    use mcp_oauth_domain::scope::Scope;

    fn caller() -> ValidatedToken {
        ValidatedToken {
            subject: "alice".into(),
            client_id: "c1".into(),
            scope: Scope::parse("mcp").unwrap(),
            audience: vec![],
            issued_at: None,
            expires_at: Utc::now(),
            family: None,
        }
    }

    async fn verify(signer: &IdentitySigner, jwt: &str) -> Value {
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(signer.jwks().await.unwrap()).unwrap();
        let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).expect("the signing key is published")).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&["http://127.0.0.1:8000/mcp"]);
        validation.set_issuer(&["https://mcp.example"]);
        jsonwebtoken::decode::<Value>(jwt, &key, &validation).unwrap().claims
    }

    #[tokio::test]
    async fn identity_jwts_verify_with_the_published_key() {
        let signer = IdentitySigner::fixed("https://mcp.example", SigningKey::generate());
        let jwt = signer.sign(&caller(), "http://127.0.0.1:8000/mcp").await.unwrap();
        let claims = verify(&signer, &jwt).await;
        assert_eq!((claims["sub"].as_str(), claims["client_id"].as_str()), (Some("alice"), Some("c1")));
        let other = IdentitySigner::fixed("https://mcp.example", SigningKey::generate());
        assert_ne!(other.jwks().await.unwrap(), signer.jwks().await.unwrap());
    }

    #[tokio::test]
    async fn instances_sharing_a_store_sign_with_one_key_that_rotates() {
        let store: Arc<dyn SigningKeyStore> = Arc::new(MemorySigningKeys::default());
        let vault = VaultKey::generate();
        let rotation = Duration::from_secs(2);
        let a = IdentitySigner::shared("https://mcp.example", store.clone(), vault.clone(), rotation);
        let b = IdentitySigner::shared("https://mcp.example", store.clone(), vault, rotation);
        // Signed within one period, known to the test.
        let (jwt, signed_in) = loop {
            let before = a.ring().await.unwrap().period;
            let jwt = a.sign(&caller(), "http://127.0.0.1:8000/mcp").await.unwrap();
            if a.ring().await.unwrap().period == before {
                break (jwt, before);
            }
        };
        let kid = jsonwebtoken::decode_header(&jwt).unwrap().kid.unwrap();
        assert_eq!(verify(&b, &jwt).await["sub"], "alice", "B publishes the key A signed with");
        // Into the very next period, whenever in its own period A signed.
        let next = Duration::from_secs((signed_in + 1) * rotation.as_secs()) + Duration::from_millis(100);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        tokio::time::sleep(next.saturating_sub(now)).await;
        let rotated = b.sign(&caller(), "http://127.0.0.1:8000/mcp").await.unwrap();
        assert_ne!(jsonwebtoken::decode_header(&rotated).unwrap().kid.unwrap(), kid, "a new period, a new key");
        assert_eq!(verify(&a, &jwt).await["sub"], "alice", "the key before it is still published");
        let stored = store.existing(a.ring().await.unwrap().period).await.unwrap().unwrap();
        assert!(!stored.contains("PRIVATE") && STANDARD.decode(&stored).is_ok(), "stored sealed");
        let stranger = IdentitySigner::shared("https://mcp.example", store, VaultKey::generate(), rotation);
        assert!(stranger.jwks().await.is_err(), "a key sealed under another vault key does not open");
    }
}
