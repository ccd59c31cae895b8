//! A declared service: named dependencies, key spaces, features and endpoints whose
//! plans say which dependencies a request calls, in what order and with what fallbacks.
//!
//! [`ServiceSpec`] is the unresolved form (names as strings, as a file or a test writes
//! them); [`ServiceSpec::build`] checks it and resolves every name to a small integer id
//! once, so the hot path (`node::plan`) carries ids and never compares strings. All
//! errors are reported at once, each at a dotted key path such as
//! `endpoints.checkout.plan[0].par[1].call`, with the names that were declared.
//!
//! The file format maps a service file or a scenario's `[service]` onto a
//! [`ServiceSpec`] (`scenario/file/service.rs`) and keeps the built service in
//! `Scenario::service`; the node runs it (`node::service::endpoint`, through
//! `node::plan`) in both drivers. The seed service's requests still take the node's
//! own path; [`Service::seed`] is that service in this model, for the step that moves
//! it onto the executor.

use std::fmt::Write as _;

use crate::engine::breaker::BreakerConfig;
use crate::engine::cache::CacheConfig;
use crate::engine::queue::QueueConfig;
use crate::engine::retry::{Pipeline, RetryConfig, TimeoutScope};
use crate::engine::{ConfigError, Span, MAX_SPAN, MILLISECOND};
use crate::node::{DependencyConfig, NodeConfig, ReadPolicy};

use super::{Keys, Latency, SimDependency};

/// Most fallbacks one step may list (a step's attempts are numbered in a `u8`).
pub const MAX_FALLBACKS: usize = 16;
/// Most steps one endpoint's plan may hold. The executor recurses through a `seq`'s
/// children that finish at once, so this bounds its stack too.
pub const MAX_PLAN_STEPS: usize = 256;
/// Deepest nesting of `seq`/`par` a plan may have: the executor walks the tree
/// recursively, so its depth is bounded by configuration, never by input.
pub const MAX_PLAN_DEPTH: usize = 32;
/// Most features a service may declare: a run snapshots which are disabled into one
/// 64-bit mask when a request starts.
pub const MAX_FEATURES: usize = 64;
/// Most dependencies, key spaces or endpoints a service may declare (ids are `u16`).
pub const MAX_NAMED: usize = u16::MAX as usize;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident($int:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub $int);

        impl $name {
            /// The id as an index into the service's list.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id!(
    /// A dependency: an index into [`Service::dependencies`].
    DependencyId(u16)
);
id!(
    /// A key space: an index into [`Service::key_spaces`].
    KeySpaceId(u16)
);
id!(
    /// An endpoint: an index into [`Service::endpoints`].
    EndpointId(u16)
);
id!(
    /// A feature: an index into [`Service::features`] (below [`MAX_FEATURES`]).
    FeatureId(u16)
);
id!(
    /// A step: an index into its [`Plan`]'s arena.
    StepId(u16)
);

/// A validated, name-resolved service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// The service's name.
    pub name: String,
    /// Its dependencies, in declaration order ([`DependencyId`] indexes this).
    pub dependencies: Vec<DependencySpec>,
    /// Its key spaces ([`KeySpaceId`] indexes this).
    pub key_spaces: Vec<KeySpace>,
    /// Its endpoints ([`EndpointId`] indexes this).
    pub endpoints: Vec<Endpoint>,
    /// The features modes may disable ([`FeatureId`] indexes this).
    pub features: Vec<String>,
    /// The node's admission control (a concurrency limit, shedding by tier); `None`:
    /// it admits every request.
    pub admission: Option<AdmissionConfig>,
    /// The node's CPU, measured from the work its requests and calls cost; `None`:
    /// only a scenario's scripted curve drives the modes.
    pub compute: Option<ComputeConfig>,
}

/// One downstream dependency: the engine in front of it and how it behaves when simulated.
/// It names nothing else, so the unresolved and the resolved forms are the same type.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencySpec {
    /// Its name; its random stream derives from it ([`DependencySpec::stream_key`]).
    pub name: String,
    /// The node's side: timeout, read policy, breaker, optional cache and queue.
    pub engine: DependencyEngine,
    /// The simulated service's side: latency, errors, capacity.
    pub sim: SimDependency,
}

/// The degradation engine in front of one dependency.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyEngine {
    /// The client-side call timeout.
    pub timeout: Span,
    /// How reads use the cache (meaningless without one).
    pub read_policy: ReadPolicy,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
    /// The stale cache in front of reads; `None`: reads are never served from a cache,
    /// and a `cache` fallback on this dependency is refused.
    pub cache: Option<CacheConfig>,
    /// The queue for writes the dependency cannot take now; `None`: a write while the
    /// dependency is down (or its breaker open) fails and takes its fallback chain.
    /// Allowed on purpose: a service may have writes that must not be deferred.
    pub queue: Option<QueueConfig>,
    /// How its failed calls are retried; `None`: they are not.
    pub retry: Option<RetryConfig>,
    /// The order of its retry and breaker layers.
    pub pipeline: Pipeline,
    /// Whether its timeout bounds each attempt or the whole call.
    pub timeout_scope: TimeoutScope,
    /// The bulkhead bounding its client calls in flight; `None`: unbounded.
    pub bulkhead: Option<BulkheadConfig>,
    /// The node's CPU time per call to it, every attempt, refresh, drain and probe
    /// (counted with the service's `compute` only).
    pub cpu_per_call: Span,
    /// Read-your-writes: how long after the node queued or applied a write a read of
    /// its key that would be served from the stale cache (or fail) is answered from
    /// the write instead; `None`: off.
    pub read_your_writes: Option<Span>,
}

