//! The stale cache's map from key to slot: direct addressing for small integer keys,
//! hashing for the rest.
//!
//! Why not only a hash map: the node's keys are record ids, dense integers from 1 up.
//! A hash lookup is a probe of the control bytes and then of the bucket, two memory
//! reads scattered over a table that, for tens of thousands of keys, does not fit the
//! CPU's nearer caches; a lookup happens on every read and up to three times on a
//! refresh. Keys below a bound proportional to the cache's capacity are instead found
//! at their own position in an array of `u32`: one read, from a table half the size.
//! Keys that are not integers, or too large, fall back to an FxHash map, so any key
//! works and memory stays bounded by the capacity, not by the largest key.

use std::collections::HashMap;
use std::hash::Hash;

/// A key the stale cache can hold. Integer keys also name an array position, which
/// the cache uses when it is small; other key types hash (the default).
pub trait CacheKey: Copy + Ord + Hash + Eq {
    /// The key as an array position, if it is a non-negative integer.
    fn position(self) -> Option<usize> {
        None
    }
}

macro_rules! integer_keys {
    ($($t:ty),*) => {$(
        impl CacheKey for $t {
            #[inline]
            fn position(self) -> Option<usize> {
                usize::try_from(self).ok()
            }
        }
    )*};
}

integer_keys!(u8, u16, u32, u64, usize);

/// An absent key in the dense table.
const ABSENT: u32 = u32::MAX;

/// FxHash: a fixed, unkeyed hash, so the table's internal layout is the same on every
/// run, and cheap on integer keys. Keys come from the caller's own data, not from an
/// adversary, so flooding resistance buys nothing here. Both maps that use it (the
/// sparse index here, the cache's refreshes in flight) are only looked up by key or
/// swept after sorting, so their order never reaches output or behaviour.
pub(crate) type FixedState = rustc_hash::FxBuildHasher;

/// Key -> slot number (`u32`, never `u32::MAX`).
#[derive(Debug, Clone)]
pub(crate) struct KeyIndex<K> {
    /// Slot of key `k` at position `k` for keys below `dense_limit`, [`ABSENT`] where
    /// none; grown on demand up to the largest such key inserted.
    dense: Vec<u32>,
    dense_limit: usize,
    /// Every other key.
    sparse: HashMap<K, u32, FixedState>,
}

impl<K: CacheKey> KeyIndex<K> {
    /// An empty index for a cache of `capacity` entries: keys below twice the capacity
    /// are addressed directly (at most 8 bytes per entry of capacity).
    pub(crate) fn new(capacity: usize) -> Self {
        KeyIndex {
            dense: Vec::new(),
            dense_limit: capacity.saturating_mul(2),
            sparse: HashMap::default(),
        }
    }

    /// The position of `key` in the dense table, if it belongs there.
    #[inline]
    fn dense_position(&self, key: K) -> Option<usize> {
        key.position().filter(|&p| p < self.dense_limit)
    }

    #[inline]
    pub(crate) fn get(&self, key: K) -> Option<u32> {
        match self.dense_position(key) {
            Some(p) => self.dense.get(p).copied().filter(|&slot| slot != ABSENT),
            None => self.sparse.get(&key).copied(),
        }
    }

    /// Maps `key` to `slot`, replacing any previous mapping.
    #[inline]
    pub(crate) fn insert(&mut self, key: K, slot: u32) {
        debug_assert_ne!(slot, ABSENT, "slot numbers stay below u32::MAX");
        match self.dense_position(key) {
            Some(p) => {
                if p >= self.dense.len() {
                    self.dense.resize(p + 1, ABSENT);
                }
                self.dense[p] = slot;
            }
            None => {
                self.sparse.insert(key, slot);
            }
        }
    }

    #[inline]
    pub(crate) fn remove(&mut self, key: K) {
        match self.dense_position(key) {
            Some(p) => {
                if let Some(slot) = self.dense.get_mut(p) {
                    *slot = ABSENT;
                }
            }
            None => {
                self.sparse.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key type with no array position: always hashed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    struct Named(u64);
    impl CacheKey for Named {}

    #[test]
    fn small_and_large_integer_keys_and_hashed_keys() {
        let mut index: KeyIndex<u64> = KeyIndex::new(4);
        // 0..8 are dense, 8 and up are hashed.
        for (key, slot) in [(0, 10), (7, 11), (8, 12), (u64::MAX, 13)] {
            assert_eq!(index.get(key), None);
            index.insert(key, slot);
            assert_eq!(index.get(key), Some(slot));
        }
        assert_eq!(index.dense.len(), 8);
        assert_eq!(index.sparse.len(), 2);
        assert_eq!(index.get(3), None, "a gap in the dense table is absent");
        assert_eq!(index.get(9), None);
        index.insert(7, 20);
        assert_eq!(index.get(7), Some(20), "insert replaces");
        for key in [0, 7, 8, u64::MAX] {
            index.remove(key);
            assert_eq!(index.get(key), None);
        }
        index.remove(5);
        index.remove(1_000);

        let mut named: KeyIndex<Named> = KeyIndex::new(4);
        named.insert(Named(1), 1);
        assert_eq!(named.get(Named(1)), Some(1));
        assert!(named.dense.is_empty());
    }
}
