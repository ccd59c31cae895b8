//! `brownout test` as a user outside the project meets it: a fresh directory in the
//! system's temporary directory with a service file and three scenarios, the first
//! run (no snapshots), a review that accepts them, a green run, a threshold changed
//! (the run fails with a diff and leaves a `.snap.new`), CI (nothing written), and the
//! JUnit file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::{code, path_with_binary, stderr, stdout};

const SERVICE: &str = r#"
name = "api"
features = ["suggestions"]

[dependencies.accounts]
latency = { dist = "lognormal", p50 = "5ms", p99 = "40ms" }
timeout = "200ms"
cache = { ttl = "30s", max_stale = "10m", capacity = 1000 }

[dependencies.suggest]
latency = { dist = "lognormal", p50 = "20ms", p99 = "150ms" }
timeout = "150ms"

[keys]
account = { count = 500, dist = "zipf", s = 1.1 }

[endpoints.profile]
key = "account"
deadline = "500ms"
plan = [
  { call = "accounts", op = "read", fallback = ["cache"] },
  { call = "suggest", op = "read", optional = true, feature = "suggestions",
    fallback = ["omit"] },
]
"#;

const ACCOUNTS_DOWN: &str = r#"
service = "../services/api.toml"
name = "accounts-down"
description = "accounts is down for 20s; profiles come from the cache"
seed = 7
duration = "1m"

[[workload]]
name = "web"
rate = [{ from = "0s", to = "1m", rps = 40 }]
mix = { profile = 1 }

[[fault]]
dependency = "accounts"
kind = "outage"
start = "20s"
end = "40s"

[expect]
breaker_opens_within = "1s"
"#;

const USERS_OUTAGE: &str = r#"
name = "users-outage"
description = "the seed service's users dependency down for 20s"
seed = 3
duration = "1m"

[data.users]
count = 200

[data.products]
count = 200

[dependencies.users.breaker]
failure_threshold = 5
open_duration = "5s"

[[workload]]
name = "web"
rate = [{ from = "0s", to = "1m", rps = 40 }]
mix = { get_user = 3, get_product = 1, update_user = 1 }

[[fault]]
dependency = "users"
kind = "outage"
start = "20s"
end = "40s"

[expect]
max_writes_lost = 0
"#;

const QUIET: &str = r#"
name = "quiet"
description = "a quiet minute: nothing fails"
seed = 1
duration = "30s"

[data.users]
count = 100

[data.products]
count = 100

[[workload]]
name = "web"
rate = [{ from = "0s", to = "30s", rps = 20 }]
mix = { get_user = 1, get_product = 1 }

[expect]
min_availability = 0.99
"#;

/// A fresh directory outside the project, removed when dropped.
struct Fresh(PathBuf);

