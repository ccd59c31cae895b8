//! The fault schedule: which dependency misbehaves how, and when.
//!
//! Faults are windows `[start, end)` on one dependency (dependencies are indices; the
//! simulator maps names to them). Seeded random faults ([`RandomFaults`]) draw their
//! windows from a generator of their own ([`RandomWindows`]), so their draws can never
//! interleave with workload or latency draws: adding a request to a scenario does not
//! move an outage.
//!
//! [`FaultPlan::condition`] is asked on every dependency call, so the plan precomputes,
//! per dependency, a timeline of segments between consecutive edges of the fixed
//! faults with the combined static effect of every fault active in that segment. A
//! query is a binary search plus an arithmetic check of the (rare) flapping faults
//! active in the segment: `O(log edges + active flapping faults)`, no allocation.
//!
//! Random windows are streamed, not expanded: each entry keeps only its current
//! window and draws the next when a query passes its end (queries come in time order),
//! so `mtbf = "1us"` over an hour costs time, never memory. The simulator schedules
//! their edges from a second copy of each generator, which draws the same windows.

use std::collections::BTreeSet;
use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use crate::engine::{ConfigError, Span, Time};
use crate::model::faults::{Fault, FaultKind, RandomFaults};

impl RandomFaults {
    /// Every window over `0..duration`, drawn from `rng` (as [`RandomWindows`] draws
    /// them one at a time).
    pub fn expand(&self, duration: Time, rng: &mut impl Rng) -> Result<Vec<Fault>, ConfigError> {
        self.validate()?;
        let mut windows = RandomWindows::new(self, rng.random(), duration);
        let mut faults = Vec::new();
        while let Some(w) = windows.current() {
            faults.push(Fault {
                dependency: self.dependency,
                kind: self.kind.clone(),
                start: w.start,
                end: w.end,
            });
            windows.advance();
        }
        Ok(faults)
    }
}

/// One window of a random fault entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When it starts (inclusive).
    pub start: Time,
    /// When it ends (exclusive); after `start`, at most the run's end.
    pub end: Time,
    /// Its position among the entry's windows, from 0.
    pub ordinal: u64,
}

/// The windows of one [`RandomFaults`] entry, drawn one at a time from its own
/// generator: the same seed gives the same windows however far and however often they
/// are drawn.
///
/// Gaps and lengths are rounded to whole microseconds and at least 1 µs, so the
/// windows are sorted, non-empty and never touch; a window that would outlast the run
/// is cut at its end.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomWindows {
    entry: RandomFaults,
    gap: Exp<f64>,
    length: Exp<f64>,
    rng: ChaCha8Rng,
    duration: Time,
    /// The end of the last window drawn (0 before the first).
    last_end: Time,
    current: Option<Window>,
    drawn: u64,
}

impl RandomWindows {
    /// The windows of the validated `entry` over `0..duration`, drawn from a generator
    /// seeded with `seed`; the first is drawn at once.
    fn new(entry: &RandomFaults, seed: u64, duration: Time) -> RandomWindows {
        let mut windows = RandomWindows {
            entry: entry.clone(),
            gap: Exp::new(1.0 / entry.mtbf as f64).expect("validated: positive mtbf"),
            length: Exp::new(1.0 / entry.mttr as f64).expect("validated: positive mttr"),
            rng: ChaCha8Rng::seed_from_u64(seed),
            duration,
            last_end: 0,
            current: None,
            drawn: 0,
        };
        windows.advance();
        windows
    }

    /// The entry the windows are drawn for.
    pub fn entry(&self) -> &RandomFaults {
        &self.entry
    }

    /// The window not yet passed: the one in force or the next to come; none once the
    /// run has no more.
    pub fn current(&self) -> Option<Window> {
        self.current
    }

