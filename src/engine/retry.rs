//! Retries of a failed call: how many, after what backoff, on which failures, and the
//! budget that keeps them from multiplying an outage.
//!
//! A retry helps with a stray failure and hurts during an outage: every client that
//! retries three times turns a dependency's bad minute into three times its traffic,
//! just when it can least take it (a retry storm). Two limits stop that:
//!
//! - **Backoff with jitter.** The k-th retry waits `min(backoff_max, backoff_base *
//!   2^(k-1))`, drawn as the AWS Architecture Blog's "Exponential Backoff and Jitter"
//!   names them: `full` jitter uniform in `[0, d]`, `equal` jitter in `[d/2, d]`, or
//!   `none`.
//! - **A retry budget** (as Envoy's and Finagle's): over a sliding window, retries may
//!   be at most `ratio` of the first attempts plus a floor of `min_per_sec` per second,
//!   so a dependency failing everything gets at most `1 + ratio` times its normal
//!   traffic, while a quiet one can still retry a stray failure.
//!
//! The node asks [`RetryPolicy::decide`] after each failed attempt; what it answers
//! is recorded as a [`RetryEvent`], so every retry and every denial is in the trace.

use rand::Rng;
use serde::Serialize;

use super::{ConfigError, Span, Time, MILLISECOND, SECOND};

/// Most attempts a policy may make, the first included.
pub const MAX_ATTEMPTS: u32 = 100;
/// Default attempts, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default backoff before the first retry.
pub const DEFAULT_BACKOFF_BASE: Span = 50 * MILLISECOND;
/// Default ceiling on the backoff.
pub const DEFAULT_BACKOFF_MAX: Span = 2 * SECOND;
/// Default budget: retries at most 20% of first attempts...
pub const DEFAULT_BUDGET_RATIO: f64 = 0.2;
/// ...plus 10 a second...
pub const DEFAULT_BUDGET_MIN_PER_SEC: u32 = 10;
/// ...over the last 10 s.
pub const DEFAULT_BUDGET_WINDOW: Span = 10 * SECOND;
/// The budget's window is counted in this many buckets (so it slides by a tenth).
pub const BUDGET_BUCKETS: usize = 10;

/// The order of the layers a dependency's calls pass through, outermost first (as
/// Polly v8 declares a pipeline): `pipeline = ["retry", "breaker"]` in a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pipeline {
    /// Retry outside the breaker (the default, resilience4j's usual order): every
    /// attempt asks the breaker for a permit and is counted by it, so retries trip
    /// it sooner, and a retry is not made while it is open.
    #[default]
    RetryThenBreaker,
    /// The breaker outside the retry: one permit covers all of a call's attempts,
    /// and the breaker sees only the last one's outcome (and, for slow-call
    /// counting, the time all of them took). It trips later; retries go on while it
    /// is open, for calls it let in before.
    BreakerThenRetry,
}

impl Pipeline {
    /// The layers' names, outermost first, as a file writes them.
    pub fn layers(self) -> [&'static str; 2] {
        match self {
            Pipeline::RetryThenBreaker => ["retry", "breaker"],
            Pipeline::BreakerThenRetry => ["breaker", "retry"],
        }
    }
}

/// Where the dependency's `timeout` layer sits against its retry layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutScope {
    /// Inside the retry (the default): each attempt has the whole timeout.
    #[default]
    PerAttempt,
    /// Outside the retry: the timeout bounds the whole call, every attempt and
    /// backoff included, from the first attempt's start; a retry whose backoff would
    /// end past it is denied (`deadline`), and each attempt's timeout is cut at it.
    WholeCall,
}

/// How a backoff is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Exactly the capped exponential delay.
    None,
    /// Uniform in `[0, d]`.
    Full,
    /// Uniform in `[d/2, d]`.
    Equal,
}

/// Which failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryOn {
    /// No answer before the call's timeout.
    pub timeout: bool,
    /// The service answered with an error.
    pub error: bool,
    /// The service refused the connection (down).
    pub unavailable: bool,
}

impl RetryOn {
    /// Every failure.
    pub const ALL: RetryOn = RetryOn {
        timeout: true,
        error: true,
        unavailable: true,
    };
}

