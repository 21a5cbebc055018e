//! The upstream identity provider as a port, and the rules for what it says: the ID token's
//! claims (OpenID Connect Core 3.1.3.7) and the mapping of claims to our user.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use url::Url;

use super::identity::UpstreamIdentity;
use super::vault::UpstreamTokens;
use crate::identity::Subject;
use crate::pkce::CodeChallenge;

/// Why the upstream could not vouch for the user. The message is logged; pages show a
/// generic text for each kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Unreachable, slow, or answering 5xx: try again later (503).
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// The upstream refused (invalid_grant, a revoked refresh token).
    #[error("identity provider refused: {0}")]
    Refused(String),
    /// What it answered fails verification (signature, iss, aud, exp, nonce, claims).
    #[error("identity provider answer rejected: {0}")]
    Invalid(String),
}

#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// How the consent page names the provider ("via accounts.google.com").
    fn name(&self) -> &str;
    /// Where to send the browser: the upstream's authorization endpoint with our client id,
    /// callback, scopes, `state`, `nonce` and PKCE S256 challenge. Async: the endpoint may
    /// first have to be discovered.
    async fn authorization_url(&self, state: &str, nonce: &str, challenge: &CodeChallenge) -> Result<Url, UpstreamError>;
    /// Exchanges the callback's code and verifies who the user is.
    async fn redeem(&self, code: &str, verifier: &str, nonce: &str) -> Result<(UpstreamIdentity, UpstreamTokens), UpstreamError>;
    /// New tokens from the refresh token in `tokens`.
    async fn refresh(&self, tokens: &UpstreamTokens) -> Result<UpstreamTokens, UpstreamError>;
    /// The upstream's userinfo answer for `access_token`.
    async fn userinfo(&self, access_token: &str) -> Result<Value, UpstreamError>;
}

/// Which claims say who the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// `UPSTREAM_SUBJECT_CLAIM`: `sub` by default; `email` or `preferred_username` are common.
    pub subject: String,
    /// `UPSTREAM_GROUPS_CLAIM`: a list of strings (or one string).
    pub groups: Option<String>,
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        // GitHub's numeric user id.
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Providers send `email_verified` as a boolean, some (Cognito, older Auth0) as a string.
fn is_true(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true))) || matches!(value, Some(Value::String(s)) if s == "true")
}

impl ClaimMapping {
    /// Our user from the upstream's claims (an ID token's, or a userinfo answer).
    pub fn identity(&self, claims: &Map<String, Value>, provider: &str) -> Result<UpstreamIdentity, UpstreamError> {
        let invalid = |m: String| UpstreamError::Invalid(m);
        let upstream_subject = string_claim(claims, "sub")
            .or_else(|| string_claim(claims, "id"))
            .ok_or_else(|| invalid("the identity has no `sub`".into()))?;
        let verified_email = string_claim(claims, "email").filter(|_| is_true(claims.get("email_verified")));
        if self.subject == "email" && verified_email.is_none() {
            return Err(invalid("UPSTREAM_SUBJECT_CLAIM is `email`, and the upstream did not say the email is verified".into()));
        }
        let raw_subject = string_claim(claims, &self.subject)
            .ok_or_else(|| invalid(format!("the identity has no `{}` claim (UPSTREAM_SUBJECT_CLAIM)", self.subject)))?;
        let subject = Subject::parse(&raw_subject).map_err(|e| invalid(format!("the subject claim is unusable: {e}")))?;
        let groups = match self.groups.as_deref().and_then(|name| claims.get(name)) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        let name = string_claim(claims, "name").or_else(|| string_claim(claims, "login"));
        Ok(UpstreamIdentity { subject, upstream_subject, verified_email, name, groups, provider: provider.to_owned() })
    }
}

/// What a valid ID token must say.
#[derive(Debug, Clone)]
pub struct IdTokenExpectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: DateTime<Utc>,
    pub leeway_secs: i64,
}

/// Checks an ID token's claims once its signature is verified.
pub fn check_id_token(claims: &Map<String, Value>, expected: &IdTokenExpectations<'_>) -> Result<(), UpstreamError> {
    let invalid = |m: &str| Err(UpstreamError::Invalid(format!("ID token {m}")));
    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer) {
        return invalid("was issued by another issuer");
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expected.client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected.client_id)),
        _ => false,
    };
    if !audience_ok {
        return invalid("is for another audience");
    }
    if let Some(Value::Array(auds)) = claims.get("aud")
        && auds.len() > 1
        && claims.get("azp").and_then(Value::as_str) != Some(expected.client_id)
    {
        return invalid("has several audiences and another authorized party");
    }
    let now = expected.now.timestamp();
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp + expected.leeway_secs > now => {}
        Some(_) => return invalid("has expired"),
        None => return invalid("has no expiry"),
    }
    if claims.get("iat").and_then(Value::as_i64).is_some_and(|iat| iat > now + expected.leeway_secs) {
        return invalid("was issued in the future");
    }
    let nonce_ok =
        claims.get("nonce").and_then(Value::as_str).is_some_and(|nonce| crate::secret::secrets_equal(nonce, expected.nonce));
    if !nonce_ok {
        return invalid("does not carry this login's nonce");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn id_token_claims_are_checked_one_by_one() {
        let now = Utc::now();
        let expected = IdTokenExpectations { issuer: "https://idp", client_id: "us", nonce: "n1", now, leeway_secs: 30 };
        let good = json!({"iss": "https://idp", "aud": "us", "exp": now.timestamp() + 60, "iat": now.timestamp(), "nonce": "n1", "sub": "a"});
        assert_eq!(check_id_token(&claims(good.clone()), &expected), Ok(()));
        for (change, why) in [
            (json!({"iss": "https://evil"}), "issuer"),
            (json!({"aud": "them"}), "audience"),
            (json!({"aud": ["us", "them"]}), "authorized party"),
            (json!({"exp": now.timestamp() - 60}), "expired"),
            (json!({"exp": null}), "expiry"),
            (json!({"iat": now.timestamp() + 600}), "future"),
            (json!({"nonce": "n2"}), "nonce"),
            (json!({"nonce": null}), "nonce"),
        ] {
            let mut bad = claims(good.clone());
            for (k, v) in change.as_object().unwrap() {
                bad.insert(k.clone(), v.clone());
            }
            let error = check_id_token(&bad, &expected).unwrap_err().to_string();
            assert!(error.contains(why), "{why}: {error}");
        }
    }

    #[test]
    fn claims_map_to_our_user_and_only_verified_emails_count() {
        let mapping = ClaimMapping { subject: "sub".into(), groups: Some("groups".into()) };
        let user = mapping
            .identity(&claims(json!({"sub": "u1", "email": "a@x.com", "email_verified": "true", "groups": ["g"]})), "idp")
            .unwrap();
        assert_eq!(
            (user.subject.as_str(), user.verified_email.as_deref(), user.groups.as_slice()),
            ("u1", Some("a@x.com"), &["g".to_owned()][..])
        );
        let unverified = mapping.identity(&claims(json!({"sub": "u1", "email": "a@x.com"})), "idp").unwrap();
        assert_eq!(unverified.verified_email, None);
        let by_email = ClaimMapping { subject: "email".into(), groups: None };
        assert!(by_email.identity(&claims(json!({"sub": "u1", "email": "a@x.com", "email_verified": false})), "idp").is_err());
        let github = ClaimMapping { subject: "id".into(), groups: None };
        assert_eq!(github.identity(&claims(json!({"id": 42, "login": "octo"})), "GitHub").unwrap().subject.as_str(), "42");
    }
}
