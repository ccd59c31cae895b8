//! The work budget: what a scenario will cost, estimated from its configuration before
//! anything runs, and refused when a typo has multiplied it past what a run can do.
//!
//! A simulation's memory is bounded by its configuration, not by its traffic: requests
//! are answered and forgotten, the event queue holds only what is pending. But some
//! products of the configuration are unbounded in practice: `rate = 1e12`, a `1h`
//! timeout at 10 000 requests per second, `mtbf = "1us"` over an hour. Each would run
//! out of memory or run for days with no word. [`estimate`] computes, from the file
//! alone:
//!
//! - **requests**: the integral of every stream's rate over the run, plus scripts;
//! - **outstanding**: requests and calls waiting at once. The simulator keeps them in
//!   rings spanning the oldest to the newest outstanding one ([`crate::seqmap`]), so the
//!   bound is the peak arrival rate times the longest a request can wait (the longest
//!   call timeout among the dependencies its mix calls), whatever a concurrency limit
//!   refuses meanwhile;
//! - **entries held**: the data set's records (each service holds its own), cache
//!   entries (at most the cache's capacity and the key space), queued writes (at most
//!   the queue's capacity and the writes sent), writes read-your-writes remembers (at
//!   most the queue's capacity plus 1 024, and the writes sent) and records that
//!   writes create beyond the data set, and each stream's zipf alias tables (one
//!   entry per key);
//! - **fault windows**: the expected number of random fault windows, `duration / (mtbf
//!   + mttr)` per entry;
//! - **CPU samples**: `duration / every`;
//! - with `--trace`, the **trace**'s size, about [`TRACE_BYTES_PER_REQUEST`] a request
//!   ([`check_trace`]).
//!
//! A scenario with a declared service is estimated from its plans: a request waits at
//! most the sum of its `seq`s' and the longest of its `par`s' call timeouts (each
//! call's fallback calls added to it), cut at its deadline, and makes at most one call
//! per call step and fallback call, so outstanding is the peak rate x the longest wait
//! x the most calls a request makes. Its entries are the key spaces' records, each
//! stream's zipf tables of the key spaces its endpoints' requests draw from, and per
//! dependency its cache entries (at most `capacity` and the keys read), queued writes
//! and its store's slots: one per record of the key spaces its calls use
//! (`Service::collection`), held from the start whether written or not.
//!
//! [`Limits::DEFAULT`] is documented in `scenarios/README.md`; `--allow-large` lifts it.

use crate::engine::ryw::EXTRA_ENTRIES;
use crate::engine::{HumanSpan, Span, SECOND};
use crate::model::service::{CallStep, DependencyId, Endpoint, Fallback, Service, Step, StepId};
use crate::model::workload::Keys;
use crate::model::{RequestKind, Scenario};
use crate::node::Resource;
use crate::sim::workload::MAX_ZIPF_TABLE_KEYS;

/// The most of each kind of work a run may take on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests over the run.
    pub requests: f64,
    /// Requests and calls outstanding at once.
    pub outstanding: f64,
    /// Records, cache entries, queued writes and created records held at once.
    pub entries: f64,
    /// Random fault windows over the run.
    pub fault_windows: f64,
    /// CPU samples over the run.
    pub cpu_samples: f64,
}

impl Limits {
    /// The default budget: a run within it finishes in well under a minute and a few
    /// hundred MiB (about 6 million requests a second and 150 bytes per outstanding
    /// request on the benchmark machine).
    pub const DEFAULT: Limits = Limits {
        requests: 1e8,
        outstanding: 1e6,
        entries: 2e7,
        fault_windows: 1e6,
        cpu_samples: 1e8,
    };

    /// No limit at all (`--allow-large`).
    pub const NONE: Limits = Limits {
        requests: f64::INFINITY,
        outstanding: f64::INFINITY,
        entries: f64::INFINITY,
        fault_windows: f64::INFINITY,
        cpu_samples: f64::INFINITY,
    };
}

