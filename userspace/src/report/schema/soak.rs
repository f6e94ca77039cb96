//! `hwprof soak`'s report (soak.json): the run so far (it doubles as the
//! checkpoint `--resume` continues from), its samples, and a verdict per resource.

use serde::{Deserialize, Serialize};

use crate::stats::trend::Trend;

/// What the soak was asked for; a resumed soak takes these from the checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SoakSettings {
    /// `http://HOST:PORT`, or `embedded` (an `hwprof serve` child of hwprof's).
    pub target: String,
    /// Arguments given to the embedded server (`--serve-args`).
    #[serde(default)]
    pub serve_args: Vec<String>,
    pub scenario: String,
    pub scenario_file: Option<String>,
    /// Constant offered rate (req/s) when given, over the scenario's arrivals.
    pub rate: Option<f64>,
    pub duration_s: f64,
    pub interval_s: f64,
    pub checkpoint_s: f64,
    /// Samples before this many seconds are not tested (caches, pools, the
    /// allocator settling).
    pub warmup_s: f64,
    pub seed: u64,
    pub limits: Limits,
}

/// What counts as a leak or a drift, per hour (Engram's task 002 defaults).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    pub rss_mb_per_h: f64,
    pub p99_pct_per_h: f64,
    pub fds_per_h: f64,
    pub threads_per_h: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rss_mb_per_h: 10.0,
            p99_pct_per_h: 2.0,
            fds_per_h: 1.0,
            threads_per_h: 1.0,
        }
    }
}

/// One load run of the soak, `checkpoint_s` long (the last may be shorter).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    pub index: usize,
    /// Seconds from the soak's start (wall clock) when it began.
    pub offset_s: f64,
    /// Load time it ran.
    pub load_s: f64,
    /// duration, signal or target-down.
    pub ended_by: String,
    /// Its `hwprof load` output, relative to the soak's directory.
    pub dir: String,
    pub target_pid: Option<u32>,
    pub completed: u64,
    pub errors: u64,
}

/// The target process, once per interval (source: software, /proc).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Seconds from the soak's start (wall clock: a resumed soak's gap shows).
    pub t_s: f64,
    pub pid: u32,
    pub rss_bytes: u64,
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    pub threads: u64,
    pub open_fds: u64,
    pub ctx_voluntary: u64,
    pub ctx_involuntary: u64,
}

/// The load's figures over one interval (source: timer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WindowPoint {
    pub t_s: f64,
    pub completed: u64,
    pub errors: u64,
    pub offered_rate: f64,
    pub achieved_rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The resources a soak judges.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    Rss,
    P99,
    OpenFds,
    Threads,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Resource::Rss,
        Resource::P99,
        Resource::OpenFds,
        Resource::Threads,
    ];
    /// The unit of its slope.
    pub fn unit(self) -> &'static str {
        match self {
            Resource::Rss => "MB/h",
            Resource::P99 => "%/h",
            Resource::OpenFds => "fds/h",
            Resource::Threads => "threads/h",
        }
    }
    /// What growth beyond the limit is called.
    pub fn growth_name(self) -> &'static str {
        match self {
            Resource::P99 => "drift",
            _ => "leak",
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Rss => "RSS",
            Resource::P99 => "p99",
            Resource::OpenFds => "open fds",
            Resource::Threads => "threads",
        })
    }
}

/// A resource's verdict.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TrendVerdict {
    /// A significant rise at or above the limit: a leak (a drift for p99).
    OverLimit,
    /// A significant rise, below the limit.
    RisingBelowLimit,
    /// No significant trend.
    NoTrend,
    /// A significant fall.
    Falling,
    /// Too few samples after the warm-up to test.
    TooFewSamples,
}

/// One resource's trend after the warm-up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceTrend {
    pub resource: Resource,
    pub verdict: TrendVerdict,
    /// Sen slope in `unit`, with its 95% CI.
    pub slope: Option<f64>,
    pub slope_lo: Option<f64>,
    pub slope_hi: Option<f64>,
    pub unit: String,
    pub limit: f64,
    /// The test itself (slope in the resource's own units per second).
    pub test: Option<Trend>,
    /// Samples tested (after the warm-up and binning) and from when.
    pub samples: usize,
    pub from_s: f64,
    /// pmu, software, timer or probe.
    pub source: String,
    /// The verdict in a sentence.
    pub line: String,
}

/// A resource's slope less that of clean baseline soaks: what the change
/// itself adds, the server's own drift taken out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineDifference {
    pub resource: Resource,
    pub unit: String,
    pub baseline_runs: usize,
    /// The baselines' slopes: mean (the estimate) and their spread.
    pub baseline_slope: f64,
    pub slope: f64,
    pub difference: f64,
    /// 95% CI of the difference: this run's slope CI and the baselines'
    /// run-to-run spread (or the one baseline's CI), combined.
    pub lo: f64,
    pub hi: f64,
    pub line: String,
}

/// soak.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakReport {
    pub schema_version: u32,
    pub kind: String,
    pub settings: SoakSettings,
    pub started_at: String,
    /// The start as Unix seconds: sample times are measured from it.
    pub start_unix_s: f64,
    /// running (a checkpoint), complete, interrupted, target-down.
    pub status: String,
    /// Load time run so far, over all segments.
    pub load_s: f64,
    pub segments: Vec<Segment>,
    pub samples: Vec<Sample>,
    pub windows: Vec<WindowPoint>,
    pub trends: Vec<ResourceTrend>,
    /// Times (s) the target's process changed (a restart): resource trends
    /// use the samples since the last.
    #[serde(default)]
    pub target_restarts: Vec<f64>,
    /// Each resource's slope against clean baseline soaks (`--baseline`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vs_baseline: Vec<BaselineDifference>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
}
