//! `[expect.sweep]`: what must hold across many seeds of a scenario, as opposed to
//! `[expect]`, which every single run must meet. A scenario that claims a general truth
//! ("a 3-minute outage never loses a write") states it here, so a sweep checks the
//! claim and not one seed's story. `brownout sweep` and `brownout test --sweep` judge
//! it (`sweep::expect`).

use serde::{Deserialize, Serialize};

use crate::engine::Span;

/// The sweep a scenario asks for and what must hold over it. A sweep's JSON report and
/// its shards' JSON Lines carry it, so `sweep --merge` judges the merged seeds as the
/// one-machine sweep does.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SweepExpectations {
    /// Seeds `0..seeds` are run when the command line names no range.
    pub seeds: u64,
    /// Share of seeds that meet every `[expect]` check, at least this.
    pub min_pass_rate: Option<f64>,
    /// Percentile bounds on figures across seeds, in a fixed order (the order of
    /// [`SweepFigure::ALL`], then of [`SweepPercentile::ALL`]).
    pub bounds: Vec<SweepBound>,
}

impl SweepExpectations {
    /// What a scenario file's `[expect.sweep]` could not have said, if anything: the
    /// parser's own checks, for a section read back from a shard's report or seed
    /// lines (a merge judges by it, and must not be steered by a hand-edited file into
    /// an overflow or a check that always passes).
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_SWEEP_SEEDS).contains(&self.seeds) {
            return Err(format!(
                "seeds must be 1 to {MAX_SWEEP_SEEDS}, got {}",
                self.seeds
            ));
        }
        if let Some(rate) = self.min_pass_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("min_pass_rate must be within 0..=1, got {rate}"));
            }
        }
        let rank = |b: &SweepBound| {
            let figure = SweepFigure::ALL.iter().position(|&f| f == b.figure);
            let percentile = SweepPercentile::ALL.iter().position(|&p| p == b.percentile);
            (figure, percentile)
        };
        if self.bounds.windows(2).any(|w| rank(&w[0]) >= rank(&w[1])) {
            return Err("bounds must be in order, each at most once".to_owned());
        }
        if let Some(b) = self
            .bounds
            .iter()
            .find(|b| b.figure == SweepFigure::Availability && b.limit > 1_000_000)
        {
            return Err(format!(
                "an availability bound is at most 1000000 millionths, got {}",
                b.limit
            ));
        }
        if self.min_pass_rate.is_none() && self.bounds.is_empty() {
            return Err("states nothing to check".to_owned());
        }
        Ok(())
    }
}

/// One bound: the `percentile` of `figure` across seeds is no worse than `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepBound {
    /// The figure.
    pub figure: SweepFigure,
    /// Which percentile of it (ordered from best to worst seed).
    pub percentile: SweepPercentile,
    /// The limit, in the figure's unit: millionths for availability, microseconds
    /// for spans, a count otherwise. A floor for availability, a ceiling for the rest.
    pub limit: u64,
}

/// A figure a sweep reports per seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepFigure {
    /// The run's availability (a floor: lower is worse).
    Availability,
    /// Oldest stale value served.
    StaleAge,
    /// Time the breakers spent open or half-open, summed.
    BreakerTimeOpen,
    /// Deepest write queue.
    QueueDepth,
    /// Delay from a hard fault's end to its breaker closing (a seed whose breaker
    /// never closed is worse than any delay); seeds without a hard fault are left out.
    RecoveryTime,
    /// Partial replies.
    Partial,
    /// Requests shed by admission control.
    Shed,
}

impl SweepFigure {
    /// Every figure, in the order bounds are kept and reported.
    pub const ALL: [SweepFigure; 7] = [
        SweepFigure::Availability,
        SweepFigure::StaleAge,
        SweepFigure::BreakerTimeOpen,
        SweepFigure::QueueDepth,
        SweepFigure::RecoveryTime,
        SweepFigure::Partial,
        SweepFigure::Shed,
    ];

