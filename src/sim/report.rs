//! What a run measured: outcome counts, latency, per-dependency breaker, cache and queue
//! figures, time in each mode, the timeline of transitions, scripted exchanges, and the
//! scenario's expectations checked against all of it.
//!
//! [`Metrics`] accumulates in constant memory while the run goes (counters and a latency
//! histogram; nothing per request is kept once it is answered); [`Report`] is the
//! finished, serializable result, rendered as text for people or JSON for machines.
//! Floats are rounded to a fixed precision before they are stored, so a report is the
//! same bytes on every machine.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use crate::engine::admission::{AdmissionConfig, AdmissionStats, Tier};
use crate::engine::breaker::{BreakerReason, BreakerState};
use crate::engine::bulkhead::{BulkheadConfig, BulkheadStats};
use crate::engine::cache::CacheEvent;
use crate::engine::compute::ComputeConfig;
use crate::engine::modes::ModeReason;
use crate::engine::queue::QueueEvent;
use crate::engine::retry::RetryStats;
use crate::engine::ryw::{RywConfig, RywStats};
use crate::engine::{HumanSpan, Span, Time};
use crate::intern::intern;
use crate::model::Scenario;
use crate::node::{CallError, CallKind, CallResult, Node, NodeEvent, ReplyBody, Resource, Served};

use super::recovery::{Cut, RecoveryMetrics, RecoveryReport, RecoveryWindow};
use super::series::{FaultWindow, Series, SeriesMetrics};

use crate::model::FaultKind;

/// At most this many timeline entries are kept; the rest are counted. Keeps reports and
/// snapshots reviewable when a scenario flaps for an hour.
pub const MAX_TIMELINE: usize = 400;

/// Fault windows whose fan-out a declared service's report keeps, and whose
/// recovery any report keeps (in the order they began; the rest are counted): a long
/// run with random faults has hundreds.
pub const MAX_FAULT_WINDOWS: usize = 256;

/// Of those, the ones the text report lists.
const FAULT_WINDOWS_SHOWN: usize = 20;

/// Whether a count is zero (serde's `skip_serializing_if` for counts that only some
/// scenarios have).
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Rounds to 6 decimals, so that floats print the same everywhere.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Replies of one request type, by how they were served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// The request type (`get_user`, ...; `invalid` for unparseable scripted messages).
    #[serde(rename = "type")]
    pub kind: String,
    /// Replies in all.
    pub total: u64,
    /// Straight from the dependency (or a feature that is on).
    pub fresh: u64,
    /// From the cache within its TTL.
    pub cached: u64,
    /// From the cache past its TTL.
    pub stale: u64,
    /// From the node's own pending write (read-your-writes), where the stale cache (or
    /// an error) would have answered. Left out of the JSON when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub pending_write: u64,
    /// A disabled feature's fallback (or a declared endpoint's part served by its
    /// fallback chain).
    pub fallback: u64,
    /// A declared endpoint's replies with an optional part missing.
    pub partial: u64,
    /// Writes applied at once.
    pub applied: u64,
    /// Writes queued for later.
    pub queued: u64,
    /// Writes shed (queue full).
    pub rejected: u64,
    /// Error replies because nothing could be served (code 11): the outage showing.
    pub error: u64,
    /// Requests shed by the node's admission control (code 11): its overload showing.
    pub shed: u64,
    /// Requests refused as malformed or unsupported (codes 10, 12) or naming a record
    /// that does not exist (20): answered correctly, so left out of availability.
    pub refused: u64,
    /// Control messages answered.
    pub control: u64,
    /// Requests still waiting for their reply when the run ended: nobody was served,
    /// so they count against availability, with the time they waited as their latency.
    pub unanswered: u64,
}

impl Outcomes {
    fn add(&mut self, served: Served) {
        self.total += 1;
        match served {
            Served::Fresh => self.fresh += 1,
            Served::Cached { .. } => self.cached += 1,
            Served::Stale { .. } => self.stale += 1,
            Served::PendingWrite { .. } => self.pending_write += 1,
            Served::Fallback => self.fallback += 1,
            Served::Partial => self.partial += 1,
            Served::Applied => self.applied += 1,
            Served::Queued { .. } => self.queued += 1,
            Served::Rejected => self.rejected += 1,
            Served::Shed => self.shed += 1,
            Served::Error { code: 11 } => self.error += 1,
            Served::Error { .. } => self.refused += 1,
            Served::Control => self.control += 1,
        }
    }

    fn merge(&mut self, other: &Outcomes) {
        self.total += other.total;
        self.fresh += other.fresh;
        self.cached += other.cached;
        self.stale += other.stale;
        self.pending_write += other.pending_write;
        self.fallback += other.fallback;
        self.partial += other.partial;
        self.applied += other.applied;
        self.queued += other.queued;
        self.rejected += other.rejected;
        self.shed += other.shed;
        self.error += other.error;
        self.refused += other.refused;
        self.control += other.control;
        self.unanswered += other.unanswered;
    }
}

/// Client-visible reply latency, in microseconds of simulated time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: Span,
    /// 90th percentile.
    pub p90: Span,
    /// 99th percentile.
    pub p99: Span,
    /// Slowest.
    pub max: Span,
}

/// The latency of the replies that took simulated time, apart from those answered at
/// once (from the cache, a fallback or a refusal), which pull the overall
/// percentiles down to 0 when they are most replies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WaitedLatency {
    /// Replies that took time (and requests still unanswered at the end).
    pub replies: u64,
    /// Replies sent at once, left out of `latency`.
    pub instant: u64,
    /// Their percentiles.
    pub latency: LatencySummary,
}

/// Percentiles of a histogram of latency + 1 (its lowest value is 1).
fn summarize(histogram: &Histogram<u64>) -> LatencySummary {
    if histogram.is_empty() {
        return LatencySummary::default();
    }
    let at = |q: f64| histogram.value_at_quantile(q).saturating_sub(1);
    LatencySummary {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: histogram.max().saturating_sub(1),
    }
}

/// One dependency's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DependencyReport {
    /// `users` or `products`.
    pub name: String,
    /// Calls made.
    pub calls: u64,
    /// Calls still waiting for their answer when the run ended.
    pub in_flight_at_end: u64,
    /// Calls that failed (refused or errored).
    pub failures: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Calls refused because the service was at its concurrency limit (counted among
    /// the failures too).
    pub overloads: u64,
    /// Times the breaker opened.
    pub breaker_trips: u64,
    /// Time the breaker spent open or half-open.
    pub time_open: Span,
    /// Breaker state at the end of the run.
    pub final_state: &'static str,
    /// Replies served stale from this dependency's cache.
    pub stale_serves: u64,
    /// Oldest stale value served.
    pub max_stale_age: Span,
    /// Reads refused because the cached value was past the stale limit.
    pub expired_refusals: u64,
    /// Entries evicted to make room (the cache was full).
    pub evictions: u64,
    /// Writes accepted into the queue.
    pub queue_accepted: u64,
    /// Queued writes applied.
    pub queue_applied: u64,
    /// Queued writes that exhausted their retries.
    pub queue_dead_lettered: u64,
    /// Writes shed because the queue was full.
    pub queue_rejected: u64,
    /// Writes still queued at the end.
    pub queue_at_end: u64,
    /// Deepest the queue got.
    pub queue_max_depth: u64,
    /// The deepest backlog: the largest number of writes waiting in one stretch (from
    /// the queue becoming non-empty to empty again), counted only when it is more than
    /// one burst of the drain (fewer drain at once and are no backlog); 0 if none.
    pub queue_backlog: u64,
    /// When that backlog drained (none if there was none or it had not drained by the
    /// end).
    pub queue_drained_at: Option<Time>,
    /// Accepted writes neither applied nor still queued (dead letters and anything
    /// unaccounted for).
    pub writes_lost: u64,
    /// What broke `accepted = applied + dead-lettered + queued`, if anything did.
    pub conservation_error: Option<String>,
    /// A declared service's dependency: what it has and how many calls a request
    /// puts on it (none for the seed service's, whose report is unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared: Option<DeclaredDependency>,
    /// What its retry layer did, if it retries (its retries are among `calls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryStats>,
    /// What its bulkhead did, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<BulkheadReport>,
    /// What read-your-writes did, if it is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_your_writes: Option<RywReport>,
}

/// A dependency's read-your-writes: its settings and what it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RywReport {
    /// As configured.
    pub config: RywConfig,
    /// What it did.
    pub stats: RywStats,
}

/// A dependency's bulkhead: its limits and what it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulkheadReport {
    /// As configured.
    pub config: BulkheadConfig,
    /// What it did.
    pub stats: BulkheadStats,
}

/// What a declared dependency's report adds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeclaredDependency {
    /// Whether it has a cache (reads are never served from one otherwise).
    pub has_cache: bool,
    /// Whether it has a write queue.
    pub has_queue: bool,
    /// Calls per request the node was sent, over the run (6 decimals).
    pub fan_out: f64,
    /// The same for requests sent while no fault was active on any dependency, and
    /// calls made then; none if there was no such request.
    pub fan_out_healthy: Option<f64>,
    /// The same while some fault was active; none if there was no such request.
    pub fan_out_during_faults: Option<f64>,
    /// Share of its answered calls that failed or timed out (6 decimals).
    pub failure_rate: f64,
}

