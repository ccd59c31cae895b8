//! The declared path of the [`Node`], driven by hand: requests of a small shop's
//! endpoints, call results fed in the order a test chooses, deadlines fired as timers.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::super::*;
use crate::engine::breaker::BreakerConfig;
use crate::engine::cache::CacheConfig;
use crate::engine::modes::{Mode, ModeConfig};
use crate::engine::queue::QueueConfig;
use crate::engine::retry::{BudgetConfig, Denied, Jitter, Pipeline, RetryConfig, RetryEvent};
use crate::engine::{Time, MILLISECOND, SECOND};
use crate::model::service::seed_sim_dependency;
use crate::model::service::{
    CallOp, DependencyEngine, DependencySpec, EndpointId, EndpointSpec, FallbackSpec, KeySpace,
    LeafSpec, Service, ServiceSpec, StepSpec, Tier,
};
use crate::model::Keys;
use crate::node::config::ReadPolicy;

const PAGE: EndpointId = EndpointId(0);
const CHECKOUT: EndpointId = EndpointId(1);
const INVENTORY: usize = 1;
const RECOMMENDATIONS: usize = 2;
const PAYMENTS: usize = 0;

/// A declared dependency's queue as a service file gives it by default: versioned
/// writes, not held behind queued ones.
fn declared_queue() -> QueueConfig {
    QueueConfig {
        in_order: false,
        ..QueueConfig::default()
    }
}

fn dep(name: &str, cache: bool, queue: Option<QueueConfig>) -> DependencySpec {
    DependencySpec {
        name: name.to_owned(),
        engine: DependencyEngine {
            timeout: SECOND,
            read_policy: ReadPolicy::DependencyFirst,
            breaker: BreakerConfig::default(),
            cache: cache.then(CacheConfig::default),
            queue,
            retry: None,
            pipeline: Pipeline::default(),
            timeout_scope: Default::default(),
            bulkhead: None,
            cpu_per_call: 0,
            read_your_writes: None,
        },
        sim: seed_sim_dependency(),
    }
}

fn read(dependency: &str, leaf: LeafSpec) -> StepSpec {
    StepSpec::Call {
        call: dependency.to_owned(),
        op: CallOp::Read,
        key: None,
        leaf,
    }
}

/// payments (a queue, no cache), inventory (no cache, no queue), recommendations (a
/// cache); the product page reads inventory, then recommendations (optional, gated by
/// a feature, falling back to its cache, then "popular") within 800 ms; checkout
/// reads inventory and writes payments in parallel.
fn shop(payments_queue: Option<QueueConfig>) -> Arc<Service> {
    let spec = ServiceSpec {
        name: "shop".to_owned(),
        dependencies: vec![
            dep("payments", false, payments_queue),
            dep("inventory", false, None),
            dep("recommendations", true, None),
        ],
        key_spaces: vec![KeySpace {
            name: "sku".to_owned(),
            keys: Keys::Uniform { n: 100 },
            records: Default::default(),
        }],
        admission: None,
        compute: None,
        features: vec!["recommendations".to_owned()],
        endpoints: vec![
            EndpointSpec {
                name: "product_page".to_owned(),
                key: Some("sku".to_owned()),
                deadline: Some(800 * MILLISECOND),
                plan: vec![
                    read("inventory", LeafSpec::default()),
                    read(
                        "recommendations",
                        LeafSpec {
                            optional: true,
                            feature: Some("recommendations".to_owned()),
                            fallback: vec![
                                FallbackSpec::Cache,
                                FallbackSpec::Static("popular".to_owned()),
                            ],
                            max_attempts: None,
                            fallback_cpu: 0,
                        },
                    ),
                ],
                ..EndpointSpec::default()
            },
            EndpointSpec {
                name: "checkout".to_owned(),
                key: Some("sku".to_owned()),
                tier: Tier::Critical,
                plan: vec![StepSpec::Par(vec![
                    read("inventory", LeafSpec::default()),
                    StepSpec::call("payments", CallOp::Write),
                ])],
                ..EndpointSpec::default()
            },
        ],
    };
    Arc::new(spec.build().expect("the test shop is valid"))
}

fn modes() -> ModeConfig {
    let mut modes = ModeConfig::default();
    modes.disabled_features.clear();
    modes
        .disabled_features
        .insert(Mode::Degraded, vec!["recommendations".to_owned()]);
    modes.critical_features.clear();
    modes
}

struct Bench {
    node: Node,
    next: u64,
    /// Calls made and not yet answered.
    calls: Vec<Call>,
    /// Replies: (request, body as JSON, how served).
    replies: Vec<(RequestId, Value, Served)>,
    timers: Vec<(Time, Timer)>,
    /// The retry layer's decisions.
    retries: Vec<RetryEvent>,
}

impl Bench {
    fn new(payments_queue: bool) -> Bench {
        Bench::with_payments_queue(payments_queue.then(declared_queue))
    }

    fn with_payments_queue(queue: Option<QueueConfig>) -> Bench {
        Bench::with_service(shop(queue))
    }

    fn with_service(service: Arc<Service>) -> Bench {
        let node =
            Node::with_service(service, &modes(), ChaCha8Rng::seed_from_u64(1)).expect("valid");
        Bench {
            retries: Vec::new(),
            node,
            next: 0,
            calls: Vec::new(),
            replies: Vec::new(),
            timers: Vec::new(),
        }
    }

    fn collect(&mut self) {
        for effect in self.node.drain_effects().collect::<Vec<_>>() {
            match effect {
                Effect::Reply { to, body, served } => {
                    let body = serde_json::to_value(&body).expect("serializes");
                    self.replies.push((to, body, served));
                }
                Effect::Call(call) => self.calls.push(call),
                Effect::Timer { at, timer } => self.timers.push((at, timer)),
                Effect::Event(NodeEvent::Retry { event, .. }) => self.retries.push(event),
                Effect::Event(_) => {}
            }
        }
    }

