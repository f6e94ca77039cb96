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
/// The same work from BTF raw tracepoints: the fallback where the classic pair
/// cannot attach (no tracefs, no syscall tracepoints). Not the default: they
/// run for every syscall of every process, which costs untraced processes
/// more than the classic pair and the target no less (docs/benchmarks.md).
pub const BTF_PROGRAMS: &[(&str, &str)] = &[
    ("hwp_futex_enter_btf", "sys_enter"),
    ("hwp_futex_exit_btf", "sys_exit"),
];
/// `futex-blocked`: the same maps filled from the scheduler's events. A
/// tracked thread going to sleep with its saved registers in a futex wait
/// starts a wait; switched back in, it ends it; woken from inside a futex wake,
/// the wake is counted. No syscall hook, so no syscall of any task takes the
/// tracing slow path: the low-overhead way for lock-heavy targets, at the
/// price of not seeing waits that never slept nor wake calls that woke nobody.
pub const BLOCKED_PROGRAMS: &[(&str, &str, &str)] = &[
    ("hwp_futex_blocked_switch", "sched", "sched_switch"),
    ("hwp_futex_blocked_waking", "sched", "sched_waking"),
];

/// Where a futex report's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeenFrom {
    /// sys_enter/sys_exit of futex: every wait and wake call, sleeping or not.
    Syscalls,
    /// sched_switch/sched_waking: waits that slept (from the switch-out to
    /// the switch back in) and wakeups of waiting threads from futex wakes.
    Scheduler,
}

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
    /// The code that waits on this word: user stacks (innermost frame
    /// first) with their share of its wait time, longest first, at most 3.
    /// Waits under 10 µs are not walked; of the others one in 8, at random,
    /// is walked and counted 8 times over (an estimate of each stack's wait
    /// time; a stack walk costs more than the rest of the probe's work).
    /// Frames need frame pointers.
    pub stacks: Vec<WaitStack>,
}

/// One user stack that waited on a futex word.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WaitStack {
    pub wait_ns: u64,
    pub frames: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// `syscalls` (probe `futex`) or `scheduler` (probe `futex-blocked`: waits
    /// that slept only; `wakes` are wakeups of waiting threads).
    pub seen_from: SeenFrom,
    pub total_waits: u64,
    pub total_wait_ns: u64,
    pub total_wakes: u64,
    /// Most waited-on futex words first.
    pub top: Vec<AddressReport>,
    pub wait_time: Log2Hist,
    /// Contention or parking, in words (None without waits).
    pub finding: Option<String>,
}

/// Whether the waits are contention (several threads on one word) or
/// parking (each thread on its own word: idle workers, condition variables).
pub fn finding(top: &[AddressReport], total_wait_ns: u64) -> Option<String> {
    if total_wait_ns == 0 || top.is_empty() {
        return None;
    }
    let share = |a: &AddressReport| a.wait_ns as f64 / total_wait_ns as f64 * 100.0;
    let name = |a: &AddressReport| {
        let what = a.resolved.as_ref().map_or(String::new(), |x| x.describe());
        if what.is_empty() {
            a.uaddr.clone()
        } else {
            format!("{} {what}", a.uaddr)
        }
    };
    if let Some(a) = top
        .iter()
        .find(|a| a.waiting_threads >= 2 && share(a) >= 20.0)
    {
        return Some(format!(
            "{} threads waited on {} ({:.0}% of all futex wait time, {} waits, mean {:.0} µs): a lock or condition several threads contend for — look at what holds it",
            a.waiting_threads,
            name(a),
            share(a),
            a.waits,
            a.mean_wait_ns as f64 / 1e3
        ));
    }
    let single: Vec<&AddressReport> = top.iter().filter(|a| a.waiting_threads <= 1).collect();
    let single_share: f64 = single.iter().map(|a| share(a)).sum();
    (single_share >= 80.0).then(|| {
        format!(
            "{} futex words, one waiter each, hold {:.0}% of the wait time: threads parked on their own words (idle workers, per-thread condition variables), not contention for one lock",
            single.len(),
            single_share
        )
    })
}

const INFO: super::ProbeInfo = super::ProbeInfo {
    name: "futex",
    summary:
        "user-space lock waits per futex word (sys_enter/exit_futex), wakes and waiters, symbolised",
    tracepoints: PROGRAMS,
    btf_tracepoints: BTF_PROGRAMS,
};

const BLOCKED_INFO: super::ProbeInfo = super::ProbeInfo {
    name: "futex-blocked",
    summary: "futex waits that slept, per word, from sched_switch/sched_waking: no syscall hook, lower overhead; misses waits that never slept",
    tracepoints: BLOCKED_PROGRAMS,
    btf_tracepoints: &[],
};

/// The futex probe, by where it takes its figures: `Futex(Syscalls)` is probe
/// `futex`, `Futex(Scheduler)` probe `futex-blocked` (both registered in
/// [`super::PROBES`]; they share their maps, so one of them runs at a time).
pub struct Futex(pub SeenFrom);

