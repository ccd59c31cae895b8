//! brownout: a deterministic discrete-event simulator and test bench for graceful
//! degradation.
//!
//! A simulated clock and a seeded fault injector drive a degradation engine (circuit
//! breaker, stale cache, load-based mode switching, write queue) through scripted
//! scenario files, and record every reply and every state transition. The same engine
//! also runs as a live node speaking the Maelstrom JSON protocol.
//!
//! The crate is one sans-IO core with two drivers:
//! - [`engine`]: the four mechanisms as plain state machines (no clock, no I/O);
//! - `node`: the service that turns request messages into effects using the engine;
//! - `sim`: the discrete-event driver (virtual clock, faults, workload, trace, report);
//! - `live`: the stdin/stdout driver of `brownout node`.
//!
//! See `ARCHITECTURE.md` for the code map and the invariants.

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod cli;
pub mod cluster;
pub mod compare;
pub mod engine;
pub mod html;
pub mod intern;
pub mod live;
pub mod model;
pub mod node;
mod prefetch;
pub mod replay;
pub mod scenario;
pub mod seqmap;
pub mod shrink;
pub mod sim;
pub mod sweep;
pub mod testbench;