    fn request(&mut self, now: Time, endpoint: EndpointId, key: u64) -> RequestId {
        self.next += 1;
        let to = RequestId(self.next);
        self.node
            .handle_endpoint(now, to, Some(self.next), endpoint, Some(key), None);
        self.collect();
        to
    }

    /// Answers the oldest outstanding call to `dependency`.
    fn answer(&mut self, now: Time, dependency: usize, result: CallResult) {
        let i = self
            .calls
            .iter()
            .position(|c| c.dependency == dependency)
            .unwrap_or_else(|| panic!("no call to dependency {dependency}: {:?}", self.calls));
        let call = self.calls.remove(i);
        self.node.on_call_result(now, call.id, result);
        self.collect();
    }

    fn found(&mut self, now: Time, dependency: usize) {
        let key = match &self.calls.iter().find(|c| c.dependency == dependency) {
            Some(Call {
                op: Op::Read { key },
                ..
            }) => *key,
            other => panic!("no read to answer: {other:?}"),
        };
        let record = Record {
            id: key,
            name: Name::Record(key),
        };
        self.answer(now, dependency, CallResult::Found(record));
    }

    fn fire_timers(&mut self, now: Time) {
        let due: Vec<_> = self.timers.iter().filter(|t| t.0 <= now).copied().collect();
        self.timers.retain(|t| t.0 > now);
        for (_, timer) in due {
            self.node.on_timer(now, timer);
            self.collect();
        }
    }

    fn reply(&self, to: RequestId) -> &(RequestId, Value, Served) {
        let mut of = self.replies.iter().filter(|r| r.0 == to);
        let reply = of.next().unwrap_or_else(|| panic!("no reply to {to:?}"));
        assert!(of.next().is_none(), "two replies to {to:?}");
        reply
    }
}

#[test]
fn a_healthy_page_is_fresh_with_both_parts() {
    let mut b = Bench::new(true);
    let to = b.request(0, PAGE, 7);
    // A seq: recommendations waits for inventory.
    assert_eq!(b.calls.len(), 1);
    b.found(10 * MILLISECOND, INVENTORY);
    b.found(20 * MILLISECOND, RECOMMENDATIONS);
    let (_, body, served) = b.reply(to);
    assert_eq!(*served, Served::Fresh);
    assert_eq!(
        *body,
        json!({
            "type": "product_page_ok", "in_reply_to": 1, "key": 7,
            "data": {
                "inventory": {"id": 7, "name": "Record 7"},
                "recommendations": {"id": 7, "name": "Record 7"},
            },
            "_meta": {"partial": false, "missing": [], "degraded": [], "stale": {},
                      "deadline_passed": false,
                      "served": {"inventory": "fresh", "recommendations": "fresh"}},
        })
    );
}

#[test]
fn a_failed_optional_part_takes_its_chain_in_order() {
    let mut b = Bench::new(true);
    // First the cache is empty: the static answer serves.
    let first = b.request(0, PAGE, 7);
    b.found(MILLISECOND, INVENTORY);
    b.answer(
        2 * MILLISECOND,
        RECOMMENDATIONS,
        CallResult::Failed(CallError::Error),
    );
    let (_, body, served) = b.reply(first);
    assert_eq!(*served, Served::Fallback);
    assert_eq!(body["data"]["recommendations"], "popular");
    assert_eq!(body["_meta"]["degraded"], json!(["recommendations"]));
    assert_eq!(body["_meta"]["partial"], false);
    assert_eq!(
        body["_meta"]["served"],
        json!({"inventory": "fresh", "recommendations": "fallback"})
    );
    // Once a read filled the cache, a failure is served from it, before the static.
    let second = b.request(SECOND, PAGE, 8);
    b.found(SECOND, INVENTORY);
    b.found(SECOND, RECOMMENDATIONS);
    let third = b.request(2 * SECOND, PAGE, 8);
    b.found(2 * SECOND, INVENTORY);
    b.answer(
        2 * SECOND,
        RECOMMENDATIONS,
        CallResult::Failed(CallError::Timeout),
    );
    assert_eq!(b.reply(second).2, Served::Fresh);
    let (_, body, served) = b.reply(third);
    assert_eq!(*served, Served::Cached { age: SECOND });
    assert_eq!(body["data"]["recommendations"]["id"], 8);
    assert_eq!(body["_meta"]["degraded"], json!(["recommendations"]));
}

#[test]
fn a_missing_required_part_is_error_11_naming_it() {
    let mut b = Bench::new(true);
    let to = b.request(0, PAGE, 7);
    b.fail(MILLISECOND, INVENTORY, CallError::Unavailable);
    let (_, body, served) = b.reply(to);
    assert_eq!(*served, Served::Error { code: 11 });
    assert_eq!(body["code"], 11);
    assert_eq!(
        body["text"],
        "product_page: required part `inventory` is missing: call failed (unavailable)"
    );
    // The seq stopped: recommendations was never called.
    assert!(b.calls.is_empty());
}

#[test]
fn the_deadline_cuts_a_slow_optional_part_and_the_reply_says_so() {
    let mut b = Bench::new(true);
    let to = b.request(0, PAGE, 7);
    assert_eq!(
        b.timers,
        vec![(800 * MILLISECOND, Timer::Deadline { run: 0 })]
    );
    b.found(700 * MILLISECOND, INVENTORY);
    // What is left of the budget bounds the call's timeout.
    assert_eq!(b.calls[0].deadline, 800 * MILLISECOND);
    b.fire_timers(800 * MILLISECOND);
    let (_, body, served) = b.reply(to);
    assert_eq!(*served, Served::Fallback);
    assert_eq!(body["data"]["recommendations"], "popular");
    assert_eq!(body["_meta"]["deadline_passed"], true);
    // The late answer changes nothing, and no second reply goes out.
    b.found(900 * MILLISECOND, RECOMMENDATIONS);
    assert_eq!(b.replies.len(), 1);
}