    /// Moves on to the window after the current one.
    pub fn advance(&mut self) {
        let draw = |d: &Exp<f64>, rng: &mut ChaCha8Rng| (d.sample(rng).round() as Span).max(1);
        let start = self.last_end.saturating_add(draw(&self.gap, &mut self.rng));
        if start >= self.duration {
            self.current = None;
            return;
        }
        let end = start
            .saturating_add(draw(&self.length, &mut self.rng))
            .min(self.duration);
        self.current = Some(Window {
            start,
            end,
            ordinal: self.drawn,
        });
        self.drawn += 1;
        self.last_end = end;
    }

    /// The window in force at `now`, if any, passing the windows that ended before it.
    /// `now` must not go back between calls.
    #[inline]
    fn active_at(&mut self, now: Time) -> Option<Window> {
        while let Some(w) = self.current {
            if now < w.end {
                return (w.start <= now).then_some(w);
            }
            self.advance();
        }
        None
    }
}

/// The state of one dependency at one instant, all active faults combined.
///
/// Several flags can hold at once (an outage during a hang): the simulator decides
/// precedence; failing fast (`down`) is the natural first check.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Condition {
    /// An outage or a flapping fault in its down phase: calls fail fast.
    pub down: bool,
    /// A hang: calls never answer.
    pub hang: bool,
    /// The probability that a call fails on top of the dependency's own error rate:
    /// active error-rate faults fail independently, so this is `1 - product(1 - p)`
    /// over them (computed as a running union, exact for a single fault).
    pub extra_error_rate: f64,
    /// Latency added to every call: the sum over active latency faults.
    pub added_latency: Span,
}

impl Condition {
    /// Adds the effect at `now` of a fault of `kind` that started at `start`.
    fn add(&mut self, kind: &FaultKind, start: Time, now: Time) {
        match *kind {
            FaultKind::Outage => self.down = true,
            FaultKind::Hang => self.hang = true,
            FaultKind::ErrorRate(p) => self.extra_error_rate = union(self.extra_error_rate, p),
            FaultKind::AddedLatency(span) => {
                self.added_latency = self.added_latency.saturating_add(span)
            }
            FaultKind::Flapping { period, down } => {
                self.down |= Flap {
                    start,
                    period,
                    down,
                }
                .is_down(now)
            }
        }
    }

    /// No fault active.
    pub const HEALTHY: Condition = Condition {
        down: false,
        hang: false,
        extra_error_rate: 0.0,
        added_latency: 0,
    };

    /// Whether no fault affects calls.
    pub fn is_healthy(&self) -> bool {
        *self == Condition::HEALTHY
    }
}

/// A fault window opening or closing, for the simulator to schedule as a trace event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultEdge {
    /// When.
    pub at: Time,
    /// The dependency's index.
    pub dependency: usize,
    /// The fault's index in [`FaultPlan::faults`].
    pub fault_index: usize,
    /// `true` when the fault starts, `false` when it ends.
    pub started: bool,
}

/// Every fault of a run: the fixed windows indexed for fast queries, the random ones
/// streamed.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    faults: Vec<Fault>,
    /// One timeline per dependency (of the fixed faults), indexed by dependency.
    timelines: Vec<Timeline>,
    /// Each random entry's windows, in entry order.
    random: Vec<RandomWindows>,
    /// Per dependency, the indices into `random` of its entries, in entry order.
    random_of: Vec<Vec<u32>>,
}

/// The piecewise-constant combined effect of one dependency's faults.
#[derive(Debug, Clone, PartialEq, Default)]
struct Timeline {
    /// The start of each segment; segment `k` lasts until `starts[k + 1]`, the last one
    /// forever. Before `starts[0]`, the dependency is healthy.
    starts: Vec<Time>,
    segments: Vec<Segment>,
    /// The flapping faults of all segments, each segment owning a range.
    flaps: Vec<Flap>,
}

