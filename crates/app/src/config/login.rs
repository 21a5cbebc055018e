//! How users sign in: `LOGIN` and the upstream identity provider's settings.

use std::time::Duration;

use clap::{Args, ValueEnum};
use mcp_oauth_adapters::upstream::{UpstreamKind, UpstreamSettings};
use mcp_oauth_domain::login::{AccessPolicy, ClaimMapping, VaultKey};
use mcp_oauth_domain::resource::Issuer;

use super::{Secret, parse_duration, parse_http_url};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum LoginKind {
    /// Any name typed on the consent page becomes the user id: for a laptop only.
    Dev,
    /// Any OpenID Connect provider, discovered from UPSTREAM_ISSUER.
    Oidc,
    /// GitHub's OAuth apps (OAuth 2.0; identity from the user API).
    Github,
}

#[derive(Debug, Clone, Args)]
pub struct LoginConfig {
    /// dev, oidc or github. Default: dev when BASE_URI is a loopback URL; required otherwise.
    #[arg(long, env = "LOGIN", value_enum)]
    pub login: Option<LoginKind>,

    /// The OpenID Connect issuer; its /.well-known/openid-configuration is read.
    #[arg(long, env = "UPSTREAM_ISSUER", value_parser = parse_http_url)]
    pub upstream_issuer: Option<url::Url>,

    /// This server's client id at the upstream.
    #[arg(long, env = "UPSTREAM_CLIENT_ID")]
    pub upstream_client_id: Option<String>,

    #[arg(long, env = "UPSTREAM_CLIENT_SECRET", hide_env_values = true)]
    pub upstream_client_secret: Option<Secret>,

    /// Default: `openid email profile` (oidc), `read:user user:email` (github).
    #[arg(long, env = "UPSTREAM_SCOPES")]
    pub upstream_scopes: Option<String>,

    /// The claim that becomes our `sub`. Default: `sub` (oidc), `id` (github).
    #[arg(long, env = "UPSTREAM_SUBJECT_CLAIM")]
    pub upstream_subject_claim: Option<String>,

    /// The claim listing the user's groups, for ALLOWED_GROUPS.
    #[arg(long, env = "UPSTREAM_GROUPS_CLAIM")]
    pub upstream_groups_claim: Option<String>,

    #[arg(long, env = "UPSTREAM_AUTHORIZATION_URL", value_parser = parse_http_url)]
    pub upstream_authorization_url: Option<url::Url>,

    #[arg(long, env = "UPSTREAM_TOKEN_URL", value_parser = parse_http_url)]
    pub upstream_token_url: Option<url::Url>,

    #[arg(long, env = "UPSTREAM_USERINFO_URL", value_parser = parse_http_url)]
    pub upstream_userinfo_url: Option<url::Url>,

    /// Subjects or verified emails allowed to sign in (comma-separated).
    #[arg(long, env = "ALLOWED_USERS", value_delimiter = ',')]
    pub allowed_users: Vec<String>,

    #[arg(long, env = "ALLOWED_EMAIL_DOMAINS", value_delimiter = ',')]
    pub allowed_email_domains: Vec<String>,

    #[arg(long, env = "ALLOWED_GROUPS", value_delimiter = ',')]
    pub allowed_groups: Vec<String>,

    /// How long a browser stays signed in.
    #[arg(long, env = "LOGIN_SESSION_TTL", default_value = "8h", value_parser = parse_duration)]
    pub login_session_ttl: Duration,

    /// How long an approval is remembered; 0 asks every time.
    #[arg(long, env = "CONSENT_TTL", default_value = "30d", value_parser = parse_duration)]
    pub consent_ttl: Duration,

    /// 32 bytes, base64: seals stored upstream tokens. Generated when unset on a loopback
    /// BASE_URI; required otherwise. Every instance needs the same key.
    #[arg(long, env = "TOKEN_VAULT_KEY", hide_env_values = true)]
    pub token_vault_key: Option<Secret>,
}