/// One endpoint of a declared service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointReport {
    /// Its name.
    pub name: String,
    /// Its tier.
    pub tier: &'static str,
    /// Requests sent.
    pub requests: u64,
    /// Share of them answered with data (partial included) or an accepted write.
    pub availability: f64,
    /// Replies with an optional part missing.
    pub partial: u64,
    /// How often each part was missing or omitted, in plan order.
    pub missing: Vec<MissingPart>,
    /// Requests whose deadline passed before the reply was ready.
    pub deadline_misses: u64,
    /// Requests shed by the node's admission control.
    pub shed: u64,
    /// Reply latency percentiles.
    pub latency: LatencySummary,
}

/// The node's CPU as it measured it from the work it simulated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputeReport {
    /// As configured.
    pub config: ComputeConfig,
    /// CPU time charged, in microseconds.
    pub work: Span,
    /// Mean of the samples fed to the mode controller (percent, 6 decimals; a
    /// scripted curve's load not included).
    pub mean: f64,
    /// The highest sample (percent, 6 decimals).
    pub peak: f64,
}

/// What the node's admission control did (a declared service that declares it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdmissionReport {
    /// As configured.
    pub config: AdmissionConfig,
    /// Per tier, highest first.
    pub tiers: Vec<TierAdmission>,
    /// The most requests in flight at once.
    pub peak_in_flight: u32,
    /// The most requests waiting for a slot at once.
    pub peak_waiting: u32,
}

/// One tier's admissions and sheds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierAdmission {
    /// `critical`, `important` or `optional`.
    pub tier: &'static str,
    /// The most of its requests that may be in flight when one more is admitted.
    pub limit: u32,
    /// Admitted at once.
    pub admitted: u64,
    /// Admitted after waiting for a slot.
    pub admitted_after_wait: u64,
    /// Shed with no slot and no room to wait.
    pub shed_full: u64,
    /// Shed from the wait queue for a higher tier's request.
    pub shed_displaced: u64,
    /// Shed after waiting `max_wait`.
    pub shed_expired: u64,
}

impl AdmissionReport {
    fn new(config: &AdmissionConfig, stats: &AdmissionStats) -> AdmissionReport {
        AdmissionReport {
            config: config.clone(),
            tiers: Tier::ALL
                .iter()
                .map(|&tier| {
                    let i = tier.index();
                    TierAdmission {
                        tier: tier.as_str(),
                        limit: config.limit(tier),
                        admitted: stats.admitted[i],
                        admitted_after_wait: stats.admitted_after_wait[i],
                        shed_full: stats.shed_full[i],
                        shed_displaced: stats.shed_displaced[i],
                        shed_expired: stats.shed_expired[i],
                    }
                })
                .collect(),
            peak_in_flight: stats.peak_in_flight,
            peak_waiting: stats.peak_waiting,
        }
    }

    fn render(&self, w: &mut String) {
        let c = &self.config;
        let _ = writeln!(w);
        let wait = if c.queue == 0 {
            "no wait queue".to_owned()
        } else {
            format!("{} may wait up to {}", c.queue, HumanSpan(c.max_wait))
        };
        let _ = writeln!(
            w,
            "Admission: at most {} requests in flight ({} kept for critical, {} more for important); {wait}",
            c.max_in_flight, c.reserve_critical, c.reserve_important
        );
        let _ = writeln!(
            w,
            "  peak {} in flight, {} waiting",
            self.peak_in_flight, self.peak_waiting
        );
        for t in &self.tiers {
            let shed = t.shed_full + t.shed_displaced + t.shed_expired;
            let _ = writeln!(
                w,
                "  {:<9} (up to {:>5}): {} admitted ({} after waiting); {shed} shed ({} full, {} displaced, {} expired)",
                t.tier,
                t.limit,
                t.admitted + t.admitted_after_wait,
                t.admitted_after_wait,
                t.shed_full,
                t.shed_displaced,
                t.shed_expired
            );
        }
    }
}

/// Calls per request on each dependency while each fault window was active.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultFanOut {
    /// In the order the windows began, at most [`MAX_FAULT_WINDOWS`].
    pub windows: Vec<FaultWindowFanOut>,
    /// Windows past that limit, not measured.
    pub omitted: u64,
}

/// One fault window's fan-out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindowFanOut {
    /// The dependency at fault.
    pub dependency: String,
    /// What the fault was.
    pub fault: String,
    /// When it began.
    pub start: Time,
    /// When it ended (or was due to, past the end of the run).
    pub end: Time,
    /// Requests sent while it was active.
    pub requests: u64,
    /// Per dependency, in declaration order: calls started while it was active and
    /// per request then, answers delivered then and how many failed.
    pub fan_out: Vec<DependencyFanOut>,
}

/// One dependency's calls per request in a fault window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DependencyFanOut {
    /// The dependency.
    pub dependency: &'static str,
    /// Calls started.
    pub calls: u64,
    /// Calls per request.
    pub per_request: f64,
    /// Its answers delivered while the window was active.
    pub answered: u64,
    /// Of them, failures and timeouts.
    pub failed: u64,
    /// Their share (6 decimals; 0 if none was answered).
    pub failure_rate: f64,
}

/// A part of an endpoint's replies and how often it was missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingPart {
    /// The part's name.
    pub part: &'static str,
    /// Replies it was missing from.
    pub count: u64,
}

/// Time in each mode and how often it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModeReport {
    /// Time in normal mode.
    pub normal: Span,
    /// Time in degraded mode.
    pub degraded: Span,
    /// Time in critical mode.
    pub critical: Span,
    /// Mode changes (automatic and manual).
    pub changes: u64,
    /// The mode at the end.
    pub final_mode: &'static str,
}

/// One line of the timeline: a transition worth reading in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// When.
    pub t: Time,
    /// What (`fault`, `breaker`, `mode`, `queue`).
    pub what: &'static str,
    /// The transition, in words.
    pub text: String,
}

/// A scripted message and the reply it got.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScriptedExchange {
    /// When it was sent.
    pub at: Time,
    /// The body sent.
    pub request: Value,
    /// When the reply came (none if the run ended first).
    pub replied_at: Option<Time>,
    /// The reply body.
    pub reply: Option<Value>,
    /// How it was served.
    pub served: Option<Served>,
}

/// One expectation's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectationResult {
    /// The expectation's key in the scenario file (or `conservation`).
    pub name: &'static str,
    /// What was expected, in words.
    pub expected: String,
    /// What was measured, in words.
    pub measured: String,
    /// Whether it held.
    pub pass: bool,
    /// The bound as a number, in `unit` (none for `conservation`).
    pub expected_value: Option<f64>,
    /// The measured figure as a number, in `unit`; none when there is none (a breaker
    /// that never closed, a backlog that never drained).
    pub measured_value: Option<f64>,
    /// The unit of both numbers: `ratio` (0..=1), `us` (microseconds), `count`,
    /// `factor` (a multiple, as the recovery multiplier), or `none`.
    pub unit: &'static str,
}

/// An expectation's numbers: `(expected, measured, unit)`.
type Figures = (Option<f64>, Option<f64>, &'static str);

fn micros(span: Option<Span>) -> Option<f64> {
    span.map(|s| s as f64)
}

/// How long the breakers took to close again after the hard faults (outages and hangs)
/// ended: the figure `breaker_closes_within` checks, kept for `brownout sweep`'s
/// statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// No outage or hang in the run: nothing to recover from.
    NoHardFault,
    /// Every hard fault's breaker was closed by the end of the run; the worst delay from
    /// a fault's end to its breaker closing (0 when it was already closed then).
    Within(Span),
    /// Some hard fault's breaker had not closed by the end of the run.
    Never,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// The file it came from.
    pub path: String,
    /// The `--set` arguments the file was read with (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// The seed the run used.
    pub seed: u64,
    /// Simulated duration.
    pub duration: Span,
    /// Outcomes per request type, in a fixed order, then the total.
    pub requests: Vec<Outcomes>,
    /// Share of requests answered with data or accepted, 6 decimals, over every request
    /// but control messages and refused ones (see [`Outcomes::refused`]).
    pub availability: f64,
    /// Reply latency percentiles.
    pub latency: LatencySummary,
    /// The same for the replies that took time.
    pub waited: WaitedLatency,
    /// Per dependency.
    pub dependencies: Vec<DependencyReport>,
    /// Per endpoint of a declared service (empty for the seed service).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointReport>,
    /// A declared service's fan-out during each fault window (none for the seed
    /// service's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_fan_out: Option<FaultFanOut>,
    /// What admission control did, if the service declares it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission: Option<AdmissionReport>,
    /// The node's measured CPU, if the service declares `[compute]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute: Option<ComputeReport>,
    /// Each fault window's recovery storm: the dependency's call rate before the fault
    /// and its busiest second after, by kind of call.
    pub recovery_storm: RecoveryReport,
    /// Modes.
    pub modes: ModeReport,
    /// Transitions in time order (at most [`MAX_TIMELINE`]).
    pub timeline: Vec<TimelineEntry>,
    /// Timeline entries left out past [`MAX_TIMELINE`].
    pub timeline_omitted: u64,
    /// Scripted exchanges in full.
    pub scripted: Vec<ScriptedExchange>,
    /// Expectations, in file order, then the conservation check.
    pub expectations: Vec<ExpectationResult>,
    /// Events the simulator processed.
    pub events: u64,
    /// Digest of the full trace, when one was kept.
    pub trace_digest: Option<String>,
    /// What happened in each slice of the run (see [`super::series`]).
    pub series: Series,
    /// Recovery after the hard faults. Not serialized, so that adding it left the
    /// run's JSON summary unchanged; `brownout sweep` reads it.
    #[serde(skip)]
    pub recovery: Recovery,
}

