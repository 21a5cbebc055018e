//! Token claims as providers send them, in an introspection answer or a JWT payload.

use mcp_oauth_domain::validation::TokenClaims;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct WireClaims {
    /// Introspection's answer; a JWT has none (a verified JWT is active).
    active: Option<bool>,
    sub: Option<String>,
    client_id: Option<String>,
    /// Authorized party, where a provider names the client there (OpenID Connect, Auth0).
    azp: Option<String>,
    scope: Option<String>,
    /// Scopes as an array (Okta) or a space-separated string (Entra ID).
    scp: Option<Value>,
    /// A string or an array of strings (RFC 7662 section 2.2, RFC 7519 section 4.1.3).
    aud: Option<Value>,
    iss: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    token_type: Option<String>,
}

impl WireClaims {
    pub(super) fn is_introspection_answer(&self) -> bool {
        self.active.is_some()
    }

    /// The claims, with `issuer` standing in where an introspection answer names none.
    pub(super) fn into_claims(self, issuer_if_absent: Option<&str>) -> TokenClaims {
        let scope = self.scope.or_else(|| match &self.scp {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(a)) => Some(a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")),
            _ => None,
        });
        let audience = match self.aud {
            Some(Value::String(one)) => vec![one],
            Some(Value::Array(many)) => many.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => vec![],
        };
        TokenClaims {
            active: self.active.unwrap_or(true),
            subject: self.sub,
            client_id: self.client_id.or(self.azp),
            scope,
            audience,
            issuer: self.iss.or_else(|| issuer_if_absent.map(str::to_owned)),
            expires_at: self.exp,
            issued_at: self.iat,
            not_before: self.nbf,
            token_type: self.token_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: serde_json::Value) -> WireClaims {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn providers_spellings_of_scope_audience_and_client_are_read() {
        let okta = parse(json!({ "scp": ["mcp", "profile"], "aud": "https://mcp.example/mcp", "cid": "x", "client_id": "app" }));
        let claims = okta.into_claims(None);
        assert_eq!(claims.scope.as_deref(), Some("mcp profile"));
        assert_eq!(claims.audience, ["https://mcp.example/mcp"]);
        assert_eq!(claims.client_id.as_deref(), Some("app"));
        assert!(claims.active, "a verified JWT is active");
        let auth0 = parse(json!({ "scope": "mcp", "aud": ["https://mcp.example/mcp", "https://x/userinfo"], "azp": "app" }))
            .into_claims(None);
        assert_eq!((auth0.audience.len(), auth0.client_id.as_deref()), (2, Some("app")));
        let entra = parse(json!({ "scp": "mcp.read mcp.write" })).into_claims(None);
        assert_eq!(entra.scope.as_deref(), Some("mcp.read mcp.write"));
    }

    #[test]
    fn introspection_answers_need_active_and_may_omit_iss() {
        assert!(!parse(json!({ "sub": "alice" })).is_introspection_answer());
        let inactive = parse(json!({ "active": false }));
        assert!(inactive.is_introspection_answer());
        assert!(!inactive.into_claims(Some("https://as.example")).active);
        let answer = parse(json!({ "active": true })).into_claims(Some("https://as.example"));
        assert_eq!(answer.issuer.as_deref(), Some("https://as.example"));
        let named = parse(json!({ "active": true, "iss": "https://other.example" })).into_claims(Some("https://as.example"));
        assert_eq!(named.issuer.as_deref(), Some("https://other.example"), "an answer's own iss is kept, and checked");
    }
}
