//! Loading, attaching, tracking threads and reading back (aya 0.13). Dropping a
//! Session detaches every program and closes every map: nothing is pinned, so
//! nothing outlives hwprof, whatever way it ends.

use std::collections::BTreeSet;

use aya::maps::{Array, HashMap, MapData, StackTraceMap};
use aya::programs::{BtfTracePoint, TracePoint, UProbe};
use aya::{Btf, Ebpf, EbpfLoader};
use hwprof_probes_common::*;

use super::{hist::Log2Hist, tracefs, uprobe};
use super::{CollectContext, ProbeKind, ProbeOptions, ProbesReport};

static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("HWPROF_PROBES_OBJ"));
/// The same programs without the EVENTS ring buffer, for kernels before 5.8.
static OBJECT_NO_EVENTS: &[u8] = aya::include_bytes_aligned!(env!("HWPROF_PROBES_OBJ_NO_EVENTS"));

/// Set (to anything) to load the object without the ring buffer, as on a
/// kernel before 5.8 (tests use it; so can a user whose kernel misreports).
pub const NO_EVENTS_ENV: &str = "HWPROF_PROBES_NO_EVENTS";

/// Set (to anything) to attach a probe's BTF raw tracepoints rather than its
/// classic tracepoints (the overhead benchmark compares the two; without it
/// they are the fallback where the classic ones cannot attach).
pub const BTF_TRACEPOINTS_ENV: &str = "HWPROF_PROBES_BTF";

/// The host's syscall numbering and pt_regs layout for the BTF syscall
/// programs (one object serves every architecture): futex's number, and the
/// pt_regs offsets of arguments 0 and 1 and of the syscall number.
#[cfg(target_arch = "x86_64")]
static SYSCALL_ABI: Option<(i64, u64, u64, u64)> = Some((202, 112, 104, 120));
// arm64: orig_x0 (x0 is overwritten by the return value), regs[1], syscallno.
#[cfg(target_arch = "aarch64")]
static SYSCALL_ABI: Option<(i64, u64, u64, u64)> = Some((98, 272, 8, 280));
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
static SYSCALL_ABI: Option<(i64, u64, u64, u64)> = None;

fn load_bytes(object: &[u8]) -> Result<Ebpf, aya::EbpfError> {
    let mut loader = EbpfLoader::new();
    if let Some((nr, arg0, arg1, nr_off)) = &SYSCALL_ABI {
        loader
            .set_global("HWP_NR_FUTEX", nr, true)
            .set_global("HWP_REGS_ARG0", arg0, true)
            .set_global("HWP_REGS_ARG1", arg1, true)
            .set_global("HWP_REGS_NR", nr_off, true);
    }
    loader.load(object)
}

/// Load the full object, or the one without the ring buffer where the kernel
/// has none. The bool: delay events are streamed.
fn load_object() -> Result<(Ebpf, bool, Option<String>), String> {
    let lost = "slow requests are not lined up with the target's delays (tails::attribute); \
                the counters and histograms are unaffected";
    if std::env::var_os(NO_EVENTS_ENV).is_some() {
        let e = load_bytes(OBJECT_NO_EVENTS).map_err(|e| e.to_string())?;
        return Ok((
            e,
            false,
            Some(format!(
                "{NO_EVENTS_ENV} is set: delay events are not streamed, so {lost}"
            )),
        ));
    }
    match load_bytes(OBJECT) {
        Ok(e) => Ok((e, true, None)),
        Err(full) => match load_bytes(OBJECT_NO_EVENTS) {
            Ok(e) => Ok((
                e,
                false,
                Some(format!(
                    "the kernel refused the BPF ring buffer ({full}; it needs Linux 5.8): delay events \
                     are not streamed, so {lost}; run on a newer kernel to regain them"
                )),
            )),
            // Both failed: the full object's error is the one to show.
            Err(_) => Err(full.to_string()),
        },
    }
}

