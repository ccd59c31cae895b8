//! The TOML scenario format: serde types that mirror the file, and [`parse`]/[`load`].
//!
//! Reading is two steps. First toml deserializes the text into the types below, which
//! mirror the file exactly: unknown keys are refused everywhere
//! (`deny_unknown_fields`), and values with their own syntax or range (durations,
//! probabilities, percentages, rates) are checked while deserializing, so toml's error
//! carries the offending value's span. Then [`build`] validates the whole into the
//! domain [`Scenario`], filling defaults (the named constants below, or the engine's
//! `DEFAULT_*`) and re-using every engine and simulator `validate()`, so that a scenario
//! that parses is guaranteed to build. Errors of that second step name a dotted key
//! path, which [`locate`] finds in the document to report its line and column.
//!
//! Every error is reported, not only the first. The text is parsed once into toml's
//! spanned tree; a syntax error there is reported alone (there is no document to go
//! on with). The first step then runs on that tree, and [`recover`] removes what each
//! error points at and deserializes again, until the rest deserializes. The second step
//! runs only if the first found nothing (its input would otherwise be partial), and
//! collects the errors of independent parts. Either way the errors are reported in
//! file order, without duplicates, at most [`ScenarioErrors::MAX_SHOWN`] of them.
//!
//! `scenarios/README.md` is the reference of the format; keep it in step.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::DeTable;

use super::overrides::{Landed, Overrides, ServiceKind, Target};
use super::{Scenario, ScenarioError, ScenarioErrors};
use crate::engine::{Span, MILLISECOND};
use build::Invalid;

mod build;
mod locate;
mod recover;
mod service;
mod values;

use service::ServiceFile;

use values::{Dur, NonNegative, Percent, Probability, Rate};

/// Default master seed.
pub const DEFAULT_SEED: u64 = 1;
/// Default number of generated records per service (ids `1..=count`).
pub const DEFAULT_DATA_COUNT: u64 = 1_000;
/// Largest `count` accepted: generated records are named and held in memory, so this
/// keeps a typo from exhausting it.
pub const MAX_DATA_COUNT: u64 = 10_000_000;
/// Default: the node's cache starts with every record of the service.
pub const DEFAULT_WARM: bool = true;
/// Default median latency of a healthy dependency (log-normal).
pub const DEFAULT_LATENCY_P50: Span = 10 * MILLISECOND;
/// Default 99th-percentile latency of a healthy dependency (log-normal).
pub const DEFAULT_LATENCY_P99: Span = 80 * MILLISECOND;
/// Default probability that a healthy dependency's call fails anyway.
pub const DEFAULT_ERROR_RATE: f64 = 0.0;
/// Default latency of a call refused because the dependency is down: connection
/// refused is fast, which is what lets a breaker see an outage quickly.
pub const DEFAULT_DOWN_LATENCY: Span = MILLISECOND;
/// Default count window of the `count_window` breaker policy, in calls.
pub const DEFAULT_WINDOW_CALLS: u32 = 20;
/// Default minimum calls in the window before a windowed breaker policy trusts its rate.
pub const DEFAULT_MIN_CALLS: u32 = 10;
/// Default failure fraction that trips a windowed breaker policy.
pub const DEFAULT_FAILURE_RATE: f64 = 0.5;
/// Default window of the `time_window` breaker policy.
pub const DEFAULT_WINDOW: Span = 60 * crate::engine::SECOND;
/// Default bucket (expiry granularity) of the `time_window` breaker policy.
pub const DEFAULT_BUCKET: Span = crate::engine::SECOND;
/// Default Zipf exponent (classic Zipf).
pub const DEFAULT_ZIPF_S: f64 = 1.0;

/// Reads and validates the scenario at `path`.
pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
    parse(&read(path)?, path)
}

/// The largest scenario file accepted. Parsing holds the document's tree, which takes
/// about a hundred times the text, so the file's size bounds the memory it costs.
pub const MAX_FILE_BYTES: usize = 8 << 20;

fn too_large(path: &Path, bytes: impl std::fmt::Display) -> ScenarioError {
    ScenarioError {
        path: path.to_owned(),
        position: Some((1, 1)),
        message: format!(
            "the file is {bytes} bytes; a scenario file is at most {MAX_FILE_BYTES} bytes (8 MiB)"
        ),
    }
}

/// Reads the scenario file at `path`, refusing one past [`MAX_FILE_BYTES`] without
/// reading it all.
pub fn read(path: &Path) -> Result<String, ScenarioErrors> {
    use std::io::Read;
    let cannot = |e: std::io::Error| ScenarioError {
        path: path.to_owned(),
        position: None,
        message: format!("cannot read the file: {e}"),
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > MAX_FILE_BYTES {
        // A device or a pipe has no size to report: say what was read.
        let size = std::fs::metadata(path)
            .ok()
            .filter(|m| m.len() > MAX_FILE_BYTES as u64)
            .map_or_else(
                || format!("more than {MAX_FILE_BYTES}"),
                |m| m.len().to_string(),
            );
        return Err(too_large(path, size).into());
    }
    String::from_utf8(bytes).map_err(|e| {
        cannot(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.utf8_error(),
        ))
        .into()
    })
}

/// Validates scenario `text`, read from `path` (used in messages and as
/// [`Scenario::path`]), reporting every error it finds rather than the first one.
///
/// A scenario with a `service` key has a declared service: inline, or in a service
/// file read from a path relative to the scenario's. A service file is parsed and
/// deserialized on its own, beside the scenario, so the errors of both are reported
/// together (the scenario's first, then the service file's, each in file order).
pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioErrors> {
    parse_with(text, path, Overrides::none())
}

/// [`parse`] with `--set` overrides: each is put into the document (or into the
/// service file it names) before anything is read from it, so it is checked as the
/// file's own value would be; its errors name the override (see [`overrides`]).
pub fn parse_with(
    text: &str,
    path: &Path,
    overrides: &Overrides,
) -> Result<Scenario, ScenarioErrors> {
    if text.len() > MAX_FILE_BYTES {
        return Err(too_large(path, text.len()).into());
    }
    let plain = Source {
        path,
        text,
        landed: Landed::default(),
    };
    // A syntax error leaves no document to recover in: it is reported alone.
    let mut root = plain.parse()?;
    let kind = ServiceKind::of(root.get_ref());
    let source = Source {
        landed: Landed::select(overrides, kind, Target::Scenario, text.len()),
        ..plain
    };
    let refused = source.landed.apply(&mut root);
    if !refused.is_empty() {
        return Err(ScenarioErrors::new(refused, false));
    }
    let with_args = |mut scenario: Scenario| {
        scenario.overrides = overrides.args();
        scenario
    };
    if root.get_ref().contains_key("service") {
        return parse_declared(&source, &root, overrides).map(with_args);
    }
    let file: ScenarioFile = recover::deserialize(&root, text.len()).map_err(|found| {
        let incomplete = found.incomplete;
        ScenarioErrors::new(source.found(found), incomplete)
    })?;
    let serve = build::SeedServe::new(&file);
    build::build(file, path, &serve)
        .map(with_args)
        .map_err(|invalid| {
            let errors = invalid
                .into_iter()
                .map(|invalid| source.invalid(&root, "", invalid))
                .collect();
            ScenarioErrors::new(errors, false)
        })
}

/// A file being read, for its errors: where it is, what it says, and the overrides put
/// into its tree.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    landed: Landed<'a>,
}

impl Source<'_> {
    fn error(&self, offset: usize, message: String) -> ScenarioError {
        if let Some(error) = self.landed.error_at(offset, &message) {
            return error;
        }
        ScenarioError {
            path: self.path.to_owned(),
            position: Some(locate::line_column(self.text, offset)),
            message,
        }
    }

    /// The text's tree, or its syntax error.
    fn parse(&self) -> Result<toml::Spanned<DeTable<'_>>, ScenarioError> {
        DeTable::parse(self.text).map_err(|e| {
            self.error(
                e.span().map_or(0, |span| span.start),
                toml_message(e.message()),
            )
        })
    }

    /// Every deserialization error found.
    fn found(&self, found: recover::Found) -> Vec<ScenarioError> {
        found
            .errors
            .into_iter()
            .map(|(span, message)| self.error(span.start, toml_message(&message)))
            .collect()
    }

    /// A refused value at its key, which is at `prefix` + its path in `root`.
    fn invalid(
        &self,
        root: &toml::Spanned<DeTable<'_>>,
        prefix: &str,
        invalid: Invalid,
    ) -> ScenarioError {
        let path = format!("{prefix}{}", invalid.path);
        if let Some(error) = self.landed.error_for(&path, &invalid.reason) {
            return error;
        }
        self.error(
            locate::locate(root.get_ref(), &path).start,
            format!("invalid {path}: {}", invalid.reason),
        )
    }
}

/// Where the service file that a scenario at `scenario` names as `written` is.
fn service_path(scenario: &Path, written: &str) -> std::path::PathBuf {
    scenario.parent().unwrap_or(Path::new("")).join(written)
}

