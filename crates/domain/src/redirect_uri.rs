//! Redirect URIs: https anywhere, http only on loopback, matched exactly except for the
//! loopback port (RFC 8252 section 7.3, native apps bind an ephemeral port).

use std::fmt;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("redirect URI is not an absolute URL")]
    NotAbsolute,
    #[error("redirect URI must use https, or http on a loopback host")]
    InsecureScheme,
    #[error("redirect URI must not contain a fragment")]
    Fragment,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri {
    /// Exactly as registered: exact matching compares this string.
    raw: String,
    url: Url,
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl RedirectUri {
    pub fn parse(raw: &str) -> Result<Self, RedirectUriError> {
        let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute)?;
        if raw.contains('#') || url.fragment().is_some() {
            return Err(RedirectUriError::Fragment);
        }
        let secure = match url.scheme() {
            "https" => url.host().is_some(),
            "http" => is_loopback(&url),
            // javascript:, data:, file: and private-use schemes are all refused here.
            _ => false,
        };
        if !secure {
            return Err(RedirectUriError::InsecureScheme);
        }
        Ok(Self { raw: raw.to_owned(), url })
    }

    fn is_loopback_http(&self) -> bool {
        self.url.scheme() == "http" && is_loopback(&self.url)
    }

    /// Whether a redirect URI presented in a request matches this registered one.
    pub fn matches(&self, presented: &str) -> bool {
        if self.raw == presented {
            return true;
        }
        if !self.is_loopback_http() {
            return false;
        }
        let Ok(candidate) = Self::parse(presented) else { return false };
        candidate.is_loopback_http()
            && candidate.url.host() == self.url.host()
            && candidate.url.path() == self.url.path()
            && candidate.url.query() == self.url.query()
            && candidate.url.username() == self.url.username()
            && candidate.url.password() == self.url.password()
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_owned()
    }

    /// Scheme, host and port, as a CSP source or an Origin header would name them.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// This URI with authorization-response parameters appended to its query.
    pub fn with_params<'a>(&self, params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Url {
        let mut url = self.url.clone();
        url.query_pairs_mut().extend_pairs(params);
        url
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({})", self.raw)
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = RedirectUriError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RedirectUri> for String {
    fn from(value: RedirectUri) -> Self {
        value.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_loopback_http_are_accepted() {
        for ok in [
            "https://client.example/cb",
            "http://127.0.0.1:3000/callback",
            "http://localhost:6274/oauth/callback",
            "http://[::1]/cb",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn insecure_and_dangerous_uris_are_refused() {
        use RedirectUriError::*;
        let cases = [
            ("http://client.example/cb", InsecureScheme),
            ("javascript:alert(1)", InsecureScheme),
            ("data:text/html,hi", InsecureScheme),
            ("https://client.example/cb#frag", Fragment),
            ("https://client.example/cb#", Fragment),
            ("/relative", NotAbsolute),
            ("http://127.0.0.1.evil.example/cb", InsecureScheme),
        ];
        for (uri, err) in cases {
            assert_eq!(RedirectUri::parse(uri), Err(err), "{uri}");
        }
    }

    #[test]
    fn non_loopback_uris_match_exactly() {
        let registered = RedirectUri::parse("https://client.example/cb").unwrap();
        assert!(registered.matches("https://client.example/cb"));
        assert!(!registered.matches("https://client.example/cb/"));
        assert!(!registered.matches("https://client.example:8443/cb"));
        assert!(!registered.matches("https://CLIENT.example/cb"));
        assert!(!registered.matches("https://client.example/cb?x=1"));
    }

    #[test]
    fn loopback_uris_match_on_any_port_but_nothing_else() {
        let registered = RedirectUri::parse("http://127.0.0.1:3000/callback").unwrap();
        assert!(registered.matches("http://127.0.0.1:51234/callback"));
        assert!(registered.matches("http://127.0.0.1/callback"));
        assert!(!registered.matches("http://localhost:3000/callback"));
        assert!(!registered.matches("http://127.0.0.1:3000/other"));
        assert!(!registered.matches("https://127.0.0.1:3000/callback"));
        assert!(!registered.matches("http://127.0.0.1:3000/callback?next=evil"));
    }
}