#[derive(Debug, Clone, PartialEq)]
struct Segment {
    /// The combined effect of every active fault except the flapping ones.
    base: Condition,
    /// The active flapping faults, a range into `Timeline::flaps`.
    flaps: Range<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Flap {
    start: Time,
    period: Span,
    down: Span,
}

impl Flap {
    fn is_down(&self, now: Time) -> bool {
        (now - self.start) % self.period < self.down
    }
}

impl FaultPlan {
    /// A plan of fixed windows for `dependencies` dependencies (indices
    /// `0..dependencies`). A fault's index in `faults` is its
    /// [`fault_index`](FaultEdge::fault_index). Windows may overlap, on one dependency
    /// or across several.
    pub fn new(dependencies: usize, faults: Vec<Fault>) -> Result<FaultPlan, ConfigError> {
        for (i, fault) in faults.iter().enumerate() {
            let path = format!("faults[{i}]");
            if fault.dependency >= dependencies {
                return Err(ConfigError::new(
                    format!("{path}.dependency"),
                    format!(
                        "no dependency {} (there are {dependencies})",
                        fault.dependency
                    ),
                ));
            }
            fault.validate_as(&path)?;
        }
        let mut timelines = vec![Timeline::default(); dependencies];
        for (dependency, timeline) in timelines.iter_mut().enumerate() {
            *timeline = Timeline::build(&faults, dependency);
        }
        Ok(FaultPlan {
            faults,
            timelines,
            random: Vec::new(),
            random_of: vec![Vec::new(); dependencies],
        })
    }

    /// A plan of the fixed windows `scheduled` and the windows of each [`RandomFaults`]
    /// in `random` over `0..duration`.
    ///
    /// Each random entry draws from its own generator, seeded by one `u64` drawn from
    /// `rng` in entry order, so an entry's windows depend only on the seed, its
    /// position and its own parameters: appending an entry, or a longer run that
    /// draws more windows for one entry, does not move the windows of another.
    pub fn with_random(
        dependencies: usize,
        scheduled: Vec<Fault>,
        random: &[RandomFaults],
        duration: Time,
        rng: &mut impl Rng,
    ) -> Result<FaultPlan, ConfigError> {
        let mut plan = FaultPlan::new(dependencies, scheduled)?;
        for (i, entry) in random.iter().enumerate() {
            let path = format!("random_faults[{i}]");
            if entry.dependency >= dependencies {
                return Err(ConfigError::new(
                    format!("{path}.dependency"),
                    format!(
                        "no dependency {} (there are {dependencies})",
                        entry.dependency
                    ),
                ));
            }
            entry.validate_as(&path)?;
            plan.random_of[entry.dependency].push(plan.random.len() as u32);
            plan.random
                .push(RandomWindows::new(entry, rng.random(), duration));
        }
        Ok(plan)
    }

    /// The fixed windows.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Each random entry's windows as they stood when the plan was made (a copy draws
    /// the same windows as the plan's own).
    pub fn random(&self) -> &[RandomWindows] {
        &self.random
    }

    /// The number of dependencies the plan covers.
    pub fn dependencies(&self) -> usize {
        self.timelines.len()
    }

    /// The combined effect of every fault active on `dependency` at `now`: the fixed
    /// faults, then the random entries in entry order (the order in which error rates
    /// combine). Random windows that ended before `now` are passed for good, so `now`
    /// must not go back between calls.
    ///
    /// # Panics
    ///
    /// If `dependency` is not below [`dependencies`](Self::dependencies).
    #[inline]
    pub fn condition(&mut self, dependency: usize, now: Time) -> Condition {
        let mut condition = self.fixed_condition(dependency, now);
        for &i in &self.random_of[dependency] {
            let windows = &mut self.random[i as usize];
            if let Some(w) = windows.active_at(now) {
                condition.add(&windows.entry.kind, w.start, now);
            }
        }
        condition
    }

    /// The combined effect of the fixed faults active on `dependency` at `now`.
    #[inline]
    fn fixed_condition(&self, dependency: usize, now: Time) -> Condition {
        let timeline = &self.timelines[dependency];
        let k = timeline.starts.partition_point(|&s| s <= now);
        let Some(segment) = k.checked_sub(1).map(|k| &timeline.segments[k]) else {
            return Condition::HEALTHY;
        };
        let mut condition = segment.base;
        if !condition.down {
            let flaps = &timeline.flaps[segment.flaps.start as usize..segment.flaps.end as usize];
            condition.down = flaps.iter().any(|f| f.is_down(now));
        }
        condition
    }

