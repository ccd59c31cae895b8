//! A bulkhead in front of one dependency: at most so many of its calls at once, an
//! optional bounded wait for a slot, and a refusal after that.
//!
//! Without one, a dependency that slows down holds every request that calls it for as
//! long as it takes, and a node with a limit on its own concurrency (see
//! [`admission`](super::admission)) fills with requests waiting on that one
//! dependency: the others starve, though nothing is wrong with theirs. A bulkhead
//! (resilience4j's semaphore bulkhead) bounds what one dependency may hold: a call past
//! `max_concurrent_calls` waits at most `max_wait` for a slot (none, by default), then
//! is refused, and the request takes its fallback at once instead of waiting.
//!
//! Whether a refusal counts as a failure for the dependency's breaker is a setting
//! (`counts_as_failure`, off by default): a full bulkhead says the node is busy with
//! the dependency, not that the dependency is failing, and counting it could trip a
//! breaker on a healthy but slow service (the question behind resilience4j issues
//! #920 and #1657).
//!
//! Generic over what waits (`T`): the node keeps the call it would have made.

use std::collections::VecDeque;

use serde::Serialize;

use super::{ConfigError, Span, Time, MAX_SPAN};

/// Calls in flight, when a file declares a bulkhead without saying.
pub const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 25;
/// Calls that may wait for a slot, when a file does not say (used only with a
/// `max_wait`).
pub const DEFAULT_MAX_WAITING: u32 = 100;

/// Most calls that may wait for a slot: a bound on memory, whatever the traffic.
pub const MAX_WAITING: u32 = 1_000_000;

/// A dependency's bulkhead, as a file declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkheadConfig {
    /// Calls in flight at once.
    pub max_concurrent_calls: u32,
    /// The longest a call waits for a slot (0: refused at once).
    pub max_wait: Span,
    /// Calls that may wait at once (beyond them, refused at once).
    pub max_waiting: u32,
    /// Whether a refusal counts as a failure for the breaker (else the breaker never
    /// hears of the call).
    pub counts_as_failure: bool,
}

impl BulkheadConfig {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent_calls == 0 {
            return Err(ConfigError::new(
                "max_concurrent_calls",
                "must be at least 1",
            ));
        }
        if self.max_wait > MAX_SPAN {
            return Err(ConfigError::new("max_wait", "must be at most 100 years"));
        }
        if self.max_waiting > MAX_WAITING {
            return Err(ConfigError::new(
                "max_waiting",
                format!("must be at most {MAX_WAITING}"),
            ));
        }
        Ok(())
    }
}

/// What became of a call at the bulkhead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<T> {
    /// It has a slot: make it, and [`Bulkhead::leave`] when it is answered.
    Enter(T),
    /// It waits for a slot; call [`Bulkhead::expire`] at `until`.
    Wait {
        /// When it is refused unless a slot came free first.
        until: Time,
    },
    /// Refused: no slot and no room to wait.
    Full(T),
}

/// Counts of what the bulkhead did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BulkheadStats {
    /// Calls that took a slot at once.
    pub entered: u64,
    /// Calls that took a slot after waiting.
    pub entered_after_wait: u64,
    /// Calls refused with no slot and no room to wait.
    pub rejected_full: u64,
    /// Calls refused after waiting `max_wait`.
    pub rejected_expired: u64,
    /// The most calls in flight at once.
    pub peak_in_flight: u32,
    /// The most calls waiting at once.
    pub peak_waiting: u32,
}

impl BulkheadStats {
    /// Every call refused.
    pub fn rejected(&self) -> u64 {
        self.rejected_full + self.rejected_expired
    }
}

/// A bulkhead's state: calls in flight and calls waiting for a slot.
pub struct Bulkhead<T> {
    config: BulkheadConfig,
    in_flight: u32,
    /// Oldest first; every call waits the same `max_wait`, so this is also the order
    /// in which waits end.
    waiting: VecDeque<(Time, T)>,
    stats: BulkheadStats,
    /// When the one expiry timer asked for falls due, if one is outstanding.
    armed: Option<Time>,
}

