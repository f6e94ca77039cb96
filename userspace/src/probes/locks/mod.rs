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
