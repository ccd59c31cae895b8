//! `brownout shrink`: a failing seed cut down to a small, standalone scenario file that
//! still fails the same expectation.
//!
//! A failing seed replays exactly, but the replay is the whole scenario. The shrinker
//! edits the scenario as a TOML document ([`doc`]), runs each candidate with the seed,
//! and keeps it only if the same expectation still fails:
//!
//! 1. the document is made standalone (a service file is inlined, the seed written in)
//!    and every other expectation dropped;
//! 2. the windows the seed's random faults actually drew are written out as fixed
//!    `[[fault]]` entries (random fault generators are seeded in entry order, so
//!    removing one entry would move every later one's windows; fixed windows can be
//!    removed one at a time);
//! 3. delta debugging ([`ddmin`]) over the faults, script entries, workload streams and
//!    the CPU curve;
//! 4. a pass over the numbers that make a run long ([`numbers`]): the run's duration
//!    (everything past it cut, ramps cut where they stand at the new end), each rate,
//!    each fault's start (moved earlier) and length, each script entry's time. Each is
//!    found by bisection over round values, so the file says "1m 10s", not
//!    "1m 9.873512s".
//!
//! Steps 3 and 4 repeat while either gains. The size is the run's event count
//! ([`Report::events`]): step 4 takes a number only if the run is no bigger; step 3
//! takes any smaller set of parts that still fails (removing a fault can add events,
//! since calls then succeed, and the file is simpler for it; step 4 then shortens it).
//!
//! Everything is deterministic (the candidates are tried in a fixed order, one at a
//! time), so the same scenario, seed and budget give the same file. The work is
//! bounded by a budget of runs; when it runs out first the smallest file found so far
//! is returned and says so.

mod ddmin;
mod doc;
mod numbers;

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use crate::scenario;
use crate::sim::{self, Report, RunOptions};
use doc::Doc;

/// The default budget of `brownout shrink`, in runs.
pub const DEFAULT_MAX_RUNS: u64 = 1_000;

/// Most random fault windows written out as fixed faults: a scenario file holds at
/// most 8 MiB, about 80 000 fault entries, and a shrink of thousands of windows would
/// spend its budget on them.
pub const MAX_EXPANDED_WINDOWS: usize = 10_000;

/// How to show progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing.
    Hidden,
    /// A bar with the runs made and the current size (stderr is a terminal).
    Bar,
    /// A line per phase (stderr is a log).
    Lines,
}

impl Progress {
    /// A bar on a terminal, lines otherwise.
    pub fn for_stderr() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Lines
        }
    }
}

/// How to shrink.
#[derive(Debug, Clone)]
pub struct ShrinkOptions {
    /// Runs allowed, the first (the original) included.
    pub max_runs: u64,
    /// Progress on stderr.
    pub progress: Progress,
}

/// A shrunk scenario.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The file: a header comment, then the scenario.
    pub text: String,
    /// The expectation it fails.
    pub expectation: String,
    /// What the expectation expects.
    pub expected: String,
    /// What the original run measured.
    pub original_measured: String,
    /// What the shrunk file's run measures.
    pub measured: String,
    /// Events of the original run.
    pub original_events: u64,
    /// Events of the shrunk file's run.
    pub events: u64,
    /// Runs made.
    pub runs: u64,
    /// Whether the budget ran out before the shrinker was done.
    pub exhausted: bool,
}

/// Bad input to the shrinker: printed as is, exit 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShrinkError(pub String);

impl std::fmt::Display for ShrinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShrinkError {}

fn error(message: impl Into<String>) -> ShrinkError {
    ShrinkError(message.into())
}

/// What a run of a candidate says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// The target expectation failed.
    Fails { events: u64, measured: String },
    /// It held, or the candidate is not a valid scenario, or the budget is spent.
    Other,
}

/// Runs candidates with the seed, counting runs against the budget.
struct Oracle<'a> {
    /// The path candidates are parsed as (their replay commands name it).
    path: &'a Path,
    seed: u64,
    target: String,
    runs: u64,
    max_runs: u64,
    exhausted: bool,
    /// The phase under way, for progress and the budget message.
    phase: &'static str,
    /// The current best's events, for progress.
    events: u64,
    original_events: u64,
    progress: Progress,
    bar: ProgressBar,
}

