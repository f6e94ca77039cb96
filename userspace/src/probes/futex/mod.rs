//! `futex`: user-space lock contention (what `perf lock contention`, which sees
//! kernel locks only, cannot): wait time per (process, futex word) from
//! sys_enter_futex / sys_exit_futex for the waiting operations, wake counts and
//! waiters; top addresses resolved to a static's symbol or named by mapping.

use serde::Serialize;

use super::hist::Log2Hist;
use crate::symbols::Resolved;

pub const PROGRAMS: &[(&str, &str, &str)] = &[
    ("hwp_futex_enter", "syscalls", "sys_enter_futex"),
    ("hwp_futex_exit", "syscalls", "sys_exit_futex"),
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AddressReport {
    pub tgid: u32,
    pub uaddr: String,
    pub resolved: Option<Resolved>,
    pub waits: u64,
    pub wait_ns: u64,
    pub mean_wait_ns: u64,
    pub max_wait_ns: u64,
    pub wakes: u64,
    pub woken: u64,
    /// Distinct waiting threads seen (counted modulo 64: a lower bound above 64).
    pub waiting_threads: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub total_waits: u64,
    pub total_wait_ns: u64,
    pub total_wakes: u64,
    /// Most waited-on futex words first.
    pub top: Vec<AddressReport>,
    pub wait_time: Log2Hist,
}

const INFO: super::ProbeInfo = super::ProbeInfo {
    name: "futex",
    summary:
        "user-space lock waits per futex word (sys_enter/exit_futex), wakes and waiters, symbolised",
    tracepoints: PROGRAMS,
};

/// The `futex` probe (registered in [`super::PROBES`]).
pub struct Futex;

impl super::Probe for Futex {
    fn info(&self) -> &'static super::ProbeInfo {
        &INFO
    }
    #[cfg(hwprof_probes)]
    fn collect(&self, c: &mut super::session::Collect<'_>) {
        let (maps, report) = (c.maps, &mut *c.report);
        use crate::symbols::Symbolizer;
        use hwprof_probes_common::{FutexKey, FutexStats, HIST_FUTEX_WAIT};
        use std::collections::HashMap as StdHashMap;
        let mut entries = maps.hash::<FutexKey, FutexStats>("FUTEXES");
        entries.sort_by(|a, b| {
            b.1.wait_ns
                .cmp(&a.1.wait_ns)
                .then(b.1.waits.cmp(&a.1.waits))
        });
        let mut syms: StdHashMap<u32, Option<Symbolizer>> = StdHashMap::new();
        let top = entries
            .iter()
            .take(10)
            .map(|(k, v)| {
                let sym = syms
                    .entry(k.tgid)
                    .or_insert_with(|| Symbolizer::for_pid(k.tgid).ok());
                AddressReport {
                    tgid: k.tgid,
                    uaddr: format!("{:#x}", k.uaddr),
                    resolved: sym.as_mut().map(|s| s.resolve(k.uaddr)),
                    waits: v.waits,
                    wait_ns: v.wait_ns,
                    mean_wait_ns: v.wait_ns.checked_div(v.waits).unwrap_or(0),
                    max_wait_ns: v.max_wait_ns,
                    wakes: v.wakes,
                    woken: v.woken,
                    waiting_threads: v.waiter_mask.count_ones(),
                }
            })
            .collect();
        report.futex = Some(Report {
            total_waits: entries.iter().map(|e| e.1.waits).sum(),
            total_wait_ns: entries.iter().map(|e| e.1.wait_ns).sum(),
            total_wakes: entries.iter().map(|e| e.1.wakes).sum(),
            top,
            wait_time: Log2Hist::from_counts(&maps.hist(HIST_FUTEX_WAIT)),
        });
    }
    fn render(&self, report: &super::ProbesReport) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(f) = &report.futex {
            v.push(format!(
                "futex (probe): {} waits, {} waiting, {} wakes",
                f.total_waits,
                crate::text::ms(f.total_wait_ns),
                f.total_wakes
            ));
            for a in f.top.iter().take(5) {
                v.push(format!(
                    "  {} {}: {} waits, {} total, max {}, {} waiter(s), {} wakes",
                    a.uaddr,
                    a.resolved.as_ref().map_or(String::new(), |x| x.describe()),
                    a.waits,
                    crate::text::ms(a.wait_ns),
                    crate::text::ms(a.max_wait_ns),
                    a.waiting_threads,
                    a.wakes
                ));
            }
        }

        v
    }
}
