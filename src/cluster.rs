//! Sweeps on a batch engine the team already runs (a Kubernetes Indexed Job, a GitHub
//! Actions matrix, a Slurm job array): the shard index read from the environment, each
//! shard's results as JSON Lines, and the merge of a directory of them.
//!
//! This extends the sweep's own sharding ([`crate::sweep`]) rather than adding a
//! second one: `--shard auto/N` resolves to the same strided [`Shard`], a JSON Lines
//! file is read back into the same shard report, and the merge is the same
//! [`sweep::merge_shards`], so the merged report is byte-identical to a one-machine
//! sweep whether its shards wrote JSON reports or JSON Lines.
//!
//! A batch engine counts its tasks from 0 (`JOB_COMPLETION_INDEX`, `strategy.job-index`,
//! `--array=0-15`), so an index from the environment counts from 0: index `i` is shard
//! `i + 1` of `--shard K/N`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::SweepExpectations;
use crate::sweep::{self, SeedRange, SeedResult, Shard, ShardFile, SweepError, SweepReport};

/// The environment variables a shard index is read from, in the order they are
/// named in messages.
pub const INDEX_VARIABLES: [(&str, &str); 3] = [
    ("JOB_COMPLETION_INDEX", "a Kubernetes Indexed Job"),
    ("SLURM_ARRAY_TASK_ID", "a Slurm job array"),
    (
        "BROWNOUT_SHARD",
        "anything else, such as a GitHub Actions matrix",
    ),
];

/// The `format` of each JSON Lines record; a merge refuses any other (version 2
/// carries `[expect.sweep]`, as the JSON report's version 2 does).
pub const LINE_FORMAT: &str = "brownout-sweep-seed/2";

/// `--shard`: `K/N`, or `auto/N` with K from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    /// `K/N`.
    Fixed(Shard),
    /// `auto/N`.
    Auto {
        /// N.
        count: u64,
    },
}

impl ShardArg {
    /// Parses `K/N` or `auto/N`.
    pub fn parse(text: &str) -> Result<ShardArg, String> {
        match text.split_once('/') {
            Some((k, n)) if k.trim() == "auto" => {
                let count = n.trim().parse::<u64>().map_err(|_| {
                    format!("'{n}' is not a whole number; expected auto/N, N the number of shards")
                })?;
                if count == 0 {
                    return Err(format!("'{text}' splits the seeds into no shard"));
                }
                Ok(ShardArg::Auto { count })
            }
            _ => Shard::parse(text).map(ShardArg::Fixed),
        }
    }

    /// The shard, reading the index of `auto/N` through `var` (the environment).
    ///
    /// Refuses no index, an index that is not a whole number, one out of `0..N`, and
    /// two variables that disagree.
    pub fn resolve(self, var: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let count = match self {
            ShardArg::Fixed(shard) => return Ok(shard),
            ShardArg::Auto { count } => count,
        };
        let mut found: Option<(&str, u64)> = None;
        for (name, _) in INDEX_VARIABLES {
            let Some(value) = var(name).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let index = value.trim().parse::<u64>().map_err(|_| {
                format!("{name}={value:?} is not a shard index (a whole number from 0)")
            })?;
            match found {
                Some((other, i)) if i != index => {
                    return Err(format!(
                        "{other}={i} and {name}={index} disagree on the shard index; unset one"
                    ))
                }
                Some(_) => {}
                None => found = Some((name, index)),
            }
        }
        let Some((name, index)) = found else {
            let list: Vec<String> = INDEX_VARIABLES
                .iter()
                .map(|(name, what)| format!("{name} ({what})"))
                .collect();
            return Err(format!(
                "--shard auto/{count} takes the shard index, counted from 0, from {}; none is set",
                list.join(", ")
            ));
        };
        if index >= count {
            return Err(format!(
                "{name}={index} is out of range for --shard auto/{count}: indices count from 0, so they run 0..={} \
                 (a Slurm array for it is --array=0-{})",
                count - 1,
                count - 1
            ));
        }
        Ok(Shard {
            index: index + 1,
            count,
        })
    }
}

