//! `brownout sweep`: one scenario under many seeds, in parallel, with statistics across
//! the seeds and every failing seed listed with the command that replays it.
//!
//! The pipeline is `seeds -> per-seed summaries -> report`, and the report is a pure
//! function of the scenario and the *set* of summaries:
//!
//! - each seed runs on a local rayon pool (`--jobs` threads) without trace or digest,
//!   and its [`Report`] is cut down at once to a [`SeedResult`] (a few numbers and the
//!   failed expectations), so memory grows by a few dozen bytes per seed, not by a
//!   report's timeline;
//! - the summaries are sorted by seed and [`build`] computes every figure from them
//!   with integer arithmetic (nearest-rank percentiles, no averages, no hash maps), so
//!   the report is the same bytes whatever `--jobs` is and whatever order seeds end in;
//! - a shard (`--shard K/N`) runs every N-th seed of the range and its JSON report
//!   carries its summaries, so [`merge`] can rebuild the whole range's report with the
//!   same [`build`]: byte-identical to a sweep of the whole range on one machine.
//!
//! Seed ranges: `--seeds N` is seeds `0..N` (N seeds, starting at 0); `--seeds A..B` is
//! the half-open range from A up to but not including B. Shards are strided: seed `s`
//! belongs to shard `((s - A) mod N) + 1`, so each shard gets a sample of the whole
//! range (slow seeds are not bunched on one machine).

use std::fmt::{self, Write as _};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize, Serializer};

use crate::engine::{HumanSpan, Span};
use crate::model::{Scenario, SweepExpectations};
use crate::sim::report::Recovery;
use crate::sim::{self, Report, RunOptions};

pub mod expect;
mod failures;
pub mod vs;

/// The `format` tag of a sweep's JSON report; [`merge`] refuses any other. Version 2
/// carries the scenario's `[expect.sweep]`, which the merge judges: a version 1 report
/// lacks it, and merged would be judged differently from the one-machine sweep.
pub const FORMAT: &str = "brownout-sweep/2";

/// Most seeds one sweep may cover (shards included): at a fraction of a second per
/// seed that is already weeks of CPU, and it bounds the memory of the summaries.
pub const MAX_SEEDS: u64 = 10_000_000;

/// The percentiles reported for every figure, nearest rank.
const PERCENTILES: [u32; 3] = [50, 95, 99];

/// A sweep's problem with its input: printed as is, exit 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepError(pub String);

impl fmt::Display for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SweepError {}

fn error(message: impl Into<String>) -> SweepError {
    SweepError(message.into())
}

/// The message a panic carried (`panic!` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}

/// A half-open range of seeds, `start..end`, never empty once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    /// First seed.
    pub start: u64,
    /// One past the last seed.
    pub end: u64,
}

impl SeedRange {
    /// Parses `N` (seeds `0..N`) or `A..B` (A up to but not including B).
    pub fn parse(text: &str) -> Result<SeedRange, String> {
        const FORMS: &str = "expected N (seeds 0..N) or A..B (seeds A up to but not including B)";
        let number = |part: &str, what: &str| {
            part.trim()
                .parse::<u64>()
                .map_err(|_| format!("{what} '{part}' is not a whole number; {FORMS}"))
        };
        let range = match text.split_once("..") {
            None => SeedRange {
                start: 0,
                end: number(text, "seed count")?,
            },
            Some((a, b)) => SeedRange {
                start: number(a, "first seed")?,
                end: number(b, "end seed")?,
            },
        };
        if range.start > range.end {
            return Err(format!(
                "seed range {range} runs backwards (start {} is after end {}); {FORMS}",
                range.start, range.end
            ));
        }
        if range.is_empty() {
            return Err(format!("seed range {range} holds no seed; {FORMS}"));
        }
        if range.len() > MAX_SEEDS {
            return Err(format!(
                "seed range {range} holds {} seeds, more than the {MAX_SEEDS} a sweep may run; split it",
                range.len()
            ));
        }
        Ok(range)
    }

    /// How many seeds the range holds.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no seed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for SeedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Shard `index` of `count` (1-based): every `count`-th seed of the range, starting at
/// its `index`-th.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, `1..=count`.
    pub index: u64,
    /// How many shards the range is split into.
    pub count: u64,
}

impl Shard {
    /// Parses `K/N` with `1 <= K <= N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        const FORM: &str = "expected K/N, shard K (counted from 1) of N";
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("'{text}' is not a shard; {FORM}"))?;
        let number = |part: &str| {
            part.trim()
                .parse::<u64>()
                .map_err(|_| format!("'{part}' is not a whole number; {FORM}"))
        };
        let shard = Shard {
            index: number(k)?,
            count: number(n)?,
        };
        if shard.count == 0 {
            return Err(format!("'{text}' splits the seeds into no shard; {FORM}"));
        }
        if shard.index == 0 || shard.index > shard.count {
            return Err(format!(
                "there is no shard {} of {}: K must be 1..={}",
                shard.index, shard.count, shard.count
            ));
        }
        Ok(shard)
    }

    /// Whether `seed` of `range` belongs to this shard.
    pub fn contains(&self, range: SeedRange, seed: u64) -> bool {
        (range.start..range.end).contains(&seed)
            && (seed - range.start) % self.count + 1 == self.index
    }

    /// This shard's seeds of `range`, ascending.
    pub fn seeds(&self, range: SeedRange) -> Vec<u64> {
        let first = range.start.saturating_add(self.index - 1);
        // `count` <= `MAX_SEEDS` once checked against the range, so it fits a usize.
        let step = usize::try_from(self.count).unwrap_or(usize::MAX);
        (first..range.end).step_by(step).collect()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The nearest-rank `p`-th percentile of `sorted` (ordered from best to worst): the
/// value at rank `ceil(p / 100 * n)`, counted from 1. Always one of the values, so it
/// needs no interpolation and no float. `None` for no values.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: u32) -> Option<T> {
    let n = sorted.len() as u64;
    if n == 0 {
        return None;
    }
    let rank = (u64::from(p.min(100)) * n).div_ceil(100).max(1);
    Some(sorted[(rank - 1) as usize])
}

/// One expectation a seed broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedFailure {
    /// The expectation's name (its key in the scenario file).
    pub expectation: String,
    /// What the run measured, exactly as the run's own report says it.
    pub measured: String,
}

