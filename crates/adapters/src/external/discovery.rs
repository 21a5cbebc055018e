//! Authorization-server metadata (RFC 8414), falling back to OpenID Connect discovery.

use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, Deserialize)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// Where metadata is published for `issuer`: RFC 8414 inserts the well-known segment before
/// the issuer's path; OpenID Connect appends it.
fn candidates(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut oauth = issuer.clone();
    oauth.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    let mut openid = issuer.clone();
    openid.set_path(&format!("{path}/.well-known/openid-configuration"));
    vec![oauth, openid]
}

/// Fetches the metadata of the authorization server at `issuer`.
pub async fn discover(client: &reqwest::Client, issuer: &Url) -> Result<AuthorizationServerMetadata, String> {
    let mut failures = Vec::new();
    for url in candidates(issuer) {
        match crate::outbound::send(
            "authorization_server",
            "discovery",
            client.get(url.clone()).header("accept", "application/json"),
        )
        .await
        {
            Ok(response) if response.status().is_success() => match response.json::<AuthorizationServerMetadata>().await {
                Ok(metadata) => return Ok(metadata),
                Err(e) => failures.push(format!("{url}: {e}")),
            },
            Ok(response) => failures.push(format!("{url}: HTTP {}", response.status())),
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    Err(format!("no authorization server metadata found ({})", failures.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_locations_follow_rfc_8414_then_openid() {
        let urls = candidates(&Url::parse("https://auth.example/tenant/v2").unwrap());
        assert_eq!(urls[0].as_str(), "https://auth.example/.well-known/oauth-authorization-server/tenant/v2");
        assert_eq!(urls[1].as_str(), "https://auth.example/tenant/v2/.well-known/openid-configuration");
        let urls = candidates(&Url::parse("https://auth.example").unwrap());
        assert_eq!(urls[0].as_str(), "https://auth.example/.well-known/oauth-authorization-server");
    }
}
