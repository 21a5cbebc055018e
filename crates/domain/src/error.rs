//! The one protocol error type, translated into HTTP only at the edge.

use std::borrow::Cow;

use serde::Serialize;

/// Error codes of RFC 6749 section 5.2 and 4.1.2.1, RFC 7591 section 3.2.2, RFC 8707 and
/// RFC 6750.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    InvalidRedirectUri,
    InvalidClientMetadata,
    InvalidToken,
    TemporarilyUnavailable,
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidToken => "invalid_token",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }

    /// The HTTP status for this error when it is answered directly rather than by redirect.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::AccessDenied => 403,
            Self::TemporarilyUnavailable => 503,
            Self::ServerError => 500,
            _ => 400,
        }
    }
}

/// A protocol error: the RFC code, a human-readable description, whether the client
/// authenticated with HTTP Basic (then a 401 carries `WWW-Authenticate: Basic`), and the
/// internal cause, which the HTTP edge logs and never sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    pub basic_auth_challenge: bool,
    pub cause: Option<String>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self { code, description: description.into(), basic_auth_challenge: false, cause: None }
    }

    /// This error, remembering what went wrong inside (a backend's message).
    pub fn with_cause(self, cause: impl std::fmt::Display) -> Self {
        Self { cause: Some(cause.to_string()), ..self }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_client(description: impl Into<Cow<'static, str>>, basic_auth_challenge: bool) -> Self {
        Self { basic_auth_challenge, ..Self::new(ErrorCode::InvalidClient, description) }
    }

    pub fn status(&self) -> u16 {
        self.code.http_status()
    }
}

/// A storage backend failed. Adapters translate their own errors into this at the port seam.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The backend could not be reached or did not answer in time; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with data this version cannot read.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<StorageError> for OAuthError {
    fn from(error: StorageError) -> Self {
        let public = match &error {
            StorageError::Unavailable(_) => Self::new(
                ErrorCode::TemporarilyUnavailable,
                "the authorization server's storage is unavailable; try again shortly",
            ),
            StorageError::Corrupt(_) => Self::new(ErrorCode::ServerError, "stored data could not be read"),
        };
        public.with_cause(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_failure_keeps_its_cause_behind_a_public_description() {
        let error = OAuthError::from(StorageError::Unavailable("redis: connection refused".into()));
        assert_eq!(error.code, ErrorCode::TemporarilyUnavailable);
        assert!(!error.description.contains("redis"), "the description is for clients");
        assert_eq!(error.cause.as_deref(), Some("storage unavailable: redis: connection refused"));
        assert_eq!(OAuthError::invalid_request("x").cause, None);
    }
}