/// What a sweep keeps of one seed's run: the figures its statistics need and the
/// expectations it broke. Everything else of the [`Report`] is dropped at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// The run's availability in millionths (the report's 6-decimal figure, exactly).
    #[serde(rename = "availability", with = "ppm")]
    pub availability_ppm: u64,
    /// Oldest stale value served, over the dependencies, in microseconds.
    pub max_stale_age: Span,
    /// Time the breakers spent open or half-open, summed over the dependencies.
    pub breaker_time_open: Span,
    /// Deepest any write queue got.
    pub queue_max_depth: u64,
    /// Replies with an optional part missing (a declared service's; 0 for the
    /// seed's). Absent from shards written before it was kept: 0.
    #[serde(default)]
    pub partial: u64,
    /// Requests shed by admission control (0 without it). Absent from shards written
    /// before it was kept: 0.
    #[serde(default)]
    pub shed: u64,
    /// How long after the hard faults ended the breakers closed.
    pub recovery: Recovery,
    /// Broken expectations, in the scenario's order.
    pub failures: Vec<SeedFailure>,
}

impl SeedResult {
    /// Cuts a run's report down to what a sweep keeps.
    pub fn from_report(report: &Report) -> SeedResult {
        SeedResult {
            seed: report.seed,
            availability_ppm: to_ppm(report.availability),
            max_stale_age: report
                .dependencies
                .iter()
                .map(|d| d.max_stale_age)
                .max()
                .unwrap_or(0),
            breaker_time_open: report.dependencies.iter().map(|d| d.time_open).sum(),
            queue_max_depth: report
                .dependencies
                .iter()
                .map(|d| d.queue_max_depth)
                .max()
                .unwrap_or(0),
            partial: report.requests.last().map_or(0, |total| total.partial),
            shed: report.requests.last().map_or(0, |total| total.shed),
            recovery: report.recovery,
            failures: report
                .expectations
                .iter()
                .filter(|e| !e.pass)
                .map(|e| SeedFailure {
                    expectation: e.name.to_owned(),
                    measured: e.measured.clone(),
                })
                .collect(),
        }
    }
}

/// A share in `[0, 1]` as whole millionths. Reports round availability to 6 decimals,
/// so this is exact, and it keeps floats out of sorting and formatting.
fn to_ppm(share: f64) -> u64 {
    (share * 1e6).round().clamp(0.0, 1e6) as u64
}

/// Availability is written as a share in JSON (as in a run's report) and kept as
/// millionths: re-rounding on the way in makes the round trip exact even if a JSON
/// parser is a bit off in the last bit.
mod ppm {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ppm: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(*ppm as f64 / 1e6)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let share = f64::deserialize(d)?;
        if !(0.0..=1.0).contains(&share) {
            return Err(serde::de::Error::custom(format!(
                "availability {share} is not a share in 0..=1"
            )));
        }
        Ok(super::to_ppm(share))
    }
}

/// An availability figure (millionths), written as a share in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Availability(pub u64);

impl Serialize for Availability {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ppm::serialize(&self.0, s)
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Exact: millionths are hundredths of a thousandth of a percent.
        f.pad(&format!("{}.{:04}%", self.0 / 10_000, self.0 % 10_000))
    }
}

/// A recovery time for the statistics: a delay, or `never` (worse than any delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecoveryTime {
    /// Every breaker closed, the last this long after its fault ended.
    Within(Span),
    /// Some breaker was still not closed at the end of the run.
    Never,
}

impl Serialize for RecoveryTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RecoveryTime::Within(span) => s.serialize_u64(*span),
            RecoveryTime::Never => s.serialize_str("never"),
        }
    }
}

impl fmt::Display for RecoveryTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryTime::Within(span) => HumanSpan(*span).fmt(f),
            RecoveryTime::Never => f.pad("never"),
        }
    }
}

/// p50, p95, p99 and the worst value of a figure across seeds (nearest rank, values
/// ordered from best to worst: for availability, lower is worse, so `p95` is the
/// availability that 95% of seeds reach or beat and `worst` is the minimum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Percentiles<T> {
    /// Median.
    pub p50: T,
    /// 95th percentile.
    pub p95: T,
    /// 99th percentile.
    pub p99: T,
    /// The least favourable seed's value.
    pub worst: T,
}

impl<T: Copy> Percentiles<T> {
    /// From values sorted from best to worst; `None` for no values.
    fn of(sorted: &[T]) -> Option<Self> {
        let [p50, p95, p99] = PERCENTILES.map(|p| nearest_rank(sorted, p));
        Some(Percentiles {
            p50: p50?,
            p95: p95?,
            p99: p99?,
            worst: *sorted.last()?,
        })
    }
}

/// Recovery time across the seeds that had a hard fault (outage or hang) to recover from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryStats {
    /// Runs with at least one outage or hang.
    pub runs_with_hard_fault: u64,
    /// Of those, seeds where some breaker had not closed by the end of the run.
    pub never: u64,
    /// Percentiles over those seeds (`never` ranks above any delay); none without any.
    pub percentiles: Option<Percentiles<RecoveryTime>>,
}

/// Figures across seeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Availability (lower is worse).
    pub availability: Percentiles<Availability>,
    /// Oldest stale value served, max over dependencies, microseconds.
    pub max_stale_age: Percentiles<Span>,
    /// Breaker time open or half-open, summed over dependencies, microseconds.
    pub breaker_time_open: Percentiles<Span>,
    /// Deepest write queue, max over dependencies.
    pub queue_max_depth: Percentiles<u64>,
    /// Partial replies per run.
    pub partial: Percentiles<u64>,
    /// Requests shed per run.
    pub shed: Percentiles<u64>,
    /// Worst delay from a hard fault's end to its breaker closing.
    pub recovery_time: RecoveryStats,
}

/// One expectation's verdicts across seeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectationTally {
    /// Its name.
    pub name: String,
    /// What it expects, in words (the same for every seed).
    pub expected: String,
    /// Seeds where it held.
    #[serde(default)]
    pub passed: u64,
    /// Seeds where it failed.
    #[serde(default)]
    pub failed: u64,
}

/// One expectation broken by one seed, with the command that replays the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureLine {
    /// The seed.
    pub seed: u64,
    /// The expectation broken.
    pub expectation: String,
    /// What it expects.
    pub expected: String,
    /// What the run measured.
    pub measured: String,
    /// `brownout SCENARIO --seed N`: reproduces this failure exactly.
    pub replay: String,
}

/// What identifies a sweep: the scenario, the seeds and the shard.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepMeta {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file as given on the command line (replay commands use it).
    pub path: String,
    /// Digest of the scenario file's bytes: shards of different files do not merge.
    pub scenario_digest: String,
    /// The whole range of seeds.
    pub seeds: SeedRange,
    /// The shard this report covers, none for the whole range.
    pub shard: Option<Shard>,
    /// The scenario's expectations `(name, expected)`, in its order.
    pub expectations: Vec<(String, String)>,
    /// The scenario's `[expect.sweep]`, if it has one.
    pub expect_sweep: Option<SweepExpectations>,
}