    /// Its key under `[expect.sweep]`.
    pub fn key(self) -> &'static str {
        match self {
            SweepFigure::Availability => "min_availability",
            SweepFigure::StaleAge => "max_stale_age",
            SweepFigure::BreakerTimeOpen => "max_breaker_time_open",
            SweepFigure::QueueDepth => "max_queue_depth",
            SweepFigure::RecoveryTime => "max_recovery_time",
            SweepFigure::Partial => "max_partial",
            SweepFigure::Shed => "max_shed",
        }
    }

    /// Its name in words, as a sweep report's statistics name it.
    pub fn label(self) -> &'static str {
        match self {
            SweepFigure::Availability => "availability",
            SweepFigure::StaleAge => "max stale age",
            SweepFigure::BreakerTimeOpen => "breaker time open",
            SweepFigure::QueueDepth => "queue max depth",
            SweepFigure::RecoveryTime => "recovery time",
            SweepFigure::Partial => "partial replies",
            SweepFigure::Shed => "requests shed",
        }
    }

    /// Whether the limit is a floor (the figure must reach it) rather than a ceiling.
    pub fn is_floor(self) -> bool {
        self == SweepFigure::Availability
    }

    /// Whether the figure is a span of simulated time.
    pub fn is_span(self) -> bool {
        matches!(
            self,
            SweepFigure::StaleAge | SweepFigure::BreakerTimeOpen | SweepFigure::RecoveryTime
        )
    }
}

/// Which seed of the sweep, ordered from best to worst, a bound reads (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepPercentile {
    /// The median seed.
    P50,
    /// The seed that 95% of seeds match or beat.
    P95,
    /// The seed that 99% of seeds match or beat.
    P99,
    /// The worst seed.
    Worst,
}

impl SweepPercentile {
    /// Every percentile, in the order bounds are kept and reported.
    pub const ALL: [SweepPercentile; 4] = [
        SweepPercentile::P50,
        SweepPercentile::P95,
        SweepPercentile::P99,
        SweepPercentile::Worst,
    ];

    /// Its key in a bound's table (`{ p99 = ... }`).
    pub fn key(self) -> &'static str {
        match self {
            SweepPercentile::P50 => "p50",
            SweepPercentile::P95 => "p95",
            SweepPercentile::P99 => "p99",
            SweepPercentile::Worst => "worst",
        }
    }
}

/// Most seeds `[expect.sweep] seeds` may ask for: a test bench runs it on every
/// change, so a number past this is a typo rather than a plan.
pub const MAX_SWEEP_SEEDS: u64 = 1_000_000;

/// The default of `[expect.sweep] seeds`.
pub const DEFAULT_SWEEP_SEEDS: u64 = 100;

/// A bound's limit shown in the scenario's own terms.
pub fn format_limit(figure: SweepFigure, limit: u64) -> String {
    if figure == SweepFigure::Availability {
        format!("{}.{:04}%", limit / 10_000, limit % 10_000)
    } else if figure.is_span() {
        crate::engine::HumanSpan(limit as Span).to_string()
    } else {
        limit.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_refuses_what_no_scenario_file_could_state() {
        let bound = |figure, percentile, limit| SweepBound {
            figure,
            percentile,
            limit,
        };
        let good = SweepExpectations {
            seeds: 1000,
            min_pass_rate: Some(0.99),
            bounds: vec![
                bound(SweepFigure::Availability, SweepPercentile::P99, 995_000),
                bound(SweepFigure::StaleAge, SweepPercentile::P50, 1),
            ],
        };
        assert_eq!(good.check(), Ok(()));
        let with = |f: &dyn Fn(&mut SweepExpectations)| {
            let mut e = good.clone();
            f(&mut e);
            e.check().unwrap_err()
        };
        assert!(with(&|e| e.seeds = 0).contains("seeds"));
        assert!(with(&|e| e.min_pass_rate = Some(1e300)).contains("min_pass_rate"));
        assert!(with(&|e| e.min_pass_rate = Some(f64::NAN)).contains("min_pass_rate"));
        assert!(with(&|e| e.bounds.reverse()).contains("in order"));
        assert!(with(&|e| e.bounds[1] = e.bounds[0]).contains("in order"));
        assert!(with(&|e| e.bounds[0].limit = 1_000_001).contains("availability"));
        assert!(with(&|e| {
            e.min_pass_rate = None;
            e.bounds.clear();
        })
        .contains("nothing"));
    }
}
