//! The real binary, as users run it.

use mcp_oauth_testkit::http::{Pkce, TestClient, TestServer, http_client, redirect_params};
use mcp_oauth_testkit::process::{ServerProcess, free_port};
use serde_json::json;

/// A view of a child process through the same helpers the in-process tests use.
fn remote(process: &ServerProcess) -> TestServer {
    TestServer::remote(process.base.clone(), http_client())
}

#[tokio::test]
async fn no_token_code_or_secret_ever_reaches_the_logs() {
    let mut process = ServerProcess::start(
        free_port(),
        &[("RUST_LOG", "trace"), ("INTROSPECTION_CLIENT_ID", "rs"), ("INTROSPECTION_CLIENT_SECRET", "rs-secret-value")],
    )
    .await;
    let server = remote(&process);
    let client = server.client("client_secret_basic").await;
    let pkce = Pkce::new();
    let form = server.consent_form(&client, &pkce).await;
    let redirect = server.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
    let code = redirect_params(&redirect)["code"].clone();
    let (status, tokens) = server.exchange(&client, &code, &pkce).await;
    assert_eq!(status, 200);
    let (_, refreshed) = server.refresh(&client, tokens["refresh_token"].as_str().unwrap()).await;
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(server.introspect(("rs", "rs-secret-value"), access).await.1["active"], true);
    assert_eq!(server.mcp_initialize(Some(access)).await.status(), 200);
    assert_eq!(server.revoke(&client, refreshed["refresh_token"].as_str().unwrap()).await, 200);
    process.stop();

    let logs = process.logs();
    assert!(logs.contains("authorization code exchanged"), "the logs were captured at trace level");
    let secrets = [
        ("client secret", client.secret.clone().unwrap()),
        ("introspection secret", "rs-secret-value".to_owned()),
        ("code", code),
        ("code verifier", pkce.verifier.clone()),
        ("csrf token", form.csrf_token.clone()),
        ("consent request id", form.request_id.clone()),
        ("access token", tokens["access_token"].as_str().unwrap().to_owned()),
        ("refresh token", tokens["refresh_token"].as_str().unwrap().to_owned()),
        ("rotated access token", access.to_owned()),
        ("rotated refresh token", refreshed["refresh_token"].as_str().unwrap().to_owned()),
    ];
    for (what, secret) in secrets {
        assert!(!logs.contains(&secret), "the {what} appears in the logs");
    }
}

#[tokio::test]
async fn the_binary_serves_internal_mode_with_defaults() {
    let process = ServerProcess::start(free_port(), &[]).await;
    let server = remote(&process);
    let (status, meta) = server.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!((status, meta["issuer"].clone()), (200, json!(process.base)));
    let client: TestClient = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    assert_eq!(server.mcp_initialize(tokens["access_token"].as_str()).await.status(), 200);
}
