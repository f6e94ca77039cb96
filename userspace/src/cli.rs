//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The value parsers live in input.rs (load and serve use them too).
pub use crate::input::{parse_seconds, whole_number, MAX_DURATION_S};
use crate::placement::{cpulist, PairClass, Policy};
use crate::topology::TopologySource;

#[derive(Debug, Parser)]
#[command(
    name = "hwprof",
    version,
    about = "Shows how software meets the hardware under it",
    long_about = "Runs workloads pinned by topology, measures them with PMU counters where the \
                  machine has them and portable timers where it does not, repeats and interleaves \
                  variants, and reports medians with 95% confidence intervals and a verdict."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Discover the machine: topology, CPU, virtualization, measurement capabilities.
    Info(InfoArgs),
    /// Run an experiment (see `hwprof list`).
    Run(RunArgs),
    /// List the registered experiments.
    List,
    /// Run every registered experiment and write one combined report (JSON, Markdown, HTML index).
    Suite(SuiteArgs),
    /// Attach eBPF probes and counters to a running process.
    Attach(AttachArgs),
    /// False sharing from address samples (PEBS/IBS), or from a recorded stream.
    C2c(C2cArgs),
    /// PMU event maps and the metrics they provide.
    #[command(subcommand)]
    Events(EventsCommand),
    /// An Engram-compatible HTTP server over the embedded memstore (the default system under test).
    Serve(ServeArgs),
    /// Open-loop load (coordinated-omission free) against a server, the embedded memstore or a no-op target.
    Load(LoadArgs),
    /// CI performance gate: interleaved repetitions of a baseline and a candidate, judged with
    /// CIs and rank tests (exit 0 pass, 1 regression, 2 bad input, 3 inconclusive).
    Gate(GateArgs),
    /// Soak: the load for hours, the target sampled every interval, checkpointed (--resume),
    /// and judged for leaks and drift per resource (exit 0 clean, 1 over a limit, 2 bad input, 130 interrupted).
    Soak(SoakArgs),
    /// Dataset scaling: per store size (100k, 1m, 10m …) the server's RSS and bytes per node,
    /// preload time, p50/p99 at a fixed rate, the highest sustainable rate and the inflection;
    /// sizes that would not fit in memory are refused with the largest that would.
    Scale(ScaleArgs),
    /// Results history (SQLite, or PostgreSQL for a fleet): add reports, show a metric over
    /// commits, find change points, compare with a competitor's published figures.
    #[command(subcommand)]
    History(HistoryCommand),
}

#[derive(Debug, Args)]
pub struct HistoryDb {
    /// The history: a file (default results/history.db), sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, value_name = "DB", global = true)]
    pub history: Option<String>,
}

#[derive(Debug, Args)]
pub struct SeriesFilter {
    /// Metric (p50, p99, throughput, error_rate, store.p99, an experiment's group/variant/metric).
    #[arg(long)]
    pub metric: Option<String>,
    /// Scenario or experiment name.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Machine (a profile's slug, or the name given at `add`).
    #[arg(long)]
    pub machine: Option<String>,
    #[arg(long)]
    pub branch: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Record reports: hwprof load, experiment reports (run --out, or each folder of a suite), Engram results.
    Add {
        /// report.json files or --out directories.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Commit (default: $GITHUB_SHA, $CI_COMMIT_SHA, or git rev-parse HEAD here).
        #[arg(long)]
        commit: Option<String>,
        /// Branch (default: CI's variables, or git here).
        #[arg(long)]
        branch: Option<String>,
        /// Machine: a profile from `hwprof info --save` (FILE.json) or a name (default: the report's).
        #[arg(long)]
        machine: Option<String>,
        /// Scenario name (default: the report's scenario or experiment).
        #[arg(long)]
        scenario: Option<String>,
        #[command(flatten)]
        db: HistoryDb,
    },
    /// A metric over time: a table and a plot per machine.
    Show {
        #[command(flatten)]
        filter: SeriesFilter,
        /// Directory for history.svg/png and history.json.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: HistoryDb,
    },
    /// Change points in every series (E-Divisive means with a permutation test).
    Changes {
        #[command(flatten)]
        filter: SeriesFilter,
        /// Keep a change when its permutation p-value is below this.
        #[arg(long, default_value_t = 0.01, allow_negative_numbers = true, value_parser = parse_probability)]
        significance: f64,
        /// Fewest runs on either side of a change.
        #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = parse_reps)]
        min_size: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: HistoryDb,
    },
    /// Measured P99 and throughput vs a competitor's published figures (hwprofiles/references).
    Compare {
        /// neo4j or qdrant.
        #[arg(long)]
        competitor: String,
        #[arg(long)]
        scenario: String,
        /// Machine (default: the one with the most recent rows for the scenario).
        #[arg(long)]
        machine: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: HistoryDb,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["ab", "baseline", "server_a"])))]