/// The text of the service file at `path`, or what to say at the scenario's `service`.
fn read_service(path: &Path) -> Result<String, String> {
    read(path).map_err(|e| {
        let message = &e.first().message;
        match message.strip_prefix("cannot read the file: ") {
            Some(why) => format!("cannot read the service file {}: {why}", path.display()),
            None => format!(
                "the service file {}: {}",
                path.display(),
                message.replace("a scenario file", "a service file")
            ),
        }
    })
}

/// Reads and validates the service file at `path` on its own (what `brownout node
/// --service` serves): the same format and errors as a scenario's `service`.
pub fn load_service(path: &Path) -> Result<crate::model::Service, ScenarioErrors> {
    let text = read_service(path).map_err(|message| ScenarioError {
        path: path.to_owned(),
        position: None,
        message,
    })?;
    let source = Source {
        path,
        text: &text,
        landed: Landed::default(),
    };
    let root = source.parse()?;
    let file: ServiceFile = recover::deserialize(&root, text.len()).map_err(|found| {
        let incomplete = found.incomplete;
        ScenarioErrors::new(source.found(found), incomplete)
    })?;
    let name = path.file_stem().map_or_else(
        || "service".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    service::build_service(&file, &name).map_err(|invalid| {
        let errors = invalid
            .into_iter()
            .map(|invalid| source.invalid(&root, "", invalid))
            .collect();
        ScenarioErrors::new(errors, false)
    })
}

/// The rest of [`parse`] for a scenario with a declared service.
fn parse_declared(
    scenario: &Source<'_>,
    root: &toml::Spanned<DeTable<'_>>,
    overrides: &Overrides,
) -> Result<Scenario, ScenarioErrors> {
    let mut errors = Vec::new();
    let mut incomplete = false;
    let mut file: Option<ScenarioFile<Declared>> =
        match recover::deserialize(root, scenario.text.len()) {
            Ok(file) => Some(file),
            Err(found) => {
                incomplete |= found.incomplete;
                errors.extend(scenario.found(found));
                None
            }
        };
    // A service file is read whether or not the scenario deserialized.
    let written = match root.get_ref().get("service").map(|v| v.get_ref()) {
        Some(toml::de::DeValue::String(written)) => Some(written.to_string()),
        _ => None,
    };
    let service_path = written.map(|w| service_path(scenario.path, &w));
    let service_text = service_path.as_ref().and_then(|p| match read_service(p) {
        Ok(text) => Some(text),
        Err(message) => {
            errors.push(scenario.error(locate::locate(root.get_ref(), "service").start, message));
            None
        }
    });
    let service_source =
        service_path
            .as_deref()
            .zip(service_text.as_deref())
            .map(|(path, text)| Source {
                path,
                text,
                landed: Landed::select(
                    overrides,
                    ServiceKind::File,
                    Target::ServiceFile,
                    text.len(),
                ),
            });
    let service_root = service_source.as_ref().and_then(|s| {
        s.parse()
            .map_err(|e| errors.push(e))
            .ok()
            .and_then(|mut root| {
                let refused = s.landed.apply(&mut root);
                let applied = refused.is_empty();
                errors.extend(refused);
                applied.then_some((s, root))
            })
    });
    let from_file: Option<ServiceFile> = service_root.as_ref().and_then(|(s, root)| {
        recover::deserialize(root, s.text.len())
            .map_err(|found| {
                incomplete |= found.incomplete;
                errors.extend(s.found(found));
            })
            .ok()
    });
    // The service, where its errors are located, and its default name.
    let inline = match file.as_mut().and_then(|f| f.service.take()) {
        Some(ServiceRef::Inline(inline)) => Some(*inline),
        _ => None,
    };
    let stem = |p: &Path| {
        p.file_stem().map_or_else(
            || "service".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        )
    };
    let declared = match (&inline, &from_file, &service_root) {
        (Some(service), _, _) => Some((service, scenario, root, "service.", stem(scenario.path))),
        (None, Some(service), Some((source, root))) => {
            Some((service, *source, root, "", stem(source.path)))
        }
        _ => None,
    };
    let Some((service, source, service_root, prefix, name)) = declared else {
        // The scenario or its service did not deserialize: their errors say why.
        return Err(ScenarioErrors::new(errors, incomplete));
    };
    let mut names = service.names();
    match service::build_service(service, &name) {
        Ok(built) => names.service = Some(std::sync::Arc::new(built)),
        Err(invalid) => errors.extend(
            invalid
                .into_iter()
                .map(|invalid| source.invalid(service_root, prefix, invalid)),
        ),
    }
    let scenario_errors_before = errors.len();
    let built = file.map(|file| build::build(file, scenario.path, &names));
    match built {
        Some(Ok(built)) if errors.is_empty() => Ok(built),
        Some(Err(invalid)) => {
            errors.extend(
                invalid
                    .into_iter()
                    .map(|invalid| scenario.invalid(root, "", invalid)),
            );
            // The scenario's errors come first, as for deserialization.
            errors[..].rotate_left(scenario_errors_before);
            Err(ScenarioErrors::new(errors, incomplete))
        }
        _ => Err(ScenarioErrors::new(errors, incomplete)),
    }
}

/// The file and the 1-based line and column of the key at dotted `path`
/// (`workload[0].rate`) of the scenario at `scenario` whose text is `text`, or of its
/// nearest parent that is there. A key of a service that is a file
/// (`service.dependencies.payments.timeout`) is looked up in that file.
pub(super) fn place_of(
    scenario: &Path,
    text: &str,
    path: &str,
) -> (std::path::PathBuf, (usize, usize)) {
    // The text parsed once already (it is a scenario's), so this cannot fail.
    let Ok(root) = DeTable::parse(text) else {
        return (scenario.to_owned(), (1, 1));
    };
    if let (Some(key), Some(toml::de::DeValue::String(written))) = (
        path.strip_prefix("service."),
        root.get_ref().get("service").map(|v| v.get_ref()),
    ) {
        let file = service_path(scenario, written);
        if let Ok(service) = read(&file) {
            if let Ok(service_root) = DeTable::parse(&service) {
                let offset = locate::locate(service_root.get_ref(), key).start;
                return (file, locate::line_column(&service, offset));
            }
        }
    }
    let offset = locate::locate(root.get_ref(), path).start;
    (scenario.to_owned(), locate::line_column(text, offset))
}

/// toml's and serde's message, in the file's vocabulary: TOML has keys, not fields,
/// and integers, not `u32`s.
fn toml_message(message: &str) -> String {
    let mut message = message.trim_end().to_owned();
    for (from, to) in [
        ("unknown field", "unknown key"),
        ("missing field", "missing key"),
        ("unknown variant", "unknown value"),
    ] {
        if let Some(rest) = message.strip_prefix(from) {
            message = format!("{to}{rest}");
        }
    }
    for (from, to) in [
        ("expected u32", "expected an integer in 0..=4294967295"),
        ("expected u64", "expected an integer >= 0"),
        ("expected usize", "expected an integer >= 0"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
    ] {
        if let Some(head) = message.strip_suffix(from) {
            message = format!("{head}{to}");
        }
    }
    message
}

/// What a scenario of the seed service and one with a declared service write
/// differently: the seed's own tables, the names in a stream's `mix` and a fault's
/// `dependency`. The rest of the file is the same, so it is one generic type, and a
/// seed scenario deserializes (and is refused) exactly as before services existed.
trait Shape {
    /// `[data]`.
    type Data: DeserializeOwned + Default + std::fmt::Debug;
    /// `[dependencies]`.
    type Dependencies: DeserializeOwned + Default + std::fmt::Debug;
    /// A stream's `mix`.
    type Mix: DeserializeOwned + std::fmt::Debug;
    /// A fault's `dependency`.
    type Dependency: DeserializeOwned + std::fmt::Debug;
}

/// A scenario of the built-in seed service: no `service` key.
#[derive(Debug)]
struct Seed;

impl Shape for Seed {
    type Data = DataFile;
    type Dependencies = DependenciesFile;
    type Mix = MixFile;
    type Dependency = DependencyName;
}

/// A scenario with a declared service (`service = "..."` or `[service]`): its names
/// are the service's, and the seed's tables are read only to be refused.
#[derive(Debug)]
struct Declared;

impl Shape for Declared {
    type Data = SeedOnly;
    type Dependencies = SeedOnly;
    type Mix = Named<NonNegative>;
    type Dependency = String;
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a scenario document", bound = "")]
struct ScenarioFile<S: Shape = Seed> {
    name: Option<String>,
    #[serde(default)]
    description: String,
    seed: Option<u64>,
    duration: Dur,
    service: Option<ServiceRef>,
    #[serde(default)]
    data: S::Data,
    #[serde(default)]
    modes: ModesFile,
    #[serde(default)]
    dependencies: S::Dependencies,
    #[serde(default)]
    workload: Vec<WorkloadFile<S>>,
    #[serde(default)]
    fault: Vec<FaultFile<S>>,
    #[serde(default)]
    random_fault: Vec<RandomFaultFile<S>>,
    cpu: Option<CpuFile>,
    #[serde(default)]
    script: Vec<ScriptFile>,
    #[serde(default)]
    expect: ExpectFile,
}

/// `service`: the path of a service file (relative to the scenario; `parse` reads it
/// from the document's tree, whether or not the rest deserializes), or the service
/// itself as a table.
#[derive(Debug)]
enum ServiceRef {
    File,
    Inline(Box<ServiceFile>),
}

impl<'de> Deserialize<'de> for ServiceRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::value::MapAccessDeserializer;
        use serde::de::{Error, MapAccess, Visitor};

        struct ServiceVisitor;

        impl<'de> Visitor<'de> for ServiceVisitor {
            type Value = ServiceRef;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "the path of a service file (such as \"../services/shop.toml\") or a \
                     [service] table",
                )
            }

            fn visit_str<E: Error>(self, _: &str) -> Result<ServiceRef, E> {
                Ok(ServiceRef::File)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ServiceRef, A::Error> {
                ServiceFile::deserialize(MapAccessDeserializer::new(map))
                    .map(|s| ServiceRef::Inline(Box::new(s)))
            }
        }

        deserializer.deserialize_any(ServiceVisitor)
    }
}

