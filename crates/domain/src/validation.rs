//! Access-token validation for the resource server, behind one port so that a local store,
//! RFC 7662 introspection or JWT verification can each stand behind `/mcp`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::ports::AccessTokenStore;
use crate::resource::ResourceUri;
use crate::scope::Scope;
use crate::secret::TokenDigest;

/// What the resource server knows about the caller once its token is validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedToken {
    pub subject: String,
    pub client_id: String,
    pub scope: Scope,
    pub audience: Vec<String>,
    pub issued_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    /// The authorization the token descends from, when this server issued it: MCP tools reach
    /// the user's upstream tokens through it.
    pub family: Option<crate::ports::FamilyId>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// The token is unknown, expired, revoked or for another audience: answer 401.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// The validator could not decide: answer 503, never 401, or clients discard good tokens.
    #[error("token validation unavailable: {0}")]
    Unavailable(String),
    /// The validator cannot work as configured (the authorization server refuses its
    /// credential): 503 to the client, an error naming the setting for the operator.
    #[error("token validation misconfigured: {0}")]
    Misconfigured(String),
}

#[async_trait]
pub trait TokenValidator: Send + Sync {
    async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenRejection>;

    /// Whether tokens can be validated now; readiness probes ask this. The reason, when not,
    /// names what to fix and never a secret.
    async fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Validates tokens against this server's own record store: one storage read per request.
pub struct LocalTokenValidator {
    access_tokens: Arc<dyn AccessTokenStore>,
    resource: ResourceUri,
    clock: Arc<dyn Clock>,
}

impl LocalTokenValidator {
    pub fn new(access_tokens: Arc<dyn AccessTokenStore>, resource: ResourceUri, clock: Arc<dyn Clock>) -> Self {
        Self { access_tokens, resource, clock }
    }
}

#[async_trait]
impl TokenValidator for LocalTokenValidator {
    async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenRejection> {
        let record = self
            .access_tokens
            .get(&TokenDigest::of(token))
            .await
            .map_err(|e| TokenRejection::Unavailable(e.to_string()))?
            .ok_or(TokenRejection::Invalid("unknown or revoked token"))?;
        if record.expires_at <= self.clock.now() {
            return Err(TokenRejection::Invalid("token expired"));
        }
        if record.audience != self.resource {
            return Err(TokenRejection::Invalid("token was issued for another resource"));
        }
        Ok(ValidatedToken {
            subject: record.subject.to_string(),
            client_id: record.client_id.to_string(),
            scope: record.scope,
            audience: vec![record.audience.to_string()],
            issued_at: Some(record.issued_at),
            expires_at: record.expires_at,
            family: Some(record.family),
        })
    }
}

/// What an external authorization server said about a token: the claims of an RFC 7662
/// introspection answer or of an RFC 9068 JWT access token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenClaims {
    /// Introspection's `active`; a verified JWT is active.
    pub active: bool,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub scope: Option<String>,
    pub audience: Vec<String>,
    pub issuer: Option<String>,
    pub expires_at: Option<i64>,
    pub issued_at: Option<i64>,
    pub not_before: Option<i64>,
    /// Introspection's `token_type`, where the answer names one.
    pub token_type: Option<String>,
}

/// Whether an introspection `token_type` names a refresh token, in the spellings providers use
/// (ours and RFC 8693's among them).
fn is_refresh_token_type(token_type: &str) -> bool {
    ["refresh_token", "refresh", "urn:ietf:params:oauth:token-type:refresh_token"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(token_type.trim()))
}

/// What this resource server requires of every token.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// The authorization server's issuer; a token that names another is refused.
    pub issuer: String,
    /// This resource; the token's audience must include it.
    pub resource: ResourceUri,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: chrono::Duration,
}

fn same_resource(claimed: &str, resource: &ResourceUri) -> bool {
    ResourceUri::parse(claimed).is_ok_and(|r| &r == resource)
}