pub struct GateArgs {
    /// Two shell commands that each write a report (hwprof or Engram JSON) into {out}
    /// (also $HWPROF_GATE_OUT) or on stdout: baseline first, candidate second.
    #[arg(long, num_args = 2, value_names = ["CMD_A", "CMD_B"])]
    pub ab: Option<Vec<String>>,
    /// Reports already run for the baseline: a directory of report.json folders or *.json.
    #[arg(long, value_name = "DIR", requires = "current")]
    pub baseline: Option<PathBuf>,
    /// Reports already run for the candidate.
    #[arg(long, value_name = "DIR", requires = "baseline")]
    pub current: Option<PathBuf>,
    /// Baseline server command ({port} or {addr} replaced, else --port N appended); started,
    /// loaded with --scenario and stopped for every repetition.
    #[arg(long, value_name = "CMD", requires_all = ["server_b", "scenario"])]
    pub server_a: Option<String>,
    /// Candidate server command.
    #[arg(long, value_name = "CMD", requires = "server_a")]
    pub server_b: Option<String>,
    /// Scenario for --server-a/--server-b (as for hwprof load).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Extra arguments for each `hwprof load` (with --server-a/b), e.g. "--cpus 0 --connections 4".
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub load_args: Option<String>,
    /// Discarded load against each fresh server before the measured run.
    #[arg(long, default_value = "1s", value_parser = parse_seconds_or_zero)]
    pub warmup: f64,
    /// Discarded runs of each command before the interleaved ones (--ab).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = parse_warmup_runs)]
    pub warmup_runs: usize,
    /// Metric to judge (repeatable): p50, p90, p95, p99, p999, max, throughput, error_rate,
    /// or a dotted path into the report, with :higher or :lower when the name does not say.
    #[arg(long, value_name = "NAME")]
    pub metric: Vec<String>,
    /// Most repetitions a side (whole ABBA blocks).
    #[arg(long, default_value_t = 20, allow_negative_numbers = true, value_parser = parse_reps)]
    pub repetitions: usize,
    /// Repetitions a side before the first look.
    #[arg(long, default_value_t = 6, allow_negative_numbers = true, value_parser = parse_reps)]
    pub min_repetitions: usize,
    /// Wall-clock budget: no new ABBA block starts that would end past it.
    #[arg(long, default_value = "5m", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub budget: f64,
    /// Smallest change that counts, in percent (default 5; 10 with --competitive).
    #[arg(long, value_name = "PCT", allow_negative_numbers = true, value_parser = parse_pct)]
    pub threshold: Option<f64>,
    /// A competitive comparison: the default threshold becomes 10%.
    #[arg(long)]
    pub competitive: bool,
    /// Family-wise false-positive rate over every metric and look.
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true, value_parser = parse_probability)]
    pub alpha: f64,
    /// Names of the two sides in the outputs.
    #[arg(long, default_value = "A")]
    pub name_a: String,
    #[arg(long, default_value = "B")]
    pub name_b: String,
    /// Directory for gate.json, gate.md, gate.junit.xml, gate.bmf.json and runs/.
    #[arg(long, value_name = "DIR", default_value = "results/gate")]
    pub out: PathBuf,
    /// Print gate.json on stdout instead of the Markdown summary.
    #[arg(long)]
    pub json: bool,
    /// No per-run progress on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Serve the verdicts as gauges at http://ADDR/metrics (updated at each look; held until scraped once at the end, at most 60 s).
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:7432", conflicts_with = "port")]
    pub addr: std::net::SocketAddr,
    /// Port on 127.0.0.1 (0: any free port; the address is printed).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_port)]
    pub port: Option<u16>,
    /// Memories generated per memory space before serving.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = parse_nodes)]
    pub preload: u64,
    /// Embedding dimension.
    #[arg(long, default_value_t = 768, allow_negative_numbers = true, value_parser = parse_dim)]
    pub dim: usize,
    /// Memory spaces (tenants).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = parse_spaces)]
    pub spaces: u32,
    /// Embedding clusters (the load generator draws near the same ones for the same seed).
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = parse_spaces)]
    pub clusters: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Server worker threads (default: one per CPU).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_workers)]
    pub threads: Option<usize>,
    /// Fault: the whole server stops serving for FOR every EVERY (e.g. 2s:200ms).
    #[arg(long, value_name = "EVERY:FOR", value_parser = crate::serve::faults::parse_stall)]
    pub stall: Option<(std::time::Duration, std::time::Duration)>,
    /// Fault: add PCT% to every service time.
    #[arg(long, value_name = "PCT", allow_negative_numbers = true, value_parser = parse_pct)]
    pub slowdown: Option<f64>,
    /// Fault: leak N bytes (touched) per request.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_leak)]
    pub leak_bytes_per_op: Option<usize>,
    /// Fault: fail this share of requests with 500 (0..1).
    #[arg(long, value_name = "P", allow_negative_numbers = true, value_parser = parse_probability)]
    pub error_rate: Option<f64>,
    /// Fault: serialise every request on one mutex (hwprof::serve::GLOBAL_LOCK), its --slowdown included.
    #[arg(long)]
    pub global_lock: bool,
    /// The faults above start this long after the server (e.g. 2m): a regression switched on mid-run.
    #[arg(long, value_name = "D", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub faults_after: Option<f64>,
    /// Also serve the metrics at http://ADDR/metrics (always at /metrics/prometheus on the server's port).
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LoadArgs {
    #[command(subcommand)]
    pub merge: Option<LoadCommand>,
    /// embedded (the memstore in-process), noop (the generator's ceiling) or http://HOST:PORT.
    #[arg(long, default_value = "embedded")]
    pub target: String,
    /// Scenario file (TOML; Engram's format and hwprof's keys: docs/load.md).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Run length (overrides the scenario): seconds, or 30s, 5m, 2h.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seconds)]
    pub duration: Option<f64>,
    /// Requests/s for constant or poisson arrivals (overrides the scenario).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// constant or poisson (with --rate; other patterns live in scenario files).
    #[arg(long)]
    pub pattern: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// HTTP connections (keep-alive), default 16.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_workers)]
    pub connections: Option<usize>,
    /// Requests in flight (queued or sent) beyond which new ones are dropped and counted; default 10000.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_workers)]
    pub max_in_flight: Option<usize>,
    /// Generator threads (pinned): in-process workers, or the HTTP client's runtime.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_workers)]
    pub threads: Option<usize>,
    /// Generator CPUs, e.g. 0 or 0-3.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,
    /// Per-request timeout (seconds or 500ms), default 10 s.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seconds)]
    pub timeout: Option<f64>,
    /// Busy-wait this long before each request instead of sleeping (e.g. 2ms on a VM,
    /// whose wakeups from idle can take milliseconds); the generator's CPU stays busy.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seconds)]
    pub spin: Option<f64>,
    /// Window of the per-interval figures and the .hlog, default 1 s.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seconds)]
    pub interval: Option<f64>,
    /// Send the i-th of N disjoint parts of the schedule (N generators, one schedule).
    #[arg(long, value_name = "i/N", value_parser = crate::load::parse_shard)]
    pub shard: Option<(u64, u64)>,
    /// Memories to preload (overrides [data] num_nodes; an HTTP target already holding them gets none).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_nodes)]
    pub preload: Option<u64>,
    /// The target's process, for its resource use (found by itself for a loopback target).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_pid)]
    pub target_pid: Option<u32>,
    /// eBPF probes on the target for the run (names as `hwprof list` shows them, or all).
    #[arg(long, value_parser = parse_probe_list)]
    pub probes: Option<String>,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write report.json, summary.md, load.hlog, engram-results.json and plots into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Serve live metrics (OpenMetrics, for Prometheus) at http://ADDR/metrics: HOST:PORT, :PORT or PORT.
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// A previous run's report.json (or --out directory, or Engram results JSON), repeatable:
    /// the quantiles are exported as hwprof_baseline_latency_seconds (median and highest over the runs).
    #[arg(long, value_name = "REPORT")]
    pub baseline: Vec<PathBuf>,
    /// The baseline from the history: this scenario's latest 5 runs on this machine
    /// (hwprof history add), from DB (default results/history.db).
    #[arg(long, value_name = "DB", num_args = 0..=1, default_missing_value = crate::history::DEFAULT_DB)]
    pub baseline_history: Option<String>,
    /// Ramp: step the constant rate geometrically until the SLO breaks; the last sustainable
    /// rate, the capacity curve and the bottleneck (ramp.json, ramp.md under --out, default results/ramp).
    #[arg(long)]
    pub ramp: bool,
    /// First rate of the ramp (req/s), default 100.
    #[arg(long, requires = "ramp", allow_negative_numbers = true, value_parser = parse_rate)]
    pub ramp_from: Option<f64>,
    /// Rate multiplier per step, default 1.5.
    #[arg(long, requires = "ramp", allow_negative_numbers = true, value_parser = |s: &str| positive_number(s, "a factor"))]
    pub ramp_factor: Option<f64>,
    /// Length of each step, default 10s.
    #[arg(long, requires = "ramp", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub ramp_step: Option<f64>,
    /// Highest rate tried, default 1e6.
    #[arg(long, requires = "ramp", allow_negative_numbers = true, value_parser = parse_rate)]
    pub ramp_max: Option<f64>,
    /// SLO: p99 bound (ms, or 50ms, 1s), default 50 ms.
    #[arg(long, requires = "ramp", allow_negative_numbers = true, value_parser = |s: &str| parse_seconds(s).map(|v| v * 1000.0))]
    pub slo_p99: Option<f64>,
    /// SLO: highest error rate, default 0.01.
    #[arg(long, requires = "ramp", allow_negative_numbers = true, value_parser = parse_probability)]
    pub slo_errors: Option<f64>,
}

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// embedded (an hwprof serve started for the soak, its RSS the target's) or http://HOST:PORT.
    #[arg(long, default_value = "embedded")]
    pub target: String,
    /// Arguments for the embedded server, e.g. "--leak-bytes-per-op 7 --threads 1".
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub serve_args: Option<String>,
    /// The target's process (found by itself for a loopback target).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_pid)]
    pub target_pid: Option<u32>,
    /// Scenario file (default: read-only recalls and searches at 200 req/s; workloads/scenarios/soak.toml).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Constant requests/s instead of the scenario's arrivals.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Load time in all: seconds, or 15m, 24h.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seconds)]
    pub duration: Option<f64>,
    /// Sampling interval of the target and the latency windows, default 10s.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seconds)]
    pub interval: Option<f64>,
    /// Checkpoint every this much load (what a crash can lose), default 5m.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seconds)]
    pub checkpoint: Option<f64>,
    /// Samples before this are not tested, default 10% of the duration (at most 30m).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seconds_or_zero)]
    pub warmup: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// RSS growth called a leak, MB/h (default 10, Engram's task 002).
    #[arg(long, value_name = "MB_PER_H", allow_negative_numbers = true, value_parser = |s: &str| positive_number(s, "MB/h"))]
    pub leak_limit: Option<f64>,
    /// p99 growth called a drift, %/h (default 2).
    #[arg(long, value_name = "PCT_PER_H", allow_negative_numbers = true, value_parser = parse_pct)]
    pub drift_limit: Option<f64>,
    /// The soak's directory (default results/soak-TIME).
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the soak in DIR from its last checkpoint, with its own settings.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Clean soaks of the same scenario (directories or soak.json, repeatable): each
    /// resource's slope is also given less theirs, with a CI (the server's own drift taken out).
    #[arg(long, value_name = "SOAK")]
    pub baseline: Vec<PathBuf>,
    /// Judge the soak in DIR again (other --leak-limit, --drift-limit, --warmup, --baseline), running nothing.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["resume", "out"])]
    pub analyse: Option<PathBuf>,
    /// Print soak.json on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Store sizes in nodes, comma-separated: 100k,1m,10m.
    #[arg(long, value_delimiter = ',', value_parser = crate::scale::parse_size, default_value = "100k,1m,10m")]
    pub sizes: Vec<u64>,
    /// Embedding dimension (Engram's is 768; a smaller one shows the curve's shape where 768 does not fit).
    #[arg(long, default_value_t = 768, allow_negative_numbers = true, value_parser = parse_dim)]
    pub dim: usize,
    /// Offered rate of the fixed-rate load (req/s, read-only: recalls and searches).
    #[arg(long, default_value_t = 200.0, allow_negative_numbers = true, value_parser = parse_rate)]
    pub rate: f64,
    /// Length of the fixed-rate load per size.
    #[arg(long, default_value = "20s", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub duration: f64,
    /// Skip the ramp to each size's highest sustainable rate.
    #[arg(long)]
    pub no_max_throughput: bool,
    /// Busy-wait this long before each request (e.g. 2ms on a VM, as for `hwprof load`).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seconds)]
    pub spin: Option<f64>,
    /// The ramp's p99 bound (ms, or 50ms).
    #[arg(long, default_value = "50ms", allow_negative_numbers = true, value_parser = |s: &str| parse_seconds(s).map(|v| v * 1000.0))]
    pub slo_p99: f64,
    /// Output directory (default results/scale).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print scale.json instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LoadCommand {
    /// Combine shards' reports exactly (their HdrHistograms add).
    Merge(LoadMergeArgs),
}

