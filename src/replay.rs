//! The command a replay line tells the user to type.
//!
//! A failing run prints `replay: brownout scenarios/x.toml --seed 7`. That line is
//! only useful if it works as printed: a user who built brownout with `cargo run` or
//! runs `./target/release/brownout` has no `brownout` on `PATH`, and "command not
//! found" is all the printed line gives them. So the binary finds out once, at start,
//! how it can be run again ([`detect`]), and every replay line starts with that:
//!
//! - `brownout` when that name on `PATH` is this very executable;
//! - `cargo run --release --` (or `cargo run --` for a debug build) when cargo
//!   started it (cargo sets `CARGO` for what it runs) from its target directory;
//! - otherwise the path it was started by, or its absolute path.
//!
//! Library users (and the in-process tests) get `brownout`, the installed name.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static PREFIX: OnceLock<String> = OnceLock::new();

/// The name replay lines use until [`init`] says otherwise.
pub const INSTALLED: &str = "brownout";

/// The command that runs brownout, as replay lines print it.
pub fn prefix() -> &'static str {
    PREFIX.get().map_or(INSTALLED, String::as_str)
}

/// Sets the prefix for this process (the first call wins); the CLI calls it with
/// [`detect`]'s answer before it prints anything.
pub fn init(prefix: String) {
    let _ = PREFIX.set(prefix);
}

/// The command that replays `path` under `seed`.
pub fn command(path: &str, seed: u64) -> String {
    format!("{} {} --seed {seed}", prefix(), shell_word(path))
}

/// The command that replays a run given by `args`, words already quoted for a shell
/// (a path and its `--set` overrides, see `model::command_args`), under `seed`.
pub fn command_with_args(args: &str, seed: u64) -> String {
    format!("{} {args} --seed {seed}", prefix())
}

/// How this process can be started again, from what the environment says.
pub fn detect() -> String {
    let Ok(exe) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return INSTALLED.to_owned();
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    if on_path(&exe, &path) {
        return INSTALLED.to_owned();
    }
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    describe(&exe, std::env::var_os("CARGO").is_some(), argv0.as_deref())
}

/// Whether `brownout` found on `path` (a `PATH` value) is the executable `exe`.
fn on_path(exe: &Path, path: &OsStr) -> bool {
    let name = exe.file_name().unwrap_or(OsStr::new(INSTALLED));
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .and_then(|found| found.canonicalize().ok())
        .is_some_and(|found| found == exe)
}

/// The command for an executable that is not on `PATH`: through cargo when cargo ran
/// it from a `target/{debug,release}` directory, else the path it was started by.
fn describe(exe: &Path, under_cargo: bool, argv0: Option<&Path>) -> String {
    let profile = exe
        .parent()
        .and_then(Path::file_name)
        .and_then(OsStr::to_str);
    if under_cargo {
        match profile {
            Some("release") => return "cargo run --release --".to_owned(),
            Some("debug") => return "cargo run --".to_owned(),
            _ => {}
        }
    }
    // A path typed with a separator (`./target/release/brownout`) works again as
    // typed, from the same directory; a bare name that is not on PATH does not.
    let shown = match argv0 {
        Some(p) if p.components().count() > 1 => p.to_path_buf(),
        _ => exe.to_path_buf(),
    };
    shell_word(&shown.to_string_lossy())
}

/// `word` as one shell word: as is when it holds only safe characters, else in
/// single quotes.
pub fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_builds_replay_through_cargo() {
        let release = Path::new("/w/target/release/brownout");
        let debug = Path::new("/w/target/debug/brownout");
        assert_eq!(describe(release, true, None), "cargo run --release --");
        assert_eq!(describe(debug, true, None), "cargo run --");
    }

    #[test]
    fn a_path_replays_as_typed_or_absolute() {
        let exe = Path::new("/w/target/release/brownout");
        let typed = Path::new("./target/release/brownout");
        assert_eq!(
            describe(exe, false, Some(typed)),
            "./target/release/brownout"
        );
        assert_eq!(
            describe(exe, false, Some(Path::new("brownout"))),
            "/w/target/release/brownout"
        );
        assert_eq!(
            describe(Path::new("/my tools/brownout"), false, None),
            "'/my tools/brownout'"
        );
    }

    #[test]
    fn shell_words_quote_what_the_shell_would_split() {
        assert_eq!(shell_word("scenarios/a-b_c.toml"), "scenarios/a-b_c.toml");
        assert_eq!(shell_word("my file.toml"), "'my file.toml'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