#[test]
fn a_mode_that_disables_the_feature_skips_the_call() {
    let mut b = Bench::new(true);
    b.node.handle(
        0,
        RequestId(100),
        None,
        Request::SetMode {
            mode: Some(crate::node::ModeRequest::Manual(Mode::Degraded)),
            cpu_usage: None,
        },
    );
    b.collect();
    let to = b.request(0, PAGE, 7);
    b.found(MILLISECOND, INVENTORY);
    assert!(b.calls.is_empty(), "recommendations is not called");
    let (_, body, served) = b.reply(to);
    assert_eq!(*served, Served::Fallback);
    assert_eq!(body["data"]["recommendations"], "popular");
}

#[test]
fn an_omitted_part_makes_the_reply_partial() {
    // The same page, but the chain ends in omit and the cache is empty.
    let mut spec_service = (*shop(Some(declared_queue()))).clone();
    let crate::model::service::Step::Call(call) = &mut spec_service.endpoints[0].plan.steps[2]
    else {
        panic!("step 2 is the recommendations call");
    };
    call.leaf.fallback = vec![crate::model::service::Fallback::Omit];
    let node = Node::with_service(
        Arc::new(spec_service),
        &modes(),
        ChaCha8Rng::seed_from_u64(1),
    )
    .expect("valid");
    let mut b = Bench {
        node,
        next: 0,
        calls: Vec::new(),
        replies: Vec::new(),
        timers: Vec::new(),
        retries: Vec::new(),
    };
    let to = b.request(0, PAGE, 7);
    b.found(MILLISECOND, INVENTORY);
    b.answer(
        MILLISECOND,
        RECOMMENDATIONS,
        CallResult::Failed(CallError::Error),
    );
    let (_, body, served) = b.reply(to);
    assert_eq!(*served, Served::Partial);
    assert_eq!(body["_meta"]["partial"], true);
    assert_eq!(body["_meta"]["missing"], json!(["recommendations"]));
    assert!(body["data"].get("recommendations").is_none());
}

#[test]
fn a_write_the_dependency_cannot_take_is_queued_or_an_error_without_a_queue() {
    for queue in [true, false] {
        let mut b = Bench::new(queue);
        let to = b.request(0, CHECKOUT, 3);
        // A par: both calls start at once.
        assert_eq!(b.calls.len(), 2);
        b.found(MILLISECOND, INVENTORY);
        b.answer(
            2 * MILLISECOND,
            PAYMENTS,
            CallResult::Failed(CallError::Unavailable),
        );
        let (_, body, served) = b.reply(to);
        if queue {
            assert_eq!(*served, Served::Queued { depth: 1 });
            assert_eq!(body["data"]["payments"], json!({"id": 3, "queued": true}));
            assert_eq!(body["_meta"]["degraded"], json!(["payments"]));
        } else {
            assert_eq!(*served, Served::Error { code: 11 });
            assert_eq!(
                body["text"],
                "checkout: required part `payments` is missing: call failed (unavailable)"
            );
        }
    }
}

#[test]
fn an_in_order_queue_holds_a_new_write_behind_the_queued_ones() {
    for in_order in [false, true] {
        let mut b = Bench::with_payments_queue(Some(QueueConfig {
            in_order,
            ..QueueConfig::default()
        }));
        // One charge fails and is queued for a backoff step.
        let first = b.request(0, CHECKOUT, 3);
        b.found(MILLISECOND, INVENTORY);
        b.answer(
            2 * MILLISECOND,
            PAYMENTS,
            CallResult::Failed(CallError::Unavailable),
        );
        assert_eq!(b.reply(first).2, Served::Queued { depth: 1 });
        // The breaker is still closed: the next charge is sent, unless the queue
        // keeps writes in order, and then it waits behind the first.
        let second = b.request(3 * MILLISECOND, CHECKOUT, 4);
        let charges = b.calls.iter().filter(|c| c.dependency == PAYMENTS).count();
        b.found(4 * MILLISECOND, INVENTORY);
        if in_order {
            assert_eq!(charges, 0);
            assert_eq!(b.reply(second).2, Served::Queued { depth: 2 });
        } else {
            assert_eq!(charges, 1);
            assert!(
                b.replies.iter().all(|r| r.0 != second),
                "waits for its charge"
            );
        }
    }
}

/// The test shop with inventory's failed calls retried by `retry`.
fn shop_retrying_inventory(retry: RetryConfig) -> Bench {
    let mut service = (*shop(None)).clone();
    service.dependencies[INVENTORY].engine.retry = Some(retry);
    Bench::with_service(Arc::new(service))
}

fn retry_after(backoff: Time) -> RetryConfig {
    RetryConfig {
        max_attempts: 3,
        backoff_base: backoff,
        backoff_max: backoff,
        jitter: Jitter::None,
        ..RetryConfig::default()
    }
}

impl Bench {
    /// Fails the oldest outstanding call to `dependency` with `error`.
    fn fail(&mut self, now: Time, dependency: usize, error: CallError) {
        self.answer(now, dependency, CallResult::Failed(error));
    }

    /// The outstanding call to `dependency`.
    fn call_to(&self, dependency: usize) -> &Call {
        self.calls
            .iter()
            .find(|c| c.dependency == dependency)
            .unwrap_or_else(|| panic!("no call to dependency {dependency}"))
    }
}

fn written(key: u64) -> CallResult {
    CallResult::Written(Record {
        id: key,
        name: Name::Record(key),
    })
}

