//! Self-check: run a scenario twice with the same seed and compare the traces.
//!
//! Determinism is the product, so the simulator can check it on demand: two runs must
//! produce the same trace digest. On a mismatch both runs are repeated with their full
//! traces kept in memory and the first differing line is reported, which is where to
//! start looking (an iterated `HashMap`, a float formatted without fixed precision, a
//! clock read).

use std::fmt;
use std::io;

use crate::model::Scenario;

use super::run::{run, RunOptions};

/// Why a self-check failed.
#[derive(Debug)]
pub enum Divergence {
    /// The run itself failed.
    Io(io::Error),
    /// The traces differ, first at `line` (1-based).
    Trace {
        /// The seed.
        seed: u64,
        /// First differing line.
        line: usize,
        /// That line in the first run (`None` if its trace ended before).
        first: Option<String>,
        /// That line in the second run.
        second: Option<String>,
    },
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Divergence::Io(e) => write!(f, "run failed: {e}"),
            Divergence::Trace {
                seed,
                line,
                first,
                second,
            } => {
                let show =
                    |l: &Option<String>| l.clone().unwrap_or_else(|| "(end of trace)".into());
                write!(
                    f,
                    "not deterministic: two runs of seed {seed} diverge at trace line {line}\n  first run:  {}\n  second run: {}",
                    show(first),
                    show(second)
                )
            }
        }
    }
}

impl std::error::Error for Divergence {}

/// Runs `scenario` twice with `seed`; returns the trace digest, or where the runs diverge.
pub fn check_determinism(scenario: &Scenario, seed: u64) -> Result<String, Divergence> {
    let digest = |_: ()| {
        run(
            scenario,
            RunOptions {
                seed,
                trace: None,
                digest: true,
            },
        )
        .map(|r| r.trace_digest.expect("digest requested"))
        .map_err(Divergence::Io)
    };
    let a = digest(())?;
    let b = digest(())?;
    if a == b {
        return Ok(a);
    }
    let full = || -> Result<String, Divergence> {
        let mut out = Vec::new();
        run(
            scenario,
            RunOptions {
                seed,
                trace: Some(&mut out),
                digest: false,
            },
        )
        .map_err(Divergence::Io)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    let (first, second) = (full()?, full()?);
    Err(first_difference(seed, &first, &second))
}

/// The first line at which two traces differ.
pub fn first_difference(seed: u64, first: &str, second: &str) -> Divergence {
    let (mut a, mut b) = (first.lines(), second.lines());
    let mut line = 0;
    loop {
        line += 1;
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => {
                // Same lines, different digests: only possible if two values print
                // the same JSON but digest apart (an f32 and an f64 printed alike);
                // report the end.
                return Divergence::Trace {
                    seed,
                    line,
                    first: None,
                    second: None,
                };
            }
            (x, y) => {
                return Divergence::Trace {
                    seed,
                    line,
                    first: x.map(str::to_owned),
                    second: y.map(str::to_owned),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_points_at_the_line() {
        let d = first_difference(7, "a\nb\nc\n", "a\nx\nc\n");
        let text = d.to_string();
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("first run:  b") && text.contains("second run: x"));
        let d = first_difference(7, "a\n", "a\nb\n");
        assert!(d.to_string().contains("(end of trace)"));
    }
}
