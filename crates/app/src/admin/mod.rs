//! The admin API (`ADMIN_ADDR`, loopback by default, `ADMIN_TOKEN` as a bearer token): what an
//! operator does to a running server, on whatever storage it uses. With Redis it acts on the
//! shared state, so one command reaches every instance. `mcp-oauth-server admin` ([`cli`])
//! is its client. Every call is audited, refused ones too.

pub mod cli;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::audit::{self, Event};
use mcp_oauth_domain::identity::{ClientId, Subject};
use mcp_oauth_domain::inventory::Holder;
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::service::{AuthorizationServer, ClientDetails, ClientEntry, DeletionError};
use mcp_oauth_resource::directory;
use mcp_oauth_resource::ports::McpSessionStore;
use serde::Deserialize;
use serde_json::{Value, json};

/// What the admin API acts on: the halves this process serves.
#[derive(Clone, Default)]
pub struct AdminApi {
    pub auth: Option<Arc<AuthorizationServer>>,
    pub sessions: Option<Arc<dyn McpSessionStore>>,
}

#[derive(Clone)]
struct AdminState {
    api: AdminApi,
    token: TokenDigest,
}

/// An admin API error: its status and a JSON body `{"error", "error_description"}`.
struct Failure(StatusCode, &'static str, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Failure(status, error, description) = self;
        (status, Json(json!({ "error": error, "error_description": description }))).into_response()
    }
}

impl From<StorageError> for Failure {
    fn from(error: StorageError) -> Self {
        tracing::warn!(cause = %error, "admin request failed: storage");
        Failure(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "the storage did not answer; try again".into())
    }
}

type Answer = Result<Json<Value>, Failure>;

fn not_served(what: &str) -> Failure {
    Failure(StatusCode::NOT_FOUND, "not_served", format!("this instance does not serve {what}"))
}

impl AdminState {
    fn auth(&self) -> Result<&AuthorizationServer, Failure> {
        self.api.auth.as_deref().ok_or_else(|| not_served("the authorization server (AUTH_MODE=external)"))
    }
}

/// The admin routes, behind the token check and the audit.
pub fn router(api: AdminApi, token: &str) -> Router {
    let state = AdminState { api, token: TokenDigest::of(token) };
    Router::new()
        .route("/admin/clients", get(list_clients))
        .route("/admin/clients/{client_id}", get(show_client).delete(delete_client))
        .route("/admin/tokens/revoke", post(revoke_tokens))
        .route("/admin/sessions", get(list_sessions))
        .route("/admin/stats", get(stats))
        .route("/admin/purge-expired", post(purge_expired))
        .fallback(async || Failure(StatusCode::NOT_FOUND, "not_found", "no such admin command".into()))
        .layer(axum::middleware::from_fn_with_state(state.clone(), authorize_and_audit))
        .with_state(state)
}

/// Serves the admin API on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, api: AdminApi, token: &str) -> Result<(), std::io::Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the admin API listens beyond this machine: keep ADMIN_ADDR on loopback or behind a firewall");
    }
    tracing::info!(%addr, "admin API listening");
    let app = router(api, token).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "the admin listener stopped");
        }
    });
    Ok(())
}

async fn authorize_and_audit(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    use tracing::Instrument;
    let action = format!("{} {}", request.method(), request.uri().path());
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
    // The audit line carries the caller's address from this span.
    let span = tracing::info_span!("admin", peer = %peer);
    async move {
        let presented = mcp_oauth_resource::guard::bearer_token(request.headers());
        if !presented.is_some_and(|token| state.token.matches(token)) {
            audit::record(Event::AdminAction, "", "", "refused", &format!("{action}: no valid ADMIN_TOKEN"));
            let description = "the admin API needs ADMIN_TOKEN as a bearer token";
            let mut response = Failure(StatusCode::UNAUTHORIZED, "invalid_token", description.into()).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"admin\""));
            return response;
        }
        let response = next.run(request).await;
        let result = if response.status().is_success() { "done" } else { "failed" };
        audit::record(Event::AdminAction, "", "", result, &format!("{action}: {}", response.status().as_u16()));
        response
    }
    .instrument(span)
    .await
}

fn client_json(entry: &ClientEntry) -> Value {
    let client = &entry.client;
    let mut value = json!({
        "client_id": client.client_id.as_str(),
        "origin": entry.origin.as_str(),
        "issued_at": client.issued_at,
        "expires_at": (client.expires_at != chrono::DateTime::<chrono::Utc>::MAX_UTC).then_some(client.expires_at),
    });
    if let (Value::Object(fields), Ok(Value::Object(metadata))) = (&mut value, serde_json::to_value(&client.metadata)) {
        fields.extend(metadata);
    }
    value
}

