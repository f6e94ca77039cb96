//! `hwprof attach --pid PID`: probes and counters on a running process, for as
//! long as asked, until Ctrl-C/SIGTERM, or until the target exits — the report is
//! written in every case, and every program, link and perf fd is closed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::usage;
use crate::machine::{self, MachineProfile};
use crate::measure::Source;
use crate::probes::{CollectContext, ProbeKind, ProbeOptions, ProbesReport, Session, UprobeSpec};
use crate::report;
use crate::topology::TopologySource;

#[derive(Debug, Clone)]
pub struct AttachOptions {
    pub pid: u32,
    pub probes: String,
    pub uprobes: Vec<String>,
    pub duration: f64,
    pub frequency: u64,
    pub json: bool,
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CounterValue {
    pub value: f64,
    pub source: Source,
    /// Smallest running fraction over threads (1 = never multiplexed).
    pub running_fraction: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachReport {
    pub schema_version: u32,
    pub kind: String,
    pub target: BTreeMap<String, String>,
    pub duration_s: f64,
    /// `duration`, `signal` or `target-exit`.
    pub ended_by: String,
    pub threads_seen: usize,
    /// Counters over all the target's threads (including those created while attached).
    pub counters: BTreeMap<String, CounterValue>,
    pub probes: ProbesReport,
    pub warnings: Vec<String>,
    pub machine: MachineProfile,
}

fn threads_of(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

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
    if !alive(o.pid) {
        return Err(usage(format!("--pid {}: no such process", o.pid)));
    }
    let probes = ProbeKind::parse_list(&o.probes).map_err(|e| usage(format!("--probes: {e}")))?;
    let uprobes = o
        .uprobes
        .iter()
        .map(|u| UprobeSpec::parse(u).map_err(usage))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 && owner_uid(o.pid).is_some_and(|u| u != euid) {
        return Err(usage(format!(
            "--pid {}: may not trace a process of another user (uid {}); run with sudo",
            o.pid,
            owner_uid(o.pid).unwrap_or(0)
        )));
    }
    let out_dir = o
        .out
        .as_deref()
        .map(report::output::prepare_dir)
        .transpose()?;
    let (profile, _loaded) = machine::discover(&TopologySource::Host)?;

    let initial = threads_of(o.pid);
    let opts = ProbeOptions {
        probes,
        uprobes,
        frequency: o.frequency,
    };
    let pairs: Vec<(u32, u32)> = initial.iter().map(|&t| (t, o.pid)).collect();
    let mut session = Session::start(&opts, &pairs).map_err(|e| {
        if e.contains("not built") || e.contains("sudo") || e.contains("CAP_") {
            usage(e)
        } else {
            anyhow::anyhow!(e)
        }
    })?;
    let mut counters = counters::TargetCounters::new(&profile.capabilities);
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    for &t in &initial {
        counters.add_thread(t);
        seen.insert(t);
    }
    eprintln!(
        "hwprof: attached to pid {} ({} threads), probes {}, for {} s (Ctrl-C ends early)",
        o.pid,
        initial.len(),
        o.probes,
        o.duration
    );
    let start = Instant::now();
    let limit = Duration::from_secs_f64(o.duration);
    let ended_by = loop {
        if interrupted.load(Ordering::Relaxed) {
            break "signal";
        }
        if !alive(o.pid) {
            break "target-exit";
        }
        if start.elapsed() >= limit {
            break "duration";
        }
        for t in threads_of(o.pid) {
            if seen.insert(t) {
                session.track(t, o.pid);
                counters.add_thread(t);
            }
        }
        std::thread::sleep(Duration::from_millis(50).min(limit.saturating_sub(start.elapsed())));
    };
    let duration_s = start.elapsed().as_secs_f64();
    let probes_report = session.collect(&CollectContext {
        topology: &profile.topology,
        pid: o.pid,
        duration_s,
        profile_out: out_dir.as_deref(),
    });
    drop(session);
    let counter_values = counters.read();
    let mut target = BTreeMap::new();
    target.insert("pid".into(), o.pid.to_string());
    if let Ok(c) = std::fs::read_to_string(format!("/proc/{}/comm", o.pid)) {
        target.insert("comm".into(), c.trim().to_string());
    }
    let mut warnings = probes_report.warnings.clone();
    if !probes_report.drops.is_empty() {
        warnings.push(format!(
            "kernel-side map updates dropped (maps full): {:?}",
            probes_report.drops
        ));
    }
    let r = AttachReport {
        schema_version: 1,
        kind: "attach".into(),
        target,
        duration_s,
        ended_by: ended_by.into(),
        threads_seen: seen.len(),
        counters: counter_values,
        probes: probes_report,
        warnings,
        machine: profile,
    };
    let text = report::json::to_string(&r);
    if let Some(dir) = &out_dir {
        report::output::write_atomic(&dir.join("attach.json"), text.as_bytes())?;
        report::output::write_atomic(
            &dir.join("attach.md"),
            format!("# hwprof attach\n\n```\n{}```\n", render(&r)).as_bytes(),
        )?;
    }
    if o.json {
        println!("{text}");
    } else {
        print!("{}", render(&r));
    }
    Ok(r)
}

fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

pub fn render(r: &AttachReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "hwprof attach — pid {} ({}) — {:.1} s, ended by {}, {} threads seen",
        r.target.get("pid").map(String::as_str).unwrap_or("?"),
        r.target.get("comm").map(String::as_str).unwrap_or("?"),
        r.duration_s,
        r.ended_by,
        r.threads_seen
    );
    for (name, c) in &r.counters {
        let _ = writeln!(s, "  {name:<18} {:>14.0} ({})", c.value, c.source.name());
    }
    let p = &r.probes;
    if let Some(sc) = &p.sched {
        let _ = writeln!(
            s,
            "sched (probe): on-CPU {}, off-CPU {}, {} migrations {:?}, run-queue latency p50 <= {} ns, p99 <= {} ns",
            ms(sc.total_on_cpu_ns),
            ms(sc.total_off_cpu_ns),
            sc.total_migrations,
            sc.migrations_by_class,
            sc.runq_latency.p50_ns_le,
            sc.runq_latency.p99_ns_le
        );
    }
    if let Some(f) = &p.futex {
        let _ = writeln!(
            s,
            "futex (probe): {} waits, {} waiting, {} wakes",
            f.total_waits,
            ms(f.total_wait_ns),
            f.total_wakes
        );
        for a in f.top.iter().take(5) {
            let _ = writeln!(
                s,
                "  {} {}: {} waits, {} total, max {}, {} waiter(s), {} wakes",
                a.uaddr,
                a.resolved.as_ref().map_or(String::new(), |x| x.describe()),
                a.waits,
                ms(a.wait_ns),
                ms(a.max_wait_ns),
                a.waiting_threads,
                a.wakes
            );
        }
    }
    if let Some(l) = &p.locks {
        let _ = writeln!(
            s,
            "locks (probe): {} kernel lock contentions, {} waiting",
            l.total_contentions,
            ms(l.total_wait_ns)
        );
        for k in l.top.iter().take(5) {
            let _ = writeln!(
                s,
                "  {} {} {}: {} x, {}",
                k.lock,
                k.symbol.as_deref().unwrap_or(""),
                k.kind,
                k.count,
                ms(k.wait_ns)
            );
        }
    }
    if let Some(m) = &p.memory {
        let _ = writeln!(
            s,
            "memory (probe): {} user page faults, {} pages migrated, NUMA moves {} swaps {} sticks {}",
            m.page_faults, m.migrated_pages, m.numa_moves, m.numa_swaps, m.numa_sticks
        );
    }
    for u in &p.uprobes {
        let _ = writeln!(
            s,
            "uprobe {}:{} (probe): {} calls, mean {} ns, p99 <= {} ns",
            u.binary, u.symbol, u.calls, u.mean_ns, u.latency.p99_ns_le
        );
    }
    if let Some(pr) = &p.profile {
        let _ = writeln!(
            s,
            "profile (probe): {} samples at {} Hz; hottest: {:?}",
            pr.samples,
            pr.frequency_hz,
            pr.top_functions.iter().take(5).collect::<Vec<_>>()
        );
        if let Some(svg) = &pr.svg_file {
            let _ = writeln!(s, "  flame graph: {svg}");
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

/// Software (and hardware, where the PMU allows) counters over every thread of
/// the target; each thread's counters inherit to the threads it creates.
mod counters {
    use super::*;

    pub struct TargetCounters {
        /// One counter per event per thread: software events of another task do
        /// not count as members of a group led by task-clock (seen on 6.18), so
        /// each stands alone, with its own enabled/running times.
        #[cfg(target_os = "linux")]
        counters: Vec<(String, Source, perf_event::Counter)>,
        hardware: bool,
    }

    impl TargetCounters {
        pub fn new(caps: &crate::capabilities::Capabilities) -> Self {
            TargetCounters {
                #[cfg(target_os = "linux")]
                counters: Vec::new(),
                hardware: caps.pmu_hardware,
            }
        }

        #[cfg(target_os = "linux")]
        pub fn add_thread(&mut self, tid: u32) {
            use crate::events::spec::{CounterEvent, EventKind};
            use crate::measure::counters::builder_for;
            let mut events = vec![
                (
                    "task-clock",
                    Source::Software,
                    EventKind::Software("task-clock".into()),
                ),
                (
                    "context-switches",
                    Source::Software,
                    EventKind::Software("context-switches".into()),
                ),
                (
                    "cpu-migrations",
                    Source::Software,
                    EventKind::Software("cpu-migrations".into()),
                ),
                (
                    "page-faults",
                    Source::Software,
                    EventKind::Software("page-faults".into()),
                ),
            ];
            if self.hardware {
                events.push(("cycles", Source::Pmu, EventKind::Hardware("cycles".into())));
                events.push((
                    "instructions",
                    Source::Pmu,
                    EventKind::Hardware("instructions".into()),
                ));
            }
            for (name, source, kind) in events {
                let Ok(mut b) = builder_for(&CounterEvent {
                    label: name.into(),
                    source,
                    kind,
                }) else {
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
                        self.counters.push((name.to_string(), source, c));
                    }
                }
            }
        }

        #[cfg(not(target_os = "linux"))]
        pub fn add_thread(&mut self, _tid: u32) {}

        pub fn read(&mut self) -> BTreeMap<String, CounterValue> {
            let mut out: BTreeMap<String, CounterValue> = BTreeMap::new();
            #[cfg(target_os = "linux")]
            for (name, source, c) in &mut self.counters {
                let Ok(d) = c.read_full() else { continue };
                let en = d.time_enabled().map_or(0, |t| t.as_nanos() as u64);
                let run = d.time_running().map_or(0, |t| t.as_nanos() as u64);
                let e = out.entry(name.clone()).or_insert(CounterValue {
                    value: 0.0,
                    source: *source,
                    running_fraction: 1.0,
                });
                e.value += crate::measure::scale(d.count(), en, run);
                if en > 0 {
                    e.running_fraction = e.running_fraction.min(run as f64 / en as f64);
                }
            }
            let _ = self.hardware;
            out
        }
    }
}
