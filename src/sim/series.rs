//! The run's time series: what happened in each slice of simulated time, for charts
//! (`--html`), for plotting elsewhere (`--series-csv`, the JSON report's `series`) and
//! for comparing two runs over time.
//!
//! The run is cut into equal buckets whose width is picked from the run's length (a
//! "nice" width, 10 ms to days, so that there are at most [`MAX_BUCKETS`]). Every array
//! is allocated once, when the run starts, with one slot per bucket: memory depends on
//! the run's length, endpoints and dependencies (its configuration), never on its
//! traffic. Events arrive in time order, so one bucket is open at a time; what the open
//! bucket needs beyond counters (the latency histogram, the breaker's and mode's worst
//! state, the deepest queue) lives once, here, and is folded into the arrays when the
//! bucket closes.
//!
//! What each bucket holds, and when a thing counts in it:
//! - replies by outcome per request type, in the bucket where the reply went out; a
//!   request still unanswered at the end counts in the bucket where it arrived (it is
//!   the traffic of that moment that got nothing);
//! - availability, as the report computes it, over the bucket's replies;
//! - the p50 and p99 of the bucket's reply latency (all replies, as the report's);
//! - per dependency: calls started, failures and timeouts answered, the most severe
//!   breaker state it was in (so a trip shorter than a bucket still shows), the oldest
//!   stale entry it served, and its deepest write queue;
//! - the most severe mode, and the latest CPU sample the mode controller saw;
//! - beside the buckets, the fault windows themselves, exact to the microsecond.

use serde::Serialize;

use crate::engine::breaker::BreakerState;
use crate::engine::modes::Mode;
use crate::engine::{Span, Time, MILLISECOND, SECOND};
use crate::node::{Node, Served};

/// Most buckets a run's series has: enough to see a minute's detail in an hour-long
/// run, few enough that a chart draws at once and the JSON stays small.
pub const MAX_BUCKETS: u64 = 720;

/// Fault windows the series keeps (in the order they began; the rest are counted).
pub const MAX_FAULT_WINDOWS: usize = 256;

const MINUTE: Span = 60 * SECOND;
const HOUR: Span = 60 * MINUTE;
const DAY: Span = 24 * HOUR;

/// The bucket widths a series may use, narrowest first; past the last, whole days.
const WIDTHS: [Span; 23] = [
    10 * MILLISECOND,
    20 * MILLISECOND,
    50 * MILLISECOND,
    100 * MILLISECOND,
    200 * MILLISECOND,
    500 * MILLISECOND,
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    15 * SECOND,
    30 * SECOND,
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
];

/// The narrowest width that cuts a run of `duration` into at most [`MAX_BUCKETS`].
pub fn bucket_width(duration: Span) -> Span {
    let needed = duration.div_ceil(MAX_BUCKETS).max(1);
    WIDTHS
        .iter()
        .copied()
        .find(|&w| w >= needed)
        .unwrap_or_else(|| needed.div_ceil(DAY) * DAY)
}

/// The outcomes a bucket counts, in the report's order (control messages are not
/// requests, so they have none).
pub const OUTCOMES: [&str; 13] = [
    "fresh",
    "cached",
    "stale",
    "pending_write",
    "fallback",
    "partial",
    "applied",
    "queued",
    "rejected",
    "shed",
    "error",
    "refused",
    "unanswered",
];

const UNANSWERED: usize = 12;

/// Outcomes that count against availability (as in the report): rejected, shed,
/// error, unanswered.
const UNAVAILABLE: [usize; 4] = [8, 9, 10, UNANSWERED];

/// Refused requests were answered correctly, so availability leaves them out.
const REFUSED: usize = 11;

