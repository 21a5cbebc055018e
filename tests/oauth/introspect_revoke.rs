use mcp_oauth_adapters::memory::MemoryStore;
use mcp_oauth_testkit::http::TestServer;
use serde_json::json;

const RS: (&str, &str) = ("resource-server", "rs-secret");

async fn server() -> TestServer {
    TestServer::start(&["--introspection-client-id", RS.0, "--introspection-client-secret", RS.1]).await
}

#[tokio::test]
async fn the_resource_server_credential_sees_active_tokens_with_integer_times() {
    let server = server().await;
    let client = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    let (status, body) = server.introspect(RS, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["client_id"], json!(client.client_id));
    assert_eq!(body["scope"], "mcp");
    assert_eq!(body["aud"], json!(server.resource()));
    assert_eq!(body["iss"], json!(server.base));
    assert_eq!(body["token_type"], "Bearer");
    let (exp, iat) = (body["exp"].as_i64().unwrap(), body["iat"].as_i64().unwrap());
    assert_eq!(exp - iat, 3600);

    // A refresh token is for the token endpoint: to a resource server it is never active.
    let (status, body) = server.introspect(RS, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body), (200, json!({"active": false})));
    for unknown in ["unknown", ""] {
        let (status, body) = server.introspect(RS, unknown).await;
        if unknown.is_empty() {
            assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
        } else {
            assert_eq!((status, body), (200, json!({"active": false})));
        }
    }
}

#[tokio::test]
async fn introspection_requires_authentication_and_limits_clients_to_their_own_tokens() {
    let server = server().await;
    let public = server.client("none").await;
    let tokens = server.tokens(&public, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();

    let anonymous = server.http.post(server.url("/introspect")).form(&[("token", access)]).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let (status, body) = server.introspect((RS.0, "wrong"), access).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let public_call = server
        .http
        .post(server.url("/introspect"))
        .form(&[("token", access), ("client_id", &public.client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(public_call.status(), 401, "a public client cannot authenticate, so cannot introspect");

    let confidential = server.client("client_secret_basic").await;
    let credentials = (confidential.client_id.as_str(), confidential.secret.as_deref().unwrap());
    assert_eq!(server.introspect(credentials, access).await.1, json!({"active": false}), "not its token");
    let own = server.tokens(&confidential, "bob").await;
    let (_, body) = server.introspect(credentials, own["access_token"].as_str().unwrap()).await;
    assert_eq!((body["active"].as_bool(), body["sub"].as_str()), (Some(true), Some("bob")));
}

#[tokio::test]
async fn expired_tokens_are_inactive() {
    let server =
        TestServer::start(&["--introspection-client-id", RS.0, "--introspection-client-secret", RS.1, "--access-token-ttl", "1"])
            .await;
    let client = server.client("none").await;
    let tokens = server.tokens(&client, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(server.introspect(RS, access).await.1["active"], true);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(server.introspect(RS, access).await.1, json!({"active": false}));
    assert_eq!(server.mcp_initialize(Some(access)).await.status(), 401);
}

#[tokio::test]
async fn revoking_an_access_token_ends_it_and_revoking_a_refresh_token_ends_the_family() {
    let server = server().await;
    let client = server.client("client_secret_basic").await;
    let tokens = server.tokens(&client, "alice").await;
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    assert_eq!(server.revoke(&client, access).await, 200);
    assert_eq!(server.mcp_initialize(Some(access)).await.status(), 401);
    assert_eq!(server.introspect(RS, access).await.1, json!({"active": false}));
    let (status, refreshed) = server.refresh(&client, refresh).await;
    assert_eq!(status, 200, "revoking the access token left the refresh token");

    let new_access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(server.revoke(&client, refreshed["refresh_token"].as_str().unwrap()).await, 200);
    assert_eq!(server.mcp_initialize(Some(new_access)).await.status(), 401, "the family's access token is revoked too");
    assert_eq!(server.refresh(&client, refreshed["refresh_token"].as_str().unwrap()).await.0, 400);
    assert_eq!(server.revoke(&client, "never-issued").await, 200, "unknown tokens are not an error");
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_token() {
    let server = server().await;
    let owner = server.client("none").await;
    let intruder = server.client("client_secret_post").await;
    let tokens = server.tokens(&owner, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(server.revoke(&intruder, access).await, 400);
    assert_eq!(server.revoke(&intruder, tokens["refresh_token"].as_str().unwrap()).await, 400);
    assert_eq!(server.mcp_initialize(Some(access)).await.status(), 200, "the token still works");
    let anonymous = server.http.post(server.url("/revoke")).form(&[("token", access)]).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_token_for_another_resource_is_refused_at_mcp() {
    // Two servers on one store: each is its own resource, so each one's tokens are foreign to
    // the other.
    let store = MemoryStore::default();
    let a = TestServer::start_with(&[], store.stores()).await;
    let b = TestServer::start_with(&[], store.stores()).await;
    let client = a.client("none").await;
    let tokens = a.tokens(&client, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(a.mcp_initialize(Some(access)).await.status(), 200);
    let refused = b.mcp_initialize(Some(access)).await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
}
