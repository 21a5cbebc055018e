//! Access-token validation for the resource server, behind one port so that a local store,
//! RFC 7662 introspection or JWT verification can each stand behind `/mcp`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::ports::SessionStore;
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
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// The token is unknown, expired, revoked or for another audience: answer 401.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// The validator could not decide: answer 503, never 401, or clients discard good tokens.
    #[error("token validation unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait TokenValidator: Send + Sync {
    async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenRejection>;
}

/// Validates tokens against this server's own session store: one storage read per request.
pub struct LocalTokenValidator {
    sessions: Arc<dyn SessionStore>,
    resource: ResourceUri,
    clock: Arc<dyn Clock>,
}

impl LocalTokenValidator {
    pub fn new(sessions: Arc<dyn SessionStore>, resource: ResourceUri, clock: Arc<dyn Clock>) -> Self {
        Self { sessions, resource, clock }
    }
}

#[async_trait]
impl TokenValidator for LocalTokenValidator {
    async fn validate(&self, token: &str) -> Result<ValidatedToken, TokenRejection> {
        let session = self
            .sessions
            .get(&TokenDigest::of(token))
            .await
            .map_err(|e| TokenRejection::Unavailable(e.to_string()))?
            .ok_or(TokenRejection::Invalid("unknown or revoked token"))?;
        if session.expires_at <= self.clock.now() {
            return Err(TokenRejection::Invalid("token expired"));
        }
        if session.audience != self.resource {
            return Err(TokenRejection::Invalid("token was issued for another resource"));
        }
        Ok(ValidatedToken {
            subject: session.subject,
            client_id: session.client_id,
            scope: session.scope,
            audience: vec![session.audience.to_string()],
            issued_at: Some(session.issued_at),
            expires_at: session.expires_at,
        })
    }
}
