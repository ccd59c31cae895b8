//! The engine in front of one dependency call, shared by every service the node serves.
//!
//! A seed request and a declared plan's leaf both reach a dependency through these
//! steps: [`Node::begin_read`] / [`Node::begin_write`] decide whether a call goes (the
//! read policy's cache-first answer, the breaker's permit, a write queue that keeps
//! writes in order), and [`Node::read_answer`] / [`Node::write_answer`] turn the
//! dependency's result into what the caller acts on (filling the cache on the way).
//! What differs between the two callers is only what they do with the outcome: the
//! seed shapes its task's replies, a plan feeds its [`PlanRun`](crate::node::plan).
//! A mechanism that belongs to every call (a retry budget, a bulkhead) goes here.

use crate::engine::breaker::{CircuitBreaker, Permit};
use crate::engine::bulkhead::Bulkhead;
use crate::engine::cache::{Lookup, StaleCache, StaleReason};
use crate::engine::queue::WriteQueue;
use crate::engine::retry::{Pipeline, RetryPolicy, TimeoutScope};
use crate::engine::ryw::{RecentWrites, RywConfig, RywEvent, WriteState, EXTRA_ENTRIES};
use crate::engine::{ConfigError, Span, Time};
use crate::model::service::DependencyEngine;
use crate::node::config::ReadPolicy;
use crate::node::data::StoreFull;
use crate::node::protocol::{Name, Record, Resource};

use super::{CallError, CallResult, Dependency, Effect, Node, NodeEvent};

/// How a read begins.
pub(super) enum ReadStart {
    /// Answered from the cache with no call: cache-first within the TTL, or
    /// stale-while-revalidate (a refresh started behind it).
    Cached {
        /// The cached record.
        record: Record,
        /// Its age.
        age: Span,
        /// Whether it is past its TTL.
        stale: bool,
    },
    /// The breaker let a call through; make it with this permit.
    Call(Permit),
    /// The breaker is open: no call.
    BreakerOpen,
}

/// How a write begins.
pub(super) enum WriteStart {
    /// The breaker let a call through; make it with this permit.
    Call(Permit),
    /// Into the write queue: the breaker is open, or the queue keeps writes in order
    /// and already holds some.
    Queue,
    /// The breaker is open and the dependency has no queue.
    BreakerOpen,
}

/// What a read call answered.
pub(super) enum ReadAnswer {
    /// The record (now in the cache, if the dependency has one).
    Found(Record),
    /// No such record: a healthy answer.
    NotFound,
    /// The call failed.
    Failed(CallError),
}

/// What a write call answered.
pub(super) enum WriteAnswer {
    /// Applied (the record as the service now holds it is in the cache, if any).
    /// With read-your-writes, the name the service now holds: a write older than
    /// the service's record is acknowledged with the newer one, and that, not the
    /// late write's own value, is what a later read may be answered with.
    Applied(Option<Name>),
    /// The service's store is full: nothing was written.
    Rejected(StoreFull),
    /// The call failed.
    Failed(CallError),
}

impl Dependency {
    /// The engine for a dependency named `name` (the seed's `resource`, if it is one
    /// of the seed's), configured by `engine`.
    pub(super) fn new(
        name: &'static str,
        resource: Option<Resource>,
        engine: &DependencyEngine,
    ) -> Result<Dependency, ConfigError> {
        // A dependency without a cache or queue gets the smallest of each, which
        // nothing uses (see `Dependency::has_cache`).
        let unused_cache = crate::engine::cache::CacheConfig {
            capacity: 1,
            ..Default::default()
        };
        let cache = engine.cache.clone().unwrap_or(unused_cache);
        let queue = engine.queue.clone().unwrap_or_default();
        Ok(Dependency {
            name,
            resource,
            timeout: engine.timeout,
            read_policy: engine.read_policy,
            breaker: CircuitBreaker::new(engine.breaker.clone())?,
            cache: StaleCache::new(cache)?,
            has_cache: engine.cache.is_some(),
            writes_in_order: engine.queue.as_ref().is_some_and(|q| q.in_order),
            queue: WriteQueue::new(queue)?,
            has_queue: engine.queue.is_some(),
            retry: engine
                .retry
                .clone()
                .map(RetryPolicy::new)
                .transpose()?
                .map(Box::new),
            breaker_outside_retry: engine.pipeline == Pipeline::BreakerThenRetry,
            timeout_outside_retry: engine.timeout_scope == TimeoutScope::WholeCall,
            bulkhead: engine
                .bulkhead
                .clone()
                .map(Bulkhead::new)
                .transpose()
                .map_err(|e| ConfigError::new(format!("bulkhead.{}", e.field), e.reason))?
                .map(Box::new),
            cpu_per_call: engine.cpu_per_call,
            ryw: engine
                .read_your_writes
                .map(|window| {
                    // Every write the queue can hold, and room for writes applied at once.
                    let capacity = engine.queue.as_ref().map_or(0, |q| q.capacity) + EXTRA_ENTRIES;
                    RecentWrites::new(RywConfig { window, capacity })
                })
                .transpose()?
                .map(Box::new),
        })
    }
}

