//! Opaque secrets (tokens, codes, client secrets) and the digests that stand in for them at rest.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly generated 256-bit random secret, base64url without padding (43 characters).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 digest of a secret: the only form in which a token, code or client secret is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, the form used in storage keys.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }

    /// Whether `secret` hashes to this digest, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        self.0.ct_eq(Self::of(secret).as_bytes()).into()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not a secret, but a short prefix is all a log reader needs.
        write!(f, "TokenDigest({}…)", &self.to_hex()[..12])
    }
}

impl TryFrom<String> for TokenDigest {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::from_hex(&value).ok_or_else(|| "a token digest is 64 hex characters".to_owned())
    }
}

impl From<TokenDigest> for String {
    fn from(value: TokenDigest) -> Self {
        value.to_hex()
    }
}

/// Constant-time equality for secrets that arrive in two places (a CSRF cookie and its form field).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_256_bit_base64url() {
        let secret = generate_secret();
        assert_eq!(secret.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);
        assert_ne!(secret, generate_secret());
    }

    #[test]
    fn digest_round_trips_through_hex_and_matches_only_its_secret() {
        let digest = TokenDigest::of("abc");
        assert_eq!(digest.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(TokenDigest::from_hex(&digest.to_hex()), Some(digest));
        assert!(digest.matches("abc"));
        assert!(!digest.matches("abd"));
        assert_eq!(TokenDigest::from_hex("zz"), None);
    }

    #[test]
    fn secrets_equal_compares_whole_strings() {
        assert!(secrets_equal("same", "same"));
        assert!(!secrets_equal("same", "sam"));
        assert!(!secrets_equal("same", "samE"));
    }
}
