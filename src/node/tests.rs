//! Unit tests of the sans-IO [`Node`], driven with explicit times.
//!
//! The [`Harness`] plays the driver: it feeds requests (written as wire bodies, so the
//! tests read like the protocol), answers calls from a fake backend (healthy, down, or
//! holding calls for the test to answer itself), enforces call deadlines, fires timers in
//! time order, and after every step checks the invariants every driver relies on: writes
//! are conserved, each request gets at most one reply, every breaker transition is
//! reported as an event (in a continuous chain) before any reply that shows its state.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::*;
use crate::engine::breaker::{BreakerReason, BreakerState, TripPolicy};
use crate::engine::cache::{CacheEvent, StaleReason};
use crate::engine::modes::{Mode, ModeReason};
use crate::engine::queue::QueueEvent;
use crate::engine::ryw::{RywEvent, WriteState};
use crate::engine::{Span, Time, MILLISECOND, SECOND};

/// Timers and deadlines one `advance` may fire before the harness calls it a busy loop.
const MAX_WAKES_PER_ADVANCE: usize = 20_000;

/// How the fake backend treats calls to one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// Answers at once from its store (a call with `force_down` fails as unavailable).
    Up,
    /// Fails every call at once as unavailable.
    Down,
    /// Keeps calls for the test to answer (or for their deadline to pass).
    Hold,
}

struct Harness {
    node: Node,
    stores: [Store; 2],
    backend: [Backend; 2],
    /// Calls kept by [`Backend::Hold`] and not answered yet, in issue order.
    held: Vec<Call>,
    /// Every call the node made, in order.
    calls: Vec<Call>,
    timers: BTreeMap<(Time, u64), Timer>,
    timer_seq: u64,
    /// Every effect, in the order the node produced them.
    log: Vec<Effect>,
    /// How many effects of `log` the invariant checker has seen.
    checked: usize,
    /// Breaker states as told by the events so far (everything starts closed).
    told: [BreakerState; 2],
    replies: BTreeMap<RequestId, usize>,
    next_request: u64,
    now: Time,
    /// Each dependency's call timeout, to check the deadlines calls carry.
    timeouts: [Span; 2],
}

impl Harness {
    fn new() -> Self {
        Self::with_config(NodeConfig::default())
    }

    fn with_config(config: NodeConfig) -> Self {
        let data = DataSet::default();
        let node = Node::new(&config, data.warm_records(), ChaCha8Rng::seed_from_u64(1))
            .expect("test configurations are valid");
        Harness {
            node,
            stores: Resource::ALL.map(|r| Store::new(r, data.collection(r))),
            backend: [Backend::Up; 2],
            held: Vec::new(),
            calls: Vec::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            log: Vec::new(),
            checked: 0,
            told: [BreakerState::Closed; 2],
            replies: BTreeMap::new(),
            next_request: 0,
            now: 0,
            timeouts: [
                config.dependencies[0].timeout,
                config.dependencies[1].timeout,
            ],
        }
    }

    fn at(&mut self, now: Time) {
        assert!(now >= self.now, "the harness never goes back in time");
        self.now = now;
    }

    /// Sends a request body at `now`; returns its id and every effect of this step.
    fn send(&mut self, now: Time, body: Value) -> (RequestId, Vec<Effect>) {
        self.at(now);
        let parsed = parse_body(&body);
        let request = parsed.request.expect("test requests are valid");
        let to = RequestId(self.next_request);
        self.next_request += 1;
        let start = self.log.len();
        self.node.handle(now, to, parsed.msg_id, request);
        self.pump(now);
        (to, self.log[start..].to_vec())
    }

    /// Sends a request that must be answered in this step; returns its reply as JSON and
    /// how it was served.
    fn ask(&mut self, now: Time, body: Value) -> (Value, Served) {
        let (to, effects) = self.send(now, body);
        reply_of(&effects, to).expect("the request is answered at once")
    }

    /// Answers call `id` at `now`; returns the effects of this step.
    fn answer(&mut self, now: Time, id: CallId, result: CallResult) -> Vec<Effect> {
        self.at(now);
        self.held.retain(|c| c.id != id);
        let start = self.log.len();
        self.node.on_call_result(now, id, result);
        self.pump(now);
        self.log[start..].to_vec()
    }

    /// Moves time to `to`, firing timers and call deadlines in time order.
    fn advance(&mut self, to: Time) -> Vec<Effect> {
        let start = self.log.len();
        let mut fired = 0;
        loop {
            let timer = self.timers.keys().next().map(|&(at, _)| at);
            let deadline = self.held.iter().map(|c| c.deadline).min();
            let next = match (timer, deadline) {
                (Some(t), Some(d)) => t.min(d),
                (t, d) => match t.or(d) {
                    Some(x) => x,
                    None => break,
                },
            };
            if next > to {
                break;
            }
            fired += 1;
            assert!(
                fired <= MAX_WAKES_PER_ADVANCE,
                "more than {MAX_WAKES_PER_ADVANCE} wakes between {} and {to}: the node is busy-looping \
                 (next wake at {next})",
                self.now
            );
            self.at(next.max(self.now));
            let now = self.now;
            if deadline == Some(next) {
                let index = self.held.iter().position(|c| c.deadline == next).unwrap();
                let call = self.held.remove(index);
                self.node
                    .on_call_result(now, call.id, CallResult::Failed(CallError::Timeout));
            } else {
                let (_, timer) = self.timers.pop_first().unwrap();
                self.node.on_timer(now, timer);
            }
            self.pump(now);
        }
        self.at(to);
        self.log[start..].to_vec()
    }

    /// Carries out the node's effects until it has none left.
    fn pump(&mut self, now: Time) {
        loop {
            let effects: Vec<Effect> = self.node.drain_effects().collect();
            if effects.is_empty() {
                break;
            }
            let mut answers = Vec::new();
            for effect in &effects {
                match effect {
                    Effect::Call(call) => {
                        assert_eq!(call.deadline, now + self.timeouts[call.dependency]);
                        self.calls.push(call.clone());
                        match self.backend[call.dependency] {
                            Backend::Hold => self.held.push(call.clone()),
                            Backend::Down => {
                                answers.push((call.id, CallResult::Failed(CallError::Unavailable)))
                            }
                            Backend::Up if call.force_down => {
                                answers.push((call.id, CallResult::Failed(CallError::Unavailable)))
                            }
                            Backend::Up => answers.push((call.id, self.execute(call))),
                        }
                    }
                    Effect::Timer { at, timer } => {
                        assert!(
                            *at > now,
                            "a wake at {at} asked for at {now} is not in the future"
                        );
                        self.timers.insert((*at, self.timer_seq), *timer);
                        self.timer_seq += 1;
                    }
                    Effect::Reply { .. } | Effect::Event(_) => {}
                }
            }
            self.log.extend(effects);
            self.check();
            for (id, result) in answers {
                self.node.on_call_result(now, id, result);
            }
        }
        self.check();
        for (index, told) in self.told.iter().enumerate() {
            assert_eq!(
                self.node.breaker(index).state(),
                *told,
                "breaker {index} changed state without an event"
            );
        }
    }

    fn execute(&mut self, call: &Call) -> CallResult {
        self.stores[call.dependency].execute(&call.op)
    }

    /// The invariants, over the effects not checked yet.
    fn check(&mut self) {
        for effect in &self.log[self.checked..] {
            match effect {
                Effect::Event(NodeEvent::Breaker { dependency, event }) => {
                    let index = dependency_index(dependency);
                    assert_eq!(
                        event.from, self.told[index],
                        "{dependency} breaker event does not follow the last one: {event:?}"
                    );
                    self.told[index] = event.to;
                }
                Effect::Reply { to, body, .. } => {
                    let count = self.replies.entry(*to).or_default();
                    *count += 1;
                    assert_eq!(*count, 1, "request {to:?} answered twice");
                    if let ReplyBody::UserResponse { circuit_state, .. } = body {
                        assert_eq!(
                            *circuit_state,
                            self.told[0].as_str(),
                            "a reply shows a breaker state no event has announced"
                        );
                    }
                }
                _ => {}
            }
        }
        self.checked = self.log.len();
        for index in 0..2 {
            self.node
                .queue(index)
                .check_conservation()
                .unwrap_or_else(|e| panic!("dependency {index}: {e}"));
        }
    }

    /// The instant the users breaker last opened until.
    fn open_until(&self, dependency: &str) -> Time {
        self.log
            .iter()
            .rev()
            .find_map(|e| match e {
                Effect::Event(NodeEvent::Breaker {
                    dependency: d,
                    event,
                }) if *d == dependency && event.to == BreakerState::Open => event.open_until,
                _ => None,
            })
            .expect("the breaker opened on a timer")
    }

