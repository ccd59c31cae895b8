//! From the file's types to the domain [`Scenario`]: defaults, cross-field checks and
//! every engine and simulator `validate()`.
//!
//! Errors name the offending key as a dotted path in the file's own vocabulary
//! (`dependencies.users.breaker.failure_threshold`, `workload[0].rate[1].to`), which
//! the caller locates in the document. Engine errors name the engine's fields
//! (`breaker.trip_policy.failure_threshold`); they are renamed here, next to the call.
//!
//! Independent parts are all checked and their errors collected: each of `name`,
//! `duration`, each data collection, `modes`, each part of each dependency, each
//! workload stream (its rate, mix and keys), each fault, random fault, CPU point and
//! script entry, and `expect`. A check that depends on a part that failed is skipped
//! rather than reported on a guess: nothing that compares times with `duration` runs
//! when `duration` is refused, a whole rate plan or CPU curve is validated only once
//! its phases or points are, and the node only once all its parts are. Within one
//! part (a fault, a phase, a breaker) the first error is the part's error.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::service::ServiceNames;
use super::values::{format_span, humanize_micros, Dur};
use super::*;
use crate::engine::breaker::{self, BreakerConfig, TripPolicy};
use crate::engine::bulkhead::{self, BulkheadConfig};
use crate::engine::cache::{self, CacheConfig};
use crate::engine::modes::{self, Mode, ModeConfig};
use crate::engine::queue::{self, QueueConfig};
use crate::engine::retry::{
    self, BudgetConfig, Jitter, Pipeline, RetryConfig, RetryOn, TimeoutScope,
};
use crate::engine::{ConfigError, Span, Time};
use crate::model::faults::{Fault, FaultKind, RandomFaults};
use crate::model::latency::Latency;
use crate::model::load::{CpuCurveConfig, CpuSegment, DEFAULT_INITIAL_CPU, DEFAULT_SAMPLE_EVERY};
use crate::model::service::{unknown_name, DependencyEngine, DependencyId, EndpointId, Service};
use crate::model::sweep::{
    SweepBound, SweepExpectations, SweepFigure, SweepPercentile, DEFAULT_SWEEP_SEEDS,
    MAX_SWEEP_SEEDS,
};
use crate::model::workload::{Keys, RatePhase, RatePlan};
use crate::model::{
    DependencyExpectations, EndpointExpectations, Expectations, RequestKind, Scenario,
    ScriptedMessage, SimDependency, WorkloadStream,
};
use crate::node::config::DEFAULT_CALL_TIMEOUT;
use crate::node::{Collection, DataSet, DependencyConfig, NodeConfig, ReadPolicy, Resource};

/// A refused value: the dotted path of its key in the file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Invalid {
    /// The key, e.g. `dependencies.users.breaker.failure_threshold`.
    pub path: String,
    /// Why, lowercase, no trailing period.
    pub reason: String,
}

type Result<T> = std::result::Result<T, Invalid>;

/// The result of a part made of independent parts: every error they had.
pub(super) type Many<T> = std::result::Result<T, Vec<Invalid>>;

/// The errors collected while building independent parts.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<Invalid>);

impl Problems {
    /// The value of a part, or `None` with its error kept.
    pub(super) fn check<T>(&mut self, result: Result<T>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }

    /// The value of a part made of parts, or `None` with all their errors kept.
    pub(super) fn check_all<T>(&mut self, result: Many<T>) -> Option<T> {
        result.map_err(|e| self.0.extend(e)).ok()
    }

    pub(super) fn push(&mut self, invalid: Invalid) {
        self.0.push(invalid);
    }

    /// `value` if nothing was wrong, else every error. A part without a value says
    /// why, so `value` is `None` only with errors.
    pub(super) fn finish<T>(self, value: Option<T>) -> Many<T> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => {
                assert!(!self.0.is_empty(), "a part failed without an error");
                Err(self.0)
            }
        }
    }
}

pub(super) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Turns an engine error into one about the file: `renames` (applied in order) map the
/// engine's field names onto the file's keys, then `prefix` says where they live.
fn engine<'a>(
    prefix: &'a str,
    renames: &'a [(&'a str, &'a str)],
) -> impl Fn(ConfigError) -> Invalid + 'a {
    move |e: ConfigError| {
        let mut field = e.field;
        for (from, to) in renames {
            field = field.replace(from, to);
        }
        invalid(format!("{prefix}{field}"), humanize_micros(&e.reason))
    }
}

/// Checks that the keys written in a table with variants (`dist`, `policy`, `kind`)
/// are the ones the chosen variant takes. `present` lists every variant-specific key
/// and whether it is written; `allowed` are the chosen variant's keys, of which
/// `required` must be written.
pub(super) fn check_variant_keys(
    prefix: &str,
    chosen: &str,
    present: &[(&str, bool)],
    allowed: &[&str],
    required: &[&str],
) -> Result<()> {
    let takes = if allowed.is_empty() {
        "which takes none of them".to_owned()
    } else {
        format!("which takes {}", allowed.join(", "))
    };
    for &(key, written) in present {
        if written && !allowed.contains(&key) {
            return Err(invalid(
                format!("{prefix}.{key}"),
                format!("does not apply to {chosen}, {takes}"),
            ));
        }
    }
    for &key in required {
        if !present.iter().any(|&(k, written)| k == key && written) {
            return Err(invalid(
                format!("{prefix}.{key}"),
                format!("is required by {chosen}"),
            ));
        }
    }
    Ok(())
}

/// Refuses an instant after the end of the run.
fn within_run(path: impl Into<String>, at: Time, duration: Time) -> Result<()> {
    if at > duration {
        return Err(invalid(
            path,
            format!(
                "{} is past the end of the run (duration = \"{}\")",
                format_span(at),
                format_span(duration)
            ),
        ));
    }
    Ok(())
}

/// Refuses a window that does not end after it starts.
fn forward(path: impl Into<String>, start: Time, end: Time, start_key: &str) -> Result<()> {
    if end <= start {
        return Err(invalid(
            path,
            format!(
                "must be after {start_key} ({}), got {}",
                format_span(start),
                format_span(end)
            ),
        ));
    }
    Ok(())
}

fn span(d: Option<Dur>, default: Span) -> Span {
    d.map_or(default, |d| d.0)
}

/// What a stream's `mix` and keys become.
pub(super) struct StreamMix {
    mix: Vec<(RequestKind, f64)>,
    endpoints: Vec<(EndpointId, f64)>,
    user_keys: Keys,
    product_keys: Keys,
}

/// What building a scenario of the seed service and one with a declared service do
/// differently: the parts whose keys or names are the service's.
pub(super) trait Serve {
    /// How the file is written.
    type Shape: Shape;
    /// The node's configuration, the data set and the seed's simulated dependencies.
    fn node(
        &self,
        file: &ScenarioFile<Self::Shape>,
    ) -> Many<(NodeConfig, DataSet, [SimDependency; 2])>;
    /// A stream's mix and keys; `at` is the stream's path (`workload[0]`).
    fn mix(&self, file: &WorkloadFile<Self::Shape>, at: &str) -> Many<StreamMix>;
    /// The index of a fault's dependency, written at `at`.
    fn dependency(&self, name: &<Self::Shape as Shape>::Dependency, at: &str) -> Result<usize>;
    /// `[expect.endpoints]` and `[expect.dependencies]`.
    fn expect_parts(
        &self,
        file: &ExpectFile,
    ) -> Many<(Vec<EndpointExpectations>, Vec<DependencyExpectations>)>;
    /// The declared service, if there is one.
    fn service(&self) -> Option<Arc<Service>>;
}

