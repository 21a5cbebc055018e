//! Token validation against an external authorization server: discovery of its metadata, RFC
//! 7662 introspection and RFC 9068 JWT access tokens. The claim rules live in the domain
//! (`accept_claims`); this module fetches and verifies.

mod claims;
mod discovery;
mod introspection;
mod jwks;
pub(crate) mod jwt;

use std::time::Duration;

pub use discovery::{AuthorizationServerMetadata, discover};
pub use introspection::{IntrospectionAuth, IntrospectionValidator};
pub use jwks::{JwksCache, JwksError};
pub use jwt::JwtValidator;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One pooled HTTP client for all calls to the authorization server, with bounded waits.
pub fn http_client() -> reqwest::Client {
    crate::install_tls_provider();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .expect("an HTTP client with rustls and ring builds")
}

use std::sync::Arc;

use async_trait::async_trait;
use mcp_oauth_domain::resource::ResourceUri;
use mcp_oauth_domain::validation::{Expectations, TokenRejection, TokenValidator, ValidatedToken};
use tokio::sync::OnceCell;
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationMethod {
    Introspection,
    Jwt,
}

/// Everything needed to validate tokens of an external authorization server.
#[derive(Debug, Clone)]
pub struct ExternalSettings {
    /// The authorization server's issuer identifier, from which metadata is discovered.
    pub issuer: Url,
    pub resource: ResourceUri,
    pub method: ValidationMethod,
    /// Overrides the discovered introspection endpoint.
    pub introspection_url: Option<String>,
    pub credentials: Option<(String, String)>,
    pub introspection_auth: IntrospectionAuth,
    pub cache_ttl: Duration,
    /// Overrides the discovered `jwks_uri`.
    pub jwks_url: Option<String>,
    pub jwks_refresh_interval: Duration,
    pub jwt_types: Vec<String>,
    pub leeway: chrono::Duration,
}

/// The validator the settings call for, set up on first use: discovery needs the
/// authorization server, and while it is unreachable requests get 503, not a dead process.
pub struct ExternalValidator {
    settings: ExternalSettings,
    client: reqwest::Client,
    inner: OnceCell<Arc<dyn TokenValidator>>,
}

impl ExternalValidator {
    pub fn new(settings: ExternalSettings) -> Self {
        Self { settings, client: http_client(), inner: OnceCell::new() }
    }

    async fn build(&self) -> Result<Arc<dyn TokenValidator>, TokenRejection> {
        let s = &self.settings;
        let needs_discovery = match s.method {
            ValidationMethod::Introspection => s.introspection_url.is_none(),
            ValidationMethod::Jwt => s.jwks_url.is_none(),
        };
        let metadata = if needs_discovery {
            Some(discover(&self.client, &s.issuer).await.map_err(TokenRejection::Unavailable)?)
        } else {
            None
        };
        let issuer =
            metadata.as_ref().map(|m| m.issuer.clone()).unwrap_or_else(|| s.issuer.as_str().trim_end_matches('/').to_owned());
        let expected = Expectations { issuer, resource: s.resource.clone(), leeway: s.leeway };
        let missing = |what: &str| TokenRejection::Unavailable(format!("the authorization server publishes no {what}"));
        Ok(match s.method {
            ValidationMethod::Introspection => {
                let endpoint = match &s.introspection_url {
                    Some(url) => url.clone(),
                    None => metadata.and_then(|m| m.introspection_endpoint).ok_or_else(|| missing("introspection_endpoint"))?,
                };
                let credentials = s.credentials.clone().unwrap_or_default();
                Arc::new(IntrospectionValidator::new(
                    self.client.clone(),
                    endpoint,
                    credentials,
                    s.introspection_auth,
                    expected,
                    s.cache_ttl,
                ))
            }
            ValidationMethod::Jwt => {
                let jwks_uri = match &s.jwks_url {
                    Some(url) => url.clone(),
                    None => metadata.and_then(|m| m.jwks_uri).ok_or_else(|| missing("jwks_uri"))?,
                };
                Arc::new(JwtValidator::new(self.client.clone(), jwks_uri, expected, s.jwt_types.clone(), s.jwks_refresh_interval))
            }
        })
    }
}

#[async_trait]
impl TokenValidator for ExternalValidator {
    async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenRejection> {
        let inner = self.inner.get_or_try_init(|| self.build()).await?;
        inner.validate(token).await
    }

    async fn readiness(&self) -> Result<(), String> {
        let inner = self.inner.get_or_try_init(|| self.build()).await.map_err(|e| e.to_string())?;
        inner.readiness().await
    }
}
