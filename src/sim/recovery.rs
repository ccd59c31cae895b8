//! The recovery storm: what hits a dependency when it comes back.
//!
//! For each fault window, on the dependency at fault: its call rate in the minute
//! before the fault began, and the busiest second of the minute after it ended, split
//! by why the calls were made ([`CallKind`]: client first attempts, retries, queued
//! writes draining, background refreshes, health probes). Their ratio is the
//! window's *recovery multiplier*: 1 is a service that comes back to the load it had,
//! 3 one that meets three times that load in its first minute.
//!
//! Seconds are whole seconds of simulated time (`[s, s + 1 s)`):
//! - the minute before is the 60 seconds before the second the fault began in
//!   (fewer if it began in the first minute of the run; none if in the first second).
//!   If another fault was on the same dependency at any time in that minute, the
//!   window takes the rate before of the previous window on it instead (and so on
//!   back): the rate before is the dependency's load when it was last healthy, not
//!   the trickle of the outage before (random faults often come back to back);
//! - the minute after is the 60 seconds from the fault's end, rounded up to a whole
//!   second (a scripted fault ends on one), cut at the end of the run, and at the
//!   second the next fault on the same dependency begins in (what comes after that
//!   is the next fault's recovery, not this one's).
//!
//! Memory is bounded by configuration: per dependency, a ring of the last
//! [`RING`] seconds' counts by kind, and at most
//! [`MAX_FAULT_WINDOWS`](super::report::MAX_FAULT_WINDOWS) windows. A call costs a
//! comparison and an increment; the ring moves on (out of line) once per second in
//! which the dependency is called, and a window is measured when its minute after
//! is over, before the ring forgets it.

use serde::Serialize;

use crate::engine::{Span, Time, SECOND};
use crate::node::CallKind;

/// Seconds the ring keeps: more than a minute, so that the minute before a fault
/// and the minute after one are still there when they are read.
pub const RING: usize = 64;

/// The minute, in seconds.
const MINUTE: u64 = 60;

const KINDS: usize = CallKind::ALL.len();

/// Calls by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    /// Clients' first attempts.
    pub client: u64,
    /// Retries of client calls.
    pub retry: u64,
    /// Queued writes draining.
    pub drain: u64,
    /// Background cache refreshes.
    pub refresh: u64,
    /// Half-open health probes.
    pub probe: u64,
}

impl CallCounts {
    fn from_array(a: [u64; KINDS]) -> Self {
        CallCounts {
            client: a[CallKind::Client as usize],
            retry: a[CallKind::Retry as usize],
            drain: a[CallKind::Drain as usize],
            refresh: a[CallKind::Refresh as usize],
            probe: a[CallKind::Probe as usize],
        }
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.client + self.retry + self.drain + self.refresh + self.probe
    }

    /// `(kind, count)` for each kind, in [`CallKind::ALL`] order.
    pub fn by_kind(&self) -> [(CallKind, u64); KINDS] {
        [
            (CallKind::Client, self.client),
            (CallKind::Retry, self.retry),
            (CallKind::Drain, self.drain),
            (CallKind::Refresh, self.refresh),
            (CallKind::Probe, self.probe),
        ]
    }
}

/// One dependency's calls in each of the last [`RING`] seconds, by kind.
struct Ring {
    counts: [[u64; KINDS]; RING],
    /// The second the newest slot holds, and that slot.
    second: u64,
    slot: usize,
    /// When the next second begins: a call at or after it moves the ring on.
    next: Time,
}

impl Ring {
    fn new() -> Self {
        Ring {
            counts: [[0; KINDS]; RING],
            second: 0,
            slot: 0,
            next: SECOND,
        }
    }

    /// Second `s`'s counts (zero for a second past the newest, or forgotten).
    fn at(&self, s: u64) -> [u64; KINDS] {
        if s <= self.second && s + RING as u64 > self.second {
            self.counts[(s % RING as u64) as usize]
        } else {
            [0; KINDS]
        }
    }

