//! Per-thread counter groups through perf_event_open (perf-event2).
//!
//! Each worker opens its own groups on itself (pid 0, any CPU), so counts belong
//! to that thread alone. Hardware events are split into groups small enough to
//! be scheduled on any PMU (at most 4 general-purpose counters with SMT on Intel):
//! a group that does not fit is never scheduled at all. When the groups together
//! exceed the PMU, the kernel multiplexes them; values are then scaled by
//! time_enabled / time_running and the reading keeps both times.

use perf_event::events::{Cache, CacheId, CacheOp, CacheResult, Event, Hardware, Software};
use perf_event::{Builder, Counter, Group, ReadFormat};

use super::event::{CounterEvent, EventKind};
use super::{scale, CounterPlan, Reading, Source};

struct OpenGroup {
    group: Group,
    /// Member name, source, and its counter (None for the group leader itself).
    members: Vec<(String, Source, Option<Counter>)>,
}

/// Open `events` as one group led by the first that opens. The leader must be a
/// real event: task-clock under a dummy leader reads 0 or partial counts (seen on
/// Linux 6.18), and perf stat leads its groups with the first event too.
pub fn open_group(
    events: Vec<(String, Source, Builder<'static>)>,
    missing: &mut Vec<String>,
) -> Option<(Group, Vec<(String, Source, Option<Counter>)>)> {
    let mut iter = events.into_iter();
    let mut group = None;
    let mut members = Vec::new();
    for (name, source, mut b) in iter.by_ref() {
        b.read_format(
            ReadFormat::GROUP
                | ReadFormat::TOTAL_TIME_ENABLED
                | ReadFormat::TOTAL_TIME_RUNNING
                | ReadFormat::ID,
        );
        match b.build_group() {
            Ok(g) => {
                group = Some(g);
                members.push((name, source, None));
                break;
            }
            Err(e) => missing.push(format!("{name}: {e}")),
        }
    }
    let mut group = group?;
    for (name, source, b) in iter {
        match group.add(&b) {
            Ok(c) => members.push((name, source, Some(c))),
            Err(e) => missing.push(format!("{name}: {e}")),
        }
    }
    Some((group, members))
}

pub struct ThreadCounters {
    groups: Vec<OpenGroup>,
    /// Events that could not be opened, with the error.
    pub missing: Vec<String>,
}

/// A raw event on any PMU: PERF_TYPE_RAW for the core PMU (`cpu`), else the
/// dynamic type the kernel publishes in sysfs (`cpu_core`, `ibs_op`, …).
#[derive(Clone)]
pub struct PmuEvent {
    pub type_: u32,
    pub config: u64,
    pub config1: u64,
}

impl Event for PmuEvent {
    fn update_attrs(self, attr: &mut perf_event_open_sys::bindings::perf_event_attr) {
        attr.type_ = self.type_;
        attr.config = self.config;
        attr.config1 = self.config1;
    }
}

/// perf type number of the PMU called `pmu`.
pub fn pmu_type(pmu: &str) -> std::io::Result<u32> {
    if pmu == "cpu" {
        return Ok(perf_event_open_sys::bindings::PERF_TYPE_RAW);
    }
    std::fs::read_to_string(format!("/sys/bus/event_source/devices/{pmu}/type"))?
        .trim()
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad PMU type"))
}

/// Whether counters may include kernel mode: perf_event_paranoid <= 1 or a
/// privileged process (root, CAP_PERFMON). Context switches and migrations
/// happen in the kernel, so without this they read 0.
pub fn kernel_counting_allowed() -> bool {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(|| {
        let paranoid: i32 = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(2);
        let cap_perfmon = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
            })
            .and_then(|v| u64::from_str_radix(&v, 16).ok())
            .is_some_and(|caps| caps & (1 << 38) != 0 || caps & (1 << 21) != 0);
        // SAFETY: geteuid has no preconditions.
        paranoid <= 1 || unsafe { libc::geteuid() } == 0 || cap_perfmon
    })
}

/// A perf-event2 builder for `e`.
pub fn builder_for(e: &CounterEvent) -> std::io::Result<Builder<'static>> {
    let mut b = builder_for_event(e)?;
    if kernel_counting_allowed() {
        b.include_kernel();
    }
    Ok(b)
}

