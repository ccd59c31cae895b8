//! The scenario's CPU load curve: steps and linear ramps, optionally with noise.
//!
//! The mode switcher reacts to CPU samples, so a scenario scripts the load it should
//! see ("at 60 s CPU ramps from 40 % to 95 % over 30 s, holds, drops back at 5 m").
//! The curve itself is deterministic ([`CpuCurve::cpu_at`]); real CPU readings jitter,
//! and hysteresis in the mode switcher exists precisely for that, so
//! [`CpuCurve::sample`] can add gaussian noise drawn from the caller's stream. The
//! simulator samples every [`CpuCurve::every`] and feeds the value to the engine.
//!
//! Segments must be sorted and must not overlap: with overlapping segments the value
//! would depend on a precedence rule that nobody reading the scenario can see.

use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::engine::{ConfigError, Span, Time};
use crate::model::load::{CpuCurveConfig, CpuSegment};

/// A validated CPU curve, ready to evaluate and sample.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuCurve {
    config: CpuCurveConfig,
    /// The segments as `(start, end, value at start, value at end)`; a step has
    /// `start == end`. Sorted by start, for a binary search.
    pieces: Vec<Piece>,
    noise: Option<Normal<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Piece {
    start: Time,
    end: Time,
    from: f64,
    to: f64,
}

impl CpuCurve {
    /// Validates `config` and prepares the curve.
    pub fn new(config: CpuCurveConfig) -> Result<CpuCurve, ConfigError> {
        config.validate()?;
        let pieces = config
            .segments
            .iter()
            .map(|s| match *s {
                CpuSegment::Step { at, cpu } => Piece {
                    start: at,
                    end: at,
                    from: cpu,
                    to: cpu,
                },
                CpuSegment::Ramp {
                    from,
                    to,
                    cpu_from,
                    cpu_to,
                } => Piece {
                    start: from,
                    end: to,
                    from: cpu_from,
                    to: cpu_to,
                },
            })
            .collect();
        let noise = (config.noise_stddev > 0.0).then(|| {
            Normal::new(0.0, config.noise_stddev).expect("validated: finite standard deviation")
        });
        Ok(CpuCurve {
            config,
            pieces,
            noise,
        })
    }

    /// The curve's value at `t`, without noise: the initial value before the first
    /// segment, linear inside a ramp, and the last reached value held after a segment.
    pub fn cpu_at(&self, t: Time) -> f64 {
        let idx = self.pieces.partition_point(|p| p.start <= t);
        let Some(p) = idx.checked_sub(1).map(|i| self.pieces[i]) else {
            return self.config.initial;
        };
        if t >= p.end {
            return p.to;
        }
        let fraction = (t - p.start) as f64 / (p.end - p.start) as f64;
        // The clamp only guards against a last-bit rounding step past an endpoint.
        (p.from + (p.to - p.from) * fraction).clamp(0.0, 100.0)
    }

    /// A reading at `t`: [`cpu_at`](Self::cpu_at) plus gaussian noise drawn from
    /// `rng`, clamped to `0..=100`. Without noise it draws nothing from `rng`.
    pub fn sample(&self, t: Time, rng: &mut impl Rng) -> f64 {
        let value = self.cpu_at(t);
        match &self.noise {
            Some(normal) => (value + normal.sample(rng)).clamp(0.0, 100.0),
            None => value,
        }
    }

    /// How often the simulator samples the curve.
    pub fn every(&self) -> Span {
        self.config.every
    }

    /// The configuration this curve was built from.
    pub fn config(&self) -> &CpuCurveConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SECOND;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn curve(segments: Vec<CpuSegment>) -> CpuCurve {
        CpuCurve::new(CpuCurveConfig {
            initial: 10.0,
            segments,
            ..CpuCurveConfig::default()
        })
        .unwrap()
    }

    fn step(at: Time, cpu: f64) -> CpuSegment {
        CpuSegment::Step { at, cpu }
    }

