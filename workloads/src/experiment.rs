//! The contract between an experiment and the runner.

use std::borrow::Cow;

pub use crate::findings::{
    Chart, Curve, CurvePoint, Estimate, Findings, GroupOutcome, Matrix, RatioOutcome,
    VariantOutcome,
};

/// What an experiment may know of the machine before it runs: the cache sizes and
/// NUMA nodes of the discovered topology (host, or an XML export for `--plan-only`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineFacts {
    /// Per-core L1 data cache, bytes.
    pub l1d_bytes: Option<u64>,
    /// Per-core (or per-cluster) L2, bytes.
    pub l2_bytes: Option<u64>,
    /// Last-level cache of one domain (one L3, or the L2 where there is no L3), bytes.
    pub llc_bytes: Option<u64>,
    /// NUMA node os indexes.
    pub numa_nodes: Vec<usize>,
    /// Where the numbers above come from ("hwloc", "sysfs", an XML file, …), for messages.
    pub source: String,
}

/// Where a trial's memory goes. NUMA experiments bind each variant's allocations
/// to one node (or interleave them); the others inherit the run's `--membind`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VariantMemory {
    #[default]
    Inherit,
    /// Allocate on this NUMA node (os index).
    Node(usize),
    /// Spread pages round-robin over every node.
    Interleave,
}

/// A variant's position on a sweep: which curve it belongs to and its x value
/// (working-set bytes, prefetch distance, …). Experiments read it in `prepare`.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    pub series: Cow<'static, str>,
    pub x: f64,
}

/// One variant of a differential experiment (A or B, or one point of a sweep).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: Cow<'static, str>,
    pub description: Cow<'static, str>,
    pub memory: VariantMemory,
    /// Run only the first `n` workers of the group (e.g. a one-thread latency probe
    /// in a group placed for a multi-threaded bandwidth kernel). None: all.
    pub workers: Option<usize>,
    pub point: Option<SweepPoint>,
    /// Bytes of memory the variant works on, for experiments sized from the caches.
    pub working_set: Option<u64>,
}

impl Variant {
    pub const fn new(name: &'static str, description: &'static str) -> Variant {
        Variant {
            name: Cow::Borrowed(name),
            description: Cow::Borrowed(description),
            memory: VariantMemory::Inherit,
            workers: None,
            point: None,
            working_set: None,
        }
    }

    /// A point of a sweep, named `series-label`.
    pub fn point(series: &'static str, x: f64, label: &str, description: String) -> Variant {
        Variant {
            name: Cow::Owned(format!("{series}-{label}")),
            description: Cow::Owned(description),
            memory: VariantMemory::Inherit,
            workers: None,
            point: Some(SweepPoint {
                series: Cow::Borrowed(series),
                x,
            }),
            working_set: None,
        }
    }
}

/// How the experiment wants its threads placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadShape {
    /// Two parties whose relative placement is the point (SMT siblings, same L3, …):
    /// the runner runs one placement group per pair class the machine has.
    Pair,
    /// As `Pair`, then more threads per class (4, 8, … all the class's domain
    /// holds): the same L3, split over two L3s, split over two packages.
    PairSweep,
    /// Any number of threads placed by a policy (compact, scatter, explicit list).
    Threads { default: usize },
    /// Two threads on every pair of the selected CPUs (a pair-by-pair matrix).
    AllPairs,
    /// One group per NUMA node, on that node's cores (one hardware thread per
    /// core): node-by-node experiments (CPU node × memory node).
    PerNode,
}

/// What a comparison compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompareOn {
    /// Throughput (operations per second): lower is worse.
    #[default]
    Throughput,
    /// 99th-percentile operation latency: higher is worse (needs `records_latency`).
    LatencyP99,
}

/// Which two variants form the headline A/B comparison, and how to read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The variant expected to suffer (e.g. `packed`).
    pub treatment: &'static str,
    /// The variant it is compared against (e.g. `padded`).
    pub baseline: &'static str,
    /// Name of the effect: ratio baseline throughput / treatment throughput.
    pub effect: &'static str,
    /// Engineering target, if any: the treatment must keep at least this share of
    /// the baseline's throughput (e.g. 0.9 = "Zipf >= 90% of uniform").
    pub target: Option<f64>,
    pub on: CompareOn,
}

impl Comparison {
    /// The common case: `treatment` measured as a slowdown against `baseline`,
    /// no target, on throughput.
    pub const fn slowdown(treatment: &'static str, baseline: &'static str) -> Comparison {
        Comparison {
            treatment,
            baseline,
            effect: "slowdown",
            target: None,
            on: CompareOn::Throughput,
        }
    }
}

/// Times single operations for experiments that report per-operation latency.
/// The runner supplies it (backed by its timer and an HdrHistogram); kernels only
/// bracket the operation: `let t = timer.start(); op(); timer.stop(t);`. When the
/// experiment does not record latency the runner passes a no-op timer.
pub trait OpTimer {
    fn start(&mut self) -> u64;
    fn stop(&mut self, started: u64);
}

