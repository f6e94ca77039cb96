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

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ThreadReport {
    pub tid: u32,
    pub tgid: u32,
    /// The thread's name (comm) when last seen; empty if it was never seen alive.
    pub comm: String,
    pub on_cpu_ns: u64,
    pub off_cpu_ns: u64,
    pub switches: u64,
    pub preempted: u64,
    pub wakeups: u64,
    pub runq_ns: u64,
    pub migrations: u64,
    /// Futex waits and their time (with the futex probe on; else 0).
    pub futex_waits: u64,
    pub futex_wait_ns: u64,
}

/// Threads of one name pattern (`worker-0`…`worker-7` → `worker-{0..7}`), summed.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ThreadGroup {
    pub name: String,
    pub threads: usize,
    pub processes: usize,
    pub on_cpu_ns: u64,
    pub off_cpu_ns: u64,
    pub switches: u64,
    pub wakeups: u64,
    pub runq_ns: u64,
    pub migrations: u64,
    pub futex_waits: u64,
    pub futex_wait_ns: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub threads: Vec<ThreadReport>,
    /// The threads by name pattern, busiest (on + off CPU, i.e. longest
    /// observed) first.
    pub groups: Vec<ThreadGroup>,
    /// What is unusual about the groups, in words with the numbers.
    pub findings: Vec<String>,
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

/// The pattern a thread name belongs to: trailing digits (after an optional
/// separator) become `{lo..hi}` over the group; `postgres` stays itself.
pub fn name_stem(comm: &str) -> (&str, Option<u64>) {
    let digits = comm.len() - comm.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits == comm.len() {
        return (comm, None);
    }
    let (stem, n) = comm.split_at(comm.len() - digits);
    (stem, n.parse().ok())
}

/// Group threads by name pattern.
pub fn groups(threads: &[ThreadReport]) -> Vec<ThreadGroup> {
    let mut by: BTreeMap<String, (ThreadGroup, Vec<u64>, std::collections::BTreeSet<u32>)> =
        BTreeMap::new();
    for t in threads {
        let comm = if t.comm.is_empty() { "?" } else { &t.comm };
        let (stem, n) = name_stem(comm);
        let e = by.entry(stem.to_string()).or_default();
        let g = &mut e.0;
        g.threads += 1;
        g.on_cpu_ns += t.on_cpu_ns;
        g.off_cpu_ns += t.off_cpu_ns;
        g.switches += t.switches;
        g.wakeups += t.wakeups;
        g.runq_ns += t.runq_ns;
        g.migrations += t.migrations;
        g.futex_waits += t.futex_waits;
        g.futex_wait_ns += t.futex_wait_ns;
        e.1.extend(n);
        e.2.insert(t.tgid);
    }
    let mut out: Vec<ThreadGroup> = by
        .into_iter()
        .map(|(stem, (mut g, nums, procs))| {
            g.processes = procs.len();
            g.name = match (nums.iter().min(), nums.iter().max()) {
                (Some(lo), Some(hi)) if g.threads > 1 && lo != hi => {
                    format!("{stem}{{{lo}..{hi}}}")
                }
                (Some(lo), _) if g.threads == 1 => format!("{stem}{lo}"),
                _ => stem,
            };
            g
        })
        .collect();
    out.sort_by(|a, b| {
        (b.on_cpu_ns + b.off_cpu_ns)
            .cmp(&(a.on_cpu_ns + a.off_cpu_ns))
            .then(b.on_cpu_ns.cmp(&a.on_cpu_ns))
    });
    out
}

/// What stands out in a group over `duration_s`, in words with the numbers.
pub fn findings(groups: &[ThreadGroup], duration_s: f64) -> Vec<String> {
    let mut out = Vec::new();
    if duration_s <= 0.0 {
        return out;
    }
    for g in groups {
        let n = g.threads as f64;
        let each = |v: u64| v as f64 / n / duration_s;
        let lived = (g.on_cpu_ns + g.off_cpu_ns) as f64;
        if lived <= 0.0 {
            continue;
        }
        let who = if g.threads == 1 {
            format!("thread {}", g.name)
        } else {
            format!("{} threads {}", g.threads, g.name)
        };
        let on_share = g.on_cpu_ns as f64 / lived;
        let wake_rate = each(g.wakeups);
        if wake_rate >= 1000.0 && on_share < 0.5 {
            out.push(format!(
                "{who} {} ~{:.0} times/s, on CPU ~{:.0} µs per wakeup and off CPU ~{:.0} µs per wait: frequent short sleeps, as timed polling or a busy hand-off between threads does",
                if g.threads == 1 { "wakes" } else { "each wake" },
                wake_rate,
                g.on_cpu_ns as f64 / g.wakeups.max(1) as f64 / 1e3,
                g.off_cpu_ns as f64 / g.wakeups.max(1) as f64 / 1e3,
            ));
        }
        if on_share >= 0.9 && each(g.on_cpu_ns) >= 0.5e9 {
            out.push(format!(
                "{who} {} on CPU {:.0}% of the time: CPU-bound",
                if g.threads == 1 { "was" } else { "were" },
                on_share * 100.0
            ));
        }
        let runq = g.runq_ns as f64 / lived;
        if runq >= 0.10 {
            out.push(format!(
                "{who} waited to run {:.0}% of the time (runnable, no CPU free): more runnable threads than CPUs",
                runq * 100.0
            ));
        }
        let fx = g.futex_wait_ns as f64 / lived;
        if fx >= 0.10 && g.futex_waits > 0 {
            out.push(format!(
                "{who} spent {:.0}% of the time in futex waits ({:.0} waits/s each, mean {:.0} µs): the futex finding says whether that is contention or parking",
                fx * 100.0,
                each(g.futex_waits),
                g.futex_wait_ns as f64 / g.futex_waits as f64 / 1e3,
            ));
        }
        let mig = each(g.migrations);
        if mig >= 100.0 {
            out.push(format!(
                "{who} {} ~{mig:.0} times/s between CPUs: pin them, or give them fewer competitors",
                if g.threads == 1 {
                    "moved"
                } else {
                    "each moved"
                }
            ));
        }
    }
    out
}

