//! The numbers the shrinker makes smaller, and the round values it tries.
//!
//! Each knob reads one number of the document and writes a candidate with another;
//! the shrinker bisects between the knob's floor and its current value over round
//! values ([`round_between`]), so a shrunk file reads `duration = "1m 10s"`.

use toml::Value;

use super::doc::{number, number_of, Doc};
use crate::engine::{Span, MILLISECOND, SECOND};

/// Round steps for durations, in microseconds, coarsest first.
const SPAN_UNITS: [f64; 11] = [
    3_600e6, 600e6, 60e6, 10e6, 1e6, 1e5, 1e4, 1e3, 1e2, 1e1, 1.0,
];

/// Round steps for rates (requests per second), coarsest first.
const RATE_UNITS: [f64; 10] = [1e5, 1e4, 1e3, 100.0, 10.0, 1.0, 0.1, 0.01, 1e-3, 1e-4];

/// One number of the document.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Knob {
    /// The run's duration (what comes after it is cut off with it).
    Duration,
    /// The run's duration, shortened by cutting off its beginning (every instant
    /// moves earlier with it).
    Head,
    /// A stream's constant rate, or one number (`rps`, `rps_from`, `rps_to`) of one
    /// of its phases.
    Rate {
        stream: String,
        phase: Option<usize>,
        key: &'static str,
    },
    /// When a fault starts, its length kept: moved earlier, the run can end earlier.
    FaultStart(String),
    /// How long a fault lasts.
    FaultLength(String),
    /// When a script entry is sent.
    ScriptAt(String),
}

/// The knobs of `doc`, in the order that makes the later runs cheapest: the run's
/// length first (its end, then its beginning), then rates, then the windows, then the
/// run's length again.
pub(super) fn knobs(doc: &Doc) -> Vec<Knob> {
    let mut knobs = vec![Knob::Duration, Knob::Head];
    for label in doc.stream_labels() {
        match doc.rate(label) {
            Some(Value::Array(phases)) => {
                for (i, p) in phases.iter().enumerate() {
                    for key in ["rps", "rps_from", "rps_to"] {
                        if p.get(key).is_some() {
                            knobs.push(Knob::Rate {
                                stream: label.clone(),
                                phase: Some(i),
                                key,
                            });
                        }
                    }
                }
            }
            Some(_) => knobs.push(Knob::Rate {
                stream: label.clone(),
                phase: None,
                key: "rate",
            }),
            None => {}
        }
    }
    knobs.extend(doc.fault_labels().iter().cloned().map(Knob::FaultStart));
    knobs.extend(doc.fault_labels().iter().cloned().map(Knob::FaultLength));
    knobs.extend(doc.script_labels().iter().cloned().map(Knob::ScriptAt));
    knobs.extend([Knob::Duration, Knob::Head]);
    knobs
}

impl Knob {
    /// The number now, if the knob still applies.
    pub fn get(&self, doc: &Doc) -> Option<f64> {
        match self {
            Knob::Duration | Knob::Head => doc.duration().map(|d| d as f64),
            Knob::Rate { stream, phase, key } => {
                let rate = doc.rate(stream)?;
                match phase {
                    None => number_of(rate),
                    Some(i) => rate.get(*i)?.get(*key).and_then(number_of),
                }
            }
            Knob::FaultStart(label) => match doc.fault_window(label)? {
                // A window to the end of the run would grow if moved: only the
                // length knob touches it.
                (start, Some(_)) => Some(start as f64),
                (_, None) => None,
            },
            Knob::FaultLength(label) => {
                let (start, end) = doc.fault_window(label)?;
                let end = end.or_else(|| doc.duration())?;
                Some(end.saturating_sub(start) as f64)
            }
            Knob::ScriptAt(label) => doc.script_at(label).map(|t| t as f64),
        }
    }

    /// The least value worth trying.
    pub fn floor(&self) -> f64 {
        match self {
            Knob::Duration | Knob::Head => SECOND as f64,
            Knob::Rate { .. } | Knob::FaultStart(_) | Knob::ScriptAt(_) => 0.0,
            Knob::FaultLength(_) => MILLISECOND as f64,
        }
    }

    /// The round steps of its values.
    pub fn units(&self) -> &'static [f64] {
        match self {
            Knob::Rate { .. } => &RATE_UNITS,
            _ => &SPAN_UNITS,
        }
    }

    /// `doc` with the knob at `value`; none if it no longer applies.
    pub fn set(&self, doc: &Doc, value: f64) -> Option<Doc> {
        let span = value.max(0.0).round() as Span;
        match self {
            Knob::Duration => Some(doc.with_duration(span)),
            Knob::Head => {
                let duration = doc.duration()?;
                Some(doc.without_head(duration.checked_sub(span)?))
            }
            Knob::Rate { stream, phase, key } => {
                let mut rate = doc.rate(stream)?.clone();
                match phase {
                    None => rate = number(value),
                    Some(i) => {
                        let p = rate.as_array_mut()?.get_mut(*i)?.as_table_mut()?;
                        p.insert((*key).to_owned(), number(value));
                    }
                }
                doc.with_rate(stream, rate)
            }
            Knob::FaultStart(label) => {
                let (start, end) = doc.fault_window(label)?;
                let end = end?;
                doc.with_fault_window(label, span, span + (end - start))
            }
            Knob::FaultLength(label) => {
                let (start, _) = doc.fault_window(label)?;
                doc.with_fault_window(label, start, start + span.max(1))
            }
            Knob::ScriptAt(label) => doc.with_script_at(label, span),
        }
    }
}

/// The roundest value strictly between `lo` and `hi`, near their middle: the middle
/// rounded to the coarsest of `units` that still falls in the middle half of the gap.
/// None when no step fits (the two are a few finest steps apart).
pub(super) fn round_between(lo: f64, hi: f64, units: &[f64]) -> Option<f64> {
    let mid = lo + (hi - lo) / 2.0;
    units.iter().find_map(|&u| {
        let r = (mid / u).round() * u;
        // 3 x 0.1 is 0.30000000000000004: written out, it should read 0.3.
        let decimals = (-u.log10()).ceil().max(0.0) as usize;
        let r: f64 = format!("{r:.decimals$}").parse().unwrap_or(r);
        // Within the middle half, so that each step still halves the gap roughly.
        let quarter = (hi - lo) / 4.0;
        (r > lo && r < hi && r >= lo + quarter && r <= hi - quarter).then_some(r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_values_between() {
        // 0..3m: 2m is the roundest value in the middle half.
        assert_eq!(round_between(0.0, 180e6, &SPAN_UNITS), Some(120e6));
        // 0..1m: 30s (a whole minute is not inside).
        assert_eq!(round_between(0.0, 60e6, &SPAN_UNITS), Some(30e6));
        // 0..40 requests a second: 20.
        assert_eq!(round_between(0.0, 40.0, &RATE_UNITS), Some(20.0));
        // Tenths read as tenths.
        assert_eq!(round_between(0.25, 0.37, &RATE_UNITS), Some(0.3));
        // 61s..62s: 61.5s.
        assert_eq!(round_between(61e6, 62e6, &SPAN_UNITS), Some(61.5e6));
        // Adjacent microseconds: nothing between.
        assert_eq!(round_between(5.0, 6.0, &SPAN_UNITS), None);
        assert_eq!(round_between(5.0, 9.0, &SPAN_UNITS), Some(7.0));
        // Coarse where it fits: 1m..10m picks a whole minute.
        let r = round_between(60e6, 600e6, &SPAN_UNITS).unwrap();
        assert_eq!(r % 60e6, 0.0, "{r}");
    }
}
