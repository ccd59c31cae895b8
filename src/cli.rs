//! The command line (clap): file I/O and exit codes live here and in the drivers only.
//!
//! Exit codes: 0 the run went through and every expectation held; 1 an expectation
//! failed (each failure printed with the command that replays it); 2 bad input
//! (unreadable or invalid scenario, bad flags).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::live::{self, LiveOptions};
use crate::node::{DataSet, NodeConfig, StoreLimits};
use crate::scenario::budget::{self, Limits};
use crate::scenario::{self, Override, Overrides, Scenario};
use crate::sim::{self, Report, RunOptions};
use crate::sweep::{self, SeedRange, Shard, SweepOptions, SweepReport};

mod compare;

use compare::VsArgs;

/// Deterministic simulator and test bench for graceful degradation.
///
/// Run a scenario: `brownout scenarios/outage.toml`. Replay a seed exactly:
/// `brownout scenarios/outage.toml --seed 4821`.
#[derive(Debug, Parser)]
#[command(name = "brownout", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the live node: Maelstrom JSON lines on stdin and stdout.
    Node(NodeArgs),
    /// Validate scenario files without running them.
    Check {
        /// The scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Accept scenarios beyond the work budget (see scenarios/README.md).
        #[arg(long)]
        allow_large: bool,
    },
    /// Run one scenario under many seeds in parallel: statistics across seeds, and every
    /// failing seed with the command that replays it.
    ///
    /// Exit 0: every seed met every expectation; 1: some seed failed one; 2: bad input.
    /// The report is the same bytes whatever --jobs is.
    Sweep(SweepArgs),
    /// Run two configurations on the same seed and workload and show every figure side
    /// by side with its delta: A.toml against B.toml, or A.toml against itself with
    /// --set overrides.
    ///
    /// Exit 0: both met every expectation; 1: either failed one; 2: bad input.
    Compare(compare::CompareArgs),
}

#[derive(Debug, Args)]
struct SweepArgs {
    /// The scenario file to sweep.
    #[arg(required_unless_present = "merge")]
    scenario: Option<PathBuf>,
    /// Seeds to run: `N` runs seeds 0..N (0 to N-1); `A..B` runs A up to but not
    /// including B.
    #[arg(long, value_name = "N|A..B", value_parser = SeedRange::parse, required_unless_present = "merge")]
    seeds: Option<SeedRange>,
    /// Worker threads [default: the available parallelism].
    #[arg(long, value_name = "J", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Run only shard K of N (K counted from 1): seeds A+K-1, A+K-1+N, ... of the range.
    /// Write each shard with --format json and combine them with --merge.
    #[arg(long, value_name = "K/N", value_parser = Shard::parse)]
    shard: Option<Shard>,
    /// Report format; json carries the per-seed results that --merge needs.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Run a scenario beyond the work budget (see scenarios/README.md).
    #[arg(long)]
    allow_large: bool,
    /// Change a value of the scenario for every seed (see `brownout --help`).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
    set: Vec<Override>,
    #[command(flatten)]
    vs: VsArgs,
    /// Merge the JSON reports of all shards of one sweep and print the whole range's
    /// report, exactly as one machine would have printed it.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 1..,
        conflicts_with_all = ["scenario", "seeds", "jobs", "shard", "set", "vs", "vs_set"]
    )]
    merge: Option<Vec<PathBuf>>,
}

