//! A map keyed by increasing sequence numbers, for things that are outstanding for a
//! while: the node's pending calls, the simulator's requests awaiting a reply.
//!
//! Keys are handed out in increasing order and most entries are removed roughly in
//! that order, so a ring of slots indexed by `key - base` beats a hash map: no hashing,
//! no probing, and memory bounded by the span between the oldest and the newest
//! outstanding key (which timeouts keep short). Nothing is iterated, so no order can
//! leak into output.

use std::collections::VecDeque;

/// Entries keyed by `u64` sequence numbers issued by [`SeqMap::insert`].
#[derive(Debug, Clone)]
pub struct SeqMap<T> {
    /// Key of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<T>>,
    len: usize,
}

impl<T> Default for SeqMap<T> {
    fn default() -> Self {
        SeqMap {
            base: 0,
            slots: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> SeqMap<T> {
    /// An empty map whose first key will be 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value` under the next key and returns the key.
    pub fn insert(&mut self, value: T) -> u64 {
        let key = self.base + self.slots.len() as u64;
        self.slots.push_back(Some(value));
        self.len += 1;
        key
    }

    /// Removes and returns the entry under `key`, if it is there.
    ///
    /// Always inlined: a pending call's map is emptied once per answer, and as a
    /// call the entry (a hundred bytes) is copied out twice; with two maps of
    /// pending calls in the node the compiler stopped inlining it on its own, which
    /// cost 1.4% of a long seed run's instructions (outage.toml, callgrind).
    #[inline(always)]
    pub fn remove(&mut self, key: u64) -> Option<T> {
        let index = usize::try_from(key.checked_sub(self.base)?).ok()?;
        let value = self.slots.get_mut(index)?.take()?;
        self.len -= 1;
        // Drop the vacated prefix so the ring spans only outstanding keys.
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(value)
    }

    /// The entry under `key`, if it is there.
    pub fn get_mut(&mut self, key: u64) -> Option<&mut T> {
        let index = usize::try_from(key.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(index)?.as_mut()
    }

    /// Entries outstanding.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every entry, returning them with their keys in increasing key order
    /// (a fixed order, so what is done with them can reach output).
    pub fn drain_in_order(&mut self) -> impl Iterator<Item = (u64, T)> + '_ {
        let base = self.base;
        self.base += self.slots.len() as u64;
        self.len = 0;
        self.slots
            .drain(..)
            .enumerate()
            .filter_map(move |(i, slot)| slot.map(|value| (base + i as u64, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn keys_increase_and_removal_is_exact() {
        let mut m = SeqMap::new();
        let a = m.insert("a");
        let b = m.insert("b");
        let c = m.insert("c");
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(m.remove(b), Some("b"));
        assert_eq!(m.remove(b), None);
        assert_eq!(m.remove(a), Some("a"));
        assert_eq!(m.remove(99), None);
        assert_eq!(m.len(), 1);
        assert_eq!(m.insert("d"), 3);
        assert_eq!(m.remove(c), Some("c"));
        assert_eq!(m.remove(3), Some("d"));
        assert!(m.is_empty());
        assert_eq!(m.remove(0), None);
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec((any::<bool>(), 0u64..64), 1..300)) {
            let mut m = SeqMap::new();
            let mut model = BTreeMap::new();
            for (insert, k) in ops {
                if insert {
                    let key = m.insert(k);
                    model.insert(key, k);
                } else {
                    prop_assert_eq!(m.remove(k), model.remove(&k));
                }
                prop_assert_eq!(m.len(), model.len());
            }
            let drained: Vec<(u64, u64)> = m.drain_in_order().collect();
            prop_assert_eq!(drained, model.into_iter().collect::<Vec<_>>());
            prop_assert!(m.is_empty());
            let next = m.insert(0);
            prop_assert_eq!(m.remove(next), Some(0));
        }
    }
}
