//! A mutation fuzzer for the scenario parser and simulator and for the node's input,
//! run in-process (no process per case, so thousands of cases a second).
//!
//! `cargo test` runs a few hundred cases of each as a smoke test. For a long run:
//!
//! ```sh
//! BROWNOUT_FUZZ_CASES=2000000 BROWNOUT_FUZZ_SEED=7 \
//!     cargo test --release --test it fuzz -- --nocapture
//! ```
//!
//! Seeds are the files of `scenarios/` and `tests/hostile/`; each case applies a few
//! random edits (extreme numbers and durations, deleted, duplicated or swapped lines,
//! truncation, stray bytes). A mutated scenario is parsed as if at its seed's path, so a
//! `service = "../services/shop.toml"` still finds the shop; the inputs under
//! `tests/hostile/node/shop/` are fed to a node serving `services/shop.toml`, as
//! `brownout node --service` would. A scenario that parses and is within the work budget is
//! run when it is small enough to run quickly; anything that panics is written to
//! `target/tmp/fuzz-failures/` and fails the test, with the seed and case number that
//! reproduce it. Coverage-guided fuzzing (cargo-afl) needs AFL++'s LLVM plugin,
//! which this project's machines do not install; see the README.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use std::sync::{Arc, OnceLock};

use brownout::live::{self, LiveOptions};
use brownout::model::{service::default_modes, Service};
use brownout::node::{DataSet, NodeConfig};
use brownout::scenario::{self, budget};
use brownout::sim::{self, RunOptions};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Cases of each fuzzer in a plain `cargo test`.
const SMOKE_CASES: u64 = 300;

fn cases() -> u64 {
    std::env::var("BROWNOUT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SMOKE_CASES)
}

fn seed() -> u64 {
    std::env::var("BROWNOUT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The seed files in `dir` with their paths.
fn seeds(dir: &Path, ext: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("seed directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

const NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "9223372036854775807",
    "-9223372036854775808",
    "4294967296",
    "1e-300",
    "0.5",
    "1e9",
    "2",
];

const DURATIONS: [&str; 10] = [
    "\"0s\"",
    "\"1us\"",
    "\"36525d\"",
    "\"36526d\"",
    "\"1h\"",
    "\"999999999999h\"",
    "\"1.5us\"",
    "\"\"",
    "\"10ms\"",
    "\"-5s\"",
];

/// Replaces the `k`-th run of digits (or the `k`-th quoted string) with something extreme.
fn replace_token(text: &mut Vec<u8>, rng: &mut ChaCha8Rng) {
    let quoted = rng.random_bool(0.4);
    let mut spans = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let start = i;
        if quoted && text[i] == b'"' {
            i += 1;
            while i < text.len() && text[i] != b'"' && text[i] != b'\n' {
                i += 1;
            }
            if i < text.len() && text[i] == b'"' {
                spans.push(start..i + 1);
            }
            i += 1;
        } else if !quoted && text[i].is_ascii_digit() {
            while i < text.len() && (text[i].is_ascii_digit() || text[i] == b'.') {
                i += 1;
            }
            spans.push(start..i);
        } else {
            i += 1;
        }
    }
    if spans.is_empty() {
        return;
    }
    let span = spans[rng.random_range(0..spans.len())].clone();
    let with = if quoted {
        DURATIONS[rng.random_range(0..DURATIONS.len())]
    } else {
        NUMBERS[rng.random_range(0..NUMBERS.len())]
    };
    text.splice(span, with.bytes());
}

fn mutate(seed: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut text = seed.to_vec();
    // Mostly value edits, which keep the file parseable and so reach the simulator;
    // structural edits and stray bytes test the parser.
    let edits = if rng.random_bool(0.5) {
        1
    } else {
        rng.random_range(2..=4)
    };
    for _ in 0..edits {
        let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        let n = lines.len();
        match rng.random_range(0..12) {
            0..=6 => replace_token(&mut text, rng),
            7 => {
                // Delete a line.
                let k = rng.random_range(0..n);
                text = join(
                    lines
                        .iter()
                        .enumerate()
                        .filter(|&(i, _)| i != k)
                        .map(|(_, l)| *l),
                );
            }
            8 => {
                // Duplicate a line.
                let k = rng.random_range(0..n);
                let mut out: Vec<&[u8]> = lines.clone();
                out.insert(k, lines[k]);
                text = join(out.into_iter());
            }
            9 => {
                // Swap two lines.
                let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
                let mut out = lines.clone();
                out.swap(a, b);
                text = join(out.into_iter());
            }
            10 => {
                let at = rng.random_range(0..=text.len());
                text.truncate(at);
            }
            _ => {
                let at = rng.random_range(0..=text.len());
                let byte = match rng.random_range(0..4) {
                    0 => b'[',
                    1 => b'=',
                    2 => 0xff,
                    _ => rng.random(),
                };
                text.insert(at, byte);
            }
        }
    }
    text
}

fn join<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(line);
    }
    out
}

/// Small enough to run in a fuzz case: the case must take milliseconds.
const RUN_LIMITS: budget::Limits = budget::Limits {
    requests: 2e4,
    outstanding: 1e4,
    entries: 1e5,
    fault_windows: 1e4,
    cpu_samples: 2e4,
};

/// Parses, budgets and (when small) runs one scenario text, read as if at `path`.
fn scenario_case(path: &Path, bytes: &[u8]) -> &'static str {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return "not utf-8";
    };
    if let Err(e) = scenario::parse(text, path) {
        let first = e.first();
        assert!(first.position.is_some(), "an error has a place: {first}");
        return "refused by the parser";
    }
    let s = scenario::parse(text, path).expect("parsed above");
    let refused = scenario::budget_errors(&s, text, &budget::Limits::DEFAULT);
    for e in &refused {
        assert!(e.position.is_some(), "a refusal has a place: {e}");
    }
    // Data sets are built in full: keep the cases quick.
    let records: u64 = s.data.collections.iter().map(|c| c.count).sum();
    if !refused.is_empty() {
        return "refused by the budget";
    }
    if records > 100_000 {
        return "too large to run here";
    }
    if scenario::budget_errors(&s, text, &RUN_LIMITS).is_empty() {
        let report = sim::run(&s, RunOptions::plain(s.seed)).expect("a scenario that parses runs");
        assert!((0.0..=1.0).contains(&report.availability));
        assert!(!report.render_text().is_empty());
        "run"
    } else {
        "too large to run here"
    }
}

