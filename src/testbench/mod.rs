//! `brownout test`: scenarios as regression tests. Each scenario runs under its own
//! seed and its report (with the trace digest) is compared with a snapshot file in
//! insta's `.snap` format; its `[expect]` checks must hold; with `--sweep`, so must its
//! `[expect.sweep]` over a sweep of seeds.
//!
//! The pipeline: find the scenario files ([`discover`]), run them in parallel (each
//! run is independent and deterministic), then, in file order, compare, print, and
//! act on each snapshot ([`check_snapshot`], which `tests/it/all_scenarios.rs` uses for
//! the project's own snapshots too), and build the JUnit suites ([`junit`]). Nothing
//! printed or written depends on `--jobs` or on the order runs finish in.

pub mod diff;
pub mod junit;
pub mod snap;

use std::fmt::Write as _;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::model::Scenario;
use crate::scenario::{self, budget::Limits};
use crate::sim::{self, digest::Fnv1a, Report, RunOptions};
use crate::sweep::{self, expect as sweep_expect, SeedRange, SweepOptions};
use junit::{Case, CaseResult, Suite};
use snap::{Origin, Snapshot};

/// What a snapshot's `expression` says its body is.
pub const EXPRESSION: &str = "the run's report (render_text, with the trace digest)";

/// Where snapshot files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// All in one directory, named by each scenario's path relative to the directory
    /// it was found in (`scenarios/a/b.toml` given as `scenarios` -> `DIR/a/b.snap`).
    Dir(PathBuf),
    /// Beside each scenario: `x.toml` -> `x.snap`.
    Beside,
}

/// What to do with a report that differs from its snapshot (or has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fail; write the new version as `.snap.new` if `write_pending` (never under CI).
    Compare {
        /// Write `.snap.new` files.
        write_pending: bool,
    },
    /// Write the new version as the snapshot.
    Accept,
    /// Ask, for each: accept, reject or skip.
    Review {
        /// Write `.snap.new` for a skipped one.
        write_pending: bool,
    },
}

/// `brownout test`'s settings.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Scenario files and directories.
    pub paths: Vec<PathBuf>,
    /// Where snapshots live.
    pub placement: Placement,
    /// What to do with a changed report.
    pub action: Action,
    /// Worker threads.
    pub jobs: usize,
    /// Also run each scenario's `[expect.sweep]`.
    pub sweep: bool,
    /// The work budget.
    pub limits: Limits,
}

/// Whether the environment says this is a CI run, as insta decides it: `CI` set to
/// anything but `false`, `0` or nothing, or Azure's `TF_BUILD`.
pub fn is_ci() -> bool {
    match std::env::var("CI").ok().as_deref() {
        Some("false" | "0" | "") => false,
        None => std::env::var_os("TF_BUILD").is_some(),
        Some(_) => true,
    }
}

/// A scenario file found, with the name its snapshot takes in a snapshot directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The file, as found (relative when the path given was).
    pub path: PathBuf,
    /// Its path relative to the directory it was found in, without `.toml`; its stem
    /// for a file given by name.
    pub name: PathBuf,
}

/// Every scenario file under `paths`: a file is taken as given; a directory is
/// searched, subdirectories included (but not hidden ones, `snapshots` or `target`),
/// for `*.toml` files that are not service files, in name order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Found>, String> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = found.len();
            walk(path, path, &mut found)
                .map_err(|e| format!("cannot read directory {}: {e}", path.display()))?;
            if found.len() == before {
                return Err(format!(
                    "{}: no scenario file (*.toml) in this directory",
                    path.display()
                ));
            }
        } else if path.is_file() {
            let stem = path.file_stem().unwrap_or(path.as_os_str());
            found.push(Found {
                path: path.clone(),
                name: PathBuf::from(stem),
            });
        } else {
            return Err(format!("{}: no such file or directory", path.display()));
        }
    }
    Ok(found)
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<Found>) -> io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<Vec<_>>>()?;
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !(name.starts_with('.') || name == "snapshots" || name == "target") {
                walk(root, &path, found)?;
            }
        } else if path.extension().is_some_and(|e| e == "toml") && !is_service_file(&path) {
            let rel = path.strip_prefix(root).unwrap_or(&path).with_extension("");
            found.push(Found { path, name: rel });
        }
    }
    Ok(())
}

/// A service file (its top level has `endpoints` and no `duration`) sits among the
/// scenarios that use it; it is not a scenario. A file that does not parse is taken
/// as a scenario, so that its error is reported.
fn is_service_file(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    match text.parse::<toml::Table>() {
        Ok(table) => table.contains_key("endpoints") && !table.contains_key("duration"),
        Err(_) => false,
    }
}