    fn held_call(&self, index: usize) -> Call {
        self.held[index].clone()
    }
}

fn dependency_index(name: &str) -> usize {
    match name {
        "users" => 0,
        "products" => 1,
        other => panic!("unknown dependency {other}"),
    }
}

/// The reply to `to` among `effects`, as JSON, and how it was served.
fn reply_of(effects: &[Effect], to: RequestId) -> Option<(Value, Served)> {
    let mut found = effects.iter().filter_map(|e| match e {
        Effect::Reply {
            to: t,
            body,
            served,
        } if *t == to => Some((serde_json::to_value(body).unwrap(), *served)),
        _ => None,
    });
    let first = found.next();
    assert!(found.next().is_none(), "two replies to {to:?}");
    first
}

fn calls_of(effects: &[Effect]) -> Vec<Call> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Call(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn breaker_events(effects: &[Effect]) -> Vec<(BreakerState, BreakerState, BreakerReason)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(NodeEvent::Breaker { event, .. }) => {
                Some((event.from, event.to, event.reason.clone()))
            }
            _ => None,
        })
        .collect()
}

fn position(effects: &[Effect], what: impl Fn(&Effect) -> bool) -> usize {
    effects.iter().position(what).expect("the effect is there")
}

fn is_reply(e: &Effect) -> bool {
    matches!(e, Effect::Reply { .. })
}

fn record(id: u64, name: &str) -> Record {
    Record {
        id,
        name: name.into(),
    }
}

const SEED_1: &str = r#"{"type": "user_response", "in_reply_to": 1, "user": {"id": 123, "name": "John Doe"}, "circuit_state": "open", "from_cache": true}"#;
const SEED_2: &str = r#"{"type": "product_response", "in_reply_to": 1, "product": {"id": 123, "name": "Product"}, "_cached": true}"#;

fn seed(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

// ----- the seed task's exchanges -----

#[test]
fn seed_circuit_breaker_opens_after_failures() {
    let mut h = Harness::new();
    let (reply, served) = h.ask(
        0,
        json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":6}),
    );
    assert_eq!(reply, seed(SEED_1));
    assert_eq!(served, Served::Cached { age: 0 });
    // Forced failures are recorded through the breaker, never sent as calls; the sixth
    // is refused by the open breaker and not counted.
    assert!(h.calls.is_empty());
    assert_eq!(h.node.stats().forced_failures, 5);
    assert_eq!(h.node.breaker(0).stats().failures, 5);
    assert_eq!(
        breaker_events(&h.log),
        vec![(
            BreakerState::Closed,
            BreakerState::Open,
            BreakerReason::ConsecutiveFailures { count: 5 }
        )]
    );
    let until = h.open_until("users");
    assert!((9 * SECOND..=11 * SECOND).contains(&until), "{until}");
}

#[test]
fn seed_fallback_to_cached_data() {
    let mut h = Harness::new();
    let (reply, served) = h.ask(
        0,
        json!({"type":"get_product","msg_id":1,"product_id":123,"service_unavailable":true}),
    );
    assert_eq!(reply, seed(SEED_2));
    assert_eq!(served, Served::Cached { age: 0 });
    let calls = h.calls.clone();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].dependency, calls[0].force_down), (1, true));
    assert_eq!(calls[0].op, Op::Read { key: 123 });
    assert_eq!(h.node.breaker(1).stats().failures, 1);
    assert_eq!(h.node.breaker(1).state(), BreakerState::Closed);
}

#[test]
fn seed_high_load_disables_expensive_features() {
    let mut h = Harness::new();
    let (reply, served) = h.ask(
        0,
        json!({"type":"set_mode","msg_id":3,"mode":"degraded","cpu_usage":85}),
    );
    assert_eq!(
        reply,
        json!({"type":"mode_changed","in_reply_to":3,"mode":"degraded",
               "disabled_features":["recommendations","search"]})
    );
    assert_eq!(served, Served::Control);
}

#[test]
fn seed_exchanges_in_sequence_on_one_node() {
    let mut h = Harness::new();
    let (r1, _) = h.ask(
        0,
        json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":6}),
    );
    let (r2, _) = h.ask(
        1_000,
        json!({"type":"get_product","msg_id":2,"product_id":123,"service_unavailable":true}),
    );
    let (r3, _) = h.ask(
        2_000,
        json!({"type":"set_mode","msg_id":3,"mode":"degraded","cpu_usage":85}),
    );
    let mut expected_2 = seed(SEED_2);
    expected_2["in_reply_to"] = json!(2);
    assert_eq!(r1, seed(SEED_1));
    assert_eq!(r2, expected_2);
    assert_eq!(
        r3,
        json!({"type":"mode_changed","in_reply_to":3,"mode":"degraded",
               "disabled_features":["recommendations","search"]})
    );
}

#[test]
fn init_is_answered_with_init_ok() {
    let mut h = Harness::new();
    let (reply, served) = h.ask(
        0,
        json!({"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1"]}),
    );
    assert_eq!(reply, json!({"type":"init_ok","in_reply_to":1}));
    assert_eq!(served, Served::Control);
}

#[test]
fn refused_request_is_an_error_reply_with_its_msg_id() {
    let mut h = Harness::new();
    let parsed = parse_body(&json!({"type":"get_user","msg_id":4}));
    h.node
        .refuse(RequestId(0), parsed.msg_id, parsed.request.unwrap_err());
    h.pump(0);
    let (reply, served) = reply_of(&h.log, RequestId(0)).unwrap();
    assert_eq!(
        reply,
        json!({"type":"error","in_reply_to":4,"code":12,"text":"missing field `user_id`"})
    );
    assert_eq!(served, Served::Error { code: 12 });
}

// ----- reads -----

#[test]
fn healthy_reads_are_fresh_with_the_breaker_closed() {
    let mut h = Harness::new();
    let (user, served) = h.ask(0, json!({"type":"get_user","msg_id":1,"user_id":123}));
    assert_eq!(
        user,
        json!({"type":"user_response","in_reply_to":1,"user":{"id":123,"name":"John Doe"},
               "circuit_state":"closed","from_cache":false})
    );
    assert_eq!(served, Served::Fresh);
    let (product, served) = h.ask(5, json!({"type":"get_product","msg_id":2,"product_id":123}));
    assert_eq!(
        product,
        json!({"type":"product_response","in_reply_to":2,"product":{"id":123,"name":"Product"},
               "_cached":false})
    );
    assert_eq!(served, Served::Fresh);
    let ops: Vec<(usize, Op, bool)> = h
        .calls
        .iter()
        .map(|c| (c.dependency, c.op.clone(), c.force_down))
        .collect();
    assert_eq!(
        ops,
        vec![
            (0, Op::Read { key: 123 }, false),
            (1, Op::Read { key: 123 }, false)
        ]
    );
    assert_eq!(h.calls[1].deadline, 5 + 1_000 * MILLISECOND);
}

#[test]
fn force_failures_2_leaves_the_breaker_closed_and_the_user_fresh() {
    let mut h = Harness::new();
    let (reply, served) = h.ask(
        0,
        json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":2}),
    );
    assert_eq!(
        reply,
        json!({"type":"user_response","in_reply_to":1,"user":{"id":123,"name":"John Doe"},
               "circuit_state":"closed","from_cache":false})
    );
    assert_eq!(served, Served::Fresh);
    assert_eq!(h.node.stats().forced_failures, 2);
    assert!(breaker_events(&h.log).is_empty());
    // The real call's success reset the run: three more forced failures do not trip it.
    let (reply, _) = h.ask(
        1,
        json!({"type":"get_user","msg_id":2,"user_id":123,"force_failures":3}),
    );
    assert_eq!(reply["circuit_state"], "closed");
}

#[test]
fn reads_while_a_call_is_outstanding_each_get_their_own_answer() {
    let mut h = Harness::new();
    h.backend[0] = Backend::Hold;
    let (first, effects) = h.send(0, json!({"type":"get_user","msg_id":1,"user_id":123}));
    assert!(
        reply_of(&effects, first).is_none(),
        "answered before its call returned"
    );
    let (second, effects) = h.send(
        MILLISECOND,
        json!({"type":"get_user","msg_id":2,"user_id":123}),
    );
    assert!(reply_of(&effects, second).is_none());
    assert_eq!(h.held.len(), 2, "each read makes its own call");
    let (c0, c1) = (h.held_call(0), h.held_call(1));
    assert_ne!(c0.id, c1.id);

    // The later call answers first, healthily; then the earlier one fails.
    let effects = h.answer(
        2 * MILLISECOND,
        c1.id,
        CallResult::Found(record(123, "John Doe")),
    );
    let (reply, served) = reply_of(&effects, second).unwrap();
    assert_eq!(reply["in_reply_to"], 2);
    assert_eq!(reply["from_cache"], false);
    assert_eq!(served, Served::Fresh);
    assert!(reply_of(&effects, first).is_none());

    let effects = h.answer(3 * MILLISECOND, c0.id, CallResult::Failed(CallError::Error));
    let (reply, served) = reply_of(&effects, first).unwrap();
    assert_eq!(reply["in_reply_to"], 1);
    assert_eq!(reply["from_cache"], true);
    assert_eq!(reply["circuit_state"], "closed");
    // The cache was refreshed by the second call at 2ms.
    assert_eq!(served, Served::Cached { age: MILLISECOND });
}