/// The seed service; `counts` are the data set's record counts, the default key ranges.
pub(super) struct SeedServe {
    counts: [u64; 2],
}

impl SeedServe {
    pub(super) fn new(file: &ScenarioFile) -> SeedServe {
        SeedServe {
            counts: Resource::ALL.map(|r| data_count(&file.data, r)),
        }
    }
}

impl Serve for SeedServe {
    type Shape = Seed;

    fn node(&self, file: &ScenarioFile) -> Many<(NodeConfig, DataSet, [SimDependency; 2])> {
        let mut problems = Problems::default();
        let data = problems.check_all(build_data(&file.data));
        let node = problems.check_all(build_node(&file.modes, &file.dependencies));
        let built = data
            .zip(node)
            .map(|(data, (node, dependencies))| (node, data, dependencies));
        problems.finish(built)
    }

    fn mix(&self, file: &WorkloadFile<Seed>, at: &str) -> Many<StreamMix> {
        let mut problems = Problems::default();
        let m = &file.mix;
        let weights = [
            (RequestKind::GetUser, m.get_user),
            (RequestKind::GetProduct, m.get_product),
            (RequestKind::UpdateUser, m.update_user),
            (RequestKind::UpdateProduct, m.update_product),
            (RequestKind::GetRecommendations, m.get_recommendations),
            (RequestKind::Search, m.search),
        ]
        .into_iter()
        .filter_map(|(kind, w)| w.map(|w| (kind, w.0)))
        .collect();
        let mix = problems.check(positive_weights(
            at,
            weights,
            ("request kind", "get_user", "kinds"),
            &RequestKind::ALL.map(RequestKind::as_str),
        ));
        let [user_keys, product_keys] = [
            (file.users.as_ref(), Resource::Users),
            (file.products.as_ref(), Resource::Products),
        ]
        .map(|(keys, resource)| {
            let count = self.counts[resource.dependency()];
            problems.check(build_keys(keys, at, resource, count))
        });
        let built = match (mix, user_keys, product_keys) {
            (Some(mix), Some(user_keys), Some(product_keys)) => Some(StreamMix {
                mix,
                endpoints: Vec::new(),
                user_keys,
                product_keys,
            }),
            _ => None,
        };
        problems.finish(built)
    }

    fn dependency(&self, name: &DependencyName, _at: &str) -> Result<usize> {
        Ok(match name {
            DependencyName::Users => Resource::Users.dependency(),
            DependencyName::Products => Resource::Products.dependency(),
        })
    }

    fn expect_parts(
        &self,
        file: &ExpectFile,
    ) -> Many<(Vec<EndpointExpectations>, Vec<DependencyExpectations>)> {
        let mut problems = Problems::default();
        if !file.endpoints.0.is_empty() {
            problems.push(invalid(
                "expect.endpoints",
                "checks a declared service's parts; the seed service has none \
                 (declare one with `service = \"...\"` or [service])",
            ));
        }
        // The seed's two dependencies take the checks its report has figures for:
        // breaker trips and the recovery storm.
        let names = Resource::ALL.map(Resource::as_str);
        let mut dependencies = Vec::new();
        for (name, d) in &file.dependencies.0 {
            let at = format!("expect.dependencies.{name}");
            let Some(id) = problems.check(resolve(&names, "dependency", name, at.clone())) else {
                continue;
            };
            for (key, written) in [
                ("max_failure_rate", d.max_failure_rate.is_some()),
                (
                    "max_failure_rate_in_faults",
                    d.max_failure_rate_in_faults.is_some(),
                ),
                ("max_fan_out", d.max_fan_out.is_some()),
            ] {
                if written {
                    problems.push(invalid(
                        format!("{at}.{key}"),
                        "checks a declared service's dependency; the seed service's \
                         take only max_breaker_trips and max_recovery_multiplier",
                    ));
                }
            }
            dependencies.push(DependencyExpectations {
                dependency: DependencyId(id as u16),
                max_breaker_trips: d.max_breaker_trips,
                max_recovery_multiplier: d.max_recovery_multiplier.map(|n| n.0),
                ..DependencyExpectations::default()
            });
        }
        problems.finish(Some((Vec::new(), dependencies)))
    }

    fn service(&self) -> Option<Arc<Service>> {
        None
    }
}

/// A declared service: the names the scenario may use, and the service once built.
impl Serve for ServiceNames<'_> {
    type Shape = Declared;

    fn node(
        &self,
        file: &ScenarioFile<Declared>,
    ) -> Many<(NodeConfig, DataSet, [SimDependency; 2])> {
        let mut problems = Problems::default();
        if file.data.0 {
            problems.push(invalid(
                "data",
                "is the seed service's data set; a declared service's records are its key \
                 spaces' `records` ([keys.NAME] in the service)",
            ));
        }
        if file.dependencies.0 {
            problems.push(invalid(
                "dependencies",
                "configures the seed service's users and products; a declared service's \
                 dependencies are declared in the service ([dependencies.NAME] there)",
            ));
        }
        let modes = problems.check_all(build_modes(&file.modes, Some(&self.features)));
        let sim = crate::model::service::seed_sim_dependency();
        // Only the modes apply: the rest stands for the seed service, which does not run.
        let built = modes.map(|modes| {
            let node = NodeConfig {
                modes,
                ..NodeConfig::default()
            };
            (node, DataSet::default(), [sim.clone(), sim])
        });
        problems.finish(built)
    }

    fn mix(&self, file: &WorkloadFile<Declared>, at: &str) -> Many<StreamMix> {
        let mut problems = Problems::default();
        for (key, written) in [
            ("users", file.users.is_some()),
            ("products", file.products.is_some()),
        ] {
            if written {
                problems.push(invalid(
                    format!("{at}.{key}"),
                    "draws the seed service's keys; a declared endpoint's keys come from \
                     its key space (`key` of the endpoint)",
                ));
            }
        }
        let mut weights = Vec::new();
        let mut unknown = false;
        for (name, weight) in &file.mix.0 {
            match problems.check(resolve(
                &self.endpoints,
                "endpoint",
                name,
                format!("{at}.mix.{name}"),
            )) {
                Some(id) => weights.push((EndpointId(id as u16), weight.0)),
                None => unknown = true,
            }
        }
        if unknown {
            // Said already; whether the rest is enough is for once the names are right.
            return problems.finish(None);
        }
        // Endpoint order, as the seed's mix is in kind order.
        weights.sort_by_key(|&(id, _)| id);
        let example = self.endpoints.first().copied().unwrap_or("checkout");
        let endpoints = problems.check(positive_weights(
            at,
            weights,
            ("endpoint", example, "endpoints"),
            &self.endpoints,
        ));
        let built = endpoints.map(|endpoints| StreamMix {
            mix: Vec::new(),
            endpoints,
            user_keys: crate::model::service::SEED_KEYS,
            product_keys: crate::model::service::SEED_KEYS,
        });
        problems.finish(built)
    }

    fn dependency(&self, name: &String, at: &str) -> Result<usize> {
        resolve(&self.dependencies, "dependency", name, at.to_owned())
    }

    fn expect_parts(
        &self,
        file: &ExpectFile,
    ) -> Many<(Vec<EndpointExpectations>, Vec<DependencyExpectations>)> {
        let mut problems = Problems::default();
        let mut endpoints = Vec::new();
        for (name, e) in &file.endpoints.0 {
            let at = format!("expect.endpoints.{name}");
            if let Some(id) = problems.check(resolve(&self.endpoints, "endpoint", name, at)) {
                endpoints.push(EndpointExpectations {
                    endpoint: EndpointId(id as u16),
                    min_availability: e.min_availability.map(|p| p.0),
                    max_p99_latency: e.max_p99_latency.map(|d| d.0),
                    max_partial_rate: e.max_partial_rate.map(|p| p.0),
                    max_shed_rate: e.max_shed_rate.map(|p| p.0),
                    max_deadline_misses: e.max_deadline_misses,
                });
            }
        }
        let mut dependencies = Vec::new();
        for (name, d) in &file.dependencies.0 {
            let at = format!("expect.dependencies.{name}");
            if let Some(id) = problems.check(resolve(&self.dependencies, "dependency", name, at)) {
                dependencies.push(DependencyExpectations {
                    dependency: DependencyId(id as u16),
                    max_failure_rate: d.max_failure_rate.map(|p| p.0),
                    max_failure_rate_in_faults: d.max_failure_rate_in_faults.map(|p| p.0),
                    max_breaker_trips: d.max_breaker_trips,
                    max_fan_out: d.max_fan_out.map(|n| n.0),
                    max_recovery_multiplier: d.max_recovery_multiplier.map(|n| n.0),
                });
            }
        }
        problems.finish(Some((endpoints, dependencies)))
    }

    fn service(&self) -> Option<Arc<Service>> {
        self.service.clone()
    }
}