/// An expectation's name and what it expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// Its name.
    pub name: String,
    /// What it expects, in words.
    pub expected: String,
}

/// One line of a shard's JSON Lines: one seed's result, with everything needed to
/// check that the lines of all shards belong to one sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedLine {
    /// [`LINE_FORMAT`].
    pub format: String,
    /// The version of brownout that ran it.
    pub brownout: String,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file as given.
    pub path: String,
    /// Digest of the scenario file's bytes.
    pub scenario_digest: String,
    /// The sweep's whole range.
    pub seeds: SeedRange,
    /// The shard that ran the seed, none for a sweep of the whole range.
    pub shard: Option<Shard>,
    /// Whether the seed met every expectation.
    pub pass: bool,
    /// The seed and its figures.
    #[serde(flatten)]
    pub result: SeedResult,
    /// The command that replays the seed.
    pub replay: String,
    /// The scenario's expectations, in its order.
    pub expectations: Vec<Expected>,
    /// The scenario's `[expect.sweep]`, which the merge judges; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_sweep: Option<SweepExpectations>,
}

/// The digest shards of one sweep must share: of the scenario file's bytes, then of
/// the service file it names, if any, then of the `--set` overrides. Seed-service
/// scenarios without overrides digest as they always
/// did; a declared one whose service file changed between shards is a different
/// sweep, and its shards do not merge.
pub fn content_digest(path: &Path, text: &str, set_args: &[&str]) -> String {
    let mut digest = crate::sim::digest::Fnv1a::default();
    digest.update(text.as_bytes());
    if let Ok(table) = text.parse::<toml::Table>() {
        if let Some(toml::Value::String(written)) = table.get("service") {
            let service = path.parent().unwrap_or(Path::new("")).join(written);
            // The scenario loaded, so its service file was read a moment ago.
            if let Ok(bytes) = std::fs::read(service) {
                digest.update(&bytes);
            }
        }
    }
    // `--set` overrides change the run as much as the file does.
    for arg in set_args {
        digest.update(b"\n--set ");
        digest.update(arg.as_bytes());
    }
    digest.hex()
}

/// A report's results as JSON Lines, one line per seed, ascending.
pub fn to_json_lines(report: &SweepReport) -> String {
    let expectations: Vec<Expected> = report
        .expectations
        .iter()
        .map(|e| Expected {
            name: e.name.clone(),
            expected: e.expected.clone(),
        })
        .collect();
    let mut out = String::new();
    for r in &report.results {
        let line = SeedLine {
            format: LINE_FORMAT.to_owned(),
            brownout: env!("CARGO_PKG_VERSION").to_owned(),
            scenario: report.scenario.clone(),
            path: report.path.clone(),
            scenario_digest: report.scenario_digest.clone(),
            seeds: report.seeds,
            shard: report.shard,
            pass: r.failures.is_empty(),
            result: r.clone(),
            replay: crate::replay::command_with_args(&report.path, r.seed),
            expectations: expectations.clone(),
            expect_sweep: report.expect_sweep.clone(),
        };
        out.push_str(&serde_json::to_string(&line).expect("seed lines serialize"));
        out.push('\n');
    }
    out
}

/// A merge's input that could not be used: exit 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeError(pub String);

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MergeError {}

impl From<SweepError> for MergeError {
    fn from(e: SweepError) -> Self {
        MergeError(e.0)
    }
}

