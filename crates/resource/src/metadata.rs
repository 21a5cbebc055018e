//! Protected-resource metadata (RFC 9728) for `/mcp`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// What RFC 9728 metadata says about the MCP resource.
pub struct ProtectedResource {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes: Vec<String>,
}

pub async fn protected_resource(State(resource): State<Arc<ProtectedResource>>) -> Json<Value> {
    Json(json!({
        "resource": resource.resource,
        "authorization_servers": resource.authorization_servers,
        "scopes_supported": resource.scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-oauth-server MCP endpoint",
    }))
}
