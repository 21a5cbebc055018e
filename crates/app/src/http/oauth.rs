//! Registration, token, introspection and revocation endpoints: thin translations between
//! HTTP and the domain's authorization server.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mcp_oauth_domain::client::RegistrationRequest;
use mcp_oauth_domain::service::ClientCredentials;
use mcp_oauth_domain::{ErrorCode, OAuthError};
use serde_json::{Value, json};

use super::AppState;
use super::client_auth::client_credentials;
use super::error::{OAuthResponse, no_store};
use super::extract::{FormParams, JsonBody};

pub async fn register(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<RegistrationRequest>,
) -> Result<Response, OAuthResponse> {
    let initial_access_token = mcp_oauth_resource::guard::bearer_token(&headers);
    let registered = state.auth.register(request, initial_access_token).await;
    let outcome = match &registered {
        Ok(_) => "registered",
        Err(error) => error.code.as_str(),
    };
    metrics::counter!("oauth_registrations_total", "outcome" => outcome).increment(1);
    let registered = registered?;
    let client = registered.client;
    let mut body = serde_json::to_value(&client.metadata).unwrap_or_else(|_| json!({}));
    if let Value::Object(fields) = &mut body {
        fields.insert("client_id".into(), json!(client.client_id));
        fields.insert("client_id_issued_at".into(), json!(client.issued_at.timestamp()));
        if let Some(secret) = registered.client_secret {
            fields.insert("client_secret".into(), json!(secret));
            fields.insert("client_secret_expires_at".into(), json!(client.expires_at.timestamp()));
        }
    }
    Ok((StatusCode::CREATED, no_store(), Json(body)).into_response())
}

/// Counts a wrong secret against its client_id (secret guessing), and passes `result` on.
async fn counted<T>(state: &AppState, credentials: &ClientCredentials, result: Result<T, OAuthError>) -> Result<T, OAuthError> {
    if let Err(error) = &result
        && error.code == ErrorCode::InvalidClient
        && credentials.has_secret()
    {
        state.clients.failed(credentials.client_id()).await;
    }
    result
}

pub async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    FormParams(params): FormParams,
) -> Result<Response, OAuthResponse> {
    let credentials = client_credentials(&headers, &params)?;
    if let Some(client_id) = credentials.client_id() {
        tracing::Span::current().record("client_id", client_id);
    }
    if let Some(refused) = state.clients.admit(credentials.client_id()).await {
        return Ok(refused);
    }
    let grant = super::metrics::grant_label(params.single("grant_type").ok().flatten());
    let answer = counted(&state, &credentials, state.auth.token(&credentials, &params).await).await;
    match &answer {
        Ok(_) => metrics::counter!("oauth_tokens_issued_total", "grant_type" => grant).increment(1),
        Err(error) => {
            metrics::counter!("oauth_token_refusals_total", "grant_type" => grant, "error" => error.code.as_str()).increment(1)
        }
    }
    Ok((no_store(), Json(answer?)).into_response())
}

pub async fn introspect(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    FormParams(params): FormParams,
) -> Result<Response, OAuthResponse> {
    let credentials = client_credentials(&headers, &params)?;
    if let Some(client_id) = credentials.client_id() {
        tracing::Span::current().record("client_id", client_id);
    }
    if let Some(refused) = state.clients.admit(credentials.client_id()).await {
        return Ok(refused);
    }
    let answer = state.auth.introspect(&credentials, params.single("token")?, params.single("token_type_hint")?).await;
    let answer = counted(&state, &credentials, answer).await;
    let outcome = match &answer {
        Ok(_) => "answered",
        Err(error) => error.code.as_str(),
    };
    metrics::counter!("oauth_introspections_total", "outcome" => outcome).increment(1);
    Ok((no_store(), Json(answer?)).into_response())
}

pub async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    FormParams(params): FormParams,
) -> Result<Response, OAuthResponse> {
    let credentials = client_credentials(&headers, &params)?;
    if let Some(client_id) = credentials.client_id() {
        tracing::Span::current().record("client_id", client_id);
    }
    if let Some(refused) = state.clients.admit(credentials.client_id()).await {
        return Ok(refused);
    }
    let revoked = state.auth.revoke(&credentials, params.single("token")?, params.single("token_type_hint")?).await;
    counted(&state, &credentials, revoked).await?;
    metrics::counter!("oauth_revocations_total").increment(1);
    Ok((StatusCode::OK, no_store()).into_response())
}
