//! `brownout compare`: two runs' figures side by side, with deltas, and their
//! expectations' verdicts.
//!
//! The runs are made elsewhere (the CLI runs both on one seed); this module turns two
//! [`Report`]s into a [`Comparison`] and renders it as text or JSON. [`figures`] is
//! the list of a run's figures, each with its unit and which way is better, which
//! `brownout sweep --vs` reuses for its paired statistics.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::engine::{HumanSpan, Span};
use crate::sim::report::Recovery;
use crate::sim::Report;

/// The `format` tag of a comparison's JSON.
pub const FORMAT: &str = "brownout-compare/1";

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// More is better (availability, fresh replies).
    Higher,
    /// Less is better (latency, errors, time open).
    Lower,
    /// Neither: a figure that describes, not judges (calls made, stale serves).
    Neither,
}

/// How a figure's value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A whole number.
    Count,
    /// A share in 0..=1, shown as a percentage.
    Ratio,
    /// Simulated microseconds, shown as a duration.
    Micros,
    /// A plain number (6 decimals at most).
    Number,
}

/// One figure of one run: a value, or `None` for "never" (a breaker that never
/// closed again), which is worse than any value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// Its dotted name (`dependencies.payments.time_open`).
    pub name: String,
    /// Its unit.
    pub unit: Unit,
    /// Which way is better.
    pub better: Better,
    /// The value; `None`: never.
    pub value: Option<f64>,
}

/// Which of two values is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// B is better than A.
    Better,
    /// B is worse than A.
    Worse,
    /// The same.
    Equal,
    /// Different, and the figure has no better direction.
    Changed,
}

impl Verdict {
    /// How `b` compares with `a` for a figure that is better `better`.
    pub fn of(better: Better, a: Option<f64>, b: Option<f64>) -> Verdict {
        use std::cmp::Ordering;
        // `None` (never) is worse than any value, whichever way the figure is better.
        let order = match (a, b) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => match better {
                Better::Lower => b.total_cmp(&a).reverse(),
                _ => b.total_cmp(&a),
            },
        };
        // `order`: Greater when b is better (for `Neither`, when b is larger).
        match (order, better) {
            (Ordering::Equal, _) => Verdict::Equal,
            (_, Better::Neither) => Verdict::Changed,
            (Ordering::Greater, _) => Verdict::Better,
            (Ordering::Less, _) => Verdict::Worse,
        }
    }
}

struct Figures(Vec<Figure>);

impl Figures {
    fn push(&mut self, name: impl Into<String>, unit: Unit, better: Better, value: Option<f64>) {
        self.0.push(Figure {
            name: name.into(),
            unit,
            better,
            value,
        });
    }
    fn count(&mut self, name: impl Into<String>, better: Better, n: u64) {
        self.push(name, Unit::Count, better, Some(n as f64));
    }
    fn span(&mut self, name: impl Into<String>, better: Better, span: Span) {
        self.push(name, Unit::Micros, better, Some(span as f64));
    }
}