/// Where a reply counts among [`OUTCOMES`]; `None` for a control message.
fn outcome_index(served: Served) -> Option<usize> {
    Some(match served {
        Served::Fresh => 0,
        Served::Cached { .. } => 1,
        Served::Stale { .. } => 2,
        Served::PendingWrite { .. } => 3,
        Served::Fallback => 4,
        Served::Partial => 5,
        Served::Applied => 6,
        Served::Queued { .. } => 7,
        Served::Rejected => 8,
        Served::Shed => 9,
        Served::Error { code: 11 } => 10,
        Served::Error { .. } => REFUSED,
        Served::Control => return None,
    })
}

fn severity(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

fn from_severity(level: u8) -> BreakerState {
    match level {
        0 => BreakerState::Closed,
        1 => BreakerState::HalfOpen,
        _ => BreakerState::Open,
    }
}

/// One dependency's arrays, and its state carried from bucket to bucket.
struct DependencyBuckets {
    calls: Vec<u32>,
    failures: Vec<u32>,
    /// The most severe breaker state of each bucket ([`severity`]).
    breaker: Vec<u8>,
    /// The oldest stale entry served in each bucket; 0 when none was.
    stale_age: Vec<Span>,
    queue_depth: Vec<u32>,
    /// Now: the breaker's state and the queue's depth.
    state: u8,
    depth: u32,
}

/// A fault window as the series shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultWindow {
    /// The dependency it hit.
    pub dependency: &'static str,
    /// What it was (`outage`, `latency +200ms`, ...).
    pub fault: String,
    /// When it began and ended (microseconds; the end as announced, which may pass
    /// the run's end).
    pub start: Time,
    /// See `start`.
    pub end: Time,
}

/// Accumulates a run's series as it goes.
pub struct SeriesMetrics {
    width: Span,
    buckets: usize,
    /// The open bucket, and when it closes.
    open: usize,
    closes_at: Time,
    /// Outcome counts, `[bucket][kind][outcome]` flattened.
    outcomes: Vec<u32>,
    kinds: usize,
    /// Where the open bucket's counts start in `outcomes`.
    open_row: usize,
    /// The open bucket's replies that took time, and those that took none.
    latency: LogHistogram,
    instant: u64,
    p50: Vec<Option<Span>>,
    p99: Vec<Option<Span>>,
    deps: Vec<DependencyBuckets>,
    mode: Vec<Mode>,
    mode_now: Mode,
    cpu: Vec<Option<f64>>,
    faults: Vec<FaultWindow>,
    faults_omitted: u64,
}

impl SeriesMetrics {
    /// Empty series for a run of `duration` with `kinds` request types and
    /// `dependencies` dependencies.
    pub fn new(duration: Span, kinds: usize, dependencies: usize) -> Self {
        let width = bucket_width(duration);
        let buckets =
            usize::try_from(duration.div_ceil(width).max(1)).expect("at most MAX_BUCKETS");
        SeriesMetrics {
            width,
            buckets,
            open: 0,
            closes_at: width,
            outcomes: vec![0; buckets * kinds * OUTCOMES.len()],
            kinds,
            open_row: 0,
            latency: LogHistogram::default(),
            instant: 0,
            p50: vec![None; buckets],
            p99: vec![None; buckets],
            deps: (0..dependencies)
                .map(|_| DependencyBuckets {
                    calls: vec![0; buckets],
                    failures: vec![0; buckets],
                    breaker: vec![0; buckets],
                    stale_age: vec![0; buckets],
                    queue_depth: vec![0; buckets],
                    state: 0,
                    depth: 0,
                })
                .collect(),
            mode: vec![Mode::Normal; buckets],
            mode_now: Mode::Normal,
            cpu: vec![None; buckets],
            faults: Vec::new(),
            faults_omitted: 0,
        }
    }

    /// Moves the open bucket up to the one holding `now`, closing those before it.
    /// Called before every event, with times that never go back.
    #[inline(always)]
    pub fn advance(&mut self, now: Time, node: &Node) {
        if now >= self.closes_at {
            self.roll(now, node);
        }
    }