    /// Moves on to second `s` (not before the newest), clearing the seconds between.
    fn advance(&mut self, s: u64) {
        let steps = (s - self.second).min(RING as u64);
        for k in 1..=steps {
            self.counts[((self.second + k) % RING as u64) as usize] = [0; KINDS];
        }
        self.second = s;
        self.slot = (s % RING as u64) as usize;
        self.next = (s + 1).saturating_mul(SECOND);
    }

    /// The sum of seconds `from..to`.
    fn sum(&self, from: u64, to: u64) -> [u64; KINDS] {
        let mut sum = [0; KINDS];
        for s in from..to {
            for (x, n) in sum.iter_mut().zip(self.at(s)) {
                *x += n;
            }
        }
        sum
    }
}

/// One fault window being measured.
struct Window {
    dependency: usize,
    fault: String,
    start: Time,
    end: Time,
    /// The minute before: calls by kind and how long it was, and the instant it was
    /// the minute before (the start, or an earlier window's).
    before: [u64; KINDS],
    before_span: Span,
    baseline_at: Time,
    /// The first second of the minute after (set when the fault ends).
    after_from: Option<u64>,
    /// Measured once the minute after is over (or the run ended, or the next fault
    /// on the dependency began).
    after: Option<After>,
}

/// What cut a window's minute after short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cut {
    /// The run ended within it.
    RunEnd,
    /// The next fault on the same dependency began within it.
    NextFault,
}

/// What the minute after a fault measured.
#[derive(Clone, Copy)]
struct After {
    /// Calls by kind over the seconds of it inside the run.
    calls: [u64; KINDS],
    /// The busiest second (the first of equals) and its calls; none if no second of
    /// the minute was inside the run.
    peak: Option<(u64, [u64; KINDS])>,
    /// Why the minute was cut short, if it was.
    cut: Option<Cut>,
}

/// A dependency's faults, for the windows' rate before.
#[derive(Clone, Copy, Default)]
struct Faults {
    /// Faults on it active now.
    active: u32,
    /// When the last one ended.
    last_end: Option<Time>,
    /// The latest window on it.
    last_window: Option<usize>,
}

/// Recovery figures accumulating during a run.
pub(super) struct RecoveryMetrics {
    rings: Vec<Ring>,
    faults: Vec<Faults>,
    windows: Vec<Window>,
    /// Windows whose fault is active (indices into `windows`).
    open: Vec<usize>,
    /// Windows whose fault ended and whose minute after is not measured yet.
    watching: Vec<usize>,
    omitted: u64,
    max_windows: usize,
    /// The run's length: seconds at or past it are not in the run.
    duration: Time,
}

impl RecoveryMetrics {
    pub(super) fn new(dependencies: usize, max_windows: usize, duration: Time) -> Self {
        RecoveryMetrics {
            rings: (0..dependencies).map(|_| Ring::new()).collect(),
            faults: vec![Faults::default(); dependencies],
            windows: Vec::new(),
            open: Vec::new(),
            watching: Vec::new(),
            omitted: 0,
            max_windows,
            duration,
        }
    }

    /// A call of `kind` to `dependency` started at `now` (never earlier than the last).
    #[inline(always)]
    pub(super) fn call(&mut self, dependency: usize, kind: CallKind, now: Time) {
        let ring = &mut self.rings[dependency];
        if now >= ring.next {
            self.roll(dependency, now);
        }
        let ring = &mut self.rings[dependency];
        ring.counts[ring.slot][kind as usize] += 1;
    }

    /// Moves `dependency`'s ring on to `now`'s second, first measuring the windows
    /// whose minute after is over.
    #[cold]
    #[inline(never)]
    fn roll(&mut self, dependency: usize, now: Time) {
        let s = now / SECOND;
        self.settle(dependency, Settle::By(s));
        self.rings[dependency].advance(s);
    }

