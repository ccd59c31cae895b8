//! A declared service as a file writes it (a service file, or `[service]` inline in a
//! scenario), and its mapping onto [`ServiceSpec`], whose `build` resolves the names.
//!
//! The mapping checks what only the file knows (which keys a step or a fallback
//! combines, the syntax of names, a record's key) and re-uses the scenario's own
//! builders for a dependency's latency, breaker, cache and queue, so those keys read
//! and default exactly as in a seed scenario's `[dependencies.users]`. Then
//! [`ServiceSpec::build`] resolves every name. Both report every error they find, each
//! at its dotted key path in the service (`endpoints.checkout.plan[0].par[1].call`); a
//! part that failed the mapping stands in `build` as a valid placeholder of the same
//! name (or, for an endpoint, is left out), so an unknown name elsewhere is still
//! reported, and nothing is reported twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::build::{self, Many, Problems};
use super::values::Dur;
use super::{DependencyFile, KeysDist, Named, DEFAULT_DATA_COUNT};
use crate::engine::admission::{self, AdmissionConfig};
use crate::engine::compute::{self, ComputeConfig};
use crate::model::service::{
    CallOp, DependencySpec, EndpointSpec, FallbackSpec, KeySpace, LeafSpec, Service, ServiceSpec,
    StepSpec, Tier,
};

/// Wire types of the control messages, which stay built in: no endpoint may take them.
const CONTROL_TYPES: [&str; 3] = ["init", "set_mode", "status"];

/// A service: a service file's whole document, or a scenario's `[service]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a service table")]
pub(super) struct ServiceFile {
    name: Option<String>,
    #[serde(default)]
    pub(super) features: Vec<String>,
    #[serde(default)]
    pub(super) dependencies: Named<DependencyFile>,
    #[serde(default)]
    keys: Named<KeySpaceFile>,
    #[serde(default)]
    pub(super) endpoints: Named<EndpointFile>,
    /// Absent: the node admits every request.
    admission: Option<AdmissionFile>,
    /// Absent: no CPU is measured; a scenario's curve alone drives the modes.
    compute: Option<ComputeFile>,
}

/// `[compute]`: the node's CPU, measured from the work it does.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of compute settings such as { cores = 4, window = \"1s\" }"
)]
struct ComputeFile {
    cores: u32,
    window: Option<Dur>,
    slowdown: Option<bool>,
}

/// `[admission]`: the node's concurrency limit and shedding by tier.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of admission settings such as { max_in_flight = 200, queue = 100, max_wait = \"50ms\" }"
)]
struct AdmissionFile {
    max_in_flight: u32,
    reserve_critical: Option<u32>,
    reserve_important: Option<u32>,
    queue: Option<u32>,
    max_wait: Option<Dur>,
}

impl AdmissionFile {
    /// The configuration, with a tenth of the slots kept for critical requests and a
    /// tenth more for important ones unless it says otherwise.
    fn config(&self) -> AdmissionConfig {
        let tenth = self.max_in_flight / 10;
        AdmissionConfig {
            max_in_flight: self.max_in_flight,
            reserve_critical: self.reserve_critical.unwrap_or(tenth),
            reserve_important: self.reserve_important.unwrap_or(tenth),
            queue: self.queue.unwrap_or(0),
            max_wait: self.max_wait.map_or(admission::DEFAULT_MAX_WAIT, |d| d.0),
        }
    }
}

/// `[keys.NAME]`: a key space.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a key space such as { count = 50000, dist = \"zipf\", s = 1.1 }"
)]
struct KeySpaceFile {
    count: Option<u64>,
    dist: Option<KeysDist>,
    s: Option<f64>,
    #[serde(default)]
    records: Named<String>,
}

/// `[endpoints.NAME]`: a request type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an endpoint table")]
pub(super) struct EndpointFile {
    key: Option<String>,
    deadline: Option<Dur>,
    tier: Option<TierName>,
    feature: Option<String>,
    plan: Vec<StepFile>,
    cpu: Option<Dur>,
}

/// `tier`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TierName {
    Critical,
    Important,
    Optional,
}

/// `op` of a call.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OpName {
    Read,
    Write,
}

impl OpName {
    fn op(self) -> CallOp {
        match self {
            OpName::Read => CallOp::Read,
            OpName::Write => CallOp::Write,
        }
    }
}

