//! Read-your-writes while degraded: the latest write of each key that the node queued
//! or applied, remembered for a window, so that a read the node would otherwise answer
//! from the stale cache (or fail) returns the client's own write instead.
//!
//! One [`RecentWrites`] per dependency that configures it. It holds, per key, only the
//! newest write (by version: the order clients sent writes in), with the instant the
//! node last heard of it (queued, then applied). An entry answers reads while
//! `now < at + window`. A write that is dead-lettered is forgotten at once (it will
//! never be applied, so showing it would be a lie); an older write dead-lettered
//! behind a newer one changes nothing.
//!
//! Memory is bounded by configuration: at most `capacity` records in the order list
//! (and so at most that many entries), the oldest evicted first (FIFO by when they
//! were recorded), never by traffic. Entries past their window are dropped as new
//! writes are recorded.
//!
//! Sans-IO like the rest of the engine: `now` comes in as an argument; the caller
//! turns what it returns into events.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::key_index::FixedState;
use super::{ConfigError, Span, Time, MAX_SPAN};

/// Entries a dependency's read-your-writes keeps beyond its write queue's capacity:
/// room for writes applied at once (which never wait in the queue) as well as every
/// write the queue can hold.
pub const EXTRA_ENTRIES: usize = 1_024;

/// How long, and how many, writes are remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RywConfig {
    /// How long after the node queued or applied a write a read of its key may be
    /// answered from it.
    pub window: Span,
    /// The most writes remembered (the oldest is evicted first).
    pub capacity: usize,
}

impl RywConfig {
    /// Checks the window and the capacity.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.window == 0 || self.window > MAX_SPAN {
            return Err(ConfigError::new(
                "read_your_writes",
                "must be longer than zero and at most 100 years (leave it out to turn \
                 read-your-writes off)",
            ));
        }
        if self.capacity == 0 {
            return Err(ConfigError::new(
                "read_your_writes",
                "must remember at least one write",
            ));
        }
        Ok(())
    }
}

/// Where a remembered write stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteState {
    /// Waiting in the write queue.
    Queued,
    /// Applied by the dependency.
    Applied,
}

impl WriteState {
    /// `queued` or `applied`.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteState::Queued => "queued",
            WriteState::Applied => "applied",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry<V> {
    version: u64,
    value: V,
    /// When the node last heard of it (queued, then applied).
    at: Time,
    state: WriteState,
}

/// A remembered write a read may be answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingHit<'a, V> {
    /// The value written.
    pub value: &'a V,
    /// The write's version.
    pub version: u64,
    /// How long ago the node queued or applied it.
    pub age: Span,
    /// Queued or applied.
    pub state: WriteState,
}

/// What was recorded or changed, for the caller's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    /// The key forgotten to make room.
    pub key: u64,
    /// Its write's version.
    pub version: u64,
}

/// What read-your-writes did, for the trace (the node tags it with its dependency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RywEvent {
    /// A read of `key` was answered from the node's latest write of it instead of the
    /// stale cache (or an error).
    ServedPendingWrite {
        /// When.
        at: Time,
        /// The key read.
        key: u64,
        /// The write's version.
        version: u64,
        /// How long ago the node queued or applied it.
        age: Span,
        /// Whether it was still queued or already applied.
        write: WriteState,
    },
    /// The remembered write of `key` was dead-lettered: reads no longer see it.
    Forgotten {
        /// When.
        at: Time,
        /// The key.
        key: u64,
        /// The write's version.
        version: u64,
    },
    /// The remembered write of `key` was dropped to make room.
    Evicted {
        /// When.
        at: Time,
        /// The key.
        key: u64,
        /// The write's version.
        version: u64,
    },
}

