//! One trip to the upstream identity provider: start it for a pending authorization request,
//! finish it at the callback, and keep the browser signed in. Also the upstream tokens' use by
//! MCP tools, refreshed when stale.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::identity::{AccessPolicy, UpstreamIdentity};
use super::ports::{LoginAttempt, LoginSession};
use super::provider::{IdentityProvider, UpstreamError};
use super::vault::{UpstreamTokens, VaultKey};
use crate::clock::Clock;
use crate::error::StorageError;
use crate::pkce::{CodeChallenge, CodeVerifier};
use crate::ports::{FamilyId, lifetime_end};
use crate::secret::{TokenDigest, generate_secret};
use crate::service::Stores;

#[derive(Debug, Clone)]
pub struct LoginSettings {
    pub policy: AccessPolicy,
    /// `LOGIN_SESSION_TTL`: how long a browser stays signed in.
    pub session_ttl: Duration,
    /// How long a trip to the upstream may take (the pending request's lifetime).
    pub attempt_ttl: Duration,
    pub key: VaultKey,
}

/// Where to send the browser, and the cookie value that binds the trip to it.
#[derive(Debug)]
pub struct LoginStart {
    pub redirect: Url,
    pub browser_secret: String,
    /// Names the browser cookie of this trip ([`attempt_tag`]), so that two trips in one
    /// browser do not overwrite each other.
    pub tag: String,
}

/// A short, public name for the trip that `state` identifies.
pub fn attempt_tag(state: &str) -> String {
    TokenDigest::of(state).to_hex()[..16].to_owned()
}

/// What the upstream sent to the callback.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A finished login: the new session's cookie value and the request it was for.
#[derive(Debug)]
pub struct SignedInBrowser {
    pub session_secret: String,
    pub session: LoginSession,
    pub pending: TokenDigest,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown, replayed or expired `state`, or a callback without one.
    #[error("this sign-in is unknown, expired or already used")]
    UnknownAttempt,
    /// The `state` belongs to a trip another browser started.
    #[error("this sign-in was started in another browser")]
    OtherBrowser,
    /// The user declined at the upstream: the client gets `access_denied` for `pending`.
    #[error("the user declined at the identity provider")]
    Declined { pending: TokenDigest },
    /// The access policy refused the user: a page says why, and the client gets
    /// `access_denied` for `pending`.
    #[error("{reason}")]
    Refused { pending: TokenDigest, reason: String },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why an MCP tool could not use the caller's upstream tokens.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamUse {
    #[error("no upstream sign-in is kept for this authorization")]
    Missing,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct Login {
    stores: Stores,
    provider: Arc<dyn IdentityProvider>,
    settings: LoginSettings,
    clock: Arc<dyn Clock>,
}

impl Login {
    pub fn new(stores: Stores, provider: Arc<dyn IdentityProvider>, settings: LoginSettings, clock: Arc<dyn Clock>) -> Self {
        Self { stores, provider, settings, clock }
    }

    pub fn provider_name(&self) -> &str {
        self.provider.name()
    }

    /// The PKCE verifier of the trip `state` names: derived, so no record holds it.
    fn verifier(&self, state: &str) -> String {
        self.settings.key.derive("pkce", state)
    }

    fn nonce(&self, state: &str) -> String {
        self.settings.key.derive("nonce", state)
    }

    /// Starts a trip to the upstream for the pending request named by `request_id`.
    #[tracing::instrument(name = "login.begin", level = "debug", skip_all)]
    pub async fn begin(&self, request_id: &str) -> Result<LoginStart, LoginError> {
        let (state, browser_secret) = (generate_secret(), generate_secret());
        let now = self.clock.now();
        let attempt = LoginAttempt {
            pending: TokenDigest::of(request_id),
            browser: TokenDigest::of(&browser_secret),
            created_at: now,
            expires_at: lifetime_end(now, self.settings.attempt_ttl),
        };
        self.stores.login_attempts.insert(&TokenDigest::of(&state), &attempt).await?;
        let verifier = CodeVerifier::parse(&self.verifier(&state)).expect("a derived secret is a valid verifier");
        let challenge = CodeChallenge::of(&verifier);
        let redirect = self.provider.authorization_url(&state, &self.nonce(&state), &challenge).await?;
        Ok(LoginStart { redirect, browser_secret, tag: attempt_tag(&state) })
    }

