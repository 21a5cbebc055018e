//! The refresh grace window stores what a rotation returned, so that a client whose response
//! was lost can retry and get the same successor. The pair is sealed (AES-256-GCM) under a key
//! derived from the refresh token that was used: storage holds nothing that yields a usable
//! token without that token, which only the client and a replaying attacker hold; and an
//! attacker replaying outside the window revokes the family instead.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::TokenDigest;

const KEY_LABEL: &[u8] = b"mcp-oauth-server/refresh-grace/v1\0";
const NONCE_LEN: usize = 12;

/// The tokens one rotation returned.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccessorPair {
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub scope: String,
}

impl std::fmt::Debug for SuccessorPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuccessorPair").field("access_expires_at", &self.access_expires_at).finish_non_exhaustive()
    }
}

/// Nonce and ciphertext, base64 in serialised records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SealedSuccessor(Vec<u8>);

impl TryFrom<String> for SealedSuccessor {
    type Error = base64::DecodeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        STANDARD.decode(value).map(Self)
    }
}

impl From<SealedSuccessor> for String {
    fn from(value: SealedSuccessor) -> Self {
        STANDARD.encode(value.0)
    }
}

fn cipher_for(refresh_token: &str) -> Aes256Gcm {
    let key: [u8; 32] = Sha256::new().chain_update(KEY_LABEL).chain_update(refresh_token.as_bytes()).finalize().into();
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key))
}

impl SealedSuccessor {
    pub fn seal(used_refresh_token: &str, pair: &SuccessorPair) -> Self {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let plaintext = serde_json::to_vec(pair).expect("a successor pair always serialises");
        let aad = TokenDigest::of(used_refresh_token);
        let ciphertext = cipher_for(used_refresh_token)
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plaintext, aad: aad.as_bytes() })
            .expect("AES-GCM encryption of a small buffer cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend(ciphertext);
        Self(bytes)
    }

    /// `None` when the token is not the one this was sealed under, or the bytes were altered.
    pub fn open(&self, used_refresh_token: &str) -> Option<SuccessorPair> {
        if self.0.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = self.0.split_at(NONCE_LEN);
        let aad = TokenDigest::of(used_refresh_token);
        let plaintext = cipher_for(used_refresh_token)
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad.as_bytes() })
            .ok()?;
        serde_json::from_slice(&plaintext).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> SuccessorPair {
        SuccessorPair {
            access_token: "access".into(),
            refresh_token: "refresh".into(),
            access_expires_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            scope: "mcp".into(),
        }
    }

    #[test]
    fn only_the_used_token_opens_the_seal() {
        let sealed = SealedSuccessor::seal("used-token", &pair());
        assert_eq!(sealed.open("used-token"), Some(pair()));
        assert_eq!(sealed.open("another-token"), None);
        let text = String::from(sealed.clone());
        assert!(!text.contains("access") && !text.contains("refresh"));
        assert_eq!(SealedSuccessor::try_from(text).unwrap(), sealed);
    }

    #[test]
    fn tampered_bytes_do_not_open() {
        let mut sealed = SealedSuccessor::seal("used-token", &pair());
        let last = sealed.0.len() - 1;
        sealed.0[last] ^= 1;
        assert_eq!(sealed.open("used-token"), None);
        assert_eq!(SealedSuccessor(vec![1, 2, 3]).open("used-token"), None);
    }
}