impl DependencyEngine {
    /// The engine as the node configures one of the seed's dependencies today: with a
    /// cache and a queue.
    pub fn from_config(config: &DependencyConfig) -> DependencyEngine {
        DependencyEngine {
            timeout: config.timeout,
            read_policy: config.read_policy,
            breaker: config.breaker.clone(),
            cache: Some(config.cache.clone()),
            queue: Some(config.queue.clone()),
            retry: config.retry.clone(),
            pipeline: config.pipeline,
            timeout_scope: config.timeout_scope,
            bulkhead: None,
            cpu_per_call: 0,
            read_your_writes: config.read_your_writes,
        }
    }
}

impl DependencySpec {
    /// The key of this dependency's random stream: the 64-bit FNV-1a hash of its name.
    /// Stable across runs, platforms and releases, and independent of the order
    /// dependencies are declared in, so adding or reordering them moves no other draws.
    pub fn stream_key(&self) -> u64 {
        fnv1a(self.name.as_bytes())
    }
}

/// The mode controller of a declared service whose scenario says nothing: the
/// default thresholds, with degraded and critical modes disabling every one of
/// `features` and none held critical (the seed's defaults name the seed's own
/// features).
pub fn default_modes<S: AsRef<str>>(features: &[S]) -> crate::engine::modes::ModeConfig {
    use crate::engine::modes::{Mode, ModeConfig};
    let all: Vec<String> = features.iter().map(|f| f.as_ref().to_owned()).collect();
    ModeConfig {
        disabled_features: std::collections::BTreeMap::from([
            (Mode::Normal, Vec::new()),
            (Mode::Degraded, all.clone()),
            (Mode::Critical, all),
        ]),
        critical_features: Vec::new(),
        ..ModeConfig::default()
    }
}

/// 64-bit FNV-1a: tiny, fixed, good enough to tell names apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// A named space of keys that requests and calls draw from.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpace {
    /// Its name.
    pub name: String,
    /// How keys are drawn.
    pub keys: Keys,
    /// Records with a given name (the rest of `1..=n` are named `record K`).
    pub records: std::collections::BTreeMap<u64, std::sync::Arc<str>>,
}

use crate::engine::admission::AdmissionConfig;
/// How important an endpoint is: what admission control sheds first.
pub use crate::engine::admission::Tier;
use crate::engine::bulkhead::BulkheadConfig;
use crate::engine::compute::ComputeConfig;

/// A request type the service serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Its name: the `type` of its requests on the wire.
    pub name: String,
    /// Where its requests' keys come from; `None` for a request without a key (the seed's
    /// `search`), whose calls must then each name a key space.
    pub key: Option<KeySpaceId>,
    /// The request's time budget, if any.
    pub deadline: Option<Span>,
    /// Its tier.
    pub tier: Tier,
    /// A feature that, when a mode disables it, disables every step of the plan (each
    /// takes its fallback chain). Never on a critical endpoint.
    pub feature: Option<FeatureId>,
    /// The node's CPU time per request.
    pub cpu: Span,
    /// What a request does.
    pub plan: Plan,
}

/// A plan: a tree of steps, flattened into an arena in pre-order (a parent before its
/// children, children in order), with each step's parent alongside.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The steps; [`StepId`] indexes this.
    pub steps: Vec<Step>,
    /// Each step's parent (`None` for the root).
    pub parents: Vec<Option<StepId>>,
    /// Where a request starts (always `StepId(0)`: pre-order).
    pub root: StepId,
}

impl Plan {
    /// The step `id`.
    pub fn step(&self, id: StepId) -> &Step {
        &self.steps[id.index()]
    }

    /// How a reply names the part step `id` provides: its feature if it has one, else
    /// its dependency (a call) or its answer (a local step); `None` for `seq`/`par`.
    pub fn part_name<'a>(&'a self, service: &'a Service, id: StepId) -> Option<&'a str> {
        let (leaf, own) = match self.step(id) {
            Step::Call(call) => (
                &call.leaf,
                service.dependencies[call.dependency.index()].name.as_str(),
            ),
            Step::Local(local) => (&local.leaf, local.answer.as_str()),
            Step::Seq(_) | Step::Par(_) => return None,
        };
        Some(
            leaf.feature
                .map_or(own, |f| service.features[f.index()].as_str()),
        )
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Call a dependency.
    Call(CallStep),
    /// Answer without a dependency (the seed's stand-in recommender and search index).
    Local(LocalStep),
    /// The children in order; a required child's failure stops it.
    Seq(Vec<StepId>),
    /// The children concurrently; the step waits for all.
    Par(Vec<StepId>),
}

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOp {
    /// Read the key's record.
    Read,
    /// Write the request's value to the key.
    Write,
}

impl CallOp {
    /// `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOp::Read => "read",
            CallOp::Write => "write",
        }
    }
}

