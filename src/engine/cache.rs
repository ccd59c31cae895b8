//! The stale cache: fresh for a TTL, then served stale only on the caller's word, and never silently.
//!
//! Why stale-if-error: when a dependency is down, an answer that is a few minutes old
//! is almost always better than an error, but only up to a point. So a value past its
//! TTL is not served by default; the caller serves it when the dependency failed or its
//! breaker is open, and only up to `ttl + max_stale`, after which the caller passes the
//! error through with the age in the message ([`Refusal`]). A stale value can only be
//! obtained through [`StaleCache::serve_stale`], which records a
//! [`CacheEvent::StaleServed`] with its age and reason: the trace shows every stale
//! reply, and nothing is served stale by accident.
//!
//! Why single flight: when a hot key goes stale, every request for it would otherwise
//! call the dependency at once (a thundering herd, exactly when the dependency may be
//! struggling). [`StaleCache::begin_refresh`] hands out one [`RefreshTicket`] per key;
//! everybody else serves the stale value (stale-while-revalidate) or waits. A ticket
//! whose completion is lost must not block the key forever, so after
//! [`CacheConfig::refresh_timeout`] another caller may take the refresh over.
//!
//! Time is an argument (`now`), never read: the cache is a sans-IO state machine.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use serde::Serialize;

pub use super::key_index::CacheKey;
use super::key_index::{FixedState, KeyIndex};
use super::{ConfigError, HumanSpan, Span, Time, SECOND};

/// Default [`CacheConfig::ttl`]: 30 s of freshness.
pub const DEFAULT_TTL: Span = 30 * SECOND;
/// Default [`CacheConfig::max_stale`]: a value may be served up to 5 min past its TTL
/// while the dependency fails.
pub const DEFAULT_MAX_STALE: Span = 5 * 60 * SECOND;
/// Default [`CacheConfig::stale_while_revalidate`]: off; stale values are served only on
/// error.
pub const DEFAULT_STALE_WHILE_REVALIDATE: Option<Span> = None;
/// Default [`CacheConfig::refresh_timeout`]: a refresh not reported back within 10 s may
/// be taken over by another caller.
pub const DEFAULT_REFRESH_TIMEOUT: Span = 10 * SECOND;
/// Default [`CacheConfig::capacity`]: 10 000 entries.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// How long values stay fresh and servable, and how many are kept.
///
/// Boundaries, with `age = now - stored_at`:
/// - fresh while `age < ttl` (so exactly at `age == ttl` the value is stale);
/// - servable stale (on error) while `age <= ttl + max_stale`, expired beyond;
/// - servable while revalidating while `age <= ttl + stale_while_revalidate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheConfig {
    /// How long a stored value is fresh. Must be positive.
    pub ttl: Span,
    /// How long past `ttl` a value may still be served when the dependency fails
    /// (stale-if-error). Zero allows only the instant `age == ttl`.
    pub max_stale: Span,
    /// Window past `ttl` in which a stale value may be served while one background
    /// refresh runs, even though the dependency has not failed. `None` disables it;
    /// when set it must be positive and at most `max_stale`.
    pub stale_while_revalidate: Option<Span>,
    /// How long a refresh may stay unreported before another caller may take it over.
    /// It should exceed the dependency's call timeout, so that only a truly lost
    /// completion is taken over. Must be positive.
    pub refresh_timeout: Span,
    /// Maximum number of entries; inserting a new key into a full cache evicts one.
    pub capacity: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: DEFAULT_TTL,
            max_stale: DEFAULT_MAX_STALE,
            stale_while_revalidate: DEFAULT_STALE_WHILE_REVALIDATE,
            refresh_timeout: DEFAULT_REFRESH_TIMEOUT,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

impl CacheConfig {
    /// Checks that the configuration makes sense, naming the field that does not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ttl == 0 {
            return Err(ConfigError::new(
                "cache.ttl",
                "must be positive; a zero ttl would never serve a fresh value",
            ));
        }
        if self.ttl.checked_add(self.max_stale).is_none() {
            return Err(ConfigError::new(
                "cache.max_stale",
                "ttl + max_stale overflows the time range",
            ));
        }
        if let Some(window) = self.stale_while_revalidate {
            if window == 0 {
                return Err(ConfigError::new(
                    "cache.stale_while_revalidate",
                    "must be positive; leave it unset to disable stale-while-revalidate",
                ));
            }
            if window > self.max_stale {
                return Err(ConfigError::new(
                    "cache.stale_while_revalidate",
                    format!(
                        "{} exceeds max_stale {}: nothing older than max_stale is ever served",
                        HumanSpan(window),
                        HumanSpan(self.max_stale)
                    ),
                ));
            }
        }
        if self.refresh_timeout == 0 {
            return Err(ConfigError::new(
                "cache.refresh_timeout",
                "must be positive; a zero timeout would let every caller take a refresh over",
            ));
        }
        if self.capacity == 0 {
            return Err(ConfigError::new(
                "cache.capacity",
                "must be at least 1; a cache that holds nothing cannot serve stale",
            ));
        }
        Ok(())
    }
}

/// Why a caller asks for a stale value. Carried in events so the trace says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StaleReason {
    /// The dependency call failed or timed out (stale-if-error).
    DependencyFailed,
    /// The dependency's breaker is open, so it was not called.
    BreakerOpen,
    /// The value is served while one background refresh runs (stale-while-revalidate).
    Revalidating,
}

impl StaleReason {
    /// The snake_case name used in traces.
    pub fn as_str(&self) -> &'static str {
        match self {
            StaleReason::DependencyFailed => "dependency_failed",
            StaleReason::BreakerOpen => "breaker_open",
            StaleReason::Revalidating => "revalidating",
        }
    }
}

/// Why an entry left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvictReason {
    /// The cache was full and a new key was inserted.
    Capacity,
}

impl EvictReason {
    /// The snake_case name used in traces.
    pub fn as_str(&self) -> &'static str {
        match self {
            EvictReason::Capacity => "capacity",
        }
    }
}

/// What the cache did that the trace must show.
///
/// Plain stores and fresh hits are not events: they are the normal case and would
/// drown the trace. Counters for them are in [`CacheStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CacheEvent<K> {
    /// A value past its TTL was handed out.
    StaleServed {
        /// When it was served.
        at: Time,
        /// The key served.
        key: K,
        /// Its age (`at - stored_at`), at least the TTL.
        age: Span,
        /// Why the caller asked for a stale value.
        reason: StaleReason,
    },
    /// A stale value was asked for but was too old; the caller passes the error on.
    StaleRefused {
        /// When it was refused.
        at: Time,
        /// The key asked for.
        key: K,
        /// Its age.
        age: Span,
        /// The oldest age the reason allows (`ttl + max_stale`, or `ttl + stale_while_revalidate`).
        limit: Span,
        /// Why the caller asked for a stale value.
        reason: StaleReason,
    },
    /// An entry was dropped to make room.
    Evicted {
        /// When it was dropped.
        at: Time,
        /// The key dropped.
        key: K,
        /// The dropped value's age.
        age: Span,
        /// Why it was dropped.
        reason: EvictReason,
    },
    /// A refresh was not reported back within `refresh_timeout`; its ticket is void and
    /// another refresh may run.
    RefreshTimedOut {
        /// When the refresh was given up on.
        at: Time,
        /// The key being refreshed.
        key: K,
        /// When the abandoned refresh started.
        started_at: Time,
    },
}

