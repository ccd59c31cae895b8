use proptest::prelude::*;

use super::*;
use crate::engine::cache::CacheConfig;
use crate::engine::MILLISECOND;
use crate::model::service::{
    seed_sim_dependency, CallOp, DependencyEngine, DependencySpec, EndpointSpec, FallbackSpec,
    KeySpace, LeafSpec, ServiceSpec, StepSpec,
};
use crate::model::Keys;
use crate::node::DependencyConfig;

const MS: Span = MILLISECOND;

/// Dependencies `a` (100 ms, cached), `b` (1 s), `c` (50 ms); key space `k`; feature `f`.
fn spec(deadline: Option<Span>, feature: Option<&str>, plan: Vec<StepSpec>) -> ServiceSpec {
    let dep = |name: &str, timeout: Span, cache: bool| DependencySpec {
        name: name.to_owned(),
        engine: DependencyEngine {
            timeout,
            cache: cache.then(CacheConfig::default),
            ..DependencyEngine::from_config(&DependencyConfig::default())
        },
        sim: seed_sim_dependency(),
    };
    ServiceSpec {
        name: "t".to_owned(),
        dependencies: vec![
            dep("a", 100 * MS, true),
            dep("b", 1000 * MS, false),
            dep("c", 50 * MS, false),
        ],
        key_spaces: vec![KeySpace {
            name: "k".to_owned(),
            keys: Keys::Uniform { n: 10 },
            records: Default::default(),
        }],
        admission: None,
        compute: None,
        features: vec!["f".to_owned()],
        endpoints: vec![EndpointSpec {
            name: "e".to_owned(),
            key: Some("k".to_owned()),
            deadline,
            feature: feature.map(str::to_owned),
            plan,
            ..EndpointSpec::default()
        }],
    }
}

fn call(dep: &str) -> StepSpec {
    StepSpec::call(dep, CallOp::Read)
}

fn with(dep: &str, optional: bool, feature: Option<&str>, fallback: Vec<FallbackSpec>) -> StepSpec {
    StepSpec::Call {
        call: dep.to_owned(),
        op: CallOp::Read,
        key: None,
        leaf: LeafSpec {
            optional,
            feature: feature.map(str::to_owned),
            fallback,
            max_attempts: None,
            fallback_cpu: 0,
        },
    }
}

fn fb_call(dep: &str) -> FallbackSpec {
    FallbackSpec::Call {
        call: dep.to_owned(),
        op: CallOp::Read,
    }
}

fn fb_static() -> FallbackSpec {
    FallbackSpec::Static("canned".to_owned())
}

/// A run with its service, the current time and the actions it emitted last.
struct Harness {
    service: Service,
    run: PlanRun,
    now: Time,
    out: Vec<Action>,
}

impl Harness {
    fn start(spec: ServiceSpec, disabled: Disabled) -> Harness {
        let service = spec.build().expect("valid");
        let mut out = Vec::new();
        let run = PlanRun::start(&service, EndpointId(0), 0, disabled, &mut out);
        Harness {
            service,
            run,
            now: 0,
            out,
        }
    }

    fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    fn answer(&mut self, at: Time, slot: Slot, answer: Answer) -> Vec<Action> {
        self.now = at;
        let mut out = Vec::new();
        self.run
            .on_answer(&self.service, slot, answer, at, &mut out);
        out
    }

    fn cache(&mut self, slot: Slot, hit: Option<CacheHit>) -> Vec<Action> {
        let mut out = Vec::new();
        self.run
            .on_cache(&self.service, slot, hit, self.now, &mut out);
        out
    }

    fn deadline(&mut self, at: Time) -> Vec<Action> {
        self.now = at;
        let mut out = Vec::new();
        self.run.on_deadline(&self.service, at, &mut out);
        out
    }
}

fn slot(step: u16, attempt: u8) -> Slot {
    Slot {
        step: StepId(step),
        attempt,
    }
}

fn start(step: u16, attempt: u8, dep: u16, timeout: Span) -> Action {
    Action::StartCall {
        slot: slot(step, attempt),
        dependency: DependencyId(dep),
        op: CallOp::Read,
        key_space: None,
        timeout,
    }
}

impl Harness {
    /// The run's outcome, checking that `actions` end with [`Action::Done`].
    fn done(&self, actions: &[Action]) -> Outcome {
        match actions.last() {
            Some(Action::Done) => self.run.outcome(&self.service),
            other => panic!("expected Done last, got {other:?}"),
        }
    }
}

