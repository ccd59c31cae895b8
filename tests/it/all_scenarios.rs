//! Scenario snapshots: every `scenarios/*.toml` is run with its own seed, and its
//! rendered report (summary, timeline, scripted exchanges in full, expectations and the
//! digest of the full trace) is pinned in `snapshots/<stem>.snap`.
//!
//! A snapshot is a claim about behaviour: a change to any reply or transition changes
//! the digest, and usually the text, so it fails here until someone reviews the new
//! snapshot (`brownout test --review`, or `cargo insta review`) and accepts it. The
//! comparison is `brownout test`'s own (`testbench::check_snapshot`), in insta's file
//! format; under CI (`CI=true`) it never writes a file, so a changed or missing
//! snapshot fails the build.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;

use brownout::engine::breaker::{BreakerState, TripPolicy};
use brownout::engine::SECOND;
use brownout::scenario::{self, budget, Scenario};
use brownout::sim::{self, Report, RunOptions};
use brownout::testbench::{self, snap::Origin, Action, SnapOutcome};
use serde_json::{json, Value};

/// The repository root (where `scenarios/` and `snapshots/` live).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every scenario file, sorted by name.
fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/ is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario in scenarios/");
    files
}

fn load(path: &Path) -> Scenario {
    scenario::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `scenario` with its own seed, keeping the trace digest.
fn run(scenario: &Scenario) -> Report {
    sim::run(
        scenario,
        RunOptions {
            seed: scenario.seed,
            trace: None,
            digest: true,
        },
    )
    .unwrap_or_else(|e| panic!("{}: run failed: {e}", scenario.name))
}

/// The one door: runs the scenario file at `path` and returns its report and the text
/// a snapshot holds.
fn check(path: &Path) -> (Report, String) {
    let report = run(&load(path));
    assert_series_adds_up(&report);
    let text = report.render_text();
    (report, text)
}

/// The time series is the report cut into buckets: its counts add up to the report's
/// totals, and its peaks are the report's peaks.
fn assert_series_adds_up(report: &Report) {
    let name = &report.scenario;
    let series = &report.series;
    assert!(
        series.buckets as u64 * series.bucket >= report.duration,
        "{name}"
    );
    assert!(series.buckets as u64 <= sim::series::MAX_BUCKETS, "{name}");
    let json = serde_json::to_value(report).expect("reports serialize");
    for kind in &series.requests {
        let row = json["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == kind.kind.as_str())
            .unwrap_or_else(|| panic!("{name}: {} has no row", kind.kind));
        for o in &kind.outcomes {
            let sum: u64 = o.counts.iter().map(|&n| u64::from(n)).sum();
            assert_eq!(
                Some(sum),
                row[o.outcome].as_u64(),
                "{name}: {} {}",
                kind.kind,
                o.outcome
            );
        }
    }
    for (dep, report_dep) in series.dependencies.iter().zip(&report.dependencies) {
        assert_eq!(dep.name, report_dep.name, "{name}");
        let sum = |v: &[u32]| v.iter().map(|&n| u64::from(n)).sum::<u64>();
        assert_eq!(
            sum(&dep.calls),
            report_dep.calls,
            "{name}: {} calls",
            dep.name
        );
        assert_eq!(
            sum(&dep.failures),
            report_dep.failures + report_dep.timeouts,
            "{name}: {} failures",
            dep.name
        );
        let opened = dep.breaker.contains(&BreakerState::Open);
        assert_eq!(
            opened,
            report_dep.breaker_trips > 0,
            "{name}: {} breaker",
            dep.name
        );
        let oldest = dep
            .stale_age_max
            .iter()
            .flatten()
            .max()
            .copied()
            .unwrap_or(0);
        assert_eq!(
            oldest, report_dep.max_stale_age,
            "{name}: {} staleness",
            dep.name
        );
        let deepest = dep.queue_depth.iter().max().copied().unwrap_or(0);
        assert_eq!(
            u64::from(deepest),
            report_dep.queue_max_depth,
            "{name}: {} queue depth",
            dep.name
        );
    }
}

/// Runs `f` on every scenario file and returns the results in file order. The runs are
/// independent: a worker per core takes them longest first (by the budget's estimate
/// of their requests), so the hour-long benchmarks start at once and the short ones
/// fill in around them, rather than a thread each sharing the cores evenly and the
/// longest finishing last, alone.
fn each_scenario<T: Send>(f: impl Fn(&Path) -> T + Sync) -> Vec<(PathBuf, T)> {
    let files = scenario_files();
    let mut order: Vec<(f64, usize)> = files
        .iter()
        .enumerate()
        .map(|(i, path)| (budget::estimate(&load(path)).requests, i))
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new(files.iter().map(|_| None).collect());
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    thread::scope(|s| {
        for _ in 0..workers.min(files.len()) {
            s.spawn(|| {
                while let Some(&(_, i)) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result = f(&files[i]);
                    results.lock().expect("no worker panicked holding it")[i] = Some(result);
                }
            });
        }
    });
    let results = results.into_inner().expect("no worker panicked holding it");
    files
        .into_iter()
        .zip(results.into_iter().map(|r| r.expect("every scenario ran")))
        .collect()
}

/// What to do with a changed snapshot, from insta's variables, so the usual workflow
/// holds: `INSTA_UPDATE=always` writes snapshots, `INSTA_UPDATE=no` writes nothing,
/// otherwise a changed report is written as `NAME.snap.new` for review (`cargo insta
/// review`, or `brownout test --review`), except under CI.
fn snapshot_action() -> Action {
    match std::env::var("INSTA_UPDATE").ok().as_deref() {
        Some("always") => Action::Accept,
        Some("no") => Action::Compare {
            write_pending: false,
        },
        _ => Action::Compare {
            write_pending: !testbench::is_ci(),
        },
    }
}

/// Every scenario's run with its own seed (report and snapshot text), done once for
/// the snapshot test and the determinism test, whichever asks first: the scenario
/// runs are most of `cargo test`'s time, and a run of each is all both need.
fn runs() -> &'static [(PathBuf, (Report, String))] {
    static RUNS: OnceLock<Vec<(PathBuf, (Report, String))>> = OnceLock::new();
    RUNS.get_or_init(|| each_scenario(check))
}

