//! External mode with JWT access tokens (RFC 9068) from a provider that the test plays
//! (testkit's `jwt_provider`: metadata and a JWKS on loopback, with keys generated in the test).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_oauth_testkit::http::TestServer;
use mcp_oauth_testkit::jwt_provider::{JwtProvider, Key, claims};
use serde_json::json;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An `external` server verifying JWTs against `provider`'s keys, refetching them at most once a
/// second.
async fn verifying_server(provider: &JwtProvider) -> TestServer {
    TestServer::start(&[
        "--auth-mode",
        "external",
        "--auth-server-url",
        &provider.issuer,
        "--token-validation",
        "jwt",
        "--jwks-refresh-interval",
        "1",
    ])
    .await
}

async fn status(server: &TestServer, token: &str) -> u16 {
    server.mcp_initialize(Some(token)).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_access_tokens_are_verified_against_the_providers_keys() {
    let first = Key::es256("key-1");
    let provider = JwtProvider::start(&[&first]).await;
    let server = verifying_server(&provider).await;
    let audience = server.resource();
    let good = claims(&provider.issuer, &audience);

    assert_eq!(status(&server, &first.sign(&good)).await, 200, "a good token");

    let mut expired = good.clone();
    expired["exp"] = json!(now() - 120);
    assert_eq!(status(&server, &first.sign(&expired)).await, 401, "expired");
    let mut early = good.clone();
    early["nbf"] = json!(now() + 600);
    assert_eq!(status(&server, &first.sign(&early)).await, 401, "not valid yet");
    assert_eq!(status(&server, &first.sign(&claims("https://evil.example", &audience))).await, 401, "wrong issuer");
    assert_eq!(status(&server, &first.sign(&claims(&provider.issuer, "https://other.example/mcp"))).await, 401, "wrong audience");

    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "at+jwt", "kid": "key-1" }).to_string()),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    assert_eq!(status(&server, &unsigned).await, 401, "alg none");

    let mut hmac = Header::new(Algorithm::HS256);
    hmac.kid = Some("key-1".into());
    let confused = jsonwebtoken::encode(&hmac, &good, &EncodingKey::from_secret(first.public_pem.as_bytes())).unwrap();
    assert_eq!(status(&server, &confused).await, 401, "HS256 with the public key as secret");

    let mut id_token = Header::new(Algorithm::ES256);
    id_token.kid = Some("key-1".into());
    id_token.typ = Some("JWT".into());
    assert_eq!(
        status(&server, &jsonwebtoken::encode(&id_token, &good, &first.private).unwrap()).await,
        401,
        "typ other than at+jwt"
    );

    let tampered = {
        let token = first.sign(&good);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload = good.clone();
        payload["sub"] = json!("mallory");
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        parts.join(".")
    };
    assert_eq!(status(&server, &tampered).await, 401, "a payload changed after signing");

    // Key rotation: a token signed with a key the provider has not published yet is refused;
    // once published, the unknown kid makes the server refetch the JWKS and accept it.
    let second = Key::ed25519("key-2");
    assert_eq!(status(&server, &second.sign(&good)).await, 401, "unpublished key");
    provider.publish(&second);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(&server, &second.sign(&good)).await, 200, "the rotated key is fetched");
    assert_eq!(status(&server, &first.sign(&good)).await, 200, "and the old one still works");
}

/// Verified tokens are kept by their digest, but only while the key that verified them is in
/// the provider's set: once the provider withdraws it, the refetched set refuses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_token_is_refused_once_its_key_is_withdrawn() {
    let (old, new) = (Key::es256("old"), Key::es256("new"));
    let provider = JwtProvider::start(&[&old]).await;
    let server = verifying_server(&provider).await;
    let audience = server.resource();
    let token = old.sign(&claims(&provider.issuer, &audience));
    assert_eq!(status(&server, &token).await, 200, "verified");
    assert_eq!(status(&server, &token).await, 200, "and again, from what was kept");

    provider.withdraw("old");
    provider.publish(&new);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A token under the new kid makes the server refetch the set, which no longer holds the old key.
    assert_eq!(status(&server, &new.sign(&claims(&provider.issuer, &audience))).await, 200, "the new key is fetched");
    assert_eq!(status(&server, &token).await, 401, "the kept token's key is withdrawn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_503_not_401() {
    let closed = format!("http://127.0.0.1:{}", mcp_oauth_testkit::process::free_port());
    let server = TestServer::start(&["--auth-mode", "external", "--auth-server-url", &closed, "--token-validation", "jwt"]).await;
    let response = server.mcp_initialize(Some("any.token.here")).await;
    assert_eq!(response.status(), 503);
}
