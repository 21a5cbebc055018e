//! Sessions belong to the user whose token created them, through the client that did: the same
//! user's token from another client does not reach them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};

use dashmap::DashMap;

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
    /// How long an unused session lives (`MCP_SESSION_IDLE_TIMEOUT`), as the store keeps it.
    pub idle_timeout: Duration,
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

/// How long a session this instance found owned by its caller is taken as still owned and
/// alive without asking the store again: a second, or a tenth of the idle timeout if that is
/// shorter. On a shared store that question was a round trip on every request; a busy session
/// now asks once a second, which also restarts its idle timer (ten times within it at least, so
/// a session in use stays alive as it did). What it delays is an end made elsewhere without
/// telling this instance (an operator's, whose grants are revoked and whose tokens are refused
/// anyway) by at most this long; a DELETE is never taken from here, and one on another instance
/// closes this instance's copy over the bus.
const RECHECK: Duration = Duration::from_secs(1);

/// Sessions remembered at most; past it the stale ones go, and all of them if none is stale.
const MAX_REMEMBERED: usize = 10_000;

/// The sessions whose owner this instance checked within `window`, with that owner.
struct RecentOwners {
    checked: DashMap<String, (String, Instant)>,
    window: Duration,
}

impl RecentOwners {
    fn new(idle_timeout: Duration) -> Self {
        Self { checked: DashMap::new(), window: RECHECK.min(idle_timeout / 10) }
    }

    fn vouches(&self, session: &str, owner: &str) -> bool {
        self.checked.get(session).is_some_and(|entry| entry.0 == owner && entry.1.elapsed() < self.window)
    }

    fn remember(&self, session: &str, owner: &str) {
        if self.checked.len() >= MAX_REMEMBERED {
            let window = self.window;
            self.checked.retain(|_, entry| entry.1.elapsed() < window);
            if self.checked.len() >= MAX_REMEMBERED {
                self.checked.clear();
            }
        }
        self.checked.insert(session.to_owned(), (owner.to_owned(), Instant::now()));
    }

    fn forget(&self, session: &str) {
        self.checked.remove(session);
    }
}

/// What [`bind_to_owner`] works with: the rules, and what this instance checked lately.
#[derive(Clone)]
pub struct Ownership {
    rules: SessionRules,
    recent: Arc<RecentOwners>,
}

impl Ownership {
    pub fn new(rules: SessionRules) -> Self {
        let recent = Arc::new(RecentOwners::new(rules.idle_timeout));
        Self { rules, recent }
    }

    /// Whether `owner` owns the live session `id`: from the store, or from a check made here
    /// within [`RECHECK`] (or a tenth of the idle timeout). A DELETE always asks the store,
    /// and is forgotten here.
    async fn owns(&self, id: &str, owner: &str, deleting: bool) -> Result<bool, mcp_oauth_domain::StorageError> {
        if deleting {
            self.recent.forget(id);
        } else if self.recent.vouches(id, owner) {
            return Ok(true);
        }
        let owned = self.rules.store.touch(id, owner).await?;
        if owned && !deleting {
            self.recent.remember(id, owner);
        }
        Ok(owned)
    }
}

/// Binds sessions to the token's client and subject. A request on a session the caller does not own is
/// sent on as a request on a session id nobody has, so rmcp answers it exactly as it answers
/// an unknown session (404) and nothing reveals that the session exists.
pub async fn bind_to_owner(State(checks): State<Ownership>, mut request: Request, next: Next) -> Response {
    let ownership = &checks.rules;
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
        match checks.owns(id, &subject, deleting).await {
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
                // here is released once unused (MCP_SESSION_WORKER_IDLE).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryMcpSessions;

    fn ownership() -> (Ownership, Arc<MemoryMcpSessions>) {
        let store = Arc::new(MemoryMcpSessions::new(Duration::from_secs(600)));
        let idle_timeout = Duration::from_secs(600);
        let rules = SessionRules { store: store.clone(), max_per_owner: 10, max_streams: 10, idle_timeout, creations: None };
        (Ownership::new(rules), store)
    }

    #[tokio::test]
    async fn a_check_is_taken_from_here_for_its_owner_only_and_for_a_second_only() {
        let (ownership, store) = ownership();
        store.claim("s1", "alice", 10).await.unwrap();
        assert!(ownership.owns("s1", "alice", false).await.unwrap());
        store.end("s1").await.unwrap();
        assert!(ownership.owns("s1", "alice", false).await.unwrap(), "checked within the second: not asked again");
        assert!(!ownership.owns("s1", "mallory", false).await.unwrap(), "another caller is always checked in the store");
        ownership.recent.checked.alter("s1", |_, (owner, at)| (owner, at - RECHECK));
        assert!(!ownership.owns("s1", "alice", false).await.unwrap(), "past the second the store answers again");
    }

    #[test]
    fn a_short_idle_timeout_shortens_the_window() {
        assert_eq!(RecentOwners::new(Duration::from_secs(600)).window, RECHECK);
        assert_eq!(RecentOwners::new(Duration::from_secs(1)).window, Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_delete_always_asks_the_store_and_is_forgotten() {
        let (ownership, store) = ownership();
        store.claim("s1", "alice", 10).await.unwrap();
        assert!(ownership.owns("s1", "alice", false).await.unwrap());
        store.end("s1").await.unwrap();
        assert!(!ownership.owns("s1", "alice", true).await.unwrap(), "a DELETE is answered by the store");
        assert!(!ownership.owns("s1", "alice", false).await.unwrap(), "and the check made before it is gone");
    }

    #[test]
    fn the_remembered_sessions_stay_bounded() {
        let recent = RecentOwners::new(Duration::from_secs(600));
        for i in 0..MAX_REMEMBERED + 5 {
            recent.remember(&format!("s{i}"), "alice");
        }
        assert!(recent.checked.len() <= MAX_REMEMBERED);
        assert!(recent.vouches(&format!("s{}", MAX_REMEMBERED + 4), "alice"), "the newest is kept");
    }
}
