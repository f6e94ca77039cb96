//! The schema types of every document hwprof writes: an experiment's run
//! (here), a suite, an attach, a c2c analysis (submodules). The commands fill
//! them in; every exporter (JSON, Markdown, table, HTML, plots) reads them.
//! They sit at the bottom, so report/ never imports a command.

pub mod attach;
pub mod c2c;
pub mod soak;
pub mod suite;

pub use attach::{AttachReport, CounterValue, EndedBy};
pub use c2c::{C2cReport, CodeSite, LineClass, LineOut, LineReport, ThreadAccess};
pub use suite::{EntryStatus, SuiteEntry, SuiteReport};

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::measure::cpu_time::Interference;
use crate::measure::{Reading, Source};
use crate::placement::PairClass;
use crate::stats::usl::UslFit;
use crate::stats::{Interval, Summary, Verdict};

#[derive(Debug, Clone, Serialize)]
pub struct WorkerResult {
    pub worker: usize,
    pub planned_cpu: usize,
    pub ops: u64,
    pub elapsed_ns: f64,
    /// getcpu() samples taken (one per batch) and how many found the thread elsewhere.
    pub cpu_samples: u64,
    pub off_cpu_samples: u64,
    /// Changes of CPU seen between consecutive samples.
    pub migrations_seen: u64,
    pub counters: Vec<Reading>,
    /// CPU time the worker's thread used over its window (CLOCK_THREAD_CPUTIME_ID).
    pub cpu_time_ns: u64,
    /// Per-operation latencies (ns), when the experiment times operations.
    #[serde(skip)]
    pub latency: Option<Histogram<u64>>,
}

/// Percentiles of per-operation latency over all workers of one trial [timer].
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub p999_ns: f64,
    pub max_ns: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrialResult {
    pub variant: String,
    pub repetition: usize,
    pub warmup: bool,
    pub ops: u64,
    /// Sum over workers of ops / own elapsed time.
    pub ops_per_sec: f64,
    pub workers: Vec<WorkerResult>,
    /// The window was cut short by an interrupt.
    pub cut_short: bool,
    pub latency: Option<LatencySummary>,
    /// What else ran on the trial's CPUs (None where /proc/stat is not read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interference: Option<Interference>,
}

impl TrialResult {
    /// The value a comparison on `on` reads from this trial (None: a latency
    /// comparison on a trial that timed no operations).
    pub fn compared_value(&self, on: hwprof_workloads::CompareOn) -> Option<f64> {
        match on {
            hwprof_workloads::CompareOn::Throughput => Some(self.ops_per_sec),
            hwprof_workloads::CompareOn::LatencyP99 => self.latency.as_ref().map(|l| l.p99_ns),
        }
    }
}

