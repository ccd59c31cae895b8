//! The validated model of a run: the scenario with everything it names resolved and
//! checked. It sits below the drivers: `sim/` runs it and `scenario/` only maps the
//! file format onto it, so neither the simulator nor the node knows the file format,
//! and nothing here knows either of them beyond the node's configuration.
//!
//! Each part is plain data with its `validate()`: latency distributions
//! ([`latency`]), faults ([`faults`]), the CPU curve ([`load`]) and the workload
//! ([`workload`]). What runs them lives in `sim/`. [`service`] is the declared
//! service (dependencies, key spaces, endpoints and their plans) a scenario may carry.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::engine::{Span, Time};
use crate::node::{DataSet, NodeConfig};

pub mod faults;
pub mod latency;
pub mod load;
pub mod service;
pub mod sweep;
pub mod workload;

pub use faults::{Fault, FaultKind, RandomFaults};
pub use latency::Latency;
pub use load::CpuCurveConfig;
pub use service::{DependencyId, EndpointId, Service};
pub use sweep::SweepExpectations;
pub use workload::{Keys, RatePlan};

/// A validated scenario: everything one simulated run needs, seed included.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short name (defaults to the file's stem).
    pub name: String,
    /// What the scenario demonstrates.
    pub description: String,
    /// The file it was read from (used in replay commands).
    pub path: PathBuf,
    /// The master seed (overridden by `--seed`).
    pub seed: u64,
    /// Simulated length of the run.
    pub duration: Time,
    /// The declared service the run serves; `None`: the built-in seed service, whose
    /// dependencies are `node`, `data` and `dependencies` below. With a declared
    /// service, only `node.modes` of those applies: its dependencies, key spaces and
    /// records are the service's own.
    pub service: Option<Arc<Service>>,
    /// The node's engine configuration.
    pub node: NodeConfig,
    /// The data set behind the dependencies.
    pub data: DataSet,
    /// The simulated dependencies, users then products.
    pub dependencies: [SimDependency; 2],
    /// Scheduled faults.
    pub faults: Vec<Fault>,
    /// Seeded random faults, expanded into windows before the run starts.
    pub random_faults: Vec<RandomFaults>,
    /// The CPU load curve feeding the mode controller, if any.
    pub cpu: Option<CpuCurveConfig>,
    /// Open-loop workload streams (each with its own random stream).
    pub workload: Vec<WorkloadStream>,
    /// Messages sent at fixed times, written as node-protocol bodies.
    pub script: Vec<ScriptedMessage>,
    /// What must hold at the end of the run.
    pub expect: Expectations,
    /// The `--set KEY=VALUE` arguments the file was read with, as written, in order
    /// (empty: the file as it is). Replay commands repeat them.
    pub overrides: Vec<String>,
}

impl Scenario {
    /// What follows `brownout` in a command that runs this scenario: its path and
    /// its `--set` arguments, each quoted for a POSIX shell where it needs to be.
    pub fn command_args(&self) -> String {
        command_args(&self.path.display().to_string(), &self.overrides)
    }
}

/// `path` and `--set ARG` for each of `overrides`, as shell words.
pub fn command_args(path: &str, overrides: &[String]) -> String {
    let mut words = crate::replay::shell_word(path);
    for o in overrides {
        words.push_str(" --set ");
        words.push_str(&crate::replay::shell_word(o));
    }
    words
}

/// How a simulated dependency behaves when no fault is active.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDependency {
    /// Latency of a healthy answer.
    pub latency: Latency,
    /// Probability that a call fails with an error, in `[0, 1]`.
    pub error_rate: f64,
    /// Latency of a call refused because the service is down (connection refused is fast).
    pub down_latency: Span,
    /// Calls the service works on at once; a call beyond that is refused at once as
    /// overloaded (after `down_latency`). `None`: no limit.
    pub max_concurrency: Option<u32>,
}

/// Request kinds the workload generator can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestKind {
    /// `get_user`.
    GetUser,
    /// `get_product`.
    GetProduct,
    /// `update_user`.
    UpdateUser,
    /// `update_product`.
    UpdateProduct,
    /// `get_recommendations`.
    GetRecommendations,
    /// `search`.
    Search,
}

impl RequestKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [RequestKind; 6] = [
        RequestKind::GetUser,
        RequestKind::GetProduct,
        RequestKind::UpdateUser,
        RequestKind::UpdateProduct,
        RequestKind::GetRecommendations,
        RequestKind::Search,
    ];

    /// The message type (`get_user`, ...), as written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::GetUser => "get_user",
            RequestKind::GetProduct => "get_product",
            RequestKind::UpdateUser => "update_user",
            RequestKind::UpdateProduct => "update_product",
            RequestKind::GetRecommendations => "get_recommendations",
            RequestKind::Search => "search",
        }
    }
}

