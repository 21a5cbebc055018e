//! The baseline of `./scripts/bench`: the cheapest axum server answering a JSON body the size
//! of this server's answers, built the same way, so that each measure is read as a ratio to
//! what axum, hyper and the load generator cost on this machine in the same run.
//!
//! `PORT=4000 cargo run --release -p mcp-oauth-app --example bare_baseline`

use axum::Json;
use axum::routing::{get, post};
use serde_json::{Value, json};

/// About the size of an introspection answer or a `tools/call` result.
fn answer() -> Json<Value> {
    Json(json!({
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"content": [{"type": "text", "text": "Echo: hello"}], "isError": false},
        "active": true,
        "scope": "mcp",
        "client_id": "0f8c2b1e5d7a4c3b9e6f1a2d",
        "token_type": "Bearer",
        "exp": 1_900_000_000u64,
    }))
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(4000);
    let app = axum::Router::new()
        .route("/health", get(async || "ok"))
        .route("/{*path}", post(async || answer()).get(async || answer()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