#[test]
fn a_failed_call_is_retried_after_its_backoff_and_the_reply_is_fresh() {
    let mut b = shop_retrying_inventory(retry_after(100 * MILLISECOND));
    let to = b.request(0, CHECKOUT, 3);
    assert_eq!(b.call_to(INVENTORY).kind, CallKind::Client);
    b.fail(10 * MILLISECOND, INVENTORY, CallError::Error);
    assert_eq!(
        b.retries,
        [RetryEvent::Scheduled {
            at: 10 * MILLISECOND,
            attempt: 1,
            backoff: 100 * MILLISECOND
        }]
    );
    assert!(
        b.calls.iter().all(|c| c.dependency != INVENTORY),
        "waits its backoff"
    );
    assert!(b.node.is_busy(), "a waiting retry is work left");
    assert_eq!(b.timers.last().unwrap().0, 110 * MILLISECOND);
    b.fire_timers(110 * MILLISECOND);
    let retry = b.call_to(INVENTORY);
    assert_eq!(retry.kind, CallKind::Retry);
    assert_eq!(
        retry.deadline,
        110 * MILLISECOND + SECOND,
        "a fresh timeout"
    );
    b.found(120 * MILLISECOND, INVENTORY);
    b.answer(130 * MILLISECOND, PAYMENTS, written(3));
    assert_eq!(b.reply(to).2, Served::Fresh);
    assert_eq!(b.node.retry_stats(INVENTORY).unwrap().scheduled, 1);
}

#[test]
fn a_retry_never_outlives_the_request_deadline() {
    // The product page has 800 ms. A failure at 200 ms is retried at 700 ms with
    // what is left of the budget; one at 400 ms would retry at 900 ms: denied.
    let mut b = shop_retrying_inventory(retry_after(500 * MILLISECOND));
    let to = b.request(0, PAGE, 3);
    b.fail(200 * MILLISECOND, INVENTORY, CallError::Error);
    b.fire_timers(700 * MILLISECOND);
    let retry = b.call_to(INVENTORY);
    assert_eq!(
        retry.deadline,
        800 * MILLISECOND,
        "cut at the request's deadline"
    );
    b.fail(750 * MILLISECOND, INVENTORY, CallError::Error);
    assert_eq!(
        b.retries.last(),
        Some(&RetryEvent::Denied {
            at: 750 * MILLISECOND,
            attempt: 2,
            reason: Denied::Deadline
        })
    );
    let (_, body, _) = b.reply(to);
    assert_eq!(body["code"], 11, "inventory is required: {body}");

    let mut b = shop_retrying_inventory(retry_after(500 * MILLISECOND));
    let to = b.request(0, PAGE, 3);
    b.fail(400 * MILLISECOND, INVENTORY, CallError::Error);
    assert!(matches!(
        b.retries[..],
        [RetryEvent::Denied {
            reason: Denied::Deadline,
            ..
        }]
    ));
    assert_eq!(b.reply(to).1["code"], 11);
}

#[test]
fn a_spent_budget_denies_the_retry_and_says_so() {
    let mut retry = retry_after(MILLISECOND);
    retry.budget = Some(BudgetConfig {
        ratio: 0.0,
        min_per_sec: 0,
        window: SECOND,
    });
    let mut b = shop_retrying_inventory(retry);
    let to = b.request(0, CHECKOUT, 3);
    b.fail(MILLISECOND, INVENTORY, CallError::Timeout);
    assert_eq!(
        b.retries,
        [RetryEvent::Denied {
            at: MILLISECOND,
            attempt: 1,
            reason: Denied::Budget
        }]
    );
    b.answer(2 * MILLISECOND, PAYMENTS, written(3));
    assert_eq!(b.reply(to).1["code"], 11);
    assert_eq!(b.node.retry_stats(INVENTORY).unwrap().denied_budget, 1);
}

#[test]
fn a_retry_whose_request_ended_during_its_backoff_is_not_made_and_says_so() {
    let mut b = shop_retrying_inventory(retry_after(100 * MILLISECOND));
    let to = b.request(0, CHECKOUT, 3);
    b.fail(10 * MILLISECOND, INVENTORY, CallError::Error);
    // Payments has no queue: its failure fails the checkout while inventory's retry
    // waits.
    b.fail(20 * MILLISECOND, PAYMENTS, CallError::Unavailable);
    assert_eq!(b.reply(to).1["code"], 11);
    b.fire_timers(110 * MILLISECOND);
    assert!(b.calls.is_empty(), "no retry for an answered request");
    assert_eq!(
        b.retries.last(),
        Some(&RetryEvent::Denied {
            at: 110 * MILLISECOND,
            attempt: 1,
            reason: Denied::RequestEnded
        })
    );
    assert_eq!(b.node.retry_stats(INVENTORY).unwrap().request_ended, 1);
    assert!(!b.node.is_busy());
}

#[test]
fn the_pipeline_order_decides_what_the_breaker_sees() {
    for pipeline in [Pipeline::RetryThenBreaker, Pipeline::BreakerThenRetry] {
        let mut service = (*shop(None)).clone();
        let inventory = &mut service.dependencies[INVENTORY].engine;
        inventory.retry = Some(retry_after(10 * MILLISECOND));
        inventory.pipeline = pipeline;
        let mut b = Bench::with_service(Arc::new(service));
        let to = b.request(0, CHECKOUT, 3);
        // Two failed attempts, then a success on the third.
        for k in 1..=2 {
            let at = k * 20 * MILLISECOND;
            b.fail(at, INVENTORY, CallError::Error);
            b.fire_timers(at + 10 * MILLISECOND);
        }
        b.found(70 * MILLISECOND, INVENTORY);
        b.answer(80 * MILLISECOND, PAYMENTS, written(3));
        assert_eq!(b.reply(to).2, Served::Fresh);
        let stats = b.node.breaker(INVENTORY).stats();
        let seen = (stats.admitted, stats.failures, stats.successes);
        match pipeline {
            // Each attempt took a permit and was counted.
            Pipeline::RetryThenBreaker => assert_eq!(seen, (3, 2, 1)),
            // One permit for the call; only its last attempt's outcome counted.
            Pipeline::BreakerThenRetry => assert_eq!(seen, (1, 0, 1)),
        }
    }
}