#[test]
fn failed_call_within_the_ttl_serves_the_cache_without_a_stale_event() {
    let mut h = Harness::new();
    h.backend[0] = Backend::Down;
    let (reply, served) = h.ask(
        10 * SECOND,
        json!({"type":"get_user","msg_id":1,"user_id":123}),
    );
    assert_eq!(reply["from_cache"], true);
    assert_eq!(reply["user"], json!({"id":123,"name":"John Doe"}));
    assert_eq!(served, Served::Cached { age: 10 * SECOND });
    assert!(!h
        .log
        .iter()
        .any(|e| matches!(e, Effect::Event(NodeEvent::Cache { .. }))));
}

#[test]
fn failed_call_past_the_ttl_serves_stale_and_says_so() {
    let mut h = Harness::new();
    let now = 31 * SECOND;
    let (to, effects) = h.send(
        now,
        json!({"type":"get_product","msg_id":1,"product_id":123,"service_unavailable":true}),
    );
    let (reply, served) = reply_of(&effects, to).unwrap();
    assert_eq!(reply, seed(SEED_2));
    assert_eq!(served, Served::Stale { age: now });
    let event = position(&effects, |e| {
        matches!(
            e,
            Effect::Event(NodeEvent::Cache {
                dependency: "products",
                event: CacheEvent::StaleServed {
                    key: 123,
                    reason: StaleReason::DependencyFailed,
                    ..
                }
            })
        )
    });
    assert!(event < position(&effects, is_reply));
    assert_eq!(h.node.cache(1).stats().stale_serves, 1);
}

#[test]
fn open_breaker_past_the_ttl_serves_stale_with_the_breaker_as_reason() {
    let mut config = NodeConfig::default();
    config.dependencies[0].breaker.open_duration = 60 * SECOND;
    config.dependencies[0].breaker.max_open_duration = 60 * SECOND;
    let mut h = Harness::with_config(config);
    let now = 40 * SECOND;
    let (to, effects) = h.send(
        now,
        json!({"type":"get_user","msg_id":7,"user_id":123,"force_failures":5}),
    );
    let (reply, served) = reply_of(&effects, to).unwrap();
    assert_eq!(reply["circuit_state"], "open");
    assert_eq!(reply["from_cache"], true);
    assert_eq!(served, Served::Stale { age: now });
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Event(NodeEvent::Cache {
            event: CacheEvent::StaleServed {
                reason: StaleReason::BreakerOpen,
                age,
                ..
            },
            ..
        }) if *age == now
    )));
}

#[test]
fn item_past_the_max_stale_age_is_error_11_saying_why() {
    let mut h = Harness::new();
    // TTL 30s + max stale 5m: at 5m 31s the warm entry is too old to serve.
    let now = 331 * SECOND;
    let (to, effects) = h.send(
        now,
        json!({"type":"get_user","msg_id":5,"user_id":123,"service_unavailable":true}),
    );
    let (reply, served) = reply_of(&effects, to).unwrap();
    assert_eq!(served, Served::Error { code: 11 });
    assert_eq!(
        reply,
        json!({"type":"error","in_reply_to":5,"code":11,
               "text":"users service failed (unavailable); user 123: cached value is 5m 31s old, \
                       past the 5m 30s limit for stale data"})
    );
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Event(NodeEvent::Cache {
            event: CacheEvent::StaleRefused { key: 123, age, limit, .. },
            ..
        }) if *age == now && *limit == 330 * SECOND
    )));
}

#[test]
fn uncached_item_while_down_is_error_11() {
    let mut h = Harness::new();
    h.stores[0].write(7, "Alice".into(), 0).unwrap();
    let (reply, served) = h.ask(
        0,
        json!({"type":"get_user","msg_id":1,"user_id":7,"service_unavailable":true}),
    );
    assert_eq!(served, Served::Error { code: 11 });
    assert_eq!(
        reply,
        json!({"type":"error","in_reply_to":1,"code":11,
               "text":"users service failed (unavailable); user 7: nothing cached"})
    );
    let (reply, _) = h.ask(
        1,
        json!({"type":"get_user","msg_id":2,"user_id":7,"force_failures":5}),
    );
    assert_eq!(
        reply,
        json!({"type":"error","in_reply_to":2,"code":11,
               "text":"users service unavailable (circuit open); user 7: nothing cached"})
    );
}

#[test]
fn unknown_item_is_error_20() {
    let mut h = Harness::new();
    let (reply, served) = h.ask(0, json!({"type":"get_product","msg_id":9,"product_id":999}));
    assert_eq!(
        reply,
        json!({"type":"error","in_reply_to":9,"code":20,"text":"product 999 does not exist"})
    );
    assert_eq!(served, Served::Error { code: 20 });
    // Not found is a healthy answer: it does not count against the breaker.
    assert_eq!(h.node.breaker(1).stats().failures, 0);
    assert_eq!(h.node.breaker(1).stats().successes, 1);
}

#[test]
fn timed_out_call_serves_the_cache_and_its_late_answer_is_ignored() {
    let mut h = Harness::new();
    h.backend[0] = Backend::Hold;
    let (to, _) = h.send(0, json!({"type":"get_user","msg_id":1,"user_id":123}));
    let call = h.held_call(0);
    assert_eq!(call.deadline, 1_000 * MILLISECOND);
    // The driver reports the timeout at the deadline.
    let effects = h.advance(call.deadline);
    let (reply, served) = reply_of(&effects, to).unwrap();
    assert_eq!(reply["from_cache"], true);
    assert_eq!(served, Served::Cached { age: call.deadline });
    let stats = h.node.breaker(0).stats();
    assert_eq!(stats.failures, 1);

    // The answer turns up late: nothing happens, nothing is cached, nothing is counted.
    let effects = h.answer(
        call.deadline + 500 * MILLISECOND,
        call.id,
        CallResult::Found(record(123, "Ghost")),
    );
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(h.node.breaker(0).stats(), stats);
    // An answer to a call never made is ignored the same way.
    assert!(h
        .answer(2 * SECOND, CallId(999), CallResult::NotFound)
        .is_empty());

    h.backend[0] = Backend::Down;
    let (reply, _) = h.ask(
        3 * SECOND,
        json!({"type":"get_user","msg_id":2,"user_id":123}),
    );
    assert_eq!(
        reply["user"]["name"], "John Doe",
        "the late answer reached the cache"
    );
}

