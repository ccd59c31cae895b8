//! Declared services in scenario files: the shop from its file and inline, and every
//! error located in the file it is in.

use std::path::{Path, PathBuf};

use crate::engine::breaker::TripPolicy;
use crate::engine::modes::Mode;
use crate::engine::retry::{Jitter, Pipeline, TimeoutScope};
use crate::engine::{MILLISECOND as MS, SECOND};
use crate::model::latency::Latency;
use crate::model::service::{
    CallOp, CallStep, DependencyId, EndpointId, Fallback, KeySpaceId, Leaf, Service, Step, StepId,
    Tier,
};
use crate::model::workload::Keys;
use crate::model::Scenario;
use crate::node::config::DEFAULT_CALL_TIMEOUT;
use crate::scenario::parse;

const SHOP: &str = include_str!("../../../../services/shop.toml");

/// A scenario of the shop, as if it were in `scenarios/` (the service path is relative
/// to it).
const SCENARIO: &str = r#"duration = "10m"
service = "../services/shop.toml"
[modes]
disabled = { critical = ["recommendations"] }
[[workload]]
rate = 100
mix = { product_page = 4, checkout = 1 }
[[fault]]
dependency = "payments"
kind = "outage"
start = "2m"
end = "5m"
[[random_fault]]
dependency = "inventory"
kind = "latency"
added = "100ms"
mtbf = "4m"
mttr = "10s"
[expect]
min_availability = 0.99
[expect.endpoints.checkout]
min_availability = 0.999
max_p99_latency = "2s"
max_partial_rate = 0.0
max_deadline_misses = 0
[expect.dependencies.payments]
max_failure_rate = 0.5
max_failure_rate_in_faults = 0.75
max_breaker_trips = 3
max_fan_out = 1.0
"#;

fn in_scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/declared-test.toml")
}

/// The scenario with the shop written inline as `[service]` instead of its path.
fn inline(scenario: &str) -> String {
    let mut text: String = scenario
        .lines()
        .filter(|l| !l.starts_with("service ="))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str("[service]\n");
    for line in SHOP.lines() {
        match line.strip_prefix('[') {
            Some(rest) => text.push_str(&format!("[service.{rest}\n")),
            None => text.push_str(&format!("{line}\n")),
        }
    }
    text
}

/// A fresh directory holding `files`.
fn dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("brownout-{}-{name}", std::process::id()));
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// Every error of the scenario at `dir/path`, one per line, paths relative to `dir`.
fn errors_in(dir: &Path, path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(path)).unwrap();
    let e = parse(&text, &dir.join(path)).expect_err("should be refused");
    let prefix = format!("{}/", dir.display());
    e.lines().iter().map(|l| l.replace(&prefix, "")).collect()
}

#[test]
fn a_queue_may_keep_writes_in_order() {
    let text =
        inline(SCENARIO).replace("max_attempts = 12,", "max_attempts = 12, in_order = true,");
    let s = parse(&text, &in_scenarios()).expect("valid");
    let payments = &the_service(&s).dependencies[0];
    assert!(payments.engine.queue.as_ref().expect("a queue").in_order);
    // The seed's queues keep them in order unless the file says otherwise.
    let seed = "duration = \"1m\"\n[dependencies.users.queue]\nin_order = false\n";
    let s = parse(seed, &in_scenarios()).expect("valid");
    assert!(!s.node.dependencies[0].queue.in_order);
    assert!(s.node.dependencies[1].queue.in_order);
}

fn the_service(s: &Scenario) -> &Service {
    s.service.as_deref().expect("a declared service")
}

