//! `--set` overrides, `brownout compare` and `brownout sweep --vs`, through the real
//! binary: values checked as the file's are, errors that name the argument, replay
//! commands that repeat it, figures side by side with deltas and verdicts, paired
//! sweeps that do not depend on --jobs, and long failure lists grouped.

use serde_json::Value;

use crate::util::{brownout, code, scratch, stderr, stdout};

const OUTAGE: &str = "scenarios/outage.toml";
const SHOP: &str = "scenarios/shop-payments-outage.toml";
const FAILS: &str = "scenarios/sweep-fails.toml";

fn json(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out)).expect("JSON output")
}

#[test]
fn a_set_changes_the_run_as_the_file_would_and_its_replay_repeats_it() {
    // The file's own value, given again: nothing changes, byte for byte.
    let plain = brownout(&[OUTAGE, "--format", "json"]);
    let same = brownout(&[
        OUTAGE,
        "--format",
        "json",
        "--set",
        "dependencies.users.breaker.open_duration=10s",
    ]);
    assert_eq!(code(&plain), 0);
    let (mut a, mut b) = (json(&plain), json(&same));
    assert_eq!(
        b["overrides"][0],
        "dependencies.users.breaker.open_duration=10s"
    );
    b.as_object_mut().unwrap().remove("overrides");
    a.as_object_mut().unwrap().remove("overrides");
    assert_eq!(a, b);
    // A file with the value edited in gives the run that --set gives.
    let dir = scratch("set-edited");
    let text = std::fs::read_to_string(OUTAGE).unwrap();
    assert!(text.contains("open_duration = \"10s\""));
    let edited = dir.join("outage.toml");
    std::fs::write(
        &edited,
        text.replace("open_duration = \"10s\"", "open_duration = \"20s\""),
    )
    .unwrap();
    let by_file = brownout(&[edited.to_str().unwrap(), "--format", "json"]);
    let by_set = brownout(&[
        OUTAGE,
        "--format",
        "json",
        "--set",
        "dependencies.users.breaker.open_duration=20s",
    ]);
    let (f, s) = (json(&by_file), json(&by_set));
    assert_ne!(f["dependencies"], a["dependencies"], "20s changes the run");
    assert_eq!(f["dependencies"], s["dependencies"]);
    assert_eq!(f["requests"], s["requests"]);
    assert_eq!(f["timeline"], s["timeline"]);
    // A failing run's replay line carries the override and replays exactly.
    let args = [OUTAGE, "--set", "expect.min_availability=0.99999"];
    let failed = brownout(&args);
    assert_eq!(code(&failed), 1);
    let err = stderr(&failed);
    let replay = err
        .lines()
        .find_map(|l| l.strip_prefix("replay: brownout "))
        .expect("a replay line");
    assert_eq!(
        replay,
        "scenarios/outage.toml --set expect.min_availability=0.99999 --seed 42"
    );
    let again = brownout(&replay.split(' ').collect::<Vec<_>>());
    assert_eq!(code(&again), 1);
    assert_eq!(stdout(&again), stdout(&failed));
}

