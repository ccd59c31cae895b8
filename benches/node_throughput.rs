//! Messages per second through `brownout node` from a piped file of mixed requests.
//!
//! Generates 100 000 request lines deterministically (a seeded ChaCha stream), writes them
//! to a temporary file, runs the optimised binary with stdin from that file and counts the
//! reply lines on its stdout, five times; prints the median rate. Each run must answer
//! every line that has a valid envelope exactly once (only the lines that are not JSON go
//! unanswered), so a fast run that dropped work cannot pass for a good figure.
//!
//! Run with `cargo bench --bench node_throughput`. The target is well over 100 000
//! messages per second.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BIN: &str = env!("CARGO_BIN_EXE_brownout");
/// Request lines generated (plus the two that start the outage).
const LINES: usize = 100_000;
const RUNS: usize = 5;
const SEED: u64 = 0x6e6f_6465;
/// The line at which the outage starts.
const OUTAGE_AT: usize = LINES / 5 * 4;

/// Ids drawn for reads and writes: 123 is in the built-in data set (and its warm cache),
/// the others are not (a healthy "does not exist" answer or, once written, a record).
const IDS: [u64; 5] = [123, 123, 123, 1, 42];

/// The requests, one JSON line each: the bytes, the number of lines and how many of them
/// must be answered.
fn generate() -> (Vec<u8>, usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut out = Vec::with_capacity(LINES * 110);
    let mut answered = 0;
    for n in 0..LINES {
        let msg_id = n + 1;
        let id = IDS[rng.random_range(0..IDS.len())];
        // The first 80% is mostly healthy (sparse faults that leave the breakers closed,
        // so reads go to the dependency); then an outage trips both breakers and the rest
        // is served degraded (cache, queue, shedding).
        let outage = n >= OUTAGE_AT;
        if n == OUTAGE_AT {
            for (ty, field) in [("get_user", "user_id"), ("get_product", "product_id")] {
                writeln!(
                    out,
                    r#"{{"src":"c1","dest":"n1","body":{{"type":"{ty}","msg_id":{msg_id},"{field}":123,"force_failures":6}}}}"#
                )
                .unwrap();
                answered += 1;
            }
        }
        let fault = match rng.random_range(0..100) {
            0..=3 => r#","service_unavailable":true"#.to_owned(),
            4..=5 => format!(r#","force_failures":{}"#, rng.random_range(1..=2)),
            6..=9 if outage => r#","service_unavailable":true"#.to_owned(),
            _ => String::new(),
        };
        let body = match rng.random_range(0..100) {
            0..=34 => format!(r#"{{"type":"get_user","msg_id":{msg_id},"user_id":{id}{fault}}}"#),
            35..=59 => {
                format!(r#"{{"type":"get_product","msg_id":{msg_id},"product_id":{id}{fault}}}"#)
            }
            60..=67 => format!(
                r#"{{"type":"update_user","msg_id":{msg_id},"user_id":{id},"name":"User {msg_id}"{fault}}}"#
            ),
            68..=72 => format!(
                r#"{{"type":"update_product","msg_id":{msg_id},"product_id":{id},"name":"Product {msg_id}"{fault}}}"#
            ),
            73..=76 => {
                let mode = ["normal", "degraded", "critical", "auto"][rng.random_range(0..4)];
                let cpu = rng.random_range(0..=100);
                format!(
                    r#"{{"type":"set_mode","msg_id":{msg_id},"mode":"{mode}","cpu_usage":{cpu}}}"#
                )
            }
            77..=79 => format!(
                r#"{{"type":"set_mode","msg_id":{msg_id},"cpu_usage":{}}}"#,
                rng.random_range(0..=100)
            ),
            80..=84 => format!(r#"{{"type":"status","msg_id":{msg_id}}}"#),
            85..=91 => format!(r#"{{"type":"search","msg_id":{msg_id},"query":"lamp {id}"}}"#),
            92..=98 => {
                format!(r#"{{"type":"get_recommendations","msg_id":{msg_id},"user_id":{id}}}"#)
            }
            _ => match rng.random_range(0..4) {
                // Malformed: not JSON at all (logged, not answered) ...
                0 => {
                    out.extend_from_slice(b"{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"type\":\n");
                    continue;
                }
                // ... or a request the node refuses with an error reply.
                1 => format!(r#"{{"type":"get_user","msg_id":{msg_id}}}"#),
                2 => format!(r#"{{"type":"get_user","msg_id":{msg_id},"user_id":"abc"}}"#),
                _ => format!(r#"{{"type":"teleport","msg_id":{msg_id}}}"#),
            },
        };
        writeln!(out, r#"{{"src":"c1","dest":"n1","body":{body}}}"#).unwrap();
        answered += 1;
    }
    let lines = out.iter().filter(|&&b| b == b'\n').count();
    (out, lines, answered)
}

/// One run: wall time and reply lines.
fn run(input: &Path) -> (Duration, usize) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("node")
        .stdin(File::open(input).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the brownout binary starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut replies = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        replies += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
    let status = child.wait().unwrap();
    let wall = started.elapsed();
    assert!(status.success(), "brownout node exited with {status}");
    (wall, replies)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, which should
    // stay quick: then one run is enough to show the benchmark still works.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (input, lines, expected) = generate();
    let path =
        std::env::temp_dir().join(format!("brownout-node-bench-{}.jsonl", std::process::id()));
    {
        let mut file = BufWriter::new(File::create(&path).unwrap());
        file.write_all(&input).unwrap();
        file.flush().unwrap();
    }
    let runs = if quick { 1 } else { RUNS };
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (wall, replies) = run(&path);
        assert_eq!(
            replies,
            expected,
            "one reply per line with a valid envelope ({lines} lines, {} not JSON)",
            lines - expected
        );
        rates.push(lines as f64 / wall.as_secs_f64());
    }
    std::fs::remove_file(&path).unwrap();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let all: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "node_throughput: {lines} requests ({} bytes), {expected} replies per run; \
         median {median:.0} msg/s over {runs} run(s) [{}]",
        input.len(),
        all.join(", ")
    );
}