#[test]
fn the_shop_from_its_file() {
    let s = parse(SCENARIO, &in_scenarios()).unwrap_or_else(|e| panic!("{e}"));
    let shop = the_service(&s);
    assert_eq!(shop.name, "shop");
    let names: Vec<&str> = shop.dependencies.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["payments", "inventory", "recommendations", "orders"]
    );

    let payments = &shop.dependencies[0];
    assert_eq!(
        payments.sim.latency,
        Latency::LogNormal {
            p50: 80 * MS,
            p99: 900 * MS
        }
    );
    assert_eq!(payments.sim.error_rate, 0.002);
    assert_eq!(payments.sim.max_concurrency, Some(200));
    assert_eq!(
        payments.sim.down_latency,
        super::super::DEFAULT_DOWN_LATENCY
    );
    assert_eq!(payments.engine.timeout, 2 * SECOND);
    assert_eq!(
        payments.engine.breaker.trip_policy,
        TripPolicy::TimeWindow {
            window: 10 * SECOND,
            bucket: super::super::DEFAULT_BUCKET,
            min_calls: 20,
            failure_rate: 0.5
        }
    );
    assert_eq!(payments.engine.cache, None);
    let queue = payments.engine.queue.as_ref().expect("a queue");
    assert_eq!(
        (
            queue.capacity,
            queue.drain_rate,
            queue.max_in_flight,
            queue.max_attempts
        ),
        (30_000, 400, 50, 12)
    );
    assert!(
        !queue.in_order,
        "a declared queue holds no write back by default"
    );
    let inventory = &shop.dependencies[1];
    assert_eq!(inventory.engine.timeout, SECOND);
    let cache = inventory.engine.cache.as_ref().expect("a cache");
    assert_eq!((cache.ttl, cache.max_stale), (30 * SECOND, 600 * SECOND));
    assert_eq!(inventory.engine.queue, None);
    let orders = &shop.dependencies[3];
    assert_eq!(orders.engine.timeout, DEFAULT_CALL_TIMEOUT);
    assert!(orders.engine.cache.is_none() && orders.engine.queue.is_some());

    assert_eq!(shop.key_spaces[0].name, "sku");
    assert_eq!(shop.key_spaces[0].keys, Keys::Zipf { n: 50_000, s: 1.1 });
    assert_eq!(shop.key_spaces[1].keys, Keys::Uniform { n: 1_000_000 });
    assert_eq!(shop.features, ["recommendations"]);

    let page = shop.endpoint(shop.endpoint_named("product_page").unwrap());
    assert_eq!(page.key, Some(KeySpaceId(0)));
    assert_eq!(page.deadline, Some(800 * MS));
    assert_eq!(page.tier, Tier::Important);
    assert_eq!(page.plan.steps[0], Step::Seq(vec![StepId(1), StepId(2)]));
    let Step::Call(stock) = &page.plan.steps[1] else {
        panic!("a call")
    };
    assert_eq!(stock.leaf.fallback, vec![Fallback::Cache]);
    assert_eq!(
        page.plan.steps[2],
        Step::Call(CallStep {
            dependency: DependencyId(2),
            op: CallOp::Read,
            key_space: None,
            leaf: Leaf {
                optional: true,
                feature: Some(crate::model::service::FeatureId(0)),
                fallback: vec![Fallback::Cache, Fallback::Omit],
                max_attempts: None,
                fallback_cpu: 0,
            },
        })
    );
    let home = shop.endpoint(EndpointId(1));
    assert_eq!(
        (home.name.as_str(), home.key, home.tier),
        ("home", None, Tier::Optional)
    );
    let Step::Call(recommend) = &home.plan.steps[0] else {
        panic!("a call")
    };
    assert_eq!(recommend.key_space, Some(KeySpaceId(0)));
    assert_eq!(
        recommend.leaf.fallback,
        vec![Fallback::Static("popular".to_owned())]
    );
    let checkout = shop.endpoint(EndpointId(2));
    assert_eq!(checkout.name, "checkout");
    assert_eq!(checkout.tier, Tier::Critical);
    assert_eq!(checkout.deadline, Some(3 * SECOND));
    assert_eq!(
        checkout.plan.steps[0],
        Step::Seq(vec![StepId(1), StepId(4)])
    );
    assert_eq!(
        checkout.plan.steps[1],
        Step::Par(vec![StepId(2), StepId(3)])
    );
    let Step::Call(stock) = &checkout.plan.steps[2] else {
        panic!("a call")
    };
    assert_eq!(stock.key_space, Some(KeySpaceId(0)));
    let Step::Call(order) = &checkout.plan.steps[4] else {
        panic!("a call")
    };
    assert_eq!(
        (order.dependency, order.op),
        (DependencyId(3), CallOp::Write)
    );

    // The scenario's names resolved to the service's ids; endpoint order, zero dropped.
    assert!(s.workload[0].mix.is_empty());
    assert_eq!(
        s.workload[0].endpoints,
        vec![(EndpointId(0), 4.0), (EndpointId(2), 1.0)]
    );
    assert_eq!(s.faults[0].dependency, 0);
    assert_eq!(s.random_faults[0].dependency, 1);
    assert_eq!(s.expect.min_availability, Some(0.99));
    let e = &s.expect.endpoints[0];
    assert_eq!(e.endpoint, EndpointId(2));
    assert_eq!(e.min_availability, Some(0.999));
    assert_eq!(e.max_p99_latency, Some(2 * SECOND));
    assert_eq!(
        (e.max_partial_rate, e.max_deadline_misses),
        (Some(0.0), Some(0))
    );
    let d = &s.expect.dependencies[0];
    assert_eq!(d.dependency, DependencyId(0));
    assert_eq!(d.max_failure_rate, Some(0.5));
    assert_eq!(d.max_failure_rate_in_faults, Some(0.75));
    assert_eq!((d.max_breaker_trips, d.max_fan_out), (Some(3), Some(1.0)));

    // Declared features are disabled under load unless a mode says otherwise.
    let modes = &s.node.modes;
    assert!(modes.disabled_features[&Mode::Normal].is_empty());
    assert_eq!(
        modes.disabled_features[&Mode::Degraded],
        ["recommendations"]
    );
    assert_eq!(
        modes.disabled_features[&Mode::Critical],
        ["recommendations"]
    );
    assert!(modes.critical_features.is_empty());
}

