//! Admission control at the node: a limit on the requests it works on at once, room
//! kept for the upper tiers, a bounded wait for a slot, and shedding lowest tier first.
//!
//! A node that takes every request it is sent slows every request down when it is
//! overloaded, the critical ones with the rest. Admission control turns overload into
//! an explicit, cheap refusal of the requests that matter least:
//!
//! - **A concurrency limit** (`max_in_flight`): requests admitted and not yet answered.
//! - **Room kept for the upper tiers**, as criticality-based shedding does (the
//!   critical / important / optional tiers of an endpoint): the last
//!   `reserve_critical` slots are for critical requests only, and the
//!   `reserve_important` slots below them for important and critical ones. So an
//!   optional request is refused first, at `max_in_flight - reserve_critical -
//!   reserve_important` in flight, an important one next, and a critical one only at
//!   the limit itself.
//! - **A bounded wait** (`queue`, `max_wait`): a request that cannot be admitted may
//!   wait for a slot, at most `max_wait`. Slots go to the highest tier waiting first,
//!   in arrival order within a tier. When the wait queue is full, a newcomer of a
//!   higher tier takes the place of the newest waiter of the lowest tier below its own
//!   (that one is shed); otherwise the newcomer is shed.
//!
//! Together these give the guarantee the tests pin: a critical request is shed only
//! when no request of a lower tier is waiting and none could be admitted in its place.
//!
//! The admission state is generic over what waits (`T`): the node keeps the request
//! itself there, and starts it when [`Admission::release`] hands it back.

use std::collections::VecDeque;

use serde::Serialize;

use super::{ConfigError, Span, Time, MAX_SPAN};

/// How long a request waits for a slot, when requests may wait and the file does not say.
pub const DEFAULT_MAX_WAIT: Span = 100 * super::MILLISECOND;

/// Most requests a wait queue may hold: a bound on memory, whatever the traffic.
pub const MAX_QUEUE: u32 = 1_000_000;

/// How important an endpoint's requests are: what admission control sheds first, and
/// what a mode may disable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Shed last, never disabled by a mode (checkout, login).
    Critical,
    /// The default.
    #[default]
    Important,
    /// Shed first.
    Optional,
}

impl Tier {
    /// Every tier, highest first.
    pub const ALL: [Tier; 3] = [Tier::Critical, Tier::Important, Tier::Optional];

    /// `critical`, `important` or `optional`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Important => "important",
            Tier::Optional => "optional",
        }
    }

    /// Its place in [`Tier::ALL`]: 0 for critical, 2 for optional.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The node's admission control, as a file declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdmissionConfig {
    /// Requests the node works on at once.
    pub max_in_flight: u32,
    /// The last slots, which only critical requests may take.
    pub reserve_critical: u32,
    /// The slots below those, which optional requests may not take.
    pub reserve_important: u32,
    /// Requests that may wait for a slot (0: a request that cannot be admitted is shed
    /// at once).
    pub queue: u32,
    /// The longest a request waits for a slot before it is shed.
    pub max_wait: Span,
}

impl AdmissionConfig {
    /// Checks the limits are coherent: every tier has at least one slot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_in_flight == 0 {
            return Err(ConfigError::new("max_in_flight", "must be at least 1"));
        }
        let reserved = u64::from(self.reserve_critical) + u64::from(self.reserve_important);
        if reserved >= u64::from(self.max_in_flight) {
            return Err(ConfigError::new(
                "reserve_critical",
                format!(
                    "reserve_critical + reserve_important ({reserved}) must be less than \
                     max_in_flight ({}), so that optional requests have a slot",
                    self.max_in_flight
                ),
            ));
        }
        if self.queue > MAX_QUEUE {
            return Err(ConfigError::new(
                "queue",
                format!("must be at most {MAX_QUEUE}"),
            ));
        }
        if self.queue > 0 && self.max_wait == 0 {
            return Err(ConfigError::new(
                "max_wait",
                "must be greater than zero when requests may wait (queue > 0)",
            ));
        }
        if self.max_wait > MAX_SPAN {
            return Err(ConfigError::new("max_wait", "must be at most 100 years"));
        }
        Ok(())
    }

    /// The most requests of `tier` that may be in flight when one more is admitted.
    pub fn limit(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Critical => self.max_in_flight,
            Tier::Important => self.max_in_flight - self.reserve_critical,
            Tier::Optional => self.max_in_flight - self.reserve_critical - self.reserve_important,
        }
    }
}

