//! Redirect URIs, parsed strictly: https anywhere, http only on loopback, and private-use
//! schemes for native apps (RFC 8252 sections 7.1 and 7.3). Matching is exact, except for the
//! port of a loopback URI, since native apps bind an ephemeral one.
//!
//! A URI is accepted only in the form the URL standard serialises it to, so the string a client
//! registered is byte for byte the base of the `Location` this server sends.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// The longest redirect URI accepted, in bytes.
pub const MAX_REDIRECT_URI_LEN: usize = 2048;

/// The longest DNS name (RFC 1035 section 2.3.4).
const MAX_HOST_LEN: usize = 253;

/// Schemes that are never a redirect target, whatever the client says it is: they run code,
/// read local data or leave the browser for something that is not the client.
const FORBIDDEN_SCHEMES: [&str; 15] = [
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "filesystem",
    "view-source",
    "ws",
    "wss",
    "ftp",
    "mailto",
    "tel",
    "sms",
    "intent",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("redirect URI is longer than {MAX_REDIRECT_URI_LEN} bytes")]
    TooLong,
    #[error("redirect URI contains whitespace or control characters")]
    ControlCharacters,
    #[error("redirect URI is not an absolute URI")]
    NotAbsolute,
    #[error("redirect URI is not in normalized form; register `{0}` instead")]
    NotNormalized(String),
    #[error("redirect URI must not contain user information")]
    Userinfo,
    #[error("redirect URI must not contain a fragment")]
    Fragment,
    #[error("the `{0}:` scheme cannot be used for a redirect URI")]
    ForbiddenScheme(String),
    #[error("redirect URI must use https, or http on a loopback host")]
    InsecureHttp,
    #[error("redirect URI host is longer than {MAX_HOST_LEN} bytes")]
    HostTooLong,
}

/// What kind of destination a redirect URI names; it decides which clients may register it
/// and how it is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// An https URL: a web server, or a claimed https URL of a native app.
    Https,
    /// http on 127.0.0.1, [::1] or localhost: a native app's loopback listener.
    LoopbackHttp,
    /// A private-use scheme (`cursor:`, `com.example.app:`): an app on the user's device.
    PrivateUse,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri {
    /// The URL, whose serialisation is exactly the string the client sent.
    url: Url,
    kind: RedirectKind,
}