#[derive(Debug, Args)]
pub struct LoadMergeArgs {
    /// Reports (report.json files or --out directories) of one schedule's shards.
    #[arg(required = true, num_args = 2..)]
    pub reports: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Short runs (under 5 minutes here).
    #[arg(long)]
    pub quick: bool,
    /// Directory for index.html, suite.json, suite.md and one folder per experiment.
    #[arg(long, value_name = "DIR", default_value = "results/suite")]
    pub out: PathBuf,
    /// Print the combined JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Serve each experiment's verdicts as gauges at http://ADDR/metrics (held until scraped once at the end, at most 60 s).
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["pid", "cgroup", "comm"])))]
pub struct AttachArgs {
    /// Processes to attach to: PID, or PID,PID,… (repeatable).
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',', value_parser = parse_pid)]
    pub pid: Vec<u32>,
    /// Also trace the descendants of every traced process: those alive now and those born while attached (PostgreSQL's backends, prefork workers).
    #[arg(long)]
    pub children: bool,
    /// Trace the processes of a cgroup v2 (and its child cgroups): a directory, absolute or under /sys/fs/cgroup (e.g. system.slice/postgresql.service).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,
    /// Trace every process with this exact name (comm, as `pgrep -x`), including those started while attached.
    #[arg(long, value_name = "NAME")]
    pub comm: Option<String>,
    /// Probes, comma-separated (names as `hwprof list` shows them) or all.
    #[arg(long, default_value = "sched,futex,memory", value_parser = parse_probe_list)]
    pub probes: String,
    /// Entry+return probe on a function: BINARY:SYMBOL (repeatable, up to 4).
    #[arg(long)]
    pub uprobe: Vec<String>,
    /// How long to stay attached: seconds, or 30s, 5m, 2h (Ctrl-C or the target exiting end it earlier).
    #[arg(long, default_value = "10", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub duration: f64,
    /// Sampling frequency of the profile probe, Hz (1 to 10000).
    #[arg(long, default_value_t = 99, allow_negative_numbers = true, value_parser = parse_frequency)]
    pub frequency: u64,
    /// Time hwprof's own eBPF programs (kernel BPF statistics, Linux 5.8): ns per traced event and CPU share, in the report. Adds two clock reads to every program run.
    #[arg(long)]
    pub probe_cost: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write attach.json, attach.md (and profile.folded, profile.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Serve the probes' figures live (OpenMetrics) at http://ADDR/metrics: HOST:PORT, :PORT or PORT.
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct C2cArgs {
    /// Sample a running process.
    #[arg(long, conflicts_with = "replay", allow_negative_numbers = true, value_parser = parse_pid)]
    pub pid: Option<u32>,
    /// Analyse a recorded JSON-lines stream of memory samples instead of sampling.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// How long to sample: seconds, or 30s, 5m (with --pid; with a command, until it exits or this long).
    #[arg(long, default_value = "10", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub duration: f64,
    /// Lines to show.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = parse_top)]
    pub top: usize,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write c2c.json and c2c.md into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Command to run and sample: hwprof c2c -- CMD ARGS…
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Events and metrics of a microarchitecture (default: this machine's CPU).
    List(EventsListArgs),
}

#[derive(Debug, Args)]
pub struct EventsListArgs {
    /// Map name or microarchitecture: zen3, icelake-sp, "Sapphire Rapids", neoverse-n1, …
    #[arg(long)]
    pub microarch: Option<String>,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// host, xml:FILE (an lstopo export) or synthetic:"DESC" (hwloc synthetic syntax).
    #[arg(long, default_value = "host", value_parser = parse_topology)]
    pub topology: TopologySource,
    /// Save the profile (JSON + hwloc XML) under DIR.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "hwprofiles/machines")]
    pub save: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Experiment name, e.g. false-sharing.
    pub experiment: String,
    /// Worker threads (placed by --placement); a list (1,2,4 or 1-8) sweeps thread counts.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_threads)]
    pub threads: Option<CpuList>,
    /// Pair classes to run: smt-siblings, same-l3, cross-l3, cross-package (comma-separated) or all.
    #[arg(long, value_parser = parse_pairs)]
    pub pairs: Option<PairList>,
    /// Explicit CPUs, e.g. 0,2,4-7: worker i runs on the i-th CPU.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,
    /// false-sharing only: measure a real two-field struct as written vs
    /// #[repr(align(64))] vs CachePadded (the false-sharing-layout experiment).
    #[arg(long)]
    pub layout: bool,
    /// Allow more threads than CPUs (thread sweeps then add 2x the CPU count).
    #[arg(long)]
    pub oversubscribe: bool,
    /// Placement policy for --threads: compact or scatter.
    #[arg(long, value_parser = parse_policy)]
    pub placement: Option<Policy>,
    /// Memory policy: first-touch (default), node:N[,M] or interleave[:N,M].
    #[arg(long)]
    pub membind: Option<String>,
    /// Extra counters, comma-separated: perf names (cycles, LLC-load-misses, task-clock),
    /// event-map names (hitm_loads, MEM_LOAD_RETIRED.L1_MISS), rNNNN, or pmu/event=0x..,umask=0x../.
    #[arg(long)]
    pub events: Option<String>,
    /// eBPF probes on the experiment's threads (names as `hwprof list` shows them, or all).
    #[arg(long, value_parser = parse_probe_list)]
    pub probes: Option<String>,
    /// Seconds per repetition per variant (or 500ms, 2s).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_seconds)]
    pub duration: Option<f64>,
    /// Measured repetitions per variant.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_count)]
    pub repetitions: Option<usize>,
    /// Warm-up repetitions per variant (not measured).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_count)]
    pub warmup: Option<usize>,
    /// Short run: fewer, shorter repetitions.
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write report.json and summary.md into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Serve the verdicts as gauges at http://ADDR/metrics (held until scraped once, at most 60 s).
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Print the placement plan and exit without running.
    #[arg(long)]
    pub plan_only: bool,
    /// host, xml:FILE or synthetic:"DESC"; anything but host allows --plan-only only.
    #[arg(long, default_value = "host", value_parser = parse_topology)]
    pub topology: TopologySource,
}

/// A clap error as one line: bad input is one line on stderr everywhere in
/// hwprof. A missing subcommand names the ones there are; a missing argument
/// names the argument (clap puts it on the next line).
pub fn one_line_error(e: &clap::Error) -> String {
    use clap::error::ErrorKind;
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        || e.kind() == ErrorKind::MissingSubcommand
    {
        // Which command lacks its subcommand: walk argv down the command tree.
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let mut path = vec!["hwprof".to_string()];
        for a in std::env::args().skip(1) {
            match cmd.find_subcommand(&a) {
                Some(sub) => {
                    path.push(a.clone());
                    let sub = sub.clone();
                    cmd = sub;
                }
                None => break,
            }
        }
        let subs: Vec<String> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .map(|c| c.get_name().to_string())
            .collect();
        return format!(
            "{} needs a subcommand: {} (try '{} --help')",
            path.join(" "),
            subs.join(", "),
            path.join(" ")
        );
    }
    let text = e.render().to_string();
    let mut parts = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("Usage:") || l.starts_with("For more information") {
            break;
        }
        if l.is_empty() || l.starts_with("tip:") {
            continue;
        }
        parts.push(l.strip_prefix("error: ").unwrap_or(l).to_string());
    }
    let mut msg = parts.join(" ");
    if msg.is_empty() {
        msg = "invalid arguments".into();
    }
    msg
}

fn parse_topology(s: &str) -> Result<TopologySource, String> {
    TopologySource::parse(s).map_err(|e| e.to_string())
}

/// `--pairs` value (a newtype: clap would take a bare Vec for repeated flags).
/// None is `all`: every class this machine has (the same as no `--pairs`).
#[derive(Debug, Clone)]
pub struct PairList(pub Option<Vec<PairClass>>);

/// `--cpus` value.
#[derive(Debug, Clone)]
pub struct CpuList(pub Vec<usize>);

fn parse_pairs(s: &str) -> Result<PairList, String> {
    if s.trim() == "all" {
        return Ok(PairList(None));
    }
    PairClass::parse_list(s).map(|v| PairList(Some(v)))
}

fn parse_cpus(s: &str) -> Result<CpuList, String> {
    cpulist::parse(s).map(CpuList)
}

fn parse_threads(s: &str) -> Result<CpuList, String> {
    let v = cpulist::parse_list(s, "thread count")?;
    if v.contains(&0) {
        return Err("thread counts start at 1".into());
    }
    Ok(CpuList(v))
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s)
}

