//! The open-loop workload: when requests arrive, what kind they are, which key.
//!
//! Open loop on purpose: clients keep arriving at the scripted rate whether or not
//! the service keeps up, as real users do. A closed loop (each client waits for its
//! reply) slows down with the service and hides exactly the overload that graceful
//! degradation is for.
//!
//! Arrivals are a non-homogeneous Poisson process whose rate is piecewise linear
//! ([`RatePlan`]). [`Arrivals`] generates it by exact inversion of the cumulative rate:
//! each arrival draws one unit exponential `E` and advances time until the integral of
//! the rate over the advance equals `E`, crossing phase boundaries and zero-rate gaps
//! as needed. Unlike thinning, that uses exactly one draw per arrival, whatever the
//! shape of the rate, so a change to one phase shifts no draws except its own
//! arrivals'.

use rand::Rng;
use rand_distr::{Distribution, Exp1, Zipf};

use super::alias::AliasTable;
use crate::engine::{ConfigError, Time, SECOND};
use crate::model::workload::{Keys, RatePlan};

/// A generator of Poisson arrival times following a [`RatePlan`].
#[derive(Debug, Clone, PartialEq)]
pub struct Arrivals {
    pieces: Vec<Piece>,
    /// The phase the next arrival is searched in.
    phase: usize,
    /// The exact (unrounded) time of the last arrival, in microseconds.
    t: f64,
}

/// A phase with its rate per microsecond as `rate(t) = r0 + slope * (t - start)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Piece {
    start: Time,
    end: Time,
    r0: f64,
    r1: f64,
    slope: f64,
}

impl Arrivals {
    /// Validates `plan` and starts before its first phase.
    pub fn new(plan: &RatePlan) -> Result<Arrivals, ConfigError> {
        plan.validate()?;
        let per_us = SECOND as f64;
        let pieces = plan
            .phases
            .iter()
            .map(|p| {
                let (start, end) = p.span();
                let (a, b) = p.rates();
                let (r0, r1) = (a / per_us, b / per_us);
                Piece {
                    start,
                    end,
                    r0,
                    r1,
                    slope: (r1 - r0) / (end - start) as f64,
                }
            })
            .collect();
        Ok(Arrivals {
            pieces,
            phase: 0,
            t: 0.0,
        })
    }

    /// The time of the next arrival, or `None` once the plan has ended (and ever
    /// after). Times never decrease; several arrivals may share a microsecond.
    ///
    /// Draws one unit exponential from `rng` per call while the plan lasts, and
    /// nothing once it has ended.
    pub fn next(&mut self, rng: &mut impl Rng) -> Option<Time> {
        if self.phase >= self.pieces.len() {
            return None;
        }
        // The integral of the rate from the last arrival to the next one.
        let mut e: f64 = Exp1.sample(rng);
        while let Some(p) = self.pieces.get(self.phase) {
            let t0 = self.t.max(p.start as f64);
            let rate0 = p.r0 + p.slope * (t0 - p.start as f64);
            let mass = (rate0 + p.r1) * 0.5 * (p.end as f64 - t0).max(0.0);
            if e < mass {
                // Solve rate0 * x + slope * x^2 / 2 = e for x >= 0, in the form that
                // does not cancel when the slope is small or negative. With e < mass
                // the discriminant is at least rate(end)^2 >= 0 (up to rounding).
                let x = if p.slope == 0.0 && rate0 > 0.0 {
                    // A constant rate: the same value the general form gives (the
                    // correctly rounded sqrt(r*r) is r for any rate that does not
                    // underflow when squared, and the factors of 2 are exact), without
                    // the square root.
                    e / rate0
                } else {
                    let denominator = rate0 + (rate0 * rate0 + 2.0 * p.slope * e).max(0.0).sqrt();
                    if denominator > 0.0 {
                        2.0 * e / denominator
                    } else {
                        0.0
                    }
                };
                self.t = t0 + x;
                // `t` is never negative, so truncation is the floor (and needs no call
                // into libm). The clamp only guards against rounding onto the phase's end.
                return Some((self.t as Time).clamp(p.start, p.end - 1));
            }
            e -= mass;
            self.t = p.end as f64;
            self.phase += 1;
        }
        None
    }
}

/// A weighted choice among request kinds `0..n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    weights: Vec<f64>,
    /// Running sums of `weights`; the last is the total.
    cumulative: Vec<f64>,
}

