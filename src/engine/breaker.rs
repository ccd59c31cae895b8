//! The circuit breaker: a sans-IO closed / open / half-open state machine per dependency.
//!
//! Why a breaker: when a dependency is failing, every call that still goes to it costs the
//! caller a timeout and costs the dependency load it cannot serve, which slows its recovery.
//! The breaker notices the failures (by one of several [`TripPolicy`]s), refuses calls for a
//! while ([`BreakerState::Open`]) so the caller degrades at once (stale cache, queued write)
//! instead of waiting, and then lets a bounded number of probes through
//! ([`BreakerState::HalfOpen`]) to find out whether the dependency is back, so that recovery is
//! detected without a thundering herd. It is sans-IO in the quinn style: it never reads a clock
//! or creates randomness; `now` and the RNG are arguments, the next instant at which it would
//! change by itself is [`CircuitBreaker::poll_timeout`], and every transition is an event in an
//! outbox ([`CircuitBreaker::drain_events`]). The simulator and the live node therefore drive the
//! same code and, for the same inputs, get the same transitions.
//!
//! # Epochs: which results count
//!
//! Every transition (and every manual operation) starts a new *epoch*, and every [`Permit`]
//! remembers the epoch it was issued in. A result is counted only if its permit belongs to the
//! current epoch. This decides the awkward cases in one rule:
//!
//! - a call that started while closed and finishes after the breaker opened is *late*: it does
//!   not trip the breaker again, a late failure while open is ignored, and a late success does
//!   not close it;
//! - a late result that arrives while half-open, from a call issued before the breaker opened,
//!   is not a probe result (it says nothing about the dependency *now*);
//! - a probe permit that is dropped and never reported keeps its probe slot until the
//!   half-open time limit ([`BreakerConfig::half_open_timeout`]) re-opens the breaker, so a lost
//!   probe can never wedge it in half-open.
//!
//! Ignored results are counted in [`BreakerStats::ignored_results`], nowhere else.
//!
//! # Example
//!
//! ```
//! use brownout::engine::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let mut breaker = CircuitBreaker::new(BreakerConfig::default()).unwrap();
//! for t in 0..5 {
//!     let permit = breaker.try_acquire(t, &mut rng).unwrap();
//!     breaker.on_failure(permit, t, &mut rng);
//! }
//! assert_eq!(breaker.state(), BreakerState::Open);
//! assert!(breaker.try_acquire(5, &mut rng).is_err());
//! assert_eq!(breaker.drain_events().count(), 1);
//! ```

use std::fmt;

use serde::Serialize;

use super::{ConfigError, Span, Time, SECOND};

/// Default number of consecutive failures that trips the breaker (the seed task's 5).
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Default time the breaker stays open after its first trip: long enough for a restarting
/// dependency to come back, short enough that a brief blip does not degrade for long.
pub const DEFAULT_OPEN_DURATION: Span = 10 * SECOND;
/// Default growth factor of the open duration per consecutive trip without a close in
/// between: a dependency that keeps failing its probes is probed less and less often.
pub const DEFAULT_OPEN_DURATION_MULTIPLIER: f64 = 2.0;
/// Default ceiling of the (un-jittered) open duration, so that a long outage is still probed
/// every couple of minutes and recovery is noticed.
pub const DEFAULT_MAX_OPEN_DURATION: Span = 120 * SECOND;
/// Default jitter of the open duration, as a fraction (±10%): breakers that tripped together
/// (one per node, same outage) then probe at different instants instead of all at once.
pub const DEFAULT_OPEN_DURATION_JITTER: f64 = 0.1;
/// Default number of probes admitted at once while half-open: one, so a barely recovered
/// dependency is not hit by a stampede.
pub const DEFAULT_HALF_OPEN_MAX_PROBES: u32 = 1;
/// Default number of probe successes that close the breaker.
pub const DEFAULT_HALF_OPEN_SUCCESSES: u32 = 1;
/// Default time a probe may stay outstanding before it is presumed lost and the breaker
/// re-opens. Longer than any sane call timeout to a dependency.
pub const DEFAULT_HALF_OPEN_TIMEOUT: Span = 5 * SECOND;

/// Largest count window accepted, in calls. The ring buffer is allocated once, at
/// construction; this keeps a typo from allocating gigabytes.
pub const MAX_WINDOW_CALLS: u32 = 1 << 20;
/// Largest number of buckets a time window may have. Buckets are allocated at construction
/// and, after a long quiet spell, cleared one by one; this bounds both.
pub const MAX_WINDOW_BUCKETS: u64 = 10_000;
/// Largest `half_open_max_probes` accepted. The probe table is allocated at construction and
/// scanned linearly, and a "half-open" state that admits thousands of calls is not one.
pub const MAX_HALF_OPEN_PROBES: u32 = 1_024;

/// Failure rates are compared in parts per million, in integers, so that the decision does
/// not depend on float rounding of `failures / calls`.
const PPM: u64 = 1_000_000;

/// The three states of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through; results are watched by the trip policy.
    Closed,
    /// Calls are refused until the open duration has elapsed (or forever, if forced).
    Open,
    /// A bounded number of probe calls go through to test the dependency.
    HalfOpen,
}

impl BreakerState {
    /// The state's name as it appears in replies and traces: "closed", "open", "half_open".
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A manual override of the automatic behaviour, set by an operator (or a scenario script).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerOverride {
    /// Held open: every call is refused, timers do not run.
    ForcedOpen,
    /// Held closed: every call is admitted; results are counted in the stats but never trip.
    ForcedClosed,
    /// Out of the way: every call is admitted and results are not recorded at all.
    Disabled,
}

impl BreakerOverride {
    /// The override's name: "forced_open", "forced_closed", "disabled".
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerOverride::ForcedOpen => "forced_open",
            BreakerOverride::ForcedClosed => "forced_closed",
            BreakerOverride::Disabled => "disabled",
        }
    }
}

/// When the closed breaker trips.
///
/// Only a failure (or a slow call) can trip the breaker, never a success: the event then
/// names the call that tipped it, and a success arriving while old successes expire from a
/// time window does not open the breaker on a good result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TripPolicy {
    /// Trip after `failure_threshold` failures in a row; any success resets the run.
    /// Simple and predictable; the seed task's policy.
    ConsecutiveFailures {
        /// Failures in a row that trip the breaker (at least 1).
        failure_threshold: u32,
    },
    /// Trip when, over the last `window_calls` results, at least `min_calls` were recorded and
    /// the fraction of failures is at least `failure_rate`. Tolerates sporadic errors that a
    /// consecutive policy would still trip on under high traffic.
    CountWindow {
        /// How many of the most recent results are considered (1..=[`MAX_WINDOW_CALLS`]).
        window_calls: u32,
        /// Results needed in the window before the rate is trusted (1..=`window_calls`).
        min_calls: u32,
        /// Failure fraction that trips, in (0, 1].
        failure_rate: f64,
    },
    /// Trip when, over the last `window` of time, at least `min_calls` results were recorded
    /// and the fraction of failures is at least `failure_rate`. Results are kept in fixed
    /// buckets of `bucket` each, keyed by the instant the result was reported; the window is
    /// the current bucket and the `window / bucket - 1` before it, so a result stops counting
    /// between `window - bucket` and `window` after it was reported. Unlike a count window,
    /// old failures expire on their own under low traffic.
    TimeWindow {
        /// Span of the window (a whole multiple of `bucket`).
        window: Span,
        /// Granularity of expiry; `window / bucket` at most [`MAX_WINDOW_BUCKETS`].
        bucket: Span,
        /// Results needed in the window before the rate is trusted (at least 1).
        min_calls: u32,
        /// Failure fraction that trips, in (0, 1].
        failure_rate: f64,
    },
}

impl Default for TripPolicy {
    fn default() -> Self {
        TripPolicy::ConsecutiveFailures {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
        }
    }
}

/// Configuration of a [`CircuitBreaker`]. Defaults are the `DEFAULT_*` constants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerConfig {
    /// When the closed breaker trips.
    pub trip_policy: TripPolicy,
    /// A success that took at least this long (report time minus permit start) counts as a
    /// failure; `None` (the default) disables slow-call detection.
    pub slow_call_threshold: Option<Span>,
    /// Open duration after a trip from closed (before jitter).
    pub open_duration: Span,
    /// Growth factor of the open duration for each further trip before the breaker closes
    /// again (at least 1; 1 means a fixed open duration).
    pub open_duration_multiplier: f64,
    /// Ceiling of every open duration, applied after the growth and after the jitter, so
    /// that no open spell is longer (at least `open_duration`).
    pub max_open_duration: Span,
    /// Jitter of each open duration as a fraction in [0, 1): the duration is drawn uniformly
    /// from `d * (1 - jitter) .. d * (1 + jitter)`, then cut at `max_open_duration`. With 0
    /// no randomness is drawn at all.
    pub open_duration_jitter: f64,
    /// Probes admitted at the same time while half-open (1..=[`MAX_HALF_OPEN_PROBES`]).
    pub half_open_max_probes: u32,
    /// Probe successes that close the breaker (at least 1). May exceed
    /// `half_open_max_probes`: a probe slot is reused once its probe reports.
    pub half_open_successes: u32,
    /// How long a probe may stay outstanding before it is presumed lost and the breaker
    /// re-opens (reason [`BreakerReason::ProbeTimeout`]).
    pub half_open_timeout: Span,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            trip_policy: TripPolicy::default(),
            slow_call_threshold: None,
            open_duration: DEFAULT_OPEN_DURATION,
            open_duration_multiplier: DEFAULT_OPEN_DURATION_MULTIPLIER,
            max_open_duration: DEFAULT_MAX_OPEN_DURATION,
            open_duration_jitter: DEFAULT_OPEN_DURATION_JITTER,
            half_open_max_probes: DEFAULT_HALF_OPEN_MAX_PROBES,
            half_open_successes: DEFAULT_HALF_OPEN_SUCCESSES,
            half_open_timeout: DEFAULT_HALF_OPEN_TIMEOUT,
        }
    }
}

