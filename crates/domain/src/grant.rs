//! What this server supports, as types: grant types (RFC 6749 section 4), response types, and
//! the token request, one variant per grant, built from the form parameters. Metadata lists
//! are derived from these, never repeated by hand.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, OAuthError};
use crate::params::RequestParams;
use crate::pkce::CodeVerifier;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [Self; 2] = [Self::AuthorizationCode, Self::RefreshToken];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == raw)
    }

    /// The `grant_type` parameter: present, once, and supported.
    pub fn from_params(params: &RequestParams) -> Result<Self, OAuthError> {
        let raw = params.single("grant_type")?.ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        Self::parse(raw).ok_or_else(|| {
            let supported: Vec<&str> = Self::ALL.iter().map(|g| g.as_str()).collect();
            OAuthError::new(ErrorCode::UnsupportedGrantType, format!("grant_type must be {}", supported.join(" or ")))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    Code,
}

impl ResponseType {
    pub const ALL: [Self; 1] = [Self::Code];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

/// A token request, once its parameters are read: one variant per grant, each with what that
/// grant needs.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenRequest {
    AuthorizationCode { code: String, redirect_uri: String, code_verifier: CodeVerifier, resource: Option<String> },
    RefreshToken { refresh_token: String, scope: Option<String>, resource: Option<String> },
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AuthorizationCode { .. } => "TokenRequest::AuthorizationCode",
            Self::RefreshToken { .. } => "TokenRequest::RefreshToken",
        })
    }
}

fn required(params: &RequestParams, name: &str) -> Result<String, OAuthError> {
    params.owned(name)?.ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

impl TokenRequest {
    /// Reads the parameters `grant` needs from the form: each at most once, the required ones
    /// present, the code verifier well-formed.
    pub fn parse(grant: GrantType, params: &RequestParams) -> Result<Self, OAuthError> {
        let resource = params.owned("resource")?;
        Ok(match grant {
            GrantType::AuthorizationCode => {
                let code = required(params, "code")?;
                let redirect_uri = required(params, "redirect_uri")?;
                let code_verifier = CodeVerifier::parse(&required(params, "code_verifier")?)
                    .map_err(|e| OAuthError::invalid_request(e.to_string()))?;
                Self::AuthorizationCode { code, redirect_uri, code_verifier, resource }
            }
            GrantType::RefreshToken => {
                Self::RefreshToken { refresh_token: required(params, "refresh_token")?, scope: params.owned("scope")?, resource }
            }
        })
    }

    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> RequestParams {
        RequestParams::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn each_grant_needs_its_own_parameters() {
        let verifier = "v".repeat(43);
        let code = params(&[("code", "c"), ("redirect_uri", "https://a.example/cb"), ("code_verifier", &verifier)]);
        let parsed = TokenRequest::parse(GrantType::AuthorizationCode, &code).unwrap();
        assert_eq!(parsed.grant_type(), GrantType::AuthorizationCode);
        for missing in ["code", "redirect_uri", "code_verifier"] {
            let pairs: Vec<(&str, &str)> =
                [("code", "c"), ("redirect_uri", "https://a.example/cb"), ("code_verifier", verifier.as_str())]
                    .into_iter()
                    .filter(|(k, _)| *k != missing)
                    .collect();
            let error = TokenRequest::parse(GrantType::AuthorizationCode, &params(&pairs)).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidRequest, "{missing}");
            assert!(error.description.contains(missing));
        }
        let short = params(&[("code", "c"), ("redirect_uri", "https://a.example/cb"), ("code_verifier", "short")]);
        assert_eq!(TokenRequest::parse(GrantType::AuthorizationCode, &short).unwrap_err().code, ErrorCode::InvalidRequest);
        let refresh = TokenRequest::parse(GrantType::RefreshToken, &params(&[("refresh_token", "r"), ("scope", "mcp")])).unwrap();
        assert_eq!(refresh.grant_type(), GrantType::RefreshToken);
        let repeated = params(&[("refresh_token", "r"), ("refresh_token", "s")]);
        assert!(TokenRequest::parse(GrantType::RefreshToken, &repeated).is_err());
    }

    #[test]
    fn grant_types_parse_from_their_names_only() {
        assert_eq!(GrantType::from_params(&params(&[("grant_type", "refresh_token")])).unwrap(), GrantType::RefreshToken);
        let unknown = GrantType::from_params(&params(&[("grant_type", "password")])).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::UnsupportedGrantType);
        assert_eq!(GrantType::from_params(&params(&[])).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(ResponseType::parse("code"), Some(ResponseType::Code));
        assert_eq!(ResponseType::parse("token"), None);
    }
}
