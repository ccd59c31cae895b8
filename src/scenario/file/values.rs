//! Values with their own syntax or range: durations and bounded numbers.
//!
//! Each is checked inside `Deserialize`, so that toml attaches the value's span to the
//! error and the message can point at the exact text that is wrong.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::engine::{Span, MAX_SPAN};

/// What every duration error says it expected.
const EXPECTED_DURATION: &str = "expected a duration such as \"250ms\" or \"3m\"";

/// A duration written as a human string (`"250ms"`, `"3m"`, `"1h 30m"`, `"0s"`), in
/// whole microseconds. Also used for instants, which are durations since the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Span);

/// Parses a human duration into whole microseconds, saying what was wrong if it cannot.
pub fn parse_duration(text: &str) -> Result<Span, String> {
    let parsed = humantime::parse_duration(text)
        .map_err(|e| format!("{EXPECTED_DURATION}, got {text:?} ({e})"))?;
    if parsed.subsec_nanos() % 1_000 != 0 {
        return Err(format!(
            "{EXPECTED_DURATION}, got {text:?}: simulated time counts whole microseconds"
        ));
    }
    match Span::try_from(parsed.as_micros()) {
        Ok(span) if span <= MAX_SPAN => Ok(span),
        _ => Err(format!(
            "{EXPECTED_DURATION}, got {text:?}: longer than the longest accepted, 100 years"
        )),
    }
}

/// Formats microseconds the way a scenario writes them (`"12m"`, `"1s 500ms"`).
pub fn format_span(span: Span) -> String {
    humantime::format_duration(Duration::from_micros(span)).to_string()
}

/// Rewrites the microsecond counts in an engine message (`"3000000us"`,
/// `"1000 us"`, `"5..10 us"`) as durations the way the file writes them (`"3s"`).
pub fn humanize_micros(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    // A number counts only at a word start, so that `p99` stays intact.
    let word_start = |i: usize| i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
    let digits_end = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    // The end of a `us` unit (optionally after one space) at `j`, if there is one.
    let unit_end = |j: usize| {
        let j = if bytes.get(j) == Some(&b' ') {
            j + 1
        } else {
            j
        };
        let end = j + 2;
        (message.get(j..end) == Some("us")
            && bytes.get(end).is_none_or(|b| !b.is_ascii_alphanumeric()))
        .then_some(end)
    };
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && word_start(i) {
            let first_end = digits_end(i);
            let first: Option<Span> = message[i..first_end].parse().ok();
            // A range `A..B us`: both ends are microseconds.
            let second_start = first_end + 2;
            let second_end = digits_end(second_start);
            if message.get(first_end..second_start) == Some("..") && second_end > second_start {
                if let (Some(a), Ok(b), Some(end)) = (
                    first,
                    message[second_start..second_end].parse::<Span>(),
                    unit_end(second_end),
                ) {
                    out.push_str(&format!("{}..{}", format_span(a), format_span(b)));
                    i = end;
                    continue;
                }
            }
            if let (Some(a), Some(end)) = (first, unit_end(first_end)) {
                out.push_str(&format_span(a));
                i = end;
                continue;
            }
            out.push_str(&message[i..first_end]);
            i = first_end;
            continue;
        }
        let c = message[i..].chars().next().expect("inside the string");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurVisitor;

        impl Visitor<'_> for DurVisitor {
            type Value = Dur;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"250ms\" or \"3m\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }

            // A bare number is the classic mistake (seconds? milliseconds?): say so
            // plainly rather than "invalid type".
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                Err(E::custom(format!("{EXPECTED_DURATION}, got {v}")))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Err(E::custom(format!("{EXPECTED_DURATION}, got {v}")))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!("{EXPECTED_DURATION}, got {v}")))
            }
        }

        deserializer.deserialize_any(DurVisitor)
    }
}

/// Defines a number type accepting integers and floats within a range, refusing NaN.
macro_rules! bounded_number {
    ($(#[$doc:meta])* $name:ident, $what:literal, $ok:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
        pub struct $name(pub f64);

        impl $name {
            fn check<E: de::Error>(value: f64, shown: &dyn fmt::Display) -> Result<Self, E> {
                let ok: fn(f64) -> bool = $ok;
                if ok(value) {
                    Ok($name(value))
                } else {
                    Err(E::custom(format!(concat!("expected ", $what, ", got {}"), shown)))
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct NumberVisitor;

                impl Visitor<'_> for NumberVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }

                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        $name::check(v as f64, &v)
                    }

                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        $name::check(v as f64, &v)
                    }

                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$name, E> {
                        $name::check(v, &v)
                    }
                }

                deserializer.deserialize_any(NumberVisitor)
            }
        }
    };
}

bounded_number!(
    /// A probability in `[0, 1]`.
    Probability,
    "a probability between 0 and 1",
    |x| (0.0..=1.0).contains(&x)
);

bounded_number!(
    /// A percentage in `[0, 100]`.
    Percent,
    "a percentage between 0 and 100",
    |x| (0.0..=100.0).contains(&x)
);

bounded_number!(
    /// A rate in requests per second: finite and `>= 0`.
    Rate,
    "a rate of requests per second >= 0",
    |x| x.is_finite() && x >= 0.0
);

bounded_number!(
    /// A finite number `>= 0` (weights, standard deviations).
    NonNegative,
    "a finite number >= 0",
    |x| x.is_finite() && x >= 0.0
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{MILLISECOND, SECOND};

    #[test]
    fn durations_in_microseconds() {
        assert_eq!(parse_duration("250ms"), Ok(250 * MILLISECOND));
        assert_eq!(parse_duration("3m"), Ok(180 * SECOND));
        assert_eq!(parse_duration("1h 30m"), Ok(5_400 * SECOND));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("7us"), Ok(7));
        let err = parse_duration("5x").unwrap_err();
        assert!(err.starts_with("expected a duration such as \"250ms\" or \"3m\", got \"5x\""));
        assert!(parse_duration("1ns")
            .unwrap_err()
            .contains("whole microseconds"));
        assert!(parse_duration("").is_err());
        assert_eq!(format_span(12 * 60 * SECOND), "12m");
        assert_eq!(format_span(1_500 * MILLISECOND), "1s 500ms");
    }

    #[test]
    fn engine_microseconds_become_durations() {
        assert_eq!(
            humanize_micros("must be a whole multiple of the bucket (3000000us), got 10000000us"),
            "must be a whole multiple of the bucket (3s), got 10s"
        );
        assert_eq!(
            humanize_micros("p99 (1000 us) is less than p50 (10000 us)"),
            "p99 (1ms) is less than p50 (10ms)"
        );
        assert_eq!(
            humanize_micros("starts at 5000000 us, the previous one spans 0..10000000 us"),
            "starts at 5s, the previous one spans 0s..10s"
        );
        assert_eq!(
            humanize_micros("got 12 users, 3 usable, 7 in 1..=5, é 4us"),
            "got 12 users, 3 usable, 7 in 1..=5, é 4us"
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a message shows as a duration reads back as the same span, so an
        /// error's suggestion can be pasted into the file.
        #[test]
        fn formatted_spans_parse_back(span in 0u64..=10 * 365 * 24 * 3_600 * 1_000_000) {
            prop_assert_eq!(parse_duration(&format_span(span)), Ok(span));
        }
    }
}