#[test]
fn reads_during_a_half_open_probe_are_served_from_the_cache() {
    let mut h = Harness::new();
    h.ask(
        0,
        json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":5}),
    );
    let until = h.open_until("users");
    h.backend[0] = Backend::Hold;
    // The first read after the open time is the probe.
    let (probe_request, effects) =
        h.send(until, json!({"type":"get_user","msg_id":2,"user_id":123}));
    assert!(reply_of(&effects, probe_request).is_none());
    assert_eq!(h.held.len(), 1);
    let probe = h.held_call(0);
    // A second read is not let through (one probe at a time) and gets the cache.
    let (reply, served) = h.ask(
        until + 1,
        json!({"type":"get_user","msg_id":3,"user_id":123}),
    );
    assert_eq!(reply["circuit_state"], "half_open");
    assert_eq!(reply["from_cache"], true);
    assert!(matches!(served, Served::Cached { .. }));
    assert_eq!(h.held.len(), 1, "a stampede of probes");

    let effects = h.answer(
        until + 2,
        probe.id,
        CallResult::Found(record(123, "John Doe")),
    );
    let (reply, served) = reply_of(&effects, probe_request).unwrap();
    assert_eq!(reply["circuit_state"], "closed");
    assert_eq!(reply["from_cache"], false);
    assert_eq!(served, Served::Fresh);
    let closed = position(
        &effects,
        |e| matches!(e, Effect::Event(NodeEvent::Breaker { event, .. }) if event.to == BreakerState::Closed),
    );
    assert!(closed < position(&effects, is_reply));
    assert_eq!(
        breaker_events(&h.log)
            .into_iter()
            .map(|(from, to, _)| (from, to))
            .collect::<Vec<_>>(),
        vec![
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
}

#[test]
fn every_breaker_transition_is_an_event_before_the_reply_that_follows_it() {
    let mut h = Harness::new();
    let (to, effects) = h.send(
        0,
        json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":6}),
    );
    let opened = position(&effects, |e| {
        matches!(e, Effect::Event(NodeEvent::Breaker { dependency: "users", event })
            if event.to == BreakerState::Open)
    });
    let replied = position(
        &effects,
        |e| matches!(e, Effect::Reply { to: t, .. } if *t == to),
    );
    assert!(opened < replied);

    // Tripped by a real call's failure: the event still comes before the reply.
    let mut h = Harness::new();
    h.backend[0] = Backend::Down;
    for i in 0..5 {
        let (to, effects) = h.send(i, json!({"type":"get_user","msg_id":i,"user_id":123}));
        let replied = position(
            &effects,
            |e| matches!(e, Effect::Reply { to: t, .. } if *t == to),
        );
        if i < 4 {
            assert!(breaker_events(&effects).is_empty());
        } else {
            let opened = position(&effects, |e| {
                matches!(e, Effect::Event(NodeEvent::Breaker { .. }))
            });
            assert!(opened < replied);
            assert_eq!(reply_of(&effects, to).unwrap().0["circuit_state"], "open");
        }
    }
}

#[test]
fn cache_first_reads_serve_the_cache_and_refresh_one_key_at_a_time() {
    let mut config = NodeConfig::default();
    config.dependencies[0].read_policy = ReadPolicy::CacheFirst;
    config.dependencies[0].cache.stale_while_revalidate = Some(60 * SECOND);
    let mut h = Harness::with_config(config);
    h.backend[0] = Backend::Hold;
    // Fresh: straight from the cache, no call.
    let (reply, served) = h.ask(SECOND, json!({"type":"get_user","msg_id":1,"user_id":123}));
    assert_eq!(reply["from_cache"], true);
    assert_eq!(served, Served::Cached { age: SECOND });
    assert!(h.calls.is_empty());
    // Past the TTL, within the revalidate window: served stale while one refresh runs.
    let (_, served) = h.ask(
        40 * SECOND,
        json!({"type":"get_user","msg_id":2,"user_id":123}),
    );
    assert_eq!(served, Served::Stale { age: 40 * SECOND });
    assert!(h.log.iter().any(|e| matches!(
        e,
        Effect::Event(NodeEvent::Cache {
            event: CacheEvent::StaleServed {
                reason: StaleReason::Revalidating,
                ..
            },
            ..
        })
    )));
    assert_eq!(h.held.len(), 1);
    let refresh = h.held_call(0);
    assert_eq!(refresh.op, Op::Read { key: 123 });
    assert_eq!(refresh.kind, CallKind::Refresh);
    // A second reader does not start a second refresh.
    let (_, served) = h.ask(
        41 * SECOND,
        json!({"type":"get_user","msg_id":3,"user_id":123}),
    );
    assert_eq!(served, Served::Stale { age: 41 * SECOND });
    assert_eq!(h.held.len(), 1, "two refreshes of one key in flight");
    // The refresh answers nobody but fills the cache.
    let effects = h.answer(
        42 * SECOND,
        refresh.id,
        CallResult::Found(record(123, "John Q. Doe")),
    );
    assert!(!effects.iter().any(is_reply));
    let (reply, served) = h.ask(
        43 * SECOND,
        json!({"type":"get_user","msg_id":4,"user_id":123}),
    );
    assert_eq!(reply["user"]["name"], "John Q. Doe");
    assert_eq!(served, Served::Cached { age: SECOND });
    // Past the revalidate window the read goes to the service.
    h.backend[0] = Backend::Up;
    let (reply, served) = h.ask(
        200 * SECOND,
        json!({"type":"get_user","msg_id":5,"user_id":123}),
    );
    assert_eq!(served, Served::Fresh);
    assert_eq!(reply["user"]["name"], "John Doe");
}

// ----- writes -----

#[test]
fn healthy_write_is_applied_and_read_back() {
    let mut h = Harness::new();
    let (reply, served) = h.ask(
        0,
        json!({"type":"update_user","msg_id":1,"user_id":123,"name":"Jane Roe"}),
    );
    assert_eq!(
        reply,
        json!({"type":"write_ok","in_reply_to":1,"resource":"users","id":123,
               "queued":false,"queue_depth":0})
    );
    assert_eq!(served, Served::Applied);
    assert_eq!(
        h.calls[0].op,
        Op::Write {
            key: 123,
            name: "Jane Roe".into(),
            version: 1,
        }
    );
    let (reply, _) = h.ask(1, json!({"type":"get_user","msg_id":2,"user_id":123}));
    assert_eq!(reply["user"]["name"], "Jane Roe");
    // The write refreshed the cache too: with the service down, the new name is served.
    h.backend[0] = Backend::Down;
    let (reply, _) = h.ask(2, json!({"type":"get_user","msg_id":3,"user_id":123}));
    assert_eq!(
        (reply["user"]["name"].clone(), reply["from_cache"].clone()),
        (json!("Jane Roe"), json!(true))
    );
}

#[test]
fn writes_are_queued_while_the_breaker_is_open() {
    let mut h = Harness::new();
    h.ask(
        0,
        json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":5}),
    );
    let (reply, served) = h.ask(
        1,
        json!({"type":"update_user","msg_id":2,"user_id":123,"name":"A"}),
    );
    assert_eq!(
        reply,
        json!({"type":"write_ok","in_reply_to":2,"resource":"users","id":123,
               "queued":true,"queue_depth":1})
    );
    assert_eq!(served, Served::Queued { depth: 1 });
    let (reply, served) = h.ask(
        2,
        json!({"type":"update_user","msg_id":3,"user_id":7,"name":"B"}),
    );
    assert_eq!(reply["queue_depth"], 2);
    assert_eq!(served, Served::Queued { depth: 2 });
    assert!(
        h.calls.is_empty(),
        "a write went to an open breaker's service"
    );
    // The other dependency is not affected.
    let (reply, served) = h.ask(
        3,
        json!({"type":"update_product","msg_id":4,"product_id":1,"name":"P"}),
    );
    assert_eq!(reply["queued"], false);
    assert_eq!(served, Served::Applied);
}

#[test]
fn queued_write_behind_an_open_breaker_asks_for_no_wake_before_the_open_time_ends() {
    let mut h = Harness::new();
    h.ask(
        0,
        json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":5}),
    );
    let until = h.open_until("users");
    h.ask(
        1,
        json!({"type":"update_user","msg_id":2,"user_id":123,"name":"A"}),
    );
    let wakes: Vec<Time> = h.timers.keys().map(|&(at, _)| at).collect();
    assert!(
        wakes.iter().all(|&at| at >= until),
        "wakes {wakes:?} before the breaker may half-open at {until}: nothing can drain then"
    );
    // And time passing with the breaker open costs a handful of wakes, not one per microsecond.
    h.advance(until - 1);
    assert!(h.calls.is_empty());
}

#[test]
fn write_refused_by_the_service_is_queued_and_drained_after_a_backoff() {
    let mut h = Harness::new();
    let (reply, served) = h.ask(
        0,
        json!({"type":"update_user","msg_id":1,"user_id":123,"name":"Jane Roe",
               "service_unavailable":true}),
    );
    assert_eq!(
        reply,
        json!({"type":"write_ok","in_reply_to":1,"resource":"users","id":123,
               "queued":true,"queue_depth":1})
    );
    assert_eq!(served, Served::Queued { depth: 1 });
    assert_eq!(h.calls.len(), 1);
    assert!(h.calls[0].force_down);
    // Backoff base 100ms with 20% jitter: not retried before 80ms.
    h.advance(79 * MILLISECOND);
    assert_eq!(h.calls.len(), 1, "retried into the same failure at once");
    let effects = h.advance(100 * MILLISECOND);
    let drained = calls_of(&effects);
    assert_eq!(drained.len(), 1);
    assert_eq!(
        (drained[0].op.clone(), drained[0].force_down),
        (
            Op::Write {
                key: 123,
                name: "Jane Roe".into(),
                version: 1,
            },
            false
        )
    );
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Event(NodeEvent::Queue {
            event: QueueEvent::Applied { attempts: 1, .. },
            ..
        })
    )));
    assert!(h.node.queue(0).is_empty());
    assert!(!h.node.is_busy());
    let (reply, served) = h.ask(
        150 * MILLISECOND,
        json!({"type":"get_user","msg_id":2,"user_id":123}),
    );
    assert_eq!(reply["user"]["name"], "Jane Roe");
    assert_eq!(served, Served::Fresh);
}