/// How a snapshot compared, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapOutcome {
    /// The report is the snapshot's body.
    Matched,
    /// The report was written as the snapshot (`created`: there was none).
    Accepted {
        /// There was no snapshot before.
        created: bool,
    },
    /// The report differs from the snapshot, or there is none.
    Differs {
        /// There is no snapshot yet.
        new: bool,
        /// The unified diff from the snapshot's body to the report.
        diff: String,
        /// Where the new version was written, if it was.
        pending: Option<PathBuf>,
    },
}

/// Compares `text` with the snapshot at `path` and acts as `action` says (`Review`
/// acts as `Compare` here: the caller asks). A stale `.snap.new` is removed when the
/// report matches or is accepted. A new snapshot's header comes from `origin`; an
/// existing one keeps its own.
pub fn check_snapshot(
    path: &Path,
    origin: &Origin,
    text: &str,
    action: Action,
) -> io::Result<SnapOutcome> {
    let old = Snapshot::read(path)?;
    let pending = snap::pending_path(path);
    let header = old
        .as_ref()
        .map_or_else(|| origin.header(), |s| s.header.clone());
    let new = Snapshot::new(header, text);
    if old.as_ref().is_some_and(|old| old.body == new.body) {
        snap::remove_if_present(&pending)?;
        return Ok(SnapOutcome::Matched);
    }
    match action {
        Action::Accept => {
            new.write(path)?;
            snap::remove_if_present(&pending)?;
            Ok(SnapOutcome::Accepted {
                created: old.is_none(),
            })
        }
        Action::Compare { write_pending } | Action::Review { write_pending } => {
            let old_body = old.as_ref().map_or("", |s| s.body.as_str());
            let old_name = if old.is_some() {
                path.display().to_string()
            } else {
                "(no snapshot)".to_owned()
            };
            let diff = diff::unified(old_body, &new.body, &old_name, "new report");
            let pending = if write_pending {
                new.write(&pending)?;
                Some(pending)
            } else {
                None
            };
            Ok(SnapOutcome::Differs {
                new: old.is_none(),
                diff,
                pending,
            })
        }
    }
}

/// What one scenario's run gave: its report and rendered text, or why it could not run.
enum Outcome {
    Bad(Vec<String>),
    /// The run panicked: a bug in brownout, said as such.
    Crashed(String),
    Ran {
        scenario: Box<Scenario>,
        source: String,
        report: Box<Report>,
        text: String,
    },
}

fn run_one(path: &Path, limits: &Limits) -> Outcome {
    run_one_with(path, limits, sim::run)
}

/// [`run_one`] with the simulator given, so a test can make it panic.
fn run_one_with(
    path: &Path,
    limits: &Limits,
    simulate: impl Fn(&Scenario, RunOptions<'_>) -> io::Result<Report>,
) -> Outcome {
    let text = match scenario::read(path) {
        Ok(t) => t,
        Err(e) => return Outcome::Bad(e.lines()),
    };
    let scenario = match scenario::parse(&text, path) {
        Ok(s) => s,
        Err(e) => return Outcome::Bad(e.lines()),
    };
    let refused = scenario::budget_errors(&scenario, &text, limits);
    if !refused.is_empty() {
        return Outcome::Bad(refused.iter().map(ToString::to_string).collect());
    }
    let options = RunOptions {
        seed: scenario.seed,
        trace: None,
        digest: true,
    };
    // A panic is a bug in brownout: it fails this scenario, saying so, and the other
    // scenarios still run.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        simulate(&scenario, options)
    }));
    let ran = match ran {
        Ok(ran) => ran,
        Err(payload) => {
            return Outcome::Crashed(format!(
                "brownout panicked: {} (a bug in brownout, not in the scenario; replay: {})",
                crate::sweep::panic_message(payload.as_ref()),
                crate::replay::command_with_args(&scenario.command_args(), scenario.seed)
            ))
        }
    };
    match ran {
        Ok(report) => {
            let rendered = report.render_text();
            Outcome::Ran {
                scenario: Box::new(scenario),
                source: text,
                report: Box::new(report),
                text: rendered,
            }
        }
        Err(e) => Outcome::Bad(vec![format!("{}: {e}", path.display())]),
    }
}