impl Mix {
    /// A mix with kind `i` chosen with probability `weights[i] / sum(weights)`.
    /// Every weight must be finite and positive, and there must be at least one.
    pub fn new(weights: &[f64]) -> Result<Mix, ConfigError> {
        if weights.is_empty() {
            return Err(ConfigError::new(
                "workload.mix",
                "needs at least one request kind",
            ));
        }
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut total = 0.0;
        for (i, &w) in weights.iter().enumerate() {
            if !(w.is_finite() && w > 0.0) {
                return Err(ConfigError::new(
                    format!("workload.mix[{i}].weight"),
                    format!("must be a finite number > 0, got {w}"),
                ));
            }
            total += w;
            cumulative.push(total);
        }
        if !total.is_finite() {
            return Err(ConfigError::new(
                "workload.mix",
                "the weights add up to more than a float can hold",
            ));
        }
        Ok(Mix {
            weights: weights.to_vec(),
            cumulative,
        })
    }

    /// Picks a kind index: one uniform draw, then the first running sum above it.
    ///
    /// A linear scan rather than a binary search: a mix has at most one entry per
    /// request kind, and the scan stops early on the heavy kinds listed first.
    #[inline]
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        let last = self.cumulative.len() - 1;
        let u = rng.random::<f64>() * self.cumulative[last];
        self.cumulative[..last]
            .iter()
            .position(|&c| c > u)
            .unwrap_or(last)
    }

    /// The number of kinds (at least 1).
    pub fn kinds(&self) -> usize {
        self.weights.len()
    }

    /// The weights, as given.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
}

impl Keys {
    /// Validates and prepares the distribution for sampling.
    pub fn sampler(&self) -> Result<KeySampler, ConfigError> {
        self.validate()?;
        let inner = match *self {
            Keys::Uniform { n } => KeyInner::Uniform(n),
            Keys::Zipf { n, s } if n <= MAX_ZIPF_TABLE_KEYS => {
                // Weight 1 / k^s for k in 1..=n; index i of the table is key i + 1.
                let weights: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
                KeyInner::ZipfTable(
                    AliasTable::new(&weights).expect("validated: n >= 1, weights in (0, 1]"),
                )
            }
            Keys::Zipf { n, s } => KeyInner::Zipf(
                Zipf::new(n as f64, s).expect("validated: n >= 1 and s > 0"),
                n,
            ),
        };
        Ok(KeySampler {
            keys: self.clone(),
            inner,
        })
    }
}

/// Up to this many keys a Zipf is drawn from a precomputed alias table (8 bytes a
/// key, 8 MiB at the limit); beyond it, by rejection-inversion, which needs no table.
///
/// Why a table: every simulated read draws a key, and rejection-inversion costs a
/// `powf` and an `exp` per draw, which profiling put at a sixth of a long simulation.
/// An alias draw is two random numbers and one table read. Both give exactly the
/// Zipf distribution; they consume the random stream differently, so which one a
/// scenario uses is part of what its seed reproduces.
pub const MAX_ZIPF_TABLE_KEYS: u64 = 1 << 20;

/// A validated [`Keys`] with its distribution built, ready to pick keys.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySampler {
    keys: Keys,
    inner: KeyInner,
}

#[derive(Debug, Clone, PartialEq)]
enum KeyInner {
    Uniform(u64),
    /// Index `i` is key `i + 1`.
    ZipfTable(AliasTable),
    Zipf(Zipf<f64>, u64),
}

/// The random numbers of one key pick, drawn by [`KeySampler::draw`]; the same
/// sampler's [`KeySampler::key`] turns them into the key. For a table, the column and
/// the coin (the table not read yet); otherwise the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyDraw(u64);

