//! `brownout compare` and `brownout sweep --vs`: two configurations, A and B, run on
//! the same seeds; B is a second file or A with `--set` overrides.
//!
//! The runs are made here, in one place ([`run_pair`] for one seed, `sweep::vs::run`
//! for many); rendering is `compare::Comparison` and `sweep::vs::VsReport`, which take
//! the finished reports, so another output (an HTML page) is one more renderer of the
//! same runs.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{jobs, load_budgeted, scenario_digest, write_file, BadInput, Format, SweepArgs};
use crate::compare::Comparison;
use crate::html::{self, HtmlRun};
use crate::model::Scenario;
use crate::scenario::{Override, Overrides};
use crate::sim::{self, Report, RunOptions};
use crate::sweep::{self, SweepOptions};

/// `brownout compare A.toml [B.toml] [--set KEY=VALUE ...]`.
#[derive(Debug, Args)]
pub(super) struct CompareArgs {
    /// The first configuration, A.
    a: PathBuf,
    /// The second configuration, B [default: A, with the --set overrides].
    b: Option<PathBuf>,
    /// Change a value of B (which is A when no B is given); repeat for more. Keys and
    /// values as for a run's --set.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
    set: Vec<Override>,
    /// The seed both run [default: A's].
    #[arg(long)]
    seed: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Run scenarios beyond the work budget (see scenarios/README.md).
    #[arg(long)]
    allow_large: bool,
    /// Also write both runs as one HTML report to FILE, overlaid on the same charts
    /// (A solid, B dashed; A's and B's breaker and mode strips one above the other).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// `brownout sweep A.toml --vs B.toml` / `--vs-set KEY=VALUE`.
#[derive(Debug, Args)]
pub(super) struct VsArgs {
    /// Run every seed on a second configuration too, B, and compare the two seed by
    /// seed: this file (with A's --set overrides left out), or A itself when only
    /// --vs-set is given.
    #[arg(long, value_name = "B.toml", conflicts_with = "shard")]
    vs: Option<PathBuf>,
    /// Change a value of B, on top of A's --set when B is A; repeat for more.
    #[arg(long = "vs-set", value_name = "KEY=VALUE", value_parser = Override::parse, conflicts_with = "shard")]
    vs_set: Vec<Override>,
}

impl VsArgs {
    /// Whether the sweep is paired.
    pub(super) fn is_set(&self) -> bool {
        self.vs.is_some() || !self.vs_set.is_empty()
    }
}

/// Runs `a` and `b` on `seed`, at once (two threads; each run is deterministic, so
/// the order does not matter).
pub(super) fn run_pair(
    a: &Scenario,
    b: &Scenario,
    seed: u64,
) -> Result<(Report, Report), BadInput> {
    let one = |s: &Scenario| {
        sim::run(s, RunOptions::plain(seed))
            .map_err(|e| BadInput::new(format!("{}: {e}", s.path.display())))
    };
    let (ra, rb) = rayon::join(|| one(a), || one(b));
    Ok((ra?, rb?))
}

/// What differs between `a` and `b` besides their configuration, which the reader
/// must know to read the comparison: a different workload or duration means the two
/// runs did not see the same requests.
fn notes(a: &Scenario, b: &Scenario) -> Vec<String> {
    let mut notes = Vec::new();
    if a.duration != b.duration {
        notes.push(
            "A and B last different times: their counts are not of the same run length".to_owned(),
        );
    }
    if a.workload != b.workload {
        notes.push(
            "A and B declare different workloads: the runs did not see the same requests"
                .to_owned(),
        );
    }
    if a.faults != b.faults || a.random_faults != b.random_faults {
        notes.push("A and B declare different faults".to_owned());
    }
    notes
}

/// A and B of `compare`, read and checked.
fn load_pair(args: &CompareArgs) -> Result<(Scenario, Scenario), BadInput> {
    if args.b.is_none() && args.set.is_empty() {
        return Err(BadInput::new(
            "compare needs a second scenario (B.toml) or at least one --set KEY=VALUE to make B from A",
        ));
    }
    let (a, _) = load_budgeted(&args.a, args.allow_large, Overrides::none())?;
    let b_path = args.b.as_deref().unwrap_or(&args.a);
    let (b, _) = load_budgeted(b_path, args.allow_large, &Overrides(args.set.clone()))?;
    Ok((a, b))
}

pub(super) fn compare(args: CompareArgs) -> Result<ExitCode, BadInput> {
    let (a, b) = load_pair(&args)?;
    let seed = args.seed.unwrap_or(a.seed);
    let (ra, rb) = run_pair(&a, &b, seed)?;
    let comparison = Comparison::new(&ra, &rb, notes(&a, &b));
    if let Some(path) = &args.html {
        // Each run by its file and overrides, as a command line would name it.
        let label = |r: &Report| crate::model::command_args(&r.path, &r.overrides);
        let page = html::render(&[
            HtmlRun {
                label: label(&ra),
                report: &ra,
            },
            HtmlRun {
                label: label(&rb),
                report: &rb,
            },
        ]);
        write_file(path, "HTML report", page.as_bytes())?;
    }
    let text = match args.format {
        Format::Text => comparison.render_text(),
        Format::Json => comparison.render_json(),
    };
    print!("{text}");
    Ok(exit(comparison.passed()))
}

fn exit(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `sweep A --vs B` / `--vs-set`: every seed of the range on both.
pub(super) fn sweep_vs(args: SweepArgs) -> Result<ExitCode, BadInput> {
    let (Some(path), Some(seeds)) = (&args.scenario, args.seeds) else {
        return Err(BadInput::new("sweep --vs needs SCENARIO and --seeds"));
    };
    let a_overrides = Overrides(args.set.clone());
    let (a, a_text) = load_budgeted(path, args.allow_large, &a_overrides)?;
    let (b_path, mut b_overrides) = match &args.vs.vs {
        Some(b) => (b.as_path(), Vec::new()),
        None => (path.as_path(), args.set.clone()),
    };
    b_overrides.extend(args.vs.vs_set.iter().cloned());
    let b_overrides = Overrides(b_overrides);
    let (b, b_text) = load_budgeted(b_path, args.allow_large, &b_overrides)?;
    let options = SweepOptions {
        seeds,
        shard: None,
        jobs: jobs(args.jobs),
        progress: io::stderr().is_terminal(),
    };
    let digests = [
        scenario_digest(path, &a_text, &a_overrides),
        scenario_digest(b_path, &b_text, &b_overrides),
    ];
    let report = sweep::vs::run(&a, &b, [&digests[0], &digests[1]], notes(&a, &b), &options)
        .map_err(|e| BadInput::new(e.to_string()))?;
    let text = match args.format {
        Format::Text => report.render_text(),
        Format::Json => report.render_json(),
    };
    print!("{text}");
    Ok(exit(report.passed()))
}
