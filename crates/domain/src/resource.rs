//! Absolute identifiers: the issuer (RFC 8414) and resource indicators (RFC 8707).

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentifierError(String);

/// The longest issuer or resource identifier taken, as for redirect URIs.
pub const MAX_IDENTIFIER_LEN: usize = 2048;

/// Parses an absolute http(s) URL without fragment and returns its canonical form:
/// lowercase scheme and host (done by `url`) and no trailing slash.
fn canonical(raw: &str, what: &str) -> Result<String, IdentifierError> {
    if raw.len() > MAX_IDENTIFIER_LEN {
        // Not echoed: the caller sent it, and it would only fill the answer.
        return Err(IdentifierError(format!("{what} is longer than {MAX_IDENTIFIER_LEN} bytes")));
    }
    let url = Url::parse(raw).map_err(|e| IdentifierError(format!("{what} `{raw}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(IdentifierError(format!("{what} `{raw}` must be an http(s) URL")));
    }
    if url.fragment().is_some() {
        return Err(IdentifierError(format!("{what} `{raw}` must not contain a fragment")));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The authorization server's issuer identifier, byte for byte what metadata and `iss` carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(String);

impl Issuer {
    pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
        let value = canonical(raw, "issuer")?;
        if Url::parse(&value).is_ok_and(|u| u.query().is_some()) {
            return Err(IdentifierError(format!("issuer `{raw}` must not contain a query")));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An endpoint URL under the issuer, such as `/token`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A protected resource's canonical URI, which becomes the token audience.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceUri(String);

impl ResourceUri {
    pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
        canonical(raw, "resource").map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ResourceUri {
    type Error = IdentifierError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ResourceUri> for String {
    fn from(value: ResourceUri) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_canonicalised() {
        let canonical = ResourceUri::parse("http://localhost:3232/mcp").unwrap();
        assert_eq!(ResourceUri::parse("HTTP://LOCALHOST:3232/mcp").unwrap(), canonical);
        assert_eq!(ResourceUri::parse("http://localhost:3232/mcp/").unwrap(), canonical);
        assert_ne!(ResourceUri::parse("http://localhost:3232/MCP").unwrap(), canonical);
        assert!(ResourceUri::parse("urn:x").is_err());
        assert!(ResourceUri::parse("http://localhost/mcp#f").is_err());
    }

    #[test]
    fn issuer_has_no_trailing_slash() {
        assert_eq!(Issuer::parse("http://localhost:3232/").unwrap().as_str(), "http://localhost:3232");
        assert_eq!(Issuer::parse("https://auth.example/tenant").unwrap().endpoint("/token"), "https://auth.example/tenant/token");
        assert!(Issuer::parse("https://auth.example/?q=1").is_err());
    }
}