impl Report {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.expectations.iter().all(|e| e.pass)
    }

    /// The command that replays this run exactly.
    pub fn replay_command(&self) -> String {
        crate::replay::command_with_args(
            &crate::model::command_args(&self.path, &self.overrides),
            self.seed,
        )
    }
}

#[derive(Debug, Clone)]
struct DepMetrics {
    calls: u64,
    /// Calls started while some fault was active.
    calls_during_faults: u64,
    answered: u64,
    failures: u64,
    timeouts: u64,
    overloads: u64,
    state: BreakerState,
    /// When the breaker last left `Closed` (while it is not closed).
    left_closed_at: Option<Time>,
    time_open: Span,
    trips: u64,
    /// Every breaker transition `(at, to)`, for the recovery expectations.
    transitions: Vec<(Time, BreakerState)>,
    /// The current queue episode (from the queue becoming non-empty until it is empty
    /// again): when it began and its deepest point.
    episode_start: Option<Time>,
    episode_depth: usize,
    /// The deepest episode so far (ties keep the first) and when it drained.
    backlog: usize,
    drained_at: Option<Time>,
}

impl Default for DepMetrics {
    fn default() -> Self {
        DepMetrics {
            calls: 0,
            calls_during_faults: 0,
            answered: 0,
            failures: 0,
            timeouts: 0,
            overloads: 0,
            state: BreakerState::Closed,
            left_closed_at: None,
            time_open: 0,
            trips: 0,
            transitions: Vec::new(),
            episode_start: None,
            episode_depth: 0,
            backlog: 0,
            drained_at: None,
        }
    }
}

impl DepMetrics {
    /// The breaker's state at instant `t` (after any transition at `t`).
    fn state_at(&self, t: Time) -> BreakerState {
        self.transitions
            .iter()
            .take_while(|&&(at, _)| at <= t)
            .last()
            .map_or(BreakerState::Closed, |&(_, s)| s)
    }
}

/// A fault whose every call fails, so the breaker is expected to react to it.
#[derive(Debug, Clone, Copy)]
struct HardFault {
    dependency: usize,
    start: Time,
    end: Time,
}

/// Accumulates a run's figures as it goes.
pub struct Metrics {
    /// Outcomes per request type: the seed's indexed like [`KINDS`]; a declared
    /// service's endpoints by id, then [`CONTROL_KINDS`].
    by_kind: Vec<Outcomes>,
    /// Each dependency's name.
    dep_names: Vec<&'static str>,
    /// A declared service's endpoints (empty for the seed's), indexed by id.
    endpoints: Vec<EndpointMetrics>,
    /// Requests sent, and of them while a fault was active.
    requests: u64,
    requests_during_faults: u64,
    /// Fault windows active now.
    active_faults: u32,
    /// A declared service's fault windows, for their fan-out (none kept for the seed
    /// service's); those active now, as indices; windows past the limit.
    windows: Option<Vec<WindowMetrics>>,
    open_windows: Vec<usize>,
    windows_omitted: u64,
    latency: Histogram<u64>,
    /// Replies that took no simulated time (served from the cache at once), added to
    /// `latency` only when the report is made: they are most replies, and recording
    /// each one was 2% of a long run.
    instant_replies: u64,
    deps: Vec<DepMetrics>,
    /// The run's length.
    duration: Time,
    /// The outages and hangs that started, in the order they did.
    hard_faults: Vec<HardFault>,
    timeline: Vec<TimelineEntry>,
    timeline_omitted: u64,
    scripted: Vec<ScriptedExchange>,
    mode_changes: u64,
    /// Each fault window's calls before and after, by kind.
    storm: RecoveryMetrics,
    /// The run's time series.
    series: SeriesMetrics,
}

/// What one fault window of a declared service's run measured.
struct WindowMetrics {
    dependency: usize,
    fault: String,
    start: Time,
    end: Time,
    requests: u64,
    /// Per dependency.
    counts: Vec<WindowCounts>,
}

/// One dependency's calls in a fault window.
#[derive(Debug, Clone, Copy, Default)]
struct WindowCounts {
    /// Started while it was active.
    calls: u64,
    /// Answers delivered then, and of them failures and timeouts.
    answered: u64,
    failed: u64,
}

/// What one endpoint of a declared service measured.
struct EndpointMetrics {
    latency: Histogram<u64>,
    deadline_misses: u64,
    /// Per step of its plan: replies the part was missing from.
    missing: Vec<(&'static str, u64)>,
}

/// A latency histogram: 3 significant digits up to an hour, constant memory.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

impl Metrics {
    /// Empty metrics for a run of `scenario`.
    pub fn new(scenario: &Scenario) -> Self {
        let (kinds, dep_names, endpoints): (Vec<&'static str>, Vec<&'static str>, _) =
            match &scenario.service {
                None => (
                    KINDS.to_vec(),
                    Resource::ALL.iter().map(|r| r.as_str()).collect(),
                    Vec::new(),
                ),
                Some(service) => (
                    service
                        .endpoints
                        .iter()
                        .map(|e| intern(&e.name))
                        .chain(CONTROL_KINDS)
                        .collect(),
                    service
                        .dependencies
                        .iter()
                        .map(|d| intern(&d.name))
                        .collect(),
                    service
                        .endpoints
                        .iter()
                        .map(|_| EndpointMetrics {
                            latency: histogram(),
                            deadline_misses: 0,
                            missing: Vec::new(),
                        })
                        .collect(),
                ),
            };
        Metrics {
            duration: scenario.duration,
            by_kind: kinds
                .iter()
                .map(|kind| Outcomes {
                    kind: (*kind).to_owned(),
                    ..Outcomes::default()
                })
                .collect(),
            deps: vec![DepMetrics::default(); dep_names.len()],
            storm: RecoveryMetrics::new(dep_names.len(), MAX_FAULT_WINDOWS, scenario.duration),
            series: SeriesMetrics::new(scenario.duration, kinds.len(), dep_names.len()),
            dep_names,
            endpoints,
            requests: 0,
            requests_during_faults: 0,
            active_faults: 0,
            windows: scenario.service.as_ref().map(|_| Vec::new()),
            open_windows: Vec::new(),
            windows_omitted: 0,
            latency: histogram(),
            instant_replies: 0,
            hard_faults: Vec::new(),
            timeline: Vec::new(),
            timeline_omitted: 0,
            // One exchange per entry, in file order, filled in as messages go and replies
            // come: entries need not be in time order in the file.
            scripted: scenario
                .script
                .iter()
                .map(|m| ScriptedExchange {
                    at: m.at,
                    request: m.body.clone(),
                    replied_at: None,
                    reply: None,
                    served: None,
                })
                .collect(),
            mode_changes: 0,
        }
    }

    /// The index of request type `kind` in the report's rows (`invalid` for a type
    /// this service does not serve).
    pub fn kind_index(&self, kind: &str) -> u8 {
        let index = self
            .by_kind
            .iter()
            .position(|o| o.kind == kind)
            .or_else(|| self.by_kind.iter().position(|o| o.kind == "invalid"));
        index.expect("every report lists `invalid`") as u8
    }

    fn dependency_index(&self, name: &str) -> usize {
        self.dep_names
            .iter()
            .position(|&n| n == name)
            .expect("events name known dependencies")
    }

    /// The run reached `now`: the series moves to the bucket holding it. Called before
    /// each event.
    #[inline(always)]
    pub fn advance(&mut self, now: Time, node: &Node) {
        self.series.advance(now, node);
    }

    /// A request (not a control message) was sent.
    pub fn request(&mut self) {
        self.requests += 1;
        if self.active_faults > 0 {
            self.requests_during_faults += 1;
            if let Some(windows) = &mut self.windows {
                for &w in &self.open_windows {
                    windows[w].requests += 1;
                }
            }
        }
    }

    fn note(&mut self, t: Time, what: &'static str, text: String) {
        if self.timeline.len() < MAX_TIMELINE {
            self.timeline.push(TimelineEntry { t, what, text });
        } else {
            self.timeline_omitted += 1;
        }
    }

    /// A fault of `kind` on `dependency` that lasts until `end` started or ended.
    pub fn fault_edge(
        &mut self,
        t: Time,
        dependency: usize,
        kind: &FaultKind,
        started: bool,
        end: Time,
    ) {
        if started {
            self.active_faults += 1;
        } else {
            self.active_faults = self.active_faults.saturating_sub(1);
        }
        if let Some(windows) = &mut self.windows {
            if !started {
                // A window ends at the end it was announced with.
                let open = self
                    .open_windows
                    .iter()
                    .position(|&w| windows[w].dependency == dependency && windows[w].end == end);
                if let Some(i) = open {
                    self.open_windows.remove(i);
                }
            } else if windows.len() < MAX_FAULT_WINDOWS {
                self.open_windows.push(windows.len());
                windows.push(WindowMetrics {
                    dependency,
                    fault: describe_fault(kind),
                    start: t,
                    end,
                    requests: 0,
                    counts: vec![WindowCounts::default(); self.deps.len()],
                });
            } else {
                self.windows_omitted += 1;
            }
        }
        let what = describe_fault(kind);
        self.storm.fault_edge(t, dependency, &what, started, end);
        if started {
            self.series.fault(FaultWindow {
                dependency: self.dep_names[dependency],
                fault: what.clone(),
                start: t,
                end,
            });
        }
        if started && matches!(kind, FaultKind::Outage | FaultKind::Hang) {
            self.hard_faults.push(HardFault {
                dependency,
                start: t,
                end: end.min(self.duration),
            });
        }
        let dep = self.dep_names[dependency];
        let text = if started {
            format!("{dep}: {what} begins (until {})", HumanSpan(end))
        } else {
            format!("{dep}: {what} ends")
        };
        self.note(t, "fault", text);
    }

