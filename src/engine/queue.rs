//! The write queue: a bounded FIFO of writes waiting for a dependency, drained at a
//! bounded rate with retries, backoff and a dead-letter list.
//!
//! While a dependency is down, writes are accepted and parked here instead of failing,
//! and the client is told so. The queue is bounded because an unbounded one only turns an
//! outage into a memory exhaustion and a backlog that takes hours to drain: when it is
//! full, a write is refused at once with the depth (load shedding), which the client can
//! act on, and never dropped silently. When the dependency comes back, the backlog is
//! drained at a bounded rate (a token bucket), so that a service that has just recovered
//! is not knocked over again by everything that piled up. A failed attempt is retried
//! after an exponential backoff, so a dependency that is still struggling gets less
//! traffic the longer it struggles, with jitter, so that queues on many nodes that failed
//! together do not retry in lockstep. After `max_attempts` a write is dead-lettered, kept
//! with its last error for an operator, so that one poison write cannot block the queue
//! forever; a write the dependency refuses for good (its store is full) is dead-lettered
//! at once, since every retry would meet the same refusal.
//!
//! Delivery is at least once: the caller reports every dispatch exactly once (a timeout
//! is a failure), and a late success for an attempt already reported as failed is
//! ignored, so the write is attempted again. Nothing is lost: at every instant
//! `accepted == applied + dead_lettered + queued` ([`WriteQueue::check_conservation`]).

use std::collections::VecDeque;
use std::fmt;

use rand::Rng;
use serde::Serialize;

use super::{ConfigError, Span, Time, MILLISECOND, SECOND};

/// Default maximum number of writes held (waiting and in flight).
pub const DEFAULT_CAPACITY: usize = 1000;
/// Default sustained drain rate: 50 dispatches per second.
pub const DEFAULT_DRAIN_RATE: u32 = 50;
/// Default burst: up to 10 dispatches back to back after an idle spell.
pub const DEFAULT_BURST: u32 = 10;
/// Default attempts in flight at once: 1, which keeps writes in strict enqueue order.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1;
/// Default attempts per write before it is dead-lettered.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default backoff after the first failed attempt: 100 ms (doubling after each failure).
pub const DEFAULT_BACKOFF_BASE: Span = 100 * MILLISECOND;
/// Default ceiling on the backoff: 10 s.
pub const DEFAULT_BACKOFF_MAX: Span = 10 * SECOND;
/// Default jitter: each backoff is shortened by a random 0–20 %.
pub const DEFAULT_JITTER: f64 = 0.2;

/// Dead letters kept with their write: the latest this many. A node that runs for long
/// (the live one) must not keep every write it ever gave up on, and an operator looks at
/// the latest; [`QueueStats::dead_lettered`] still counts every one, so conservation is
/// checked over all of them.
pub const DEAD_LETTERS_KEPT: usize = 1000;

/// One token of the drain bucket, in the bucket's internal unit. The drain rate is per
/// second and time is in microseconds, so counting tokens in millionths keeps the refill
/// (`elapsed_us * rate`) exact in integers: no float drift between runs.
const TOKEN: u64 = SECOND;

/// The identity of an accepted write: assigned in enqueue order, from 0, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct WriteId(pub u64);

impl fmt::Display for WriteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

/// Capacity, drain rate and retry policy of a [`WriteQueue`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueConfig {
    /// Maximum writes held, waiting and in flight together; an enqueue beyond is refused.
    pub capacity: usize,
    /// Sustained dispatches per second (retries included): the token bucket's refill rate.
    pub drain_rate: u32,
    /// Dispatches allowed back to back: the token bucket's size. It starts full.
    pub burst: u32,
    /// Attempts in flight at once. With 1, the head is retried before anything behind it
    /// is tried and writes apply in exactly enqueue order.
    pub max_in_flight: usize,
    /// Attempts per write, the first included, before it is dead-lettered.
    pub max_attempts: u32,
    /// Backoff after the first failure; it doubles after each further failure.
    pub backoff_base: Span,
    /// Ceiling on the backoff before jitter.
    pub backoff_max: Span,
    /// Fraction in `0..=1` by which a backoff may be randomly shortened: the delay is
    /// drawn uniformly from `[d * (1 - jitter), d]` for the capped exponential `d`. So
    /// 1.0 is "full jitter", 0.5 "equal jitter", 0 none; the cap is never exceeded.
    pub jitter: f64,
    /// Whether a new write waits behind the writes already queued, even while the
    /// dependency takes calls, so that writes reach it in the order clients sent them.
    /// The node enforces it (the queue only holds what it is given). The seed task's
    /// rule, so the default; a declared dependency's default is `false`, because its
    /// writes carry versions that keep a newer one from being overwritten whatever the
    /// order, and an in-order queue makes every write queue behind one stray failure.
    pub in_order: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: DEFAULT_CAPACITY,
            drain_rate: DEFAULT_DRAIN_RATE,
            burst: DEFAULT_BURST,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            jitter: DEFAULT_JITTER,
            in_order: true,
        }
    }
}