#[test]
fn the_same_shop_inline() {
    let from_file = parse(SCENARIO, &in_scenarios()).unwrap();
    let text = inline(SCENARIO);
    let s = parse(&text, Path::new("inline.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(s.service, from_file.service);
    assert_eq!(s.workload, from_file.workload);
    assert_eq!(s.expect, from_file.expect);
}

#[test]
fn unknown_names_in_a_service_file_are_all_located_there() {
    let service = "name = \"shop\"\n\
                   features = [\"recs\"]\n\
                   [dependencies.inventory]\n\
                   [keys.sku]\n\
                   count = 10\n\
                   [endpoints.page]\n\
                   key = \"skus\"\n\
                   feature = \"rec\"\n\
                   plan = [\n\
                   \x20 { call = \"inventry\", op = \"read\", fallback = [\"cache\", { call = \"cdn\" }] },\n\
                   \x20 { par = [{ call = \"inventory\", op = \"read\", key = \"order\" }] },\n\
                   ]\n";
    let scenario = "duration = \"1m\"\nservice = \"../services/shop.toml\"\n\
                    [[workload]]\nrate = 1\nmix = { page = 1 }\n";
    let dir = dir(
        "unknown-in-service",
        &[("s/x.toml", scenario), ("services/shop.toml", service)],
    );
    let declared = "declared: `inventory`";
    assert_eq!(
        errors_in(&dir, "s/x.toml"),
        [
            "s/../services/shop.toml:7:1: invalid endpoints.page.key: unknown key space `skus`; declared: `sku`".to_owned(),
            "s/../services/shop.toml:8:1: invalid endpoints.page.feature: unknown feature `rec`; declared: `recs`".to_owned(),
            format!("s/../services/shop.toml:10:5: invalid endpoints.page.plan[0].call: unknown dependency `inventry`; {declared}"),
            format!("s/../services/shop.toml:10:60: invalid endpoints.page.plan[0].fallback[1].call: unknown dependency `cdn`; {declared}"),
            "s/../services/shop.toml:11:47: invalid endpoints.page.plan[1].par[0].key: unknown key space `order`; declared: `sku`".to_owned(),
        ]
    );
}

#[test]
fn unknown_names_in_the_scenario_are_all_reported_with_those_of_its_service() {
    let scenario = "duration = \"1m\"\n\
                    service = \"shop.toml\"\n\
                    [modes]\n\
                    disabled = { degraded = [\"recs\", \"recommendations\", \"search\"] }\n\
                    critical_features = [\"login\"]\n\
                    [[workload]]\n\
                    rate = 1\n\
                    mix = { product_pag = 1, checkout = 1 }\n\
                    [[fault]]\n\
                    dependency = \"users\"\n\
                    kind = \"outage\"\n\
                    start = \"1s\"\n\
                    [[random_fault]]\n\
                    dependency = \"paymnts\"\n\
                    kind = \"outage\"\n\
                    mtbf = \"1m\"\n\
                    mttr = \"1s\"\n\
                    [expect.endpoints.chekout]\n\
                    max_deadline_misses = 0\n\
                    [expect.dependencies.orders]\n\
                    max_fan_out = 1\n";
    let service = SHOP.replace("call = \"orders\"", "call = \"order\"");
    let dir = dir(
        "unknown-in-scenario",
        &[("x.toml", scenario), ("shop.toml", &service)],
    );
    let deps = "declared: `payments`, `inventory`, `recommendations`, `orders`";
    let endpoints = "declared: `product_page`, `home`, `checkout`";
    let features = "declared: `recommendations`";
    let order_line = SHOP
        .lines()
        .position(|l| l.contains("call = \"orders\""))
        .unwrap()
        + 1;
    assert_eq!(
        errors_in(&dir, "x.toml"),
        [
            format!("x.toml:4:26: invalid modes.disabled.degraded[0]: unknown feature `recs`; {features}"),
            format!("x.toml:4:53: invalid modes.disabled.degraded[2]: unknown feature `search`; {features}"),
            format!("x.toml:5:22: invalid modes.critical_features[0]: unknown feature `login`; {features}"),
            format!("x.toml:8:9: invalid workload[0].mix.product_pag: unknown endpoint `product_pag`; {endpoints}"),
            format!("x.toml:10:1: invalid fault[0].dependency: unknown dependency `users`; {deps}"),
            format!("x.toml:14:1: invalid random_fault[0].dependency: unknown dependency `paymnts`; {deps}"),
            format!("x.toml:18:19: invalid expect.endpoints.chekout: unknown endpoint `chekout`; {endpoints}"),
            format!("shop.toml:{order_line}:5: invalid endpoints.checkout.plan[1].call: unknown dependency `order`; {deps}"),
        ]
    );
}

#[test]
fn a_missing_service_file_is_an_error_at_the_service_key() {
    let scenario = "duration = \"1m\"\nname = \"x\"\nservice = \"nope/shop.toml\"\n\
                    [[workload]]\nrate = 1\nmix = { checkout = 1 }\n";
    let dir = dir("missing", &[("x.toml", scenario)]);
    let lines = errors_in(&dir, "x.toml");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]
            .starts_with("x.toml:3:1: cannot read the service file nope/shop.toml: No such file"),
        "{lines:?}"
    );
    // A scenario error is reported beside it.
    let dir = self::dir(
        "missing-and-bad",
        &[("x.toml", &format!("{scenario}bogus = 1\n"))],
    );
    let lines = errors_in(&dir, "x.toml");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("x.toml:3:1: cannot read"), "{lines:?}");
    assert!(
        lines[1].starts_with("x.toml:7:1: unknown key `bogus`"),
        "{lines:?}"
    );
}