/// A table whose keys are names the file chooses (`[dependencies.payments]`,
/// `mix = { checkout = 1 }`), in the order the file writes them.
#[derive(Debug)]
struct Named<T>(Vec<(String, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{MapAccess, Visitor};
        use std::marker::PhantomData;

        struct NamedVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for NamedVisitor<T> {
            type Value = Named<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table keyed by name")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<toml::Spanned<String>, T>()? {
                    entries.push((key.span().start, key.into_inner(), value));
                }
                // toml hands a table's keys over sorted by name; their spans give the
                // order the file writes them in, which is the order of the ids.
                entries.sort_by_key(|&(at, _, _)| at);
                Ok(Named(entries.into_iter().map(|(_, k, v)| (k, v)).collect()))
            }
        }

        deserializer.deserialize_map(NamedVisitor(PhantomData))
    }
}

/// A seed-only table (`[data]`, `[dependencies]`) in a scenario with a declared
/// service: anything is read, and `build` refuses it if it is there.
#[derive(Debug, Default)]
struct SeedOnly(bool);

impl<'de> Deserialize<'de> for SeedOnly {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| SeedOnly(true))
    }
}

/// `[data]`: one collection per service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table with `users` and `products`")]
struct DataFile {
    users: Option<CollectionFile>,
    products: Option<CollectionFile>,
}

/// `[data.users]`, `[data.products]`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { count = 1000, warm = true }"
)]
struct CollectionFile {
    count: Option<u64>,
    warm: Option<bool>,
    #[serde(default)]
    records: Vec<RecordFile>,
}

/// One explicit record.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a record such as { id = 123, name = \"John Doe\" }"
)]
struct RecordFile {
    id: u64,
    name: String,
}

/// `[modes]`: the mode controller.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of mode settings")]
struct ModesFile {
    degraded_enter: Option<Percent>,
    degraded_leave: Option<Percent>,
    critical_enter: Option<Percent>,
    critical_leave: Option<Percent>,
    min_dwell: Option<Dur>,
    disabled: Option<DisabledFile>,
    critical_features: Option<Vec<String>>,
}

/// `[modes.disabled]`: features each mode disables; a mode left out keeps its default.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { degraded = [\"recommendations\", \"search\"] }"
)]
struct DisabledFile {
    normal: Option<Vec<String>>,
    degraded: Option<Vec<String>>,
    critical: Option<Vec<String>>,
}

/// `[dependencies]`: only the two services the node knows.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table with `users` and `products`")]
struct DependenciesFile {
    users: Option<DependencyFile>,
    products: Option<DependencyFile>,
}

/// `[dependencies.users]`, `[dependencies.products]`: the simulated service and the
/// node's engine in front of it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of dependency settings")]
struct DependencyFile {
    latency: Option<LatencyFile>,
    error_rate: Option<Probability>,
    down_latency: Option<Dur>,
    max_concurrency: Option<u32>,
    timeout: Option<Dur>,
    read_policy: Option<ReadPolicyFile>,
    #[serde(default)]
    breaker: BreakerFile,
    /// Absent: the seed's dependencies have one with every default, a declared
    /// dependency has none.
    cache: Option<CacheFile>,
    /// Absent: as for `cache`.
    queue: Option<QueueFile>,
    /// Absent: failed calls are not retried.
    retry: Option<RetryFile>,
    /// The layers outermost first; absent: retry outside the breaker.
    pipeline: Option<Vec<String>>,
    /// Absent: its calls in flight are not bounded (a declared dependency only).
    bulkhead: Option<BulkheadFile>,
    /// The node's CPU time per call (a declared dependency of a service with
    /// `[compute]` only).
    cpu_per_call: Option<Dur>,
    /// Absent: read-your-writes is off.
    read_your_writes: Option<Dur>,
}

/// `[dependencies.X.bulkhead]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of bulkhead settings")]
struct BulkheadFile {
    max_concurrent_calls: Option<u32>,
    max_wait: Option<Dur>,
    max_waiting: Option<u32>,
    counts_as_failure: Option<bool>,
}

/// `[dependencies.X.retry]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of retry settings")]
struct RetryFile {
    max_attempts: Option<u32>,
    backoff_base: Option<Dur>,
    backoff_max: Option<Dur>,
    jitter: Option<JitterFile>,
    on: Option<Vec<RetryOnFile>>,
    /// Absent: no budget.
    budget: Option<BudgetFile>,
}

/// `retry.jitter`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum JitterFile {
    None,
    Full,
    Equal,
}

/// One entry of `retry.on`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RetryOnFile {
    Timeout,
    Error,
    Unavailable,
}

/// `[dependencies.X.retry.budget]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of retry budget settings")]
struct BudgetFile {
    ratio: Option<Probability>,
    min_per_sec: Option<u32>,
    window: Option<Dur>,
}

/// `read_policy`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReadPolicyFile {
    DependencyFirst,
    CacheFirst,
}

/// `latency = { dist = ..., ... }`; which keys apply depends on `dist`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a latency such as { dist = \"lognormal\", p50 = \"10ms\", p99 = \"80ms\" }"
)]
struct LatencyFile {
    dist: LatencyDist,
    value: Option<Dur>,
    min: Option<Dur>,
    max: Option<Dur>,
    mean: Option<Dur>,
    p50: Option<Dur>,
    p99: Option<Dur>,
}

/// `latency.dist`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LatencyDist {
    Constant,
    Uniform,
    Exponential,
    Lognormal,
}

/// `[dependencies.X.breaker]`; which window keys apply depends on `policy`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of breaker settings")]
struct BreakerFile {
    policy: Option<BreakerPolicy>,
    failure_threshold: Option<u32>,
    window_calls: Option<u32>,
    min_calls: Option<u32>,
    failure_rate: Option<Probability>,
    window: Option<Dur>,
    bucket: Option<Dur>,
    slow_call_threshold: Option<Dur>,
    open_duration: Option<Dur>,
    open_duration_multiplier: Option<f64>,
    max_open_duration: Option<Dur>,
    open_duration_jitter: Option<Probability>,
    half_open_max_probes: Option<u32>,
    half_open_successes: Option<u32>,
    half_open_timeout: Option<Dur>,
}

/// `breaker.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BreakerPolicy {
    Consecutive,
    CountWindow,
    TimeWindow,
}

/// `[dependencies.X.cache]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of cache settings")]
struct CacheFile {
    ttl: Option<Dur>,
    max_stale: Option<Dur>,
    stale_while_revalidate: Option<Dur>,
    refresh_timeout: Option<Dur>,
    capacity: Option<usize>,
}

/// `[dependencies.X.queue]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of queue settings")]
struct QueueFile {
    capacity: Option<usize>,
    drain_rate: Option<u32>,
    burst: Option<u32>,
    max_in_flight: Option<usize>,
    max_attempts: Option<u32>,
    backoff_base: Option<Dur>,
    backoff_max: Option<Dur>,
    jitter: Option<Probability>,
    in_order: Option<bool>,
}

/// `[[workload]]`: one open-loop stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a workload stream table", bound = "")]
struct WorkloadFile<S: Shape> {
    name: Option<String>,
    rate: RateFile,
    mix: S::Mix,
    users: Option<KeysFile>,
    products: Option<KeysFile>,
}

/// `rate`: a number (constant over the whole run) or a list of phases.
#[derive(Debug)]
enum RateFile {
    Constant(Rate),
    Phases(Vec<PhaseFile>),
}

impl<'de> Deserialize<'de> for RateFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::value::{F64Deserializer, I64Deserializer, U64Deserializer};
        use serde::de::{Error, SeqAccess, Visitor};

        struct RateVisitor;

        impl<'de> Visitor<'de> for RateVisitor {
            type Value = RateFile;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "requests per second (such as 300) or an array of phases \
                     (such as [{ from = \"0s\", to = \"1m\", rps = 300 }])",
                )
            }

            fn visit_i64<E: Error>(self, v: i64) -> Result<RateFile, E> {
                Rate::deserialize(I64Deserializer::<E>::new(v)).map(RateFile::Constant)
            }

            fn visit_u64<E: Error>(self, v: u64) -> Result<RateFile, E> {
                Rate::deserialize(U64Deserializer::<E>::new(v)).map(RateFile::Constant)
            }

            fn visit_f64<E: Error>(self, v: f64) -> Result<RateFile, E> {
                Rate::deserialize(F64Deserializer::<E>::new(v)).map(RateFile::Constant)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RateFile, A::Error> {
                let mut phases = Vec::new();
                while let Some(phase) = seq.next_element()? {
                    phases.push(phase);
                }
                Ok(RateFile::Phases(phases))
            }
        }

        deserializer.deserialize_any(RateVisitor)
    }
}

