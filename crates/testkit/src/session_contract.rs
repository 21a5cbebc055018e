//! The MCP session contract: the same cases for every implementation of the resource server's
//! session ports. A test file calls `session_contract_suite!(name, factory)`, where
//! `factory(idle_timeout)` returns a fresh [`SessionBackend`] whose two buses are two
//! instances' views of one bus.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mcp_oauth_resource::ports::{Claim, McpSessionStore, Payloads, SessionBus};

pub struct SessionBackend {
    pub sessions: Arc<dyn McpSessionStore>,
    /// The bus as one instance sees it.
    pub bus: Arc<dyn SessionBus>,
    /// The same bus as another instance sees it (for a single process, the same bus).
    pub other_bus: Arc<dyn SessionBus>,
    pub keep_alive: Box<dyn Any + Send + Sync>,
}

/// An idle timeout short enough to watch sessions expire in real time.
pub const IDLE: Duration = Duration::from_millis(500);

#[macro_export]
macro_rules! session_contract_suite {
    ($name:ident, $factory:expr) => {
        mod $name {
            use super::*;
            $crate::session_contract_cases!($factory;
                sessions_belong_to_the_subject_that_claimed_them, ended_sessions_are_gone,
                state_level_and_subscriptions_round_trip, idle_sessions_expire_and_use_renews_them,
                the_bus_reaches_every_listener_on_every_instance, each_owner_holds_at_most_max_sessions,
                racing_claims_stay_under_the_cap, sessions_are_listed_with_their_owners);
        }
    };
}

#[macro_export]
macro_rules! session_contract_cases {
    ($factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::session_contract::$case(&$factory).await;
            }
        )*
    };
}

const NO_CAP: u32 = u32::MAX;

pub async fn each_owner_holds_at_most_max_sessions(factory: &impl AsyncFn(Duration) -> SessionBackend) {
    let backend = factory(IDLE).await;
    let sessions = &backend.sessions;
    assert_eq!(sessions.claim("a1", "alice", 2).await.unwrap(), Claim::Claimed);
    assert_eq!(sessions.claim("a2", "alice", 2).await.unwrap(), Claim::Claimed);
    assert_eq!(sessions.claim("a3", "alice", 2).await.unwrap(), Claim::Full, "alice holds two");
    assert!(!sessions.touch("a3", "alice").await.unwrap(), "a refused session is nobody's");
    assert_eq!(sessions.claim("b1", "bob", 2).await.unwrap(), Claim::Claimed, "bob has his own count");
    sessions.end("a1").await.unwrap();
    assert_eq!(sessions.claim("a3", "alice", 2).await.unwrap(), Claim::Claimed, "an ended session frees its place");
    // Idle sessions free theirs too; one kept in use keeps its place.
    for _ in 0..4 {
        tokio::time::sleep(IDLE / 3).await;
        assert!(sessions.touch("a2", "alice").await.unwrap());
    }
    assert_eq!(sessions.claim("a4", "alice", 2).await.unwrap(), Claim::Claimed, "a3 idled out");
    assert_eq!(sessions.claim("a5", "alice", 2).await.unwrap(), Claim::Full, "a2 is still in use");
}

pub async fn racing_claims_stay_under_the_cap(factory: &impl AsyncFn(Duration) -> SessionBackend) {
    let backend = factory(Duration::from_secs(60)).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(30));
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let (sessions, barrier) = (backend.sessions.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                sessions.claim(&format!("race-{i}"), "alice", 5).await.unwrap()
            })
        })
        .collect();
    let mut claimed = 0;
    for task in tasks {
        claimed += usize::from(task.await.unwrap() == Claim::Claimed);
    }
    assert_eq!(claimed, 5, "exactly the cap of 30 racing claims holds");
}

pub async fn sessions_belong_to_the_subject_that_claimed_them(factory: &impl AsyncFn(Duration) -> SessionBackend) {
    let backend = factory(Duration::from_secs(60)).await;
    let sessions = &backend.sessions;
    assert!(!sessions.touch("s1", "alice").await.unwrap(), "an unknown session is nobody's");
    sessions.claim("s1", "alice", NO_CAP).await.unwrap();
    assert!(sessions.touch("s1", "alice").await.unwrap());
    assert!(!sessions.touch("s1", "bob").await.unwrap(), "another subject does not own it");
    assert!(!sessions.touch("s2", "alice").await.unwrap(), "sessions are kept apart");
}

pub async fn ended_sessions_are_gone(factory: &impl AsyncFn(Duration) -> SessionBackend) {
    let backend = factory(Duration::from_secs(60)).await;
    let sessions = &backend.sessions;
    sessions.claim("s1", "alice", NO_CAP).await.unwrap();
    sessions.save_state("s1", "{\"initialize\":1}").await.unwrap();
    sessions.set_subscribed("s1", "test://a", true).await.unwrap();
    sessions.end("s1").await.unwrap();
    assert!(!sessions.touch("s1", "alice").await.unwrap());
    assert_eq!(sessions.load_state("s1").await.unwrap(), None);
    assert!(!sessions.is_subscribed("s1", "test://a").await.unwrap());
    sessions.end("never-existed").await.unwrap();
}