impl super::Probe for Futex {
    fn info(&self) -> &'static super::ProbeInfo {
        match self.0 {
            SeenFrom::Syscalls => &INFO,
            SeenFrom::Scheduler => &BLOCKED_INFO,
        }
    }
    #[cfg(hwprof_probes)]
    fn collect(&self, c: &mut super::session::Collect<'_>) {
        collect(c, self.0);
    }
    fn render(&self, report: &super::ProbesReport) -> Vec<String> {
        match &report.futex {
            Some(f) if f.seen_from == self.0 => render(f),
            _ => vec![],
        }
    }
}

/// Read the futex maps (filled by either probe) into the report.
#[cfg(hwprof_probes)]
fn collect(c: &mut super::session::Collect<'_>, seen_from: SeenFrom) {
    let (maps, report) = (c.maps, &mut *c.report);
    use crate::symbols::Symbolizer;
    use hwprof_probes_common::{FutexKey, FutexStackKey, FutexStats, HIST_FUTEX_WAIT};
    use std::collections::HashMap as StdHashMap;
    let mut entries = maps.hash::<FutexKey, FutexStats>("FUTEXES");
    entries.sort_by(|a, b| {
        b.1.wait_ns
            .cmp(&a.1.wait_ns)
            .then(b.1.waits.cmp(&a.1.waits))
    });
    let mut syms: StdHashMap<u32, Option<Symbolizer>> = StdHashMap::new();
    let walked = maps.hash::<FutexStackKey, u64>("FUTEX_STACKS");
    let top: Vec<AddressReport> = entries
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
                stacks: {
                    let mut of: Vec<(i32, u64)> = walked
                        .iter()
                        .filter(|(sk, _)| sk.tgid == k.tgid && sk.uaddr == k.uaddr)
                        .map(|(sk, ns)| (sk.user_stack, *ns))
                        .collect();
                    of.sort_by(|a, b| b.1.cmp(&a.1));
                    of.iter()
                        .take(3)
                        .map(|&(id, ns)| WaitStack {
                            wait_ns: ns,
                            frames: maps
                                .stack(id)
                                .iter()
                                .map(|ip| {
                                    sym.as_mut()
                                        .and_then(|s| s.resolve(*ip).symbol)
                                        .map(|s| s.split('+').next().unwrap_or(&s).to_string())
                                        .unwrap_or_else(|| format!("{ip:#x}"))
                                })
                                .collect(),
                        })
                        .collect()
                },
            }
        })
        .collect();
    let total_wait_ns = entries.iter().map(|e| e.1.wait_ns).sum();
    report.futex = Some(Report {
        seen_from,
        total_waits: entries.iter().map(|e| e.1.waits).sum(),
        total_wait_ns,
        total_wakes: entries.iter().map(|e| e.1.wakes).sum(),
        finding: finding(&top, total_wait_ns),
        top,
        wait_time: Log2Hist::from_counts(&maps.hist(HIST_FUTEX_WAIT)),
    });
}

/// The futex section in lines for people.
fn render(f: &Report) -> Vec<String> {
    let mut v = Vec::new();
    v.push(match f.seen_from {
        SeenFrom::Syscalls => format!(
            "futex (probe): {} waits, {} waiting, {} wakes",
            f.total_waits,
            crate::text::ms(f.total_wait_ns),
            f.total_wakes
        ),
        SeenFrom::Scheduler => format!(
            "futex (probe, from the scheduler): {} waits that slept, {} asleep or queued, {} wakeups by futex wakes",
            f.total_waits,
            crate::text::ms(f.total_wait_ns),
            f.total_wakes
        ),
    });
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
    // The waiting code of the most waited-on word.
    if let Some(st) = f.top.first().and_then(|a| a.stacks.first()) {
        let code: Vec<&str> = st
            .frames
            .iter()
            .map(String::as_str)
            .filter(|f| !f.starts_with("0x"))
            .take(4)
            .collect();
        if !code.is_empty() {
            v.push(format!("  waited on from: {}", code.join(" ← ")));
        }
    }
    if let Some(f) = &f.finding {
        v.push(format!("finding: {f}"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(uaddr: &str, waiters: u32, wait_ns: u64) -> AddressReport {
        AddressReport {
            tgid: 1,
            uaddr: uaddr.into(),
            resolved: None,
            waits: 100,
            wait_ns,
            mean_wait_ns: wait_ns / 100,
            max_wait_ns: wait_ns / 10,
            wakes: 100,
            woken: 100,
            waiting_threads: waiters,
            stacks: vec![],
        }
    }

    #[test]
    fn contention_and_parking_are_told_apart() {
        // Four idle workers, each on its own word.
        let parked: Vec<AddressReport> = (0..4)
            .map(|i| addr(&format!("0x{i}0"), 1, 1_000_000_000))
            .collect();
        let f = finding(&parked, 4_000_000_000).unwrap();
        assert!(
            f.starts_with("4 futex words, one waiter each, hold 100%"),
            "{f}"
        );
        // One word three threads wait on, with most of the wait time.
        let mut contended = parked.clone();
        contended.push(addr("0x99", 3, 6_000_000_000));
        let f = finding(&contended, 10_000_000_000).unwrap();
        assert!(
            f.starts_with("3 threads waited on 0x99 (60% of all futex wait time"),
            "{f}"
        );
        assert_eq!(finding(&[], 0), None);
    }
}
