//! The workload as configured: the arrival rate over time and the popularity of keys.
//! The simulator generates arrivals and draws keys from them (`sim::workload`).

use crate::engine::{ConfigError, Time, SECOND};

/// One phase of the arrival rate, over `[from, to)`. Rates are requests per second.
#[derive(Debug, Clone, PartialEq)]
pub enum RatePhase {
    /// A steady rate.
    Constant {
        /// Start (inclusive).
        from: Time,
        /// End (exclusive); after `from`.
        to: Time,
        /// Requests per second; 0 for an explicit quiet phase.
        rate_per_sec: f64,
    },
    /// A rate going linearly from `rate_from` at `from` to `rate_to` at `to`.
    Ramp {
        /// Start (inclusive).
        from: Time,
        /// End (exclusive); after `from`.
        to: Time,
        /// Requests per second at `from`.
        rate_from: f64,
        /// Requests per second at `to`.
        rate_to: f64,
    },
}

impl RatePhase {
    pub(crate) fn span(&self) -> (Time, Time) {
        match *self {
            RatePhase::Constant { from, to, .. } | RatePhase::Ramp { from, to, .. } => (from, to),
        }
    }

    /// `(rate at from, rate at to)`, per second.
    pub(crate) fn rates(&self) -> (f64, f64) {
        match *self {
            RatePhase::Constant { rate_per_sec, .. } => (rate_per_sec, rate_per_sec),
            RatePhase::Ramp {
                rate_from, rate_to, ..
            } => (rate_from, rate_to),
        }
    }
}

/// The arrival rate over the run: phases sorted by time, not overlapping. Between
/// phases, and after the last one, nothing arrives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RatePlan {
    /// The phases, sorted; each starts at or after the previous one ends.
    pub phases: Vec<RatePhase>,
}

impl RatePlan {
    /// Rejects negative, infinite or NaN rates, empty or backwards phases, and
    /// unsorted or overlapping phases. An empty plan is valid (no arrivals).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut previous_end = None;
        for (i, phase) in self.phases.iter().enumerate() {
            let (from, to) = phase.span();
            if to <= from {
                return Err(ConfigError::new(
                    format!("workload.phases[{i}].to"),
                    format!("must be after from ({from} us), got {to} us"),
                ));
            }
            if let Some(end) = previous_end {
                if from < end {
                    return Err(ConfigError::new(
                        format!("workload.phases[{i}].from"),
                        format!(
                            "phases must be sorted and must not overlap: this one starts at \
                             {from} us, before the previous one ends at {end} us"
                        ),
                    ));
                }
            }
            let rates: &[(&str, f64)] = match *phase {
                RatePhase::Constant { rate_per_sec, .. } => &[("rate_per_sec", rate_per_sec)],
                RatePhase::Ramp {
                    rate_from, rate_to, ..
                } => &[("rate_from", rate_from), ("rate_to", rate_to)],
            };
            for &(name, rate) in rates {
                if !(rate.is_finite() && rate >= 0.0) {
                    return Err(ConfigError::new(
                        format!("workload.phases[{i}].{name}"),
                        format!("must be a finite rate >= 0 per second, got {rate}"),
                    ));
                }
            }
            previous_end = Some(to);
        }
        Ok(())
    }

    /// The rate at `t`, per second (0 outside every phase).
    pub fn rate_at(&self, t: Time) -> f64 {
        self.phases
            .iter()
            .find(|p| {
                let (from, to) = p.span();
                from <= t && t < to
            })
            .map_or(0.0, |p| {
                let (from, to) = p.span();
                let (a, b) = p.rates();
                a + (b - a) * ((t - from) as f64 / (to - from) as f64)
            })
    }

    /// When the last phase ends (0 for an empty plan); nothing arrives from then on.
    pub fn end(&self) -> Time {
        self.phases.last().map_or(0, |p| p.span().1)
    }

    /// The expected number of arrivals over the whole plan.
    pub fn expected_arrivals(&self) -> f64 {
        self.phases
            .iter()
            .map(|p| {
                let (from, to) = p.span();
                let (a, b) = p.rates();
                (a + b) / 2.0 * (to - from) as f64 / SECOND as f64
            })
            .sum()
    }

    /// The highest rate of any phase, in requests per second (0 for an empty plan).
    pub fn peak_rate(&self) -> f64 {
        self.phases
            .iter()
            .map(|p| {
                let (a, b) = p.rates();
                a.max(b)
            })
            .fold(0.0, f64::max)
    }
}

/// The popularity of keys `1..=n`.
#[derive(Debug, Clone, PartialEq)]
pub enum Keys {
    /// Every key equally likely.
    Uniform {
        /// The number of keys; positive.
        n: u64,
    },
    /// Zipf: key `k` has weight `1 / k^s`, so key 1 is the most popular. Real caches
    /// see this skew: a few hot keys and a long cold tail.
    Zipf {
        /// The number of keys; positive and at most 2^53 (exact as a float).
        n: u64,
        /// The exponent; positive (1 is classic Zipf, larger is more skewed).
        s: f64,
    },
}

/// The largest key count a Zipf can address exactly: the sampler works in `f64`.
const MAX_ZIPF_KEYS: u64 = 1 << 53;

impl Keys {
    /// The number of keys (keys are `1..=count`).
    pub fn count(&self) -> u64 {
        match *self {
            Keys::Uniform { n } | Keys::Zipf { n, .. } => n,
        }
    }

    /// Rejects `n = 0`, a Zipf over more than 2^53 keys, and an exponent that is not
    /// a finite positive number.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = match *self {
            Keys::Uniform { n } | Keys::Zipf { n, .. } => n,
        };
        if n == 0 {
            return Err(ConfigError::new("workload.keys.n", "must be positive"));
        }
        if let Keys::Zipf { n, s } = *self {
            if n > MAX_ZIPF_KEYS {
                return Err(ConfigError::new(
                    "workload.keys.n",
                    format!("a zipf supports at most 2^53 keys, got {n}"),
                ));
            }
            if !(s.is_finite() && s > 0.0) {
                return Err(ConfigError::new(
                    "workload.keys.s",
                    format!("must be a finite exponent > 0, got {s}"),
                ));
            }
        }
        Ok(())
    }
}