/// The outcome of `brownout test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Scenarios whose every case passed.
    pub passed: usize,
    /// Scenarios with a failed case (bad input included).
    pub failed: usize,
    /// Of the failed, those that could not be run at all.
    pub bad_input: usize,
    /// Of the failed, those whose run panicked (a bug in brownout).
    pub crashed: usize,
    /// The JUnit suites, one per scenario, in file order.
    pub suites: Vec<Suite>,
}

impl Summary {
    /// `N passed, N failed`, and the scenarios that could not run, if any.
    pub fn line(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed, self.failed);
        if self.bad_input > 0 {
            let _ = write!(s, " ({} could not be run: bad input)", self.bad_input);
        }
        if self.crashed > 0 {
            let _ = write!(s, " ({} crashed: a bug in brownout)", self.crashed);
        }
        s
    }
}

/// Runs `brownout test`: prints to `out`, reads review answers from `answers`.
pub fn run(
    options: &TestOptions,
    out: &mut dyn Write,
    answers: &mut dyn BufRead,
) -> Result<Summary, String> {
    let found = discover(&options.paths)?;
    if let Placement::Dir(dir) = &options.placement {
        check_unique_names(&found, dir)?;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.max(1))
        .thread_name(|i| format!("test-{i}"))
        .build()
        .map_err(|e| format!("cannot start {} worker threads: {e}", options.jobs))?;
    let runs: Vec<Outcome> = pool.install(|| {
        found
            .par_iter()
            .map(|f| run_one(&f.path, &options.limits))
            .collect()
    });
    drop(pool);

    let mut summary = Summary {
        passed: 0,
        failed: 0,
        bad_input: 0,
        crashed: 0,
        suites: Vec::new(),
    };
    let io_err = |e: io::Error| format!("cannot write the report: {e}");
    for (f, ran) in found.iter().zip(runs) {
        let shown = f.path.display().to_string();
        let (suite, bad) = match ran {
            Outcome::Bad(lines) => {
                writeln!(out, "FAIL {shown}: cannot be run").map_err(io_err)?;
                for line in &lines {
                    writeln!(out, "  error: {line}").map_err(io_err)?;
                }
                let suite = Suite {
                    name: stem(&f.path),
                    file: shown,
                    cases: vec![Case {
                        name: "load".to_owned(),
                        result: CaseResult::Error {
                            message: lines.first().cloned().unwrap_or_default(),
                            detail: lines.join("\n"),
                        },
                    }],
                };
                (suite, true)
            }
            Outcome::Crashed(message) => {
                writeln!(out, "FAIL {shown}: brownout crashed\n  error: {message}")
                    .map_err(io_err)?;
                let suite = Suite {
                    name: stem(&f.path),
                    file: shown,
                    cases: vec![Case {
                        name: "run".to_owned(),
                        result: CaseResult::Error {
                            message: message.clone(),
                            detail: message,
                        },
                    }],
                };
                summary.crashed += 1;
                (suite, false)
            }
            Outcome::Ran {
                scenario,
                source,
                report,
                text,
            } => {
                let mut lines = String::new();
                let mut cases = Vec::new();
                let snap_path = snapshot_path(f, &options.placement);
                let origin = Origin {
                    source: "brownout test".to_owned(),
                    expression: EXPRESSION.to_owned(),
                    input_file: slashed(&f.path),
                };
                cases.push(snapshot_case(
                    &snap_path,
                    &origin,
                    &text,
                    options.action,
                    &shown,
                    out,
                    answers,
                    &mut lines,
                )?);
                for e in &report.expectations {
                    let result = if e.pass {
                        CaseResult::Passed
                    } else {
                        let message = format!("expected {}, measured {}", e.expected, e.measured);
                        let _ = writeln!(lines, "  FAIL expect.{}: {message}", e.name);
                        CaseResult::Failed {
                            message,
                            detail: format!("replay: {}", report.replay_command()),
                        }
                    };
                    cases.push(Case {
                        name: format!("expect.{}", e.name),
                        result,
                    });
                }
                if !report.passed() {
                    let _ = writeln!(lines, "  replay: {}", report.replay_command());
                }
                if options.sweep {
                    if let Some(expect) = &scenario.expect.sweep {
                        cases.extend(sweep_cases(
                            &scenario,
                            &source,
                            expect,
                            options.jobs,
                            &mut lines,
                        )?);
                    }
                }
                let suite = Suite {
                    name: scenario.name.clone(),
                    file: shown.clone(),
                    cases,
                };
                let failed = suite.cases.iter().any(|c| c.result != CaseResult::Passed);
                writeln!(out, "{} {shown}", if failed { "FAIL" } else { "ok  " })
                    .map_err(io_err)?;
                out.write_all(lines.as_bytes()).map_err(io_err)?;
                (suite, false)
            }
        };
        let failed = suite.cases.iter().any(|c| c.result != CaseResult::Passed);
        if failed {
            summary.failed += 1;
        } else {
            summary.passed += 1;
        }
        if bad {
            summary.bad_input += 1;
        }
        summary.suites.push(suite);
    }
    writeln!(out, "\n{}", summary.line()).map_err(io_err)?;
    Ok(summary)
}

