//! A concurrent map whose entries become invisible at their deadline and are freed by `sweep`.

use std::hash::Hash;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

pub(super) struct ExpiringMap<K: Eq + Hash, V> {
    entries: DashMap<K, (V, Instant)>,
}

impl<K: Eq + Hash + Clone, V: Clone> ExpiringMap<K, V> {
    pub(super) fn new() -> Self {
        Self { entries: DashMap::new() }
    }

    pub(super) fn insert(&self, key: K, value: V, lifetime: Duration) {
        self.entries.insert(key, (value, Instant::now() + lifetime));
    }

    pub(super) fn get(&self, key: &K) -> Option<V> {
        let entry = self.entries.get(key)?;
        (entry.1 > Instant::now()).then(|| entry.0.clone())
    }

    /// Removes the entry; returns it only if it was still live. Atomic per key.
    pub(super) fn take(&self, key: &K) -> Option<V> {
        let (_, (value, deadline)) = self.entries.remove(key)?;
        (deadline > Instant::now()).then_some(value)
    }

    pub(super) fn remove(&self, key: &K) {
        self.entries.remove(key);
    }

    /// Runs `change` on the live entry under its shard lock, so check-and-set is atomic.
    pub(super) fn update<R>(&self, key: &K, change: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut entry = self.entries.get_mut(key)?;
        if entry.1 <= Instant::now() {
            return None;
        }
        Some(change(&mut entry.0))
    }

    /// Runs `change` on the entry, creating it with `fresh` (live for `lifetime`) when it is
    /// missing or expired, and extends its deadline to at least `lifetime` from now.
    pub(super) fn upsert<R>(&self, key: K, lifetime: Duration, fresh: impl FnOnce() -> V, change: impl FnOnce(&mut V) -> R) -> R {
        let now = Instant::now();
        let deadline = now + lifetime;
        match self.entries.entry(key) {
            Entry::Occupied(mut occupied) => {
                let entry = occupied.get_mut();
                if entry.1 <= now {
                    *entry = (fresh(), deadline);
                }
                entry.1 = entry.1.max(deadline);
                change(&mut entry.0)
            }
            Entry::Vacant(vacant) => change(&mut vacant.insert((fresh(), deadline)).0),
        }
    }

    pub(super) fn sweep(&self) {
        let now = Instant::now();
        self.entries.retain(|_, (_, deadline)| *deadline > now);
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
