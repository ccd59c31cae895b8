//! The node's own CPU, measured from the work it simulates: how busy it is, and how
//! much that slows a request down.
//!
//! A scripted CPU curve knows nothing of the traffic: it cannot answer "does the
//! payments outage itself push us into degraded mode?", because the retries, the
//! fallbacks and the waiting that an outage causes cost the node nothing. Here every
//! request and every dependency call is charged the CPU time the service file says it
//! costs. Utilisation is that work over the last `window`, divided by what `cores`
//! can do in it, and it feeds the mode controller (plus whatever a scripted curve adds:
//! a noisy neighbour on the same machine).
//!
//! **Slowdown.** A busy node is a slow node. The model is the M/M/1 processor-sharing
//! queue's: a job that needs `s` of CPU on a server busy a fraction `ρ` of the time
//! takes `s / (1 - ρ)` on average. That is the simplest queueing law that has the
//! shape seen in practice (flat at low load, steep near saturation), needs no
//! distribution assumptions past the mean, and works on the utilisation already
//! measured. `ρ` is capped at [`MAX_RHO`] so the factor stays finite (at most 20):
//! past it the node is saturated, and admission control, not the queueing law, is
//! what bounds the damage.

use serde::Serialize;

use super::{ConfigError, Span, Time, MAX_SPAN, SECOND};

/// The utilisation the slowdown is computed at, at most: `1 / (1 - 0.95) = 20`.
pub const MAX_RHO: f64 = 0.95;
/// The window utilisation is measured over, when the file does not say.
pub const DEFAULT_WINDOW: Span = SECOND;
/// The shortest window: the node samples its CPU every tenth of it.
pub const MIN_WINDOW: Span = 10 * super::MILLISECOND;
/// The window is counted in this many buckets (so it slides by a tenth).
pub const BUCKETS: usize = 10;

/// The node's CPU, as a service file declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComputeConfig {
    /// Cores: the CPU time the node has per unit of time.
    pub cores: u32,
    /// Utilisation is measured over this much time, and sampled for the mode
    /// controller every tenth of it.
    pub window: Span,
    /// Whether a request's own CPU time is stretched by the slowdown (else the
    /// utilisation only feeds the modes).
    pub slowdown: bool,
}

impl ComputeConfig {
    /// Checks the figures.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cores == 0 || self.cores > 1_000_000 {
            return Err(ConfigError::new("cores", "must be between 1 and 1000000"));
        }
        // A sample every tenth of the window is an event: a window of microseconds
        // (a typo for seconds) would multiply a run's work by millions.
        if self.window < MIN_WINDOW || self.window > MAX_SPAN {
            return Err(ConfigError::new(
                "window",
                "must be at least 10ms and at most 100 years",
            ));
        }
        Ok(())
    }
}

/// What the node's CPU did over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ComputeStats {
    /// CPU time charged, in microseconds.
    pub work: u64,
    /// The highest utilisation sampled, in percent.
    pub peak: f64,
    /// Samples taken, and their sum, for the mean.
    pub samples: u64,
    /// Sum of the samples (percent).
    pub sum: f64,
}

/// The node's CPU: work charged in a sliding window of buckets.
pub struct Compute {
    config: ComputeConfig,
    /// Work per bucket, oldest first after `head`.
    buckets: [Span; BUCKETS],
    /// The bucket `now` falls in.
    head: usize,
    /// Where the head bucket starts.
    head_start: Time,
    bucket: Span,
    stats: ComputeStats,
}