/// One rate phase: `rps` (constant) or `rps_from` and `rps_to` (ramp).
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a phase such as { from = \"0s\", to = \"1m\", rps = 300 }"
)]
struct PhaseFile {
    from: Dur,
    to: Dur,
    rps: Option<Rate>,
    rps_from: Option<Rate>,
    rps_to: Option<Rate>,
}

/// `mix`: a weight per request kind.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of weights such as { get_user = 3, get_product = 1 }"
)]
struct MixFile {
    get_user: Option<NonNegative>,
    get_product: Option<NonNegative>,
    update_user: Option<NonNegative>,
    update_product: Option<NonNegative>,
    get_recommendations: Option<NonNegative>,
    search: Option<NonNegative>,
}

/// `users`, `products` of a stream: key popularity.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a key distribution such as { dist = \"zipf\", s = 1.1 }"
)]
struct KeysFile {
    dist: KeysDist,
    s: Option<f64>,
    n: Option<u64>,
}

/// `dist` of a key distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeysDist {
    Uniform,
    Zipf,
}

/// `dependency` of a fault.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DependencyName {
    Users,
    Products,
}

/// `kind` of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FaultKindName {
    Outage,
    ErrorRate,
    Latency,
    Hang,
    Flapping,
}

/// `[[fault]]`: one scheduled window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a fault table", bound = "")]
struct FaultFile<S: Shape> {
    dependency: S::Dependency,
    kind: FaultKindName,
    start: Dur,
    end: Option<Dur>,
    rate: Option<Probability>,
    added: Option<Dur>,
    period: Option<Dur>,
    down: Option<Dur>,
}

/// `[[random_fault]]`: seeded random windows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a random fault table", bound = "")]
struct RandomFaultFile<S: Shape> {
    dependency: S::Dependency,
    kind: FaultKindName,
    mtbf: Dur,
    mttr: Dur,
    rate: Option<Probability>,
    added: Option<Dur>,
    period: Option<Dur>,
    down: Option<Dur>,
}

/// `[cpu]`: the CPU load curve.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of cpu settings")]
struct CpuFile {
    initial: Option<Percent>,
    every: Option<Dur>,
    noise: Option<NonNegative>,
    #[serde(default)]
    points: Vec<CpuPointFile>,
}

/// One CPU point: a step (`at`, `cpu`) or a ramp (`from`, `to`, `cpu_from`, `cpu_to`).
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a point such as { at = \"1m\", cpu = 85 }"
)]
struct CpuPointFile {
    at: Option<Dur>,
    cpu: Option<Percent>,
    from: Option<Dur>,
    to: Option<Dur>,
    cpu_from: Option<Percent>,
    cpu_to: Option<Percent>,
}

/// `[[script]]`: one message at a fixed time.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { at = \"30s\", body = { type = \"get_user\", msg_id = 1, user_id = 123 } }"
)]
struct ScriptFile {
    at: Dur,
    body: toml::Value,
}

/// `[expect]`: end-of-run checks, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of expectations")]
struct ExpectFile {
    min_availability: Option<Probability>,
    max_stale_age: Option<Dur>,
    breaker_opens_within: Option<Dur>,
    breaker_closes_within: Option<Dur>,
    max_breaker_trips: Option<u64>,
    max_mode_changes: Option<u64>,
    max_writes_lost: Option<u64>,
    max_writes_rejected: Option<u64>,
    queue_drained_by: Option<Dur>,
    /// `[expect.endpoints.NAME]` (a declared service only).
    #[serde(default)]
    endpoints: Named<EndpointExpectFile>,
    /// `[expect.dependencies.NAME]` (of the seed service, only the checks its report
    /// has figures for).
    #[serde(default)]
    dependencies: Named<DependencyExpectFile>,
    /// `[expect.sweep]`: what must hold across seeds.
    sweep: Option<SweepExpectFile>,
}

/// `[expect.sweep]`: the sweep's size, its pass rate and percentile bounds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of sweep expectations")]
struct SweepExpectFile {
    seeds: Option<u64>,
    min_pass_rate: Option<Probability>,
    min_availability: Option<PercentilesFile<Probability>>,
    max_stale_age: Option<PercentilesFile<Dur>>,
    max_breaker_time_open: Option<PercentilesFile<Dur>>,
    max_queue_depth: Option<PercentilesFile<u64>>,
    max_recovery_time: Option<PercentilesFile<Dur>>,
    max_partial: Option<PercentilesFile<u64>>,
    max_shed: Option<PercentilesFile<u64>>,
}

/// A bound per percentile across seeds: `{ p99 = 0.995 }`.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of percentiles such as { p99 = 0.995 } (keys p50, p95, p99, worst)",
    bound(deserialize = "T: Deserialize<'de>")
)]
struct PercentilesFile<T> {
    p50: Option<T>,
    p95: Option<T>,
    p99: Option<T>,
    worst: Option<T>,
}

/// `[expect.endpoints.NAME]`: checks of one endpoint's requests.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of endpoint expectations")]
struct EndpointExpectFile {
    min_availability: Option<Probability>,
    max_p99_latency: Option<Dur>,
    max_partial_rate: Option<Probability>,
    max_shed_rate: Option<Probability>,
    max_deadline_misses: Option<u64>,
}

/// `[expect.dependencies.NAME]`: checks of one dependency's calls.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of dependency expectations")]
struct DependencyExpectFile {
    max_failure_rate: Option<Probability>,
    max_failure_rate_in_faults: Option<Probability>,
    max_breaker_trips: Option<u64>,
    max_fan_out: Option<NonNegative>,
    max_recovery_multiplier: Option<NonNegative>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::breaker::{BreakerConfig, TripPolicy};
    use crate::engine::modes::Mode;
    use crate::engine::SECOND;
    use crate::model::faults::FaultKind;
    use crate::model::latency::Latency;
    use crate::model::load::CpuSegment;
    use crate::model::workload::{Keys, RatePhase};
    use crate::model::RequestKind;
    use crate::node::{NodeConfig, ReadPolicy};
    use serde_json::json;

    const MS: Span = MILLISECOND;
    const MIN: Span = 60 * SECOND;