/// Bytes of trace a request takes, about (its request, reply, call and answer lines;
/// `outage.toml` writes 488).
pub const TRACE_BYTES_PER_REQUEST: f64 = 500.0;

/// The largest trace a run may write without `--allow-large`: 16 GiB.
pub const MAX_TRACE_BYTES: f64 = 16.0 * 1024.0 * 1024.0 * 1024.0;

/// The refusal of a traced run whose trace would pass [`MAX_TRACE_BYTES`], if it would.
pub fn check_trace(scenario: &Scenario) -> Option<Refusal> {
    let bytes = estimate(scenario).requests * TRACE_BYTES_PER_REQUEST;
    (bytes > MAX_TRACE_BYTES).then(|| Refusal {
        key: heaviest(&scenario.workload, "workload", "rate", |w| {
            w.rate.expected_arrivals()
        }),
        message: format!(
            "a trace of about {} GB (some {} bytes a request); the limit is 16 GiB; \
             trace a shorter run, or pass `--allow-large`",
            count((bytes / 1e9).round()),
            TRACE_BYTES_PER_REQUEST
        ),
    })
}

/// What a scenario is expected to cost; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Estimate {
    /// Requests over the run.
    pub requests: f64,
    /// Requests and calls outstanding at once, at most.
    pub outstanding: f64,
    /// Records, cache entries, queued writes and created records held at once, at most.
    pub entries: f64,
    /// Random fault windows over the run, expected.
    pub fault_windows: f64,
    /// CPU samples over the run.
    pub cpu_samples: f64,
}

/// One budget the scenario exceeds: the key to change and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The key path in the file that drives the estimate (`workload[0].rate`).
    pub key: String,
    /// The estimate, the limit and what to change.
    pub message: String,
}

/// Kinds that call the dependency serving `resource`.
fn calls(kind: RequestKind) -> Option<Resource> {
    match kind {
        RequestKind::GetUser | RequestKind::UpdateUser => Some(Resource::Users),
        RequestKind::GetProduct | RequestKind::UpdateProduct => Some(Resource::Products),
        RequestKind::GetRecommendations | RequestKind::Search => None,
    }
}

fn is_write(kind: RequestKind) -> bool {
    matches!(kind, RequestKind::UpdateUser | RequestKind::UpdateProduct)
}

fn key_count(keys: &Keys) -> f64 {
    match *keys {
        Keys::Uniform { n } | Keys::Zipf { n, .. } => n as f64,
    }
}

fn seconds(span: Span) -> f64 {
    span as f64 / SECOND as f64
}

/// The work `scenario` will take on; see the module documentation.
pub fn estimate(scenario: &Scenario) -> Estimate {
    let mut e = Estimate {
        requests: scenario.script.len() as f64,
        ..Estimate::default()
    };
    let duration = seconds(scenario.duration);
    for entry in &scenario.random_faults {
        e.fault_windows += duration / seconds(entry.mtbf + entry.mttr);
    }
    if let Some(cpu) = &scenario.cpu {
        e.cpu_samples = duration / seconds(cpu.every);
    }
    // A node that measures its CPU samples it every tenth of its window.
    if let Some(compute) = scenario.service.as_ref().and_then(|s| s.compute.as_ref()) {
        let every = compute.window / crate::engine::compute::BUCKETS as Span;
        e.cpu_samples += duration / seconds(every);
    }
    match &scenario.service {
        None => estimate_seed(scenario, &mut e),
        Some(service) => {
            estimate_declared(scenario, service, &mut e);
        }
    }
    e
}

/// What one request of an endpoint does at most: its calls (fallback calls counted as
/// made), the longest it waits, and per dependency its reads, writes and the largest
/// key space they use.
#[derive(Debug, Default)]
struct RequestLoad {
    calls: f64,
    wait: Span,
    reads: Vec<f64>,
    writes: Vec<f64>,
    keys: Vec<f64>,
}

fn request_load(service: &Service, endpoint: &Endpoint) -> RequestLoad {
    let n = service.dependencies.len();
    let mut load = RequestLoad {
        reads: vec![0.0; n],
        writes: vec![0.0; n],
        keys: vec![0.0; n],
        ..RequestLoad::default()
    };
    let wait = step_wait(service, endpoint, endpoint.plan.root, &mut load);
    load.wait = endpoint.deadline.map_or(wait, |d| wait.min(d));
    load
}

