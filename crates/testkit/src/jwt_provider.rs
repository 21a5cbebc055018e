//! A provider of JWT access tokens (RFC 9068) that a test or the bench plays: metadata and a
//! JWKS served on loopback, with keys generated here, for `external` mode with
//! `TOKEN_VALIDATION=jwt`.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub struct Key {
    pub kid: String,
    pub algorithm: Algorithm,
    pub private: EncodingKey,
    pub public_pem: String,
    jwk: Value,
}

impl Key {
    pub fn es256(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = pair.public_key_raw();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Self {
            kid: kid.into(),
            algorithm: Algorithm::ES256,
            private: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
            public_pem: pair.public_key_pem(),
            jwk,
        }
    }

    pub fn ed25519(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig", "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw()) });
        Self {
            kid: kid.into(),
            algorithm: Algorithm::EdDSA,
            private: EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap(),
            public_pem: pair.public_key_pem(),
            jwk,
        }
    }

    /// An access token (`typ: at+jwt`) of `claims`, signed with this key.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &self.private).unwrap()
    }
}

/// The provider: metadata and a JWKS whose keys can change while it runs.
pub struct JwtProvider {
    pub issuer: String,
    jwks: Arc<Mutex<Vec<Value>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl JwtProvider {
    pub async fn start(keys: &[&Key]) -> Self {
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

    pub fn publish(&self, key: &Key) {
        self.jwks.lock().unwrap().push(key.jwk.clone());
    }

    pub fn withdraw(&self, kid: &str) {
        self.jwks.lock().unwrap().retain(|jwk| jwk["kid"] != kid);
    }
}

/// Claims of a token from `issuer` to `alice` for `audience`, valid for 5 minutes.
pub fn claims(issuer: &str, audience: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "iss": issuer, "aud": audience, "sub": "alice", "client_id": "app", "scope": "mcp", "iat": now, "exp": now + 300 })
}
