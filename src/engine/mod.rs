//! The degradation engine: four sans-IO state machines.
//!
//! Nothing in this module reads a clock, draws randomness on its own or does I/O.
//! The caller passes `now` (a [`Time`]) into every method that needs it and an RNG
//! (`&mut impl rand::Rng`) into every method that may jitter. Every state change is
//! pushed to the mechanism's event outbox, which the caller drains; nothing is only
//! logged. The same code therefore runs under the simulator's virtual clock and
//! under the live node's monotonic clock, and behaves identically for the same inputs.

use std::fmt;

pub mod breaker;
pub mod cache;
pub mod modes;
pub mod queue;

/// An instant, in microseconds since the run (or the live node) started.
///
/// Integer on purpose: floats accumulate rounding that differs with evaluation
/// order, and simulated time must give byte-identical output for a seed.
pub type Time = u64;

/// A length of time in microseconds.
pub type Span = u64;

/// One millisecond, as a [`Span`].
pub const MILLISECOND: Span = 1_000;
/// One second, as a [`Span`].
pub const SECOND: Span = 1_000_000;

/// A configuration value that the engine refuses, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field, e.g. `breaker.failure_threshold`.
    pub field: String,
    /// Why it is refused, lowercase, no trailing period.
    pub reason: String,
}

impl ConfigError {
    /// A refusal of `field` because of `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}