/// The longest step `id` can wait, with its calls added to `load`. Recursion is bounded
/// by the plan's depth (`MAX_PLAN_DEPTH`).
fn step_wait(service: &Service, endpoint: &Endpoint, id: StepId, load: &mut RequestLoad) -> Span {
    match endpoint.plan.step(id) {
        Step::Call(call) => call_wait(service, endpoint, call, load),
        Step::Local(_) => 0,
        Step::Seq(children) => children.iter().fold(0, |wait: Span, &c| {
            wait.saturating_add(step_wait(service, endpoint, c, load))
        }),
        Step::Par(children) => children
            .iter()
            .map(|&c| step_wait(service, endpoint, c, load))
            .max()
            .unwrap_or(0),
    }
}

fn call_wait(
    service: &Service,
    endpoint: &Endpoint,
    call: &CallStep,
    load: &mut RequestLoad,
) -> Span {
    let space = call.key_space.or(endpoint.key);
    let keys = space.map_or(1.0, |s| key_count(&service.key_spaces[s.index()].keys));
    let fallbacks = call.leaf.fallback.iter().filter_map(|f| match f {
        Fallback::Call { dependency, op } => Some((*dependency, *op)),
        _ => None,
    });
    let mut wait: Span = 0;
    for (dependency, op) in std::iter::once((call.dependency, call.op)).chain(fallbacks) {
        let i = dependency.index();
        load.calls += 1.0;
        match op {
            crate::model::service::CallOp::Read => load.reads[i] += 1.0,
            crate::model::service::CallOp::Write => load.writes[i] += 1.0,
        }
        load.keys[i] = load.keys[i].max(keys);
        wait = wait.saturating_add(service.dependencies[i].engine.timeout);
    }
    wait
}