    /// A reply went out.
    pub fn reply(
        &mut self,
        kind: u8,
        served: Served,
        latency: Span,
        script: Option<u32>,
        now: Time,
        body: &ReplyBody,
    ) {
        self.by_kind[usize::from(kind)].add(served);
        self.series.reply(kind, served, latency);
        if let Some(endpoint) = self.endpoints.get_mut(usize::from(kind)) {
            endpoint.latency.saturating_record(latency + 1);
            if let ReplyBody::Endpoint(reply) = body {
                endpoint.deadline_misses += u64::from(reply.meta.deadline_passed);
                for part in &reply.meta.missing {
                    match endpoint.missing.iter_mut().find(|(p, _)| p == part) {
                        Some((_, n)) => *n += 1,
                        None => endpoint.missing.push((part, 1)),
                    }
                }
            }
        }
        if served != Served::Control {
            if latency == 0 {
                self.instant_replies += 1;
            } else {
                // The histogram's lowest value is 1: record latency + 1, as the instant
                // replies are recorded, and subtract it when reading.
                self.latency.saturating_record(latency + 1);
            }
        }
        if let Some(i) = script {
            let exchange = &mut self.scripted[i as usize];
            exchange.replied_at = Some(now);
            exchange.reply = Some(serde_json::to_value(body).expect("replies serialize"));
            exchange.served = Some(served);
        }
    }

    /// A request was still waiting for its reply when the run ended, after waiting
    /// `waited`.
    pub fn unanswered(&mut self, kind: u8, waited: Span) {
        let outcomes = &mut self.by_kind[usize::from(kind)];
        outcomes.total += 1;
        outcomes.unanswered += 1;
        self.series
            .unanswered(kind, self.duration.saturating_sub(waited));
        self.latency.saturating_record(waited.saturating_add(1));
        if let Some(endpoint) = self.endpoints.get_mut(usize::from(kind)) {
            endpoint.latency.saturating_record(waited.saturating_add(1));
        }
    }

    /// A dependency call of `kind` was started at `now`.
    #[inline(always)]
    pub fn call(&mut self, dependency: usize, kind: CallKind, now: Time) {
        self.storm.call(dependency, kind, now);
        self.series.call(dependency);
        let dep = &mut self.deps[dependency];
        dep.calls += 1;
        if self.active_faults > 0 {
            dep.calls_during_faults += 1;
            if let Some(windows) = &mut self.windows {
                for &w in &self.open_windows {
                    windows[w].counts[dependency].calls += 1;
                }
            }
        }
    }

    /// A dependency call's answer was delivered (a call still out when the run ends
    /// has no answer, so it is neither a failure nor a timeout yet).
    pub fn answer(&mut self, dependency: usize, result: &CallResult) {
        let dep = &mut self.deps[dependency];
        dep.answered += 1;
        let failed = match result {
            CallResult::Failed(CallError::Timeout) => {
                dep.timeouts += 1;
                true
            }
            CallResult::Failed(_) => {
                dep.failures += 1;
                true
            }
            _ => false,
        };
        if failed {
            self.series.failure(dependency);
        }
        if self.active_faults > 0 {
            if let Some(windows) = &mut self.windows {
                for &w in &self.open_windows {
                    let counts = &mut windows[w].counts[dependency];
                    counts.answered += 1;
                    counts.failed += u64::from(failed);
                }
            }
        }
    }

    /// A call was refused because the service was at its concurrency limit.
    pub fn overload(&mut self, dependency: usize) {
        self.deps[dependency].overloads += 1;
    }

    /// The node recorded an engine event.
    pub fn event(&mut self, now: Time, event: &NodeEvent, node: &Node) {
        match event {
            NodeEvent::Breaker { dependency, event } => {
                let index = self.dependency_index(dependency);
                let dep = &mut self.deps[index];
                if event.from == BreakerState::Closed && event.to != BreakerState::Closed {
                    dep.left_closed_at = Some(event.at);
                }
                if event.to == BreakerState::Closed {
                    if let Some(since) = dep.left_closed_at.take() {
                        dep.time_open += event.at.saturating_sub(since);
                    }
                }
                if event.to == BreakerState::Open && event.from != BreakerState::Open {
                    dep.trips += 1;
                }
                dep.state = event.to;
                dep.transitions.push((event.at, event.to));
                self.series.breaker(index, event.to);
                let text = format!(
                    "{dependency}: breaker {} -> {} ({})",
                    event.from.as_str(),
                    event.to.as_str(),
                    describe_breaker_reason(&event.reason, event.open_until, event.at)
                );
                self.note(now, "breaker", text);
            }
            NodeEvent::Mode { event } => {
                if event.from != event.to {
                    self.mode_changes += 1;
                }
                self.series.mode(event.to);
                let why = match event.reason {
                    ModeReason::Cpu { cpu, threshold } => {
                        let cmp = if event.to > event.from { ">=" } else { "<" };
                        format!("cpu {cpu:.2}% {cmp} {threshold:.2}%")
                    }
                    ModeReason::Manual => "set_mode".to_owned(),
                    ModeReason::ManualCleared => "manual override released".to_owned(),
                };
                let text = format!("mode {} -> {} ({why})", event.from, event.to);
                self.note(now, "mode", text);
            }
            NodeEvent::Queue { dependency, event } => {
                let index = self.dependency_index(dependency);
                let depth = node.queue(index).depth();
                let burst = node.queue(index).config().burst as usize;
                self.series.queue_depth(index, depth);
                let dep = &mut self.deps[index];
                if depth > 0 && dep.episode_start.is_none() {
                    dep.episode_start = Some(now);
                    dep.episode_depth = 0;
                }
                dep.episode_depth = dep.episode_depth.max(depth);
                if depth == 0 {
                    if let Some(start) = dep.episode_start.take() {
                        let deepest = dep.episode_depth;
                        if deepest > dep.backlog {
                            dep.backlog = deepest;
                            dep.drained_at = Some(now);
                        }
                        // Only a backlog (more than one burst of the drain) is worth a
                        // line; a write retried once after a stray error is not.
                        if deepest > burst {
                            let text = format!(
                                "{dependency}: write backlog drained (deepest {deepest}, writes waiting since {})",
                                HumanSpan(start)
                            );
                            self.note(now, "queue", text);
                        }
                    }
                }
                if let QueueEvent::DeadLettered { id, attempts, .. } = event {
                    let text =
                        format!("{dependency}: write {id} dead-lettered after {attempts} attempts");
                    self.note(now, "queue", text);
                }
            }
            // Counted by the node's retry layer (`Node::retry_stats`); each one is
            // in the trace, too many for the timeline.
            // Counted by the engines themselves (`Node::bulkhead_stats`, ...).
            // Read-your-writes counts its own (`Node::read_your_writes`).
            NodeEvent::Cache {
                dependency,
                event: CacheEvent::StaleServed { age, .. },
            } => {
                let index = self.dependency_index(dependency);
                self.series.stale_served(index, *age);
            }
            NodeEvent::Cache { .. }
            | NodeEvent::Retry { .. }
            | NodeEvent::Bulkhead { .. }
            | NodeEvent::ReadYourWrites { .. } => {}
        }
    }