pub fn build(
    threads: Vec<ThreadReport>,
    migrations: &[((u32, u32), u64)],
    runq: &[u64],
    off: &[u64],
    topo: &Topology,
    duration_s: f64,
) -> Report {
    let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
    for ((from, to), n) in migrations {
        *by_class
            .entry(classify_migration(topo, *from as usize, *to as usize).to_string())
            .or_default() += n;
    }
    let groups = groups(&threads);
    Report {
        findings: findings(&groups, duration_s),
        groups,
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
    btf_tracepoints: &[],
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
                // A process forked by a traced thread was tracked under its
                // parent's tgid: the live thread's own Tgid corrects it.
                let (tgid, comm) = maps.identity(*tid, s.tgid);
                ThreadReport {
                    tid: *tid,
                    tgid,
                    comm,
                    futex_waits: s.futex_waits,
                    futex_wait_ns: s.futex_wait_ns,
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
            ctx.duration_s,
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
            let secs = report.duration_s.max(1e-9);
            for g in sc.groups.iter().take(12) {
                v.push(format!(
                    "  {} ({} thread{}{}): on-CPU {}, off-CPU {}, {:.0} switches/s, {:.0} wakeups/s, run-queue {}, {} futex waits ({}), {} migrations",
                    g.name,
                    g.threads,
                    if g.threads == 1 { "" } else { "s" },
                    if g.processes > 1 { format!(" in {} processes", g.processes) } else { String::new() },
                    crate::text::ms(g.on_cpu_ns),
                    crate::text::ms(g.off_cpu_ns),
                    g.switches as f64 / secs,
                    g.wakeups as f64 / secs,
                    crate::text::ms(g.runq_ns),
                    g.futex_waits,
                    crate::text::ms(g.futex_wait_ns),
                    g.migrations
                ));
            }
            if sc.groups.len() > 12 {
                v.push(format!(
                    "  … {} more name patterns in the JSON",
                    sc.groups.len() - 12
                ));
            }
            for f in &sc.findings {
                v.push(format!("finding: {f}"));
            }
        }

        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tid: u32, tgid: u32, comm: &str) -> ThreadReport {
        ThreadReport {
            tid,
            tgid,
            comm: comm.into(),
            ..Default::default()
        }
    }

    #[test]
    fn threads_group_by_name_pattern() {
        assert_eq!(name_stem("worker-12"), ("worker-", Some(12)));
        assert_eq!(name_stem("postgres"), ("postgres", None));
        assert_eq!(name_stem("1234"), ("1234", None));
        let mut ts: Vec<ThreadReport> = (0..4)
            .map(|i| ThreadReport {
                on_cpu_ns: 1_000_000,
                ..t(10 + i, 10, &format!("worker-{i}"))
            })
            .collect();
        ts.push(t(20, 20, "postgres"));
        ts.push(t(21, 21, "postgres"));
        ts.push(t(30, 10, "main"));
        ts.push(t(31, 10, ""));
        let g = groups(&ts);
        let names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names[0], "worker-{0..3}", "{names:?}");
        let w = &g[0];
        assert_eq!((w.threads, w.processes, w.on_cpu_ns), (4, 1, 4_000_000));
        let pg = g.iter().find(|g| g.name == "postgres").unwrap();
        assert_eq!((pg.threads, pg.processes), (2, 2));
        assert!(names.contains(&"?"), "an unnamed thread is shown as ?");
    }

    #[test]
    fn findings_name_polling_cpu_bound_queueing_and_futex_waits() {
        let secs = 10.0;
        let g = |name: &str, threads: usize, on: f64, off: f64| ThreadGroup {
            name: name.into(),
            threads,
            processes: 1,
            on_cpu_ns: (on * 1e9) as u64,
            off_cpu_ns: (off * 1e9) as u64,
            ..Default::default()
        };
        // 4 pollers, each waking 5 300 times/s: on CPU 0.2 s, off 9.8 s each.
        let pollers = ThreadGroup {
            wakeups: 4 * 53_000,
            ..g("tokio-rt-worker", 4, 0.8, 39.2)
        };
        let spinner = g("compute", 1, 9.8, 0.2);
        let queued = ThreadGroup {
            runq_ns: (3e9) as u64,
            ..g("queued", 2, 8.0, 12.0)
        };
        let waiting = ThreadGroup {
            futex_waits: 2_000,
            futex_wait_ns: (6e9) as u64,
            ..g("locked-", 1, 4.0, 6.0)
        };
        let quiet = g("idle", 1, 0.01, 9.99);
        let f = findings(&[pollers, spinner, queued, waiting, quiet], secs);
        let all = f.join("\n");
        assert!(
            all.contains(
                "4 threads tokio-rt-worker each wake ~5300 times/s, on CPU ~4 µs per wakeup"
            ),
            "{all}"
        );
        assert!(
            all.contains("thread compute was on CPU 98% of the time: CPU-bound"),
            "{all}"
        );
        assert!(
            all.contains("2 threads queued waited to run 15% of the time"),
            "{all}"
        );
        assert!(
            all.contains("thread locked- spent 60% of the time in futex waits (200 waits/s each, mean 3000 µs)"),
            "{all}"
        );
        assert!(
            !all.contains("idle"),
            "a quiet thread is not a finding: {all}"
        );
        assert_eq!(f.len(), 4, "{all}");
    }
}