/// What read-your-writes did over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RywStats {
    /// Writes remembered (a queued write applied later counts once).
    pub remembered: u64,
    /// Reads answered from a remembered write.
    pub served: u64,
    /// Of those, from a write still queued.
    pub served_queued: u64,
    /// The oldest remembered write a read was answered from.
    pub max_age_served: Span,
    /// Remembered writes forgotten because they were dead-lettered.
    pub dropped: u64,
    /// Remembered writes forgotten to make room.
    pub evicted: u64,
}

/// The latest write per key, for a window, bounded.
#[derive(Debug, Clone)]
pub struct RecentWrites<V> {
    config: RywConfig,
    latest: HashMap<u64, Entry<V>, FixedState>,
    /// `(key, version, at)` in the order recorded: expiry and eviction take the front.
    /// A record whose entry has since changed (a newer write, or the same write
    /// applied) no longer matches it and is skipped.
    order: VecDeque<(u64, u64, Time)>,
    stats: RywStats,
}

impl<V> RecentWrites<V> {
    /// An empty memory with `config`.
    pub fn new(config: RywConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(RecentWrites {
            config,
            latest: HashMap::default(),
            order: VecDeque::new(),
            stats: RywStats::default(),
        })
    }

    /// As configured.
    pub fn config(&self) -> &RywConfig {
        &self.config
    }

    /// What it did so far.
    pub fn stats(&self) -> RywStats {
        self.stats
    }

    /// Writes remembered now (some may be past their window, not yet dropped).
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The node queued write `version` of `key` (`value`) at `now`.
    pub fn queued(&mut self, key: u64, version: u64, value: V, now: Time) -> Option<Evicted> {
        self.record(key, version, value, now, WriteState::Queued)
    }

    /// The dependency applied write `version` of `key` (`value`) at `now`. A newer
    /// write of the key already remembered stays.
    pub fn applied(&mut self, key: u64, version: u64, value: V, now: Time) -> Option<Evicted> {
        self.record(key, version, value, now, WriteState::Applied)
    }

    /// Write `version` of `key` was dead-lettered: if it is the one remembered, it is
    /// forgotten (whether it was).
    pub fn dead_lettered(&mut self, key: u64, version: u64) -> bool {
        if self.latest.get(&key).is_some_and(|e| e.version == version) {
            self.latest.remove(&key);
            self.stats.dropped += 1;
            true
        } else {
            false
        }
    }

