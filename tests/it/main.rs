//! The crate's one integration-test binary: every feature is tested through one door,
//! so the crate is linked once and `cargo test` stays quick.
//!
//! - `cli`: the command line's contract (exit codes, scenario errors, check, trace);
//! - `compare`: `--set` overrides, `brownout compare` and `sweep --vs`;
//! - `fuzz`: mutation fuzzing of scenario files and node input (long runs opt in);
//! - `hostile`: the hostile corpus under `tests/hostile/` ends cleanly, as its headers say;
//! - `node`: the real `brownout node` binary on stdin/stdout (the seed task, errors,
//!   the write queue, garbage input);
//! - `scenarios`: every scenario file is run and pinned as a snapshot under
//!   `snapshots/`, and runs twice to the same trace;
//! - `sweep`: `brownout sweep` (jobs, shards and merge, failing seeds replayed).

mod cli;
mod compare;
mod fuzz;
mod hostile;
mod node;
mod scenarios;
mod sweep;
mod util;