#[test]
fn seed_requests_are_refused_by_a_declared_node() {
    let mut b = Bench::new(true);
    let request = Request::Read {
        resource: Resource::Users,
        key: 1,
        fault: Default::default(),
    };
    b.node.handle(0, RequestId(9), Some(9), request);
    b.collect();
    let (_, body, served) = b.reply(RequestId(9));
    assert_eq!(*served, Served::Error { code: 10 });
    assert_eq!(
        body["text"],
        "get_user is a request of the seed service; this node serves shop"
    );
}

/// Whatever the order and kind of the answers, and wherever the deadlines fall,
/// every request gets exactly one reply and the node is left with nothing
/// outstanding.
#[test]
fn every_request_gets_exactly_one_reply() {
    for seed in 0..40 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut b = Bench::new(rng.random_bool(0.5));
        let mut now = 0;
        let mut sent = Vec::new();
        for _ in 0..200 {
            now += rng.random_range(0..50 * MILLISECOND);
            b.fire_timers(now);
            match rng.random_range(0..4) {
                0 | 1 => {
                    let endpoint = if rng.random_bool(0.5) { PAGE } else { CHECKOUT };
                    sent.push(b.request(now, endpoint, rng.random_range(1..=100)));
                }
                _ if !b.calls.is_empty() => {
                    let i = rng.random_range(0..b.calls.len());
                    let call = b.calls.remove(i);
                    let result = match (rng.random_range(0..4), &call.op) {
                        (0, _) => CallResult::Failed(CallError::Error),
                        (1, _) => CallResult::Failed(CallError::Timeout),
                        (_, Op::Read { key }) => CallResult::Found(Record {
                            id: *key,
                            name: Name::Record(*key),
                        }),
                        (_, Op::Write { key, name, .. }) => CallResult::Written(Record {
                            id: *key,
                            name: name.clone(),
                        }),
                    };
                    b.node.on_call_result(now, call.id, result);
                    b.collect();
                }
                _ => {}
            }
        }
        // Drain: every call fails, every deadline fires.
        while let Some(call) = b.calls.pop() {
            now += MILLISECOND;
            b.node
                .on_call_result(now, call.id, CallResult::Failed(CallError::Timeout));
            b.collect();
        }
        b.fire_timers(Time::MAX);
        for to in sent {
            b.reply(to);
        }
        let declared = b.node.declared.as_ref().expect("declared");
        assert!(declared.runs.is_empty(), "seed {seed}: runs left over");
    }
}

/// The shop with admission control: two slots, the last kept for critical requests
/// (checkout), and room for one request to wait 50 ms.
fn shop_with_admission() -> Arc<Service> {
    let mut service = (*shop(Some(declared_queue()))).clone();
    service.admission = Some(crate::engine::admission::AdmissionConfig {
        max_in_flight: 2,
        reserve_critical: 1,
        reserve_important: 0,
        queue: 1,
        max_wait: 50 * MILLISECOND,
    });
    Arc::new(service)
}

fn error_text(b: &Bench, to: RequestId) -> String {
    let (_, body, served) = b.reply(to);
    assert_eq!(*served, Served::Shed, "{body}");
    assert_eq!(body["code"], 11, "{body}");
    body["text"].as_str().expect("a text").to_owned()
}

#[test]
fn admission_sheds_the_lower_tier_first_and_keeps_the_last_slot_for_critical() {
    let mut b = Bench::with_service(shop_with_admission());
    let a = b.request(0, PAGE, 1);
    assert_eq!(
        b.calls.len(),
        1,
        "the first page is admitted and calls inventory"
    );
    // The second page finds the one slot important requests may take in use: it waits.
    let waiting = b.request(MILLISECOND, PAGE, 2);
    assert_eq!(b.calls.len(), 1);
    assert_eq!(b.timers.last(), Some(&(51 * MILLISECOND, Timer::Admission)));
    // The third has no room to wait.
    let full = b.request(2 * MILLISECOND, PAGE, 3);
    let text = error_text(&b, full);
    assert!(
        text.starts_with("product_page: shed (important tier): the node is at its limit"),
        "{text}"
    );
    // A checkout takes the slot kept for critical requests.
    let checkout = b.request(3 * MILLISECOND, CHECKOUT, 4);
    assert_eq!(
        b.calls.len(),
        3,
        "checkout reads inventory and writes payments"
    );
    // A second checkout finds every slot taken, and takes the waiting page's place.
    let second = b.request(4 * MILLISECOND, CHECKOUT, 5);
    let text = error_text(&b, waiting);
    assert!(
        text.contains("waited 3ms for a slot and a request of a higher tier took its place"),
        "{text}"
    );
    // No slot comes free within 50 ms: it is shed when its wait ends, not before.
    b.fire_timers(53 * MILLISECOND);
    assert!(b.replies.iter().all(|r| r.0 != second));
    b.fire_timers(54 * MILLISECOND);
    let text = error_text(&b, second);
    assert!(
        text.contains("waited 50ms for a slot and none came free"),
        "{text}"
    );
    // The first page and the checkout finish normally.
    b.found(60 * MILLISECOND, INVENTORY);
    b.found(61 * MILLISECOND, RECOMMENDATIONS);
    assert_eq!(b.reply(a).2, Served::Fresh);
    b.found(62 * MILLISECOND, INVENTORY);
    b.answer(63 * MILLISECOND, PAYMENTS, written(4));
    assert_eq!(b.reply(checkout).2, Served::Fresh);
    let stats = b.node.admission_stats().expect("admission is on");
    assert_eq!(stats.admitted, [1, 1, 0]);
    assert_eq!(stats.shed_full, [0, 1, 0]);
    assert_eq!(stats.shed_displaced, [0, 1, 0]);
    assert_eq!(stats.shed_expired, [1, 0, 0]);
}

