//! The crate's one integration-test binary: a single binary links the crate once, which
//! keeps `cargo test` fast. Each area is a module of its own; add yours beside these
//! (`mod scenarios;`, `mod cli;`, ...).

mod node;