/// One step of a plan: a call (`call` and the keys that go with it), a `seq` or a `par`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a step such as { call = \"inventory\", op = \"read\" }, { seq = [...] } or { par = [...] }"
)]
struct StepFile {
    call: Option<String>,
    op: Option<OpName>,
    key: Option<String>,
    optional: Option<bool>,
    feature: Option<String>,
    fallback: Option<Vec<FallbackFile>>,
    max_attempts: Option<u32>,
    fallback_cpu: Option<Dur>,
    seq: Option<Vec<StepFile>>,
    par: Option<Vec<StepFile>>,
}

/// One link of a fallback chain: `"cache"`, `"omit"` or a table.
#[derive(Debug)]
enum FallbackFile {
    Cache,
    Omit,
    Table(FallbackTable),
}

/// `{ static = "..." }` or `{ call = "...", op = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a fallback such as { static = \"popular\" } or { call = \"inventory\", op = \"read\" }"
)]
struct FallbackTable {
    #[serde(rename = "static")]
    canned: Option<String>,
    call: Option<String>,
    op: Option<OpName>,
}

impl<'de> Deserialize<'de> for FallbackFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::value::MapAccessDeserializer;
        use serde::de::{Error, MapAccess, Visitor};

        struct FallbackVisitor;

        const EXPECTED: &str = "a fallback: \"cache\", \"omit\", { static = \"...\" } or \
                                { call = \"...\", op = \"read\" }";

        impl<'de> Visitor<'de> for FallbackVisitor {
            type Value = FallbackFile;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: Error>(self, v: &str) -> Result<FallbackFile, E> {
                match v {
                    "cache" => Ok(FallbackFile::Cache),
                    "omit" => Ok(FallbackFile::Omit),
                    _ => Err(E::custom(format!("expected {EXPECTED}, got {v:?}"))),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FallbackFile, A::Error> {
                FallbackTable::deserialize(MapAccessDeserializer::new(map)).map(FallbackFile::Table)
            }
        }

        deserializer.deserialize_any(FallbackVisitor)
    }
}

/// The names a scenario's own references resolve against, in declaration order (an
/// index here is the id in the built [`Service`]). Taken from the file, so that the
/// scenario's references are checked even when the service itself has errors.
#[derive(Debug, Default)]
pub(super) struct ServiceNames<'a> {
    /// The dependencies' names.
    pub dependencies: Vec<&'a str>,
    /// The endpoints' names.
    pub endpoints: Vec<&'a str>,
    /// The features.
    pub features: Vec<&'a str>,
    /// The service, if it built.
    pub service: Option<Arc<Service>>,
}

impl ServiceFile {
    /// The names the service declares.
    pub(super) fn names(&self) -> ServiceNames<'_> {
        fn keys<T>(named: &Named<T>) -> Vec<&str> {
            named.0.iter().map(|(k, _)| k.as_str()).collect()
        }
        ServiceNames {
            dependencies: keys(&self.dependencies),
            endpoints: keys(&self.endpoints),
            features: self.features.iter().map(String::as_str).collect(),
            service: None,
        }
    }
}

/// Refuses a name that is not letters, digits, `_` and `-`: names are keys of error
/// paths (`dependencies.NAME.timeout`), report columns and wire types, where a dot or a
/// space would be ambiguous.
fn check_name(name: &str, at: String, problems: &mut Problems) {
    if !name.is_empty()
        && !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        problems.push(build::invalid(
            at,
            format!("`{name}`: a name is ASCII letters, digits, `_` and `-`"),
        ));
    }
}