#[test]
fn errors_in_a_service_file_name_that_file() {
    let service =
        "name = \"s\"\nbogus = 1\n[dependencies.a]\ntimeout = 5\n[endpoints.e]\nplan = []\n";
    let dir = dir(
        "service-syntax",
        &[
            ("x.toml", "duration = \"0s\"\nservice = \"s.toml\"\n"),
            ("s.toml", service),
        ],
    );
    let lines = errors_in(&dir, "x.toml");
    assert_eq!(
        lines,
        [
            "s.toml:2:1: unknown key `bogus`, expected one of `name`, `features`, `dependencies`, `keys`, `endpoints`, `admission`, `compute`",
            "s.toml:4:11: expected a duration such as \"250ms\" or \"3m\", got 5",
        ]
    );
    // A syntax error in the service file is reported alone for that file.
    let dir = self::dir(
        "service-toml",
        &[
            ("x.toml", "duration = \"1m\"\nservice = \"s.toml\"\n"),
            ("s.toml", "[endpoints\n"),
        ],
    );
    let lines = errors_in(&dir, "x.toml");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("s.toml:1:11: "), "{lines:?}");
}

/// `(line, column, message)` of every error of an inline scenario.
fn inline_errors(text: &str) -> Vec<(usize, usize, String)> {
    let e = parse(text, Path::new("t.toml")).expect_err("should be refused");
    e.errors
        .into_iter()
        .map(|e| {
            let (l, c) = e.position.unwrap();
            (l, c, e.message)
        })
        .collect()
}