    /// Every fixed fault's start and end, sorted by time; at the same time ends come before
    /// starts (a window is `[start, end)`), then by dependency, then by fault index.
    pub fn edges(&self) -> Vec<FaultEdge> {
        let mut edges: Vec<FaultEdge> = self
            .faults
            .iter()
            .enumerate()
            .flat_map(|(fault_index, f)| {
                [(f.start, true), (f.end, false)].map(|(at, started)| FaultEdge {
                    at,
                    dependency: f.dependency,
                    fault_index,
                    started,
                })
            })
            .collect();
        edges.sort_unstable_by_key(|e| (e.at, e.started, e.dependency, e.fault_index));
        edges
    }
}

/// The probability that either of two independent failures happens, written as
/// `a + b (1 - a)` rather than `1 - (1 - a)(1 - b)` so that a single fault's rate
/// comes out exactly as configured (`0 + p * 1 == p`).
fn union(a: f64, b: f64) -> f64 {
    a + b * (1.0 - a)
}

impl Timeline {
    /// Sweeps the edges of `dependency`'s faults in time order, keeping the active
    /// set ordered by fault index so that floats combine in a fixed order.
    fn build(faults: &[Fault], dependency: usize) -> Timeline {
        let mut edges: Vec<(Time, bool, usize)> = faults
            .iter()
            .enumerate()
            .filter(|(_, f)| f.dependency == dependency)
            .flat_map(|(i, f)| [(f.start, true, i), (f.end, false, i)])
            .collect();
        edges.sort_unstable();
        let mut timeline = Timeline::default();
        let mut active = BTreeSet::new();
        let mut i = 0;
        while i < edges.len() {
            let at = edges[i].0;
            while i < edges.len() && edges[i].0 == at {
                let (_, started, index) = edges[i];
                if started {
                    active.insert(index);
                } else {
                    active.remove(&index);
                }
                i += 1;
            }
            let mut base = Condition::HEALTHY;
            let first_flap = timeline.flaps.len() as u32;
            for &index in &active {
                let fault: &Fault = &faults[index];
                match fault.kind {
                    FaultKind::Outage => base.down = true,
                    FaultKind::Hang => base.hang = true,
                    FaultKind::ErrorRate(p) => {
                        base.extra_error_rate = union(base.extra_error_rate, p)
                    }
                    FaultKind::AddedLatency(span) => {
                        base.added_latency = base.added_latency.saturating_add(span)
                    }
                    FaultKind::Flapping { period, down } => timeline.flaps.push(Flap {
                        start: fault.start,
                        period,
                        down,
                    }),
                }
            }
            timeline.starts.push(at);
            timeline.segments.push(Segment {
                base,
                flaps: first_flap..timeline.flaps.len() as u32,
            });
        }
        timeline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SECOND;

    fn fault(dependency: usize, kind: FaultKind, start: Time, end: Time) -> Fault {
        Fault {
            dependency,
            kind,
            start,
            end,
        }
    }

    fn plan(faults: Vec<Fault>) -> FaultPlan {
        FaultPlan::new(2, faults).unwrap()
    }

    #[test]
    fn no_faults_is_healthy() {
        let mut p = plan(vec![]);
        assert!(p.condition(0, 0).is_healthy());
        assert!(p.condition(1, Time::MAX).is_healthy());
        assert!(p.edges().is_empty());
    }

    #[test]
    fn outage_is_down_inside_its_half_open_window_only() {
        let mut p = plan(vec![fault(0, FaultKind::Outage, 100, 200)]);
        assert!(p.condition(0, 99).is_healthy());
        assert!(p.condition(0, 100).down);
        assert!(p.condition(0, 199).down);
        assert!(p.condition(0, 200).is_healthy());
        // The other dependency is untouched.
        assert!(p.condition(1, 150).is_healthy());
    }

    #[test]
    fn each_kind_sets_its_field() {
        let mut p = plan(vec![
            fault(0, FaultKind::ErrorRate(0.25), 0, 10),
            fault(1, FaultKind::AddedLatency(5_000), 0, 10),
            fault(0, FaultKind::Hang, 20, 30),
        ]);
        assert_eq!(
            p.condition(0, 5),
            Condition {
                extra_error_rate: 0.25,
                ..Condition::HEALTHY
            }
        );
        assert_eq!(
            p.condition(1, 5),
            Condition {
                added_latency: 5_000,
                ..Condition::HEALTHY
            }
        );
        assert_eq!(
            p.condition(0, 25),
            Condition {
                hang: true,
                ..Condition::HEALTHY
            }
        );
        assert!(p.condition(0, 15).is_healthy());
    }

    #[test]
    fn overlapping_faults_combine() {
        let mut p = plan(vec![
            fault(0, FaultKind::ErrorRate(0.5), 0, 100),
            fault(0, FaultKind::ErrorRate(0.5), 50, 150),
            fault(0, FaultKind::AddedLatency(10), 0, 100),
            fault(0, FaultKind::AddedLatency(7), 60, 70),
            fault(0, FaultKind::Outage, 90, 120),
        ]);
        let c = p.condition(0, 65);
        assert_eq!(c.extra_error_rate, 0.75);
        assert_eq!(c.added_latency, 17);
        assert!(!c.down);
        let c = p.condition(0, 95);
        assert!(c.down);
        assert_eq!(c.added_latency, 10);
        let c = p.condition(0, 110);
        assert!(c.down);
        assert_eq!(c.extra_error_rate, 0.5);
        assert_eq!(c.added_latency, 0);
        assert_eq!(p.condition(0, 120).extra_error_rate, 0.5);
        assert!(p.condition(0, 150).is_healthy());
    }

    #[test]
    fn flapping_phases_at_exact_boundaries() {
        let s = SECOND;
        let mut p = plan(vec![fault(
            0,
            FaultKind::Flapping {
                period: 10 * s,
                down: 3 * s,
            },
            100 * s,
            125 * s,
        )]);
        let mut down = |t| p.condition(0, t).down;
        assert!(!down(100 * s - 1));
        assert!(down(100 * s));
        assert!(down(103 * s - 1));
        assert!(!down(103 * s));
        assert!(!down(110 * s - 1));
        assert!(down(110 * s));
        assert!(down(122 * s));
        assert!(!down(123 * s));
        assert!(!down(125 * s));
        assert!(p.condition(0, 124 * s).is_healthy());
    }

    #[test]
    fn flapping_overlapping_other_faults() {
        let mut p = plan(vec![
            fault(0, FaultKind::ErrorRate(0.1), 0, 1_000),
            fault(
                0,
                FaultKind::Flapping {
                    period: 10,
                    down: 10,
                },
                100,
                200,
            ),
            fault(
                0,
                FaultKind::Flapping {
                    period: 100,
                    down: 1,
                },
                150,
                400,
            ),
        ]);
        assert!(!p.condition(0, 99).down);
        assert!(p.condition(0, 100).down, "down == period is always down");
        assert!(p.condition(0, 199).down);
        assert!(!p.condition(0, 200).down);
        assert!(p.condition(0, 250).down);
        assert!(!p.condition(0, 251).down);
        assert_eq!(p.condition(0, 251).extra_error_rate, 0.1);
    }

    #[test]
    fn edges_are_sorted_with_ends_first() {
        let p = plan(vec![
            fault(1, FaultKind::Outage, 10, 20),
            fault(0, FaultKind::Hang, 20, 30),
            fault(0, FaultKind::Outage, 5, 20),
        ]);
        let e: Vec<(Time, usize, usize, bool)> = p
            .edges()
            .iter()
            .map(|e| (e.at, e.dependency, e.fault_index, e.started))
            .collect();
        assert_eq!(
            e,
            vec![
                (5, 0, 2, true),
                (10, 1, 0, true),
                (20, 0, 2, false),
                (20, 1, 0, false),
                (20, 0, 1, true),
                (30, 0, 1, false),
            ]
        );
    }

    fn random(dependency: usize) -> RandomFaults {
        RandomFaults {
            dependency,
            mtbf: 60 * SECOND,
            mttr: 10 * SECOND,
            kind: FaultKind::Outage,
        }
    }

    fn faults_rng(seed: u64) -> ChaCha8Rng {
        crate::sim::rng::stream(seed, crate::sim::rng::Stream::Faults)
    }

    fn random_plan(seed: u64, random: &[RandomFaults], duration: Time) -> FaultPlan {
        FaultPlan::with_random(2, vec![], random, duration, &mut faults_rng(seed)).unwrap()
    }

    /// The windows the plan streams, drawn to the end from a copy of its generators.
    fn windows(plan: &FaultPlan) -> Vec<Fault> {
        let mut out = Vec::new();
        for w in plan.random() {
            let mut w = w.clone();
            while let Some(window) = w.current() {
                out.push(Fault {
                    dependency: w.entry().dependency,
                    kind: w.entry().kind.clone(),
                    start: window.start,
                    end: window.end,
                });
                w.advance();
            }
        }
        out
    }

    #[test]
    fn random_faults_are_deterministic_per_seed_and_differ_across_seeds() {
        let hour = 3_600 * SECOND;
        let mut a = random_plan(1, &[random(0)], hour);
        let faults = windows(&a);
        assert_eq!(faults, windows(&random_plan(1, &[random(0)], hour)));
        assert_ne!(faults, windows(&random_plan(2, &[random(0)], hour)));
        // About hour / (mtbf + mttr) = 51 windows; sorted, inside the run, apart.
        let n = faults.len();
        assert!((25..=80).contains(&n), "{n} windows");
        for pair in faults.windows(2) {
            assert!(pair[0].end < pair[1].start);
        }
        for f in &faults {
            assert!(f.start < f.end && f.end <= hour);
            assert!(!a.condition(0, f.start - 1).down);
            assert!(a.condition(0, f.start).down);
            assert!(a.condition(0, f.end - 1).down);
        }
        // The same windows as expanding the entry up front.
        let mut rng = faults_rng(1);
        assert_eq!(faults, random(0).expand(hour, &mut rng).unwrap());
    }

    #[test]
    fn random_windows_cost_no_memory_however_many() {
        // mtbf = mttr = 1 us over an hour: 1.8e9 windows expanded would not fit in memory;
        // streamed, a plan is a few hundred bytes and queries move through the windows.
        let entry = RandomFaults {
            dependency: 0,
            mtbf: 1,
            mttr: 1,
            kind: FaultKind::Outage,
        };
        let mut p = random_plan(3, std::slice::from_ref(&entry), 3_600 * SECOND);
        let down = (0..10_000u64).filter(|&t| p.condition(0, t).down).count();
        assert!(
            (2_000..8_000).contains(&down),
            "{down} of 10000 instants down"
        );
        // Later on, past half a million more windows, the stream is still in step.
        let late = (0..1_000u64)
            .filter(|&t| p.condition(0, SECOND + t).down)
            .count();
        assert!((200..800).contains(&late), "{late} of 1000 instants down");
        // Past the end of a run, nothing is down. (A two-second run: reaching the end
        // of the hour would draw all 1.8e9 windows, twenty seconds of a debug build.)
        let mut short = random_plan(3, &[entry], 2 * SECOND);
        assert!(short.condition(0, 2 * SECOND).is_healthy());
    }

    #[test]
    fn random_entries_do_not_disturb_each_other() {
        let hour = 3_600 * SECOND;
        let one = random_plan(9, &[random(0)], hour);
        let two = random_plan(9, &[random(0), random(1)], hour);
        let on_dep = |p: &FaultPlan, d: usize| {
            windows(p)
                .into_iter()
                .filter(|f| f.dependency == d)
                .collect::<Vec<_>>()
        };
        assert_eq!(on_dep(&one, 0), on_dep(&two, 0));
        assert!(!on_dep(&two, 1).is_empty());
        // A longer run extends entry 0's windows; entry 1's early windows stay put.
        let longer = random_plan(9, &[random(0), random(1)], 2 * hour);
        let early = |p: &FaultPlan| {
            on_dep(p, 1)
                .into_iter()
                .filter(|f| f.end < hour)
                .collect::<Vec<_>>()
        };
        assert_eq!(early(&two), early(&longer));
    }

    #[test]
    fn random_windows_are_cut_at_the_end_of_the_run() {
        let r = RandomFaults {
            dependency: 0,
            mtbf: 10,
            mttr: 1_000_000,
            kind: FaultKind::Hang,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let w = r.expand(1_000, &mut rng).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].end, 1_000);
    }