/// The index of `name` among `declared`, or an error at `at` that lists them.
fn resolve(declared: &[&str], what: &str, name: &str, at: String) -> Result<usize> {
    declared
        .iter()
        .position(|d| *d == name)
        .ok_or_else(|| invalid(at, unknown_name(what, name, declared)))
}

/// A mix's weights with the zero ones dropped (a kind written with weight 0 is switched
/// off, which is handy when editing a mix, and the generator needs positive weights),
/// refused if none is left or they add up past a float.
fn positive_weights<K>(
    at: &str,
    weights: Vec<(K, f64)>,
    (what, example, label): (&str, &str, &str),
    names: &[&str],
) -> Result<Vec<(K, f64)>> {
    let weights: Vec<(K, f64)> = weights.into_iter().filter(|&(_, w)| w > 0.0).collect();
    if weights.is_empty() {
        Err(invalid(
            format!("{at}.mix"),
            format!(
                "needs at least one {what} with a positive weight, such as \
                 {{ {example} = 1 }} ({label}: {})",
                names.join(", ")
            ),
        ))
    } else if !weights.iter().map(|&(_, w)| w).sum::<f64>().is_finite() {
        Err(invalid(
            format!("{at}.mix"),
            "the weights add up to more than a float can hold",
        ))
    } else {
        Ok(weights)
    }
}

/// The whole scenario, or every error found.
pub(super) fn build<S: Serve>(
    file: ScenarioFile<S::Shape>,
    path: &Path,
    serve: &S,
) -> Many<Scenario> {
    let mut problems = Problems::default();
    let name = problems.check(match &file.name {
        Some(name) if name.trim().is_empty() => Err(invalid("name", "must not be empty")),
        Some(name) => Ok(name.clone()),
        None => Ok(path.file_stem().map_or_else(
            || "scenario".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        )),
    });
    let duration = problems.check(match file.duration.0 {
        0 => Err(invalid("duration", "must be longer than zero")),
        d => Ok(d),
    });
    let node = problems.check_all(serve.node(&file));
    let random_faults = file
        .random_fault
        .iter()
        .enumerate()
        .map(|(i, f)| problems.check(build_random_fault(f, i, serve)))
        .collect::<Option<Vec<_>>>();
    let parts = problems.check_all(serve.expect_parts(&file.expect));

    // Everything below compares times with the run's duration.
    let (mut workload, mut faults, mut cpu, mut script, mut expect) =
        (None, None, None, None, None);
    if let Some(duration) = duration {
        workload = problems.check_all(build_workload(&file.workload, duration, serve));
        faults = file
            .fault
            .iter()
            .enumerate()
            .map(|(i, f)| problems.check(build_fault(f, i, duration, serve)))
            .collect::<Option<Vec<_>>>();
        cpu = match &file.cpu {
            Some(c) => problems.check_all(build_cpu(c, duration)).map(Some),
            None => Some(None),
        };
        script = file
            .script
            .iter()
            .enumerate()
            .map(|(i, s)| problems.check(build_script(s, i, duration)))
            .collect::<Option<Vec<_>>>();
        expect = problems.check(build_expect(&file.expect, duration));
    }

    let expect = expect
        .zip(parts)
        .map(|(expect, (endpoints, dependencies))| Expectations {
            endpoints,
            dependencies,
            ..expect
        });
    let scenario = match (
        name,
        duration,
        node,
        random_faults,
        workload,
        faults,
        cpu,
        script,
        expect,
    ) {
        (
            Some(name),
            Some(duration),
            Some((node, data, dependencies)),
            Some(random_faults),
            Some(workload),
            Some(faults),
            Some(cpu),
            Some(script),
            Some(expect),
        ) => Some(Scenario {
            service: serve.service(),
            name,
            description: file.description,
            path: path.to_owned(),
            seed: file.seed.unwrap_or(DEFAULT_SEED),
            duration,
            node,
            data,
            dependencies,
            faults,
            random_faults,
            cpu,
            workload,
            script,
            expect,
            overrides: Vec::new(),
        }),
        _ => None,
    };
    problems.finish(scenario)
}

/// The node's configuration and the simulated dependencies behind it.
fn build_node(
    modes: &ModesFile,
    files: &DependenciesFile,
) -> Many<(NodeConfig, [SimDependency; 2])> {
    let mut problems = Problems::default();
    let modes = problems.check_all(build_modes(modes, None));
    let built = Resource::ALL.map(|resource| {
        let default = DependencyFile::default();
        let dep = [&files.users, &files.products][resource.dependency()]
            .as_ref()
            .unwrap_or(&default);
        let prefix = format!("dependencies.{}", resource.as_str());
        let built = build_dependency(dep, &prefix, Absent::Defaults);
        problems.check_all(built).map(|(sim, engine)| {
            let config = DependencyConfig {
                timeout: engine.timeout,
                read_policy: engine.read_policy,
                breaker: engine.breaker,
                cache: engine.cache.expect("a seed dependency has a cache"),
                queue: engine.queue.expect("a seed dependency has a queue"),
                retry: engine.retry,
                pipeline: engine.pipeline,
                timeout_scope: engine.timeout_scope,
                read_your_writes: engine.read_your_writes,
            };
            (sim, config)
        })
    });
    let (Some(modes), [Some(users), Some(products)]) = (modes, built) else {
        return problems.finish(None);
    };
    let ((sim_users, users), (sim_products, products)) = (users, products);
    let node = NodeConfig {
        dependencies: [users, products],
        modes,
    };
    // Every part was checked above with precise paths; this is the guarantee that the
    // node builds, whatever NodeConfig checks beyond its parts.
    let node = problems.check(
        node.validate()
            .map(|()| node)
            .map_err(engine("dependencies.", &[("trip_policy.", "")])),
    );
    problems.finish(node.map(|node| (node, [sim_users, sim_products])))
}

