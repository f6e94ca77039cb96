//! `hwprof attach --pid PID`: probes and counters on a running process, for as
//! long as asked, until Ctrl-C/SIGTERM, or until the target exits — the report is
//! written in every case, and every program, link and perf fd is closed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::usage;
use crate::machine::{self};
use crate::measure::Source;
use crate::probes::{CollectContext, ProbeKind, ProbeOptions, Session, UprobeSpec};
use crate::report;
use crate::topology::TopologySource;

pub mod targets;
use targets::TargetSpec;

#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// The processes to trace: pids, descendants, a cgroup, a name.
    pub targets: TargetSpec,
    pub probes: String,
    pub uprobes: Vec<String>,
    pub duration: f64,
    pub frequency: u64,
    /// Time hwprof's own programs (`--probe-cost`).
    pub probe_cost: bool,
    pub json: bool,
    pub out: Option<PathBuf>,
    /// Serve the probes' figures live at http://ADDR/metrics.
    pub metrics: Option<std::net::SocketAddr>,
}

/// The first traced process's /proc accounting at each scrape: `hwprof_target_*`.
#[derive(Debug)]
struct TargetResources(u32);

impl prometheus_client::collector::Collector for TargetResources {
    fn encode(
        &self,
        mut e: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        match crate::measure::process::sample_process(self.0) {
            Some(r) => crate::metrics::encode_resources(&mut e, &r),
            None => Ok(()),
        }
    }
}

use crate::probes::threads_of;
pub use crate::report::schema::{AttachReport, CounterValue, EndedBy};

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/PID; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next() != Some('Z'))
        })
        .unwrap_or(false)
}

fn owner_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix("Uid:")?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    })
}