    #[cold]
    fn roll(&mut self, now: Time, node: &Node) {
        while now >= self.closes_at && self.open + 1 < self.buckets {
            self.close(node);
            self.open += 1;
            self.open_row = self.open * self.kinds * OUTCOMES.len();
            self.closes_at = self.closes_at.saturating_add(self.width);
            // A new bucket starts in the state the last one ended in.
            let b = self.open;
            for dep in &mut self.deps {
                dep.breaker[b] = dep.state;
                dep.queue_depth[b] = dep.depth;
            }
            self.mode[b] = self.mode_now;
        }
        if self.open + 1 == self.buckets {
            // The last bucket also takes what happens at the run's very end.
            self.closes_at = Time::MAX;
        }
    }

    /// Folds the open bucket's latency and the CPU into its slots.
    fn close(&mut self, node: &Node) {
        let b = self.open;
        let total = self.latency.count + self.instant;
        if total > 0 {
            // Nearest rank over the instant replies (latency 0), then the histogram.
            let rank = |percent: u64| (percent * total).div_ceil(100).max(1);
            // A rank within the instant replies is 0 for `ranks`, whose answer is 0.
            let [p50, p99] = [rank(50), rank(99)].map(|r| r.saturating_sub(self.instant));
            let [p50, p99] = self.latency.ranks([p50, p99]);
            self.p50[b] = Some(p50);
            self.p99[b] = Some(p99);
        }
        self.latency.clear();
        self.instant = 0;
        self.cpu[b] = node.modes().last_sample();
    }

    /// A reply to a request of type `kind` went out after `latency`.
    #[inline(always)]
    pub fn reply(&mut self, kind: u8, served: Served, latency: Span) {
        let Some(outcome) = outcome_index(served) else {
            return;
        };
        let slot = self.open_row + usize::from(kind) * OUTCOMES.len() + outcome;
        self.outcomes[slot] += 1;
        if latency == 0 {
            self.instant += 1;
        } else {
            self.latency.record(latency);
        }
    }

    /// A request of type `kind` that arrived at `arrived` had no reply by the end.
    pub fn unanswered(&mut self, kind: u8, arrived: Time) {
        let b = self.bucket_of(arrived);
        let slot = (b * self.kinds + usize::from(kind)) * OUTCOMES.len() + UNANSWERED;
        self.outcomes[slot] += 1;
    }

    fn bucket_of(&self, t: Time) -> usize {
        usize::try_from(t / self.width).map_or(self.buckets - 1, |b| b.min(self.buckets - 1))
    }

    /// A call to `dependency` started.
    #[inline(always)]
    pub fn call(&mut self, dependency: usize) {
        self.deps[dependency].calls[self.open] += 1;
    }

    /// A call to `dependency` failed or timed out.
    #[inline(always)]
    pub fn failure(&mut self, dependency: usize) {
        self.deps[dependency].failures[self.open] += 1;
    }

    /// The breaker of `dependency` moved to `state`.
    pub fn breaker(&mut self, dependency: usize, state: BreakerState) {
        let b = self.open;
        let dep = &mut self.deps[dependency];
        dep.state = severity(state);
        dep.breaker[b] = dep.breaker[b].max(dep.state);
    }

    /// The write queue of `dependency` now holds `depth` writes.
    pub fn queue_depth(&mut self, dependency: usize, depth: usize) {
        let b = self.open;
        let dep = &mut self.deps[dependency];
        dep.depth = u32::try_from(depth).unwrap_or(u32::MAX);
        dep.queue_depth[b] = dep.queue_depth[b].max(dep.depth);
    }

    /// `dependency`'s cache served an entry of `age` past its TTL.
    pub fn stale_served(&mut self, dependency: usize, age: Span) {
        let slot = &mut self.deps[dependency].stale_age[self.open];
        *slot = (*slot).max(age);
    }

    /// The mode changed to `mode`.
    pub fn mode(&mut self, mode: Mode) {
        self.mode_now = mode;
        let b = self.open;
        self.mode[b] = self.mode[b].max(mode);
    }

