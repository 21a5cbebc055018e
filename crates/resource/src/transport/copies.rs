//! The session copies this instance holds, and when one is released.
//!
//! A copy is rmcp's worker and server for one session: about 67 KB, most of it rmcp's channel
//! buffers (README, Benchmarks). A copy nobody has used for a while gives them up, but only
//! when it has nothing to lose: no request in flight, no stream open, nothing pinned to it (a
//! resource subscription's updater). The session stays in the store, and its next request
//! restores a copy, as on an instance that never saw it. A copy unused for the session idle
//! timeout ends even with a stream open: its session has expired in the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

/// How long a request waits for a copy being released to finish, before asking rmcp anyway.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// When copies are released.
#[derive(Clone, Copy)]
pub(crate) struct ReleasePolicy {
    /// Unused for this long, with nothing open or pinned: released.
    pub unused: Duration,
    /// Unused for this long: released whatever is open (the session has expired).
    pub expired: Duration,
}

/// Every request on a session marks its copy used, so that is a read lock and two atomics:
/// one busy session's requests on every worker thread do not queue for its map shard.
pub struct Copies {
    held: DashMap<String, Copy>,
    /// What `last_used` counts from.
    epoch: Instant,
}

impl Default for Copies {
    fn default() -> Self {
        Self { held: DashMap::new(), epoch: Instant::now() }
    }
}

struct Copy {
    activity: Arc<Activity>,
    state: State,
}

#[derive(Default)]
struct Activity {
    /// Milliseconds from the epoch.
    last_used: AtomicU64,
    /// Streams open and pins held.
    open: AtomicU32,
}

impl Activity {
    fn touch(&self, epoch: Instant) {
        self.last_used.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn unused_for(&self, epoch: Instant) -> Duration {
        epoch.elapsed().saturating_sub(Duration::from_millis(self.last_used.load(Ordering::Relaxed)))
    }
}

enum State {
    /// Cancelling the token ends the copy's transport, and so its server and worker.
    Held(CancellationToken),
    /// Ended; cancelled once rmcp has closed the local session, when a request may restore it.
    Releasing { closed: CancellationToken, since: Instant },
}

/// Keeps a copy from being released while it lives: an open stream, or a pin.
pub struct InUse {
    activity: Option<Arc<Activity>>,
    epoch: Instant,
}

impl Drop for InUse {
    fn drop(&mut self) {
        if let Some(activity) = &self.activity {
            activity.open.fetch_sub(1, Ordering::Relaxed);
            activity.touch(self.epoch);
        }
    }
}

impl Copies {
    /// A copy this instance now holds; the token ends it.
    pub(super) fn hold(&self, session: &str) -> CancellationToken {
        let token = CancellationToken::new();
        let activity = Arc::new(Activity::default());
        activity.touch(self.epoch);
        self.held.insert(session.to_owned(), Copy { activity, state: State::Held(token.clone()) });
        token
    }

    /// Marks `session` used. If its copy is being released, waits until rmcp has closed it, so
    /// that the caller finds no copy and restores one.
    pub(super) async fn use_copy(&self, session: &str) {
        let closing = match self.held.get(session) {
            Some(copy) => match &copy.state {
                State::Held(_) => {
                    copy.activity.touch(self.epoch);
                    return;
                }
                State::Releasing { closed, .. } => closed.clone(),
            },
            None => return,
        };
        let _ = tokio::time::timeout(RELEASE_WAIT, closing.cancelled()).await;
    }

    /// Keeps `session`'s copy, if this instance holds one, until the guard drops.
    pub fn in_use(&self, session: &str) -> InUse {
        let activity = self.held.get(session).map(|copy| copy.activity.clone());
        if let Some(activity) = &activity {
            activity.open.fetch_add(1, Ordering::Relaxed);
            activity.touch(self.epoch);
        }
        InUse { activity, epoch: self.epoch }
    }

    /// rmcp closed `session`'s local copy. True if this copy was released (the session goes
    /// on), false if the session itself ended here.
    pub(super) fn closed(&self, session: &str) -> bool {
        match self.held.remove(session) {
            Some((_, Copy { state: State::Releasing { closed, .. }, .. })) => {
                closed.cancel();
                true
            }
            _ => false,
        }
    }

    /// Releases the copies `policy` says to; forgets releases rmcp never finished.
    pub(super) fn sweep(&self, policy: ReleasePolicy) {
        self.held.retain(|_, copy| {
            let unused = copy.activity.unused_for(self.epoch);
            let open = copy.activity.open.load(Ordering::Relaxed);
            match &copy.state {
                State::Held(token) if (open == 0 && unused >= policy.unused) || unused >= policy.expired => {
                    token.cancel();
                    copy.state = State::Releasing { closed: CancellationToken::new(), since: Instant::now() };
                    true
                }
                State::Releasing { closed, since } if since.elapsed() >= RELEASE_WAIT => {
                    closed.cancel();
                    false
                }
                _ => true,
            }
        });
    }

    /// Sweeps every so often until `stop` is cancelled.
    pub(super) fn spawn_sweeper(self: &Arc<Self>, policy: ReleasePolicy, stop: CancellationToken) {
        let copies = Arc::downgrade(self);
        let period = (policy.unused / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.cancelled() => return,
                }
                match copies.upgrade() {
                    Some(copies) => copies.sweep(policy),
                    None => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: ReleasePolicy = ReleasePolicy { unused: Duration::from_millis(40), expired: Duration::from_millis(400) };

    #[tokio::test]
    async fn an_unused_copy_is_released_and_a_request_waits_for_rmcp_to_close_it() {
        let copies = Arc::new(Copies::default());
        let ended = copies.hold("s1");
        copies.sweep(POLICY);
        assert!(!ended.is_cancelled(), "just used");
        tokio::time::sleep(POLICY.unused).await;
        copies.sweep(POLICY);
        assert!(ended.is_cancelled(), "unused: released");
        let waiting = tokio::spawn({
            let copies = copies.clone();
            async move { copies.use_copy("s1").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a request waits while the release is under way");
        assert!(copies.closed("s1"), "rmcp's close finishes a release");
        waiting.await.unwrap();
        assert!(!copies.closed("s1"), "a close with no copy held is an end");
    }

    #[tokio::test]
    async fn an_open_stream_keeps_a_copy_until_its_session_expires() {
        let copies = Arc::new(Copies::default());
        let ended = copies.hold("s1");
        let stream = copies.in_use("s1");
        tokio::time::sleep(POLICY.unused).await;
        copies.sweep(POLICY);
        assert!(!ended.is_cancelled(), "a stream is open");
        drop(stream);
        copies.sweep(POLICY);
        assert!(!ended.is_cancelled(), "the stream's end counts as use");
        let _pinned = copies.in_use("s1");
        tokio::time::sleep(POLICY.expired).await;
        copies.sweep(POLICY);
        assert!(ended.is_cancelled(), "expired: released with a pin held");
    }

    #[tokio::test]
    async fn a_used_copy_is_kept() {
        let copies = Arc::new(Copies::default());
        let ended = copies.hold("s1");
        tokio::time::sleep(POLICY.unused).await;
        copies.use_copy("s1").await;
        copies.sweep(POLICY);
        assert!(!ended.is_cancelled());
        assert!(!copies.closed("s1"), "closed while held: the session ended");
    }
}