impl KeySampler {
    /// Picks a key in `1..=n`.
    #[inline]
    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        self.key(self.draw(rng))
    }

    /// Draws what [`KeySampler::pick`] would draw, and for a table asks the CPU to start
    /// loading the entry it will read: an alias table is read at a uniformly random
    /// place, so that read misses the CPU's caches more than any other in a run.
    #[inline(always)]
    pub fn draw(&self, rng: &mut impl Rng) -> KeyDraw {
        KeyDraw(match &self.inner {
            KeyInner::Uniform(n) => rng.random_range(1..=*n),
            KeyInner::ZipfTable(table) => {
                let (column, coin) = table.draw(rng);
                table.prefetch(column);
                u64::from(column) << 32 | u64::from(coin)
            }
            // The sampler returns whole numbers in 1..=n; the clamp only guards the
            // float-to-integer edge.
            KeyInner::Zipf(zipf, n) => (zipf.sample(rng) as u64).clamp(1, *n),
        })
    }

    /// The key `draw`, made by this sampler's [`KeySampler::draw`], stands for.
    #[inline]
    pub fn key(&self, draw: KeyDraw) -> u64 {
        match &self.inner {
            KeyInner::ZipfTable(table) => {
                table.resolve((draw.0 >> 32) as u32, draw.0 as u32) as u64 + 1
            }
            KeyInner::Uniform(_) | KeyInner::Zipf(..) => draw.0,
        }
    }

    /// The distribution this sampler was built from.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workload::RatePhase;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn all_arrivals(plan: &RatePlan, seed: u64) -> Vec<Time> {
        let mut arrivals = Arrivals::new(plan).unwrap();
        let mut rng = rng(seed);
        let mut out = Vec::new();
        while let Some(t) = arrivals.next(&mut rng) {
            out.push(t);
        }
        assert_eq!(arrivals.next(&mut rng), None, "stays ended");
        out
    }

    fn constant(from: Time, to: Time, rate_per_sec: f64) -> RatePhase {
        RatePhase::Constant {
            from,
            to,
            rate_per_sec,
        }
    }

    fn ramp(from: Time, to: Time, rate_from: f64, rate_to: f64) -> RatePhase {
        RatePhase::Ramp {
            from,
            to,
            rate_from,
            rate_to,
        }
    }

    fn count_in(times: &[Time], from: Time, to: Time) -> usize {
        times.iter().filter(|&&t| from <= t && t < to).count()
    }

    #[test]
    fn constant_rate_gives_rate_times_duration() {
        let plan = RatePlan {
            phases: vec![constant(0, 100 * SECOND, 1_000.0)],
        };
        let times = all_arrivals(&plan, 1);
        let n = times.len() as f64;
        assert!((n - 100_000.0).abs() < 2_000.0, "{n} arrivals");
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(*times.last().unwrap() < 100 * SECOND);
        assert_eq!(plan.expected_arrivals(), 100_000.0);
        // Inter-arrival gaps are exponential: their mean is 1/rate = 1000 us.
        let mean_gap = (times[times.len() - 1] - times[0]) as f64 / (n - 1.0);
        assert!((mean_gap - 1_000.0).abs() < 20.0, "mean gap {mean_gap}");
    }

    #[test]
    fn ramp_counts_follow_the_rate() {
        // Rate 0 -> 1000/s over 100 s: the first half holds 1/4 of the 50 000.
        let plan = RatePlan {
            phases: vec![ramp(0, 100 * SECOND, 0.0, 1_000.0)],
        };
        let times = all_arrivals(&plan, 2);
        let first = count_in(&times, 0, 50 * SECOND) as f64;
        let second = count_in(&times, 50 * SECOND, 100 * SECOND) as f64;
        assert!((first - 12_500.0).abs() < 500.0, "first half {first}");
        assert!((second - 37_500.0).abs() < 1_000.0, "second half {second}");
        // And the first tenth holds 1 %.
        let tenth = count_in(&times, 0, 10 * SECOND) as f64;
        assert!((tenth - 500.0).abs() < 100.0, "first tenth {tenth}");
    }

    #[test]
    fn downward_ramp_to_zero() {
        let plan = RatePlan {
            phases: vec![ramp(0, 100 * SECOND, 1_000.0, 0.0)],
        };
        let times = all_arrivals(&plan, 3);
        let first = count_in(&times, 0, 50 * SECOND) as f64;
        let second = count_in(&times, 50 * SECOND, 100 * SECOND) as f64;
        assert!((first - 37_500.0).abs() < 1_000.0, "first half {first}");
        assert!((second - 12_500.0).abs() < 500.0, "second half {second}");
    }

    #[test]
    fn zero_rate_and_gaps_produce_nothing() {
        let s = SECOND;
        let plan = RatePlan {
            phases: vec![
                constant(0, 10 * s, 100.0),
                constant(10 * s, 20 * s, 0.0),
                // 20..30 s: no phase at all.
                ramp(30 * s, 40 * s, 0.0, 0.0),
                constant(40 * s, 50 * s, 100.0),
            ],
        };
        let times = all_arrivals(&plan, 4);
        assert_eq!(count_in(&times, 10 * s, 40 * s), 0);
        let before = count_in(&times, 0, 10 * s) as f64;
        let after = count_in(&times, 40 * s, 50 * s) as f64;
        assert!((before - 1_000.0).abs() < 150.0, "{before}");
        assert!((after - 1_000.0).abs() < 150.0, "{after}");
        assert!(*times.last().unwrap() < 50 * s);
        assert_eq!(plan.end(), 50 * s);
        assert_eq!(plan.rate_at(15 * s), 0.0);
        assert_eq!(plan.rate_at(25 * s), 0.0);
        assert_eq!(plan.rate_at(45 * s), 100.0);
    }

    #[test]
    fn empty_plan_never_arrives_and_draws_nothing() {
        let mut arrivals = Arrivals::new(&RatePlan::default()).unwrap();
        let mut r = rng(0);
        assert_eq!(arrivals.next(&mut r), None);
        assert_eq!(r, rng(0));
    }

    #[test]
    fn arrivals_are_deterministic_per_seed() {
        let plan = RatePlan {
            phases: vec![ramp(0, SECOND, 10.0, 5_000.0)],
        };
        assert_eq!(all_arrivals(&plan, 7), all_arrivals(&plan, 7));
        assert_ne!(all_arrivals(&plan, 7), all_arrivals(&plan, 8));
    }

    #[test]
    fn rejects_bad_plans() {
        let field = |phases| RatePlan { phases }.validate().unwrap_err().field;
        assert_eq!(
            field(vec![constant(0, 10, -1.0)]),
            "workload.phases[0].rate_per_sec"
        );
        assert_eq!(
            field(vec![constant(0, 10, f64::NAN)]),
            "workload.phases[0].rate_per_sec"
        );
        assert_eq!(
            field(vec![ramp(0, 10, 1.0, f64::INFINITY)]),
            "workload.phases[0].rate_to"
        );
        assert_eq!(field(vec![constant(10, 10, 1.0)]), "workload.phases[0].to");
        assert_eq!(
            field(vec![constant(0, 10, 1.0), constant(5, 20, 1.0)]),
            "workload.phases[1].from"
        );
        assert!(Arrivals::new(&RatePlan {
            phases: vec![constant(0, 10, 1.0), constant(10, 20, 1.0)]
        })
        .is_ok());
    }

    #[test]
    fn mix_frequencies_follow_weights() {
        let mix = Mix::new(&[1.0, 2.0, 7.0]).unwrap();
        assert_eq!(mix.kinds(), 3);
        let mut r = rng(5);
        let mut counts = [0usize; 3];
        for _ in 0..100_000 {
            counts[mix.pick(&mut r)] += 1;
        }
        for (count, expected) in counts.iter().zip([10_000.0, 20_000.0, 70_000.0]) {
            assert!(
                (*count as f64 - expected).abs() < expected * 0.03,
                "{counts:?}"
            );
        }
        let single = Mix::new(&[0.5]).unwrap();
        assert!((0..100).all(|_| single.pick(&mut r) == 0));
    }

    #[test]
    fn mix_rejects_nonsense() {
        assert_eq!(Mix::new(&[]).unwrap_err().field, "workload.mix");
        assert_eq!(
            Mix::new(&[1.0, 0.0]).unwrap_err().field,
            "workload.mix[1].weight"
        );
        assert_eq!(
            Mix::new(&[-1.0]).unwrap_err().field,
            "workload.mix[0].weight"
        );
        assert_eq!(
            Mix::new(&[f64::NAN]).unwrap_err().field,
            "workload.mix[0].weight"
        );
        assert_eq!(
            Mix::new(&[f64::MAX, f64::MAX]).unwrap_err().field,
            "workload.mix"
        );
    }

    fn key_counts(keys: Keys, n: usize, draws: usize) -> Vec<usize> {
        let sampler = keys.sampler().unwrap();
        let mut r = rng(6);
        let mut counts = vec![0usize; n + 1];
        for _ in 0..draws {
            let k = sampler.pick(&mut r) as usize;
            assert!((1..=n).contains(&k), "key {k}");
            counts[k] += 1;
        }
        counts
    }

    #[test]
    fn zipf_is_skewed_towards_key_one() {
        let counts = key_counts(Keys::Zipf { n: 100, s: 1.1 }, 100, 50_000);
        let top = (1..=100).max_by_key(|&k| counts[k]).unwrap();
        assert_eq!(top, 1);
        assert!(counts[1] > counts[2] && counts[2] > counts[3] && counts[3] > counts[10]);
        // With s = 1.1, key 1 is about 2^1.1 = 2.14 times as frequent as key 2.
        let ratio = counts[1] as f64 / counts[2] as f64;
        assert!((ratio - 2.14).abs() < 0.15, "ratio {ratio}");
        assert!(counts[100] > 0);
    }

    /// Both sides of the table bound draw the same distribution: key 1 is 2^s times as
    /// frequent as key 2, and keys stay in range.
    #[test]
    fn zipf_table_and_rejection_sampler_agree() {
        let s = 1.05;
        let expected = 2f64.powf(s);
        for n in [MAX_ZIPF_TABLE_KEYS, MAX_ZIPF_TABLE_KEYS + 1] {
            let sampler = Keys::Zipf { n, s }.sampler().unwrap();
            let table = matches!(sampler.inner, KeyInner::ZipfTable(_));
            assert_eq!(table, n <= MAX_ZIPF_TABLE_KEYS, "n = {n}");
            let mut r = rng(11);
            let (mut one, mut two) = (0u32, 0u32);
            for _ in 0..200_000 {
                match sampler.pick(&mut r) {
                    1 => one += 1,
                    2 => two += 1,
                    k => assert!((1..=n).contains(&k)),
                }
            }
            let ratio = f64::from(one) / f64::from(two);
            assert!((ratio - expected).abs() < 0.1, "n = {n}: ratio {ratio}");
        }
    }

    #[test]
    fn uniform_keys_cover_the_range_evenly() {
        let counts = key_counts(Keys::Uniform { n: 10 }, 10, 50_000);
        assert_eq!(counts[0], 0);
        for &c in &counts[1..] {
            assert!((c as f64 - 5_000.0).abs() < 300.0, "{counts:?}");
        }
        let one = key_counts(Keys::Uniform { n: 1 }, 1, 10);
        assert_eq!(one[1], 10);
    }

    #[test]
    fn keys_reject_nonsense() {
        let field = |k: Keys| k.sampler().unwrap_err().field;
        assert_eq!(field(Keys::Uniform { n: 0 }), "workload.keys.n");
        assert_eq!(field(Keys::Zipf { n: 0, s: 1.0 }), "workload.keys.n");
        assert_eq!(
            field(Keys::Zipf {
                n: u64::MAX,
                s: 1.0
            }),
            "workload.keys.n"
        );
        assert_eq!(field(Keys::Zipf { n: 10, s: 0.0 }), "workload.keys.s");
        assert_eq!(field(Keys::Zipf { n: 10, s: -1.0 }), "workload.keys.s");
        assert_eq!(field(Keys::Zipf { n: 10, s: f64::NAN }), "workload.keys.s");
        let sampler = Keys::Zipf { n: 10, s: 1.0 }.sampler().unwrap();
        assert_eq!(sampler.keys(), &Keys::Zipf { n: 10, s: 1.0 });
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::model::workload::RatePhase;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Sorted phases with gaps, rates up to 20 000/s over at most 8 x 10 ms.
    fn plan() -> impl Strategy<Value = RatePlan> {
        proptest::collection::vec(
            (
                0u64..5_000,
                1u64..10_000,
                0.0..20_000.0f64,
                0.0..20_000.0f64,
                any::<bool>(),
            ),
            0..8,
        )
        .prop_map(|parts| {
            let mut t = 0;
            let phases = parts
                .into_iter()
                .map(|(gap, len, a, b, is_ramp)| {
                    let from = t + gap;
                    t = from + len;
                    if is_ramp {
                        RatePhase::Ramp {
                            from,
                            to: t,
                            rate_from: a,
                            rate_to: b,
                        }
                    } else {
                        RatePhase::Constant {
                            from,
                            to: t,
                            rate_per_sec: a,
                        }
                    }
                })
                .collect();
            RatePlan { phases }
        })
    }

    proptest! {
        /// Arrivals are sorted, fall inside a phase that has a positive rate
        /// somewhere, and stop before the plan ends.
        #[test]
        fn arrivals_stay_inside_live_phases(plan in plan(), seed: u64) {
            let mut arrivals = Arrivals::new(&plan).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut last = 0;
            while let Some(t) = arrivals.next(&mut rng) {
                prop_assert!(t >= last);
                last = t;
                prop_assert!(t < plan.end());
                let phase = plan.phases.iter().find(|p| {
                    let (from, to) = p.span();
                    from <= t && t < to
                });
                prop_assert!(phase.is_some(), "arrival at {} outside every phase", t);
                let (a, b) = phase.unwrap().rates();
                prop_assert!(a > 0.0 || b > 0.0, "arrival at {} in a zero-rate phase", t);
            }
        }

        #[test]
        fn mix_picks_are_in_range(weights in proptest::collection::vec(0.001..100.0f64, 1..10), seed: u64) {
            let mix = Mix::new(&weights).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for _ in 0..64 {
                prop_assert!(mix.pick(&mut rng) < weights.len());
            }
        }

        #[test]
        fn zipf_keys_are_in_range(n in 1u64..1_000_000, s in 0.01..5.0f64, seed: u64) {
            let sampler = Keys::Zipf { n, s }.sampler().unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for _ in 0..32 {
                let k = sampler.pick(&mut rng);
                prop_assert!((1..=n).contains(&k));
            }
        }
    }
}