pub struct Session {
    ebpf: Ebpf,
    /// None where tracefs is not mounted or not readable (tracepoints then fail).
    tracefs: Option<String>,
    opts: ProbeOptions,
    active: Vec<ProbeKind>,
    warnings: Vec<String>,
    tracked: BTreeSet<u32>,
    /// Each thread's process and name when last seen alive (a thread that
    /// exits before the report keeps the name it had).
    names: std::collections::BTreeMap<u32, (u32, String)>,
    /// The object has the EVENTS ring buffer (not on kernels before 5.8).
    streams_events: bool,
    /// The EVENTS ring buffer (taken from the object once), and what it gave.
    ring: Option<aya::maps::RingBuf<MapData>>,
    events: Vec<DelayEvent>,
    /// Events read beyond [`MAX_EVENTS`] and not kept.
    events_over: u64,
    /// How each probe attached, for the report.
    attached: Vec<String>,
    /// The kernel's BTF, read once when a probe wants BTF raw tracepoints.
    btf: Option<Result<Btf, String>>,
    /// Held while `--probe-cost` has the kernel time every BPF program run
    /// (it stops when the fd closes, with the session).
    run_time_stats: Option<std::os::fd::OwnedFd>,
}

/// Delay events kept in memory at most (32 B each: 64 MiB).
pub const MAX_EVENTS: usize = 2_000_000;