const FAIL: Answer = Answer::Failed(Failure::Error);

#[test]
fn seq_runs_in_order() {
    let mut h = Harness::start(spec(None, None, vec![call("a"), call("b")]), Disabled::NONE);
    assert_eq!(h.take(), [start(1, 0, 0, 100 * MS)]);
    assert_eq!(
        h.answer(10, slot(1, 0), Answer::Fresh),
        [start(2, 0, 1, 1000 * MS)]
    );
    let out = h.answer(20, slot(2, 0), Answer::Fresh);
    let outcome = h.done(&out);
    assert_eq!(outcome.class, Class::Fresh);
    assert!(!outcome.partial && outcome.error.is_none());
    assert_eq!(
        outcome.steps.as_slice(),
        [
            (StepId(1), StepServed::Fresh),
            (StepId(2), StepServed::Fresh)
        ]
    );
    assert!(h.run.is_done());
}

#[test]
fn a_required_failure_stops_the_seq_with_an_error() {
    let mut h = Harness::start(spec(None, None, vec![call("a"), call("b")]), Disabled::NONE);
    h.take();
    let out = h.answer(10, slot(1, 0), Answer::Failed(Failure::Timeout));
    assert_eq!(out.len(), 1, "b is never started: {out:?}");
    let outcome = h.done(&out);
    assert_eq!(outcome.class, Class::Error);
    let error = outcome.error.as_ref().unwrap();
    assert_eq!((error.step, error.code), (StepId(1), 11));
    assert_eq!(
        error.text,
        "required part `a` is missing: call failed (timeout)"
    );
}

#[test]
fn par_starts_all_and_waits_for_all() {
    let mut h = Harness::start(
        spec(None, None, vec![StepSpec::Par(vec![call("a"), call("b")])]),
        Disabled::NONE,
    );
    assert_eq!(
        h.take(),
        [start(1, 0, 0, 100 * MS), start(2, 0, 1, 1000 * MS)]
    );
    assert_eq!(h.answer(5, slot(2, 0), Answer::Fresh), []);
    let out = h.answer(
        9,
        slot(1, 0),
        Answer::FromCache {
            age: 3,
            stale: false,
        },
    );
    let outcome = h.done(&out);
    assert_eq!(outcome.class, Class::Cached);
    assert_eq!(outcome.degraded().collect::<Vec<_>>(), [StepId(1)]);
}

#[test]
fn a_required_failure_in_a_par_abandons_the_other_branches() {
    let mut h = Harness::start(
        spec(None, None, vec![StepSpec::Par(vec![call("a"), call("b")])]),
        Disabled::NONE,
    );
    h.take();
    let out = h.answer(5, slot(2, 0), FAIL);
    assert_eq!(out[0], Action::Abandon { slot: slot(1, 0) });
    assert_eq!(h.done(&out).class, Class::Error);
    // The abandoned call's answer changes nothing.
    assert_eq!(h.answer(6, slot(1, 0), Answer::Fresh), []);
}

#[test]
fn an_optional_failure_makes_the_reply_partial() {
    let plan = vec![StepSpec::Par(vec![
        call("a"),
        with("b", true, None, vec![]),
    ])];
    let mut h = Harness::start(spec(None, None, plan), Disabled::NONE);
    h.take();
    assert_eq!(
        h.answer(5, slot(2, 0), Answer::Failed(Failure::Unavailable)),
        []
    );
    let out = h.answer(6, slot(1, 0), Answer::Fresh);
    let outcome = h.done(&out);
    assert_eq!(outcome.class, Class::Partial);
    assert!(outcome.partial && outcome.error.is_none());
    assert_eq!(outcome.missing().collect::<Vec<_>>(), [StepId(2)]);
    assert_eq!(
        outcome.steps[1],
        (
            StepId(2),
            StepServed::Missing {
                cause: Cause::Failed(Failure::Unavailable)
            }
        )
    );
}

#[test]
fn fallbacks_are_tried_in_order_cache_then_call_then_static() {
    let chain = vec![FallbackSpec::Cache, fb_call("b"), fb_static()];
    let mut h = Harness::start(
        spec(None, None, vec![with("a", false, None, chain)]),
        Disabled::NONE,
    );
    assert_eq!(h.take(), [start(0, 0, 0, 100 * MS)]);
    let out = h.answer(5, slot(0, 0), Answer::Failed(Failure::BreakerOpen));
    assert_eq!(
        out,
        [Action::TryCache {
            slot: slot(0, 1),
            dependency: DependencyId(0),
            key_space: None,
            cause: Cause::Failed(Failure::BreakerOpen),
        }]
    );
    assert_eq!(h.cache(slot(0, 1), None), [start(0, 2, 1, 1000 * MS)]);
    let out = h.answer(8, slot(0, 2), FAIL);
    let outcome = h.done(&out);
    assert_eq!(
        outcome.steps.as_slice(),
        [(StepId(0), StepServed::Fallback { index: 2 })]
    );
    assert_eq!(outcome.class, Class::Fallback);
}

