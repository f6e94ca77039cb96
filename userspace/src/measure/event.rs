//! What one counter is: the measurement layer opens these; `events/` builds
//! them from names, maps and `--events` specs.

use serde::Serialize;

use super::Source;

/// What to open for one counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub enum EventKind {
    /// perf generic hardware event (`cycles`, `instructions`, …).
    Hardware(String),
    /// perf generic hardware-cache event (`L1-dcache-load-misses`, …).
    Cache(String),
    /// perf software event (`task-clock`, …).
    Software(String),
    /// A raw encoding on a named PMU (`cpu` = PERF_TYPE_RAW).
    Pmu {
        pmu: String,
        config: u64,
        config1: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct CounterEvent {
    /// Name readings are reported under (abstract name, perf name or the spec).
    pub label: String,
    pub source: Source,
    pub kind: EventKind,
}
