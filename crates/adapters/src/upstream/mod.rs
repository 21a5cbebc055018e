//! The upstream identity provider over HTTP: OpenID Connect (discovery, code exchange with
//! PKCE, ID token verified against the provider's JWKS, userinfo) and GitHub's OAuth 2.0 apps
//! (code exchange, identity from the user API). What the answers must say is the domain's
//! (`check_id_token`, `ClaimMapping`); this module fetches and verifies signatures.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use jsonwebtoken::Validation;
use mcp_oauth_domain::login::{
    ClaimMapping, IdTokenExpectations, IdentityProvider, UpstreamError, UpstreamIdentity, UpstreamTokens, check_id_token,
};
use mcp_oauth_domain::pkce::CodeChallenge;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use url::Url;

use crate::external::{JwksCache, JwksError};

const GITHUB_AUTHORIZATION_URL: &str = "https://github.com/login/oauth/authorize";
const GITHUB_TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
const GITHUB_USER_URL: &str = "https://api.github.com/user";
const JWKS_REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    Oidc,
    Github,
}

/// Everything needed to sign users in at one provider. `Debug` leaves the secret out.
#[derive(Clone)]
pub struct UpstreamSettings {
    pub kind: UpstreamKind,
    /// OIDC: discovery starts here, and ID tokens must name it.
    pub issuer: Option<Url>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: String,
    /// Our callback, `BASE_URI/login/callback`.
    pub redirect_uri: Url,
    /// Override (or, for GitHub, replace) what discovery would say.
    pub authorization_url: Option<Url>,
    pub token_url: Option<Url>,
    pub userinfo_url: Option<Url>,
    pub mapping: ClaimMapping,
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer.as_ref().map(Url::as_str))
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("scopes", &self.scopes)
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("mapping", &self.mapping)
            .finish_non_exhaustive()
    }
}

struct Endpoints {
    issuer: Option<String>,
    authorization: Url,
    token: Url,
    userinfo: Option<Url>,
    jwks: Option<JwksCache>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
    userinfo_endpoint: Option<Url>,
    jwks_uri: Url,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    id_token: Option<String>,
}

pub struct UpstreamProvider {
    http: reqwest::Client,
    settings: UpstreamSettings,
    name: String,
    endpoints: OnceCell<Endpoints>,
}

fn unavailable(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Unavailable(e.to_string())
}

impl UpstreamProvider {
    pub fn new(settings: UpstreamSettings) -> Self {
        let name = match (settings.kind, &settings.issuer) {
            (UpstreamKind::Github, _) => "GitHub".to_owned(),
            (UpstreamKind::Oidc, Some(issuer)) => issuer.host_str().unwrap_or("the identity provider").to_owned(),
            (UpstreamKind::Oidc, None) => "the identity provider".to_owned(),
        };
        Self { http: crate::external::http_client(), settings, name, endpoints: OnceCell::new() }
    }

    /// Discovers the provider's endpoints once; a failure is retried on the next call.
    async fn endpoints(&self) -> Result<&Endpoints, UpstreamError> {
        self.endpoints.get_or_try_init(|| self.discover()).await
    }