/// The service `file` declares, named `default_name` unless it says, or every error
/// found, at key paths within the service.
pub(super) fn build_service(file: &ServiceFile, default_name: &str) -> Many<Service> {
    let mut problems = Problems::default();
    let name = match &file.name {
        Some(name) if name.trim().is_empty() => {
            problems.push(build::invalid("name", "must not be empty"));
            String::new()
        }
        Some(name) => name.clone(),
        None => default_name.to_owned(),
    };
    for (i, feature) in file.features.iter().enumerate() {
        check_name(feature, format!("features[{i}]"), &mut problems);
    }
    let dependencies = file
        .dependencies
        .0
        .iter()
        .map(|(name, dep)| {
            let at = format!("dependencies.{name}");
            check_name(name, at.clone(), &mut problems);
            let built = build::build_dependency(dep, &at, build::Absent::Nothing);
            // A refused dependency stands in as a valid one with the same name and the
            // same cache and queue (or none), so that references to it still resolve
            // and a `cache` fallback on it is judged as written.
            let (sim, engine) = problems.check_all(built).unwrap_or_else(|| {
                let stand_in = DependencyFile {
                    cache: dep.cache.as_ref().map(|_| Default::default()),
                    queue: dep.queue.as_ref().map(|_| Default::default()),
                    ..DependencyFile::default()
                };
                build::build_dependency(&stand_in, &at, build::Absent::Nothing)
                    .expect("the defaults are valid")
            });
            DependencySpec {
                name: name.clone(),
                engine,
                sim,
            }
        })
        .collect();
    let key_spaces = file
        .keys
        .0
        .iter()
        .map(|(name, space)| {
            check_name(name, format!("keys.{name}"), &mut problems);
            key_space(name, space, &mut problems)
        })
        .collect();
    let mut endpoints = Vec::new();
    for (name, endpoint) in &file.endpoints.0 {
        let at = format!("endpoints.{name}");
        check_name(name, at.clone(), &mut problems);
        if CONTROL_TYPES.contains(&name.as_str()) {
            problems.push(build::invalid(
                at.clone(),
                format!("`{name}` is a control message, which stays built in; name the endpoint otherwise"),
            ));
        }
        // An endpoint whose steps were refused is left out of the build: a stand-in
        // plan would only add errors of its own.
        if let Some(spec) = problems.check_all(endpoint_spec(name, endpoint, &at)) {
            endpoints.push(spec);
        }
    }
    if file.endpoints.0.is_empty() {
        problems.push(build::invalid(
            "endpoints",
            "a service needs at least one endpoint, such as [endpoints.checkout]",
        ));
    }
    let spec = ServiceSpec {
        name,
        dependencies,
        key_spaces,
        features: file.features.clone(),
        endpoints,
        admission: file.admission.as_ref().map(AdmissionFile::config),
        compute: file.compute.as_ref().map(|c| ComputeConfig {
            cores: c.cores,
            window: c.window.map_or(compute::DEFAULT_WINDOW, |d| d.0),
            slowdown: c.slowdown.unwrap_or(true),
        }),
    };
    let service = match spec.build() {
        Ok(service) => Some(service),
        Err(errors) => {
            for e in errors {
                // `Keys` calls a space's size `n`; the file calls it `count`.
                let path = match e.field.strip_suffix(".n") {
                    Some(space) if space.starts_with("keys.") => format!("{space}.count"),
                    _ => e.field,
                };
                problems.push(build::invalid(path, e.reason));
            }
            None
        }
    };
    problems.finish(service)
}

fn key_space(name: &str, file: &KeySpaceFile, problems: &mut Problems) -> KeySpace {
    let at = format!("keys.{name}");
    let count = file.count.unwrap_or(DEFAULT_DATA_COUNT);
    let keys = build::key_distribution(
        &at,
        file.dist.unwrap_or(KeysDist::Uniform),
        file.s,
        count,
        ("count", file.count.is_some()),
    );
    // A refused space stands in as the smallest valid one, for the names to resolve.
    let keys = problems
        .check(keys)
        .unwrap_or(crate::model::Keys::Uniform { n: 1 });
    let mut records = BTreeMap::new();
    for (key, record) in &file.records.0 {
        let here = format!("{at}.records.{key}");
        match key.parse::<u64>() {
            Ok(k) if (1..=count).contains(&k) => {
                records.insert(k, Arc::from(record.as_str()));
            }
            Ok(k) => problems.push(build::invalid(
                here,
                format!("key {k} is outside the space's keys 1..={count}"),
            )),
            Err(_) => problems.push(build::invalid(
                here,
                format!("`{key}`: a record's key is one of the space's keys, 1..={count}"),
            )),
        }
    }
    KeySpace {
        name: name.to_owned(),
        keys,
        records,
    }
}

fn endpoint_spec(name: &str, file: &EndpointFile, at: &str) -> Many<EndpointSpec> {
    let mut problems = Problems::default();
    let plan = steps(&file.plan, &format!("{at}.plan"), &mut problems);
    let spec = plan.map(|plan| EndpointSpec {
        name: name.to_owned(),
        key: file.key.clone(),
        deadline: file.deadline.map(|d| d.0),
        tier: match file.tier {
            None | Some(TierName::Important) => Tier::Important,
            Some(TierName::Critical) => Tier::Critical,
            Some(TierName::Optional) => Tier::Optional,
        },
        feature: file.feature.clone(),
        plan,
        cpu: file.cpu.map_or(0, |d| d.0),
    });
    problems.finish(spec)
}