/// Checks a failure rate is in (0, 1]; NaN is refused too.
fn validate_rate(rate: f64) -> Result<(), ConfigError> {
    if rate > 0.0 && rate <= 1.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            "breaker.trip_policy.failure_rate",
            format!("must be in (0, 1], got {rate}"),
        ))
    }
}

impl BreakerConfig {
    /// Refuses values with which the breaker could not work as documented.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.trip_policy {
            TripPolicy::ConsecutiveFailures { failure_threshold } => {
                if failure_threshold == 0 {
                    return Err(ConfigError::new(
                        "breaker.trip_policy.failure_threshold",
                        "must be at least 1",
                    ));
                }
            }
            TripPolicy::CountWindow {
                window_calls,
                min_calls,
                failure_rate,
            } => {
                if window_calls == 0 || window_calls > MAX_WINDOW_CALLS {
                    return Err(ConfigError::new(
                        "breaker.trip_policy.window_calls",
                        format!("must be in 1..={MAX_WINDOW_CALLS}, got {window_calls}"),
                    ));
                }
                if min_calls == 0 {
                    return Err(ConfigError::new(
                        "breaker.trip_policy.min_calls",
                        "must be at least 1",
                    ));
                }
                if min_calls > window_calls {
                    return Err(ConfigError::new(
                        "breaker.trip_policy.min_calls",
                        format!(
                            "{min_calls} can never be reached in a window of {window_calls} calls"
                        ),
                    ));
                }
                validate_rate(failure_rate)?;
            }
            TripPolicy::TimeWindow {
                window,
                bucket,
                min_calls,
                failure_rate,
            } => {
                if window == 0 {
                    return Err(ConfigError::new(
                        "breaker.trip_policy.window",
                        "must be longer than zero",
                    ));
                }
                if bucket == 0 {
                    return Err(ConfigError::new(
                        "breaker.trip_policy.bucket",
                        "must be longer than zero",
                    ));
                }
                if window % bucket != 0 {
                    return Err(ConfigError::new(
                        "breaker.trip_policy.window",
                        format!(
                            "must be a whole multiple of the bucket ({bucket}us), got {window}us"
                        ),
                    ));
                }
                if window / bucket > MAX_WINDOW_BUCKETS {
                    return Err(ConfigError::new(
                        "breaker.trip_policy.bucket",
                        format!(
                            "too small: the window would need {} buckets, at most {MAX_WINDOW_BUCKETS}",
                            window / bucket
                        ),
                    ));
                }
                if min_calls == 0 {
                    return Err(ConfigError::new(
                        "breaker.trip_policy.min_calls",
                        "must be at least 1",
                    ));
                }
                validate_rate(failure_rate)?;
            }
        }
        if self.slow_call_threshold == Some(0) {
            return Err(ConfigError::new(
                "breaker.slow_call_threshold",
                "must be longer than zero (every call would be slow)",
            ));
        }
        if self.open_duration == 0 {
            return Err(ConfigError::new(
                "breaker.open_duration",
                "must be longer than zero",
            ));
        }
        let multiplier = self.open_duration_multiplier;
        if !multiplier.is_finite() || multiplier < 1.0 {
            return Err(ConfigError::new(
                "breaker.open_duration_multiplier",
                format!(
                    "must be a finite number of at least 1, got {}",
                    self.open_duration_multiplier
                ),
            ));
        }
        if self.max_open_duration < self.open_duration {
            return Err(ConfigError::new(
                "breaker.max_open_duration",
                format!(
                    "must be at least open_duration ({}us), got {}us",
                    self.open_duration, self.max_open_duration
                ),
            ));
        }
        // `contains` is false for NaN, so NaN is refused too.
        if !(0.0..1.0).contains(&self.open_duration_jitter) {
            return Err(ConfigError::new(
                "breaker.open_duration_jitter",
                format!("must be in [0, 1), got {}", self.open_duration_jitter),
            ));
        }
        if self.half_open_max_probes == 0 || self.half_open_max_probes > MAX_HALF_OPEN_PROBES {
            return Err(ConfigError::new(
                "breaker.half_open_max_probes",
                format!(
                    "must be in 1..={MAX_HALF_OPEN_PROBES}, got {}",
                    self.half_open_max_probes
                ),
            ));
        }
        if self.half_open_successes == 0 {
            return Err(ConfigError::new(
                "breaker.half_open_successes",
                "must be at least 1",
            ));
        }
        if self.half_open_timeout == 0 {
            return Err(ConfigError::new(
                "breaker.half_open_timeout",
                "must be longer than zero",
            ));
        }
        Ok(())
    }
}

/// A manual operation, as named in [`BreakerReason::Manual`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManualOp {
    /// [`CircuitBreaker::force_open`].
    ForceOpen,
    /// [`CircuitBreaker::force_closed`].
    ForceClosed,
    /// [`CircuitBreaker::disable`].
    Disable,
    /// [`CircuitBreaker::clear_override`].
    ClearOverride,
    /// [`CircuitBreaker::reset`].
    Reset,
}

/// Why the breaker changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakerReason {
    /// Closed -> open: `count` failures in a row ([`TripPolicy::ConsecutiveFailures`]).
    ConsecutiveFailures {
        /// Failures in the run that tripped it.
        count: u32,
    },
    /// Closed -> open: the failure rate of a count or time window reached the threshold.
    FailureRate {
        /// Failures in the window.
        failures: u64,
        /// Results in the window.
        calls: u64,
    },
    /// Closed -> open, tipped by a slow call (counted as a failure); the figures are those of
    /// the policy, with slow calls among the failures (for the consecutive policy,
    /// `failures == calls ==` the run).
    SlowCalls {
        /// Failures (slow calls included) the policy saw.
        failures: u64,
        /// Results the policy saw.
        calls: u64,
    },
    /// Open -> half-open: the open duration elapsed.
    OpenElapsed,
    /// Half-open -> closed: enough probes succeeded.
    ProbeSucceeded {
        /// Probe successes in this half-open spell.
        successes: u32,
    },
    /// Half-open -> open: a probe failed (or was slow).
    ProbeFailed {
        /// The probe reported success but took at least the slow-call threshold.
        slow: bool,
    },
    /// Half-open -> open: a probe stayed outstanding for `half_open_timeout`.
    ProbeTimeout,
    /// An operator action.
    Manual {
        /// Which one.
        op: ManualOp,
    },
}

/// One transition of the breaker. Pushed exactly once per transition; nothing else is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerEvent {
    /// When the breaker changed (the `now` of the call that noticed it).
    pub at: Time,
    /// State before.
    pub from: BreakerState,
    /// State after (may equal `from` for a manual operation that only changes the override).
    pub to: BreakerState,
    /// Why.
    pub reason: BreakerReason,
    /// When `to` is open on a timer: the instant it becomes half-open. `None` otherwise,
    /// including when forced open (indefinitely).
    pub open_until: Option<Time>,
}

/// Counters since construction. Cheap to keep: plain integers bumped on the hot path, so
/// rejections are counted without an event each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BreakerStats {
    /// Permits handed out (probes included).
    pub admitted: u64,
    /// Permits handed out as half-open probes.
    pub probes: u64,
    /// Permits given back unused ([`CircuitBreaker::release`]).
    pub released: u64,
    /// Calls refused by [`CircuitBreaker::try_acquire`].
    pub rejected: u64,
    /// Results counted as successes.
    pub successes: u64,
    /// Results counted as failures (slow calls included).
    pub failures: u64,
    /// Successes counted as failures because they were slow (a subset of `failures`).
    pub slow_calls: u64,
    /// Results not counted: late (from an earlier epoch), reported twice, or reported while
    /// disabled.
    pub ignored_results: u64,
    /// Automatic transitions to open (from closed or half-open; not `force_open`).
    pub trips: u64,
    /// Re-opens because a probe timed out (a subset of `trips`).
    pub probe_timeouts: u64,
}

/// Leave to make one call, from [`CircuitBreaker::try_acquire`]; report it with
/// [`CircuitBreaker::on_success`] or [`CircuitBreaker::on_failure`].
///
/// A small `Copy` token: the breaker keeps no per-call state outside half-open, so a permit
/// that is never reported costs nothing in closed (and is handled by the half-open time limit
/// in half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permit {
    started: Time,
    epoch: u64,
    /// The probe's number within its half-open spell; `None` for an ordinary call.
    probe: Option<u32>,
}

impl Permit {
    /// The instant the call was admitted; slow-call detection measures from here.
    pub fn started(&self) -> Time {
        self.started
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }

    /// The epoch (count of transitions so far) the permit was issued in; its result counts
    /// only while the breaker is still in that epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// A call refused by [`CircuitBreaker::try_acquire`]. An outcome (degrade now), not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The breaker's state when it refused: open, or half-open with every probe slot taken.
    pub state: BreakerState,
    /// The instant the breaker will become half-open, if it is open on a timer.
    pub retry_at: Option<Time>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.retry_at) {
            (BreakerState::HalfOpen, _) => f.write_str("circuit half-open, probes in flight"),
            (_, Some(at)) => write!(f, "circuit open until {at}us"),
            (_, None) => f.write_str("circuit forced open"),
        }
    }
}

/// What became of a reported result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// It was counted (stats, and the policy or the probes unless forced closed).
    Counted,
    /// It was ignored: late, reported twice, or the breaker is disabled.
    Ignored,
}

/// The state with its data; [`BreakerState`] is its public face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    /// `until == None`: forced open, no timer.
    Open {
        until: Option<Time>,
    },
    /// Outstanding probes live in [`CircuitBreaker::probes`] (a preallocated table, so it is
    /// not moved in and out of this enum on each transition).
    HalfOpen {
        successes: u32,
        next_probe: u32,
    },
}

