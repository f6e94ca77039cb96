//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Process to attach to.
    #[arg(long)]
    pub pid: u32,
    /// Probes: sched, futex, locks, memory, profile (comma-separated) or all.
    #[arg(long, default_value = "sched,futex,memory")]
    pub probes: String,
    /// Entry+return probe on a function: BINARY:SYMBOL (repeatable, up to 4).
    #[arg(long)]
    pub uprobe: Vec<String>,
    /// Seconds to stay attached (Ctrl-C or the target exiting end it earlier).
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub duration: f64,
    /// Sampling frequency of the profile probe, Hz.
    #[arg(long, default_value_t = 99)]
    pub frequency: u64,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write attach.json, attach.md (and profile.folded, profile.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct C2cArgs {
    /// Sample a running process.
    #[arg(long, conflicts_with = "replay")]
    pub pid: Option<u32>,
    /// Analyse a recorded JSON-lines stream of memory samples instead of sampling.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Seconds to sample (with --pid; with a command, until it exits or this long).
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub duration: f64,
    /// Lines to show.
    #[arg(long, default_value_t = 10)]
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
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<CpuList>,
    /// Pair classes to run: smt-siblings, same-l3, cross-l3, cross-package (comma-separated) or all.
    #[arg(long, value_parser = parse_pairs)]
    pub pairs: Option<PairList>,
    /// Explicit CPUs, e.g. 0,2,4-7: worker i runs on the i-th CPU.
    #[arg(long, value_parser = parse_cpus)]
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
    /// eBPF probes on the experiment's threads: sched, futex, locks, memory, profile.
    #[arg(long)]
    pub probes: Option<String>,
    /// Seconds per repetition per variant.
    #[arg(long, allow_negative_numbers = true)]
    pub duration: Option<f64>,
    /// Measured repetitions per variant.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_count)]
    pub repetitions: Option<usize>,
    /// Warm-up repetitions per variant (not measured).
    #[arg(long, value_parser = parse_count)]
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
    /// Print the placement plan and exit without running.
    #[arg(long)]
    pub plan_only: bool,
    /// host, xml:FILE or synthetic:"DESC"; anything but host allows --plan-only only.
    #[arg(long, default_value = "host", value_parser = parse_topology)]
    pub topology: TopologySource,
}

fn parse_topology(s: &str) -> Result<TopologySource, String> {
    TopologySource::parse(s).map_err(|e| e.to_string())
}

/// `--pairs` value (a newtype: clap would take a bare Vec for repeated flags).
#[derive(Debug, Clone)]
pub struct PairList(pub Vec<PairClass>);

/// `--cpus` value.
#[derive(Debug, Clone)]
pub struct CpuList(pub Vec<usize>);

fn parse_pairs(s: &str) -> Result<PairList, String> {
    PairClass::parse_list(s).map(PairList)
}

fn parse_cpus(s: &str) -> Result<CpuList, String> {
    cpulist::parse(s).map(CpuList)
}

fn parse_threads(s: &str) -> Result<CpuList, String> {
    let v = cpulist::parse(s).map_err(|e| e.replace("CPU", "thread count"))?;
    if v.contains(&0) {
        return Err("thread counts start at 1".into());
    }
    Ok(CpuList(v))
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s)
}

fn parse_count(s: &str) -> Result<usize, String> {
    s.parse::<i64>()
        .map_err(|_| format!("{s:?} is not a whole number"))
        .and_then(|v| usize::try_from(v).map_err(|_| format!("{v} is negative; expected a count")))
}