/// Every workload stream, and that no two share a name.
fn build_workload<S: Serve>(
    files: &[WorkloadFile<S::Shape>],
    duration: Time,
    serve: &S,
) -> Many<Vec<WorkloadStream>> {
    let mut problems = Problems::default();
    let names: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(k, f)| f.name.clone().unwrap_or_else(|| default_stream_name(k)))
        .collect();
    let mut streams = Vec::with_capacity(files.len());
    for (k, stream) in files.iter().enumerate() {
        streams.push(problems.check_all(build_stream(stream, k, duration, serve)));
        let name = &names[k];
        // An empty name is refused on its own; it is not also a duplicate.
        if name.trim().is_empty() {
            continue;
        }
        if let Some(j) = names[..k].iter().position(|n| n == name) {
            problems.push(invalid(
                format!("workload[{k}].name"),
                format!("`{name}` is already the name of workload[{j}]"),
            ));
        }
    }
    problems.finish(streams.into_iter().collect())
}

fn default_stream_name(k: usize) -> String {
    format!("stream-{}", k + 1)
}

fn default_latency() -> Latency {
    Latency::LogNormal {
        p50: DEFAULT_LATENCY_P50,
        p99: DEFAULT_LATENCY_P99,
    }
}

/// The collection of `resource` as written, or its default.
fn collection_file(file: &DataFile, resource: Resource) -> &CollectionFile {
    static DEFAULT: CollectionFile = CollectionFile {
        count: None,
        warm: None,
        records: Vec::new(),
    };
    [&file.users, &file.products][resource.dependency()]
        .as_ref()
        .unwrap_or(&DEFAULT)
}

/// The number of generated records of `resource`, as written or defaulted.
fn data_count(file: &DataFile, resource: Resource) -> u64 {
    collection_file(file, resource)
        .count
        .unwrap_or(DEFAULT_DATA_COUNT)
}

fn build_data(file: &DataFile) -> Many<DataSet> {
    let mut problems = Problems::default();
    let mut collections: [Collection; 2] = Default::default();
    for resource in Resource::ALL {
        let c = collection_file(file, resource);
        let mut records = BTreeMap::new();
        for (j, record) in c.records.iter().enumerate() {
            let name: Arc<str> = Arc::from(record.name.as_str());
            if records.insert(record.id, name).is_some() {
                problems.push(invalid(
                    format!("data.{}.records[{j}].id", resource.as_str()),
                    format!("record {} is listed twice", record.id),
                ));
            }
        }
        let count = data_count(file, resource);
        if count > MAX_DATA_COUNT {
            problems.push(invalid(
                format!("data.{}.count", resource.as_str()),
                format!(
                    "must be at most {MAX_DATA_COUNT} (records are generated in memory), \
                     got {count}"
                ),
            ));
        }
        collections[resource.dependency()] = Collection {
            count,
            records,
            warm: c.warm.unwrap_or(DEFAULT_WARM),
        };
    }
    problems.finish(Some(DataSet { collections }))
}

/// The mode controller. `declared`: a declared service's features, which its lists
/// must name, and which are then the defaults: `degraded` and `critical` disable every
/// declared feature (declaring one says it may go under load, as the seed's
/// recommendations and search do), and no feature is critical (a critical endpoint is
/// never gated by one anyway). Without, the seed's defaults, and any name goes.
fn build_modes(file: &ModesFile, declared: Option<&[&str]>) -> Many<ModeConfig> {
    let mut problems = Problems::default();
    let default = match declared {
        Some(features) => crate::model::service::default_modes(features),
        None => ModeConfig::default(),
    };
    let percent = |p: Option<Percent>, d: f64| p.map_or(d, |p| p.0);
    let mut disabled_features = default.disabled_features.clone();
    let mut lists = vec![(
        "modes.critical_features".to_owned(),
        &file.critical_features,
    )];
    if let Some(disabled) = &file.disabled {
        for (mode, list) in [
            (Mode::Normal, &disabled.normal),
            (Mode::Degraded, &disabled.degraded),
            (Mode::Critical, &disabled.critical),
        ] {
            if let Some(list) = list {
                disabled_features.insert(mode, list.clone());
            }
            lists.push((format!("modes.disabled.{mode}"), list));
        }
    }
    for (at, list) in lists {
        let (Some(features), Some(list)) = (declared, list) else {
            continue;
        };
        for (i, name) in list.iter().enumerate() {
            if !features.contains(&name.as_str()) {
                problems.push(invalid(
                    format!("{at}[{i}]"),
                    unknown_name("feature", name, features),
                ));
            }
        }
    }
    let config = ModeConfig {
        degraded_enter: percent(file.degraded_enter, modes::DEFAULT_DEGRADED_ENTER),
        degraded_leave: percent(file.degraded_leave, modes::DEFAULT_DEGRADED_LEAVE),
        critical_enter: percent(file.critical_enter, modes::DEFAULT_CRITICAL_ENTER),
        critical_leave: percent(file.critical_leave, modes::DEFAULT_CRITICAL_LEAVE),
        min_dwell: span(file.min_dwell, modes::DEFAULT_MIN_DWELL),
        disabled_features,
        critical_features: file
            .critical_features
            .clone()
            .unwrap_or(default.critical_features),
    };
    let config = problems.check(
        config
            .validate()
            .map(|()| config)
            .map_err(engine("", &[("disabled_features", "disabled")])),
    );
    problems.finish(config)
}

/// What a dependency without a `cache` or `queue` table has: the seed's dependencies
/// always have both (an absent table means every default), a declared one has none.
pub(super) enum Absent {
    Defaults,
    Nothing,
}