/// Feeds one input to the live node serving the seed task's service.
fn node_case(_: &Path, bytes: &[u8]) -> &'static str {
    node_input_case(
        live::Serving::Seed {
            config: &NodeConfig::default(),
            data: &DataSet::default(),
        },
        bytes,
    )
}

/// Feeds one input to the live node serving `services/shop.toml`.
fn declared_node_case(_: &Path, bytes: &[u8]) -> &'static str {
    static SHOP: OnceLock<Arc<Service>> = OnceLock::new();
    let service = SHOP.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("services/shop.toml");
        Arc::new(scenario::load_service(&path).expect("the shop loads"))
    });
    let modes = default_modes(&service.features);
    node_input_case(
        live::Serving::Declared {
            service: service.clone(),
            modes: &modes,
        },
        bytes,
    )
}

/// Feeds one input to the live node and checks each line got a reply or a log line.
fn node_input_case(serving: live::Serving<'_>, bytes: &[u8]) -> &'static str {
    let mut out = Vec::new();
    let mut err = Vec::new();
    live::run(
        serving,
        Cursor::new(bytes.to_vec()),
        &mut out,
        &mut err,
        LiveOptions::default(),
    )
    .expect("the node runs to the end of its input");
    let lines = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .count();
    let replies = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    let logged = err.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    assert_eq!(replies + logged, lines, "every line is answered or logged");
    "run"
}

/// Runs `case` over `cases()` mutations of `seeds`, collecting every panic.
fn fuzz(
    name: &str,
    seeds: &[(PathBuf, Vec<u8>)],
    case: fn(&Path, &[u8]) -> &'static str,
    ext: &str,
) {
    assert!(!seeds.is_empty());
    let (n, base) = (cases(), seed());
    let mut rng = ChaCha8Rng::seed_from_u64(base);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let mut failures = Vec::new();
    let mut outcomes = std::collections::BTreeMap::new();
    // Quiet: the panics are collected and reported below. The panic hook is global,
    // so the fuzzers take turns (the other tests' panics stay loud meanwhile only if
    // they do not overlap; a failing assertion still fails its test).
    static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..n {
        let mut case_rng = ChaCha8Rng::seed_from_u64(rng.next_u64());
        let (path, seed) = &seeds[case_rng.random_range(0..seeds.len())];
        let input = mutate(seed, &mut case_rng);
        match catch_unwind(AssertUnwindSafe(|| case(path, &input))) {
            Ok(outcome) => *outcomes.entry(outcome).or_insert(0u64) += 1,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                std::fs::create_dir_all(&dir).unwrap();
                let file = dir.join(format!("{name}-{base}-{i}.{ext}"));
                std::fs::write(&file, &input).unwrap();
                failures.push(format!(
                    "case {i}: {message} (input in {}, a mutation of {})",
                    file.display(),
                    path.display()
                ));
                if failures.len() >= 10 {
                    break;
                }
            }
        }
    }
    std::panic::set_hook(hook);
    eprintln!(
        "fuzz {name}: {n} cases from seed {base}: {outcomes:?}, {} failures",
        failures.len()
    );
    for failure in &failures {
        eprintln!("  {failure}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fuzz_scenarios() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = seeds(&root.join("scenarios"), "toml");
    all.extend(seeds(&root.join("tests/hostile/scenarios"), "toml"));
    fuzz("scenario", &all, scenario_case, "toml");
}

#[test]
fn fuzz_node_input() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let all = seeds(&root.join("tests/hostile/node"), "jsonl");
    fuzz("node", &all, node_case, "jsonl");
}

#[test]
fn fuzz_declared_node_input() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = seeds(&root.join("tests/hostile/node/shop"), "jsonl");
    all.extend(seeds(&root.join("tests/hostile/node"), "jsonl"));
    fuzz("declared-node", &all, declared_node_case, "jsonl");
}