    /// Measures `dependency`'s windows whose minute after is over.
    fn settle(&mut self, dependency: usize, when: Settle) {
        let ring = &self.rings[dependency];
        let duration = self.duration;
        let windows = &mut self.windows;
        self.watching.retain(|&w| {
            let window = &mut windows[w];
            let from = window.after_from.expect("a watched window has ended");
            let until = match when {
                _ if window.dependency != dependency => return true,
                Settle::By(by) if by < from + MINUTE => return true,
                Settle::By(_) | Settle::End => None,
                Settle::NextFault(s) => Some(s),
            };
            window.after = Some(measure_after(ring, from, until, duration));
            false
        });
    }

    /// A fault on `dependency` that lasts until `end` started (or ended) at `now`.
    pub(super) fn fault_edge(
        &mut self,
        now: Time,
        dependency: usize,
        fault: &str,
        started: bool,
        end: Time,
    ) {
        let s = now / SECOND;
        if started {
            // The recovery of an earlier fault on it ends here.
            self.settle(dependency, Settle::NextFault(s));
            let faults = self.faults[dependency];
            self.faults[dependency].active += 1;
            if self.windows.len() >= self.max_windows {
                self.omitted += 1;
                return;
            }
            let from = s.saturating_sub(MINUTE);
            let faulty = faults.active > 0 || faults.last_end.is_some_and(|e| e > from * SECOND);
            let (before, before_span, baseline_at) = match faults.last_window {
                Some(w) if faulty => {
                    let w = &self.windows[w];
                    (w.before, w.before_span, w.baseline_at)
                }
                _ => (
                    self.rings[dependency].sum(from, s),
                    (s - from) * SECOND,
                    now,
                ),
            };
            self.faults[dependency].last_window = Some(self.windows.len());
            self.open.push(self.windows.len());
            self.windows.push(Window {
                dependency,
                fault: fault.to_owned(),
                start: now,
                end,
                before,
                before_span,
                baseline_at,
                after_from: None,
                after: None,
            });
        } else {
            let faults = &mut self.faults[dependency];
            faults.active = faults.active.saturating_sub(1);
            faults.last_end = Some(now);
            // A window ends at the end it was announced with.
            let windows = &mut self.windows;
            if let Some(i) = self
                .open
                .iter()
                .position(|&w| windows[w].dependency == dependency && windows[w].end == end)
            {
                let w = self.open.remove(i);
                windows[w].after_from = Some(now.div_ceil(SECOND));
                self.watching.push(w);
            }
        }
    }

