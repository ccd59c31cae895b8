//! The command line's contract, through the real binary: exit codes (0 ran and held,
//! 1 an expectation failed, 2 bad input), scenario errors that name file, line, column
//! and what was expected (all of them, one per line), `check`, the trace on stdout,
//! JSON output, the self-check.

use std::path::Path;

use serde_json::Value;

use crate::util::{brownout, code, scratch, stderr, stdout};

/// Writes `text` as a scenario file in a scratch directory and returns its path.
fn scenario_file(dir: &str, name: &str, text: &str) -> String {
    let path = scratch(&format!("cli-{dir}-{name}")).join(name);
    std::fs::write(&path, text).expect("write scenario");
    path.display().to_string()
}

#[test]
fn a_scenario_whose_expectations_hold_exits_0() {
    let out = brownout(&["scenarios/outage.toml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("brownout: outage (seed 42), 10m simulated"),
        "{text}"
    );
    assert!(text.contains("PASS queue_drained_by"), "{text}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn a_failed_expectation_exits_1_with_the_measured_value_and_the_replay_command() {
    let out = brownout(&["scenarios/sweep-fails.toml", "--seed", "1"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("expectation failed: max_stale_age: expected <= 40s, measured 49.383233s"),
        "{err}"
    );
    assert!(
        err.contains("replay: brownout scenarios/sweep-fails.toml --seed 1"),
        "{err}"
    );
    // The replay command does replay: the same failure, the same measured value.
    let again = brownout(&["scenarios/sweep-fails.toml", "--seed", "1"]);
    assert_eq!(stderr(&again), err);
    assert_eq!(stdout(&again), stdout(&out));
}

const MINIMAL: &str = "duration = \"1m\"\n";

#[test]
fn malformed_scenarios_exit_2_naming_file_line_column_and_what_was_expected() {
    let cases = [
        (
            "wrong-type.toml",
            "duration = \"1m\"\nseed = \"forty-two\"\n",
            ":2:8: ",
            "integer",
        ),
        (
            "unknown-key.toml",
            "duration = \"1m\"\n\n[dependencies.users]\ntimeuot = \"1s\"\n",
            ":4:1: ",
            "timeuot",
        ),
        (
            "bad-duration.toml",
            "duration = \"ten minutes\"\n",
            ":1:12: ",
            "duration",
        ),
        (
            "negative-rate.toml",
            "duration = \"1m\"\n\n[[workload]]\nrate = -5\nmix = { get_user = 1 }\n",
            ":4:8: ",
            "-5",
        ),
    ];
    for (name, text, position, expected) in cases {
        let path = scenario_file("malformed", name, text);
        for args in [vec![path.as_str()], vec!["check", path.as_str()]] {
            let out = brownout(&args);
            assert_eq!(code(&out), 2, "{name} {args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains(&format!("{path}{position}")),
                "{name}: want {path}{position} in: {err}"
            );
            assert!(
                err.contains(expected),
                "{name}: want {expected:?} in: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn every_error_of_a_scenario_is_printed_in_one_run() {
    let text = "duration = 5\nbogus = 1\n[dependencies.users]\ntimeuot = \"1s\"\nerror_rate = 2\n";
    let path = scenario_file("malformed", "many.toml", text);
    for args in [vec![path.as_str()], vec!["check", path.as_str()]] {
        let out = brownout(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        let positions: Vec<&str> = err
            .lines()
            .map(|line| {
                let rest = line.strip_prefix("error: ").expect("one error per line");
                let rest = rest.strip_prefix(path.as_str()).expect("naming the file");
                rest.split(": ").next().unwrap()
            })
            .collect();
        assert_eq!(positions, [":1:12", ":2:1", ":4:1", ":5:14"], "{err}");
    }
}

#[test]
fn a_missing_file_or_no_scenario_is_bad_input() {
    let out = brownout(&["scenarios/no-such-file.toml"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("scenarios/no-such-file.toml"),
        "{}",
        stderr(&out)
    );
    let out = brownout(&[]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no scenario given"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_validates_every_file_and_fails_on_any_bad_one() {
    let good = scenario_file("check", "good.toml", MINIMAL);
    let out = brownout(&["check", "scenarios/outage.toml", good.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("ok: scenarios/outage.toml (outage)"));
    let bad = scenario_file("check", "bad.toml", "duration = 5\n");
    let out = brownout(&["check", good.as_str(), bad.as_str()]);
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).contains("good.toml"));
    assert!(
        stderr(&out).contains(&format!("{bad}:1:12: ")),
        "{}",
        stderr(&out)
    );
    // With --set, each file is checked as a run with the same override reads it: the
    // budget sees the new rate, and a value the file's checks refuse is refused.
    let flapping = "scenarios/flapping.toml";
    let out = brownout(&["check", flapping, "--set", "workload[0].rate=200"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let plain = brownout(&["check", flapping]);
    assert!(
        stdout(&plain).contains("about 48000 requests"),
        "{}",
        stdout(&plain)
    );
    assert!(
        stdout(&out).contains("about 96000 requests"),
        "{}",
        stdout(&out)
    );
    let out = brownout(&["check", flapping, "--set", "workload[0].rate=-1"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("workload[0].rate"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_trace_goes_to_stdout_as_json_lines_and_the_summary_to_stderr() {
    let out = brownout(&["scenarios/seed-task.toml", "--trace", "-"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() > 20);
    // Time first, never decreasing; requests, replies, calls, answers and events.
    let mut last = 0;
    for line in &lines {
        let t = line["t"].as_u64().expect("t");
        assert!(t >= last);
        last = t;
    }
    for kind in ["request", "reply", "call", "answer", "event"] {
        assert!(
            lines.iter().any(|l| l["type"] == kind),
            "no {kind} line in the trace"
        );
    }
    let open = lines
        .iter()
        .find(|l| l["type"] == "event" && l["source"] == "breaker")
        .expect("a breaker transition");
    assert_eq!(open["event"]["to"], "open");
    assert!(stderr(&out).contains("brownout: seed-task"));
}

#[test]
fn json_output_is_the_report() {
    let out = brownout(&["scenarios/outage.toml", "--format", "json"]);
    assert_eq!(code(&out), 0);
    let report: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(report["scenario"], "outage");
    assert_eq!(report["seed"], 42);
    assert_eq!(report["dependencies"][0]["name"], "users");
    assert!(report["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["pass"] == true));
    // Expectations carry numbers beside their words, in a named unit.
    let by_name = |name: &str| {
        report["expectations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    let availability = by_name("min_availability");
    assert_eq!(availability["unit"], "ratio");
    assert_eq!(availability["expected_value"], 0.995);
    assert_eq!(availability["measured_value"], report["availability"]);
    let closes = by_name("breaker_closes_within");
    assert_eq!(closes["unit"], "us");
    assert_eq!(closes["expected_value"], 75_000_000.0);
    assert!(closes["measured_value"].as_f64().unwrap() > 0.0);
    assert_eq!(by_name("conservation")["measured_value"], Value::Null);
    // Timeline times are numbers (microseconds), in order.
    let times: Vec<u64> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["t"].as_u64().expect("a number"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn self_check_runs_twice_and_reports_the_digest() {
    let out = brownout(&["scenarios/seed-task.toml", "--self-check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("deterministic: two runs of seed 1 gave trace digest "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn stats_go_to_stderr_and_leave_the_summary_alone() {
    let plain = brownout(&["scenarios/seed-task.toml"]);
    let stats = brownout(&["scenarios/seed-task.toml", "--stats"]);
    assert_eq!(stdout(&plain), stdout(&stats));
    assert!(stderr(&stats).contains("events/s"), "{}", stderr(&stats));
}

/// A dependency's failure rate within each fault window: the payments outage makes
/// nearly every payments call fail in its window (while its rate over the whole run is
/// far lower), and the failed check names the worst window.
#[test]
fn a_failure_rate_within_fault_windows_names_the_worst_window() {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/shop-payments-outage.toml");
    let text = std::fs::read_to_string(&shop)
        .expect("the shop scenario")
        .replace("\"../services/shop.toml\"", &format!("{:?}", shop.parent().unwrap().join("../services/shop.toml")))
        .replace(
            "[expect.dependencies.inventory]\nmax_failure_rate_in_faults = 0.01",
            "[expect.dependencies.payments]\nmax_failure_rate = 0.5\nmax_failure_rate_in_faults = 0.5",
        );
    let path = scenario_file("in-faults", "payments.toml", &text);
    let out = brownout(&[path.as_str()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains("PASS dependencies.payments.max_failure_rate: expected <= 50.000%"),
        "{report}"
    );
    let failed = report
        .lines()
        .find(|l| l.contains("FAIL dependencies.payments.max_failure_rate_in_faults"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        failed.contains("answered calls failed or timed out during payments: outage 3m-6m"),
        "{failed}"
    );
}

/// The recovery storm: after the users outage of `recovery-storm.toml`, the queued
/// writes drain and the stale users refresh at once, several times the rate before
/// the outage. A bound below that fails, naming the window; the JSON report carries
/// the figures, split by kind of call.
#[test]
fn a_recovery_multiplier_over_its_bound_fails_naming_the_window() {
    let storm = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/recovery-storm.toml");
    let text = std::fs::read_to_string(&storm).expect("the recovery-storm scenario");
    let text = text.replace("max_recovery_multiplier = 6", "max_recovery_multiplier = 2");
    let path = scenario_file("storm", "storm.toml", &text);
    let out = brownout(&[path.as_str()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = stdout(&out);
    let failed = report
        .lines()
        .find(|l| l.contains("FAIL dependencies.users.max_recovery_multiplier"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        failed.contains("expected <= x2 after every fault on it"),
        "{failed}"
    );
    assert!(failed.contains("after users: outage 1m-4m"), "{failed}");
    let out = brownout(&[path.as_str(), "--format", "json"]);
    let json: Value = serde_json::from_str(&stdout(&out)).expect("json");
    let window = &json["recovery_storm"]["windows"][0];
    assert_eq!(window["dependency"], "users");
    let multiplier = window["multiplier"].as_f64().expect("a multiplier");
    assert!(multiplier > 2.0, "{window}");
    let peak = &window["peak_calls"];
    assert!(peak["drain"].as_u64().unwrap() > 0, "{window}");
    assert!(peak["refresh"].as_u64().unwrap() > 0, "{window}");
    let kinds: u64 = ["client", "retry", "drain", "refresh", "probe"]
        .iter()
        .map(|k| peak[k].as_u64().unwrap())
        .sum();
    assert_eq!(Some(kinds), window["peak"].as_u64());
    let failed = json["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "dependencies.users.max_recovery_multiplier")
        .expect("the expectation");
    assert_eq!(failed["unit"], "factor");
    assert_eq!(failed["measured_value"].as_f64(), Some(multiplier));
}

/// The seed service's dependencies take only the checks its report has figures for;
/// the others are refused where they are written.
#[test]
fn a_seed_dependency_refuses_a_declared_services_check_at_its_line() {
    let text = "duration = \"1m\"\n\n[expect.dependencies.users]\nmax_recovery_multiplier = 3\nmax_fan_out = 1\n";
    let path = scenario_file("storm", "seed-fan-out.toml", text);
    let out = brownout(&["check", path.as_str()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{path}:5:1: ")), "{err}");
    assert!(err.contains("max_recovery_multiplier"), "{err}");
    let ok = "duration = \"1m\"\n\n[expect.dependencies.users]\nmax_recovery_multiplier = 3\n";
    let path = scenario_file("storm", "seed-ok.toml", ok);
    let out = brownout(&["check", path.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// Determinism with every mechanism on at once (retries with budgets, bulkheads,
/// admission control, a measured CPU with slowdown, a scripted curve on top, random
/// faults): the everything benchmark, cut to three minutes, runs twice to the same
/// trace digest, and a sweep of it gives the same report whatever `--jobs`.
#[test]
fn every_mechanism_at_once_is_deterministic() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/scenarios/shop-everything-hour.toml"
    ))
    .expect("the benchmark scenario");
    assert!(text.contains("duration = \"1h\""));
    // Every minute of the hour becomes three seconds: the same faults, curve and
    // random outages, a twentieth as long.
    let mut short = text.replace("duration = \"1h\"", "duration = \"3m\"");
    for m in [10, 13, 25, 27, 40, 41, 12, 30, 32, 35, 36] {
        short = short.replace(&format!("\"{m}m\""), &format!("\"{}s\"", m * 3));
    }
    short = short.replace("mttr = \"30s\"", "mttr = \"2s\"");
    let path = scenario_file("everything", "everything.toml", &short);
    let out = brownout(&[&path, "--self-check", "--seed", "3"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("deterministic: two runs of seed 3 gave trace digest "),
        "{}",
        stdout(&out)
    );
    let sweep = |jobs: &str| {
        let out = brownout(&[
            "sweep", &path, "--seeds", "3", "--jobs", jobs, "--format", "json",
        ]);
        assert!(code(&out) <= 1, "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(sweep("1"), sweep("2"));
}
