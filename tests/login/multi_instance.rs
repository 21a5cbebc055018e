//! Two server processes on one Redis behind one BASE_URI: a sign-in started on one instance
//! completes when the provider's callback lands on the other.

use mcp_oauth_testkit::forwarder::Forwarder;
use mcp_oauth_testkit::http::{Pkce, TestServer, http_client};
use mcp_oauth_testkit::idp::{CLIENT_ID, CLIENT_SECRET, TestIdp, UpstreamBrowser};
use mcp_oauth_testkit::process::{ServerProcess, free_port};
use mcp_oauth_testkit::redis_server::TestRedis;

use super::{Browser, approve, authorize_url, location};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_landing_on_the_other_instance_completes_the_sign_in() {
    let redis = tokio::task::spawn_blocking(TestRedis::start).await.unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let (url_a, url_b) = (format!("http://127.0.0.1:{port_a}"), format!("http://127.0.0.1:{port_b}"));
    let front = Forwarder::start(vec![url_a.clone(), url_b.clone()], None).await;
    let idp = TestIdp::start(&[format!("{}/login/callback", front.base)], 3600).await;
    let (storage, key) = (redis.url(), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    let env = [
        ("STORAGE_URL", storage.as_str()),
        ("BASE_URI", front.base.as_str()),
        ("LOGIN", "oidc"),
        ("UPSTREAM_ISSUER", idp.issuer.as_str()),
        ("UPSTREAM_CLIENT_ID", CLIENT_ID),
        ("UPSTREAM_CLIENT_SECRET", CLIENT_SECRET),
        ("UPSTREAM_SCOPES", "openid email profile"),
        ("TOKEN_VAULT_KEY", key),
    ];
    let a = ServerProcess::start(port_a, &env).await;
    let b = ServerProcess::start(port_b, &env).await;
    let (server_a, server_b) =
        (TestServer::remote(a.base.clone(), http_client()), TestServer::remote(b.base.clone(), http_client()));

    let browser = Browser::new();
    let client = server_a.client("none").await;
    let pkce = Pkce::new();
    let response = browser.get(&authorize_url(&server_a, &client, &pkce)).await;
    assert_eq!(response.status(), 302, "{}", a.logs());
    let callback = UpstreamBrowser::default().sign_in(&location(&response), "alice", true).await;
    // The provider sends the browser to the shared BASE_URI; this time it reaches B.
    let mut on_b = callback.clone();
    on_b.set_port(Some(port_b)).unwrap();
    let response = browser.get(&on_b).await;
    let code = approve(&server_a, &browser, response).await;
    let (status, tokens) = server_b.exchange(&client, &code, &pkce).await;
    assert_eq!(status, 200, "{tokens}");
    // B redeemed the upstream code: its call to the identity provider is counted.
    let scraped = reqwest::get(format!("{}/metrics", b.base)).await.unwrap().text().await.unwrap();
    assert!(scraped.contains(r#"outbound_requests_total{peer="identity_provider",call="token",outcome="ok"} 1"#), "{scraped}");
    drop((a, b, idp, redis));
}