#[test]
fn a_freed_slot_starts_the_waiting_request_with_its_deadline_counted_from_arrival() {
    let mut b = Bench::with_service(shop_with_admission());
    let first = b.request(0, PAGE, 1);
    let waiting = b.request(10 * MILLISECOND, PAGE, 2);
    assert_eq!(b.calls.len(), 1);
    b.found(40 * MILLISECOND, INVENTORY);
    b.found(45 * MILLISECOND, RECOMMENDATIONS);
    assert_eq!(b.reply(first).2, Served::Fresh);
    // The reply freed the slot: the waiting page starts at once, and its deadline is
    // 800 ms after it arrived, not after it started.
    assert_eq!(b.calls.len(), 1, "{:?}", b.calls);
    let deadlines: Vec<Time> = b
        .timers
        .iter()
        .filter(|t| matches!(t.1, Timer::Deadline { .. }))
        .map(|t| t.0)
        .collect();
    assert_eq!(deadlines, [800 * MILLISECOND, 810 * MILLISECOND]);
    // Its stock read's timeout is cut at that deadline, not a second after it starts.
    assert_eq!(b.calls[0].deadline, 810 * MILLISECOND);
    b.found(50 * MILLISECOND, INVENTORY);
    b.found(55 * MILLISECOND, RECOMMENDATIONS);
    assert_eq!(b.reply(waiting).2, Served::Fresh);
    let stats = b.node.admission_stats().expect("admission is on");
    assert_eq!(stats.admitted_after_wait, [0, 1, 0]);
    assert_eq!(stats.peak_waiting, 1);
}

/// The shop with a bulkhead of one recommendations call, which one more may wait
/// 20 ms for.
fn shop_with_bulkhead(counts_as_failure: bool) -> Arc<Service> {
    let mut service = (*shop(Some(declared_queue()))).clone();
    service.dependencies[RECOMMENDATIONS].engine.bulkhead =
        Some(crate::engine::bulkhead::BulkheadConfig {
            max_concurrent_calls: 1,
            max_wait: 20 * MILLISECOND,
            max_waiting: 1,
            counts_as_failure,
        });
    Arc::new(service)
}

/// A page whose stock read is answered at `now`, so that it asks for recommendations.
fn page_at_recommendations(b: &mut Bench, now: Time, key: u64) -> RequestId {
    let to = b.request(now, PAGE, key);
    b.found(now, INVENTORY);
    to
}

#[test]
fn a_full_bulkhead_refuses_at_once_then_hands_its_slot_to_the_waiter() {
    let mut b = Bench::with_service(shop_with_bulkhead(false));
    let first = page_at_recommendations(&mut b, 0, 1);
    let waiter = page_at_recommendations(&mut b, 2 * MILLISECOND, 2);
    assert_eq!(
        b.timers.last(),
        Some(&(22 * MILLISECOND, Timer::Bulkhead { dependency: 2 }))
    );
    // One call in flight, one waiting: the third is refused and takes its fallback
    // chain (an empty cache, then the canned list) at once.
    let refused = page_at_recommendations(&mut b, 4 * MILLISECOND, 3);
    let (_, body, served) = b.reply(refused);
    assert_eq!(*served, Served::Fallback, "{body}");
    let recs: Vec<_> = b
        .calls
        .iter()
        .filter(|c| c.dependency == RECOMMENDATIONS)
        .collect();
    assert_eq!(recs.len(), 1, "only the first page's call is made");
    // The first call's answer hands its slot to the waiting page's call.
    b.found(10 * MILLISECOND, RECOMMENDATIONS);
    assert_eq!(b.reply(first).2, Served::Fresh);
    assert!(b.calls.iter().any(|c| c.dependency == RECOMMENDATIONS));
    b.found(12 * MILLISECOND, RECOMMENDATIONS);
    assert_eq!(b.reply(waiter).2, Served::Fresh);
    // The refusal was not counted by the breaker.
    let breaker = b.node.breaker(RECOMMENDATIONS).stats();
    assert_eq!((breaker.failures, breaker.released), (0, 1));
    let (_, stats) = b.node.bulkhead(RECOMMENDATIONS).expect("a bulkhead");
    assert_eq!(
        (stats.entered, stats.entered_after_wait, stats.rejected_full),
        (1, 1, 1)
    );
}

#[test]
fn a_waiting_call_is_refused_when_its_wait_ends_and_may_count_as_a_failure() {
    let mut b = Bench::with_service(shop_with_bulkhead(true));
    let _first = page_at_recommendations(&mut b, 0, 1);
    let waiter = page_at_recommendations(&mut b, 2 * MILLISECOND, 2);
    b.fire_timers(21 * MILLISECOND);
    assert!(
        b.replies.iter().all(|r| r.0 != waiter),
        "not before its wait ends"
    );
    b.fire_timers(22 * MILLISECOND);
    let (_, body, served) = b.reply(waiter);
    assert_eq!(*served, Served::Fallback, "{body}");
    assert_eq!(
        body["_meta"]["served"]["recommendations"], "fallback",
        "{body}"
    );
    let breaker = b.node.breaker(RECOMMENDATIONS).stats();
    assert_eq!((breaker.failures, breaker.released), (1, 0));
    let (_, stats) = b.node.bulkhead(RECOMMENDATIONS).expect("a bulkhead");
    assert_eq!(stats.rejected_expired, 1);
}