/// A sweep's report: statistics, failures, and the per-seed results they came from
/// (which is what lets shard reports merge).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    /// [`FORMAT`].
    pub format: &'static str,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file as given, followed by its `--set` arguments if any.
    pub path: String,
    /// Digest of the scenario file's bytes.
    pub scenario_digest: String,
    /// The whole range of seeds.
    pub seeds: SeedRange,
    /// The shard covered, none for the whole range.
    pub shard: Option<Shard>,
    /// Seeds run.
    pub runs: u64,
    /// Seeds that met every expectation.
    pub passed: u64,
    /// Seeds that broke at least one.
    pub failed: u64,
    /// Per expectation, how many seeds met it and how many broke it.
    pub expectations: Vec<ExpectationTally>,
    /// The scenario's `[expect.sweep]`, if it has one: what the sweep as a whole is
    /// judged by (a shard carries it for the merge to judge; it judges nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_sweep: Option<SweepExpectations>,
    /// Figures across seeds.
    pub stats: Stats,
    /// Every broken expectation of every seed, by seed.
    pub failures: Vec<FailureLine>,
    /// Per seed, ascending.
    pub results: Vec<SeedResult>,
}

impl SweepReport {
    /// Whether every seed met every expectation.
    pub fn passed(&self) -> bool {
        self.failed == 0
    }
}

/// The report of `results` (any order; one per seed, at least one). A pure function of
/// `meta` and the set of results: this is what makes `--jobs` and sharding invisible.
pub fn build(meta: SweepMeta, mut results: Vec<SeedResult>) -> SweepReport {
    results.sort_unstable_by_key(|r| r.seed);
    let runs = results.len() as u64;
    let failed = results.iter().filter(|r| !r.failures.is_empty()).count() as u64;
    let expectations: Vec<ExpectationTally> = meta
        .expectations
        .iter()
        .map(|(name, expected)| {
            let broke = results
                .iter()
                .filter(|r| r.failures.iter().any(|f| &f.expectation == name))
                .count() as u64;
            ExpectationTally {
                name: name.clone(),
                expected: expected.clone(),
                passed: runs - broke,
                failed: broke,
            }
        })
        .collect();
    let expected_of = |name: &str| {
        meta.expectations
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(String::new, |(_, e)| e.clone())
    };
    let path = &meta.path;
    let failures = results
        .iter()
        .flat_map(|r| {
            r.failures.iter().map(move |f| FailureLine {
                seed: r.seed,
                expectation: f.expectation.clone(),
                expected: expected_of(&f.expectation),
                measured: f.measured.clone(),
                replay: replay_command(path, r.seed),
            })
        })
        .collect();
    SweepReport {
        format: FORMAT,
        stats: stats(&results),
        scenario: meta.scenario,
        path: meta.path,
        scenario_digest: meta.scenario_digest,
        seeds: meta.seeds,
        shard: meta.shard,
        runs,
        passed: runs - failed,
        failed,
        expectations,
        expect_sweep: meta.expect_sweep,
        failures,
        results,
    }
}

/// The command that replays one seed; the same text as [`Report::replay_command`].
/// `path` is the sweep's command arguments (the path, quoted, and any `--set`).
fn replay_command(path: &str, seed: u64) -> String {
    crate::replay::command_with_args(path, seed)
}

/// Sorted from best to worst, then the percentiles.
fn percentiles<T: Ord + Copy>(mut values: Vec<T>, worst_is_low: bool) -> Percentiles<T> {
    values.sort_unstable();
    if worst_is_low {
        values.reverse();
    }
    Percentiles::of(&values).expect("a sweep runs at least one seed")
}

fn stats(results: &[SeedResult]) -> Stats {
    let column = |f: fn(&SeedResult) -> u64| results.iter().map(f).collect::<Vec<_>>();
    let mut recoveries: Vec<RecoveryTime> = results
        .iter()
        .filter_map(|r| match r.recovery {
            Recovery::NoHardFault => None,
            Recovery::Within(span) => Some(RecoveryTime::Within(span)),
            Recovery::Never => Some(RecoveryTime::Never),
        })
        .collect();
    recoveries.sort_unstable();
    Stats {
        availability: percentiles(
            results
                .iter()
                .map(|r| Availability(r.availability_ppm))
                .collect(),
            true,
        ),
        max_stale_age: percentiles(column(|r| r.max_stale_age), false),
        breaker_time_open: percentiles(column(|r| r.breaker_time_open), false),
        queue_max_depth: percentiles(column(|r| r.queue_max_depth), false),
        partial: percentiles(column(|r| r.partial), false),
        shed: percentiles(column(|r| r.shed), false),
        recovery_time: RecoveryStats {
            runs_with_hard_fault: recoveries.len() as u64,
            never: recoveries
                .iter()
                .filter(|&&r| r == RecoveryTime::Never)
                .count() as u64,
            percentiles: Percentiles::of(&recoveries),
        },
    }
}

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The seed range.
    pub seeds: SeedRange,
    /// Run only this shard of it.
    pub shard: Option<Shard>,
    /// Worker threads.
    pub jobs: usize,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// The worker pool of `--jobs` threads and the progress bar (hidden unless asked for)
/// of a sweep over `seeds` seeds, its bar labelled `label`.
pub(crate) fn workers(
    options: &SweepOptions,
    label: &str,
    seeds: usize,
) -> Result<(rayon::ThreadPool, ProgressBar), SweepError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.max(1))
        .thread_name(|i| format!("sweep-{i}"))
        .build()
        .map_err(|e| error(format!("cannot start {} worker threads: {e}", options.jobs)))?;
    let bar = if options.progress {
        let bar = ProgressBar::new(seeds as u64);
        let template =
            format!("{label} {{pos}}/{{len}} seeds [{{elapsed_precise}}] {{wide_bar}} eta {{eta}}");
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    Ok((pool, bar))
}

/// Runs `scenario` (whose file's bytes have digest `scenario_digest`) under every seed
/// of the range or shard, in parallel, and builds the report.
///
/// Each seed runs without trace and without digest, as `brownout SCENARIO --seed N`
/// does, so a failing seed's replay command measures the same values.
pub fn run(
    scenario: &Scenario,
    scenario_digest: &str,
    options: &SweepOptions,
) -> Result<SweepReport, SweepError> {
    run_seeds(scenario, scenario_digest, options, |seed| {
        sim::run(scenario, RunOptions::plain(seed))
    })
}

/// Seeds that crashed whose panics a sweep error quotes in full; the rest are counted.
const CRASHES_SHOWN: usize = 10;