/// What every leaf step has: whether it may be missing, a feature gating it, fallbacks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Leaf {
    /// Its failure makes the reply partial instead of an error.
    pub optional: bool,
    /// When a mode disables this feature, the step is skipped for its fallback chain.
    pub feature: Option<FeatureId>,
    /// Tried in order when the step fails, is disabled or runs out of time.
    pub fallback: Vec<Fallback>,
    /// The most attempts of this call, the first included, when fewer than its
    /// dependency's retry policy allows (`Some(1)`: never retried); `None`: the
    /// policy's.
    pub max_attempts: Option<u32>,
    /// The node's CPU time to serve the step from its fallback chain (a canned
    /// answer, a fallback call's answer, the stale cache), counted with `compute`.
    pub fallback_cpu: Span,
}

/// A call to a dependency.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStep {
    /// Whom.
    pub dependency: DependencyId,
    /// What.
    pub op: CallOp,
    /// Where the call's key comes from; `None`: the request's key.
    pub key_space: Option<KeySpaceId>,
    /// Optional, feature, fallbacks.
    pub leaf: Leaf,
}

/// A step answered by the node itself.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalStep {
    /// Which built-in answer (interpreted by the reply shaping, never on the hot path).
    pub answer: String,
    /// Optional, feature, fallbacks.
    pub leaf: Leaf,
}

/// One link of a fallback chain.
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    /// The stale cache of the step's dependency (read calls on a dependency with a cache).
    Cache,
    /// Another call, with the step's key.
    Call {
        /// Whom.
        dependency: DependencyId,
        /// What.
        op: CallOp,
    },
    /// A canned answer; always succeeds.
    Static(String),
    /// Leave the part out and mark the reply partial (last in the chain, optional steps
    /// only).
    Omit,
}

// ---------------------------------------------------------------------------------------
// The unresolved form.

/// A service as written: every reference is a name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceSpec {
    /// The service's name.
    pub name: String,
    /// Its dependencies (they reference nothing, so they are already in final form).
    pub dependencies: Vec<DependencySpec>,
    /// Its key spaces.
    pub key_spaces: Vec<KeySpace>,
    /// The features modes may disable.
    pub features: Vec<String>,
    /// Its endpoints.
    pub endpoints: Vec<EndpointSpec>,
    /// The node's admission control.
    pub admission: Option<AdmissionConfig>,
    /// The node's CPU.
    pub compute: Option<ComputeConfig>,
}

/// An endpoint as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointSpec {
    /// Its name (the wire `type`).
    pub name: String,
    /// The name of its key space, if its requests have a key.
    pub key: Option<String>,
    /// The request's time budget.
    pub deadline: Option<Span>,
    /// Its tier.
    pub tier: Tier,
    /// The feature gating it.
    pub feature: Option<String>,
    /// The plan: a list, run in order (one element: that step alone).
    pub plan: Vec<StepSpec>,
    /// The node's CPU time per request (counted with `compute` only).
    pub cpu: Span,
}

/// A step as written.
#[derive(Debug, Clone, PartialEq)]
pub enum StepSpec {
    /// `{ call = "...", op = "...", key = "...", optional, feature, fallback }`.
    Call {
        /// The dependency's name.
        call: String,
        /// Read or write.
        op: CallOp,
        /// A key space's name; `None`: the request's key.
        key: Option<String>,
        /// Optional, feature, fallbacks.
        leaf: LeafSpec,
    },
    /// A built-in answer.
    Local {
        /// Which one.
        answer: String,
        /// Optional, feature, fallbacks.
        leaf: LeafSpec,
    },
    /// `{ seq = [...] }`.
    Seq(Vec<StepSpec>),
    /// `{ par = [...] }`.
    Par(Vec<StepSpec>),
}

/// A leaf's attributes as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeafSpec {
    /// See [`Leaf::optional`].
    pub optional: bool,
    /// A feature's name.
    pub feature: Option<String>,
    /// The chain.
    pub fallback: Vec<FallbackSpec>,
    /// See [`Leaf::max_attempts`].
    pub max_attempts: Option<u32>,
    /// See [`Leaf::fallback_cpu`].
    pub fallback_cpu: Span,
}

/// A fallback as written.
#[derive(Debug, Clone, PartialEq)]
pub enum FallbackSpec {
    /// `"cache"`.
    Cache,
    /// `{ call = "...", op = "..." }`.
    Call {
        /// The dependency's name.
        call: String,
        /// Read or write.
        op: CallOp,
    },
    /// `{ static = "..." }`.
    Static(String),
    /// `"omit"`.
    Omit,
}