async fn list_clients(State(state): State<AdminState>) -> Answer {
    let clients = state.auth()?.list_clients().await?;
    Ok(Json(json!({ "clients": clients.iter().map(client_json).collect::<Vec<_>>() })))
}

async fn show_client(State(state): State<AdminState>, Path(client_id): Path<String>) -> Answer {
    let client_id = ClientId::from(client_id);
    match state.auth()?.client_details(&client_id).await? {
        Some(ClientDetails { entry, grants, users }) => {
            let mut value = client_json(&entry);
            value["grants"] = grants.into();
            value["users"] = users.into();
            Ok(Json(value))
        }
        None => Err(Failure(StatusCode::NOT_FOUND, "not_found", format!("no client {client_id}"))),
    }
}

async fn delete_client(State(state): State<AdminState>, Path(client_id): Path<String>) -> Answer {
    let client_id = ClientId::from(client_id);
    let revoked = match state.auth()?.delete_client(&client_id).await {
        Ok(revoked) => revoked,
        Err(DeletionError::Storage(error)) => return Err(error.into()),
        Err(error @ DeletionError::Configured(_)) => {
            return Err(Failure(StatusCode::CONFLICT, "configured_client", error.to_string()));
        }
        Err(error @ DeletionError::Unknown(_)) => return Err(Failure(StatusCode::NOT_FOUND, "not_found", error.to_string())),
    };
    let ended = end_sessions(&state, &Holder::Client(client_id.clone())).await?;
    Ok(Json(json!({ "deleted": client_id.as_str(), "grants_revoked": revoked, "sessions_ended": ended })))
}

async fn end_sessions(state: &AdminState, holder: &Holder) -> Result<usize, Failure> {
    match &state.api.sessions {
        Some(sessions) => Ok(directory::end_sessions(sessions.as_ref(), holder).await?),
        None => Ok(0),
    }
}

/// Exactly one of `user` and `client`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolderQuery {
    user: Option<String>,
    client: Option<String>,
}

impl HolderQuery {
    fn holder(self) -> Result<Option<Holder>, Failure> {
        let invalid = |description: String| Failure(StatusCode::BAD_REQUEST, "invalid_request", description);
        match (self.user, self.client) {
            (Some(_), Some(_)) => Err(invalid("name a user or a client, not both".into())),
            (Some(user), None) => Ok(Some(Holder::User(Subject::parse(&user).map_err(|e| invalid(format!("user: {e}")))?))),
            (None, Some(client)) if !client.is_empty() => Ok(Some(Holder::Client(ClientId::from(client)))),
            (None, Some(_)) => Err(invalid("client: empty".into())),
            (None, None) => Ok(None),
        }
    }
}

async fn revoke_tokens(
    State(state): State<AdminState>,
    body: Result<Json<HolderQuery>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    let Json(query) = body.map_err(|e| Failure(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let Some(holder) = query.holder()? else {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "name the user or the client whose tokens to revoke".into(),
        ));
    };
    let revoked = match &state.api.auth {
        Some(auth) => auth.revoke_grants(&holder).await?,
        None => 0,
    };
    let ended = end_sessions(&state, &holder).await?;
    Ok(Json(json!({ "grants_revoked": revoked, "sessions_ended": ended })))
}

async fn list_sessions(
    State(state): State<AdminState>,
    query: Result<Query<HolderQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|e| Failure(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let holder = query.holder()?;
    let sessions = state.api.sessions.as_ref().ok_or_else(|| not_served("MCP sessions (AUTH_MODE=auth_server)"))?;
    let listed = directory::sessions(sessions.as_ref(), holder.as_ref()).await?;
    Ok(Json(json!({ "sessions": listed })))
}

async fn stats(State(state): State<AdminState>) -> Answer {
    let mut value = json!({});
    if let Some(auth) = &state.api.auth {
        value["records"] = serde_json::to_value(auth.record_counts().await?).unwrap_or_default();
    }
    if let Some(sessions) = &state.api.sessions {
        value["mcp_sessions"] = directory::sessions(sessions.as_ref(), None).await?.len().into();
    }
    Ok(Json(value))
}

async fn purge_expired(State(state): State<AdminState>) -> Answer {
    let purged = state.auth()?.purge_expired().await?;
    Ok(Json(json!({ "purged": purged })))
}