impl Phase {
    fn state(&self) -> BreakerState {
        match self {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// An outstanding half-open probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    id: u32,
    started: Time,
}

/// A trip decision of the closed-state policy: the figures for the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trip {
    failures: u64,
    calls: u64,
    consecutive: bool,
}

/// The closed-state bookkeeping of the trip policy. Fixed size after construction.
#[derive(Debug, Clone)]
enum Window {
    Consecutive {
        threshold: u32,
        run: u32,
    },
    Count {
        /// Ring of the last results, `true` = failure.
        ring: Box<[bool]>,
        /// Next slot to write.
        pos: usize,
        /// Slots written so far, up to `ring.len()`.
        filled: u64,
        failures: u64,
        min_calls: u64,
        rate_ppm: u64,
    },
    Time {
        /// `(calls, failures)` per bucket; bucket `i` (time `i * bucket ..`) lives at
        /// `i % len`.
        buckets: Box<[(u64, u64)]>,
        bucket: Span,
        /// Index of the newest bucket written (or cleared).
        head: u64,
        calls: u64,
        failures: u64,
        min_calls: u64,
        rate_ppm: u64,
    },
}

fn rate_ppm(rate: f64) -> u64 {
    // Validated in (0, 1], so this is in 1..=PPM (a tiny positive rate rounds up to 1 ppm).
    ((rate * PPM as f64).round() as u64).clamp(1, PPM)
}

fn rate_reached(failures: u64, calls: u64, min_calls: u64, rate_ppm: u64) -> bool {
    calls >= min_calls && failures.saturating_mul(PPM) >= rate_ppm.saturating_mul(calls)
}

impl Window {
    fn new(policy: &TripPolicy) -> Window {
        match *policy {
            TripPolicy::ConsecutiveFailures { failure_threshold } => Window::Consecutive {
                threshold: failure_threshold,
                run: 0,
            },
            TripPolicy::CountWindow {
                window_calls,
                min_calls,
                failure_rate,
            } => Window::Count {
                ring: vec![false; window_calls as usize].into_boxed_slice(),
                pos: 0,
                filled: 0,
                failures: 0,
                min_calls: u64::from(min_calls),
                rate_ppm: rate_ppm(failure_rate),
            },
            TripPolicy::TimeWindow {
                window,
                bucket,
                min_calls,
                failure_rate,
            } => Window::Time {
                buckets: vec![(0, 0); (window / bucket) as usize].into_boxed_slice(),
                bucket,
                head: 0,
                calls: 0,
                failures: 0,
                min_calls: u64::from(min_calls),
                rate_ppm: rate_ppm(failure_rate),
            },
        }
    }

    /// Forgets every result (on entering closed), without allocating.
    fn reset(&mut self) {
        match self {
            Window::Consecutive { run, .. } => *run = 0,
            Window::Count {
                ring,
                pos,
                filled,
                failures,
                ..
            } => {
                ring.fill(false);
                *pos = 0;
                *filled = 0;
                *failures = 0;
            }
            Window::Time {
                buckets,
                head,
                calls,
                failures,
                ..
            } => {
                buckets.fill((0, 0));
                *head = 0;
                *calls = 0;
                *failures = 0;
            }
        }
    }

    /// Records one result reported at `now`; returns the figures if it trips the breaker.
    fn record(&mut self, failed: bool, now: Time) -> Option<Trip> {
        match self {
            Window::Consecutive { threshold, run } => {
                if !failed {
                    *run = 0;
                    return None;
                }
                *run = run.saturating_add(1);
                (*run >= *threshold).then_some(Trip {
                    failures: u64::from(*run),
                    calls: u64::from(*run),
                    consecutive: true,
                })
            }
            Window::Count {
                ring,
                pos,
                filled,
                failures,
                min_calls,
                rate_ppm,
            } => {
                if *filled == ring.len() as u64 {
                    if ring[*pos] {
                        *failures -= 1;
                    }
                } else {
                    *filled += 1;
                }
                ring[*pos] = failed;
                *pos = if *pos + 1 == ring.len() { 0 } else { *pos + 1 };
                if !failed {
                    return None;
                }
                *failures += 1;
                rate_reached(*failures, *filled, *min_calls, *rate_ppm).then_some(Trip {
                    failures: *failures,
                    calls: *filled,
                    consecutive: false,
                })
            }
            Window::Time {
                buckets,
                bucket,
                head,
                calls,
                failures,
                min_calls,
                rate_ppm,
            } => {
                let len = buckets.len() as u64;
                // Time never goes backward for a well-behaved caller; if it does, the result
                // lands in the newest bucket rather than corrupting an expired one.
                let index = (now / *bucket).max(*head);
                if index - *head >= len {
                    buckets.fill((0, 0));
                    *calls = 0;
                    *failures = 0;
                } else {
                    for i in *head + 1..=index {
                        let slot = &mut buckets[(i % len) as usize];
                        *calls -= slot.0;
                        *failures -= slot.1;
                        *slot = (0, 0);
                    }
                }
                *head = index;
                let slot = &mut buckets[(index % len) as usize];
                slot.0 += 1;
                *calls += 1;
                if !failed {
                    return None;
                }
                slot.1 += 1;
                *failures += 1;
                rate_reached(*failures, *calls, *min_calls, *rate_ppm).then_some(Trip {
                    failures: *failures,
                    calls: *calls,
                    consecutive: false,
                })
            }
        }
    }
}

/// A circuit breaker for one dependency. See the [module docs](self) for the semantics.
///
/// Drive it with [`try_acquire`](Self::try_acquire) before each call and
/// [`on_success`](Self::on_success) / [`on_failure`](Self::on_failure) after; call
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout) if you want
/// timed transitions to happen on time even without traffic (otherwise `try_acquire` notices
/// them lazily); drain [`drain_events`](Self::drain_events) for the transitions.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    phase: Phase,
    overridden: Option<BreakerOverride>,
    /// Bumped on every transition; permits of other epochs are late.
    epoch: u64,
    window: Window,
    /// Outstanding probes while half-open; capacity `half_open_max_probes`, never grown.
    probes: Vec<Probe>,
    /// Un-jittered open duration of the next trip; grows per trip, back to base on close.
    next_open: Span,
    stats: BreakerStats,
    events: Vec<BreakerEvent>,
}

impl CircuitBreaker {
    /// A closed breaker with `config`, or the reason the config is refused.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(CircuitBreaker {
            phase: Phase::Closed,
            overridden: None,
            epoch: 0,
            window: Window::new(&config.trip_policy),
            probes: Vec::with_capacity(config.half_open_max_probes as usize),
            next_open: config.open_duration,
            stats: BreakerStats::default(),
            events: Vec::new(),
            config,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state, as of the last call that was given a `now`. An open breaker whose
    /// duration has elapsed still says open until [`handle_timeout`](Self::handle_timeout) or
    /// [`try_acquire`](Self::try_acquire) is called.
    pub fn state(&self) -> BreakerState {
        self.phase.state()
    }

    /// The manual override in effect, if any.
    pub fn overridden(&self) -> Option<BreakerOverride> {
        self.overridden
    }

    /// When open on a timer, the instant it becomes half-open.
    pub fn open_until(&self) -> Option<Time> {
        match self.phase {
            Phase::Open { until } => until,
            _ => None,
        }
    }

    /// Probes admitted and not yet reported (0 unless half-open).
    pub fn probes_in_flight(&self) -> usize {
        self.probes.len()
    }

    /// The current epoch: the number of transitions so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Counters since construction.
    pub fn stats(&self) -> BreakerStats {
        self.stats
    }