/// The retry budget of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BudgetConfig {
    /// Retries allowed per first attempt in the window.
    pub ratio: f64,
    /// Retries allowed per second of the window whatever the traffic.
    pub min_per_sec: u32,
    /// The window's length.
    pub window: Span,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            ratio: DEFAULT_BUDGET_RATIO,
            min_per_sec: DEFAULT_BUDGET_MIN_PER_SEC,
            window: DEFAULT_BUDGET_WINDOW,
        }
    }
}

/// How one dependency's failed calls are retried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryConfig {
    /// Attempts per call, the first included: 1 never retries.
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles for each later one.
    pub backoff_base: Span,
    /// Ceiling on the backoff before jitter.
    pub backoff_max: Span,
    /// How the backoff is randomised.
    pub jitter: Jitter,
    /// Which failures are retried.
    pub on: RetryOn,
    /// The budget; `None` (the default, as in resilience4j and Polly): retries are
    /// limited only by `max_attempts` and deadlines.
    pub budget: Option<BudgetConfig>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            jitter: Jitter::Full,
            on: RetryOn::ALL,
            budget: None,
        }
    }
}

impl RetryConfig {
    /// Refuses a policy that could not retry sensibly.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(ConfigError::new(
                "retry.max_attempts",
                format!("must be in 1..={MAX_ATTEMPTS} (1 never retries)"),
            ));
        }
        if self.backoff_max < self.backoff_base {
            return Err(ConfigError::new(
                "retry.backoff_max",
                format!(
                    "must be at least retry.backoff_base ({} us)",
                    self.backoff_base
                ),
            ));
        }
        if let Some(budget) = &self.budget {
            if !(budget.ratio >= 0.0 && budget.ratio.is_finite()) {
                return Err(ConfigError::new(
                    "retry.budget.ratio",
                    "must be a finite number of at least 0",
                ));
            }
            if budget.window < BUDGET_BUCKETS as Span {
                return Err(ConfigError::new(
                    "retry.budget.window",
                    format!("must be at least {BUDGET_BUCKETS} us"),
                ));
            }
        }
        Ok(())
    }

    /// The backoff before retry number `retry` (1 for the first), drawn from `rng`
    /// (nothing is drawn with no jitter).
    pub fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Span {
        let factor = 1u64
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u64::MAX);
        let d = self
            .backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max);
        match self.jitter {
            Jitter::None => d,
            Jitter::Full => rng.random_range(0..=d),
            Jitter::Equal => d / 2 + rng.random_range(0..=d - d / 2),
        }
    }
}

/// Why a failed attempt was not retried, when a retry was wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Denied {
    /// The budget's retries in the window are spent.
    Budget,
    /// The backoff would end at or past the request's deadline.
    Deadline,
    /// The breaker refused the retry's permit when it fell due.
    BreakerOpen,
    /// When it fell due, the request no longer waited for the call (another part
    /// had failed it, or it had taken its fallback).
    RequestEnded,
}

/// What the retry layer decided about one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum RetryEvent {
    /// Attempt `attempt` failed; the next starts after `backoff`.
    Scheduled {
        /// When it was decided.
        at: Time,
        /// The attempt that failed (1 = the first).
        attempt: u32,
        /// The wait before the next.
        backoff: Span,
    },
    /// Attempt `attempt` failed and is not retried, for `reason`.
    Denied {
        /// When.
        at: Time,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        reason: Denied,
    },
}

/// The answer to [`RetryPolicy::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Retry after this long.
    Retry(Span),
    /// Give up: the attempts are spent or the failure is not retried (no event).
    GiveUp,
    /// Give up although a retry was wanted (an event says why).
    Denied(Denied),
}

/// Counters of one dependency's retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetryStats {
    /// Retries scheduled.
    pub scheduled: u64,
    /// Retries denied by the budget.
    pub denied_budget: u64,
    /// Retries that would have outlived the request's deadline.
    pub denied_deadline: u64,
    /// Retries the breaker refused when they fell due.
    pub denied_breaker: u64,
    /// Retries not made because the request had ended when they fell due.
    pub request_ended: u64,
}

/// The sliding-window count behind a retry budget: first attempts and retries per
/// bucket of `window / BUDGET_BUCKETS`, the current bucket and the nine before it.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    config: BudgetConfig,
    bucket: Span,
    /// The bucket number (`now / bucket`) the ring's current slot holds.
    current: u64,
    ring: [(u64, u64); BUDGET_BUCKETS],
}