/// Every error of an inline scenario, as `line:column: message`.
fn shown(text: &str) -> Vec<String> {
    inline_errors(text)
        .into_iter()
        .map(|(l, c, m)| format!("{l}:{c}: {m}"))
        .collect()
}

#[test]
fn seed_only_keys_are_refused_with_a_declared_service() {
    let text = "duration = \"1m\"\n\
                [data.users]\ncount = 3\n\
                [dependencies.payments]\ntimeout = \"1s\"\n\
                [[workload]]\nrate = 1\nmix = { e = 1 }\nusers = { dist = \"uniform\" }\n\
                [service]\n[service.dependencies.d]\n[service.keys.k]\n[service.endpoints.e]\n\
                key = \"k\"\nplan = [{ call = \"d\", op = \"read\" }]\n";
    let got: Vec<(usize, usize, String)> = inline_errors(text);
    let at: Vec<(usize, usize)> = got.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(at, [(2, 2), (4, 2), (9, 1)], "{got:?}");
    assert!(got[0]
        .2
        .starts_with("invalid data: is the seed service's data set"));
    assert!(got[1]
        .2
        .starts_with("invalid dependencies: configures the seed service's"));
    assert!(got[2]
        .2
        .starts_with("invalid workload[0].users: draws the seed service's keys"));
    // And a declared service's expectations without one.
    let got =
        inline_errors("duration = \"1m\"\n[expect.endpoints.checkout]\nmax_deadline_misses = 0\n");
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0, got[0].1), (2, 9));
    assert!(got[0]
        .2
        .starts_with("invalid expect.endpoints: checks a declared service's parts"));
}

#[test]
fn the_shapes_of_steps_fallbacks_keys_and_names() {
    let text = r#"duration = "1m"
[service]
features = ["a.b"]
[service.dependencies.d]
cache = { capacity = 0 }
[service.keys]
k = { count = 0 }
z = { count = 10, s = 2.0 }
r = { count = 10, records = { 7 = "seven", 11 = "eleven", x = "x" } }
[service.endpoints.status]
plan = [{ call = "d" }]
[service.endpoints.e]
key = "r"
plan = [
  { call = "d", seq = [] },
  {},
  { seq = [{ call = "d", op = "read" }], optional = true },
  { call = "d", op = "read", fallback = ["stale", { static = "x", call = "d" }, {}, { static = "x", op = "read" }] },
]
"#;
    let shown = shown(text);
    assert_eq!(
        shown,
        [
            "18:42: expected a fallback: \"cache\", \"omit\", { static = \"...\" } or { call = \"...\", op = \"read\" }, got \"stale\"",
        ],
        "{shown:#?}"
    );
    // Without it, every other error is reported at once.
    let text = text.replace("\"stale\", ", "");
    let shown = self::shown(&text);
    assert_eq!(
        shown,
        [
            "3:13: invalid service.features[0]: `a.b`: a name is ASCII letters, digits, `_` and `-`",
            "5:11: invalid service.dependencies.d.cache.capacity: must be at least 1; a cache that holds nothing cannot serve stale",
            "7:7: invalid service.keys.k.count: must be positive",
            "8:19: invalid service.keys.z.s: does not apply to dist = \"uniform\", which takes count",
            "9:44: invalid service.keys.r.records.11: key 11 is outside the space's keys 1..=10",
            "9:59: invalid service.keys.r.records.x: `x`: a record's key is one of the space's keys, 1..=10",
            "10:20: invalid service.endpoints.status: `status` is a control message, which stays built in; name the endpoint otherwise",
            "11:9: invalid service.endpoints.status.plan[0].op: is required by a call: \"read\" or \"write\"",
            "15:17: invalid service.endpoints.e.plan[0].seq: a step is one of a call, a seq and a par; this one is also a `call`",
            "16:3: invalid service.endpoints.e.plan[1]: a step is a call ({ call = \"...\", op = \"read\" }), a { seq = [...] } or a { par = [...] }",
            "17:42: invalid service.endpoints.e.plan[2].optional: applies to a call; a `seq` takes only its steps",
            "18:58: invalid service.endpoints.e.plan[3].fallback[0].call: a fallback is { static = \"...\" } or { call = \"...\" }, not both",
            "18:72: invalid service.endpoints.e.plan[3].fallback[1]: needs `static` (a canned answer) or `call` (another dependency)",
            "18:92: invalid service.endpoints.e.plan[3].fallback[2].op: does not apply to a static fallback, which takes only `static`",
        ],
        "{shown:#?}"
    );
}

