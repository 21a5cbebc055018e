//! External mode with JWT access tokens (RFC 9068) from a provider that the test plays: it
//! serves metadata and a JWKS on loopback, with keys generated here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_oauth_testkit::http::TestServer;
use serde_json::{Value, json};

struct Key {
    kid: String,
    algorithm: Algorithm,
    private: EncodingKey,
    public_pem: String,
    jwk: Value,
}

fn es256(kid: &str) -> Key {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = pair.public_key_raw();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    Key {
        kid: kid.into(),
        algorithm: Algorithm::ES256,
        private: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        public_pem: pair.public_key_pem(),
        jwk,
    }
}

fn ed25519(kid: &str) -> Key {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig", "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw()) });
    Key {
        kid: kid.into(),
        algorithm: Algorithm::EdDSA,
        private: EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap(),
        public_pem: pair.public_key_pem(),
        jwk,
    }
}

/// The provider: metadata and a JWKS whose keys the test can change.
struct Provider {
    issuer: String,
    jwks: Arc<Mutex<Vec<Value>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Provider {
    async fn start(keys: &[&Key]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let jwks = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()));
        let metadata = json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json") });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(move || async move { Json(metadata.clone()) }))
            .route(
                "/jwks.json",
                get(|State(jwks): State<Arc<Mutex<Vec<Value>>>>| async move { Json(json!({ "keys": *jwks.lock().unwrap() })) }),
            )
            .with_state(jwks.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { issuer, jwks, _task: task }
    }

    fn publish(&self, key: &Key) {
        self.jwks.lock().unwrap().push(key.jwk.clone());
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(issuer: &str, audience: &str) -> Value {
    json!({ "iss": issuer, "aud": audience, "sub": "alice", "client_id": "app", "scope": "mcp", "iat": now(), "exp": now() + 300 })
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, &key.private).unwrap()
}

async fn status(server: &TestServer, token: &str) -> u16 {
    server.mcp_initialize(Some(token)).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_access_tokens_are_verified_against_the_providers_keys() {
    let first = es256("key-1");
    let provider = Provider::start(&[&first]).await;
    let server = TestServer::start(&[
        "--auth-mode",
        "external",
        "--auth-server-url",
        &provider.issuer,
        "--token-validation",
        "jwt",
        "--jwks-refresh-interval",
        "1",
    ])
    .await;
    let audience = server.resource();
    let good = claims(&provider.issuer, &audience);

    assert_eq!(status(&server, &sign(&first, &good)).await, 200, "a good token");

    let mut expired = good.clone();
    expired["exp"] = json!(now() - 120);
    assert_eq!(status(&server, &sign(&first, &expired)).await, 401, "expired");
    let mut early = good.clone();
    early["nbf"] = json!(now() + 600);
    assert_eq!(status(&server, &sign(&first, &early)).await, 401, "not valid yet");
    assert_eq!(status(&server, &sign(&first, &claims("https://evil.example", &audience))).await, 401, "wrong issuer");
    assert_eq!(
        status(&server, &sign(&first, &claims(&provider.issuer, "https://other.example/mcp"))).await,
        401,
        "wrong audience"
    );

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
        let token = sign(&first, &good);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload = good.clone();
        payload["sub"] = json!("mallory");
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        parts.join(".")
    };
    assert_eq!(status(&server, &tampered).await, 401, "a payload changed after signing");

    // Key rotation: a token signed with a key the provider has not published yet is refused;
    // once published, the unknown kid makes the server refetch the JWKS and accept it.
    let second = ed25519("key-2");
    assert_eq!(status(&server, &sign(&second, &good)).await, 401, "unpublished key");
    provider.publish(&second);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(&server, &sign(&second, &good)).await, 200, "the rotated key is fetched");
    assert_eq!(status(&server, &sign(&first, &good)).await, 200, "and the old one still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_503_not_401() {
    let closed = format!("http://127.0.0.1:{}", mcp_oauth_testkit::process::free_port());
    let server = TestServer::start(&["--auth-mode", "external", "--auth-server-url", &closed, "--token-validation", "jwt"]).await;
    let response = server.mcp_initialize(Some("any.token.here")).await;
    assert_eq!(response.status(), 503);
}