    /// The finished report.
    pub fn report(
        mut self,
        scenario: &Scenario,
        seed: u64,
        node: &Node,
        end: Time,
        events: u64,
        trace_digest: Option<String>,
    ) -> Report {
        for dep in &mut self.deps {
            if let Some(since) = dep.left_closed_at {
                dep.time_open += end.saturating_sub(since);
            }
            // An episode still going at the end: if it is the deepest, it never drained.
            if dep.episode_start.is_some() && dep.episode_depth > dep.backlog {
                dep.backlog = dep.episode_depth;
                dep.drained_at = None;
            }
        }
        let kind_names: Vec<&str> = self.by_kind.iter().map(|o| o.kind.as_str()).collect();
        let mut total = Outcomes {
            kind: "total".to_owned(),
            ..Outcomes::default()
        };
        let mut requests = Vec::new();
        for o in self.by_kind.iter().filter(|o| o.total > 0) {
            total.merge(o);
            requests.push(o.clone());
        }
        let answered = total.total - total.control - total.refused;
        let unavailable = total.rejected + total.shed + total.error + total.unanswered;
        let availability = if answered == 0 {
            1.0
        } else {
            round6((answered - unavailable) as f64 / answered as f64)
        };
        requests.push(total);
        let mut histogram = self.latency.clone();
        histogram.saturating_record_n(1, self.instant_replies);
        let latency = summarize(&histogram);
        let waited = WaitedLatency {
            replies: self.latency.len(),
            instant: self.instant_replies,
            latency: summarize(&self.latency),
        };
        let burst = |i: usize| node.queue(i).config().burst as usize;
        let ratio = |calls: u64, requests: u64| {
            (requests > 0).then(|| round6(calls as f64 / requests as f64))
        };
        let dependencies: Vec<DependencyReport> = (0..self.deps.len())
            .map(|i| {
                let m = &self.deps[i];
                let cache = node.cache(i).stats();
                let queue = node.queue(i).stats();
                let declared = node.service().map(|service| {
                    let engine = &service.dependencies[i].engine;
                    let failed = m.failures + m.timeouts;
                    DeclaredDependency {
                        has_cache: engine.cache.is_some(),
                        has_queue: engine.queue.is_some(),
                        fan_out: ratio(m.calls, self.requests).unwrap_or(0.0),
                        fan_out_healthy: ratio(
                            m.calls - m.calls_during_faults,
                            self.requests - self.requests_during_faults,
                        ),
                        fan_out_during_faults: ratio(
                            m.calls_during_faults,
                            self.requests_during_faults,
                        ),
                        failure_rate: ratio(failed, m.answered).unwrap_or(0.0),
                    }
                });
                DependencyReport {
                    declared,
                    retries: node.retry_stats(i),
                    bulkhead: node.bulkhead(i).map(|(config, stats)| BulkheadReport {
                        config: config.clone(),
                        stats,
                    }),
                    read_your_writes: node
                        .read_your_writes(i)
                        .map(|(config, stats)| RywReport { config, stats }),
                    name: self.dep_names[i].to_owned(),
                    calls: m.calls,
                    in_flight_at_end: m.calls - m.answered,
                    failures: m.failures,
                    timeouts: m.timeouts,
                    overloads: m.overloads,
                    breaker_trips: m.trips,
                    time_open: m.time_open,
                    final_state: node.breaker(i).state().as_str(),
                    stale_serves: cache.stale_serves,
                    max_stale_age: cache.max_stale_age_served,
                    expired_refusals: cache.expired_refusals,
                    evictions: cache.evictions,
                    queue_accepted: queue.accepted,
                    queue_applied: queue.applied,
                    queue_dead_lettered: queue.dead_lettered,
                    queue_rejected: queue.rejected,
                    queue_at_end: queue.queued,
                    queue_max_depth: queue.max_depth,
                    queue_backlog: if m.backlog > burst(i) {
                        m.backlog as u64
                    } else {
                        0
                    },
                    queue_drained_at: if m.backlog > burst(i) {
                        m.drained_at
                    } else {
                        None
                    },
                    writes_lost: queue.accepted.saturating_sub(queue.applied + queue.queued),
                    conservation_error: node.queue(i).check_conservation().err(),
                }
            })
            .collect();
        let time_in_mode = node.modes().time_in_mode(end);
        let modes = ModeReport {
            normal: time_in_mode.normal,
            degraded: time_in_mode.degraded,
            critical: time_in_mode.critical,
            changes: self.mode_changes,
            final_mode: node.modes().mode().as_str(),
        };
        let endpoints = match node.service() {
            None => Vec::new(),
            Some(service) => self
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let o = &self.by_kind[i];
                    let unavailable = o.rejected + o.shed + o.error + o.unanswered;
                    let answered = o.total - o.refused - o.control;
                    let ep = &service.endpoints[i];
                    EndpointReport {
                        name: ep.name.clone(),
                        tier: ep.tier.as_str(),
                        requests: o.total,
                        availability: if answered == 0 {
                            1.0
                        } else {
                            round6((answered - unavailable) as f64 / answered as f64)
                        },
                        partial: o.partial,
                        missing: m
                            .missing
                            .iter()
                            .map(|&(part, count)| MissingPart { part, count })
                            .collect(),
                        deadline_misses: m.deadline_misses,
                        shed: o.shed,
                        latency: summarize(&m.latency),
                    }
                })
                .collect(),
        };
        let fault_fan_out = self.windows.as_ref().map(|windows| FaultFanOut {
            windows: windows
                .iter()
                .map(|w| FaultWindowFanOut {
                    dependency: self.dep_names[w.dependency].to_owned(),
                    fault: w.fault.clone(),
                    start: w.start,
                    end: w.end,
                    requests: w.requests,
                    fan_out: w
                        .counts
                        .iter()
                        .zip(&self.dep_names)
                        .map(|(c, &dependency)| DependencyFanOut {
                            dependency,
                            calls: c.calls,
                            per_request: ratio(c.calls, w.requests).unwrap_or(0.0),
                            answered: c.answered,
                            failed: c.failed,
                            failure_rate: ratio(c.failed, c.answered).unwrap_or(0.0),
                        })
                        .collect(),
                })
                .collect(),
            omitted: self.windows_omitted,
        });
        let admission = node
            .service()
            .and_then(|service| service.admission.as_ref())
            .zip(node.admission_stats())
            .map(|(config, stats)| AdmissionReport::new(config, &stats));
        let recovery_storm = std::mem::replace(&mut self.storm, RecoveryMetrics::new(0, 0, 0))
            .report(&self.dep_names);
        let compute = node.compute().map(|(config, stats)| ComputeReport {
            config: config.clone(),
            work: stats.work,
            mean: round6(if stats.samples == 0 {
                0.0
            } else {
                stats.sum / stats.samples as f64
            }),
            peak: round6(stats.peak),
        });
        let mut report = Report {
            endpoints,
            fault_fan_out,
            admission,
            compute,
            recovery_storm,
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            path: scenario.path.display().to_string(),
            overrides: scenario.overrides.clone(),
            seed,
            duration: end,
            requests,
            availability,
            latency,
            waited,
            dependencies,
            modes,
            timeline: std::mem::take(&mut self.timeline),
            timeline_omitted: self.timeline_omitted,
            scripted: {
                // Listed in the order they were sent; ties keep file order.
                let mut scripted = std::mem::take(&mut self.scripted);
                scripted.sort_by_key(|x| x.at);
                scripted
            },
            expectations: Vec::new(),
            events,
            trace_digest,
            series: self.series.finish(node, &kind_names, &self.dep_names),
            recovery: self.recovery(),
        };
        report.expectations = self.check(scenario, &report);
        report
    }

    fn check(&self, scenario: &Scenario, report: &Report) -> Vec<ExpectationResult> {
        let expect = &scenario.expect;
        let mut results = Vec::new();
        let mut push = |name, expected: String, measured: String, pass, figures: Figures| {
            let (expected_value, measured_value, unit) = figures;
            results.push(ExpectationResult {
                name,
                expected,
                measured,
                pass,
                expected_value,
                measured_value,
                unit,
            })
        };
        if let Some(min) = expect.min_availability {
            push(
                "min_availability",
                format!(">= {}", percent(min)),
                percent(report.availability),
                report.availability >= min,
                (Some(min), Some(report.availability), "ratio"),
            );
        }
        if let Some(max) = expect.max_stale_age {
            let worst = report
                .dependencies
                .iter()
                .map(|d| d.max_stale_age)
                .max()
                .unwrap_or(0);
            push(
                "max_stale_age",
                format!("<= {}", HumanSpan(max)),
                HumanSpan(worst).to_string(),
                worst <= max,
                (micros(Some(max)), micros(Some(worst)), "us"),
            );
        }
        if let Some(within) = expect.breaker_opens_within {
            let (worst, text) = self.worst_delay(|f| {
                let dep = &self.deps[f.dependency];
                if dep.state_at(f.start) != BreakerState::Closed {
                    return Some(0);
                }
                dep.transitions
                    .iter()
                    .find(|&&(at, to)| at >= f.start && to == BreakerState::Open)
                    .map(|&(at, _)| at - f.start)
            });
            push(
                "breaker_opens_within",
                format!("<= {} after each outage or hang starts", HumanSpan(within)),
                text,
                worst.is_some_and(|w| w <= within),
                (micros(Some(within)), micros(worst), "us"),
            );
        }
        if let Some(within) = expect.breaker_closes_within {
            let (worst, text) = self.worst_delay(|f| self.close_delay(f));
            push(
                "breaker_closes_within",
                format!("<= {} after each outage or hang ends", HumanSpan(within)),
                text,
                worst.is_some_and(|w| w <= within),
                (micros(Some(within)), micros(worst), "us"),
            );
        }
        if let Some(max) = expect.max_breaker_trips {
            let trips: u64 = report.dependencies.iter().map(|d| d.breaker_trips).sum();
            push(
                "max_breaker_trips",
                format!("<= {max}"),
                trips.to_string(),
                trips <= max,
                (Some(max as f64), Some(trips as f64), "count"),
            );
        }
        if let Some(max) = expect.max_mode_changes {
            let changes = report.modes.changes;
            push(
                "max_mode_changes",
                format!("<= {max}"),
                changes.to_string(),
                changes <= max,
                (Some(max as f64), Some(changes as f64), "count"),
            );
        }
        if let Some(max) = expect.max_writes_lost {
            let lost: u64 = report.dependencies.iter().map(|d| d.writes_lost).sum();
            push(
                "max_writes_lost",
                format!("<= {max}"),
                lost.to_string(),
                lost <= max,
                (Some(max as f64), Some(lost as f64), "count"),
            );
        }
        if let Some(max) = expect.max_writes_rejected {
            let rejected: u64 = report.dependencies.iter().map(|d| d.queue_rejected).sum();
            push(
                "max_writes_rejected",
                format!("<= {max}"),
                rejected.to_string(),
                rejected <= max,
                (Some(max as f64), Some(rejected as f64), "count"),
            );
        }
        if let Some(by) = expect.queue_drained_by {
            let mut pass = true;
            let mut measured = Vec::new();
            // The latest drain, or none if some backlog never drained.
            let mut latest = Some(0);
            for d in &report.dependencies {
                match (d.queue_backlog, d.queue_drained_at) {
                    (0, _) => {}
                    (depth, Some(at)) => {
                        pass &= at <= by;
                        latest = latest.map(|l: Time| l.max(at));
                        measured.push(format!(
                            "{}: backlog of {depth} drained at {}",
                            d.name,
                            HumanSpan(at)
                        ));
                    }
                    (depth, None) => {
                        pass = false;
                        latest = None;
                        measured.push(format!(
                            "{}: backlog of {depth} not drained by the end",
                            d.name
                        ));
                    }
                }
            }
            if measured.is_empty() {
                measured
                    .push("no backlog (never more writes waiting than one drain burst)".to_owned());
            }
            push(
                "queue_drained_by",
                format!("each queue's deepest backlog drained by {}", HumanSpan(by)),
                measured.join("; "),
                pass,
                (micros(Some(by)), micros(latest), "us"),
            );
        }
        for e in &expect.endpoints {
            let r = &report.endpoints[e.endpoint.index()];
            let name = |key: &str| intern(&format!("endpoints.{}.{key}", r.name));
            if let Some(min) = e.min_availability {
                push(
                    name("min_availability"),
                    format!(">= {}", percent(min)),
                    percent(r.availability),
                    r.availability >= min,
                    (Some(min), Some(r.availability), "ratio"),
                );
            }
            if let Some(max) = e.max_p99_latency {
                let p99 = r.latency.p99;
                push(
                    name("max_p99_latency"),
                    format!("<= {}", HumanSpan(max)),
                    HumanSpan(p99).to_string(),
                    p99 <= max,
                    (micros(Some(max)), micros(Some(p99)), "us"),
                );
            }
            // A share of the endpoint's requests (partial, shed) at most `max`.
            let mut share_at_most = |key: &str, max: Option<f64>, count: u64| {
                let Some(max) = max else {
                    return;
                };
                let rate = if r.requests == 0 {
                    0.0
                } else {
                    round6(count as f64 / r.requests as f64)
                };
                push(
                    name(key),
                    format!("<= {}", percent(max)),
                    format!("{} ({} of {})", percent(rate), count, r.requests),
                    rate <= max,
                    (Some(max), Some(rate), "ratio"),
                );
            };
            share_at_most("max_partial_rate", e.max_partial_rate, r.partial);
            share_at_most("max_shed_rate", e.max_shed_rate, r.shed);
            if let Some(max) = e.max_deadline_misses {
                push(
                    name("max_deadline_misses"),
                    format!("<= {max}"),
                    r.deadline_misses.to_string(),
                    r.deadline_misses <= max,
                    (Some(max as f64), Some(r.deadline_misses as f64), "count"),
                );
            }
        }
        for e in &expect.dependencies {
            let d = &report.dependencies[e.dependency.index()];
            let name = |key: &str| intern(&format!("dependencies.{}.{key}", d.name));
            let declared = d.declared.clone().unwrap_or_default();
            if let Some(max) = e.max_failure_rate {
                let rate = declared.failure_rate;
                push(
                    name("max_failure_rate"),
                    format!("<= {}", percent(max)),
                    format!(
                        "{} ({} failed and {} timed out of {} answered)",
                        percent(rate),
                        d.failures,
                        d.timeouts,
                        d.calls - d.in_flight_at_end
                    ),
                    rate <= max,
                    (Some(max), Some(rate), "ratio"),
                );
            }
            if let Some(max) = e.max_failure_rate_in_faults {
                let i = e.dependency.index();
                let worst = report
                    .fault_fan_out
                    .iter()
                    .flat_map(|f| &f.windows)
                    .filter(|w| w.fan_out[i].answered > 0)
                    .max_by(|a, b| {
                        a.fan_out[i]
                            .failure_rate
                            .total_cmp(&b.fan_out[i].failure_rate)
                    });
                let (rate, measured) = match worst {
                    Some(w) => {
                        let x = &w.fan_out[i];
                        let text = format!(
                            "worst {} ({} of {} answered calls failed or timed out during {}: {} \
                             {}-{})",
                            percent(x.failure_rate),
                            x.failed,
                            x.answered,
                            w.dependency,
                            w.fault,
                            HumanSpan(w.start),
                            HumanSpan(w.end)
                        );
                        (x.failure_rate, text)
                    }
                    None => (0.0, "no call answered during a fault window".to_owned()),
                };
                push(
                    name("max_failure_rate_in_faults"),
                    format!("<= {} in every fault window", percent(max)),
                    measured,
                    rate <= max,
                    (Some(max), Some(rate), "ratio"),
                );
            }
            if let Some(max) = e.max_breaker_trips {
                push(
                    name("max_breaker_trips"),
                    format!("<= {max}"),
                    d.breaker_trips.to_string(),
                    d.breaker_trips <= max,
                    (Some(max as f64), Some(d.breaker_trips as f64), "count"),
                );
            }
            if let Some(max) = e.max_fan_out {
                let fan_out = declared.fan_out;
                push(
                    name("max_fan_out"),
                    format!("<= {max} calls per request"),
                    format!("{fan_out} calls per request"),
                    fan_out <= max,
                    (Some(max), Some(fan_out), "count"),
                );
            }
            if let Some(max) = e.max_recovery_multiplier {
                let (worst, measured) = worst_recovery(&report.recovery_storm, &d.name);
                push(
                    name("max_recovery_multiplier"),
                    format!("<= x{max} after every fault on it"),
                    measured,
                    worst.is_none_or(|w| w <= max),
                    (Some(max), worst, "factor"),
                );
            }
        }
        // Not optional: a run that loses track of a write is wrong whatever the file says.
        let broken: Vec<String> = report
            .dependencies
            .iter()
            .filter_map(|d| {
                d.conservation_error
                    .as_ref()
                    .map(|e| format!("{}: {e}", d.name))
            })
            .collect();
        push(
            "conservation",
            "accepted = applied + dead-lettered + queued".to_owned(),
            if broken.is_empty() {
                "holds for every queue".to_owned()
            } else {
                broken.join("; ")
            },
            broken.is_empty(),
            (None, None, "none"),
        );
        results
    }

    /// The delay from hard fault `f`'s end to its breaker closing (0 if it was closed
    /// then; none if it never closed before the end of the run).
    fn close_delay(&self, f: &HardFault) -> Option<Span> {
        let dep = &self.deps[f.dependency];
        if dep.state_at(f.end) == BreakerState::Closed {
            return Some(0);
        }
        dep.transitions
            .iter()
            .find(|&&(at, to)| at >= f.end && to == BreakerState::Closed)
            .map(|&(at, _)| at - f.end)
    }

    /// The worst [`close_delay`](Self::close_delay) over the hard faults.
    fn recovery(&self) -> Recovery {
        if self.hard_faults.is_empty() {
            return Recovery::NoHardFault;
        }
        let mut worst = 0;
        for f in &self.hard_faults {
            match self.close_delay(f) {
                Some(d) => worst = worst.max(d),
                None => return Recovery::Never,
            }
        }
        Recovery::Within(worst)
    }

    /// The worst delay over the hard faults, as `(Some(worst) if every fault got one,
    /// text)`.
    fn worst_delay(&self, delay: impl Fn(&HardFault) -> Option<Span>) -> (Option<Span>, String) {
        if self.hard_faults.is_empty() {
            return (Some(0), "no outage or hang in this run".to_owned());
        }
        let mut worst = Some(0);
        let mut missing = Vec::new();
        for f in &self.hard_faults {
            match delay(f) {
                Some(d) => worst = worst.map(|w: Span| w.max(d)),
                None => {
                    worst = None;
                    missing.push(format!(
                        "{} fault at {}",
                        self.dep_names[f.dependency],
                        HumanSpan(f.start)
                    ));
                }
            }
        }
        match worst {
            Some(w) => (Some(w), format!("worst {}", HumanSpan(w))),
            None => (None, format!("never, for the {}", missing.join(", "))),
        }
    }
}

