//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, MCP 2026-07-28):
//! a client whose `client_id` is an https URL publishes its metadata at that URL, and the
//! authorization server fetches it instead of keeping a registration.
//!
//! This module holds the rules: which client ids name a document, which hosts may serve one,
//! what a valid document is, and how long a fetched one may be reused. Fetching (with its
//! defences against server-side request forgery) is the [`DocumentFetcher`] port's, keeping a
//! document the [`DocumentCache`] port's.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::client::{ClientMetadata, RegistrationRequest, TokenEndpointAuthMethod};
use crate::error::StorageError;
use crate::ports::Expiring;
use crate::scope::Scope;
use crate::secret::TokenDigest;

/// The largest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// The longest client id URL accepted, in bytes.
pub const MAX_DOCUMENT_URL_LEN: usize = 2048;

/// A client id that names a metadata document: an https URL with a path, without credentials
/// or a fragment, written exactly as the URL standard serialises it (so one document has one
/// client id, and dot segments never survive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentUrl(Url);

impl DocumentUrl {
    /// `None` when `raw` is not a document URL: then it is an ordinary client id.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() > MAX_DOCUMENT_URL_LEN || !raw.starts_with("https://") {
            return None;
        }
        let url = Url::parse(raw).ok()?;
        let valid = url.as_str() == raw
            && url.scheme() == "https"
            && url.host_str().is_some()
            && url.path() != "/"
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        valid.then_some(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The host that vouches for the client: what the consent page shows as its origin.
    pub fn host(&self) -> &str {
        self.0.host_str().expect("parse requires a host")
    }

    /// The key a cached copy is kept under.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(self.as_str())
    }
}

/// A host pattern: `claude.ai` exactly, or `*.example.com` for any name below it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    Below(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self {
            Self::Exact(name) => host == *name,
            Self::Below(suffix) => host.strip_suffix(suffix.as_str()).is_some_and(|rest| rest.ends_with('.')),
        }
    }
}

/// Which hosts may serve metadata documents (`CIMD_ALLOWED_HOSTS`, `CIMD_DENIED_HOSTS`): a
/// denied host never, and when any host is allowed, only those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    allowed: Vec<HostPattern>,
    denied: Vec<HostPattern>,
}

impl HostPolicy {
    /// Comma-separated lists of hosts and `*.domain` suffixes.
    pub fn parse(allowed: &str, denied: &str) -> Result<Self, String> {
        Ok(Self { allowed: patterns(allowed)?, denied: patterns(denied)? })
    }

    pub fn permits(&self, host: &str) -> bool {
        !self.denied.iter().any(|p| p.matches(host)) && (self.allowed.is_empty() || self.allowed.iter().any(|p| p.matches(host)))
    }
}

fn patterns(raw: &str) -> Result<Vec<HostPattern>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let entry = entry.to_ascii_lowercase();
            let (pattern, name) = match entry.strip_prefix("*.") {
                Some(suffix) => (HostPattern::Below(suffix.to_owned()), suffix.to_owned()),
                None => (HostPattern::Exact(entry.clone()), entry.clone()),
            };
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']'));
            if valid { Ok(pattern) } else { Err(format!("`{entry}` is not a host or a *.domain suffix")) }
        })
        .collect()
}

/// What a document's HTTP answer says about reusing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// `no-store` or `no-cache`: fetch it each time.
    NoStore,
    /// `max-age` (or `s-maxage`) seconds.
    MaxAge(Duration),
    /// The answer says nothing.
    Unspecified,
}

/// How long fetched documents are reused: what the answer allows, within `min` and `max`; and
/// how long past that a copy may stand in while its host cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBounds {
    pub min: Duration,
    pub max: Duration,
    pub stale: Duration,
}

impl Default for CacheBounds {
    fn default() -> Self {
        Self { min: Duration::from_secs(60), max: Duration::from_secs(24 * 3600), stale: Duration::from_secs(3600) }
    }
}

impl CacheBounds {
    /// How long a document fetched with `caching` is fresh; `None`: not kept at all.
    pub fn freshness(&self, caching: Caching) -> Option<Duration> {
        match caching {
            Caching::NoStore => None,
            Caching::MaxAge(age) => Some(age.clamp(self.min, self.max.max(self.min))),
            Caching::Unspecified => Some(self.min),
        }
    }
}