fn parse_count(s: &str) -> Result<usize, String> {
    whole_number(s, "a count", 0, u32::MAX as u64).map(|v| v as usize)
}

fn parse_port(s: &str) -> Result<u16, String> {
    whole_number(s, "a port", 0, 65_535).map(|v| v as u16)
}

fn parse_nodes(s: &str) -> Result<u64, String> {
    whole_number(s, "a node count", 0, 1_000_000_000)
}

fn parse_dim(s: &str) -> Result<usize, String> {
    whole_number(s, "an embedding dimension", 1, 65_536).map(|v| v as usize)
}

fn parse_spaces(s: &str) -> Result<u32, String> {
    whole_number(s, "a count", 1, 4096).map(|v| v as u32)
}

fn parse_workers(s: &str) -> Result<usize, String> {
    whole_number(s, "a count", 1, 1_000_000).map(|v| v as usize)
}

fn parse_leak(s: &str) -> Result<usize, String> {
    whole_number(s, "a byte count", 0, 1 << 30).map(|v| v as usize)
}

fn positive_number(s: &str, what: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number (expected {what})"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("{s} is not a positive number (expected {what})"));
    }
    Ok(v)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v = positive_number(s, "requests/s")?;
    if v > 1e8 {
        return Err(format!(
            "{s} requests/s is more than one generator can schedule (1e8); use --shard"
        ));
    }
    Ok(v)
}