/// A dependency's simulated side and the engine in front of it; `prefix` is its path
/// (`dependencies.users`).
pub(super) fn build_dependency(
    file: &DependencyFile,
    prefix: &str,
    absent: Absent,
) -> Many<(SimDependency, DependencyEngine)> {
    let mut problems = Problems::default();
    let latency = match &file.latency {
        Some(l) => problems.check(build_latency(l, prefix)),
        None => Some(default_latency()),
    };
    if file.max_concurrency == Some(0) {
        problems.push(invalid(
            format!("{prefix}.max_concurrency"),
            "must be at least 1 (leave it out for no limit)",
        ));
    }
    let timeout = span(file.timeout, DEFAULT_CALL_TIMEOUT);
    if timeout == 0 {
        problems.push(invalid(
            format!("{prefix}.timeout"),
            "must be longer than zero",
        ));
    }
    let dotted = format!("{prefix}.");
    let breaker = problems.check(build_breaker(&file.breaker, prefix).and_then(|breaker| {
        breaker
            .validate()
            .map(|()| breaker)
            .map_err(engine(&dotted, &[("trip_policy.", "")]))
    }));
    let (default_cache, default_queue) = (CacheFile::default(), QueueFile::default());
    let (cache_file, queue_file) = match absent {
        Absent::Defaults => (
            Some(file.cache.as_ref().unwrap_or(&default_cache)),
            Some(file.queue.as_ref().unwrap_or(&default_queue)),
        ),
        Absent::Nothing => (file.cache.as_ref(), file.queue.as_ref()),
    };
    // `Some(None)`: there is none, which is valid; `None`: refused.
    let cache = match cache_file.map(build_cache) {
        None => Some(None),
        Some(cache) => problems.check(
            cache
                .validate()
                .map(|()| Some(cache))
                .map_err(engine(&dotted, &[])),
        ),
    };
    // The seed's writes wait behind queued ones (its task's rule); a declared
    // dependency's are versioned and do not, unless its file says so.
    let in_order_default = matches!(absent, Absent::Defaults);
    let queue = match queue_file.map(|q| build_queue(q, in_order_default)) {
        None => Some(None),
        Some(queue) => problems.check(
            queue
                .validate()
                .map(|()| Some(queue))
                .map_err(engine(&dotted, &[])),
        ),
    };
    let retry = match file.retry.as_ref().map(build_retry) {
        None => Some(None),
        Some(retry) => problems.check(
            retry
                .validate()
                .map(|()| Some(retry))
                .map_err(engine(&dotted, &[])),
        ),
    };
    let bulkhead = match (&file.bulkhead, &absent) {
        (None, _) => Some(None),
        (Some(_), Absent::Defaults) => problems.check(Err(invalid(
            format!("{prefix}.bulkhead"),
            "a bulkhead bounds a declared service's dependency; the seed service's \
             requests have none",
        ))),
        (Some(b), Absent::Nothing) => {
            let bulkhead = BulkheadConfig {
                max_concurrent_calls: b
                    .max_concurrent_calls
                    .unwrap_or(bulkhead::DEFAULT_MAX_CONCURRENT_CALLS),
                max_wait: span(b.max_wait, 0),
                max_waiting: b.max_waiting.unwrap_or(bulkhead::DEFAULT_MAX_WAITING),
                counts_as_failure: b.counts_as_failure.unwrap_or(false),
            };
            problems.check(
                bulkhead
                    .validate()
                    .map(|()| Some(bulkhead))
                    .map_err(engine(&format!("{prefix}.bulkhead."), &[])),
            )
        }
    };
    if file.cpu_per_call.is_some() && matches!(absent, Absent::Defaults) {
        problems.push(invalid(
            format!("{prefix}.cpu_per_call"),
            "the node's CPU is measured for a declared service with [compute]; the seed \
             service's CPU is its scenario's [cpu] curve",
        ));
    }
    let read_your_writes = match file.read_your_writes.as_ref().map(|d| d.0) {
        Some(0) => problems.check(Err(invalid(
            format!("{prefix}.read_your_writes"),
            "must be longer than zero (leave it out to turn read-your-writes off)",
        ))),
        window => Some(window),
    };
    let pipeline = match file.pipeline.as_deref() {
        None => Some((Pipeline::default(), TimeoutScope::default())),
        Some(layers) => problems.check(build_pipeline(layers, file.bulkhead.is_some(), prefix)),
    };
    let (pipeline, timeout_scope) = match pipeline {
        Some((p, t)) => (Some(p), t),
        None => (None, TimeoutScope::default()),
    };
    let (
        Some(latency),
        Some(breaker),
        Some(cache),
        Some(queue),
        Some(retry),
        Some(pipeline),
        Some(bulkhead),
        Some(read_your_writes),
    ) = (
        latency,
        breaker,
        cache,
        queue,
        retry,
        pipeline,
        bulkhead,
        read_your_writes,
    )
    else {
        return problems.finish(None);
    };
    let sim = SimDependency {
        latency,
        error_rate: file.error_rate.map_or(DEFAULT_ERROR_RATE, |p| p.0),
        down_latency: span(file.down_latency, DEFAULT_DOWN_LATENCY),
        max_concurrency: file.max_concurrency,
    };
    let config = DependencyEngine {
        timeout,
        read_policy: match file.read_policy {
            None => ReadPolicy::default(),
            Some(ReadPolicyFile::DependencyFirst) => ReadPolicy::DependencyFirst,
            Some(ReadPolicyFile::CacheFirst) => ReadPolicy::CacheFirst,
        },
        breaker,
        cache,
        queue,
        retry,
        pipeline,
        timeout_scope,
        bulkhead,
        cpu_per_call: span(file.cpu_per_call, 0),
        read_your_writes,
    };
    problems.finish(Some((sim, config)))
}

fn build_latency(file: &LatencyFile, prefix: &str) -> Result<Latency> {
    let at = format!("{prefix}.latency");
    let present = [
        ("value", file.value.is_some()),
        ("min", file.min.is_some()),
        ("max", file.max.is_some()),
        ("mean", file.mean.is_some()),
        ("p50", file.p50.is_some()),
        ("p99", file.p99.is_some()),
    ];
    let (name, keys): (&str, &[&str]) = match file.dist {
        LatencyDist::Constant => ("constant", &["value"]),
        LatencyDist::Uniform => ("uniform", &["min", "max"]),
        LatencyDist::Exponential => ("exponential", &["mean"]),
        LatencyDist::Lognormal => ("lognormal", &["p50", "p99"]),
    };
    check_variant_keys(&at, &format!("dist = \"{name}\""), &present, keys, keys)?;
    let get = |d: Option<Dur>| d.map_or(0, |d| d.0);
    let latency = match file.dist {
        LatencyDist::Constant => Latency::Constant(get(file.value)),
        LatencyDist::Uniform => Latency::Uniform {
            min: get(file.min),
            max: get(file.max),
        },
        LatencyDist::Exponential => Latency::Exponential {
            mean: get(file.mean),
        },
        LatencyDist::Lognormal => Latency::LogNormal {
            p50: get(file.p50),
            p99: get(file.p99),
        },
    };
    latency
        .validate()
        .map_err(engine(&format!("{prefix}."), &[]))?;
    Ok(latency)
}

fn build_breaker(file: &BreakerFile, prefix: &str) -> Result<BreakerConfig> {
    let policy = file.policy.unwrap_or(BreakerPolicy::Consecutive);
    let present = [
        ("failure_threshold", file.failure_threshold.is_some()),
        ("window_calls", file.window_calls.is_some()),
        ("min_calls", file.min_calls.is_some()),
        ("failure_rate", file.failure_rate.is_some()),
        ("window", file.window.is_some()),
        ("bucket", file.bucket.is_some()),
    ];
    let (name, keys): (&str, &[&str]) = match policy {
        BreakerPolicy::Consecutive => ("consecutive", &["failure_threshold"]),
        BreakerPolicy::CountWindow => (
            "count_window",
            &["window_calls", "min_calls", "failure_rate"],
        ),
        BreakerPolicy::TimeWindow => (
            "time_window",
            &["window", "bucket", "min_calls", "failure_rate"],
        ),
    };
    check_variant_keys(
        &format!("{prefix}.breaker"),
        &format!("policy = \"{name}\""),
        &present,
        keys,
        &[],
    )?;
    let min_calls = file.min_calls.unwrap_or(DEFAULT_MIN_CALLS);
    let failure_rate = file.failure_rate.map_or(DEFAULT_FAILURE_RATE, |p| p.0);
    let trip_policy = match policy {
        BreakerPolicy::Consecutive => TripPolicy::ConsecutiveFailures {
            failure_threshold: file
                .failure_threshold
                .unwrap_or(breaker::DEFAULT_FAILURE_THRESHOLD),
        },
        BreakerPolicy::CountWindow => TripPolicy::CountWindow {
            window_calls: file.window_calls.unwrap_or(DEFAULT_WINDOW_CALLS),
            min_calls,
            failure_rate,
        },
        BreakerPolicy::TimeWindow => TripPolicy::TimeWindow {
            window: span(file.window, DEFAULT_WINDOW),
            bucket: span(file.bucket, DEFAULT_BUCKET),
            min_calls,
            failure_rate,
        },
    };
    let open_duration = span(file.open_duration, breaker::DEFAULT_OPEN_DURATION);
    Ok(BreakerConfig {
        trip_policy,
        slow_call_threshold: file.slow_call_threshold.map(|d| d.0),
        open_duration,
        open_duration_multiplier: file
            .open_duration_multiplier
            .unwrap_or(breaker::DEFAULT_OPEN_DURATION_MULTIPLIER),
        // A longer open_duration than the default ceiling raises the ceiling with it,
        // rather than making the default contradict the one value that was given.
        max_open_duration: span(
            file.max_open_duration,
            breaker::DEFAULT_MAX_OPEN_DURATION.max(open_duration),
        ),
        open_duration_jitter: file
            .open_duration_jitter
            .map_or(breaker::DEFAULT_OPEN_DURATION_JITTER, |p| p.0),
        half_open_max_probes: file
            .half_open_max_probes
            .unwrap_or(breaker::DEFAULT_HALF_OPEN_MAX_PROBES),
        half_open_successes: file
            .half_open_successes
            .unwrap_or(breaker::DEFAULT_HALF_OPEN_SUCCESSES),
        half_open_timeout: span(file.half_open_timeout, breaker::DEFAULT_HALF_OPEN_TIMEOUT),
    })
}

