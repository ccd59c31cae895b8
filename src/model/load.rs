//! The scenario's CPU load curve as configured: steps and ramps, noise, sampling
//! interval. The simulator evaluates and samples it (`sim::load`).

use crate::engine::{ConfigError, Span, Time, SECOND};

/// The CPU value (percent) before the first segment, by default.
pub const DEFAULT_INITIAL_CPU: f64 = 0.0;
/// How often the simulator samples the curve, by default: once a second, a typical
/// metrics scrape interval.
pub const DEFAULT_SAMPLE_EVERY: Span = SECOND;

/// One piece of a CPU curve. Values are percent, in `0.0..=100.0`.
#[derive(Debug, Clone, PartialEq)]
pub enum CpuSegment {
    /// From `at` on, the CPU is `cpu` (until the next segment).
    Step {
        /// When the value changes.
        at: Time,
        /// The new value.
        cpu: f64,
    },
    /// The CPU goes linearly from `cpu_from` at `from` to `cpu_to` at `to`, and holds
    /// `cpu_to` after that (until the next segment).
    Ramp {
        /// Start of the ramp; the value jumps to `cpu_from` here.
        from: Time,
        /// End of the ramp; strictly after `from`.
        to: Time,
        /// The value at `from`.
        cpu_from: f64,
        /// The value at `to` and after.
        cpu_to: f64,
    },
}

impl CpuSegment {
    fn start(&self) -> Time {
        match *self {
            CpuSegment::Step { at, .. } => at,
            CpuSegment::Ramp { from, .. } => from,
        }
    }

    fn end(&self) -> Time {
        match *self {
            CpuSegment::Step { at, .. } => at,
            CpuSegment::Ramp { to, .. } => to,
        }
    }
}

/// The description of a CPU curve, as a scenario gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuCurveConfig {
    /// The value before the first segment (default [`DEFAULT_INITIAL_CPU`]).
    pub initial: f64,
    /// The segments, sorted by start; each starts at or after the previous one ends,
    /// and strictly after the previous one starts. The last value holds forever.
    pub segments: Vec<CpuSegment>,
    /// Standard deviation of the gaussian noise [`crate::sim::load::CpuCurve::sample`] adds, in percent
    /// points; 0 (the default) for none.
    pub noise_stddev: f64,
    /// How often the simulator samples the curve (default [`DEFAULT_SAMPLE_EVERY`]).
    pub every: Span,
}

impl Default for CpuCurveConfig {
    fn default() -> Self {
        CpuCurveConfig {
            initial: DEFAULT_INITIAL_CPU,
            segments: Vec::new(),
            noise_stddev: 0.0,
            every: DEFAULT_SAMPLE_EVERY,
        }
    }
}

fn check_percent(field: impl FnOnce() -> String, value: f64) -> Result<(), ConfigError> {
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field(),
            format!("cpu must be within 0..=100 percent, got {value}"),
        ))
    }
}

impl CpuCurveConfig {
    /// Rejects values outside `0..=100`, ramps that do not go forward in time,
    /// unsorted or overlapping segments, negative noise and a zero sampling interval.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_percent(|| "cpu.initial".to_string(), self.initial)?;
        if !(self.noise_stddev.is_finite() && self.noise_stddev >= 0.0) {
            return Err(ConfigError::new(
                "cpu.noise_stddev",
                format!("must be a finite number >= 0, got {}", self.noise_stddev),
            ));
        }
        if self.every == 0 {
            return Err(ConfigError::new("cpu.every", "must be positive"));
        }
        let mut previous: Option<&CpuSegment> = None;
        for (i, segment) in self.segments.iter().enumerate() {
            match *segment {
                CpuSegment::Step { cpu, .. } => {
                    check_percent(|| format!("cpu.segments[{i}].cpu"), cpu)?;
                }
                CpuSegment::Ramp {
                    from,
                    to,
                    cpu_from,
                    cpu_to,
                } => {
                    check_percent(|| format!("cpu.segments[{i}].cpu_from"), cpu_from)?;
                    check_percent(|| format!("cpu.segments[{i}].cpu_to"), cpu_to)?;
                    if to <= from {
                        return Err(ConfigError::new(
                            format!("cpu.segments[{i}].to"),
                            format!(
                                "a ramp must end after it starts (from {from} us, to {to} us); \
                                 use a step for an instant change"
                            ),
                        ));
                    }
                }
            }
            if let Some(prev) = previous {
                if segment.start() < prev.end() || segment.start() == prev.start() {
                    return Err(ConfigError::new(
                        format!("cpu.segments[{i}]"),
                        format!(
                            "segments must be sorted and must not overlap: this one starts at \
                             {} us, the previous one spans {}..{} us",
                            segment.start(),
                            prev.start(),
                            prev.end()
                        ),
                    ));
                }
            }
            previous = Some(segment);
        }
        Ok(())
    }
}