impl Node {
    /// Begins a read of `key` on dependency `index` at `now`.
    #[inline(always)]
    pub(super) fn begin_read(&mut self, now: Time, index: usize, key: u64) -> ReadStart {
        let dep = &mut self.deps[index];
        if dep.has_cache && dep.read_policy == ReadPolicy::CacheFirst {
            match dep.cache.lookup(key, now) {
                Lookup::Fresh { value, age } => {
                    return ReadStart::Cached {
                        record: value.clone(),
                        age,
                        stale: false,
                    };
                }
                Lookup::Stale {
                    may_revalidate: true,
                    ..
                } => {
                    if let Some(ticket) = dep.cache.begin_refresh(key, now) {
                        self.stats.refreshes += 1;
                        self.start_refresh(now, index, key, ticket);
                    }
                    // Within the revalidation window, as the lookup just said, so it
                    // is served; were it not, the read would call as on a miss.
                    let dep = &mut self.deps[index];
                    if let Ok(hit) = dep.cache.serve_stale(key, now, StaleReason::Revalidating) {
                        return ReadStart::Cached {
                            record: hit.value.clone(),
                            age: hit.age,
                            stale: hit.stale,
                        };
                    }
                }
                _ => {}
            }
        }
        let dep = &mut self.deps[index];
        match dep.breaker.try_acquire(now, &mut self.rng) {
            Ok(permit) => {
                // The answer will be stored: start loading the entry now.
                dep.cache.prefetch(key);
                if let Some(retry) = &mut dep.retry {
                    retry.on_call(now);
                }
                ReadStart::Call(permit)
            }
            Err(_) => ReadStart::BreakerOpen,
        }
    }

    /// Begins a write on dependency `index` at `now`.
    #[inline(always)]
    pub(super) fn begin_write(&mut self, now: Time, index: usize) -> WriteStart {
        let dep = &mut self.deps[index];
        if dep.writes_in_order && !dep.queue.is_empty() {
            return WriteStart::Queue;
        }
        match dep.breaker.try_acquire(now, &mut self.rng) {
            Ok(permit) => {
                if let Some(retry) = &mut dep.retry {
                    retry.on_call(now);
                }
                WriteStart::Call(permit)
            }
            Err(_) if dep.has_queue => WriteStart::Queue,
            Err(_) => WriteStart::BreakerOpen,
        }
    }

    /// What dependency `index`'s `result` to a read of `key` means; a record found
    /// fills the cache.
    #[inline(always)]
    pub(super) fn read_answer(
        &mut self,
        now: Time,
        index: usize,
        key: u64,
        result: CallResult,
    ) -> ReadAnswer {
        match result {
            CallResult::Found(record) => {
                let dep = &mut self.deps[index];
                if dep.has_cache {
                    dep.cache.insert(key, record.clone(), now);
                }
                ReadAnswer::Found(record)
            }
            CallResult::NotFound => ReadAnswer::NotFound,
            CallResult::Failed(error) => ReadAnswer::Failed(error),
            // A store refuses writes only: a read answered otherwise failed.
            CallResult::Written(_) | CallResult::Rejected(_) => {
                ReadAnswer::Failed(CallError::Error)
            }
        }
    }

