//! Judging a sweep against the scenario's `[expect.sweep]`: the share of seeds that
//! met every `[expect]` check, and percentile bounds on the figures across seeds.
//!
//! Everything is read from the [`SweepReport`]'s integer statistics (nearest-rank
//! percentiles, availability in millionths), so the verdict is exact and the same
//! whatever `--jobs` was.

use std::fmt::Write as _;

use super::{Percentiles, RecoveryTime, SweepReport};
use crate::engine::HumanSpan;
use crate::model::sweep::{format_limit, SweepFigure, SweepPercentile};
use crate::model::SweepExpectations;

/// One `[expect.sweep]` check and how the sweep measured against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepVerdict {
    /// Its key path, e.g. `sweep.min_availability.p99`.
    pub name: String,
    /// What it expects, in words.
    pub expected: String,
    /// What the sweep measured.
    pub measured: String,
    /// Whether it held.
    pub pass: bool,
}

/// Every check of `expect` against `report`, in the order the scenario's checks are
/// kept (pass rate first, then the bounds).
pub fn judge(expect: &SweepExpectations, report: &SweepReport) -> Vec<SweepVerdict> {
    let mut verdicts = Vec::new();
    if let Some(rate) = expect.min_pass_rate {
        let rate_ppm = (rate * 1e6).round() as u128;
        // passed / runs >= rate, in integers: no float decides a verdict.
        let pass = u128::from(report.passed) * 1_000_000 >= rate_ppm * u128::from(report.runs);
        verdicts.push(SweepVerdict {
            name: "sweep.min_pass_rate".to_owned(),
            expected: format!(
                "at least {} of seeds meet every expectation",
                percent(rate_ppm as u64)
            ),
            measured: format!(
                "{} of {} seeds ({})",
                report.passed,
                report.runs,
                percent(share_ppm(report.passed, report.runs))
            ),
            pass,
        });
    }
    let st = &report.stats;
    for bound in &expect.bounds {
        let name = format!("sweep.{}.{}", bound.figure.key(), bound.percentile.key());
        let expected = format!(
            "{} {} {} {}",
            bound.percentile.key(),
            bound.figure.label(),
            if bound.figure.is_floor() { ">=" } else { "<=" },
            format_limit(bound.figure, bound.limit)
        );
        let (measured, pass) = match bound.figure {
            SweepFigure::Availability => {
                let v = at(&st.availability, bound.percentile).0;
                (format_limit(bound.figure, v), v >= bound.limit)
            }
            SweepFigure::StaleAge => span(&st.max_stale_age, bound.percentile, bound.limit),
            SweepFigure::BreakerTimeOpen => {
                span(&st.breaker_time_open, bound.percentile, bound.limit)
            }
            SweepFigure::QueueDepth => count(&st.queue_max_depth, bound.percentile, bound.limit),
            SweepFigure::Partial => count(&st.partial, bound.percentile, bound.limit),
            SweepFigure::Shed => count(&st.shed, bound.percentile, bound.limit),
            SweepFigure::RecoveryTime => match &st.recovery_time.percentiles {
                // Nothing to recover from in any seed: the bound cannot be broken.
                None => ("no seed had an outage or hang".to_owned(), true),
                Some(p) => match at(p, bound.percentile) {
                    RecoveryTime::Within(v) => (HumanSpan(v).to_string(), v <= bound.limit),
                    RecoveryTime::Never => (
                        "never (a breaker still open at the end of the run)".to_owned(),
                        false,
                    ),
                },
            },
        };
        verdicts.push(SweepVerdict {
            name,
            expected,
            measured,
            pass,
        });
    }
    verdicts
}

fn at<T: Copy>(p: &Percentiles<T>, which: SweepPercentile) -> T {
    match which {
        SweepPercentile::P50 => p.p50,
        SweepPercentile::P95 => p.p95,
        SweepPercentile::P99 => p.p99,
        SweepPercentile::Worst => p.worst,
    }
}

fn span(p: &Percentiles<u64>, which: SweepPercentile, limit: u64) -> (String, bool) {
    let v = at(p, which);
    (HumanSpan(v).to_string(), v <= limit)
}

fn count(p: &Percentiles<u64>, which: SweepPercentile, limit: u64) -> (String, bool) {
    let v = at(p, which);
    (v.to_string(), v <= limit)
}

/// `part / whole` in millionths, rounded down (a pass rate is never shown higher
/// than it is).
fn share_ppm(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    (u128::from(part) * 1_000_000 / u128::from(whole)) as u64
}