impl Fresh {
    fn new(name: &str) -> Fresh {
        let dir = std::env::temp_dir().join(format!("brownout-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("scenarios")).expect("scratch directory");
        std::fs::create_dir_all(dir.join("services")).expect("scratch directory");
        Fresh(dir)
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.0.join(rel), text).expect("write a file");
    }

    fn exists(&self, rel: &str) -> bool {
        self.0.join(rel).exists()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.0.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// `brownout ARGS` in this directory, as installed (on PATH), outside CI unless
    /// `ci`, with `input` on stdin.
    fn brownout(&self, args: &[&str], input: &str, ci: bool) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_brownout"));
        command
            .args(args)
            .current_dir(&self.0)
            .env("PATH", path_with_binary())
            .env_remove("CI")
            .env_remove("TF_BUILD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if ci {
            command.env("CI", "true");
        }
        let mut child = command.spawn().expect("the binary starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("answers written");
        child.wait_with_output().expect("the binary ends")
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn snaps(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .map(|d| {
            d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_user_pins_scenarios_reviews_them_and_sees_a_threshold_change_fail() {
    let fresh = Fresh::new("testbench");
    fresh.write("services/api.toml", SERVICE);
    fresh.write("scenarios/accounts-down.toml", ACCOUNTS_DOWN);
    fresh.write("scenarios/users-outage.toml", USERS_OUTAGE);
    fresh.write("scenarios/quiet.toml", QUIET);

    // First run: no snapshot yet; each report is left as .snap.new for review.
    let first = fresh.brownout(&["test"], "", false);
    let out = stdout(&first);
    assert_eq!(code(&first), 1, "{out}{}", stderr(&first));
    assert!(
        out.contains("no snapshot yet at snapshots/quiet.snap"),
        "{out}"
    );
    assert!(out.ends_with("\n0 passed, 3 failed\n"), "{out}");
    assert_eq!(
        snaps(&fresh.0),
        [
            "accounts-down.snap.new",
            "quiet.snap.new",
            "users-outage.snap.new"
        ]
    );

    // Review: each new snapshot is shown whole; answer accept to each.
    let review = fresh.brownout(&["test", "--review"], "a\na\na\n", false);
    let out = stdout(&review);
    assert_eq!(code(&review), 0, "{out}{}", stderr(&review));
    assert_eq!(
        out.matches("accept (a), reject (r) or skip (s)? ").count(),
        3
    );
    assert!(
        out.contains("new snapshot for scenarios/quiet.toml"),
        "{out}"
    );
    assert!(
        out.contains("+brownout: quiet (seed 1), 30s simulated"),
        "{out}"
    );
    assert!(out.ends_with("\n3 passed, 0 failed\n"), "{out}");
    assert_eq!(
        snaps(&fresh.0),
        ["accounts-down.snap", "quiet.snap", "users-outage.snap"]
    );
    // insta's format: a YAML header between `---` lines, then the report.
    let snap = fresh.read("snapshots/quiet.snap");
    assert!(
        snap.starts_with(
            "---\nsource: brownout test\nexpression: \"the run's report (render_text, with the trace digest)\"\ninput_file: scenarios/quiet.toml\n---\nbrownout: quiet (seed 1)"
        ),
        "{snap}"
    );

    // Green, the same whatever --jobs is.
    let one = fresh.brownout(&["test", "--jobs", "1"], "", false);
    let two = fresh.brownout(&["test", "--jobs", "2"], "", false);
    assert_eq!(code(&one), 0, "{}", stdout(&one));
    assert_eq!(stdout(&one), stdout(&two));
    assert!(stdout(&one).ends_with("\n3 passed, 0 failed\n"));

    // A threshold changed: the breaker trips later, the report moves, the test fails
    // with a diff, and the new version waits in a .snap.new.
    fresh.write(
        "scenarios/users-outage.toml",
        &USERS_OUTAGE.replace("failure_threshold = 5", "failure_threshold = 50"),
    );
    let changed = fresh.brownout(&["test", "--junit", "junit.xml"], "", false);
    let out = stdout(&changed);
    assert_eq!(code(&changed), 1, "{out}{}", stderr(&changed));
    assert!(out.contains("FAIL scenarios/users-outage.toml\n"), "{out}");
    assert!(
        out.contains("  FAIL snapshot: the report differs from snapshots/users-outage.snap ("),
        "{out}"
    );
    assert!(
        out.contains("    --- snapshots/users-outage.snap\n    +++ new report\n    @@ -"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("    -  users: ")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("    +  users: ")),
        "{out}"
    );
    assert!(out.ends_with("\n2 passed, 1 failed\n"), "{out}");
    assert!(fresh.exists("snapshots/users-outage.snap.new"));

    // The JUnit file: a suite per scenario, the snapshot case failed with its diff.
    let xml = fresh.read("junit.xml");
    assert!(
        xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"brownout test\" "
        ),
        "{xml}"
    );
    assert!(xml.contains("failures=\"1\" errors=\"0\">"), "{xml}");
    assert_eq!(xml.matches("<testsuite ").count(), 3, "{xml}");
    assert!(
        xml.contains("<testcase name=\"snapshot\" classname=\"users-outage\" file=\"scenarios/users-outage.toml\">\n      <failure message=\"the report differs from snapshots/users-outage.snap"),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase name=\"expect.max_writes_lost\" classname=\"users-outage\" file=\"scenarios/users-outage.toml\"/>"),
        "{xml}"
    );

    // Under CI the run fails the same way and writes nothing.
    std::fs::remove_file(fresh.0.join("snapshots/users-outage.snap.new")).unwrap();
    let ci = fresh.brownout(&["test"], "", true);
    assert_eq!(code(&ci), 1);
    assert!(
        stdout(&ci).contains("no .snap.new written (CI)"),
        "{}",
        stdout(&ci)
    );
    assert!(!fresh.exists("snapshots/users-outage.snap.new"));

    // --accept takes the change; the next run is green.
    let accept = fresh.brownout(&["test", "--accept"], "", false);
    assert_eq!(code(&accept), 0, "{}", stdout(&accept));
    assert!(stdout(&accept).contains("  snapshot updated: snapshots/users-outage.snap\n"));
    let green = fresh.brownout(&["test"], "", false);
    assert_eq!(code(&green), 0, "{}", stdout(&green));
}

#[test]
fn a_failed_expectation_fails_its_case_with_a_replay_line_that_works_as_printed() {
    let fresh = Fresh::new("testbench-expect");
    // The outage trips the breaker, so "never trips" fails under every seed.
    fresh.write(
        "scenarios/users-outage.toml",
        &USERS_OUTAGE.replace(
            "max_writes_lost = 0",
            "max_writes_lost = 0\nmax_breaker_trips = 0",
        ),
    );
    fresh.write(
        "scenarios/broken.toml",
        "name = \"broken\"\nduration = \"soon\"\n",
    );
    let run = fresh.brownout(&["test", "--accept", "--junit", "j.xml"], "", false);
    let out = stdout(&run);
    assert_eq!(code(&run), 2, "bad input wins over a failure: {out}");
    assert!(
        out.contains(
            "FAIL scenarios/broken.toml: cannot be run\n  error: scenarios/broken.toml:2:12: "
        ),
        "{out}"
    );
    assert!(
        out.contains("  FAIL expect.max_breaker_trips: expected <= 0, measured "),
        "{out}"
    );
    let replay = out
        .lines()
        .find_map(|l| l.strip_prefix("  replay: "))
        .unwrap_or_else(|| panic!("no replay line: {out}"));
    assert_eq!(replay, "brownout scenarios/users-outage.toml --seed 3");
    assert!(
        out.ends_with("\n0 passed, 2 failed (1 could not be run: bad input)\n"),
        "{out}"
    );
    let xml = fresh.read("j.xml");
    assert!(
        xml.contains("<testcase name=\"load\" classname=\"broken\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"expected &lt;= 0, measured "),
        "{xml}"
    );

    // The replay line, typed as printed (brownout on PATH), fails the same way.
    let words: Vec<&str> = replay.split_whitespace().collect();
    assert_eq!(words[0], "brownout");
    let again = fresh.brownout(&words[1..], "", false);
    assert_eq!(code(&again), 1);
    assert!(
        stderr(&again).contains("expectation failed: max_breaker_trips"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn sweep_expectations_decide_a_sweep_and_become_test_cases() {
    let fresh = Fresh::new("testbench-sweep");
    // Every seed meets [expect]; the sweep's bound on the breaker's time open cannot
    // hold with a 20s outage.
    let claim = "\n[expect.sweep]\nseeds = 4\nmin_pass_rate = 1.0\n";
    fresh.write(
        "scenarios/users-outage.toml",
        &format!("{USERS_OUTAGE}{claim}max_breaker_time_open = {{ worst = \"1s\" }}\n"),
    );
    let sweep = fresh.brownout(&["sweep", "scenarios/users-outage.toml"], "", false);
    let out = stdout(&sweep);
    assert_eq!(code(&sweep), 1, "{out}{}", stderr(&sweep));
    assert!(out.starts_with("brownout sweep: users-outage (scenarios/users-outage.toml), seeds 0..4\n  4 run(s): 4 passed every expectation, 0 failed\n"), "{out}");
    assert!(out.contains("\nSweep expectations ([expect.sweep], stated for 4 seeds)\n  PASS sweep.min_pass_rate: expected at least 100% of seeds meet every expectation, measured 4 of 4 seeds (100%)\n  FAIL sweep.max_breaker_time_open.worst: expected worst breaker time open <= 1s, measured "), "{out}");

    let test = fresh.brownout(
        &["test", "--accept", "--sweep", "--junit", "j.xml"],
        "",
        false,
    );
    let out = stdout(&test);
    assert_eq!(code(&test), 1, "{out}");
    assert!(out.contains("  sweep of seeds 0..4: 4 passed every expectation, 0 failed\n  FAIL sweep.max_breaker_time_open.worst: "), "{out}");
    let xml = fresh.read("j.xml");
    assert!(xml.contains("<testcase name=\"sweep.min_pass_rate\" classname=\"users-outage\" file=\"scenarios/users-outage.toml\"/>"), "{xml}");
    assert!(xml.contains("<testcase name=\"sweep.max_breaker_time_open.worst\" classname=\"users-outage\" file=\"scenarios/users-outage.toml\">\n      <failure "), "{xml}");

    // A claim the sweep meets passes both ways; without --sweep it is not run.
    fresh.write(
        "scenarios/users-outage.toml",
        &format!("{USERS_OUTAGE}{claim}max_breaker_time_open = {{ worst = \"5m\" }}\n"),
    );
    assert_eq!(
        code(&fresh.brownout(&["sweep", "scenarios/users-outage.toml"], "", false)),
        0
    );
    let test = fresh.brownout(&["test", "--sweep"], "", false);
    assert_eq!(code(&test), 0, "{}", stdout(&test));
    let plain = fresh.brownout(&["test"], "", false);
    assert!(
        !stdout(&plain).contains("sweep of seeds"),
        "{}",
        stdout(&plain)
    );
}

/// The replay line of a binary that is not on PATH names what does run it.
#[test]
fn replay_lines_name_the_command_that_runs_this_binary() {
    let bin = Path::new(env!("CARGO_BIN_EXE_brownout"));
    let replay_of = |cargo: bool| {
        let mut command = Command::new(bin);
        command
            .args(["scenarios/sweep-fails.toml", "--seed", "1"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PATH", "/nonexistent");
        if cargo {
            command.env("CARGO", "cargo");
        } else {
            command.env_remove("CARGO");
        }
        let out = command.output().expect("the binary starts");
        assert_eq!(code(&out), 1);
        stderr(&out)
            .lines()
            .find_map(|l| l.strip_prefix("replay: ").map(str::to_owned))
            .expect("a replay line")
    };
    // Tests run the debug build from target/debug.
    assert_eq!(
        replay_of(true),
        "cargo run -- scenarios/sweep-fails.toml --seed 1"
    );
    let direct = replay_of(false);
    let canonical = bin.canonicalize().unwrap();
    assert_eq!(
        direct,
        format!(
            "{} scenarios/sweep-fails.toml --seed 1",
            canonical.display()
        )
    );
}

/// `cargo-insta`, found on PATH as cargo finds its subcommands, or `None` after saying
/// why the test is skipped. `.ci/run` installs it and sets
/// `BROWNOUT_REQUIRE_CARGO_INSTA=1`, under which a missing one fails instead.
fn cargo_insta_or_skip(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join("cargo-insta"))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("BROWNOUT_REQUIRE_CARGO_INSTA").is_none(),
            "{test}: BROWNOUT_REQUIRE_CARGO_INSTA is set but no cargo-insta is on PATH"
        );
        eprintln!("skipping {test}: no cargo-insta on PATH (cargo install cargo-insta --locked)");
    }
    found
}

/// The README's claim about cargo-insta, checked: in a Rust repository, `cargo insta`
/// lists, accepts and rejects the `.snap.new` files `brownout test` leaves, and what it
/// accepts `brownout test` then passes.
#[test]
fn cargo_insta_accepts_and_rejects_what_brownout_test_leaves() {
    if cargo_insta_or_skip("cargo_insta_accepts_and_rejects").is_none() {
        return;
    }
    let fresh = Fresh::new("cargo-insta");
    // A Rust repository: cargo-insta searches the Cargo workspace for snapshots.
    fresh.write(
        "Cargo.toml",
        "[package]\nname = \"user-repo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    std::fs::create_dir_all(fresh.0.join("src")).expect("src/");
    fresh.write("src/lib.rs", "");
    fresh.write("scenarios/quiet.toml", QUIET);
    let cargo_insta = |args: &[&str]| {
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
        command
            .arg("insta")
            .args(args)
            .current_dir(&fresh.0)
            .env_remove("CI");
        // The variables cargo sets for this test describe brownout's package, not the
        // user's; cargo-insta must find the user's workspace on its own.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if (key.starts_with("CARGO_") && key != "CARGO_HOME") || key.starts_with("INSTA_") {
                command.env_remove(key);
            }
        }
        let out = command.output().expect("cargo insta starts");
        assert_eq!(code(&out), 0, "cargo insta {args:?}: {}", stderr(&out));
        format!("{}{}", stdout(&out), stderr(&out))
    };

    let first = fresh.brownout(&["test"], "", false);
    assert_eq!(code(&first), 1, "{}", stdout(&first));
    let new = fresh.read("snapshots/quiet.snap.new");
    let pending = cargo_insta(&["pending-snapshots"]);
    assert!(pending.contains("snapshots/quiet.snap"), "{pending}");
    cargo_insta(&["accept"]);
    assert_eq!(snaps(&fresh.0), ["quiet.snap"]);
    assert_eq!(fresh.read("snapshots/quiet.snap"), new);
    let green = fresh.brownout(&["test"], "", false);
    assert_eq!(code(&green), 0, "{}", stdout(&green));

    // A changed threshold, rejected: the accepted snapshot stays as it was.
    fresh.write(
        "scenarios/quiet.toml",
        &QUIET.replace("min_availability = 0.99", "min_availability = 0.98"),
    );
    let changed = fresh.brownout(&["test"], "", false);
    assert_eq!(code(&changed), 1, "{}", stdout(&changed));
    assert_eq!(snaps(&fresh.0), ["quiet.snap", "quiet.snap.new"]);
    cargo_insta(&["reject"]);
    assert_eq!(snaps(&fresh.0), ["quiet.snap"]);
    assert_eq!(fresh.read("snapshots/quiet.snap"), new);
}