#[test]
fn a_cache_hit_serves_the_step_and_a_fallback_call_counts_as_fallback() {
    let chain = vec![FallbackSpec::Cache, fb_call("b")];
    let mut h = Harness::start(
        spec(None, None, vec![with("a", false, None, chain.clone())]),
        Disabled::NONE,
    );
    h.take();
    h.answer(5, slot(0, 0), FAIL);
    let out = h.cache(
        slot(0, 1),
        Some(CacheHit {
            age: 40,
            stale: true,
        }),
    );
    let outcome = h.done(&out);
    assert_eq!(outcome.class, Class::Stale);
    assert_eq!(outcome.stale().collect::<Vec<_>>(), [(StepId(0), 40)]);

    let mut h = Harness::start(
        spec(None, None, vec![with("a", false, None, chain)]),
        Disabled::NONE,
    );
    h.take();
    h.answer(5, slot(0, 0), FAIL);
    h.cache(slot(0, 1), None);
    let out = h.answer(9, slot(0, 2), Answer::Fresh);
    assert_eq!(
        h.done(&out).steps.as_slice(),
        [(StepId(0), StepServed::Fallback { index: 1 })]
    );
}

#[test]
fn an_exhausted_chain_says_so() {
    let chain = vec![FallbackSpec::Cache, fb_call("b")];
    let mut h = Harness::start(
        spec(None, None, vec![with("a", false, None, chain)]),
        Disabled::NONE,
    );
    h.take();
    h.answer(5, slot(0, 0), Answer::Failed(Failure::BreakerOpen));
    h.cache(slot(0, 1), None);
    let out = h.answer(9, slot(0, 2), FAIL);
    let error = h.done(&out).error.clone().unwrap();
    assert_eq!(
        error.text,
        "required part `a` is missing: circuit open, and none of its 2 fallbacks served it"
    );
}

#[test]
fn not_found_is_definitive() {
    let chain = vec![FallbackSpec::Cache];
    let mut h = Harness::start(
        spec(None, None, vec![with("a", false, None, chain)]),
        Disabled::NONE,
    );
    h.take();
    let out = h.answer(5, slot(0, 0), Answer::NotFound);
    let error = h.done(&out).error.clone().unwrap();
    assert_eq!(error.code, 20);
    assert_eq!(error.text, "required part `a` does not exist");
}

#[test]
fn the_deadline_abandons_an_outstanding_par_branch() {
    let plan = vec![StepSpec::Par(vec![
        call("a"),
        with("b", true, None, vec![fb_static()]),
    ])];
    let mut h = Harness::start(spec(Some(200 * MS), None, plan), Disabled::NONE);
    // b's own timeout (1 s) is cut to what is left of the deadline.
    assert_eq!(
        h.take(),
        [start(1, 0, 0, 100 * MS), start(2, 0, 1, 200 * MS)]
    );
    assert_eq!(h.answer(30 * MS, slot(1, 0), Answer::Fresh), []);
    assert_eq!(h.run.deadline(), Some(200 * MS));
    assert_eq!(h.deadline(199 * MS), [], "not yet");
    let out = h.deadline(200 * MS);
    assert_eq!(out[0], Action::Abandon { slot: slot(2, 0) });
    let outcome = h.done(&out);
    assert!(outcome.deadline_passed);
    assert_eq!(outcome.class, Class::Fallback);
    assert_eq!(
        outcome.steps[1],
        (StepId(2), StepServed::Fallback { index: 0 })
    );
    // The late answer is ignored, and so is every later input.
    assert_eq!(h.answer(250 * MS, slot(2, 0), Answer::Fresh), []);
    assert_eq!(h.deadline(300 * MS), []);
}

#[test]
fn a_required_call_cut_by_the_deadline_fails_the_request() {
    let mut h = Harness::start(spec(Some(200 * MS), None, vec![call("b")]), Disabled::NONE);
    h.take();
    let out = h.deadline(200 * MS);
    assert_eq!(out[0], Action::Abandon { slot: slot(0, 0) });
    let error = h.done(&out).error.clone().unwrap();
    assert_eq!(error.text, "required part `b` is missing: deadline passed");
}