    /// The finished figures, in the order the windows began.
    pub(super) fn report(mut self, names: &[&'static str]) -> RecoveryReport {
        for dependency in 0..self.rings.len() {
            self.settle(dependency, Settle::End);
        }
        let windows = self
            .windows
            .iter()
            .map(|w| window_report(w, names[w.dependency]))
            .collect();
        RecoveryReport {
            windows,
            omitted: self.omitted,
        }
    }
}

/// When windows are measured.
#[derive(Clone, Copy)]
enum Settle {
    /// Those whose minute after ends by this second.
    By(u64),
    /// All of them, up to this second: the next fault on the dependency began in it.
    NextFault(u64),
    /// All of them: the run is over.
    End,
}

/// The minute after a fault, from second `from` (cut before second `until`, if
/// given), as `ring` holds it.
fn measure_after(ring: &Ring, from: u64, until: Option<u64>, duration: Time) -> After {
    let mut calls = [0; KINDS];
    let mut peak: Option<(u64, [u64; KINDS])> = None;
    let mut cut = None;
    for s in from..from + MINUTE {
        if until.is_some_and(|until| s >= until) {
            cut = Some(Cut::NextFault);
            break;
        }
        // A second that begins at or past the run's end is not in the run.
        if s.saturating_mul(SECOND) >= duration {
            cut = Some(Cut::RunEnd);
            break;
        }
        let counts = ring.at(s);
        for (x, n) in calls.iter_mut().zip(counts) {
            *x += n;
        }
        let total: u64 = counts.iter().sum();
        if peak.is_none_or(|(_, p)| total > p.iter().sum::<u64>()) {
            peak = Some((s, counts));
        }
    }
    After { calls, peak, cut }
}

/// Rounds to 6 decimals, so that floats print the same everywhere.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn window_report(w: &Window, dependency: &'static str) -> RecoveryWindow {
    let before = CallCounts::from_array(w.before);
    let before_rate = (w.before_span > 0)
        .then(|| round6(before.total() as f64 * SECOND as f64 / w.before_span as f64));
    let after = w.after;
    let peak = after.and_then(|a| a.peak);
    let peak_calls = peak.map(|(_, c)| CallCounts::from_array(c));
    let multiplier = match (before_rate, peak_calls) {
        (Some(rate), Some(peak)) if rate > 0.0 => Some(round6(peak.total() as f64 / rate)),
        _ => None,
    };
    RecoveryWindow {
        dependency,
        fault: w.fault.clone(),
        start: w.start,
        end: w.end,
        before_calls: before,
        before_span: w.before_span,
        before_rate,
        baseline_at: w.baseline_at,
        ended: w.after_from.is_some(),
        after_cut: after.and_then(|a| a.cut),
        after_calls: after.map(|a| CallCounts::from_array(a.calls)),
        peak_at: peak.map(|(s, _)| s * SECOND),
        peak: peak_calls.map(|c| c.total()),
        peak_calls,
        multiplier,
    }
}

/// Each fault window's recovery figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecoveryReport {
    /// In the order the windows began, at most
    /// [`MAX_FAULT_WINDOWS`](super::report::MAX_FAULT_WINDOWS).
    pub windows: Vec<RecoveryWindow>,
    /// Windows past that limit, not measured.
    pub omitted: u64,
}

