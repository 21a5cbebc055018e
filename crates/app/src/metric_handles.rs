//! Metric handles registered once per label set. The `metrics` macros build a key (a vector of
//! labels) and find it in the registry on every call: a few thousand instructions on every
//! request and every storage call (README, Benchmarks). Here a handle is looked up by labels
//! that are already at hand, without allocating, and registered only the first time.
//! Label sets are bounded (route templates, fixed words, statuses), so nothing is evicted.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{PoisonError, RwLock};

pub struct Handles<K, H>(RwLock<HashMap<K, H>>);

impl<K, H> Default for Handles<K, H> {
    fn default() -> Self {
        Self(RwLock::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, H: Clone> Handles<K, H> {
    /// The handle for `labels`, registered by `register` (which returns its owned key) if new.
    pub fn get<Q>(&self, labels: &Q, register: impl FnOnce() -> (K, H)) -> H
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Some(handle) = self.0.read().unwrap_or_else(PoisonError::into_inner).get(labels) {
            return handle.clone();
        }
        let (key, handle) = register();
        self.0.write().unwrap_or_else(PoisonError::into_inner).entry(key).or_insert(handle).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Handles;

    #[test]
    fn a_handle_is_registered_once_per_label_set() {
        let handles: Handles<(&str, u16), u32> = Handles::default();
        let mut registered = 0;
        for _ in 0..3 {
            assert_eq!(
                handles.get(&("a", 200), || {
                    registered += 1;
                    (("a", 200), 7)
                }),
                7
            );
        }
        assert_eq!(registered, 1);
        assert_eq!(handles.get(&("a", 404), || (("a", 404), 8)), 8, "another label set is another handle");
    }
}
