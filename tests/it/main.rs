//! The one integration test binary (see STYLE.md, item 10): every feature is tested
//! through one door, so the crate is linked once and `cargo test` stays quick.
//!
//! - `scenarios`: every scenario file is run and pinned as a snapshot under
//!   `snapshots/`, and runs twice to the same trace.
//!
//! Other modules (the node's protocol tests) are declared here as they land.

mod scenarios;