/// Every figure of a run, in a fixed order: the whole run, then per request type, per
/// endpoint and per dependency in the report's order, then admission, CPU, modes,
/// recovery and the expectations' tally.
pub fn figures(report: &Report) -> Vec<Figure> {
    use Better::{Higher, Lower, Neither};
    let mut f = Figures(Vec::new());
    f.push(
        "availability",
        Unit::Ratio,
        Higher,
        Some(report.availability),
    );
    let l = &report.latency;
    for (p, v) in [
        ("p50", l.p50),
        ("p90", l.p90),
        ("p99", l.p99),
        ("max", l.max),
    ] {
        f.span(format!("latency.{p}"), Lower, v);
    }
    for o in &report.requests {
        let at = format!("requests.{}", o.kind);
        for (name, n, better) in [
            ("total", o.total, Neither),
            ("fresh", o.fresh, Neither),
            ("cached", o.cached, Neither),
            ("stale", o.stale, Neither),
            ("pending_write", o.pending_write, Neither),
            ("fallback", o.fallback, Neither),
            ("partial", o.partial, Lower),
            ("applied", o.applied, Neither),
            ("queued", o.queued, Neither),
            ("rejected", o.rejected, Lower),
            ("error", o.error, Lower),
            ("shed", o.shed, Lower),
            ("refused", o.refused, Neither),
            ("unanswered", o.unanswered, Lower),
        ] {
            f.count(format!("{at}.{name}"), better, n);
        }
    }
    for e in &report.endpoints {
        let at = format!("endpoints.{}", e.name);
        f.push(
            format!("{at}.availability"),
            Unit::Ratio,
            Higher,
            Some(e.availability),
        );
        f.span(format!("{at}.latency.p50"), Lower, e.latency.p50);
        f.span(format!("{at}.latency.p99"), Lower, e.latency.p99);
        f.span(format!("{at}.latency.max"), Lower, e.latency.max);
        f.count(format!("{at}.partial"), Lower, e.partial);
        f.count(format!("{at}.deadline_misses"), Lower, e.deadline_misses);
        f.count(format!("{at}.shed"), Lower, e.shed);
    }
    for d in &report.dependencies {
        let at = format!("dependencies.{}", d.name);
        f.count(format!("{at}.calls"), Neither, d.calls);
        f.count(format!("{at}.failures"), Lower, d.failures);
        f.count(format!("{at}.timeouts"), Lower, d.timeouts);
        if let Some(declared) = &d.declared {
            f.push(
                format!("{at}.failure_rate"),
                Unit::Ratio,
                Lower,
                Some(declared.failure_rate),
            );
            f.push(
                format!("{at}.fan_out"),
                Unit::Number,
                Neither,
                Some(declared.fan_out),
            );
        }
        f.count(format!("{at}.breaker_trips"), Lower, d.breaker_trips);
        f.span(format!("{at}.time_open"), Lower, d.time_open);
        f.count(format!("{at}.stale_serves"), Neither, d.stale_serves);
        f.span(format!("{at}.max_stale_age"), Lower, d.max_stale_age);
        f.count(format!("{at}.expired_refusals"), Lower, d.expired_refusals);
        f.count(format!("{at}.queue_accepted"), Neither, d.queue_accepted);
        f.count(
            format!("{at}.queue_dead_lettered"),
            Lower,
            d.queue_dead_lettered,
        );
        f.count(format!("{at}.queue_rejected"), Lower, d.queue_rejected);
        f.count(format!("{at}.queue_max_depth"), Lower, d.queue_max_depth);
        f.count(format!("{at}.writes_lost"), Lower, d.writes_lost);
        if let Some(r) = &d.retries {
            f.count(format!("{at}.retries"), Neither, r.scheduled);
        }
    }
    if let Some(a) = &report.admission {
        let shed: u64 = a
            .tiers
            .iter()
            .map(|t| t.shed_full + t.shed_displaced + t.shed_expired)
            .sum();
        f.count("admission.shed", Lower, shed);
        f.count(
            "admission.peak_in_flight",
            Neither,
            u64::from(a.peak_in_flight),
        );
    }
    if let Some(c) = &report.compute {
        f.push("cpu.mean", Unit::Ratio, Lower, Some(c.mean));
        f.push("cpu.peak", Unit::Ratio, Lower, Some(c.peak));
    }
    let m = &report.modes;
    f.span("modes.degraded", Lower, m.degraded);
    f.span("modes.critical", Lower, m.critical);
    f.count("modes.changes", Lower, m.changes);
    match report.recovery {
        Recovery::NoHardFault => {}
        Recovery::Within(span) => f.span("recovery_time", Lower, span),
        Recovery::Never => f.push("recovery_time", Unit::Micros, Lower, None),
    }
    let failed = report.expectations.iter().filter(|e| !e.pass).count() as u64;
    f.count("expectations_failed", Lower, failed);
    f.0
}

/// A figure's value for people: a count, a percentage, a duration, `never`.
pub fn show(unit: Unit, value: Option<f64>) -> String {
    let Some(v) = value else {
        return "never".to_owned();
    };
    match unit {
        Unit::Count => format!("{v:.0}"),
        Unit::Ratio => format!("{:.4}%", v * 100.0),
        Unit::Micros => HumanSpan(v.max(0.0) as Span).to_string(),
        Unit::Number => trim(format!("{v:.6}")),
    }
}

