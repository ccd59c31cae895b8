//! The command line (clap): file I/O and exit codes live here and in the drivers only.

use std::process::ExitCode;

/// Runs the command line and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
