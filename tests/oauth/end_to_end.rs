//! The whole journey of an MCP client: register, authorize, consent, token, introspect, call
//! /mcp with rmcp's own client, refresh, reuse of a rotated refresh token, revoke.

use mcp_oauth_testkit::http::{Pkce, TestServer, redirect_params};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

const RS: (&str, &str) = ("resource-server", "rs-secret");

async fn whoami(server: &TestServer, token: &str) -> serde_json::Value {
    let config = StreamableHttpClientTransportConfig::with_uri(server.resource()).auth_header(token.to_owned());
    let transport = StreamableHttpClientTransport::with_client(mcp_oauth_testkit::http::http_client(), config);
    let client = ().serve(transport).await.expect("the MCP client connects with the token");
    let result = client.call_tool(CallToolRequestParams::new("whoami")).await.expect("whoami answers");
    client.cancel().await.ok();
    let text = result.content[0].as_text().expect("whoami returns text").text.clone();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_authorize_consent_token_introspect_mcp_refresh_reuse_revoke() {
    let server =
        TestServer::start(&["--introspection-client-id", RS.0, "--introspection-client-secret", RS.1, "--refresh-grace", "0"])
            .await;

    let (status, registered) = server
        .register(json!({"redirect_uris": ["http://127.0.0.1:3000/callback"], "client_name": "E2E", "token_endpoint_auth_method": "none"}))
        .await;
    assert_eq!(status, 201);
    let client = mcp_oauth_testkit::http::TestClient {
        client_id: registered["client_id"].as_str().unwrap().into(),
        secret: None,
        method: "none".into(),
    };

    let pkce = Pkce::new();
    let resource = server.resource();
    let page = server.authorize(&client, &pkce, &[("resource", &resource), ("scope", "mcp")]).await;
    assert_eq!(page.status(), 200);
    let form = mcp_oauth_testkit::http::ConsentForm::read(page).await;
    let redirect = server.post_consent(&form, &[("username", "alice"), ("decision", "approve")]).await;
    let params = redirect_params(&redirect);
    assert_eq!((params["state"].as_str(), params["iss"].as_str()), ("state-123", server.base.as_str()));

    let (status, tokens) = server.exchange(&client, &params["code"], &pkce).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let (_, introspection) = server.introspect(RS, access).await;
    assert_eq!((introspection["active"].as_bool(), introspection["sub"].as_str()), (Some(true), Some("alice")));

    let me = whoami(&server, access).await;
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["client_id"], json!(client.client_id));

    let (status, refreshed) = server.refresh(&client, refresh).await;
    assert_eq!(status, 200);
    let access2 = refreshed["access_token"].as_str().unwrap();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap();
    assert_eq!(whoami(&server, access2).await["sub"], "alice");

    let (status, reuse) = server.refresh(&client, refresh).await;
    assert_eq!((status, reuse["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(server.mcp_initialize(Some(access)).await.status(), 401, "reuse revoked the family");
    assert_eq!(server.mcp_initialize(Some(access2)).await.status(), 401);
    assert_eq!(server.refresh(&client, refresh2).await.0, 400);
    assert_eq!(server.introspect(RS, access2).await.1, json!({"active": false}));

    // A fresh authorization for the same user is unaffected, and revoke ends it.
    let tokens = server.tokens(&client, "alice").await;
    let access3 = tokens["access_token"].as_str().unwrap();
    assert_eq!(server.mcp_initialize(Some(access3)).await.status(), 200);
    assert_eq!(server.revoke(&client, tokens["refresh_token"].as_str().unwrap()).await, 200);
    assert_eq!(server.mcp_initialize(Some(access3)).await.status(), 401);
}