#[test]
fn no_fallback_call_starts_past_the_deadline() {
    let plan = vec![with("b", false, None, vec![fb_call("c"), fb_static()])];
    let mut h = Harness::start(spec(Some(200 * MS), None, plan), Disabled::NONE);
    h.take();
    let out = h.deadline(250 * MS);
    assert_eq!(out.len(), 2, "no StartCall for c: {out:?}");
    assert_eq!(
        h.done(&out).steps.as_slice(),
        [(StepId(0), StepServed::Fallback { index: 1 })]
    );
}

#[test]
fn an_answer_at_the_deadline_is_too_late_whatever_comes_first() {
    let plan = vec![with("b", true, None, vec![])];
    let mut h = Harness::start(spec(Some(200 * MS), None, plan), Disabled::NONE);
    h.take();
    let out = h.answer(200 * MS, slot(0, 0), Answer::Fresh);
    assert_eq!(out[0], Action::Abandon { slot: slot(0, 0) });
    assert_eq!(
        h.done(&out).steps.as_slice(),
        [(
            StepId(0),
            StepServed::Missing {
                cause: Cause::Deadline
            }
        )]
    );
}

#[test]
fn the_effective_timeout_is_the_smaller_of_own_and_left() {
    let mut h = Harness::start(
        spec(Some(300 * MS), None, vec![call("a"), call("b"), call("c")]),
        Disabled::NONE,
    );
    assert_eq!(h.take(), [start(1, 0, 0, 100 * MS)]);
    assert_eq!(
        h.answer(100 * MS, slot(1, 0), Answer::Fresh),
        [start(2, 0, 1, 200 * MS)]
    );
    // c's own 50 ms is less than the 60 ms left.
    assert_eq!(
        h.answer(240 * MS, slot(2, 0), Answer::Fresh),
        [start(3, 0, 2, 50 * MS)]
    );
}

#[test]
fn a_disabled_feature_skips_the_call_for_its_chain() {
    let plan = vec![
        call("a"),
        with("b", true, Some("f"), vec![FallbackSpec::Omit]),
    ];
    let mut h = Harness::start(spec(None, None, plan.clone()), Disabled(1));
    assert_eq!(h.take(), [start(1, 0, 0, 100 * MS)]);
    let out = h.answer(5, slot(1, 0), Answer::Fresh);
    let outcome = h.done(&out);
    assert_eq!(outcome.steps[1], (StepId(2), StepServed::Omitted));
    assert_eq!(outcome.class, Class::Partial);
    // Enabled, it is called.
    let mut h = Harness::start(spec(None, None, plan), Disabled::NONE);
    h.take();
    assert_eq!(
        h.answer(5, slot(1, 0), Answer::Fresh),
        [start(2, 0, 1, 1000 * MS)]
    );
}

#[test]
fn a_disabled_endpoint_feature_disables_every_step() {
    let plan = vec![StepSpec::Par(vec![
        with("a", false, None, vec![FallbackSpec::Cache]),
        with("b", true, None, vec![]),
    ])];
    let mut h = Harness::start(spec(None, Some("f"), plan), Disabled(1));
    assert_eq!(
        h.take(),
        [Action::TryCache {
            slot: slot(1, 1),
            dependency: DependencyId(0),
            key_space: None,
            cause: Cause::Disabled,
        }]
    );
    let out = h.cache(
        slot(1, 1),
        Some(CacheHit {
            age: 1,
            stale: false,
        }),
    );
    let outcome = h.done(&out);
    assert_eq!(outcome.class, Class::Partial);
    assert_eq!(
        outcome.steps[1],
        (
            StepId(2),
            StepServed::Missing {
                cause: Cause::Disabled
            }
        )
    );
}

#[test]
fn disabled_masks_come_from_the_mode() {
    let service = Service::seed();
    let mask = Disabled::from_fn(&service, |f| service.features[f.index()] == "search");
    assert_eq!(mask, Disabled(0b10));
    assert!(mask.contains(FeatureId(1)) && !mask.contains(FeatureId(0)));
}