/// One fault window's recovery: the dependency at fault, its call rate before the
/// fault and its busiest second after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoveryWindow {
    /// The dependency at fault (whose calls are counted).
    pub dependency: &'static str,
    /// What the fault was.
    pub fault: String,
    /// When it began.
    pub start: Time,
    /// When it ended (or was due to, past the end of the run).
    pub end: Time,
    /// Calls in the minute before, by kind.
    pub before_calls: CallCounts,
    /// How long that minute was (less than 60 s for a fault in the run's first
    /// minute), in microseconds.
    pub before_span: Span,
    /// Calls per second in it (6 decimals); none if it was empty (a fault in the
    /// run's first second).
    pub before_rate: Option<f64>,
    /// The instant whose minute before that was: the window's start, or, when another
    /// fault was on the dependency in that minute, the start of the earlier window
    /// whose rate before it takes.
    pub baseline_at: Time,
    /// Whether the fault ended within the run (if not, there is no minute after).
    pub ended: bool,
    /// What cut the minute after short, if anything: the end of the run, or the next
    /// fault on the same dependency (only the seconds before it are measured).
    pub after_cut: Option<Cut>,
    /// Calls in the minute after, by kind (none if the fault did not end in the run).
    pub after_calls: Option<CallCounts>,
    /// When the busiest second of the minute after began (the first of equals).
    pub peak_at: Option<Time>,
    /// Its calls: the peak rate in calls per second.
    pub peak: Option<u64>,
    /// The same by kind.
    pub peak_calls: Option<CallCounts>,
    /// `peak / before_rate` (6 decimals); none when there was no call before (a rate
    /// of 0 has no multiple) or no second after.
    pub multiplier: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MILLISECOND;

    /// A hand-computed case: 2 client calls a second from 0 s to 70 s; the fault from
    /// 70 s to 100 s (one probe at 90.5 s); after it, second 100 has 3 client calls,
    /// 4 drains and 2 refreshes (9: the peak), second 101 has 8 client calls, then 2
    /// a second.
    #[test]
    fn the_multiplier_is_the_busiest_second_after_over_the_rate_before() {
        let minute = 60 * SECOND;
        let mut r = RecoveryMetrics::new(2, 4, 10 * minute);
        for s in 0..70 {
            for k in 0..2 {
                r.call(0, CallKind::Client, s * SECOND + k * 100 * MILLISECOND);
            }
            // The other dependency's calls are not counted against this one.
            r.call(1, CallKind::Client, s * SECOND);
        }
        r.fault_edge(70 * SECOND, 0, "outage", true, 100 * SECOND);
        r.call(0, CallKind::Probe, 90 * SECOND + 500 * MILLISECOND);
        r.fault_edge(100 * SECOND, 0, "outage", false, 100 * SECOND);
        let mut at = |s: u64, kind: CallKind, n: u64| {
            for i in 0..n {
                r.call(0, kind, s * SECOND + i * MILLISECOND);
            }
        };
        at(100, CallKind::Client, 3);
        at(100, CallKind::Drain, 4);
        at(100, CallKind::Refresh, 2);
        at(101, CallKind::Client, 8);
        for s in 102..200 {
            at(s, CallKind::Client, 2);
        }
        let report = r.report(&["users", "products"]);
        assert_eq!(report.omitted, 0);
        let [w] = &report.windows[..] else {
            panic!("{:?}", report.windows)
        };
        assert_eq!(w.dependency, "users");
        // Seconds 10..70: 120 calls in 60 s.
        assert_eq!(w.before_calls.client, 120);
        assert_eq!(w.before_span, minute);
        assert_eq!(w.before_rate, Some(2.0));
        assert_eq!(w.peak_at, Some(100 * SECOND));
        assert_eq!(w.peak, Some(9));
        let peak = w.peak_calls.unwrap();
        assert_eq!((peak.client, peak.drain, peak.refresh), (3, 4, 2));
        assert_eq!(w.multiplier, Some(4.5));
        // The minute after: seconds 100..160; the probe was during the fault.
        let after = w.after_calls.unwrap();
        assert_eq!(after.total(), 9 + 8 + 58 * 2);
        assert_eq!(after.probe, 0);
        assert!(w.ended && w.after_cut.is_none());
        assert_eq!(w.baseline_at, 70 * SECOND);
    }

    #[test]
    fn no_calls_before_is_no_multiplier_and_an_unended_fault_has_no_minute_after() {
        let mut r = RecoveryMetrics::new(2, 4, 120 * SECOND);
        // In the run's first second: the minute before is empty.
        r.fault_edge(500 * MILLISECOND, 0, "outage", true, 10 * SECOND);
        r.fault_edge(10 * SECOND, 0, "outage", false, 10 * SECOND);
        r.call(0, CallKind::Client, 11 * SECOND);
        r.call(0, CallKind::Client, 50 * SECOND);
        // Ends past the run; the minute after the end is cut at 120 s.
        r.fault_edge(90 * SECOND, 0, "outage", true, 200 * SECOND);
        r.fault_edge(100 * SECOND, 0, "error rate", true, 110 * SECOND);
        r.fault_edge(110 * SECOND, 0, "error rate", false, 110 * SECOND);
        r.call(0, CallKind::Retry, 115 * SECOND);
        r.call(0, CallKind::Retry, 115 * SECOND);
        // Past the limit of windows (on the other dependency, which cuts no recovery
        // of this one's).
        r.fault_edge(111 * SECOND, 1, "outage", true, 112 * SECOND);
        r.fault_edge(111 * SECOND, 1, "outage", true, 113 * SECOND);
        let report = r.report(&["users", "products"]);
        let w = &report.windows;
        assert_eq!((w.len(), report.omitted), (4, 1));
        assert_eq!(w[0].before_rate, None);
        assert_eq!((w[0].peak, w[0].multiplier), (Some(1), None));
        assert_eq!(w[1].before_rate, Some(round6(1.0 / 60.0)));
        assert!(!w[1].ended);
        assert_eq!((w[1].peak, w[1].multiplier), (None, None));
        // Seconds 110..120 are in the run: the peak is the two retries at 115 s. The
        // outage from 90 s was on it in the minute before 100 s: the rate before is
        // that window's, the one call in the minute before 90 s (at 50 s).
        assert_eq!(w[2].after_cut, Some(Cut::RunEnd));
        assert_eq!((w[2].peak, w[2].peak_at), (Some(2), Some(115 * SECOND)));
        assert_eq!(w[2].before_calls.client, 1);
        assert_eq!(w[2].baseline_at, 90 * SECOND);
        assert_eq!(w[2].multiplier, Some(round6(2.0 / round6(1.0 / 60.0))));
    }

    #[test]
    fn the_ring_forgets_nothing_a_window_still_needs() {
        // Calls only every 100 s: the ring jumps, and a window's minute after is
        // measured before the jump clears it.
        let mut r = RecoveryMetrics::new(1, 4, 1000 * SECOND);
        r.call(0, CallKind::Client, 30 * SECOND);
        r.fault_edge(40 * SECOND, 0, "outage", true, 50 * SECOND);
        r.fault_edge(50 * SECOND, 0, "outage", false, 50 * SECOND);
        r.call(0, CallKind::Drain, 109 * SECOND);
        r.call(0, CallKind::Client, 500 * SECOND);
        let report = r.report(&["users"]);
        let w = &report.windows[0];
        assert_eq!(w.before_calls.client, 1);
        assert_eq!(w.peak_at, Some(109 * SECOND));
        assert_eq!(w.peak_calls.unwrap().drain, 1);
        assert_eq!(w.after_calls.unwrap().total(), 1);
    }

    #[test]
    fn back_to_back_faults_take_the_healthy_rate_and_cut_the_earlier_recovery() {
        // 10 calls a second throughout; an outage from 60 s to 90 s with 1 call a
        // second, then 30 calls a second until a second outage at 100 s (to 110 s)
        // and 50 a second after it.
        let mut r = RecoveryMetrics::new(1, 4, 300 * SECOND);
        let at = |r: &mut RecoveryMetrics, s: u64, n: u64| {
            for i in 0..n {
                r.call(0, CallKind::Client, s * SECOND + i * MILLISECOND);
            }
        };
        for s in 0..60 {
            at(&mut r, s, 10);
        }
        r.fault_edge(60 * SECOND, 0, "outage", true, 90 * SECOND);
        for s in 60..90 {
            at(&mut r, s, 1);
        }
        r.fault_edge(90 * SECOND, 0, "outage", false, 90 * SECOND);
        for s in 90..100 {
            at(&mut r, s, 30);
        }
        r.fault_edge(100 * SECOND, 0, "outage", true, 110 * SECOND);
        r.fault_edge(110 * SECOND, 0, "outage", false, 110 * SECOND);
        for s in 110..200 {
            at(&mut r, s, 50);
        }
        let report = r.report(&["users"]);
        let [a, b] = &report.windows[..] else {
            panic!("{:?}", report.windows)
        };
        // The first: 10/s before; its recovery is seconds 90..100, cut by the second.
        assert_eq!(a.before_rate, Some(10.0));
        assert_eq!(a.after_cut, Some(Cut::NextFault));
        assert_eq!((a.peak, a.multiplier), (Some(30), Some(3.0)));
        assert_eq!(a.after_calls.unwrap().total(), 300);
        // The second began with the first in its minute before: it takes 10/s, not
        // the 30 s of 1/s and 10 s of 30/s since.
        assert_eq!((b.before_rate, b.baseline_at), (Some(10.0), 60 * SECOND));
        assert_eq!((b.peak, b.multiplier), (Some(50), Some(5.0)));
        assert_eq!(b.after_cut, None);
    }
}