    fn ramp(from: Time, to: Time, cpu_from: f64, cpu_to: f64) -> CpuSegment {
        CpuSegment::Ramp {
            from,
            to,
            cpu_from,
            cpu_to,
        }
    }

    #[test]
    fn empty_curve_is_the_initial_value() {
        let c = curve(vec![]);
        assert_eq!(c.cpu_at(0), 10.0);
        assert_eq!(c.cpu_at(Time::MAX), 10.0);
        assert_eq!(c.every(), SECOND);
    }

    #[test]
    fn steps_hold_until_the_next_one() {
        let c = curve(vec![step(100, 50.0), step(200, 90.0)]);
        assert_eq!(c.cpu_at(0), 10.0);
        assert_eq!(c.cpu_at(99), 10.0);
        assert_eq!(c.cpu_at(100), 50.0);
        assert_eq!(c.cpu_at(199), 50.0);
        assert_eq!(c.cpu_at(200), 90.0);
        assert_eq!(c.cpu_at(1_000_000), 90.0);
    }

    #[test]
    fn ramps_interpolate_and_then_hold() {
        let c = curve(vec![ramp(1_000, 2_000, 40.0, 80.0), step(5_000, 20.0)]);
        assert_eq!(c.cpu_at(999), 10.0);
        assert_eq!(c.cpu_at(1_000), 40.0);
        assert_eq!(c.cpu_at(1_500), 60.0);
        assert_eq!(c.cpu_at(1_250), 50.0);
        assert_eq!(c.cpu_at(2_000), 80.0);
        assert_eq!(c.cpu_at(4_999), 80.0);
        assert_eq!(c.cpu_at(5_000), 20.0);
    }

    #[test]
    fn downward_ramp_and_step_right_at_its_end() {
        let c = curve(vec![ramp(0, 100, 100.0, 0.0), step(100, 70.0)]);
        assert_eq!(c.cpu_at(0), 100.0);
        assert_eq!(c.cpu_at(25), 75.0);
        assert_eq!(c.cpu_at(99), 1.0);
        assert_eq!(c.cpu_at(100), 70.0);
    }