/// Opens the users breaker at 0 and queues three writes behind it.
fn three_queued_writes() -> (Harness, Time) {
    let mut h = Harness::new();
    h.ask(
        0,
        json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":5}),
    );
    let until = h.open_until("users");
    for (i, (id, name)) in [(123, "A"), (123, "B"), (7, "C")].into_iter().enumerate() {
        let i = i as u64;
        let (reply, _) = h.ask(
            MILLISECOND * (i + 1),
            json!({"type":"update_user","msg_id":10 + i,"user_id":id,"name":name}),
        );
        assert_eq!(reply["queue_depth"], i + 1);
    }
    (h, until)
}

#[test]
fn queued_writes_drain_in_order_once_a_probe_closes_the_breaker() {
    let (mut h, until) = three_queued_writes();
    h.advance(until - 1);
    assert!(h.calls.is_empty(), "drained while the breaker was open");
    let effects = h.advance(until);
    let kinds: Vec<CallKind> = calls_of(&effects).iter().map(|c| c.kind).collect();
    use CallKind::{Drain, Probe};
    assert_eq!(kinds, vec![Probe, Drain, Drain, Drain]);
    let ops: Vec<Op> = calls_of(&effects).into_iter().map(|c| c.op).collect();
    assert_eq!(
        ops,
        vec![
            // The health probe first (a read of the head write's record), then the writes
            // in the order they were accepted.
            Op::Read { key: 123 },
            Op::Write {
                key: 123,
                name: "A".into(),
                version: 1,
            },
            Op::Write {
                key: 123,
                name: "B".into(),
                version: 2,
            },
            Op::Write {
                key: 7,
                name: "C".into(),
                version: 3,
            },
        ]
    );
    let applied: Vec<u64> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(NodeEvent::Queue {
                event: QueueEvent::Applied { id, .. },
                ..
            }) => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(applied, vec![0, 1, 2]);
    assert_eq!(h.node.breaker(0).state(), BreakerState::Closed);
    assert!(h.node.queue(0).is_empty());
    assert_eq!(h.node.queue(0).stats().applied, 3);

    let (reply, _) = h.ask(
        until + 1,
        json!({"type":"get_user","msg_id":20,"user_id":123}),
    );
    assert_eq!(reply["user"]["name"], "B");
    let (reply, _) = h.ask(
        until + 2,
        json!({"type":"get_user","msg_id":21,"user_id":7}),
    );
    assert_eq!(reply["user"], json!({"id":7,"name":"C"}));
}

#[test]
fn drain_waits_for_the_breaker_to_close() {
    let (mut h, until) = three_queued_writes();
    // The service is still down when the breaker half-opens: the probe fails, the
    // breaker re-opens, and no write spends an attempt.
    h.backend[0] = Backend::Down;
    let effects = h.advance(until);
    let ops: Vec<Op> = calls_of(&effects).into_iter().map(|c| c.op).collect();
    assert_eq!(ops, vec![Op::Read { key: 123 }]);
    assert_eq!(h.node.breaker(0).state(), BreakerState::Open);
    assert!(matches!(
        breaker_events(&effects).last(),
        Some((
            BreakerState::HalfOpen,
            BreakerState::Open,
            BreakerReason::ProbeFailed { slow: false }
        ))
    ));
    assert_eq!(h.node.queue(0).stats().dispatched, 0);
    assert_eq!(h.node.queue(0).depth(), 3);

    // The second open spell is longer (multiplier 2); the next probe meets a healthy service.
    let again = h.open_until("users");
    assert!(again - until >= 18 * SECOND, "{}", again - until);
    h.backend[0] = Backend::Up;
    h.advance(again - 1);
    assert_eq!(h.calls.len(), 1);
    let effects = h.advance(again);
    let writes = calls_of(&effects)
        .into_iter()
        .filter(|c| matches!(c.op, Op::Write { .. }))
        .count();
    assert_eq!(writes, 3);
    assert!(h.node.queue(0).is_empty());
    let (reply, _) = h.ask(
        again + 1,
        json!({"type":"get_user","msg_id":20,"user_id":123}),
    );
    assert_eq!(reply["user"]["name"], "B");
}

#[test]
fn a_new_write_waits_behind_queued_ones_even_when_the_service_is_healthy() {
    let mut h = Harness::new();
    h.ask(0, json!({"type":"update_user","msg_id":1,"user_id":123,"name":"A","service_unavailable":true}));
    // The breaker is closed and the service healthy, but "A" is still waiting: "B" must
    // not overtake it.
    let (reply, served) = h.ask(
        1,
        json!({"type":"update_user","msg_id":2,"user_id":123,"name":"B"}),
    );
    assert_eq!(reply["queued"], true);
    assert_eq!(served, Served::Queued { depth: 2 });
    h.advance(SECOND);
    assert!(h.node.queue(0).is_empty());
    let (reply, _) = h.ask(
        SECOND + 1,
        json!({"type":"get_user","msg_id":3,"user_id":123}),
    );
    assert_eq!(reply["user"]["name"], "B");
}

#[test]
fn writes_to_one_record_apply_in_request_order_when_an_earlier_direct_write_fails() {
    let mut h = Harness::new();
    h.backend[0] = Backend::Hold;
    // Two direct writes to the same record, both in flight (the queue is empty).
    h.send(
        0,
        json!({"type":"update_user","msg_id":1,"user_id":123,"name":"older"}),
    );
    h.send(
        1,
        json!({"type":"update_user","msg_id":2,"user_id":123,"name":"newer"}),
    );
    let (older, newer) = (h.held_call(0), h.held_call(1));
    // The newer one is applied; then the older one fails and goes to the queue.
    let Op::Write { version, .. } = newer.op else {
        panic!("a write call");
    };
    let applied = h.stores[0].write(123, "newer".into(), version).unwrap();
    h.answer(2, newer.id, CallResult::Written(applied));
    h.answer(3, older.id, CallResult::Failed(CallError::Error));
    h.backend[0] = Backend::Up;
    h.advance(10 * SECOND);
    assert!(h.node.queue(0).is_empty());
    assert_eq!(
        h.stores[0].read(123).unwrap().name,
        "newer",
        "the older write was applied after the newer one (lost update)"
    );
}

#[test]
fn a_full_queue_rejects_the_write_with_error_11() {
    let mut config = NodeConfig::default();
    config.dependencies[0].queue.capacity = 2;
    let mut h = Harness::with_config(config);
    h.ask(
        0,
        json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":5}),
    );
    h.ask(
        1,
        json!({"type":"update_user","msg_id":2,"user_id":123,"name":"A"}),
    );
    h.ask(
        2,
        json!({"type":"update_user","msg_id":3,"user_id":123,"name":"B"}),
    );
    let (to, effects) = h.send(
        3,
        json!({"type":"update_user","msg_id":4,"user_id":123,"name":"C"}),
    );
    let (reply, served) = reply_of(&effects, to).unwrap();
    assert_eq!(served, Served::Rejected);
    assert!(!served.is_available());
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], 11);
    assert_eq!(reply["in_reply_to"], 4);
    assert_eq!(
        reply["text"],
        "users service is unavailable and its write queue is full (2 writes waiting); \
         the write to user 123 was not accepted, retry later"
    );
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Event(NodeEvent::Queue {
            event: QueueEvent::Rejected { depth: 2, .. },
            ..
        })
    )));
    let stats = h.node.queue(0).stats();
    assert_eq!((stats.accepted, stats.rejected, stats.queued), (2, 1, 2));
}

#[test]
fn a_write_that_uses_its_attempts_is_dead_lettered_and_reported() {
    let mut config = NodeConfig::default();
    config.dependencies[0].queue.max_attempts = 1;
    config.dependencies[0].breaker.trip_policy = TripPolicy::ConsecutiveFailures {
        failure_threshold: 100,
    };
    let mut h = Harness::with_config(config);
    h.backend[0] = Backend::Down;
    let (reply, _) = h.ask(
        0,
        json!({"type":"update_user","msg_id":1,"user_id":123,"name":"A"}),
    );
    assert_eq!(reply["queued"], true);
    let effects = h.advance(SECOND);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Event(NodeEvent::Queue {
            event: QueueEvent::DeadLettered { attempts: 1, .. },
            ..
        })
    )));
    let (status, _) = h.ask(SECOND, json!({"type":"status","msg_id":2}));
    assert_eq!(status["dependencies"][0]["dead_letters"], 1);
    assert_eq!(status["dependencies"][0]["queue_depth"], 0);
    assert!(!h.node.is_busy());
}