/// Request types as reports list them; the workload's kinds come first, in
/// [`RequestKind::ALL`](crate::model::RequestKind::ALL) order.
pub const KINDS: [&str; 10] = [
    "get_user",
    "get_product",
    "update_user",
    "update_product",
    "get_recommendations",
    "search",
    "set_mode",
    "status",
    "init",
    "invalid",
];

/// The rows after a declared service's endpoints: the control messages every node
/// serves, and requests it could not parse or does not serve.
pub const CONTROL_KINDS: [&str; 4] = ["set_mode", "status", "init", "invalid"];

/// The index of a workload request kind in [`KINDS`] (they come first, in order).
pub fn workload_kind_index(kind: crate::model::RequestKind) -> u8 {
    kind as u8
}

/// The index of request type `kind` in [`KINDS`].
pub fn kind_index(kind: &str) -> u8 {
    let index = KINDS
        .iter()
        .position(|&k| k == kind)
        .expect("every request type is listed in KINDS");
    index as u8
}

fn percent(x: f64) -> String {
    format!("{:.3}%", x * 100.0)
}

/// A declared service's calls per request on each dependency during each fault window
/// (the first [`FAULT_WINDOWS_SHOWN`]; the JSON report has them all).
fn render_fault_fan_out(f: &FaultFanOut, w: &mut String) {
    if f.windows.is_empty() {
        return;
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "Fan-out during each fault (calls per request while it was active)"
    );
    for x in f.windows.iter().take(FAULT_WINDOWS_SHOWN) {
        let per: Vec<String> = x
            .fan_out
            .iter()
            .map(|d| format!("{} {}", d.dependency, d.per_request))
            .collect();
        let _ = writeln!(
            w,
            "  {}: {} {}-{} ({} requests): {}",
            x.dependency,
            x.fault,
            HumanSpan(x.start),
            HumanSpan(x.end),
            x.requests,
            per.join(", ")
        );
    }
    let unlisted = (f.windows.len().saturating_sub(FAULT_WINDOWS_SHOWN)) as u64 + f.omitted;
    if unlisted > 0 {
        let _ = writeln!(w, "  ... and {unlisted} more window(s)");
    }
}