/// Whether `url` names this machine: `localhost`, 127.0.0.0/8 or `[::1]`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The scheme of `raw` as written, if it has one, for refusing dangerous ones by name even
/// when the rest does not parse.
fn written_scheme(raw: &str) -> Option<String> {
    let (scheme, _) = raw.split_once(':')?;
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

impl RedirectUri {
    pub fn parse(raw: &str) -> Result<Self, RedirectUriError> {
        if raw.len() > MAX_REDIRECT_URI_LEN {
            return Err(RedirectUriError::TooLong);
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RedirectUriError::ControlCharacters);
        }
        if let Some(scheme) = written_scheme(raw)
            && FORBIDDEN_SCHEMES.contains(&scheme.as_str())
        {
            return Err(RedirectUriError::ForbiddenScheme(scheme));
        }
        let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute)?;
        if url.as_str() != raw {
            return Err(RedirectUriError::NotNormalized(url.as_str().chars().take(200).collect()));
        }
        if url.fragment().is_some() {
            return Err(RedirectUriError::Fragment);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectUriError::Userinfo);
        }
        if url.host_str().is_some_and(|host| host.len() > MAX_HOST_LEN) {
            return Err(RedirectUriError::HostTooLong);
        }
        let kind = match url.scheme() {
            "https" => RedirectKind::Https,
            "http" if is_loopback(&url) => RedirectKind::LoopbackHttp,
            "http" => return Err(RedirectUriError::InsecureHttp),
            _ => RedirectKind::PrivateUse,
        };
        Ok(Self { url, kind })
    }

    pub fn kind(&self) -> RedirectKind {
        self.kind
    }

    /// Whether a redirect URI presented in a request matches this registered one.
    pub fn matches(&self, presented: &str) -> bool {
        if self.as_str() == presented {
            return true;
        }
        if self.kind != RedirectKind::LoopbackHttp {
            return false;
        }
        let Ok(candidate) = Self::parse(presented) else {
            return false;
        };
        candidate.kind == RedirectKind::LoopbackHttp
            && candidate.url.host() == self.url.host()
            && candidate.url.path() == self.url.path()
            && candidate.url.query() == self.url.query()
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_owned()
    }

    /// What a Content-Security-Policy `form-action` must allow for the consent form's answer to
    /// reach this URI: its origin, or for a private-use scheme the scheme itself.
    pub fn csp_source(&self) -> String {
        match self.kind {
            RedirectKind::PrivateUse => format!("{}:", self.url.scheme()),
            _ => self.url.origin().ascii_serialization(),
        }
    }

    /// This URI with authorization-response parameters appended to its query; everything
    /// before them is the registered string unchanged.
    pub fn with_params<'a>(&self, params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Url {
        let mut url = self.url.clone();
        url.query_pairs_mut().extend_pairs(params);
        url
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({})", self.as_str())
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
        value.url.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_loopback_http_and_private_use_schemes_are_accepted() {
        let cases = [
            ("https://client.example/cb", RedirectKind::Https),
            ("http://127.0.0.1:3000/callback", RedirectKind::LoopbackHttp),
            ("http://localhost:6274/oauth/callback", RedirectKind::LoopbackHttp),
            ("http://[::1]/cb", RedirectKind::LoopbackHttp),
            ("cursor://anysphere.cursor-mcp/oauth/callback", RedirectKind::PrivateUse),
            ("vscode://vscode.github-authentication/did-authenticate", RedirectKind::PrivateUse),
            ("com.example.app:/oauth2redirect", RedirectKind::PrivateUse),
        ];
        for (ok, kind) in cases {
            assert_eq!(RedirectUri::parse(ok).map(|u| u.kind()), Ok(kind), "{ok}");
        }
    }

    #[test]
    fn dangerous_schemes_are_refused_in_any_case() {
        for uri in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,hi",
            "DATA:text/html,hi",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "blob:https://a.example/uuid",
            "about:blank",
            "VIEW-SOURCE:https://a.example",
        ] {
            assert!(matches!(RedirectUri::parse(uri), Err(RedirectUriError::ForbiddenScheme(_))), "{uri}");
        }
    }

    #[test]
    fn anything_but_a_normalized_absolute_uri_is_refused() {
        use RedirectUriError::*;
        let long_host = format!("https://{}.example/cb", "a".repeat(300));
        let cases = [
            ("http://client.example/cb", InsecureHttp),
            ("http://127.0.0.1.evil.example/cb", InsecureHttp),
            ("https://client.example/cb#frag", Fragment),
            ("https://client.example/cb#", Fragment),
            ("/relative", NotAbsolute),
            ("https://user:pw@client.example/cb", Userinfo),
            ("https://user@client.example/cb", Userinfo),
            ("cursor://user@anysphere.cursor-mcp/cb", Userinfo),
            ("https://client.example/a b", ControlCharacters),
            ("https://client.example/cb\t", ControlCharacters),
            ("https://client.example/\r\ncb", ControlCharacters),
            ("https://client.example/cb\0", ControlCharacters),
            (" https://client.example/cb", ControlCharacters),
            (&long_host, HostTooLong),
        ];
        for (uri, err) in cases {
            assert_eq!(RedirectUri::parse(uri), Err(err), "{uri:?}");
        }
        for (uri, normalized) in [
            ("https://evil.example\\@app.example/cb", "https://evil.example/@app.example/cb"),
            ("https:///cb", "https://cb/"),
            ("https://client.example", "https://client.example/"),
            ("HTTPS://client.example/cb", "https://client.example/cb"),
            ("https://CLIENT.example/cb", "https://client.example/cb"),
            ("https://client.example/a/../cb", "https://client.example/cb"),
            ("https://client.example:443/cb", "https://client.example/cb"),
            ("Cursor://anysphere.cursor-mcp/cb", "cursor://anysphere.cursor-mcp/cb"),
        ] {
            assert_eq!(RedirectUri::parse(uri), Err(NotNormalized(normalized.into())), "{uri}");
        }
        assert_eq!(RedirectUri::parse(&format!("https://a.example/{}", "x".repeat(2048))), Err(TooLong));
    }

    #[test]
    fn non_loopback_uris_match_exactly() {
        let registered = RedirectUri::parse("https://client.example/cb").unwrap();
        assert!(registered.matches("https://client.example/cb"));
        assert!(!registered.matches("https://client.example/cb/"));
        assert!(!registered.matches("https://client.example:8443/cb"));
        assert!(!registered.matches("https://CLIENT.example/cb"));
        assert!(!registered.matches("https://client.example/cb?x=1"));
        let app = RedirectUri::parse("cursor://anysphere.cursor-mcp/oauth/callback").unwrap();
        assert!(app.matches("cursor://anysphere.cursor-mcp/oauth/callback"));
        assert!(!app.matches("cursor://anysphere.cursor-mcp/oauth/callback/"));
        assert!(!app.matches("cursor://other/oauth/callback"));
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
        assert!(!registered.matches("http://user@127.0.0.1:3000/callback"));
    }

    #[test]
    fn the_response_location_starts_with_the_registered_string() {
        for raw in [
            "https://client.example/cb",
            "https://client.example/cb?tenant=a%20b",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "com.example.app:/oauth2redirect",
            "http://[::1]:8080/cb",
        ] {
            let location = RedirectUri::parse(raw).unwrap().with_params([("code", "c"), ("state", "s t")]);
            let location = location.as_str();
            assert!(location.starts_with(raw), "{location} does not start with {raw}");
            assert!(location.ends_with("code=c&state=s+t"), "{location}");
        }
    }

    #[test]
    fn csp_sources_name_the_origin_or_the_private_scheme() {
        assert_eq!(RedirectUri::parse("https://a.example/cb").unwrap().csp_source(), "https://a.example");
        assert_eq!(RedirectUri::parse("http://127.0.0.1:9/cb").unwrap().csp_source(), "http://127.0.0.1:9");
        assert_eq!(RedirectUri::parse("cursor://x/cb").unwrap().csp_source(), "cursor:");
    }
}
