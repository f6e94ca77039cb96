//! `sched`: on-CPU / off-CPU time per thread (sched_switch), run-queue latency
//! (sched_wakeup, sched_wakeup_new → sched_switch), migrations (sched_migrate_task)
//! classified with the topology.

use std::collections::BTreeMap;

use serde::Serialize;

use super::hist::Log2Hist;
use crate::topology::Topology;

/// Programs and the tracepoints they attach to.
pub const PROGRAMS: &[(&str, &str, &str)] = &[
    ("hwp_sched_switch", "sched", "sched_switch"),
    ("hwp_sched_wakeup", "sched", "sched_wakeup"),
    ("hwp_sched_wakeup_new", "sched", "sched_wakeup_new"),
    ("hwp_sched_migrate", "sched", "sched_migrate_task"),
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThreadReport {
    pub tid: u32,
    pub tgid: u32,
    pub on_cpu_ns: u64,
    pub off_cpu_ns: u64,
    pub switches: u64,
    pub preempted: u64,
    pub wakeups: u64,
    pub runq_ns: u64,
    pub migrations: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub threads: Vec<ThreadReport>,
    pub total_on_cpu_ns: u64,
    pub total_off_cpu_ns: u64,
    pub total_migrations: u64,
    /// Migrations by distance: same-core, same-l3, cross-l3, cross-numa, unknown.
    pub migrations_by_class: BTreeMap<String, u64>,
    pub runq_latency: Log2Hist,
    pub off_cpu: Log2Hist,
}

/// How far a migration moved a thread, by the topology.
pub fn classify_migration(topo: &Topology, from: usize, to: usize) -> &'static str {
    let (Some(a), Some(b)) = (topo.pu(from), topo.pu(to)) else {
        return "unknown";
    };
    if a.core == b.core {
        "same-core"
    } else if a.numa != b.numa {
        "cross-numa"
    } else if a.l3.is_some() && a.l3 == b.l3 {
        "same-l3"
    } else if a.l3.is_some() && b.l3.is_some() {
        "cross-l3"
    } else {
        "unknown"
    }
}

pub fn build(
    threads: Vec<ThreadReport>,
    migrations: &[((u32, u32), u64)],
    runq: &[u64],
    off: &[u64],
    topo: &Topology,
) -> Report {
    let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
    for ((from, to), n) in migrations {
        *by_class
            .entry(classify_migration(topo, *from as usize, *to as usize).to_string())
            .or_default() += n;
    }
    Report {
        total_on_cpu_ns: threads.iter().map(|t| t.on_cpu_ns).sum(),
        total_off_cpu_ns: threads.iter().map(|t| t.off_cpu_ns).sum(),
        total_migrations: threads.iter().map(|t| t.migrations).sum(),
        threads,
        migrations_by_class: by_class,
        runq_latency: Log2Hist::from_counts(runq),
        off_cpu: Log2Hist::from_counts(off),
    }
}

const INFO: super::ProbeInfo = super::ProbeInfo {
    name: "sched",
    summary: "on/off-CPU time, switches, wakeups, run-queue latency and migrations by distance, per thread",
    tracepoints: PROGRAMS,
};

/// The `sched` probe (registered in [`super::PROBES`]).
pub struct Sched;

impl super::Probe for Sched {
    fn info(&self) -> &'static super::ProbeInfo {
        &INFO
    }
    #[cfg(hwprof_probes)]
    fn collect(&self, c: &mut super::session::Collect<'_>) {
        let (maps, ctx, report) = (c.maps, c.ctx, &mut *c.report);
        use hwprof_probes_common::{MigrationKey, HIST_OFF_CPU, HIST_RUNQ};
        let mut per: Vec<ThreadReport> = maps
            .threads
            .iter()
            .map(|(tid, s)| {
                // A thread on CPU right now has not been switched out yet.
                let running = if s.last_on > s.last_off && s.last_on < maps.now {
                    maps.now - s.last_on
                } else {
                    0
                };
                ThreadReport {
                    tid: *tid,
                    tgid: s.tgid,
                    on_cpu_ns: s.on_cpu_ns + running,
                    off_cpu_ns: s.off_cpu_ns,
                    switches: s.switches,
                    preempted: s.preempted,
                    wakeups: s.wakeups,
                    runq_ns: s.runq_ns,
                    migrations: s.migrations,
                }
            })
            .collect();
        per.sort_by_key(|t| t.tid);
        let migrations: Vec<((u32, u32), u64)> = maps
            .hash::<MigrationKey, u64>("MIGRATIONS")
            .into_iter()
            .map(|(k, n)| ((k.orig_cpu, k.dest_cpu), n))
            .collect();
        report.sched = Some(build(
            per,
            &migrations,
            &maps.hist(HIST_RUNQ),
            &maps.hist(HIST_OFF_CPU),
            ctx.topology,
        ));
    }
    fn render(&self, report: &super::ProbesReport) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(sc) = &report.sched {
            v.push(format!(
        "sched (probe): on-CPU {}, off-CPU {}, {} migrations ({}), run-queue latency p50 <= {} ns, p99 <= {} ns",
        crate::text::ms(sc.total_on_cpu_ns),
        crate::text::ms(sc.total_off_cpu_ns),
        sc.total_migrations,
        crate::text::map(&sc.migrations_by_class),
        sc.runq_latency.p50_ns_le,
        sc.runq_latency.p99_ns_le
    ));
        }

        v
    }
}