impl QueueConfig {
    /// Refuses a queue that could hold nothing, drain nothing or retry in a hot loop.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let at_least_one = [
            ("queue.capacity", self.capacity as u64),
            ("queue.drain_rate", u64::from(self.drain_rate)),
            ("queue.burst", u64::from(self.burst)),
            ("queue.max_in_flight", self.max_in_flight as u64),
            ("queue.max_attempts", u64::from(self.max_attempts)),
        ];
        for (field, value) in at_least_one {
            if value == 0 {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        if self.backoff_base == 0 {
            return Err(ConfigError::new(
                "queue.backoff_base",
                "must be positive, or a failed write would be retried at once",
            ));
        }
        if self.backoff_max < self.backoff_base {
            return Err(ConfigError::new(
                "queue.backoff_max",
                format!(
                    "must be at least queue.backoff_base ({} us)",
                    self.backoff_base
                ),
            ));
        }
        // `contains` is false for NaN, so this also refuses NaN.
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ConfigError::new(
                "queue.jitter",
                format!("must be a fraction in 0..=1, got {}", self.jitter),
            ));
        }
        Ok(())
    }

    /// The backoff after `failures` failed attempts, before jitter:
    /// `backoff_base * 2^(failures - 1)`, capped at `backoff_max`.
    pub fn backoff_ceiling(&self, failures: u32) -> Span {
        let factor = 1u64
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u64::MAX);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }

    /// The jittered backoff after `failures` failed attempts: uniform in
    /// `[ceiling * (1 - jitter), ceiling]`. Draws one `f64` from `rng`, none when
    /// `jitter` is 0.
    pub fn backoff(&self, failures: u32, rng: &mut impl Rng) -> Span {
        let ceiling = self.backoff_ceiling(failures);
        if self.jitter == 0.0 {
            return ceiling;
        }
        let u: f64 = rng.random(); // in [0, 1)
                                   // Truncation is the floor here (non-negative); `min` guards float rounding
                                   // on huge spans.
        let cut = (ceiling as f64 * self.jitter * u) as Span;
        ceiling - cut.min(ceiling)
    }
}

/// The answer to [`WriteQueue::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Enqueue {
    /// Queued under `id`; `position` is the 1-based depth just after the insert.
    Accepted {
        /// The write's identity, for its results and events.
        id: WriteId,
        /// Its place in line, 1 = next (counting writes in flight).
        position: usize,
    },
    /// Refused because the queue is full (load shedding); `depth` is how full.
    Rejected {
        /// Writes held when it was refused (the capacity).
        depth: usize,
    },
}

/// A write handed out for an attempt by [`WriteQueue::poll_dispatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch<'a, W> {
    /// The write's identity: report the attempt's result with it.
    pub id: WriteId,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// The write itself, still owned by the queue until it is applied.
    pub write: &'a W,
}

/// What [`WriteQueue::on_failed`] did with a failed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailOutcome {
    /// It stays in place and may be dispatched again from `at` on.
    Retry {
        /// End of its backoff.
        at: Time,
    },
    /// It used its last attempt and moved to the dead-letter list.
    DeadLettered,
}

/// A write that failed `max_attempts` times, or that its dependency refused for good
/// ([`WriteQueue::on_rejected`]), kept for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<W> {
    /// Its identity.
    pub id: WriteId,
    /// The write.
    pub write: W,
    /// Attempts made (the configured maximum, or fewer for a refused write).
    pub attempts: u32,
    /// The error of the last attempt.
    pub last_error: String,
    /// When it was accepted.
    pub enqueued_at: Time,
    /// When it was dead-lettered.
    pub at: Time,
}

/// A state change of the queue. Every variant carries `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueEvent {
    /// A write was accepted; `depth` is the depth after the insert.
    Enqueued {
        /// When.
        at: Time,
        /// The write.
        id: WriteId,
        /// Writes held after the insert.
        depth: usize,
    },
    /// A write was refused because the queue was full.
    Rejected {
        /// When.
        at: Time,
        /// Writes held (the capacity).
        depth: usize,
    },
    /// An attempt started.
    Dispatched {
        /// When.
        at: Time,
        /// The write.
        id: WriteId,
        /// Which attempt, from 1.
        attempt: u32,
    },
    /// A write was applied and left the queue.
    Applied {
        /// When.
        at: Time,
        /// The write.
        id: WriteId,
        /// Attempts it took.
        attempts: u32,
        /// Time from acceptance to application.
        waited: Span,
    },
    /// An attempt failed and the write will be tried again.
    RetryScheduled {
        /// When the failure was reported.
        at: Time,
        /// The write.
        id: WriteId,
        /// The number the next attempt will have (so it matches its `Dispatched`).
        attempt: u32,
        /// End of the backoff.
        retry_at: Time,
    },
    /// A write used its last attempt and was dead-lettered.
    DeadLettered {
        /// When.
        at: Time,
        /// The write.
        id: WriteId,
        /// Attempts made.
        attempts: u32,
    },
}

impl QueueEvent {
    /// When the event happened.
    pub fn at(&self) -> Time {
        match *self {
            QueueEvent::Enqueued { at, .. }
            | QueueEvent::Rejected { at, .. }
            | QueueEvent::Dispatched { at, .. }
            | QueueEvent::Applied { at, .. }
            | QueueEvent::RetryScheduled { at, .. }
            | QueueEvent::DeadLettered { at, .. } => at,
        }
    }
}

/// Counters of a [`WriteQueue`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Writes accepted.
    pub accepted: u64,
    /// Writes refused because the queue was full.
    pub rejected: u64,
    /// Attempts started (first attempts and retries).
    pub dispatched: u64,
    /// Failed attempts that were scheduled for a retry.
    pub retries: u64,
    /// Writes applied.
    pub applied: u64,
    /// Writes dead-lettered.
    pub dead_lettered: u64,
    /// Writes held now, waiting and in flight.
    pub queued: u64,
    /// Of those, writes in flight now.
    pub in_flight: u64,
    /// Largest number of writes held at once.
    pub max_depth: u64,
}

/// A held write.
#[derive(Debug, Clone)]
struct Entry<W> {
    id: WriteId,
    write: W,
    enqueued_at: Time,
    /// Attempts started so far.
    attempts: u32,
    in_flight: bool,
    /// End of the current backoff; 0 before the first failure.
    not_before: Time,
}

