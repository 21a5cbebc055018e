//! ID tokens that fail verification sign nobody in. The provider signs with a key this test
//! holds too, and a proxy in front of its token endpoint changes what it answers: a broken
//! signature, or claims re-signed with the provider's own key but naming another issuer, another
//! audience, or an expiry in the past.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_oauth_testkit::http::{Pkce, TestServer};
use mcp_oauth_testkit::idp::{TestIdp, UpstreamBrowser};
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use super::{Browser, RS, authorize_url, location};

#[derive(Clone, Copy, Debug)]
enum Tamper {
    Nothing,
    /// Re-signed unchanged: accepted, which shows the test's key is the provider's.
    Resigned,
    Signature,
    Issuer,
    Audience,
    Expired,
}

#[derive(Clone)]
struct Proxy {
    token_url: String,
    key: Arc<EncodingKey>,
    tamper: Arc<Mutex<Tamper>>,
}

fn resign(key: &EncodingKey, id_token: &str, change: impl FnOnce(&mut Map<String, Value>)) -> String {
    let payload = id_token.split('.').nth(1).unwrap();
    let mut claims: Map<String, Value> = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    change(&mut claims);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("test-key".into());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

async fn token(State(proxy): State<Proxy>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut request = reqwest::Client::new().post(&proxy.token_url).body(body);
    for name in ["authorization", "content-type", "accept"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.to_str().unwrap());
        }
    }
    let mut answer: Value = request.send().await.unwrap().json().await.unwrap();
    let tamper = *proxy.tamper.lock().unwrap();
    if let Some(id_token) = answer.get("id_token").and_then(Value::as_str).map(str::to_owned) {
        let changed = match tamper {
            Tamper::Nothing => id_token,
            Tamper::Resigned => resign(&proxy.key, &id_token, |_| {}),
            Tamper::Signature => {
                let (rest, signature) = id_token.rsplit_once('.').unwrap();
                let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
                bytes[10] ^= 0x01;
                format!("{rest}.{}", URL_SAFE_NO_PAD.encode(bytes))
            }
            Tamper::Issuer => resign(&proxy.key, &id_token, |c| {
                c.insert("iss".into(), "http://127.0.0.1:1".into());
            }),
            Tamper::Audience => resign(&proxy.key, &id_token, |c| {
                c.insert("aud".into(), "another-client".into());
            }),
            Tamper::Expired => resign(&proxy.key, &id_token, |c| {
                let past = chrono::Utc::now().timestamp() - 3600;
                c.insert("exp".into(), past.into());
                c.insert("iat".into(), (past - 60).into());
            }),
        };
        answer["id_token"] = Value::String(changed);
    }
    axum::Json(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_with_a_bad_signature_issuer_audience_or_expiry_sign_nobody_in() {
    mcp_oauth_adapters::install_tls_provider();
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let pem = key_pair.serialize_pem();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp = TestIdp::start_signing_with(&[format!("{base}/login/callback")], 3600, Some(pem.clone())).await;

    let proxy = Proxy {
        token_url: format!("{}/token", idp.issuer),
        key: Arc::new(EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()),
        tamper: Arc::new(Mutex::new(Tamper::Nothing)),
    };
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://127.0.0.1:{}/token", proxy_listener.local_addr().unwrap().port());
    let app = axum::Router::new().route("/token", axum::routing::post(token)).with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(proxy_listener, app).await.unwrap() });

    let mut args = idp.login_args();
    args.extend(
        ["--upstream-token-url", &proxy_url, "--introspection-client-id", RS.0, "--introspection-client-secret", RS.1]
            .map(str::to_owned),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = TestServer::serve(listener, base, &args, mcp_oauth_adapters::memory::MemoryStore::default().stores()).await;
    let client = server.client("none").await;

    for tamper in [Tamper::Resigned, Tamper::Signature, Tamper::Issuer, Tamper::Audience, Tamper::Expired, Tamper::Nothing] {
        *proxy.tamper.lock().unwrap() = tamper;
        let browser = Browser::new();
        let response = browser.get(&authorize_url(&server, &client, &Pkce::new())).await;
        let callback = UpstreamBrowser::default().sign_in(&location(&response), "alice", true).await;
        let response = browser.get(&callback).await;
        let signed_in =
            response.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("mcp_oauth_login="));
        match tamper {
            Tamper::Nothing | Tamper::Resigned => {
                assert_eq!(response.status(), 200, "{tamper:?}: a token the provider's key signed, with its claims, signs in");
                assert!(signed_in);
            }
            _ => {
                assert_eq!(response.status(), 400, "{tamper:?}");
                assert!(!signed_in, "{tamper:?}: nobody is signed in");
                assert!(response.text().await.unwrap().contains("could not be verified"), "{tamper:?}");
            }
        }
    }
}