/// The outstanding work and held entries of a scenario with a declared service; the
/// dependency whose timeout drives the longest wait, if any.
fn estimate_declared(scenario: &Scenario, service: &Service, e: &mut Estimate) -> Option<usize> {
    let loads: Vec<RequestLoad> = service
        .endpoints
        .iter()
        .map(|endpoint| request_load(service, endpoint))
        .collect();
    let n = service.dependencies.len();
    let (mut reads, mut writes, mut keys) = (vec![0.0f64; n], vec![0.0f64; n], vec![0.0f64; n]);
    let (mut peak_rate, mut longest_wait, mut most_calls) = (0.0, 0, 1.0f64);
    for stream in &scenario.workload {
        let requests = stream.rate.expected_arrivals();
        e.requests += requests;
        peak_rate += stream.rate.peak_rate();
        let total_weight: f64 = stream.endpoints.iter().map(|&(_, w)| w).sum();
        // The key spaces the stream's requests and calls draw from, each with its table.
        let mut spaces = vec![false; service.key_spaces.len()];
        for &(id, weight) in &stream.endpoints {
            let endpoint = service.endpoint(id);
            let load = &loads[id.index()];
            longest_wait = longest_wait.max(load.wait);
            most_calls = most_calls.max(load.calls);
            let share = if total_weight > 0.0 {
                weight / total_weight
            } else {
                0.0
            };
            for i in 0..n {
                reads[i] += requests * share * load.reads[i];
                writes[i] += requests * share * load.writes[i];
                keys[i] = keys[i].max(load.keys[i]);
            }
            // Only requests' keys are drawn; a call in another space maps the
            // request's key into it.
            if let Some(space) = endpoint.key {
                spaces[space.index()] = true;
            }
        }
        for (space, _) in service
            .key_spaces
            .iter()
            .zip(&spaces)
            .filter(|(_, used)| **used)
        {
            if let Keys::Zipf { n, .. } = space.keys {
                if n <= MAX_ZIPF_TABLE_KEYS {
                    e.entries += n as f64;
                }
            }
        }
    }
    // A request may also wait for an admission slot, and its reply be held for its
    // CPU time stretched at most MAX_RHO's factor (x20).
    if let Some(admission) = service.admission.as_ref().filter(|a| a.queue > 0) {
        longest_wait = longest_wait.saturating_add(admission.max_wait);
    }
    if service.compute.as_ref().is_some_and(|c| c.slowdown) {
        let cpu = service.endpoints.iter().map(|e| e.cpu).max().unwrap_or(0);
        let factor = (1.0 / (1.0 - crate::engine::compute::MAX_RHO)).ceil() as u64;
        longest_wait = longest_wait.saturating_add(cpu.saturating_mul(factor));
    }
    e.outstanding = peak_rate * seconds(longest_wait.min(scenario.duration)) * most_calls;
    e.entries += service
        .key_spaces
        .iter()
        .map(|s| s.records.len() as f64)
        .sum::<f64>();
    for (i, dep) in service.dependencies.iter().enumerate() {
        let cached = dep
            .engine
            .cache
            .as_ref()
            .map_or(0.0, |c| (c.capacity as f64).min(reads[i].min(keys[i])));
        let queued = dep
            .engine
            .queue
            .as_ref()
            .map_or(0.0, |q| (q.capacity as f64).min(writes[i]));
        // The store holds a slot per record of the key spaces its calls use, written
        // or not; writes stay within them, so they create none.
        let records = service.collection(DependencyId(i as u16)).count as f64;
        // Read-your-writes remembers at most the queue's capacity plus a fixed room.
        let remembered = dep.engine.read_your_writes.map_or(0.0, |_| {
            let queue = dep.engine.queue.as_ref().map_or(0, |q| q.capacity);
            ((queue + EXTRA_ENTRIES) as f64).min(writes[i])
        });
        e.entries += cached + queued + records + remembered;
    }
    // The called dependency with the longest timeout.
    (0..n)
        .filter(|&i| reads[i] + writes[i] > 0.0)
        .max_by_key(|&i| (service.dependencies[i].engine.timeout, std::cmp::Reverse(i)))
}

/// The outstanding work and held entries of a scenario of the seed service.
fn estimate_seed(scenario: &Scenario, e: &mut Estimate) {
    // Per dependency: reads and writes sent, and the largest key space read.
    let mut reads = [0.0f64; 2];
    let mut writes = [0.0f64; 2];
    let mut keys = [0.0f64; 2];
    // One ring holds every stream's requests, so it spans the sum of the peak rates
    // times the longest wait of any (a request answered at once still sits behind the
    // oldest one waiting); the node's and the simulator's rings of calls likewise.
    let mut peak_rate = 0.0;
    let mut longest_wait: Span = 0;
    for stream in &scenario.workload {
        let (requests, peak) = (stream.rate.expected_arrivals(), stream.rate.peak_rate());
        e.requests += requests;
        // Each stream builds its own alias table for a zipf of up to 2^20 keys.
        for space in [&stream.user_keys, &stream.product_keys] {
            if let Keys::Zipf { n, .. } = *space {
                if n <= MAX_ZIPF_TABLE_KEYS {
                    e.entries += n as f64;
                }
            }
        }
        peak_rate += peak;
        let total_weight: f64 = stream.mix.iter().map(|&(_, w)| w).sum();
        for &(kind, weight) in &stream.mix {
            let Some(resource) = calls(kind) else {
                continue;
            };
            let i = resource.dependency();
            longest_wait = longest_wait.max(scenario.node.dependencies[i].timeout);
            let share = if total_weight > 0.0 {
                weight / total_weight
            } else {
                0.0
            };
            if is_write(kind) {
                writes[i] += requests * share;
            } else {
                reads[i] += requests * share;
            }
            let space = match resource {
                Resource::Users => &stream.user_keys,
                Resource::Products => &stream.product_keys,
            };
            keys[i] = keys[i].max(key_count(space));
        }
    }
    // Nothing waits longer than the run.
    e.outstanding = peak_rate * seconds(longest_wait.min(scenario.duration));
    for resource in Resource::ALL {
        let i = resource.dependency();
        let config = &scenario.node.dependencies[i];
        let collection = scenario.data.collection(resource);
        let stored = collection.count as f64 + collection.records.len() as f64;
        // The cache: warmed with the data set, then filled by reads, up to capacity.
        let warm = if collection.warm { stored } else { 0.0 };
        let cached = (config.cache.capacity as f64).min(warm + reads[i].min(keys[i]));
        let queued = (config.queue.capacity as f64).min(writes[i]);
        let created = writes[i].min((keys[i] - collection.count as f64).max(0.0));
        let remembered = config.read_your_writes.map_or(0.0, |_| {
            ((config.queue.capacity + EXTRA_ENTRIES) as f64).min(writes[i])
        });
        e.entries += stored + cached + queued + created + remembered;
    }
}

