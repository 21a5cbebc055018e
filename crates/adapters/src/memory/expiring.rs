//! A concurrent map whose entries become invisible at their deadline and are freed by `sweep`.

use std::hash::Hash;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

/// A deadline in milliseconds from this process's start: half the size of an `Instant`, in
/// maps that may hold millions of entries.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline(u64);

impl Deadline {
    fn now() -> Self {
        static START: LazyLock<Instant> = LazyLock::new(Instant::now);
        Self(u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn after(self, lifetime: Duration) -> Self {
        Self(self.0.saturating_add(u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX)))
    }
}

pub(super) struct ExpiringMap<K: Eq + Hash, V> {
    entries: DashMap<K, (V, Deadline)>,
}

impl<K: Eq + Hash + Clone, V: Clone> ExpiringMap<K, V> {
    pub(super) fn new() -> Self {
        Self { entries: DashMap::new() }
    }

    pub(super) fn insert(&self, key: K, value: V, lifetime: Duration) {
        self.entries.insert(key, (value, Deadline::now().after(lifetime)));
    }

    pub(super) fn get(&self, key: &K) -> Option<V> {
        let entry = self.entries.get(key)?;
        (entry.1 > Deadline::now()).then(|| entry.0.clone())
    }

    /// Removes the entry; returns it only if it was still live. Atomic per key.
    pub(super) fn take(&self, key: &K) -> Option<V> {
        let (_, (value, deadline)) = self.entries.remove(key)?;
        (deadline > Deadline::now()).then_some(value)
    }

    pub(super) fn remove(&self, key: &K) {
        self.entries.remove(key);
    }

    /// Runs `change` on the live entry under its shard lock, so check-and-set is atomic.
    pub(super) fn update<R>(&self, key: &K, change: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut entry = self.entries.get_mut(key)?;
        if entry.1 <= Deadline::now() {
            return None;
        }
        Some(change(&mut entry.0))
    }

    /// Runs `change` on the live entry and keeps it at least `keep` from now; a missing or
    /// expired entry stays so.
    pub(super) fn prolong(&self, key: &K, keep: Duration, change: impl FnOnce(&mut V)) {
        let now = Deadline::now();
        if let Some(mut entry) = self.entries.get_mut(key)
            && entry.1 > now
            && entry.1 < now.after(keep)
        {
            change(&mut entry.0);
            entry.1 = now.after(keep);
        }
    }

    /// Runs `change` on the entry under its shard lock, starting from `fresh` when it is
    /// missing or expired. `change` returns its result and how long from now the entry must
    /// at least be kept (`None`: as long as before, which for a fresh entry is not at all).
    pub(super) fn upsert<R>(&self, key: K, fresh: impl FnOnce() -> V, change: impl FnOnce(&mut V) -> (R, Option<Duration>)) -> R {
        let now = Deadline::now();
        let mut entry = match self.entries.entry(key) {
            Entry::Occupied(mut occupied) => {
                if occupied.get().1 <= now {
                    occupied.insert((fresh(), now));
                }
                occupied.into_ref()
            }
            Entry::Vacant(vacant) => vacant.insert((fresh(), now)),
        };
        let (result, keep) = change(&mut entry.0);
        if let Some(keep) = keep {
            entry.1 = entry.1.max(now.after(keep));
        }
        // An entry that nothing asked to keep is dropped at once rather than left to the sweep.
        if entry.1 <= now {
            let key = entry.key().clone();
            drop(entry);
            self.entries.remove_if(&key, |_, (_, deadline)| *deadline <= now);
        }
        result
    }

    /// Frees the expired entries; returns how many.
    pub(super) fn sweep(&self) -> usize {
        let now = Deadline::now();
        let before = self.entries.len();
        self.entries.retain(|_, (_, deadline)| *deadline > now);
        before.saturating_sub(self.entries.len())
    }

    /// Visits every live entry, one shard lock at a time (an operator's scan, not a request's).
    pub(super) fn for_each_live(&self, mut visit: impl FnMut(&K, &V)) {
        let now = Deadline::now();
        for entry in self.entries.iter() {
            if entry.1 > now {
                visit(entry.key(), &entry.0);
            }
        }
    }

    /// Frees the live entries `keep` refuses; returns how many.
    pub(super) fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|key, (value, _)| keep(key, value));
        before.saturating_sub(self.entries.len())
    }

    pub(super) fn count_live(&self) -> u64 {
        let mut count = 0;
        self.for_each_live(|_, _| count += 1);
        count
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