#[test]
fn a_set_reaches_the_service_file_a_scenario_names() {
    let out = brownout(&[
        SHOP,
        "--format",
        "json",
        "--set",
        "dependencies.payments.breaker.max_open_duration=2m",
    ]);
    // The longer open time keeps the queue filling past the scenario's drain bound.
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report = json(&out);
    let failed: Vec<&str> = report["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["pass"] == false)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["queue_drained_by"]);
    assert!(
        stderr(&out).contains(
            "replay: brownout scenarios/shop-payments-outage.toml --set dependencies.payments.breaker.max_open_duration=2m --seed 7"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn errors_caused_by_a_set_name_it_and_say_what_is_expected() {
    let cases = [
        (
            OUTAGE,
            "dependencies.users.breaker.open_duraton=1s",
            "error: --set dependencies.users.breaker.open_duraton=1s: unknown key `open_duraton`, expected one of ",
            "; did you mean `open_duration`?",
        ),
        (
            OUTAGE,
            "seed=x",
            "error: --set seed=x: invalid type: string \"x\", expected an integer >= 0",
            "",
        ),
        (
            OUTAGE,
            "duration=0s",
            "error: --set duration=0s: invalid duration: ",
            "",
        ),
        (
            SHOP,
            "dependencies.paymnts.timeout=1s",
            "error: --set dependencies.paymnts.timeout=1s: `dependencies` has no `paymnts`; it has `payments`, `inventory`, `recommendations`, `orders`; --set never adds one",
            "",
        ),
        (
            SHOP,
            "dependencies.payments.timeout=soon",
            "error: --set dependencies.payments.timeout=soon: expected a duration such as \"250ms\" or \"3m\", got \"soon\"",
            "",
        ),
        (
            SHOP,
            "expect.endpoints.chekout.min_availability=0.9",
            "error: --set expect.endpoints.chekout.min_availability=0.9: invalid expect.endpoints.chekout: unknown endpoint `chekout`",
            "",
        ),
        (
            OUTAGE,
            "workload[4].rate=1",
            "error: --set workload[4].rate=1: `workload` has 1 element(s); there is no [4]",
            "",
        ),
        (
            OUTAGE,
            "workload[0].rate=900000",
            "error: --set workload[0].rate=900000: too large: ",
            "",
        ),
        (OUTAGE, "no-equals-sign", "invalid value 'no-equals-sign' for '--set", ""),
    ];
    for (file, set, start, end) in cases {
        let out = brownout(&[file, "--set", set]);
        assert_eq!(code(&out), 2, "{set}: {}", stderr(&out));
        let err = stderr(&out);
        let first = err.lines().next().unwrap_or("");
        assert!(first.contains(start), "{set}: {err}");
        assert!(first.ends_with(end), "{set}: {err}");
    }
    // An error of the file itself still names the file, line and column.
    let dir = scratch("set-file-error");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "duration = \"1m\"\nseed = -1\n").unwrap();
    let out = brownout(&[bad.to_str().unwrap(), "--set", "duration=2m"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("bad.toml:2:8: "), "{}", stderr(&out));
}

#[test]
fn compare_shows_every_figure_side_by_side_and_both_verdicts() {
    // B opens the breaker for 20 s instead of 10 s, and asks for 99.9% availability:
    // the flagship holds on every seed as it is, so B's stricter bound is what fails.
    let b_args = [
        "--set",
        "dependencies.users.breaker.open_duration=20s",
        "--set",
        "expect.min_availability=0.999",
    ];
    let out = brownout(&[&["compare", OUTAGE][..], &b_args].concat());
    // B breaks an expectation: exit 1.
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("brownout compare: seed 42\n"), "{text}");
    assert!(
        text.contains("  A: outage (scenarios/outage.toml): every expectation held\n"),
        "{text}"
    );
    assert!(text.contains("  B: outage (scenarios/outage.toml --set dependencies.users.breaker.open_duration=20s --set expect.min_availability=0.999): an expectation failed\n"), "{text}");
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("availability")[1..],
        ["99.9941%", "99.6920%", "-0.3021pp", "worse"]
    );
    assert_eq!(row("requests.total.total")[1..], ["170788", "170788", "="]);
    assert_eq!(row("dependencies.users.time_open").last(), Some(&"worse"));
    assert!(
        text.contains("    A: PASS 99.994% (expected >= 99.500%)\n    B: FAIL 99.692% (expected >= 99.900%)\n"),
        "{text}"
    );
    // The JSON holds the same figures, each with its verdict.
    let out = brownout(&[&["compare", OUTAGE][..], &b_args, &["--format", "json"]].concat());
    assert_eq!(code(&out), 1);
    let c = json(&out);
    assert_eq!(c["format"], "brownout-compare/1");
    assert_eq!(c["seed"], 42);
    let availability = c["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "availability")
        .unwrap();
    assert_eq!(availability["a"], 0.999941);
    assert_eq!(availability["b"], 0.99692);
    assert_eq!(availability["better"], "higher");
    assert_eq!(availability["verdict"], "worse");
    let min = c["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "min_availability")
        .unwrap();
    assert_eq!(min["a"]["pass"], true);
    assert_eq!(min["b"]["pass"], false);
    assert_eq!(min["b"]["expected"], ">= 99.900%");
    assert_eq!(min["b"]["measured"], "99.692%");
}

#[test]
fn compare_runs_both_files_on_one_seed_and_exits_0_when_both_pass() {
    // The same file twice: every figure equal, both pass.
    let out = brownout(&["compare", FAILS, FAILS, "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let c = json(&out);
    assert_eq!(c["seed"], 0, "A's seed by default");
    for f in c["figures"].as_array().unwrap() {
        assert_eq!(f["verdict"], "equal", "{f}");
    }
    // --seed picks another; seed 1 fails in both.
    let out = brownout(&["compare", FAILS, FAILS, "--seed", "1"]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).starts_with("brownout compare: seed 1\n"));
    // Nothing to compare with, or a bad B: bad input.
    let out = brownout(&["compare", FAILS]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("compare needs a second scenario"),
        "{}",
        stderr(&out)
    );
    let out = brownout(&["compare", FAILS, "--set", "nope=1"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("error: --set nope=1: unknown key `nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sweep_vs_pairs_seeds_and_counts_where_b_is_better() {
    let args = |jobs: &'static str| {
        vec![
            "sweep",
            FAILS,
            "--seeds",
            "12",
            "--vs-set",
            "expect.max_stale_age=2m",
            "--vs-set",
            "dependencies.users.breaker.open_duration=1s",
            "--jobs",
            jobs,
        ]
    };
    let one = brownout(&args("1"));
    let two = brownout(&args("2"));
    assert_eq!(code(&one), 1, "{}", stderr(&one));
    assert_eq!(stdout(&one), stdout(&two), "--jobs changes nothing");
    let text = stdout(&one);
    assert!(
        text.starts_with("brownout sweep --vs: seeds 0..12, each run on A and on B\n"),
        "{text}"
    );
    assert!(text.contains("Failing seeds of A: "), "{text}");
    let mut json_args = args("2");
    json_args.extend(["--format", "json"]);
    let out = brownout(&json_args);
    let r = json(&out);
    assert_eq!(r["format"], "brownout-sweep-vs/1");
    assert_eq!(r["runs"], 12);
    for f in r["figures"].as_array().unwrap() {
        let total = f["b_better"].as_u64().unwrap()
            + f["b_worse"].as_u64().unwrap()
            + f["equal"].as_u64().unwrap();
        assert!(total <= 12, "{f}");
    }
    let figure = |name: &str| {
        r["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no figure {name}"))
            .clone()
    };
    // A shorter open time: less time open on most seeds, but not on every one (a
    // probe that fails sooner trips the breaker again); every seed has the figure.
    let open = figure("dependencies.users.time_open");
    assert_eq!(
        (
            open["b_better"].as_u64(),
            open["b_worse"].as_u64(),
            open["equal"].as_u64()
        ),
        (Some(7), Some(3), Some(2)),
        "{open}"
    );
    // The failing seeds of each side are A's and B's own sweep reports'.
    let a_failed = r["a"]["sweep"]["failed"].as_u64().unwrap();
    let plain = json(&brownout(&[
        "sweep", FAILS, "--seeds", "12", "--format", "json",
    ]));
    assert_eq!(a_failed, plain["failed"].as_u64().unwrap());
    assert_eq!(r["a"]["sweep"]["failures"], plain["failures"]);
    // B's replay lines repeat its overrides.
    for f in r["b"]["sweep"]["failures"].as_array().unwrap() {
        assert!(
            f["replay"].as_str().unwrap().starts_with(
                "brownout scenarios/sweep-fails.toml --set expect.max_stale_age=2m --set dependencies.users.breaker.open_duration=1s --seed "
            ),
            "{f}"
        );
    }
    // A second file works as B; --vs cannot be sharded.
    let out = brownout(&["sweep", FAILS, "--seeds", "3", "--vs", FAILS]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let out = brownout(&[
        "sweep", FAILS, "--seeds", "3", "--vs", FAILS, "--shard", "1/2",
    ]);
    assert_eq!(code(&out), 2);
    let out = brownout(&["sweep", FAILS, "--seeds", "100001", "--vs", FAILS]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("seed range 0..100001 must hold 1 to 100000 seeds for --vs"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_long_list_of_failing_seeds_is_grouped_by_expectation() {
    let out = brownout(&["sweep", FAILS, "--seeds", "40"]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    let section = text
        .split("Failing seeds: ")
        .nth(1)
        .expect("a failing seeds section");
    assert!(
        section.starts_with("13, by the expectation they broke (--format json lists every one)\n"),
        "{section}"
    );
    assert!(
        section.contains("  max_stale_age (expected <= 40s): broken by 12 seed(s)\n"),
        "{section}"
    );
    assert!(section.contains(
        "    seed 1: measured 49.383233s; replay with `brownout scenarios/sweep-fails.toml --seed 1`\n"
    ));
    assert!(
        section.contains("    also seeds 5, 8, 11, 14, 21, 26, 29, 30, 32\n"),
        "{section}"
    );
    // Two expectations, each with a header, three replays and one line of the rest.
    assert_eq!(section.lines().count(), 1 + 2 * 5, "{section}");
}
