//! Registered clients and dynamic client registration (RFC 7591).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, OAuthError};
use crate::redirect_uri::{RedirectUri, RedirectUriError};
use crate::scope::Scope;
use crate::secret::TokenDigest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    /// A public client: it proves possession with PKCE only.
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl TokenEndpointAuthMethod {
    pub const ALL: [&'static str; 3] = ["client_secret_basic", "client_secret_post", "none"];

    pub fn is_confidential(self) -> bool {
        self != Self::None
    }
}

pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";

/// Client metadata as registered, echoed back by the registration response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<RedirectUri>,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
}

/// A registered client as stored: its secret only as a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub secret_digest: Option<TokenDigest>,
    pub metadata: ClientMetadata,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Client {
    pub fn auth_method(&self) -> TokenEndpointAuthMethod {
        self.metadata.token_endpoint_auth_method
    }

    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.metadata.grant_types.iter().any(|g| g == grant_type)
    }

    pub fn redirect_uri_for(&self, presented: &str) -> Option<&RedirectUri> {
        self.metadata.redirect_uris.iter().find(|r| r.matches(presented))
    }

    pub fn display_name(&self) -> &str {
        self.metadata.client_name.as_deref().unwrap_or(&self.client_id)
    }
}

/// The registration request exactly as a client may send it; everything optional so that
/// validation, not deserialisation, decides what is missing and answers with RFC 7591 codes.
#[derive(Debug, Default, Deserialize)]
pub struct RegistrationRequest {
    pub redirect_uris: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub scope: Option<String>,
    pub contacts: Option<Vec<String>>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub application_type: Option<String>,
}

fn metadata_error(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

const MAX_REDIRECT_URIS: usize = 20;
const MAX_TEXT: usize = 1024;

fn bounded(field: &str, value: Option<String>) -> Result<Option<String>, OAuthError> {
    match value {
        Some(v) if v.len() > MAX_TEXT => Err(metadata_error(format!("{field} is longer than {MAX_TEXT} bytes"))),
        other => Ok(other),
    }
}

impl RegistrationRequest {
    /// Validates the request into metadata; `supported_scopes` bounds the `scope` field.
    pub fn validate(self, supported_scopes: &Scope) -> Result<ClientMetadata, OAuthError> {
        let raw_uris = self
            .redirect_uris
            .filter(|uris| !uris.is_empty())
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidRedirectUri, "redirect_uris is required"))?;
        if raw_uris.len() > MAX_REDIRECT_URIS {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                format!("at most {MAX_REDIRECT_URIS} redirect_uris may be registered"),
            ));
        }
        let redirect_uris = raw_uris
            .iter()
            .map(|raw| {
                RedirectUri::parse(raw).map_err(|e: RedirectUriError| {
                    OAuthError::new(ErrorCode::InvalidRedirectUri, format!("{e}: {}", truncate(raw)))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let token_endpoint_auth_method = match self.token_endpoint_auth_method.as_deref() {
            None | Some("client_secret_basic") => TokenEndpointAuthMethod::ClientSecretBasic,
            Some("client_secret_post") => TokenEndpointAuthMethod::ClientSecretPost,
            Some("none") => TokenEndpointAuthMethod::None,
            Some(other) => {
                return Err(metadata_error(format!(
                    "token_endpoint_auth_method `{}` is not supported; use one of {}",
                    truncate(other),
                    TokenEndpointAuthMethod::ALL.join(", ")
                )));
            }
        };

        let grant_types =
            self.grant_types.unwrap_or_else(|| vec![GRANT_AUTHORIZATION_CODE.to_owned(), GRANT_REFRESH_TOKEN.to_owned()]);
        if let Some(bad) = grant_types.iter().find(|g| ![GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN].contains(&g.as_str())) {
            return Err(metadata_error(format!("grant type `{}` is not supported", truncate(bad))));
        }
        if !grant_types.iter().any(|g| g == GRANT_AUTHORIZATION_CODE) {
            return Err(metadata_error("grant_types must include authorization_code"));
        }
        let response_types = self.response_types.unwrap_or_else(|| vec!["code".to_owned()]);
        if response_types.iter().any(|r| r != "code") || response_types.is_empty() {
            return Err(metadata_error("response_types may only contain `code`"));
        }

        let scope = match self.scope {
            None => None,
            Some(raw) => {
                let scope = Scope::parse(&raw).map_err(|e| metadata_error(e.to_string()))?;
                if !scope.is_subset_of(supported_scopes) {
                    return Err(metadata_error(format!("scope may only contain: {supported_scopes}")));
                }
                Some(scope)
            }
        };
        for uri in [&self.client_uri, &self.logo_uri, &self.tos_uri, &self.policy_uri].into_iter().flatten() {
            if url::Url::parse(uri).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
                return Err(metadata_error(format!("`{}` is not an http(s) URL", truncate(uri))));
            }
        }

        Ok(ClientMetadata {
            redirect_uris,
            token_endpoint_auth_method,
            grant_types,
            response_types,
            client_name: bounded("client_name", self.client_name)?,
            client_uri: bounded("client_uri", self.client_uri)?,
            logo_uri: bounded("logo_uri", self.logo_uri)?,
            scope,
            contacts: self.contacts,
            tos_uri: bounded("tos_uri", self.tos_uri)?,
            policy_uri: bounded("policy_uri", self.policy_uri)?,
            software_id: bounded("software_id", self.software_id)?,
            software_version: bounded("software_version", self.software_version)?,
            application_type: bounded("application_type", self.application_type)?,
        })
    }
}

fn truncate(value: &str) -> String {
    value.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uris: &[&str]) -> RegistrationRequest {
        RegistrationRequest { redirect_uris: Some(uris.iter().map(|u| (*u).to_owned()).collect()), ..Default::default() }
    }

    fn scopes() -> Scope {
        Scope::parse("mcp").unwrap()
    }

    #[test]
    fn defaults_to_a_confidential_basic_client_with_code_and_refresh() {
        let metadata = request(&["https://app.example/cb"]).validate(&scopes()).unwrap();
        assert_eq!(metadata.token_endpoint_auth_method, TokenEndpointAuthMethod::ClientSecretBasic);
        assert_eq!(metadata.grant_types, ["authorization_code", "refresh_token"]);
        assert_eq!(metadata.response_types, ["code"]);
    }

    #[test]
    fn rejects_missing_and_bad_redirect_uris_with_invalid_redirect_uri() {
        for uris in [&[][..], &["javascript:alert(1)"][..], &["http://evil.example/cb"][..]] {
            let err = request(uris).validate(&scopes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRedirectUri, "{uris:?}");
        }
        let err = RegistrationRequest::default().validate(&scopes()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRedirectUri);
    }

    #[test]
    fn rejects_unknown_methods_grants_and_scopes_with_invalid_client_metadata() {
        let mut bad_method = request(&["https://a.example/cb"]);
        bad_method.token_endpoint_auth_method = Some("private_key_jwt".into());
        let mut bad_grant = request(&["https://a.example/cb"]);
        bad_grant.grant_types = Some(vec!["client_credentials".into()]);
        let mut bad_scope = request(&["https://a.example/cb"]);
        bad_scope.scope = Some("admin".into());
        let mut bad_response = request(&["https://a.example/cb"]);
        bad_response.response_types = Some(vec!["token".into()]);
        for req in [bad_method, bad_grant, bad_scope, bad_response] {
            assert_eq!(req.validate(&scopes()).unwrap_err().code, ErrorCode::InvalidClientMetadata);
        }
    }
}