/// The refusal of a declared scenario's outstanding work.
fn outstanding_declared(
    scenario: &Scenario,
    service: &Service,
    e: &Estimate,
    limits: &Limits,
) -> Refusal {
    let slowest = estimate_declared(scenario, service, &mut Estimate::default());
    let timeout = slowest.map_or(0, |i| service.dependencies[i].engine.timeout);
    // Point at the timeout when it is longer than the default, else at the rate.
    let key = match slowest {
        Some(i) if timeout > crate::node::config::DEFAULT_CALL_TIMEOUT => {
            format!(
                "service.dependencies.{}.timeout",
                service.dependencies[i].name
            )
        }
        _ => heaviest(&scenario.workload, "workload", "rate", |w| {
            w.rate.peak_rate()
        }),
    };
    Refusal {
        key,
        message: format!(
            "up to {} requests and calls outstanding at once (peak rate x the longest a \
             request waits on its calls x the most calls a request makes); the limit is {}; \
             lower a `timeout`, a `deadline` or the peak `rate`, or pass `--allow-large`",
            count(e.outstanding),
            count(limits.outstanding)
        ),
    }
}

/// Where to point a declared scenario's refusal of held entries: the `count` of its
/// largest key space (each dependency's store holds a slot per key of the spaces its
/// calls use, so that is what usually fills the budget), else the service.
fn entries_key_declared(service: &Service) -> String {
    service
        .key_spaces
        .iter()
        .max_by_key(|s| key_count(&s.keys) as u64)
        .map_or_else(
            || "service".to_owned(),
            |s| format!("service.keys.{}.count", s.name),
        )
}

/// A count as people read it: `3600000`, `3.6e12`.
pub fn count(x: f64) -> String {
    if x < 1e6 {
        format!("{}", x.round())
    } else {
        format!("{x:.2e}").replace(".00e", "e").replace("0e", "e")
    }
}

/// The key path of the first element of `items` that has the largest `value`, as
/// `table[i].key`.
fn heaviest<T>(items: &[T], table: &str, key: &str, value: impl Fn(&T) -> f64) -> String {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, item) in items.iter().enumerate() {
        let v = value(item);
        if v > best.1 {
            best = (i, v);
        }
    }
    format!("{table}[{}].{key}", best.0)
}