/// Millionths as a percentage with no trailing zeros: `990000` -> `99%`,
/// `995500` -> `99.55%`.
fn percent(ppm: u64) -> String {
    let whole = ppm / 10_000;
    let frac = ppm % 10_000;
    if frac == 0 {
        format!("{whole}%")
    } else {
        let digits = format!("{frac:04}");
        format!("{whole}.{}%", digits.trim_end_matches('0'))
    }
}

/// The verdicts as a report section, appended to a sweep's text report.
pub fn render_text(expect: &SweepExpectations, verdicts: &[SweepVerdict]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nSweep expectations ([expect.sweep], stated for {} seeds)",
        expect.seeds
    );
    for v in verdicts {
        let _ = writeln!(
            s,
            "  {} {}: expected {}, measured {}",
            if v.pass { "PASS" } else { "FAIL" },
            v.name,
            v.expected,
            v.measured
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SECOND;
    use crate::model::sweep::SweepBound;
    use crate::sim::report::Recovery;
    use crate::sweep::{build, SeedFailure, SeedRange, SeedResult, SweepMeta};

    /// 100 seeds: seed `s` has availability `999_000 + s` ppm and recovers in `s`
    /// seconds; seeds 0 and 1 fail an expectation.
    fn report() -> SweepReport {
        let results = (0..100)
            .map(|seed| SeedResult {
                seed,
                availability_ppm: 999_000 + seed,
                max_stale_age: 0,
                breaker_time_open: 0,
                queue_max_depth: seed,
                partial: 0,
                shed: 0,
                recovery: Recovery::Within(seed * SECOND),
                failures: if seed < 2 {
                    vec![SeedFailure {
                        expectation: "max_mode_changes".into(),
                        measured: "4".into(),
                    }]
                } else {
                    Vec::new()
                },
            })
            .collect();
        let meta = SweepMeta {
            scenario: "s".into(),
            path: "s.toml".into(),
            scenario_digest: "0".into(),
            seeds: SeedRange { start: 0, end: 100 },
            shard: None,
            expectations: vec![("max_mode_changes".into(), "<= 2".into())],
            expect_sweep: None,
        };
        build(meta, results)
    }

    fn bound(figure: SweepFigure, percentile: SweepPercentile, limit: u64) -> SweepBound {
        SweepBound {
            figure,
            percentile,
            limit,
        }
    }

    #[test]
    fn pass_rate_and_bounds_are_judged_exactly_at_their_edges() {
        let report = report();
        let expect = |rate: f64, bounds: Vec<SweepBound>| SweepExpectations {
            seeds: 100,
            min_pass_rate: Some(rate),
            bounds,
        };
        // 98 of 100 passed: 0.98 holds, 0.981 does not.
        let v = judge(&expect(0.98, vec![]), &report);
        assert!(v[0].pass, "{v:?}");
        assert_eq!(v[0].measured, "98 of 100 seeds (98%)");
        assert!(!judge(&expect(0.981, vec![]), &report)[0].pass);
        // p99 availability is seed 1's (rank 99 from the best): 99.9001%.
        let v = judge(
            &expect(
                0.0,
                vec![
                    bound(SweepFigure::Availability, SweepPercentile::P99, 999_001),
                    bound(SweepFigure::Availability, SweepPercentile::P99, 999_002),
                    bound(
                        SweepFigure::RecoveryTime,
                        SweepPercentile::Worst,
                        99 * SECOND,
                    ),
                    bound(SweepFigure::QueueDepth, SweepPercentile::P50, 49),
                ],
            ),
            &report,
        );
        let verdicts: Vec<(&str, bool)> = v.iter().map(|v| (v.name.as_str(), v.pass)).collect();
        assert_eq!(
            verdicts,
            [
                ("sweep.min_pass_rate", true),
                ("sweep.min_availability.p99", true),
                ("sweep.min_availability.p99", false),
                ("sweep.max_recovery_time.worst", true),
                ("sweep.max_queue_depth.p50", true),
            ]
        );
        assert_eq!(v[1].expected, "p99 availability >= 99.9001%");
        assert_eq!(v[1].measured, "99.9001%");
        assert_eq!(v[3].measured, "1m 39s");
    }

    #[test]
    fn percentages_are_exact_and_short() {
        assert_eq!(percent(990_000), "99%");
        assert_eq!(percent(995_500), "99.55%");
        assert_eq!(percent(1_000_000), "100%");
        assert_eq!(percent(1), "0.0001%");
        assert_eq!(share_ppm(989, 1000), 989_000);
        assert_eq!(share_ppm(2, 3), 666_666);
        assert_eq!(share_ppm(0, 0), 0);
    }
}
