//! Latency distributions of simulated dependencies, sampled in whole microseconds.
//!
//! A scenario describes latency the way an engineer reads a dashboard: a constant, a
//! range, a mean, or a median and a 99th percentile. [`Latency`] is that description
//! (plain data, validated); [`Latency::sampler`] turns it once into a
//! [`LatencySampler`] that holds the prebuilt `rand_distr` objects, so that drawing a
//! latency on the hot path costs no logarithms or divisions beyond the draw itself.
//!
//! Samples are rounded to the nearest microsecond and saturate at `Span::MAX`; they
//! are never negative. Integer results keep the simulated clock an integer.

use rand::Rng;
use rand_distr::{Distribution, Exp, LogNormal};

use crate::engine::{ConfigError, Span, MAX_SPAN};
use crate::model::Latency;

/// The standard normal quantile of 0.99: a log-normal's p99 is `exp(mu + Z_99 * sigma)`.
pub const Z_99: f64 = 2.326_347_874_040_841;

impl Latency {
    /// Validates and prepares this distribution for sampling.
    pub fn sampler(&self) -> Result<LatencySampler, ConfigError> {
        self.validate()?;
        let inner = match *self {
            Latency::Constant(span) => Inner::Constant(span),
            Latency::Uniform { min, max } => Inner::Uniform { min, max },
            Latency::Exponential { mean } => Inner::Exponential(
                Exp::new(1.0 / mean as f64).expect("validated: the rate of a positive mean"),
            ),
            Latency::LogNormal { p50, p99 } => {
                let mu = (p50 as f64).ln();
                let sigma = ((p99 as f64).ln() - mu) / Z_99;
                Inner::LogNormal(
                    LogNormal::new(mu, sigma).expect("validated: sigma is finite and >= 0"),
                )
            }
        };
        Ok(LatencySampler {
            latency: self.clone(),
            inner,
        })
    }
}

/// A validated [`Latency`] with its distribution objects built, ready to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySampler {
    latency: Latency,
    inner: Inner,
}

#[derive(Debug, Clone, PartialEq)]
enum Inner {
    Constant(Span),
    Uniform { min: Span, max: Span },
    Exponential(Exp<f64>),
    LogNormal(LogNormal<f64>),
}

impl LatencySampler {
    /// Draws one latency: whole microseconds, rounded to nearest, at most
    /// [`MAX_SPAN`] (a heavy tail can draw any float, even infinity).
    ///
    /// A constant draws nothing from `rng`; every other kind draws on every call.
    #[inline]
    pub fn sample(&self, rng: &mut impl Rng) -> Span {
        match self.inner {
            Inner::Constant(span) => span,
            Inner::Uniform { min, max } => rng.random_range(min..=max),
            Inner::Exponential(exp) => to_span(exp.sample(rng)).min(MAX_SPAN),
            Inner::LogNormal(log_normal) => to_span(log_normal.sample(rng)).min(MAX_SPAN),
        }
    }

    /// The distribution this sampler was built from.
    pub fn latency(&self) -> &Latency {
        &self.latency
    }
}

