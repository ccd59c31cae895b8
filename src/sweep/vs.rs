//! `brownout sweep A.toml --vs B.toml`: two configurations under the same seeds,
//! paired seed by seed.
//!
//! Each seed runs on A and on B (one task, so a pair is never split). Of each run the
//! sweep keeps its [`SeedResult`] (so each side gets the ordinary sweep report:
//! expectations' tallies, failing seeds) and its figures that have a better direction
//! ([`compare::figures`]), as `(figure index, value)` against one table of names, so
//! a seed costs a few hundred bytes, not a report. The report is then a pure function
//! of the per-seed results sorted by seed, as in [`super::build`]: the same bytes
//! whatever `--jobs` is.
//!
//! Per figure it shows each side's distribution (p50, p95, worst; nearest rank, from
//! the best run to the worst) and, over the seeds where both runs have the figure, on
//! how many B was better than A, worse, or equal. "Better" is the figure's own
//! direction (higher availability, lower latency, fewer failures); `never` (a breaker
//! that did not close again) is worse than any value.

use std::fmt::Write as _;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;
use serde::Serialize;

use super::{
    build, crashed, error, failures, Crash, SeedRange, SeedResult, SweepError, SweepMeta,
    SweepOptions, SweepReport,
};
use crate::compare::{self, Better, Unit, Verdict};
use crate::model::Scenario;
use crate::sim::{self, Report, RunOptions};

/// The `format` tag of a paired sweep's JSON report.
pub const FORMAT: &str = "brownout-sweep-vs/1";
/// Most seeds one paired sweep may cover. A seed keeps each side's figures, a few
/// kilobytes for a declared service's, so this bounds the memory at a few hundred
/// megabytes (and the run at days of CPU).
pub const MAX_VS_SEEDS: u64 = 100_000;
/// Failing seeds of each side listed by number before the count of the rest.
pub const FAILING_SEEDS_NAMED: usize = 20;

/// A figure's distribution across seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dist {
    /// Seeds that had the figure.
    pub seeds: u64,
    /// The most favourable run's value.
    pub best: Option<f64>,
    /// Median (`null`: never).
    pub p50: Option<f64>,
    /// 95th percentile, counted from the best run.
    pub p95: Option<f64>,
    /// The least favourable run's value.
    pub worst: Option<f64>,
}

/// One figure of both configurations across the seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VsFigure {
    /// Its name (as in `brownout compare`).
    pub name: String,
    /// Its unit.
    pub unit: Unit,
    /// Which way is better.
    pub better: Better,
    /// A's distribution.
    pub a: Dist,
    /// B's distribution.
    pub b: Dist,
    /// Seeds where both runs had the figure and B's was better.
    pub b_better: u64,
    /// ... and B's was worse.
    pub b_worse: u64,
    /// ... and they were equal.
    pub equal: u64,
}

/// One side's summary: the ordinary sweep report of its configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VsSide {
    /// The file and `--set` arguments, as a command writes them.
    pub command: String,
    /// Its sweep report (expectations, statistics, every failure).
    pub sweep: SweepReport,
}

/// A paired sweep's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VsReport {
    /// [`FORMAT`].
    pub format: &'static str,
    /// The seeds run on both.
    pub seeds: SeedRange,
    /// Pairs run.
    pub runs: u64,
    /// Notes on what differs besides the configuration.
    pub notes: Vec<String>,
    /// The first configuration.
    pub a: VsSide,
    /// The second.
    pub b: VsSide,
    /// Per figure with a better direction, in the order of A's first run.
    pub figures: Vec<VsFigure>,
}

impl VsReport {
    /// Whether every seed met every expectation on both sides.
    pub fn passed(&self) -> bool {
        self.a.sweep.passed() && self.b.sweep.passed()
    }
}

/// What one seed's pair leaves: each side's result and figures.
struct Pair {
    a: (SeedResult, Vec<(u32, Option<f64>)>),
    b: (SeedResult, Vec<(u32, Option<f64>)>),
}

/// Names of figures seen so far, each with its unit and direction. Indices are handed
/// out in whatever order the workers finish, so the report's order of figures is not
/// theirs (see [`paired_figures`]).
#[derive(Default)]
struct Names(Vec<(String, Unit, Better)>);

impl Names {
    fn index(&mut self, f: &compare::Figure) -> u32 {
        match self.0.iter().position(|(n, _, _)| *n == f.name) {
            Some(i) => i as u32,
            None => {
                self.0.push((f.name.clone(), f.unit, f.better));
                (self.0.len() - 1) as u32
            }
        }
    }
}