/// What [`StaleCache::lookup`] found for a key.
///
/// `Stale` deliberately carries no value: a stale value is served only through
/// [`StaleCache::serve_stale`], which records it.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a, V> {
    /// The value is fresh (`age < ttl`); serve it.
    Fresh {
        /// The cached value.
        value: &'a V,
        /// Its age.
        age: Span,
    },
    /// The value is past its TTL but within `ttl + max_stale`: call the dependency, and
    /// on failure (or with the breaker open) serve it with [`StaleCache::serve_stale`].
    Stale {
        /// Its age.
        age: Span,
        /// True when stale-while-revalidate is on and `age <= ttl + stale_while_revalidate`:
        /// the caller may serve it now ([`StaleReason::Revalidating`]) while one refresh
        /// ([`StaleCache::begin_refresh`]) runs.
        may_revalidate: bool,
    },
    /// The value is too old to serve at all (`age > ttl + max_stale`).
    Expired {
        /// Its age, for the error message.
        age: Span,
    },
    /// Nothing is cached for the key.
    Miss,
}

/// A value handed out by [`StaleCache::serve_stale`].
#[derive(Debug, PartialEq, Eq)]
pub struct Served<'a, V> {
    /// The cached value.
    pub value: &'a V,
    /// Its age.
    pub age: Span,
    /// Whether it is past its TTL (and was therefore recorded as a stale serve). False
    /// when a refresh stored a fresh value between the caller's lookup and its fallback.
    pub stale: bool,
}

/// Why [`StaleCache::serve_stale`] served nothing. Its `Display` is meant for the
/// error reply the caller sends instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing is cached for the key.
    Miss,
    /// The value is older than the reason allows.
    TooOld {
        /// Its age.
        age: Span,
        /// The oldest age the reason allows.
        limit: Span,
    },
    /// [`StaleReason::Revalidating`] was given but stale-while-revalidate is off.
    RevalidateDisabled,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Miss => f.write_str("nothing cached"),
            Refusal::TooOld { age, limit } => write!(
                f,
                "cached value is {} old, past the {} limit for stale data",
                HumanSpan(*age),
                HumanSpan(*limit)
            ),
            Refusal::RevalidateDisabled => f.write_str("stale-while-revalidate is disabled"),
        }
    }
}

/// The right to refresh one key, from [`StaleCache::begin_refresh`]; give it back with
/// [`StaleCache::end_refresh`].
///
/// A ticket rather than a bare `bool` so that a late completion of a refresh that was
/// taken over can be told apart from the current one and cannot end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a refresh ticket must be returned with end_refresh, or the key stays blocked until refresh_timeout"]
pub struct RefreshTicket<K> {
    key: K,
    started_at: Time,
}

impl<K: Copy> RefreshTicket<K> {
    /// The key to refresh.
    pub fn key(&self) -> K {
        self.key
    }

    /// When the refresh started.
    pub fn started_at(&self) -> Time {
        self.started_at
    }
}

/// Counters since the cache was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Fresh values handed out, by `lookup` or by a `serve_stale` that found a fresh value.
    pub fresh_hits: u64,
    /// Lookups that found a stale (servable on error) value.
    pub stale_found: u64,
    /// Lookups that found a value too old to serve.
    pub expired_found: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Stale values handed out (each one a [`CacheEvent::StaleServed`]).
    pub stale_serves: u64,
    /// Stale values refused as too old (each one a [`CacheEvent::StaleRefused`]).
    pub expired_refusals: u64,
    /// Entries evicted for capacity.
    pub evictions: u64,
    /// Refreshes given up on after `refresh_timeout`.
    pub refresh_timeouts: u64,
    /// The oldest age ever served stale; zero if none.
    pub max_stale_age_served: Span,
}

/// One cached value.
#[derive(Debug)]
struct Slot<K, V> {
    key: K,
    value: V,
    stored_at: Time,
    /// The number of the store that put `value` here: stores are numbered in call
    /// order, so this orders the slots by their last store even at equal `stored_at`.
    store: u64,
}

/// A slot's place in the store order: `prev` is the entry stored just before it, `next`
/// just after; [`NIL`] at the ends.
///
/// Kept apart from the slots, in an array of its own: a re-store unlinks an entry,
/// which touches its two neighbours, entries stored at unrelated times and so
/// scattered over the cache. Eight-byte links of 60 000 entries fit in the CPU's L2
/// cache where the slots (over 50 bytes each) do not, and the neighbours' slots are
/// never touched.
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

/// The end of the store-order list.
const NIL: u32 = u32::MAX;

/// A bounded cache of values that may be served past their TTL, on the caller's word.
///
/// Storage: the entries live in a slab (`slots`), found through a key index (an array
/// for small integer keys, a hash map for others; see [`CacheKey`]), and are linked
/// (by the parallel array `links`) in a doubly linked list in store order. Eviction is
/// least-recently-stored: the head of
/// the list. A re-store moves the entry to the tail; an eviction reuses the evicted
/// slot for the new entry. Every operation is O(1) without amortisation, but for the
/// one-time build below (an earlier design with a queue of store records and lazy
/// deletion spent a tenth of a long simulation compacting that queue), and reads
/// never touch the list.
///
/// The list is only needed to evict, so it is built the first time the cache is full
/// (by sorting the slots on their store number, O(n log n) once) and kept from then
/// on; the cache never shrinks. Until then a store writes its slot and nothing else.
/// A cache sized for its whole key space, as in every scenario of the library, never
/// pays for the list: moving an entry to the tail touches its two neighbours,
/// scattered over memory, and those misses were most of a re-store's cost.
///
/// The order is the order of `insert` calls, a pure function of the caller's inputs,
/// so hash order cannot decide which key is evicted. Least-recently-stored rather than
/// least-recently-used because the oldest store is the value closest to expiry, the
/// least useful for stale-if-error, and because a hit then costs no write.
#[derive(Debug)]
pub struct StaleCache<K, V> {
    config: CacheConfig,
    /// `ttl + max_stale`, checked for overflow by `validate`.
    stale_limit: Span,
    /// `ttl + stale_while_revalidate`, when enabled.
    revalidate_limit: Option<Span>,
    /// Key -> index in `slots`.
    index: KeyIndex<K>,
    /// The entries; never more than `capacity`.
    slots: Vec<Slot<K, V>>,
    /// `links[i]` links `slots[i]` into the store order, once the cache has been full;
    /// empty until then.
    links: Vec<Link>,
    /// The number the next store gets (see [`Slot::store`]).
    next_store: u64,
    /// Least and most recently stored entries (the list's ends).
    head: u32,
    tail: u32,
    /// Refreshes in flight: key -> start time. Separate from `slots` so that a miss
    /// can be single-flighted too.
    refreshing: HashMap<K, Time, FixedState>,
    /// Size of `refreshing` above which timed-out marks are swept, so that lost
    /// completions cannot grow it without bound.
    sweep_above: usize,
    stats: CacheStats,
    events: Vec<CacheEvent<K>>,
}

