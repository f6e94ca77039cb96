//! `memory`: user page faults per thread (exceptions:page_fault_user, x86) and
//! NUMA balancing (migrate:mm_migrate_pages, sched:sched_move_numa,
//! sched:sched_swap_numa, sched:sched_stick_numa).

use serde::Serialize;

pub const PROGRAMS: &[(&str, &str, &str)] = &[
    ("hwp_page_fault", "exceptions", "page_fault_user"),
    ("hwp_migrate_pages", "migrate", "mm_migrate_pages"),
    ("hwp_numa_move", "sched", "sched_move_numa"),
    ("hwp_numa_swap", "sched", "sched_swap_numa"),
    ("hwp_numa_stick", "sched", "sched_stick_numa"),
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThreadMemory {
    pub tid: u32,
    pub page_faults: u64,
    pub numa_moves: u64,
    pub numa_swaps: u64,
    pub numa_sticks: u64,
    pub migrated_pages: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub page_faults: u64,
    pub migrated_pages: u64,
    pub numa_moves: u64,
    pub numa_swaps: u64,
    pub numa_sticks: u64,
    pub threads: Vec<ThreadMemory>,
}

const INFO: super::ProbeInfo = super::ProbeInfo {
    name: "memory",
    summary: "user page faults and NUMA balancing (page migrations, task moves/swaps) per thread",
    tracepoints: PROGRAMS,
    btf_tracepoints: &[],
};

/// The `memory` probe (registered in [`super::PROBES`]).
pub struct Memory;

impl super::Probe for Memory {
    fn info(&self) -> &'static super::ProbeInfo {
        &INFO
    }
    #[cfg(hwprof_probes)]
    fn collect(&self, c: &mut super::session::Collect<'_>) {
        let (maps, report) = (c.maps, &mut *c.report);
        let per: Vec<ThreadMemory> = maps
            .threads
            .iter()
            .map(|(tid, s)| ThreadMemory {
                tid: *tid,
                page_faults: s.page_faults,
                numa_moves: s.numa_moves,
                numa_swaps: s.numa_swaps,
                numa_sticks: s.numa_sticks,
                migrated_pages: s.migrated_pages,
            })
            .collect();
        report.memory = Some(Report {
            page_faults: per.iter().map(|t| t.page_faults).sum(),
            migrated_pages: per.iter().map(|t| t.migrated_pages).sum(),
            numa_moves: per.iter().map(|t| t.numa_moves).sum(),
            numa_swaps: per.iter().map(|t| t.numa_swaps).sum(),
            numa_sticks: per.iter().map(|t| t.numa_sticks).sum(),
            threads: per,
        });
    }
    fn render(&self, report: &super::ProbesReport) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(m) = &report.memory {
            v.push(format!(
        "memory (probe): {} user page faults, {} pages migrated, NUMA moves {} swaps {} sticks {}",
        m.page_faults, m.migrated_pages, m.numa_moves, m.numa_swaps, m.numa_sticks
    ));
        }

        v
    }
}