fn find_tracefs() -> Option<String> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .find(|d| std::path::Path::new(d).join("events").is_dir())
        .map(str::to_string)
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
        let (ebpf, streams_events, lowered) = load_object().map_err(|e| {
            StartError::Unavailable(format!("loading hwprof's eBPF programs failed: {e}; run with sudo (or grant CAP_BPF and CAP_PERFMON)"))
        })?;
        let mut s = Session {
            ebpf,
            tracefs,
            opts: opts.clone(),
            active: Vec::new(),
            warnings: lowered.into_iter().collect(),
            streams_events,
            tracked: BTreeSet::new(),
            names: Default::default(),
            ring: None,
            events: Vec::new(),
            events_over: 0,
            attached: Vec::new(),
            btf: None,
            run_time_stats: None,
        };
        if opts.cost {
            match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
                Ok(fd) => s.run_time_stats = Some(fd),
                Err(e) => s.warnings.push(format!(
                    "--probe-cost: the probes' cost is not measured: BPF_ENABLE_STATS failed ({e}); it needs Linux 5.8 and CAP_SYS_ADMIN, or `sysctl kernel.bpf_stats_enabled=1`"
                )),
            }
        }
        for &(tid, tgid) in threads {
            s.track(tid, tgid);
        }
        if let Err(e) = s.attach_tracepoint("hwp_sched_fork", "sched", "sched_process_fork") {
            s.warnings.push(format!(
                "threads created after attaching will not be tracked: {e}"
            ));
        }
        for &kind in &opts.probes {
            let mut attached = 0;
            let info = kind.0.info();
            // Classic tracepoints first: BTF raw syscall tracepoints run for
            // every syscall of every process (measured here: +70-110 ns per
            // getppid of an untraced process, +0-65 ns for the classic pair,
            // and no difference for the target), so they are the fallback.
            let prefer_btf = std::env::var_os(BTF_TRACEPOINTS_ENV).is_some();
            let mut btf = if prefer_btf {
                s.attach_btf_tracepoints(kind)
            } else {
                0
            };
            if btf == 0 {
                let mut how = Vec::new();
                let mut failed = Vec::new();
                for (prog, cat, ev) in info.tracepoints {
                    match s.attach_tracepoint(prog, cat, ev) {
                        Ok(()) => {
                            attached += 1;
                            how.push(format!("{cat}:{ev}"));
                        }
                        Err(e) => {
                            failed.push(format!("{}: {cat}:{ev} not attached: {e}", kind.name()))
                        }
                    }
                }
                if !how.is_empty() {
                    s.attached
                        .push(format!("{}: tracepoints {}", kind.name(), how.join(", ")));
                } else if !prefer_btf && !info.btf_tracepoints.is_empty() {
                    btf = s.attach_btf_tracepoints(kind);
                    if btf > 0 {
                        failed.push(format!(
                            "{}: BTF raw tracepoints used instead of the classic ones; they run for every syscall \
                             of every process (about +100 ns a syscall here)",
                            kind.name()
                        ));
                    }
                }
                s.warnings.extend(failed);
            }
            attached += btf;
            match kind.0.attach_other(&mut s.ebpf, opts) {
                Ok(n) => attached += n,
                Err(e) => s.warnings.push(format!("{}: {e}", kind.name())),
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

    /// Attach every BTF raw tracepoint of `kind` (how many: 0 when it has none
    /// or any of them failed, after detaching the others, with a warning).
    fn attach_btf_tracepoints(&mut self, kind: ProbeKind) -> usize {
        let progs = kind.0.info().btf_tracepoints;
        if progs.is_empty() {
            return 0;
        }
        let result = (|| -> Result<(), String> {
            if SYSCALL_ABI.is_none() {
                return Err("no syscall register layout for this architecture".into());
            }
            let btf = self
                .btf
                .get_or_insert_with(|| {
                    Btf::from_sys_fs().map_err(|e| format!("reading /sys/kernel/btf/vmlinux: {e}"))
                })
                .as_ref()
                .map_err(Clone::clone)?;
            for (prog, tp) in progs {
                let p: &mut BtfTracePoint = self
                    .ebpf
                    .program_mut(prog)
                    .ok_or_else(|| format!("program {prog} missing from the object"))?
                    .try_into()
                    .map_err(|e| format!("{prog}: {e}"))?;
                p.load(tp, btf)
                    .map_err(|e| format!("loading {prog}: {e}"))?;
                p.attach().map_err(|e| format!("attaching {prog}: {e}"))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.attached.push(format!(
                    "{}: tp_btf {}",
                    kind.name(),
                    progs
                        .iter()
                        .map(|(_, tp)| *tp)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                progs.len()
            }
            Err(e) => {
                // Whatever did attach goes: one pair of programs does the work.
                for (prog, _) in progs {
                    let p: Option<&mut BtfTracePoint> =
                        self.ebpf.program_mut(prog).and_then(|p| p.try_into().ok());
                    if let Some(p) = p {
                        let _ = p.unload();
                    }
                }
                self.warnings.push(format!(
                    "{}: BTF raw tracepoints not attached ({e}; they need Linux 5.5 and /sys/kernel/btf/vmlinux)",
                    kind.name()
                ));
                0
            }
        }
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

    /// Read the delay events the kernel streamed since the last call (call it
    /// often enough that the ring buffer does not fill: its overflow is
    /// counted under drops.events).
    pub fn drain_events(&mut self) {
        if self.ring.is_none() {
            self.ring = self
                .ebpf
                .take_map("EVENTS")
                .and_then(|m| aya::maps::RingBuf::try_from(m).ok());
        }
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        while let Some(item) = ring.next() {
            if item.len() < std::mem::size_of::<DelayEvent>() {
                continue;
            }
            // SAFETY: the kernel wrote a DelayEvent (repr(C), plain data) here;
            // read_unaligned copes with the ring's 8-byte alignment.
            let e = unsafe { std::ptr::read_unaligned(item.as_ptr() as *const DelayEvent) };
            if self.events.len() < MAX_EVENTS {
                self.events.push(e);
            } else {
                self.events_over += 1;
            }
        }
    }

    /// Delay events are streamed (the kernel has the BPF ring buffer).
    pub fn streams_events(&self) -> bool {
        self.streams_events
    }

    /// The delay events read so far, and how many were not kept.
    pub fn events(&self) -> (&[DelayEvent], u64) {
        (&self.events, self.events_over)
    }

    /// Track one more thread (an experiment's worker, a thread found by rescanning).
    pub fn track(&mut self, tid: u32, tgid: u32) {
        if !self.tracked.insert(tid) {
            return;
        }
        if let Some(id) = identity(tid) {
            self.names.insert(tid, id);
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

    /// Read every map into a report. The programs stay attached.
    pub fn collect(&mut self, ctx: &CollectContext<'_>) -> ProbesReport {
        let now = crate::measure::monotonic_ns();
        let threads: Vec<(u32, ThreadStats)> = {
            let Some(m) = self.ebpf.map("THREADS") else {
                return ProbesReport::default();
            };
            match HashMap::<&MapData, u32, ThreadStats>::try_from(m) {
                Ok(h) => h.iter().filter_map(Result::ok).collect(),
                Err(_) => vec![],
            }
        };
        for (tid, _) in &threads {
            if let Some(id) = identity(*tid) {
                self.names.insert(*tid, id);
            }
        }
        let mut report = ProbesReport {
            source: "probe".into(),
            probes: self.active.iter().map(|k| k.name().to_string()).collect(),
            duration_s: ctx.duration_s,
            threads_tracked: self.tracked.len().max(threads.len()),
            warnings: self.warnings.clone(),
            attached: self.attached.clone(),
            ..Default::default()
        };
        if self.run_time_stats.is_some() {
            let programs = self
                .ebpf
                .programs()
                .filter_map(|(name, p)| {
                    let info = p.info().ok()?;
                    let runs = info.run_count();
                    (runs > 0).then(|| super::ProgramCost {
                        program: name.to_string(),
                        runs,
                        run_ns: info.run_time().as_nanos() as u64,
                        ns_per_run: info.run_time().as_nanos() as f64 / runs as f64,
                    })
                })
                .collect();
            report.cost = Some(super::ProbeCost::new(programs, ctx.duration_s));
        }
        let maps = Maps {
            ebpf: &self.ebpf,
            names: &self.names,
            threads,
            now,
            opts: &self.opts,
        };
        for kind in &self.active {
            kind.0.collect(&mut Collect {
                maps: &maps,
                ctx,
                report: &mut report,
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
                    latency: Log2Hist::from_counts(&maps.hist(HIST_UPROBE0 + i as u32)),
                });
            }
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
                "events",
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
}

/// What a probe's `collect` works with: the maps, the context, its report.
pub struct Collect<'a> {
    pub maps: &'a Maps<'a>,
    pub ctx: &'a CollectContext<'a>,
    pub report: &'a mut ProbesReport,
}

/// Read access to the loaded object's maps, for each probe's `collect`.
pub struct Maps<'a> {
    ebpf: &'a Ebpf,
    names: &'a std::collections::BTreeMap<u32, (u32, String)>,
    /// THREADS (per-thread statistics), read once for every probe.
    pub threads: Vec<(u32, ThreadStats)>,
    /// CLOCK_MONOTONIC at collection (the clock bpf_ktime_get_ns reads).
    pub now: u64,
    pub opts: &'a ProbeOptions,
}

/// A live thread's process (Tgid) and name, from /proc/TID/status.
fn identity(tid: u32) -> Option<(u32, String)> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    Some((field("Tgid:")?.parse().ok()?, field("Name:")?))
}

impl Maps<'_> {
    /// Thread `tid`'s process and name as last seen (`tgid` and no name when
    /// it was never seen alive).
    pub fn identity(&self, tid: u32, tgid: u32) -> (u32, String) {
        self.names
            .get(&tid)
            .cloned()
            .unwrap_or((tgid, String::new()))
    }

    /// One log2 histogram slot of HISTS (zeros where the map is missing).
    pub fn hist(&self, slot: u32) -> Vec<u64> {
        let Some(m) = self.ebpf.map("HISTS") else {
            return vec![0; HIST_BUCKETS as usize];
        };
        let Ok(a) = Array::<&MapData, u64>::try_from(m) else {
            return vec![0; HIST_BUCKETS as usize];
        };
        (0..HIST_BUCKETS)
            .map(|b| a.get(&(slot * HIST_BUCKETS + b), 0).unwrap_or(0))
            .collect()
    }

    /// Every entry of the hash map `name`, sorted by key.
    pub fn hash<K: aya::Pod + Ord, V: aya::Pod>(&self, name: &str) -> Vec<(K, V)> {
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

    /// The instruction pointers of stack `id` in STACKS (empty for a failed walk).
    pub fn stack(&self, id: i32) -> Vec<u64> {
        let Ok(id) = u32::try_from(id) else {
            return vec![];
        };
        self.ebpf
            .map("STACKS")
            .and_then(|m| StackTraceMap::<&MapData>::try_from(m).ok())
            .and_then(|t| t.get(&id, 0).ok())
            .map(|st| st.frames().iter().map(|f| f.ip).collect())
            .unwrap_or_default()
    }
}