impl StepSpec {
    /// A required call of `dependency` with the request's key and no fallback.
    pub fn call(dependency: &str, op: CallOp) -> StepSpec {
        StepSpec::Call {
            call: dependency.to_owned(),
            op,
            key: None,
            leaf: LeafSpec::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Building.

/// Declared names of one kind, for lookups while building and for error texts.
struct Names<'a> {
    what: &'static str,
    names: Vec<&'a str>,
}

impl<'a> Names<'a> {
    fn new(what: &'static str, names: impl Iterator<Item = &'a str>) -> Self {
        Names {
            what,
            names: names.collect(),
        }
    }

    fn find(&self, name: &str) -> Option<u16> {
        // Linear: services declare a handful of each, and this runs once, at build time.
        self.names.iter().position(|n| *n == name).map(|i| i as u16)
    }

    /// The id of `name`, or an error at `path` listing what is declared.
    fn resolve(&self, name: &str, path: &str, errors: &mut Vec<ConfigError>) -> Option<u16> {
        let found = self.find(name);
        if found.is_none() {
            errors.push(ConfigError::new(
                path,
                unknown_name(self.what, name, &self.names),
            ));
        }
        found
    }
}

/// What an unknown name's error says: `unknown dependency `x`; declared: `a`, `b``. The
/// scenario file's own references (a fault's dependency, a mix's endpoints) say the
/// same, so a user reads one phrase whichever part of the file names the thing.
pub fn unknown_name(what: &str, name: &str, declared: &[&str]) -> String {
    let mut text = format!("unknown {what} `{name}`; ");
    if declared.is_empty() {
        let _ = write!(text, "none is declared");
    } else {
        let _ = write!(text, "declared: ");
        for (i, n) in declared.iter().enumerate() {
            let _ = write!(text, "{}`{n}`", if i > 0 { ", " } else { "" });
        }
    }
    text
}

/// Pushes an error for every name that repeats an earlier one or is empty, and one if
/// there are more than `max`.
fn check_names<'a>(
    section: &str,
    names: impl Iterator<Item = &'a str>,
    max: usize,
    errors: &mut Vec<ConfigError>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if name.is_empty() {
            errors.push(ConfigError::new(section, "a name must not be empty"));
        } else if seen.contains(&name) {
            errors.push(ConfigError::new(
                format!("{section}.{name}"),
                "declared more than once",
            ));
        }
        seen.push(name);
    }
    if seen.len() > max {
        errors.push(ConfigError::new(
            section,
            format!("at most {max} may be declared, got {}", seen.len()),
        ));
    }
}

struct Resolver<'a> {
    deps: Names<'a>,
    keys: Names<'a>,
    features: Names<'a>,
    /// Which dependencies have a cache and a queue (by id).
    cached: Vec<bool>,
    /// Per dependency, its retry policy's `max_attempts` (`None`: it does not retry).
    retrying: Vec<Option<u32>>,
    /// Whether the service measures its CPU (else a CPU cost is an error).
    compute: bool,
    errors: Vec<ConfigError>,
}

/// Where a plan being built is, for the rules that depend on the endpoint.
struct Context<'a> {
    endpoint_has_key: bool,
    critical: bool,
    steps: &'a mut Vec<Step>,
    parents: &'a mut Vec<Option<StepId>>,
}

impl ServiceSpec {
    /// Checks the spec and resolves every name, or returns every error found.
    pub fn build(&self) -> Result<Service, Vec<ConfigError>> {
        let mut errors = Vec::new();
        check_names(
            "dependencies",
            self.dependencies.iter().map(|d| d.name.as_str()),
            MAX_NAMED,
            &mut errors,
        );
        check_names(
            "keys",
            self.key_spaces.iter().map(|k| k.name.as_str()),
            MAX_NAMED,
            &mut errors,
        );
        check_names(
            "features",
            self.features.iter().map(String::as_str),
            MAX_FEATURES,
            &mut errors,
        );
        check_names(
            "endpoints",
            self.endpoints.iter().map(|e| e.name.as_str()),
            MAX_NAMED,
            &mut errors,
        );
        for dep in &self.dependencies {
            validate_dependency(dep, &mut errors);
        }
        if let Some(Err(e)) = self.admission.as_ref().map(AdmissionConfig::validate) {
            errors.push(ConfigError::new(format!("admission.{}", e.field), e.reason));
        }
        if let Some(Err(e)) = self.compute.as_ref().map(ComputeConfig::validate) {
            errors.push(ConfigError::new(format!("compute.{}", e.field), e.reason));
        }
        if self.compute.is_none() {
            // A cost nothing counts is a mistake, not a choice.
            let needs = "counts only with a [compute] table, which says the node's cores";
            for e in self.endpoints.iter().filter(|e| e.cpu > 0) {
                errors.push(ConfigError::new(format!("endpoints.{}.cpu", e.name), needs));
            }
            for d in self
                .dependencies
                .iter()
                .filter(|d| d.engine.cpu_per_call > 0)
            {
                let field = format!("dependencies.{}.cpu_per_call", d.name);
                errors.push(ConfigError::new(field, needs));
            }
        }
        for space in &self.key_spaces {
            if let Err(e) = space.keys.validate() {
                // `Keys` names its fields as `workload.keys.*`; here they sit under the space.
                let field = e.field.trim_start_matches("workload.keys.");
                errors.push(ConfigError::new(
                    format!("keys.{}.{field}", space.name),
                    e.reason,
                ));
            }
        }
        let mut resolver = Resolver {
            deps: Names::new(
                "dependency",
                self.dependencies.iter().map(|d| d.name.as_str()),
            ),
            keys: Names::new("key space", self.key_spaces.iter().map(|k| k.name.as_str())),
            features: Names::new("feature", self.features.iter().map(String::as_str)),
            cached: self
                .dependencies
                .iter()
                .map(|d| d.engine.cache.is_some())
                .collect(),
            retrying: self
                .dependencies
                .iter()
                .map(|d| d.engine.retry.as_ref().map(|r| r.max_attempts))
                .collect(),
            compute: self.compute.is_some(),
            errors,
        };
        let endpoints: Vec<Endpoint> = self
            .endpoints
            .iter()
            .filter_map(|e| resolver.endpoint(e))
            .collect();
        if resolver.errors.is_empty() {
            Ok(Service {
                name: self.name.clone(),
                dependencies: self.dependencies.clone(),
                key_spaces: self.key_spaces.clone(),
                endpoints,
                features: self.features.clone(),
                admission: self.admission.clone(),
                compute: self.compute.clone(),
            })
        } else {
            Err(resolver.errors)
        }
    }
}