fn parse_pct(s: &str) -> Result<f64, String> {
    let v = positive_number(s, "a percentage")?;
    if v > 10_000.0 {
        return Err(format!("{s}% is more than 10000%"));
    }
    Ok(v)
}

fn parse_reps(s: &str) -> Result<usize, String> {
    whole_number(s, "repetitions", 2, 1000).map(|v| v as usize)
}

fn parse_warmup_runs(s: &str) -> Result<usize, String> {
    whole_number(s, "a count of warm-up runs", 0, 100).map(|v| v as usize)
}

fn parse_seconds_or_zero(s: &str) -> Result<f64, String> {
    if s.trim().trim_end_matches('s').trim() == "0" {
        return Ok(0.0);
    }
    parse_seconds(s)
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number (expected a probability)"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s} is not a probability (0..1)"));
    }
    Ok(v)
}

fn parse_pid(s: &str) -> Result<u32, String> {
    whole_number(s, "a process id", 1, i32::MAX as u64).map(|v| v as u32)
}

fn parse_top(s: &str) -> Result<usize, String> {
    whole_number(s, "a number of lines", 1, 100_000).map(|v| v as usize)
}

fn parse_frequency(s: &str) -> Result<u64, String> {
    whole_number(s, "a frequency in Hz", 1, 10_000)
}

fn parse_probe_list(s: &str) -> Result<String, String> {
    crate::probes::ProbeKind::parse_list(s).map(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded_and_take_units() {
        assert_eq!(parse_seconds("2.5").unwrap(), 2.5);
        assert_eq!(parse_seconds("500ms").unwrap(), 0.5);
        assert_eq!(parse_seconds("5m").unwrap(), 300.0);
        assert_eq!(parse_seconds("24h").unwrap(), 86_400.0);
        for bad in ["0", "-1", "1e30", "inf", "NaN", "", "5y", "abc", "31d"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_numbers_say_what_is_wrong() {
        assert!(whole_number("-1", "a count", 0, 10)
            .unwrap_err()
            .contains("negative"));
        assert!(whole_number("99999999999999999999999", "a count", 0, 10)
            .unwrap_err()
            .contains("too large"));
        assert!(whole_number("11", "a count", 0, 10)
            .unwrap_err()
            .contains("too large"));
        assert!(whole_number("x", "a count", 0, 10)
            .unwrap_err()
            .contains("not a whole number"));
        assert_eq!(whole_number("7", "a count", 0, 10).unwrap(), 7);
    }
}
