//! How many children this instance runs, in all and per user. A user at their limit who starts
//! another session gets it in place of their longest-idle one (clients often leave sessions
//! without a DELETE); only when all of theirs are busy is the new one refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

/// How long a start waits for an evicted child to give its place back.
const EVICTION_WAIT: Duration = Duration::from_secs(5);

pub(super) struct ProcessLimits {
    max_total: usize,
    max_per_user: usize,
    total: AtomicUsize,
    per_user: DashMap<String, Vec<Arc<Activity>>>,
}

/// What the limits know of one running child: since when it has been idle, and how to end it.
pub(super) struct Activity {
    idle_since: Mutex<Option<Instant>>,
    pub(super) evicted: CancellationToken,
}

impl Activity {
    /// Whether the child has requests in flight.
    pub(super) fn set_busy(&self, busy: bool) {
        let mut idle = self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        match (busy, *idle) {
            (true, _) => *idle = None,
            (false, None) => *idle = Some(Instant::now()),
            (false, Some(_)) => {}
        }
    }

    fn idle_since(&self) -> Option<Instant> {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One running child's place in the limits, given back when dropped.
pub(super) struct ProcessPermit {
    limits: Arc<ProcessLimits>,
    subject: String,
    pub(super) activity: Arc<Activity>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    Total(usize),
    User(usize),
}

impl ProcessLimits {
    pub(super) fn new(max_total: usize, max_per_user: usize) -> Arc<Self> {
        Arc::new(Self { max_total, max_per_user, total: AtomicUsize::new(0), per_user: DashMap::new() })
    }

    /// A place for a new child of `subject`, ending their longest-idle child if they have no
    /// place left.
    pub(super) async fn acquire(self: &Arc<Self>, subject: &str) -> Result<ProcessPermit, Refusal> {
        let deadline = Instant::now() + EVICTION_WAIT;
        loop {
            match self.try_acquire(subject) {
                Err(Refusal::User(n)) => {
                    let Some(idle) = self.longest_idle(subject) else { return Err(Refusal::User(n)) };
                    idle.evicted.cancel();
                    if Instant::now() >= deadline {
                        return Err(Refusal::User(n));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    fn longest_idle(&self, subject: &str) -> Option<Arc<Activity>> {
        let children = self.per_user.get(subject)?;
        children.iter().filter(|a| a.idle_since().is_some()).min_by_key(|a| a.idle_since()).cloned()
    }

    fn try_acquire(self: &Arc<Self>, subject: &str) -> Result<ProcessPermit, Refusal> {
        // The user's entry stays locked while the total is taken, so two starts for one user
        // cannot both pass.
        let mut mine = self.per_user.entry(subject.to_owned()).or_default();
        if mine.len() >= self.max_per_user {
            return Err(Refusal::User(self.max_per_user));
        }
        self.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_total).then_some(n + 1))
            .map_err(|_| Refusal::Total(self.max_total))?;
        // Busy until its pump says otherwise: a child being started is not idle.
        let activity = Arc::new(Activity { idle_since: Mutex::new(None), evicted: CancellationToken::new() });
        mine.push(activity.clone());
        metrics::gauge!("mcp_upstream_processes").increment(1.0);
        Ok(ProcessPermit { limits: self.clone(), subject: subject.to_owned(), activity })
    }

    pub(super) fn running(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for ProcessPermit {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("mcp_upstream_processes").decrement(1.0);
        self.limits.per_user.remove_if_mut(&self.subject, |_, children| {
            children.retain(|a| !Arc::ptr_eq(a, &self.activity));
            children.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn children_are_bounded_in_all_and_per_user_and_given_back() {
        let limits = ProcessLimits::new(3, 2);
        let a1 = limits.acquire("alice").await.unwrap();
        let a2 = limits.acquire("alice").await.unwrap();
        a1.activity.set_busy(true);
        a2.activity.set_busy(true);
        assert_eq!(limits.acquire("alice").await.err(), Some(Refusal::User(2)), "all of alice's are busy");
        let _b1 = limits.acquire("bob").await.unwrap();
        assert_eq!(limits.acquire("carol").await.err(), Some(Refusal::Total(3)));
        assert_eq!(limits.running(), 3);
        drop(a1);
        assert_eq!(limits.running(), 2);
        assert!(limits.acquire("carol").await.is_ok(), "a freed place can be taken again");
        assert!(limits.per_user.get("carol").is_none(), "a user with no child leaves no entry");
        drop(a2);
    }

    #[tokio::test]
    async fn a_user_at_the_limit_gets_a_place_in_place_of_their_longest_idle_child() {
        let limits = ProcessLimits::new(10, 2);
        let older = limits.acquire("alice").await.unwrap();
        older.activity.set_busy(false);
        let newer = limits.acquire("alice").await.unwrap();
        newer.activity.set_busy(false);
        let evicted = older.activity.evicted.clone();
        // The evicted child's pump ends and drops its permit.
        tokio::spawn(async move {
            evicted.cancelled().await;
            drop(older);
        });
        let third = limits.acquire("alice").await.expect("the longest-idle child made room");
        assert!(!newer.activity.evicted.is_cancelled(), "only the longest-idle one goes");
        drop((newer, third));
    }
}
