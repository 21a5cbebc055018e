//! Reads client credentials from a request: HTTP Basic (RFC 6749 section 2.3.1, with
//! form-urlencoded id and secret) or the form body. Using both is refused.

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mcp_oauth_domain::OAuthError;
use mcp_oauth_domain::params::RequestParams;
use mcp_oauth_domain::service::ClientCredentials;

/// One form-urlencoded value, whole: `&` and `=` in it are its own characters, never separators
/// (the fuzzer found a secret followed by `&anything` authenticating as the secret alone).
fn form_decode(value: &str) -> Option<String> {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|v| v.into_owned())
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let malformed = || OAuthError::invalid_client("malformed Basic credentials", true);
    let value = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = value.split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let id = form_decode(id).ok_or_else(malformed)?;
    let secret = form_decode(secret).ok_or_else(malformed)?;
    Ok(Some((id, secret)))
}

pub fn client_credentials(headers: &HeaderMap, params: &RequestParams) -> Result<ClientCredentials, OAuthError> {
    let form_id = params.owned("client_id")?;
    let form_secret = params.owned("client_secret")?;
    match (basic_credentials(headers)?, form_id, form_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request("use one client authentication method, not two")),
        (Some((client_id, _)), Some(form_id), None) if form_id != client_id => {
            Err(OAuthError::invalid_request("client_id differs from the Basic credentials"))
        }
        (Some((client_id, secret)), _, None) => Ok(ClientCredentials::Basic { client_id: client_id.into(), secret }),
        (None, Some(client_id), Some(secret)) => Ok(ClientCredentials::Post { client_id: client_id.into(), secret }),
        (None, Some(client_id), None) => Ok(ClientCredentials::Public { client_id: client_id.into() }),
        (None, None, Some(_)) => Err(OAuthError::invalid_request("client_secret without client_id")),
        (None, None, None) => Ok(ClientCredentials::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> RequestParams {
        RequestParams::new(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect())
    }

    fn basic(user: &str, pass: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")));
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let creds = client_credentials(&basic("my%20id", "s%3Acret"), &params(&[])).unwrap();
        assert_eq!(creds, ClientCredentials::Basic { client_id: "my id".into(), secret: "s:cret".into() });
    }

    #[test]
    fn a_basic_secret_is_decoded_whole() {
        let creds = client_credentials(&basic("id", "secret&junk=1"), &params(&[])).unwrap();
        assert_eq!(creds, ClientCredentials::Basic { client_id: "id".into(), secret: "secret&junk=1".into() });
        let spaced = client_credentials(&basic("id", "a+b%2Bc"), &params(&[])).unwrap();
        assert_eq!(spaced, ClientCredentials::Basic { client_id: "id".into(), secret: "a b+c".into() });
    }

    #[test]
    fn form_credentials_and_public_clients() {
        let post = client_credentials(&HeaderMap::new(), &params(&[("client_id", "a"), ("client_secret", "b")]));
        assert_eq!(post.unwrap(), ClientCredentials::Post { client_id: "a".into(), secret: "b".into() });
        let public = client_credentials(&HeaderMap::new(), &params(&[("client_id", "a")]));
        assert_eq!(public.unwrap(), ClientCredentials::Public { client_id: "a".into() });
        assert_eq!(client_credentials(&HeaderMap::new(), &params(&[])).unwrap(), ClientCredentials::Missing);
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        assert!(client_credentials(&basic("a", "b"), &params(&[("client_secret", "b")])).is_err());
        assert!(client_credentials(&basic("a", "b"), &params(&[("client_id", "other")])).is_err());
        let mut garbage = HeaderMap::new();
        garbage.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        let error = client_credentials(&garbage, &params(&[])).unwrap_err();
        assert!(error.basic_auth_challenge);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever Authorization header and form arrive, the answer is credentials or an
        /// OAuth error, and Basic credentials round-trip through their form encoding.
        #[test]
        fn any_authorization_header_gets_an_answer(
            header in "\\PC{0,80}",
            id in "\\PC{0,20}",
            secret in "\\PC{0,20}",
            form_id in proptest::option::of("\\PC{0,10}"),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = header.parse() {
                headers.insert(header::AUTHORIZATION, value);
            }
            let pairs: Vec<(&str, &str)> = form_id.iter().map(|f| ("client_id", f.as_str())).collect();
            let _ = client_credentials(&headers, &params(&pairs));
            let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let basic_headers = basic(&encode(&id), &encode(&secret));
            match client_credentials(&basic_headers, &params(&[])) {
                Ok(ClientCredentials::Basic { client_id, secret: got }) => {
                    proptest::prop_assert_eq!(client_id.as_str(), id.as_str());
                    proptest::prop_assert_eq!(got, secret);
                }
                other => proptest::prop_assert!(false, "{other:?}"),
            }
        }
    }
}