impl Compute {
    /// A CPU configured by `config`.
    pub fn new(config: ComputeConfig) -> Result<Compute, ConfigError> {
        config.validate()?;
        let bucket = config.window / BUCKETS as Span;
        Ok(Compute {
            config,
            buckets: [0; BUCKETS],
            head: 0,
            head_start: 0,
            bucket,
            stats: ComputeStats::default(),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &ComputeConfig {
        &self.config
    }

    /// What it did so far.
    pub fn stats(&self) -> ComputeStats {
        self.stats
    }

    /// How often the mode controller should be fed: a bucket's length.
    pub fn sample_every(&self) -> Span {
        self.bucket
    }

    /// Moves the window to `now`, emptying the buckets it leaves behind.
    fn advance(&mut self, now: Time) {
        if now < self.head_start.saturating_add(self.bucket) {
            return;
        }
        let steps = (now - self.head_start) / self.bucket;
        if steps >= BUCKETS as u64 {
            self.buckets = [0; BUCKETS];
            self.head = 0;
        } else {
            for _ in 0..steps {
                self.head = (self.head + 1) % BUCKETS;
                self.buckets[self.head] = 0;
            }
        }
        self.head_start += steps * self.bucket;
    }

    /// Charges `work` of CPU time at `now`.
    #[inline]
    pub fn charge(&mut self, now: Time, work: Span) {
        if work == 0 {
            return;
        }
        self.advance(now);
        self.buckets[self.head] = self.buckets[self.head].saturating_add(work);
        self.stats.work = self.stats.work.saturating_add(work);
    }

    /// Utilisation over the window that ends at `now`, in percent (may pass 100 when
    /// more work was charged than the cores can do: the node is overloaded).
    pub fn utilisation(&mut self, now: Time) -> f64 {
        self.advance(now);
        let work = self
            .buckets
            .iter()
            .fold(0 as Span, |sum, &w| sum.saturating_add(w));
        let capacity = self.config.window as f64 * f64::from(self.config.cores);
        100.0 * work as f64 / capacity
    }

    /// Samples the utilisation at `now` for the mode controller (and the report).
    pub fn sample(&mut self, now: Time) -> f64 {
        let u = self.utilisation(now);
        self.stats.samples += 1;
        self.stats.sum += u;
        self.stats.peak = self.stats.peak.max(u);
        u
    }

    /// How long `work` of CPU time takes at `now`, at the utilisation measured then:
    /// `work / (1 - ρ)`, ρ capped at [`MAX_RHO`] (see the module doc).
    pub fn stretched(&mut self, now: Time, work: Span) -> Span {
        if !self.config.slowdown || work == 0 {
            return work;
        }
        let rho = (self.utilisation(now) / 100.0).clamp(0.0, MAX_RHO);
        (work as f64 / (1.0 - rho)).round() as Span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(cores: u32) -> Compute {
        Compute::new(ComputeConfig {
            cores,
            window: SECOND,
            slowdown: true,
        })
        .unwrap()
    }

    #[test]
    fn utilisation_is_work_over_what_the_cores_can_do_in_the_window() {
        let mut c = cpu(2);
        // 500 ms of work in the first tenth of a second, on 2 cores over 1 s: 25%.
        c.charge(0, 300_000);
        c.charge(50_000, 200_000);
        assert_eq!(c.utilisation(99_999), 25.0);
        // Still in the window 0.9 s later; gone once its bucket slides out.
        assert_eq!(c.utilisation(999_999), 25.0);
        assert_eq!(c.utilisation(1_000_000), 0.0);
        // A long gap empties everything at once.
        c.charge(5_000_000, 100_000);
        assert_eq!(c.utilisation(5_000_001), 5.0);
        assert_eq!(c.utilisation(60_000_000), 0.0);
        assert_eq!(c.stats().work, 600_000);
    }

    #[test]
    fn work_is_stretched_by_one_over_one_minus_rho_capped() {
        let mut c = cpu(1);
        assert_eq!(
            c.stretched(0, 1_000),
            1_000,
            "an idle node runs at full speed"
        );
        c.charge(0, 500_000);
        assert_eq!(c.stretched(1, 1_000), 2_000, "half busy: twice as long");
        c.charge(0, 10_000_000);
        assert_eq!(c.stretched(1, 1_000), 20_000, "saturated: capped at 20x");
        let mut flat = Compute::new(ComputeConfig {
            slowdown: false,
            ..c.config().clone()
        })
        .unwrap();
        flat.charge(0, 10_000_000);
        assert_eq!(flat.stretched(1, 1_000), 1_000);
    }

    #[test]
    fn samples_keep_the_peak_and_the_mean() {
        let mut c = cpu(1);
        c.charge(0, 800_000);
        assert_eq!(c.sample(100_000), 80.0);
        assert_eq!(c.sample(1_500_000), 0.0);
        let s = c.stats();
        assert_eq!((s.peak, s.samples, s.sum), (80.0, 2, 80.0));
    }

    #[test]
    fn nonsense_is_refused() {
        for (cores, window, field) in [(0, SECOND, "cores"), (1, 9_999, "window")] {
            let config = ComputeConfig {
                cores,
                window,
                slowdown: true,
            };
            assert_eq!(Compute::new(config).err().unwrap().field, field);
        }
    }
}