/// Runs `a` and `b` under every seed of `options.seeds` (no shards), in parallel, and
/// builds the paired report. `digests` are each scenario's digest (of its file and
/// overrides), `notes` what differs between them besides the configuration.
pub fn run(
    a: &Scenario,
    b: &Scenario,
    digests: [&str; 2],
    notes: Vec<String>,
    options: &SweepOptions,
) -> Result<VsReport, SweepError> {
    run_with(a, b, digests, notes, options, |scenario, seed| {
        sim::run(scenario, RunOptions::plain(seed))
    })
}

/// [`run`] with the run of one side's seed given. As in a plain sweep, a run that
/// panics is caught: every other seed runs, and the sweep fails naming each crashed
/// seed and side with its message and the command that replays that side.
fn run_with(
    a: &Scenario,
    b: &Scenario,
    digests: [&str; 2],
    notes: Vec<String>,
    options: &SweepOptions,
    simulate: impl Fn(&Scenario, u64) -> io::Result<Report> + Sync,
) -> Result<VsReport, SweepError> {
    let range = options.seeds;
    if range.is_empty() || range.len() > MAX_VS_SEEDS {
        return Err(error(format!(
            "seed range {range} must hold 1 to {MAX_VS_SEEDS} seeds for --vs (each seed's figures are kept for both sides)"
        )));
    }
    let seeds: Vec<u64> = (range.start..range.end).collect();
    let (pool, bar) = super::workers(options, "sweep --vs", seeds.len())?;
    let names = Mutex::new(Names::default());
    let tables: [OnceLock<Vec<(String, String)>>; 2] = [OnceLock::new(), OnceLock::new()];
    let one = |scenario: &Scenario, seed: u64, side: usize| -> io::Result<_> {
        let report = simulate(scenario, seed)?;
        tables[side].get_or_init(|| expectation_table(&report));
        let figures = compare::figures(&report);
        let kept: Vec<(u32, Option<f64>)> = {
            let mut names = names.lock().expect("no worker panics holding it");
            figures
                .iter()
                .filter(|f| f.better != Better::Neither)
                .map(|f| (names.index(f), f.value))
                .collect()
        };
        Ok((SeedResult::from_report(&report), kept))
    };
    // A side's run, its panic caught as (side, message).
    let side = |scenario: &Scenario, seed: u64, i: usize| {
        panic::catch_unwind(AssertUnwindSafe(|| one(scenario, seed, i)))
            .map_err(|payload| (i, super::panic_message(payload.as_ref())))
    };
    let outcomes: Vec<Result<io::Result<Pair>, (usize, String)>> = pool.install(|| {
        seeds
            .par_iter()
            .map(|&seed| {
                let (ra, rb) = (side(a, seed, 0), side(b, seed, 1));
                bar.inc(1);
                Ok(match (ra?, rb?) {
                    (Ok(a), Ok(b)) => Ok(Pair { a, b }),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                })
            })
            .collect()
    });
    bar.finish_and_clear();
    let crashes: Vec<Crash> = outcomes
        .iter()
        .zip(&seeds)
        .filter_map(|(o, &seed)| {
            o.as_ref().err().map(|(i, message)| {
                let scenario = [a, b][*i];
                Crash {
                    label: format!("seed {seed} of {}", ["A", "B"][*i]),
                    message: message.clone(),
                    replay: crate::replay::command_with_args(&scenario.command_args(), seed),
                }
            })
        })
        .collect();
    if !crashes.is_empty() {
        let what = format!("{} --vs {}", a.path.display(), b.path.display());
        return Err(crashed(&what, seeds.len(), &crashes));
    }
    // The first error by seed, not by finishing order, so the message is deterministic.
    let pairs = outcomes
        .into_iter()
        .zip(&seeds)
        .map(|(r, seed)| {
            r.expect("crashes were reported above")
                .map_err(|e| error(format!("seed {seed}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let names = names.into_inner().expect("no worker panicked").0;
    let [ta, tb] = tables;
    let meta = |s: &Scenario, digest: &str, table: Option<Vec<(String, String)>>| SweepMeta {
        scenario: s.name.clone(),
        path: s.command_args(),
        scenario_digest: digest.to_owned(),
        seeds: range,
        shard: None,
        expectations: table.unwrap_or_default(),
        expect_sweep: s.expect.sweep.clone(),
    };
    let figures = paired_figures(&names, &pairs);
    let (ra, rb): (Vec<SeedResult>, Vec<SeedResult>) =
        pairs.into_iter().map(|p| (p.a.0, p.b.0)).unzip();
    Ok(VsReport {
        format: FORMAT,
        seeds: range,
        runs: seeds.len() as u64,
        notes,
        a: VsSide {
            command: a.command_args(),
            sweep: build(meta(a, digests[0], ta.into_inner()), ra),
        },
        b: VsSide {
            command: b.command_args(),
            sweep: build(meta(b, digests[1], tb.into_inner()), rb),
        },
        figures,
    })
}

fn expectation_table(report: &Report) -> Vec<(String, String)> {
    report
        .expectations
        .iter()
        .map(|e| (e.name.to_owned(), e.expected.clone()))
        .collect()
}

/// Per figure, both distributions and the seed-by-seed verdicts. `pairs` are in seed
/// order; figures come in the order the lowest seed's runs list them (A's, then B's),
/// which does not depend on which worker interned a name first.
fn paired_figures(names: &[(String, Unit, Better)], pairs: &[Pair]) -> Vec<VsFigure> {
    // Each run's figures are in `compare::figures`' order: the order of first
    // appearance over the pairs in seed order (A's run, then B's) does not depend on
    // the indices, which workers handed out in whatever order they finished.
    let mut order: Vec<u32> = Vec::new();
    let mut seen = vec![false; names.len()];
    for p in pairs {
        for &(i, _) in p.a.1.iter().chain(&p.b.1) {
            if !seen[i as usize] {
                seen[i as usize] = true;
                order.push(i);
            }
        }
    }
    // Per figure, its values on each side (seeds that had it) and the verdicts of
    // the seeds where both had it: one pass over the pairs, each spread into a row
    // by index.
    let n = names.len();
    let mut a_cols: Vec<Vec<Option<f64>>> = vec![Vec::new(); n];
    let mut b_cols: Vec<Vec<Option<f64>>> = vec![Vec::new(); n];
    let mut verdicts = vec![[0u64; 3]; n];
    let (mut a_row, mut b_row) = (vec![None; n], vec![None; n]);
    for p in pairs {
        a_row.fill(None);
        b_row.fill(None);
        for &(i, v) in &p.a.1 {
            a_row[i as usize] = Some(v);
        }
        for &(i, v) in &p.b.1 {
            b_row[i as usize] = Some(v);
        }
        for i in 0..n {
            if let Some(x) = a_row[i] {
                a_cols[i].push(x);
            }
            if let Some(y) = b_row[i] {
                b_cols[i].push(y);
            }
            if let (Some(x), Some(y)) = (a_row[i], b_row[i]) {
                let slot = match Verdict::of(names[i].2, x, y) {
                    Verdict::Better => 0,
                    Verdict::Worse => 1,
                    Verdict::Equal | Verdict::Changed => 2,
                };
                verdicts[i][slot] += 1;
            }
        }
    }
    order
        .into_iter()
        .map(|i| {
            let i = i as usize;
            let (name, unit, better) = &names[i];
            let [b_better, b_worse, equal] = verdicts[i];
            VsFigure {
                name: name.clone(),
                unit: *unit,
                better: *better,
                a: dist(*better, std::mem::take(&mut a_cols[i])),
                b: dist(*better, std::mem::take(&mut b_cols[i])),
                b_better,
                b_worse,
                equal,
            }
        })
        .collect()
}

/// The distribution of `values`, sorted from the best to the worst.
fn dist(better: Better, mut values: Vec<Option<f64>>) -> Dist {
    use std::cmp::Ordering;
    values.sort_by(|x, y| match Verdict::of(better, *x, *y) {
        // y better than x: y comes first.
        Verdict::Better => Ordering::Greater,
        Verdict::Worse => Ordering::Less,
        Verdict::Equal | Verdict::Changed => Ordering::Equal,
    });
    let at = |p| super::nearest_rank(&values, p).flatten();
    Dist {
        seeds: values.len() as u64,
        best: values.first().copied().flatten(),
        p50: at(50),
        p95: at(95),
        worst: values.last().copied().flatten(),
    }
}

impl VsReport {
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
            "brownout sweep --vs: seeds {}, each run on A and on B",
            self.seeds
        );
        for (label, side) in [("A", &self.a), ("B", &self.b)] {
            let r = &side.sweep;
            let _ = writeln!(
                w,
                "  {label}: {} ({}): {} of {} seed(s) met every expectation",
                r.scenario, side.command, r.passed, r.runs
            );
        }
        for note in &self.notes {
            let _ = writeln!(w, "  note: {note}");
        }
        let _ = writeln!(w);
        let shown: Vec<&VsFigure> = self
            .figures
            .iter()
            .filter(|f| !(all_zero(&f.a) && all_zero(&f.b)))
            .collect();
        let cells = |unit: Unit, d: &Dist| {
            format!(
                "{} / {} / {}",
                compare::show(unit, d.p50),
                compare::show(unit, d.p95),
                compare::show(unit, d.worst)
            )
        };
        let rows: Vec<(&VsFigure, String, String)> = shown
            .iter()
            .map(|f| (*f, cells(f.unit, &f.a), cells(f.unit, &f.b)))
            .collect();
        let width = shown
            .iter()
            .map(|f| f.name.len())
            .max()
            .unwrap_or(0)
            .max(12);
        let aw = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(1);
        let bw = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(1);
        let _ = writeln!(
            w,
            "Figures across seeds: p50 / p95 / worst of each side (nearest rank, best run to worst);"
        );
        let _ = writeln!(
            w,
            "then, seed by seed, on how many B was better than A, worse, or equal"
        );
        let _ = writeln!(
            w,
            "  {:<width$}  {:>aw$}  {:>bw$} {:>7} {:>7} {:>7}",
            "", "A", "B", "better", "worse", "equal"
        );
        for (f, a, b) in &rows {
            let _ = writeln!(
                w,
                "  {:<width$}  {a:>aw$}  {b:>bw$} {:>7} {:>7} {:>7}",
                f.name, f.b_better, f.b_worse, f.equal
            );
        }
        let hidden = self.figures.len() - shown.len();
        if hidden > 0 {
            let _ = writeln!(
                w,
                "  ({hidden} figure(s) zero on every seed of both sides not shown; --format json has them)"
            );
        }
        let _ = writeln!(w);
        let _ = writeln!(w, "Expectations (seeds that met / broke each)");
        let mut names: Vec<&str> = Vec::new();
        for e in self
            .a
            .sweep
            .expectations
            .iter()
            .chain(&self.b.sweep.expectations)
        {
            if !names.contains(&e.name.as_str()) {
                names.push(&e.name);
            }
        }
        let ew = names.iter().map(|n| n.len()).max().unwrap_or(0).max(12);
        let _ = writeln!(
            w,
            "  {:<ew$} {:>17} {:>17}  expected",
            "", "A met/broke", "B met/broke"
        );
        for name in names {
            let tally = |r: &SweepReport| {
                r.expectations
                    .iter()
                    .find(|e| e.name == name)
                    .map(|e| (format!("{}/{}", e.passed, e.failed), e.expected.clone()))
            };
            let (a, b) = (tally(&self.a.sweep), tally(&self.b.sweep));
            let expected = match (&a, &b) {
                (Some((_, x)), Some((_, y))) if x != y => format!("{x} in A, {y} in B"),
                (Some((_, x)), _) | (None, Some((_, x))) => x.clone(),
                (None, None) => String::new(),
            };
            let cell =
                |t: &Option<(String, String)>| t.as_ref().map_or("-".to_owned(), |t| t.0.clone());
            let _ = writeln!(
                w,
                "  {:<ew$} {:>17} {:>17}  {expected}",
                name,
                cell(&a),
                cell(&b)
            );
        }
        for (label, side) in [("A", &self.a), ("B", &self.b)] {
            let r = &side.sweep;
            let _ = writeln!(w);
            if r.failed == 0 {
                let _ = writeln!(w, "Failing seeds of {label}: none");
                continue;
            }
            let mut failing: Vec<u64> = r.failures.iter().map(|f| f.seed).collect();
            failing.dedup();
            let named: Vec<String> = failing
                .iter()
                .take(FAILING_SEEDS_NAMED)
                .map(u64::to_string)
                .collect();
            let more = failing.len() - named.len();
            let tail = if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            };
            let _ = writeln!(
                w,
                "Failing seeds of {label}: {} ({}{tail})",
                r.failed,
                named.join(", ")
            );
            failures::render_groups(w, &r.failures, "  ");
        }
        s
    }
}

fn all_zero(d: &Dist) -> bool {
    d.seeds == 0 || (d.best == Some(0.0) && d.worst == Some(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic on one side of one seed: the other runs go on, and the error names the
    /// seed, the side, and the command that replays that side.
    #[test]
    fn a_panicking_side_is_named_with_its_replay() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/sweep-fails.toml");
        let a = crate::scenario::load(&path).unwrap();
        let mut b = a.clone();
        b.name = "the other side".into();
        let options = SweepOptions {
            seeds: SeedRange { start: 0, end: 4 },
            shard: None,
            jobs: 2,
            progress: false,
        };
        let b_name = b.name.clone();
        let err = run_with(&a, &b, ["0", "1"], vec![], &options, |s, seed| {
            if seed == 2 && s.name == b_name {
                panic!("boom on B");
            }
            sim::run(s, RunOptions::plain(seed))
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("brownout crashed on 1 of 4 seeds of "),
            "{err}"
        );
        assert!(
            err.contains("\n  seed 2 of B: panicked: boom on B\n    replay: "),
            "{err}"
        );
        assert!(err.ends_with("sweep-fails.toml --seed 2"), "{err}");
        // Without a panic, the plain paired sweep.
        let plain = run_with(&a, &b, ["0", "1"], vec![], &options, |s, seed| {
            sim::run(s, RunOptions::plain(seed))
        })
        .unwrap();
        assert_eq!(plain, run(&a, &b, ["0", "1"], vec![], &options).unwrap());
    }
}