/// The worst recovery multiplier of `dependency`'s fault windows, and in words: the
/// window it was, and how many windows had none (no call in the minute before, or no
/// second after within the run).
fn worst_recovery(r: &RecoveryReport, dependency: &str) -> (Option<f64>, String) {
    let windows: Vec<&RecoveryWindow> = r
        .windows
        .iter()
        .filter(|w| w.dependency == dependency)
        .collect();
    let worst = windows
        .iter()
        .filter_map(|w| w.multiplier.map(|m| (m, *w)))
        // The first of equals: a later window must be strictly worse.
        .fold(
            None,
            |worst: Option<(f64, &RecoveryWindow)>, (m, w)| match worst {
                Some((best, _)) if m <= best => worst,
                _ => Some((m, w)),
            },
        );
    let without = windows.iter().filter(|w| w.multiplier.is_none()).count();
    let without = match without {
        0 => String::new(),
        n => format!("; {n} window(s) without one (no call before, or no second after)"),
    };
    match worst {
        Some((m, w)) => (
            Some(m),
            format!(
                "worst x{m:.2} after {}: {} {}-{} ({} calls/s before, {} in the busiest second after, at {}){without}",
                w.dependency,
                w.fault,
                HumanSpan(w.start),
                HumanSpan(w.end),
                rate(w.before_rate),
                w.peak.unwrap_or(0),
                w.peak_at.map_or("-".to_owned(), |t| HumanSpan(t).to_string()),
            ),
        ),
        None if windows.is_empty() => (None, "no fault on it".to_owned()),
        None => (None, format!("no multiplier{without}")),
    }
}

/// A call rate in calls per second, to one decimal (`-` for none).
fn rate(r: Option<f64>) -> String {
    r.map_or("-".to_owned(), |r| format!("{r:.1}"))
}

/// Each fault window's recovery storm (the first [`FAULT_WINDOWS_SHOWN`]; the JSON
/// report has them all).
fn render_recovery_storm(r: &RecoveryReport, w: &mut String) {
    if r.windows.is_empty() {
        return;
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "Recovery after each fault (calls/s to the dependency at fault: the minute before it began; the busiest second of the minute after it ended, by kind)"
    );
    for x in r.windows.iter().take(FAULT_WINDOWS_SHOWN) {
        // A fault on it in the minute before: the rate is of the minute before an
        // earlier window.
        let baseline = if x.baseline_at == x.start {
            String::new()
        } else {
            format!(" (of the minute before {})", HumanSpan(x.baseline_at))
        };
        let head = format!(
            "  {}: {} {}-{}: before {}/s{baseline}",
            x.dependency,
            x.fault,
            HumanSpan(x.start),
            HumanSpan(x.end),
            rate(x.before_rate)
        );
        let (Some(peak), Some(at), Some(calls)) = (x.peak, x.peak_at, x.peak_calls) else {
            let why = match (x.ended, x.after_cut) {
                (false, _) => "it had not ended by the end of the run",
                (true, Some(Cut::NextFault)) => "the next fault on it began",
                (true, _) => "the run ended with it",
            };
            let _ = writeln!(w, "{head}; no second after ({why})");
            continue;
        };
        let kinds: Vec<String> = calls
            .by_kind()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {}", k.as_str()))
            .collect();
        let kinds = match kinds.len() {
            0 => String::new(),
            _ => format!(" ({})", kinds.join(", ")),
        };
        let multiplier = x
            .multiplier
            .map_or("x n/a (no call before)".to_owned(), |m| format!("x{m:.2}"));
        let cut = match x.after_cut {
            None => "",
            Some(Cut::RunEnd) => " (the run ended within the minute)",
            Some(Cut::NextFault) => " (the next fault on it began within the minute)",
        };
        let _ = writeln!(
            w,
            "{head}, peak {peak}/s at {}{kinds}: {multiplier}{cut}",
            HumanSpan(at)
        );
    }
    let unlisted = (r.windows.len().saturating_sub(FAULT_WINDOWS_SHOWN)) as u64 + r.omitted;
    if unlisted > 0 {
        let _ = writeln!(w, "  ... and {unlisted} more window(s)");
    }
}

fn describe_fault(kind: &FaultKind) -> String {
    match kind {
        FaultKind::Outage => "outage".to_owned(),
        FaultKind::ErrorRate(p) => format!("error rate {}", percent(*p)),
        FaultKind::AddedLatency(d) => format!("latency +{}", HumanSpan(*d)),
        FaultKind::Hang => "hang (calls never answer)".to_owned(),
        FaultKind::Flapping { period, down } => format!(
            "flapping (down {} of every {})",
            HumanSpan(*down),
            HumanSpan(*period)
        ),
    }
}

fn describe_breaker_reason(reason: &BreakerReason, open_until: Option<Time>, at: Time) -> String {
    let base = match reason {
        BreakerReason::ConsecutiveFailures { count } => format!("{count} consecutive failures"),
        BreakerReason::FailureRate { failures, calls } => {
            format!("{failures} of the last {calls} calls failed")
        }
        BreakerReason::SlowCalls { failures, calls } => {
            format!("{failures} of the last {calls} calls failed or were slow")
        }
        BreakerReason::OpenElapsed => "open time elapsed".to_owned(),
        BreakerReason::ProbeSucceeded { successes } => {
            format!("{successes} probe(s) succeeded")
        }
        BreakerReason::ProbeFailed { slow: false } => "probe failed".to_owned(),
        BreakerReason::ProbeFailed { slow: true } => "probe too slow".to_owned(),
        BreakerReason::ProbeTimeout => "probe never answered".to_owned(),
        BreakerReason::Manual { op } => format!("manual {op:?}"),
    };
    match open_until {
        Some(until) => format!("{base}; open for {}", HumanSpan(until.saturating_sub(at))),
        None => base,
    }
}

impl Report {
    /// The table of requests by outcome. The seed's has an `applied` column (its
    /// writes applied at once); a declared service's has `partial` in its place (its
    /// writes, applied, are fresh).
    fn render_requests(&self, w: &mut String) {
        let declared = !self.endpoints.is_empty();
        // A `shed` column only where admission control can shed: every other report
        // keeps its table.
        let shedding = self.admission.is_some();
        // A `pending` column (read-your-writes) only where a dependency has it.
        let pending = self
            .dependencies
            .iter()
            .any(|d| d.read_your_writes.is_some());
        let row = |w: &mut String, kind: &str, cells: [String; 12], shed: &str, ryw: &str| {
            let [a, b, c, d, e, f, g, h, i, j, k, l] = cells;
            let _ = write!(
                w,
                "  {kind:<20} {a:>8} {b:>8} {c:>7} {d:>7} {e:>8} {f:>8} {g:>7} {h:>8} {i:>7} {j:>7} {k:>7} {l:>10}"
            );
            if shedding {
                let _ = write!(w, " {shed:>7}");
            }
            if pending {
                let _ = write!(w, " {ryw:>7}");
            }
            let _ = writeln!(w);
        };
        let sixth = if declared { "partial" } else { "applied" };
        let headers = [
            "total",
            "fresh",
            "cached",
            "stale",
            "fallback",
            sixth,
            "queued",
            "rejected",
            "error",
            "refused",
            "control",
            "unanswered",
        ];
        row(w, "type", headers.map(str::to_owned), "shed", "pending");
        for o in &self.requests {
            let (fresh, sixth) = if declared {
                (o.fresh + o.applied, o.partial)
            } else {
                (o.fresh, o.applied)
            };
            let cells = [
                o.total,
                fresh,
                o.cached,
                o.stale,
                o.fallback,
                sixth,
                o.queued,
                o.rejected,
                o.error,
                o.refused,
                o.control,
                o.unanswered,
            ];
            row(
                w,
                &o.kind,
                cells.map(|n| n.to_string()),
                &o.shed.to_string(),
                &o.pending_write.to_string(),
            );
        }
    }

    /// Per endpoint of a declared service: availability, latency, partial replies
    /// and what they missed, deadline misses.
    fn render_endpoints(&self, w: &mut String) {
        let _ = writeln!(w);
        let _ = writeln!(w, "Endpoints");
        for e in &self.endpoints {
            let l = &e.latency;
            let _ = writeln!(
                w,
                "  {} ({}): {} requests, availability {}, latency p50 {}, p90 {}, p99 {}, max {}",
                e.name,
                e.tier,
                e.requests,
                percent(e.availability),
                HumanSpan(l.p50),
                HumanSpan(l.p90),
                HumanSpan(l.p99),
                HumanSpan(l.max)
            );
            let missing: Vec<String> = e
                .missing
                .iter()
                .map(|m| format!("{} missing from {}", m.part, m.count))
                .collect();
            let missing = if missing.is_empty() {
                String::new()
            } else {
                format!(" ({})", missing.join(", "))
            };
            let shed = if self.admission.is_some() {
                format!("; {} shed", e.shed)
            } else {
                String::new()
            };
            let _ = writeln!(
                w,
                "    {} partial{missing}; {} deadline miss(es){shed}",
                e.partial, e.deadline_misses
            );
        }
    }
}

