//! What else ran on the CPUs an experiment used: per-CPU busy and steal time from
//! /proc/stat around each trial, less the workers' own CPU time
//! (CLOCK_THREAD_CPUTIME_ID). Another process on those CPUs (a CPU hog, a noisy
//! neighbour VM stealing cycles) bends every figure, so reports say when the
//! machine was not quiet. Linux only; elsewhere every sample is None.

use serde::Serialize;

/// Above this share of the CPUs' time spent on other work, a measurement is
/// called bent (measured on the 2-vCPU guest: quiet runs stay well below it,
/// a CPU hog on one of the CPUs takes about half; docs/benchmarks.md).
pub const NOT_QUIET_SHARE: f64 = 0.10;

/// Busy and steal time of a set of CPUs at one instant (ns since boot).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub busy_ns: u64,
    pub steal_ns: u64,
}

/// What ran on a trial's CPUs besides its workers, over its window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Interference {
    /// CPU-seconds available: window × CPUs (ns).
    pub available_ns: u64,
    /// Busy time of those CPUs not spent in the workers (ns).
    pub other_ns: u64,
    /// Time the hypervisor ran something else on them (ns).
    pub steal_ns: u64,
}

impl Interference {
    pub fn add(&mut self, o: &Interference) {
        self.available_ns += o.available_ns;
        self.other_ns += o.other_ns;
        self.steal_ns += o.steal_ns;
    }
    /// Share of the CPUs' time others had (other processes and steal).
    pub fn share(&self) -> f64 {
        if self.available_ns == 0 {
            return 0.0;
        }
        (self.other_ns + self.steal_ns) as f64 / self.available_ns as f64
    }
}

/// Sum of busy and steal time over `cpus`, from /proc/stat.
pub fn sample(cpus: &[usize]) -> Option<CpuTimes> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        parse(&text, cpus, ticks_per_second()?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpus;
        None
    }
}

#[cfg(target_os = "linux")]
fn ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then_some(hz as u64)
}

/// `cpuN user nice system idle iowait irq softirq steal …`: busy is every
/// field but idle, iowait and steal (guest time is already inside user).
pub fn parse(text: &str, cpus: &[usize], hz: u64) -> Option<CpuTimes> {
    let mut t = CpuTimes::default();
    let mut found = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(cpu) = f
            .next()
            .and_then(|n| n.strip_prefix("cpu"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if !cpus.contains(&cpu) {
            continue;
        }
        let v: Vec<u64> = f.take(8).filter_map(|x| x.parse().ok()).collect();
        if v.len() < 8 {
            return None;
        }
        let busy = v[0] + v[1] + v[2] + v[5] + v[6];
        t.busy_ns += busy * 1_000_000_000 / hz;
        t.steal_ns += v[7] * 1_000_000_000 / hz;
        found += 1;
    }
    (found > 0).then_some(t)
}

/// Every online CPU (cpu0 … from /proc/stat), for whole-machine samples.
pub fn all_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        std::fs::read_to_string("/proc/stat")
            .map(|t| {
                t.lines()
                    .filter_map(|l| {
                        l.split_whitespace()
                            .next()?
                            .strip_prefix("cpu")?
                            .parse()
                            .ok()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    #[cfg(not(target_os = "linux"))]
    {
        vec![]
    }
}

/// CPU time (user + system, ns) of this process (`RUSAGE_SELF`) or of its
/// children that have been waited for (`RUSAGE_CHILDREN`).
pub fn rusage_ns(children: bool) -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: zeroed rusage is a valid out-buffer.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let who = if children {
            libc::RUSAGE_CHILDREN
        } else {
            libc::RUSAGE_SELF
        };
        // SAFETY: valid out-pointer.
        unsafe { libc::getrusage(who, &mut ru) };
        let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
        ns(ru.ru_utime) + ns(ru.ru_stime)
    }
    #[cfg(not(unix))]
    {
        let _ = children;
        0
    }
}

/// CPU time (ns) of every process in process group `pgid`, with the children
/// they have waited for, from /proc/PID/stat (0 where it cannot be read).
pub fn process_group_ns(pgid: u32) -> u64 {
    #[cfg(target_os = "linux")]
    {
        let Some(hz) = ticks_per_second() else {
            return 0;
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return 0;
        };
        dir.filter_map(|e| {
            let e = e.ok()?;
            e.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // After the comm's closing parenthesis: state ppid pgrp … utime(14)
            // stime(15) cutime(16) cstime(17), numbered from pid = 1.
            let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            (f.get(2)?.parse::<u32>().ok()? == pgid).then_some(())?;
            let t: u64 = f
                .get(11..15)?
                .iter()
                .filter_map(|x| x.parse::<u64>().ok())
                .sum();
            Some(t * 1_000_000_000 / hz)
        })
        .sum()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pgid;
        0
    }
}

/// CPU time the calling thread has used (ns).
pub fn thread_cpu_ns() -> u64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// What ran on `cpus` besides the workers between two samples `window_ns` apart,
/// given the workers' own CPU time over the same window.
pub fn interference(
    before: CpuTimes,
    after: CpuTimes,
    cpus: usize,
    window_ns: u64,
    workers_ns: u64,
) -> Interference {
    let busy = after.busy_ns.saturating_sub(before.busy_ns);
    Interference {
        available_ns: window_ns * cpus as u64,
        other_ns: busy.saturating_sub(workers_ns),
        steal_ns: after.steal_ns.saturating_sub(before.steal_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 0 50 1000 5 0 0 7 0 0\n\
                        cpu0 60 0 20 500 3 0 0 2 0 0\n\
                        cpu1 40 0 30 500 2 1 1 5 0 0\n\
                        intr 12345\n";

    #[test]
    fn busy_and_steal_of_chosen_cpus() {
        let t = parse(STAT, &[1], 100).unwrap();
        assert_eq!(t.busy_ns, 72 * 10_000_000);
        assert_eq!(t.steal_ns, 5 * 10_000_000);
        let both = parse(STAT, &[0, 1], 100).unwrap();
        assert_eq!(both.busy_ns, 152 * 10_000_000);
        assert!(parse(STAT, &[7], 100).is_none());
    }

    #[test]
    fn others_are_busy_time_less_the_workers() {
        let before = CpuTimes {
            busy_ns: 1_000,
            steal_ns: 10,
        };
        let after = CpuTimes {
            busy_ns: 2_000,
            steal_ns: 110,
        };
        let i = interference(before, after, 2, 1_000, 600);
        assert_eq!((i.available_ns, i.other_ns, i.steal_ns), (2_000, 400, 100));
        assert!((i.share() - 0.25).abs() < 1e-12);
    }
}