/// A run that panicked: which (`seed 17`, or with the side of a `--vs` sweep), the
/// panic's message, and the command that replays it.
pub(crate) struct Crash {
    pub(crate) label: String,
    pub(crate) message: String,
    pub(crate) replay: String,
}

/// The error of a sweep of `what` over `seeds` seeds in which runs crashed, in the
/// order given (by seed): the first [`CRASHES_SHOWN`] in full, the rest by label.
pub(crate) fn crashed(what: &str, seeds: usize, crashes: &[Crash]) -> SweepError {
    let mut text = format!(
        "brownout crashed on {} of {seeds} seeds of {what}: a bug in brownout, not a finding about the scenario; each replays exactly (please report it with the replay command):",
        crashes.len(),
    );
    for c in crashes.iter().take(CRASHES_SHOWN) {
        let _ = write!(
            text,
            "\n  {}: panicked: {}\n    replay: {}",
            c.label, c.message, c.replay
        );
    }
    if crashes.len() > CRASHES_SHOWN {
        let rest: Vec<&str> = crashes[CRASHES_SHOWN..]
            .iter()
            .map(|c| c.label.as_str())
            .collect();
        let _ = write!(text, "\n  and {}", rest.join(", "));
    }
    error(text)
}

/// [`run`] with the run of one seed given: the sweep proper.
///
/// A seed whose run panics does not take the sweep down with it (a thousand seeds
/// lost to one, and no word of which): the panic is caught, every other seed runs,
/// and the sweep fails naming each crashed seed, its panic message and the command
/// that replays it. A panic is a bug in brownout, not a finding about the scenario,
/// so it is an error (exit 2), not a failed expectation.
fn run_seeds(
    scenario: &Scenario,
    scenario_digest: &str,
    options: &SweepOptions,
    run_one: impl Fn(u64) -> io::Result<Report> + Sync,
) -> Result<SweepReport, SweepError> {
    let range = options.seeds;
    if range.is_empty() || range.len() > MAX_SEEDS {
        return Err(error(format!(
            "seed range {range} must hold 1 to {MAX_SEEDS} seeds"
        )));
    }
    let seeds = match options.shard {
        None => (range.start..range.end).collect::<Vec<_>>(),
        Some(shard) if shard.count > range.len() => {
            return Err(error(format!(
                "--shard {shard}: {} shards of the {} seeds {range} would leave some empty; use at most {} shards",
                shard.count,
                range.len(),
                range.len()
            )))
        }
        Some(shard) => shard.seeds(range),
    };
    let (pool, bar) = workers(options, "sweep", seeds.len())?;
    // The expectation list is the same for every seed (it comes from the file, the
    // measured values do not enter it): whichever seed ends first records it, and every
    // other seed is checked against it.
    let expectations: OnceLock<Vec<(String, String)>> = OnceLock::new();
    let outcomes: Vec<Result<io::Result<SeedResult>, String>> = pool.install(|| {
        seeds
            .par_iter()
            .map(|&seed| {
                // The run owns everything it touches (the scenario is only read), so
                // nothing half-updated is seen after a panic. Reading the report's
                // figures is part of the seed's work, caught with it.
                let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                    let report = run_one(seed)?;
                    let table: Vec<(String, String)> = report
                        .expectations
                        .iter()
                        .map(|e| (e.name.to_owned(), e.expected.clone()))
                        .collect();
                    Ok::<_, io::Error>((table, SeedResult::from_report(&report)))
                }));
                bar.inc(1);
                let (table, result) = match outcome {
                    Ok(Ok(ran)) => ran,
                    Ok(Err(e)) => return Ok(Err(e)),
                    Err(payload) => return Err(panic_message(payload.as_ref())),
                };
                let first = expectations.get_or_init(|| table.clone());
                assert_eq!(
                    first, &table,
                    "a scenario's expectations do not depend on the seed"
                );
                Ok(Ok(result))
            })
            .collect()
    });
    bar.finish_and_clear();
    let path = scenario.command_args();
    let crashes: Vec<Crash> = outcomes
        .iter()
        .zip(&seeds)
        .filter_map(|(o, &seed)| {
            o.as_ref().err().map(|message| Crash {
                label: format!("seed {seed}"),
                message: message.clone(),
                replay: replay_command(&path, seed),
            })
        })
        .collect();
    if !crashes.is_empty() {
        return Err(crashed(
            &scenario.path.display().to_string(),
            seeds.len(),
            &crashes,
        ));
    }
    // The first error by seed, not by finishing order, so the message is deterministic.
    let results = outcomes
        .into_iter()
        .zip(&seeds)
        .map(|(r, seed)| {
            r.expect("crashes were reported above")
                .map_err(|e| error(format!("{}: seed {seed}: {e}", scenario.path.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta = SweepMeta {
        scenario: scenario.name.clone(),
        // With `--set` arguments, so that replay commands repeat them.
        path: scenario.command_args(),
        scenario_digest: scenario_digest.to_owned(),
        seeds: range,
        shard: options.shard,
        expectations: expectations.into_inner().unwrap_or_default(),
        expect_sweep: scenario.expect.sweep.clone(),
    };
    Ok(build(meta, results))
}

/// What [`merge`] reads of a JSON sweep report: the identity and the per-seed results.
/// The derived figures (counts, statistics, failure lines) are recomputed from those.
/// (`crate::cluster` builds them from JSON Lines too.)
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ShardFile {
    pub(crate) format: String,
    pub(crate) scenario: String,
    pub(crate) path: String,
    pub(crate) scenario_digest: String,
    pub(crate) seeds: SeedRange,
    pub(crate) shard: Option<Shard>,
    pub(crate) expectations: Vec<ExpectationTally>,
    /// Absent from reports of scenarios without `[expect.sweep]`.
    #[serde(default)]
    pub(crate) expect_sweep: Option<SweepExpectations>,
    pub(crate) results: Vec<SeedResult>,
}

/// Merges the JSON reports of every shard of one sweep, `(name, text)` with the name
/// used in messages, into the report of the whole range: the same report a single
/// machine would have produced.
///
/// Refuses reports of different scenario files, seed ranges or shard counts, a shard
/// given twice or missing, and a shard whose results are not exactly its seeds.
pub fn merge(files: &[(String, String)]) -> Result<SweepReport, SweepError> {
    if files.is_empty() {
        return Err(error("--merge needs the shard reports to merge"));
    }
    let shards = files
        .iter()
        .map(|(name, text)| Ok((name.clone(), parse_shard(name, text)?)))
        .collect::<Result<Vec<_>, SweepError>>()?;
    merge_shards(shards)
}

/// Reads one shard's JSON report, `name` used in messages.
pub(crate) fn parse_shard(name: &str, text: &str) -> Result<ShardFile, SweepError> {
    let file: ShardFile = serde_json::from_str(text).map_err(|e| {
        error(format!(
            "{name}: not a sweep report (write shards with `brownout sweep ... --format json`): {e}"
        ))
    })?;
    if file.format != FORMAT {
        return Err(error(format!(
            "{name}: report format '{}', expected '{FORMAT}'",
            file.format
        )));
    }
    Ok(file)
}

/// [`merge`] of shard reports already read, `(name, shard)`.
pub(crate) fn merge_shards(shards: Vec<(String, ShardFile)>) -> Result<SweepReport, SweepError> {
    if shards.is_empty() {
        return Err(error("--merge needs the shard reports to merge"));
    }
    let (first_name, first) = &shards[0];
    let count = first.shard.map_or(1, |s| s.count);
    for (name, s) in &shards[1..] {
        if (&s.path, &s.scenario_digest, &s.scenario)
            != (&first.path, &first.scenario_digest, &first.scenario)
        {
            return Err(error(format!(
                "{name} sweeps {} (file digest {}) but {first_name} sweeps {} (file digest {}): shards of different scenarios do not merge",
                s.path, s.scenario_digest, first.path, first.scenario_digest
            )));
        }
        if s.seeds != first.seeds {
            return Err(error(format!(
                "{name} covers seeds {} but {first_name} covers seeds {}: shards of different ranges do not merge",
                s.seeds, first.seeds
            )));
        }
        let this_count = s.shard.map_or(1, |s| s.count);
        if this_count != count {
            return Err(error(format!(
                "{name} is one of {this_count} shards but {first_name} is one of {count}: shards of different splits do not merge"
            )));
        }
        let names = |f: &ShardFile| {
            f.expectations
                .iter()
                .map(|e| (e.name.clone(), e.expected.clone()))
                .collect::<Vec<_>>()
        };
        if names(s) != names(first) {
            return Err(error(format!(
                "{name} and {first_name} list different expectations"
            )));
        }
        if s.expect_sweep != first.expect_sweep {
            return Err(error(format!(
                "{name} and {first_name} carry different [expect.sweep] sections"
            )));
        }
    }
    if let Some(expect) = &first.expect_sweep {
        expect.check().map_err(|why| {
            error(format!(
                "{first_name}: its [expect.sweep] is not one a scenario could state: {why}"
            ))
        })?;
    }
    let range = first.seeds;
    if range.is_empty() || range.len() > MAX_SEEDS || count > range.len() {
        return Err(error(format!(
            "{first_name}: {count} shard(s) of seeds {range} is not a valid split"
        )));
    }
    // Each shard once, each holding exactly its own seeds.
    let mut seen: Vec<Option<&str>> = vec![None; count as usize];
    for (name, s) in &shards {
        let shard = s.shard.unwrap_or(Shard { index: 1, count: 1 });
        if shard.index == 0 || shard.index > shard.count {
            return Err(error(format!("{name}: there is no shard {shard}")));
        }
        let slot = &mut seen[(shard.index - 1) as usize];
        if let Some(other) = slot {
            return Err(error(format!(
                "shard {shard} is given twice ({other} and {name}): shards overlap"
            )));
        }
        *slot = Some(name.as_str());
        let want = shard.seeds(range);
        let have: Vec<u64> = s.results.iter().map(|r| r.seed).collect();
        if have != want {
            let extra = have.iter().find(|seed| !shard.contains(range, **seed));
            let detail = match extra {
                Some(seed) => format!("it holds seed {seed}, which is not in that shard"),
                None => format!(
                    "it holds {} of the shard's {} seeds",
                    have.len(),
                    want.len()
                ),
            };
            return Err(error(format!(
                "{name}: not the results of shard {shard} of seeds {range}: {detail}"
            )));
        }
        let known = |n: &str| s.expectations.iter().any(|e| e.name == n);
        if let Some(f) = s
            .results
            .iter()
            .flat_map(|r| &r.failures)
            .find(|f| !known(&f.expectation))
        {
            return Err(error(format!(
                "{name}: a seed broke '{}', which the report does not list",
                f.expectation
            )));
        }
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{}/{count}", i + 1))
        .collect();
    if !missing.is_empty() {
        // A batch engine numbers its tasks from 0 (`--shard auto/N`): say which task.
        let indices: Vec<String> = seen
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_none())
            .map(|(i, _)| i.to_string())
            .collect();
        return Err(error(format!(
            "shard(s) {} missing: a merge needs all {count} shards of seeds {range} (missing task index(es) of --shard auto/{count}, counted from 0: {})",
            missing.join(", "),
            indices.join(", ")
        )));
    }
    let meta = SweepMeta {
        scenario: first.scenario.clone(),
        path: first.path.clone(),
        scenario_digest: first.scenario_digest.clone(),
        seeds: range,
        shard: None,
        expectations: first
            .expectations
            .iter()
            .map(|e| (e.name.clone(), e.expected.clone()))
            .collect(),
        expect_sweep: first.expect_sweep.clone(),
    };
    let results = shards.into_iter().flat_map(|(_, s)| s.results).collect();
    Ok(build(meta, results))
}

impl SweepReport {
    /// The report as pretty JSON, with a final newline.
    pub fn render_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("sweep reports serialize") + "\n"
    }

    /// The report for people.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(
            w,
            "brownout sweep: {} ({}), seeds {}",
            self.scenario, self.path, self.seeds
        );
        if let Some(shard) = self.shard {
            let which = match shard.count {
                1 => "every seed".to_owned(),
                n => format!(
                    "every {} seed from {}",
                    ordinal(n),
                    self.seeds.start + shard.index - 1
                ),
            };
            let _ = writeln!(
                w,
                "  shard {shard}: {which} ({} runs); merge all {} shards' JSON reports with `brownout sweep --merge`",
                self.runs, shard.count
            );
        }
        let _ = writeln!(
            w,
            "  {} run(s): {} passed every expectation, {} failed",
            self.runs, self.passed, self.failed
        );
        let _ = writeln!(w);
        let _ = writeln!(w, "Expectations");
        // As wide as the longest name (a declared service's are dotted paths such as
        // `endpoints.product_page.min_availability`), and never narrower than before.
        let width = self
            .expectations
            .iter()
            .map(|e| e.name.len())
            .max()
            .unwrap_or(0)
            .max(24);
        let _ = writeln!(
            w,
            "  {:<width$} {:>8} {:>8}  expected",
            "", "passed", "failed"
        );
        for e in &self.expectations {
            let _ = writeln!(
                w,
                "  {:<width$} {:>8} {:>8}  {}",
                e.name, e.passed, e.failed, e.expected
            );
        }
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "Across seeds: nearest-rank percentiles over {} run(s), from the best run to the worst",
            self.runs
        );
        let _ = writeln!(
            w,
            "  {:<20} {:>16} {:>16} {:>16} {:>16}",
            "", "p50", "p95", "p99", "worst"
        );
        let row = |w: &mut String, label: &str, cells: [String; 4]| {
            let _ = writeln!(
                w,
                "  {:<20} {:>16} {:>16} {:>16} {:>16}",
                label, cells[0], cells[1], cells[2], cells[3]
            );
        };
        fn cells<T: fmt::Display>(p: &Percentiles<T>) -> [String; 4] {
            [
                p.p50.to_string(),
                p.p95.to_string(),
                p.p99.to_string(),
                p.worst.to_string(),
            ]
        }
        fn spans(p: &Percentiles<Span>) -> [String; 4] {
            [p.p50, p.p95, p.p99, p.worst].map(|v| HumanSpan(v).to_string())
        }
        let st = &self.stats;
        row(w, "availability", cells(&st.availability));
        row(w, "max stale age", spans(&st.max_stale_age));
        row(w, "breaker time open", spans(&st.breaker_time_open));
        row(w, "queue max depth", cells(&st.queue_max_depth));
        // Only a declared service's replies are ever partial: a seed sweep's table
        // stays as it was.
        if st.partial.worst > 0 {
            row(w, "partial replies", cells(&st.partial));
        }
        // Only admission control sheds: shown when some seed shed.
        if st.shed.worst > 0 {
            row(w, "requests shed", cells(&st.shed));
        }
        let r = &st.recovery_time;
        match &r.percentiles {
            Some(p) => row(w, "recovery time", cells(p)),
            None => {
                let _ = writeln!(w, "  {:<20} {:>16}", "recovery time", "n/a");
            }
        }
        let _ = writeln!(
            w,
            "  availability: lower is worse, so p95 is what 95% of runs reach or beat, worst the lowest"
        );
        let _ = writeln!(
            w,
            "  max stale age, queue max depth: each run's worst dependency; breaker time open: summed"
        );
        let _ = writeln!(
            w,
            "  recovery time: worst delay from an outage or hang's end to its breaker closing, over the"
        );
        let _ = writeln!(
            w,
            "    {} run(s) with one; never: a breaker still not closed at the end ({} run(s))",
            r.runs_with_hard_fault, r.never
        );
        let _ = writeln!(w);
        failures::render(w, self);
        s
    }
}