fn validate_dependency(dep: &DependencySpec, errors: &mut Vec<ConfigError>) {
    let at = |field: &str| format!("dependencies.{}.{field}", dep.name);
    let mut push = |e: ConfigError| errors.push(ConfigError::new(at(&e.field), e.reason));
    let engine = &dep.engine;
    if engine.timeout == 0 || engine.timeout > MAX_SPAN {
        push(ConfigError::new(
            "timeout",
            "must be greater than zero and at most 100 years",
        ));
    }
    let checks = [
        engine.breaker.validate(),
        engine.cache.as_ref().map_or(Ok(()), CacheConfig::validate),
        engine.queue.as_ref().map_or(Ok(()), QueueConfig::validate),
        dep.sim.latency.validate(),
    ];
    for e in checks.into_iter().filter_map(Result::err) {
        push(e);
    }
    if !(0.0..=1.0).contains(&dep.sim.error_rate) {
        push(ConfigError::new(
            "error_rate",
            format!(
                "must be a probability in [0, 1], got {}",
                dep.sim.error_rate
            ),
        ));
    }
}

impl<'a> Resolver<'a> {
    fn endpoint(&mut self, spec: &EndpointSpec) -> Option<Endpoint> {
        let at = format!("endpoints.{}", spec.name);
        let errors_before = self.errors.len();
        let key = spec
            .key
            .as_deref()
            .and_then(|k| self.keys.resolve(k, &format!("{at}.key"), &mut self.errors))
            .map(KeySpaceId);
        if let Some(deadline) = spec.deadline {
            if deadline == 0 || deadline > MAX_SPAN {
                self.errors.push(ConfigError::new(
                    format!("{at}.deadline"),
                    "must be greater than zero and at most 100 years",
                ));
            }
        }
        let feature = spec.feature.as_deref().and_then(|f| {
            if spec.tier == Tier::Critical {
                self.errors.push(ConfigError::new(
                    format!("{at}.feature"),
                    "a critical endpoint cannot be gated by a feature: no mode may disable it",
                ));
            }
            self.features
                .resolve(f, &format!("{at}.feature"), &mut self.errors)
                .map(FeatureId)
        });
        let mut steps = Vec::new();
        let mut parents = Vec::new();
        let mut cx = Context {
            endpoint_has_key: spec.key.is_some(),
            critical: spec.tier == Tier::Critical,
            steps: &mut steps,
            parents: &mut parents,
        };
        let plan_at = format!("{at}.plan");
        match spec.plan.as_slice() {
            [] => self
                .errors
                .push(ConfigError::new(plan_at, "a plan needs at least one step")),
            [only] => self.step(&mut cx, only, None, &format!("{plan_at}[0]"), 1),
            many => self.list(&mut cx, many, None, &plan_at, "", false, 0),
        }
        if steps.len() > MAX_PLAN_STEPS {
            self.errors.push(ConfigError::new(
                format!("{at}.plan"),
                format!(
                    "a plan may hold at most {MAX_PLAN_STEPS} steps, got {}",
                    steps.len()
                ),
            ));
        }
        (self.errors.len() == errors_before).then(|| Endpoint {
            name: spec.name.clone(),
            key,
            deadline: spec.deadline,
            tier: spec.tier,
            feature,
            cpu: spec.cpu,
            plan: Plan {
                steps,
                parents,
                root: StepId(0),
            },
        })
    }

    /// Reserves the next arena slot for a step whose children are not known yet.
    fn reserve(cx: &mut Context<'_>, parent: Option<StepId>) -> StepId {
        // Past u16 the plan is refused anyway (MAX_PLAN_STEPS); ids then wrap harmlessly.
        let id = StepId(cx.steps.len() as u16);
        cx.steps.push(Step::Seq(Vec::new()));
        cx.parents.push(parent);
        id
    }

