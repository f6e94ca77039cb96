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