#[test]
fn the_measured_cpu_drives_the_modes_and_slows_the_replies() {
    let mut service = (*shop(Some(declared_queue()))).clone();
    service.compute = Some(crate::engine::compute::ComputeConfig {
        cores: 1,
        window: SECOND,
        slowdown: true,
    });
    service.endpoints[PAGE.index()].cpu = 100 * MILLISECOND;
    let mut b = Bench::with_service(Arc::new(service));
    // Eight pages at once: 800 ms of CPU within a second on one core, 80%.
    let first = b.request(0, PAGE, 1);
    for key in 2..=8 {
        b.request(0, PAGE, key);
    }
    assert_eq!(b.timers[0], (100 * MILLISECOND, Timer::Cpu));
    // The first page's parts answer at 10 ms: its own 100 ms of CPU takes
    // 100 / (1 - 0.8) = 500 ms, so the reply is held until 510 ms.
    b.found(10 * MILLISECOND, INVENTORY);
    b.found(10 * MILLISECOND, RECOMMENDATIONS);
    assert!(
        b.replies.iter().all(|r| r.0 != first),
        "held while the CPU works"
    );
    // Sampled at 100 ms: 80% enters degraded mode (a curve's 5% on top).
    b.node.observe_cpu(50 * MILLISECOND, 5.0);
    b.fire_timers(100 * MILLISECOND);
    assert_eq!(b.node.modes().mode(), Mode::Degraded);
    assert!(
        b.timers.contains(&(200 * MILLISECOND, Timer::Cpu)),
        "the next sample is asked for"
    );
    b.fire_timers(509 * MILLISECOND);
    assert!(b.replies.iter().all(|r| r.0 != first));
    b.fire_timers(510 * MILLISECOND);
    assert_eq!(b.reply(first).2, Served::Fresh);
    let (_, stats) = b.node.compute().expect("compute is on");
    assert_eq!(stats.work, 800 * MILLISECOND);
    assert!((stats.peak - 80.0).abs() < 1e-9, "{}", stats.peak);
}

#[test]
fn a_step_may_cap_its_retries_below_its_dependency_policy() {
    let mut service = (*shop(None)).clone();
    service.dependencies[INVENTORY].engine.retry = Some(retry_after(100 * MILLISECOND));
    // The checkout's stock read (step 1, inside its `par`) is never retried; the
    // product page's read of the same dependency still is.
    let checkout = &mut service.endpoints[CHECKOUT.index()].plan.steps[1];
    match checkout {
        crate::model::service::Step::Call(call) => call.leaf.max_attempts = Some(1),
        other => panic!("step 1 of checkout is its stock read, not {other:?}"),
    }
    let mut b = Bench::with_service(Arc::new(service));
    let to = b.request(0, CHECKOUT, 3);
    b.fail(10 * MILLISECOND, INVENTORY, CallError::Error);
    assert!(b.retries.is_empty(), "capped: no retry, no event");
    b.answer(20 * MILLISECOND, PAYMENTS, written(3));
    assert!(matches!(b.reply(to).2, Served::Error { code: 11 }));
    b.request(30 * MILLISECOND, PAGE, 4);
    b.fail(40 * MILLISECOND, INVENTORY, CallError::Error);
    assert_eq!(b.retries.len(), 1, "the page's read is retried");
}

/// A profile service whose one dependency has a cache, a queue and read-your-writes
/// (30 s): `get_profile` reads it with the stale cache as its fallback,
/// `update_profile` writes it.
fn profiles_with_read_your_writes() -> Bench {
    let mut profiles = dep("profiles", true, Some(declared_queue()));
    profiles.engine.read_your_writes = Some(30 * SECOND);
    let spec = ServiceSpec {
        name: "profiles".to_owned(),
        dependencies: vec![profiles],
        key_spaces: vec![KeySpace {
            name: "user".to_owned(),
            keys: Keys::Uniform { n: 100 },
            records: Default::default(),
        }],
        admission: None,
        compute: None,
        features: vec![],
        endpoints: vec![
            EndpointSpec {
                name: "get_profile".to_owned(),
                key: Some("user".to_owned()),
                plan: vec![StepSpec::Call {
                    call: "profiles".to_owned(),
                    op: CallOp::Read,
                    key: None,
                    leaf: LeafSpec {
                        fallback: vec![FallbackSpec::Cache],
                        ..LeafSpec::default()
                    },
                }],
                ..EndpointSpec::default()
            },
            EndpointSpec {
                name: "update_profile".to_owned(),
                key: Some("user".to_owned()),
                plan: vec![StepSpec::call("profiles", CallOp::Write)],
                ..EndpointSpec::default()
            },
        ],
    };
    Bench::with_service(Arc::new(spec.build().expect("valid")))
}