/// A bounded FIFO of writes `W` waiting for a dependency.
///
/// The driver enqueues writes, and whenever it believes the dependency is healthy, calls
/// [`poll_dispatch`](Self::poll_dispatch) until it returns `None`, sends each write, and
/// reports each result with [`on_applied`](Self::on_applied) or
/// [`on_failed`](Self::on_failed). [`poll_timeout`](Self::poll_timeout) says when to poll
/// again.
///
/// Order: the next write dispatched is always the oldest one not in flight, and a write
/// in backoff holds back everything behind it (it is never overtaken on dispatch). With
/// `max_in_flight == 1` writes therefore apply in exactly enqueue order. With more in
/// flight, first attempts still start in enqueue order, but a write that fails and is
/// retried applies after writes behind it that were already in flight and succeeded.
#[derive(Debug, Clone)]
pub struct WriteQueue<W> {
    config: QueueConfig,
    /// Held writes in enqueue order, so sorted by id (removal never reorders).
    entries: VecDeque<Entry<W>>,
    in_flight: usize,
    next_id: u64,
    /// Drain bucket content in millionths of a token (see [`TOKEN`]).
    tokens: u64,
    /// When `tokens` was last brought up to date.
    refilled_at: Time,
    /// The latest dead letters, at most [`DEAD_LETTERS_KEPT`].
    dead_letters: VecDeque<DeadLetter<W>>,
    stats: QueueStats,
    events: Vec<QueueEvent>,
}

impl<W> WriteQueue<W> {
    /// The oldest write still held (waiting or in flight), if any.
    pub fn front(&self) -> Option<&W> {
        self.entries.front().map(|e| &e.write)
    }

    /// An empty queue with a full drain bucket at time 0, or the reason `config` is
    /// refused.
    pub fn new(config: QueueConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(WriteQueue {
            tokens: u64::from(config.burst) * TOKEN,
            config,
            entries: VecDeque::new(),
            in_flight: 0,
            next_id: 0,
            refilled_at: 0,
            dead_letters: VecDeque::new(),
            stats: QueueStats::default(),
            events: Vec::new(),
        })
    }

    /// Accepts `write` at the back of the line, or refuses it if the queue is full.
    pub fn enqueue(&mut self, write: W, now: Time) -> Enqueue {
        self.enqueue_not_before(write, now, 0)
    }

    /// Like [`enqueue`](Self::enqueue), but the write is not dispatched before
    /// `not_before`: for a write whose direct call just failed, where trying again at
    /// once would most likely meet the same failure. The direct call does not count
    /// against `max_attempts`.
    pub fn enqueue_not_before(&mut self, write: W, now: Time, not_before: Time) -> Enqueue {
        let depth = self.entries.len();
        if depth >= self.config.capacity {
            self.stats.rejected += 1;
            self.events.push(QueueEvent::Rejected { at: now, depth });
            return Enqueue::Rejected { depth };
        }
        let id = WriteId(self.next_id);
        self.next_id += 1;
        self.entries.push_back(Entry {
            id,
            write,
            enqueued_at: now,
            attempts: 0,
            in_flight: false,
            not_before,
        });
        let position = depth + 1;
        self.stats.accepted += 1;
        self.stats.max_depth = self.stats.max_depth.max(position as u64);
        self.events.push(QueueEvent::Enqueued {
            at: now,
            id,
            depth: position,
        });
        Enqueue::Accepted { id, position }
    }

