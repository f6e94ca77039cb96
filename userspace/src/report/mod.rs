//! The documents hwprof writes (schema in docs/report-schema.md) and their
//! formats, one file per format behind one [`export::Exporter`] trait: `json`,
//! `markdown`, `table` (terminal), `html`, `plots`. `output` writes files
//! atomically and, under sudo, hands them to the invoking user.

pub mod export;
pub mod html;
pub mod json;
pub mod markdown;
pub mod metrics;
/// The one write path (moved to the crate root: every layer writes through it).
pub use crate::output;
pub mod plots;
pub mod schema;
pub mod table;

use serde::Serialize;

use crate::machine::MachineProfile;
use crate::measure::CounterPlan;
use crate::placement::{MemoryPolicy, Plan};
use schema::GroupResult;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentInfo {
    pub name: String,
    pub summary: String,
    pub operation: String,
    pub variants: Vec<(String, String)>,
    pub treatment: String,
    pub baseline: String,
    pub effect: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSettings {
    pub duration_s: f64,
    pub repetitions: usize,
    pub warmup: usize,
    pub quick: bool,
    /// Variants run interleaved within each repetition: A B, A B, …
    pub order: String,
    /// Extra rounds for each group's headline comparison until its verdict is
    /// conclusive (None: a fixed `--repetitions` was asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveBudget>,
}

/// After the fixed repetitions, the headline comparison's two variants run
/// again, alternating (A B, B A, …), until its verdict is conclusive or the
/// budget is spent: the time goes where the answer is, not to every cell.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct AdaptiveBudget {
    /// Seconds of headline rounds each group may spend.
    pub per_group_s: f64,
    /// At most this many extra repetitions of each headline variant.
    pub max_rounds: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub counters: CounterPlan,
    /// Counter groups as opened on each worker (labels); more than one hardware
    /// group means time multiplexing, with values scaled by enabled/running time.
    pub counter_groups: Vec<Vec<String>>,
    pub multiplexed: bool,
    /// Event map used, metrics requested (resolved or why not), --events.
    pub events: crate::events::Selection,
    /// The fallback in force, in words.
    pub fallback: String,
    /// Capabilities lost, each with its remedy (also printed on stderr).
    pub lost: Vec<String>,
    pub binding: String,
    pub memory: MemoryPolicy,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub experiment: ExperimentInfo,
    pub command: Vec<String>,
    pub started_at: String,
    pub finished_at: String,
    /// Stopped early (Ctrl-C / SIGTERM): what was measured so far is reported.
    pub interrupted: bool,
    pub settings: RunSettings,
    pub measurement: Measurement,
    pub placement: Plan,
    pub groups: Vec<GroupResult>,
    /// `--probes`: what the kernel saw of the experiment's threads (all runs).
    pub probes: Option<crate::probes::ProbesReport>,
    /// Thread sweeps: speedup, efficiency and USL fit per variant and policy.
    pub scaling: Vec<schema::ScalingSeries>,
    /// Pair-by-pair experiments: one-way latency per pair, per class, contradictions.
    pub pair_matrix: Option<schema::PairMatrix>,
    /// The experiment's own reading: verdict lines, curves, matrices (staircase,
    /// prefetch distance, NUMA node x node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<hwprof_workloads::findings::Findings>,
    /// Plot files written next to report.json.
    pub plots: Vec<String>,
    pub warnings: Vec<schema::Warning>,
    pub machine: MachineProfile,
}
