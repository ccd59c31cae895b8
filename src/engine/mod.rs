//! The degradation engine: sans-IO state machines (admission, breaker, bulkhead, cache,
//! compute, modes, queue, retry, read-your-writes).
//!
//! Nothing in this module reads a clock, draws randomness on its own or does I/O.
//! The caller passes `now` (a [`Time`]) into every method that needs it and an RNG
//! (`&mut impl rand::Rng`) into every method that may jitter. Every state change is
//! pushed to the mechanism's event outbox, which the caller drains; nothing is only
//! logged. The same code therefore runs under the simulator's virtual clock and
//! under the live node's monotonic clock, and behaves identically for the same inputs.

use std::fmt;

pub mod admission;
pub mod breaker;
pub mod bulkhead;
pub mod cache;
pub mod compute;
mod key_index;
pub mod modes;
pub mod queue;
pub mod retry;
pub mod ryw;

/// An instant, in microseconds since the run (or the live node) started.
///
/// Integer on purpose: floats accumulate rounding that differs with evaluation
/// order, and simulated time must give byte-identical output for a seed.
pub type Time = u64;

/// A length of time in microseconds.
pub type Span = u64;

/// The longest span any configuration may name: 100 years (of 365.25 days).
///
/// Every configured duration is at most this, and every drawn latency is cut at it, so
/// that adding a few spans to an instant of a run (itself at most this long) stays far
/// below `u64::MAX` microseconds (about 584 000 years): time arithmetic cannot wrap.
pub const MAX_SPAN: Span = 36_525 * 24 * 3_600 * SECOND;

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
        if f.width().is_some() {
            // Built as a string first so that width and alignment flags apply to the
            // whole. Only then: the simulator writes spans into error texts by the
            // thousand, and the string cost more than the text.
            let mut text = String::new();
            write_span(&mut text, self.0)?;
            f.pad(&text)
        } else {
            write_span(f, self.0)
        }
    }
}

/// Writes `value` followed by the fraction `frac / 10^digits`, trailing zeros dropped.
fn write_decimal(w: &mut impl fmt::Write, value: u64, frac: u64, digits: u32) -> fmt::Result {
    if frac == 0 {
        return write!(w, "{value}");
    }
    let (mut frac, mut digits) = (frac, digits);
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    write!(w, "{value}.{frac:0width$}", width = digits as usize)
}

fn write_span(w: &mut impl fmt::Write, span: Span) -> fmt::Result {
    if span == 0 {
        return w.write_str("0s");
    }
    if span < MILLISECOND {
        return write!(w, "{span}us");
    }
    if span < SECOND {
        write_decimal(w, span / MILLISECOND, span % MILLISECOND, 3)?;
        return w.write_str("ms");
    }
    if span < 60 * SECOND {
        write_decimal(w, span / SECOND, span % SECOND, 6)?;
        return w.write_str("s");
    }
    let hours = span / (3600 * SECOND);
    let minutes = span / (60 * SECOND) % 60;
    let rest = span % (60 * SECOND);
    let mut separator = "";
    if hours > 0 {
        write!(w, "{hours}h")?;
        separator = " ";
    }
    if minutes > 0 {
        write!(w, "{separator}{minutes}m")?;
        separator = " ";
    }
    if rest > 0 {
        w.write_str(separator)?;
        write_decimal(w, rest / SECOND, rest % SECOND, 6)?;
        w.write_str("s")?;
    }
    Ok(())
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
    use proptest::prelude::*;

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
        assert_eq!(format!("{:<8}|", HumanSpan(150 * SECOND)), "2m 30s  |");
    }

    /// The straightforward way to build the text, piece by piece into strings: the
    /// writer, which avoids the strings, must say exactly the same.
    fn reference(span: Span) -> String {
        let decimal = |value: u64, frac: u64, digits: usize| {
            if frac == 0 {
                return value.to_string();
            }
            let text = format!("{frac:0digits$}");
            format!("{value}.{}", text.trim_end_matches('0'))
        };
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
        let (hours, minutes) = (span / (3600 * SECOND), span / (60 * SECOND) % 60);
        let rest = span % (60 * SECOND);
        let mut parts = Vec::new();
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

    proptest! {
        #[test]
        fn human_span_text_matches_the_reference(
            // Every magnitude equally often, from microseconds to the full u64 range.
            span in (0u32..64).prop_flat_map(|bits| 0..=(u64::MAX >> bits)),
        ) {
            prop_assert_eq!(HumanSpan(span).to_string(), reference(span));
        }
    }
}