/// The login in effect, checked at start-up.
#[derive(Debug, Clone)]
pub enum LoginSetup {
    /// The development login; `exposed` when BASE_URI is not a loopback URL.
    Dev {
        exposed: bool,
    },
    Upstream {
        upstream: Box<UpstreamSettings>,
        policy: AccessPolicy,
        session_ttl: Duration,
        key: VaultKey,
    },
}

fn list(values: &[String]) -> Vec<String> {
    values.iter().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect()
}

impl LoginConfig {
    pub fn setup(&self, issuer: &Issuer, loopback: bool) -> Result<LoginSetup, String> {
        let kind = match (self.login, loopback) {
            (Some(kind), _) => kind,
            (None, true) => LoginKind::Dev,
            (None, false) => {
                return Err("LOGIN must be set (oidc, github, or dev) when BASE_URI is not a loopback URL: \
                            the development login lets anyone sign in as anyone"
                    .into());
            }
        };
        let (upstream_kind, default_scopes, default_subject) = match kind {
            LoginKind::Dev => return Ok(LoginSetup::Dev { exposed: !loopback }),
            LoginKind::Oidc => (UpstreamKind::Oidc, "openid email profile", "sub"),
            LoginKind::Github => (UpstreamKind::Github, "read:user user:email", "id"),
        };
        let client_id = self.upstream_client_id.clone().ok_or("LOGIN=oidc or github needs UPSTREAM_CLIENT_ID")?;
        if upstream_kind == UpstreamKind::Oidc && self.upstream_issuer.is_none() {
            return Err("LOGIN=oidc needs UPSTREAM_ISSUER".into());
        }
        if upstream_kind == UpstreamKind::Github && self.upstream_client_secret.is_none() {
            return Err("LOGIN=github needs UPSTREAM_CLIENT_SECRET".into());
        }
        let key = match &self.token_vault_key {
            Some(raw) => VaultKey::parse(raw.expose()).map_err(|e| e.to_string())?,
            None if loopback => {
                tracing::warn!(
                    "TOKEN_VAULT_KEY is not set: a key was generated for this process, so stored upstream tokens and \
                     sign-ins in progress do not survive a restart or reach other instances"
                );
                VaultKey::generate()
            }
            None => return Err("TOKEN_VAULT_KEY is required when BASE_URI is not a loopback URL".into()),
        };
        let redirect_uri = url::Url::parse(&issuer.endpoint("/login/callback")).map_err(|e| format!("BASE_URI: {e}"))?;
        let upstream = UpstreamSettings {
            kind: upstream_kind,
            issuer: self.upstream_issuer.clone(),
            client_id,
            client_secret: self.upstream_client_secret.as_ref().map(|s| s.expose().to_owned()),
            scopes: self.upstream_scopes.clone().unwrap_or_else(|| default_scopes.to_owned()),
            redirect_uri,
            authorization_url: self.upstream_authorization_url.clone(),
            token_url: self.upstream_token_url.clone(),
            userinfo_url: self.upstream_userinfo_url.clone(),
            mapping: ClaimMapping {
                subject: self.upstream_subject_claim.clone().unwrap_or_else(|| default_subject.to_owned()),
                groups: self.upstream_groups_claim.clone(),
            },
        };
        let policy = AccessPolicy {
            users: list(&self.allowed_users),
            email_domains: list(&self.allowed_email_domains),
            groups: list(&self.allowed_groups),
        };
        if !policy.groups.is_empty() && upstream.mapping.groups.is_none() {
            return Err("ALLOWED_GROUPS needs UPSTREAM_GROUPS_CLAIM".into());
        }
        if self.login_session_ttl.is_zero() {
            return Err("LOGIN_SESSION_TTL must be positive".into());
        }
        Ok(LoginSetup::Upstream { upstream: Box::new(upstream), policy, session_ttl: self.login_session_ttl, key })
    }
}