    /// The next write to attempt at `now`, if `max_in_flight`, its backoff and the drain
    /// rate allow one; it is then in flight until its result is reported. Whether the
    /// dependency is healthy is the caller's call, made before polling.
    pub fn poll_dispatch(&mut self, now: Time) -> Option<Dispatch<'_, W>> {
        if self.in_flight >= self.config.max_in_flight {
            return None;
        }
        let index = self.next_candidate()?;
        if self.entries[index].not_before > now {
            return None;
        }
        self.refill(now);
        if self.tokens < TOKEN {
            return None;
        }
        self.tokens -= TOKEN;
        self.in_flight += 1;
        self.stats.dispatched += 1;
        let entry = &mut self.entries[index];
        entry.in_flight = true;
        entry.attempts += 1;
        self.events.push(QueueEvent::Dispatched {
            at: now,
            id: entry.id,
            attempt: entry.attempts,
        });
        Some(Dispatch {
            id: entry.id,
            attempt: entry.attempts,
            write: &entry.write,
        })
    }

    /// The earliest instant, `now` or later, at which [`poll_dispatch`](Self::poll_dispatch)
    /// would hand out a write if nothing else happens first; `None` when only a result or
    /// an enqueue can make one possible (nothing waiting, or `max_in_flight` reached).
    pub fn poll_timeout(&self, now: Time) -> Option<Time> {
        if self.in_flight >= self.config.max_in_flight {
            return None;
        }
        let candidate = &self.entries[self.next_candidate()?];
        let base = now.max(self.refilled_at);
        let tokens = self.tokens_at(base);
        let token_at = if tokens >= TOKEN {
            base
        } else {
            base + (TOKEN - tokens).div_ceil(u64::from(self.config.drain_rate))
        };
        Some(candidate.not_before.max(token_at))
    }

    /// Reports that attempt `id` succeeded at `now`: the write leaves the queue and is
    /// handed back. `None` (and nothing changes) if `id` is not in flight: unknown, already
    /// finished, or a late result for an attempt already reported as failed.
    pub fn on_applied(&mut self, id: WriteId, now: Time) -> Option<W> {
        let index = self.in_flight_index(id)?;
        let entry = self
            .entries
            .remove(index)
            .expect("in_flight_index returns a valid index");
        self.in_flight -= 1;
        self.stats.applied += 1;
        self.events.push(QueueEvent::Applied {
            at: now,
            id,
            attempts: entry.attempts,
            waited: now.saturating_sub(entry.enqueued_at),
        });
        Some(entry.write)
    }

    /// Reports that attempt `id` failed at `now` with `error`: the write is scheduled for
    /// a retry after a jittered exponential backoff drawn from `rng`, or, if that was its
    /// last attempt, dead-lettered with `error`. `None` (and nothing changes, no draw) if
    /// `id` is not in flight.
    pub fn on_failed(
        &mut self,
        id: WriteId,
        error: &str,
        now: Time,
        rng: &mut impl Rng,
    ) -> Option<FailOutcome> {
        let index = self.in_flight_index(id)?;
        self.in_flight -= 1;
        let attempts = self.entries[index].attempts;
        if attempts >= self.config.max_attempts {
            self.dead_letter(index, error, now);
            return Some(FailOutcome::DeadLettered);
        }
        let retry_at = now.saturating_add(self.config.backoff(attempts, rng));
        let entry = &mut self.entries[index];
        entry.in_flight = false;
        entry.not_before = retry_at;
        self.stats.retries += 1;
        self.events.push(QueueEvent::RetryScheduled {
            at: now,
            id,
            attempt: attempts + 1,
            retry_at,
        });
        Some(FailOutcome::Retry { at: retry_at })
    }

    /// Reports that attempt `id` was refused at `now` with `error` by a dependency that
    /// will refuse it again (its store is full): retrying cannot help, so the write is
    /// dead-lettered at once, whatever attempts it has left. `false` (and nothing
    /// changes) if `id` is not in flight.
    pub fn on_rejected(&mut self, id: WriteId, error: &str, now: Time) -> bool {
        let Some(index) = self.in_flight_index(id) else {
            return false;
        };
        self.in_flight -= 1;
        self.dead_letter(index, error, now);
        true
    }

    /// Moves the write at `index` (no longer in flight) to the dead letters.
    fn dead_letter(&mut self, index: usize, error: &str, now: Time) {
        let entry = self
            .entries
            .remove(index)
            .expect("in_flight_index returns a valid index");
        self.stats.dead_lettered += 1;
        self.events.push(QueueEvent::DeadLettered {
            at: now,
            id: entry.id,
            attempts: entry.attempts,
        });
        if self.dead_letters.len() == DEAD_LETTERS_KEPT {
            self.dead_letters.pop_front();
        }
        self.dead_letters.push_back(DeadLetter {
            id: entry.id,
            write: entry.write,
            attempts: entry.attempts,
            last_error: error.to_owned(),
            enqueued_at: entry.enqueued_at,
            at: now,
        });
    }

    /// Index of the oldest write not in flight. Everything before it is in flight, so
    /// this looks at no more than `max_in_flight + 1` entries.
    fn next_candidate(&self) -> Option<usize> {
        self.entries.iter().position(|e| !e.in_flight)
    }

    /// Index of `id` if it is held and in flight. Entries are sorted by id.
    fn in_flight_index(&self, id: WriteId) -> Option<usize> {
        let index = self.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        self.entries[index].in_flight.then_some(index)
    }

    /// Bucket content at `at` (not before the last refill), without changing anything.
    fn tokens_at(&self, at: Time) -> u64 {
        let elapsed = at.saturating_sub(self.refilled_at);
        let cap = u64::from(self.config.burst) * TOKEN;
        self.tokens
            .saturating_add(elapsed.saturating_mul(u64::from(self.config.drain_rate)))
            .min(cap)
    }

    /// Brings the bucket up to date at `now`. A `now` in the past changes nothing.
    fn refill(&mut self, now: Time) {
        if now > self.refilled_at {
            self.tokens = self.tokens_at(now);
            self.refilled_at = now;
        }
    }

    /// Writes held, waiting and in flight.
    pub fn depth(&self) -> usize {
        self.entries.len()
    }

    /// Whether no write is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The latest [`DEAD_LETTERS_KEPT`] writes that could not be applied, oldest first,
    /// each with its last error ([`QueueStats::dead_lettered`] counts them all).
    pub fn dead_letters(&self) -> &VecDeque<DeadLetter<W>> {
        &self.dead_letters
    }

    /// Counters since the queue was made, with the current depth.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            queued: self.entries.len() as u64,
            in_flight: self.in_flight as u64,
            ..self.stats
        }
    }

    /// Checks that no write was lost: `accepted == applied + dead_lettered + queued`.
    pub fn check_conservation(&self) -> Result<(), String> {
        let s = self.stats();
        let accounted = s.applied + s.dead_lettered + s.queued;
        if s.accepted == accounted {
            Ok(())
        } else {
            Err(format!(
                "write conservation broken: accepted {} != applied {} + dead-lettered {} + queued {}",
                s.accepted, s.applied, s.dead_lettered, s.queued
            ))
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Takes the events emitted since the last call, oldest first.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, QueueEvent> {
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
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn queue(config: QueueConfig) -> WriteQueue<&'static str> {
        WriteQueue::new(config).unwrap()
    }

    /// Asserted after every step of every test.
    #[track_caller]
    fn ok<W>(q: &WriteQueue<W>) {
        q.check_conservation().unwrap();
        assert!(q.depth() <= q.config().capacity);
        assert!(q.in_flight() <= q.config().max_in_flight);
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(4821)
    }

    #[test]
    fn a_full_queue_rejects_with_its_depth_and_positions_count_from_one() {
        let mut q = queue(QueueConfig {
            capacity: 3,
            ..QueueConfig::default()
        });
        for (i, w) in ["a", "b", "c"].into_iter().enumerate() {
            assert_eq!(
                q.enqueue(w, 0),
                Enqueue::Accepted {
                    id: WriteId(i as u64),
                    position: i + 1
                }
            );
            ok(&q);
        }
        assert_eq!(q.enqueue("d", 5), Enqueue::Rejected { depth: 3 });
        ok(&q);
        // A write in flight still counts towards the depth.
        let id = q.poll_dispatch(6).unwrap().id;
        assert_eq!(q.enqueue("d", 6), Enqueue::Rejected { depth: 3 });
        q.on_applied(id, 7).unwrap();
        ok(&q);
        assert_eq!(
            q.enqueue("d", 8),
            Enqueue::Accepted {
                id: WriteId(3),
                position: 3
            }
        );
        ok(&q);
        let s = q.stats();
        assert_eq!((s.accepted, s.rejected, s.applied, s.queued), (4, 2, 1, 3));
        assert_eq!(s.max_depth, 3);
        let rejected: Vec<_> = q
            .drain_events()
            .filter(|e| matches!(e, QueueEvent::Rejected { .. }))
            .collect();
        assert_eq!(
            rejected,
            [
                QueueEvent::Rejected { at: 5, depth: 3 },
                QueueEvent::Rejected { at: 6, depth: 3 }
            ]
        );
    }

    #[test]
    fn the_drain_rate_bounds_dispatches_over_a_second() {
        let mut q = queue(QueueConfig {
            max_in_flight: 1000,
            ..QueueConfig::default()
        });
        for _ in 0..500 {
            q.enqueue("w", 0);
        }
        let mut dispatched = 0;
        let mut t = 0;
        while t <= SECOND {
            while let Some(d) = q.poll_dispatch(t) {
                let id = d.id;
                dispatched += 1;
                q.on_applied(id, t).unwrap();
                ok(&q);
            }
            t += MILLISECOND;
        }
        // A full bucket of 10, then 50 refilled over the second, not one more.
        assert_eq!(dispatched, DEFAULT_DRAIN_RATE + DEFAULT_BURST);
        // The next token is 20 ms (1/50 s) after the last one was taken.
        assert_eq!(q.poll_timeout(SECOND), Some(SECOND + 20 * MILLISECOND));
        assert!(q.poll_dispatch(SECOND + 20 * MILLISECOND - 1).is_none());
        assert!(q.poll_dispatch(SECOND + 20 * MILLISECOND).is_some());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = QueueConfig {
            backoff_base: 100 * MILLISECOND,
            backoff_max: SECOND,
            jitter: 0.0,
            ..QueueConfig::default()
        };
        let ceilings: Vec<_> = (1..=6).map(|n| config.backoff_ceiling(n)).collect();
        assert_eq!(
            ceilings,
            [100, 200, 400, 800, 1000, 1000].map(|ms| ms * MILLISECOND)
        );
        assert_eq!(config.backoff_ceiling(200), SECOND);
        let mut r = rng();
        assert_eq!(config.backoff(3, &mut r), 400 * MILLISECOND);
    }

    #[test]
    fn jittered_backoff_stays_in_bounds_and_is_deterministic_per_seed() {
        let config = QueueConfig::default();
        let draws = |seed| {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            (1..=12)
                .map(|n| config.backoff(n, &mut r))
                .collect::<Vec<_>>()
        };
        let a = draws(1);
        for (n, &d) in (1..=12).zip(&a) {
            let ceiling = config.backoff_ceiling(n);
            let floor = (ceiling as f64 * (1.0 - config.jitter)) as Span;
            assert!((floor..=ceiling).contains(&d), "attempt {n}: {d}");
        }
        assert!(a.iter().all(|&d| d <= DEFAULT_BACKOFF_MAX));
        assert_eq!(a, draws(1));
        assert_ne!(a, draws(2));
        // Jitter actually moves values (not all at the ceiling).
        assert!((1..=12)
            .zip(&a)
            .any(|(n, &d)| d < config.backoff_ceiling(n)));
    }

    #[test]
    fn retries_follow_the_backoff_then_the_write_is_dead_lettered() {
        let mut q = queue(QueueConfig {
            max_attempts: 3,
            jitter: 0.0,
            ..QueueConfig::default()
        });
        let mut r = rng();
        q.enqueue("poison", 0);
        ok(&q);
        let mut t = 0;
        let mut outcomes = Vec::new();
        for attempt in 1..=3 {
            let d = q.poll_dispatch(t).unwrap();
            assert_eq!(d.attempt, attempt);
            assert_eq!(*d.write, "poison");
            let id = d.id;
            ok(&q);
            let outcome = q.on_failed(id, "timeout", t, &mut r).unwrap();
            ok(&q);
            outcomes.push(outcome);
            if let FailOutcome::Retry { at } = outcome {
                assert_eq!(q.poll_timeout(t), Some(at));
                t = at;
            }
        }
        assert_eq!(
            outcomes,
            [
                FailOutcome::Retry {
                    at: 100 * MILLISECOND
                },
                FailOutcome::Retry {
                    at: 300 * MILLISECOND
                },
                FailOutcome::DeadLettered,
            ]
        );
        assert!(q.is_empty());
        assert_eq!(q.poll_timeout(t), None);
        let dead = &q.dead_letters()[0];
        assert_eq!(
            (
                dead.id,
                dead.write,
                dead.attempts,
                dead.last_error.as_str(),
                dead.at
            ),
            (WriteId(0), "poison", 3, "timeout", 300 * MILLISECOND)
        );
        let s = q.stats();
        assert_eq!((s.dispatched, s.retries, s.dead_lettered), (3, 2, 1));
        let events: Vec<_> = q.drain_events().collect();
        assert_eq!(
            events[1..3],
            [
                QueueEvent::Dispatched {
                    at: 0,
                    id: WriteId(0),
                    attempt: 1
                },
                QueueEvent::RetryScheduled {
                    at: 0,
                    id: WriteId(0),
                    attempt: 2,
                    retry_at: 100 * MILLISECOND
                },
            ]
        );
        assert_eq!(
            events.last(),
            Some(&QueueEvent::DeadLettered {
                at: 300 * MILLISECOND,
                id: WriteId(0),
                attempts: 3
            })
        );
    }

    #[test]
    fn a_rejected_write_is_dead_lettered_at_once_without_retries() {
        let mut q = queue(QueueConfig::default());
        q.enqueue("too much", 0);
        q.enqueue("next", 0);
        let id = q.poll_dispatch(0).unwrap().id;
        assert!(q.on_rejected(id, "store is full", 5));
        ok(&q);
        // Not in flight any more: a second report changes nothing.
        assert!(!q.on_rejected(id, "store is full", 6));
        assert!(!q.on_rejected(WriteId(99), "store is full", 6));
        assert_eq!(q.front(), Some(&"next"));
        let dead = &q.dead_letters()[0];
        assert_eq!(
            (dead.id, dead.write, dead.attempts, dead.last_error.as_str()),
            (id, "too much", 1, "store is full")
        );
        let s = q.stats();
        assert_eq!((s.dispatched, s.retries, s.dead_lettered), (1, 0, 1));
        assert_eq!(
            q.drain_events().next_back(),
            Some(QueueEvent::DeadLettered {
                at: 5,
                id,
                attempts: 1
            })
        );
        // The write behind it goes next, at once.
        assert_eq!(q.poll_dispatch(5).map(|d| *d.write), Some("next"));
    }

    #[test]
    fn only_the_latest_dead_letters_are_kept_and_every_one_is_counted() {
        let mut q = queue(QueueConfig {
            drain_rate: 1_000_000,
            burst: 1_000_000,
            ..QueueConfig::default()
        });
        let total = DEAD_LETTERS_KEPT + 10;
        for _ in 0..total {
            q.enqueue("w", 0);
            let id = q.poll_dispatch(0).unwrap().id;
            q.on_rejected(id, "full", 0);
        }
        ok(&q);
        assert_eq!(q.stats().dead_lettered, total as u64);
        assert_eq!(q.dead_letters().len(), DEAD_LETTERS_KEPT);
        assert_eq!(q.dead_letters()[0].id, WriteId(10));
        assert_eq!(
            q.dead_letters().back().map(|d| d.id),
            Some(WriteId(total as u64 - 1))
        );
    }

    #[test]
    fn with_one_in_flight_the_head_is_retried_before_anything_behind_it() {
        let mut q = queue(QueueConfig::default());
        let mut r = rng();
        for w in ["a", "b", "c"] {
            q.enqueue(w, 0);
        }
        let a = q.poll_dispatch(0).unwrap().id;
        // Only one in flight.
        assert!(q.poll_dispatch(0).is_none());
        assert_eq!(q.poll_timeout(0), None);
        let Some(FailOutcome::Retry { at }) = q.on_failed(a, "503", 0, &mut r) else {
            panic!("expected a retry");
        };
        ok(&q);
        // During the backoff `b` is not dispatched in its place.
        assert!(q.poll_dispatch(at - 1).is_none());
        let mut applied = Vec::new();
        let mut t = at;
        while !q.is_empty() {
            let d = q.poll_dispatch(t).unwrap();
            let id = d.id;
            applied.push(q.on_applied(id, t).unwrap());
            ok(&q);
            t += SECOND;
        }
        assert_eq!(applied, ["a", "b", "c"]);
    }

    #[test]
    fn with_more_in_flight_dispatch_is_fifo_and_a_retry_can_reorder() {
        let mut q = queue(QueueConfig {
            max_in_flight: 2,
            jitter: 0.0,
            ..QueueConfig::default()
        });
        let mut r = rng();
        for w in ["a", "b", "c"] {
            q.enqueue(w, 0);
        }
        let a = q.poll_dispatch(0).unwrap().id;
        let b = q.poll_dispatch(0).unwrap().id;
        assert_eq!((a, b), (WriteId(0), WriteId(1)));
        assert!(q.poll_dispatch(0).is_none());
        q.on_failed(a, "503", 0, &mut r).unwrap();
        assert_eq!(q.on_applied(b, 1), Some("b"));
        ok(&q);
        // `a` is backing off and holds back `c` (never overtaken on dispatch).
        assert!(q.poll_dispatch(2).is_none());
        assert_eq!(q.poll_timeout(2), Some(100 * MILLISECOND));
        let d = q.poll_dispatch(100 * MILLISECOND).unwrap();
        assert_eq!((d.id, d.attempt), (a, 2));
        assert_eq!(q.poll_dispatch(100 * MILLISECOND).unwrap().id, WriteId(2));
        ok(&q);
    }

    #[test]
    fn results_for_unknown_or_idle_writes_are_ignored() {
        let mut q = queue(QueueConfig::default());
        let mut r = rng();
        let before = r.clone();
        assert_eq!(q.on_applied(WriteId(99), 0), None);
        assert_eq!(q.on_failed(WriteId(99), "x", 0, &mut r), None);
        q.enqueue("a", 0);
        q.enqueue("b", 0);
        // Waiting, not in flight: ignored.
        assert_eq!(q.on_applied(WriteId(1), 0), None);
        let a = q.poll_dispatch(0).unwrap().id;
        q.on_failed(a, "timeout", 0, &mut r).unwrap();
        // A late success for the failed attempt is ignored: the write will be retried.
        assert_eq!(q.on_applied(a, 1), None);
        let a2 = q.poll_dispatch(SECOND).unwrap().id;
        assert_eq!(q.on_applied(a2, SECOND), Some("a"));
        // A duplicate result after completion is ignored too.
        assert_eq!(q.on_applied(a2, SECOND), None);
        assert_eq!(q.on_failed(a2, "x", SECOND, &mut r), None);
        ok(&q);
        assert_eq!(q.stats().applied, 1);
        assert_eq!(q.depth(), 1);
        // Ignored failures drew nothing from the rng: only the one real retry did.
        let mut expected = before;
        let _: f64 = expected.random();
        assert_eq!(r, expected);
    }

    #[test]
    fn applied_reports_the_wait_and_attempts() {
        let mut q = queue(QueueConfig::default());
        let mut r = rng();
        q.enqueue("a", 5 * SECOND);
        let id = q.poll_dispatch(6 * SECOND).unwrap().id;
        q.on_failed(id, "x", 6 * SECOND, &mut r).unwrap();
        q.poll_dispatch(7 * SECOND).unwrap();
        q.on_applied(id, 8 * SECOND).unwrap();
        let events: Vec<_> = q.drain_events().collect();
        let last = *events.last().unwrap();
        assert_eq!(
            last,
            QueueEvent::Applied {
                at: 8 * SECOND,
                id,
                attempts: 2,
                waited: 3 * SECOND
            }
        );
        assert_eq!(last.at(), 8 * SECOND);
        assert_eq!(
            serde_json::to_string(&last).unwrap(),
            r#"{"kind":"applied","at":8000000,"id":0,"attempts":2,"waited":3000000}"#
        );
    }

    #[test]
    fn time_going_backwards_does_not_panic_or_mint_tokens() {
        let mut q = queue(QueueConfig {
            burst: 1,
            drain_rate: 1,
            ..QueueConfig::default()
        });
        q.enqueue("a", 10 * SECOND);
        q.enqueue("b", 10 * SECOND);
        let a = q.poll_dispatch(10 * SECOND).unwrap().id;
        q.on_applied(a, 5 * SECOND).unwrap();
        assert!(q.poll_dispatch(SECOND).is_none());
        assert_eq!(q.poll_timeout(SECOND), Some(11 * SECOND));
        ok(&q);
    }

    #[test]
    fn invalid_configs_are_refused_with_the_field_and_reason() {
        let base = QueueConfig::default();
        let cases = [
            (
                QueueConfig {
                    capacity: 0,
                    ..base.clone()
                },
                "queue.capacity",
            ),
            (
                QueueConfig {
                    drain_rate: 0,
                    ..base.clone()
                },
                "queue.drain_rate",
            ),
            (
                QueueConfig {
                    burst: 0,
                    ..base.clone()
                },
                "queue.burst",
            ),
            (
                QueueConfig {
                    max_in_flight: 0,
                    ..base.clone()
                },
                "queue.max_in_flight",
            ),
            (
                QueueConfig {
                    max_attempts: 0,
                    ..base.clone()
                },
                "queue.max_attempts",
            ),
            (
                QueueConfig {
                    backoff_base: 0,
                    ..base.clone()
                },
                "queue.backoff_base",
            ),
            (
                QueueConfig {
                    backoff_max: DEFAULT_BACKOFF_BASE - 1,
                    ..base.clone()
                },
                "queue.backoff_max",
            ),
            (
                QueueConfig {
                    jitter: 1.5,
                    ..base.clone()
                },
                "queue.jitter",
            ),
            (
                QueueConfig {
                    jitter: f64::NAN,
                    ..base.clone()
                },
                "queue.jitter",
            ),
        ];
        for (config, field) in cases {
            let err = config.validate().unwrap_err();
            assert_eq!(err.field, field);
            assert!(!err.reason.is_empty() && !err.reason.ends_with('.'));
            assert!(WriteQueue::<()>::new(config).is_err());
        }
        assert_eq!(base.validate(), Ok(()));
        for jitter in [0.0, 1.0] {
            assert!(QueueConfig {
                jitter,
                ..base.clone()
            }
            .validate()
            .is_ok());
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::{BTreeMap, VecDeque};

    #[derive(Debug, Clone)]
    enum Op {
        Enqueue,
        Dispatch,
        /// Report success for the in-flight write chosen by this index.
        Applied(usize),
        /// Report failure for the in-flight write chosen by this index.
        Failed(usize),
        /// Report a result for an id that is not in flight.
        Stray(u64),
        Advance(Span),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Enqueue),
            4 => Just(Op::Dispatch),
            3 => any::<usize>().prop_map(Op::Applied),
            2 => any::<usize>().prop_map(Op::Failed),
            1 => (0..40u64).prop_map(Op::Stray),
            3 => (0..300 * MILLISECOND).prop_map(Op::Advance),
        ]
    }

    fn config() -> impl Strategy<Value = QueueConfig> {
        (
            1..8usize,
            1..4usize,
            1..4u32,
            1..200u32,
            1..4u32,
            0.0..=1.0f64,
        )
            .prop_map(
                |(capacity, max_in_flight, max_attempts, drain_rate, burst, jitter)| QueueConfig {
                    capacity,
                    drain_rate,
                    burst,
                    max_in_flight,
                    max_attempts,
                    backoff_base: 10 * MILLISECOND,
                    backoff_max: 50 * MILLISECOND,
                    jitter,
                    in_order: true,
                },
            )
    }

    proptest! {
        #[test]
        fn queue_matches_a_fifo_model_and_loses_nothing(
            config in config(),
            seed in any::<u64>(),
            ops in prop::collection::vec(op(), 1..120),
        ) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut q: WriteQueue<u64> = WriteQueue::new(config.clone()).unwrap();
            let strict = config.max_in_flight == 1;
            let mut now: Time = 0;
            // Model: ids held in enqueue order, ids in flight, attempts per id.
            let mut held: VecDeque<u64> = VecDeque::new();
            let mut flying: Vec<u64> = Vec::new();
            let mut attempts: BTreeMap<u64, u32> = BTreeMap::new();
            let mut retry_at: BTreeMap<u64, Time> = BTreeMap::new();
            let mut next_id = 0u64;
            let mut first_dispatches: Vec<u64> = Vec::new();
            let mut completed: Vec<u64> = Vec::new();
            let mut applied: Vec<u64> = Vec::new();

            for op in ops {
                match op {
                    Op::Enqueue => {
                        let full = held.len() == config.capacity;
                        match q.enqueue(next_id, now) {
                            Enqueue::Accepted { id, position } => {
                                prop_assert!(!full);
                                prop_assert_eq!(id, WriteId(next_id));
                                held.push_back(next_id);
                                prop_assert_eq!(position, held.len());
                                next_id += 1;
                            }
                            Enqueue::Rejected { depth } => {
                                prop_assert!(full);
                                prop_assert_eq!(depth, config.capacity);
                            }
                        }
                    }
                    Op::Dispatch => {
                        if let Some(d) = q.poll_dispatch(now) {
                            let id = d.id.0;
                            prop_assert_eq!(*d.write, id);
                            prop_assert!(!flying.contains(&id));
                            // Always the oldest write not in flight.
                            let oldest = held.iter().find(|i| !flying.contains(i)).copied();
                            prop_assert_eq!(Some(id), oldest);
                            // Never before the end of its backoff.
                            prop_assert!(now >= retry_at.get(&id).copied().unwrap_or(0));
                            let n = attempts.entry(id).or_insert(0);
                            *n += 1;
                            prop_assert_eq!(d.attempt, *n);
                            if *n == 1 {
                                first_dispatches.push(id);
                            }
                            flying.push(id);
                        } else if let Some(t) = q.poll_timeout(now) {
                            prop_assert!(t > now, "poll_timeout {} but nothing at {}", t, now);
                        }
                    }
                    Op::Applied(pick) if !flying.is_empty() => {
                        let id = flying.remove(pick % flying.len());
                        prop_assert_eq!(q.on_applied(WriteId(id), now), Some(id));
                        if strict {
                            prop_assert_eq!(held.front(), Some(&id));
                        }
                        held.retain(|&i| i != id);
                        completed.push(id);
                        applied.push(id);
                    }
                    Op::Failed(pick) if !flying.is_empty() => {
                        let id = flying.remove(pick % flying.len());
                        let outcome = q.on_failed(WriteId(id), "boom", now, &mut rng).unwrap();
                        if attempts[&id] >= config.max_attempts {
                            prop_assert_eq!(outcome, FailOutcome::DeadLettered);
                            if strict {
                                prop_assert_eq!(held.front(), Some(&id));
                            }
                            held.retain(|&i| i != id);
                            completed.push(id);
                        } else {
                            let FailOutcome::Retry { at } = outcome else {
                                return Err(TestCaseError::fail("expected a retry"));
                            };
                            let ceiling = config.backoff_ceiling(attempts[&id]);
                            prop_assert!(at <= now + ceiling);
                            prop_assert!(at >= now + (ceiling as f64 * (1.0 - config.jitter)) as Span);
                            retry_at.insert(id, at);
                        }
                    }
                    Op::Applied(_) | Op::Failed(_) => {}
                    Op::Stray(id) => {
                        if !flying.contains(&id) {
                            let before = q.stats();
                            prop_assert_eq!(q.on_applied(WriteId(id), now), None);
                            prop_assert_eq!(q.on_failed(WriteId(id), "late", now, &mut rng), None);
                            prop_assert_eq!(q.stats(), before);
                        }
                    }
                    Op::Advance(dt) => now += dt,
                }
                // Invariants after every step.
                prop_assert!(q.check_conservation().is_ok(), "{:?}", q.check_conservation());
                let s = q.stats();
                prop_assert_eq!(s.queued, held.len() as u64);
                prop_assert_eq!(s.in_flight, flying.len() as u64);
                prop_assert!(q.in_flight() <= config.max_in_flight);
                prop_assert!(q.depth() <= config.capacity);
                prop_assert!(s.max_depth <= config.capacity as u64);
            }

            // First attempts always start in enqueue order.
            prop_assert!(first_dispatches.windows(2).all(|w| w[0] < w[1]));
            if strict {
                // Strict order: writes complete, and so apply, in enqueue order.
                prop_assert!(completed.windows(2).all(|w| w[0] < w[1]));
                prop_assert!(applied.windows(2).all(|w| w[0] < w[1]));
            }

            // Drain everything with a healthy dependency: the queue empties and every
            // accepted write is applied or dead-lettered exactly once.
            for id in flying.drain(..) {
                q.on_applied(WriteId(id), now).unwrap();
                applied.push(id);
            }
            while !q.is_empty() {
                now = q.poll_timeout(now).expect("a non-empty idle queue has a timeout");
                let id = q.poll_dispatch(now).expect("poll_timeout promised a dispatch").id;
                q.on_applied(id, now).unwrap();
                applied.push(id.0);
                prop_assert!(q.check_conservation().is_ok());
            }
            let s = q.stats();
            prop_assert_eq!(s.applied + s.dead_lettered, s.accepted);
            prop_assert_eq!(s.applied as usize, applied.len());
            if strict {
                prop_assert!(applied.windows(2).all(|w| w[0] < w[1]));
            }
            let mut all: Vec<u64> = applied.clone();
            all.extend(q.dead_letters().iter().map(|d| d.id.0));
            all.sort_unstable();
            prop_assert_eq!(all, (0..next_id).collect::<Vec<_>>());
        }
    }
}
