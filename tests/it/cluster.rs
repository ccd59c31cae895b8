//! Sweeps on a batch engine: shard processes started as the engine starts them, with
//! only an index in the environment, whose JSON Lines merge into exactly the report
//! one machine prints; and the merge's refusals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::{brownout, code, stderr, stdout};

const FAILS: &str = "scenarios/sweep-fails.toml";

/// The variables a batch engine sets; a test sets exactly one.
const INDEX_VARIABLES: [&str; 3] = [
    "JOB_COMPLETION_INDEX",
    "SLURM_ARRAY_TASK_ID",
    "BROWNOUT_SHARD",
];

fn scratch(name: &str) -> PathBuf {
    crate::util::scratch(&format!("cluster-{name}"))
}

/// Starts `brownout args` as task `index` of a batch engine: `variable=index` and no
/// other index variable (the test's own environment may hold one).
fn start_task(args: &[&str], variable: &str, index: usize) -> std::process::Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brownout"));
    for v in INDEX_VARIABLES {
        command.env_remove(v);
    }
    command
        .args(args)
        .env(variable, index.to_string())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Runs `count` shards of `seeds` seeds of sweep-fails at once, each writing its JSON
/// Lines into `dir`, the index variable taking turns among the three.
fn run_shards(dir: &Path, seeds: &str, count: usize) -> Vec<Output> {
    let shard = format!("auto/{count}");
    let children: Vec<_> = (0..count)
        .map(|i| {
            let file = dir.join(format!("shard-{i:02}.jsonl"));
            start_task(
                &[
                    "sweep",
                    FAILS,
                    "--seeds",
                    seeds,
                    "--shard",
                    &shard,
                    "--jsonl",
                    file.to_str().unwrap(),
                ],
                INDEX_VARIABLES[i % 3],
                i,
            )
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn sixteen_shard_processes_merge_into_the_one_machine_report() {
    let dir = scratch("sixteen");
    let outputs = run_shards(&dir, "48", 16);
    for (i, out) in outputs.iter().enumerate() {
        // 0 or 1, as the shard's seeds pass or fail; never bad input.
        assert!(matches!(code(out), 0 | 1), "shard {i}: {}", stderr(out));
        assert!(
            stdout(out).contains(&format!("shard {}/16", i + 1)),
            "{}",
            stdout(out)
        );
    }
    // Some shard holds a failing seed, so the engine sees a failure.
    assert!(outputs.iter().any(|o| code(o) == 1));
    for format in ["text", "json"] {
        let one = brownout(&["sweep", FAILS, "--seeds", "48", "--format", format]);
        let merged = brownout(&[
            "sweep",
            "--merge",
            dir.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert_eq!(code(&merged), code(&one), "{}", stderr(&merged));
        assert_eq!(code(&one), 1);
        assert_eq!(stdout(&merged), stdout(&one), "--format {format}");
    }
    // Each line is one seed with what a batch engine's user needs.
    let line = std::fs::read_to_string(dir.join("shard-00.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    for key in [
        "seed",
        "scenario_digest",
        "brownout",
        "pass",
        "availability",
        "replay",
    ] {
        assert!(first.get(key).is_some(), "{key} missing from {first}");
    }
    assert_eq!(first["seed"], 0);
    // The replay line starts with how this binary can be run again (not on PATH
    // here: `cargo run --` or its path), then the scenario and seed.
    let replay = first["replay"].as_str().unwrap();
    assert!(
        replay.ends_with(" scenarios/sweep-fails.toml --seed 0"),
        "{replay}"
    );
}

#[test]
fn the_merge_refuses_what_does_not_add_up_and_names_it() {
    let dir = scratch("refusals");
    let outputs = run_shards(&dir, "8", 4);
    assert!(outputs.iter().all(|o| matches!(code(o), 0 | 1)));
    let merge = |d: &Path| brownout(&["sweep", "--merge", d.to_str().unwrap()]);
    assert!(matches!(code(&merge(&dir)), 0 | 1));
    let copy = |name: &str| {
        let d = scratch(name);
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, d.join(p.file_name().unwrap())).unwrap();
        }
        d
    };
    // A missing shard.
    let missing = copy("missing");
    std::fs::remove_file(missing.join("shard-02.jsonl")).unwrap();
    let out = merge(&missing);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("shard(s) 3/4 missing"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("counted from 0: 2"),
        "{}",
        stderr(&out)
    );
    // A shard given twice: its seeds are duplicates.
    let twice = copy("twice");
    std::fs::copy(
        twice.join("shard-01.jsonl"),
        twice.join("shard-01-again.jsonl"),
    )
    .unwrap();
    let out = merge(&twice);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("seed 1 is given twice"),
        "{}",
        stderr(&out)
    );
    // A shard of another version of the scenario file.
    let mixed = copy("mixed");
    let file = mixed.join("shard-03.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let digest = serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).unwrap()
        ["scenario_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(&file, text.replace(&digest, "0123456789abcdef")).unwrap();
    let out = merge(&mixed);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("different scenarios") && err.contains("0123456789abcdef"),
        "{err}"
    );
    // A truncated shard.
    let cut = copy("cut");
    let file = cut.join("shard-00.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.lines().next().unwrap().to_owned() + "\n").unwrap();
    let out = merge(&cut);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("holds 1 of the shard's 2 seeds"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_or_out_of_range_index_is_bad_input() {
    let args = ["sweep", FAILS, "--seeds", "8", "--shard", "auto/4"];
    let mut none = Command::new(env!("CARGO_BIN_EXE_brownout"));
    for v in INDEX_VARIABLES {
        none.env_remove(v);
    }
    let out = none
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("none is set"), "{}", stderr(&out));
    for variable in INDEX_VARIABLES {
        let out = start_task(&args, variable, 4).wait_with_output().unwrap();
        assert_eq!(code(&out), 2);
        assert!(
            stderr(&out).contains(&format!("{variable}=4 is out of range")),
            "{}",
            stderr(&out)
        );
    }
}
