//! The server's login key (`TOKEN_VAULT_KEY`): it seals the upstream's tokens at rest
//! (AES-256-GCM, bound to the record they belong to) and derives the per-attempt secrets
//! (PKCE verifier, OIDC nonce) from the attempt's `state`, so that no attempt record holds a
//! usable secret. Every instance behind one storage needs the same key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const NONCE_LEN: usize = 12;

/// 32 random bytes; `Debug` never shows them. Cheap to clone.
#[derive(Clone)]
pub struct VaultKey(std::sync::Arc<KeyMaterial>);

struct KeyMaterial {
    sealing: [u8; 32],
    deriving: Hkdf<Sha256>,
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultKey(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultKeyError {
    #[error("TOKEN_VAULT_KEY must be 32 bytes in base64 or base64url (openssl rand -base64 32)")]
    Malformed,
}

impl VaultKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self::from_bytes(&bytes)
    }

    pub fn parse(raw: &str) -> Result<Self, VaultKeyError> {
        let raw = raw.trim();
        let bytes = STANDARD
            .decode(raw)
            .or_else(|_| URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')))
            .map_err(|_| VaultKeyError::Malformed)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| VaultKeyError::Malformed)?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(master: &[u8; 32]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"mcp-oauth-server/login/v1"), master);
        let mut sealing = [0u8; 32];
        hkdf.expand(b"seal", &mut sealing).expect("32 bytes is a valid HKDF length");
        Self(std::sync::Arc::new(KeyMaterial { sealing, deriving: hkdf }))
    }

    /// A secret derived from `input` for `purpose`: the same on every instance with this key,
    /// unpredictable without it. 256 bits, base64url (43 characters, a valid PKCE verifier).
    pub fn derive(&self, purpose: &str, input: &str) -> String {
        let mut out = [0u8; 32];
        let info = [b"derive/", purpose.as_bytes(), b"/", input.as_bytes()].concat();
        self.0.deriving.expand(&info, &mut out).expect("32 bytes is a valid HKDF length");
        URL_SAFE_NO_PAD.encode(out)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0.sealing))
    }

    /// Encrypts `tokens`; only [`Self::open`] with the same `binding` (the record's key) reads
    /// them, so a sealed value copied to another record is useless.
    pub fn seal(&self, tokens: &UpstreamTokens, binding: &str) -> SealedTokens {
        SealedTokens(self.seal_bytes(&serde_json::to_vec(tokens).expect("tokens serialise"), binding))
    }

    /// `None` when the value was sealed under another key or binding, or was altered.
    pub fn open(&self, sealed: &SealedTokens, binding: &str) -> Option<UpstreamTokens> {
        serde_json::from_slice(&self.open_bytes(&sealed.0, binding)?).ok()
    }

    /// Encrypts any secret that must be recovered (nonce, then ciphertext), bound to `binding`.
    pub fn seal_bytes(&self, plaintext: &[u8], binding: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: binding.as_bytes() })
            .expect("AES-GCM encryption of a small message cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// What [`Self::seal_bytes`] sealed with the same `binding`; `None` if altered or foreign.
    pub fn open_bytes(&self, sealed: &[u8], binding: &str) -> Option<Vec<u8>> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
        self.cipher().decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: binding.as_bytes() }).ok()
    }
}

/// What the upstream's token endpoint returned. `Debug` shows no token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// `None` when the upstream gave no `expires_in`.
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("refreshable", &self.refresh_token.is_some())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl UpstreamTokens {
    /// Whether the access token should be refreshed before use (within a minute of expiry).
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at - chrono::Duration::seconds(60) <= now)
    }
}

/// Nonce and ciphertext; base64 in serialised records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SealedTokens(Vec<u8>);

impl TryFrom<String> for SealedTokens {
    type Error = base64::DecodeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        STANDARD.decode(value).map(Self)
    }
}

impl From<SealedTokens> for String {
    fn from(value: SealedTokens) -> Self {
        STANDARD.encode(value.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> UpstreamTokens {
        UpstreamTokens {
            access_token: "upstream-access".into(),
            refresh_token: Some("upstream-refresh".into()),
            expires_at: None,
        }
    }

    #[test]
    fn sealed_tokens_open_only_with_the_same_key_and_binding() {
        let key = VaultKey::generate();
        let sealed = key.seal(&tokens(), "family-1");
        assert_eq!(key.open(&sealed, "family-1"), Some(tokens()));
        assert_eq!(key.open(&sealed, "family-2"), None, "bound to its record");
        assert_eq!(VaultKey::generate().open(&sealed, "family-1"), None, "another key cannot read it");
        let text = String::from(sealed.clone());
        assert!(!text.contains("upstream"), "nothing readable at rest");
        let mut altered = sealed.0.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(&SealedTokens(altered), "family-1"), None);
        assert!(!format!("{:?}", tokens()).contains("upstream-access"));
    }

    #[test]
    fn keys_parse_from_base64_and_derive_the_same_secrets_everywhere() {
        let raw = STANDARD.encode([7u8; 32]);
        let (one, two) = (VaultKey::parse(&raw).unwrap(), VaultKey::parse(&URL_SAFE_NO_PAD.encode([7u8; 32])).unwrap());
        assert_eq!(one.derive("pkce", "state"), two.derive("pkce", "state"));
        assert_ne!(one.derive("pkce", "state"), one.derive("nonce", "state"));
        assert_eq!(one.derive("pkce", "state").len(), 43);
        assert_eq!(VaultKey::parse("short").unwrap_err(), VaultKeyError::Malformed);
        assert!(!format!("{one:?}").contains(&raw));
    }
}