/// The difference `b - a` for people, signed; empty when there is none to show.
pub fn show_delta(unit: Unit, a: Option<f64>, b: Option<f64>) -> String {
    let (Some(a), Some(b)) = (a, b) else {
        return String::new();
    };
    let d = b - a;
    let sign = if d < 0.0 { "-" } else { "+" };
    let m = d.abs();
    match unit {
        Unit::Count => format!("{sign}{m:.0}"),
        // Percentage points: a share minus a share.
        Unit::Ratio => format!("{sign}{:.4}pp", m * 100.0),
        Unit::Micros => format!("{sign}{}", HumanSpan(m as Span)),
        Unit::Number => format!("{sign}{}", trim(format!("{m:.6}"))),
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// One run of a comparison, for its header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// The scenario's name.
    pub scenario: String,
    /// The file and `--set` arguments, as a command would write them.
    pub command: String,
    /// Whether every expectation held.
    pub passed: bool,
}

impl Side {
    fn of(report: &Report) -> Side {
        Side {
            scenario: report.scenario.clone(),
            command: crate::model::command_args(&report.path, &report.overrides),
            passed: report.passed(),
        }
    }
}

/// One figure of both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FigureRow {
    /// Its name.
    pub name: String,
    /// Its unit.
    pub unit: Unit,
    /// Which way is better.
    pub better: Better,
    /// A's value (`null`: never; absent: A has no such figure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<Option<f64>>,
    /// B's value, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<Option<f64>>,
    /// How B compares with A; none when only one run has the figure.
    pub verdict: Option<Verdict>,
}

/// One expectation's verdict in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdicts {
    /// What it expects.
    pub expected: String,
    /// What the run measured.
    pub measured: String,
    /// Whether it held.
    pub pass: bool,
}

/// One expectation of either run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectationRow {
    /// Its name.
    pub name: String,
    /// In A, if A has it.
    pub a: Option<Verdicts>,
    /// In B, if B has it.
    pub b: Option<Verdicts>,
}

/// Two runs of one seed side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// [`FORMAT`].
    pub format: &'static str,
    /// The seed both ran.
    pub seed: u64,
    /// The first run.
    pub a: Side,
    /// The second run.
    pub b: Side,
    /// Notes on what differs besides the configuration (the workload, the duration).
    pub notes: Vec<String>,
    /// Every figure of either run: A's in order, then those only B has.
    pub figures: Vec<FigureRow>,
    /// Every expectation of either run, A's first.
    pub expectations: Vec<ExpectationRow>,
}

impl Comparison {
    /// The comparison of `a` and `b`, two runs of the same seed; `notes` say what else
    /// differs between their scenarios.
    pub fn new(a: &Report, b: &Report, notes: Vec<String>) -> Comparison {
        let fa = figures(a);
        let fb = figures(b);
        let mut rows: Vec<FigureRow> = fa
            .iter()
            .map(|x| {
                let y = fb.iter().find(|y| y.name == x.name);
                FigureRow {
                    name: x.name.clone(),
                    unit: x.unit,
                    better: x.better,
                    a: Some(x.value),
                    b: y.map(|y| y.value),
                    verdict: y.map(|y| Verdict::of(x.better, x.value, y.value)),
                }
            })
            .collect();
        rows.extend(
            fb.iter()
                .filter(|y| !fa.iter().any(|x| x.name == y.name))
                .map(|y| FigureRow {
                    name: y.name.clone(),
                    unit: y.unit,
                    better: y.better,
                    a: None,
                    b: Some(y.value),
                    verdict: None,
                }),
        );
        let verdicts = |r: &Report, name: &str| {
            r.expectations
                .iter()
                .find(|e| e.name == name)
                .map(|e| Verdicts {
                    expected: e.expected.clone(),
                    measured: e.measured.clone(),
                    pass: e.pass,
                })
        };
        let mut names: Vec<&str> = a.expectations.iter().map(|e| e.name).collect();
        for e in &b.expectations {
            if !names.contains(&e.name) {
                names.push(e.name);
            }
        }
        let expectations = names
            .into_iter()
            .map(|name| ExpectationRow {
                name: name.to_owned(),
                a: verdicts(a, name),
                b: verdicts(b, name),
            })
            .collect();
        Comparison {
            format: FORMAT,
            seed: a.seed,
            a: Side::of(a),
            b: Side::of(b),
            notes,
            figures: rows,
            expectations,
        }
    }

    /// Whether both runs met every expectation.
    pub fn passed(&self) -> bool {
        self.a.passed && self.b.passed
    }