/// The steps of a plan, `seq` or `par`, at `at` (`...plan`, `...seq`).
fn steps(files: &[StepFile], at: &str, problems: &mut Problems) -> Option<Vec<StepSpec>> {
    // Every child is mapped, so that each one's errors are reported.
    let steps: Vec<Option<StepSpec>> = files
        .iter()
        .enumerate()
        .map(|(i, s)| step(s, &format!("{at}[{i}]"), problems))
        .collect();
    steps.into_iter().collect()
}

fn step(file: &StepFile, at: &str, problems: &mut Problems) -> Option<StepSpec> {
    let kinds = [
        ("call", file.call.is_some()),
        ("seq", file.seq.is_some()),
        ("par", file.par.is_some()),
    ];
    let written: Vec<&str> = kinds.iter().filter(|k| k.1).map(|k| k.0).collect();
    let call_keys = [
        ("op", file.op.is_some()),
        ("key", file.key.is_some()),
        ("optional", file.optional.is_some()),
        ("feature", file.feature.is_some()),
        ("fallback", file.fallback.is_some()),
    ];
    match written.as_slice() {
        [] => {
            problems.push(build::invalid(
                at,
                "a step is a call ({ call = \"...\", op = \"read\" }), a { seq = [...] } or a \
                 { par = [...] }",
            ));
            None
        }
        [_, second, ..] => {
            problems.push(build::invalid(
                format!("{at}.{second}"),
                format!(
                    "a step is one of a call, a seq and a par; this one is also a `{}`",
                    written[0]
                ),
            ));
            None
        }
        ["call"] => call(file, at, problems),
        [list] => {
            if let Some((key, _)) = call_keys.iter().find(|k| k.1) {
                problems.push(build::invalid(
                    format!("{at}.{key}"),
                    format!("applies to a call; a `{list}` takes only its steps"),
                ));
                return None;
            }
            let children = file.seq.as_ref().or(file.par.as_ref())?;
            let children = steps(children, &format!("{at}.{list}"), problems)?;
            Some(if *list == "seq" {
                StepSpec::Seq(children)
            } else {
                StepSpec::Par(children)
            })
        }
    }
}

fn call(file: &StepFile, at: &str, problems: &mut Problems) -> Option<StepSpec> {
    let Some(op) = file.op else {
        problems.push(build::invalid(
            format!("{at}.op"),
            "is required by a call: \"read\" or \"write\"",
        ));
        return None;
    };
    // Every fallback is mapped, so that each one's errors are reported.
    let fallback: Vec<Option<FallbackSpec>> = file
        .fallback
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, f)| fallback(f, op, &format!("{at}.fallback[{i}]"), problems))
        .collect();
    let fallback: Option<Vec<FallbackSpec>> = fallback.into_iter().collect();
    Some(StepSpec::Call {
        call: file.call.clone()?,
        op: op.op(),
        key: file.key.clone(),
        leaf: LeafSpec {
            optional: file.optional.unwrap_or(false),
            feature: file.feature.clone(),
            fallback: fallback?,
            max_attempts: file.max_attempts,
            fallback_cpu: file.fallback_cpu.map_or(0, |d| d.0),
        },
    })
}

/// One fallback of a call whose op is `op` (a fallback call's default).
fn fallback(
    file: &FallbackFile,
    op: OpName,
    at: &str,
    problems: &mut Problems,
) -> Option<FallbackSpec> {
    let table = match file {
        FallbackFile::Cache => return Some(FallbackSpec::Cache),
        FallbackFile::Omit => return Some(FallbackSpec::Omit),
        FallbackFile::Table(table) => table,
    };
    match (&table.canned, &table.call) {
        (Some(text), None) => {
            if table.op.is_some() {
                problems.push(build::invalid(
                    format!("{at}.op"),
                    "does not apply to a static fallback, which takes only `static`",
                ));
                return None;
            }
            Some(FallbackSpec::Static(text.clone()))
        }
        (None, Some(call)) => Some(FallbackSpec::Call {
            call: call.clone(),
            op: table.op.unwrap_or(op).op(),
        }),
        (Some(_), Some(_)) => {
            problems.push(build::invalid(
                format!("{at}.call"),
                "a fallback is { static = \"...\" } or { call = \"...\" }, not both",
            ));
            None
        }
        (None, None) => {
            problems.push(build::invalid(
                at,
                "needs `static` (a canned answer) or `call` (another dependency)",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests;