    fn ok(text: &str) -> Scenario {
        parse(text, Path::new("scenarios/test.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every error `text` gives, as `(line, column, message)`.
    fn errs(text: &str) -> Vec<(usize, usize, String)> {
        let e = parse(text, Path::new("t.toml")).expect_err("should be refused");
        e.errors
            .into_iter()
            .map(|e| {
                let (line, column) = e.position.expect("errors carry a position");
                (line, column, e.message)
            })
            .collect()
    }

    /// `(line, column, message)` of the one error `text` gives.
    fn err(text: &str) -> (usize, usize, String) {
        let mut all = errs(text);
        assert_eq!(all.len(), 1, "one error expected: {all:?}");
        all.remove(0)
    }

    /// The full example of `scenarios/README.md`.
    fn readme_example() -> &'static str {
        let readme = include_str!("../../scenarios/README.md");
        let start = readme.find("```toml\n").expect("the README has an example") + 8;
        let len = readme[start..].find("```").expect("the example ends");
        &readme[start..start + len]
    }

    const FULL: &str = r#"
name = "outage"
description = "users down for 3 minutes at peak"
seed = 42
duration = "12m"

[data.users]
count = 10000
warm = true
records = [{ id = 123, name = "John Doe" }]

[data.products]
count = 500
warm = false

[modes]
degraded_enter = 75.0
degraded_leave = 65
critical_enter = 92.5
critical_leave = 85.0
min_dwell = "20s"
disabled = { degraded = ["recommendations"], critical = ["recommendations", "search"] }
critical_features = ["checkout"]

[dependencies.users]
latency = { dist = "lognormal", p50 = "20ms", p99 = "150ms" }
error_rate = 0.001
down_latency = "2ms"
timeout = "500ms"
read_policy = "cache_first"

[dependencies.users.breaker]
policy = "consecutive"
failure_threshold = 6
slow_call_threshold = "1s"
open_duration = "15s"
open_duration_multiplier = 1.5
max_open_duration = "2m"
open_duration_jitter = 0.0
half_open_max_probes = 2
half_open_successes = 3
half_open_timeout = "4s"

[dependencies.users.cache]
ttl = "1m"
max_stale = "10m"
stale_while_revalidate = "30s"
refresh_timeout = "5s"
capacity = 20000

[dependencies.users.queue]
capacity = 500
drain_rate = 20
burst = 5
max_in_flight = 2
max_attempts = 8
backoff_base = "200ms"
backoff_max = "20s"
jitter = 0.5

[dependencies.products]
latency = { dist = "constant", value = "5ms" }
breaker = { policy = "time_window", window = "30s", bucket = "5s", min_calls = 4, failure_rate = 0.25 }

[[workload]]
name = "web"
rate = [
  { from = "0s", to = "10m", rps = 300 },
  { from = "10m", to = "12m", rps_from = 300, rps_to = 0 },
]
mix = { get_user = 50, get_product = 30, update_user = 5, update_product = 2, get_recommendations = 8, search = 0 }
users = { dist = "zipf", s = 1.1 }
products = { dist = "uniform", n = 50 }

[[workload]]
rate = 2.5
mix = { search = 1 }

[[fault]]
dependency = "users"
kind = "outage"
start = "2m"
end = "5m"

[[fault]]
dependency = "products"
kind = "flapping"
period = "10s"
down = "2s"
start = "6m"

[[fault]]
dependency = "products"
kind = "error_rate"
rate = 0.3
start = "1m"
end = "90s"

[[random_fault]]
dependency = "products"
kind = "latency"
added = "300ms"
mtbf = "10m"
mttr = "20s"

[cpu]
initial = 30.0
every = "2s"
noise = 2.0
points = [ { at = "1m", cpu = 85 }, { from = "4m", to = "5m", cpu_from = 85, cpu_to = 40 } ]

[[script]]
at = "30s"
body = { type = "get_user", msg_id = 1, user_id = 123, force_failures = 6, weight = 0.5, tags = ["a", 2] }

[[script]]
at = "31s"
body = { type = "set_mode", mode = "nonsense" }

[expect]
min_availability = 0.99
max_stale_age = "5m"
breaker_opens_within = "5s"
breaker_closes_within = "1m"
max_breaker_trips = 10
max_mode_changes = 4
max_writes_lost = 0
max_writes_rejected = 0
queue_drained_by = "9m"
"#;

    #[test]
    fn full_example_parses_into_the_domain() {
        let s = ok(FULL);
        assert_eq!(s.name, "outage");
        assert_eq!(s.description, "users down for 3 minutes at peak");
        assert_eq!(s.path, Path::new("scenarios/test.toml"));
        assert_eq!(s.seed, 42);
        assert_eq!(s.duration, 12 * MIN);

        let users = &s.data.collections[0];
        assert_eq!((users.count, users.warm), (10_000, true));
        assert_eq!(users.records.get(&123).map(|n| &**n), Some("John Doe"));
        let products = &s.data.collections[1];
        assert_eq!((products.count, products.warm), (500, false));
        assert!(products.records.is_empty());

        let modes = &s.node.modes;
        assert_eq!(modes.degraded_enter, 75.0);
        assert_eq!(modes.degraded_leave, 65.0);
        assert_eq!(modes.critical_enter, 92.5);
        assert_eq!(modes.min_dwell, 20 * SECOND);
        assert_eq!(
            modes.disabled_features[&Mode::Degraded],
            ["recommendations"]
        );
        assert_eq!(
            modes.disabled_features[&Mode::Critical],
            ["recommendations", "search"]
        );
        // Left out of `disabled`: keeps its default.
        assert!(modes.disabled_features[&Mode::Normal].is_empty());
        assert_eq!(modes.critical_features, ["checkout"]);

        let sim_users = &s.dependencies[0];
        assert_eq!(
            sim_users.latency,
            Latency::LogNormal {
                p50: 20 * MS,
                p99: 150 * MS
            }
        );
        assert_eq!(sim_users.error_rate, 0.001);
        assert_eq!(sim_users.down_latency, 2 * MS);
        assert_eq!(s.dependencies[1].latency, Latency::Constant(5 * MS));
        assert_eq!(s.dependencies[1].error_rate, 0.0);

        let u = &s.node.dependencies[0];
        assert_eq!(u.timeout, 500 * MS);
        assert_eq!(u.read_policy, ReadPolicy::CacheFirst);
        assert_eq!(
            u.breaker,
            BreakerConfig {
                trip_policy: TripPolicy::ConsecutiveFailures {
                    failure_threshold: 6
                },
                slow_call_threshold: Some(SECOND),
                open_duration: 15 * SECOND,
                open_duration_multiplier: 1.5,
                max_open_duration: 2 * MIN,
                open_duration_jitter: 0.0,
                half_open_max_probes: 2,
                half_open_successes: 3,
                half_open_timeout: 4 * SECOND,
            }
        );
        assert_eq!(u.cache.ttl, MIN);
        assert_eq!(u.cache.max_stale, 10 * MIN);
        assert_eq!(u.cache.stale_while_revalidate, Some(30 * SECOND));
        assert_eq!(u.cache.refresh_timeout, 5 * SECOND);
        assert_eq!(u.cache.capacity, 20_000);
        assert_eq!(u.queue.capacity, 500);
        assert_eq!(u.queue.drain_rate, 20);
        assert_eq!(u.queue.burst, 5);
        assert_eq!(u.queue.max_in_flight, 2);
        assert_eq!(u.queue.max_attempts, 8);
        assert_eq!(u.queue.backoff_base, 200 * MS);
        assert_eq!(u.queue.backoff_max, 20 * SECOND);
        assert_eq!(u.queue.jitter, 0.5);
        let p = &s.node.dependencies[1];
        assert_eq!(
            p.breaker.trip_policy,
            TripPolicy::TimeWindow {
                window: 30 * SECOND,
                bucket: 5 * SECOND,
                min_calls: 4,
                failure_rate: 0.25
            }
        );
        assert_eq!(p.read_policy, ReadPolicy::DependencyFirst);

        assert_eq!(s.workload.len(), 2);
        let web = &s.workload[0];
        assert_eq!(web.name, "web");
        assert_eq!(
            web.rate.phases,
            vec![
                RatePhase::Constant {
                    from: 0,
                    to: 10 * MIN,
                    rate_per_sec: 300.0
                },
                RatePhase::Ramp {
                    from: 10 * MIN,
                    to: 12 * MIN,
                    rate_from: 300.0,
                    rate_to: 0.0
                },
            ]
        );
        // Kind order, zero weights dropped.
        assert_eq!(
            web.mix,
            vec![
                (RequestKind::GetUser, 50.0),
                (RequestKind::GetProduct, 30.0),
                (RequestKind::UpdateUser, 5.0),
                (RequestKind::UpdateProduct, 2.0),
                (RequestKind::GetRecommendations, 8.0),
            ]
        );
        assert_eq!(web.user_keys, Keys::Zipf { n: 10_000, s: 1.1 });
        assert_eq!(web.product_keys, Keys::Uniform { n: 50 });
        let second = &s.workload[1];
        assert_eq!(second.name, "stream-2");
        assert_eq!(
            second.rate.phases,
            vec![RatePhase::Constant {
                from: 0,
                to: 12 * MIN,
                rate_per_sec: 2.5
            }]
        );
        assert_eq!(second.mix, vec![(RequestKind::Search, 1.0)]);
        assert_eq!(second.product_keys, Keys::Uniform { n: 500 });

        assert_eq!(s.faults.len(), 3);
        assert_eq!(
            (s.faults[0].dependency, &s.faults[0].kind),
            (0, &FaultKind::Outage)
        );
        assert_eq!((s.faults[0].start, s.faults[0].end), (2 * MIN, 5 * MIN));
        assert_eq!(
            s.faults[1].kind,
            FaultKind::Flapping {
                period: 10 * SECOND,
                down: 2 * SECOND
            }
        );
        assert_eq!((s.faults[1].dependency, s.faults[1].end), (1, 12 * MIN));
        assert_eq!(s.faults[2].kind, FaultKind::ErrorRate(0.3));
        assert_eq!(s.faults[2].end, 90 * SECOND);
        let random = &s.random_faults[0];
        assert_eq!(random.dependency, 1);
        assert_eq!(random.kind, FaultKind::AddedLatency(300 * MS));
        assert_eq!((random.mtbf, random.mttr), (10 * MIN, 20 * SECOND));

        let cpu = s.cpu.as_ref().unwrap();
        assert_eq!(cpu.initial, 30.0);
        assert_eq!(cpu.every, 2 * SECOND);
        assert_eq!(cpu.noise_stddev, 2.0);
        assert_eq!(
            cpu.segments,
            vec![
                CpuSegment::Step { at: MIN, cpu: 85.0 },
                CpuSegment::Ramp {
                    from: 4 * MIN,
                    to: 5 * MIN,
                    cpu_from: 85.0,
                    cpu_to: 40.0
                },
            ]
        );

        assert_eq!(s.script.len(), 2);
        assert_eq!(s.script[0].at, 30 * SECOND);
        let body = &s.script[0].body;
        assert_eq!(
            *body,
            json!({"type": "get_user", "msg_id": 1, "user_id": 123, "force_failures": 6,
                   "weight": 0.5, "tags": ["a", 2]})
        );
        assert!(body["msg_id"].is_i64() && body["weight"].is_f64());
        // Malformed messages are allowed: the node answers them with an error reply.
        assert_eq!(s.script[1].body["mode"], "nonsense");

        let e = &s.expect;
        assert_eq!(e.min_availability, Some(0.99));
        assert_eq!(e.max_stale_age, Some(5 * MIN));
        assert_eq!(e.breaker_opens_within, Some(5 * SECOND));
        assert_eq!(e.breaker_closes_within, Some(MIN));
        assert_eq!(e.max_breaker_trips, Some(10));
        assert_eq!(e.max_mode_changes, Some(4));
        assert_eq!(e.max_writes_lost, Some(0));
        assert_eq!(e.max_writes_rejected, Some(0));
        assert_eq!(e.queue_drained_by, Some(9 * MIN));

        s.node.validate().unwrap();
    }

    #[test]
    fn read_your_writes_is_a_window_per_dependency_refused_where_it_is_zero() {
        let s = ok("duration = \"1m\"\n[dependencies.users]\nread_your_writes = \"30s\"\n");
        assert_eq!(s.node.dependencies[0].read_your_writes, Some(30 * SECOND));
        assert_eq!(s.node.dependencies[1].read_your_writes, None);
        let (line, column, message) = err(
            "duration = \"1m\"\n[dependencies.products]\nerror_rate = 0.01\nread_your_writes = \"0s\"\n",
        );
        assert_eq!((line, column), (4, 1), "{message}");
        assert!(
            message.contains("dependencies.products.read_your_writes")
                && message.contains("must be longer than zero"),
            "{message}"
        );
        let (line, _, message) =
            err("duration = \"1m\"\n[dependencies.users]\nread_your_writes = 30\n");
        assert_eq!(line, 3, "{message}");
        assert!(message.contains("duration"), "{message}");
    }

    #[test]
    fn sweep_expectations_are_read_in_a_fixed_order_and_checked() {
        use crate::model::sweep::{SweepBound, SweepFigure, SweepPercentile};
        let s = ok(
            "duration = \"1m\"\n[expect.sweep]\nseeds = 500\nmin_pass_rate = 0.99\n\
                    max_recovery_time = { worst = \"2m\", p95 = \"30s\" }\n\
                    min_availability = { p99 = 0.995 }\n",
        );
        let sweep = s.expect.sweep.expect("[expect.sweep] is read");
        assert_eq!(sweep.seeds, 500);
        assert_eq!(sweep.min_pass_rate, Some(0.99));
        let b = |figure, percentile, limit| SweepBound {
            figure,
            percentile,
            limit,
        };
        assert_eq!(
            sweep.bounds,
            [
                b(SweepFigure::Availability, SweepPercentile::P99, 995_000),
                b(SweepFigure::RecoveryTime, SweepPercentile::P95, 30 * SECOND),
                b(SweepFigure::RecoveryTime, SweepPercentile::Worst, 2 * MIN),
            ]
        );
        assert_eq!(ok("duration = \"1m\"\n").expect.sweep, None);
        let (line, column, m) =
            err("duration = \"1m\"\n[expect.sweep]\nmin_availability = { p90 = 0.9 }\n");
        assert_eq!((line, column), (3, 22));
        assert!(
            m.starts_with("unknown key `p90`, expected one of `p50`, `p95`, `p99`, `worst`"),
            "{m}"
        );
        let (line, _, m) = err("duration = \"1m\"\n[expect.sweep]\nseeds = 0\n");
        assert_eq!(line, 3);
        assert!(m.contains("must be 1 to 1000000, got 0"), "{m}");
        let (line, _, m) = err("duration = \"1m\"\n[expect.sweep]\nseeds = 10\n");
        assert_eq!(line, 2);
        assert!(m.contains("states nothing to check"), "{m}");
    }

    #[test]
    fn minimal_file_gets_every_default() {
        let s = parse("duration = \"1m\"\n", Path::new("dir/calm.toml")).unwrap();
        assert_eq!(s.name, "calm");
        assert_eq!(s.description, "");
        assert_eq!(s.seed, DEFAULT_SEED);
        assert_eq!(s.duration, MIN);
        assert_eq!(s.node, NodeConfig::default());
        for c in &s.data.collections {
            assert_eq!(c.count, DEFAULT_DATA_COUNT);
            assert_eq!(c.warm, DEFAULT_WARM);
            assert!(c.records.is_empty());
        }
        for d in &s.dependencies {
            assert_eq!(
                d.latency,
                Latency::LogNormal {
                    p50: DEFAULT_LATENCY_P50,
                    p99: DEFAULT_LATENCY_P99
                }
            );
            assert_eq!(d.error_rate, DEFAULT_ERROR_RATE);
            assert_eq!(d.down_latency, DEFAULT_DOWN_LATENCY);
        }
        assert!(s.faults.is_empty() && s.random_faults.is_empty());
        assert!(s.workload.is_empty() && s.script.is_empty());
        assert_eq!(s.cpu, None);
        assert_eq!(s.expect, Default::default());
    }

    #[test]
    fn readme_example_parses() {
        let s = ok(readme_example());
        assert!(!s.workload.is_empty() && !s.faults.is_empty() && !s.script.is_empty());
    }

    #[test]
    fn defaults_follow_a_longer_base() {
        let s = ok(r#"
duration = "1m"
[dependencies.users.breaker]
open_duration = "5m"
[dependencies.users.queue]
backoff_base = "30s"
[dependencies.products.breaker]
policy = "count_window"
"#);
        let users = &s.node.dependencies[0];
        assert_eq!(users.breaker.max_open_duration, 5 * MIN);
        assert_eq!(users.queue.backoff_max, 30 * SECOND);
        assert_eq!(
            s.node.dependencies[1].breaker.trip_policy,
            TripPolicy::CountWindow {
                window_calls: DEFAULT_WINDOW_CALLS,
                min_calls: DEFAULT_MIN_CALLS,
                failure_rate: DEFAULT_FAILURE_RATE
            }
        );
    }

    #[test]
    fn display_names_file_line_and_column() {
        let e = parse("duration = \"1m\"\nbogus = 1\n", Path::new("s/x.toml")).unwrap_err();
        assert_eq!(e.errors.len(), 1);
        assert_eq!(
            e.to_string(),
            "s/x.toml:2:1: unknown key `bogus`, expected one of `name`, `description`, \
             `seed`, `duration`, `service`, `data`, `modes`, `dependencies`, `workload`, \
             `fault`, `random_fault`, `cpu`, `script`, `expect`"
        );
        let e = load(Path::new("/nonexistent/brownout.toml")).unwrap_err();
        assert_eq!(e.first().position, None);
        assert!(e
            .to_string()
            .starts_with("/nonexistent/brownout.toml: cannot read the file"));
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        let (l, c, m) =
            err("duration = \"1m\"\n[dependencies.users.cache]\nttl = \"1s\"\nttl_max = \"2s\"\n");
        assert_eq!((l, c), (4, 1));
        assert!(
            m.starts_with("unknown key `ttl_max`, expected one of `ttl`"),
            "{m}"
        );
        let (l, c, m) = err(
            "duration = \"1m\"\n[[workload]]\nrate = 1\nmix = { get_user = 1, get_users = 2 }\n",
        );
        assert_eq!((l, c), (4, 23));
        assert!(
            m.starts_with("unknown key `get_users`, expected one of `get_user`"),
            "{m}"
        );
    }

    #[test]
    fn wrong_type_and_missing_key() {
        let (l, c, m) = err("duration = \"1m\"\nseed = \"42\"\n");
        assert_eq!((l, c), (2, 8));
        assert_eq!(m, "invalid type: string \"42\", expected an integer >= 0");
        let (l, c, m) = err("seed = 1\n");
        assert_eq!((l, c), (1, 1));
        assert_eq!(m, "missing key `duration`");
    }

    #[test]
    fn durations_must_be_strings_with_units() {
        let (l, c, m) = err("duration = \"1m\"\n[modes]\nmin_dwell = \"10 parsecs\"\n");
        assert_eq!((l, c), (3, 13));
        assert!(
            m.starts_with("expected a duration such as \"250ms\" or \"3m\", got \"10 parsecs\" (unknown time unit \"parsecs\""),
            "{m}"
        );
        let (l, c, m) = err("duration = 5\n");
        assert_eq!((l, c), (1, 12));
        assert_eq!(m, "expected a duration such as \"250ms\" or \"3m\", got 5");
    }

    #[test]
    fn numbers_out_of_range() {
        let (l, c, m) = err("duration = \"1m\"\n[[workload]]\nrate = [{ from = \"0s\", to = \"1m\", rps = -5 }]\nmix = { get_user = 1 }\n");
        assert_eq!((l, c), (3, 41));
        assert_eq!(m, "expected a rate of requests per second >= 0, got -5");
        let (l, c, m) = err("duration = \"1m\"\n[dependencies.products]\nerror_rate = 1.5\n");
        assert_eq!((l, c), (3, 14));
        assert_eq!(m, "expected a probability between 0 and 1, got 1.5");
        let (l, c, m) = err("duration = \"1m\"\n[cpu]\ninitial = nan\n");
        assert_eq!((l, c), (3, 11));
        assert_eq!(m, "expected a percentage between 0 and 100, got NaN");
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let (l, c, m) = err("duration = \"1m\"\n[dependencies.orders]\ntimeout = \"1s\"\n");
        assert_eq!((l, c), (2, 15));
        assert_eq!(m, "unknown key `orders`, expected `users` or `products`");
        let (l, c, m) = err("duration = \"1m\"\n[[fault]]\ndependency = \"users\"\nkind = \"meltdown\"\nstart = \"1s\"\n");
        assert_eq!((l, c), (4, 8));
        assert_eq!(
            m,
            "unknown value `meltdown`, expected one of `outage`, `error_rate`, `latency`, \
             `hang`, `flapping`"
        );
    }

    #[test]
    fn max_concurrency_is_optional_and_positive() {
        let s = parse(
            "duration = \"1m\"\n[dependencies.users]\nmax_concurrency = 8\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(s.dependencies[0].max_concurrency, Some(8));
        assert_eq!(s.dependencies[1].max_concurrency, None);
        let (l, c, m) = err("duration = \"1m\"\n[dependencies.users]\nmax_concurrency = 0\n");
        assert_eq!((l, c), (3, 1));
        assert_eq!(
            m,
            "invalid dependencies.users.max_concurrency: must be at least 1 (leave it out for no limit)"
        );
    }

    #[test]
    fn engine_errors_point_at_the_key() {
        let (l, c, m) =
            err("duration = \"1m\"\n[modes]\ndegraded_enter = 50\ndegraded_leave = 55\n");
        assert_eq!((l, c), (4, 1));
        assert!(
            m.starts_with(
                "invalid modes.degraded_leave: must not exceed modes.degraded_enter (50)"
            ),
            "{m}"
        );
        let (l, c, m) =
            err("duration = \"1m\"\n[dependencies.users.breaker]\nfailure_threshold = 0\n");
        assert_eq!((l, c), (3, 1));
        assert_eq!(
            m,
            "invalid dependencies.users.breaker.failure_threshold: must be at least 1"
        );
        // Inline and dotted forms are located the same way.
        let (l, c, _) =
            err("duration = \"1m\"\ndependencies.products.breaker = { failure_threshold = 0 }\n");
        assert_eq!((l, c), (2, 35));
        // A defaulted key is located at its nearest written parent.
        let (l, c, m) = err("duration = \"1m\"\n[dependencies.users.cache]\nmax_stale = \"1s\"\nstale_while_revalidate = \"2s\"\n");
        assert_eq!((l, c), (4, 1));
        assert!(
            m.starts_with("invalid dependencies.users.cache.stale_while_revalidate: 2s exceeds"),
            "{m}"
        );
        let (l, c, m) = err(
            "duration = \"1m\"\n[dependencies.users.cache]\nstale_while_revalidate = \"10m\"\n",
        );
        assert_eq!((l, c), (3, 1));
        assert!(m.contains("exceeds max_stale"), "{m}");
    }

    #[test]
    fn variant_keys_must_match_the_variant() {
        let (l, c, m) = err("duration = \"1m\"\n[dependencies.users.breaker]\nwindow_calls = 10\n");
        assert_eq!((l, c), (3, 1));
        assert_eq!(
            m,
            "invalid dependencies.users.breaker.window_calls: does not apply to policy = \
             \"consecutive\", which takes failure_threshold"
        );
        let (l, c, m) = err("duration = \"1m\"\n[dependencies.users]\nlatency = { dist = \"uniform\", min = \"1ms\" }\n");
        assert_eq!((l, c), (3, 1));
        assert_eq!(
            m,
            "invalid dependencies.users.latency.max: is required by dist = \"uniform\""
        );
        let (l, c, m) = err("duration = \"1m\"\n[[fault]]\ndependency = \"users\"\nkind = \"outage\"\nrate = 0.5\nstart = \"1s\"\n");
        assert_eq!((l, c), (5, 1));
        assert_eq!(
            m,
            "invalid fault[0].rate: does not apply to kind = \"outage\", which takes none of them"
        );
    }

    #[test]
    fn times_past_the_end_are_refused() {
        let text = "duration = \"10m\"\n\n[[fault]]\ndependency = \"users\"\nkind = \"hang\"\nstart = \"8m\"\nend = \"12m\"\n";
        let (l, c, m) = err(text);
        assert_eq!((l, c), (7, 1));
        assert_eq!(
            m,
            "invalid fault[0].end: 12m is past the end of the run (duration = \"10m\")"
        );
        let (l, c, m) =
            err("duration = \"1m\"\n[[script]]\nat = \"2m\"\nbody = { type = \"get_user\" }\n");
        assert_eq!((l, c), (3, 1));
        assert!(
            m.starts_with("invalid script[0].at: 2m is past the end"),
            "{m}"
        );
        let (l, c, m) = err("duration = \"1m\"\n[cpu]\npoints = [{ at = \"1s\", cpu = 5 }, { from = \"2s\", to = \"61s\", cpu_from = 1, cpu_to = 2 }]\n");
        assert_eq!((l, c), (3, 50));
        assert!(
            m.starts_with("invalid cpu.points[1].to: 1m 1s is past the end"),
            "{m}"
        );
    }

    #[test]
    fn workload_checks() {
        let (l, c, m) = err("duration = \"1m\"\n[data.users]\ncount = 0\n[[workload]]\nrate = 1\nmix = { get_user = 1 }\n");
        assert_eq!((l, c), (4, 1));
        assert_eq!(
            m,
            "invalid workload[0].users.n: is required: data.users.count is 0, so there is no \
             default key range"
        );
        // The mix and the keys are checked independently: both are reported.
        let all = errs("duration = \"1m\"\n[[workload]]\nrate = 1\nmix = { get_user = 0 }\nusers = { dist = \"zipf\", n = 0 }\n");
        assert_eq!(all.len(), 2, "{all:?}");
        let (l, c, m) = &all[0];
        assert_eq!((*l, *c), (4, 1));
        assert!(
            m.starts_with("invalid workload[0].mix: needs at least one request kind"),
            "{m}"
        );
        assert_eq!(
            all[1],
            (
                5,
                26,
                "invalid workload[0].users.n: must be positive".to_owned()
            )
        );
        let (l, c, m) = err("duration = \"1m\"\n[[workload]]\nrate = 1\nmix = { get_user = 1 }\nusers = { dist = \"zipf\", n = 0 }\n");
        assert_eq!((l, c), (5, 26));
        assert_eq!(m, "invalid workload[0].users.n: must be positive");
        let (l, c, m) = err("duration = \"1m\"\n[[workload]]\nrate = [{ from = \"0s\", to = \"30s\", rps = 1 }, { from = \"20s\", to = \"40s\", rps_from = 1 }]\nmix = { search = 1 }\n");
        assert_eq!((l, c), (3, 47));
        assert_eq!(
            m,
            "invalid workload[0].rate[1].rps_to: is required: a ramp needs both rps_from and rps_to"
        );
        let (l, c, m) = err("duration = \"1m\"\n[[workload]]\nrate = [{ from = \"0s\", to = \"30s\", rps = 1 }, { from = \"20s\", to = \"40s\", rps = 1 }]\nmix = { search = 1 }\n");
        assert_eq!((l, c), (3, 49));
        assert!(
            m.starts_with("invalid workload[0].rate[1].from: phases must be sorted"),
            "{m}"
        );
    }

    #[test]
    fn script_bodies() {
        let (l, c, m) = err("duration = \"1m\"\n[[script]]\nat = \"1s\"\nbody = { msg_id = 1 }\n");
        assert_eq!((l, c), (4, 1));
        assert!(
            m.starts_with("invalid script[0].body.type: is required"),
            "{m}"
        );
        let (l, c, m) = err("duration = \"1m\"\n[[script]]\nat = \"1s\"\nbody = { type = \"x\", when = 1979-05-27T07:32:00Z }\n");
        assert_eq!((l, c), (4, 22));
        assert!(
            m.starts_with("invalid script[0].body.when: a TOML datetime has no JSON form"),
            "{m}"
        );
        let (_, _, m) = err("duration = \"1m\"\n[[script]]\nat = \"1s\"\nbody = \"get_user\"\n");
        assert!(
            m.starts_with("invalid script[0].body: must be a table"),
            "{m}"
        );
    }

    #[test]
    fn data_records_and_count() {
        let (l, c, m) = err("duration = \"1m\"\n[data.users]\nrecords = [{ id = 1, name = \"a\" }, { id = 1, name = \"b\" }]\n");
        assert_eq!((l, c), (3, 38));
        assert_eq!(
            m,
            "invalid data.users.records[1].id: record 1 is listed twice"
        );
        let (l, c, m) = err("duration = \"1m\"\n[data.products]\ncount = 20_000_000\n");
        assert_eq!((l, c), (3, 1));
        assert!(
            m.starts_with("invalid data.products.count: must be at most 10000000"),
            "{m}"
        );
    }

    #[test]
    fn every_error_is_reported_in_file_order() {
        let text = "duration = \"1m\"\n\
                    bogus = 1\n\
                    [dependencies.users]\n\
                    timeuot = \"1s\"\n\
                    error_rate = 1.5\n\
                    [dependencies.users.cache]\n\
                    ttl = \"forever\"\n\
                    [[workload]]\n\
                    rate = 1\n\
                    mix = { get_user = 1, get_users = 2 }\n";
        let all = errs(text);
        let at: Vec<(usize, usize)> = all.iter().map(|&(l, c, _)| (l, c)).collect();
        assert_eq!(at, [(2, 1), (4, 1), (5, 14), (7, 7), (10, 23)], "{all:?}");
        assert!(all[0]
            .2
            .starts_with("unknown key `bogus`, expected one of `name`"));
        assert!(all[1]
            .2
            .starts_with("unknown key `timeuot`, expected one of `latency`"));
        assert_eq!(all[2].2, "expected a probability between 0 and 1, got 1.5");
        assert!(all[3]
            .2
            .starts_with("expected a duration such as \"250ms\" or \"3m\", got \"forever\""));
        assert!(all[4]
            .2
            .starts_with("unknown key `get_users`, expected one of `get_user`"));
        // Shown one per line, each as file:line:column: message.
        let shown = parse(text, Path::new("s/x.toml")).unwrap_err().to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 5, "{shown}");
        assert!(
            lines[0].starts_with("s/x.toml:2:1: unknown key `bogus`"),
            "{shown}"
        );
        assert!(
            lines[4].starts_with("s/x.toml:10:23: unknown key `get_users`"),
            "{shown}"
        );
    }

    #[test]
    fn a_syntax_error_is_reported_alone() {
        let (l, c, m) = err("bogus = 1\nduration = 5\n[modes\nmin_dwell = \"1s\"\n");
        assert_eq!((l, c), (3, 7));
        assert!(m.contains("expected `]`"), "{m}");
    }

    #[test]
    fn a_removed_required_key_is_not_reported_missing() {
        // The bad `duration` is removed to go on; "missing key `duration`" would be a
        // second report of the same mistake.
        let all = errs("duration = 5\nbogus = 1\n");
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!((all[0].0, all[0].1), (1, 12));
        assert!(all[0].2.starts_with("expected a duration"), "{all:?}");
        assert!(all[1].2.starts_with("unknown key `bogus`"), "{all:?}");
        // Nested: the fault goes with its bad kind, and the search goes on after it.
        let all = errs("duration = \"1m\"\n[[fault]]\ndependency = \"users\"\nkind = \"meltdown\"\nstart = \"1s\"\n[[fault]]\ndependency = \"users\"\nkind = \"hang\"\nstart = 5\n[expect]\nmax_stale = \"1s\"\n");
        let at: Vec<(usize, usize)> = all.iter().map(|&(l, c, _)| (l, c)).collect();
        assert_eq!(at, [(4, 8), (9, 9), (11, 1)], "{all:?}");
        assert!(
            all.iter().all(|(_, _, m)| !m.starts_with("missing")),
            "{all:?}"
        );
        // A key that is really missing is reported, at its table.
        let all = errs("[[fault]]\ndependency = \"users\"\nstart = \"1s\"\n");
        assert_eq!(
            all,
            [
                (1, 1, "missing key `kind`".to_owned()),
                (1, 1, "missing key `duration`".to_owned())
            ]
        );
    }

    #[test]
    fn too_many_errors_are_capped() {
        let shown = ScenarioErrors::MAX_SHOWN;
        let text = |n: usize| {
            let mut text = "duration = \"1m\"\n".to_owned();
            for i in 0..n {
                text.push_str(&format!("bogus{i:03} = 1\n"));
            }
            text
        };
        let e = parse(&text(shown + 7), Path::new("t.toml")).unwrap_err();
        assert_eq!(e.errors.len(), shown);
        assert_eq!((e.not_shown, e.more_may_follow), (7, false));
        // The first ones in the file are the ones shown.
        assert_eq!(e.errors[0].position, Some((2, 1)));
        assert_eq!(e.errors[shown - 1].position, Some((shown + 1, 1)));
        assert_eq!(e.lines().last().unwrap(), "t.toml: 7 more errors not shown");
        // Past the search's bound, the count is a lower bound.
        let e = parse(&text(recover::MAX_FOUND + 50), Path::new("t.toml")).unwrap_err();
        assert_eq!(e.errors.len(), shown);
        assert_eq!(e.not_shown, recover::MAX_FOUND - shown);
        assert!(e.more_may_follow);
        assert_eq!(
            e.lines().last().unwrap(),
            &format!(
                "t.toml: {} more errors not shown, and more may follow",
                recover::MAX_FOUND - shown
            )
        );
    }

    #[test]
    fn independent_validation_errors_are_all_reported() {
        let text = "name = \" \"\n\
                    duration = \"1m\"\n\
                    [dependencies.users]\n\
                    max_concurrency = 0\n\
                    timeout = \"0s\"\n\
                    [dependencies.products.breaker]\n\
                    failure_threshold = 0\n\
                    [[fault]]\n\
                    dependency = \"users\"\n\
                    kind = \"hang\"\n\
                    start = \"2m\"\n\
                    [[script]]\n\
                    at = \"3m\"\n\
                    body = { type = \"get_user\" }\n\
                    [expect]\n\
                    queue_drained_by = \"5m\"\n";
        let all = errs(text);
        let got: Vec<(usize, &str)> = all
            .iter()
            .map(|(l, _, m)| (*l, m.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "invalid name"),
                (4, "invalid dependencies.users.max_concurrency"),
                (5, "invalid dependencies.users.timeout"),
                (7, "invalid dependencies.products.breaker.failure_threshold"),
                (11, "invalid fault[0].start"),
                (13, "invalid script[0].at"),
                (16, "invalid expect.queue_drained_by"),
            ],
            "{all:?}"
        );
    }

    #[test]
    fn checks_that_depend_on_a_refused_value_are_skipped() {
        // With duration refused, no time can be compared with it.
        let all = errs("duration = \"0s\"\n[[fault]]\ndependency = \"users\"\nkind = \"hang\"\nstart = \"2m\"\n[[workload]]\nrate = 1\nmix = { get_user = 1 }\n");
        assert_eq!(
            all,
            [(
                1,
                1,
                "invalid duration: must be longer than zero".to_owned()
            )]
        );
        // A bad phase is reported, not also the plan it is part of.
        let all = errs("duration = \"1m\"\n[[workload]]\nrate = [{ from = \"0s\", to = \"2m\", rps = 1 }, { from = \"10s\", to = \"20s\", rps = 1 }]\nmix = { search = 1 }\n");
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0]
                .2
                .starts_with("invalid workload[0].rate[0].to: 2m is past the end"),
            "{all:?}"
        );
        // Validation waits until the file deserializes: a stray key hides the rest.
        let all = errs("duration = \"0s\"\nbogus = 1\n");
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(all[0].2.starts_with("unknown key `bogus`"), "{all:?}");
    }

