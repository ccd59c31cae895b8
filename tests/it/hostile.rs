//! The hostile corpus (`tests/hostile/`): inputs an attacker or a careless user would
//! write. Every scenario file ends, within a bound, with the exit code its header
//! names (`# expect-exit: N`, and optionally `# expect-stdout: TEXT` /
//! `# expect-stderr: TEXT` lines that its output must contain), and nothing panics.
//! Every line fed to `brownout node` gets its reply or its line on stderr; the inputs
//! under `node/shop/` are fed to `brownout node --service services/shop.toml`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_brownout");

/// How long one hostile scenario may run (a debug build on a busy 2-core machine).
const BOUND: Duration = Duration::from_secs(60);

fn corpus(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hostile")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the hostile corpus is there")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Runs the binary with `args` and `input` on stdin; kills it past [`BOUND`].
fn run_bounded(args: &[&str], input: &[u8]) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The node may exit before reading everything; that is for the checks to judge.
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    writer.join().expect("writer");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (
        status.and_then(|s| s.code()),
        text(out.join().expect("stdout reader")),
        text(err.join().expect("stderr reader")),
    )
}

/// The values of `# key: value` header lines.
fn header<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("# {key}:");
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
        .collect()
}

#[test]
fn every_hostile_scenario_ends_as_its_header_says() {
    let files = corpus("scenarios", "toml");
    assert!(files.len() >= 25, "the corpus is there: {}", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        let expected: Vec<i32> = header(&text, "expect-exit")
            .iter()
            .map(|v| v.parse().expect("an exit code"))
            .collect();
        assert_eq!(
            expected.len(),
            1,
            "{}: one expect-exit line",
            file.display()
        );
        let path = file.to_str().expect("utf-8 path");
        for args in [vec![path], vec!["check", path]] {
            let (code, out, err) = run_bounded(&args, b"");
            let name = format!("brownout {}", args.join(" "));
            let Some(code) = code else {
                failures.push(format!("{name}: still running after {BOUND:?}"));
                continue;
            };
            if out.contains("panicked") || err.contains("panicked") {
                failures.push(format!("{name}: panicked:\n{err}"));
            }
            let want = if args[0] == "check" {
                // check does not run, so an expectation cannot fail.
                if expected[0] == 2 {
                    2
                } else {
                    0
                }
            } else {
                expected[0]
            };
            if code != want {
                failures.push(format!("{name}: exit {code}, expected {want}\n{err}"));
            }
            if args[0] != "check" {
                for needle in header(&text, "expect-stdout") {
                    if !out.contains(needle) {
                        failures.push(format!("{name}: stdout lacks {needle:?}:\n{out}"));
                    }
                }
                for needle in header(&text, "expect-stderr") {
                    if !err.contains(needle) {
                        failures.push(format!("{name}: stderr lacks {needle:?}:\n{err}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_hostile_node_line_gets_a_reply_or_a_stderr_line() {
    every_line_answered("node", &["node"]);
}

#[test]
fn every_hostile_declared_node_line_gets_a_reply_or_a_stderr_line() {
    every_line_answered("node/shop", &["node", "--service", "services/shop.toml"]);
}

fn every_line_answered(dir: &str, args: &[&str]) {
    let files = corpus(dir, "jsonl");
    assert!(!files.is_empty());
    for file in &files {
        let input = std::fs::read(file).expect("readable");
        let lines = input
            .split(|&b| b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
            .count();
        let (code, out, err) = run_bounded(args, &input);
        let name = file.display();
        assert_eq!(code, Some(0), "{name}: the node exits cleanly:\n{err}");
        assert!(!err.contains("panicked"), "{name}: panicked:\n{err}");
        let replies = out.lines().count();
        for reply in out.lines() {
            serde_json::from_str::<serde_json::Value>(reply)
                .unwrap_or_else(|e| panic!("{name}: reply is not JSON ({e}): {reply}"));
        }
        let logged = err.lines().count();
        assert_eq!(
            replies + logged,
            lines,
            "{name}: {lines} lines in, {replies} replies and {logged} stderr lines out\n{out}\n{err}"
        );
    }
}

#[test]
fn allow_large_runs_what_the_budget_refuses() {
    let dir = crate::util::scratch("allow-large");
    let file = dir.join("windows.toml");
    std::fs::write(
        &file,
        "duration = \"3s\"\n[[random_fault]]\ndependency = \"users\"\nkind = \"outage\"\n\
         mtbf = \"1us\"\nmttr = \"1us\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, _, err) = run_bounded(&[path], b"");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("windows.toml:5:1: too large: about 1.5e6 random fault windows over the run; the limit is 1e6; raise `mtbf` and `mttr`, or pass `--allow-large`"),
        "{err}"
    );
    let (code, out, err) = run_bounded(&[path, "--allow-large"], b"");
    assert_eq!(code, Some(0), "{err}");
    // 1.5 million windows streamed: the timeline keeps its first 400 lines.
    assert!(out.contains("users: outage begins"), "{out}");
    assert!(out.contains("... and "), "{out}");
}

#[test]
fn huge_files_are_refused_quickly_and_in_bounded_memory() {
    let dir = crate::util::scratch("huge-files");
    // Past the size limit: refused before it is parsed.
    let big = dir.join("big.toml");
    let entry = "[[script]]\nat = \"0s\"\nbody = { type = \"status\" }\n";
    let text = format!("duration = \"1s\"\n{}", entry.repeat(200_000));
    std::fs::write(&big, &text).unwrap();
    // Under it, but full of errors: the search for them stops within its work bound.
    let errors = dir.join("errors.toml");
    let entry = "[[script]]\nat = \"0s\"\nbody = { type = \"status\" }\nbogus = 1\n";
    std::fs::write(
        &errors,
        format!("duration = \"1s\"\n{}", entry.repeat(100_000)),
    )
    .unwrap();
    for (file, needle) in [
        (&big, "a scenario file is at most 8388608 bytes (8 MiB)"),
        (&errors, "more errors may follow"),
    ] {
        let started = Instant::now();
        let (code, _, err) = run_bounded(&["check", file.to_str().unwrap()], b"");
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(needle), "{err}");
        // A debug build on a busy machine: generous, but far from minutes.
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    let (code, _, err) = run_bounded(&["check", "/dev/zero"], b"");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the file is more than 8388608 bytes"), "{err}");
}

#[test]
fn a_trace_too_large_for_the_disk_is_refused_before_the_file_is_made() {
    let dir = crate::util::scratch("trace-budget");
    let file = dir.join("long.toml");
    // 1e8 requests: within the run budget, but some 50 GB of trace.
    std::fs::write(
        &file,
        "duration = \"1000s\"\n[[workload]]\nrate = 1e5\nmix = { search = 1 }\n",
    )
    .unwrap();
    let trace = dir.join("trace.jsonl");
    let (code, _, err) = run_bounded(
        &[file.to_str().unwrap(), "--trace", trace.to_str().unwrap()],
        b"",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("long.toml:3:1: too large: a trace of about 50 GB"),
        "{err}"
    );
    assert!(!trace.exists(), "no trace file is created");
}