impl Report {
    /// The human summary: reads like an incident review.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(
            w,
            "brownout: {} (seed {}), {} simulated",
            self.scenario,
            self.seed,
            HumanSpan(self.duration)
        );
        for line in self.description.lines().filter(|l| !l.trim().is_empty()) {
            let _ = writeln!(w, "  {}", line.trim());
        }
        let total = self.requests.last().map_or(0, |t| t.total);
        let _ = writeln!(w);
        let _ = writeln!(w, "Requests: {total}");
        self.render_requests(w);
        let _ = writeln!(
            w,
            "  availability {} (answered with data, a fallback or an accepted write, of all but refused and control requests)",
            percent(self.availability)
        );
        let l = &self.latency;
        let _ = writeln!(
            w,
            "  latency p50 {}, p90 {}, p99 {}, max {}",
            HumanSpan(l.p50),
            HumanSpan(l.p90),
            HumanSpan(l.p99),
            HumanSpan(l.max)
        );
        let waited = &self.waited;
        if waited.instant > 0 && waited.replies > 0 {
            let l = &waited.latency;
            let _ = writeln!(
                w,
                "  latency of the {} replies that waited on a dependency ({} answered at once left out): p50 {}, p90 {}, p99 {}, max {}",
                waited.replies,
                waited.instant,
                HumanSpan(l.p50),
                HumanSpan(l.p90),
                HumanSpan(l.p99),
                HumanSpan(l.max)
            );
        }
        if !self.endpoints.is_empty() {
            self.render_endpoints(w);
        }
        let _ = writeln!(w);
        let _ = writeln!(w, "Dependencies");
        for d in &self.dependencies {
            let overloads = if d.overloads > 0 {
                format!(" ({} refused as overloaded)", d.overloads)
            } else {
                String::new()
            };
            let in_flight = if d.in_flight_at_end > 0 {
                format!(", {} still in flight at the end", d.in_flight_at_end)
            } else {
                String::new()
            };
            let _ = writeln!(
                w,
                "  {}: {} calls, {} failed{overloads}, {} timed out{in_flight}",
                d.name, d.calls, d.failures, d.timeouts
            );
            if let Some(x) = &d.declared {
                let fan_out = |f: Option<f64>| f.map_or("-".to_owned(), |f| f.to_string());
                let _ = writeln!(
                    w,
                    "    fan-out: {} calls per request ({} with no fault active, {} during faults); failure rate {}",
                    x.fan_out,
                    fan_out(x.fan_out_healthy),
                    fan_out(x.fan_out_during_faults),
                    percent(x.failure_rate)
                );
            }
            let _ = writeln!(
                w,
                "    breaker: {} trip(s), open {} in all, {} at the end",
                d.breaker_trips,
                HumanSpan(d.time_open),
                d.final_state
            );
            if let Some(r) = &d.retries {
                // Only when it happened: a one-call request cannot end during its
                // call's backoff.
                let ended = match r.request_ended {
                    0 => String::new(),
                    n => format!("; {n} not made, their request over"),
                };
                let _ = writeln!(
                    w,
                    "    retries: {} scheduled; denied {} by the budget, {} by the deadline, {} by the breaker{ended}",
                    r.scheduled, r.denied_budget, r.denied_deadline, r.denied_breaker
                );
            }
            if let Some(b) = &d.bulkhead {
                let (c, s) = (&b.config, &b.stats);
                let wait = match c.max_wait {
                    0 => "no wait".to_owned(),
                    wait => format!("{} may wait up to {}", c.max_waiting, HumanSpan(wait)),
                };
                let counted = if c.counts_as_failure {
                    "counted as breaker failures"
                } else {
                    "not counted by the breaker"
                };
                let _ = writeln!(
                    w,
                    "    bulkhead: {} calls at once, {wait}; {} made ({} after waiting), {} refused ({} full, {} expired; {counted}); peak {} in flight, {} waiting",
                    c.max_concurrent_calls,
                    s.entered + s.entered_after_wait,
                    s.entered_after_wait,
                    s.rejected(),
                    s.rejected_full,
                    s.rejected_expired,
                    s.peak_in_flight,
                    s.peak_waiting
                );
            }
            if let Some(r) = &d.read_your_writes {
                let s = &r.stats;
                let _ = writeln!(
                    w,
                    "    read-your-writes ({} window, up to {} writes): {} remembered; {} read(s) served from a pending write ({} still queued), oldest {}; {} forgotten as dead-lettered, {} evicted",
                    HumanSpan(r.config.window),
                    r.config.capacity,
                    s.remembered,
                    s.served,
                    s.served_queued,
                    HumanSpan(s.max_age_served),
                    s.dropped,
                    s.evicted
                );
            }
            // Evictions only when there were any: most caches hold their whole key space.
            let evicted = match d.evictions {
                0 => String::new(),
                n => format!("; {n} evicted for room"),
            };
            let no =
                |has: fn(&DeclaredDependency) -> bool| d.declared.as_ref().is_some_and(|x| !has(x));
            if no(|x| x.has_cache) {
                let _ = writeln!(w, "    cache: none");
            } else {
                let _ = writeln!(
                    w,
                    "    cache: {} stale serve(s), oldest {}; {} refused as too old{evicted}",
                    d.stale_serves,
                    HumanSpan(d.max_stale_age),
                    d.expired_refusals
                );
            }
            let drained = match (d.queue_accepted, d.queue_backlog, d.queue_drained_at) {
                (0, _, _) => "never used".to_owned(),
                (_, 0, _) => format!("no backlog, {} queued at the end", d.queue_at_end),
                (_, backlog, Some(at)) => format!(
                    "backlog of {backlog} drained at {}, {} queued at the end",
                    HumanSpan(at),
                    d.queue_at_end
                ),
                (_, backlog, None) => format!(
                    "backlog of {backlog} not drained, {} queued at the end",
                    d.queue_at_end
                ),
            };
            if no(|x| x.has_queue) {
                let _ = writeln!(w, "    write queue: none");
                continue;
            }
            let _ = writeln!(
                w,
                "    write queue: {} accepted, {} applied, {} dead-lettered, {} shed; max depth {}; {}",
                d.queue_accepted,
                d.queue_applied,
                d.queue_dead_lettered,
                d.queue_rejected,
                d.queue_max_depth,
                drained
            );
        }
        if let Some(a) = &self.admission {
            a.render(w);
        }
        if let Some(f) = &self.fault_fan_out {
            render_fault_fan_out(f, w);
        }
        render_recovery_storm(&self.recovery_storm, w);
        let m = &self.modes;
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "Modes: normal {}, degraded {}, critical {}; {} change(s), {} at the end",
            HumanSpan(m.normal),
            HumanSpan(m.degraded),
            HumanSpan(m.critical),
            m.changes,
            m.final_mode
        );
        if let Some(c) = &self.compute {
            let _ = writeln!(
                w,
                "  cpu measured from simulated work on {} core(s) over {} windows, sampled every {}: mean {:.2}%, peak {:.2}%; {} of work; replies {}",
                c.config.cores,
                HumanSpan(c.config.window),
                HumanSpan(c.config.window / crate::engine::compute::BUCKETS as Span),
                c.mean,
                c.peak,
                HumanSpan(c.work),
                if c.config.slowdown {
                    "slowed by 1/(1 - utilisation)"
                } else {
                    "not slowed"
                }
            );
        }
        if !self.timeline.is_empty() {
            let _ = writeln!(w);
            let _ = writeln!(w, "Timeline");
            for e in &self.timeline {
                let _ = writeln!(w, "  {:>15}  {:<7}  {}", HumanSpan(e.t), e.what, e.text);
            }
            if self.timeline_omitted > 0 {
                let _ = writeln!(w, "  ... and {} more", self.timeline_omitted);
            }
        }
        if !self.scripted.is_empty() {
            let _ = writeln!(w);
            let _ = writeln!(w, "Scripted messages");
            for x in &self.scripted {
                let _ = writeln!(w, "  {:>15}  -> {}", HumanSpan(x.at), x.request);
                match (&x.reply, x.replied_at) {
                    (Some(reply), Some(at)) => {
                        let _ = writeln!(w, "  {:>15}  <- {reply}", HumanSpan(at));
                    }
                    _ => {
                        let _ = writeln!(w, "  {:>15}  <- (no reply before the end)", "");
                    }
                }
            }
        }
        let _ = writeln!(w);
        let _ = writeln!(w, "Expectations");
        for e in &self.expectations {
            let _ = writeln!(
                w,
                "  {} {}: expected {}, measured {}",
                if e.pass { "PASS" } else { "FAIL" },
                e.name,
                e.expected,
                e.measured
            );
        }
        if let Some(d) = &self.trace_digest {
            let _ = writeln!(w);
            let _ = writeln!(w, "trace digest {d}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RequestKind;

    #[test]
    fn workload_kinds_lead_the_report_order() {
        for kind in RequestKind::ALL {
            assert_eq!(KINDS[usize::from(workload_kind_index(kind))], kind.as_str());
            assert_eq!(kind_index(kind.as_str()), workload_kind_index(kind));
        }
    }
}