#[test]
fn read_your_writes_serves_the_queued_write_instead_of_the_stale_cache_for_its_window() {
    const GET: EndpointId = EndpointId(0);
    const UPDATE: EndpointId = EndpointId(1);
    let mut b = profiles_with_read_your_writes();
    // The cache learns "Record 7"; then five failures open the breaker.
    b.request(0, GET, 7);
    b.found(0, 0);
    for i in 1..=5 {
        let to = b.request(i * MILLISECOND, GET, 7);
        b.fail(i * MILLISECOND, 0, CallError::Unavailable);
        assert_eq!(b.reply(to).1["data"]["profiles"]["name"], "Record 7");
    }
    assert_eq!(b.node.breaker(0).state(), BreakerState::Open);
    // The user's write is queued behind the open breaker...
    b.next += 1;
    let to = RequestId(b.next);
    let jane = Some(Name::from("Jane"));
    b.node
        .handle_endpoint(SECOND, to, Some(b.next), UPDATE, Some(7), jane);
    b.collect();
    assert_eq!(b.reply(to).2, Served::Queued { depth: 1 });
    // ... and the next read of the key returns it, marked, not the stale "Record 7".
    let read = b.request(2 * SECOND, GET, 7);
    let (_, body, served) = b.reply(read);
    assert_eq!(*served, Served::PendingWrite { age: SECOND });
    assert_eq!(body["data"]["profiles"], json!({"id": 7, "name": "Jane"}));
    assert_eq!(
        body["_meta"]["served"],
        json!({"profiles": "pending_write"})
    );
    assert_eq!(body["_meta"]["degraded"], json!(["profiles"]));
    // Another key is not affected.
    let other = b.request(2 * SECOND, GET, 8);
    assert_eq!(b.reply(other).2, Served::Error { code: 11 });
    // Past the window (30 s after the write was queued) the stale cache answers again.
    let late = b.request(31 * SECOND, GET, 7);
    if b.calls.iter().any(|c| c.dependency == 0) {
        // The breaker half-opened: its probe fails.
        b.fail(31 * SECOND, 0, CallError::Unavailable);
    }
    let (_, body, served) = b.reply(late);
    assert!(matches!(served, Served::Stale { .. }), "{served:?}");
    assert_eq!(body["data"]["profiles"]["name"], "Record 7");
    let (config, stats) = b.node.read_your_writes(0).expect("configured");
    assert_eq!(config.window, 30 * SECOND);
    assert_eq!(
        (stats.remembered, stats.served, stats.served_queued),
        (1, 1, 1)
    );
}

#[test]
fn a_retry_refused_by_the_bulkhead_still_reports_its_failure_to_a_breaker_outside() {
    let mut service = (*shop_with_bulkhead(false)).clone();
    let recs = &mut service.dependencies[RECOMMENDATIONS].engine;
    recs.bulkhead.as_mut().unwrap().max_wait = 0;
    recs.retry = Some(retry_after(10 * MILLISECOND));
    recs.pipeline = Pipeline::BreakerThenRetry;
    let mut b = Bench::with_service(Arc::new(service));
    let first = page_at_recommendations(&mut b, 0, 1);
    // A second page finds the one slot taken: refused, its permit given back.
    let second = page_at_recommendations(&mut b, MILLISECOND, 2);
    assert_eq!(b.reply(second).2, Served::Fallback);
    // The first page's call fails; with the breaker outside, it hears nothing yet.
    b.fail(20 * MILLISECOND, RECOMMENDATIONS, CallError::Error);
    assert_eq!(b.node.breaker(RECOMMENDATIONS).stats().failures, 0);
    // A third page takes the freed slot; the retry falls due and is refused.
    let _third = page_at_recommendations(&mut b, 25 * MILLISECOND, 3);
    b.fire_timers(30 * MILLISECOND);
    assert_eq!(b.reply(first).2, Served::Fallback);
    // The failed attempt reaches the breaker: it is the last the call made.
    let stats = b.node.breaker(RECOMMENDATIONS).stats();
    assert_eq!((stats.failures, stats.released), (1, 1));
}

#[test]
fn a_part_served_by_its_fallback_costs_its_fallback_cpu() {
    let mut service = (*shop(Some(declared_queue()))).clone();
    service.compute = Some(crate::engine::compute::ComputeConfig {
        cores: 1,
        window: SECOND,
        slowdown: false,
    });
    // The page's recommendations (step 2, after the seq and the stock read) cost
    // 50 ms to serve from their fallback chain.
    match &mut service.endpoints[PAGE.index()].plan.steps[2] {
        crate::model::service::Step::Call(call) => call.leaf.fallback_cpu = 50 * MILLISECOND,
        other => panic!("step 2 of the page is its recommendations, not {other:?}"),
    }
    let mut b = Bench::with_service(Arc::new(service));
    let fresh = page_at_recommendations(&mut b, 0, 1);
    b.found(10 * MILLISECOND, RECOMMENDATIONS);
    assert_eq!(
        b.reply(fresh).2,
        Served::Fresh,
        "a fresh part costs nothing"
    );
    let fallback = page_at_recommendations(&mut b, 20 * MILLISECOND, 2);
    b.fail(30 * MILLISECOND, RECOMMENDATIONS, CallError::Error);
    assert!(
        b.replies.iter().all(|r| r.0 != fallback),
        "held for its 50 ms"
    );
    b.fire_timers(80 * MILLISECOND);
    assert_eq!(b.reply(fallback).2, Served::Fallback);
    let (_, stats) = b.node.compute().expect("compute is on");
    assert_eq!(stats.work, 50 * MILLISECOND);
}

#[test]
fn a_timeout_outside_the_retry_bounds_the_whole_call() {
    let mut service = (*shop(None)).clone();
    let inventory = &mut service.dependencies[INVENTORY].engine;
    inventory.retry = Some(retry_after(100 * MILLISECOND));
    inventory.timeout_scope = crate::engine::retry::TimeoutScope::WholeCall;
    let mut b = Bench::with_service(Arc::new(service));
    b.request(0, CHECKOUT, 3);
    assert_eq!(b.call_to(INVENTORY).deadline, SECOND);
    b.fail(10 * MILLISECOND, INVENTORY, CallError::Error);
    b.fire_timers(110 * MILLISECOND);
    // The retry has what is left of the call's one second, not a second of its own.
    assert_eq!(b.call_to(INVENTORY).deadline, SECOND);
    // A failure at 950 ms would retry at 1.05 s, past the call's end: denied.
    b.fail(950 * MILLISECOND, INVENTORY, CallError::Error);
    assert_eq!(
        b.retries.last(),
        Some(&RetryEvent::Denied {
            at: 950 * MILLISECOND,
            attempt: 2,
            reason: Denied::Deadline
        })
    );
}
