//! `locks`: kernel lock contention from lock:contention_begin / contention_end
//! (Linux 5.19+): wait time by lock and lock type.

use serde::Serialize;

pub const PROGRAMS: &[(&str, &str, &str)] = &[
    ("hwp_lock_begin", "lock", "contention_begin"),
    ("hwp_lock_end", "lock", "contention_end"),
];

/// LCB_F_* flags of include/trace/events/lock.h.
pub fn lock_type(flags: u32) -> String {
    let mut v = Vec::new();
    for (bit, name) in [
        (1, "spin"),
        (2, "read"),
        (4, "write"),
        (8, "rt"),
        (16, "percpu"),
        (32, "mutex"),
    ] {
        if flags & bit != 0 {
            v.push(name);
        }
    }
    if v.is_empty() {
        "other".into()
    } else {
        v.join("+")
    }
}

/// The first kernel frame that is not lock machinery: who contended.
pub fn caller<'a>(frames: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    const MACHINERY: [&str; 10] = [
        "lock",
        "spin",
        "mutex",
        "rwsem",
        "contention",
        "osq_",
        "queued_",
        "down_",
        "up_",
        "__schedule",
    ];
    frames
        .into_iter()
        .find(|f| !MACHINERY.iter().any(|m| f.contains(m)))
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LockReport {
    pub lock: String,
    /// Kernel symbol of a statically allocated lock (/proc/kallsyms), if any.
    pub symbol: Option<String>,
    pub kind: String,
    /// First kernel function on the waiting stack outside the lock code.
    pub caller: Option<String>,
    pub count: u64,
    pub wait_ns: u64,
    pub max_wait_ns: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub total_contentions: u64,
    pub total_wait_ns: u64,
    pub top: Vec<LockReport>,
    pub wait_time: super::hist::Log2Hist,
}

const INFO: super::ProbeInfo = super::ProbeInfo {
    name: "locks",
    summary:
        "kernel lock contention (lock:contention_begin/end) by lock, type and calling function",
    tracepoints: PROGRAMS,
    btf_tracepoints: &[],
};

/// The `locks` probe (registered in [`super::PROBES`]).
pub struct Locks;

impl super::Probe for Locks {
    fn info(&self) -> &'static super::ProbeInfo {
        &INFO
    }
    #[cfg(hwprof_probes)]
    fn collect(&self, c: &mut super::session::Collect<'_>) {
        let (maps, report) = (c.maps, &mut *c.report);
        use super::hist::Log2Hist;
        use hwprof_probes_common::{LockKey, LockStats, HIST_LOCK_WAIT};
        let mut entries = maps.hash::<LockKey, LockStats>("LOCKS");
        entries.sort_by(|a, b| b.1.wait_ns.cmp(&a.1.wait_ns));
        let ks = super::profile::Kallsyms::load();
        let caller = |id: i32| -> Option<String> {
            let names: Vec<&str> = maps
                .stack(id)
                .into_iter()
                .filter_map(|ip| ks.resolve(ip))
                .collect();
            caller(names.iter().copied()).map(str::to_string)
        };
        report.locks = Some(Report {
            total_contentions: entries.iter().map(|e| e.1.count).sum(),
            total_wait_ns: entries.iter().map(|e| e.1.wait_ns).sum(),
            top: entries
                .iter()
                .take(10)
                .map(|(k, v)| LockReport {
                    lock: format!("{:#x}", k.lock),
                    symbol: ks.resolve(k.lock).map(str::to_string),
                    kind: lock_type(k.flags),
                    caller: caller(k.stack),
                    count: v.count,
                    wait_ns: v.wait_ns,
                    max_wait_ns: v.max_wait_ns,
                })
                .collect(),
            wait_time: Log2Hist::from_counts(&maps.hist(HIST_LOCK_WAIT)),
        });
    }
    fn render(&self, report: &super::ProbesReport) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(l) = &report.locks {
            v.push(format!(
                "locks (probe): {} kernel lock contentions, {} waiting",
                l.total_contentions,
                crate::text::ms(l.total_wait_ns)
            ));
            for k in l.top.iter().take(5) {
                v.push(format!(
                    "  {} {} {} from {}: {} x, {}",
                    k.lock,
                    k.symbol.as_deref().unwrap_or(""),
                    k.kind,
                    k.caller.as_deref().unwrap_or("?"),
                    k.count,
                    crate::text::ms(k.wait_ns)
                ));
            }
        }

        v
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_flags() {
        assert_eq!(super::lock_type(1), "spin");
        assert_eq!(super::lock_type(2 | 32), "read+mutex");
        assert_eq!(super::lock_type(0), "other");
        let frames = [
            "queued_spin_lock_slowpath",
            "_raw_spin_lock",
            "futex_wake",
            "do_futex",
        ];
        assert_eq!(super::caller(frames), Some("futex_wake"));
    }
}