pub fn run(o: &AttachOptions, interrupted: &AtomicBool) -> anyhow::Result<AttachReport> {
    if !(o.duration.is_finite() && o.duration > 0.0) {
        return Err(usage(format!(
            "--duration must be a positive number of seconds, got {}",
            o.duration
        )));
    }
    if o.frequency == 0 || o.frequency > 10_000 {
        return Err(usage("--frequency must be 1..=10000 Hz"));
    }
    let spec = &o.targets;
    if spec.is_empty() {
        return Err(usage("name what to trace: --pid, --cgroup or --comm"));
    }
    for &p in &spec.pids {
        if !alive(p) {
            return Err(usage(format!("--pid {p}: no such process")));
        }
    }
    let traced = spec.resolve_now().map_err(usage)?;
    let Some(&first) = spec.pids.first().or(traced.first()) else {
        return Err(usage(format!(
            "{}: no such process to trace",
            spec.describe()
        )));
    };
    let probes = ProbeKind::parse_list(&o.probes).map_err(|e| usage(format!("--probes: {e}")))?;
    let uprobes = o
        .uprobes
        .iter()
        .map(|u| UprobeSpec::parse(u, Some(first)).map_err(usage))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    for &p in &traced {
        if euid != 0 && owner_uid(p).is_some_and(|u| u != euid) {
            return Err(usage(format!(
                "pid {p}: may not trace a process of another user (uid {}); run with sudo",
                owner_uid(p).unwrap_or(0)
            )));
        }
    }
    let out_dir = o
        .out
        .as_deref()
        .map(|d| crate::output::prepare_dir("--out", d))
        .transpose()?;
    let (profile, _loaded) = machine::discover(&TopologySource::Host)?;

    let pairs: Vec<(u32, u32)> = traced
        .iter()
        .flat_map(|&p| threads_of(p).into_iter().map(move |t| (t, p)))
        .collect();
    let opts = ProbeOptions {
        probes,
        uprobes,
        frequency: o.frequency,
        cost: o.probe_cost,
    };
    let mut session = Session::start(&opts, &pairs).map_err(|e| match e {
        crate::probes::StartError::Unavailable(m) => usage(m),
        crate::probes::StartError::Failed(m) => anyhow::anyhow!(m),
    })?;
    let mut counters = counters::TargetCounters::new(&profile.capabilities);
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    for &(t, p) in &pairs {
        counters.add_thread(p, t, false);
        seen.insert(t);
    }
    let mut processes: BTreeSet<u32> = traced.clone();
    let mut traced = traced;
    eprintln!(
        "hwprof: attached to {} ({} processes, {} threads), probes {}, for {} s (Ctrl-C ends early)",
        spec.describe(),
        traced.len(),
        pairs.len(),
        o.probes,
        o.duration
    );
    let latest = std::sync::Arc::new(std::sync::Mutex::new(None));
    let _exporter = match o.metrics {
        None => None,
        Some(addr) => {
            let reg = crate::metrics::registry();
            {
                let mut g = reg.write().unwrap_or_else(|e| e.into_inner());
                g.register_collector(Box::new(crate::probes::metrics::ProbesCollector::new(
                    std::sync::Arc::clone(&latest),
                )));
                g.register_collector(Box::new(TargetResources(first)));
            }
            crate::metrics::start_if(Some(addr), &reg, false)?
        }
    };
    let start = Instant::now();
    let limit = Duration::from_secs_f64(o.duration);
    let mut polls = 0u64;
    let ended_by = loop {
        if interrupted.load(Ordering::Relaxed) {
            break EndedBy::Signal;
        }
        traced.retain(|&p| alive(p));
        if traced.is_empty() && (spec.cgroup.is_none() && spec.comm.is_none()) {
            break EndedBy::TargetExit;
        }
        if start.elapsed() >= limit {
            break EndedBy::Duration;
        }
        polls += 1;
        // Every 0.5 s: the set again (children, cgroup members and names come
        // and go) and the kernel accounting of threads that may exit before the end.
        if polls % 10 == 0 {
            // Threads born between scans were tracked by the fork probe already.
            if let Ok(now) = spec.resolve_now() {
                traced.extend(now.iter().copied());
                processes.extend(now);
            }
            counters.refresh();
        }
        for &p in &traced {
            for t in threads_of(p) {
                if seen.insert(t) {
                    session.track(t, p);
                    counters.add_thread(p, t, true);
                }
            }
        }
        // The exporter's snapshot of the probes, once a second.
        if o.metrics.is_some() && polls % 20 == 1 {
            let snap = session.collect(&CollectContext {
                topology: &profile.topology,
                pid: first,
                duration_s: start.elapsed().as_secs_f64(),
                profile_out: None,
            });
            if let Ok(mut l) = latest.lock() {
                *l = Some(snap);
            }
        }
        std::thread::sleep(Duration::from_millis(50).min(limit.saturating_sub(start.elapsed())));
    };
    let duration_s = start.elapsed().as_secs_f64();
    let probes_report = session.collect(&CollectContext {
        topology: &profile.topology,
        pid: first,
        duration_s,
        profile_out: out_dir.as_deref(),
    });
    drop(session);
    let counter_values = counters.read();
    let mut target = BTreeMap::new();
    target.insert("pid".into(), first.to_string());
    if let Ok(c) = std::fs::read_to_string(format!("/proc/{first}/comm")) {
        target.insert("comm".into(), c.trim().to_string());
    }
    // Processes forked by a traced thread were followed by the kernel side
    // (and carry their own tgid in the report): they count as traced.
    if let Some(sc) = &probes_report.sched {
        processes.extend(sc.threads.iter().map(|t| t.tgid));
    }
    if let Some(fx) = &probes_report.futex {
        processes.extend(fx.top.iter().map(|a| a.tgid));
    }
    target.insert("traced".into(), spec.describe());
    target.insert("processes".into(), processes.len().to_string());
    let mut warnings = probes_report.warnings.clone();
    if !spec.children {
        let procs = targets::scan();
        let untraced = targets::untraced_children(&processes, &procs);
        if !untraced.is_empty() {
            let mut names: BTreeMap<&str, usize> = BTreeMap::new();
            for p in &untraced {
                *names.entry(p.comm.as_str()).or_default() += 1;
            }
            let names: Vec<String> = names.iter().map(|(n, k)| format!("{n} ×{k}")).collect();
            let on_cpu = counter_values.get("task-clock").map_or(0.0, |c| c.value);
            warnings.push(format!(
                "the traced processes have {} child processes that were not traced ({}); the traced set was on CPU {:.0}% of the time: a server that works in child processes is invisible this way — add --children",
                untraced.len(),
                names.join(", "),
                on_cpu / (duration_s * 1e9).max(1.0) * 100.0
            ));
        }
    }
    if !probes_report.drops.is_empty() {
        warnings.push(format!(
            "kernel-side map updates dropped (maps full): {}",
            crate::text::map(&probes_report.drops)
        ));
    }
    let r = AttachReport {
        schema_version: 1,
        kind: "attach".into(),
        target,
        duration_s,
        ended_by,
        interrupted: ended_by == EndedBy::Signal,
        threads_seen: seen.len(),
        counters: counter_values,
        probes: probes_report,
        warnings,
        machine: profile,
    };
    report::export::emit(&r, o.json, out_dir.as_deref())?;
    Ok(r)
}

