//! `brownout shrink`, and the failure files of `brownout sweep --failures-dir`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::{load_budgeted, BadInput};
use crate::scenario::Overrides;
use crate::shrink::{self as shrinker, Progress, ShrinkOptions, DEFAULT_MAX_RUNS};
use crate::sweep::SweepReport;

#[derive(Debug, Args)]
pub(super) struct ShrinkArgs {
    /// The scenario file.
    scenario: PathBuf,
    /// The failing seed to shrink.
    #[arg(long)]
    seed: u64,
    /// The expectation the shrunk file must still fail [default: the first one the
    /// seed fails].
    #[arg(long, value_name = "NAME")]
    expectation: Option<String>,
    /// Write the shrunk scenario to FILE [default: stdout].
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Most runs to make; when they run out first, the smallest failing file found so
    /// far is written, and says so.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_RUNS,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_runs: u64,
    /// Shrink a scenario beyond the work budget (see scenarios/README.md).
    #[arg(long)]
    allow_large: bool,
}

/// `brownout shrink`: exit 0 with the file written, 2 on bad input (including a seed
/// that does not fail).
pub(super) fn run(args: ShrinkArgs) -> Result<ExitCode, BadInput> {
    let (_, text) = load_budgeted(&args.scenario, args.allow_large, Overrides::none())?;
    let options = ShrinkOptions {
        max_runs: args.max_runs,
        progress: Progress::for_stderr(),
    };
    let shrunk = shrinker::shrink(
        &args.scenario,
        &text,
        args.seed,
        args.expectation.as_deref(),
        &options,
    )
    .map_err(|e| BadInput::new(e.0))?;
    let written = match &args.output {
        Some(path) => {
            std::fs::write(path, &shrunk.text)
                .map_err(|e| BadInput::new(format!("cannot write {}: {e}", path.display())))?;
            path.display().to_string()
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(shrunk.text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| BadInput::new(format!("cannot write the shrunk scenario: {e}")))?;
            "stdout".to_owned()
        }
    };
    eprintln!(
        "shrink: seed {} of {} still fails {} (measured {}) with {} events, {} before, in {} runs; written to {written}",
        args.seed,
        args.scenario.display(),
        shrunk.expectation,
        shrunk.measured,
        shrunk.events,
        shrunk.original_events,
        shrunk.runs
    );
    if shrunk.exhausted {
        eprintln!(
            "shrink: the budget of {} runs ran out before shrinking was done: the file is the smallest failing one found, not a minimal one; shrink it again or raise --max-runs",
            args.max_runs
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A file name part from an expectation's name: letters, digits, `.`, `-` and `_`
/// kept, anything else (a service's quoted names may hold anything) as `_`.
fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes into `dir` one file per expectation the sweep saw fail: the lowest failing
/// seed's replay, shrunk within `shrink_runs` runs (a plain replay for 0, or if the
/// shrink fails), named `SCENARIO.EXPECTATION.seedN.toml`.
pub(super) fn write_failures(
    dir: &Path,
    path: &Path,
    text: &str,
    report: &SweepReport,
    shrink_runs: u64,
) -> Result<(), BadInput> {
    if report.failures.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| BadInput::new(format!("cannot create {}: {e}", dir.display())))?;
    let stem = path.file_stem().map_or_else(
        || "scenario".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    for tally in report.expectations.iter().filter(|t| t.failed > 0) {
        // The failures are by seed: the first of this expectation is its lowest seed.
        let Some(first) = report.failures.iter().find(|f| f.expectation == tally.name) else {
            continue;
        };
        let file = dir.join(format!(
            "{}.{}.seed{}.toml",
            file_part(&stem),
            file_part(&first.expectation),
            first.seed
        ));
        let plain = || {
            shrinker::plain_replay(
                path,
                text,
                first.seed,
                &first.expectation,
                &first.expected,
                &first.measured,
            )
            .map_err(|e| BadInput::new(e.0))
        };
        let (content, what) = if shrink_runs == 0 {
            (plain()?, "plain replay".to_owned())
        } else {
            let options = ShrinkOptions {
                max_runs: shrink_runs,
                progress: Progress::Hidden,
            };
            match shrinker::shrink(path, text, first.seed, Some(&first.expectation), &options) {
                Ok(s) => (
                    s.text,
                    format!(
                        "shrunk from {} to {} events{}",
                        s.original_events,
                        s.events,
                        if s.exhausted {
                            ", budget spent first"
                        } else {
                            ""
                        }
                    ),
                ),
                Err(e) => (plain()?, format!("plain replay (shrink failed: {e})")),
            }
        };
        std::fs::write(&file, content)
            .map_err(|e| BadInput::new(format!("cannot write {}: {e}", file.display())))?;
        eprintln!(
            "failures: {} fails {} at seed {}: {what}",
            file.display(),
            first.expectation,
            first.seed
        );
    }
    Ok(())
}