fn build_cache(file: &CacheFile) -> CacheConfig {
    CacheConfig {
        ttl: span(file.ttl, cache::DEFAULT_TTL),
        max_stale: span(file.max_stale, cache::DEFAULT_MAX_STALE),
        stale_while_revalidate: file
            .stale_while_revalidate
            .map(|d| d.0)
            .or(cache::DEFAULT_STALE_WHILE_REVALIDATE),
        refresh_timeout: span(file.refresh_timeout, cache::DEFAULT_REFRESH_TIMEOUT),
        capacity: file.capacity.unwrap_or(cache::DEFAULT_CAPACITY),
    }
}

fn build_queue(file: &QueueFile, in_order_default: bool) -> QueueConfig {
    let backoff_base = span(file.backoff_base, queue::DEFAULT_BACKOFF_BASE);
    QueueConfig {
        capacity: file.capacity.unwrap_or(queue::DEFAULT_CAPACITY),
        drain_rate: file.drain_rate.unwrap_or(queue::DEFAULT_DRAIN_RATE),
        burst: file.burst.unwrap_or(queue::DEFAULT_BURST),
        max_in_flight: file.max_in_flight.unwrap_or(queue::DEFAULT_MAX_IN_FLIGHT),
        max_attempts: file.max_attempts.unwrap_or(queue::DEFAULT_MAX_ATTEMPTS),
        backoff_base,
        // As for the breaker's ceiling: a larger base raises the default ceiling.
        backoff_max: span(
            file.backoff_max,
            queue::DEFAULT_BACKOFF_MAX.max(backoff_base),
        ),
        jitter: file.jitter.map_or(queue::DEFAULT_JITTER, |p| p.0),
        in_order: file.in_order.unwrap_or(in_order_default),
    }
}

/// `pipeline`: the layers outermost first, each once: `retry` and `breaker` in
/// either order, then optionally `bulkhead` (innermost of the three: it holds slots
/// for calls the breaker let through, so it comes after `breaker`) and `timeout`
/// (first, before `retry`: one timeout for the whole call; or after it: a timeout
/// per attempt, the default).
fn build_pipeline(
    layers: &[String],
    has_bulkhead: bool,
    prefix: &str,
) -> Result<(Pipeline, TimeoutScope)> {
    let at = format!("{prefix}.pipeline");
    let usage = "lists the layers outermost first, each once: \"retry\" and \"breaker\" \
                 in either order, \"bulkhead\" after \"breaker\" if the dependency has one, \
                 and \"timeout\" before \"retry\" (one timeout for the whole call) or \
                 after it (one per attempt, the default); e.g. [\"retry\", \"breaker\", \
                 \"bulkhead\", \"timeout\"]";
    let names: Vec<&str> = layers.iter().map(String::as_str).collect();
    let position = |layer: &str| names.iter().position(|n| *n == layer);
    let known = ["retry", "breaker", "bulkhead", "timeout"];
    let once = known
        .iter()
        .all(|k| names.iter().filter(|n| *n == k).count() <= 1);
    let (Some(retry), Some(breaker)) = (position("retry"), position("breaker")) else {
        return Err(invalid(
            at,
            format!("must name \"retry\" and \"breaker\": {usage}"),
        ));
    };
    if !once || names.iter().any(|n| !known.contains(n)) {
        return Err(invalid(at, usage));
    }
    match position("bulkhead") {
        Some(b) if b < breaker => {
            return Err(invalid(
                at,
                "\"bulkhead\" comes after \"breaker\": a bulkhead outside the breaker is \
                 not supported (the breaker's permit is taken first)",
            ))
        }
        Some(_) if !has_bulkhead => {
            return Err(invalid(
                at,
                "names \"bulkhead\", but the dependency has no `bulkhead` table",
            ))
        }
        _ => {}
    }
    let pipeline = if retry < breaker {
        Pipeline::RetryThenBreaker
    } else {
        Pipeline::BreakerThenRetry
    };
    let scope = match position("timeout") {
        Some(t) if t < retry => TimeoutScope::WholeCall,
        _ => TimeoutScope::PerAttempt,
    };
    Ok((pipeline, scope))
}

fn build_retry(file: &RetryFile) -> RetryConfig {
    let backoff_base = span(file.backoff_base, retry::DEFAULT_BACKOFF_BASE);
    let on = file.on.as_ref().map_or(RetryOn::ALL, |kinds| RetryOn {
        timeout: kinds.iter().any(|k| matches!(k, RetryOnFile::Timeout)),
        error: kinds.iter().any(|k| matches!(k, RetryOnFile::Error)),
        unavailable: kinds.iter().any(|k| matches!(k, RetryOnFile::Unavailable)),
    });
    RetryConfig {
        max_attempts: file.max_attempts.unwrap_or(retry::DEFAULT_MAX_ATTEMPTS),
        backoff_base,
        // As for the queue's: a larger base raises the default ceiling.
        backoff_max: span(
            file.backoff_max,
            retry::DEFAULT_BACKOFF_MAX.max(backoff_base),
        ),
        jitter: match file.jitter {
            None | Some(JitterFile::Full) => Jitter::Full,
            Some(JitterFile::Equal) => Jitter::Equal,
            Some(JitterFile::None) => Jitter::None,
        },
        on,
        budget: file.budget.as_ref().map(|b| BudgetConfig {
            ratio: b.ratio.map_or(retry::DEFAULT_BUDGET_RATIO, |p| p.0),
            min_per_sec: b.min_per_sec.unwrap_or(retry::DEFAULT_BUDGET_MIN_PER_SEC),
            window: span(b.window, retry::DEFAULT_BUDGET_WINDOW),
        }),
    }
}

fn build_stream<S: Serve>(
    file: &WorkloadFile<S::Shape>,
    k: usize,
    duration: Time,
    serve: &S,
) -> Many<WorkloadStream> {
    let mut problems = Problems::default();
    let at = format!("workload[{k}]");
    let name = problems.check(match &file.name {
        Some(name) if name.trim().is_empty() => {
            Err(invalid(format!("{at}.name"), "must not be empty"))
        }
        Some(name) => Ok(name.clone()),
        None => Ok(default_stream_name(k)),
    });

    let phases = match &file.rate {
        RateFile::Constant(rps) => Some(vec![RatePhase::Constant {
            from: 0,
            to: duration,
            rate_per_sec: rps.0,
        }]),
        RateFile::Phases(phases) => phases
            .iter()
            .enumerate()
            .map(|(j, p)| problems.check(build_phase(p, &format!("{at}.rate[{j}]"), duration)))
            .collect::<Option<Vec<_>>>(),
    };
    // The plan as a whole (order, overlaps) only once each phase is valid.
    let rate = phases.and_then(|phases| {
        let rate = RatePlan { phases };
        problems.check(rate.validate().map(|()| rate).map_err(engine(
            "",
            &[
                ("workload.phases", &format!("{at}.rate")),
                (".rate_per_sec", ".rps"),
                (".rate_from", ".rps_from"),
                (".rate_to", ".rps_to"),
            ],
        )))
    });

    let mix = problems.check_all(serve.mix(file, &at));
    let stream = match (name, rate, mix) {
        (Some(name), Some(rate), Some(mix)) => Some(WorkloadStream {
            name,
            rate,
            mix: mix.mix,
            endpoints: mix.endpoints,
            user_keys: mix.user_keys,
            product_keys: mix.product_keys,
        }),
        _ => None,
    };
    problems.finish(stream)
}

