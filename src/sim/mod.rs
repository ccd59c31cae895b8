//! The discrete-event simulator's building blocks: pure, deterministic, no I/O.
//!
//! Everything here is a function of its inputs: simulated time comes in as an
//! integer [`Time`](crate::engine::Time), randomness as a caller-owned generator
//! (one seeded stream per component, see [`rng`]). Nothing reads a clock or creates
//! randomness on its own, which is what makes a run with the same scenario and seed
//! byte-identical on any machine. The simulator proper composes these blocks:
//!
//! - [`queue`]: the event queue, ordered by `(time, seq)`;
//! - [`rng`]: the per-component random streams derived from the master seed;
//! - [`dist`]: latency distributions of simulated dependencies;
//! - [`load`]: the scripted CPU load curve;
//! - [`faults`]: the fault schedule and each dependency's condition at an instant;
//! - [`workload`]: open-loop arrivals, request mix and key popularity;
//! - [`alias`]: O(1) draws from a fixed discrete distribution (Zipf keys);
//! - [`run`](mod@run): the event loop that drives the node with all of the above;
//! - [`trace`]: the streamed JSON Lines trace;
//! - [`digest`]: the trace digest (a hash of every line's values) and file digests;
//! - [`report`]: what a run measured, and the scenario's expectations checked;
//! - [`series`]: the same, bucket by bucket over the run's time, for charts.

pub mod alias;
pub mod check;
pub mod digest;
pub mod dist;
pub mod faults;
pub mod load;
pub mod queue;
pub mod recovery;
pub mod report;
pub mod rng;
pub mod run;
pub mod series;
pub mod trace;
pub mod workload;

pub use check::{check_determinism, Divergence};
pub use report::Report;
pub use run::{run, RunOptions};
#[cfg(test)]
mod tests;