fn builder_for_event(e: &CounterEvent) -> std::io::Result<Builder<'static>> {
    let unknown = |n: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("unknown event {n}"),
        )
    };
    Ok(match &e.kind {
        EventKind::Hardware(n) => Builder::new(match n.as_str() {
            "cycles" => Hardware::CPU_CYCLES,
            "instructions" => Hardware::INSTRUCTIONS,
            "cache-references" => Hardware::CACHE_REFERENCES,
            "cache-misses" => Hardware::CACHE_MISSES,
            "branch-instructions" => Hardware::BRANCH_INSTRUCTIONS,
            "branch-misses" => Hardware::BRANCH_MISSES,
            "ref-cycles" => Hardware::REF_CPU_CYCLES,
            other => return Err(unknown(other)),
        }),
        EventKind::Cache(n) => {
            let (which, operation, result) = match n.as_str() {
                "L1-dcache-loads" => (CacheId::L1D, CacheOp::READ, CacheResult::ACCESS),
                "L1-dcache-load-misses" => (CacheId::L1D, CacheOp::READ, CacheResult::MISS),
                "LLC-loads" => (CacheId::LL, CacheOp::READ, CacheResult::ACCESS),
                "LLC-load-misses" => (CacheId::LL, CacheOp::READ, CacheResult::MISS),
                "dTLB-load-misses" => (CacheId::DTLB, CacheOp::READ, CacheResult::MISS),
                other => return Err(unknown(other)),
            };
            Builder::new(Cache {
                which,
                operation,
                result,
            })
        }
        EventKind::Software(n) => Builder::new(match n.as_str() {
            "task-clock" => Software::TASK_CLOCK,
            "context-switches" => Software::CONTEXT_SWITCHES,
            "cpu-migrations" => Software::CPU_MIGRATIONS,
            "page-faults" => Software::PAGE_FAULTS,
            "minor-faults" => Software::PAGE_FAULTS_MIN,
            "major-faults" => Software::PAGE_FAULTS_MAJ,
            other => return Err(unknown(other)),
        }),
        EventKind::Pmu {
            pmu,
            config,
            config1,
        } => Builder::new(PmuEvent {
            type_: pmu_type(pmu)?,
            config: *config,
            config1: *config1,
        }),
    })
}

impl ThreadCounters {
    /// Open the planned counters on the calling thread (disabled until `enable`).
    pub fn open(plan: &CounterPlan) -> Self {
        let mut groups = Vec::new();
        let mut missing = Vec::new();
        for spec in plan.groups() {
            let mut builders = Vec::new();
            for e in &spec {
                match builder_for(e) {
                    Ok(b) => builders.push((e.label.clone(), e.source, b)),
                    Err(err) => missing.push(format!("{}: {err}", e.label)),
                }
            }
            if let Some((group, members)) = open_group(builders, &mut missing) {
                groups.push(OpenGroup { group, members });
            }
        }
        ThreadCounters { groups, missing }
    }

    pub fn enable(&mut self) {
        for g in &mut self.groups {
            let _ = g.group.enable();
        }
    }

    pub fn disable(&mut self) {
        for g in &mut self.groups {
            let _ = g.group.disable();
        }
    }

    /// Read every counter, scaled for multiplexing.
    pub fn read(&mut self) -> Vec<Reading> {
        let mut out: Vec<Reading> = Vec::new();
        for g in &mut self.groups {
            let Ok(data) = g.group.read() else { continue };
            let enabled = data.time_enabled().map_or(0, |d| d.as_nanos() as u64);
            let running = data.time_running().map_or(0, |d| d.as_nanos() as u64);
            for (name, source, counter) in &g.members {
                // Fixed-counter events ride in every group: report the first copy.
                if out.iter().any(|r| &r.name == name) {
                    continue;
                }
                let c = counter.as_ref().unwrap_or(g.group.as_counter());
                let raw = data.get(c).map_or(0, |e| e.value());
                out.push(Reading {
                    name: name.clone(),
                    source: *source,
                    value: scale(raw, enabled, running),
                    raw,
                    enabled_ns: enabled,
                    running_ns: running,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_counters_count_this_thread() {
        let mut c = ThreadCounters::open(&CounterPlan {
            hardware: false,
            software: true,
            extra: vec![],
            group_limit: 4,
            fixed: vec![],
        });
        if c.groups.is_empty() {
            // perf_event_open forbidden here (paranoid=3 container): nothing to check.
            eprintln!("software counters unavailable: {:?}", c.missing);
            return;
        }
        c.enable();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x ^ i.wrapping_mul(31));
        }
        c.disable();
        let r = c.read();
        let task_clock = r.iter().find(|r| r.name == "task-clock").unwrap();
        assert_eq!(task_clock.source, Source::Software);
        assert!(
            task_clock.value > 100_000.0,
            "busy loop took {} ns CPU",
            task_clock.value
        );
        assert!(task_clock.running_ns > 0);
    }
}