/// A harness whose users store takes at most `max_new_records` records from writes.
fn with_users_store_limit(max_new_records: u64) -> Harness {
    let mut h = Harness::new();
    let limits = StoreLimits {
        max_new_records,
        max_name_bytes: u64::MAX,
    };
    let data = DataSet::default();
    h.stores[0] = Store::with_limits(Resource::Users, data.collection(Resource::Users), limits);
    h
}

#[test]
fn a_write_the_store_refuses_is_error_11_and_counts_as_the_service_answering() {
    let mut h = with_users_store_limit(1);
    let (reply, served) = h.ask(
        0,
        json!({"type":"update_user","msg_id":1,"user_id":7,"name":"A"}),
    );
    assert_eq!(
        (reply["queued"].clone(), served),
        (json!(false), Served::Applied)
    );
    // More refusals than the breaker's failure threshold: the service is healthy and
    // said no, so the breaker stays closed, and nothing is queued to retry.
    for msg_id in 2..=8 {
        let (reply, served) = h.ask(
            msg_id,
            json!({"type":"update_user","msg_id":msg_id,"user_id":100 + msg_id,"name":"B"}),
        );
        assert_eq!(served, Served::Error { code: 11 });
        assert_eq!(
            reply,
            json!({"type":"error","in_reply_to":msg_id,"code":11,
                   "text":format!("users store is full; the write to user {} was not applied: \
                                   it holds the 1 records that writes may create beyond its \
                                   data set (writes to records it holds are still taken)",
                                  100 + msg_id)})
        );
    }
    assert_eq!(h.node.breaker(0).state(), BreakerState::Closed);
    assert!(h.node.queue(0).is_empty());
    assert!(!h.node.is_busy());
    // Nothing of a refused write reached the cache: with the service down, the record
    // is not there to serve.
    h.backend[0] = Backend::Down;
    let (reply, _) = h.ask(10, json!({"type":"get_user","msg_id":9,"user_id":102}));
    assert_eq!(
        (reply["type"].clone(), reply["code"].clone()),
        (json!("error"), json!(11))
    );
    // Records that exist still take writes.
    h.backend[0] = Backend::Up;
    let (_, served) = h.ask(
        11,
        json!({"type":"update_user","msg_id":10,"user_id":7,"name":"C"}),
    );
    assert_eq!(served, Served::Applied);
    let (_, served) = h.ask(
        12,
        json!({"type":"update_user","msg_id":11,"user_id":123,"name":"D"}),
    );
    assert_eq!(served, Served::Applied);
}

#[test]
fn a_queued_write_the_store_refuses_is_dead_lettered_without_retries() {
    let mut h = with_users_store_limit(0);
    let (reply, _) = h.ask(
        0,
        json!({"type":"update_user","msg_id":1,"user_id":7,"name":"A",
               "service_unavailable":true}),
    );
    assert_eq!(reply["queued"], true);
    let effects = h.advance(10 * SECOND);
    // The direct call, then one drain attempt, refused: no retry follows.
    assert_eq!(h.calls.len(), 2);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Event(NodeEvent::Queue {
            event: QueueEvent::DeadLettered { attempts: 1, .. },
            ..
        })
    )));
    let dead = &h.node.queue(0).dead_letters()[0];
    assert!(
        dead.last_error
            .starts_with("users store is full; the write to user 7 was not applied"),
        "{}",
        dead.last_error
    );
    let (status, _) = h.ask(10 * SECOND, json!({"type":"status","msg_id":2}));
    assert_eq!(status["dependencies"][0]["dead_letters"], 1);
    assert_eq!(status["dependencies"][0]["queue_depth"], 0);
    assert_eq!(h.node.breaker(0).state(), BreakerState::Closed);
    assert!(!h.node.is_busy());
}

// ----- modes -----