/// A validated document kept for reuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedDocument {
    pub metadata: ClientMetadata,
    pub fetched_at: DateTime<Utc>,
    /// Until then it is used without asking its host.
    pub fresh_until: DateTime<Utc>,
    /// Until then it may stand in while its host cannot be reached; then it is gone.
    pub expires_at: DateTime<Utc>,
}

impl CachedDocument {
    pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        now < self.fresh_until
    }
}

impl Expiring for CachedDocument {
    fn kept_until(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

/// A document as its host served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedDocument {
    pub body: Vec<u8>,
    pub caching: Caching,
}

/// Why a document could not be had. Each says what went wrong in words the consent page can
/// show; none carries the document's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Refused before anything was sent: the address is not public, or the scheme not https.
    #[error("{0}")]
    Refused(String),
    /// No answer, a timeout or a server error: a cached copy may stand in for a while.
    #[error("{0}")]
    Unreachable(String),
    /// The host answered with something that is not a document: a redirect, a client error,
    /// too many bytes.
    #[error("{0}")]
    Rejected(String),
}

/// Fetches a document: GET with `Accept: application/json`, https only, no redirects, at most
/// [`MAX_DOCUMENT_BYTES`], within a short timeout, and only from public addresses (connecting
/// to the address that was checked).
#[async_trait]
pub trait DocumentFetcher: Send + Sync {
    async fn fetch(&self, url: &DocumentUrl) -> Result<FetchedDocument, FetchError>;
}

/// Keeps validated documents until their `expires_at`, shared by every instance where the
/// storage is.
#[async_trait]
pub trait DocumentCache: Send + Sync {
    async fn put(&self, url: &TokenDigest, document: &CachedDocument) -> Result<(), StorageError>;
    async fn get(&self, url: &TokenDigest) -> Result<Option<CachedDocument>, StorageError>;
    async fn remove(&self, url: &TokenDigest) -> Result<(), StorageError>;
}

