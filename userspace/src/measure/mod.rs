//! Measurement sources behind one interface, and the fallback chain between them.
//!
//! Every number hwprof reports carries a [`Source`]. Per-thread counters come from
//! `counters` (perf_event_open on Linux, nothing elsewhere); wall time from the
//! best portable [`timer`] the platform has.

#[cfg(target_os = "linux")]
#[path = "linux_counters.rs"]
pub mod counters;
#[cfg(not(target_os = "linux"))]
#[path = "no_counters.rs"]
pub mod counters;
pub mod cpu_time;
pub mod event;
/// /proc where there is one; elsewhere every sample is None.
pub mod process;
pub mod schedule;
pub mod timer;

use serde::{Deserialize, Serialize};

pub use event::{CounterEvent, EventKind};

/// Where a number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Hardware performance counter (PMU).
    Pmu,
    /// Kernel software counter (task-clock, context switches, …).
    Software,
    /// Portable timer (TSC, CNTVCT, mach_absolute_time, clock_gettime).
    Timer,
    /// eBPF probe.
    Probe,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Pmu => "pmu",
            Source::Software => "software",
            Source::Timer => "timer",
            Source::Probe => "probe",
        }
    }
}

/// Which counters the runner opens on every worker, decided once from the
/// capability probe, the experiment's metrics and `--events`.
#[derive(Debug, Clone, Serialize)]
pub struct CounterPlan {
    pub hardware: bool,
    pub software: bool,
    /// Hardware events beyond the generic defaults (metric events, --events).
    pub extra: Vec<CounterEvent>,
    /// General-purpose counters one group may use.
    pub group_limit: usize,
    /// Labels served by fixed counters.
    pub fixed: Vec<String>,
}

impl CounterPlan {
    /// The generic events every run counts when the PMU allows it.
    pub fn default_events(&self) -> Vec<CounterEvent> {
        let mut v = Vec::new();
        if self.hardware {
            for h in [
                "cycles",
                "instructions",
                "branch-misses",
                "cache-references",
                "cache-misses",
            ] {
                v.push(CounterEvent {
                    label: h.into(),
                    source: Source::Pmu,
                    kind: EventKind::Hardware(h.into()),
                });
            }
            for c in ["L1-dcache-load-misses", "LLC-load-misses"] {
                v.push(CounterEvent {
                    label: c.into(),
                    source: Source::Pmu,
                    kind: EventKind::Cache(c.into()),
                });
            }
        }
        if self.software {
            for sw in [
                "task-clock",
                "context-switches",
                "cpu-migrations",
                "page-faults",
            ] {
                v.push(CounterEvent {
                    label: sw.into(),
                    source: Source::Software,
                    kind: EventKind::Software(sw.into()),
                });
            }
        }
        v
    }

    /// All groups to open, scheduled to fit the PMU.
    pub fn groups(&self) -> Vec<Vec<CounterEvent>> {
        let mut all = self.default_events();
        if self.hardware {
            all.extend(self.extra.iter().cloned());
        }
        // task-clock leads the software group: under a dummy leader it reads 0.
        schedule::schedule(&all, self.group_limit, &self.fixed)
    }

    /// The fallback chain in words, for the report.
    pub fn describe(&self) -> String {
        match (self.hardware, self.software) {
            (true, _) => "pmu: hardware counters (software counters and timer alongside)".into(),
            (false, true) => {
                "software: no hardware counters; software counters and timer only".into()
            }
            (false, false) => "timer: no counters at all; timer-derived figures only".into(),
        }
    }
}

/// One counter value read at the end of a worker's window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reading {
    /// perf-style name: `cycles`, `task-clock`, `LLC-load-misses`, …
    pub name: String,
    pub source: Source,
    /// Value scaled by time_enabled / time_running (equal to `raw` when not multiplexed).
    pub value: f64,
    pub raw: u64,
    pub enabled_ns: u64,
    pub running_ns: u64,
}

impl Reading {
    /// Fraction of the window the counter actually ran (1.0 = not multiplexed).
    pub fn running_fraction(&self) -> f64 {
        if self.enabled_ns == 0 {
            0.0
        } else {
            self.running_ns as f64 / self.enabled_ns as f64
        }
    }
}

/// Scale a multiplexed count to the whole enabled window.
pub fn scale(raw: u64, enabled_ns: u64, running_ns: u64) -> f64 {
    if running_ns == 0 {
        0.0
    } else if running_ns >= enabled_ns {
        raw as f64
    } else {
        raw as f64 * enabled_ns as f64 / running_ns as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_extrapolates_multiplexed_counts() {
        assert_eq!(scale(1000, 100, 100), 1000.0);
        assert_eq!(scale(1000, 100, 25), 4000.0);
        assert_eq!(scale(1000, 100, 0), 0.0);
    }
}

/// CLOCK_MONOTONIC now, in ns: the clock of `Instant` on Linux and of the
/// probes' event times (bpf_ktime_get_ns), so the two line up.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
