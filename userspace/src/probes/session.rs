//! Loading, attaching, tracking threads and reading back (aya 0.13). Dropping a
//! Session detaches every program and closes every map: nothing is pinned, so
//! nothing outlives hwprof, whatever way it ends.

use std::collections::{BTreeSet, HashMap as StdHashMap};

use aya::maps::{Array, HashMap, MapData, StackTraceMap};
use aya::programs::perf_event::{perf_sw_ids, PerfEventScope, PerfTypeId, SamplePolicy};
use aya::programs::{PerfEvent, TracePoint, UProbe};
use aya::Ebpf;
use hwprof_probes_common::*;

use super::{futex, hist::Log2Hist, locks, memory, profile, sched, tracefs, uprobe};
use super::{CollectContext, ProbeKind, ProbeOptions, ProbesReport};
use crate::symbols::Symbolizer;

static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("HWPROF_PROBES_OBJ"));

pub struct Session {
    ebpf: Ebpf,
    /// None where tracefs is not mounted or not readable (tracepoints then fail).
    tracefs: Option<String>,
    opts: ProbeOptions,
    active: Vec<ProbeKind>,
    warnings: Vec<String>,
    tracked: BTreeSet<u32>,
}

fn find_tracefs() -> Option<String> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .find(|d| std::path::Path::new(d).join("events").is_dir())
        .map(str::to_string)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; bpf_ktime_get_ns uses CLOCK_MONOTONIC too.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Session {
    /// Load the programs, track `threads` ((tid, tgid) pairs) and attach what
    /// `opts` asks for. Probes that cannot attach are skipped with a warning.
    pub fn start(
        opts: &ProbeOptions,
        threads: &[(u32, u32)],
    ) -> Result<Session, super::StartError> {
        use super::StartError;
        // The programs first: without BPF nothing attaches, whatever tracefs says.
        // tracefs is needed by the tracepoint probes only (not by profile).
        let tracefs = find_tracefs();
        let ebpf = Ebpf::load(OBJECT).map_err(|e| {
            StartError::Unavailable(format!("loading hwprof's eBPF programs failed: {e}; run with sudo (or grant CAP_BPF and CAP_PERFMON)"))
        })?;
        let mut s = Session {
            ebpf,
            tracefs,
            opts: opts.clone(),
            active: Vec::new(),
            warnings: Vec::new(),
            tracked: BTreeSet::new(),
        };
        for &(tid, tgid) in threads {
            s.track(tid, tgid);
        }
        if let Err(e) = s.attach_tracepoint("hwp_sched_fork", "sched", "sched_process_fork") {
            s.warnings.push(format!(
                "threads created after attaching will not be tracked: {e}"
            ));
        }
        for &kind in &opts.probes {
            let programs: &[(&str, &str, &str)] = match kind {
                ProbeKind::Sched => sched::PROGRAMS,
                ProbeKind::Futex => futex::PROGRAMS,
                ProbeKind::Locks => locks::PROGRAMS,
                ProbeKind::Memory => memory::PROGRAMS,
                ProbeKind::Profile => &[],
            };
            let mut attached = 0;
            for (prog, cat, ev) in programs {
                match s.attach_tracepoint(prog, cat, ev) {
                    Ok(()) => attached += 1,
                    Err(e) => s
                        .warnings
                        .push(format!("{}: {cat}:{ev} not attached: {e}", kind.name())),
                }
            }
            if kind == ProbeKind::Profile {
                match s.attach_profile(opts.frequency.max(1)) {
                    Ok(n) => attached += n,
                    Err(e) => s.warnings.push(format!("profile: {e}")),
                }
            }
            if attached > 0 {
                s.active.push(kind);
            } else {
                s.warnings.push(format!(
                    "{}: no program attached; the probe is off",
                    kind.name()
                ));
            }
        }
        for (i, u) in opts.uprobes.iter().enumerate() {
            if i as u32 >= MAX_UPROBES {
                s.warnings.push(format!(
                    "--uprobe {}: at most {MAX_UPROBES} uprobes",
                    u.symbol
                ));
                continue;
            }
            if let Err(e) = s.attach_uprobe(i, u) {
                return Err(StartError::Failed(format!(
                    "--uprobe {}:{}: {e}",
                    u.binary.display(),
                    u.symbol
                )));
            }
        }
        if s.active.is_empty() && opts.uprobes.is_empty() {
            return Err(StartError::Unavailable(format!(
                "no probe could be attached: {}",
                s.warnings.join("; ")
            )));
        }
        Ok(s)
    }

    fn attach_tracepoint(&mut self, prog: &str, cat: &str, ev: &str) -> Result<(), String> {
        let dir = self.tracefs.as_deref().ok_or(
            "tracefs is not mounted or not readable by this user: run with sudo (hwprof mounts it)",
        )?;
        tracefs::check(dir, &format!("{cat}/{ev}"))?;
        let p: &mut TracePoint = self
            .ebpf
            .program_mut(prog)
            .ok_or_else(|| format!("program {prog} missing from the object"))?
            .try_into()
            .map_err(|e| format!("{prog}: {e}"))?;
        p.load().map_err(|e| format!("loading {prog}: {e}"))?;
        p.attach(cat, ev)
            .map_err(|e| format!("attaching {prog}: {e}"))?;
        Ok(())
    }

    fn attach_profile(&mut self, hz: u64) -> Result<usize, String> {
        let cpus = crate::topology::linux_sysfs::host()
            .map_err(|e| e.to_string())?
            .usable_cpus();
        let p: &mut PerfEvent = self
            .ebpf
            .program_mut("hwp_profile")
            .ok_or("program hwp_profile missing")?
            .try_into()
            .map_err(|e| format!("{e}"))?;
        p.load()
            .map_err(|e| format!("loading the profile program: {e}"))?;
        for &cpu in &cpus {
            p.attach(
                PerfTypeId::Software,
                perf_sw_ids::PERF_COUNT_SW_CPU_CLOCK as u64,
                PerfEventScope::AllProcessesOneCpu { cpu: cpu as u32 },
                SamplePolicy::Frequency(hz),
                false,
            )
            .map_err(|e| format!("cpu-clock sampling on CPU {cpu}: {e}"))?;
        }
        Ok(cpus.len())
    }

    fn attach_uprobe(&mut self, slot: usize, u: &uprobe::UprobeSpec) -> Result<(), String> {
        for (prog, what) in [
            (format!("hwp_uprobe{slot}"), "entry"),
            (format!("hwp_uret{slot}"), "return"),
        ] {
            let p: &mut UProbe = self
                .ebpf
                .program_mut(&prog)
                .ok_or_else(|| format!("program {prog} missing"))?
                .try_into()
                .map_err(|e| format!("{e}"))?;
            p.load()
                .map_err(|e| format!("loading the {what} probe: {e}"))?;
            p.attach(None, u.offset, &u.binary, None)
                .map_err(|e| format!("attaching the {what} probe: {e}"))?;
        }
        Ok(())
    }

    /// Track one more thread (an experiment's worker, a thread found by rescanning).
    pub fn track(&mut self, tid: u32, tgid: u32) {
        if !self.tracked.insert(tid) {
            return;
        }
        if let Some(m) = self.ebpf.map_mut("TIDS") {
            if let Ok(mut tids) = HashMap::<&mut MapData, u32, u32>::try_from(m) {
                if tids.insert(tid, tgid, 0).is_err() {
                    self.warnings
                        .push(format!("thread {tid} could not be tracked (TIDS map full)"));
                }
            }
        }
    }

    fn hist(&self, slot: u32) -> Vec<u64> {
        let Some(m) = self.ebpf.map("HISTS") else {
            return vec![0; 64];
        };
        let Ok(a) = Array::<&MapData, u64>::try_from(m) else {
            return vec![0; 64];
        };
        (0..HIST_BUCKETS)
            .map(|b| a.get(&(slot * HIST_BUCKETS + b), 0).unwrap_or(0))
            .collect()
    }

    fn hash<K: aya::Pod + Ord, V: aya::Pod>(&self, name: &str) -> Vec<(K, V)> {
        let Some(m) = self.ebpf.map(name) else {
            return vec![];
        };
        let Ok(h) = HashMap::<&MapData, K, V>::try_from(m) else {
            return vec![];
        };
        let mut v: Vec<(K, V)> = h.iter().filter_map(Result::ok).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Read every map into a report. The programs stay attached.
    pub fn collect(&mut self, ctx: &CollectContext<'_>) -> ProbesReport {
        let now = monotonic_ns();
        let threads: Vec<(u32, ThreadStats)> = {
            let Some(m) = self.ebpf.map("THREADS") else {
                return ProbesReport::default();
            };
            match HashMap::<&MapData, u32, ThreadStats>::try_from(m) {
                Ok(h) => h.iter().filter_map(Result::ok).collect(),
                Err(_) => vec![],
            }
        };
        let mut report = ProbesReport {
            source: "probe".into(),
            probes: self.active.iter().map(|k| k.name().to_string()).collect(),
            duration_s: ctx.duration_s,
            threads_tracked: self.tracked.len().max(threads.len()),
            warnings: self.warnings.clone(),
            ..Default::default()
        };
        if self.active.contains(&ProbeKind::Sched) {
            let mut per: Vec<sched::ThreadReport> = threads
                .iter()
                .map(|(tid, s)| {
                    // A thread on CPU right now has not been switched out yet.
                    let running = if s.last_on > s.last_off && s.last_on < now {
                        now - s.last_on
                    } else {
                        0
                    };
                    sched::ThreadReport {
                        tid: *tid,
                        tgid: s.tgid,
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
            let migrations: Vec<((u32, u32), u64)> = self
                .hash::<MigrationKey, u64>("MIGRATIONS")
                .into_iter()
                .map(|(k, n)| ((k.orig_cpu, k.dest_cpu), n))
                .collect();
            report.sched = Some(sched::build(
                per,
                &migrations,
                &self.hist(HIST_RUNQ),
                &self.hist(HIST_OFF_CPU),
                ctx.topology,
            ));
        }
        if self.active.contains(&ProbeKind::Futex) {
            let mut entries = self.hash::<FutexKey, FutexStats>("FUTEXES");
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
                    futex::AddressReport {
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
            report.futex = Some(futex::Report {
                total_waits: entries.iter().map(|e| e.1.waits).sum(),
                total_wait_ns: entries.iter().map(|e| e.1.wait_ns).sum(),
                total_wakes: entries.iter().map(|e| e.1.wakes).sum(),
                top,
                wait_time: Log2Hist::from_counts(&self.hist(HIST_FUTEX_WAIT)),
            });
        }
        if self.active.contains(&ProbeKind::Locks) {
            let mut entries = self.hash::<LockKey, LockStats>("LOCKS");
            entries.sort_by(|a, b| b.1.wait_ns.cmp(&a.1.wait_ns));
            let ks = profile::Kallsyms::load();
            let traces = self
                .ebpf
                .map("STACKS")
                .and_then(|m| StackTraceMap::<&MapData>::try_from(m).ok());
            let caller = |id: i32| -> Option<String> {
                let st = traces.as_ref()?.get(&(u32::try_from(id).ok()?), 0).ok()?;
                let names: Vec<&str> = st
                    .frames()
                    .iter()
                    .filter_map(|f| ks.resolve(f.ip))
                    .collect();
                locks::caller(names.iter().copied()).map(str::to_string)
            };
            report.locks = Some(locks::Report {
                total_contentions: entries.iter().map(|e| e.1.count).sum(),
                total_wait_ns: entries.iter().map(|e| e.1.wait_ns).sum(),
                top: entries
                    .iter()
                    .take(10)
                    .map(|(k, v)| locks::LockReport {
                        lock: format!("{:#x}", k.lock),
                        symbol: ks.resolve(k.lock).map(str::to_string),
                        kind: locks::lock_type(k.flags),
                        caller: caller(k.stack),
                        count: v.count,
                        wait_ns: v.wait_ns,
                        max_wait_ns: v.max_wait_ns,
                    })
                    .collect(),
                wait_time: Log2Hist::from_counts(&self.hist(HIST_LOCK_WAIT)),
            });
        }
        if self.active.contains(&ProbeKind::Memory) {
            let per: Vec<memory::ThreadMemory> = threads
                .iter()
                .map(|(tid, s)| memory::ThreadMemory {
                    tid: *tid,
                    page_faults: s.page_faults,
                    numa_moves: s.numa_moves,
                    numa_swaps: s.numa_swaps,
                    numa_sticks: s.numa_sticks,
                    migrated_pages: s.migrated_pages,
                })
                .collect();
            report.memory = Some(memory::Report {
                page_faults: per.iter().map(|t| t.page_faults).sum(),
                migrated_pages: per.iter().map(|t| t.migrated_pages).sum(),
                numa_moves: per.iter().map(|t| t.numa_moves).sum(),
                numa_swaps: per.iter().map(|t| t.numa_swaps).sum(),
                numa_sticks: per.iter().map(|t| t.numa_sticks).sum(),
                threads: per,
            });
        }
        if !self.opts.uprobes.is_empty() {
            let stats: Vec<UprobeStats> = self
                .ebpf
                .map("UPROBES")
                .and_then(|m| Array::<&MapData, UprobeStats>::try_from(m).ok())
                .map(|a| {
                    (0..MAX_UPROBES)
                        .map(|i| a.get(&i, 0).unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            for (i, u) in self
                .opts
                .uprobes
                .iter()
                .enumerate()
                .take(MAX_UPROBES as usize)
            {
                let st = stats.get(i).copied().unwrap_or_default();
                report.uprobes.push(uprobe::Report {
                    binary: u.binary.display().to_string(),
                    symbol: u.symbol.clone(),
                    calls: st.calls,
                    total_ns: st.total_ns,
                    mean_ns: st.total_ns.checked_div(st.calls).unwrap_or(0),
                    latency: Log2Hist::from_counts(&self.hist(HIST_UPROBE0 + i as u32)),
                });
            }
        }
        if self.active.contains(&ProbeKind::Profile) {
            report.profile = Some(self.collect_profile(ctx));
        }
        if let Some(a) = self
            .ebpf
            .map("DROPS")
            .and_then(|m| Array::<&MapData, u64>::try_from(m).ok())
        {
            for (i, name) in [
                "threads",
                "futex",
                "locks",
                "stacks",
                "uprobe",
                "migrations",
            ]
            .iter()
            .enumerate()
            {
                let n = a.get(&(i as u32), 0).unwrap_or(0);
                if n > 0 {
                    report.drops.insert(name.to_string(), n);
                }
            }
        }
        report
    }

    fn collect_profile(&self, ctx: &CollectContext<'_>) -> profile::Report {
        let counts = self.hash::<StackKey, u64>("STACK_COUNTS");
        let traces = self
            .ebpf
            .map("STACKS")
            .and_then(|m| StackTraceMap::<&MapData>::try_from(m).ok());
        let frames = |id: i32| -> Vec<u64> {
            if id < 0 {
                return vec![];
            }
            traces
                .as_ref()
                .and_then(|t| t.get(&(id as u32), 0).ok())
                .map(|st| st.frames().iter().map(|f| f.ip).collect())
                .unwrap_or_default()
        };
        let stacks: Vec<(Vec<u64>, Vec<u64>, u64)> = counts
            .iter()
            .map(|(k, n)| (frames(k.user_stack), frames(k.kernel_stack), *n))
            .collect();
        let mut sym = Symbolizer::for_pid(ctx.pid).ok();
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", ctx.pid))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "target".into());
        let (folded, leaf) = profile::fold(&stacks, &mut sym, &profile::Kallsyms::load(), &comm);
        let mut lines: Vec<(String, u64)> = folded.into_iter().collect();
        lines.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let folded: Vec<String> = lines.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let mut top: Vec<(String, u64)> = leaf.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1));
        top.truncate(20);
        let (folded_file, svg_file) = match ctx.profile_out {
            Some(dir) => {
                match profile::write_outputs(dir, &folded, &format!("hwprof profile: {comm}")) {
                    Ok((f, s)) => (Some(f), s),
                    Err(_) => (None, None),
                }
            }
            None => (None, None),
        };
        profile::Report {
            frequency_hz: self.opts.frequency,
            samples: counts.iter().map(|c| c.1).sum(),
            folded,
            top_functions: top,
            folded_file,
            svg_file,
        }
    }
}