/// One metric of one variant over the measured repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub unit: String,
    pub source: Source,
    /// How the figure is derived when it is not a direct reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Smallest fraction of the window a multiplexed counter ran (1 = never multiplexed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_fraction: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    pub name: String,
    pub description: String,
    pub metrics: BTreeMap<String, Metric>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComparisonResult {
    pub treatment: String,
    pub baseline: String,
    pub effect: String,
    /// Share of the baseline's throughput the treatment keeps (1 / ratio), with CI.
    pub retained: f64,
    pub retained_ci95: Interval,
    pub target: Option<f64>,
    pub definition: String,
    pub source: Source,
    pub ratio: f64,
    pub ci95: Interval,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupResult {
    pub label: String,
    pub pair_class: Option<PairClass>,
    pub cpus: Vec<usize>,
    /// The placement policy of a thread-count sweep's group (`compact`, `scatter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub variants: Vec<VariantResult>,
    /// The headline comparison (the first of `comparisons`).
    pub comparison: Option<ComparisonResult>,
    pub comparisons: Vec<ComparisonResult>,
    /// getcpu() checks that found a worker off its planned CPU, over all trials.
    pub off_cpu_samples: u64,
    /// What else ran on the group's CPUs over its measured trials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interference: Option<Interference>,
    pub migrations_seen: u64,
    /// The adaptive headline rounds this group ran, if any were allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headline_rounds: Option<HeadlineRounds>,
    pub trials: Vec<TrialResult>,
}

/// What the adaptive repetitions did for one group's headline comparison.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct HeadlineRounds {
    /// Extra repetitions of each of the two headline variants.
    pub rounds: usize,
    pub seconds: f64,
    /// Whether the headline verdict was conclusive before any extra round.
    pub conclusive_before: bool,
    /// Why the rounds stopped.
    pub stopped: RoundsStopped,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RoundsStopped {
    /// The verdict became (or already was) conclusive.
    Decided,
    /// The time budget ran out first.
    BudgetSpent,
    /// The round limit was reached first.
    MaxRounds,
    /// A signal stopped the run.
    Interrupted,
}

impl std::fmt::Display for HeadlineRounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.conclusive_before, self.stopped) {
            (true, _) => f.write_str("headline conclusive after the fixed repetitions; no extra rounds"),
            (false, RoundsStopped::Decided) => write!(
                f,
                "headline decided after {} extra round(s) of its two variants ({:.1} s)",
                self.rounds, self.seconds
            ),
            (false, RoundsStopped::BudgetSpent) => write!(
                f,
                "headline still inconclusive: the adaptive budget ran out after {} extra round(s) ({:.1} s); raise --duration or quiet the machine",
                self.rounds, self.seconds
            ),
            (false, RoundsStopped::MaxRounds) => write!(
                f,
                "headline still inconclusive after the most extra rounds allowed ({}, {:.1} s); raise --duration or quiet the machine",
                self.rounds, self.seconds
            ),
            (false, RoundsStopped::Interrupted) => write!(
                f,
                "headline rounds interrupted after {} round(s)",
                self.rounds
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScalePoint {
    pub threads: usize,
    pub ops_per_sec: f64,
    pub ci95: Interval,
    /// X(N) / X(1).
    pub speedup: f64,
    /// speedup / N.
    pub efficiency: f64,
    /// Σ CPU time / (wall × N): how busy the threads were (software, task-clock).
    pub cpu_efficiency: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScalingSeries {
    pub variant: String,
    pub policy: String,
    pub points: Vec<ScalePoint>,
    pub usl: Option<UslFit>,
    /// Fitted throughput for 1..=64 threads; beyond `measured_max_threads` it is an
    /// extrapolation, and says so.
    pub predicted: Vec<(f64, f64)>,
    pub measured_max_threads: usize,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairLatency {
    pub cpus: (usize, usize),
    pub class: Option<PairClass>,
    /// Median round trip / 2, ns [timer].
    pub one_way_ns: f64,
    pub ci95: Interval,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassSummary {
    pub class: String,
    pub pairs: usize,
    pub median_one_way_ns: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairMatrix {
    pub pairs: Vec<PairLatency>,
    pub classes: Vec<ClassSummary>,
    /// Every pair slower than its declared class allows.
    pub contradictions: Vec<String>,
    /// What the report warns about: the contradictions, or a per-class summary
    /// of them when there are more than a few.
    pub warnings: Vec<String>,
    pub verdict: String,
    pub source: String,
}

/// Something the reader of a report must know to trust it, typed by where it
/// comes from; reports serialise it as its sentence (the schema's string list).
#[derive(Debug, Clone, PartialEq)]
pub enum Warning {
    /// Workers were seen off their planned CPUs.
    PinningDidNotHold { group: String, times: u64 },
    /// `--probes` asked for, none could start (the reason names the remedy).
    ProbesUnavailable(String),
    /// Running in a guest: the topology is the hypervisor's.
    VirtualMachine(String),
    /// A plot could not be drawn (a file that cannot be written fails the run instead).
    PlotNotWritten { plot: String, reason: String },
    /// Other work ran on the experiment's CPUs: `share` of their time went to
    /// other processes or, as steal, to other guests.
    NotQuiet {
        group: String,
        share: f64,
        steal_share: f64,
    },
    /// The experiment's own reading of its results (contradictions, sizing, …).
    Experiment(String),
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::PinningDidNotHold { group, times } => write!(
                f,
                "{group}: workers were seen off their planned CPUs {times} time(s): pinning did not hold"
            ),
            Warning::ProbesUnavailable(why) => write!(f, "--probes unavailable: {why}"),
            Warning::VirtualMachine(hypervisor) => write!(
                f,
                "{hypervisor} guest: the topology is the one the hypervisor declares; vCPUs may share or \
                 change physical cores without notice, so pair classes describe the guest's view"
            ),
            Warning::PlotNotWritten { plot, reason } if plot.is_empty() => {
                write!(f, "plot not written: {reason}")
            }
            Warning::PlotNotWritten { plot, reason } => {
                write!(f, "plot {plot} not written: {reason}")
            }
            Warning::NotQuiet {
                group,
                share,
                steal_share,
            } => write!(
                f,
                "{group}: the machine was not quiet: {:.0}% of its CPUs' time went to other work \
                 ({:.0}% stolen by the hypervisor), so its figures are bent by it; stop other \
                 load on those CPUs or choose others (--cpus) and run again",
                share * 100.0,
                steal_share * 100.0
            ),
            Warning::Experiment(text) => f.write_str(text),
        }
    }
}

impl Serialize for Warning {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