    /// A fault window began.
    pub fn fault(&mut self, window: FaultWindow) {
        if self.faults.len() < MAX_FAULT_WINDOWS {
            self.faults.push(window);
        } else {
            self.faults_omitted += 1;
        }
    }

    /// The finished series: the open bucket and any after it closed.
    pub fn finish(&mut self, node: &Node, kinds: &[&str], dependencies: &[&'static str]) -> Series {
        self.roll(Time::MAX - 1, node);
        self.close(node);
        let per_kind = |k: usize| {
            let outcomes: Vec<OutcomeCounts> = OUTCOMES
                .iter()
                .enumerate()
                .filter_map(|(o, &outcome)| {
                    let counts: Vec<u32> = (0..self.buckets)
                        .map(|b| self.outcomes[(b * self.kinds + k) * OUTCOMES.len() + o])
                        .collect();
                    counts
                        .iter()
                        .any(|&n| n > 0)
                        .then_some(OutcomeCounts { outcome, counts })
                })
                .collect();
            (!outcomes.is_empty()).then(|| KindSeries {
                kind: kinds[k].to_owned(),
                outcomes,
            })
        };
        let requests: Vec<KindSeries> = (0..self.kinds).filter_map(per_kind).collect();
        let row_len = self.kinds * OUTCOMES.len();
        let availability = self
            .outcomes
            .chunks_exact(row_len.max(1))
            .map(|row| {
                let (mut counted, mut unavailable) = (0u64, 0u64);
                for (i, &n) in row.iter().enumerate() {
                    let o = i % OUTCOMES.len();
                    if o != REFUSED {
                        counted += u64::from(n);
                    }
                    if UNAVAILABLE.contains(&o) {
                        unavailable += u64::from(n);
                    }
                }
                (counted > 0).then(|| round((counted - unavailable) as f64 / counted as f64, 6))
            })
            .collect();
        let dependencies = std::mem::take(&mut self.deps)
            .into_iter()
            .zip(dependencies)
            .map(|(dep, &name)| DependencySeries {
                name,
                calls: dep.calls,
                failures: dep.failures,
                breaker: dep.breaker.into_iter().map(from_severity).collect(),
                stale_age_max: dep
                    .stale_age
                    .into_iter()
                    .map(|age| (age > 0).then_some(age))
                    .collect(),
                queue_depth: dep.queue_depth,
            })
            .collect();
        Series {
            bucket: self.width,
            buckets: self.buckets,
            requests,
            availability,
            latency_p50: std::mem::take(&mut self.p50),
            latency_p99: std::mem::take(&mut self.p99),
            dependencies,
            mode: std::mem::take(&mut self.mode),
            cpu: std::mem::take(&mut self.cpu)
                .into_iter()
                .map(|c| c.map(|c| round(c, 2)))
                .collect(),
            faults: std::mem::take(&mut self.faults),
            faults_omitted: self.faults_omitted,
        }
    }
}

/// A latency histogram for one bucket: exact below 16 µs, then 16 slots per power of
/// two (each slot 1/16 of its octave wide, so a percentile is within 3% of the
/// truth), read back as the slot's midpoint. Coarser than the report's HDR histogram,
/// which is the point: it is cleared at every bucket, and clearing 4 KB (only up to the
/// highest slot used) costs nothing where clearing the HDR histogram's 26 KB was 8% of
/// a run.
struct LogHistogram {
    slots: [u32; LOG_SLOTS],
    /// Replies recorded, and the highest slot used (what `clear` and `ranks` visit).
    count: u64,
    top: usize,
}

const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Slots for every `u64`: 16 exact values, then 16 per octave from 2^4 to 2^63.
const LOG_SLOTS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram {
            slots: [0; LOG_SLOTS],
            count: 0,
            top: 0,
        }
    }
}

