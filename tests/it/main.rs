//! The crate's one integration-test binary: every feature is tested through one door,
//! so the crate is linked once and `cargo test` stays quick.
//!
//! - `all_scenarios`: every scenario file is run and pinned as a snapshot under
//!   `snapshots/`, and the smaller ones run twice to the same trace. Its name sorts
//!   first on purpose: libtest starts tests in name order, and these runs are the
//!   longest (an hour-long benchmark is 15 s of a debug build's CPU), so they start
//!   while the other tests keep the second core busy, rather than last and alone;
//! - `cli`: the command line's contract (exit codes, scenario errors, check, trace);
//! - `cluster`: shard processes started as a batch engine starts them, and the merge
//!   of their JSON Lines;
//! - `compare`: `--set` overrides, `brownout compare` and `sweep --vs`;
//! - `fuzz`: mutation fuzzing of scenario files and node input (long runs opt in);
//! - `html`: the HTML report opened in headless Chromium (skipped without one);
//! - `hostile`: the hostile corpus under `tests/hostile/` ends cleanly, as its headers say;
//! - `node`: the real `brownout node` binary on stdin/stdout (the seed task, errors,
//!   the write queue, garbage input);
//! - `shrink`: `brownout shrink` and `sweep --failures-dir`;
//! - `sweep`: `brownout sweep` (jobs, shards and merge, failing seeds replayed);
//! - `testbench`: `brownout test` in a fresh directory outside the project (snapshots,
//!   review, a changed threshold, CI, JUnit).

mod all_scenarios;
mod cli;
mod cluster;
mod compare;
mod fuzz;
mod hostile;
mod html;
mod node;
mod shrink;
mod sweep;
mod testbench;
mod util;
