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

use crate::cluster::{self, ShardArg};
use crate::html::{self, HtmlRun};
use crate::live::{self, LiveOptions};
use crate::node::{DataSet, NodeConfig, StoreLimits};
use crate::scenario::budget::{self, Limits};
use crate::scenario::{self, Override, Overrides, Scenario};
use crate::sim::{self, Report, RunOptions};
use crate::sweep::{self, SeedRange, SweepOptions, SweepReport};

mod shrink;

mod test;

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
        /// Check each file as changed by this override (see `brownout --help`), as a
        /// run or sweep with the same `--set` would read it; repeat for more.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
        set: Vec<Override>,
    },
    /// Run one scenario under many seeds in parallel: statistics across seeds, and every
    /// failing seed with the command that replays it.
    ///
    /// Exit 0: every seed met every expectation; 1: some seed failed one; 2: bad input.
    /// A scenario with [expect.sweep] is judged by those checks instead (pass rate,
    /// percentile bounds). The report is the same bytes whatever --jobs is.
    Sweep(SweepArgs),
    /// Shrink a failing seed to a small standalone scenario file that still fails the
    /// same expectation and replays with a plain run.
    ///
    /// Exit 0: the file is written (its opening comment says what was removed, and
    /// whether the run budget ran out first); 2: bad input, or a seed that does not fail.
    Shrink(shrink::ShrinkArgs),
    /// Run scenarios as regression tests: compare each report with its snapshot
    /// (insta's .snap format), check its expectations, print `N passed, N failed`.
    ///
    /// Exit 0: every snapshot matched and every expectation held; 1: some did not;
    /// 2: bad input. A changed report is written as NAME.snap.new beside its snapshot
    /// (never when the CI variable is set); accept it with --accept or --review.
    Test(test::TestArgs),
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
    /// including B [default: the scenario's `[expect.sweep] seeds`, from 0].
    #[arg(long, value_name = "N|A..B", value_parser = SeedRange::parse)]
    seeds: Option<SeedRange>,
    /// Worker threads [default: the available parallelism].
    #[arg(long, value_name = "J", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Run only shard K of N (K counted from 1): seeds A+K-1, A+K-1+N, ... of the range.
    /// `auto/N` takes the index, counted from 0, from JOB_COMPLETION_INDEX,
    /// SLURM_ARRAY_TASK_ID or BROWNOUT_SHARD. Write each shard with --jsonl or
    /// --format json and combine them with --merge.
    #[arg(long, value_name = "K/N|auto/N", value_parser = ShardArg::parse)]
    shard: Option<ShardArg>,
    /// Also write one JSON line per seed to FILE (`-`: to stdout, instead of the
    /// report): the seed, the scenario's digest, the brownout version, pass or fail,
    /// the figures and the replay command. --merge reads them.
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
    /// Write into DIR one scenario file per expectation that failed: its lowest failing
    /// seed, shrunk (see `brownout shrink`), to attach to a CI run. (Not with --set:
    /// the files are made from the scenario file as it is.)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["set", "vs", "vs_set"])]
    failures_dir: Option<PathBuf>,
    /// Runs each failure of --failures-dir may take to shrink; 0 writes plain replays.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200,
        requires = "failures_dir"
    )]
    shrink_runs: u64,
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
    /// Merge the outputs of all shards of one sweep (JSON reports, JSON Lines, or a
    /// directory of them) and print the whole range's report, exactly as one machine
    /// would have printed it.
    #[arg(
        long,
        value_name = "FILE|DIR",
        num_args = 1..,
        conflicts_with_all = ["scenario", "seeds", "jobs", "shard", "failures_dir", "set", "vs", "vs_set"]
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
    /// Write the run as a self-contained HTML report to FILE: outcomes, latency, each
    /// dependency's breaker, calls, staleness and queue, mode and CPU on one time axis,
    /// fault windows shaded, and the timeline of transitions.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write the run's time series to FILE as CSV: one row per bucket of simulated
    /// time (the same series as the JSON report's `series`).
    #[arg(long, value_name = "FILE")]
    series_csv: Option<PathBuf>,
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
    /// With --config: change a value of that scenario file first (see `brownout
    /// --help`), as a run with the same `--set` would; repeat for more.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse, requires = "config")]
    set: Vec<Override>,
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
    // Replay lines must work as printed: find out how this binary can be run again.
    crate::replay::init(crate::replay::detect());
    let result = match cli.command {
        Some(Command::Node(args)) => node(args),
        Some(Command::Check {
            files,
            allow_large,
            set,
        }) => check(&files, allow_large, &Overrides(set)),
        Some(Command::Sweep(args)) => sweep(args),
        Some(Command::Shrink(args)) => shrink::run(args),
        Some(Command::Test(args)) => test::test(args),
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
    if let Some(path) = &args.html {
        let label = path_label(&report.path);
        let page = html::render(&[HtmlRun {
            label,
            report: &report,
        }]);
        write_file(path, "HTML report", page.as_bytes())?;
    }
    if let Some(path) = &args.series_csv {
        write_file(path, "series CSV", report.series.to_csv().as_bytes())?;
    }
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

/// A run's label in an HTML report: its scenario file's name.
fn path_label(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// Writes `bytes` to `path`, or says which file could not be written.
fn write_file(path: &Path, what: &str, bytes: &[u8]) -> Result<(), BadInput> {
    std::fs::write(path, bytes)
        .map_err(|e| BadInput::new(format!("cannot write {what} {}: {e}", path.display())))
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

fn check(files: &[PathBuf], allow_large: bool, set: &Overrides) -> Result<ExitCode, BadInput> {
    let mut bad = 0;
    for path in files {
        match load_budgeted(path, allow_large, set) {
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
    // The scenario's [expect.sweep] and its verdicts, when this process ran the whole
    // range or merged every shard of it (a shard judges nothing: it holds only part of
    // the seeds; it carries the section for the merge).
    let mut judged = None;
    let report = match (&args.merge, &args.scenario, args.seeds) {
        (Some(paths), _, _) => {
            let merged = cluster::merge_inputs(paths)
                .and_then(|files| cluster::read_inputs(&files))
                .and_then(|texts| cluster::merge(&texts));
            let report = merged.map_err(|e| BadInput::new(e.0))?;
            if let Some(expect) = &report.expect_sweep {
                let verdicts = sweep::expect::judge(expect, &report);
                judged = Some((expect.clone(), verdicts));
            }
            report
        }
        (None, Some(path), seeds) => {
            // Read once: the same bytes are parsed and digested, so shards of edited
            // files refuse to merge.
            let overrides = Overrides(args.set.clone());
            let (scenario, text) = load_budgeted(path, args.allow_large, &overrides)?;
            let seeds = match (seeds, &scenario.expect.sweep) {
                (Some(seeds), _) => seeds,
                (None, Some(expect)) => SeedRange {
                    start: 0,
                    end: expect.seeds,
                },
                (None, None) => {
                    return Err(BadInput::new(format!(
                        "sweep needs --seeds: {} has no [expect.sweep] saying how many",
                        path.display()
                    )))
                }
            };
            let digest = scenario_digest(path, &text, &overrides);
            let jobs = jobs(args.jobs);
            let shard = args
                .shard
                .map(|s| s.resolve(|name| std::env::var(name).ok()))
                .transpose()
                .map_err(BadInput::new)?;
            let options = SweepOptions {
                seeds,
                shard,
                jobs,
                progress: io::stderr().is_terminal(),
            };
            let report = sweep::run(&scenario, &digest, &options)
                .map_err(|e| BadInput::new(e.to_string()))?;
            if let Some(dir) = &args.failures_dir {
                shrink::write_failures(dir, path, &text, &report, args.shrink_runs)?;
            }
            if let (None, Some(expect)) = (options.shard, report.expect_sweep.clone()) {
                let verdicts = sweep::expect::judge(&expect, &report);
                judged = Some((expect, verdicts));
            }
            report
        }
        // clap requires a scenario and --seeds unless --merge is given.
        _ => {
            return Err(BadInput::new(
                "sweep needs SCENARIO and --seeds, or --merge",
            ))
        }
    };
    let lines_on_stdout = matches!(args.jsonl.as_deref(), Some(p) if p == Path::new("-"));
    match args.jsonl.as_deref() {
        Some(_) if lines_on_stdout => print!("{}", cluster::to_json_lines(&report)),
        Some(p) => {
            cluster::write_atomically(p, &cluster::to_json_lines(&report))
                .map_err(|e| BadInput::new(format!("cannot write {}: {e}", p.display())))?;
            print_sweep(&report, args.format);
        }
        None => print_sweep(&report, args.format),
    }
    // With [expect.sweep], the scenario says what share of seeds may fail: its
    // verdicts decide. Without, every seed must pass.
    let passed = match &judged {
        Some((expect, verdicts)) => {
            let section = sweep::expect::render_text(expect, verdicts);
            if args.format == Format::Text && !lines_on_stdout {
                print!("{section}");
            } else {
                // What is on stdout stays machine-readable (the JSON report that
                // --merge reads, or the JSON Lines).
                eprint!("{section}");
            }
            verdicts.iter().all(|v| v.pass)
        }
        None => report.passed(),
    };
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The digest of a scenario file's bytes and its overrides: shards of different files,
/// or of one file under different `--set`s, refuse to merge.
fn scenario_digest(path: &Path, text: &str, overrides: &Overrides) -> String {
    let args: Vec<&str> = overrides.0.iter().map(|o| o.arg.as_str()).collect();
    cluster::content_digest(path, text, &args)
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
            let text = scenario::read(path)?;
            let s = scenario::parse_with(&text, path, &Overrides(args.set.clone()))?;
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
