//! eBPF probes (aya): what the kernel says about where threads wait, migrate and
//! fault. One folder per probe implements [`Probe`] — its tracepoints, its
//! collect (maps → report section) and its render — and [`PROBES`] lists them
//! (rezolus style); `session` loads the embedded object, keeps the set of
//! tracked threads, attaches each requested probe and reads everything back.
//! Used by `hwprof attach --pid`, `hwprof load` and experiments through `--probes`.

pub mod futex;
pub mod hist;
pub mod locks;
pub mod memory;
pub mod metrics;
pub mod profile;
pub mod sched;
#[cfg(hwprof_probes)]
mod session;
pub mod tracefs;
pub mod uprobe;

use std::collections::BTreeMap;

use serde::Serialize;

pub use uprobe::UprobeSpec;

/// One probe, implemented in its own folder here with its kernel programs in
/// the matching module of probes/hwprof-probes-ebpf (rezolus style): what it
/// attaches, how it reads its maps back into the report, how its section reads
/// for people. Adding a probe = its folder, its kernel module, one line in
/// [`PROBES`].
pub trait Probe: Sync {
    /// Name, summary and tracepoints (a `const` in the probe's folder).
    fn info(&self) -> &'static ProbeInfo;
    /// Attachments beyond tracepoints (perf events …): how many programs attached.
    #[cfg(hwprof_probes)]
    fn attach_other(&self, _ebpf: &mut aya::Ebpf, _opts: &ProbeOptions) -> Result<usize, String> {
        Ok(0)
    }
    /// Read its maps into its section of the report.
    #[cfg(hwprof_probes)]
    fn collect(&self, c: &mut session::Collect<'_>);
    /// Its section of `report` in lines for people (none when it did not run).
    fn render(&self, report: &ProbesReport) -> Vec<String>;
}

/// What a probe is, fixed at compile time.
pub struct ProbeInfo {
    /// The name `--probes` takes.
    pub name: &'static str,
    /// One line: what it sees (`hwprof list`).
    pub summary: &'static str,
    /// Tracepoints it attaches: (program, category, event).
    pub tracepoints: &'static [(&'static str, &'static str, &'static str)],
    /// BTF raw tracepoints (`tp_btf`) doing the same work: (program, raw
    /// tracepoint). Attached when none of `tracepoints` could be (or when
    /// HWPROF_PROBES_BTF asks for them), and the report says so.
    pub btf_tracepoints: &'static [(&'static str, &'static str)],
}

impl<'a> dyn Probe + 'a {
    pub fn name(&self) -> &'static str {
        self.info().name
    }
    pub fn summary(&self) -> &'static str {
        self.info().summary
    }
}

/// Every probe `--probes` knows, in report order: one line each.
pub static PROBES: &[&dyn Probe] = &[
    &sched::Sched,
    &futex::Futex(futex::SeenFrom::Syscalls),
    &futex::Futex(futex::SeenFrom::Scheduler),
    &locks::Locks,
    &memory::Memory,
    &profile::Profile,
];