impl<K, V> StaleCache<K, V>
where
    K: CacheKey,
{
    /// An empty cache, or the reason the configuration is refused.
    ///
    /// To warm-start, `insert` the data set at time 0.
    pub fn new(config: CacheConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let stale_limit = config.ttl + config.max_stale;
        let revalidate_limit = config.stale_while_revalidate.map(|w| config.ttl + w);
        let sweep_above = config.capacity;
        let index = KeyIndex::new(config.capacity);
        Ok(StaleCache {
            config,
            stale_limit,
            revalidate_limit,
            index,
            slots: Vec::new(),
            links: Vec::new(),
            next_store: 0,
            head: NIL,
            tail: NIL,
            refreshing: HashMap::default(),
            sweep_above,
            stats: CacheStats::default(),
            events: Vec::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Classifies the entry for `key` at `now` (see [`CacheConfig`] for the boundaries)
    /// and counts the result. Hands out only fresh values; a stale one must be obtained
    /// through [`serve_stale`](Self::serve_stale).
    ///
    /// Ages saturate at zero if `now` is before the store time (a clock that went
    /// backwards is treated as "just stored", not as an error).
    #[inline(always)]
    pub fn lookup(&mut self, key: K, now: Time) -> Lookup<'_, V> {
        let Some(i) = self.index.get(key) else {
            self.stats.misses += 1;
            return Lookup::Miss;
        };
        let slot = &self.slots[i as usize];
        let age = now.saturating_sub(slot.stored_at);
        if age < self.config.ttl {
            self.stats.fresh_hits += 1;
            Lookup::Fresh {
                value: &slot.value,
                age,
            }
        } else if age <= self.stale_limit {
            self.stats.stale_found += 1;
            Lookup::Stale {
                age,
                may_revalidate: self.revalidate_limit.is_some_and(|limit| age <= limit),
            }
        } else {
            self.stats.expired_found += 1;
            Lookup::Expired { age }
        }
    }

    /// The value to serve for `key` when the dependency cannot answer, for `reason`.
    ///
    /// A stale value is served while `age <= ttl + max_stale` (or, for
    /// [`StaleReason::Revalidating`], `age <= ttl + stale_while_revalidate`); each such
    /// serve pushes [`CacheEvent::StaleServed`] and updates the counters, and a value
    /// that is too old pushes [`CacheEvent::StaleRefused`] and is refused with its age.
    /// A value that turns out to be fresh is served as fresh, without an event.
    pub fn serve_stale(
        &mut self,
        key: K,
        now: Time,
        reason: StaleReason,
    ) -> Result<Served<'_, V>, Refusal> {
        let Some(i) = self.index.get(key) else {
            return Err(Refusal::Miss);
        };
        let slot = &self.slots[i as usize];
        let age = now.saturating_sub(slot.stored_at);
        if age < self.config.ttl {
            self.stats.fresh_hits += 1;
            return Ok(Served {
                value: &slot.value,
                age,
                stale: false,
            });
        }
        let limit = match reason {
            StaleReason::DependencyFailed | StaleReason::BreakerOpen => self.stale_limit,
            StaleReason::Revalidating => match self.revalidate_limit {
                Some(limit) => limit,
                None => return Err(Refusal::RevalidateDisabled),
            },
        };
        if age > limit {
            self.stats.expired_refusals += 1;
            self.events.push(CacheEvent::StaleRefused {
                at: now,
                key,
                age,
                limit,
                reason,
            });
            return Err(Refusal::TooOld { age, limit });
        }
        self.stats.stale_serves += 1;
        self.stats.max_stale_age_served = self.stats.max_stale_age_served.max(age);
        self.events.push(CacheEvent::StaleServed {
            at: now,
            key,
            age,
            reason,
        });
        Ok(Served {
            value: &slot.value,
            age,
            stale: true,
        })
    }

    /// Stores `value` for `key` as of `now`, replacing any previous value (its age
    /// restarts at zero). Inserting a new key into a full cache first evicts the
    /// least-recently-stored entry and pushes [`CacheEvent::Evicted`].
    ///
    /// Does not end a refresh in flight for `key`: that call is still out, and ending it
    /// here would let a second one start. Complete refreshes with
    /// [`end_refresh`](Self::end_refresh).
    pub fn insert(&mut self, key: K, value: V, now: Time) {
        let store = self.next_store;
        self.next_store += 1;
        if let Some(i) = self.index.get(key) {
            let slot = &mut self.slots[i as usize];
            slot.value = value;
            slot.stored_at = now;
            slot.store = store;
            if self.is_linked() {
                self.unlink(i);
                self.push_back(i);
            }
            return;
        }
        let i = if self.slots.len() < self.config.capacity {
            self.slots.push(Slot {
                key,
                value,
                stored_at: now,
                store,
            });
            (self.slots.len() - 1) as u32
        } else {
            // Full: the least-recently-stored entry makes room, and its slot is reused.
            if !self.is_linked() {
                self.link_in_store_order();
            }
            let i = self.head;
            assert_ne!(
                i, NIL,
                "stale cache invariant broken: full but its list is empty"
            );
            self.unlink(i);
            let old = std::mem::replace(
                &mut self.slots[i as usize],
                Slot {
                    key,
                    value,
                    stored_at: now,
                    store,
                },
            );
            self.index.remove(old.key);
            self.stats.evictions += 1;
            self.events.push(CacheEvent::Evicted {
                at: now,
                key: old.key,
                age: now.saturating_sub(old.stored_at),
                reason: EvictReason::Capacity,
            });
            i
        };
        self.index.insert(key, i);
        if self.is_linked() {
            self.push_back(i);
        }
    }

    /// Asks the CPU to start loading `key`'s entry, for a store or a lookup of it soon
    /// after: the node calls it as it starts fetching a key whose result it will store
    /// when the answer comes. Only a hint; it changes nothing.
    ///
    /// Why: the entries of a large cache do not fit the CPU's caches, and overwriting
    /// an entry reads it first (to drop the old value), so an insert of a key outside
    /// the hot set waited on memory; most of an insert's time was that wait.
    #[inline]
    pub fn prefetch(&self, key: K) {
        if let Some(i) = self.index.get(key) {
            crate::prefetch::prefetch(&self.slots[i as usize]);
        }
    }

    /// Whether the store-order list is kept (from the first time the cache is full).
    #[inline]
    fn is_linked(&self) -> bool {
        !self.links.is_empty()
    }

    /// Builds the store-order list from the slots' store numbers.
    #[cold]
    fn link_in_store_order(&mut self) {
        let mut order: Vec<u32> = (0..self.slots.len() as u32).collect();
        order.sort_unstable_by_key(|&i| self.slots[i as usize].store);
        self.links = vec![
            Link {
                prev: NIL,
                next: NIL
            };
            self.slots.len()
        ];
        self.head = NIL;
        self.tail = NIL;
        for i in order {
            self.push_back(i);
        }
    }

    /// Takes slot `i` out of the store-order list.
    fn unlink(&mut self, i: u32) {
        let Link { prev, next } = self.links[i as usize];
        match prev {
            NIL => self.head = next,
            p => self.links[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.links[n as usize].prev = prev,
        }
    }

    /// Appends slot `i` (unlinked) as the most recently stored.
    fn push_back(&mut self, i: u32) {
        let tail = self.tail;
        self.links[i as usize] = Link {
            prev: tail,
            next: NIL,
        };
        match tail {
            NIL => self.head = i,
            t => self.links[t as usize].next = i,
        }
        self.tail = i;
    }

    /// Asks to refresh `key` at `now`. Returns a ticket only if no refresh for `key` is
    /// in flight, or if the one in flight started at least `refresh_timeout` ago (it is
    /// then taken over: its ticket becomes void and [`CacheEvent::RefreshTimedOut`] is
    /// pushed). Everybody else gets `None` and should serve stale or wait.
    ///
    /// Works for missing keys too, so that a miss on a hot key is single-flighted.
    pub fn begin_refresh(&mut self, key: K, now: Time) -> Option<RefreshTicket<K>> {
        let timeout = self.config.refresh_timeout;
        match self.refreshing.get_mut(&key) {
            Some(started_at) if now.saturating_sub(*started_at) < timeout => return None,
            Some(started_at) => {
                let abandoned = std::mem::replace(started_at, now);
                self.stats.refresh_timeouts += 1;
                self.events.push(CacheEvent::RefreshTimedOut {
                    at: now,
                    key,
                    started_at: abandoned,
                });
            }
            None => {
                self.refreshing.insert(key, now);
                if self.refreshing.len() > self.sweep_above {
                    self.sweep_refreshes(now);
                }
            }
        }
        Some(RefreshTicket {
            key,
            started_at: now,
        })
    }

    /// Drops refresh marks older than `refresh_timeout` (ones a `begin_refresh` would
    /// take over anyway), in `(started_at, key)` order so hash order never reaches the
    /// events, and raises the threshold so that sweeping stays amortised O(1).
    fn sweep_refreshes(&mut self, now: Time) {
        let timeout = self.config.refresh_timeout;
        let mut timed_out: Vec<(Time, K)> = self
            .refreshing
            .iter()
            .filter(|(_, &started_at)| now.saturating_sub(started_at) >= timeout)
            .map(|(&key, &started_at)| (started_at, key))
            .collect();
        timed_out.sort_unstable();
        for (started_at, key) in timed_out {
            self.refreshing.remove(&key);
            self.stats.refresh_timeouts += 1;
            self.events.push(CacheEvent::RefreshTimedOut {
                at: now,
                key,
                started_at,
            });
        }
        self.sweep_above = self
            .config
            .capacity
            .max(self.refreshing.len().saturating_mul(2));
    }

    /// Reports a refresh as done at `now`, with the value fetched or `None` if it failed.
    ///
    /// Returns whether the ticket was still the refresh in flight for its key (false if
    /// it had been taken over or given up on; the key's current refresh, if any, is left
    /// alone). The value is stored unless the entry was stored after the refresh started
    /// (e.g. by a write): a refresh never overwrites newer data with what it read.
    pub fn end_refresh(&mut self, ticket: RefreshTicket<K>, now: Time, value: Option<V>) -> bool {
        let RefreshTicket { key, started_at } = ticket;
        let current = self.refreshing.get(&key) == Some(&started_at);
        if current {
            self.refreshing.remove(&key);
        }
        if let Some(value) = value {
            let newer = self
                .index
                .get(key)
                .is_some_and(|i| self.slots[i as usize].stored_at > started_at);
            if !newer {
                self.insert(key, value, now);
            }
        }
        current
    }

    /// Number of entries held, expired ones included (they go by eviction).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Counters since creation.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Takes the events pushed since the last drain, oldest first.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, CacheEvent<K>> {
        self.events.drain(..)
    }

    /// Whether events are waiting to be drained (a cheap check before draining).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Span = 30 * SECOND;
    const MAX_STALE: Span = 5 * 60 * SECOND;

    fn cache(capacity: usize) -> StaleCache<u64, &'static str> {
        StaleCache::new(CacheConfig {
            capacity,
            ..CacheConfig::default()
        })
        .unwrap()
    }

    fn swr_cache(window: Span) -> StaleCache<u64, &'static str> {
        StaleCache::new(CacheConfig {
            stale_while_revalidate: Some(window),
            ..CacheConfig::default()
        })
        .unwrap()
    }

    fn events<K: CacheKey, V>(cache: &mut StaleCache<K, V>) -> Vec<CacheEvent<K>> {
        cache.drain_events().collect()
    }

    #[test]
    fn defaults_are_the_documented_constants_and_valid() {
        let config = CacheConfig::default();
        assert_eq!(config.ttl, TTL);
        assert_eq!(config.max_stale, MAX_STALE);
        assert_eq!(config.stale_while_revalidate, None);
        assert_eq!(config.refresh_timeout, 10 * SECOND);
        assert_eq!(config.capacity, 10_000);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn fresh_before_ttl() {
        let mut c = cache(10);
        c.insert(1, "a", 100);
        assert_eq!(
            c.lookup(1, 100),
            Lookup::Fresh {
                value: &"a",
                age: 0
            }
        );
        assert_eq!(
            c.lookup(1, 100 + TTL - 1),
            Lookup::Fresh {
                value: &"a",
                age: TTL - 1
            }
        );
        assert_eq!(c.stats().fresh_hits, 2);
    }

    #[test]
    fn stale_at_exactly_ttl() {
        let mut c = cache(10);
        c.insert(1, "a", 100);
        assert_eq!(
            c.lookup(1, 100 + TTL),
            Lookup::Stale {
                age: TTL,
                may_revalidate: false
            }
        );
        let served = c
            .serve_stale(1, 100 + TTL, StaleReason::DependencyFailed)
            .unwrap();
        assert_eq!(
            served,
            Served {
                value: &"a",
                age: TTL,
                stale: true
            }
        );
    }

    #[test]
    fn stale_at_exactly_ttl_plus_max_stale() {
        let mut c = cache(10);
        c.insert(1, "a", 0);
        let limit = TTL + MAX_STALE;
        assert_eq!(
            c.lookup(1, limit),
            Lookup::Stale {
                age: limit,
                may_revalidate: false
            }
        );
        let served = c.serve_stale(1, limit, StaleReason::BreakerOpen).unwrap();
        assert_eq!(
            (served.value, served.age, served.stale),
            (&"a", limit, true)
        );
    }

    #[test]
    fn expired_one_microsecond_past_the_limit() {
        let mut c = cache(10);
        c.insert(1, "a", 0);
        let limit = TTL + MAX_STALE;
        assert_eq!(c.lookup(1, limit + 1), Lookup::Expired { age: limit + 1 });
        assert_eq!(
            c.serve_stale(1, limit + 1, StaleReason::DependencyFailed),
            Err(Refusal::TooOld {
                age: limit + 1,
                limit
            })
        );
        assert_eq!(
            events(&mut c),
            vec![CacheEvent::StaleRefused {
                at: limit + 1,
                key: 1,
                age: limit + 1,
                limit,
                reason: StaleReason::DependencyFailed
            }]
        );
        let stats = c.stats();
        assert_eq!(stats.expired_found, 1);
        assert_eq!(stats.expired_refusals, 1);
        assert_eq!(stats.stale_serves, 0);
        // Expired entries stay (their age makes the error informative) until evicted.
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn miss() {
        let mut c = cache(10);
        assert_eq!(c.lookup(7, 0), Lookup::Miss);
        assert_eq!(
            c.serve_stale(7, 0, StaleReason::DependencyFailed),
            Err(Refusal::Miss)
        );
        assert_eq!(c.stats().misses, 1);
        assert!(events(&mut c).is_empty());
        assert!(c.is_empty());
    }

    #[test]
    fn eviction_is_least_recently_stored_and_evicted_keys_miss() {
        let mut c = cache(3);
        c.insert(1, "a", 0);
        c.insert(2, "b", 1);
        c.insert(3, "c", 2);
        c.insert(1, "a2", 3); // re-store: 1 becomes the most recent
        c.insert(4, "d", 10);
        c.insert(5, "e", 11);
        assert_eq!(
            events(&mut c),
            vec![
                CacheEvent::Evicted {
                    at: 10,
                    key: 2,
                    age: 9,
                    reason: EvictReason::Capacity
                },
                CacheEvent::Evicted {
                    at: 11,
                    key: 3,
                    age: 9,
                    reason: EvictReason::Capacity
                },
            ]
        );
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup(2, 12), Lookup::Miss);
        assert_eq!(c.lookup(3, 12), Lookup::Miss);
        assert!(matches!(
            c.lookup(1, 12),
            Lookup::Fresh { value: &"a2", .. }
        ));
        assert_eq!(c.stats().evictions, 2);
    }

    #[test]
    fn eviction_order_is_store_order_not_hash_or_key_order() {
        // Keys stored at the same instant in a scrambled order are evicted in exactly
        // that order: ties in time go by store order, never by hash or key.
        let keys: Vec<u64> = (0..1_000u64).map(|i| (i * 7_919) % 1_000).collect();
        let mut c: StaleCache<u64, u64> = StaleCache::new(CacheConfig {
            capacity: keys.len(),
            ..CacheConfig::default()
        })
        .unwrap();
        for &k in &keys {
            c.insert(k, k, 0);
        }
        for i in 0..keys.len() as u64 {
            c.insert(10_000 + i, i, 1);
        }
        let evicted: Vec<u64> = c
            .drain_events()
            .map(|e| match e {
                CacheEvent::Evicted { key, .. } => key,
                other => panic!("unexpected event {other:?}"),
            })
            .collect();
        assert_eq!(evicted, keys);
        assert_eq!(c.len(), keys.len());
    }

    #[test]
    fn repeated_restores_keep_the_store_order_consistent() {
        /// The keys met walking the list from `start`, taking `step` at each link.
        fn walk(c: &StaleCache<u64, &str>, start: u32, step: fn(&Link) -> u32) -> Vec<u64> {
            let mut keys = Vec::new();
            let mut i = start;
            while i != NIL {
                keys.push(c.slots[i as usize].key);
                i = step(&c.links[i as usize]);
            }
            keys
        }
        let forward = |c: &StaleCache<u64, &str>| walk(c, c.head, |l| l.next);
        let backward = |c: &StaleCache<u64, &str>| walk(c, c.tail, |l| l.prev);
        let mut c = cache(4);
        for t in 0..1_000 {
            c.insert(t % 3, "x", t);
        }
        c.insert(3, "x", 1_000);
        assert_eq!(c.len(), 4);
        assert!(events(&mut c).is_empty());
        assert!(
            c.links.is_empty(),
            "no list is kept before the cache is full"
        );
        // Full: the list is built from the store numbers (last stores: key 1 at 997,
        // 2 at 998, 0 at 999, 3 at 1000) and its head, key 1, makes room for key 4.
        c.insert(4, "x", 1_000);
        assert!(matches!(
            events(&mut c)[..],
            [CacheEvent::Evicted { key: 1, .. }]
        ));
        assert_eq!(forward(&c), vec![2, 0, 3, 4]);
        assert_eq!(backward(&c), vec![4, 3, 0, 2]);
        // From then on re-stores move entries to the tail, both ways.
        for (t, key) in [(1_001, 0), (1_002, 2), (1_003, 2)] {
            c.insert(key, "x", t);
        }
        assert_eq!(forward(&c), vec![3, 4, 0, 2]);
        assert_eq!(backward(&c), vec![2, 0, 4, 3]);
    }

    #[test]
    fn reinsert_refreshes_age() {
        let mut c = cache(10);
        c.insert(1, "old", 0);
        assert!(matches!(c.lookup(1, TTL + 5), Lookup::Stale { .. }));
        c.insert(1, "new", TTL + 5);
        assert_eq!(
            c.lookup(1, TTL + 6),
            Lookup::Fresh {
                value: &"new",
                age: 1
            }
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn warm_start_at_time_zero() {
        let mut c = cache(10);
        c.insert(123, "John Doe", 0);
        assert!(matches!(c.lookup(123, 0), Lookup::Fresh { age: 0, .. }));
        // Long after the TTL, a failing dependency still gets the preloaded value.
        let served = c
            .serve_stale(123, TTL + 60 * SECOND, StaleReason::BreakerOpen)
            .unwrap();
        assert_eq!(served.value, &"John Doe");
    }

    #[test]
    fn single_flight() {
        let mut c = cache(10);
        c.insert(1, "a", 0);
        let t = c.begin_refresh(1, TTL).expect("first caller refreshes");
        assert_eq!((t.key(), t.started_at()), (1, TTL));
        assert_eq!(c.begin_refresh(1, TTL), None);
        assert_eq!(c.begin_refresh(1, TTL + 9 * SECOND), None);
        // Another key is independent, and a missing key can be single-flighted too.
        let other = c.begin_refresh(2, TTL).expect("other key");
        assert_eq!(c.begin_refresh(2, TTL + 1), None);
        assert!(c.end_refresh(t, TTL + 100, Some("b")));
        assert_eq!(
            c.lookup(1, TTL + 100),
            Lookup::Fresh {
                value: &"b",
                age: 0
            }
        );
        assert!(c.begin_refresh(1, TTL + 101).is_some());
        // A failed refresh frees the key and leaves the old entry alone.
        assert!(c.end_refresh(other, TTL + 200, None));
        assert_eq!(c.lookup(2, TTL + 200), Lookup::Miss);
        assert!(c.begin_refresh(2, TTL + 201).is_some());
        assert!(events(&mut c).is_empty());
    }

    #[test]
    fn stuck_refresh_is_taken_over_after_refresh_timeout() {
        let mut c = cache(10);
        let timeout = c.config().refresh_timeout;
        c.insert(1, "a", 0);
        let stuck = c.begin_refresh(1, 1_000).unwrap();
        assert_eq!(c.begin_refresh(1, 1_000 + timeout - 1), None);
        let taker = c.begin_refresh(1, 1_000 + timeout).expect("taken over");
        assert_eq!(
            events(&mut c),
            vec![CacheEvent::RefreshTimedOut {
                at: 1_000 + timeout,
                key: 1,
                started_at: 1_000
            }]
        );
        assert_eq!(c.stats().refresh_timeouts, 1);
        // The stuck call finally returns: it is not current, and does not free the key.
        assert!(!c.end_refresh(stuck, 1_000 + timeout + 5, None));
        assert_eq!(c.begin_refresh(1, 1_000 + timeout + 6), None);
        assert!(c.end_refresh(taker, 1_000 + timeout + 7, Some("b")));
        assert!(c.begin_refresh(1, 1_000 + timeout + 8).is_some());
    }

    #[test]
    fn refresh_never_overwrites_a_newer_store() {
        let mut c = cache(10);
        c.insert(1, "v1", 0);
        let t = c.begin_refresh(1, TTL).unwrap();
        c.insert(1, "written", TTL + 10); // a write lands while the refresh is out
        assert!(c.end_refresh(t, TTL + 20, Some("read-before-write")));
        assert!(matches!(
            c.lookup(1, TTL + 20),
            Lookup::Fresh {
                value: &"written",
                ..
            }
        ));
        // A store at the very instant the refresh started is not newer: replaced.
        let t = c.begin_refresh(1, 2 * TTL).unwrap();
        c.insert(1, "same-instant", 2 * TTL);
        assert!(c.end_refresh(t, 2 * TTL + 1, Some("refreshed")));
        assert!(matches!(
            c.lookup(1, 2 * TTL + 1),
            Lookup::Fresh {
                value: &"refreshed",
                ..
            }
        ));
    }

    #[test]
    fn lost_refreshes_are_swept_in_key_order() {
        // Capacity 2 bounds the refresh marks at 2 (plus the growth rule below).
        let mut c = cache(2);
        let timeout = c.config().refresh_timeout;
        for k in [30, 10] {
            let _lost = c.begin_refresh(k, 0).unwrap();
        }
        let _live = c.begin_refresh(20, timeout).unwrap();
        assert_eq!(
            events(&mut c),
            [10, 30]
                .map(|key| CacheEvent::RefreshTimedOut {
                    at: timeout,
                    key,
                    started_at: 0
                })
                .to_vec()
        );
        assert_eq!(c.refreshing.len(), 1);
        assert_eq!(c.stats().refresh_timeouts, 2);

        // Marks still within the timeout are never swept; the threshold grows instead,
        // so that a crowd of live refreshes does not make every begin O(n).
        for k in [1, 2] {
            let _live = c.begin_refresh(k, timeout + 1).unwrap();
        }
        assert!(events(&mut c).is_empty());
        assert_eq!(c.refreshing.len(), 3);
        assert_eq!(c.sweep_above, 6);
        assert_eq!(c.begin_refresh(1, timeout + 2), None, "not swept");
    }

    #[test]
    fn stale_serves_are_events_and_counted() {
        let mut c = cache(10);
        c.insert(1, "a", 0);
        c.insert(2, "b", 0);
        assert!(
            c.serve_stale(1, TTL + 5, StaleReason::DependencyFailed)
                .unwrap()
                .stale
        );
        assert!(
            c.serve_stale(2, TTL + 50, StaleReason::BreakerOpen)
                .unwrap()
                .stale
        );
        assert!(
            c.serve_stale(1, TTL + 7, StaleReason::BreakerOpen)
                .unwrap()
                .stale
        );
        assert_eq!(
            events(&mut c),
            vec![
                CacheEvent::StaleServed {
                    at: TTL + 5,
                    key: 1,
                    age: TTL + 5,
                    reason: StaleReason::DependencyFailed
                },
                CacheEvent::StaleServed {
                    at: TTL + 50,
                    key: 2,
                    age: TTL + 50,
                    reason: StaleReason::BreakerOpen
                },
                CacheEvent::StaleServed {
                    at: TTL + 7,
                    key: 1,
                    age: TTL + 7,
                    reason: StaleReason::BreakerOpen
                },
            ]
        );
        let stats = c.stats();
        assert_eq!(stats.stale_serves, 3);
        assert_eq!(stats.max_stale_age_served, TTL + 50);
        assert!(events(&mut c).is_empty(), "drained");
    }

    #[test]
    fn serve_stale_of_a_fresh_value_is_not_a_stale_serve() {
        let mut c = cache(10);
        c.insert(1, "a", 0);
        assert_eq!(
            c.serve_stale(1, TTL - 1, StaleReason::DependencyFailed),
            Ok(Served {
                value: &"a",
                age: TTL - 1,
                stale: false
            })
        );
        assert!(events(&mut c).is_empty());
        assert_eq!(c.stats().stale_serves, 0);
        assert_eq!(c.stats().fresh_hits, 1);
    }

    #[test]
    fn stale_while_revalidate_window() {
        let window = 20 * SECOND;
        let mut c = swr_cache(window);
        c.insert(1, "a", 0);
        assert_eq!(
            c.lookup(1, TTL + window),
            Lookup::Stale {
                age: TTL + window,
                may_revalidate: true
            }
        );
        assert!(c
            .serve_stale(1, TTL + window, StaleReason::Revalidating)
            .is_ok());
        assert_eq!(
            c.lookup(1, TTL + window + 1),
            Lookup::Stale {
                age: TTL + window + 1,
                may_revalidate: false
            }
        );
        assert_eq!(
            c.serve_stale(1, TTL + window + 1, StaleReason::Revalidating),
            Err(Refusal::TooOld {
                age: TTL + window + 1,
                limit: TTL + window
            })
        );
        // On error the wider stale-if-error limit still applies.
        assert!(c
            .serve_stale(1, TTL + window + 1, StaleReason::DependencyFailed)
            .is_ok());

        let mut off = cache(10);
        off.insert(1, "a", 0);
        assert_eq!(
            off.serve_stale(1, TTL, StaleReason::Revalidating),
            Err(Refusal::RevalidateDisabled)
        );
        assert!(events(&mut off).is_empty());
    }

    #[test]
    fn clock_going_backwards_counts_as_just_stored() {
        let mut c = cache(10);
        c.insert(1, "a", 1_000);
        assert_eq!(
            c.lookup(1, 10),
            Lookup::Fresh {
                value: &"a",
                age: 0
            }
        );
    }

    #[test]
    fn invalid_configs_are_rejected_with_the_field() {
        let field = |config: CacheConfig| config.validate().unwrap_err().field;
        let base = CacheConfig::default();
        assert_eq!(
            field(CacheConfig {
                capacity: 0,
                ..base.clone()
            }),
            "cache.capacity"
        );
        assert_eq!(
            field(CacheConfig {
                ttl: 0,
                ..base.clone()
            }),
            "cache.ttl"
        );
        assert_eq!(
            field(CacheConfig {
                refresh_timeout: 0,
                ..base.clone()
            }),
            "cache.refresh_timeout"
        );
        assert_eq!(
            field(CacheConfig {
                stale_while_revalidate: Some(0),
                ..base.clone()
            }),
            "cache.stale_while_revalidate"
        );
        let too_long = CacheConfig {
            stale_while_revalidate: Some(MAX_STALE + 1),
            ..base.clone()
        };
        assert_eq!(
            too_long.validate().unwrap_err().to_string(),
            "invalid `cache.stale_while_revalidate`: 5m 0.000001s exceeds max_stale 5m: \
             nothing older than max_stale is ever served"
        );
        assert_eq!(
            field(CacheConfig {
                ttl: Span::MAX,
                max_stale: 1,
                ..base.clone()
            }),
            "cache.max_stale"
        );
        assert!(StaleCache::<u64, u64>::new(CacheConfig {
            capacity: 0,
            ..base.clone()
        })
        .is_err());
        // Edge values that are fine: no stale window at all, swr equal to max_stale.
        assert_eq!(
            CacheConfig {
                max_stale: 0,
                ..base.clone()
            }
            .validate(),
            Ok(())
        );
        assert_eq!(
            CacheConfig {
                stale_while_revalidate: Some(MAX_STALE),
                ..base
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn refusal_messages_say_how_old() {
        assert_eq!(Refusal::Miss.to_string(), "nothing cached");
        assert_eq!(
            Refusal::TooOld {
                age: 420 * SECOND,
                limit: 330 * SECOND
            }
            .to_string(),
            "cached value is 7m old, past the 5m 30s limit for stale data"
        );
        assert_eq!(
            Refusal::TooOld {
                age: 1_500,
                limit: 1_000
            }
            .to_string(),
            "cached value is 1.5ms old, past the 1ms limit for stale data"
        );
    }

    #[test]
    fn events_serialize_as_tagged_snake_case() {
        let event = CacheEvent::StaleServed {
            at: 5,
            key: 123u64,
            age: 3,
            reason: StaleReason::BreakerOpen,
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"kind":"stale_served","at":5,"key":123,"age":3,"reason":"breaker_open"}"#
        );
        let evicted = CacheEvent::Evicted {
            at: 1,
            key: 2u64,
            age: 0,
            reason: EvictReason::Capacity,
        };
        assert_eq!(
            serde_json::to_string(&evicted).unwrap(),
            r#"{"kind":"evicted","at":1,"key":2,"age":0,"reason":"capacity"}"#
        );
        for reason in [
            StaleReason::DependencyFailed,
            StaleReason::BreakerOpen,
            StaleReason::Revalidating,
        ] {
            assert_eq!(
                serde_json::to_string(&reason).unwrap(),
                format!("\"{}\"", reason.as_str())
            );
        }
        assert_eq!(EvictReason::Capacity.as_str(), "capacity");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Key = u8;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Key, u32),
        Lookup(Key),
        Serve(Key, StaleReason),
        Advance(Span),
        Begin(Key),
        /// End the outstanding ticket at this index (modulo their number).
        End(usize, Option<u32>),
    }

    fn reason() -> impl Strategy<Value = StaleReason> {
        prop_oneof![
            Just(StaleReason::DependencyFailed),
            Just(StaleReason::BreakerOpen),
            Just(StaleReason::Revalidating),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = 0..8u8;
        prop_oneof![
            3 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => key.clone().prop_map(Op::Lookup),
            3 => (key.clone(), reason()).prop_map(|(k, r)| Op::Serve(k, r)),
            3 => prop_oneof![0..3u64, 0..40u64].prop_map(Op::Advance),
            2 => key.prop_map(Op::Begin),
            2 => (any::<usize>(), proptest::option::of(any::<u32>()))
                .prop_map(|(i, v)| Op::End(i, v)),
        ]
    }

    /// Small spans so that random walks land on the exact boundaries often.
    fn config() -> impl Strategy<Value = CacheConfig> {
        (1..20u64, 0..20u64, 0..20u64, 1..30u64, 1..6usize).prop_map(
            |(ttl, max_stale, swr, refresh_timeout, capacity)| CacheConfig {
                ttl,
                max_stale,
                stale_while_revalidate: Some(swr.min(max_stale)).filter(|&w| w > 0),
                refresh_timeout,
                capacity,
            },
        )
    }

    /// The obvious model: entries in a BTreeMap with their store sequence; evicting
    /// means finding the smallest sequence.
    #[derive(Default)]
    struct Model {
        entries: BTreeMap<Key, (u32, Time, u64)>,
        next_seq: u64,
        refreshing: BTreeMap<Key, Time>,
    }

    impl Model {
        /// Stores and returns the evicted key, if any.
        fn insert(&mut self, capacity: usize, key: Key, value: u32, now: Time) -> Option<Key> {
            let seq = self.next_seq;
            self.next_seq += 1;
            let mut evicted = None;
            if !self.entries.contains_key(&key) && self.entries.len() >= capacity {
                let (&oldest, _) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, &(_, _, seq))| seq)
                    .unwrap();
                self.entries.remove(&oldest);
                evicted = Some(oldest);
            }
            self.entries.insert(key, (value, now, seq));
            evicted
        }
    }

    fn check(config: CacheConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let mut cache: StaleCache<Key, u32> = StaleCache::new(config.clone()).unwrap();
        let mut model = Model::default();
        let stale_limit = config.ttl + config.max_stale;
        let swr_limit = config.stale_while_revalidate.map(|w| config.ttl + w);
        let mut now: Time = 0;
        let mut outstanding: Vec<RefreshTicket<Key>> = Vec::new();
        let mut all_events = Vec::new();

        for op in ops {
            let mut expected_evicted = None;
            match op {
                Op::Advance(dt) => now += dt,
                Op::Insert(k, v) => {
                    cache.insert(k, v, now);
                    expected_evicted = model.insert(config.capacity, k, v, now);
                }
                Op::Lookup(k) => {
                    let got = cache.lookup(k, now);
                    let want = match model.entries.get(&k) {
                        None => Lookup::Miss,
                        Some((v, stored, _)) => {
                            let age = now - stored;
                            if age < config.ttl {
                                Lookup::Fresh { value: v, age }
                            } else if age <= stale_limit {
                                Lookup::Stale {
                                    age,
                                    may_revalidate: swr_limit.is_some_and(|l| age <= l),
                                }
                            } else {
                                Lookup::Expired { age }
                            }
                        }
                    };
                    if let Lookup::Fresh { age, .. } = got {
                        prop_assert!(age < config.ttl, "fresh at age {age}");
                    }
                    prop_assert_eq!(got, want);
                }
                Op::Serve(k, reason) => {
                    let got = cache
                        .serve_stale(k, now, reason)
                        .map(|s| (*s.value, s.age, s.stale));
                    let want = match model.entries.get(&k) {
                        None => Err(Refusal::Miss),
                        Some(&(v, stored, _)) => {
                            let age = now - stored;
                            let limit = match reason {
                                StaleReason::Revalidating => swr_limit,
                                _ => Some(stale_limit),
                            };
                            if age < config.ttl {
                                Ok((v, age, false))
                            } else {
                                match limit {
                                    None => Err(Refusal::RevalidateDisabled),
                                    Some(limit) if age > limit => {
                                        Err(Refusal::TooOld { age, limit })
                                    }
                                    Some(_) => Ok((v, age, true)),
                                }
                            }
                        }
                    };
                    if let Ok((_, age, true)) = got {
                        prop_assert!(age >= config.ttl && age <= stale_limit);
                    }
                    prop_assert_eq!(got, want);
                }
                Op::Begin(k) => {
                    let got = cache.begin_refresh(k, now);
                    let free = model
                        .refreshing
                        .get(&k)
                        .is_none_or(|&started| now - started >= config.refresh_timeout);
                    prop_assert_eq!(got.is_some(), free);
                    if let Some(ticket) = got {
                        prop_assert_eq!((ticket.key(), ticket.started_at()), (k, now));
                        // Single flight: every other outstanding ticket for k is past
                        // the refresh timeout.
                        for other in outstanding.iter().filter(|t| t.key() == k) {
                            prop_assert!(now - other.started_at() >= config.refresh_timeout);
                        }
                        model.refreshing.insert(k, now);
                        outstanding.push(ticket);
                    }
                }
                Op::End(i, value) => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let ticket = outstanding.remove(i % outstanding.len());
                    let (k, started) = (ticket.key(), ticket.started_at());
                    let got = cache.end_refresh(ticket, now, value);
                    let current = model.refreshing.get(&k) == Some(&started);
                    if current {
                        model.refreshing.remove(&k);
                    }
                    // A timed-out mark may have been swept early; then the late
                    // completion is no longer current. Otherwise exact.
                    if now - started < config.refresh_timeout {
                        prop_assert_eq!(got, current);
                    } else {
                        prop_assert!(!got || current);
                    }
                    if let Some(v) = value {
                        let newer = model
                            .entries
                            .get(&k)
                            .is_some_and(|&(_, stored, _)| stored > started);
                        if !newer {
                            expected_evicted = model.insert(config.capacity, k, v, now);
                        }
                    }
                }
            }

            prop_assert!(cache.len() <= config.capacity);
            prop_assert_eq!(cache.len(), model.entries.len());
            let events: Vec<_> = cache.drain_events().collect();
            let evicted: Vec<Key> = events
                .iter()
                .filter_map(|e| match e {
                    CacheEvent::Evicted { key, .. } => Some(*key),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(evicted, expected_evicted.into_iter().collect::<Vec<_>>());
            for event in &events {
                match *event {
                    CacheEvent::StaleServed { at, age, .. } => {
                        prop_assert_eq!(at, now);
                        prop_assert!(age >= config.ttl && age <= stale_limit);
                    }
                    CacheEvent::StaleRefused { age, limit, .. } => prop_assert!(age > limit),
                    CacheEvent::RefreshTimedOut { at, started_at, .. } => {
                        prop_assert!(at - started_at >= config.refresh_timeout);
                    }
                    CacheEvent::Evicted { .. } => {}
                }
            }
            all_events.extend(events);
        }

        // Counters agree with the events that were emitted.
        let stats = cache.stats();
        let count = |pred: fn(&CacheEvent<Key>) -> bool| {
            all_events.iter().filter(|e| pred(e)).count() as u64
        };
        prop_assert_eq!(
            stats.stale_serves,
            count(|e| matches!(e, CacheEvent::StaleServed { .. }))
        );
        prop_assert_eq!(
            stats.expired_refusals,
            count(|e| matches!(e, CacheEvent::StaleRefused { .. }))
        );
        prop_assert_eq!(
            stats.evictions,
            count(|e| matches!(e, CacheEvent::Evicted { .. }))
        );
        prop_assert_eq!(
            stats.refresh_timeouts,
            count(|e| matches!(e, CacheEvent::RefreshTimedOut { .. }))
        );
        let max_age = all_events
            .iter()
            .filter_map(|e| match e {
                CacheEvent::StaleServed { age, .. } => Some(*age),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        prop_assert_eq!(stats.max_stale_age_served, max_age);
        Ok(())
    }

    proptest! {
        /// Lookups and stale serves agree with the model; nothing stale is served past
        /// `ttl + max_stale`, nothing fresh is older than `ttl`; `len <= capacity`;
        /// at most one refresh per key within `refresh_timeout`; counters match events.
        #[test]
        fn cache_agrees_with_model(config in config(), ops in prop::collection::vec(op(), 0..200)) {
            check(config, ops)?;
        }
    }
}
