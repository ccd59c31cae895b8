//! The retry layer: backoff bounds, what is retried, and the budget against a model.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(7)
}

#[test]
fn backoff_doubles_to_its_ceiling_and_jitter_stays_below_it() {
    let config = RetryConfig {
        backoff_base: 100,
        backoff_max: 350,
        jitter: Jitter::None,
        ..RetryConfig::default()
    };
    let mut r = rng();
    let plain: Vec<Span> = (1..=4).map(|k| config.backoff(k, &mut r)).collect();
    assert_eq!(plain, [100, 200, 350, 350]);
    for (jitter, low) in [(Jitter::Full, 0), (Jitter::Equal, 175)] {
        let config = RetryConfig {
            jitter,
            ..config.clone()
        };
        for _ in 0..1000 {
            let d = config.backoff(3, &mut r);
            assert!((low..=350).contains(&d), "{jitter:?}: {d}");
        }
    }
}

#[test]
fn only_the_chosen_failures_are_retried_and_only_max_attempts_times() {
    let config = RetryConfig {
        max_attempts: 3,
        on: RetryOn {
            timeout: true,
            error: false,
            unavailable: true,
        },
        budget: None,
        ..RetryConfig::default()
    };
    let mut p = RetryPolicy::new(config).unwrap();
    let mut r = rng();
    assert!(matches!(
        p.decide(0, 1, FailureKind::Timeout, None, &mut r),
        Decision::Retry(_)
    ));
    assert!(matches!(
        p.decide(0, 2, FailureKind::Unavailable, None, &mut r),
        Decision::Retry(_)
    ));
    assert_eq!(
        p.decide(0, 3, FailureKind::Timeout, None, &mut r),
        Decision::GiveUp
    );
    assert_eq!(
        p.decide(0, 1, FailureKind::Error, None, &mut r),
        Decision::GiveUp
    );
    assert_eq!(p.stats().scheduled, 2);
}

#[test]
fn a_retry_that_would_end_at_the_deadline_is_denied() {
    let config = RetryConfig {
        backoff_base: 100,
        jitter: Jitter::None,
        budget: None,
        ..RetryConfig::default()
    };
    let mut p = RetryPolicy::new(config).unwrap();
    let mut r = rng();
    assert_eq!(
        p.decide(1_000, 1, FailureKind::Error, Some(1_100), &mut r),
        Decision::Denied(Denied::Deadline)
    );
    assert_eq!(
        p.decide(1_000, 1, FailureKind::Error, Some(1_101), &mut r),
        Decision::Retry(100)
    );
    assert_eq!(p.stats().denied_deadline, 1);
}

#[test]
fn a_policy_that_cannot_retry_sensibly_is_refused() {
    let bad = [
        RetryConfig {
            max_attempts: 0,
            ..RetryConfig::default()
        },
        RetryConfig {
            backoff_base: 10,
            backoff_max: 5,
            ..RetryConfig::default()
        },
        RetryConfig {
            budget: Some(BudgetConfig {
                ratio: f64::NAN,
                ..BudgetConfig::default()
            }),
            ..RetryConfig::default()
        },
        RetryConfig {
            budget: Some(BudgetConfig {
                window: 5,
                ..BudgetConfig::default()
            }),
            ..RetryConfig::default()
        },
    ];
    for config in bad {
        assert!(RetryPolicy::new(config.clone()).is_err(), "{config:?}");
    }
}

/// The budget as its definition reads, over every event kept: a retry at `t` is allowed
/// when the retries already allowed in the buckets `b-9..=b` (b = t / bucket) are fewer
/// than `min_per_sec * window_seconds + ratio * first attempts in those buckets`.
fn model(config: BudgetConfig, events: &[(Time, bool)]) -> Vec<bool> {
    let bucket = config.window / BUDGET_BUCKETS as Span;
    let mut calls: Vec<Time> = Vec::new();
    let mut retries: Vec<Time> = Vec::new();
    let mut answers = Vec::new();
    for &(t, is_retry) in events {
        let b = t / bucket;
        let in_window = |x: &&Time| **x / bucket + (BUDGET_BUCKETS as u64) > b;
        if is_retry {
            let c = calls.iter().filter(in_window).count() as f64;
            let r = retries.iter().filter(in_window).count() as f64;
            let seconds = config.window as f64 / SECOND as f64;
            let ok = r < f64::from(config.min_per_sec) * seconds + config.ratio * c;
            if ok {
                retries.push(t);
            }
            answers.push(ok);
        } else {
            calls.push(t);
        }
    }
    answers
}

proptest! {
    #[test]
    fn the_budget_denies_exactly_what_its_definition_says(
        ratio in prop_oneof![Just(0.0), Just(0.2), 0.0..2.0f64],
        min_per_sec in 0u32..3,
        window_ms in 10u64..2_000,
        steps in prop::collection::vec((0u64..400_000, any::<bool>()), 1..300),
    ) {
        let config = BudgetConfig { ratio, min_per_sec, window: window_ms * MILLISECOND };
        let mut t = 0;
        let events: Vec<(Time, bool)> = steps
            .iter()
            .map(|&(dt, retry)| {
                t += dt;
                (t, retry)
            })
            .collect();
        let mut budget = RetryBudget::new(config);
        let got: Vec<bool> = events
            .iter()
            .filter_map(|&(t, retry)| {
                if retry {
                    Some(budget.try_withdraw(t))
                } else {
                    budget.on_call(t);
                    None
                }
            })
            .collect();
        prop_assert_eq!(got, model(config, &events));
    }
}