/// The files `--merge` reads: each path given, or for a directory its `.json` and
/// `.jsonl` files, by name.
pub fn merge_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, MergeError> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| {
            MergeError(format!("cannot read the directory {}: {e}", path.display()))
        })?;
        let mut found: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                MergeError(format!("cannot read the directory {}: {e}", path.display()))
            })?;
            let p = entry.path();
            let wanted = matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("json" | "jsonl")
            );
            if wanted && p.is_file() {
                found.push(p);
            }
        }
        if found.is_empty() {
            return Err(MergeError(format!(
                "{} holds no shard output (.json or .jsonl files)",
                path.display()
            )));
        }
        // By name, so messages and the first shard do not depend on the file system.
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// Merges shard outputs `(name, text)`: JSON Lines (a name ending in `.jsonl`) or
/// JSON sweep reports, mixed as they come, into the report of the whole range.
///
/// Refuses, naming them: lines that are not seed lines, a file whose lines belong to
/// different sweeps or shards, mixed brownout versions, a seed given twice, and
/// everything [`sweep::merge`] refuses (different scenarios by path or content digest,
/// ranges or splits; a shard given twice or missing; a shard not holding exactly its
/// seeds).
pub fn merge(files: &[(String, String)]) -> Result<SweepReport, MergeError> {
    if files.is_empty() {
        return Err(MergeError(
            "--merge needs the shard outputs to merge".into(),
        ));
    }
    let mut shards = Vec::with_capacity(files.len());
    // Every seed of every JSON Lines file, where it was first seen.
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    let mut version: Option<(String, String)> = None;
    for (name, text) in files {
        if !name.ends_with(".jsonl") {
            shards.push((
                name.clone(),
                sweep::parse_shard(name, text).map_err(MergeError::from)?,
            ));
            continue;
        }
        let mut first: Option<(usize, SeedLine)> = None;
        let mut results = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{name}:{}", i + 1);
            let parsed: SeedLine = serde_json::from_str(line).map_err(|e| {
                MergeError(format!(
                    "{at}: not a seed line (write them with `brownout sweep ... --jsonl FILE`): {e}"
                ))
            })?;
            if parsed.format != LINE_FORMAT {
                return Err(MergeError(format!(
                    "{at}: line format '{}', expected '{LINE_FORMAT}'",
                    parsed.format
                )));
            }
            match &version {
                Some((v, from)) if *v != parsed.brownout => {
                    return Err(MergeError(format!(
                        "{at} was written by brownout {} but {from} by brownout {v}: run every shard with the same build",
                        parsed.brownout
                    )))
                }
                Some(_) => {}
                None => version = Some((parsed.brownout.clone(), at.clone())),
            }
            if let Some(earlier) = seen.get(&parsed.result.seed) {
                return Err(MergeError(format!(
                    "seed {} is given twice, at {earlier} and at {at}: shards overlap or a file was copied twice",
                    parsed.result.seed
                )));
            }
            seen.insert(parsed.result.seed, at.clone());
            match &first {
                None => first = Some((i + 1, parsed.clone())),
                Some((line_no, f)) => {
                    let same = (
                        &f.scenario,
                        &f.path,
                        &f.scenario_digest,
                        f.seeds,
                        f.shard,
                        &f.expectations,
                        &f.expect_sweep,
                    ) == (
                        &parsed.scenario,
                        &parsed.path,
                        &parsed.scenario_digest,
                        parsed.seeds,
                        parsed.shard,
                        &parsed.expectations,
                        &parsed.expect_sweep,
                    );
                    if !same {
                        return Err(MergeError(format!(
                            "{at} belongs to another sweep or shard than {name}:{line_no} \
                             (scenario, digest, range, shard or expectations differ): one file holds one shard's lines"
                        )));
                    }
                }
            }
            results.push(parsed.result);
        }
        let Some((_, f)) = first else {
            return Err(MergeError(format!(
                "{name} holds no seed lines: did its shard finish?"
            )));
        };
        shards.push((
            name.clone(),
            ShardFile {
                format: sweep::FORMAT.to_owned(),
                scenario: f.scenario,
                path: f.path,
                scenario_digest: f.scenario_digest,
                seeds: f.seeds,
                shard: f.shard,
                expectations: f
                    .expectations
                    .into_iter()
                    .map(|e| sweep::ExpectationTally {
                        name: e.name,
                        expected: e.expected,
                        passed: 0,
                        failed: 0,
                    })
                    .collect(),
                expect_sweep: f.expect_sweep,
                results,
            },
        ));
    }
    Ok(sweep::merge_shards(shards)?)
}