/// Checks a fetched document against the client id it was fetched for: a JSON object whose
/// `client_id` is the URL byte for byte, with `client_name` and `redirect_uris`, no secret,
/// and `none` as its authentication method; every field under the registration rules.
pub fn validate(url: &DocumentUrl, body: &[u8], scopes: &Scope) -> Result<ClientMetadata, String> {
    let document: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|_| "the client metadata document is not a JSON object".to_owned())?;
    match document.get("client_id").and_then(|v| v.as_str()) {
        Some(id) if id == url.as_str() => {}
        Some(_) => return Err("the document's client_id is not the URL it was fetched from".into()),
        None => return Err("the document has no client_id".into()),
    }
    for required in ["client_name", "redirect_uris"] {
        if !document.contains_key(required) {
            return Err(format!("the document has no {required}"));
        }
    }
    if document.contains_key("client_secret") || document.contains_key("client_secret_expires_at") {
        return Err("the document carries a client secret, which a published document never may".into());
    }
    match document.get("token_endpoint_auth_method").and_then(|v| v.as_str()) {
        None | Some("none") => {}
        Some(other) => {
            let other: String = other.chars().take(50).collect();
            return Err(format!("token_endpoint_auth_method `{other}` is not supported for a metadata document; use `none`"));
        }
    }
    let mut request: RegistrationRequest = serde_json::from_value(serde_json::Value::Object(document))
        .map_err(|e| format!("the document's metadata is malformed: {e}"))?;
    request.token_endpoint_auth_method = Some("none".into());
    // A document serves every server the client talks to: scopes this one does not know are
    // not an error, only not asked for.
    request.scope = request.scope.map(|raw| raw.split(' ').filter(|s| scopes.contains(s)).collect::<Vec<_>>().join(" "));
    request.scope = request.scope.filter(|s| !s.is_empty());
    let metadata = request.validate(scopes).map_err(|e| format!("the document's metadata is invalid: {}", e.description))?;
    debug_assert_eq!(metadata.token_endpoint_auth_method, TokenEndpointAuthMethod::None);
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAUDE: &str = "https://claude.ai/oauth/mcp-oauth-client-metadata";

    fn scopes() -> Scope {
        Scope::parse("mcp").unwrap()
    }

    #[test]
    fn only_normalized_https_urls_with_a_path_name_documents() {
        assert_eq!(DocumentUrl::parse(CLAUDE).unwrap().host(), "claude.ai");
        assert!(DocumentUrl::parse("https://vscode.dev/oauth/client-metadata.json").is_some());
        for not in [
            "http://claude.ai/oauth/doc",
            "https://claude.ai/",
            "https://claude.ai",
            "https://claude.ai/a/../doc",
            "https://claude.ai/doc#x",
            "https://user:pw@claude.ai/doc",
            "HTTPS://claude.ai/doc",
            "https://Claude.ai/doc",
            "0f8c2b1e-client-id",
            "https://claude.ai/ doc",
        ] {
            assert!(DocumentUrl::parse(not).is_none(), "{not}");
        }
    }

    #[test]
    fn host_policy_allows_exact_names_and_suffixes_and_denial_wins() {
        let policy = HostPolicy::parse("claude.ai, *.vscode.dev", "evil.vscode.dev").unwrap();
        assert!(policy.permits("claude.ai"));
        assert!(policy.permits("Claude.AI"));
        assert!(policy.permits("insiders.vscode.dev"));
        assert!(!policy.permits("vscode.dev"), "a suffix names the hosts below it");
        assert!(!policy.permits("notclaude.ai"));
        assert!(!policy.permits("evil.vscode.dev"));
        assert!(!policy.permits("xvscode.dev"));
        let open = HostPolicy::parse("", "*.internal").unwrap();
        assert!(open.permits("anything.example"));
        assert!(!open.permits("a.internal"));
        assert!(HostPolicy::parse("*.", "").is_err());
        assert!(HostPolicy::parse("a b", "").is_err());
    }

    #[test]
    fn freshness_follows_the_answer_within_bounds() {
        let bounds = CacheBounds::default();
        assert_eq!(bounds.freshness(Caching::NoStore), None);
        assert_eq!(bounds.freshness(Caching::MaxAge(Duration::from_secs(5))), Some(Duration::from_secs(60)));
        assert_eq!(bounds.freshness(Caching::MaxAge(Duration::from_secs(600))), Some(Duration::from_secs(600)));
        assert_eq!(bounds.freshness(Caching::MaxAge(Duration::from_secs(10 * 86400))), Some(Duration::from_secs(86400)));
        assert_eq!(bounds.freshness(Caching::Unspecified), Some(Duration::from_secs(60)));
    }

    fn document(extra: serde_json::Value) -> Vec<u8> {
        let mut doc = serde_json::json!({
            "client_id": CLAUDE,
            "client_name": "Claude",
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none"
        });
        for (key, value) in extra.as_object().unwrap() {
            if value.is_null() {
                doc.as_object_mut().unwrap().remove(key);
            } else {
                doc[key] = value.clone();
            }
        }
        serde_json::to_vec(&doc).unwrap()
    }

    #[test]
    fn a_document_like_claudes_is_a_public_client() {
        let url = DocumentUrl::parse(CLAUDE).unwrap();
        let metadata = validate(&url, &document(serde_json::json!({})), &scopes()).unwrap();
        assert_eq!(metadata.token_endpoint_auth_method, TokenEndpointAuthMethod::None);
        assert_eq!(metadata.client_name.as_deref(), Some("Claude"));
        assert_eq!(metadata.redirect_uris.len(), 2);
        let without_method = document(serde_json::json!({"token_endpoint_auth_method": null}));
        assert!(validate(&url, &without_method, &scopes()).is_ok(), "none is the only method, and the default");
    }

    #[test]
    fn invalid_documents_are_refused_with_a_reason() {
        let url = DocumentUrl::parse(CLAUDE).unwrap();
        let cases = [
            (document(serde_json::json!({"client_id": "https://claude.ai/oauth/other"})), "not the URL"),
            (document(serde_json::json!({"client_id": format!("{CLAUDE}/")})), "not the URL"),
            (document(serde_json::json!({"client_id": null})), "no client_id"),
            (document(serde_json::json!({"client_name": null})), "no client_name"),
            (document(serde_json::json!({"redirect_uris": null})), "no redirect_uris"),
            (document(serde_json::json!({"client_secret": "s3cret"})), "client secret"),
            (document(serde_json::json!({"token_endpoint_auth_method": "client_secret_basic"})), "not supported"),
            (document(serde_json::json!({"redirect_uris": ["http://evil.example/cb"]})), "invalid"),
            (document(serde_json::json!({"redirect_uris": "https://claude.ai/cb"})), "malformed"),
            (document(serde_json::json!({"client_name": "Claude\u{202E}"})), "invalid"),
            (b"[1, 2]".to_vec(), "not a JSON object"),
            (b"<html>".to_vec(), "not a JSON object"),
        ];
        for (body, expected) in cases {
            let error = validate(&url, &body, &scopes()).unwrap_err();
            assert!(error.contains(expected), "{error} should say {expected}");
        }
    }
}