    /// A `seq` or `par` of `children`; `key` is `seq` or `par`, or empty for the plan's
    /// own top-level list (whose elements are `plan[i]`).
    #[allow(clippy::too_many_arguments)]
    fn list(
        &mut self,
        cx: &mut Context<'_>,
        children: &[StepSpec],
        parent: Option<StepId>,
        at: &str,
        key: &str,
        par: bool,
        depth: usize,
    ) {
        let here = if key.is_empty() {
            at.to_owned()
        } else {
            format!("{at}.{key}")
        };
        if children.is_empty() {
            self.errors.push(ConfigError::new(
                here,
                format!("an empty `{key}` does nothing; give it at least one step"),
            ));
            return;
        }
        if depth >= MAX_PLAN_DEPTH {
            self.errors.push(ConfigError::new(
                here,
                format!("plans nest at most {MAX_PLAN_DEPTH} deep"),
            ));
            return;
        }
        let id = Self::reserve(cx, parent);
        let mut ids = Vec::with_capacity(children.len());
        for (i, child) in children.iter().enumerate() {
            ids.push(StepId(cx.steps.len() as u16));
            self.step(cx, child, Some(id), &format!("{here}[{i}]"), depth + 1);
        }
        cx.steps[id.index()] = if par { Step::Par(ids) } else { Step::Seq(ids) };
    }

    fn step(
        &mut self,
        cx: &mut Context<'_>,
        spec: &StepSpec,
        parent: Option<StepId>,
        at: &str,
        depth: usize,
    ) {
        match spec {
            StepSpec::Seq(children) => self.list(cx, children, parent, at, "seq", false, depth),
            StepSpec::Par(children) => self.list(cx, children, parent, at, "par", true, depth),
            StepSpec::Call {
                call,
                op,
                key,
                leaf,
            } => {
                let id = Self::reserve(cx, parent);
                let dependency = self
                    .deps
                    .resolve(call, &format!("{at}.call"), &mut self.errors)
                    .map(DependencyId);
                let key_space = match key {
                    Some(k) => self
                        .keys
                        .resolve(k, &format!("{at}.key"), &mut self.errors)
                        .map(KeySpaceId),
                    None => {
                        if !cx.endpoint_has_key {
                            self.errors.push(ConfigError::new(
                                format!("{at}.key"),
                                "the endpoint's requests have no key: name a key space",
                            ));
                        }
                        None
                    }
                };
                let has_key = key.is_some() || cx.endpoint_has_key;
                let leaf = self.leaf(cx, leaf, at, Some((dependency, *op)), has_key);
                if let Some(dependency) = dependency {
                    cx.steps[id.index()] = Step::Call(CallStep {
                        dependency,
                        op: *op,
                        key_space,
                        leaf,
                    });
                }
            }
            StepSpec::Local { answer, leaf } => {
                let id = Self::reserve(cx, parent);
                if answer.is_empty() {
                    self.errors.push(ConfigError::new(
                        format!("{at}.local"),
                        "a local step must name its answer",
                    ));
                }
                let leaf = self.leaf(cx, leaf, at, None, cx.endpoint_has_key);
                cx.steps[id.index()] = Step::Local(LocalStep {
                    answer: answer.clone(),
                    leaf,
                });
            }
        }
    }