#[test]
fn scenario_snapshots() {
    // The runs are done up front, in parallel, then compared one by one with the same
    // code `brownout test` uses; every mismatch is reported, not only the first.
    let runs = runs();
    let action = snapshot_action();
    let mut failed = Vec::new();
    for (path, (report, text)) in runs {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let snapshot = root().join("snapshots").join(format!("{stem}.snap"));
        let origin = Origin {
            source: "tests/it/all_scenarios.rs".to_owned(),
            expression: testbench::EXPRESSION.to_owned(),
            input_file: format!("scenarios/{stem}.toml"),
        };
        match testbench::check_snapshot(&snapshot, &origin, text, action)
            .unwrap_or_else(|e| panic!("{}: {e}", snapshot.display()))
        {
            SnapOutcome::Matched | SnapOutcome::Accepted { .. } => {}
            SnapOutcome::Differs { diff, pending, .. } => failed.push(format!(
                "{stem}: the report differs from snapshots/{stem}.snap{}\n{diff}",
                pending.map_or_else(String::new, |p| format!(
                    " (new version in {})",
                    p.display()
                ))
            )),
        }
        if !report.passed() {
            failed.push(format!(
                "{stem}: an expectation failed (replay: {})\n{text}",
                report.replay_command()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn every_snapshot_has_a_scenario() {
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(root().join("snapshots")).expect("snapshots/ is readable") {
        let path = entry.expect("directory entry").path();
        // Only accepted snapshots; `.snap.new` files are insta's pending reviews.
        if path.extension().is_none_or(|e| e != "snap") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !root()
            .join("scenarios")
            .join(format!("{stem}.toml"))
            .exists()
        {
            orphans.push(path.display().to_string());
        }
    }
    assert!(
        orphans.is_empty(),
        "snapshots without a scenario (delete them, or restore scenarios/<name>.toml): {orphans:?}"
    );
}

/// Scenarios with more requests than this (the retry storms, the bulkheads, the shop's
/// flash sale, the hour-long benchmarks) are run once, for their snapshot, and not a
/// second time here: the second runs of those took a fifth of a cold `cargo test`
/// (about 30 s of a debug build's CPU, most of it writing trace lines for the digest).
/// Their determinism is still checked, against the digest their snapshot holds, which
/// came from another process, on another day: a `HashMap` order or a clock reaching
/// the trace would differ there too. The smaller scenarios (sixteen of them) still
/// keep the second run, which names the first trace line where two runs part.
const SECOND_RUN_MAX_REQUESTS: f64 = 2e5;

#[test]
fn every_scenario_runs_twice_to_the_same_trace() {
    // A second run of each scenario must give the trace digest of the first (the
    // snapshot's run); only when it does not is the self-check run, to name the first
    // trace line where two runs part.
    let seconds = each_scenario(|path| {
        let scenario = load(path);
        (budget::estimate(&scenario).requests <= SECOND_RUN_MAX_REQUESTS)
            .then(|| run(&scenario).trace_digest)
    });
    let mut problems = Vec::new();
    for ((path, (first, _)), (_, second)) in runs().iter().zip(&seconds) {
        let Some(second) = second else { continue };
        if first.trace_digest.is_some() && first.trace_digest == *second {
            continue;
        }
        let scenario = load(path);
        let why = match sim::check_determinism(&scenario, scenario.seed) {
            Ok(d) => format!("two more runs agree on {d}"),
            Err(e) => e.to_string(),
        };
        problems.push(format!(
            "{}: digests {:?} and {second:?}; {why}",
            path.display(),
            first.trace_digest
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The net works: change one engine parameter of the flagship and its snapshot text
/// and trace digest both change, so such a change could not slip through review.
#[test]
fn an_engine_parameter_change_changes_the_snapshot() {
    let path = root().join("scenarios/outage.toml");
    let base = load(&path);
    let (report, text) = check(&path);

    let mut threshold = base.clone();
    let users = &mut threshold.node.dependencies[0].breaker;
    assert_eq!(
        users.trip_policy,
        TripPolicy::ConsecutiveFailures {
            failure_threshold: 5
        },
        "outage.toml's users breaker changed; update this test"
    );
    users.trip_policy = TripPolicy::ConsecutiveFailures {
        failure_threshold: 6,
    };

    let mut open = base.clone();
    open.node.dependencies[0].breaker.open_duration += SECOND;

    for (what, changed) in [
        ("failure_threshold 5 -> 6", threshold),
        ("open_duration +1s", open),
    ] {
        let other = run(&changed);
        assert_ne!(
            other.render_text(),
            text,
            "{what}: the rendered report did not change"
        );
        assert_ne!(
            other.trace_digest, report.trace_digest,
            "{what}: the trace digest did not change"
        );
    }
}

/// The seed task's three exchanges, checked against the bodies the task states
/// (/work/shared/reference/task-graceful-api-degradation.txt), exactly: no extra key.
#[test]
fn seed_task_replies_are_the_tasks() {
    let (report, text) = check(&root().join("scenarios/seed-task.toml"));
    let reply_to = |msg_id: u64| -> &Value {
        let exchange = report
            .scripted
            .iter()
            .find(|x| x.request["msg_id"] == msg_id)
            .unwrap_or_else(|| panic!("no scripted message with msg_id {msg_id}\n{text}"));
        exchange
            .reply
            .as_ref()
            .unwrap_or_else(|| panic!("msg_id {msg_id} got no reply\n{text}"))
    };
    // Each reply's in_reply_to is its request's msg_id (1, 2, 3 as in the task).
    let expected = [
        (
            1,
            json!({"type": "user_response", "in_reply_to": 1,
                   "user": {"id": 123, "name": "John Doe"},
                   "circuit_state": "open", "from_cache": true}),
        ),
        (
            2,
            json!({"type": "product_response", "in_reply_to": 2,
                   "product": {"id": 123, "name": "Product"},
                   "_cached": true}),
        ),
        (
            3,
            json!({"type": "mode_changed", "in_reply_to": 3,
                   "mode": "degraded",
                   "disabled_features": ["recommendations", "search"]}),
        ),
    ];
    for (msg_id, body) in expected {
        assert_eq!(reply_to(msg_id), &body, "msg_id {msg_id}\n{text}");
    }
}