/// The rules every externally validated token must meet: active, unexpired, not before its
/// time, from our issuer, and for this resource.
pub fn accept_claims(claims: TokenClaims, expected: &Expectations, now: DateTime<Utc>) -> Result<ValidatedToken, TokenRejection> {
    if !claims.active {
        return Err(TokenRejection::Invalid("token is not active"));
    }
    if claims.token_type.as_deref().is_some_and(is_refresh_token_type) {
        return Err(TokenRejection::Invalid("a refresh token is not an access token"));
    }
    let now_secs = now.timestamp();
    let leeway = expected.leeway.num_seconds();
    let expires_at = claims.expires_at.ok_or(TokenRejection::Invalid("token has no expiry"))?;
    if expires_at + leeway <= now_secs {
        return Err(TokenRejection::Invalid("token expired"));
    }
    if claims.not_before.is_some_and(|nbf| nbf - leeway > now_secs) {
        return Err(TokenRejection::Invalid("token is not valid yet"));
    }
    match claims.issuer.as_deref() {
        Some(issuer) if issuer.trim_end_matches('/') == expected.issuer.trim_end_matches('/') => {}
        Some(_) => {
            return Err(TokenRejection::Invalid("token was issued by another authorization server"));
        }
        None => return Err(TokenRejection::Invalid("token names no issuer")),
    }
    if !claims.audience.iter().any(|aud| same_resource(aud, &expected.resource)) {
        return Err(TokenRejection::Invalid("token was issued for another resource"));
    }
    let expires_at = DateTime::from_timestamp(expires_at, 0).ok_or(TokenRejection::Invalid("token expiry is out of range"))?;
    Ok(ValidatedToken {
        subject: claims.subject.ok_or(TokenRejection::Invalid("token names no subject"))?,
        client_id: claims.client_id.unwrap_or_default(),
        scope: Scope::parse(claims.scope.as_deref().unwrap_or_default()).unwrap_or_default(),
        audience: claims.audience,
        issued_at: claims.issued_at.and_then(|iat| DateTime::from_timestamp(iat, 0)),
        expires_at,
        family: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expectations {
        Expectations {
            issuer: "https://auth.example".into(),
            resource: ResourceUri::parse("https://mcp.example/mcp").unwrap(),
            leeway: chrono::Duration::seconds(30),
        }
    }

    fn claims(now: i64) -> TokenClaims {
        TokenClaims {
            active: true,
            subject: Some("alice".into()),
            client_id: Some("c".into()),
            scope: Some("mcp".into()),
            audience: vec!["https://other.example".into(), "https://mcp.example/mcp".into()],
            issuer: Some("https://auth.example/".into()),
            expires_at: Some(now + 60),
            issued_at: Some(now),
            not_before: None,
            token_type: None,
        }
    }

    #[test]
    fn good_claims_pass_and_each_broken_rule_fails() {
        let now = Utc::now();
        let t = now.timestamp();
        assert_eq!(accept_claims(claims(t), &expected(), now).unwrap().subject, "alice");
        let cases: Vec<(TokenClaims, &str)> = vec![
            (TokenClaims { active: false, ..claims(t) }, "not active"),
            (TokenClaims { expires_at: Some(t - 31), ..claims(t) }, "expired"),
            (TokenClaims { expires_at: None, ..claims(t) }, "no expiry"),
            (TokenClaims { not_before: Some(t + 31), ..claims(t) }, "not valid yet"),
            (TokenClaims { issuer: Some("https://evil.example".into()), ..claims(t) }, "another authorization server"),
            (TokenClaims { issuer: None, ..claims(t) }, "no issuer"),
            (TokenClaims { audience: vec!["https://mcp.example/other".into()], ..claims(t) }, "another resource"),
            (TokenClaims { subject: None, ..claims(t) }, "no subject"),
            (TokenClaims { token_type: Some("refresh_token".into()), ..claims(t) }, "refresh token"),
            (TokenClaims { token_type: Some("Refresh_Token".into()), ..claims(t) }, "refresh token"),
            (
                TokenClaims { token_type: Some("urn:ietf:params:oauth:token-type:refresh_token".into()), ..claims(t) },
                "refresh token",
            ),
        ];
        for (broken, reason) in cases {
            match accept_claims(broken, &expected(), now) {
                Err(TokenRejection::Invalid(message)) => {
                    assert!(message.contains(reason), "{message} vs {reason}")
                }
                other => panic!("expected {reason}, got {other:?}"),
            }
        }
        let within_leeway = TokenClaims { expires_at: Some(t - 10), not_before: Some(t + 10), ..claims(t) };
        assert!(accept_claims(within_leeway, &expected(), now).is_ok(), "small clock skew is tolerated");
        let bearer = TokenClaims { token_type: Some("Bearer".into()), ..claims(t) };
        assert!(accept_claims(bearer, &expected(), now).is_ok(), "an access token's type is accepted");
    }
}