/// Reads the files of [`merge_inputs`] for [`merge`].
pub fn read_inputs(files: &[PathBuf]) -> Result<Vec<(String, String)>, MergeError> {
    files
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|text| (path.display().to_string(), text))
                .map_err(|e| {
                    MergeError(format!("cannot read shard report {}: {e}", path.display()))
                })
        })
        .collect()
}

/// Writes `text` to `path` whole or not at all (a temporary file beside it, then a
/// rename), so that a shard killed while writing leaves no file that looks complete.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_service_file_is_part_of_the_content_digest() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let digest_of_text = |text: &str| {
            let mut d = crate::sim::digest::Fnv1a::default();
            d.update(text.as_bytes());
            d.hex()
        };
        let seed = dir.join("sweep-fails.toml");
        let text = std::fs::read_to_string(&seed).unwrap();
        assert_eq!(content_digest(&seed, &text, &[]), digest_of_text(&text));
        let shop = dir.join("shop-payments-outage.toml");
        let text = std::fs::read_to_string(&shop).unwrap();
        assert!(
            text.contains("service = \""),
            "a scenario with a service file"
        );
        assert_ne!(content_digest(&shop, &text, &[]), digest_of_text(&text));
        // Elsewhere, the same text names another (missing) service file.
        assert_eq!(
            content_digest(Path::new("/nonexistent/x.toml"), &text, &[]),
            digest_of_text(&text)
        );
    }

    #[test]
    fn auto_shards_take_their_index_from_the_environment() {
        let auto = ShardArg::parse("auto/16").unwrap();
        assert_eq!(auto, ShardArg::Auto { count: 16 });
        for name in [
            "JOB_COMPLETION_INDEX",
            "SLURM_ARRAY_TASK_ID",
            "BROWNOUT_SHARD",
        ] {
            assert_eq!(
                auto.resolve(env(&[(name, "0")])),
                Ok(Shard {
                    index: 1,
                    count: 16
                })
            );
            assert_eq!(
                auto.resolve(env(&[(name, "15")])),
                Ok(Shard {
                    index: 16,
                    count: 16
                })
            );
            let out = auto.resolve(env(&[(name, "16")])).unwrap_err();
            assert!(out.contains(&format!("{name}=16 is out of range")), "{out}");
            assert!(out.contains("0..=15"), "{out}");
            let bad = auto.resolve(env(&[(name, "three")])).unwrap_err();
            assert!(bad.contains("not a shard index"), "{bad}");
        }
        let none = auto.resolve(env(&[])).unwrap_err();
        for (name, _) in INDEX_VARIABLES {
            assert!(none.contains(name), "{none}");
        }
        // An empty variable is not set.
        assert!(auto.resolve(env(&[("BROWNOUT_SHARD", "")])).is_err());
        // Two that agree are fine; two that disagree are refused.
        assert_eq!(
            auto.resolve(env(&[
                ("JOB_COMPLETION_INDEX", "3"),
                ("BROWNOUT_SHARD", "3")
            ])),
            Ok(Shard {
                index: 4,
                count: 16
            })
        );
        let two = auto
            .resolve(env(&[
                ("JOB_COMPLETION_INDEX", "3"),
                ("BROWNOUT_SHARD", "4"),
            ]))
            .unwrap_err();
        assert!(two.contains("disagree"), "{two}");
        // K/N is as before and ignores the environment.
        assert_eq!(
            ShardArg::parse("2/3")
                .unwrap()
                .resolve(env(&[("BROWNOUT_SHARD", "0")])),
            Ok(Shard { index: 2, count: 3 })
        );
        assert!(ShardArg::parse("auto/0").is_err());
        assert!(ShardArg::parse("auto/x").is_err());
        assert!(ShardArg::parse("4/3").is_err());
    }
}