#[test]
fn a_retry_and_a_pipeline_are_read_and_checked_where_they_are_written() {
    let with = |lines: &str| {
        inline(SCENARIO).replace(
            "timeout = \"2s\"\n",
            &format!("timeout = \"2s\"\n{lines}\n"),
        )
    };
    let text = with(
        "retry = { max_attempts = 4, jitter = \"equal\", on = [\"timeout\"], budget = { ratio = 0.1 } }\n\
         pipeline = [\"breaker\", \"retry\"]",
    );
    let s = parse(&text, &in_scenarios()).expect("valid");
    let engine = &the_service(&s).dependencies[0].engine;
    let retry = engine.retry.as_ref().expect("a retry");
    assert_eq!((retry.max_attempts, retry.jitter), (4, Jitter::Equal));
    assert_eq!(
        (retry.on.timeout, retry.on.error, retry.on.unavailable),
        (true, false, false)
    );
    let budget = retry.budget.expect("a budget");
    assert_eq!((budget.ratio, budget.min_per_sec), (0.1, 10));
    assert_eq!(engine.pipeline, Pipeline::BreakerThenRetry);

    let text = with("retry = { max_attempts = 0 }\npipeline = [\"breaker\", \"bulkhead\"]");
    let errors = shown(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let line_of = |needle: &str| 1 + text.lines().position(|l| l.starts_with(needle)).unwrap();
    assert!(
        errors[0].starts_with(&format!("{}:", line_of("retry =")))
            && errors[0].contains("max_attempts"),
        "{errors:#?}"
    );
    assert!(
        errors[1].starts_with(&format!("{}:", line_of("pipeline =")))
            && errors[1].contains("must name \"retry\" and \"breaker\""),
        "{errors:#?}"
    );

    // The issue's example order: bulkhead inside the breaker, a timeout per attempt.
    let full = "retry = { max_attempts = 3 }\nbulkhead = { max_concurrent_calls = 5 }\n\
                pipeline = [\"retry\", \"breaker\", \"bulkhead\", \"timeout\"]";
    let s = parse(&with(full), &in_scenarios()).expect("valid");
    let engine = &the_service(&s).dependencies[0].engine;
    assert_eq!(engine.pipeline, Pipeline::RetryThenBreaker);
    assert_eq!(engine.timeout_scope, TimeoutScope::PerAttempt);
    // A timeout outside the retry bounds the whole call.
    let whole = full.replace(
        "[\"retry\", \"breaker\", \"bulkhead\", \"timeout\"]",
        "[\"timeout\", \"breaker\", \"retry\"]",
    );
    let s = parse(&with(&whole), &in_scenarios()).expect("valid");
    let engine = &the_service(&s).dependencies[0].engine;
    assert_eq!(engine.pipeline, Pipeline::BreakerThenRetry);
    assert_eq!(engine.timeout_scope, TimeoutScope::WholeCall);
    // A bulkhead outside the breaker, or named without one, is refused at its line.
    for (order, needle) in [
        (
            "[\"bulkhead\", \"retry\", \"breaker\"]",
            "a bulkhead outside the breaker",
        ),
        ("[\"retry\", \"breaker\", \"retry\"]", "each once"),
    ] {
        let bad = full.replace("[\"retry\", \"breaker\", \"bulkhead\", \"timeout\"]", order);
        let errors = shown(&with(&bad));
        assert!(
            errors.len() == 1 && errors[0].contains(needle),
            "{errors:#?}"
        );
    }
    let no_bulkhead = with("retry = {}\npipeline = [\"retry\", \"breaker\", \"bulkhead\"]");
    let errors = shown(&no_bulkhead);
    assert!(errors[0].contains("no `bulkhead` table"), "{errors:#?}");
}

#[test]
fn admission_bulkhead_and_compute_keys_are_read_and_their_errors_located() {
    let service = "duration = \"1m\"\n\
                   [service]\n\
                   [service.admission]\nmax_in_flight = 10\nqueue = 4\n\
                   [service.compute]\ncores = 2\nwindow = \"500ms\"\n\
                   [service.dependencies.d]\ncpu_per_call = \"1ms\"\n\
                   bulkhead = { max_concurrent_calls = 3, max_wait = \"5ms\" }\n\
                   [service.keys.k]\n\
                   [service.endpoints.e]\nkey = \"k\"\ntier = \"optional\"\ncpu = \"2ms\"\n\
                   plan = [{ call = \"d\", op = \"read\" }]\n\
                   [[workload]]\nrate = 1\nmix = { e = 1 }\n";
    let s = parse(service, Path::new("t.toml")).expect("valid");
    let svc = the_service(&s);
    let admission = svc.admission.as_ref().expect("admission");
    // A tenth of the slots kept for each upper tier unless the file says.
    assert_eq!(
        (
            admission.reserve_critical,
            admission.reserve_important,
            admission.queue
        ),
        (1, 1, 4)
    );
    assert_eq!(admission.max_wait, 100 * 1_000);
    let compute = svc.compute.as_ref().expect("compute");
    assert_eq!(
        (compute.cores, compute.window, compute.slowdown),
        (2, 500_000, true)
    );
    let d = &svc.dependencies[0].engine;
    assert_eq!(d.cpu_per_call, 1_000);
    let bulkhead = d.bulkhead.as_ref().expect("a bulkhead");
    assert_eq!(
        (bulkhead.max_concurrent_calls, bulkhead.max_wait),
        (3, 5_000)
    );
    assert_eq!(svc.endpoints[0].cpu, 2_000);
    // Errors, each at its line: reserves that leave optional requests no slot, a
    // bulkhead of no calls, and costs with no [compute] to count them.
    let bad = service
        .replace(
            "max_in_flight = 10\nqueue = 4\n",
            "max_in_flight = 10\nreserve_critical = 5\nreserve_important = 5\n",
        )
        .replace("max_concurrent_calls = 3", "max_concurrent_calls = 0")
        .replace("[service.compute]\ncores = 2\nwindow = \"500ms\"\n", "");
    let got = shown(&bad);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with("5:1: ") && got[0].contains("must be less than max_in_flight"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("9:14: ") && got[1].contains("max_concurrent_calls: must be at least 1"),
        "{got:?}"
    );
    assert!(
        got[2].starts_with("14:1: ")
            && got[2].contains("endpoints.e.cpu: counts only with a [compute] table"),
        "{got:?}"
    );
    // The dependency's cost too, once its bulkhead is valid.
    let bad = service.replace("[service.compute]\ncores = 2\nwindow = \"500ms\"\n", "");
    let got = shown(&bad);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("7:1: ") && got[0].contains("dependencies.d.cpu_per_call"),
        "{got:?}"
    );
}

#[test]
fn a_call_may_cap_its_attempts_within_its_dependency_policy() {
    let text = "duration = \"1m\"\n\
                [service]\n\
                [service.dependencies.d]\nretry = { max_attempts = 3 }\n\
                [service.dependencies.plain]\n\
                [service.keys.k]\n\
                [service.endpoints.e]\nkey = \"k\"\n\
                plan = [{ call = \"d\", op = \"write\", max_attempts = 1 }]\n\
                [[workload]]\nrate = 1\nmix = { e = 1 }\n";
    let s = parse(text, Path::new("t.toml")).expect("valid");
    match &the_service(&s).endpoints[0].plan.steps[0] {
        crate::model::service::Step::Call(call) => assert_eq!(call.leaf.max_attempts, Some(1)),
        other => panic!("{other:?}"),
    }
    let got = shown(&text.replace("max_attempts = 1 }]", "max_attempts = 4 }]"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("9:37: ")
            && got[0].contains(
                "between 1 (never retried) and the dependency's own max_attempts (3), got 4"
            ),
        "{got:?}"
    );
    let got = shown(&text.replace("call = \"d\"", "call = \"plain\""));
    assert!(got[0].contains("`plain` has no retry policy"), "{got:?}");
}