/// Why a request was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShedReason {
    /// No slot for its tier and no room to wait.
    Full,
    /// It waited and a request of a higher tier took its place in the wait queue.
    Displaced,
    /// It waited `max_wait` and no slot came free.
    Expired,
}

impl ShedReason {
    /// `full`, `displaced` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::Full => "full",
            ShedReason::Displaced => "displaced",
            ShedReason::Expired => "expired",
        }
    }
}

/// A request shed by admission control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shed<T> {
    /// What was shed.
    pub item: T,
    /// Its tier.
    pub tier: Tier,
    /// Why.
    pub reason: ShedReason,
    /// How long it had waited.
    pub waited: Span,
}

/// What became of an arriving request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival<T> {
    /// Admitted: start it now, and [`Admission::release`] its slot when it is answered.
    Admitted(T),
    /// Waiting for a slot; call [`Admission::expire`] at `until`. Its place may have
    /// displaced a waiter of a lower tier, shed now.
    Waiting {
        /// When it is shed unless admitted first.
        until: Time,
        /// The waiter it displaced, if the wait queue was full.
        displaced: Option<Shed<T>>,
    },
    /// Shed at once.
    Shed(Shed<T>),
}

/// Counts of what admission control did, per tier (indexed by [`Tier::index`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AdmissionStats {
    /// Admitted at once.
    pub admitted: [u64; 3],
    /// Admitted after waiting for a slot.
    pub admitted_after_wait: [u64; 3],
    /// Shed with no slot and no room to wait.
    pub shed_full: [u64; 3],
    /// Shed from the wait queue for a higher tier's request.
    pub shed_displaced: [u64; 3],
    /// Shed after waiting `max_wait`.
    pub shed_expired: [u64; 3],
    /// The most requests in flight at once.
    pub peak_in_flight: u32,
    /// The most requests waiting at once.
    pub peak_waiting: u32,
}

impl AdmissionStats {
    /// Every request of `tier` shed, for whatever reason.
    pub fn shed(&self, tier: Tier) -> u64 {
        let i = tier.index();
        self.shed_full[i] + self.shed_displaced[i] + self.shed_expired[i]
    }
}

struct Waiter<T> {
    arrived: Time,
    until: Time,
    item: T,
}

/// The node's admission state: requests in flight and those waiting for a slot.
pub struct Admission<T> {
    config: AdmissionConfig,
    in_flight: u32,
    /// Per tier (by [`Tier::index`]), oldest first. Every waiter of a tier waits the
    /// same `max_wait`, so each queue is also in order of expiry.
    waiting: [VecDeque<Waiter<T>>; 3],
    stats: AdmissionStats,
    /// When the one expiry timer asked for falls due, if one is outstanding.
    armed: Option<Time>,
}