fn mode_of(h: &mut Harness, now: Time, body: Value) -> (String, Vec<String>) {
    let (reply, served) = h.ask(now, body);
    assert_eq!(reply["type"], "mode_changed");
    assert_eq!(served, Served::Control);
    let features = reply["disabled_features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    (reply["mode"].as_str().unwrap().to_owned(), features)
}

#[test]
fn set_mode_with_only_cpu_usage_follows_the_thresholds() {
    let mut h = Harness::new();
    let cpu = |h: &mut Harness, now: Time, cpu: f64| {
        mode_of(
            h,
            now,
            json!({"type":"set_mode","msg_id":1,"cpu_usage":cpu}),
        )
        .0
    };
    assert_eq!(cpu(&mut h, 0, 69.0), "normal", "below degraded_enter 70");
    assert_eq!(cpu(&mut h, 0, 75.0), "degraded");
    // Within the 10s dwell nothing moves, however high.
    assert_eq!(cpu(&mut h, SECOND, 95.0), "degraded");
    let (mode, features) = mode_of(
        &mut h,
        11 * SECOND,
        json!({"type":"set_mode","msg_id":2,"cpu_usage":95}),
    );
    assert_eq!(mode, "critical");
    assert_eq!(
        features,
        ["recommendations", "search", "reviews", "personalization"]
    );
    // Hysteresis: 85 is below critical_enter but not below critical_leave 80.
    assert_eq!(cpu(&mut h, 30 * SECOND, 85.0), "critical");
    assert_eq!(cpu(&mut h, 31 * SECOND, 65.0), "degraded");
    assert_eq!(
        cpu(&mut h, 45 * SECOND, 62.0),
        "degraded",
        "not below degraded_leave 60"
    );
    assert_eq!(cpu(&mut h, 46 * SECOND, 50.0), "normal");
    let changes: Vec<(Mode, Mode)> = h
        .log
        .iter()
        .filter_map(|e| match e {
            Effect::Event(NodeEvent::Mode { event }) => {
                assert!(matches!(event.reason, ModeReason::Cpu { .. }));
                Some((event.from, event.to))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (Mode::Normal, Mode::Degraded),
            (Mode::Degraded, Mode::Critical),
            (Mode::Critical, Mode::Degraded),
            (Mode::Degraded, Mode::Normal),
        ]
    );
}

#[test]
fn a_manual_mode_holds_until_auto_releases_it() {
    let mut h = Harness::new();
    let (mode, _) = mode_of(
        &mut h,
        0,
        json!({"type":"set_mode","msg_id":1,"mode":"critical"}),
    );
    assert_eq!(mode, "critical");
    // A sample under the pin is ignored.
    let (mode, _) = mode_of(
        &mut h,
        20 * SECOND,
        json!({"type":"set_mode","msg_id":2,"mode":"critical","cpu_usage":10}),
    );
    assert_eq!(mode, "critical");
    let (status, _) = h.ask(20 * SECOND, json!({"type":"status","msg_id":3}));
    assert_eq!(status["manual_mode"], true);

    // "auto" releases the pin; the mode stays until a sample decides.
    let (mode, _) = mode_of(
        &mut h,
        30 * SECOND,
        json!({"type":"set_mode","msg_id":4,"mode":"auto"}),
    );
    assert_eq!(mode, "critical");
    let (status, _) = h.ask(30 * SECOND, json!({"type":"status","msg_id":5}));
    assert_eq!(status["manual_mode"], false);
    let (mode, features) = mode_of(
        &mut h,
        30 * SECOND,
        json!({"type":"set_mode","msg_id":6,"cpu_usage":10}),
    );
    assert_eq!((mode.as_str(), features.len()), ("normal", 0));

    // "auto" with a sample: the thresholds decide at once.
    mode_of(
        &mut h,
        40 * SECOND,
        json!({"type":"set_mode","msg_id":7,"mode":"normal"}),
    );
    let (mode, _) = mode_of(
        &mut h,
        60 * SECOND,
        json!({"type":"set_mode","msg_id":8,"mode":"auto","cpu_usage":75}),
    );
    assert_eq!(mode, "degraded");
    // A sample alone also hands control back to the thresholds.
    mode_of(
        &mut h,
        61 * SECOND,
        json!({"type":"set_mode","msg_id":9,"mode":"critical"}),
    );
    let (mode, _) = mode_of(
        &mut h,
        80 * SECOND,
        json!({"type":"set_mode","msg_id":10,"cpu_usage":20}),
    );
    assert_eq!(mode, "normal");
}

#[test]
fn set_mode_reports_its_mode_event_before_the_reply() {
    let mut h = Harness::new();
    let (_, effects) = h.send(0, json!({"type":"set_mode","msg_id":1,"mode":"degraded"}));
    let event = position(&effects, |e| {
        matches!(e, Effect::Event(NodeEvent::Mode { event })
            if event.to == Mode::Degraded && event.reason == ModeReason::Manual)
    });
    assert!(event < position(&effects, is_reply));
}

#[test]
fn degraded_mode_answers_search_and_recommendations_with_their_fallback() {
    let mut h = Harness::new();
    let (search, served) = h.ask(0, json!({"type":"search","msg_id":1,"query":"lamp"}));
    assert_eq!(served, Served::Fresh);
    assert_eq!(search["degraded"], false);
    assert_eq!(search["results"].as_array().unwrap().len(), 3);
    let (recs, served) = h.ask(
        0,
        json!({"type":"get_recommendations","msg_id":2,"user_id":123}),
    );
    assert_eq!(served, Served::Fresh);
    assert_eq!(recs["recommendations"].as_array().unwrap().len(), 3);

    h.ask(1, json!({"type":"set_mode","msg_id":3,"mode":"degraded"}));
    let (search, served) = h.ask(2, json!({"type":"search","msg_id":4,"query":"lamp"}));
    assert_eq!(served, Served::Fallback);
    assert!(served.is_available());
    assert_eq!(
        search,
        json!({"type":"search_response","in_reply_to":4,"query":"lamp","results":[],"degraded":true})
    );
    let (recs, served) = h.ask(
        2,
        json!({"type":"get_recommendations","msg_id":5,"user_id":123}),
    );
    assert_eq!(served, Served::Fallback);
    assert_eq!(
        recs,
        json!({"type":"recommendations_response","in_reply_to":5,"user_id":123,
               "recommendations":[],"degraded":true})
    );
    // Core reads are not features: they still work in degraded mode.
    let (user, _) = h.ask(3, json!({"type":"get_user","msg_id":6,"user_id":123}));
    assert_eq!(user["from_cache"], false);
}

// ----- status -----

#[test]
fn status_reports_breakers_mode_features_queues_and_caches() {
    let mut config = NodeConfig::default();
    config.dependencies[1].cache.ttl = SECOND;
    let mut h = Harness::with_config(config);
    let (status, served) = h.ask(0, json!({"type":"status","msg_id":1}));
    assert_eq!(served, Served::Control);
    assert_eq!(
        status,
        json!({"type":"status_ok","in_reply_to":1,"mode":"normal","manual_mode":false,
               "disabled_features":[],
               "dependencies":[
                 {"name":"users","circuit_state":"closed","cache_entries":1,"stale_serves":0,
                  "queue_depth":0,"dead_letters":0},
                 {"name":"products","circuit_state":"closed","cache_entries":1,"stale_serves":0,
                  "queue_depth":0,"dead_letters":0}]})
    );
    h.ask(
        0,
        json!({"type":"get_user","msg_id":2,"user_id":123,"force_failures":5}),
    );
    h.ask(
        1,
        json!({"type":"update_user","msg_id":3,"user_id":123,"name":"A"}),
    );
    h.ask(2, json!({"type":"set_mode","msg_id":4,"mode":"degraded"}));
    h.ask(
        3,
        json!({"type":"update_product","msg_id":5,"product_id":9,"name":"Nine"}),
    );
    h.ask(
        2 * SECOND,
        json!({"type":"get_product","msg_id":6,"product_id":123,"service_unavailable":true}),
    );
    let (status, _) = h.ask(2 * SECOND, json!({"type":"status","msg_id":7}));
    assert_eq!(
        status,
        json!({"type":"status_ok","in_reply_to":7,"mode":"degraded","manual_mode":true,
               "disabled_features":["recommendations","search"],
               "dependencies":[
                 {"name":"users","circuit_state":"open","cache_entries":1,"stale_serves":0,
                  "queue_depth":1,"dead_letters":0},
                 {"name":"products","circuit_state":"closed","cache_entries":2,"stale_serves":1,
                  "queue_depth":0,"dead_letters":0}]})
    );
}

// ----- random sequences -----

const KEYS: [u64; 3] = [123, 7, 999];

/// One random request body.
fn random_request(rng: &mut ChaCha8Rng, msg_id: u64) -> Value {
    let key = KEYS[rng.random_range(0..KEYS.len())];
    let mut body = match rng.random_range(0..20) {
        0..=5 => json!({"type":"get_user","user_id":key}),
        6..=9 => json!({"type":"get_product","product_id":key}),
        10..=12 => json!({"type":"update_user","user_id":key,"name":format!("u{msg_id}")}),
        13..=14 => json!({"type":"update_product","product_id":key,"name":format!("p{msg_id}")}),
        15 => {
            let modes = ["normal", "degraded", "critical", "auto"];
            json!({"type":"set_mode","mode":modes[rng.random_range(0..4)]})
        }
        16 => json!({"type":"set_mode","cpu_usage":rng.random_range(0..=100)}),
        17 => json!({"type":"status"}),
        18 => json!({"type":"search","query":"q"}),
        _ => json!({"type":"get_recommendations","user_id":key}),
    };
    body["msg_id"] = json!(msg_id);
    if rng.random_bool(0.3) {
        body["force_failures"] = json!(rng.random_range(0..8));
    }
    if rng.random_bool(0.15) {
        body["service_unavailable"] = json!(true);
    }
    if !matches!(
        body["type"].as_str().unwrap(),
        "get_user" | "get_product" | "update_user" | "update_product"
    ) {
        let obj = body.as_object_mut().unwrap();
        obj.remove("force_failures");
        obj.remove("service_unavailable");
    }
    body
}

fn random_result(rng: &mut ChaCha8Rng, call: &Call) -> CallResult {
    match rng.random_range(0..6) {
        0 => CallResult::Failed(CallError::Error),
        1 => CallResult::Failed(CallError::Unavailable),
        _ => match &call.op {
            Op::Read { key } if *key == 999 => CallResult::NotFound,
            Op::Read { key } => CallResult::Found(record(*key, "R")),
            // A store with no room for a record it does not hold (999 never exists).
            Op::Write { key, .. } if *key == 999 => {
                CallResult::Rejected(StoreFull::NewRecords { limit: 0 })
            }
            Op::Write { key, name, .. } => CallResult::Written(Record {
                id: *key,
                name: name.clone(),
            }),
        },
    }
}

/// What a random run went through, so the test can tell a run that exercised nothing.
#[derive(Debug, Default)]
struct Coverage {
    replies: usize,
    trips: usize,
    closes: usize,
    stale_serves: usize,
    queued: usize,
    rejected: usize,
    applied: usize,
    dead_letters: usize,
}

impl Coverage {
    fn add(&mut self, h: &Harness) {
        for effect in &h.log {
            match effect {
                Effect::Reply { served, .. } => {
                    self.replies += 1;
                    match served {
                        Served::Stale { .. } => self.stale_serves += 1,
                        Served::Queued { .. } => self.queued += 1,
                        Served::Rejected => self.rejected += 1,
                        _ => {}
                    }
                }
                Effect::Event(NodeEvent::Breaker { event, .. }) => match event.to {
                    BreakerState::Open => self.trips += 1,
                    BreakerState::Closed => self.closes += 1,
                    BreakerState::HalfOpen => {}
                },
                Effect::Event(NodeEvent::Queue { event, .. }) => match event {
                    QueueEvent::Applied { .. } => self.applied += 1,
                    QueueEvent::DeadLettered { .. } => self.dead_letters += 1,
                    _ => {}
                },
                _ => {}
            }
        }
    }
}

fn random_run(seed: u64, steps: usize, coverage: &mut Coverage) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut config = NodeConfig::default();
    // Small queues and short spells, so that rejections, dead letters and several
    // breaker cycles happen within a short run.
    for dep in &mut config.dependencies {
        dep.queue.capacity = 4;
        dep.queue.max_attempts = 2;
        dep.breaker.open_duration = 2 * SECOND;
        dep.breaker.max_open_duration = 8 * SECOND;
        dep.cache.ttl = 2 * SECOND;
        dep.cache.max_stale = 10 * SECOND;
    }
    config.modes.min_dwell = SECOND;
    let mut h = Harness::with_config(config);
    let mut answered = Vec::new();
    let mut sent = 0;
    for _ in 0..steps {
        let now = h.now;
        match rng.random_range(0..10) {
            0..=4 => {
                sent += 1;
                let body = random_request(&mut rng, sent);
                h.send(now, body);
            }
            5 => {
                let dep = rng.random_range(0..2);
                h.backend[dep] =
                    [Backend::Up, Backend::Down, Backend::Hold][rng.random_range(0..3)];
            }
            6 | 7 if !h.held.is_empty() => {
                let call = h.held_call(rng.random_range(0..h.held.len()));
                let result = random_result(&mut rng, &call);
                h.answer(now, call.id, result);
                answered.push(call);
            }
            6 | 7 if !answered.is_empty() => {
                // A late or duplicate answer: must change nothing.
                let call = answered[rng.random_range(0..answered.len())].clone();
                let result = random_result(&mut rng, &call);
                assert!(h.answer(now, call.id, result).is_empty());
            }
            _ => {
                let dt: Span = rng.random_range(0..3 * SECOND);
                h.advance(now + dt);
            }
        }
    }
    // Heal everything and let the node finish its own work.
    h.backend = [Backend::Up; 2];
    let end = h.now + 1_000 * MILLISECOND;
    h.advance(end);
    assert!(h.held.is_empty());
    h.advance(end + 10 * 60 * SECOND);
    assert!(!h.node.is_busy(), "seed {seed}: work left after healing");
    assert_eq!(
        h.replies.len() as u64,
        h.next_request,
        "seed {seed}: a request never got its reply"
    );
    for index in 0..2 {
        let stats = h.node.queue(index).stats();
        assert_eq!(stats.queued, 0);
        assert_eq!(stats.accepted, stats.applied + stats.dead_lettered);
    }
    coverage.add(&h);
}

#[test]
fn random_sequences_conserve_writes_and_announce_every_transition() {
    let mut coverage = Coverage::default();
    for seed in 0..24 {
        random_run(seed, 400, &mut coverage);
    }
    let c = &coverage;
    let counts = [
        c.replies,
        c.trips,
        c.closes,
        c.stale_serves,
        c.queued,
        c.rejected,
        c.applied,
        c.dead_letters,
    ];
    assert!(
        counts.iter().all(|&n| n >= 5),
        "the runs missed a path: {coverage:?}"
    );
}

// ----- read-your-writes -----

fn read_your_writes(window: Span) -> NodeConfig {
    let mut config = NodeConfig::default();
    config.dependencies[0].read_your_writes = Some(window);
    config
}

/// The user's report (issue 14): with the users breaker open, `update_user` to "Jane"
/// is queued, and the next `get_user` returned the stale "John Doe". With
/// read-your-writes it returns "Jane", marked; past the window, the stale cache again.
#[test]
fn read_your_writes_returns_the_queued_write_while_the_breaker_is_open() {
    for configured in [false, true] {
        let mut h = if configured {
            Harness::with_config(read_your_writes(30 * SECOND))
        } else {
            Harness::new()
        };
        h.backend[0] = Backend::Down;
        h.ask(
            0,
            json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":6}),
        );
        let (reply, _) = h.ask(
            SECOND,
            json!({"type":"update_user","msg_id":2,"user_id":123,"name":"Jane"}),
        );
        assert_eq!(reply["queued"], true);
        let (to, effects) = h.send(
            2 * SECOND,
            json!({"type":"get_user","msg_id":3,"user_id":123}),
        );
        let (reply, served) = reply_of(&effects, to).unwrap();
        if !configured {
            assert_eq!(reply, in_reply_to(seed(SEED_1), 3));
            continue;
        }
        assert_eq!(
            reply,
            json!({"type":"user_response","in_reply_to":3,"user":{"id":123,"name":"Jane"},
                   "circuit_state":"open","from_cache":true,"pending_write":true})
        );
        assert_eq!(served, Served::PendingWrite { age: SECOND });
        assert!(effects.iter().any(|e| matches!(
            e,
            Effect::Event(NodeEvent::ReadYourWrites {
                dependency: "users",
                event: RywEvent::ServedPendingWrite {
                    key: 123,
                    version: 1,
                    write: WriteState::Queued,
                    ..
                },
            })
        )));
        // Products have no read-your-writes: their reads are as before.
        let (reply, _) = h.ask(
            2 * SECOND,
            json!({"type":"get_product","msg_id":4,"product_id":123,"force_failures":6}),
        );
        assert_eq!(reply, in_reply_to(seed(SEED_2), 4));
        // The window counts from when the write was queued: at 31 s it is over, and the
        // stale cache answers again (the service is still down, the write still queued).
        let (reply, served) = h.ask(
            31 * SECOND,
            json!({"type":"get_user","msg_id":5,"user_id":123}),
        );
        assert_eq!(reply["user"]["name"], "John Doe");
        assert!(reply.get("pending_write").is_none());
        assert!(matches!(served, Served::Stale { .. }), "{served:?}");
        assert_eq!(h.node.queue(0).depth(), 1);
    }
}

/// A write dead-lettered after the node showed it is forgotten: it will never be
/// applied, so reads go back to what the cache holds (the service's last known value).
#[test]
fn read_your_writes_forgets_a_dead_lettered_write() {
    let mut config = read_your_writes(30 * SECOND);
    config.dependencies[0].queue.max_attempts = 1;
    config.dependencies[0].breaker.trip_policy = TripPolicy::ConsecutiveFailures {
        failure_threshold: 100,
    };
    let mut h = Harness::with_config(config);
    h.backend[0] = Backend::Down;
    let (reply, _) = h.ask(
        0,
        json!({"type":"update_user","msg_id":1,"user_id":123,"name":"Jane"}),
    );
    assert_eq!(reply["queued"], true);
    // The breaker is closed: the read calls, fails, and the pending write answers.
    let (reply, served) = h.ask(
        MILLISECOND,
        json!({"type":"get_user","msg_id":2,"user_id":123}),
    );
    assert_eq!(reply["user"]["name"], "Jane");
    assert_eq!(reply["pending_write"], true);
    assert_eq!(served, Served::PendingWrite { age: MILLISECOND });
    let effects = h.advance(SECOND);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Event(NodeEvent::ReadYourWrites {
            event: RywEvent::Forgotten {
                key: 123,
                version: 1,
                ..
            },
            ..
        })
    )));
    let (reply, served) = h.ask(SECOND, json!({"type":"get_user","msg_id":3,"user_id":123}));
    assert_eq!(reply["user"]["name"], "John Doe");
    assert!(reply.get("pending_write").is_none());
    assert_eq!(served, Served::Cached { age: SECOND });
    let (_, stats) = h.node.read_your_writes(0).unwrap();
    assert_eq!((stats.served, stats.dropped), (1, 1));
}

