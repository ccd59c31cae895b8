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
mod key_index;
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

/// Displays a [`Span`] exactly, in the units a person reads: `0s`, `750us`, `12.5ms`,
/// `4.25s`, `2m 30s`, `1h 5m`. Integer arithmetic only, so the text is the same on every
/// machine (it ends up in snapshots and error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanSpan(pub Span);

impl fmt::Display for HumanSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Built as a string first so that width and alignment flags apply to the whole.
        f.pad(&human_span(self.0))
    }
}

/// `value` followed by the fraction `frac / 10^digits`, trailing zeros dropped.
fn decimal(value: u64, frac: u64, digits: usize) -> String {
    if frac == 0 {
        return value.to_string();
    }
    let text = format!("{frac:0digits$}");
    format!("{value}.{}", text.trim_end_matches('0'))
}

fn human_span(span: Span) -> String {
    if span == 0 {
        return "0s".to_owned();
    }
    if span < MILLISECOND {
        return format!("{span}us");
    }
    if span < SECOND {
        return decimal(span / MILLISECOND, span % MILLISECOND, 3) + "ms";
    }
    if span < 60 * SECOND {
        return decimal(span / SECOND, span % SECOND, 6) + "s";
    }
    let hours = span / (3600 * SECOND);
    let minutes = span / (60 * SECOND) % 60;
    let rest = span % (60 * SECOND);
    let mut parts = Vec::with_capacity(3);
    if hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if minutes > 0 {
        parts.push(format!("{minutes}m"));
    }
    if rest > 0 {
        parts.push(decimal(rest / SECOND, rest % SECOND, 6) + "s");
    }
    parts.join(" ")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_spans_are_exact_and_readable() {
        let cases = [
            (0, "0s"),
            (7, "7us"),
            (250 * MILLISECOND, "250ms"),
            (12_500, "12.5ms"),
            (4_250_000, "4.25s"),
            (30 * SECOND, "30s"),
            (150 * SECOND, "2m 30s"),
            (180 * SECOND, "3m"),
            (3600 * SECOND + 300 * SECOND, "1h 5m"),
            (3600 * SECOND + 1_500_000, "1h 1.5s"),
        ];
        for (span, text) in cases {
            assert_eq!(HumanSpan(span).to_string(), text, "{span}");
        }
        assert_eq!(format!("{:>6}", HumanSpan(SECOND)), "    1s");
    }
}