    #[test]
    fn noise_is_deterministic_per_seed_and_clamped() {
        let c = CpuCurve::new(CpuCurveConfig {
            initial: 98.0,
            noise_stddev: 10.0,
            ..CpuCurveConfig::default()
        })
        .unwrap();
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..1_000)
                .map(|i| c.sample(i, &mut rng))
                .collect::<Vec<f64>>()
        };
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
        assert!(a.iter().all(|x| (0.0..=100.0).contains(x)));
        // Half the draws exceed 100 before clamping, so the clamp must show.
        assert!(a.iter().filter(|&&x| x == 100.0).count() > 300);
        assert!(a.iter().any(|&x| x < 98.0));
        let low = CpuCurve::new(CpuCurveConfig {
            initial: 1.0,
            noise_stddev: 10.0,
            ..CpuCurveConfig::default()
        })
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        assert!((0..100).any(|t| low.sample(t, &mut rng) == 0.0));
    }

    #[test]
    fn without_noise_sample_is_exact_and_draws_nothing() {
        let c = curve(vec![step(5, 42.0)]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(c.sample(5, &mut rng), 42.0);
        assert_eq!(rng, ChaCha8Rng::seed_from_u64(1));
    }

    fn err(config: CpuCurveConfig) -> ConfigError {
        CpuCurve::new(config).unwrap_err()
    }

    fn with(segments: Vec<CpuSegment>) -> CpuCurveConfig {
        CpuCurveConfig {
            segments,
            ..CpuCurveConfig::default()
        }
    }

    #[test]
    fn rejects_nonsense() {
        assert_eq!(err(with(vec![step(0, 100.5)])).field, "cpu.segments[0].cpu");
        assert_eq!(err(with(vec![step(0, -1.0)])).field, "cpu.segments[0].cpu");
        assert_eq!(
            err(with(vec![step(0, f64::NAN)])).field,
            "cpu.segments[0].cpu"
        );
        assert_eq!(
            err(with(vec![ramp(0, 10, 0.0, 101.0)])).field,
            "cpu.segments[0].cpu_to"
        );
        assert_eq!(
            err(with(vec![ramp(10, 5, 0.0, 1.0)])).field,
            "cpu.segments[0].to"
        );
        assert_eq!(
            err(with(vec![ramp(10, 10, 0.0, 1.0)])).field,
            "cpu.segments[0].to"
        );
        // Overlap: a step inside a ramp; unsorted steps; two steps at one instant.
        let overlap = err(with(vec![ramp(0, 100, 0.0, 1.0), step(50, 3.0)]));
        assert_eq!(overlap.field, "cpu.segments[1]");
        assert!(
            overlap.reason.contains("must not overlap"),
            "{}",
            overlap.reason
        );
        assert_eq!(
            err(with(vec![step(10, 1.0), step(5, 1.0)])).field,
            "cpu.segments[1]"
        );
        assert_eq!(
            err(with(vec![step(10, 1.0), step(10, 2.0)])).field,
            "cpu.segments[1]"
        );
        let bad = |c: CpuCurveConfig| err(c).field;
        assert_eq!(
            bad(CpuCurveConfig {
                initial: 200.0,
                ..CpuCurveConfig::default()
            }),
            "cpu.initial"
        );
        assert_eq!(
            bad(CpuCurveConfig {
                noise_stddev: -1.0,
                ..CpuCurveConfig::default()
            }),
            "cpu.noise_stddev"
        );
        assert_eq!(
            bad(CpuCurveConfig {
                every: 0,
                ..CpuCurveConfig::default()
            }),
            "cpu.every"
        );
        // Touching segments are fine.
        assert!(with(vec![ramp(0, 10, 0.0, 1.0), ramp(10, 20, 5.0, 6.0)])
            .validate()
            .is_ok());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Sorted, non-overlapping segments built from gaps, lengths and values.
    fn segments() -> impl Strategy<Value = Vec<CpuSegment>> {
        proptest::collection::vec((1u64..1_000, 0u64..1_000, 0.0..=100.0, 0.0..=100.0), 0..8)
            .prop_map(|parts| {
                let mut t = 0;
                parts
                    .into_iter()
                    .map(|(gap, len, a, b)| {
                        let start = t + gap;
                        t = start + len;
                        if len == 0 {
                            CpuSegment::Step { at: start, cpu: a }
                        } else {
                            CpuSegment::Ramp {
                                from: start,
                                to: start + len,
                                cpu_from: a,
                                cpu_to: b,
                            }
                        }
                    })
                    .collect()
            })
    }

    /// The model: scan all segments, the last one that started wins.
    fn model(initial: f64, segments: &[CpuSegment], t: Time) -> f64 {
        let mut value = initial;
        for s in segments {
            match *s {
                CpuSegment::Step { at, cpu } if at <= t => value = cpu,
                CpuSegment::Ramp {
                    from,
                    to,
                    cpu_from,
                    cpu_to,
                } if from <= t => {
                    value = if t >= to {
                        cpu_to
                    } else {
                        (cpu_from + (cpu_to - cpu_from) * ((t - from) as f64 / (to - from) as f64))
                            .clamp(0.0, 100.0)
                    }
                }
                _ => {}
            }
        }
        value
    }

    proptest! {
        #[test]
        fn matches_linear_scan_and_stays_in_range(
            segments in segments(),
            initial in 0.0..=100.0f64,
            times in proptest::collection::vec(0u64..20_000, 1..50),
        ) {
            let c = CpuCurve::new(CpuCurveConfig { initial, segments: segments.clone(), ..CpuCurveConfig::default() }).unwrap();
            for t in times {
                let v = c.cpu_at(t);
                prop_assert_eq!(v, model(initial, &segments, t));
                prop_assert!((0.0..=100.0).contains(&v));
            }
        }
    }
}
