//! The MCP server over loopback, with tokens from the real OAuth flow.

mod features;
mod protocol;
mod sessions;
mod tool_scopes;

use mcp_oauth_testkit::http::TestServer;

/// A server and an access token for `user`.
pub async fn server_and_token(args: &[&str], user: &str) -> (TestServer, String) {
    let server = TestServer::start(args).await;
    let token = token_for(&server, user).await;
    (server, token)
}

pub async fn token_for(server: &TestServer, user: &str) -> String {
    let client = server.client("none").await;
    server.tokens(&client, user).await["access_token"].as_str().unwrap().to_owned()
}