    #[test]
    fn rejects_nonsense() {
        let field = |faults| FaultPlan::new(2, faults).unwrap_err().field;
        assert_eq!(
            field(vec![fault(0, FaultKind::Outage, 10, 10)]),
            "faults[0].end"
        );
        assert_eq!(
            field(vec![
                fault(0, FaultKind::Outage, 0, 10),
                fault(0, FaultKind::Outage, 10, 5)
            ]),
            "faults[1].end"
        );
        assert_eq!(
            field(vec![fault(2, FaultKind::Outage, 0, 10)]),
            "faults[0].dependency"
        );
        assert_eq!(
            field(vec![fault(0, FaultKind::ErrorRate(1.5), 0, 10)]),
            "faults[0].error_rate"
        );
        assert_eq!(
            field(vec![fault(0, FaultKind::ErrorRate(-0.1), 0, 10)]),
            "faults[0].error_rate"
        );
        assert_eq!(
            field(vec![fault(0, FaultKind::ErrorRate(f64::NAN), 0, 10)]),
            "faults[0].error_rate"
        );
        assert_eq!(
            field(vec![fault(
                0,
                FaultKind::Flapping { period: 0, down: 0 },
                0,
                10
            )]),
            "faults[0].period"
        );
        assert_eq!(
            field(vec![fault(
                0,
                FaultKind::Flapping { period: 5, down: 6 },
                0,
                10
            )]),
            "faults[0].down"
        );
        assert_eq!(
            field(vec![fault(
                0,
                FaultKind::Flapping { period: 5, down: 0 },
                0,
                10
            )]),
            "faults[0].down"
        );
        let random_field = |r: RandomFaults| {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            FaultPlan::with_random(2, vec![], &[r], 100, &mut rng)
                .unwrap_err()
                .field
        };
        assert_eq!(
            random_field(RandomFaults {
                mtbf: 0,
                ..random(0)
            }),
            "random_faults[0].mtbf"
        );
        assert_eq!(
            random_field(RandomFaults {
                mttr: 0,
                ..random(0)
            }),
            "random_faults[0].mttr"
        );
        assert_eq!(random_field(random(5)), "random_faults[0].dependency");
        assert_eq!(
            random_field(RandomFaults {
                kind: FaultKind::ErrorRate(2.0),
                ..random(0)
            }),
            "random_faults[0].error_rate"
        );
        assert_eq!(
            fault(0, FaultKind::Outage, 3, 1)
                .validate()
                .unwrap_err()
                .reason,
            "must be after start (3 us), got 1 us"
        );
    }