/// A registered probe, compared by name.
#[derive(Clone, Copy)]
pub struct ProbeKind(pub &'static dyn Probe);

impl PartialEq for ProbeKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ProbeKind {}

impl std::fmt::Debug for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl ProbeKind {
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn all() -> Vec<ProbeKind> {
        PROBES.iter().map(|p| ProbeKind(*p)).collect()
    }

    /// `sched,futex`, or `all`.
    pub fn parse_list(text: &str) -> Result<Vec<ProbeKind>, String> {
        if text == "all" {
            // Every probe but futex-blocked: futex sees the same waits and more.
            return Ok(Self::all()
                .into_iter()
                .filter(|k| k.name() != "futex-blocked")
                .collect());
        }
        let mut v = Vec::new();
        for part in text.split(',').map(str::trim) {
            let k = Self::all()
                .into_iter()
                .find(|k| k.name() == part)
                .ok_or_else(|| {
                    format!(
                        "unknown probe {part:?}: expected {} (comma-separated) or all",
                        PROBES
                            .iter()
                            .map(|k| k.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            if !v.contains(&k) {
                v.push(k);
            }
        }
        let has = |n: &str| v.iter().any(|k| k.name() == n);
        if has("futex") && has("futex-blocked") {
            return Err("futex and futex-blocked fill the same report (one from the futex syscalls, one from the scheduler): pick one".into());
        }
        Ok(v)
    }
}

/// What to attach.
#[derive(Debug, Clone, Default)]
pub struct ProbeOptions {
    pub probes: Vec<ProbeKind>,
    pub uprobes: Vec<UprobeSpec>,
    /// Sampling frequency of the profile probe (Hz).
    pub frequency: u64,
    /// Time hwprof's own programs (the kernel's BPF run-time statistics):
    /// what each traced event costs, in the report's `cost`.
    pub cost: bool,
}

/// What hwprof's own programs cost while attached, from the kernel's BPF
/// run-time statistics (BPF_ENABLE_STATS): time inside the programs only, not
/// the tracepoint's own dispatch nor the syscall slow path a syscall
/// tracepoint puts every syscall through (the self-benchmark measures those).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct ProbeCost {
    pub source: String,
    pub programs: Vec<ProgramCost>,
    pub runs: u64,
    pub run_ns: u64,
    /// Mean time per program run (per traced event).
    pub ns_per_run: f64,
    /// run_ns over the attached time: the share of one CPU the programs took.
    pub cpu_share: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProgramCost {
    pub program: String,
    pub runs: u64,
    pub run_ns: u64,
    pub ns_per_run: f64,
}

impl ProbeCost {
    pub fn new(mut programs: Vec<ProgramCost>, duration_s: f64) -> ProbeCost {
        programs.sort_by(|a, b| b.run_ns.cmp(&a.run_ns).then(a.program.cmp(&b.program)));
        let runs = programs.iter().map(|p| p.runs).sum();
        let run_ns = programs.iter().map(|p| p.run_ns).sum();
        ProbeCost {
            source: "probe (kernel BPF run-time statistics)".into(),
            runs,
            run_ns,
            ns_per_run: if runs == 0 {
                0.0
            } else {
                run_ns as f64 / runs as f64
            },
            cpu_share: if duration_s > 0.0 {
                run_ns as f64 / (duration_s * 1e9)
            } else {
                0.0
            },
            programs,
        }
    }

    /// One line for people, the costliest programs first.
    pub fn line(&self) -> String {
        let top: Vec<String> = self
            .programs
            .iter()
            .filter(|p| p.runs > 0)
            .take(4)
            .map(|p| format!("{} {:.0} ns x {}", p.program, p.ns_per_run, p.runs))
            .collect();
        format!(
            "probe cost (kernel BPF statistics): {} program runs, {:.0} ns each on average, {:.1} ms in all ({:.2}% of one CPU){}",
            self.runs,
            self.ns_per_run,
            self.run_ns as f64 / 1e6,
            self.cpu_share * 100.0,
            if top.is_empty() {
                String::new()
            } else {
                format!("; {}", top.join(", "))
            }
        )
    }
}

/// Everything the probes report, all tagged `source: probe`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ProbesReport {
    pub source: String,
    pub probes: Vec<String>,
    pub duration_s: f64,
    /// Threads tracked (the target's, including those created while attached).
    pub threads_tracked: usize,
    pub sched: Option<sched::Report>,
    pub futex: Option<futex::Report>,
    pub locks: Option<locks::Report>,
    pub memory: Option<memory::Report>,
    pub uprobes: Vec<uprobe::Report>,
    pub profile: Option<profile::Report>,
    /// Sections of probes without a field above, under their own names.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
    /// Map updates the kernel side could not make (map full), per map: never
    /// dropped silently.
    pub drops: BTreeMap<String, u64>,
    /// Probes or programs that could not attach, and why.
    pub warnings: Vec<String>,
    /// How each probe is attached (`futex: tp_btf sys_enter, sys_exit`), as
    /// the overhead depends on it.
    #[serde(default)]
    pub attached: Vec<String>,
    /// What the probes' programs cost (with `--probe-cost`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<ProbeCost>,
}

impl ProbesReport {
    /// Every probe's section in lines for people, then the uprobes (the
    /// terminal table, Markdown and attach alike; warnings are the caller's).
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<String> = PROBES.iter().flat_map(|p| p.render(self)).collect();
        for u in &self.uprobes {
            v.push(format!(
                "uprobe {}:{} (probe): {} calls, mean {} ns, p99 <= {} ns",
                u.binary, u.symbol, u.calls, u.mean_ns, u.latency.p99_ns_le
            ));
        }
        if let Some(c) = &self.cost {
            v.push(c.line());
        }
        v
    }
}

/// Why a probe session could not start: a capability this machine or user
/// lacks (bad input for `attach`: exit 2, with the remedy), or a failure of the
/// attempt itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// Missing privilege, kernel feature or build component; the text names the remedy.
    Unavailable(String),
    /// Something went wrong attaching what should have worked.
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(s) | Self::Failed(s) => f.write_str(s),
        }
    }
}