/// One open-loop stream of requests.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadStream {
    /// Name used in reports.
    pub name: String,
    /// Arrival rate over time (Poisson arrivals).
    pub rate: RatePlan,
    /// Request kinds and their weights (all weights positive); empty for a declared
    /// service, whose requests are `endpoints`.
    pub mix: Vec<(RequestKind, f64)>,
    /// A declared service's endpoints and their weights (all positive); empty for the
    /// seed service.
    pub endpoints: Vec<(EndpointId, f64)>,
    /// How user ids are drawn.
    pub user_keys: Keys,
    /// How product ids are drawn.
    pub product_keys: Keys,
}

/// A message sent at a fixed simulated time.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedMessage {
    /// When it arrives.
    pub at: Time,
    /// The message body, exactly as a client would send it.
    pub body: Value,
}

/// Checks made at the end of a run; `None` means "not checked".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expectations {
    /// Share of requests answered with data (fresh, cached, stale or fallback) or whose
    /// write was accepted (applied or queued), at least this.
    pub min_availability: Option<f64>,
    /// No stale reply older than this.
    pub max_stale_age: Option<Span>,
    /// For every outage or hang, the dependency's breaker opens within this of its start.
    pub breaker_opens_within: Option<Span>,
    /// For every outage or hang, the dependency's breaker is closed within this of its end.
    pub breaker_closes_within: Option<Span>,
    /// Breaker trips (transitions to open), summed over dependencies, at most this.
    pub max_breaker_trips: Option<u64>,
    /// Mode changes at most this (flapping guard).
    pub max_mode_changes: Option<u64>,
    /// Accepted writes neither applied nor still queued at the end (dead letters and
    /// anything unaccounted for), at most this.
    pub max_writes_lost: Option<u64>,
    /// Writes shed because a queue was full, at most this.
    pub max_writes_rejected: Option<u64>,
    /// Every write queue is empty by this instant and stays empty after it.
    pub queue_drained_by: Option<Time>,
    /// Per endpoint of a declared service, in file order.
    pub endpoints: Vec<EndpointExpectations>,
    /// Per dependency of a declared service, in file order.
    pub dependencies: Vec<DependencyExpectations>,
    /// `[expect.sweep]`: what must hold across seeds (a single run ignores it).
    pub sweep: Option<SweepExpectations>,
}

/// What must hold for one endpoint's requests.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointExpectations {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Share of its requests answered with data (partial included) or accepted, at
    /// least this.
    pub min_availability: Option<f64>,
    /// Its 99th percentile reply latency at most this.
    pub max_p99_latency: Option<Span>,
    /// Share of its replies that are partial, at most this.
    pub max_partial_rate: Option<f64>,
    /// Share of its requests shed by admission control, at most this (0 for "never
    /// shed", the claim a critical endpoint makes).
    pub max_shed_rate: Option<f64>,
    /// Requests whose deadline passed before the reply was ready, at most this.
    pub max_deadline_misses: Option<u64>,
}

/// What must hold for one dependency's calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DependencyExpectations {
    /// The dependency.
    pub dependency: DependencyId,
    /// Share of its calls that failed (errors, timeouts, refusals), at most this.
    pub max_failure_rate: Option<f64>,
    /// The same within each fault window (on any dependency), for the worst window:
    /// whether a fault elsewhere spills onto it.
    pub max_failure_rate_in_faults: Option<f64>,
    /// Times its breaker opened, at most this.
    pub max_breaker_trips: Option<u64>,
    /// Calls made to it per request the node served, at most this (fan-out).
    pub max_fan_out: Option<f64>,
    /// After each fault window on it, its busiest second of the minute after over
    /// its call rate in the minute before, at most this (the recovery storm).
    pub max_recovery_multiplier: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::command_args;

    #[test]
    fn replay_words_are_quoted_only_where_a_shell_needs_it() {
        assert_eq!(command_args("scenarios/a.toml", &[]), "scenarios/a.toml");
        assert_eq!(
            command_args(
                "my dir/a.toml",
                &[
                    "duration=1h 30m".to_owned(),
                    "workload[0].rate=5".to_owned(),
                    "name=it's".to_owned(),
                    "seed=3".to_owned(),
                ]
            ),
            "'my dir/a.toml' --set 'duration=1h 30m' --set 'workload[0].rate=5' \
             --set 'name=it'\\''s' --set seed=3"
        );
    }
}
