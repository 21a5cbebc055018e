//! Sessions belong to the user whose token created them, through the client that did: the same
//! user's token from another client does not reach them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use mcp_oauth_domain::rate_limit::{Quota, RateLimitStore, Verdict};
use mcp_oauth_domain::secret::generate_secret;
use mcp_oauth_domain::validation::ValidatedToken;

use crate::ports::{Claim, McpSessionStore};
use crate::transport::SESSION_HEADER;

/// Who owns a session: the client and the user, unambiguously joined.
fn owner_of(token: &ValidatedToken) -> String {
    serde_json::json!([token.client_id, token.subject]).to_string()
}

/// The client id and subject an owner was made of, by [`owner_of`].
pub(crate) fn owner_parts(owner: &str) -> Option<(String, String)> {
    serde_json::from_str(owner).ok()
}

/// The sessions' store and the bounds sessions live under: how many live sessions one owner
/// (a user through one client) may hold, and how many streams one session may hold open on an
/// instance ([`crate::stream_limit`]). Past the first the new session is refused, not an old
/// one closed: the client may still be using any of them, and an idle one frees its place.
#[derive(Clone)]
pub struct SessionRules {
    pub store: Arc<dyn McpSessionStore>,
    pub max_per_owner: u32,
    pub max_streams: usize,
    pub creations: Option<CreationLimit>,
}

/// Sessions one owner may open per window (`RATE_LIMIT_MCP_SESSIONS`): `max_per_owner` bounds
/// the live ones, but a user who opens and ends sessions in a loop is bounded only by this.
/// Counted in the rate-limit store, so every instance sharing it counts together.
#[derive(Clone)]
pub struct CreationLimit {
    pub store: Arc<dyn RateLimitStore>,
    pub quota: Quota,
}

impl CreationLimit {
    fn key(owner: &str) -> String {
        format!("mcp-session:{owner}")
    }

    /// Whether `owner` has used up the window already, before a session is made for nothing.
    async fn exhausted(&self, owner: &str) -> Option<Duration> {
        match self.store.peek(&Self::key(owner)).await {
            Ok(Some(count)) if count.used >= self.quota.limit => Some(count.resets_in),
            _ => None,
        }
    }

    /// Counts a session `owner` opened; `Some(retry_after)` when it is one too many.
    async fn count(&self, owner: &str) -> Option<Duration> {
        match self.store.hit(&Self::key(owner), self.quota.window).await {
            Ok(count) => match self.quota.judge(count) {
                Verdict::Limited { retry_after } => Some(retry_after),
                Verdict::Allowed { .. } => None,
            },
            Err(error) => {
                // Refusing every new session while the store is away would turn an outage
                // into a lockout; the live-session cap still holds.
                tracing::warn!(cause = %error, "MCP session creation not counted: storage unavailable");
                None
            }
        }
    }

    fn refusal(&self, retry_after: Duration) -> Response {
        let retry_after = retry_after.max(Duration::from_secs(1));
        let seconds = retry_after.as_secs_f64().ceil() as u64;
        tracing::warn!(limit = %self.quota, "MCP session refused: its owner opened too many sessions (RATE_LIMIT_MCP_SESSIONS)");
        let message = format!("you opened too many MCP sessions; retry in {seconds} s");
        let mut response = crate::guard::over_limit(&message);
        crate::guard::refusal_headers(response.headers_mut(), &self.quota, retry_after);
        response
    }
}

/// Binds sessions to the token's client and subject. A request on a session the caller does not own is
/// sent on as a request on a session id nobody has, so rmcp answers it exactly as it answers
/// an unknown session (404) and nothing reveals that the session exists.
pub async fn bind_to_owner(State(ownership): State<SessionRules>, mut request: Request, next: Next) -> Response {
    let sessions = &ownership.store;
    let Some(subject) = request.extensions().get::<ValidatedToken>().map(owner_of) else {
        return next.run(request).await;
    };
    let unavailable = |error: mcp_oauth_domain::StorageError| {
        tracing::warn!(code = "temporarily_unavailable", description = "MCP session storage unavailable", cause = %error, "request failed");
        let body =
            crate::guard::jsonrpc_error(crate::guard::UNAVAILABLE, "session storage is temporarily unavailable; retry shortly");
        (StatusCode::SERVICE_UNAVAILABLE, [(axum::http::header::RETRY_AFTER, "1")], body).into_response()
    };
    let session = request.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let deleting = request.method() == axum::http::Method::DELETE;
    if session.is_none()
        && let Some(creations) = &ownership.creations
        && let Some(retry_after) = creations.exhausted(&subject).await
    {
        return creations.refusal(retry_after);
    }
    if let Some(id) = &session {
        match sessions.touch(id, &subject).await {
            Ok(true) => {}
            Ok(false) if deleting => {
                // rmcp acknowledges deleting an unknown session; the transport spec wants 404,
                // as for any other request on a session that is not there.
                return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
            }
            Ok(false) => {
                let nobody = HeaderValue::from_str(&format!("unknown-{}", generate_secret())).expect("base64url is header-safe");
                request.headers_mut().insert(SESSION_HEADER, nobody);
            }
            Err(error) => return unavailable(error),
        }
    }
    let mut response = next.run(request).await;
    // rmcp acknowledges a DELETE with 202, which clients (the Python SDK) report as a failed
    // termination; the session is gone, so the answer is 204.
    if deleting && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    if session.is_none()
        && let Some(created) = response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok())
    {
        if let Some(creations) = &ownership.creations
            && let Some(retry_after) = creations.count(&subject).await
        {
            // Racing requests passed the check above together; the one past the quota is
            // refused here, and its session ended before anyone could use it.
            let _ = sessions.end(created).await;
            return creations.refusal(retry_after);
        }
        match sessions.claim(created, &subject, ownership.max_per_owner).await {
            Ok(Claim::Claimed) => {}
            Ok(Claim::Full) => {
                // Never claimed, the session is nobody's: no request reaches it, and its copy
                // here ends with rmcp's idle timer.
                let _ = sessions.end(created).await;
                let max = ownership.max_per_owner;
                tracing::warn!(max, "MCP session refused: its owner holds MAX_SESSIONS_PER_USER sessions");
                let message = format!("you hold {max} open MCP sessions, the most allowed; end one (DELETE) or let one idle out");
                return crate::guard::over_limit(&message);
            }
            Err(error) => return unavailable(error),
        }
    }
    response
}