/// Context for turning map contents into reports.
pub struct CollectContext<'a> {
    pub topology: &'a crate::topology::Topology,
    /// Process whose addresses to symbolise (None: experiment threads, hwprof itself).
    pub pid: u32,
    pub duration_s: f64,
    pub profile_out: Option<&'a std::path::Path>,
}

#[cfg(hwprof_probes)]
pub use session::Session;

/// Stand-in when the eBPF object was not built: every start fails with the reason.
#[cfg(not(hwprof_probes))]
pub struct Session;

#[cfg(not(hwprof_probes))]
impl Session {
    pub fn start(_opts: &ProbeOptions, _threads: &[(u32, u32)]) -> Result<Session, StartError> {
        Err(StartError::Unavailable(format!(
            "eBPF probes were not built into this hwprof: {}",
            env!("HWPROF_PROBES_MISSING")
        )))
    }
    pub fn track(&mut self, _tid: u32, _tgid: u32) {}
    pub fn drain_events(&mut self) {}
    pub fn streams_events(&self) -> bool {
        false
    }
    pub fn events(&self) -> (&[hwprof_probes_common::DelayEvent], u64) {
        (&[], 0)
    }
    pub fn collect(&mut self, _ctx: &CollectContext<'_>) -> ProbesReport {
        ProbesReport::default()
    }
}

/// The thread ids of a process, sorted (empty when it is gone).
pub fn threads_of(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// The calling thread's kernel thread id.
pub fn gettid() -> u32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() as u32 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_cost_sums_sorts_and_shares() {
        let p = |name: &str, runs: u64, run_ns: u64| ProgramCost {
            program: name.into(),
            runs,
            run_ns,
            ns_per_run: run_ns as f64 / runs as f64,
        };
        let c = ProbeCost::new(
            vec![
                p("hwp_futex_enter", 1000, 150_000),
                p("hwp_futex_exit", 1000, 350_000),
            ],
            0.5,
        );
        assert_eq!((c.runs, c.run_ns), (2000, 500_000));
        assert_eq!(c.ns_per_run, 250.0);
        // 0.5 ms of program time in 0.5 s: 0.1% of one CPU.
        assert!((c.cpu_share - 0.001).abs() < 1e-12, "{}", c.cpu_share);
        assert_eq!(c.programs[0].program, "hwp_futex_exit");
        assert_eq!(
            c.line(),
            "probe cost (kernel BPF statistics): 2000 program runs, 250 ns each on average, 0.5 ms in all (0.10% of one CPU); hwp_futex_exit 350 ns x 1000, hwp_futex_enter 150 ns x 1000"
        );
        let none = ProbeCost::new(vec![], 0.0);
        assert_eq!((none.ns_per_run, none.cpu_share), (0.0, 0.0));
    }

    #[test]
    fn probe_lists() {
        let names = |v: Vec<ProbeKind>| v.into_iter().map(|k| k.name()).collect::<Vec<_>>();
        assert_eq!(
            names(ProbeKind::parse_list("futex,sched,futex").unwrap()),
            ["futex", "sched"]
        );
        let all = names(ProbeKind::parse_list("all").unwrap());
        assert_eq!(all.len(), PROBES.len() - 1);
        assert!(all.contains(&"futex") && !all.contains(&"futex-blocked"));
        assert_eq!(
            names(ProbeKind::parse_list("sched,futex-blocked").unwrap()),
            ["sched", "futex-blocked"]
        );
        // The two futex probes share their maps: one at a time.
        let e = ProbeKind::parse_list("futex,futex-blocked").unwrap_err();
        assert!(e.contains("pick one"), "{e}");
        assert!(ProbeKind::parse_list("kprobe").is_err());
    }
}
