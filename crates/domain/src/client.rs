//! Registered clients and dynamic client registration (RFC 7591).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, OAuthError};
use crate::grant::{GrantType, ResponseType};
use crate::identity::ClientId;
use crate::redirect_uri::{RedirectKind, RedirectUri, RedirectUriError};
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

/// What kind of client registered (OpenID Connect DCR, MCP 2026-07-28): it bounds the
/// redirect URIs the client may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    /// Served from a web server: https redirect URIs, and loopback http for development.
    #[default]
    Web,
    /// Runs on the user's device: private-use schemes, loopback http and claimed https.
    Native,
}

impl ApplicationType {
    fn allows(self, kind: RedirectKind) -> bool {
        self == Self::Native || kind != RedirectKind::PrivateUse
    }
}

/// Reads registrations stored before `application_type` was required as `web`.
fn application_type_or_web<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<ApplicationType, D::Error> {
    Ok(Option::<ApplicationType>::deserialize(deserializer)?.unwrap_or_default())
}

/// Client metadata as registered, echoed back by the registration response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<RedirectUri>,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<ResponseType>,
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
    #[serde(default, deserialize_with = "application_type_or_web")]
    pub application_type: ApplicationType,
}

/// A registered client as stored: its secret only as a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: ClientId,
    pub secret_digest: Option<TokenDigest>,
    pub metadata: ClientMetadata,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Client {
    pub fn auth_method(&self) -> TokenEndpointAuthMethod {
        self.metadata.token_endpoint_auth_method
    }

    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        self.metadata.grant_types.contains(&grant_type)
    }

    pub fn redirect_uri_for(&self, presented: &str) -> Option<&RedirectUri> {
        self.metadata.redirect_uris.iter().find(|r| r.matches(presented))
    }

    pub fn display_name(&self) -> &str {
        self.metadata.client_name.as_deref().unwrap_or(self.client_id.as_str())
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

/// Bounds on what one registration may store (README, "Registration limits").
pub const MAX_REDIRECT_URIS: usize = 10;
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_CONTACTS: usize = 10;
pub const MAX_CONTACT_LEN: usize = 254;

/// Characters that reorder the text around them (bidirectional overrides, isolates and marks):
/// in a name shown on the consent page they can make "Evil" read as something else.
fn reorders_text(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A free-text field: at most `max` bytes, no control or text-reordering characters.
fn text_field(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, OAuthError> {
    match value {
        Some(v) if v.len() > max => Err(metadata_error(format!("{field} is longer than {max} bytes"))),
        Some(v) if v.chars().any(char::is_control) => Err(metadata_error(format!("{field} contains control characters"))),
        Some(v) if v.chars().any(reorders_text) => {
            Err(metadata_error(format!("{field} contains bidirectional-override characters")))
        }
        other => Ok(other),
    }
}

/// A URL field (`client_uri`, `logo_uri`, …): an http(s) URL of bounded length.
fn url_field(field: &str, value: Option<String>) -> Result<Option<String>, OAuthError> {
    let value = text_field(field, value, MAX_URL_LEN)?;
    if let Some(uri) = &value
        && url::Url::parse(uri).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true)
    {
        return Err(metadata_error(format!("{field} `{}` is not an http(s) URL", truncate(uri))));
    }
    Ok(value)
}

fn contacts_field(value: Option<Vec<String>>) -> Result<Option<Vec<String>>, OAuthError> {
    let Some(contacts) = value else {
        return Ok(None);
    };
    if contacts.len() > MAX_CONTACTS {
        return Err(metadata_error(format!("at most {MAX_CONTACTS} contacts may be registered")));
    }
    for contact in &contacts {
        text_field("contacts", Some(contact.clone()), MAX_CONTACT_LEN)?;
    }
    Ok(Some(contacts))
}

/// An explicit `application_type`, or the one the redirect URIs imply: a client that sends
/// none but registers a private-use scheme is a native app (Cursor, VS Code send none).
fn application_type(raw: Option<&str>, uris: &[RedirectUri]) -> Result<ApplicationType, OAuthError> {
    match raw {
        Some("web") => Ok(ApplicationType::Web),
        Some("native") => Ok(ApplicationType::Native),
        Some(other) => Err(metadata_error(format!("application_type `{}` must be `native` or `web`", truncate(other)))),
        None if uris.iter().any(|u| u.kind() == RedirectKind::PrivateUse) => Ok(ApplicationType::Native),
        None => Ok(ApplicationType::Web),
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
        let application_type = application_type(self.application_type.as_deref(), &redirect_uris)?;
        if let Some(refused) = redirect_uris.iter().find(|u| !application_type.allows(u.kind())) {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                format!(
                    "a web client may not use the private-use scheme of {}; register as `native`",
                    truncate(refused.as_str())
                ),
            ));
        }

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

        let grant_types = match self.grant_types {
            None => GrantType::ALL.to_vec(),
            Some(raw) => raw
                .iter()
                .map(|g| {
                    GrantType::parse(g).ok_or_else(|| metadata_error(format!("grant type `{}` is not supported", truncate(g))))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if !grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(metadata_error("grant_types must include authorization_code"));
        }
        let response_types = match self.response_types {
            None => ResponseType::ALL.to_vec(),
            Some(raw) if raw.is_empty() => return Err(metadata_error("response_types may only contain `code`")),
            Some(raw) => raw
                .iter()
                .map(|r| ResponseType::parse(r).ok_or_else(|| metadata_error("response_types may only contain `code`")))
                .collect::<Result<Vec<_>, _>>()?,
        };

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

        Ok(ClientMetadata {
            redirect_uris,
            token_endpoint_auth_method,
            grant_types,
            response_types,
            client_name: text_field("client_name", self.client_name, MAX_NAME_LEN)?,
            client_uri: url_field("client_uri", self.client_uri)?,
            logo_uri: url_field("logo_uri", self.logo_uri)?,
            scope,
            contacts: contacts_field(self.contacts)?,
            tos_uri: url_field("tos_uri", self.tos_uri)?,
            policy_uri: url_field("policy_uri", self.policy_uri)?,
            software_id: text_field("software_id", self.software_id, MAX_NAME_LEN)?,
            software_version: text_field("software_version", self.software_version, MAX_NAME_LEN)?,
            application_type,
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
        assert_eq!(metadata.grant_types, [GrantType::AuthorizationCode, GrantType::RefreshToken]);
        assert_eq!(metadata.response_types, [ResponseType::Code]);
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

    #[test]
    fn private_use_schemes_make_a_native_client_and_a_web_client_may_not_use_them() {
        let cursor = [
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback",
        ];
        let metadata = request(&cursor).validate(&scopes()).unwrap();
        assert_eq!(metadata.application_type, ApplicationType::Native, "implied by the private-use scheme");
        let metadata = request(&["https://claude.ai/api/mcp/auth_callback"]).validate(&scopes()).unwrap();
        assert_eq!(metadata.application_type, ApplicationType::Web);

        let mut web = request(&cursor);
        web.application_type = Some("web".into());
        assert_eq!(web.validate(&scopes()).unwrap_err().code, ErrorCode::InvalidRedirectUri);
        let mut web_loopback = request(&["http://127.0.0.1:6274/cb", "https://app.example/cb"]);
        web_loopback.application_type = Some("web".into());
        assert!(web_loopback.validate(&scopes()).is_ok(), "a web client keeps https and loopback http");
        let mut unknown = request(&cursor);
        unknown.application_type = Some("desktop".into());
        assert_eq!(unknown.validate(&scopes()).unwrap_err().code, ErrorCode::InvalidClientMetadata);
    }

    #[test]
    fn every_stored_field_is_bounded() {
        let too_many: Vec<String> = (0..=MAX_REDIRECT_URIS).map(|i| format!("https://a.example/{i}")).collect();
        let uris: Vec<&str> = too_many.iter().map(String::as_str).collect();
        assert_eq!(request(&uris).validate(&scopes()).unwrap_err().code, ErrorCode::InvalidRedirectUri);
        let long = "x".repeat(MAX_URL_LEN + 1);
        let cases: Vec<fn(&mut RegistrationRequest, &str)> = vec![
            |r, long| r.client_name = Some(long[..MAX_NAME_LEN + 1].to_owned()),
            |r, _| r.client_name = Some("evil\u{0}name".into()),
            |r, _| r.client_name = Some("Safe \u{202E}lavE".into()),
            |r, _| r.software_version = Some("1\u{2066}0".into()),
            |r, long| r.client_uri = Some(format!("https://a.example/{long}")),
            |r, long| r.software_id = Some(long.to_owned()),
            |r, _| r.contacts = Some(vec!["a@b.example".into(); MAX_CONTACTS + 1]),
            |r, long| r.contacts = Some(vec![long[..MAX_CONTACT_LEN + 1].to_owned()]),
        ];
        for (i, set) in cases.into_iter().enumerate() {
            let mut req = request(&["https://a.example/cb"]);
            set(&mut req, &long);
            assert_eq!(req.validate(&scopes()).unwrap_err().code, ErrorCode::InvalidClientMetadata, "case {i}");
        }
    }

    #[test]
    fn registrations_stored_without_an_application_type_read_as_web() {
        let metadata = request(&["https://a.example/cb"]).validate(&scopes()).unwrap();
        let mut stored = serde_json::to_value(&metadata).unwrap();
        stored["application_type"] = serde_json::Value::Null;
        let read: ClientMetadata = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(read.application_type, ApplicationType::Web);
        stored.as_object_mut().unwrap().remove("application_type");
        assert!(serde_json::from_value::<ClientMetadata>(stored).is_ok());
    }
}