fn build_phase(file: &PhaseFile, at: &str, duration: Time) -> Result<RatePhase> {
    let (from, to) = (file.from.0, file.to.0);
    within_run(format!("{at}.from"), from, duration)?;
    within_run(format!("{at}.to"), to, duration)?;
    forward(format!("{at}.to"), from, to, "from")?;
    match (file.rps, file.rps_from, file.rps_to) {
        (Some(rps), None, None) => Ok(RatePhase::Constant {
            from,
            to,
            rate_per_sec: rps.0,
        }),
        (None, Some(a), Some(b)) => Ok(RatePhase::Ramp {
            from,
            to,
            rate_from: a.0,
            rate_to: b.0,
        }),
        (Some(_), a, _) => Err(invalid(
            format!("{at}.{}", if a.is_some() { "rps_from" } else { "rps_to" }),
            "cannot be combined with rps: a phase is constant (rps) or a ramp \
             (rps_from and rps_to)",
        )),
        (None, None, None) => Err(invalid(
            at,
            "needs rps (a constant rate) or rps_from and rps_to (a ramp)",
        )),
        (None, a, _) => Err(invalid(
            format!("{at}.{}", if a.is_some() { "rps_to" } else { "rps_from" }),
            "is required: a ramp needs both rps_from and rps_to",
        )),
    }
}

/// The keys a stream draws for `resource`, whose data has `count` generated records.
fn build_keys(
    file: Option<&KeysFile>,
    stream: &str,
    resource: Resource,
    count: u64,
) -> Result<Keys> {
    let at = format!("{stream}.{}", resource.as_str());
    let n = match file.and_then(|f| f.n) {
        Some(n) => n,
        None if count == 0 => {
            return Err(invalid(
                format!("{at}.n"),
                format!(
                    "is required: data.{}.count is 0, so there is no default key range",
                    resource.as_str()
                ),
            ));
        }
        None => count,
    };
    match file {
        None => key_distribution(&at, KeysDist::Uniform, None, n, ("n", false)),
        Some(f) => key_distribution(&at, f.dist, f.s, n, ("n", f.n.is_some())),
    }
}

/// Keys `1..=n` drawn as `dist` with exponent `s`, for the table at `at`, whose key
/// for `n` is `count_key` (its name, and whether it is written).
pub(super) fn key_distribution(
    at: &str,
    dist: KeysDist,
    s: Option<f64>,
    n: u64,
    count_key: (&str, bool),
) -> Result<Keys> {
    let (name, count) = count_key;
    let (dist_name, keys): (&str, &[&str]) = match dist {
        KeysDist::Uniform => ("uniform", &[name]),
        KeysDist::Zipf => ("zipf", &["s", name]),
    };
    check_variant_keys(
        at,
        &format!("dist = \"{dist_name}\""),
        &[("s", s.is_some()), (name, count)],
        keys,
        &[],
    )?;
    let keys = match dist {
        KeysDist::Uniform => Keys::Uniform { n },
        KeysDist::Zipf => Keys::Zipf {
            n,
            s: s.unwrap_or(DEFAULT_ZIPF_S),
        },
    };
    keys.validate().map_err(engine(
        "",
        &[
            ("workload.keys.n", &format!("{at}.{name}")),
            ("workload.keys", at),
        ],
    ))?;
    Ok(keys)
}

/// The kind of a fault and its kind-specific keys.
fn build_fault_kind(
    at: &str,
    kind: FaultKindName,
    rate: Option<Probability>,
    added: Option<Dur>,
    period: Option<Dur>,
    down: Option<Dur>,
) -> Result<FaultKind> {
    let present = [
        ("rate", rate.is_some()),
        ("added", added.is_some()),
        ("period", period.is_some()),
        ("down", down.is_some()),
    ];
    let (name, keys): (&str, &[&str]) = match kind {
        FaultKindName::Outage => ("outage", &[]),
        FaultKindName::ErrorRate => ("error_rate", &["rate"]),
        FaultKindName::Latency => ("latency", &["added"]),
        FaultKindName::Hang => ("hang", &[]),
        FaultKindName::Flapping => ("flapping", &["period", "down"]),
    };
    check_variant_keys(at, &format!("kind = \"{name}\""), &present, keys, keys)?;
    let get = |d: Option<Dur>| d.map_or(0, |d| d.0);
    Ok(match kind {
        FaultKindName::Outage => FaultKind::Outage,
        FaultKindName::ErrorRate => FaultKind::ErrorRate(rate.map_or(0.0, |p| p.0)),
        FaultKindName::Latency => FaultKind::AddedLatency(get(added)),
        FaultKindName::Hang => FaultKind::Hang,
        FaultKindName::Flapping => FaultKind::Flapping {
            period: get(period),
            down: get(down),
        },
    })
}

fn build_fault<S: Serve>(
    file: &FaultFile<S::Shape>,
    i: usize,
    duration: Time,
    serve: &S,
) -> Result<Fault> {
    let at = format!("fault[{i}]");
    let dependency = serve.dependency(&file.dependency, &format!("{at}.dependency"))?;
    let kind = build_fault_kind(
        &at,
        file.kind,
        file.rate,
        file.added,
        file.period,
        file.down,
    )?;
    let start = file.start.0;
    let end = file.end.map_or(duration, |d| d.0);
    within_run(format!("{at}.start"), start, duration)?;
    within_run(format!("{at}.end"), end, duration)?;
    forward(format!("{at}.end"), start, end, "start")?;
    let fault = Fault {
        dependency,
        kind,
        start,
        end,
    };
    fault.validate().map_err(engine(
        "",
        &[("fault.", &format!("{at}.")), (".error_rate", ".rate")],
    ))?;
    Ok(fault)
}

fn build_random_fault<S: Serve>(
    file: &RandomFaultFile<S::Shape>,
    i: usize,
    serve: &S,
) -> Result<RandomFaults> {
    let at = format!("random_fault[{i}]");
    let dependency = serve.dependency(&file.dependency, &format!("{at}.dependency"))?;
    let kind = build_fault_kind(
        &at,
        file.kind,
        file.rate,
        file.added,
        file.period,
        file.down,
    )?;
    let faults = RandomFaults {
        dependency,
        mtbf: file.mtbf.0,
        mttr: file.mttr.0,
        kind,
    };
    faults.validate().map_err(engine(
        "",
        &[
            ("random_faults.", &format!("{at}.")),
            (".error_rate", ".rate"),
        ],
    ))?;
    Ok(faults)
}

fn build_cpu(file: &CpuFile, duration: Time) -> Many<CpuCurveConfig> {
    let mut problems = Problems::default();
    let segments = file
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| problems.check(build_cpu_point(p, &format!("cpu.points[{i}]"), duration)))
        .collect::<Option<Vec<_>>>();
    // The curve as a whole only once each point is valid.
    let config = segments.and_then(|segments| {
        let config = CpuCurveConfig {
            initial: file.initial.map_or(DEFAULT_INITIAL_CPU, |p| p.0),
            segments,
            noise_stddev: file.noise.map_or(0.0, |n| n.0),
            every: span(file.every, DEFAULT_SAMPLE_EVERY),
        };
        problems.check(config.validate().map(|()| config).map_err(engine(
            "",
            &[
                ("cpu.segments", "cpu.points"),
                ("cpu.noise_stddev", "cpu.noise"),
            ],
        )))
    });
    problems.finish(config)
}

