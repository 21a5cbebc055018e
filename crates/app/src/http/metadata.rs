//! Authorization-server metadata (RFC 8414).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use mcp_oauth_domain::client::TokenEndpointAuthMethod;
use mcp_oauth_domain::grant::{GrantType, ResponseType};
use serde_json::{Value, json};

use super::AppState;

pub async fn authorization_server(State(state): State<Arc<AppState>>) -> Json<Value> {
    let issuer = &state.settings.issuer;
    let scopes: Vec<&str> = state.settings.scopes.iter().collect();
    let secret_methods = ["client_secret_basic", "client_secret_post"];
    let mut metadata = json!({
        "issuer": issuer.as_str(),
        "authorization_endpoint": issuer.endpoint("/authorize"),
        "token_endpoint": issuer.endpoint("/token"),
        "introspection_endpoint": issuer.endpoint("/introspect"),
        "revocation_endpoint": issuer.endpoint("/revoke"),
        "response_types_supported": ResponseType::ALL.map(ResponseType::as_str),
        "response_modes_supported": ["query"],
        "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": TokenEndpointAuthMethod::ALL,
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "revocation_endpoint_auth_methods_supported": TokenEndpointAuthMethod::ALL,
        "scopes_supported": scopes,
        "authorization_response_iss_parameter_supported": true,
    });
    // What clients may do to be known here: register (RFC 7591), or publish a metadata
    // document (`none` stays listed, which Claude requires before it uses one).
    if state.auth.policy().registration.allows_registration() {
        metadata["registration_endpoint"] = json!(issuer.endpoint("/register"));
    }
    if state.auth.accepts_documents() {
        metadata["client_id_metadata_document_supported"] = json!(true);
    }
    // The keys that verify the identity JWTs this server sends to an upstream MCP server.
    if state.settings.upstream.as_ref().is_some_and(|u| u.signs_identities()) {
        metadata["jwks_uri"] = json!(issuer.endpoint("/.well-known/jwks.json"));
    }
    Json(metadata)
}