impl LogHistogram {
    fn slot(value: u64) -> usize {
        if value < SUB as u64 {
            return value as usize;
        }
        let octave = 63 - value.leading_zeros(); // at least SUB_BITS
        let shift = octave - SUB_BITS;
        let mantissa = ((value >> shift) as usize) & (SUB - 1);
        SUB + (shift as usize) * SUB + mantissa
    }

    /// The middle of `slot`'s range of values.
    fn value(slot: usize) -> u64 {
        if slot < SUB {
            return slot as u64;
        }
        let shift = ((slot - SUB) / SUB) as u32;
        let low = ((SUB + (slot - SUB) % SUB) as u64) << shift;
        low + ((1u64 << shift) >> 1)
    }

    #[inline(always)]
    fn record(&mut self, value: u64) {
        let slot = Self::slot(value);
        self.slots[slot] += 1;
        self.count += 1;
        self.top = self.top.max(slot);
    }

    /// The values at the given ranks (1-based, ascending; a rank of 0 is 0).
    fn ranks<const N: usize>(&self, ranks: [u64; N]) -> [u64; N] {
        let mut out = [0; N];
        let mut seen = 0u64;
        let mut next = 0;
        while next < N && ranks[next] == 0 {
            next += 1;
        }
        for (slot, &n) in self.slots[..=self.top].iter().enumerate() {
            if next == N {
                break;
            }
            seen += u64::from(n);
            while next < N && ranks[next] <= seen {
                out[next] = Self::value(slot);
                next += 1;
            }
        }
        out
    }

    fn clear(&mut self) {
        self.slots[..=self.top].fill(0);
        self.count = 0;
        self.top = 0;
    }
}

fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// A run's time series, one slot per bucket in every array.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Bucket width (microseconds); bucket `i` covers `[i * bucket, (i + 1) * bucket)`.
    pub bucket: Span,
    /// Buckets in the run.
    pub buckets: usize,
    /// Replies per request type that had any, by outcome (outcomes with none left out).
    pub requests: Vec<KindSeries>,
    /// Share of the bucket's requests answered with data or accepted; `null` when none.
    pub availability: Vec<Option<f64>>,
    /// Reply latency percentiles (microseconds); `null` when there was no reply.
    pub latency_p50: Vec<Option<Span>>,
    /// See `latency_p50`.
    pub latency_p99: Vec<Option<Span>>,
    /// Per dependency.
    pub dependencies: Vec<DependencySeries>,
    /// The most severe mode of each bucket.
    pub mode: Vec<Mode>,
    /// The latest CPU sample (percent) by the bucket's end; `null` before the first.
    pub cpu: Vec<Option<f64>>,
    /// The fault windows, in the order they began.
    pub faults: Vec<FaultWindow>,
    /// Fault windows left out past [`MAX_FAULT_WINDOWS`].
    pub faults_omitted: u64,
}

/// One request type's replies by outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindSeries {
    /// The request type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Per outcome that occurred, in [`OUTCOMES`] order.
    pub outcomes: Vec<OutcomeCounts>,
}

/// Counts of one outcome, per bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    /// One of [`OUTCOMES`].
    pub outcome: &'static str,
    /// Per bucket.
    pub counts: Vec<u32>,
}

/// One dependency's series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DependencySeries {
    /// The dependency.
    pub name: &'static str,
    /// Calls started.
    pub calls: Vec<u32>,
    /// Answers that were failures or timeouts.
    pub failures: Vec<u32>,
    /// The most severe breaker state.
    pub breaker: Vec<BreakerState>,
    /// The oldest stale entry served (microseconds); `null` when none was.
    pub stale_age_max: Vec<Option<Span>>,
    /// The deepest write queue.
    pub queue_depth: Vec<u32>,
}

