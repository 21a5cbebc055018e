//! MCP sessions of a single process: a map, and a bus that loops back to this process.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ports::{Claim, McpSessionStore, Payloads, SessionBus, SessionEntry};
use async_trait::async_trait;
use dashmap::DashMap;
use mcp_oauth_domain::StorageError;
use tokio::sync::broadcast;

#[derive(Default)]
struct Session {
    owner: Option<String>,
    state: Option<String>,
    log_level: Option<String>,
    subscriptions: HashSet<String>,
    last_used: Option<Instant>,
}

pub struct MemoryMcpSessions {
    sessions: DashMap<String, Session>,
    idle_timeout: Duration,
    /// Held while a claim counts its owner's sessions, so that racing claims never pass the cap.
    claiming: std::sync::Mutex<()>,
}

impl MemoryMcpSessions {
    pub fn new(idle_timeout: Duration) -> Self {
        Self { sessions: DashMap::new(), idle_timeout, claiming: std::sync::Mutex::default() }
    }

    fn live(&self, session: &Session) -> bool {
        session.last_used.is_some_and(|t| t.elapsed() <= self.idle_timeout)
    }

    /// Runs `change` on the live session, creating it if missing or idle too long.
    fn with_session<R>(&self, id: &str, change: impl FnOnce(&mut Session) -> R) -> R {
        let mut entry = self.sessions.entry(id.to_owned()).or_default();
        if !self.live(&entry) {
            *entry = Session::default();
        }
        entry.last_used.get_or_insert_with(Instant::now);
        change(&mut entry)
    }

    fn read<R>(&self, id: &str, read: impl FnOnce(&Session) -> R) -> Option<R> {
        self.sessions.get(id).filter(|s| self.live(s)).map(|s| read(&s))
    }

    /// Frees idle sessions.
    pub fn sweep(&self) {
        self.sessions.retain(|_, session| session.last_used.is_some_and(|t| t.elapsed() <= self.idle_timeout));
    }

    /// Sweeps every `period` until the sessions are dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        mcp_oauth_adapters::memory::sweep_while_alive(Arc::downgrade(self), period, Self::sweep)
    }
}

#[async_trait]
impl McpSessionStore for MemoryMcpSessions {
    async fn claim(&self, session: &str, subject: &str, max: u32) -> Result<Claim, StorageError> {
        let _counting = self.claiming.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let owned = self.sessions.iter().filter(|s| s.owner.as_deref() == Some(subject) && self.live(s)).count();
        if owned >= max as usize {
            return Ok(Claim::Full);
        }
        self.with_session(session, |s| {
            s.owner = Some(subject.to_owned());
            s.last_used = Some(Instant::now());
        });
        Ok(Claim::Claimed)
    }

    async fn touch(&self, session: &str, subject: &str) -> Result<bool, StorageError> {
        let Some(mut entry) = self.sessions.get_mut(session) else { return Ok(false) };
        if !self.live(&entry) || entry.owner.as_deref() != Some(subject) {
            return Ok(false);
        }
        entry.last_used = Some(Instant::now());
        Ok(true)
    }

    async fn end(&self, session: &str) -> Result<(), StorageError> {
        self.sessions.remove(session);
        Ok(())
    }

    async fn save_state(&self, session: &str, state: &str) -> Result<(), StorageError> {
        self.with_session(session, |s| s.state = Some(state.to_owned()));
        Ok(())
    }

    async fn load_state(&self, session: &str) -> Result<Option<String>, StorageError> {
        Ok(self.read(session, |s| s.state.clone()).flatten())
    }

    async fn set_log_level(&self, session: &str, level: &str) -> Result<(), StorageError> {
        self.with_session(session, |s| s.log_level = Some(level.to_owned()));
        Ok(())
    }

    async fn log_level(&self, session: &str) -> Result<Option<String>, StorageError> {
        Ok(self.read(session, |s| s.log_level.clone()).flatten())
    }

    async fn set_subscribed(&self, session: &str, uri: &str, subscribed: bool) -> Result<(), StorageError> {
        self.with_session(session, |s| {
            if subscribed {
                s.subscriptions.insert(uri.to_owned());
            } else {
                s.subscriptions.remove(uri);
            }
        });
        Ok(())
    }

    async fn is_subscribed(&self, session: &str, uri: &str) -> Result<bool, StorageError> {
        Ok(self.read(session, |s| s.subscriptions.contains(uri)).unwrap_or(false))
    }

    async fn list(&self) -> Result<Vec<SessionEntry>, StorageError> {
        let now = chrono::Utc::now();
        let mut sessions = Vec::new();
        for entry in self.sessions.iter() {
            if let (Some(owner), Some(used)) = (&entry.owner, entry.last_used)
                && self.live(&entry)
            {
                let ago = chrono::Duration::from_std(used.elapsed()).unwrap_or_default();
                sessions.push(SessionEntry { id: entry.key().clone(), owner: owner.clone(), last_used: now - ago });
            }
        }
        Ok(sessions)
    }
}

/// A bus within one process.
pub struct LocalBus {
    sender: broadcast::Sender<String>,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self { sender: broadcast::channel(1024).0 }
    }
}

/// Turns a broadcast receiver into a stream; a lagging listener skips what it missed.
pub fn payloads(receiver: broadcast::Receiver<String>) -> Payloads {
    Box::pin(futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(payload) => return Some((payload, receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "session bus listener lagged");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }))
}

#[async_trait]
impl SessionBus for LocalBus {
    async fn publish(&self, payload: String) -> Result<(), StorageError> {
        // No listener is not an error: nobody needs the message.
        let _ = self.sender.send(payload);
        Ok(())
    }

    fn listen(&self) -> Payloads {
        payloads(self.sender.subscribe())
    }
}

/// Identity-signing keys of a single process, each dropped once its keep time is over.
#[derive(Default)]
pub struct MemorySigningKeys {
    keys: DashMap<u64, (String, Instant)>,
}

#[async_trait]
impl crate::ports::SigningKeyStore for MemorySigningKeys {
    async fn key_for(&self, period: u64, proposal: &str, keep: Duration) -> Result<String, StorageError> {
        self.keys.retain(|_, (_, until)| *until > Instant::now());
        let entry = self.keys.entry(period).or_insert_with(|| (proposal.to_owned(), Instant::now() + keep));
        Ok(entry.0.clone())
    }

    async fn existing(&self, period: u64) -> Result<Option<String>, StorageError> {
        Ok(self.keys.get(&period).filter(|e| e.1 > Instant::now()).map(|e| e.0.clone()))
    }
}
