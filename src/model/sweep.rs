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
