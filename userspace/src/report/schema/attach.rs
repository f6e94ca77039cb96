//! `hwprof attach`'s report (attach.json).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::machine::MachineProfile;
use crate::measure::Source;
use crate::probes::ProbesReport;

#[derive(Debug, Clone, Serialize)]
pub struct CounterValue {
    pub value: f64,
    pub source: Source,
    /// Smallest running fraction over threads (1 = never multiplexed).
    pub running_fraction: f64,
}

/// What ended an attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndedBy {
    Duration,
    Signal,
    TargetExit,
}

impl std::fmt::Display for EndedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Duration => "duration",
            Self::Signal => "signal",
            Self::TargetExit => "target exit",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    pub schema_version: u32,
    pub kind: String,
    pub target: BTreeMap<String, String>,
    pub duration_s: f64,
    /// `duration`, `signal` or `target-exit`.
    pub ended_by: EndedBy,
    /// Ended early by SIGINT/SIGTERM (as in experiments' reports).
    pub interrupted: bool,
    pub threads_seen: usize,
    /// Counters over all the target's threads (including those created while
    /// attached): software figures from the kernel's per-thread accounting
    /// (/proc), hardware ones from perf where the PMU allows.
    pub counters: BTreeMap<String, CounterValue>,
    pub probes: ProbesReport,
    pub warnings: Vec<String>,
    pub machine: MachineProfile,
}
