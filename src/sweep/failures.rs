//! The "Failing seeds" section of a sweep's text report: every failure with its replay
//! command while they are few, grouped by expectation once they are many.
//!
//! Four hundred failing seeds are four hundred near-identical lines that hide what
//! matters: which expectations fail, how often, and one command to replay each. So
//! past [`LIST_UP_TO`] failing seeds, the section has one group per expectation (in
//! the scenario's order): how many seeds broke it, the first [`REPLAYS_SHOWN`] with
//! what they measured and their replay command, then the next [`SEEDS_NAMED`] seeds by
//! number and a count of the rest. The JSON report keeps every failure.

use std::fmt::Write as _;

use super::{FailureLine, SweepReport};

/// Failing seeds listed one by one, as before grouping existed.
pub const LIST_UP_TO: u64 = 10;
/// Seeds shown with their measure and replay command, per expectation.
pub const REPLAYS_SHOWN: usize = 3;
/// Further seeds named by number, per expectation.
pub const SEEDS_NAMED: usize = 20;

/// Writes the section for `report` into `w`.
pub fn render(w: &mut String, report: &SweepReport) {
    if report.failures.is_empty() {
        let _ = writeln!(w, "Failing seeds: none");
        return;
    }
    if report.failed <= LIST_UP_TO {
        let _ = writeln!(w, "Failing seeds: {}", report.failed);
        let mut last = None;
        for f in &report.failures {
            if last != Some(f.seed) {
                let _ = writeln!(w, "  seed {}: replay with `{}`", f.seed, f.replay);
                last = Some(f.seed);
            }
            let _ = writeln!(
                w,
                "    FAIL {}: expected {}, measured {}",
                f.expectation, f.expected, f.measured
            );
        }
        return;
    }
    let _ = writeln!(
        w,
        "Failing seeds: {}, by the expectation they broke (--format json lists every one)",
        report.failed
    );
    render_groups(w, &report.failures, "  ");
}

/// One group per expectation of `failures` (ordered by seed), in order of the
/// expectation's first failure, each line starting with `indent`.
pub fn render_groups(w: &mut String, failures: &[FailureLine], indent: &str) {
    let mut names: Vec<&str> = Vec::new();
    for f in failures {
        if !names.contains(&f.expectation.as_str()) {
            names.push(&f.expectation);
        }
    }
    for name in names {
        let group: Vec<&FailureLine> = failures.iter().filter(|f| f.expectation == name).collect();
        let _ = writeln!(
            w,
            "{indent}{name} (expected {}): broken by {} seed(s)",
            group[0].expected,
            group.len()
        );
        for f in group.iter().take(REPLAYS_SHOWN) {
            let _ = writeln!(
                w,
                "{indent}  seed {}: measured {}; replay with `{}`",
                f.seed, f.measured, f.replay
            );
        }
        let rest = &group[group.len().min(REPLAYS_SHOWN)..];
        if !rest.is_empty() {
            let named: Vec<String> = rest
                .iter()
                .take(SEEDS_NAMED)
                .map(|f| f.seed.to_string())
                .collect();
            let unnamed = rest.len() - named.len();
            let tail = if unnamed > 0 {
                format!(", and {unnamed} more")
            } else {
                String::new()
            };
            let _ = writeln!(w, "{indent}  also seeds {}{tail}", named.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seed: u64, expectation: &str) -> FailureLine {
        FailureLine {
            seed,
            expectation: expectation.to_owned(),
            expected: ">= 99%".to_owned(),
            measured: format!("{seed}%"),
            replay: format!("brownout s.toml --seed {seed}"),
        }
    }

    #[test]
    fn groups_show_a_few_replays_then_seed_numbers_then_a_count() {
        let mut failures: Vec<FailureLine> = (0..30).map(|s| line(s, "min_availability")).collect();
        failures.insert(1, line(0, "max_stale_age"));
        let mut w = String::new();
        render_groups(&mut w, &failures, "  ");
        let lines: Vec<&str> = w.lines().collect();
        assert_eq!(
            lines[0],
            "  min_availability (expected >= 99%): broken by 30 seed(s)"
        );
        assert_eq!(
            lines[1],
            "    seed 0: measured 0%; replay with `brownout s.toml --seed 0`"
        );
        assert_eq!(
            lines[4],
            "    also seeds 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, and 7 more"
        );
        assert_eq!(
            lines[5],
            "  max_stale_age (expected >= 99%): broken by 1 seed(s)"
        );
        assert_eq!(lines.len(), 7);
    }
}
