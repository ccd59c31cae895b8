//! End-to-end tests of the simulator on scenarios built in code (the file format has
//! its own tests): determinism, stream independence, and the outage story.

use std::path::PathBuf;

use crate::engine::SECOND;
use crate::model::{Expectations, RequestKind, Scenario, SimDependency, WorkloadStream};
use crate::node::{Collection, DataSet, NodeConfig};

use super::{check_determinism, run, Report, RunOptions};
use crate::model::workload::{Keys, RatePhase, RatePlan};
use crate::model::Latency;
use crate::model::{Fault, FaultKind, RandomFaults};

fn collection(count: u64) -> Collection {
    Collection {
        count,
        records: Default::default(),
        warm: true,
    }
}

fn stream(name: &str, rate: f64, seconds: u64) -> WorkloadStream {
    WorkloadStream {
        name: name.into(),
        rate: RatePlan {
            phases: vec![RatePhase::Constant {
                from: 0,
                to: seconds * SECOND,
                rate_per_sec: rate,
            }],
        },
        mix: vec![
            (RequestKind::GetUser, 50.0),
            (RequestKind::GetProduct, 30.0),
            (RequestKind::UpdateUser, 10.0),
            (RequestKind::Search, 10.0),
        ],
        endpoints: vec![],
        user_keys: Keys::Zipf { n: 500, s: 1.1 },
        product_keys: Keys::Uniform { n: 200 },
    }
}

/// One minute at 200 requests per second, the users service down from 20 s to 40 s,
/// plus random product outages so that fault draws matter.
fn outage() -> Scenario {
    let dep = SimDependency {
        latency: Latency::LogNormal {
            p50: 10_000,
            p99: 80_000,
        },
        error_rate: 0.001,
        down_latency: 1_000,
        max_concurrency: None,
    };
    Scenario {
        service: None,
        name: "outage".into(),
        description: "users down 20s..40s".into(),
        path: PathBuf::from("scenarios/outage.toml"),
        seed: 7,
        // Traffic stops at 60 s; the last 30 s show the write queue draining.
        duration: 90 * SECOND,
        node: NodeConfig::default(),
        data: DataSet {
            collections: [collection(500), collection(200)],
        },
        dependencies: [dep.clone(), dep],
        faults: vec![Fault {
            dependency: 0,
            kind: FaultKind::Outage,
            start: 20 * SECOND,
            end: 40 * SECOND,
        }],
        random_faults: vec![RandomFaults {
            dependency: 1,
            mtbf: 20 * SECOND,
            mttr: 2 * SECOND,
            kind: FaultKind::Outage,
        }],
        cpu: None,
        workload: vec![stream("web", 200.0, 60)],
        script: vec![],
        expect: Expectations {
            min_availability: Some(0.95),
            breaker_opens_within: Some(SECOND),
            breaker_closes_within: Some(30 * SECOND),
            max_writes_lost: Some(0),
            ..Expectations::default()
        },
        overrides: Vec::new(),
    }
}

fn trace(scenario: &Scenario, seed: u64) -> (Report, String) {
    let mut out = Vec::new();
    let report = run(
        scenario,
        RunOptions {
            seed,
            trace: Some(&mut out),
            digest: true,
        },
    )
    .unwrap();
    (report, String::from_utf8(out).unwrap())
}

#[test]
fn same_seed_same_bytes_and_self_check_passes() {
    let s = outage();
    let (a, ta) = trace(&s, 7);
    let (b, tb) = trace(&s, 7);
    assert_eq!(ta, tb);
    assert_eq!(a, b);
    assert_eq!(a.render_text(), b.render_text());
    assert_eq!(check_determinism(&s, 7).unwrap(), a.trace_digest.unwrap());
}

#[test]
fn different_seeds_draw_differently() {
    let s = outage();
    let (_, ta) = trace(&s, 7);
    let (_, tb) = trace(&s, 8);
    assert_ne!(ta, tb);
}

#[test]
fn a_second_workload_stream_leaves_fault_draws_alone() {
    let fault_lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.contains("\"type\":\"fault_"))
            .map(str::to_owned)
            .collect()
    };
    let one = outage();
    let mut two = outage();
    two.workload.push(stream("batch", 50.0, 60));
    let (_, t1) = trace(&one, 7);
    let (_, t2) = trace(&two, 7);
    let (f1, f2) = (fault_lines(&t1), fault_lines(&t2));
    assert!(f1.len() > 2, "random faults should have fired: {f1:?}");
    assert_eq!(f1, f2);
    // The first stream's arrivals are unchanged too: its requests are the same.
    let web = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.contains("\"source\":\"web\""))
            .map(|l| l.split("\"id\":").next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(web(&t1), web(&t2));
}

#[test]
fn the_outage_story_holds() {
    let s = outage();
    let (report, _) = trace(&s, 7);
    let text = report.render_text();
    assert!(report.passed(), "{text}");
    let users = &report.dependencies[0];
    assert!(users.breaker_trips >= 1, "{text}");
    assert!(users.stale_serves + report.requests[0].cached > 0, "{text}");
    assert!(
        users.queue_accepted > 0,
        "writes were queued during the outage: {text}"
    );
    assert_eq!(users.queue_at_end, 0, "{text}");
    assert_eq!(users.final_state, "closed", "{text}");
    assert!(report.availability > 0.95, "{text}");
}

#[test]
fn a_concurrency_limit_refuses_the_excess_and_frees_slots_on_answer() {
    // 200 rps, ~80% of it to users at a constant 50 ms: about 8 calls in flight on
    // average, so a limit of 4 refuses some and never leaks slots (if answers did not
    // free them, every call after the first four would be refused).
    let mut s = outage();
    s.faults.clear();
    s.random_faults.clear();
    s.dependencies[0].latency = Latency::Constant(50_000);
    s.dependencies[0].error_rate = 0.0;
    s.dependencies[0].max_concurrency = Some(4);
    let (report, _) = trace(&s, 7);
    let users = &report.dependencies[0];
    assert!(users.overloads > 0, "{}", report.render_text());
    assert!(
        users.overloads < users.calls / 2,
        "{}",
        report.render_text()
    );
    assert!(users.failures >= users.overloads);
    assert!(report.render_text().contains("refused as overloaded"));
    let (_, lines) = trace(&s, 7);
    let overloaded = lines
        .lines()
        .filter(|l| l.contains("\"result\":\"overloaded\""))
        .count() as u64;
    assert_eq!(
        overloaded, users.overloads,
        "every overload is in the trace"
    );

    s.dependencies[0].max_concurrency = None;
    let (report, _) = trace(&s, 7);
    assert_eq!(report.dependencies[0].overloads, 0);
}