#[test]
fn the_seed_endpoints_run_as_the_node_serves_them() {
    let service = Service::seed();
    let ended = |r: &PlanRun, out: &[Action]| {
        assert_eq!(out.last(), Some(&Action::Done));
        r.outcome(&service)
    };
    let run = |name: &str, disabled: Disabled| {
        let mut out = Vec::new();
        let id = service.endpoint_named(name).unwrap();
        let run = PlanRun::start(&service, id, 0, disabled, &mut out);
        (run, out)
    };
    // get_user: the call; when the breaker refuses it, the stale cache.
    let (mut r, out) = run("get_user", Disabled::NONE);
    assert_eq!(out, [start(0, 0, 0, 1000 * MS)]);
    let mut out = Vec::new();
    r.on_answer(
        &service,
        slot(0, 0),
        Answer::Failed(Failure::BreakerOpen),
        5,
        &mut out,
    );
    assert!(matches!(
        out[0],
        Action::TryCache {
            cause: Cause::Failed(Failure::BreakerOpen),
            ..
        }
    ));
    out.clear();
    r.on_cache(
        &service,
        slot(0, 1),
        Some(CacheHit {
            age: 45,
            stale: true,
        }),
        5,
        &mut out,
    );
    assert_eq!(ended(&r, &out).class, Class::Stale);
    // update_user queued by the engine.
    let (mut r, out) = run("update_user", Disabled::NONE);
    assert!(matches!(
        out[0],
        Action::StartCall {
            op: CallOp::Write,
            ..
        }
    ));
    let mut out = Vec::new();
    r.on_answer(&service, slot(0, 0), Answer::Queued, 5, &mut out);
    assert_eq!(ended(&r, &out).class, Class::Queued);
    // Recommendations and search: answered at once; disabled, by their fallback.
    for name in ["get_recommendations", "search"] {
        let (r, out) = run(name, Disabled::NONE);
        assert_eq!(
            ended(&r, &out).steps.as_slice(),
            [(StepId(0), StepServed::Local)]
        );
        let (r, out) = run(name, Disabled(0b11));
        assert_eq!(ended(&r, &out).class, Class::Fallback);
        assert_eq!(ended(&r, &out).degraded().count(), 1);
    }
}

// ---------------------------------------------------------------------------------------
// Random plans under random interleavings.

/// A random step tree over dependencies a (cached), b, c; only valid plans.
fn arb_step() -> impl Strategy<Value = StepSpec> {
    let leaf = (
        0..3usize,
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(0..3u8, 0..4),
        any::<bool>(),
    )
        .prop_map(|(dep, optional, gated, links, omit)| {
            let name = ["a", "b", "c"][dep];
            let mut fallback: Vec<FallbackSpec> = links
                .into_iter()
                .filter_map(|l| match l {
                    0 if dep == 0 => Some(FallbackSpec::Cache),
                    0 => None,
                    1 => Some(fb_call(["a", "b", "c"][(dep + 1) % 3])),
                    _ => Some(fb_static()),
                })
                .collect();
            if omit && optional {
                fallback.push(FallbackSpec::Omit);
            }
            with(name, optional, gated.then_some("f"), fallback)
        });
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(StepSpec::Seq),
            prop::collection::vec(inner, 1..4).prop_map(StepSpec::Par),
        ]
    })
}

/// One driver move: which outstanding thing to answer (by index, modulo), how, and how
/// much time passes first.
#[derive(Debug, Clone)]
enum Move {
    Answer {
        pick: usize,
        answer: u8,
        after: Span,
    },
    Late {
        pick: usize,
        after: Span,
    },
    Deadline {
        after: Span,
    },
}

fn arb_move() -> impl Strategy<Value = Move> {
    prop_oneof![
        6 => (any::<usize>(), 0..8u8, 0..80 * MS).prop_map(|(pick, answer, after)| Move::Answer { pick, answer, after }),
        1 => (any::<usize>(), 0..80 * MS).prop_map(|(pick, after)| Move::Late { pick, after }),
        1 => (0..120 * MS).prop_map(|after| Move::Deadline { after }),
    ]
}