/// Output format of a run's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A summary for people.
    Text,
    /// The full report as JSON.
    Json,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The scenario file to run.
    scenario: Option<PathBuf>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Write every event as JSON Lines to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Summary format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print wall time, events per second and the speed-up to stderr.
    #[arg(long)]
    stats: bool,
    /// Run twice and compare trace digests; on a mismatch, print the first differing event.
    #[arg(long)]
    self_check: bool,
    /// Run a scenario beyond the work budget: more requests, outstanding calls, held
    /// entries, fault windows or CPU samples than the limits in scenarios/README.md.
    #[arg(long)]
    allow_large: bool,
    /// Change a value of the scenario for this run, as if the file said it; repeat for
    /// more. KEY is the file's dotted key (`workload[0].rate` for an array's element;
    /// a service's keys, such as `dependencies.payments.breaker.open_duration`, reach
    /// the service file the scenario names); VALUE is a TOML value, or else a string
    /// (so `30s` needs no quotes). Checked as the file is; replay commands repeat it.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
    set: Vec<Override>,
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// Take the engine configuration and the data set from this scenario file (its
    /// declared service, if it has one, with its modes).
    #[arg(long, value_name = "FILE", conflicts_with = "service")]
    config: Option<PathBuf>,
    /// Serve the declared service of this service file (services/NAME.toml) instead
    /// of the seed task's: its endpoints are the request types, with `key` and
    /// `value` fields; control messages stay as they are.
    #[arg(long, value_name = "FILE")]
    service: Option<PathBuf>,
    /// Write every engine event to stderr as a JSON line.
    #[arg(long)]
    log_events: bool,
    /// Skip input lines longer than this (newline not counted), each reported on stderr;
    /// a size in bytes, or with a KiB, MiB or GiB suffix.
    #[arg(long, value_name = "BYTES", default_value_t = ByteSize(live::DEFAULT_MAX_LINE_BYTES as u64))]
    max_line_bytes: ByteSize,
    /// Records that writes may create in each service's store beyond its data set; a
    /// write that would create one more is answered with error 11.
    #[arg(long, value_name = "N", default_value_t = live::DEFAULT_MAX_NEW_RECORDS)]
    max_new_records: u64,
    /// Bytes of names each service's store may hold beyond its data set's; a write that
    /// would pass it is answered with error 11. A size as for --max-line-bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ByteSize(live::DEFAULT_MAX_NAME_BYTES))]
    max_name_bytes: ByteSize,
}

/// A size in bytes on the command line: `1048576`, `64KiB`, `1MiB`, `2GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteSize(u64);

const BYTE_UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (digits, unit) = BYTE_UNITS
            .iter()
            .find_map(|&(suffix, unit)| text.strip_suffix(suffix).map(|d| (d, unit)))
            .unwrap_or((text, 1));
        let bad =
            || format!("`{text}` is not a size: give bytes, or a number with KiB, MiB or GiB");
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        n.checked_mul(unit)
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match BYTE_UNITS
            .iter()
            .find(|&&(_, unit)| self.0 >= unit && self.0 % unit == 0)
        {
            Some((suffix, unit)) => write!(f, "{}{suffix}", self.0 / unit),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Bad input: printed one `error: ` line per problem, exit 2.
struct BadInput(Vec<String>);

impl BadInput {
    fn new(message: impl Into<String>) -> Self {
        BadInput(vec![message.into()])
    }
}

/// Every error of the scenario, one per line.
impl From<scenario::ScenarioErrors> for BadInput {
    fn from(e: scenario::ScenarioErrors) -> Self {
        BadInput(e.lines())
    }
}

/// Parses the command line, runs it and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Node(args)) => node(args),
        Some(Command::Check { files, allow_large }) => check(&files, allow_large),
        Some(Command::Sweep(args)) => sweep(args),
        Some(Command::Compare(args)) => compare::compare(args),
        None => run(cli.run),
    };
    match result {
        Ok(code) => code,
        Err(BadInput(lines)) => {
            for line in lines {
                eprintln!("error: {line}");
            }
            ExitCode::from(2)
        }
    }
}

fn load(path: &Path) -> Result<Scenario, BadInput> {
    Ok(scenario::load(path)?)
}

fn limits(allow_large: bool) -> Limits {
    if allow_large {
        Limits::NONE
    } else {
        Limits::DEFAULT
    }
}

/// Reads, validates and budgets the scenario at `path` with its `--set` overrides,
/// returning it with its text.
fn load_budgeted(
    path: &Path,
    allow_large: bool,
    overrides: &Overrides,
) -> Result<(Scenario, String), BadInput> {
    let text = scenario::read(path)?;
    let scenario = scenario::parse_with(&text, path, overrides)?;
    let refused = scenario::budget_errors(&scenario, &text, &limits(allow_large));
    if !refused.is_empty() {
        return Err(BadInput(refused.iter().map(ToString::to_string).collect()));
    }
    Ok((scenario, text))
}