/// An [`OpTimer`] that records nothing.
pub struct NoTimer;

impl OpTimer for NoTimer {
    #[inline(always)]
    fn start(&mut self) -> u64 {
        0
    }
    #[inline(always)]
    fn stop(&mut self, _started: u64) {}
}

/// Shared state of one repetition of one variant, used by all worker threads.
pub trait Trial: Send + Sync {
    /// Run a short, fixed amount of work on worker `worker` and return the number of
    /// operations done. The runner calls this in a loop until the measured window
    /// ends; between calls it checks the stop flag and where the thread runs, so a
    /// batch should take roughly 10–100 µs. Experiments that report latency time
    /// each operation with `timer`.
    fn run_batch(&self, worker: usize, timer: &mut dyn OpTimer) -> u64;
    /// Called once on each worker's own, already pinned thread before the window
    /// opens (not timed): per-thread first-touch initialisation, so pages land on
    /// the node of the thread that will use them.
    fn setup(&self, _worker: usize) {}
}

/// What an experiment is, fixed at compile time: one `const` per experiment,
/// returned by [`Experiment::info`]. Everything the runner and the reports
/// need to know before running anything.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExperimentInfo {
    /// CLI name, e.g. `false-sharing`.
    pub name: &'static str,
    /// One line: what it measures.
    pub summary: &'static str,
    /// What an operation is, for units ("increment", "lookup", …).
    pub operation: &'static str,
    /// How threads are placed.
    pub thread_shape: ThreadShape,
    /// Whether trials time single operations (per-operation latency percentiles).
    pub records_latency: bool,
    /// Sweep thread counts 1, 2, 4, … all hardware threads by default
    /// (scalability experiments) instead of running one group.
    pub sweeps_threads: bool,
    /// `--quick` window and repetitions for this experiment, when the defaults
    /// (0.15 s x 7) would take too long for its number of variants.
    pub quick: Option<(f64, usize)>,
    /// Abstract PMU metrics (hwprofiles/events/metrics.toml) this experiment
    /// wants, e.g. `hitm_loads_per_kilo_load`. Machines that cannot provide one
    /// report it unavailable with the reason.
    pub metrics: &'static [&'static str],
}

/// A differential experiment: its static [`ExperimentInfo`] and its behaviour.
/// Adding one = a module implementing this trait plus one line in
/// [`crate::EXPERIMENTS`].
pub trait Experiment: Sync {
    /// The static metadata (a `const` in the experiment's module).
    fn info(&self) -> &'static ExperimentInfo;
    /// Variants, run interleaved. They may depend on the machine (SIMD kernels,
    /// working sets sized from the caches, one per NUMA node); an experiment that
    /// cannot be planned for `machine` (cache sizes unknown, …) says why.
    fn variants(&self, machine: &MachineFacts) -> Result<Vec<Variant>, String>;
    /// The headline comparison (it may depend on the CPU, e.g. the best SIMD kernel).
    fn comparison(&self) -> Comparison;
    /// Every comparison to report (the first is the headline). Default: the one above.
    fn comparisons(&self) -> Vec<Comparison> {
        vec![self.comparison()]
    }
    /// Facts about the implementation a reader needs to trust the number
    /// (layout, padding size, instruction used, …).
    fn notes(&self) -> Vec<String>;
    /// Allocate the shared state for one repetition of `variant` with `threads`
    /// workers. Called on the runner's thread before the workers start, under the
    /// memory policy in force. Unknown variant names are a programming error of the
    /// runner, so they may panic.
    fn prepare(&self, variant: &Variant, threads: usize) -> Box<dyn Trial>;
    /// Drop whatever the experiment kept across repetitions (large lists built
    /// once per run). Called when the run ends.
    fn release(&self) {}
    /// Read the finished measurements the experiment's own way: curves, matrices and
    /// verdict lines beyond the A/B comparisons (the staircase's knees against the
    /// cache sizes, the best prefetch distance, the NUMA penalty). Default: nothing.
    fn interpret(&self, _machine: &MachineFacts, _groups: &[GroupOutcome]) -> Findings {
        Findings::default()
    }
}

/// Shorthands for the [`ExperimentInfo`] fields (set there, not overridden).
impl<'a> dyn Experiment + 'a {
    pub fn name(&self) -> &'static str {
        self.info().name
    }
    pub fn summary(&self) -> &'static str {
        self.info().summary
    }
    pub fn op_name(&self) -> &'static str {
        self.info().operation
    }
    pub fn thread_shape(&self) -> ThreadShape {
        self.info().thread_shape
    }
    pub fn records_latency(&self) -> bool {
        self.info().records_latency
    }
    pub fn sweeps_threads(&self) -> bool {
        self.info().sweeps_threads
    }
    pub fn quick(&self) -> Option<(f64, usize)> {
        self.info().quick
    }
    pub fn metrics(&self) -> &'static [&'static str] {
        self.info().metrics
    }
}