impl RetryBudget {
    /// An empty budget.
    pub fn new(config: BudgetConfig) -> RetryBudget {
        RetryBudget {
            bucket: config.window / BUDGET_BUCKETS as Span,
            config,
            current: 0,
            ring: [(0, 0); BUDGET_BUCKETS],
        }
    }

    fn advance(&mut self, now: Time) {
        let target = now / self.bucket;
        if target == self.current {
            return;
        }
        let stale = (target - self.current).min(BUDGET_BUCKETS as u64);
        for k in 1..=stale {
            self.ring[((self.current + k) % BUDGET_BUCKETS as u64) as usize] = (0, 0);
        }
        self.current = target;
    }

    fn slot(&mut self) -> &mut (u64, u64) {
        &mut self.ring[(self.current % BUDGET_BUCKETS as u64) as usize]
    }

    /// A first attempt started at `now`.
    pub fn on_call(&mut self, now: Time) {
        self.advance(now);
        self.slot().0 += 1;
    }

    /// Whether a retry may start at `now`; if so, it is counted.
    pub fn try_withdraw(&mut self, now: Time) -> bool {
        self.advance(now);
        let (calls, retries) = self
            .ring
            .iter()
            .fold((0, 0), |(c, r), &(bc, br)| (c + bc, r + br));
        let seconds = self.config.window as f64 / SECOND as f64;
        let allowed =
            f64::from(self.config.min_per_sec) * seconds + self.config.ratio * calls as f64;
        if (retries as f64) < allowed {
            self.slot().1 += 1;
            true
        } else {
            false
        }
    }
}

/// One dependency's retry layer: its policy, budget and counters.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    config: RetryConfig,
    budget: Option<RetryBudget>,
    stats: RetryStats,
}

/// The kind of a failed attempt, as [`RetryOn`] selects them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer in time.
    Timeout,
    /// An error answer.
    Error,
    /// Refused (down).
    Unavailable,
}

impl RetryPolicy {
    /// The layer for `config` (checked).
    pub fn new(config: RetryConfig) -> Result<RetryPolicy, ConfigError> {
        config.validate()?;
        Ok(RetryPolicy {
            budget: config.budget.map(RetryBudget::new),
            config,
            stats: RetryStats::default(),
        })
    }

    /// The policy.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> RetryStats {
        self.stats
    }

    /// A first attempt started at `now` (it earns the budget its share).
    #[inline]
    pub fn on_call(&mut self, now: Time) {
        if let Some(budget) = &mut self.budget {
            budget.on_call(now);
        }
    }

    /// Attempt `attempt` failed at `now` with `kind`; the request must be answered by
    /// `deadline`, if it has one. Draws the backoff from `rng` only when a retry is
    /// possible.
    pub fn decide(
        &mut self,
        now: Time,
        attempt: u32,
        kind: FailureKind,
        deadline: Option<Time>,
        rng: &mut impl Rng,
    ) -> Decision {
        let on = self.config.on;
        let wanted = match kind {
            FailureKind::Timeout => on.timeout,
            FailureKind::Error => on.error,
            FailureKind::Unavailable => on.unavailable,
        };
        if !wanted || attempt >= self.config.max_attempts {
            return Decision::GiveUp;
        }
        let backoff = self.config.backoff(attempt, rng);
        if deadline.is_some_and(|d| now.saturating_add(backoff) >= d) {
            self.stats.denied_deadline += 1;
            return Decision::Denied(Denied::Deadline);
        }
        if let Some(budget) = &mut self.budget {
            if !budget.try_withdraw(now) {
                self.stats.denied_budget += 1;
                return Decision::Denied(Denied::Budget);
            }
        }
        self.stats.scheduled += 1;
        Decision::Retry(backoff)
    }

    /// A retry fell due and the breaker refused it.
    pub fn on_breaker_refused(&mut self) {
        self.stats.denied_breaker += 1;
    }

    /// A retry fell due after its request had ended.
    pub fn on_request_ended(&mut self) {
        self.stats.request_ended += 1;
    }
}

#[cfg(test)]
mod tests;