fn run(args: RunArgs) -> Result<ExitCode, BadInput> {
    let Some(path) = args.scenario else {
        return Err(BadInput::new(
            "no scenario given; try `brownout scenarios/outage.toml` (see --help)",
        ));
    };
    let (scenario, text) = load_budgeted(&path, args.allow_large, &Overrides(args.set))?;
    if args.trace.is_some() && !args.allow_large {
        if let Some(e) = scenario::trace_budget_error(&scenario, &text) {
            return Err(BadInput::new(e.to_string()));
        }
    }
    let seed = args.seed.unwrap_or(scenario.seed);
    if args.self_check {
        return self_check(&scenario, seed);
    }
    let started = Instant::now();
    let report = match args.trace.as_deref() {
        None => simulate(&scenario, seed, None),
        Some(p) if p == Path::new("-") => {
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            simulate(&scenario, seed, Some(&mut out))
        }
        Some(p) => {
            let file = File::create(p).map_err(|e| {
                BadInput::new(format!("cannot create trace file {}: {e}", p.display()))
            })?;
            let mut out = BufWriter::with_capacity(1 << 16, file);
            simulate(&scenario, seed, Some(&mut out))
        }
    }?;
    let wall = started.elapsed();
    if args.stats {
        let secs = wall.as_secs_f64().max(1e-9);
        let memory = peak_memory_kib()
            .map(|kib| format!(", peak memory {:.1} MiB", kib as f64 / 1024.0))
            .unwrap_or_default();
        eprintln!(
            "wall {:.3}s, {} events, {:.0} events/s, speed-up {:.0}x (simulated / wall){memory}",
            secs,
            report.events,
            report.events as f64 / secs,
            report.duration as f64 / 1e6 / secs
        );
    }
    // With the trace on stdout, the summary goes to stderr so the trace stays parseable.
    let summary = match args.format {
        Format::Text => report.render_text(),
        Format::Json => serde_json::to_string_pretty(&report).expect("reports serialize") + "\n",
    };
    if args.trace.as_deref() == Some(Path::new("-")) {
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    Ok(verdict(&report))
}

/// The process's peak resident memory in KiB, where the OS tells it (Linux).
pub fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn simulate(
    scenario: &Scenario,
    seed: u64,
    trace: Option<&mut dyn Write>,
) -> Result<Report, BadInput> {
    sim::run(
        scenario,
        RunOptions {
            seed,
            trace,
            digest: false,
        },
    )
    .map_err(|e| BadInput::new(format!("{}: {e}", scenario.path.display())))
}

/// Exit 1 with every failed expectation and the replay command, or 0.
fn verdict(report: &Report) -> ExitCode {
    if report.passed() {
        return ExitCode::SUCCESS;
    }
    for e in report.expectations.iter().filter(|e| !e.pass) {
        eprintln!(
            "expectation failed: {}: expected {}, measured {}",
            e.name, e.expected, e.measured
        );
    }
    eprintln!("replay: {}", report.replay_command());
    ExitCode::from(1)
}

fn self_check(scenario: &Scenario, seed: u64) -> Result<ExitCode, BadInput> {
    match sim::check_determinism(scenario, seed) {
        Ok(digest) => {
            println!("deterministic: two runs of seed {seed} gave trace digest {digest}");
            Ok(ExitCode::SUCCESS)
        }
        Err(sim::Divergence::Io(e)) => Err(BadInput::new(e.to_string())),
        Err(divergence) => {
            eprintln!("{divergence}");
            Ok(ExitCode::from(1))
        }
    }
}

fn check(files: &[PathBuf], allow_large: bool) -> Result<ExitCode, BadInput> {
    let mut bad = 0;
    for path in files {
        match load_budgeted(path, allow_large, Overrides::none()) {
            Ok((s, _)) => {
                let e = budget::estimate(&s);
                println!(
                    "ok: {} ({}): about {} requests, up to {} outstanding",
                    path.display(),
                    s.name,
                    budget::count(e.requests),
                    budget::count(e.outstanding)
                );
            }
            Err(BadInput(lines)) => {
                for line in lines {
                    eprintln!("error: {line}");
                }
                bad += 1;
            }
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn sweep(args: SweepArgs) -> Result<ExitCode, BadInput> {
    if args.vs.is_set() {
        return compare::sweep_vs(args);
    }
    let report = match (&args.merge, &args.scenario, args.seeds) {
        (Some(files), _, _) => {
            let texts = files
                .iter()
                .map(|path| {
                    std::fs::read_to_string(path)
                        .map(|text| (path.display().to_string(), text))
                        .map_err(|e| {
                            BadInput::new(format!(
                                "cannot read shard report {}: {e}",
                                path.display()
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            sweep::merge(&texts).map_err(|e| BadInput::new(e.to_string()))?
        }
        (None, Some(path), Some(seeds)) => {
            // Read once: the same bytes are parsed and digested, so shards of edited
            // files refuse to merge.
            let overrides = Overrides(args.set.clone());
            let (scenario, text) = load_budgeted(path, args.allow_large, &overrides)?;
            let digest = scenario_digest(&text, &overrides);
            let jobs = jobs(args.jobs);
            let options = SweepOptions {
                seeds,
                shard: args.shard,
                jobs,
                progress: io::stderr().is_terminal(),
            };
            sweep::run(&scenario, &digest, &options).map_err(|e| BadInput::new(e.to_string()))?
        }
        // clap requires a scenario and --seeds unless --merge is given.
        _ => {
            return Err(BadInput::new(
                "sweep needs SCENARIO and --seeds, or --merge",
            ))
        }
    };
    print_sweep(&report, args.format);
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The digest of a scenario file's bytes and its overrides: shards of different files,
/// or of one file under different `--set`s, refuse to merge.
fn scenario_digest(text: &str, overrides: &Overrides) -> String {
    let mut digest = sim::trace::Digest::default();
    digest.update(text.as_bytes());
    for o in &overrides.0 {
        digest.update(b"\n--set ");
        digest.update(o.arg.as_bytes());
    }
    digest.hex()
}

/// `--jobs`, or the available parallelism.
fn jobs(jobs: Option<u16>) -> usize {
    match jobs {
        Some(j) => usize::from(j),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

fn print_sweep(report: &SweepReport, format: Format) {
    let text = match format {
        Format::Text => report.render_text(),
        Format::Json => report.render_json(),
    };
    print!("{text}");
}

fn node(args: NodeArgs) -> Result<ExitCode, BadInput> {
    let (config, data, service) = match (&args.config, &args.service) {
        (Some(path), _) => {
            let s = load(path)?;
            (s.node, s.data, s.service)
        }
        (None, Some(path)) => {
            let service = scenario::load_service(path)?;
            let config = NodeConfig {
                modes: crate::model::service::default_modes(&service.features),
                ..NodeConfig::default()
            };
            (config, DataSet::default(), Some(Arc::new(service)))
        }
        (None, None) => (NodeConfig::default(), DataSet::default(), None),
    };
    let serving = match service {
        Some(service) => live::Serving::Declared {
            service,
            modes: &config.modes,
        },
        None => live::Serving::Seed {
            config: &config,
            data: &data,
        },
    };
    let max_line_bytes = usize::try_from(args.max_line_bytes.0)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            BadInput::new(format!(
                "--max-line-bytes must be at least 1 and fit in memory, got {}",
                args.max_line_bytes
            ))
        })?;
    let stdin = io::stdin();
    let stdout = io::stdout();
    let out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let options = LiveOptions {
        log_events: args.log_events,
        max_line_bytes,
        store: StoreLimits {
            max_new_records: args.max_new_records,
            max_name_bytes: args.max_name_bytes.0,
        },
    };
    // Each read hands the node the lines it finished in one batch: 64 KiB reads keep
    // the batches few on a piped file, and a client that writes a line at a time still
    // gets each answered at once.
    live::run(
        serving,
        io::BufReader::with_capacity(1 << 16, stdin),
        out,
        io::stderr(),
        options,
    )
    .map_err(|e| BadInput::new(format!("node: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