pub async fn state_level_and_subscriptions_round_trip(factory: &impl AsyncFn(Duration) -> SessionBackend) {
    let backend = factory(Duration::from_secs(60)).await;
    let sessions = &backend.sessions;
    sessions.claim("s1", "alice", NO_CAP).await.unwrap();
    assert_eq!(sessions.load_state("s1").await.unwrap(), None);
    sessions.save_state("s1", "{\"protocolVersion\":\"2025-06-18\"}").await.unwrap();
    assert_eq!(sessions.load_state("s1").await.unwrap().as_deref(), Some("{\"protocolVersion\":\"2025-06-18\"}"));
    assert_eq!(sessions.log_level("s1").await.unwrap(), None);
    sessions.set_log_level("s1", "warning").await.unwrap();
    assert_eq!(sessions.log_level("s1").await.unwrap().as_deref(), Some("warning"));
    assert!(!sessions.is_subscribed("s1", "test://a").await.unwrap());
    sessions.set_subscribed("s1", "test://a", true).await.unwrap();
    sessions.set_subscribed("s1", "test://b", true).await.unwrap();
    sessions.set_subscribed("s1", "test://b", false).await.unwrap();
    assert!(sessions.is_subscribed("s1", "test://a").await.unwrap());
    assert!(!sessions.is_subscribed("s1", "test://b").await.unwrap());
    assert!(!sessions.is_subscribed("s2", "test://a").await.unwrap(), "subscriptions are per session");
    assert!(sessions.touch("s1", "alice").await.unwrap(), "the owner survives the other writes");
}

pub async fn idle_sessions_expire_and_use_renews_them(factory: &impl AsyncFn(Duration) -> SessionBackend) {
    let backend = factory(IDLE).await;
    let sessions = &backend.sessions;
    sessions.claim("kept", "alice", NO_CAP).await.unwrap();
    sessions.claim("idle", "alice", NO_CAP).await.unwrap();
    sessions.set_subscribed("idle", "test://a", true).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(IDLE / 3).await;
        assert!(sessions.touch("kept", "alice").await.unwrap(), "the owner's use keeps it alive");
        assert!(!sessions.touch("kept", "bob").await.unwrap());
    }
    assert!(!sessions.touch("idle", "alice").await.unwrap(), "unused for longer than the idle timeout");
    assert!(!sessions.is_subscribed("idle", "test://a").await.unwrap(), "its subscriptions went with it");
    tokio::time::sleep(IDLE + IDLE / 2).await;
    assert!(!sessions.touch("kept", "alice").await.unwrap(), "a session nobody uses expires");
}

/// The next payload, if one arrives within 200 ms.
async fn next(listener: &mut Payloads) -> Option<String> {
    tokio::time::timeout(Duration::from_millis(200), listener.next()).await.ok().flatten()
}

pub async fn the_bus_reaches_every_listener_on_every_instance(factory: &impl AsyncFn(Duration) -> SessionBackend) {
    let backend = factory(Duration::from_secs(60)).await;
    let mut own = backend.bus.listen();
    let mut second = backend.bus.listen();
    let mut other = backend.other_bus.listen();
    // A subscription on a real broker takes a moment to be in place.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        backend.bus.publish("probe".into()).await.unwrap();
        if next(&mut other).await.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the other instance never heard the bus");
    }
    while next(&mut own).await.is_some() {}
    while next(&mut second).await.is_some() {}
    while next(&mut other).await.is_some() {}

    backend.other_bus.publish("from the other instance".into()).await.unwrap();
    backend.bus.publish("from this instance".into()).await.unwrap();
    for listener in [&mut own, &mut second, &mut other] {
        let mut heard = vec![next(listener).await, next(listener).await];
        heard.sort();
        assert_eq!(heard, [Some("from the other instance".to_owned()), Some("from this instance".to_owned())]);
    }
}

pub async fn sessions_are_listed_with_their_owners(factory: &impl AsyncFn(Duration) -> SessionBackend) {
    let backend = factory(IDLE).await;
    let sessions = &backend.sessions;
    assert!(sessions.list().await.unwrap().is_empty());
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    sessions.claim("s1", "alice", NO_CAP).await.unwrap();
    sessions.claim("s2", "bob", NO_CAP).await.unwrap();
    sessions.save_state("unclaimed", "{}").await.unwrap();
    let mut listed = sessions.list().await.unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let owners: Vec<(&str, &str)> = listed.iter().map(|s| (s.id.as_str(), s.owner.as_str())).collect();
    assert_eq!(owners, [("s1", "alice"), ("s2", "bob")], "claimed sessions only, with their owners");
    let after = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert!(listed.iter().all(|s| s.last_used > before && s.last_used < after), "{listed:?}");
    sessions.end("s1").await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(IDLE / 3).await;
        assert!(sessions.touch("s2", "bob").await.unwrap());
    }
    let listed = sessions.list().await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s2"], "ended and idle sessions are not listed");
}
