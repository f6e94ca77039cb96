//! A process's resource use from the kernel's per-process accounting (/proc):
//! what load, soak and the exporters report of a target. Source: software.

use serde::{Deserialize, Serialize};

/// A target process's resource use, from /proc.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub rss_bytes: u64,
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    pub threads: u64,
    pub open_fds: u64,
    /// Context switches so far (/proc/PID/status): the thread gave up the CPU
    /// (waits) and was taken off it (preempted).
    #[serde(default)]
    pub ctx_voluntary: u64,
    #[serde(default)]
    pub ctx_involuntary: u64,
}

/// RSS from the page tables (/proc/PID/smaps_rollup), exact to the page. The
/// figure in /proc/PID/stat comes from counters each thread batches (up to 64
/// pages before they are folded in, on many kernels), so it moves in steps of
/// ~128 KiB: a leak of a few MB/h would read as a staircase whose slope is off
/// by the step. None where smaps_rollup is missing (kernels before 4.14).
fn exact_rss(pid: u32) -> Option<u64> {
    kb_field(
        &std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?,
        "Rss:",
    )
}

/// A `Key:   123 kB` line of a /proc file (smaps_rollup, meminfo), in bytes.
pub fn kb_field(text: &str, key: &str) -> Option<u64> {
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// RSS, CPU time, threads and fds of a process.
pub fn sample_process(pid: u32) -> Option<Resources> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let threads: u64 = f.get(17)?.parse().ok()?;
    let rss_pages: u64 = f.get(21)?.parse().ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    // /proc/PID/status counts the main thread's switches only: sum the threads'.
    let (mut ctx_voluntary, mut ctx_involuntary) = (0, 0);
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            ctx_voluntary += field("voluntary_ctxt_switches:");
            ctx_involuntary += field("nonvoluntary_ctxt_switches:");
        }
    }
    Some(Resources {
        ctx_voluntary,
        ctx_involuntary,
        rss_bytes: exact_rss(pid).unwrap_or(rss_pages * page),
        cpu_user_s: utime / hz,
        cpu_sys_s: stime / hz,
        threads,
        open_fds: fds,
    })
}