/// Counters over every thread of the target. Software figures come from the
/// kernel's own per-thread accounting (/proc/PID/task/TID/{schedstat,status,stat,
/// sched}) read at the start and the end: per-task perf software events would
/// cost the target ~13% here (measured, docs/benchmarks.md), because perf must
/// switch their contexts on every context switch. Hardware events, which have no
/// such counterpart, use perf (with inherit) when the PMU is available.
mod counters {
    use super::*;

    /// Kernel accounting of one thread at one moment.
    #[derive(Debug, Clone, Copy, Default, PartialEq)]
    pub struct ThreadAccounting {
        pub cpu_ns: f64,
        pub context_switches: f64,
        pub page_faults: f64,
        pub migrations: Option<f64>,
    }

    /// Parse the procfs files of one thread.
    pub fn parse_accounting(
        schedstat: &str,
        status: &str,
        stat: &str,
        sched: Option<&str>,
    ) -> Option<ThreadAccounting> {
        let cpu_ns: f64 = schedstat.split_whitespace().next()?.parse().ok()?;
        let field = |name: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let switches = field("voluntary_ctxt_switches:") + field("nonvoluntary_ctxt_switches:");
        // stat: fields after the ")" of comm; minflt is field 10, majflt 12 (1-based).
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let minflt: f64 = f.get(7)?.parse().ok()?;
        let majflt: f64 = f.get(9)?.parse().ok()?;
        let migrations = sched.and_then(|s| {
            s.lines()
                .find(|l| l.trim_start().starts_with("se.nr_migrations"))
                .and_then(|l| l.split(':').nth(1)?.trim().parse().ok())
        });
        Some(ThreadAccounting {
            cpu_ns,
            context_switches: switches,
            page_faults: minflt + majflt,
            migrations,
        })
    }

    fn read_thread(pid: u32, tid: u32) -> Option<ThreadAccounting> {
        let base = format!("/proc/{pid}/task/{tid}");
        let r = |f: &str| std::fs::read_to_string(format!("{base}/{f}")).ok();
        parse_accounting(
            &r("schedstat")?,
            &r("status")?,
            &r("stat")?,
            r("sched").as_deref(),
        )
    }

    pub struct TargetCounters {
        /// Each thread's process.
        tgid: BTreeMap<u32, u32>,
        /// Accounting at first sight (zero for threads born while attached) and last read.
        start: BTreeMap<u32, ThreadAccounting>,
        last: BTreeMap<u32, ThreadAccounting>,
        #[cfg(target_os = "linux")]
        hardware: Vec<(String, perf_event::Counter)>,
        #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
        pmu: bool,
    }

    impl TargetCounters {
        pub fn new(caps: &crate::capabilities::Capabilities) -> Self {
            TargetCounters {
                tgid: BTreeMap::new(),
                start: BTreeMap::new(),
                last: BTreeMap::new(),
                #[cfg(target_os = "linux")]
                hardware: Vec::new(),
                pmu: caps.pmu_hardware,
            }
        }