    /// Takes the transitions recorded since the last drain, oldest first.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, BreakerEvent> {
        self.events.drain(..)
    }

    /// Whether events are waiting to be drained (a cheap check before draining).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Whether [`CircuitBreaker::poll_timeout`] returns an instant. A closed breaker, the
    /// common case, answers without looking at its probes.
    #[inline]
    pub fn has_timeout(&self) -> bool {
        !matches!(self.phase, Phase::Closed) && self.poll_timeout().is_some()
    }

    /// The next instant at which the breaker changes by itself (open duration elapsing, a
    /// probe timing out), or `None` if it will not change without a call or a result.
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.phase {
            Phase::Closed => None,
            Phase::Open { until } => until,
            Phase::HalfOpen { .. } => self
                .probes
                .iter()
                .map(|p| p.started.saturating_add(self.config.half_open_timeout))
                .min(),
        }
    }

    /// Applies the timed transitions due at `now`: open -> half-open once `open_until` is
    /// reached, half-open -> open once a probe has been outstanding for `half_open_timeout`.
    /// Calling it early, late or repeatedly is harmless. `rng` draws the jitter of the open
    /// duration if a probe timeout re-opens the breaker.
    pub fn handle_timeout(&mut self, now: Time, rng: &mut impl rand::Rng) {
        if let Phase::Open { until: Some(until) } = self.phase {
            if now >= until {
                self.transition(
                    now,
                    Phase::HalfOpen {
                        successes: 0,
                        next_probe: 0,
                    },
                    BreakerReason::OpenElapsed,
                );
            }
        }
        // Entered half-open just now means no probes yet, so this cannot chain further.
        if let Phase::HalfOpen { .. } = self.phase {
            let timeout = self.config.half_open_timeout;
            if self
                .probes
                .iter()
                .any(|p| now >= p.started.saturating_add(timeout))
            {
                self.stats.probe_timeouts += 1;
                self.trip(now, BreakerReason::ProbeTimeout, rng);
            }
        }
    }

    /// Asks leave to call the dependency at `now`. Applies due timed transitions first (see
    /// [`handle_timeout`](Self::handle_timeout), which is why it takes the RNG), then admits
    /// the call if closed, as a probe if half-open with a free probe slot, and refuses it
    /// otherwise. A refusal only bumps [`BreakerStats::rejected`].
    pub fn try_acquire(&mut self, now: Time, rng: &mut impl rand::Rng) -> Result<Permit, Rejected> {
        if !matches!(self.phase, Phase::Closed) {
            self.handle_timeout(now, rng);
        }
        let probe = match &mut self.phase {
            Phase::Closed => None,
            Phase::Open { until } => {
                self.stats.rejected += 1;
                return Err(Rejected {
                    state: BreakerState::Open,
                    retry_at: *until,
                });
            }
            Phase::HalfOpen { next_probe, .. } => {
                if self.probes.len() >= self.config.half_open_max_probes as usize {
                    self.stats.rejected += 1;
                    return Err(Rejected {
                        state: BreakerState::HalfOpen,
                        retry_at: None,
                    });
                }
                let id = *next_probe;
                *next_probe = next_probe.wrapping_add(1);
                self.probes.push(Probe { id, started: now });
                self.stats.probes += 1;
                Some(id)
            }
        };
        self.stats.admitted += 1;
        Ok(Permit {
            started: now,
            epoch: self.epoch,
            probe,
        })
    }

    /// Reports that the call of `permit` succeeded at `now`. If a slow-call threshold is set
    /// and the call took at least that long, it counts as a failure instead. `rng` draws the
    /// open-duration jitter should this trip the breaker.
    pub fn on_success(&mut self, permit: Permit, now: Time, rng: &mut impl rand::Rng) -> Recorded {
        let slow = self
            .config
            .slow_call_threshold
            .is_some_and(|limit| now.saturating_sub(permit.started) >= limit);
        self.record(permit, now, rng, !slow, slow)
    }

    /// Reports that the call of `permit` failed at `now` (an error or a timeout). `rng` draws
    /// the open-duration jitter should this trip the breaker.
    pub fn on_failure(&mut self, permit: Permit, now: Time, rng: &mut impl rand::Rng) -> Recorded {
        self.record(permit, now, rng, false, false)
    }

    /// Gives back the permit of a call that was never made (a full bulkhead refused
    /// it): no outcome is counted, and a half-open probe's slot is free again.
    pub fn release(&mut self, permit: Permit) {
        if permit.epoch != self.epoch {
            return;
        }
        if let Some(i) = self.probes.iter().position(|p| Some(p.id) == permit.probe) {
            self.probes.swap_remove(i);
        }
        self.stats.released += 1;
    }

    /// Holds the breaker open until [`clear_override`](Self::clear_override) or
    /// [`reset`](Self::reset): every call is refused, no timer runs. Emits one event.
    pub fn force_open(&mut self, now: Time) {
        self.overridden = Some(BreakerOverride::ForcedOpen);
        self.transition(
            now,
            Phase::Open { until: None },
            BreakerReason::Manual {
                op: ManualOp::ForceOpen,
            },
        );
    }

    /// Holds the breaker closed: every call is admitted, results are counted in the stats
    /// but never trip it. Emits one event.
    pub fn force_closed(&mut self, now: Time) {
        self.overridden = Some(BreakerOverride::ForcedClosed);
        self.close(
            now,
            BreakerReason::Manual {
                op: ManualOp::ForceClosed,
            },
        );
    }

    /// Takes the breaker out of the way: it reports closed, admits every call and records no
    /// result. Emits one event.
    pub fn disable(&mut self, now: Time) {
        self.overridden = Some(BreakerOverride::Disabled);
        self.close(
            now,
            BreakerReason::Manual {
                op: ManualOp::Disable,
            },
        );
    }

    /// Ends a manual override and returns to automatic operation. From forced open the
    /// breaker goes to half-open, so the dependency is probed before it gets full traffic;
    /// from forced closed or disabled it goes to closed with an empty window. Emits one event;
    /// without an override there is nothing to clear and nothing happens.
    pub fn clear_override(&mut self, now: Time) {
        let reason = BreakerReason::Manual {
            op: ManualOp::ClearOverride,
        };
        match self.overridden.take() {
            None => {}
            Some(BreakerOverride::ForcedOpen) => self.transition(
                now,
                Phase::HalfOpen {
                    successes: 0,
                    next_probe: 0,
                },
                reason,
            ),
            Some(BreakerOverride::ForcedClosed | BreakerOverride::Disabled) => {
                self.close(now, reason)
            }
        }
    }

    /// Ends any override and starts afresh: closed, empty window, base open duration.
    /// Counters ([`stats`](Self::stats)) are kept. Emits one event.
    pub fn reset(&mut self, now: Time) {
        self.overridden = None;
        self.close(
            now,
            BreakerReason::Manual {
                op: ManualOp::Reset,
            },
        );
    }

    /// Common path of both results. `success` is what counts (a slow success is a failure).
    fn record(
        &mut self,
        permit: Permit,
        now: Time,
        rng: &mut impl rand::Rng,
        success: bool,
        slow: bool,
    ) -> Recorded {
        if permit.epoch != self.epoch || self.overridden == Some(BreakerOverride::Disabled) {
            self.stats.ignored_results += 1;
            return Recorded::Ignored;
        }
        match self.phase {
            Phase::Closed => {
                self.count(success, slow);
                if self.overridden.is_some() {
                    // Forced closed: counted, never trips.
                    return Recorded::Counted;
                }
                if let Some(trip) = self.window.record(!success, now) {
                    let reason = if slow {
                        BreakerReason::SlowCalls {
                            failures: trip.failures,
                            calls: trip.calls,
                        }
                    } else if trip.consecutive {
                        BreakerReason::ConsecutiveFailures {
                            count: trip.failures as u32,
                        }
                    } else {
                        BreakerReason::FailureRate {
                            failures: trip.failures,
                            calls: trip.calls,
                        }
                    };
                    self.trip(now, reason, rng);
                }
                Recorded::Counted
            }
            Phase::HalfOpen { successes, .. } => {
                // Every permit of a half-open epoch is a probe; one not in the table was
                // already reported (permits are `Copy`).
                let Some(i) = self.probes.iter().position(|p| Some(p.id) == permit.probe) else {
                    self.stats.ignored_results += 1;
                    return Recorded::Ignored;
                };
                self.probes.swap_remove(i);
                self.count(success, slow);
                if !success {
                    self.trip(now, BreakerReason::ProbeFailed { slow }, rng);
                } else if successes + 1 >= self.config.half_open_successes {
                    self.close(
                        now,
                        BreakerReason::ProbeSucceeded {
                            successes: successes + 1,
                        },
                    );
                } else if let Phase::HalfOpen { successes, .. } = &mut self.phase {
                    *successes += 1;
                }
                Recorded::Counted
            }
            Phase::Open { .. } => {
                // No permit is issued while open, so a current-epoch permit cannot get here;
                // treat it as late rather than trusting it.
                self.stats.ignored_results += 1;
                Recorded::Ignored
            }
        }
    }

    fn count(&mut self, success: bool, slow: bool) {
        if success {
            self.stats.successes += 1;
        } else {
            self.stats.failures += 1;
            if slow {
                self.stats.slow_calls += 1;
            }
        }
    }

    /// Automatic transition to open with the next (grown, jittered) open duration.
    fn trip(&mut self, now: Time, reason: BreakerReason, rng: &mut impl rand::Rng) {
        let nominal = self.next_open;
        let jitter = self.config.open_duration_jitter;
        let duration = if jitter > 0.0 {
            // Uniform in [1 - jitter, 1 + jitter). Not drawn at all without jitter, so that a
            // jitter-free breaker does not perturb the caller's random stream.
            let factor = 1.0 + jitter * (2.0 * rng.random::<f64>() - 1.0);
            ((nominal as f64 * factor).round() as Span).max(1)
        } else {
            nominal
        }
        // The ceiling is applied last, after the jitter: a maximum is a maximum.
        .min(self.config.max_open_duration);
        // Float growth, then an integer cap: `as` saturates, so a huge product is fine.
        self.next_open = ((nominal as f64 * self.config.open_duration_multiplier) as Span)
            .min(self.config.max_open_duration);
        self.stats.trips += 1;
        self.transition(
            now,
            Phase::Open {
                until: Some(now.saturating_add(duration)),
            },
            reason,
        );
    }

    /// Transition to closed with an empty window and the base open duration.
    fn close(&mut self, now: Time, reason: BreakerReason) {
        self.window.reset();
        self.next_open = self.config.open_duration;
        self.transition(now, Phase::Closed, reason);
    }

    /// The one place the phase changes: new epoch, probe table emptied, one event.
    fn transition(&mut self, now: Time, to: Phase, reason: BreakerReason) {
        let from = self.phase.state();
        self.phase = to;
        self.epoch += 1;
        self.probes.clear();
        let open_until = match to {
            Phase::Open { until } => until,
            _ => None,
        };
        self.events.push(BreakerEvent {
            at: now,
            from,
            to: to.state(),
            reason,
            open_until,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MILLISECOND;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(42)
    }

    /// Consecutive policy with `threshold`, no jitter, 1 s open, fixed duration.
    fn plain(threshold: u32) -> BreakerConfig {
        BreakerConfig {
            trip_policy: TripPolicy::ConsecutiveFailures {
                failure_threshold: threshold,
            },
            open_duration: SECOND,
            open_duration_multiplier: 1.0,
            max_open_duration: SECOND,
            open_duration_jitter: 0.0,
            ..BreakerConfig::default()
        }
    }

    fn fail(b: &mut CircuitBreaker, now: Time, rng: &mut ChaCha8Rng) -> Recorded {
        let p = b.try_acquire(now, rng).expect("admitted");
        b.on_failure(p, now, rng)
    }

    fn succeed(b: &mut CircuitBreaker, now: Time, rng: &mut ChaCha8Rng) -> Recorded {
        let p = b.try_acquire(now, rng).expect("admitted");
        b.on_success(p, now, rng)
    }

    fn events(b: &mut CircuitBreaker) -> Vec<BreakerEvent> {
        b.drain_events().collect()
    }

    /// Trips a `plain`-style breaker open at `now`.
    fn trip_open(b: &mut CircuitBreaker, now: Time, rng: &mut ChaCha8Rng) {
        while b.state() == BreakerState::Closed {
            fail(b, now, rng);
        }
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = BreakerConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c.trip_policy,
            TripPolicy::ConsecutiveFailures {
                failure_threshold: 5
            }
        );
        assert_eq!(c.half_open_max_probes, 1);
        assert_eq!(c.half_open_successes, 1);
    }

    #[test]
    fn seed_task_five_failures_open_it() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(BreakerConfig::default()).unwrap();
        for t in 0..4 {
            fail(&mut b, t, &mut rng);
            assert_eq!(b.state(), BreakerState::Closed, "after {} failures", t + 1);
        }
        assert!(events(&mut b).is_empty());
        fail(&mut b, 4, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
        let ev = events(&mut b);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].from, BreakerState::Closed);
        assert_eq!(ev[0].to, BreakerState::Open);
        assert_eq!(
            ev[0].reason,
            BreakerReason::ConsecutiveFailures { count: 5 }
        );
        assert_eq!(ev[0].at, 4);
        // Default jitter is ±10% of 10 s.
        let until = ev[0].open_until.unwrap();
        assert!(
            (4 + 9 * SECOND..=4 + 11 * SECOND).contains(&until),
            "{until}"
        );
        // The sixth call of `force_failures: 6` is refused, not counted.
        let r = b.try_acquire(5, &mut rng).unwrap_err();
        assert_eq!(r.state, BreakerState::Open);
        assert_eq!(r.retry_at, Some(until));
        assert_eq!(b.stats().rejected, 1);
        assert_eq!(b.stats().failures, 5);
        assert_eq!(b.stats().trips, 1);
    }

    #[test]
    fn success_resets_the_consecutive_count() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(plain(3)).unwrap();
        fail(&mut b, 0, &mut rng);
        fail(&mut b, 1, &mut rng);
        succeed(&mut b, 2, &mut rng);
        fail(&mut b, 3, &mut rng);
        fail(&mut b, 4, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&mut b, 5, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            events(&mut b)[0].reason,
            BreakerReason::ConsecutiveFailures { count: 3 }
        );
    }

    fn count_window(window_calls: u32, min_calls: u32, failure_rate: f64) -> BreakerConfig {
        BreakerConfig {
            trip_policy: TripPolicy::CountWindow {
                window_calls,
                min_calls,
                failure_rate,
            },
            ..plain(1)
        }
    }

    #[test]
    fn count_window_does_not_trip_below_min_calls() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(count_window(10, 5, 0.5)).unwrap();
        for t in 0..4 {
            fail(&mut b, t, &mut rng);
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "4 of 4 failed, but min is 5"
        );
        fail(&mut b, 4, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            events(&mut b)[0].reason,
            BreakerReason::FailureRate {
                failures: 5,
                calls: 5
            }
        );
    }

    #[test]
    fn count_window_trips_at_the_rate_and_forgets_old_calls() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(count_window(4, 4, 0.5)).unwrap();
        // F S S S: 1/4, closed.
        fail(&mut b, 0, &mut rng);
        for t in 1..4 {
            succeed(&mut b, t, &mut rng);
        }
        // Window S S S F: 1/4 (the first F fell out).
        fail(&mut b, 4, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed);
        // Window S S F F: 2/4 = 50%, trips.
        fail(&mut b, 5, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            events(&mut b)[0].reason,
            BreakerReason::FailureRate {
                failures: 2,
                calls: 4
            }
        );
    }

    #[test]
    fn count_window_below_rate_stays_closed() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(count_window(10, 10, 0.5)).unwrap();
        // Alternating F S for a long time: 50% would trip, so use F S S (33%).
        for t in 0..300 {
            if t % 3 == 0 {
                fail(&mut b, t, &mut rng);
            } else {
                succeed(&mut b, t, &mut rng);
            }
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.stats().failures, 100);
    }

    fn time_window(min_calls: u32, failure_rate: f64) -> BreakerConfig {
        BreakerConfig {
            trip_policy: TripPolicy::TimeWindow {
                window: 10 * SECOND,
                bucket: SECOND,
                min_calls,
                failure_rate,
            },
            ..plain(1)
        }
    }

    #[test]
    fn time_window_trips_at_rate_with_min_calls() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(time_window(4, 0.75)).unwrap();
        fail(&mut b, 0, &mut rng);
        fail(&mut b, SECOND, &mut rng);
        fail(&mut b, 2 * SECOND, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed, "3 calls < min 4");
        succeed(&mut b, 3 * SECOND, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed, "successes never trip");
        fail(&mut b, 4 * SECOND, &mut rng);
        assert_eq!(b.state(), BreakerState::Open, "4 of 5 = 80% >= 75%");
        assert_eq!(
            events(&mut b)[0].reason,
            BreakerReason::FailureRate {
                failures: 4,
                calls: 5
            }
        );
    }

    #[test]
    fn time_window_old_failures_expire() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(time_window(3, 1.0)).unwrap();
        fail(&mut b, 0, &mut rng);
        fail(&mut b, 500 * MILLISECOND, &mut rng);
        // Buckets 0..=9 are the window at t = 9.9 s; at 10 s bucket 0 has expired.
        fail(&mut b, 10 * SECOND, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed, "the first two expired");
        fail(&mut b, 11 * SECOND, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&mut b, 12 * SECOND, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            events(&mut b)[0].reason,
            BreakerReason::FailureRate {
                failures: 3,
                calls: 3
            }
        );
    }

    #[test]
    fn time_window_still_counts_inside_the_window_and_clears_after_a_gap() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(time_window(3, 1.0)).unwrap();
        fail(&mut b, 0, &mut rng);
        fail(&mut b, 9 * SECOND, &mut rng);
        fail(&mut b, 9 * SECOND + 999_999, &mut rng);
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "bucket 0 is still in the window"
        );

        let mut b = CircuitBreaker::new(time_window(2, 1.0)).unwrap();
        fail(&mut b, 0, &mut rng);
        // A long gap (many windows) clears everything at once.
        fail(&mut b, 1_000 * SECOND, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&mut b, 1_000 * SECOND + 1, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn slow_calls_count_as_failures_and_trip() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(BreakerConfig {
            slow_call_threshold: Some(100 * MILLISECOND),
            ..plain(2)
        })
        .unwrap();
        let p = b.try_acquire(0, &mut rng).unwrap();
        assert_eq!(
            b.on_success(p, 99 * MILLISECOND, &mut rng),
            Recorded::Counted
        );
        assert_eq!(b.stats().successes, 1, "just under the threshold is fine");
        let p = b.try_acquire(SECOND, &mut rng).unwrap();
        b.on_success(p, SECOND + 100 * MILLISECOND, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed);
        let p = b.try_acquire(2 * SECOND, &mut rng).unwrap();
        b.on_success(p, 2 * SECOND + 150 * MILLISECOND, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            events(&mut b)[0].reason,
            BreakerReason::SlowCalls {
                failures: 2,
                calls: 2
            }
        );
        let s = b.stats();
        assert_eq!((s.successes, s.failures, s.slow_calls), (1, 2, 2));
    }

    #[test]
    fn open_elapses_to_half_open_exactly_at_open_until() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(plain(1)).unwrap();
        fail(&mut b, 100, &mut rng);
        let until = b.open_until().unwrap();
        assert_eq!(until, 100 + SECOND);
        assert_eq!(b.poll_timeout(), Some(until));
        events(&mut b);

        b.handle_timeout(until - 1, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire(until - 1, &mut rng).is_err());
        assert!(events(&mut b).is_empty());

        b.handle_timeout(until, &mut rng);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(
            b.poll_timeout(),
            None,
            "no probe outstanding, nothing timed"
        );
        let ev = events(&mut b);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (
                ev[0].at,
                ev[0].from,
                ev[0].to,
                &ev[0].reason,
                ev[0].open_until
            ),
            (
                until,
                BreakerState::Open,
                BreakerState::HalfOpen,
                &BreakerReason::OpenElapsed,
                None
            )
        );
        b.handle_timeout(until + 5, &mut rng);
        assert!(
            events(&mut b).is_empty(),
            "repeated handle_timeout is harmless"
        );
    }

    #[test]
    fn try_acquire_notices_elapsed_open_lazily() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(plain(1)).unwrap();
        fail(&mut b, 0, &mut rng);
        events(&mut b);
        let p = b.try_acquire(SECOND, &mut rng).unwrap();
        assert!(p.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(events(&mut b).len(), 1);
    }

    #[test]
    fn half_open_admits_at_most_max_probes() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(BreakerConfig {
            half_open_max_probes: 3,
            half_open_successes: 5,
            ..plain(1)
        })
        .unwrap();
        fail(&mut b, 0, &mut rng);
        let probes: Vec<Permit> = (0..3)
            .map(|_| b.try_acquire(SECOND, &mut rng).unwrap())
            .collect();
        assert!(probes.iter().all(Permit::is_probe));
        let r = b.try_acquire(SECOND, &mut rng).unwrap_err();
        assert_eq!(r.state, BreakerState::HalfOpen);
        assert_eq!(b.probes_in_flight(), 3);
        // One reports; its slot frees up for exactly one more.
        b.on_success(probes[0], SECOND + 1, &mut rng);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire(SECOND + 2, &mut rng).is_ok());
        assert!(b.try_acquire(SECOND + 2, &mut rng).is_err());
        assert_eq!(b.stats().probes, 4);
        assert_eq!(b.stats().rejected, 2);
    }

    #[test]
    fn m_probe_successes_close_it() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(BreakerConfig {
            half_open_max_probes: 2,
            half_open_successes: 3,
            ..plain(1)
        })
        .unwrap();
        fail(&mut b, 0, &mut rng);
        events(&mut b);
        let t = SECOND;
        let a = b.try_acquire(t, &mut rng).unwrap();
        let c = b.try_acquire(t, &mut rng).unwrap();
        b.on_success(a, t + 1, &mut rng);
        b.on_success(c, t + 2, &mut rng);
        assert_eq!(b.state(), BreakerState::HalfOpen, "2 of 3");
        // Reporting the same permit twice does not count twice.
        assert_eq!(b.on_success(c, t + 3, &mut rng), Recorded::Ignored);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let d = b.try_acquire(t + 4, &mut rng).unwrap();
        b.on_success(d, t + 5, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed);
        let ev = events(&mut b);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].reason, BreakerReason::OpenElapsed);
        assert_eq!(
            (ev[1].from, ev[1].to, &ev[1].reason, ev[1].at),
            (
                BreakerState::HalfOpen,
                BreakerState::Closed,
                &BreakerReason::ProbeSucceeded { successes: 3 },
                t + 5
            )
        );
        // Closed again with a fresh count: needs the full threshold again.
        assert!(b.try_acquire(t + 6, &mut rng).is_ok());
    }

    fn growing(jitter: f64) -> BreakerConfig {
        BreakerConfig {
            open_duration: SECOND,
            open_duration_multiplier: 2.0,
            max_open_duration: 5 * SECOND,
            open_duration_jitter: jitter,
            ..plain(1)
        }
    }

    /// Durations of successive opens for a breaker whose probes always fail.
    fn open_durations(b: &mut CircuitBreaker, rng: &mut ChaCha8Rng, n: usize) -> Vec<Span> {
        let mut now = 0;
        trip_open(b, now, rng);
        let mut out = Vec::new();
        for _ in 0..n {
            let ev = b.drain_events().next_back().unwrap();
            assert_eq!(ev.to, BreakerState::Open);
            let until = ev.open_until.unwrap();
            out.push(until - ev.at);
            now = until;
            let p = b.try_acquire(now, rng).unwrap();
            assert!(p.is_probe());
            b.on_failure(p, now, rng);
        }
        out
    }

    #[test]
    fn probe_failure_reopens_with_grown_capped_duration() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(growing(0.0)).unwrap();
        let d = open_durations(&mut b, &mut rng, 6);
        assert_eq!(
            d,
            [1, 2, 4, 5, 5, 5].map(|s| s * SECOND).to_vec(),
            "exponential, capped at max"
        );
        assert_eq!(b.stats().trips, 7);
        // The re-open events say why.
        let mut b = CircuitBreaker::new(growing(0.0)).unwrap();
        fail(&mut b, 0, &mut rng);
        let p = b.try_acquire(SECOND, &mut rng).unwrap();
        b.on_failure(p, SECOND + 7, &mut rng);
        let ev = events(&mut b);
        assert_eq!(ev.len(), 3);
        assert_eq!(
            (ev[2].from, ev[2].to, &ev[2].reason, ev[2].open_until),
            (
                BreakerState::HalfOpen,
                BreakerState::Open,
                &BreakerReason::ProbeFailed { slow: false },
                Some(SECOND + 7 + 2 * SECOND)
            )
        );
    }

    #[test]
    fn open_duration_returns_to_base_after_close() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(growing(0.0)).unwrap();
        assert_eq!(
            open_durations(&mut b, &mut rng, 3),
            [1, 2, 4].map(|s| s * SECOND)
        );
        // Let the next probe succeed.
        let now = b.open_until().unwrap();
        succeed(&mut b, now, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed);
        events(&mut b);
        fail(&mut b, now + 1, &mut rng);
        assert_eq!(b.open_until(), Some(now + 1 + SECOND));
    }

    #[test]
    fn jitter_stays_in_bounds_and_is_deterministic_per_seed() {
        let run = |seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut b = CircuitBreaker::new(growing(0.25)).unwrap();
            open_durations(&mut b, &mut rng, 8)
        };
        let a = run(1);
        assert_eq!(a, run(1), "same seed, same durations");
        assert_ne!(a, run(2), "another seed, other durations");
        let nominal = [1, 2, 4, 5, 5, 5, 5, 5].map(|s| s * SECOND);
        for (d, n) in a.iter().zip(nominal) {
            let (lo, hi) = (n * 3 / 4, (n * 5 / 4).min(5 * SECOND));
            assert!((lo..=hi).contains(d), "{d} not within ±25% of {n}");
        }
        assert!(
            a.iter().zip(nominal).any(|(d, n)| *d != n),
            "jitter actually moves the durations"
        );
        // Many draws at the cap spread over the whole band, not just one side of it.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut b = CircuitBreaker::new(growing(0.25)).unwrap();
        let d = open_durations(&mut b, &mut rng, 200);
        // At the ceiling, jitter only shortens: `max_open_duration` is never exceeded.
        let capped = &d[3..];
        assert!(capped.iter().any(|&d| d < 4_500_000));
        assert!(capped.contains(&5_000_000));
        assert!(capped.iter().all(|&d| (3_750_000..=5_000_000).contains(&d)));
    }

    #[test]
    fn zero_jitter_draws_no_randomness() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(plain(1)).unwrap();
        fail(&mut b, 0, &mut rng);
        let mut untouched = ChaCha8Rng::seed_from_u64(42);
        assert_eq!(
            rand::Rng::random::<u64>(&mut rng),
            rand::Rng::random::<u64>(&mut untouched)
        );
    }

    #[test]
    fn lost_probe_times_out_and_later_probes_work() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(BreakerConfig {
            half_open_timeout: 2 * SECOND,
            ..growing(0.0)
        })
        .unwrap();
        fail(&mut b, 0, &mut rng);
        let t = SECOND;
        let lost = b.try_acquire(t, &mut rng).unwrap();
        assert!(lost.is_probe());
        assert!(
            b.try_acquire(t + 1, &mut rng).is_err(),
            "the only slot is taken"
        );
        assert_eq!(b.poll_timeout(), Some(t + 2 * SECOND));
        b.handle_timeout(t + 2 * SECOND - 1, &mut rng);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        events(&mut b);

        b.handle_timeout(t + 2 * SECOND, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
        let ev = events(&mut b);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].from, ev[0].to, &ev[0].reason, ev[0].open_until),
            (
                BreakerState::HalfOpen,
                BreakerState::Open,
                &BreakerReason::ProbeTimeout,
                Some(t + 2 * SECOND + 2 * SECOND)
            ),
            "re-opened with the grown duration"
        );
        assert_eq!(b.stats().probe_timeouts, 1);

        // The next half-open spell works, and the lost probe's late report is ignored.
        let now = b.open_until().unwrap();
        let p = b.try_acquire(now, &mut rng).unwrap();
        assert_eq!(b.on_failure(lost, now, &mut rng), Recorded::Ignored);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.on_success(p, now + 1, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn lost_probe_is_noticed_lazily_by_try_acquire() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(BreakerConfig {
            half_open_timeout: SECOND,
            ..plain(1)
        })
        .unwrap();
        fail(&mut b, 0, &mut rng);
        let _lost = b.try_acquire(SECOND, &mut rng).unwrap();
        // Never calls handle_timeout: the acquire at the deadline re-opens and is refused.
        let r = b.try_acquire(2 * SECOND, &mut rng).unwrap_err();
        assert_eq!(r.state, BreakerState::Open);
        assert_eq!(r.retry_at, Some(3 * SECOND));
        assert!(b.try_acquire(3 * SECOND, &mut rng).unwrap().is_probe());
    }

    #[test]
    fn late_result_from_closed_epoch_is_ignored() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(plain(2)).unwrap();
        // Three calls start while closed; two fail and trip it.
        let slow_ok = b.try_acquire(0, &mut rng).unwrap();
        let late_fail = b.try_acquire(0, &mut rng).unwrap();
        fail(&mut b, 1, &mut rng);
        fail(&mut b, 2, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
        let until = b.open_until().unwrap();
        assert_eq!(events(&mut b).len(), 1);

        // A late failure while open: ignored, does not re-trip or extend.
        assert_eq!(b.on_failure(late_fail, 3, &mut rng), Recorded::Ignored);
        assert_eq!(b.open_until(), Some(until));
        assert!(events(&mut b).is_empty());

        // Half-open now, a probe out; the late success is not a probe result.
        let probe = b.try_acquire(until, &mut rng).unwrap();
        assert_eq!(
            b.on_success(slow_ok, until + 1, &mut rng),
            Recorded::Ignored
        );
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "a late success does not close"
        );
        assert_eq!(b.probes_in_flight(), 1, "and does not free the probe slot");
        assert_eq!(events(&mut b).len(), 1);
        assert_eq!(b.stats().ignored_results, 2);
        assert_eq!(b.stats().successes, 0);

        // The real probe decides.
        b.on_success(probe, until + 2, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed);
        // And a pre-open failure arriving after the close does not count toward a trip.
        assert_eq!(
            b.on_failure(late_fail, until + 3, &mut rng),
            Recorded::Ignored
        );
        fail(&mut b, until + 4, &mut rng);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "one counted failure of two"
        );
    }

    #[test]
    fn force_open_refuses_until_cleared_then_probes() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(plain(5)).unwrap();
        let inflight = b.try_acquire(0, &mut rng).unwrap();
        b.force_open(10);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.overridden(), Some(BreakerOverride::ForcedOpen));
        assert_eq!(b.poll_timeout(), None, "no timer while forced");
        let r = b.try_acquire(1_000 * SECOND, &mut rng).unwrap_err();
        assert_eq!(r.retry_at, None);
        assert_eq!(b.on_success(inflight, 11, &mut rng), Recorded::Ignored);
        b.clear_override(2_000 * SECOND);
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "probe before full traffic"
        );
        assert_eq!(b.overridden(), None);
        let ev = events(&mut b);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            (ev[0].from, ev[0].to, &ev[0].reason, ev[0].open_until),
            (
                BreakerState::Closed,
                BreakerState::Open,
                &BreakerReason::Manual {
                    op: ManualOp::ForceOpen
                },
                None
            )
        );
        assert_eq!(
            (ev[1].from, ev[1].to, &ev[1].reason),
            (
                BreakerState::Open,
                BreakerState::HalfOpen,
                &BreakerReason::Manual {
                    op: ManualOp::ClearOverride
                }
            )
        );
        b.clear_override(2_000 * SECOND);
        assert!(
            events(&mut b).is_empty(),
            "nothing to clear, nothing happens"
        );
        assert_eq!(b.stats().trips, 0, "manual opens are not trips");
    }

    #[test]
    fn force_closed_counts_but_never_trips() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(plain(1)).unwrap();
        fail(&mut b, 0, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
        b.force_closed(1);
        for t in 2..50 {
            assert_eq!(fail(&mut b, t, &mut rng), Recorded::Counted);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.stats().failures, 49);
        b.clear_override(60);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&mut b, 61, &mut rng);
        assert_eq!(b.state(), BreakerState::Open, "automatic again");
        let reasons: Vec<_> = events(&mut b).into_iter().map(|e| e.reason).collect();
        assert_eq!(
            reasons,
            [
                BreakerReason::ConsecutiveFailures { count: 1 },
                BreakerReason::Manual {
                    op: ManualOp::ForceClosed
                },
                BreakerReason::Manual {
                    op: ManualOp::ClearOverride
                },
                BreakerReason::ConsecutiveFailures { count: 1 },
            ]
        );
    }

    #[test]
    fn disabled_admits_everything_and_records_nothing() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(plain(1)).unwrap();
        b.force_open(0);
        b.disable(1);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.overridden(), Some(BreakerOverride::Disabled));
        for t in 2..20 {
            assert_eq!(fail(&mut b, t, &mut rng), Recorded::Ignored);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let s = b.stats();
        assert_eq!((s.admitted, s.failures, s.ignored_results), (18, 0, 18));
        let ev = events(&mut b);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            (ev[1].from, ev[1].to, &ev[1].reason),
            (
                BreakerState::Open,
                BreakerState::Closed,
                &BreakerReason::Manual {
                    op: ManualOp::Disable
                }
            )
        );
        b.reset(30);
        assert_eq!(b.overridden(), None);
        fail(&mut b, 31, &mut rng);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn reset_restores_base_open_duration_and_clears_the_window() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(BreakerConfig {
            trip_policy: TripPolicy::ConsecutiveFailures {
                failure_threshold: 2,
            },
            ..growing(0.0)
        })
        .unwrap();
        trip_open(&mut b, 0, &mut rng);
        let p = b.try_acquire(SECOND, &mut rng).unwrap();
        b.on_failure(p, SECOND, &mut rng);
        assert_eq!(b.open_until(), Some(3 * SECOND), "grown to 2 s");
        b.reset(SECOND + 1);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&mut b, SECOND + 2, &mut rng);
        assert_eq!(b.state(), BreakerState::Closed, "window was cleared");
        fail(&mut b, SECOND + 3, &mut rng);
        assert_eq!(b.open_until(), Some(2 * SECOND + 3), "back to the base 1 s");
    }

    #[test]
    fn every_transition_is_exactly_one_chained_event() {
        let mut rng = rng();
        let mut b = CircuitBreaker::new(BreakerConfig {
            half_open_timeout: SECOND,
            ..plain(2)
        })
        .unwrap();
        let mut states = vec![b.state()];
        let mut step = |b: &mut CircuitBreaker, f: &mut dyn FnMut(&mut CircuitBreaker)| {
            let before = b.state();
            f(b);
            let ev = events(b);
            assert!(ev.len() <= 1, "one operation, at most one transition here");
            match ev.first() {
                Some(e) => {
                    assert_eq!(e.from, before);
                    assert_eq!(e.to, b.state());
                    states.push(e.to);
                }
                None => assert_eq!(b.state(), before),
            }
        };
        let r = &mut rng;
        step(&mut b, &mut |b| {
            let _ = fail(b, 0, r);
        });
        step(&mut b, &mut |b| {
            let _ = fail(b, 1, r); // trip
        });
        step(&mut b, &mut |b| b.handle_timeout(SECOND + 1, r)); // half-open
        step(&mut b, &mut |b| {
            assert!(b.try_acquire(SECOND + 1, r).is_ok())
        });
        step(&mut b, &mut |b| b.handle_timeout(2 * SECOND + 1, r)); // probe timeout
        step(&mut b, &mut |b| {
            assert!(b.try_acquire(3 * SECOND + 1, r).is_ok())
        }); // half-open, lazily
        step(&mut b, &mut |b| b.force_closed(4 * SECOND));
        step(&mut b, &mut |b| b.force_open(4 * SECOND));
        step(&mut b, &mut |b| b.disable(4 * SECOND));
        step(&mut b, &mut |b| b.reset(4 * SECOND));
        use BreakerState::*;
        assert_eq!(
            states,
            [Closed, Open, HalfOpen, Open, HalfOpen, Closed, Open, Closed, Closed]
        );
        assert_eq!(b.epoch(), 8);
    }

    #[test]
    fn events_serialize_as_snake_case_json() {
        let e = BreakerEvent {
            at: 5,
            from: BreakerState::HalfOpen,
            to: BreakerState::Open,
            reason: BreakerReason::ProbeFailed { slow: true },
            open_until: Some(9),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"at":5,"from":"half_open","to":"open","reason":{"kind":"probe_failed","slow":true},"open_until":9}"#
        );
        let m = BreakerReason::Manual {
            op: ManualOp::ForceClosed,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"kind":"manual","op":"force_closed"}"#
        );
        assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
        assert_eq!(BreakerState::Closed.to_string(), "closed");
    }

    #[test]
    fn invalid_configs_are_rejected_with_the_field() {
        let base = BreakerConfig::default;
        let rate = |failure_rate| BreakerConfig {
            trip_policy: TripPolicy::CountWindow {
                window_calls: 10,
                min_calls: 5,
                failure_rate,
            },
            ..base()
        };
        let tw = |window, bucket, min_calls| BreakerConfig {
            trip_policy: TripPolicy::TimeWindow {
                window,
                bucket,
                min_calls,
                failure_rate: 0.5,
            },
            ..base()
        };
        let cw = |window_calls, min_calls| BreakerConfig {
            trip_policy: TripPolicy::CountWindow {
                window_calls,
                min_calls,
                failure_rate: 0.5,
            },
            ..base()
        };
        let cases: Vec<(BreakerConfig, &str)> = vec![
            (plain(0), "breaker.trip_policy.failure_threshold"),
            (cw(0, 1), "breaker.trip_policy.window_calls"),
            (
                cw(MAX_WINDOW_CALLS + 1, 1),
                "breaker.trip_policy.window_calls",
            ),
            (cw(10, 0), "breaker.trip_policy.min_calls"),
            (cw(10, 11), "breaker.trip_policy.min_calls"),
            (rate(0.0), "breaker.trip_policy.failure_rate"),
            (rate(-0.1), "breaker.trip_policy.failure_rate"),
            (rate(1.01), "breaker.trip_policy.failure_rate"),
            (rate(f64::NAN), "breaker.trip_policy.failure_rate"),
            (tw(0, SECOND, 1), "breaker.trip_policy.window"),
            (tw(SECOND, 0, 1), "breaker.trip_policy.bucket"),
            (tw(10 * SECOND, 3 * SECOND, 1), "breaker.trip_policy.window"),
            (tw(SECOND, 1, 1), "breaker.trip_policy.bucket"),
            (tw(10 * SECOND, SECOND, 0), "breaker.trip_policy.min_calls"),
            (
                BreakerConfig {
                    slow_call_threshold: Some(0),
                    ..base()
                },
                "breaker.slow_call_threshold",
            ),
            (
                BreakerConfig {
                    open_duration: 0,
                    max_open_duration: 0,
                    ..base()
                },
                "breaker.open_duration",
            ),
            (
                BreakerConfig {
                    open_duration_multiplier: 0.5,
                    ..base()
                },
                "breaker.open_duration_multiplier",
            ),
            (
                BreakerConfig {
                    open_duration_multiplier: f64::NAN,
                    ..base()
                },
                "breaker.open_duration_multiplier",
            ),
            (
                BreakerConfig {
                    open_duration_multiplier: f64::INFINITY,
                    ..base()
                },
                "breaker.open_duration_multiplier",
            ),
            (
                BreakerConfig {
                    max_open_duration: DEFAULT_OPEN_DURATION - 1,
                    ..base()
                },
                "breaker.max_open_duration",
            ),
            (
                BreakerConfig {
                    open_duration_jitter: 1.0,
                    ..base()
                },
                "breaker.open_duration_jitter",
            ),
            (
                BreakerConfig {
                    open_duration_jitter: -0.1,
                    ..base()
                },
                "breaker.open_duration_jitter",
            ),
            (
                BreakerConfig {
                    half_open_max_probes: 0,
                    ..base()
                },
                "breaker.half_open_max_probes",
            ),
            (
                BreakerConfig {
                    half_open_max_probes: MAX_HALF_OPEN_PROBES + 1,
                    ..base()
                },
                "breaker.half_open_max_probes",
            ),
            (
                BreakerConfig {
                    half_open_successes: 0,
                    ..base()
                },
                "breaker.half_open_successes",
            ),
            (
                BreakerConfig {
                    half_open_timeout: 0,
                    ..base()
                },
                "breaker.half_open_timeout",
            ),
        ];
        for (config, field) in cases {
            let err = CircuitBreaker::new(config.clone()).expect_err(field);
            assert_eq!(err.field, field, "{config:?}");
            assert!(!err.reason.is_empty());
            assert!(!err.reason.starts_with(char::is_uppercase));
            assert!(!err.reason.ends_with('.'));
        }
        // Edge values that are fine.
        for ok in [
            rate(1.0),
            cw(10, 10),
            tw(SECOND, SECOND, 1),
            BreakerConfig {
                open_duration_multiplier: 1.0,
                max_open_duration: DEFAULT_OPEN_DURATION,
                open_duration_jitter: 0.0,
                half_open_successes: 100,
                ..base()
            },
        ] {
            assert_eq!(ok.validate(), Ok(()), "{ok:?}");
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::engine::MILLISECOND;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const SLOW: Span = 300 * MILLISECOND;
    const THRESHOLD: u32 = 3;

    #[derive(Debug, Clone)]
    enum Op {
        Advance(Span),
        /// Advance to just before (`false`) or exactly to (`true`) the next timeout, if any.
        ToTimeout(bool),
        Acquire,
        HandleTimeout,
        /// Report the outstanding permit at this index (modulo their number).
        Succeed(usize),
        Fail(usize),
        /// Let time pass beyond the slow threshold, then report success.
        Slow(usize),
        /// Never report it (it stays in the breaker's view until its epoch ends).
        Lose(usize),
        ForceOpen,
        ForceClosed,
        Disable,
        ClearOverride,
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..2_500 * MILLISECOND).prop_map(Op::Advance),
            3 => (0..10 * MILLISECOND).prop_map(Op::Advance),
            2 => any::<bool>().prop_map(Op::ToTimeout),
            8 => Just(Op::Acquire),
            2 => Just(Op::HandleTimeout),
            5 => any::<usize>().prop_map(Op::Succeed),
            6 => any::<usize>().prop_map(Op::Fail),
            1 => any::<usize>().prop_map(Op::Slow),
            1 => any::<usize>().prop_map(Op::Lose),
            1 => Just(Op::ForceOpen),
            1 => Just(Op::ForceClosed),
            1 => Just(Op::Disable),
            2 => Just(Op::ClearOverride),
            1 => Just(Op::Reset),
        ]
    }

    fn policy() -> impl Strategy<Value = TripPolicy> {
        prop_oneof![
            2 => Just(TripPolicy::ConsecutiveFailures {
                failure_threshold: THRESHOLD
            }),
            1 => Just(TripPolicy::CountWindow {
                window_calls: 6,
                min_calls: 3,
                failure_rate: 0.5
            }),
            1 => Just(TripPolicy::TimeWindow {
                window: 2 * SECOND,
                bucket: 500 * MILLISECOND,
                min_calls: 3,
                failure_rate: 0.6
            }),
        ]
    }

    fn config() -> impl Strategy<Value = BreakerConfig> {
        (policy(), 1..4u32, 1..4u32, 0..3u32).prop_map(|(trip_policy, n, m, j)| BreakerConfig {
            trip_policy,
            slow_call_threshold: Some(SLOW),
            open_duration: SECOND,
            open_duration_multiplier: 2.0,
            max_open_duration: 4 * SECOND,
            open_duration_jitter: f64::from(j) * 0.1,
            half_open_max_probes: n,
            half_open_successes: m,
            half_open_timeout: 700 * MILLISECOND,
        })
    }

    /// What the test knows about the breaker, rebuilt only from its public outputs (events,
    /// acquire results) and the documented rules.
    struct Model {
        now: Time,
        /// Advanced once per event: permits of an older era are late.
        era: u64,
        state: BreakerState,
        /// `(permit, era it was issued in)`, not yet reported.
        outstanding: Vec<(Permit, u64)>,
        /// Permits the caller dropped without reporting; the breaker still counts them.
        lost: Vec<(Permit, u64)>,
        /// The policy is [`TripPolicy::ConsecutiveFailures`].
        consecutive: bool,
        /// Counted failures in a row in the current closed, automatic era.
        run: u32,
        manual: bool,
        /// Open on a timer until this instant; `Some(None)` when forced open.
        open_until: Option<Option<Time>>,
    }

    impl Model {
        /// Checks the events of one operation against the model, adopts them, records the
        /// permit the operation obtained (in the era it was issued in), and checks the rest.
        fn absorb(
            &mut self,
            b: &mut CircuitBreaker,
            admitted: Option<Permit>,
        ) -> Result<(), TestCaseError> {
            for e in b.drain_events() {
                prop_assert_eq!(e.from, self.state, "event chain broken: {:?}", e);
                prop_assert_eq!(e.at, self.now);
                if let BreakerReason::ConsecutiveFailures { count } = e.reason {
                    prop_assert_eq!(count, THRESHOLD);
                }
                if self.consecutive
                    && e.from == BreakerState::Closed
                    && e.to == BreakerState::Open
                    && !matches!(e.reason, BreakerReason::Manual { .. })
                {
                    // Trips exactly when the model's run of counted failures reaches it.
                    prop_assert_eq!(self.run, THRESHOLD, "tripped early or late: {:?}", e);
                }
                prop_assert_eq!(
                    e.open_until.is_some(),
                    e.to == BreakerState::Open && !matches!(e.reason, BreakerReason::Manual { .. })
                );
                self.state = e.to;
                self.era += 1;
                self.run = 0;
                self.manual = matches!(
                    e.reason,
                    BreakerReason::Manual {
                        op: ManualOp::ForceOpen | ManualOp::ForceClosed | ManualOp::Disable
                    }
                );
                self.open_until = (e.to == BreakerState::Open).then_some(e.open_until);
            }
            if let Some(p) = admitted {
                prop_assert_eq!(p.is_probe(), self.state == BreakerState::HalfOpen);
                self.outstanding.push((p, self.era));
            }
            prop_assert_eq!(b.state(), self.state, "state changed without an event");
            prop_assert_eq!(b.epoch(), self.era);
            if self.state == BreakerState::HalfOpen {
                let probes = self
                    .outstanding
                    .iter()
                    .chain(&self.lost)
                    .filter(|(p, era)| *era == self.era && p.is_probe())
                    .count();
                prop_assert!(probes <= b.config().half_open_max_probes as usize);
                prop_assert_eq!(probes, b.probes_in_flight());
            }
            Ok(())
        }

        fn take(&mut self, i: usize) -> Option<(Permit, u64)> {
            if self.outstanding.is_empty() {
                None
            } else {
                let i = i % self.outstanding.len();
                Some(self.outstanding.remove(i))
            }
        }

        /// Tracks the consecutive-failure run for a result the breaker will count.
        fn note_result(&mut self, permit_era: u64, failed: bool) {
            if self.consecutive
                && permit_era == self.era
                && self.state == BreakerState::Closed
                && !self.manual
            {
                self.run = if failed { self.run + 1 } else { 0 };
            }
        }
    }

    proptest! {
        #[test]
        fn breaker_matches_its_model(
            config in config(),
            seed in any::<u64>(),
            ops in prop::collection::vec(op(), 1..150),
        ) {
            let consecutive = matches!(config.trip_policy, TripPolicy::ConsecutiveFailures { .. });
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut b = CircuitBreaker::new(config).unwrap();
            let mut m = Model {
                now: 0,
                era: 0,
                state: BreakerState::Closed,
                outstanding: Vec::new(),
                lost: Vec::new(),
                consecutive,
                run: 0,
                manual: false,
                open_until: None,
            };
            for op in ops {
                match op {
                    Op::Advance(dt) => m.now += dt,
                    Op::ToTimeout(exact) => {
                        if let Some(t) = b.poll_timeout().filter(|&t| t > m.now) {
                            m.now = if exact { t } else { t - 1 };
                        }
                    }
                    Op::Acquire => {
                        // Timed transitions may happen inside; judge admission against the
                        // state the model had, adjusted for an elapsed open.
                        let forced_or_early = match m.open_until {
                            Some(None) => true,
                            Some(Some(until)) => m.now < until,
                            None => false,
                        };
                        let r = b.try_acquire(m.now, &mut rng);
                        if forced_or_early {
                            prop_assert!(r.is_err(), "open breaker admitted before open_until");
                        }
                        m.absorb(&mut b, r.ok())?;
                    }
                    Op::HandleTimeout => {
                        let due = match b.poll_timeout() {
                            Some(t) => m.now >= t,
                            None => false,
                        };
                        b.handle_timeout(m.now, &mut rng);
                        if !due {
                            prop_assert_eq!(b.epoch(), m.era, "changed before its timeout");
                        }
                    }
                    Op::Succeed(i) | Op::Slow(i) => {
                        if let Op::Slow(_) = op {
                            m.now += SLOW;
                        }
                        if let Some((p, era)) = m.take(i) {
                            let slow = m.now - p.started() >= SLOW;
                            m.note_result(era, slow);
                            b.on_success(p, m.now, &mut rng);
                        }
                    }
                    Op::Fail(i) => {
                        if let Some((p, era)) = m.take(i) {
                            m.note_result(era, true);
                            b.on_failure(p, m.now, &mut rng);
                        }
                    }
                    Op::Lose(i) => {
                        // Forgotten by the caller, still outstanding for the breaker.
                        if let Some(lost) = m.take(i) {
                            m.lost.push(lost);
                        }
                    }
                    Op::ForceOpen => b.force_open(m.now),
                    Op::ForceClosed => b.force_closed(m.now),
                    Op::Disable => b.disable(m.now),
                    Op::ClearOverride => b.clear_override(m.now),
                    Op::Reset => b.reset(m.now),
                }
                m.absorb(&mut b, None)?;
                if m.consecutive && !m.manual && m.state == BreakerState::Closed {
                    prop_assert!(m.run < THRESHOLD, "{} consecutive failures and still closed", m.run);
                }
            }
        }
    }
}