impl Oracle<'_> {
    /// Parses and runs `doc`. Once the budget is spent, every answer is
    /// [`Verdict::Other`], so every phase ends by itself.
    fn test(&mut self, doc: &Doc) -> Verdict {
        if self.runs >= self.max_runs {
            self.exhausted = true;
            return Verdict::Other;
        }
        let text = doc.to_toml();
        let Ok(scenario) = scenario::parse(&text, self.path) else {
            return Verdict::Other;
        };
        self.runs += 1;
        self.bar.set_position(self.runs);
        let Ok(report) = run(&scenario, self.seed) else {
            return Verdict::Other;
        };
        match failed(&report, &self.target) {
            Some(measured) => Verdict::Fails {
                events: report.events,
                measured,
            },
            None => Verdict::Other,
        }
    }

    fn enter(&mut self, phase: &'static str) {
        self.phase = phase;
        self.show();
        if self.progress == Progress::Lines && !self.exhausted {
            eprintln!(
                "shrink: {phase}: {} events ({} of the original), {} run(s) of {}",
                self.events,
                share(self.events, self.original_events),
                self.runs,
                self.max_runs
            );
        }
    }

    fn improved(&mut self, events: u64) {
        self.events = events;
        self.show();
    }

    fn show(&self) {
        self.bar.set_message(format!(
            "{}: {} events ({} of the original)",
            self.phase,
            self.events,
            share(self.events, self.original_events)
        ));
    }
}

/// `part` as a share of `whole`, in percent with one decimal.
fn share(part: u64, whole: u64) -> String {
    let whole = u128::from(whole.max(1));
    let tenths = (u128::from(part) * 1000 + whole / 2) / whole;
    if tenths == 0 && part > 0 {
        return "under 0.1%".to_owned();
    }
    format!("{}.{}%", tenths / 10, tenths % 10)
}

fn run(scenario: &scenario::Scenario, seed: u64) -> std::io::Result<Report> {
    sim::run(scenario, RunOptions::plain(seed))
}

/// What the run measured for `target`, if it failed it.
fn failed(report: &Report, target: &str) -> Option<String> {
    report
        .expectations
        .iter()
        .find(|e| e.name == target && !e.pass)
        .map(|e| e.measured.clone())
}