impl<T> Bulkhead<T> {
    /// A bulkhead configured by `config`.
    pub fn new(config: BulkheadConfig) -> Result<Bulkhead<T>, ConfigError> {
        config.validate()?;
        Ok(Bulkhead {
            config,
            in_flight: 0,
            waiting: VecDeque::new(),
            stats: BulkheadStats::default(),
            armed: None,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &BulkheadConfig {
        &self.config
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Calls waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// What it has done so far.
    pub fn stats(&self) -> BulkheadStats {
        self.stats
    }

    fn take_slot(&mut self) {
        self.in_flight += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight);
    }

    /// A call arrives at `now`.
    pub fn enter(&mut self, now: Time, call: T) -> Entry<T> {
        // Nobody waits while a slot is free: every `leave` hands its slot on.
        if self.in_flight < self.config.max_concurrent_calls {
            self.take_slot();
            self.stats.entered += 1;
            return Entry::Enter(call);
        }
        if self.config.max_wait == 0 || self.waiting.len() >= self.config.max_waiting as usize {
            self.stats.rejected_full += 1;
            return Entry::Full(call);
        }
        let until = now.saturating_add(self.config.max_wait);
        self.waiting.push_back((until, call));
        self.stats.peak_waiting = self.stats.peak_waiting.max(self.waiting.len() as u32);
        Entry::Wait { until }
    }

    /// A call that had a slot is answered: the slot goes to the oldest waiter, if
    /// one waits, which is returned to be made now.
    pub fn leave(&mut self) -> Option<T> {
        debug_assert!(self.in_flight > 0, "a leave without an entry");
        match self.waiting.pop_front() {
            Some((_, call)) => {
                self.stats.entered_after_wait += 1;
                Some(call)
            }
            None => {
                self.in_flight = self.in_flight.saturating_sub(1);
                None
            }
        }
    }

    /// The instant a timer is wanted for, if one is and none is armed: the oldest
    /// waiter's end. One timer at a time, re-armed by [`Bulkhead::expire`], so the
    /// timers outstanding do not grow with the traffic.
    pub fn arm_timer(&mut self) -> Option<Time> {
        if self.armed.is_some() {
            return None;
        }
        self.armed = self.next_expiry();
        self.armed
    }

    /// The earliest instant a waiter is refused, if any waits.
    pub fn next_expiry(&self) -> Option<Time> {
        self.waiting.front().map(|w| w.0)
    }

    /// Refuses every waiter whose wait ended at or before `now`, oldest first.
    pub fn expire(&mut self, now: Time, refused: &mut Vec<T>) {
        if self.armed.is_some_and(|at| at <= now) {
            self.armed = None;
        }
        while self.waiting.front().is_some_and(|w| w.0 <= now) {
            let (_, call) = self.waiting.pop_front().expect("not empty");
            self.stats.rejected_expired += 1;
            refused.push(call);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: u32, max_wait: Span, max_waiting: u32) -> BulkheadConfig {
        BulkheadConfig {
            max_concurrent_calls: max,
            max_wait,
            max_waiting,
            counts_as_failure: false,
        }
    }

    #[test]
    fn calls_past_the_limit_are_refused_without_a_wait() {
        let mut b = Bulkhead::new(config(2, 0, 10)).unwrap();
        assert_eq!(b.enter(0, 1), Entry::Enter(1));
        assert_eq!(b.enter(0, 2), Entry::Enter(2));
        assert_eq!(b.enter(0, 3), Entry::Full(3));
        assert_eq!(b.leave(), None);
        assert_eq!(b.enter(1, 4), Entry::Enter(4));
        let s = b.stats();
        assert_eq!((s.entered, s.rejected_full, s.peak_in_flight), (3, 1, 2));
    }

    #[test]
    fn a_freed_slot_goes_to_the_oldest_waiter_and_waits_end_in_order() {
        let mut b = Bulkhead::new(config(1, 10, 2)).unwrap();
        assert_eq!(b.enter(0, "a"), Entry::Enter("a"));
        assert_eq!(b.enter(1, "b"), Entry::Wait { until: 11 });
        assert_eq!(b.enter(2, "c"), Entry::Wait { until: 12 });
        assert_eq!(
            b.enter(3, "d"),
            Entry::Full("d"),
            "room for two waiters only"
        );
        // "a" is answered: its slot passes to "b" without ever being free.
        assert_eq!(b.leave(), Some("b"));
        assert_eq!(b.in_flight(), 1);
        let mut refused = Vec::new();
        b.expire(11, &mut refused);
        assert!(refused.is_empty());
        b.expire(12, &mut refused);
        assert_eq!(refused, ["c"]);
        assert_eq!(b.leave(), None);
        assert_eq!(b.in_flight(), 0);
        let s = b.stats();
        assert_eq!(
            (s.entered_after_wait, s.rejected_expired, s.rejected_full),
            (1, 1, 1)
        );
        assert_eq!(s.peak_waiting, 2);
    }

    #[test]
    fn one_expiry_timer_at_a_time_whatever_the_waiters() {
        let mut b = Bulkhead::new(config(1, 10, 5)).unwrap();
        assert_eq!(b.enter(0, 0), Entry::Enter(0));
        assert_eq!(b.arm_timer(), None);
        for n in 1..=3 {
            assert_eq!(b.enter(n, n), Entry::Wait { until: n + 10 });
        }
        assert_eq!(b.arm_timer(), Some(11));
        assert_eq!(b.arm_timer(), None);
        // The oldest waiter gets a slot before its end: the timer still fires, finds
        // nobody due, and re-arms for the next.
        assert_eq!(b.leave(), Some(1));
        let mut refused = Vec::new();
        b.expire(11, &mut refused);
        assert!(refused.is_empty());
        assert_eq!(b.arm_timer(), Some(12));
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            Bulkhead::<()>::new(config(0, 0, 0)).err().unwrap().field,
            "max_concurrent_calls"
        );
        assert_eq!(
            Bulkhead::<()>::new(config(1, 0, MAX_WAITING + 1))
                .err()
                .unwrap()
                .field,
            "max_waiting"
        );
    }
}
