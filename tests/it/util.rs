//! Helpers shared by the integration tests that drive the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the binary from the package root, so that scenario paths (and the replay
/// commands built from them) are the relative ones a person would type, with the
/// binary's directory first on `PATH`, as after `cargo install`: replay lines then
/// start with `brownout`.
pub fn brownout(args: &[&str]) -> Output {
    installed().args(args).output().expect("the binary starts")
}

/// The binary as an installed command: run from the package root with its directory
/// first on `PATH`.
pub fn installed() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brownout"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path_with_binary());
    command
}

/// `PATH` with the binary's directory first.
pub fn path_with_binary() -> std::ffi::OsString {
    let bin = Path::new(env!("CARGO_BIN_EXE_brownout"))
        .parent()
        .expect("the binary has a directory")
        .to_path_buf();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&rest)))
        .expect("PATH joins")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

/// A fresh scratch directory named `name` under Cargo's temporary directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}
