//! Token introspection (RFC 7662) and revocation (RFC 7009).

use serde::Serialize;

use crate::error::OAuthError;
use crate::ports::RefreshState;
use crate::secret::TokenDigest;

use super::client_auth::Introspector;
use super::{AuthorizationServer, ClientCredentials};

/// An introspection answer; an inactive token reveals nothing but `active: false`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

const REFRESH_TOKEN_TYPE: &str = "refresh_token";

#[derive(Clone, Copy)]
enum TokenKind {
    Access,
    Refresh,
}

/// `token_type_hint` only changes which store is searched first (RFC 7009 section 2.1).
fn lookup_order(hint: Option<&str>) -> [TokenKind; 2] {
    if hint == Some("refresh_token") { [TokenKind::Refresh, TokenKind::Access] } else { [TokenKind::Access, TokenKind::Refresh] }
}

impl AuthorizationServer {
    #[tracing::instrument(name = "oauth.introspect", level = "debug", skip_all)]
    pub async fn introspect(
        &self,
        credentials: &ClientCredentials,
        token: Option<&str>,
        hint: Option<&str>,
    ) -> Result<Introspection, OAuthError> {
        let caller = match self.authenticate_introspector(credentials).await {
            Ok(caller) => caller,
            Err(error) => {
                let client_id = credentials.client_id().unwrap_or("");
                crate::audit::record(crate::audit::Event::IntrospectionRefused, "", client_id, "refused", &error.description);
                return Err(error);
            }
        };
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let mut answer = None;
        for kind in lookup_order(hint) {
            answer = match kind {
                TokenKind::Access => self.introspect_access(token).await?,
                TokenKind::Refresh => self.introspect_refresh(token).await?,
            };
            if answer.is_some() {
                break;
            }
        }
        let visible = match (&caller, &answer) {
            // A refresh token is for the token endpoint alone: to a resource server, which
            // would take an active answer as leave to serve its bearer, it is not active.
            (Introspector::ResourceServer, Some(a)) => a.token_type != Some(REFRESH_TOKEN_TYPE),
            (Introspector::ResourceServer, None) => true,
            (Introspector::Client(client), Some(a)) => a.client_id.as_deref() == Some(client.client_id.as_str()),
            (Introspector::Client(_), None) => false,
        };
        Ok(answer.filter(|_| visible).unwrap_or_default())
    }

    async fn introspect_access(&self, token: &str) -> Result<Option<Introspection>, OAuthError> {
        let Some(record) = self.stores.access_tokens.get(&TokenDigest::of(token)).await? else {
            return Ok(None);
        };
        if record.expires_at <= self.clock.now() {
            return Ok(None);
        }
        Ok(Some(Introspection {
            active: true,
            client_id: Some(record.client_id.to_string()),
            sub: Some(record.subject.to_string()),
            scope: Some(record.scope.to_string()),
            exp: Some(record.expires_at.timestamp()),
            iat: Some(record.issued_at.timestamp()),
            aud: Some(record.audience.to_string()),
            iss: Some(self.policy.issuer.to_string()),
            token_type: Some("Bearer"),
        }))
    }

    async fn introspect_refresh(&self, token: &str) -> Result<Option<Introspection>, OAuthError> {
        let Some(record) = self.stores.refresh.get(&TokenDigest::of(token)).await? else {
            return Ok(None);
        };
        if record.state != RefreshState::Active || record.grant.expires_at <= self.clock.now() {
            return Ok(None);
        }
        let grant = record.grant;
        Ok(Some(Introspection {
            active: true,
            client_id: Some(grant.client_id.to_string()),
            sub: Some(grant.subject.to_string()),
            scope: Some(grant.scope.to_string()),
            exp: Some(grant.expires_at.timestamp()),
            iat: Some(grant.issued_at.timestamp()),
            aud: Some(grant.resource.to_string()),
            iss: Some(self.policy.issuer.to_string()),
            token_type: Some(REFRESH_TOKEN_TYPE),
        }))
    }

    /// Revokes an access token, or a refresh token together with its whole family. Unknown
    /// tokens are not an error (RFC 7009 section 2.2); another client's token is refused.
    #[tracing::instrument(name = "oauth.revoke", level = "debug", skip_all)]
    pub async fn revoke(
        &self,
        credentials: &ClientCredentials,
        token: Option<&str>,
        hint: Option<&str>,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate_client(credentials).await?;
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let digest = TokenDigest::of(token);
        let not_yours = || OAuthError::invalid_grant("the token was not issued to this client");
        let mut revoked = false;
        for kind in lookup_order(hint) {
            revoked = match kind {
                TokenKind::Access => match self.stores.access_tokens.get(&digest).await? {
                    Some(s) if s.client_id != client.client_id => return Err(not_yours()),
                    Some(_) => self.stores.access_tokens.remove(&digest).await.map(|()| true)?,
                    None => false,
                },
                TokenKind::Refresh => match self.stores.refresh.get(&digest).await? {
                    Some(r) if r.grant.client_id != client.client_id => return Err(not_yours()),
                    Some(r) => self.revoke_family(&r.grant.family).await.map(|()| true)?,
                    None => false,
                },
            };
            if revoked {
                break;
            }
        }
        tracing::info!(client_id = %client.client_id, revoked, "revocation request");
        let result = if revoked { "revoked" } else { "unknown_token" };
        crate::audit::record(crate::audit::Event::Revocation, "", client.client_id.as_str(), result, "");
        Ok(())
    }
}