    #[test]
    fn syntax_errors_are_located() {
        let (l, c, m) = err("duration = \"1m\"\n[modes\nmin_dwell = \"1s\"\n");
        assert_eq!((l, c), (2, 7));
        assert!(m.contains("expected `]`"), "{m}");
    }
}

/// Bad input gets a clear error, never a panic: arbitrary text, and the flagship
/// scenario with random edits, always come back as `Ok` or a located `Err`.
#[cfg(test)]
mod robustness {
    use super::*;
    use proptest::prelude::*;

    const FLAGSHIP: &str = include_str!("../../scenarios/outage.toml");

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = parse(&text, Path::new("fuzz.toml"));
        }

        /// Stray keys written at the end of any of the flagship's tables are each
        /// reported once, at their line, and nothing else is.
        #[test]
        fn every_stray_key_is_reported(before in proptest::collection::btree_set(0usize..=15, 1..8)) {
            let headers: Vec<usize> = FLAGSHIP
                .lines()
                .enumerate()
                .filter_map(|(i, line)| line.starts_with('[').then_some(i))
                .collect();
            let mut text = String::new();
            let mut expected = Vec::new();
            for (i, line) in FLAGSHIP.lines().enumerate() {
                if let Some(k) = headers.iter().position(|&h| h == i) {
                    if before.contains(&k) {
                        expected.push((text.lines().count() + 1, 1));
                        text.push_str(&format!("stray_{k} = 1\n"));
                    }
                }
                text.push_str(line);
                text.push('\n');
            }
            // Past the last header: the end of the last table.
            if before.contains(&headers.len()) {
                expected.push((text.lines().count() + 1, 1));
                text.push_str("stray_end = 1\n");
            }
            prop_assume!(!expected.is_empty());
            let e = parse(&text, Path::new("stray.toml")).unwrap_err();
            let got: Vec<_> = e.errors.iter().map(|e| e.position.unwrap()).collect();
            prop_assert_eq!(got, expected);
            prop_assert!(e.errors.iter().all(|e| e.message.starts_with("unknown key `stray_")));
        }

        #[test]
        fn edited_scenarios_never_panic(
            edits in proptest::collection::vec((0usize..FLAGSHIP.len(), "\\PC{0,6}"), 1..4)
        ) {
            let mut text = FLAGSHIP.to_owned();
            for (at, insert) in edits {
                let mut at = at.min(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let end = (at + insert.len().min(3)).min(text.len());
                let mut end = end;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.replace_range(at..end, &insert);
            }
            match parse(&text, Path::new("edited.toml")) {
                Ok(_) => {}
                Err(e) => {
                    prop_assert!(!e.errors.is_empty());
                    for line in e.lines() {
                        prop_assert!(line.starts_with("edited.toml"), "{}", line);
                    }
                    for error in &e.errors {
                        prop_assert!(!error.message.is_empty());
                    }
                    let positions: Vec<_> = e.errors.iter().map(|e| e.position).collect();
                    prop_assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{:?}", positions);
                }
            }
        }
    }
}
