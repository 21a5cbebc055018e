//! PKCE (RFC 7636), S256 only: OAuth 2.1 drops `plain`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::secrets_equal;

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// A `code_challenge` sent with method S256: the base64url SHA-256 of a verifier, 43 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CodeChallenge(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    #[error("code_challenge is required (PKCE with S256)")]
    MissingChallenge,
    #[error("code_challenge_method must be S256")]
    UnsupportedMethod,
    #[error("code_challenge must be 43 base64url characters (S256)")]
    MalformedChallenge,
    #[error("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")]
    MalformedVerifier,
}

impl CodeChallenge {
    /// Parses the pair of authorization-request parameters. A missing method means `plain`
    /// (RFC 7636 section 4.3), which is refused like an explicit `plain`.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, PkceError> {
        let challenge = challenge.filter(|c| !c.is_empty()).ok_or(PkceError::MissingChallenge)?;
        if method != Some("S256") {
            return Err(PkceError::UnsupportedMethod);
        }
        Self::try_from(challenge.to_owned()).map_err(|_| PkceError::MalformedChallenge)
    }

    pub fn of(verifier: &CodeVerifier) -> Self {
        Self(URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.0.as_bytes())))
    }

    pub fn is_satisfied_by(&self, verifier: &CodeVerifier) -> bool {
        secrets_equal(&Self::of(verifier).0, &self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CodeChallenge {
    type Error = PkceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let decodes_to_sha256 = URL_SAFE_NO_PAD.decode(&value).is_ok_and(|bytes| bytes.len() == 32);
        if value.len() == 43 && decodes_to_sha256 { Ok(Self(value)) } else { Err(PkceError::MalformedChallenge) }
    }
}

impl From<CodeChallenge> for String {
    fn from(value: CodeChallenge) -> Self {
        value.0
    }
}

/// A `code_verifier`: 43 to 128 unreserved characters.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    pub fn parse(value: &str) -> Result<Self, PkceError> {
        if (43..=128).contains(&value.len()) && value.chars().all(is_unreserved) {
            Ok(Self(value.to_owned()))
        } else {
            Err(PkceError::MalformedVerifier)
        }
    }
}

impl std::fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVerifier(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        let verifier = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        let expected = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(CodeChallenge::of(&verifier).as_str(), expected);
        let challenge = CodeChallenge::parse(Some(expected), Some("S256")).unwrap();
        assert!(challenge.is_satisfied_by(&verifier));
    }

    #[test]
    fn a_different_verifier_does_not_satisfy_the_challenge() {
        let challenge = CodeChallenge::parse(Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"), Some("S256")).unwrap();
        let other = CodeVerifier::parse(&"a".repeat(43)).unwrap();
        assert!(!challenge.is_satisfied_by(&other));
    }

    #[test]
    fn plain_and_missing_challenges_are_refused() {
        let c = Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(CodeChallenge::parse(None, Some("S256")), Err(PkceError::MissingChallenge));
        assert_eq!(CodeChallenge::parse(c, Some("plain")), Err(PkceError::UnsupportedMethod));
        assert_eq!(CodeChallenge::parse(c, None), Err(PkceError::UnsupportedMethod));
        assert_eq!(CodeChallenge::parse(Some("short"), Some("S256")), Err(PkceError::MalformedChallenge));
    }

    #[test]
    fn verifiers_are_length_and_charset_checked() {
        assert!(CodeVerifier::parse(&"a".repeat(42)).is_err());
        assert!(CodeVerifier::parse(&"a".repeat(129)).is_err());
        assert!(CodeVerifier::parse(&format!("{}+", "a".repeat(43))).is_err());
        assert!(CodeVerifier::parse(&"a~._-".repeat(10)).is_ok());
    }
}
