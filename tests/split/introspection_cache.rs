//! The introspection validator against an RFC 7662 endpoint played by the test, which counts
//! calls and checks how the resource server authenticates.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Form, Json};
use chrono::TimeDelta;
use mcp_oauth_adapters::external::{ExternalSettings, ExternalValidator, IntrospectionAuth, ValidationMethod};
use mcp_oauth_domain::resource::ResourceUri;
use mcp_oauth_domain::validation::{TokenRejection, TokenValidator};
use serde_json::{Value, json};

#[derive(Default)]
struct Endpoint {
    calls: AtomicUsize,
    revoked: std::sync::atomic::AtomicBool,
    /// How the last call authenticated: "basic" or "post".
    method: std::sync::Mutex<String>,
}

async fn introspect(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Json<Value> {
    endpoint.calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let basic = headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("Basic "));
    *endpoint.method.lock().unwrap() = if basic {
        "basic"
    } else if field("client_secret").is_some() {
        "post"
    } else {
        "none"
    }
    .into();
    let now = chrono::Utc::now().timestamp();
    let active = json!({ "active": true, "sub": "alice", "client_id": "app", "scope": "mcp", "aud": "http://rs.example/mcp", "exp": now + 600, "iat": now });
    match field("token").as_deref() {
        _ if endpoint.revoked.load(Ordering::SeqCst) => Json(json!({ "active": false })),
        // Like many providers, this endpoint names no token_type for access tokens.
        Some("good-token") => Json(active),
        Some("refresh-token") => {
            let mut refresh = active;
            refresh["token_type"] = json!("refresh_token");
            Json(refresh)
        }
        Some("rfc8693-refresh-token") => {
            let mut refresh = active;
            refresh["token_type"] = json!("urn:ietf:params:oauth:token-type:refresh_token");
            Json(refresh)
        }
        _ => Json(json!({ "active": false })),
    }
}

async fn start(auth: IntrospectionAuth, cache_ttl: Duration) -> (Arc<Endpoint>, ExternalValidator, tokio::task::JoinHandle<()>) {
    let endpoint = Arc::new(Endpoint::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let app = axum::Router::new().route("/introspect", post(introspect)).with_state(endpoint.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let validator = ExternalValidator::new(ExternalSettings {
        issuer: url::Url::parse(&base).unwrap(),
        resource: ResourceUri::parse("http://rs.example/mcp").unwrap(),
        method: ValidationMethod::Introspection,
        introspection_url: Some(format!("{base}/introspect")),
        credentials: Some(("rs".into(), "secret".into())),
        introspection_auth: auth,
        cache_ttl,
        jwks_url: None,
        jwks_refresh_interval: Duration::from_secs(30),
        jwt_types: vec![],
        leeway: TimeDelta::seconds(60),
    });
    (endpoint, validator, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_of_one_token_make_one_call_and_answers_are_cached_within_the_ttl() {
    let (endpoint, validator, _server) = start(IntrospectionAuth::ClientSecretBasic, Duration::from_millis(600)).await;
    let validator = Arc::new(validator);
    let lookups: Vec<_> = (0..20)
        .map(|_| {
            let validator = validator.clone();
            tokio::spawn(async move { validator.validate("good-token").await })
        })
        .collect();
    for lookup in lookups {
        assert_eq!(lookup.await.unwrap().unwrap().subject, "alice");
    }
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1, "twenty concurrent lookups, one call");
    assert_eq!(*endpoint.method.lock().unwrap(), "basic");

    // Revoked at the authorization server: the cached answer holds for at most the TTL.
    endpoint.revoked.store(true, Ordering::SeqCst);
    assert!(validator.validate("good-token").await.is_ok(), "still cached");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(matches!(validator.validate("good-token").await, Err(TokenRejection::Invalid(_))), "seen after the TTL");
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 2);

    // Negative answers are not kept long.
    let before = endpoint.calls.load(Ordering::SeqCst);
    assert!(validator.validate("unknown").await.is_err());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(validator.validate("unknown").await.is_err());
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), before + 2, "a negative answer expires within a second");
}

#[tokio::test]
async fn form_post_authentication_is_available() {
    let (endpoint, validator, _server) = start(IntrospectionAuth::ClientSecretPost, Duration::from_secs(30)).await;
    assert!(validator.validate("good-token").await.is_ok());
    assert_eq!(*endpoint.method.lock().unwrap(), "post");
}

#[tokio::test]
async fn an_answer_that_calls_the_token_a_refresh_token_is_refused_and_one_without_a_type_passes() {
    let (_endpoint, validator, _server) = start(IntrospectionAuth::ClientSecretBasic, Duration::from_secs(30)).await;
    assert_eq!(validator.validate("good-token").await.unwrap().subject, "alice", "no token_type: an access token");
    for refresh in ["refresh-token", "rfc8693-refresh-token"] {
        match validator.validate(refresh).await {
            Err(TokenRejection::Invalid(reason)) => {
                assert!(reason.contains("refresh token"), "{reason}")
            }
            other => panic!("{refresh} was not refused: {other:?}"),
        }
    }
}