    /// What dependency `index`'s `result` to a write of `key` means; an applied
    /// write fills the cache.
    #[inline(always)]
    pub(super) fn write_answer(
        &mut self,
        now: Time,
        index: usize,
        key: u64,
        result: CallResult,
    ) -> WriteAnswer {
        match result {
            CallResult::Written(record) => {
                let dep = &mut self.deps[index];
                let held = dep.ryw.is_some().then(|| record.name.clone());
                if dep.has_cache {
                    dep.cache.insert(key, record, now);
                }
                WriteAnswer::Applied(held)
            }
            CallResult::Rejected(full) => WriteAnswer::Rejected(full),
            CallResult::Failed(error) => WriteAnswer::Failed(error),
            // A store answers writes with `Written` or `Rejected`: anything else failed.
            CallResult::Found(_) | CallResult::NotFound => WriteAnswer::Failed(CallError::Error),
        }
    }

    /// When a write whose call just failed may be tried again: one backoff step
    /// later, rather than straight into the same failure.
    pub(super) fn retry_after_failure(&mut self, now: Time, index: usize) -> Time {
        let backoff = self.deps[index].queue.config().backoff(1, &mut self.rng);
        now.saturating_add(backoff)
    }

    /// Read-your-writes: remembers that dependency `index` queued or applied (`state`)
    /// write `version` of `key` (`name`) at `now`. Nothing unless it is configured; the
    /// caller clones the name only then (see [`Node::remembers_writes`]).
    #[inline(never)]
    pub(super) fn remember_write(
        &mut self,
        now: Time,
        index: usize,
        key: u64,
        version: u64,
        name: Name,
        state: WriteState,
    ) {
        let dep = &mut self.deps[index];
        let Some(ryw) = dep.ryw.as_mut() else {
            return;
        };
        let evicted = match state {
            WriteState::Queued => ryw.queued(key, version, name, now),
            WriteState::Applied => ryw.applied(key, version, name, now),
        };
        if let Some(e) = evicted {
            self.effects.push(Effect::Event(NodeEvent::ReadYourWrites {
                dependency: dep.name,
                event: RywEvent::Evicted {
                    at: now,
                    key: e.key,
                    version: e.version,
                },
            }));
        }
    }

    /// Whether dependency `index` remembers writes (read-your-writes is configured).
    #[inline(always)]
    pub(super) fn remembers_writes(&self, index: usize) -> bool {
        self.deps[index].ryw.is_some()
    }

    /// Read-your-writes: dependency `index`'s queue just dead-lettered a write; if it is
    /// the one remembered for its key, reads no longer see it.
    #[inline(never)]
    pub(super) fn forget_dead_letter(&mut self, now: Time, index: usize) {
        let dep = &mut self.deps[index];
        let Some(ryw) = dep.ryw.as_mut() else {
            return;
        };
        let Some(letter) = dep.queue.dead_letters().back() else {
            return;
        };
        let (key, version) = (letter.write.key, letter.write.version);
        if ryw.dead_lettered(key, version) {
            self.effects.push(Effect::Event(NodeEvent::ReadYourWrites {
                dependency: dep.name,
                event: RywEvent::Forgotten {
                    at: now,
                    key,
                    version,
                },
            }));
        }
    }

    /// Read-your-writes: the record a read of `key` on dependency `index` at `now` is
    /// answered with instead of the stale cache (or an error), and its age, if the node
    /// queued or applied a write of it within the window. Called only where the stale
    /// cache would answer; the event goes to the trace.
    #[inline(always)]
    pub(super) fn pending_write(
        &mut self,
        now: Time,
        index: usize,
        key: u64,
    ) -> Option<(Record, Span)> {
        self.deps[index].ryw.as_ref()?;
        self.pending_write_slow(now, index, key)
    }

    #[inline(never)]
    fn pending_write_slow(&mut self, now: Time, index: usize, key: u64) -> Option<(Record, Span)> {
        let dep = &mut self.deps[index];
        let hit = dep.ryw.as_mut()?.serve(key, now)?;
        let record = Record {
            id: key,
            name: hit.value.clone(),
        };
        let (age, version, write) = (hit.age, hit.version, hit.state);
        self.effects.push(Effect::Event(NodeEvent::ReadYourWrites {
            dependency: dep.name,
            event: RywEvent::ServedPendingWrite {
                at: now,
                key,
                version,
                age,
                write,
            },
        }));
        Some((record, age))
    }
}