    #[test]
    fn kind_names() {
        assert_eq!(FaultKind::Outage.as_str(), "outage");
        assert_eq!(FaultKind::ErrorRate(0.1).as_str(), "error_rate");
        assert_eq!(FaultKind::AddedLatency(1).as_str(), "added_latency");
        assert_eq!(FaultKind::Hang.as_str(), "hang");
        assert_eq!(
            FaultKind::Flapping { period: 2, down: 1 }.as_str(),
            "flapping"
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = FaultKind> {
        prop_oneof![
            Just(FaultKind::Outage),
            (0.0..=1.0f64).prop_map(FaultKind::ErrorRate),
            (0u64..1_000).prop_map(FaultKind::AddedLatency),
            Just(FaultKind::Hang),
            (1u64..50)
                .prop_flat_map(|period| (Just(period), 1..=period))
                .prop_map(|(period, down)| FaultKind::Flapping { period, down }),
        ]
    }

    fn fault() -> impl Strategy<Value = Fault> {
        (0usize..3, kind(), 0u64..500, 1u64..300).prop_map(|(dependency, kind, start, len)| Fault {
            dependency,
            kind,
            start,
            end: start + len,
        })
    }

    /// The model: scan every fault, in index order.
    fn model(faults: &[Fault], dependency: usize, now: Time) -> Condition {
        let mut c = Condition::HEALTHY;
        for f in faults
            .iter()
            .filter(|f| f.dependency == dependency && f.is_active(now))
        {
            match f.kind {
                FaultKind::Outage => c.down = true,
                FaultKind::Hang => c.hang = true,
                FaultKind::ErrorRate(p) => c.extra_error_rate = union(c.extra_error_rate, p),
                FaultKind::AddedLatency(s) => c.added_latency += s,
                FaultKind::Flapping { period, down } => {
                    c.down |= (now - f.start) % period < down;
                }
            }
        }
        c
    }

    proptest! {
        #[test]
        fn condition_matches_a_linear_scan(
            faults in proptest::collection::vec(fault(), 0..12),
            times in proptest::collection::vec(0u64..900, 1..40),
        ) {
            let mut plan = FaultPlan::new(3, faults.clone()).unwrap();
            for now in times {
                for dependency in 0..3 {
                    prop_assert_eq!(plan.condition(dependency, now), model(&faults, dependency, now));
                }
            }
        }

        /// Streamed random windows give the conditions that expanding them up front
        /// into fixed faults gives, for queries in time order.
        #[test]
        fn streamed_random_faults_match_their_expansion(
            fixed in proptest::collection::vec(fault(), 0..6),
            random in proptest::collection::vec(
                (0usize..3, kind(), 1u64..60, 1u64..60),
                0..4,
            ),
            seed in any::<u64>(),
            mut times in proptest::collection::vec(0u64..900, 1..60),
        ) {
            let random: Vec<RandomFaults> = random
                .into_iter()
                .map(|(dependency, kind, mtbf, mttr)| RandomFaults { dependency, mtbf, mttr, kind })
                .collect();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut plan = FaultPlan::with_random(3, fixed.clone(), &random, 800, &mut rng).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut expanded = fixed;
            for entry in &random {
                expanded.extend(entry.expand(800, &mut rng).unwrap());
            }
            times.sort_unstable();
            for now in times {
                for dependency in 0..3 {
                    prop_assert_eq!(
                        plan.condition(dependency, now),
                        model(&expanded, dependency, now)
                    );
                }
            }
        }

        #[test]
        fn edges_are_sorted_and_complete(faults in proptest::collection::vec(fault(), 0..12)) {
            let edges = FaultPlan::new(3, faults.clone()).unwrap().edges();
            prop_assert_eq!(edges.len(), 2 * faults.len());
            for pair in edges.windows(2) {
                prop_assert!((pair[0].at, pair[0].started) <= (pair[1].at, pair[1].started));
            }
            for (i, f) in faults.iter().enumerate() {
                for (at, started) in [(f.start, true), (f.end, false)] {
                    let edge = FaultEdge { at, dependency: f.dependency, fault_index: i, started };
                    prop_assert!(edges.contains(&edge), "missing {:?}", edge);
                }
            }
        }
    }
}