    async fn discover(&self) -> Result<Endpoints, UpstreamError> {
        let s = &self.settings;
        let pick =
            |given: &Option<Url>, default: &str| given.clone().unwrap_or_else(|| Url::parse(default).expect("a valid URL"));
        if s.kind == UpstreamKind::Github {
            return Ok(Endpoints {
                issuer: None,
                authorization: pick(&s.authorization_url, GITHUB_AUTHORIZATION_URL),
                token: pick(&s.token_url, GITHUB_TOKEN_URL),
                userinfo: Some(pick(&s.userinfo_url, GITHUB_USER_URL)),
                jwks: None,
            });
        }
        let issuer = s.issuer.as_ref().ok_or_else(|| UpstreamError::Invalid("UPSTREAM_ISSUER is not set".into()))?;
        let url = format!("{}/.well-known/openid-configuration", issuer.as_str().trim_end_matches('/'));
        let response = crate::outbound::send("identity_provider", "discovery", self.http.get(&url))
            .await
            .map_err(|e| unavailable(format!("discovery at {url}: {e}")))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("discovery at {url}: HTTP {}", response.status())));
        }
        let found: Discovery = response.json().await.map_err(|e| UpstreamError::Invalid(format!("discovery at {url}: {e}")))?;
        if found.issuer.trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
            return Err(UpstreamError::Invalid(format!("discovery names issuer {}, not {issuer}", found.issuer)));
        }
        Ok(Endpoints {
            authorization: s.authorization_url.clone().unwrap_or(found.authorization_endpoint),
            token: s.token_url.clone().unwrap_or(found.token_endpoint),
            userinfo: s.userinfo_url.clone().or(found.userinfo_endpoint),
            jwks: Some(JwksCache::new(self.http.clone(), found.jwks_uri.to_string(), JWKS_REFRESH)),
            issuer: Some(found.issuer),
        })
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenAnswer, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let s = &self.settings;
        let mut request = self.http.post(endpoints.token.clone()).header("accept", "application/json");
        let mut form = form.to_vec();
        match (s.kind, &s.client_secret) {
            (UpstreamKind::Oidc, Some(secret)) => request = request.basic_auth(urlencode(&s.client_id), Some(urlencode(secret))),
            (_, secret) => {
                form.push(("client_id", &s.client_id));
                if let Some(secret) = secret {
                    form.push(("client_secret", secret));
                }
            }
        }
        let response = crate::outbound::send("identity_provider", "token", request.form(&form)).await.map_err(unavailable)?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| unavailable(format!("token endpoint answer: {e}")))?;
        if status.is_server_error() {
            return Err(unavailable(format!("token endpoint: HTTP {status}")));
        }
        if let Some(error) = body.get("error").and_then(Value::as_str) {
            return Err(UpstreamError::Refused(format!("token endpoint: {error}")));
        }
        if !status.is_success() {
            return Err(UpstreamError::Refused(format!("token endpoint: HTTP {status}")));
        }
        serde_json::from_value(body).map_err(|e| UpstreamError::Invalid(format!("token endpoint answer: {e}")))
    }

    async fn verify_id_token(&self, id_token: &str, nonce: &str) -> Result<Map<String, Value>, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let invalid = |m: &str| UpstreamError::Invalid(format!("ID token {m}"));
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| invalid("is malformed"))?;
        if !crate::external::jwt::ALLOWED.contains(&header.alg) {
            return Err(invalid("uses an algorithm that is not allowed"));
        }
        let jwks = endpoints.jwks.as_ref().ok_or_else(|| invalid("cannot be verified without a JWKS"))?;
        let key = jwks.key(&header.kid).await.map_err(|e| match e {
            JwksError::Unavailable(detail) => UpstreamError::Unavailable(detail),
            JwksError::UnknownKey => invalid("is signed with an unknown key"),
        })?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &validation)
            .map_err(|_| invalid("has a bad signature"))?
            .claims;
        let expected = IdTokenExpectations {
            issuer: endpoints.issuer.as_deref().unwrap_or_default(),
            client_id: &self.settings.client_id,
            nonce,
            now: Utc::now(),
            leeway_secs: 60,
        };
        check_id_token(&claims, &expected)?;
        Ok(claims)
    }

    async fn get_json(&self, url: Url, access_token: &str) -> Result<Value, UpstreamError> {
        let request = self
            .http
            .get(url.clone())
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .header("user-agent", "mcp-oauth-server");
        let response = crate::outbound::send("identity_provider", "userinfo", request).await.map_err(unavailable)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(unavailable(format!("{}: HTTP {status}", url.path())));
        }
        if !status.is_success() {
            return Err(UpstreamError::Refused(format!("{}: HTTP {status}", url.path())));
        }
        response.json().await.map_err(|e| UpstreamError::Invalid(format!("{}: {e}", url.path())))
    }

    /// GitHub's `/user` gives only the public email; the verified primary one comes from
    /// `/user/emails` (scope `user:email`). Failing that, no email is verified.
    async fn github_verified_email(&self, user_url: &Url, access_token: &str) -> Option<String> {
        let emails_url = Url::parse(&format!("{}/emails", user_url.as_str().trim_end_matches('/'))).ok()?;
        let emails = self.get_json(emails_url, access_token).await.ok()?;
        emails.as_array()?.iter().find_map(|e| {
            let verified = e.get("verified").and_then(Value::as_bool) == Some(true);
            let primary = e.get("primary").and_then(Value::as_bool) == Some(true);
            (verified && primary).then(|| e.get("email").and_then(Value::as_str).map(str::to_owned)).flatten()
        })
    }

    fn tokens(answer: &TokenAnswer) -> UpstreamTokens {
        UpstreamTokens {
            access_token: answer.access_token.clone(),
            refresh_token: answer.refresh_token.clone(),
            expires_at: answer.expires_in.map(|secs| Utc::now() + chrono::Duration::seconds(secs.clamp(0, 10 * 365 * 86_400))),
        }
    }
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[async_trait]
impl IdentityProvider for UpstreamProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn authorization_url(&self, state: &str, nonce: &str, challenge: &CodeChallenge) -> Result<Url, UpstreamError> {
        let mut url = self.endpoints().await?.authorization.clone();
        let s = &self.settings;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &s.client_id)
            .append_pair("redirect_uri", s.redirect_uri.as_str())
            .append_pair("scope", &s.scopes)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        if s.kind == UpstreamKind::Oidc {
            url.query_pairs_mut().append_pair("nonce", nonce);
        }
        Ok(url)
    }

    async fn redeem(&self, code: &str, verifier: &str, nonce: &str) -> Result<(UpstreamIdentity, UpstreamTokens), UpstreamError> {
        let redirect_uri = self.settings.redirect_uri.to_string();
        let form =
            [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", &redirect_uri), ("code_verifier", verifier)];
        let answer = self.token_request(&form).await?;
        let tokens = Self::tokens(&answer);
        let endpoints = self.endpoints().await?;
        let mut claims = Map::new();
        if self.settings.kind == UpstreamKind::Oidc {
            let id_token = answer.id_token.as_deref().ok_or_else(|| UpstreamError::Invalid("no ID token was returned".into()))?;
            claims = self.verify_id_token(id_token, nonce).await?;
        }
        if let Some(userinfo) = &endpoints.userinfo {
            let Value::Object(info) = self.get_json(userinfo.clone(), &tokens.access_token).await? else {
                return Err(UpstreamError::Invalid("userinfo is not a JSON object".into()));
            };
            if let (Some(id_sub), Some(info_sub)) = (claims.get("sub"), info.get("sub"))
                && id_sub != info_sub
            {
                return Err(UpstreamError::Invalid("userinfo is about another user than the ID token".into()));
            }
            for (name, value) in info {
                claims.entry(name).or_insert(value);
            }
            if self.settings.kind == UpstreamKind::Github
                && claims.get("email_verified").is_none()
                && let Some(email) = self.github_verified_email(userinfo, &tokens.access_token).await
            {
                claims.insert("email".into(), Value::String(email));
                claims.insert("email_verified".into(), Value::Bool(true));
            }
        }
        let identity = self.settings.mapping.identity(&claims, &self.name)?;
        Ok((identity, tokens))
    }

    async fn refresh(&self, tokens: &UpstreamTokens) -> Result<UpstreamTokens, UpstreamError> {
        let refresh = tokens.refresh_token.as_deref().ok_or_else(|| UpstreamError::Refused("no refresh token".into()))?;
        let answer = self.token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await?;
        Ok(Self::tokens(&answer))
    }

    async fn userinfo(&self, access_token: &str) -> Result<Value, UpstreamError> {
        let url = self
            .endpoints()
            .await?
            .userinfo
            .clone()
            .ok_or_else(|| UpstreamError::Invalid("the provider has no userinfo endpoint".into()))?;
        self.get_json(url, access_token).await
    }
}