fn answer_of(code: u8) -> Answer {
    match code {
        0 | 1 => Answer::Fresh,
        2 => Answer::FromCache {
            age: 7,
            stale: code % 2 == 0,
        },
        3 => Answer::NotFound,
        4 => Answer::Failed(Failure::Error),
        5 => Answer::Failed(Failure::Timeout),
        6 => Answer::Failed(Failure::BreakerOpen),
        _ => Answer::Failed(Failure::Unavailable),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_run_ends_once_and_settles_every_call(
        plan in prop::collection::vec(arb_step(), 1..3),
        deadline in prop::option::of(1..300 * MS),
        gated_off in any::<bool>(),
        moves in prop::collection::vec(arb_move(), 0..64),
    ) {
        let service = spec(deadline, None, plan).build().expect("the generator makes valid plans");
        let disabled = Disabled(u64::from(gated_off));
        let mut now: Time = 0;
        let mut out = Vec::new();
        let mut run = PlanRun::start(&service, EndpointId(0), now, disabled, &mut out);
        let mut outstanding: Vec<Slot> = Vec::new();
        let mut caches: Vec<Slot> = Vec::new();
        let mut settled: Vec<Slot> = Vec::new();
        let mut dones = 0;
        let mut moves = moves.into_iter();
        let mut just_answered = None;
        loop {
            // Account for what the run asked.
            for action in out.drain(..) {
                prop_assert_eq!(dones, 0, "an action after Done: {:?}", action);
                match action {
                    Action::StartCall { slot, dependency, timeout, .. } => {
                        prop_assert!(timeout > 0);
                        prop_assert!(timeout <= service.dependency(dependency).engine.timeout);
                        if let Some(d) = run.deadline() {
                            prop_assert!(now + timeout <= d);
                        }
                        prop_assert!(!outstanding.contains(&slot) && !settled.contains(&slot));
                        outstanding.push(slot);
                    }
                    Action::TryCache { slot, .. } => caches.push(slot),
                    Action::Abandon { slot } => {
                        // Either outstanding, or the call just answered too late.
                        if just_answered != Some(slot) {
                            let at = outstanding.iter().position(|s| *s == slot);
                            prop_assert!(at.is_some(), "abandoned {:?}, not outstanding", slot);
                            outstanding.swap_remove(at.unwrap());
                            settled.push(slot);
                        }
                    }
                    Action::Done => {
                        let outcome = run.outcome(&service);
                        dones += 1;
                        prop_assert_eq!(outcome.error.is_some(), outcome.class >= Class::Rejected);
                        prop_assert_eq!(outcome.partial, outcome.class == Class::Partial
                            || outcome.steps.iter().any(|(id, s)| {
                                let Step::Call(c) = service.endpoint(EndpointId(0)).plan.step(*id) else { return false };
                                c.leaf.optional && (s.is_failure() || *s == StepServed::Omitted)
                            }));
                    }
                }
            }
            just_answered = None;
            if dones > 0 {
                // Every call started was answered or abandoned.
                prop_assert!(outstanding.is_empty(), "unsettled: {:?}", outstanding);
                prop_assert!(run.is_done());
                break;
            }
            // Caches are answered before any other input (the contract).
            if let Some(slot) = caches.pop() {
                let hit = (now % 3 != 0).then_some(CacheHit { age: now, stale: now % 2 == 0 });
                run.on_cache(&service, slot, hit, now, &mut out);
                continue;
            }
            let mv = moves.next().unwrap_or(Move::Answer { pick: 0, answer: 0, after: 10 * MS });
            match mv {
                Move::Answer { pick, answer, after } if !outstanding.is_empty() => {
                    now += after;
                    let slot = outstanding.swap_remove(pick % outstanding.len());
                    settled.push(slot);
                    just_answered = Some(slot);
                    run.on_answer(&service, slot, answer_of(answer), now, &mut out);
                }
                Move::Late { pick, after } if !settled.is_empty() => {
                    now += after;
                    let slot = settled[pick % settled.len()];
                    run.on_answer(&service, slot, Answer::Fresh, now, &mut out);
                    prop_assert!(out.is_empty() || run.deadline().is_some_and(|d| now >= d),
                        "a settled call's answer did something: {:?}", out);
                }
                _ => {
                    // Nothing to answer (or a deadline move): time passes.
                    if outstanding.is_empty() {
                        // Nothing outstanding and not done: only the deadline can move it.
                        let d = run.deadline();
                        prop_assert!(d.is_some(), "stuck: nothing outstanding, no deadline");
                        now = now.max(d.unwrap());
                    } else if let Move::Deadline { after } = mv {
                        now += after;
                    }
                    run.on_deadline(&service, now, &mut out);
                }
            }
        }
        // After Done, nothing does anything.
        for slot in settled.iter().chain(&caches) {
            run.on_answer(&service, *slot, Answer::Fresh, now + 1, &mut out);
            run.on_cache(&service, *slot, None, now + 1, &mut out);
        }
        run.on_deadline(&service, now + MAX_SPAN_FOR_TEST, &mut out);
        prop_assert!(out.is_empty(), "{:?}", out);
    }
}

const MAX_SPAN_FOR_TEST: Span = 1_000_000 * MS;