/// Every budget of `limits` that `scenario` exceeds, in a fixed order.
pub fn check(scenario: &Scenario, limits: &Limits) -> Vec<Refusal> {
    let e = estimate(scenario);
    let mut refusals = Vec::new();
    let lift = "or pass `--allow-large`";
    if e.requests > limits.requests {
        refusals.push(Refusal {
            key: heaviest(&scenario.workload, "workload", "rate", |w| {
                w.rate.expected_arrivals()
            }),
            message: format!(
                "about {} requests over the run of {}; the limit is {}; lower `rate` or `duration`, {lift}",
                count(e.requests),
                HumanSpan(scenario.duration),
                count(limits.requests)
            ),
        });
    }
    if e.outstanding > limits.outstanding {
        if let Some(service) = &scenario.service {
            refusals.push(outstanding_declared(scenario, service, &e, limits));
        } else {
            let (slowest, timeout) = Resource::ALL
                .iter()
                .map(|&r| (r, scenario.node.dependency(r).timeout))
                .max_by_key(|&(_, t)| t)
                .expect("two dependencies");
            // Point at the timeout when it is longer than the default, else at the rate.
            let key = if timeout > crate::node::config::DEFAULT_CALL_TIMEOUT {
                format!("dependencies.{}.timeout", slowest.as_str())
            } else {
                heaviest(&scenario.workload, "workload", "rate", |w| {
                    w.rate.peak_rate()
                })
            };
            refusals.push(Refusal {
            key,
            message: format!(
                "up to {} requests and calls outstanding at once (peak rate x the longest call timeout, {}); \
                 the limit is {}; lower `timeout` or the peak `rate`, {lift}",
                count(e.outstanding),
                HumanSpan(timeout),
                count(limits.outstanding)
            ),
        });
        }
    }
    if e.entries > limits.entries {
        let (key, lower) = match &scenario.service {
            Some(service) => (
                entries_key_declared(service),
                "a key space's `count`, a cache's or a queue's `capacity`",
            ),
            None => (
                "dependencies".to_owned(),
                "a data set's `count`, a cache's or a queue's `capacity` or the key count `n`",
            ),
        };
        refusals.push(Refusal {
            key,
            message: format!(
                "up to {} records, cache entries and queued writes held at once; the limit is {}; \
                 lower {lower}, {lift}",
                count(e.entries),
                count(limits.entries)
            ),
        });
    }
    if e.fault_windows > limits.fault_windows {
        refusals.push(Refusal {
            key: heaviest(&scenario.random_faults, "random_fault", "mtbf", |f| {
                1.0 / seconds(f.mtbf + f.mttr)
            }),
            message: format!(
                "about {} random fault windows over the run; the limit is {}; raise `mtbf` and `mttr`, {lift}",
                count(e.fault_windows),
                count(limits.fault_windows)
            ),
        });
    }
    if e.cpu_samples > limits.cpu_samples {
        let measured = scenario
            .service
            .as_ref()
            .is_some_and(|s| s.compute.is_some());
        let (key, raise) = match (&scenario.cpu, measured) {
            (Some(_), false) => ("cpu.every", "raise `every`"),
            (Some(_), true) => (
                "cpu.every",
                "raise `every`, or the service's [compute] window (sampled every tenth of it)",
            ),
            (None, _) => (
                "duration",
                "raise the service's [compute] window (its CPU is sampled every tenth of it)",
            ),
        };
        refusals.push(Refusal {
            key: key.to_owned(),
            message: format!(
                "about {} CPU samples over the run; the limit is {}; {raise}, {lift}",
                count(e.cpu_samples),
                count(limits.cpu_samples)
            ),
        });
    }
    refusals
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(text: &str) -> Scenario {
        crate::scenario::parse(text, Path::new("t.toml")).expect("valid")
    }

    /// The keys of the refusals of `text` under the default limits.
    fn refused(text: &str) -> Vec<String> {
        check(&scenario(text), &Limits::DEFAULT)
            .into_iter()
            .map(|r| r.key)
            .collect()
    }

    fn stream(duration: &str, rate: &str, extra: &str) -> String {
        format!(
            "duration = \"{duration}\"\n{extra}\n[[workload]]\nrate = {rate}\nmix = {{ search = 1 }}\n"
        )
    }

    #[test]
    fn requests_at_the_limit_pass_and_one_more_is_refused() {
        // 1e5 per second for 1000 s: exactly 1e8; 10 us more is one request more.
        assert_eq!(
            estimate(&scenario(&stream("1000s", "1e5", ""))).requests,
            1e8
        );
        assert!(refused(&stream("1000s", "1e5", "")).is_empty());
        assert_eq!(
            refused(&stream("1000s 10us", "1e5", "")),
            ["workload[0].rate"]
        );
        // Ramps count their mean rate.
        let ramp = "[{ from = \"0s\", to = \"1000s\", rps_from = 0, rps_to = 2e5 }]";
        assert_eq!(
            estimate(&scenario(&stream("1000s", ramp, ""))).requests,
            1e8
        );
    }

    #[test]
    fn outstanding_is_peak_rate_times_the_longest_timeout_within_the_run() {
        let text = |timeout: &str| {
            format!(
                "duration = \"1h\"\n[dependencies.users]\ntimeout = \"{timeout}\"\n\
                 [[workload]]\nrate = 1000\nmix = {{ get_user = 1, search = 1 }}\n"
            )
        };
        assert_eq!(estimate(&scenario(&text("1000s"))).outstanding, 1e6);
        assert!(refused(&text("1000s")).is_empty());
        assert_eq!(refused(&text("1000s 1ms")), ["dependencies.users.timeout"]);
        // A stream that calls nothing waits for nothing.
        assert_eq!(
            estimate(&scenario(&stream("1h", "1e5", ""))).outstanding,
            0.0
        );
        // Nothing waits longer than the run.
        let short = "duration = \"10s\"\n[dependencies.users]\ntimeout = \"1h\"\n\
                     [[workload]]\nrate = 1000\nmix = { get_user = 1 }\n";
        assert_eq!(estimate(&scenario(short)).outstanding, 1e4);
    }

    #[test]
    fn fault_windows_and_cpu_samples_at_the_limit() {
        let faults = |duration: &str| {
            format!(
                "duration = \"{duration}\"\n[[random_fault]]\ndependency = \"users\"\n\
                 kind = \"outage\"\nmtbf = \"600us\"\nmttr = \"400us\"\n"
            )
        };
        assert_eq!(estimate(&scenario(&faults("1000s"))).fault_windows, 1e6);
        assert!(refused(&faults("1000s")).is_empty());
        assert_eq!(refused(&faults("1000s 1ms")), ["random_fault[0].mtbf"]);
        let cpu = |duration: &str| format!("duration = \"{duration}\"\n[cpu]\nevery = \"1us\"\n");
        assert_eq!(estimate(&scenario(&cpu("100s"))).cpu_samples, 1e8);
        assert!(refused(&cpu("100s")).is_empty());
        assert_eq!(refused(&cpu("100s 1us")), ["cpu.every"]);
    }

    #[test]
    fn held_entries_count_caches_queues_and_created_records() {
        // A queue with room for every write of a long outage.
        let text = "duration = \"1d\"\n[dependencies.users.queue]\ncapacity = 4000000000\n\
                    [[workload]]\nrate = 500\nmix = { update_user = 1 }\n";
        let e = estimate(&scenario(text));
        // 1000 users stored and warm in the cache (and 1000 products), 4.32e7 writes
        // queued, none beyond the key space.
        assert_eq!(e.entries, 1000.0 + 1000.0 + 500.0 * 86_400.0 + 2000.0);
        assert_eq!(refused(text), ["dependencies"]);
        // The default queue (1000) bounds the same load.
        let bounded = "duration = \"1d\"\n[[workload]]\nrate = 500\nmix = { update_user = 1 }\n";
        assert!(refused(bounded).is_empty());
        // The largest data set fits once, not twice with caches to match.
        let data = |capacity: u64| {
            format!(
                "duration = \"1s\"\n[data.users]\ncount = 10000000\n[data.products]\n\
                 count = 10000000\n[dependencies.users.cache]\ncapacity = {capacity}\n"
            )
        };
        // 2e7 records, one cached user, the products cache (default 10 000) full.
        assert_eq!(estimate(&scenario(&data(1))).entries, 2e7 + 1.0 + 10_000.0);
        assert!(!refused(&data(1)).is_empty());
        let one = "duration = \"1s\"\n[data.users]\ncount = 10000000\n";
        assert!(refused(one).is_empty());
        // Twenty copies of a stream with a zipf over 2^20 keys build twenty tables.
        let streams: String = (0..20)
            .map(|_| "[[workload]]\nrate = 1\nmix = { get_user = 1 }\nusers = { dist = \"zipf\", n = 1048576 }\n")
            .collect();
        let text = format!("duration = \"1s\"\n{streams}");
        // Beside them: 1000 users stored and 1020 cached (warm plus 20 reads), 1000
        // products stored and cached.
        assert_eq!(
            estimate(&scenario(&text)).entries,
            20.0 * 1_048_576.0 + 4020.0
        );
        assert_eq!(refused(&text), ["dependencies"]);
    }

    #[test]
    fn every_refusal_names_the_estimate_the_limit_and_the_way_out() {
        let r = check(&scenario(&stream("1h", "1e9", "")), &Limits::DEFAULT);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].message,
            "about 3.6e12 requests over the run of 1h; the limit is 1e8; lower `rate` or \
             `duration`, or pass `--allow-large`"
        );
        assert!(check(&scenario(&stream("1h", "1e9", "")), &Limits::NONE).is_empty());
    }

    #[test]
    fn a_declared_service_is_estimated_from_its_plans() {
        let text = |deadline: &str| {
            format!(
                "duration = \"100s\"\n[[workload]]\nrate = 10\nmix = {{ e = 1 }}\n[service]\n\
                 [service.dependencies.a]\ntimeout = \"2s\"\ncache = {{ capacity = 5 }}\n\
                 [service.dependencies.b]\ntimeout = \"1s\"\nqueue = {{ capacity = 100 }}\n\
                 [service.keys.k]\ncount = 50\ndist = \"zipf\"\nrecords = {{ 1 = \"one\" }}\n\
                 [service.endpoints.e]\nkey = \"k\"\n{deadline}\n\
                 plan = [{{ par = [{{ call = \"a\", op = \"read\" }}, {{ call = \"b\", op = \"write\" }}] }},\
                 {{ call = \"b\", op = \"read\", fallback = [{{ call = \"a\" }}] }}]\n"
            )
        };
        let e = estimate(&scenario(&text("")));
        assert_eq!(e.requests, 1000.0);
        // The par waits 2s, then b 1s and its fallback a 2s; four calls a request.
        assert_eq!(e.outstanding, 10.0 * 5.0 * 4.0);
        // A record, the zipf table, a's cache full (5), b's queue full (100), and the
        // stores of a and b, each with a slot per record of the key space (50).
        assert_eq!(e.entries, 1.0 + 50.0 + 5.0 + 100.0 + 2.0 * 50.0);
        // A deadline cuts the wait.
        let e = estimate(&scenario(&text("deadline = \"3s\"")));
        assert_eq!(e.outstanding, 10.0 * 3.0 * 4.0);
    }

    #[test]
    fn a_refusal_of_a_service_file_key_is_located_in_that_file() {
        let dir = std::env::temp_dir().join(format!("brownout-{}-budget", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let service = "[dependencies.a]\ntimeout = \"1h\"\n[endpoints.e]\nplan = [{ call = \"a\", op = \"write\", key = \"k\" }]\n[keys.k]\n";
        std::fs::write(dir.join("s.toml"), service).unwrap();
        let text =
            "duration = \"2h\"\nservice = \"s.toml\"\n[[workload]]\nrate = 1000\nmix = { e = 1 }\n";
        let path = dir.join("x.toml");
        let s = crate::scenario::parse(text, &path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(refused_keys(&s), ["service.dependencies.a.timeout"]);
        let errors = crate::scenario::budget_errors(&s, text, &Limits::DEFAULT);
        assert_eq!(errors[0].path, dir.join("s.toml"));
        assert_eq!(errors[0].position, Some((2, 1)));
        assert!(
            errors[0]
                .message
                .starts_with("too large: up to 3.6e6 requests and calls"),
            "{}",
            errors[0].message
        );
    }

    fn refused_keys(s: &Scenario) -> Vec<String> {
        check(s, &Limits::DEFAULT)
            .into_iter()
            .map(|r| r.key)
            .collect()
    }

    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(count(999_999.0), "999999");
        assert_eq!(count(1e6), "1e6");
        assert_eq!(count(3.6e12), "3.6e12");
        assert_eq!(count(2.5e7), "2.5e7");
        assert_eq!(count(1.25e10), "1.25e10");
    }
}