/// Shrinks seed `seed` of the scenario `text`, read from `path`, to a small file that
/// still fails `expectation` (by default the first expectation the seed fails).
///
/// Refuses (as bad input) a scenario that does not parse, a seed that fails no
/// expectation, and an expectation the seed does not fail.
pub fn shrink(
    path: &Path,
    text: &str,
    seed: u64,
    expectation: Option<&str>,
    options: &ShrinkOptions,
) -> Result<Shrunk, ShrinkError> {
    let scenario = scenario::parse(text, path).map_err(|e| error(e.to_string()))?;
    let report = run(&scenario, seed).map_err(|e| error(format!("{}: {e}", path.display())))?;
    let failures: Vec<&str> = report
        .expectations
        .iter()
        .filter(|e| !e.pass)
        .map(|e| e.name)
        .collect();
    let target = match expectation {
        Some(name) => {
            let Some(e) = report.expectations.iter().find(|e| e.name == name) else {
                let names: Vec<&str> = report.expectations.iter().map(|e| e.name).collect();
                return Err(error(format!(
                    "{} has no expectation `{name}`; it has: {}",
                    path.display(),
                    names.join(", ")
                )));
            };
            if e.pass {
                return Err(error(format!(
                    "seed {seed} meets `{name}` (expected {}, measured {}), so there is nothing to shrink; {}",
                    e.expected,
                    e.measured,
                    match failures.as_slice() {
                        [] => "it fails no expectation".to_owned(),
                        some => format!("it fails: {}", some.join(", ")),
                    }
                )));
            }
            e
        }
        None => report
            .expectations
            .iter()
            .find(|e| !e.pass)
            .ok_or_else(|| {
                error(format!(
                    "seed {seed} of {} meets every expectation: there is no failure to shrink",
                    path.display()
                ))
            })?,
    };
    let target_name = target.name.to_owned();
    let expected = target.expected.clone();
    let original_measured = target.measured.clone();
    let original_events = report.events;

    let mut doc = Doc::standalone(text, path, seed).map_err(error)?;
    doc.set_description(format!(
        "Seed {seed} of {} shrunk to what still fails {target_name}; the comment at the top of the file says what was removed.",
        path.display()
    ));
    let bar = if options.progress == Progress::Bar {
        let bar = ProgressBar::new(options.max_runs);
        if let Ok(style) = ProgressStyle::with_template(
            "shrink {pos}/{len} runs [{elapsed_precise}] {wide_bar} {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut oracle = Oracle {
        path,
        seed,
        target: target_name.clone(),
        runs: 1,
        max_runs: options.max_runs.max(1),
        exhausted: false,
        phase: "start",
        events: original_events,
        original_events,
        progress: options.progress,
        bar,
    };
    let mut notes = Vec::new();

    // The standalone file must fail as the original does; the rest builds on it.
    oracle.enter("standalone file");
    let mut events = match oracle.test(&doc) {
        Verdict::Fails { events, .. } => events,
        Verdict::Other if oracle.exhausted => original_events,
        Verdict::Other => {
            return Err(error(format!(
                "{} written out on its own (service inlined, seed {seed}) no longer fails `{target_name}`; this is a bug in brownout shrink",
                path.display()
            )))
        }
    };
    oracle.improved(events);

    // Other expectations only make the file longer.
    let pruned = doc.only_expectation(&target_name);
    if pruned.dropped_expectations > 0 {
        oracle.enter("other expectations");
        if let Verdict::Fails { events: e, .. } = oracle.test(&pruned.doc) {
            notes.push(format!(
                "{} other expectation(s) dropped",
                pruned.dropped_expectations
            ));
            doc = pruned.doc;
            events = e;
            oracle.improved(events);
        }
    }

    // Random faults written out as the windows this seed drew.
    if doc.has_random_faults() {
        oracle.enter("random faults");
        let expanded = doc.expand_random_faults(&scenario, seed).map_err(error)?;
        match oracle.test(&expanded.doc) {
            Verdict::Fails { events: e, .. } => {
                notes.push(format!(
                    "the random faults' {} window(s) drawn by seed {seed} written out as fixed [[fault]] entries",
                    expanded.windows
                ));
                doc = expanded.doc;
                events = e;
                oracle.improved(events);
            }
            Verdict::Other if oracle.exhausted => {}
            Verdict::Other => notes.push(
                "the random faults kept as they are: written out as fixed windows, the run no longer failed"
                    .to_owned(),
            ),
        }
    }
    let original = doc.clone();

    // ddmin over parts, then the numbers, while either gains.
    let mut shrinker = Shrinker {
        oracle: &mut oracle,
        doc,
        events,
    };
    for _ in 0..4 {
        let before = shrinker.events;
        let removed = shrinker.remove_parts();
        shrinker.shorten_numbers();
        if shrinker.oracle.exhausted || (shrinker.events == before && !removed) {
            break;
        }
    }
    let Shrinker { doc, events, .. } = shrinker;
    oracle.bar.finish_and_clear();

    // The final file, run once more so that what the header says is what it does.
    let measured = match oracle.test_unbudgeted(&doc) {
        Some((e, measured)) if e == events => measured,
        other => {
            return Err(error(format!(
                "the shrunk file did not replay as it ran ({other:?}); this is a bug in brownout shrink"
            )))
        }
    };
    let exhausted = oracle.exhausted;
    let header = Header {
        source: path,
        seed,
        expectation: &target_name,
        expected: &expected,
        measured: &measured,
        original_measured: &original_measured,
        events,
        original_events,
        runs: oracle.runs,
        max_runs: oracle.max_runs,
        exhausted: exhausted.then_some(oracle.phase),
        notes: &notes,
        changes: &doc.changes_from(&original),
    };
    Ok(Shrunk {
        text: format!("{}{}", header.render(), doc.to_toml()),
        expectation: target_name,
        expected,
        original_measured,
        measured,
        original_events,
        events,
        runs: oracle.runs,
        exhausted,
    })
}

impl Oracle<'_> {
    /// One run outside the budget: the final check.
    fn test_unbudgeted(&mut self, doc: &Doc) -> Option<(u64, String)> {
        let scenario = scenario::parse(&doc.to_toml(), self.path).ok()?;
        let report = run(&scenario, self.seed).ok()?;
        failed(&report, &self.target).map(|m| (report.events, m))
    }
}

/// The plain replay of one failing seed: the scenario on its own (a service file
/// inlined) with the seed written in, under a header that says what fails.
pub fn plain_replay(
    path: &Path,
    text: &str,
    seed: u64,
    expectation: &str,
    expected: &str,
    measured: &str,
) -> Result<String, ShrinkError> {
    let doc = Doc::standalone(text, path, seed).map_err(error)?;
    let mut header = String::new();
    header.push_str(&format!(
        "# Replay of seed {seed} of {} (written by brownout {}, not shrunk).\n",
        path.display(),
        env!("CARGO_PKG_VERSION")
    ));
    header.push_str(&format!(
        "# It fails {expectation}: expected {expected}, measured {measured}.\n"
    ));
    header.push_str(
        "# Replay it with `brownout THIS_FILE`; shrink it with `brownout shrink THIS_FILE`.\n\n",
    );
    Ok(header + &doc.to_toml())
}

/// The shrinking proper, on the current best document.
struct Shrinker<'o, 'a> {
    oracle: &'o mut Oracle<'a>,
    doc: Doc,
    events: u64,
}