    /// Finishes a trip at the callback. The attempt is checked against this browser before it
    /// is used up, so a forged or misdirected callback leaves the real one working.
    #[tracing::instrument(name = "login.complete", level = "debug", skip_all)]
    pub async fn complete(&self, callback: &Callback, browser_secret: Option<&str>) -> Result<SignedInBrowser, LoginError> {
        let state = callback.state.as_deref().filter(|s| !s.is_empty()).ok_or(LoginError::UnknownAttempt)?;
        let key = TokenDigest::of(state);
        let attempt = self.stores.login_attempts.get(&key).await?.ok_or(LoginError::UnknownAttempt)?;
        if !browser_secret.is_some_and(|secret| attempt.browser.matches(secret)) {
            return Err(LoginError::OtherBrowser);
        }
        let attempt = self.stores.login_attempts.take(&key).await?.ok_or(LoginError::UnknownAttempt)?;
        if attempt.expires_at <= self.clock.now() {
            return Err(LoginError::UnknownAttempt);
        }
        if let Some(error) = &callback.error {
            let detail = callback.error_description.as_deref().unwrap_or("");
            if error == "access_denied" {
                return Err(LoginError::Declined { pending: attempt.pending });
            }
            return Err(UpstreamError::Refused(format!("{error} {detail}").trim().to_owned()).into());
        }
        let code = callback.code.as_deref().ok_or_else(|| UpstreamError::Invalid("the callback carries no code".into()))?;
        let (identity, tokens) = self.provider.redeem(code, &self.verifier(state), &self.nonce(state)).await?;
        if let Err(refusal) = self.settings.policy.admit(&identity) {
            tracing::warn!(subject = %identity.subject, "sign-in refused by the access policy");
            crate::audit::record(crate::audit::Event::Login, identity.subject.as_str(), "", "refused", &refusal.0);
            return Err(LoginError::Refused { pending: attempt.pending, reason: refusal.0 });
        }
        let session_secret = generate_secret();
        let session_key = TokenDigest::of(&session_secret);
        let now = self.clock.now();
        let session = LoginSession {
            tokens: self.settings.key.seal(&tokens, &session_key.to_hex()),
            identity,
            created_at: now,
            expires_at: lifetime_end(now, self.settings.session_ttl),
        };
        self.stores.login_sessions.insert(&session_key, &session).await?;
        tracing::info!(subject = %session.identity.subject, provider = self.provider.name(), "signed in at the upstream");
        let provider = self.provider.name();
        crate::audit::record(crate::audit::Event::Login, session.identity.subject.as_str(), "", "signed_in", provider);
        Ok(SignedInBrowser { session_secret, session, pending: attempt.pending })
    }

    /// The live session the cookie value names, if any.
    pub async fn session(&self, session_secret: &str) -> Result<Option<LoginSession>, StorageError> {
        let session = self.stores.login_sessions.get(&TokenDigest::of(session_secret)).await?;
        Ok(session.filter(|s| s.expires_at > self.clock.now()))
    }

    /// The upstream tokens of a session, for the approval that copies them to a family.
    pub fn session_tokens(&self, session_secret: &str, session: &LoginSession) -> Option<UpstreamTokens> {
        self.settings.key.open(&session.tokens, &TokenDigest::of(session_secret).to_hex())
    }

    pub async fn logout(&self, session_secret: &str) -> Result<(), StorageError> {
        self.stores.login_sessions.remove(&TokenDigest::of(session_secret)).await
    }

    /// Who the upstream says the family's user is.
    pub async fn identity(&self, family: &FamilyId) -> Result<UpstreamIdentity, UpstreamUse> {
        let grant = self.stores.upstream_tokens.get(family).await?.ok_or(UpstreamUse::Missing)?;
        Ok(grant.identity)
    }

    /// The upstream's userinfo for the family's user, with its stored access token, refreshed
    /// first when it is about to expire.
    pub async fn userinfo(&self, family: &FamilyId) -> Result<Value, UpstreamUse> {
        let mut grant = self.stores.upstream_tokens.get(family).await?.ok_or(UpstreamUse::Missing)?;
        let key = &self.settings.key;
        let mut tokens = key.open(&grant.tokens, family.as_str()).ok_or(UpstreamUse::Missing)?;
        if tokens.is_stale(self.clock.now()) && tokens.refresh_token.is_some() {
            let fresh = self.provider.refresh(&tokens).await?;
            tokens = UpstreamTokens { refresh_token: fresh.refresh_token.clone().or(tokens.refresh_token), ..fresh };
            grant.tokens = key.seal(&tokens, family.as_str());
            self.stores.upstream_tokens.put(family, &grant).await?;
            tracing::info!(family = %family, "upstream access token refreshed");
        }
        Ok(self.provider.userinfo(&tokens.access_token).await?)
    }
}
