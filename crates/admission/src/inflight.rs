//! Requests in flight per key (client address, account): [`InFlightCounts`].
//!
//! An entry exists only while its key has a request in flight, so the map holds at most as many
//! entries as there are admitted requests (the lanes' in-flight caps bound it); a key's last
//! request leaving removes its entry.

use std::hash::Hash;
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

type Hasher = foldhash::fast::RandomState;

/// Counts of admitted requests per key, each capped at `max`.
#[derive(Debug)]
pub(crate) struct InFlightCounts<K: Hash + Eq + Clone> {
    counts: DashMap<K, u32, Hasher>,
    max: u32,
}

impl<K: Hash + Eq + Clone> InFlightCounts<K> {
    pub(crate) fn new(max: u32) -> Self {
        Self {
            counts: DashMap::with_hasher(Hasher::default()),
            max,
        }
    }

    /// Takes a place for `key`, or `false` when it already has `max` requests in flight.
    pub(crate) fn enter(&self, key: &K) -> bool {
        match self.counts.entry(key.clone()) {
            Entry::Occupied(mut e) => {
                if *e.get() >= self.max {
                    return false;
                }
                *e.get_mut() += 1;
                true
            }
            Entry::Vacant(e) => {
                e.insert(1);
                true
            }
        }
    }

    /// Gives back a place taken by [`InFlightCounts::enter`].
    pub(crate) fn leave(&self, key: &K) {
        if let Entry::Occupied(mut e) = self.counts.entry(key.clone()) {
            if *e.get() <= 1 {
                e.remove();
            } else {
                *e.get_mut() -= 1;
            }
        }
    }

    /// Requests in flight for `key` now.
    pub(crate) fn get(&self, key: &K) -> u32 {
        self.counts.get(key).map_or(0, |v| *v)
    }

    /// Keys with a request in flight now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }
}

/// One place in an [`InFlightCounts`], given back on drop.
#[derive(Debug)]
pub(crate) struct InFlightPlace<K: Hash + Eq + Clone> {
    counts: Arc<InFlightCounts<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> InFlightPlace<K> {
    /// Takes a place for `key`, or `None` at the cap.
    pub(crate) fn take(counts: &Arc<InFlightCounts<K>>, key: K) -> Option<Self> {
        counts.enter(&key).then(|| Self {
            counts: Arc::clone(counts),
            key,
        })
    }
}

impl<K: Hash + Eq + Clone> Drop for InFlightPlace<K> {
    fn drop(&mut self) {
        self.counts.leave(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_capped_and_its_entry_goes_with_its_last_request() {
        let counts = Arc::new(InFlightCounts::new(2));
        let a = InFlightPlace::take(&counts, 7u64);
        let b = InFlightPlace::take(&counts, 7u64);
        assert!(a.is_some() && b.is_some());
        assert!(
            InFlightPlace::take(&counts, 7u64).is_none(),
            "third at a cap of 2"
        );
        assert!(InFlightPlace::take(&counts, 8u64).is_some_and(|p| {
            drop(p);
            true
        }));
        assert_eq!(counts.get(&7), 2);
        drop(a);
        assert_eq!(counts.get(&7), 1);
        let c = InFlightPlace::take(&counts, 7u64);
        assert!(c.is_some());
        drop((b, c));
        assert_eq!(counts.len(), 0);
    }
}
