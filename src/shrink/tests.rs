//! The shrinker's document edits keep what they claim to keep, and a shrink of
//! `sweep-fails.toml` is small, still fails, and is the same every time.

use std::path::{Path, PathBuf};

use super::doc::Doc;
use super::*;

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// The scenario as the model sees it, with the path left out.
fn model(text: &str, path: &Path) -> String {
    let mut s = scenario::parse(text, path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    s.path = PathBuf::new();
    format!("{s:?}")
}

/// Every scenario written out on its own (service inlined, seed written in) is the
/// same scenario: key order is kept where it means something (a mix's order is its
/// draws' order, a service's names number its ids).
#[test]
fn a_standalone_document_is_the_same_scenario() {
    let mut dir: Vec<_> = std::fs::read_dir(scenario_path(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    dir.sort();
    assert!(dir.len() > 10);
    for path in dir {
        let text = std::fs::read_to_string(&path).unwrap();
        let original = scenario::parse(&text, &path).unwrap();
        let doc = Doc::standalone(&text, &path, original.seed).unwrap();
        // Parsed from elsewhere: nothing may depend on the file's place any more.
        let elsewhere = Path::new("/nonexistent/shrunk.toml");
        assert_eq!(
            model(&doc.to_toml(), elsewhere),
            model(&text, &path),
            "{}",
            path.display()
        );
    }
}

/// Written out as fixed windows, the random faults a seed draws give the same run.
#[test]
fn expanded_random_faults_run_the_same() {
    let path = scenario_path("sweep-fails.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let original = scenario::parse(&text, &path).unwrap();
    for seed in [1, 2, 5] {
        let doc = Doc::standalone(&text, &path, seed).unwrap();
        let expanded = doc.expand_random_faults(&original, seed).unwrap();
        assert!(expanded.windows > 0);
        assert!(!expanded.doc.has_random_faults());
        let fixed = scenario::parse(&expanded.doc.to_toml(), &path).unwrap();
        assert!(fixed.random_faults.is_empty());
        let a = run(&original, seed).unwrap();
        let b = run(&fixed, seed).unwrap();
        assert_eq!(a.events, b.events, "seed {seed}");
        assert_eq!(a.requests, b.requests, "seed {seed}");
        let verdicts = |r: &Report| {
            r.expectations
                .iter()
                .map(|e| (e.name, e.pass, e.measured.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(verdicts(&a), verdicts(&b), "seed {seed}");
    }
}

/// Cutting the run keeps everything before the cut: a ramp that crosses it ends at
/// the value it reached there, and what starts after it goes.
#[test]
fn a_shorter_run_cuts_what_comes_after() {
    let text = r#"
name = "cut"
duration = "10m"
[[workload]]
rate = [{ from = "0s", to = "2m", rps_from = 10, rps_to = 30 }, { from = "2m", to = "10m", rps = 30 }]
mix = { get_user = 1 }
[[fault]]
dependency = "users"
kind = "outage"
start = "30s"
end = "5m"
[[fault]]
dependency = "users"
kind = "outage"
start = "6m"
end = "7m"
[[script]]
at = "8m"
body = { type = "status", msg_id = 1 }
[cpu]
points = [{ from = "0s", to = "2m", cpu_from = 20, cpu_to = 80 }, { at = "3m", cpu = 50 }]
"#;
    let path = Path::new("cut.toml");
    let doc = Doc::standalone(text, path, 1).unwrap();
    let cut = doc.with_duration(60 * crate::engine::SECOND);
    let s = scenario::parse(&cut.to_toml(), path).unwrap();
    assert_eq!(s.duration, 60 * crate::engine::SECOND);
    assert_eq!(s.faults.len(), 1);
    assert_eq!(s.faults[0].end, 60 * crate::engine::SECOND);
    assert!(s.script.is_empty());
    let out = cut.to_toml();
    // Halfway up the 10 -> 30 ramp.
    assert!(out.contains("rps_to = 20"), "{out}");
    assert!(out.contains("cpu_to = 50"), "{out}");
    assert!(!out.contains("6m"), "{out}");
    assert_eq!(cut.fault_labels().len(), 1);
    assert!(cut.script_labels().is_empty());
}

/// Only the named expectation stays, nested or not.
#[test]
fn other_expectations_go() {
    let text = r#"
duration = "1m"
[[workload]]
rate = 1
mix = { get_user = 1 }
[expect]
min_availability = 0.9
max_stale_age = "10s"
[expect.dependencies.users]
max_breaker_trips = 3
max_failure_rate = 0.5
"#;
    let doc = Doc::standalone(text, Path::new("e.toml"), 1).unwrap();
    let one = doc.only_expectation("max_stale_age");
    assert_eq!(one.dropped_expectations, 3);
    let out = one.doc.to_toml();
    assert!(
        out.contains("max_stale_age") && !out.contains("min_availability"),
        "{out}"
    );
    let nested = doc.only_expectation("dependencies.users.max_breaker_trips");
    assert_eq!(nested.dropped_expectations, 3);
    let out = nested.doc.to_toml();
    assert!(
        out.contains("max_breaker_trips = 3") && !out.contains("max_failure_rate"),
        "{out}"
    );
    assert_eq!(doc.only_expectation("conservation").dropped_expectations, 4);
}

fn failing_seed(path: &Path, text: &str, expectation: &str) -> u64 {
    let s = scenario::parse(text, path).unwrap();
    (0..40)
        .find(|&seed| failed(&run(&s, seed).unwrap(), expectation).is_some())
        .expect("some seed of sweep-fails fails")
}

#[test]
fn a_shrink_is_small_fails_the_same_and_is_deterministic() {
    let path = scenario_path("sweep-fails.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let seed = failing_seed(&path, &text, "max_stale_age");
    let options = ShrinkOptions {
        max_runs: 400,
        progress: Progress::Hidden,
    };
    let a = shrink(&path, &text, seed, Some("max_stale_age"), &options).unwrap();
    assert!(
        a.events * 10 <= a.original_events,
        "{} of {}",
        a.events,
        a.original_events
    );
    assert!(a.text.starts_with("# Shrunk by brownout"), "{}", a.text);
    // Plainly run, the file fails the same expectation.
    let s = scenario::parse(&a.text, Path::new("shrunk.toml")).unwrap();
    let report = run(&s, s.seed).unwrap();
    assert_eq!(failed(&report, "max_stale_age"), Some(a.measured.clone()));
    assert_eq!(report.events, a.events);
    let b = shrink(&path, &text, seed, Some("max_stale_age"), &options).unwrap();
    assert_eq!(a.text, b.text);
}

#[test]
fn a_spent_budget_says_so() {
    let path = scenario_path("sweep-fails.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let seed = failing_seed(&path, &text, "max_stale_age");
    let options = ShrinkOptions {
        max_runs: 6,
        progress: Progress::Hidden,
    };
    let s = shrink(&path, &text, seed, None, &options).unwrap();
    assert!(s.exhausted);
    assert!(s.runs <= 6);
    assert!(s.text.contains("NOT MINIMAL"), "{}", s.text);
    // Whatever it got to, it still fails.
    let parsed = scenario::parse(&s.text, Path::new("x.toml")).unwrap();
    assert!(failed(&run(&parsed, parsed.seed).unwrap(), &s.expectation).is_some());
}

#[test]
fn a_passing_seed_or_an_unknown_expectation_is_refused() {
    let path = scenario_path("sweep-fails.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let options = ShrinkOptions {
        max_runs: 10,
        progress: Progress::Hidden,
    };
    // Seed 0 passes (the file says so).
    let e = shrink(&path, &text, 0, None, &options).unwrap_err();
    assert!(e.0.contains("meets every expectation"), "{e}");
    let e = shrink(&path, &text, 0, Some("nope"), &options).unwrap_err();
    assert!(e.0.contains("no expectation `nope`"), "{e}");
    let e = shrink(&path, &text, 0, Some("max_stale_age"), &options).unwrap_err();
    assert!(e.0.contains("nothing to shrink"), "{e}");
}

/// Cutting the beginning moves every instant earlier and keeps what crosses the cut
/// as it stood there.
#[test]
fn a_run_without_its_head_starts_where_the_cut_is() {
    let text = r#"
name = "head"
duration = "10m"
[[workload]]
rate = [{ from = "0s", to = "2m", rps_from = 10, rps_to = 30 }, { from = "2m", to = "10m", rps = 30 }]
mix = { get_user = 1 }
[[fault]]
dependency = "users"
kind = "outage"
start = "30s"
end = "50s"
[[fault]]
dependency = "users"
kind = "outage"
start = "6m"
end = "7m"
[[script]]
at = "8m"
body = { type = "status", msg_id = 1 }
[cpu]
points = [{ at = "10s", cpu = 40 }, { at = "20s", cpu = 60 }, { from = "30s", to = "2m", cpu_from = 20, cpu_to = 80 }]
[expect]
queue_drained_by = "9m"
"#;
    let path = Path::new("head.toml");
    let doc = Doc::standalone(text, path, 1).unwrap();
    let cut = doc.without_head(60 * crate::engine::SECOND);
    let s = scenario::parse(&cut.to_toml(), path).unwrap();
    let min = 60 * crate::engine::SECOND;
    assert_eq!(s.duration, 9 * min);
    assert_eq!(s.faults.len(), 1);
    assert_eq!((s.faults[0].start, s.faults[0].end), (5 * min, 6 * min));
    assert_eq!(s.script[0].at, 7 * min);
    let out = cut.to_toml();
    // Halfway up the 10 -> 30 ramp, and a third of the way up the CPU's, which sets
    // the level from 0 (the steps before it no longer count).
    assert!(out.contains("rps_from = 20"), "{out}");
    assert!(out.contains("cpu_from = 40"), "{out}");
    assert!(!out.contains("cpu = "), "{out}");
    assert!(out.contains("queue_drained_by = \"8m\""), "{out}");
    // Cut between the steps and the ramp: the last step sets the level from 0.
    let early = doc.without_head(25 * crate::engine::SECOND);
    let out = early.to_toml();
    scenario::parse(&out, path).unwrap();
    assert!(
        out.contains("cpu = 60") && !out.contains("cpu = 40"),
        "{out}"
    );
    assert!(out.contains("from = \"5s\""), "{out}");
    assert_eq!(cut.fault_labels().len(), 1);
}
