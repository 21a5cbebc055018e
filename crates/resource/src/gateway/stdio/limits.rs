//! How many children this instance runs, in all and per user.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

pub(super) struct ProcessLimits {
    max_total: usize,
    max_per_user: usize,
    total: AtomicUsize,
    per_user: DashMap<String, usize>,
}

/// One running child's place in the limits, given back when dropped.
pub(super) struct ProcessPermit {
    limits: Arc<ProcessLimits>,
    subject: String,
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

    pub(super) fn acquire(self: &Arc<Self>, subject: &str) -> Result<ProcessPermit, Refusal> {
        // The user's entry stays locked while the total is taken, so two starts for one user
        // cannot both pass.
        let mut mine = self.per_user.entry(subject.to_owned()).or_insert(0);
        if *mine >= self.max_per_user {
            return Err(Refusal::User(self.max_per_user));
        }
        self.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_total).then_some(n + 1))
            .map_err(|_| Refusal::Total(self.max_total))?;
        *mine += 1;
        Ok(ProcessPermit { limits: self.clone(), subject: subject.to_owned() })
    }

    pub(super) fn running(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for ProcessPermit {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(1, Ordering::AcqRel);
        self.limits.per_user.remove_if_mut(&self.subject, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_bounded_in_all_and_per_user_and_given_back() {
        let limits = ProcessLimits::new(3, 2);
        let a1 = limits.acquire("alice").unwrap();
        let _a2 = limits.acquire("alice").unwrap();
        assert_eq!(limits.acquire("alice").err(), Some(Refusal::User(2)));
        let _b1 = limits.acquire("bob").unwrap();
        assert_eq!(limits.acquire("carol").err(), Some(Refusal::Total(3)));
        assert_eq!(limits.running(), 3);
        drop(a1);
        assert_eq!(limits.running(), 2);
        assert!(limits.acquire("carol").is_ok(), "a freed place can be taken again");
        assert!(limits.per_user.get("carol").is_none(), "a user with no child leaves no entry");
    }
}
