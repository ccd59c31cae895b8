//! `brownout shrink` and `brownout sweep --failures-dir` through the real binary: a
//! failing seed of `sweep-fails.toml` shrinks to a tenth of its events or less and
//! still fails the same expectation; so does the flagship with a broken threshold.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{brownout, code, stderr, stdout};

const FAILS: &str = "scenarios/sweep-fails.toml";

fn scratch(name: &str) -> PathBuf {
    crate::util::scratch(&format!("shrink-{name}"))
}

/// A run's JSON report and its exit code.
fn run_json(args: &[&str]) -> (Value, i32) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = brownout(&all);
    assert!(matches!(code(&out), 0 | 1), "{args:?}: {}", stderr(&out));
    (serde_json::from_str(&stdout(&out)).unwrap(), code(&out))
}

fn events(report: &Value) -> u64 {
    report["events"]
        .as_u64()
        .expect("reports count their events")
}

/// Whether the report's expectation `name` failed.
fn fails(report: &Value, name: &str) -> bool {
    report["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == name && e["pass"] == false)
}

/// Shrinks and checks the result: written, a plain run of it fails the same
/// expectation, with at most a tenth of the original's events. Returns the file.
fn shrink_and_check(scenario: &str, seed: u64, expectation: &str, out: &Path) -> String {
    let seed_text = seed.to_string();
    let (original, _) = run_json(&[scenario, "--seed", &seed_text]);
    assert!(
        fails(&original, expectation),
        "seed {seed} fails {expectation}"
    );
    let shrink = brownout(&[
        "shrink",
        scenario,
        "--seed",
        &seed_text,
        "--expectation",
        expectation,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&shrink), 0, "{}", stderr(&shrink));
    let text = std::fs::read_to_string(out).unwrap();
    assert!(text.starts_with("# Shrunk by brownout"), "{text}");
    assert!(
        text.contains(&format!("It still fails {expectation}")),
        "{text}"
    );
    assert!(text.contains("Removed"), "{text}");
    // A plain run, from another directory than the original's: exit 1, same failure.
    let (shrunk, exit) = run_json(&[out.to_str().unwrap()]);
    assert_eq!(exit, 1);
    assert!(fails(&shrunk, expectation), "{text}");
    assert!(
        events(&shrunk) * 10 <= events(&original),
        "{} events shrunk from {}:\n{text}",
        events(&shrunk),
        events(&original)
    );
    text
}

/// Every expectation that some of seeds 0..12 of `sweep-fails.toml` fails, with the
/// lowest seed failing it.
fn failures_of_sweep_fails() -> Vec<(String, u64)> {
    let out = brownout(&["sweep", FAILS, "--seeds", "12", "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let mut found: Vec<(String, u64)> = Vec::new();
    for f in report["failures"].as_array().unwrap() {
        let name = f["expectation"].as_str().unwrap().to_owned();
        if !found.iter().any(|(n, _)| *n == name) {
            found.push((name, f["seed"].as_u64().unwrap()));
        }
    }
    assert!(!found.is_empty());
    found
}

#[test]
fn a_failing_seed_of_sweep_fails_shrinks_to_a_tenth() {
    let dir = scratch("sweep-fails");
    for (expectation, seed) in failures_of_sweep_fails() {
        let out = dir.join(format!("{expectation}.toml"));
        let text = shrink_and_check(FAILS, seed, &expectation, &out);
        // The same input gives the same file.
        let again = dir.join(format!("{expectation}-again.toml"));
        shrink_and_check(FAILS, seed, &expectation, &again);
        assert_eq!(text, std::fs::read_to_string(&again).unwrap());
    }
}

#[test]
fn the_flagship_with_a_broken_threshold_shrinks_to_a_small_file() {
    // No run that serves anything stale meets 1ms; the flagship's outage serves stale
    // reads, whatever its exact figures.
    let original = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/outage.toml");
    let mut table: toml::Table = std::fs::read_to_string(&original).unwrap().parse().unwrap();
    if let Some(toml::Value::String(service)) = table.get("service") {
        let absolute = original.parent().unwrap().join(service);
        table.insert(
            "service".into(),
            toml::Value::String(absolute.display().to_string()),
        );
    }
    let expect = table
        .entry("expect")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    expect
        .as_table_mut()
        .unwrap()
        .insert("max_stale_age".into(), toml::Value::String("1ms".into()));
    // A file without `seed` runs seed 1.
    let seed = table
        .get("seed")
        .and_then(toml::Value::as_integer)
        .unwrap_or(1)
        .to_string();
    let dir = scratch("flagship");
    let broken = dir.join("outage-broken.toml");
    std::fs::write(&broken, toml::to_string(&table).unwrap()).unwrap();
    let out = dir.join("shrunk.toml");
    let text = shrink_and_check(
        broken.to_str().unwrap(),
        seed.parse().unwrap(),
        "max_stale_age",
        &out,
    );
    // Small: the scripted messages and every other expectation are gone.
    let shrunk: toml::Table = text.parse().unwrap();
    assert!(!shrunk.contains_key("script"), "{text}");
    let expect = shrunk["expect"].as_table().unwrap();
    assert_eq!(
        expect.keys().collect::<Vec<_>>(),
        ["max_stale_age"],
        "{text}"
    );
}

#[test]
fn a_seed_that_does_not_fail_is_refused() {
    // Seed 0 of sweep-fails passes (its file says so).
    let out = brownout(&["shrink", FAILS, "--seed", "0"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("meets every expectation"),
        "{}",
        stderr(&out)
    );
    let out = brownout(&["shrink", FAILS, "--seed", "1", "--expectation", "nope"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no expectation `nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_spent_budget_is_said_plainly() {
    let (expectation, seed) = failures_of_sweep_fails().remove(0);
    let out = brownout(&[
        "shrink",
        FAILS,
        "--seed",
        &seed.to_string(),
        "--expectation",
        &expectation,
        "--max-runs",
        "5",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("NOT MINIMAL"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("budget of 5 runs ran out"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_sweep_writes_one_replay_per_failed_expectation() {
    let expected = failures_of_sweep_fails();
    for (runs, shrunk) in [("100", true), ("0", false)] {
        let dir = scratch(&format!("failures-{runs}"));
        let out = brownout(&[
            "sweep",
            FAILS,
            "--seeds",
            "12",
            "--failures-dir",
            dir.to_str().unwrap(),
            "--shrink-runs",
            runs,
        ]);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), expected.len(), "{files:?}");
        for (expectation, seed) in &expected {
            let file = dir.join(format!("sweep-fails.{expectation}.seed{seed}.toml"));
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert_eq!(text.starts_with("# Shrunk by"), shrunk, "{text}");
            let (report, exit) = run_json(&[file.to_str().unwrap()]);
            assert_eq!(exit, 1);
            assert!(fails(&report, expectation), "{text}");
            if !shrunk {
                // A plain replay is the seed's run, event for event.
                let (original, _) = run_json(&[FAILS, "--seed", &seed.to_string()]);
                assert_eq!(events(&report), events(&original));
            }
        }
    }
}