impl Series {
    /// The series as CSV: one row per bucket, times in seconds, latencies and ages in
    /// milliseconds, one column per request type and outcome and per dependency figure.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut header = vec![
            "start_s".to_owned(),
            "end_s".to_owned(),
            "availability".to_owned(),
            "latency_p50_ms".to_owned(),
            "latency_p99_ms".to_owned(),
            "mode".to_owned(),
            "cpu".to_owned(),
            "faults".to_owned(),
        ];
        for kind in &self.requests {
            for o in &kind.outcomes {
                header.push(format!("{}.{}", kind.kind, o.outcome));
            }
        }
        for dep in &self.dependencies {
            for figure in [
                "calls",
                "failures",
                "breaker",
                "stale_age_max_ms",
                "queue_depth",
            ] {
                header.push(format!("{}.{figure}", dep.name));
            }
        }
        let cells: Vec<String> = header.iter().map(|h| csv_cell(h)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
        let ms = |us: Span| format!("{:.3}", us as f64 / 1e3);
        let seconds = |us: Time| format!("{:.3}", us as f64 / 1e6);
        for b in 0..self.buckets {
            let start = b as u64 * self.bucket;
            let end = start + self.bucket;
            let mut row = vec![
                seconds(start),
                seconds(end),
                self.availability[b].map_or(String::new(), |a| format!("{a:.6}")),
                self.latency_p50[b].map_or(String::new(), ms),
                self.latency_p99[b].map_or(String::new(), ms),
                self.mode[b].to_string(),
                self.cpu[b].map_or(String::new(), |c| format!("{c:.2}")),
            ];
            let active: Vec<String> = self
                .faults
                .iter()
                .filter(|f| f.start < end && f.end > start)
                .map(|f| format!("{} {}", f.dependency, f.fault))
                .collect();
            row.push(csv_cell(&active.join("; ")));
            for kind in &self.requests {
                for o in &kind.outcomes {
                    row.push(o.counts[b].to_string());
                }
            }
            for dep in &self.dependencies {
                row.push(dep.calls[b].to_string());
                row.push(dep.failures[b].to_string());
                row.push(dep.breaker[b].as_str().to_owned());
                row.push(dep.stale_age_max[b].map_or(String::new(), ms));
                row.push(dep.queue_depth[b].to_string());
            }
            out.push_str(&row.join(","));
            out.push('\n');
        }
        out
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_nice_and_keep_the_buckets_few() {
        assert_eq!(bucket_width(1), 10 * MILLISECOND);
        assert_eq!(bucket_width(7 * SECOND), 10 * MILLISECOND);
        assert_eq!(bucket_width(8 * SECOND), 20 * MILLISECOND);
        assert_eq!(bucket_width(10 * MINUTE), SECOND);
        assert_eq!(bucket_width(HOUR), 5 * SECOND);
        assert_eq!(bucket_width(1000 * DAY), 2 * DAY);
        for duration in [1, SECOND, 7 * MINUTE + 3, HOUR, 25 * HOUR, 400 * DAY] {
            assert!(duration.div_ceil(bucket_width(duration)) <= MAX_BUCKETS);
        }
    }

    #[test]
    fn log_histogram_percentiles_are_within_three_percent() {
        let mut h = LogHistogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let [p50, p99] = h.ranks([50_000, 99_000]);
        assert!((p50 as f64 / 50_000.0 - 1.0).abs() < 0.03, "{p50}");
        assert!((p99 as f64 / 99_000.0 - 1.0).abs() < 0.03, "{p99}");
        // Small values are exact, and every u64 has a slot.
        assert_eq!(LogHistogram::value(LogHistogram::slot(7)), 7);
        assert!(LogHistogram::slot(u64::MAX) < LOG_SLOTS);
        h.clear();
        h.record(3_600_000_000);
        let [only] = h.ranks([1]);
        assert!((only as f64 / 3.6e9 - 1.0).abs() < 0.03, "{only}");
    }

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        assert_eq!(csv_cell("users.calls"), "users.calls");
        assert_eq!(csv_cell("a, b"), "\"a, b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