/// Rounds a sample to whole microseconds, half away from zero; `as` saturates
/// (negative and NaN give 0, beyond `u64::MAX` gives `u64::MAX`), so no sample is
/// ever negative or wraps.
///
/// The same value as `us.round() as Span` for every input, without the call to libm's
/// `round` that the baseline x86-64 target makes (it was 0.5% of a long run): below
/// 2^53 the fraction `us - trunc(us)` is exact, and above it every float is whole.
#[inline]
fn to_span(us: f64) -> Span {
    let whole = us as Span;
    if us - whole as f64 >= 0.5 {
        // Saturating: past u64::MAX `whole` is already saturated.
        whole.saturating_add(1)
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(99)
    }

    fn sorted_samples(latency: Latency, n: usize) -> Vec<Span> {
        let sampler = latency.sampler().unwrap();
        let mut rng = rng();
        let mut v: Vec<Span> = (0..n).map(|_| sampler.sample(&mut rng)).collect();
        v.sort_unstable();
        v
    }

    fn within(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= want * rel
    }

    #[test]
    fn constant_is_exact() {
        let s = Latency::Constant(1234).sampler().unwrap();
        let mut rng = rng();
        for _ in 0..100 {
            assert_eq!(s.sample(&mut rng), 1234);
        }
    }

    #[test]
    fn uniform_stays_in_bounds_and_reaches_both_ends() {
        let v = sorted_samples(Latency::Uniform { min: 10, max: 20 }, 10_000);
        assert_eq!(v[0], 10);
        assert_eq!(v[v.len() - 1], 20);
        let degenerate = sorted_samples(Latency::Uniform { min: 5, max: 5 }, 10);
        assert!(degenerate.iter().all(|&x| x == 5));
    }

    #[test]
    fn log_normal_hits_its_median_and_p99() {
        let n = 100_000;
        let v = sorted_samples(
            Latency::LogNormal {
                p50: 20_000,
                p99: 250_000,
            },
            n,
        );
        let p50 = v[n / 2] as f64;
        let p99 = v[n * 99 / 100] as f64;
        assert!(within(p50, 20_000.0, 0.03), "p50 {p50}");
        assert!(within(p99, 250_000.0, 0.05), "p99 {p99}");
    }

    #[test]
    fn log_normal_with_equal_percentiles_is_constant() {
        let v = sorted_samples(Latency::LogNormal { p50: 700, p99: 700 }, 100);
        assert!(v.iter().all(|&x| x == 700), "{v:?}");
    }

    #[test]
    fn exponential_has_its_mean() {
        let n = 100_000;
        let v = sorted_samples(Latency::Exponential { mean: 5_000 }, n);
        let mean = v.iter().sum::<u64>() as f64 / n as f64;
        assert!(within(mean, 5_000.0, 0.02), "mean {mean}");
        // Median of an exponential is mean * ln 2.
        let median = v[n / 2] as f64;
        assert!(within(median, 5_000.0 * 2f64.ln(), 0.03), "median {median}");
    }

    #[test]
    fn huge_tails_are_cut_at_the_longest_span() {
        let s = Latency::LogNormal {
            p50: 1,
            p99: Span::MAX,
        }
        .sampler()
        .unwrap();
        let mut rng = rng();
        let mut saw_max = false;
        for _ in 0..10_000 {
            let sample = s.sample(&mut rng);
            assert!(sample <= MAX_SPAN, "{sample}");
            saw_max |= sample == MAX_SPAN;
        }
        assert!(saw_max);
        assert_eq!(to_span(f64::INFINITY), Span::MAX);
        assert_eq!(to_span(-3.0), 0);
        assert_eq!(to_span(f64::NAN), 0);
        assert_eq!(to_span(2.5), 3);
    }

    #[test]
    fn same_seed_same_samples() {
        let s = Latency::LogNormal { p50: 100, p99: 900 }.sampler().unwrap();
        let (mut a, mut b) = (rng(), rng());
        for _ in 0..100 {
            assert_eq!(s.sample(&mut a), s.sample(&mut b));
        }
        assert_eq!(s.latency(), &Latency::LogNormal { p50: 100, p99: 900 });
    }

    #[test]
    fn rejects_nonsense() {
        let field = |l: Latency| l.validate().unwrap_err().field;
        assert_eq!(field(Latency::Uniform { min: 3, max: 2 }), "latency.min");
        assert_eq!(field(Latency::Exponential { mean: 0 }), "latency.mean");
        assert_eq!(field(Latency::LogNormal { p50: 0, p99: 10 }), "latency.p50");
        assert_eq!(field(Latency::LogNormal { p50: 10, p99: 9 }), "latency.p99");
        assert!(Latency::LogNormal { p50: 10, p99: 9 }.sampler().is_err());
        let err = Latency::LogNormal { p50: 10, p99: 9 }
            .validate()
            .unwrap_err();
        assert_eq!(err.reason, "p99 (9 us) is less than p50 (10 us)");
        assert!(Latency::Constant(0).validate().is_ok());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The hand-written rounding is `round() as u64`, value for value.
    #[test]
    fn to_span_rounds_like_round_at_the_edges() {
        let edges = [
            0.0,
            -0.0,
            0.49999999999999994,
            0.5,
            1.5,
            2.5,
            -0.5,
            -7.3,
            4_503_599_627_370_495.5, // 2^52 - 0.5
            4_503_599_627_370_496.0,
            9_007_199_254_740_993.0,
            1e19,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MIN_POSITIVE,
        ];
        for x in edges {
            assert_eq!(to_span(x), x.round() as Span, "{x}");
        }
    }

    proptest! {
        #[test]
        fn to_span_rounds_like_round(x in proptest::num::f64::ANY) {
            prop_assert_eq!(to_span(x), x.round() as Span);
        }

        #[test]
        fn uniform_samples_are_in_range(min in 0u64..1_000_000, width in 0u64..1_000, seed: u64) {
            let s = Latency::Uniform { min, max: min + width }.sampler().unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for _ in 0..32 {
                let x = s.sample(&mut rng);
                prop_assert!((min..=min + width).contains(&x));
            }
        }

        /// Half the samples fall at or below the median (rounding is negligible at
        /// these magnitudes): 200 draws give 100 +- 7, so 40..=160 never flakes.
        #[test]
        fn log_normal_is_sane(p50 in 1_000u64..10_000_000, spread in 2u64..100, seed: u64) {
            let s = Latency::LogNormal { p50, p99: p50.saturating_mul(spread) }.sampler().unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let below = (0..200).filter(|_| s.sample(&mut rng) <= p50).count();
            prop_assert!((40..=160).contains(&below), "{} of 200 at or below p50", below);
        }
    }
}