    /// Resolves a leaf's feature and fallbacks. `call` is the step's dependency (`None`
    /// if unknown) and op when it is a call, `None` for a local step; `has_key`: whether
    /// the step has a key for a fallback call to use.
    fn leaf(
        &mut self,
        cx: &Context<'_>,
        spec: &LeafSpec,
        at: &str,
        call: Option<(Option<DependencyId>, CallOp)>,
        has_key: bool,
    ) -> Leaf {
        let feature = spec.feature.as_deref().and_then(|f| {
            if cx.critical && !spec.optional {
                self.errors.push(ConfigError::new(
                    format!("{at}.feature"),
                    "a required step of a critical endpoint cannot be gated by a feature: \
                     disabling it would fail the endpoint",
                ));
            }
            self.features
                .resolve(f, &format!("{at}.feature"), &mut self.errors)
                .map(FeatureId)
        });
        if spec.fallback.len() > MAX_FALLBACKS {
            self.errors.push(ConfigError::new(
                format!("{at}.fallback"),
                format!(
                    "at most {MAX_FALLBACKS} fallbacks, got {}",
                    spec.fallback.len()
                ),
            ));
        }
        let last = spec.fallback.len().saturating_sub(1);
        let mut fallback = Vec::with_capacity(spec.fallback.len());
        for (i, f) in spec.fallback.iter().enumerate() {
            let here = format!("{at}.fallback[{i}]");
            match f {
                FallbackSpec::Cache => {
                    match call {
                        None => self.errors.push(ConfigError::new(
                            here,
                            "a local step has no cache to fall back to",
                        )),
                        Some((_, CallOp::Write)) => self.errors.push(ConfigError::new(
                            here,
                            "a cache answers reads only; a write cannot fall back to it",
                        )),
                        Some((Some(dep), CallOp::Read)) if !self.cached[dep.index()] => {
                            let with: Vec<&str> = (0..self.cached.len())
                                .filter(|&d| self.cached[d])
                                .map(|d| self.deps.names[d])
                                .collect();
                            self.errors.push(ConfigError::new(
                                here,
                                format!(
                                    "dependency `{}` has no cache; dependencies with one: {}",
                                    self.deps.names[dep.index()],
                                    if with.is_empty() {
                                        "none".to_owned()
                                    } else {
                                        with.join(", ")
                                    }
                                ),
                            ))
                        }
                        // Cached, or an unknown dependency (already reported).
                        Some(_) => {}
                    }
                    fallback.push(Fallback::Cache);
                }
                FallbackSpec::Call { call, op } => {
                    if !has_key {
                        self.errors.push(ConfigError::new(
                            here.clone(),
                            "the endpoint's requests have no key for a fallback call to use",
                        ));
                    }
                    if let Some(d) =
                        self.deps
                            .resolve(call, &format!("{here}.call"), &mut self.errors)
                    {
                        fallback.push(Fallback::Call {
                            dependency: DependencyId(d),
                            op: *op,
                        });
                    }
                }
                FallbackSpec::Static(text) => fallback.push(Fallback::Static(text.clone())),
                FallbackSpec::Omit => {
                    if !spec.optional {
                        self.errors.push(ConfigError::new(
                            here.clone(),
                            "`omit` leaves the part out of the reply, so only an optional \
                             step may fall back to it",
                        ));
                    }
                    if i != last {
                        self.errors.push(ConfigError::new(
                            here,
                            "`omit` always succeeds, so it must be the last fallback",
                        ));
                    }
                    fallback.push(Fallback::Omit);
                }
            }
        }
        if spec.fallback_cpu > 0 {
            let here = format!("{at}.fallback_cpu");
            if !self.compute {
                self.errors.push(ConfigError::new(
                    here,
                    "counts only with a [compute] table, which says the node's cores",
                ));
            } else if spec.fallback.is_empty() {
                self.errors.push(ConfigError::new(
                    here,
                    "the step has no fallback chain to pay for",
                ));
            }
        }
        if let Some(n) = spec.max_attempts {
            let here = format!("{at}.max_attempts");
            match call {
                None => self.errors.push(ConfigError::new(
                    here,
                    "a local step makes no call to retry",
                )),
                Some((Some(dep), _)) => match self.retrying[dep.index()] {
                    None => self.errors.push(ConfigError::new(
                        here,
                        format!(
                            "`{}` has no retry policy: give it [dependencies.{}.retry] \
                             (backoff, budget), then cap its calls here",
                            self.deps.names[dep.index()],
                            self.deps.names[dep.index()]
                        ),
                    )),
                    Some(max) if n == 0 || n > max => self.errors.push(ConfigError::new(
                        here,
                        format!(
                            "must be between 1 (never retried) and the dependency's own \
                             max_attempts ({max}), got {n}"
                        ),
                    )),
                    Some(_) => {}
                },
                // An unknown dependency is reported where it is named.
                Some((None, _)) => {}
            }
        }
        Leaf {
            optional: spec.optional,
            feature,
            fallback,
            max_attempts: spec.max_attempts,
            fallback_cpu: spec.fallback_cpu,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The seed service.

/// The seed task's simulated dependency when a scenario says nothing: log-normal
/// latency with p50 10 ms and p99 80 ms, no errors, refused in 1 ms when down, no
/// concurrency limit (the same as the scenario file's defaults; a test checks it).
pub fn seed_sim_dependency() -> SimDependency {
    SimDependency {
        latency: Latency::LogNormal {
            p50: 10 * MILLISECOND,
            p99: 80 * MILLISECOND,
        },
        error_rate: 0.0,
        down_latency: MILLISECOND,
        max_concurrency: None,
    }
}

/// The seed's key spaces when a scenario says nothing: 1 000 keys each, uniform.
pub const SEED_KEYS: Keys = Keys::Uniform { n: 1_000 };

impl Service {
    /// The seed task's service with the node's default configuration.
    pub fn seed() -> Service {
        let sim = seed_sim_dependency();
        Service::seed_with(&NodeConfig::default(), [sim.clone(), sim], [SEED_KEYS; 2])
    }

    /// The seed task's service: `users` and `products` (each with a cache and a write
    /// queue, configured by `config`, behaving as `sims`), key spaces `user` and
    /// `product` (drawn as `keys`), and its six endpoints:
    ///
    /// - `get_user` / `get_product`: read the dependency, falling back to its stale cache
    ///   (the node's stale-if-error; cache-first is the dependency's read policy);
    /// - `update_user` / `update_product`: write the dependency (its queue takes the
    ///   write when the dependency cannot, inside the engine, so no fallback);
    /// - `get_recommendations` / `search`: answered locally, gated by the features of the
    ///   same names; disabled, they fall back to an empty, degraded answer.
    pub fn seed_with(config: &NodeConfig, sims: [SimDependency; 2], keys: [Keys; 2]) -> Service {
        let [user_sim, product_sim] = sims;
        let [user_keys, product_keys] = keys;
        let dependency = |name: &str, config: &DependencyConfig, sim| DependencySpec {
            name: name.to_owned(),
            engine: DependencyEngine::from_config(config),
            sim,
        };
        let read = |dep: &str| {
            vec![StepSpec::Call {
                call: dep.to_owned(),
                op: CallOp::Read,
                key: None,
                leaf: LeafSpec {
                    fallback: vec![FallbackSpec::Cache],
                    ..LeafSpec::default()
                },
            }]
        };
        let local = |answer: &str, feature: &str| {
            vec![StepSpec::Local {
                answer: answer.to_owned(),
                leaf: LeafSpec {
                    optional: false,
                    feature: Some(feature.to_owned()),
                    fallback: vec![FallbackSpec::Static("empty".to_owned())],
                    max_attempts: None,
                    fallback_cpu: 0,
                },
            }]
        };
        let endpoint = |name: &str, key: Option<&str>, plan| EndpointSpec {
            name: name.to_owned(),
            key: key.map(str::to_owned),
            plan,
            ..EndpointSpec::default()
        };
        let spec = ServiceSpec {
            name: "seed".to_owned(),
            dependencies: vec![
                dependency("users", &config.dependencies[0], user_sim),
                dependency("products", &config.dependencies[1], product_sim),
            ],
            key_spaces: vec![
                KeySpace {
                    name: "user".to_owned(),
                    keys: user_keys,
                    records: Default::default(),
                },
                KeySpace {
                    name: "product".to_owned(),
                    keys: product_keys,
                    records: Default::default(),
                },
            ],
            features: vec!["recommendations".to_owned(), "search".to_owned()],
            endpoints: vec![
                endpoint("get_user", Some("user"), read("users")),
                endpoint("get_product", Some("product"), read("products")),
                endpoint(
                    "update_user",
                    Some("user"),
                    vec![StepSpec::call("users", CallOp::Write)],
                ),
                endpoint(
                    "update_product",
                    Some("product"),
                    vec![StepSpec::call("products", CallOp::Write)],
                ),
                endpoint(
                    "get_recommendations",
                    Some("user"),
                    local("recommender", "recommendations"),
                ),
                endpoint("search", None, local("search_index", "search")),
            ],
            admission: None,
            compute: None,
        };
        match spec.build() {
            Ok(service) => service,
            Err(errors) => panic!("the seed service is invalid: {errors:?}"),
        }
    }

    /// The key spaces the calls to `dependency` draw their keys from (a call's own
    /// space, or its endpoint's), in id order.
    pub fn key_spaces_of(&self, dependency: DependencyId) -> Vec<KeySpaceId> {
        let mut spaces = Vec::new();
        for endpoint in &self.endpoints {
            for step in &endpoint.plan.steps {
                let Step::Call(call) = step else { continue };
                let space = call.key_space.or(endpoint.key);
                let fallbacks = call.leaf.fallback.iter().filter_map(|f| match f {
                    Fallback::Call { dependency: d, .. } => Some(*d),
                    _ => None,
                });
                let targets = std::iter::once(call.dependency).chain(fallbacks);
                for target in targets {
                    if let Some(space) = space.filter(|_| target == dependency) {
                        if !spaces.contains(&space) {
                            spaces.push(space);
                        }
                    }
                }
            }
        }
        spaces.sort();
        spaces
    }

    /// What `dependency` holds: the records `1..=n` of the largest key space its
    /// calls draw from, and the records those key spaces name. Not warm: a declared
    /// node's caches start empty. Sized by its own key spaces, not the service's
    /// largest: a store holds a slot per record.
    pub fn collection(&self, dependency: DependencyId) -> crate::node::Collection {
        let spaces: Vec<&KeySpace> = self
            .key_spaces_of(dependency)
            .into_iter()
            .map(|k| &self.key_spaces[k.index()])
            .collect();
        crate::node::Collection {
            count: spaces.iter().map(|k| k.keys.count()).max().unwrap_or(0),
            records: spaces
                .iter()
                .flat_map(|k| k.records.iter().map(|(&id, name)| (id, name.clone())))
                .collect(),
            warm: false,
        }
    }

    /// The dependency `id`.
    pub fn dependency(&self, id: DependencyId) -> &DependencySpec {
        &self.dependencies[id.index()]
    }

    /// The endpoint `id`.
    pub fn endpoint(&self, id: EndpointId) -> &Endpoint {
        &self.endpoints[id.index()]
    }

    /// The endpoint serving wire type `name` (a linear search: for the parser, once per
    /// request type, not for the hot path).
    pub fn endpoint_named(&self, name: &str) -> Option<EndpointId> {
        self.endpoints
            .iter()
            .position(|e| e.name == name)
            .map(|i| EndpointId(i as u16))
    }

    /// The dependency named `name`.
    pub fn dependency_named(&self, name: &str) -> Option<DependencyId> {
        self.dependencies
            .iter()
            .position(|d| d.name == name)
            .map(|i| DependencyId(i as u16))
    }
}

#[cfg(test)]
mod tests;
