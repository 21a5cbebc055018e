//! The token endpoint: code exchange (RFC 6749 4.1.3, RFC 7636 4.6) and refresh with rotation,
//! reuse detection and a grace window for lost responses.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::{self, Event};
use crate::client::Client;
use crate::error::{ErrorCode, OAuthError, StorageError};
use crate::grace::{SealedSuccessor, SuccessorPair};
use crate::grant::{GrantType, TokenRequest};
use crate::params::RequestParams;
use crate::pkce::CodeVerifier;
use crate::ports::{
    AccessTokenRecord, Admission, FamilyId, Issue, Redemption, RefreshGrant, RefreshRecord, RefreshState, Rotation, Successor,
};
use crate::resource::ResourceUri;
use crate::scope::Scope;
use crate::secret::{TokenDigest, generate_secret};

use super::{AuthorizationServer, ClientCredentials};

#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse").field("expires_in", &self.expires_in).field("scope", &self.scope).finish_non_exhaustive()
    }
}

/// The tokens to store for one issuance, generated before anything is written.
struct Issuance {
    access_token: String,
    refresh_token: Option<String>,
    record: AccessTokenRecord,
}

impl AuthorizationServer {
    /// The token endpoint: the grant type is read first, then the client authenticated, then
    /// the parameters of that grant.
    #[tracing::instrument(name = "oauth.token", level = "debug", skip_all)]
    pub async fn token(&self, credentials: &ClientCredentials, params: &RequestParams) -> Result<TokenResponse, OAuthError> {
        let grant_type = GrantType::from_params(params)?;
        let client = self.authenticate_client(credentials).await?;
        if !client.allows_grant(grant_type) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!("this client is not registered for {}", grant_type.as_str()),
            ));
        }
        match TokenRequest::parse(grant_type, params)? {
            TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier, resource } => {
                self.exchange_code(&client, &code, &redirect_uri, &code_verifier, resource.as_deref()).await
            }
            TokenRequest::RefreshToken { refresh_token, scope, resource } => {
                self.refresh(&client, &refresh_token, scope.as_deref(), resource.as_deref()).await
            }
        }
    }

    fn check_resource(&self, presented: Option<&str>, bound: &ResourceUri) -> Result<(), OAuthError> {
        match presented {
            None => Ok(()),
            Some(raw) if ResourceUri::parse(raw).as_ref() == Ok(bound) => Ok(()),
            Some(_) => Err(OAuthError::new(ErrorCode::InvalidTarget, format!("resource must be {bound}, as authorized"))),
        }
    }

    async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: &str,
        verifier: &CodeVerifier,
        resource: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let code_digest = TokenDigest::of(code);
        let grant = match self.stores.codes.redeem(&code_digest).await? {
            Redemption::Redeemed(grant) => grant,
            Redemption::Replayed { grant, issued } => {
                if issued {
                    tracing::warn!(client_id = %grant.client_id, "authorization code replayed; revoking its tokens");
                    self.revoke_family(&grant.family).await?;
                }
                let result = if issued { "family_revoked" } else { "refused" };
                audit::record(Event::CodeReuseDetected, grant.subject.as_str(), grant.client_id.as_str(), result, "");
                return Err(OAuthError::invalid_grant("authorization code was already used"));
            }
            Redemption::Unknown => return Err(OAuthError::invalid_grant("authorization code is invalid or expired")),
        };
        // The code is spent whatever happens below: a wrong guess must not leave it usable.
        if grant.client_id != client.client_id {
            return Err(OAuthError::invalid_grant("authorization code was issued to another client"));
        }
        if grant.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
        }
        if !grant.code_challenge.is_satisfied_by(verifier) {
            return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
        }
        self.check_resource(resource, &grant.resource)?;

        let refresh = RefreshGrant {
            client_id: grant.client_id,
            subject: grant.subject,
            scope: grant.scope,
            resource: grant.resource,
            family: grant.family,
            issued_at: self.clock.now(),
            expires_at: self.refresh_expiry(),
        };
        let issuance = self.prepare(client, &refresh, refresh.scope.clone());
        let refresh_digest = issuance.refresh_token.as_deref().map(TokenDigest::of);
        let tokens = Issue {
            access_token: &TokenDigest::of(&issuance.access_token),
            access: &issuance.record,
            refresh: refresh_digest.as_ref().map(|digest| (digest, &refresh)),
        };
        if self.stores.codes.issue(&code_digest, tokens).await? == Admission::FamilyRevoked {
            return Err(OAuthError::invalid_grant("authorization code was already used"));
        }
        tracing::info!(client_id = %client.client_id, "authorization code exchanged");
        audit::record(Event::CodeRedeemed, refresh.subject.as_str(), client.client_id.as_str(), "tokens_issued", "");
        Ok(self.response(&issuance))
    }

    fn prepare(&self, client: &Client, grant: &RefreshGrant, scope: Scope) -> Issuance {
        let now = self.clock.now();
        Issuance {
            access_token: generate_secret(),
            refresh_token: client.allows_grant(GrantType::RefreshToken).then(generate_secret),
            record: AccessTokenRecord {
                subject: grant.subject.clone(),
                client_id: grant.client_id.clone(),
                scope,
                audience: grant.resource.clone(),
                family: grant.family.clone(),
                issued_at: now,
                expires_at: now + self.policy.access_token_ttl,
                retained_until: self.lifetime_end(self.policy.lifetimes.access_token),
            },
        }
    }

    /// When a refresh token issued now expires.
    fn refresh_expiry(&self) -> DateTime<Utc> {
        self.lifetime_end(self.policy.lifetimes.refresh)
    }

    fn expires_in(&self, expires_at: DateTime<Utc>) -> i64 {
        (expires_at - self.clock.now()).num_seconds().max(0)
    }

    fn response(&self, issuance: &Issuance) -> TokenResponse {
        TokenResponse {
            access_token: issuance.access_token.clone(),
            token_type: "Bearer",
            expires_in: (issuance.record.expires_at - issuance.record.issued_at).num_seconds(),
            refresh_token: issuance.refresh_token.clone(),
            scope: issuance.record.scope.to_string(),
        }
    }

    async fn refresh(
        &self,
        client: &Client,
        presented: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let digest = TokenDigest::of(presented);
        let RefreshRecord { grant, state } = self
            .stores
            .refresh
            .get(&digest)
            .await?
            .filter(|record| record.grant.expires_at > self.clock.now())
            .ok_or_else(|| OAuthError::invalid_grant("refresh token is invalid, expired or revoked"))?;
        if grant.client_id != client.client_id {
            return Err(OAuthError::invalid_grant("refresh token was issued to another client"));
        }
        self.check_resource(resource, &grant.resource)?;
        // A narrower scope applies to the new access token only; the refresh token keeps the
        // original grant (RFC 6749 section 6).
        let scope = match scope {
            None => grant.scope.clone(),
            Some(raw) => Scope::parse(raw)
                .ok()
                .filter(|s| !s.is_empty() && s.is_subset_of(&grant.scope))
                .ok_or_else(|| OAuthError::new(ErrorCode::InvalidScope, format!("scope may only narrow: {}", grant.scope)))?,
        };

        if let RefreshState::Rotated { at, successor } = state {
            return self.reused(presented, &grant, at, &successor).await;
        }

        let successor_grant = RefreshGrant { issued_at: self.clock.now(), expires_at: self.refresh_expiry(), ..grant.clone() };
        let issuance = self.prepare(client, &successor_grant, scope);
        let successor_token = issuance.refresh_token.clone().unwrap_or_else(generate_secret);
        let sealed = SealedSuccessor::seal(
            presented,
            &SuccessorPair {
                access_token: issuance.access_token.clone(),
                refresh_token: successor_token.clone(),
                access_expires_at: issuance.record.expires_at,
                scope: issuance.record.scope.to_string(),
            },
        );
        // The successor's access token is stored with the rotation, so a grace-window retry
        // that reads the rotation never receives a token that does not work yet.
        let successor = Successor {
            token: &TokenDigest::of(&successor_token),
            grant: &successor_grant,
            access_token: &TokenDigest::of(&issuance.access_token),
            access: &issuance.record,
        };
        match self.stores.refresh.rotate(&digest, self.clock.now(), &sealed, successor).await? {
            Rotation::Rotated => {
                tracing::info!(client_id = %client.client_id, "refresh token rotated");
                audit::record(Event::RefreshRotated, grant.subject.as_str(), client.client_id.as_str(), "rotated", "");
                Ok(TokenResponse { refresh_token: Some(successor_token), ..self.response(&issuance) })
            }
            Rotation::AlreadyRotated { at, successor } => self.reused(presented, &grant, at, &successor).await,
            Rotation::Unknown => Err(OAuthError::invalid_grant("refresh token is invalid, expired or revoked")),
        }
    }

    /// A refresh token was presented again after its rotation. Within the grace window, and
    /// while its successor is unused, the client gets that successor again; otherwise this is
    /// treated as theft and the whole family is revoked.
    async fn reused(
        &self,
        presented: &str,
        grant: &RefreshGrant,
        rotated_at: DateTime<Utc>,
        sealed: &SealedSuccessor,
    ) -> Result<TokenResponse, OAuthError> {
        let within_grace = self.clock.now() - rotated_at <= self.policy.refresh_grace && !self.policy.refresh_grace.is_zero();
        if within_grace && let Some(pair) = sealed.open(presented) {
            let successor = self.stores.refresh.get(&TokenDigest::of(&pair.refresh_token)).await?;
            if successor.is_some_and(|s| s.state == RefreshState::Active) {
                tracing::info!("refresh retried within the grace window; returning the same successor");
                audit::record(Event::RefreshReuseDetected, grant.subject.as_str(), grant.client_id.as_str(), "grace_retry", "");
                return Ok(TokenResponse {
                    expires_in: self.expires_in(pair.access_expires_at),
                    access_token: pair.access_token,
                    token_type: "Bearer",
                    refresh_token: Some(pair.refresh_token),
                    scope: pair.scope,
                });
            }
        }
        tracing::warn!("rotated refresh token reused; revoking its family");
        self.revoke_family(&grant.family).await?;
        audit::record(Event::RefreshReuseDetected, grant.subject.as_str(), grant.client_id.as_str(), "family_revoked", "");
        Err(OAuthError::invalid_grant("refresh token was already used; the authorization has been revoked"))
    }

    pub(super) async fn revoke_family(&self, family: &FamilyId) -> Result<(), StorageError> {
        // Refresh first: once no refresh token can mint new access tokens, removing the
        // sessions is final.
        // Each tombstone outlives any member the family could still have been given.
        self.stores.refresh.revoke_family(family, self.refresh_expiry()).await?;
        let retention = self.lifetime_end(self.policy.lifetimes.access_token);
        self.stores.access_tokens.revoke_family(family, retention).await?;
        self.stores.upstream_tokens.remove(family).await?;
        Ok(())
    }
}