impl Shrinker<'_, '_> {
    /// Takes `candidate` if it still fails and is no bigger.
    fn accept(&mut self, candidate: Doc) -> bool {
        match self.oracle.test(&candidate) {
            Verdict::Fails { events, .. } if events <= self.events => {
                self.doc = candidate;
                self.events = events;
                self.oracle.improved(events);
                true
            }
            _ => false,
        }
    }

    /// ddmin over the removable parts; whether any went.
    fn remove_parts(&mut self) -> bool {
        let parts = self.doc.parts();
        if parts.is_empty() {
            return false;
        }
        self.oracle.enter("remove faults, script entries, streams");
        let base = self.doc.clone();
        let mut best: Option<(Doc, u64)> = None;
        let kept = ddmin::ddmin(&parts, |keep| {
            let candidate = base.keeping(&parts, keep);
            match self.oracle.test(&candidate) {
                Verdict::Fails { events, .. } => {
                    self.oracle.improved(events);
                    best = Some((candidate, events));
                    true
                }
                Verdict::Other => false,
            }
        });
        if kept.len() == parts.len() {
            return false;
        }
        // The last candidate that failed is the one ddmin ended on.
        match best {
            Some((doc, events)) => {
                self.doc = doc;
                self.events = events;
                true
            }
            None => false,
        }
    }

    /// Bisects each number down, in the order that makes later runs cheapest.
    fn shorten_numbers(&mut self) {
        self.oracle.enter("shorten the run, rates and windows");
        for knob in numbers::knobs(&self.doc) {
            if self.oracle.exhausted {
                return;
            }
            let Some(current) = knob.get(&self.doc) else {
                continue;
            };
            let floor = knob.floor();
            if current <= floor {
                continue;
            }
            let units = knob.units();
            if let Some(candidate) = knob.set(&self.doc, floor) {
                if self.accept(candidate) {
                    continue;
                }
            }
            let (mut lo, mut hi) = (floor, current);
            while !self.oracle.exhausted {
                // Close enough: a sixteenth of the value is not worth more runs.
                if hi - lo <= hi / 16.0 {
                    break;
                }
                let Some(mid) = numbers::round_between(lo, hi, units) else {
                    break;
                };
                let taken = match knob.set(&self.doc, mid) {
                    Some(candidate) => self.accept(candidate),
                    None => false,
                };
                if taken {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
        }
    }
}

/// The comment a shrunk file opens with.
struct Header<'a> {
    source: &'a Path,
    seed: u64,
    expectation: &'a str,
    expected: &'a str,
    measured: &'a str,
    original_measured: &'a str,
    events: u64,
    original_events: u64,
    runs: u64,
    max_runs: u64,
    /// The phase the budget ran out in.
    exhausted: Option<&'static str>,
    notes: &'a [String],
    changes: &'a doc::Changes,
}

impl Header<'_> {
    fn render(&self) -> String {
        let mut lines = vec![
            format!(
                "Shrunk by brownout {} from seed {} of {}:",
                env!("CARGO_PKG_VERSION"),
                self.seed,
                self.source.display()
            ),
            format!(
                "  brownout shrink {} --seed {} --expectation {}",
                self.source.display(),
                self.seed,
                self.expectation
            ),
            format!(
                "It still fails {}: expected {}, measured {} (the original run measured {}).",
                self.expectation, self.expected, self.measured, self.original_measured
            ),
            format!(
                "Its run has {} events, {} of the original run's {} ({} runs of a budget of {}).",
                self.events,
                share(self.events, self.original_events),
                self.original_events,
                self.runs,
                self.max_runs
            ),
        ];
        if let Some(phase) = self.exhausted {
            lines.push(format!(
                "NOT MINIMAL: the budget of {} runs ran out while shrinking ({phase}); this is the",
                self.max_runs
            ));
            lines.push(
                "smallest failing file found by then. Shrink it again, or pass a larger --max-runs."
                    .to_owned(),
            );
        }
        for note in self.notes {
            lines.push(format!("Done first: {note}."));
        }
        let removed = self.changes.removed();
        if removed.is_empty() {
            lines.push("Removed: nothing.".to_owned());
        } else {
            lines.push("Removed:".to_owned());
            lines.extend(removed.into_iter().map(|r| format!("  - {r}")));
        }
        let shortened = self.changes.shortened();
        if !shortened.is_empty() {
            lines.push("Shortened:".to_owned());
            lines.extend(shortened.into_iter().map(|r| format!("  - {r}")));
        }
        lines.push("Replay: brownout THIS_FILE (exit 1, with the failure above).".to_owned());
        let mut text: String = lines.iter().map(|l| format!("# {l}\n")).collect();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests;