/// `2` -> "2nd", for "every 2nd seed".
fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A seed whose run panics: the other seeds still run, and the error names each
    /// crashed seed with its message and replay command, in seed order, whatever
    /// order the workers finished in.
    #[test]
    fn a_panicking_seed_is_named_with_its_replay_and_the_sweep_goes_on() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/sweep-fails.toml");
        let scenario = crate::scenario::load(&path).unwrap();
        let options = |end| SweepOptions {
            seeds: SeedRange { start: 0, end },
            shard: None,
            jobs: 2,
            progress: false,
        };
        let ran = std::sync::atomic::AtomicU64::new(0);
        let crash_on = |crashing: &'static [u64]| {
            let ran = &ran;
            let scenario = &scenario;
            move |seed: u64| {
                ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if crashing.contains(&seed) {
                    panic!("boom on {seed}");
                }
                sim::run(scenario, RunOptions::plain(seed))
            }
        };
        let err = run_seeds(&scenario, "0", &options(8), crash_on(&[5, 3])).unwrap_err();
        assert_eq!(
            ran.load(std::sync::atomic::Ordering::Relaxed),
            8,
            "every seed ran"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("brownout crashed on 2 of 8 seeds of "),
            "{text}"
        );
        let three = text.find("seed 3: panicked: boom on 3").expect(&text);
        let five = text.find("seed 5: panicked: boom on 5").expect(&text);
        assert!(three < five, "{text}");
        assert!(text.contains("sweep-fails.toml --seed 3\n"), "{text}");
        // Past ten crashes, the rest are listed by seed.
        let many: &'static [u64] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        let text = run_seeds(&scenario, "0", &options(12), crash_on(many))
            .unwrap_err()
            .to_string();
        assert_eq!(text.matches("panicked").count(), CRASHES_SHOWN, "{text}");
        assert!(text.ends_with("\n  and seed 10, seed 11"), "{text}");
        // Without a panic, the sweep is the plain one.
        let plain = run_seeds(&scenario, "0", &options(8), crash_on(&[])).unwrap();
        assert_eq!(plain, run(&scenario, "0", &options(8)).unwrap());
    }

    #[test]
    fn nearest_rank_picks_the_ceiling_rank() {
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(nearest_rank(&v, 50), Some(5));
        assert_eq!(nearest_rank(&v, 95), Some(10));
        assert_eq!(nearest_rank(&v, 90), Some(9));
        assert_eq!(nearest_rank(&v, 91), Some(10));
        assert_eq!(nearest_rank(&v, 1), Some(1));
        assert_eq!(nearest_rank(&v, 100), Some(10));
        // Rank at least 1, even for p = 0.
        assert_eq!(nearest_rank(&v, 0), Some(1));
        let v: Vec<u32> = (1..=200).collect();
        assert_eq!(nearest_rank(&v, 99), Some(198));
        assert_eq!(nearest_rank(&v, 50), Some(100));
        assert_eq!(nearest_rank(&[7u32], 99), Some(7));
        assert_eq!(nearest_rank::<u32>(&[], 50), None);
        // 8 values: p50 is the 4th, p95 and p99 the 8th.
        let v: Vec<u32> = (10..18).collect();
        assert_eq!(nearest_rank(&v, 50), Some(13));
        assert_eq!(nearest_rank(&v, 95), Some(17));
    }

    #[test]
    fn percentiles_run_from_best_to_worst() {
        let p = percentiles(vec![3u64, 1, 2, 5, 4], false);
        assert_eq!((p.p50, p.p95, p.p99, p.worst), (3, 5, 5, 5));
        // Availability: lower is worse, so the tail is the low end.
        let a = percentiles(
            [999_000, 1_000_000, 998_000, 990_000]
                .map(Availability)
                .to_vec(),
            true,
        );
        // Best to worst: 100%, 99.9%, 99.8%, 99%; p50 of 4 is rank 2.
        assert_eq!(a.p50, Availability(999_000));
        assert_eq!(a.worst, Availability(990_000));
        // Never ranks above any delay.
        let mut r = vec![
            RecoveryTime::Never,
            RecoveryTime::Within(5),
            RecoveryTime::Within(1),
        ];
        r.sort_unstable();
        assert_eq!(r.last(), Some(&RecoveryTime::Never));
        assert_eq!(Percentiles::of(&r).unwrap().p50, RecoveryTime::Within(5));
    }

    #[test]
    fn seed_ranges_parse() {
        assert_eq!(SeedRange::parse("8"), Ok(SeedRange { start: 0, end: 8 }));
        assert_eq!(
            SeedRange::parse("100..140"),
            Ok(SeedRange {
                start: 100,
                end: 140
            })
        );
        assert_eq!(SeedRange::parse("3..4").unwrap().len(), 1);
        let err = |s| SeedRange::parse(s).unwrap_err();
        assert!(err("5..2").contains("backwards"), "{}", err("5..2"));
        assert!(err("4..4").contains("no seed"));
        assert!(err("0").contains("no seed"));
        assert!(err("abc").contains("not a whole number"));
        assert!(err("1..x").contains("'x'"));
        assert!(err("-3").contains("not a whole number"));
        assert!(err("1..=5").contains("not a whole number"));
        assert!(err("").contains("not a whole number"));
        assert!(err("99999999999").contains("more than"));
    }

    #[test]
    fn shards_parse_and_partition_the_range() {
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert!(Shard::parse("4/3").unwrap_err().contains("no shard 4 of 3"));
        assert!(Shard::parse("0/3").unwrap_err().contains("no shard 0"));
        assert!(Shard::parse("1/0").unwrap_err().contains("no shard"));
        assert!(Shard::parse("3").unwrap_err().contains("K/N"));
        let range = SeedRange::parse("10..20").unwrap();
        let parts: Vec<Vec<u64>> = (1..=3)
            .map(|index| Shard { index, count: 3 }.seeds(range))
            .collect();
        assert_eq!(parts[0], vec![10, 13, 16, 19]);
        assert_eq!(parts[1], vec![11, 14, 17]);
        assert_eq!(parts[2], vec![12, 15, 18]);
        for (i, part) in parts.iter().enumerate() {
            let shard = Shard {
                index: i as u64 + 1,
                count: 3,
            };
            for seed in range.start..range.end {
                assert_eq!(shard.contains(range, seed), part.contains(&seed));
            }
        }
    }

    fn result(seed: u64, availability_ppm: u64, failures: &[(&str, &str)]) -> SeedResult {
        SeedResult {
            seed,
            availability_ppm,
            max_stale_age: seed * 1_000_000,
            breaker_time_open: 2 * seed,
            queue_max_depth: seed % 3,
            partial: 0,
            shed: 0,
            recovery: if seed % 2 == 0 {
                Recovery::Within(seed)
            } else {
                Recovery::NoHardFault
            },
            failures: failures
                .iter()
                .map(|(e, m)| SeedFailure {
                    expectation: (*e).to_owned(),
                    measured: (*m).to_owned(),
                })
                .collect(),
        }
    }

    fn meta(seeds: SeedRange, shard: Option<Shard>) -> SweepMeta {
        SweepMeta {
            scenario: "demo".into(),
            path: "scenarios/demo.toml".into(),
            scenario_digest: "00000000000000ff".into(),
            seeds,
            shard,
            expectations: vec![
                ("min_availability".into(), ">= 99.000%".into()),
                ("conservation".into(), "holds".into()),
            ],
            expect_sweep: None,
        }
    }

    fn results(range: SeedRange) -> Vec<SeedResult> {
        (range.start..range.end)
            .map(|s| {
                if s % 4 == 1 {
                    result(s, 980_000 + s, &[("min_availability", "98.000%")])
                } else {
                    result(s, 999_999 - s, &[])
                }
            })
            .collect()
    }

    #[test]
    fn the_report_does_not_depend_on_result_order() {
        let range = SeedRange { start: 0, end: 9 };
        let sorted = build(meta(range, None), results(range));
        let mut shuffled = results(range);
        shuffled.reverse();
        shuffled.swap(0, 4);
        let other = build(meta(range, None), shuffled);
        assert_eq!(sorted.render_text(), other.render_text());
        assert_eq!(sorted.render_json(), other.render_json());
        assert_eq!((sorted.runs, sorted.passed, sorted.failed), (9, 7, 2));
        assert_eq!(sorted.expectations[0].failed, 2);
        assert_eq!(sorted.expectations[1].failed, 0);
        assert_eq!(
            sorted.failures[0].replay,
            "brownout scenarios/demo.toml --seed 1"
        );
        assert_eq!(sorted.stats.recovery_time.runs_with_hard_fault, 5);
        assert_eq!(sorted.stats.availability.worst, Availability(980_001));
        let text = sorted.render_text();
        assert!(text.contains("98.0001%"), "{text}");
        assert!(text.contains("seed 5: replay with `brownout scenarios/demo.toml --seed 5`"));
    }

    fn shard_json(range: SeedRange, index: u64, count: u64) -> String {
        let shard = Shard { index, count };
        let rs = results(range)
            .into_iter()
            .filter(|r| shard.contains(range, r.seed))
            .collect();
        build(meta(range, Some(shard)), rs).render_json()
    }

    #[test]
    fn shards_merge_into_the_whole_report() {
        let range = SeedRange { start: 3, end: 14 };
        let whole = build(meta(range, None), results(range));
        let files: Vec<(String, String)> = [2, 3, 1]
            .map(|k| (format!("s{k}.json"), shard_json(range, k, 3)))
            .to_vec();
        let merged = merge(&files).unwrap();
        assert_eq!(merged.render_json(), whole.render_json());
        assert_eq!(merged.render_text(), whole.render_text());
        // A whole report merges into itself.
        let again = merge(&[("w.json".into(), whole.render_json())]).unwrap();
        assert_eq!(again, whole);
    }

    #[test]
    fn merge_refuses_what_does_not_add_up() {
        let range = SeedRange { start: 0, end: 12 };
        let s = |k| (format!("s{k}.json"), shard_json(range, k, 3));
        let err = |files: &[(String, String)]| merge(files).unwrap_err().0;
        assert!(err(&[s(1), s(2)]).contains("shard(s) 3/3 missing"));
        assert!(err(&[s(1), s(2), s(2), s(3)]).contains("given twice"));
        let other_range = (
            "r.json".to_owned(),
            shard_json(SeedRange { start: 0, end: 13 }, 3, 3),
        );
        assert!(err(&[s(1), s(2), other_range]).contains("different ranges"));
        let mut m = meta(range, Some(Shard { index: 3, count: 3 }));
        m.scenario_digest = "1234".into();
        let other_file = (
            "d.json".to_owned(),
            build(m, results(range).into_iter().skip(2).step_by(3).collect()).render_json(),
        );
        assert!(err(&[s(1), s(2), other_file]).contains("different scenarios"));
        let four = ("f.json".to_owned(), shard_json(range, 4, 4));
        assert!(err(&[s(1), s(2), four]).contains("different splits"));
        // Tampered results: shard 3 holding a seed of shard 1.
        let mut wrong = results(range);
        wrong.retain(|r| r.seed % 3 == 2 || r.seed == 0);
        let wrong = (
            "w.json".to_owned(),
            build(meta(range, Some(Shard { index: 3, count: 3 })), wrong).render_json(),
        );
        assert!(err(&[s(1), s(2), wrong]).contains("seed 0, which is not in that shard"));
        assert!(err(&[("x.json".into(), "{}".into())]).contains("not a sweep report"));
        assert!(err(&[]).contains("needs the shard reports"));
    }

    #[test]
    fn availability_survives_json_exactly() {
        for ppm in [0, 1, 999_999, 1_000_000, 123_457, 995_001] {
            let r = SeedResult {
                availability_ppm: ppm,
                ..result(1, 0, &[])
            };
            let back: SeedResult =
                serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(back, r);
        }
        assert_eq!(Availability(999_980).to_string(), "99.9980%");
        assert_eq!(Availability(1_000_000).to_string(), "100.0000%");
        assert_eq!(Availability(5).to_string(), "0.0005%");
    }

    /// The recovery figure is the one `breaker_closes_within` checks, and a seed's
    /// summary keeps the report's figures.
    #[test]
    fn seed_results_agree_with_the_report() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/sweep-fails.toml");
        let scenario = crate::scenario::load(std::path::Path::new(path)).unwrap();
        let mut kinds = BTreeSet::new();
        for seed in 0..6 {
            let report = sim::run(&scenario, RunOptions::plain(seed)).unwrap();
            let r = SeedResult::from_report(&report);
            let closes = report
                .expectations
                .iter()
                .find(|e| e.name == "breaker_closes_within")
                .unwrap();
            match r.recovery {
                Recovery::Within(d) => {
                    assert_eq!(closes.measured, format!("worst {}", HumanSpan(d)));
                    kinds.insert("within");
                }
                Recovery::Never => {
                    assert!(closes.measured.starts_with("never"), "{}", closes.measured);
                    assert!(!closes.pass);
                    kinds.insert("never");
                }
                Recovery::NoHardFault => {
                    assert_eq!(closes.measured, "no outage or hang in this run");
                    kinds.insert("none");
                }
            }
            let stale = report
                .expectations
                .iter()
                .find(|e| e.name == "max_stale_age")
                .unwrap();
            assert_eq!(stale.measured, HumanSpan(r.max_stale_age).to_string());
            assert_eq!(r.availability_ppm as f64 / 1e6, report.availability);
            let failed: Vec<&str> = report
                .expectations
                .iter()
                .filter(|e| !e.pass)
                .map(|e| e.name)
                .collect();
            let kept: Vec<&str> = r.failures.iter().map(|f| f.expectation.as_str()).collect();
            assert_eq!(kept, failed);
        }
        assert!(
            kinds.contains("within") && kinds.contains("never"),
            "{kinds:?}"
        );
    }

    #[test]
    fn ordinals() {
        let o: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
            .map(ordinal)
            .to_vec();
        assert_eq!(
            o,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
                "111th"
            ]
        );
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn result(seed: u64, salt: u64) -> SeedResult {
        let x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
        SeedResult {
            seed,
            availability_ppm: 990_000 + x % 10_001,
            max_stale_age: x % 1_000_000_000,
            breaker_time_open: (x >> 8) % 1_000_000_000,
            queue_max_depth: (x >> 16) % 5_000,
            partial: (x >> 24) % 3,
            shed: (x >> 28) % 4,
            recovery: match x % 3 {
                0 => Recovery::NoHardFault,
                1 => Recovery::Within((x >> 4) % 100_000_000),
                _ => Recovery::Never,
            },
            failures: if x % 4 == 0 {
                vec![SeedFailure {
                    expectation: "max_stale_age".into(),
                    measured: format!("{}", x % 1000),
                }]
            } else {
                Vec::new()
            },
        }
    }

    fn meta(seeds: SeedRange, shard: Option<Shard>) -> SweepMeta {
        SweepMeta {
            scenario: "p".into(),
            path: "p.toml".into(),
            scenario_digest: "0".into(),
            seeds,
            shard,
            expectations: vec![("max_stale_age".into(), "<= 1s".into())],
            expect_sweep: None,
        }
    }

    proptest! {
        /// Nearest rank against its definition: the smallest value such that at least
        /// p% of the values are at or below it.
        #[test]
        fn nearest_rank_matches_its_definition(
            mut values in prop::collection::vec(0u32..50, 1..80),
            p in 1u32..=100,
        ) {
            values.sort_unstable();
            let n = values.len() as u64;
            let model = values
                .iter()
                .copied()
                .find(|&v| values.iter().filter(|&&x| x <= v).count() as u64 * 100 >= u64::from(p) * n)
                .unwrap();
            prop_assert_eq!(nearest_rank(&values, p), Some(model));
        }

        /// The shards of a range partition it, and their reports merge into the report
        /// of the whole range, byte for byte, whatever order they come in.
        #[test]
        fn shards_partition_and_merge(
            start in 0u64..1_000,
            len in 1u64..60,
            count_pick in 0u64..1_000,
            salt in any::<u64>(),
            rotate in 0usize..8,
        ) {
            let range = SeedRange { start, end: start + len };
            let count = count_pick % len + 1;
            let mut all: Vec<u64> = Vec::new();
            let mut files = Vec::new();
            for index in 1..=count {
                let shard = Shard { index, count };
                let seeds = shard.seeds(range);
                prop_assert!(!seeds.is_empty());
                all.extend(&seeds);
                let results = seeds.iter().map(|&s| result(s, salt)).collect();
                files.push((format!("{index}"), build(meta(range, Some(shard)), results).render_json()));
            }
            all.sort_unstable();
            prop_assert_eq!(all, (range.start..range.end).collect::<Vec<_>>());
            let n = files.len();
            files.rotate_left(rotate % n);
            let whole = build(meta(range, None), (range.start..range.end).map(|s| result(s, salt)).collect());
            let merged = merge(&files).unwrap();
            prop_assert_eq!(merged.render_json(), whole.render_json());
            prop_assert_eq!(merged.render_text(), whole.render_text());
        }
    }
}