fn build_cpu_point(p: &CpuPointFile, at: &str, duration: Time) -> Result<CpuSegment> {
    let present = [
        ("at", p.at.is_some()),
        ("cpu", p.cpu.is_some()),
        ("from", p.from.is_some()),
        ("to", p.to.is_some()),
        ("cpu_from", p.cpu_from.is_some()),
        ("cpu_to", p.cpu_to.is_some()),
    ];
    let is_ramp = p.at.is_none() && (p.from.is_some() || p.to.is_some());
    if !is_ramp && p.at.is_none() {
        return Err(invalid(
            at,
            "needs at and cpu (a step) or from, to, cpu_from and cpu_to (a ramp)",
        ));
    }
    if is_ramp {
        let keys = ["from", "to", "cpu_from", "cpu_to"];
        check_variant_keys(at, "a ramp (from, to)", &present, &keys, &keys)?;
    } else {
        let keys = ["at", "cpu"];
        check_variant_keys(at, "a step (at)", &present, &keys, &keys)?;
    }
    let get = |d: Option<Dur>| d.map_or(0, |d| d.0);
    let pct = |p: Option<Percent>| p.map_or(0.0, |p| p.0);
    Ok(if is_ramp {
        let (from, to) = (get(p.from), get(p.to));
        within_run(format!("{at}.from"), from, duration)?;
        within_run(format!("{at}.to"), to, duration)?;
        forward(format!("{at}.to"), from, to, "from")?;
        CpuSegment::Ramp {
            from,
            to,
            cpu_from: pct(p.cpu_from),
            cpu_to: pct(p.cpu_to),
        }
    } else {
        let t = get(p.at);
        within_run(format!("{at}.at"), t, duration)?;
        CpuSegment::Step {
            at: t,
            cpu: pct(p.cpu),
        }
    })
}

fn build_script(file: &ScriptFile, i: usize, duration: Time) -> Result<ScriptedMessage> {
    let at = format!("script[{i}]");
    within_run(format!("{at}.at"), file.at.0, duration)?;
    let body_path = format!("{at}.body");
    let toml::Value::Table(table) = &file.body else {
        return Err(invalid(
            body_path,
            format!(
                "must be a table such as {{ type = \"get_user\", msg_id = 1, user_id = 123 }}, \
                 got a {}",
                file.body.type_str()
            ),
        ));
    };
    // Only the message type is required: a malformed message is otherwise allowed on
    // purpose, since scripts test the node's error replies with them.
    match table.get("type") {
        Some(toml::Value::String(_)) => {}
        Some(other) => {
            return Err(invalid(
                format!("{body_path}.type"),
                format!(
                    "must be a string naming the message type, got a {}",
                    other.type_str()
                ),
            ));
        }
        None => {
            return Err(invalid(
                format!("{body_path}.type"),
                "is required: a string naming the message type, such as \"get_user\"",
            ));
        }
    }
    Ok(ScriptedMessage {
        at: file.at.0,
        body: to_json(&file.body, &body_path)?,
    })
}

/// A TOML value as JSON: integers stay integers, floats stay floats; datetimes and
/// non-finite floats have no JSON form and are refused.
fn to_json(value: &toml::Value, at: &str) -> Result<Value> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => Value::Number(n),
            None => {
                return Err(invalid(
                    at,
                    format!("{f} has no JSON form; use a finite number"),
                ));
            }
        },
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => {
            return Err(invalid(
                at,
                format!(
                    "a TOML datetime has no JSON form; write it as a string (\"{d}\") if the \
                     message should carry it"
                ),
            ));
        }
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &format!("{at}[{i}]")))
                .collect::<Result<_>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v, &format!("{at}.{k}"))?)))
                .collect::<Result<_>>()?,
        ),
    })
}

fn build_expect(file: &ExpectFile, duration: Time) -> Result<Expectations> {
    if let Some(by) = file.queue_drained_by {
        within_run("expect.queue_drained_by", by.0, duration)?;
    }
    Ok(Expectations {
        min_availability: file.min_availability.map(|p| p.0),
        max_stale_age: file.max_stale_age.map(|d| d.0),
        breaker_opens_within: file.breaker_opens_within.map(|d| d.0),
        breaker_closes_within: file.breaker_closes_within.map(|d| d.0),
        max_breaker_trips: file.max_breaker_trips,
        max_mode_changes: file.max_mode_changes,
        max_writes_lost: file.max_writes_lost,
        max_writes_rejected: file.max_writes_rejected,
        queue_drained_by: file.queue_drained_by.map(|d| d.0),
        endpoints: Vec::new(),
        dependencies: Vec::new(),
        sweep: file.sweep.as_ref().map(build_sweep_expect).transpose()?,
    })
}

/// `[expect.sweep]`: the seed count checked, the bounds in a fixed order.
fn build_sweep_expect(file: &super::SweepExpectFile) -> Result<SweepExpectations> {
    let seeds = file.seeds.unwrap_or(DEFAULT_SWEEP_SEEDS);
    if !(1..=MAX_SWEEP_SEEDS).contains(&seeds) {
        return Err(invalid(
            "expect.sweep.seeds",
            format!("must be 1 to {MAX_SWEEP_SEEDS}, got {seeds}"),
        ));
    }
    // Availability is kept in millionths, as a sweep measures it.
    let ppm = |p: &Probability| (p.0 * 1e6).round() as u64;
    let span = |d: &Dur| d.0;
    let count = |n: &u64| *n;
    let mut bounds = Vec::new();
    let mut add = |figure: SweepFigure, limits: [Option<u64>; 4]| {
        for (percentile, limit) in SweepPercentile::ALL.into_iter().zip(limits) {
            if let Some(limit) = limit {
                bounds.push(SweepBound {
                    figure,
                    percentile,
                    limit,
                });
            }
        }
    };
    fn each<T>(t: &Option<super::PercentilesFile<T>>, f: impl Fn(&T) -> u64) -> [Option<u64>; 4] {
        match t {
            None => [None; 4],
            Some(t) => [&t.p50, &t.p95, &t.p99, &t.worst].map(|v| v.as_ref().map(&f)),
        }
    }
    add(SweepFigure::Availability, each(&file.min_availability, ppm));
    add(SweepFigure::StaleAge, each(&file.max_stale_age, span));
    add(
        SweepFigure::BreakerTimeOpen,
        each(&file.max_breaker_time_open, span),
    );
    add(SweepFigure::QueueDepth, each(&file.max_queue_depth, count));
    add(
        SweepFigure::RecoveryTime,
        each(&file.max_recovery_time, span),
    );
    add(SweepFigure::Partial, each(&file.max_partial, count));
    add(SweepFigure::Shed, each(&file.max_shed, count));
    if file.min_pass_rate.is_none() && bounds.is_empty() {
        return Err(invalid(
            "expect.sweep",
            "states nothing to check: give min_pass_rate or a percentile bound such as min_availability = { p99 = 0.995 }",
        ));
    }
    Ok(SweepExpectations {
        seeds,
        min_pass_rate: file.min_pass_rate.map(|p| p.0),
        bounds,
    })
}