        /// Start counting thread `tid` of process `pid`; `born_now` = created while attached (counts from 0).
        pub fn add_thread(&mut self, pid: u32, tid: u32, born_now: bool) {
            self.tgid.insert(tid, pid);
            let now = read_thread(pid, tid).unwrap_or_default();
            self.start.insert(
                tid,
                if born_now {
                    ThreadAccounting::default()
                } else {
                    now
                },
            );
            self.last.insert(tid, now);
            #[cfg(target_os = "linux")]
            if self.pmu {
                use crate::events::spec::{CounterEvent, EventKind};
                use crate::measure::counters::builder_for;
                for name in ["cycles", "instructions"] {
                    let ev = CounterEvent {
                        label: name.into(),
                        source: Source::Pmu,
                        kind: EventKind::Hardware(name.into()),
                    };
                    let Ok(mut b) = builder_for(&ev) else {
                        continue;
                    };
                    b.observe_pid(tid as i32)
                        .any_cpu()
                        .inherit(true)
                        .read_format(
                            perf_event::ReadFormat::TOTAL_TIME_ENABLED
                                | perf_event::ReadFormat::TOTAL_TIME_RUNNING,
                        );
                    if let Ok(mut c) = b.build() {
                        if c.enable().is_ok() {
                            self.hardware.push((name.to_string(), c));
                        }
                    }
                }
            }
        }

        /// Refresh the last-seen accounting of every live thread (a thread that
        /// exits keeps its last reading).
        pub fn refresh(&mut self) {
            for tid in self.start.keys().copied().collect::<Vec<_>>() {
                if let Some(a) = read_thread(self.tgid[&tid], tid) {
                    self.last.insert(tid, a);
                }
            }
        }

        pub fn read(&mut self) -> BTreeMap<String, CounterValue> {
            self.refresh();
            let mut out: BTreeMap<String, CounterValue> = BTreeMap::new();
            let mut add = |name: &str, v: f64, source: Source| {
                out.entry(name.to_string())
                    .or_insert(CounterValue {
                        value: 0.0,
                        source,
                        running_fraction: 1.0,
                    })
                    .value += v;
            };
            for (tid, s) in &self.start {
                let l = self.last[tid];
                add(
                    "task-clock",
                    (l.cpu_ns - s.cpu_ns).max(0.0),
                    Source::Software,
                );
                add(
                    "context-switches",
                    (l.context_switches - s.context_switches).max(0.0),
                    Source::Software,
                );
                add(
                    "page-faults",
                    (l.page_faults - s.page_faults).max(0.0),
                    Source::Software,
                );
                if let (Some(a), Some(b)) = (l.migrations, s.migrations.or(Some(0.0))) {
                    add("cpu-migrations", (a - b).max(0.0), Source::Software);
                }
            }
            #[cfg(target_os = "linux")]
            for (name, c) in &mut self.hardware {
                let Ok(d) = c.read_full() else { continue };
                let en = d.time_enabled().map_or(0, |t| t.as_nanos() as u64);
                let run = d.time_running().map_or(0, |t| t.as_nanos() as u64);
                let e = out.entry(name.clone()).or_insert(CounterValue {
                    value: 0.0,
                    source: Source::Pmu,
                    running_fraction: 1.0,
                });
                e.value += crate::measure::scale(d.count(), en, run);
                if en > 0 {
                    e.running_fraction = e.running_fraction.min(run as f64 / en as f64);
                }
            }
            out
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_procfs_accounting() {
            let stat = "1234 (my (odd) comm) S 1 1234 1234 0 -1 4194560 150 0 3 0 12 5 0 0 20 0 4 0 100 0 0";
            let status = "Name:\tx\nvoluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t5\n";
            let sched = "x (1234, #threads: 4)\n---\nse.nr_migrations                             :                   7\n";
            let a = parse_accounting("123456 789 42\n", status, stat, Some(sched)).unwrap();
            assert_eq!(a.cpu_ns, 123456.0);
            assert_eq!(a.context_switches, 15.0);
            assert_eq!(a.page_faults, 153.0);
            assert_eq!(a.migrations, Some(7.0));
            assert!(parse_accounting("x", status, stat, None).is_none());
        }
    }
}