/// A write applied once the service is back is remembered as applied, and the cache
/// holds it too: a read that fails later shows it either way.
#[test]
fn read_your_writes_keeps_an_applied_write_for_its_window() {
    let mut h = Harness::with_config(read_your_writes(30 * SECOND));
    let (reply, served) = h.ask(
        0,
        json!({"type":"update_user","msg_id":1,"user_id":5,"name":"Jane"}),
    );
    assert_eq!(
        (reply["queued"].clone(), served),
        (json!(false), Served::Applied)
    );
    h.backend[0] = Backend::Down;
    let (reply, served) = h.ask(SECOND, json!({"type":"get_user","msg_id":2,"user_id":5}));
    assert_eq!(reply["user"]["name"], "Jane");
    assert_eq!(served, Served::PendingWrite { age: SECOND });
    let (_, stats) = h.node.read_your_writes(0).unwrap();
    assert_eq!((stats.remembered, stats.served_queued), (1, 0));
}

/// `reply` answering message `id`.
fn in_reply_to(mut reply: Value, id: u64) -> Value {
    reply["in_reply_to"] = json!(id);
    reply
}

/// Found in review: a write queued first ("Jane", v1) that drains after a newer one
/// ("Jill", v2) was applied is acknowledged with the service's newer record. Once
/// "Jill"'s window has passed, a degraded read must not be answered with "Jane".
#[test]
fn an_older_write_applied_late_is_never_served_over_the_newer_one() {
    let mut config = read_your_writes(5 * SECOND);
    let q = &mut config.dependencies[0].queue;
    q.in_order = false;
    q.backoff_base = 20 * SECOND;
    q.backoff_max = 20 * SECOND;
    q.jitter = 0.0;
    q.max_attempts = 10;
    config.dependencies[0].breaker.trip_policy = TripPolicy::ConsecutiveFailures {
        failure_threshold: 100,
    };
    let mut h = Harness::with_config(config);
    h.backend[0] = Backend::Down;
    let (reply, _) = h.ask(
        0,
        json!({"type":"update_user","msg_id":1,"user_id":123,"name":"Jane"}),
    );
    assert_eq!(reply["queued"], true, "{reply}");
    h.backend[0] = Backend::Up;
    let (reply, _) = h.ask(
        MILLISECOND,
        json!({"type":"update_user","msg_id":2,"user_id":123,"name":"Jill"}),
    );
    assert_eq!(reply["queued"], false, "{reply}");
    // "Jane" drains at 20 s; the service keeps "Jill".
    h.advance(21 * SECOND);
    assert_eq!(h.node.queue(0).depth(), 0);
    h.backend[0] = Backend::Down;
    let (reply, _) = h.ask(
        21 * SECOND,
        json!({"type":"get_user","msg_id":3,"user_id":123}),
    );
    assert_eq!(reply["user"]["name"], "Jill", "{reply}");
}