/// Two scenarios whose snapshots would share a file in the snapshot directory.
fn check_unique_names(found: &[Found], dir: &Path) -> Result<(), String> {
    let mut names: Vec<(&Path, &Path)> = found
        .iter()
        .map(|f| (f.name.as_path(), f.path.as_path()))
        .collect();
    names.sort();
    for pair in names.windows(2) {
        if pair[0].0 == pair[1].0 && pair[0].1 != pair[1].1 {
            return Err(format!(
                "{} and {} would share the snapshot {}; give them different names, or use --snapshots-beside",
                pair[0].1.display(),
                pair[1].1.display(),
                dir.join(pair[0].0).with_extension("snap").display()
            ));
        }
    }
    Ok(())
}

/// Where the snapshot of `f` lives.
pub fn snapshot_path(f: &Found, placement: &Placement) -> PathBuf {
    match placement {
        Placement::Dir(dir) => {
            let mut name = f.name.as_os_str().to_owned();
            name.push(".snap");
            dir.join(name)
        }
        Placement::Beside => f.path.with_extension("snap"),
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// A path with `/` between its parts, as insta writes `input_file`.
fn slashed(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Compares (and for `--review`, asks about) one snapshot; returns its test case.
#[allow(clippy::too_many_arguments)]
fn snapshot_case(
    path: &Path,
    origin: &Origin,
    text: &str,
    action: Action,
    shown: &str,
    out: &mut dyn Write,
    answers: &mut dyn BufRead,
    lines: &mut String,
) -> Result<Case, String> {
    let where_ = path.display();
    let io_err = |e: io::Error| format!("{where_}: {e}");
    // A review asks before anything is written.
    let first = match action {
        Action::Review { .. } => Action::Compare {
            write_pending: false,
        },
        other => other,
    };
    let outcome = check_snapshot(path, origin, text, first).map_err(io_err)?;
    let result = match outcome {
        SnapOutcome::Matched => CaseResult::Passed,
        SnapOutcome::Accepted { created } => {
            let _ = writeln!(
                lines,
                "  snapshot {}: {where_}",
                if created { "written" } else { "updated" }
            );
            CaseResult::Passed
        }
        SnapOutcome::Differs { new, diff, pending } => {
            if let Action::Review { write_pending } = action {
                return review(
                    path,
                    origin,
                    text,
                    new,
                    &diff,
                    write_pending,
                    shown,
                    out,
                    answers,
                    lines,
                );
            }
            differs(path, new, &diff, pending.as_deref(), lines)
        }
    };
    Ok(Case {
        name: "snapshot".to_owned(),
        result,
    })
}

/// The failure of a changed or missing snapshot, and its lines for the terminal.
fn differs(
    path: &Path,
    new: bool,
    diff: &str,
    pending: Option<&Path>,
    lines: &mut String,
) -> CaseResult {
    let where_ = path.display();
    let then = match pending {
        Some(p) => format!(
            "; the new version is in {}: accept it with --accept or --review, or by renaming it",
            p.display()
        ),
        None => "; no .snap.new written (CI)".to_owned(),
    };
    let message = if new {
        format!("no snapshot yet at {where_}{then}")
    } else {
        let (removed, added) = diff::counts(diff);
        format!("the report differs from {where_} ({removed} line(s) removed, {added} added){then}")
    };
    let _ = writeln!(lines, "  FAIL snapshot: {message}");
    // A new snapshot's diff is the whole report: shown by --review, not here.
    if !new {
        for line in diff.lines() {
            let _ = writeln!(lines, "    {line}");
        }
    }
    CaseResult::Failed {
        message,
        detail: diff.to_owned(),
    }
}

/// Shows the diff and asks: accept (write the snapshot), reject (write nothing, the
/// case fails) or skip (leave a `.snap.new` for later, the case fails).
#[allow(clippy::too_many_arguments)]
fn review(
    path: &Path,
    origin: &Origin,
    text: &str,
    new: bool,
    diff: &str,
    write_pending: bool,
    shown: &str,
    out: &mut dyn Write,
    answers: &mut dyn BufRead,
    lines: &mut String,
) -> Result<Case, String> {
    let where_ = path.display();
    let io_err = |e: io::Error| format!("{where_}: {e}");
    let what = if new {
        "new snapshot"
    } else {
        "changed snapshot"
    };
    writeln!(out, "\n{what} for {shown} ({where_}):\n{diff}").map_err(io_err)?;
    let answer = loop {
        write!(out, "accept (a), reject (r) or skip (s)? ").map_err(io_err)?;
        out.flush().map_err(io_err)?;
        let mut line = String::new();
        if answers.read_line(&mut line).map_err(io_err)? == 0 {
            writeln!(out).map_err(io_err)?;
            break 's';
        }
        match line.trim() {
            "a" | "accept" => break 'a',
            "r" | "reject" => break 'r',
            "s" | "skip" => break 's',
            _ => writeln!(out, "please answer a, r or s").map_err(io_err)?,
        }
    };
    let result = match answer {
        'a' => {
            check_snapshot(path, origin, text, Action::Accept).map_err(io_err)?;
            let _ = writeln!(lines, "  snapshot accepted: {where_}");
            CaseResult::Passed
        }
        'r' => {
            snap::remove_if_present(&snap::pending_path(path)).map_err(io_err)?;
            let message = format!("{what} rejected: {where_} left as it was");
            let _ = writeln!(lines, "  FAIL snapshot: {message}");
            CaseResult::Failed {
                message,
                detail: diff.to_owned(),
            }
        }
        _ => {
            let outcome = check_snapshot(path, origin, text, Action::Compare { write_pending })
                .map_err(io_err)?;
            let pending = match outcome {
                SnapOutcome::Differs { pending, .. } => pending,
                _ => None,
            };
            let message = match pending {
                Some(p) => format!("{what} skipped: the new version is in {}", p.display()),
                None => format!("{what} skipped"),
            };
            let _ = writeln!(lines, "  FAIL snapshot: {message}");
            CaseResult::Failed {
                message,
                detail: diff.to_owned(),
            }
        }
    };
    Ok(Case {
        name: "snapshot".to_owned(),
        result,
    })
}

/// Runs the scenario's `[expect.sweep]` and returns a case per check.
fn sweep_cases(
    scenario: &Scenario,
    source: &str,
    expect: &crate::model::SweepExpectations,
    jobs: usize,
    lines: &mut String,
) -> Result<Vec<Case>, String> {
    let mut digest = Fnv1a::default();
    digest.update(source.as_bytes());
    let options = SweepOptions {
        seeds: SeedRange {
            start: 0,
            end: expect.seeds,
        },
        shard: None,
        jobs,
        progress: false,
    };
    let report = sweep::run(scenario, &digest.hex(), &options).map_err(|e| e.to_string())?;
    let verdicts = sweep_expect::judge(expect, &report);
    let mut cases = Vec::new();
    let _ = writeln!(
        lines,
        "  sweep of seeds {}: {} passed every expectation, {} failed",
        options.seeds, report.passed, report.failed
    );
    for v in verdicts {
        let result = if v.pass {
            CaseResult::Passed
        } else {
            let message = format!("expected {}, measured {}", v.expected, v.measured);
            let _ = writeln!(lines, "  FAIL {}: {message}", v.name);
            let detail = format!(
                "see `{} sweep {}`",
                crate::replay::prefix(),
                crate::replay::shell_word(&scenario.path.display().to_string())
            );
            CaseResult::Failed { message, detail }
        };
        cases.push(Case {
            name: v.name,
            result,
        });
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_run_fails_its_scenario_naming_the_bug_and_the_replay() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/sweep-fails.toml");
        let ran = run_one_with(&path, &Limits::DEFAULT, |_, _| panic!("an invariant broke"));
        let Outcome::Crashed(message) = ran else {
            panic!("a panicking run is not a run")
        };
        assert!(
            message.starts_with("brownout panicked: an invariant broke (a bug in brownout"),
            "{message}"
        );
        assert!(message.ends_with("sweep-fails.toml --seed 0)"), "{message}");
        let summary = Summary {
            passed: 1,
            failed: 1,
            bad_input: 0,
            crashed: 1,
            suites: Vec::new(),
        };
        assert_eq!(
            summary.line(),
            "1 passed, 1 failed (1 crashed: a bug in brownout)"
        );
        // The same file, simulated: a run.
        assert!(matches!(
            run_one_with(&path, &Limits::DEFAULT, sim::run),
            Outcome::Ran { .. }
        ));
    }
}
