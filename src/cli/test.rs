//! `brownout test`: the command line of the test bench (`testbench`), and the JUnit
//! file it writes.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{limits, BadInput};
use crate::testbench::{self, junit, Action, Placement, TestOptions};

/// `brownout test` arguments.
#[derive(Debug, Args)]
pub(super) struct TestArgs {
    /// Scenario files, or directories searched for them (service files among them are
    /// skipped) [default: scenarios].
    paths: Vec<PathBuf>,
    /// The directory holding the snapshots, named after each scenario's path relative
    /// to the directory it was found in.
    #[arg(long, value_name = "DIR", default_value = "snapshots")]
    snapshot_dir: PathBuf,
    /// Keep each snapshot beside its scenario (`x.toml` -> `x.snap`) instead.
    #[arg(long, conflicts_with = "snapshot_dir")]
    snapshots_beside: bool,
    /// Write every changed or new report as its snapshot.
    #[arg(long, conflicts_with = "review")]
    accept: bool,
    /// Show each changed or new snapshot and ask: accept, reject or skip.
    #[arg(long)]
    review: bool,
    /// Write a JUnit XML report to FILE: a test suite per scenario, a test case for its
    /// snapshot and for each of its expectations.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Worker threads [default: the available parallelism].
    #[arg(long, value_name = "J", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Also run each scenario's [expect.sweep] over its seeds and check it.
    #[arg(long)]
    sweep: bool,
    /// Run scenarios beyond the work budget (see scenarios/README.md).
    #[arg(long)]
    allow_large: bool,
}

pub(super) fn test(args: TestArgs) -> Result<ExitCode, BadInput> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        args.paths
    };
    // Under CI a changed snapshot fails and nothing is written, as with insta: the
    // build must not pass by leaving files behind.
    let write_pending = !testbench::is_ci();
    let action = if args.accept {
        Action::Accept
    } else if args.review {
        Action::Review { write_pending }
    } else {
        Action::Compare { write_pending }
    };
    if args.review && !io::stdin().is_terminal() {
        // Answers may come from a pipe (scripts, tests); say where they are read.
        eprintln!("brownout test --review: reading answers from standard input");
    }
    let options = TestOptions {
        paths,
        placement: if args.snapshots_beside {
            Placement::Beside
        } else {
            Placement::Dir(args.snapshot_dir)
        },
        action,
        jobs: match args.jobs {
            Some(j) => usize::from(j),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        sweep: args.sweep,
        limits: limits(args.allow_large),
    };
    let stdout = io::stdout();
    let stdin = io::stdin();
    let summary =
        testbench::run(&options, &mut stdout.lock(), &mut stdin.lock()).map_err(BadInput::new)?;
    if let Some(path) = &args.junit {
        std::fs::write(path, junit::render(&summary.suites)).map_err(|e| {
            BadInput::new(format!("cannot write JUnit file {}: {e}", path.display()))
        })?;
    }
    Ok(if summary.bad_input > 0 {
        ExitCode::from(2)
    } else if summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