    /// The comparison as pretty JSON, with a final newline.
    pub fn render_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("comparisons serialize") + "\n"
    }

    /// The comparison for people. Figures that are zero in both runs are left out
    /// (and counted); the JSON has them all.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let verdict = |passed: bool| if passed { "PASS" } else { "FAIL" };
        let _ = writeln!(w, "brownout compare: seed {}", self.seed);
        for (label, side) in [("A", &self.a), ("B", &self.b)] {
            let held = if side.passed {
                "every expectation held"
            } else {
                "an expectation failed"
            };
            let _ = writeln!(w, "  {label}: {} ({}): {held}", side.scenario, side.command);
        }
        for note in &self.notes {
            let _ = writeln!(w, "  note: {note}");
        }
        let _ = writeln!(w);
        let shown: Vec<&FigureRow> = self
            .figures
            .iter()
            .filter(|r| !(is_zero(r.a) && is_zero(r.b)))
            .collect();
        let width = shown
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(0)
            .max(12);
        let _ = writeln!(
            w,
            "Figures (B against A)\n  {:<width$} {:>16} {:>16} {:>16}",
            "", "A", "B", "delta"
        );
        let cell =
            |unit, v: Option<Option<f64>>| v.map_or_else(|| "-".to_owned(), |v| show(unit, v));
        for r in &shown {
            let delta = match (r.a, r.b, r.verdict) {
                (_, _, Some(Verdict::Equal)) => "=".to_owned(),
                (Some(a), Some(b), _) => show_delta(r.unit, a, b),
                _ => String::new(),
            };
            let judged = match r.verdict {
                Some(Verdict::Better) => "  better",
                Some(Verdict::Worse) => "  worse",
                _ => "",
            };
            let _ = writeln!(
                w,
                "  {:<width$} {:>16} {:>16} {:>16}{judged}",
                r.name,
                cell(r.unit, r.a),
                cell(r.unit, r.b),
                delta
            );
        }
        let hidden = self.figures.len() - shown.len();
        if hidden > 0 {
            let _ = writeln!(
                w,
                "  ({hidden} figure(s) zero in both runs not shown; --format json has every figure)"
            );
        }
        let _ = writeln!(w);
        let _ = writeln!(w, "Expectations");
        if self.expectations.is_empty() {
            let _ = writeln!(w, "  none");
        }
        let side = |v: &Option<Verdicts>, other: &Option<Verdicts>| match (v, other) {
            (None, _) => "-, not in this scenario".to_owned(),
            (Some(v), Some(o)) if v.expected != o.expected => format!(
                "{} {} (expected {})",
                verdict(v.pass),
                v.measured,
                v.expected
            ),
            (Some(v), _) => format!("{} {}", verdict(v.pass), v.measured),
        };
        for e in &self.expectations {
            let expected = match (&e.a, &e.b) {
                (Some(a), Some(b)) if a.expected != b.expected => String::new(),
                (Some(v), _) | (None, Some(v)) => format!(" (expected {})", v.expected),
                (None, None) => String::new(),
            };
            let _ = writeln!(w, "  {}{expected}", e.name);
            let _ = writeln!(w, "    A: {}", side(&e.a, &e.b));
            let _ = writeln!(w, "    B: {}", side(&e.b, &e.a));
        }
        s
    }
}

fn is_zero(v: Option<Option<f64>>) -> bool {
    matches!(v, None | Some(Some(0.0)))
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::Equal => "equal",
            Verdict::Changed => "changed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_better_direction_and_never_is_worst() {
        use Better::*;
        assert_eq!(Verdict::of(Lower, Some(2.0), Some(1.0)), Verdict::Better);
        assert_eq!(Verdict::of(Lower, Some(1.0), Some(2.0)), Verdict::Worse);
        assert_eq!(Verdict::of(Higher, Some(1.0), Some(2.0)), Verdict::Better);
        assert_eq!(Verdict::of(Higher, Some(2.0), Some(2.0)), Verdict::Equal);
        assert_eq!(Verdict::of(Neither, Some(2.0), Some(3.0)), Verdict::Changed);
        assert_eq!(Verdict::of(Lower, None, Some(1e12)), Verdict::Better);
        assert_eq!(Verdict::of(Higher, Some(0.0), None), Verdict::Worse);
        assert_eq!(Verdict::of(Lower, None, None), Verdict::Equal);
    }

    #[test]
    fn values_and_deltas_read_in_their_units() {
        assert_eq!(show(Unit::Ratio, Some(0.999861)), "99.9861%");
        assert_eq!(show(Unit::Micros, Some(1_500_000.0)), "1.5s");
        assert_eq!(show(Unit::Micros, None), "never");
        assert_eq!(show(Unit::Number, Some(0.1)), "0.1");
        assert_eq!(
            show_delta(Unit::Ratio, Some(0.99), Some(0.995)),
            "+0.5000pp"
        );
        assert_eq!(show_delta(Unit::Count, Some(10.0), Some(7.0)), "-3");
        assert_eq!(show_delta(Unit::Micros, Some(3e6), Some(1e6)), "-2s");
        assert_eq!(show_delta(Unit::Micros, None, Some(1e6)), "");
    }
}