    /// The write of `key` a read at `now` is answered from, if one is remembered within
    /// its window; counted as served.
    pub fn serve(&mut self, key: u64, now: Time) -> Option<PendingHit<'_, V>> {
        let window = self.config.window;
        let entry = self.latest.get(&key)?;
        let age = now.saturating_sub(entry.at);
        if age >= window {
            return None;
        }
        self.stats.served += 1;
        if entry.state == WriteState::Queued {
            self.stats.served_queued += 1;
        }
        self.stats.max_age_served = self.stats.max_age_served.max(age);
        Some(PendingHit {
            value: &entry.value,
            version: entry.version,
            age,
            state: entry.state,
        })
    }

    fn record(
        &mut self,
        key: u64,
        version: u64,
        value: V,
        now: Time,
        state: WriteState,
    ) -> Option<Evicted> {
        self.expire(now);
        match self.latest.get_mut(&key) {
            Some(entry) if entry.version > version => return None,
            Some(entry) => {
                if entry.version < version {
                    self.stats.remembered += 1;
                }
                *entry = Entry {
                    version,
                    value,
                    at: now,
                    state,
                };
            }
            None => {
                self.stats.remembered += 1;
                self.latest.insert(
                    key,
                    Entry {
                        version,
                        value,
                        at: now,
                        state,
                    },
                );
            }
        }
        self.order.push_back((key, version, now));
        if self.order.len() <= self.config.capacity {
            return None;
        }
        let (key, version, at) = self.order.pop_front().expect("longer than the capacity");
        if self.matches(key, version, at) {
            self.latest.remove(&key);
            self.stats.evicted += 1;
            return Some(Evicted { key, version });
        }
        None
    }

    /// Drops the records at the front whose window is over at `now`.
    fn expire(&mut self, now: Time) {
        while let Some(&(key, version, at)) = self.order.front() {
            if now.saturating_sub(at) < self.config.window {
                return;
            }
            self.order.pop_front();
            if self.matches(key, version, at) {
                self.latest.remove(&key);
            }
        }
    }

    /// Whether the order record `(key, version, at)` is the entry remembered now.
    fn matches(&self, key: u64, version: u64, at: Time) -> bool {
        self.latest
            .get(&key)
            .is_some_and(|e| e.version == version && e.at == at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SECOND;

    fn ryw(window: Span, capacity: usize) -> RecentWrites<&'static str> {
        RecentWrites::new(RywConfig { window, capacity }).unwrap()
    }

    #[test]
    fn a_write_is_served_within_its_window_only() {
        let mut r = ryw(30 * SECOND, 8);
        r.queued(7, 1, "Jane", 10 * SECOND);
        let hit = r.serve(7, 20 * SECOND).unwrap();
        assert_eq!(
            (*hit.value, hit.age, hit.state),
            ("Jane", 10 * SECOND, WriteState::Queued)
        );
        assert!(r.serve(7, 40 * SECOND).is_none());
        assert!(r.serve(8, 20 * SECOND).is_none());
        assert_eq!(r.stats().served, 1);
    }

    #[test]
    fn applying_restarts_the_window_and_a_newer_write_wins() {
        let mut r = ryw(30 * SECOND, 8);
        r.queued(7, 1, "Jane", 0);
        r.applied(7, 1, "Jane", 25 * SECOND);
        let hit = r.serve(7, 50 * SECOND).unwrap();
        assert_eq!((hit.age, hit.state), (25 * SECOND, WriteState::Applied));
        r.queued(7, 3, "Jill", 51 * SECOND);
        // An older write applied late does not replace the newer one.
        r.applied(7, 2, "Joan", 52 * SECOND);
        assert_eq!(*r.serve(7, 53 * SECOND).unwrap().value, "Jill");
        assert_eq!(r.stats().remembered, 2);
    }

    #[test]
    fn a_dead_lettered_write_is_forgotten_unless_a_newer_one_is_remembered() {
        let mut r = ryw(30 * SECOND, 8);
        r.queued(7, 1, "Jane", 0);
        r.queued(7, 2, "Jill", 1);
        assert!(!r.dead_lettered(7, 1));
        assert_eq!(*r.serve(7, 2).unwrap().value, "Jill");
        assert!(r.dead_lettered(7, 2));
        assert!(r.serve(7, 3).is_none());
        assert_eq!(r.stats().dropped, 1);
    }

    #[test]
    fn memory_is_bounded_by_the_capacity_oldest_first() {
        let mut r = ryw(3_600 * SECOND, 4);
        for key in 0..4 {
            assert_eq!(r.queued(key, key + 1, "x", key), None);
        }
        assert_eq!(
            r.queued(9, 10, "y", 5),
            Some(Evicted { key: 0, version: 1 })
        );
        assert!(r.serve(0, 6).is_none());
        assert!(r.serve(1, 6).is_some());
        // Rewriting one key over and over never holds more than the capacity.
        for v in 0..100 {
            r.queued(1, 100 + v, "z", 10 + v);
            assert!(r.order.len() <= 4 && r.len() <= 4);
        }
        assert_eq!(*r.serve(1, 200).unwrap().value, "z");
    }

    #[test]
    fn expired_records_are_dropped_as_writes_come() {
        let mut r = ryw(10, 100);
        for key in 0..50 {
            r.queued(key, key + 1, "x", key * 5);
        }
        // Only the writes of the last window remain.
        assert!(r.len() <= 3, "{}", r.len());
    }

    #[test]
    fn a_zero_window_is_refused() {
        let err = RecentWrites::<u8>::new(RywConfig {
            window: 0,
            capacity: 1,
        })
        .unwrap_err();
        assert_eq!(err.field, "read_your_writes");
    }
}