impl<T> Admission<T> {
    /// Admission control configured by `config`.
    pub fn new(config: AdmissionConfig) -> Result<Admission<T>, ConfigError> {
        config.validate()?;
        Ok(Admission {
            config,
            in_flight: 0,
            waiting: Default::default(),
            stats: AdmissionStats::default(),
            armed: None,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    /// Requests admitted and not yet released.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> u32 {
        self.waiting.iter().map(|q| q.len() as u32).sum()
    }

    /// Requests of `tier` waiting for a slot.
    pub fn waiting_in(&self, tier: Tier) -> usize {
        self.waiting[tier.index()].len()
    }

    /// What it has done so far.
    pub fn stats(&self) -> AdmissionStats {
        self.stats
    }

    /// Whether a request of `tier` may take a slot now.
    pub fn has_slot(&self, tier: Tier) -> bool {
        self.in_flight < self.config.limit(tier)
    }

    fn admit(&mut self) {
        self.in_flight += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight);
    }

    /// A request of `tier` arrives at `now`.
    pub fn arrive(&mut self, now: Time, tier: Tier, item: T) -> Arrival<T> {
        let i = tier.index();
        // Nobody of this tier or above waits while it has a slot: every release
        // admits waiters until the highest one waiting has none.
        if self.has_slot(tier) {
            self.admit();
            self.stats.admitted[i] += 1;
            return Arrival::Admitted(item);
        }
        let shed = |item, reason| Shed {
            item,
            tier,
            reason,
            waited: 0,
        };
        if self.config.queue == 0 {
            self.stats.shed_full[i] += 1;
            return Arrival::Shed(shed(item, ShedReason::Full));
        }
        let mut displaced = None;
        if self.waiting() >= self.config.queue {
            // The newest waiter of the lowest tier below this one gives up its place.
            let lower = (i + 1..3).rev().find(|&t| !self.waiting[t].is_empty());
            let Some(t) = lower else {
                self.stats.shed_full[i] += 1;
                return Arrival::Shed(shed(item, ShedReason::Full));
            };
            let w = self.waiting[t].pop_back().expect("not empty");
            self.stats.shed_displaced[t] += 1;
            displaced = Some(Shed {
                item: w.item,
                tier: Tier::ALL[t],
                reason: ShedReason::Displaced,
                waited: now.saturating_sub(w.arrived),
            });
        }
        let until = now.saturating_add(self.config.max_wait);
        self.waiting[i].push_back(Waiter {
            arrived: now,
            until,
            item,
        });
        self.stats.peak_waiting = self.stats.peak_waiting.max(self.waiting());
        Arrival::Waiting { until, displaced }
    }

    /// A request admitted earlier is answered at `now`: its slot goes to the highest
    /// tier waiting, as long as that tier has a slot. The requests admitted are pushed
    /// to `admitted`, in the order they are to start.
    pub fn release(&mut self, admitted: &mut Vec<T>) {
        debug_assert!(self.in_flight > 0, "a release without an admission");
        self.in_flight = self.in_flight.saturating_sub(1);
        self.admit_waiting(admitted);
    }

    fn admit_waiting(&mut self, admitted: &mut Vec<T>) {
        while let Some(t) = (0..3).find(|&t| !self.waiting[t].is_empty()) {
            if !self.has_slot(Tier::ALL[t]) {
                // A lower tier's limit is lower still: nobody else can go either.
                break;
            }
            // A waiter may be a little past its time: the live node fires its timers
            // by the real clock, so a slot can come free after a wait's end and before
            // its timer runs. It is admitted: it waited, and a slot is there.
            let w = self.waiting[t].pop_front().expect("not empty");
            self.admit();
            self.stats.admitted_after_wait[t] += 1;
            admitted.push(w.item);
        }
    }

    /// The instant a timer is wanted for, if one is and none is armed: the earliest
    /// waiter's end. One timer at a time, re-armed by [`Admission::expire`], so the
    /// timers outstanding do not grow with the traffic.
    pub fn arm_timer(&mut self) -> Option<Time> {
        if self.armed.is_some() {
            return None;
        }
        self.armed = self.next_expiry();
        self.armed
    }

    /// The earliest instant a waiter is shed, if any waits.
    pub fn next_expiry(&self) -> Option<Time> {
        self.waiting
            .iter()
            .filter_map(|q| q.front().map(|w| w.until))
            .min()
    }

    /// Sheds every waiter whose wait ended at or before `now`, pushing them to `shed`
    /// (highest tier first, oldest first within a tier).
    pub fn expire(&mut self, now: Time, shed: &mut Vec<Shed<T>>) {
        if self.armed.is_some_and(|at| at <= now) {
            self.armed = None;
        }
        for (t, queue) in self.waiting.iter_mut().enumerate() {
            while queue.front().is_some_and(|w| w.until <= now) {
                let w = queue.pop_front().expect("not empty");
                self.stats.shed_expired[t] += 1;
                shed.push(Shed {
                    item: w.item,
                    tier: Tier::ALL[t],
                    reason: ShedReason::Expired,
                    waited: now.saturating_sub(w.arrived),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
