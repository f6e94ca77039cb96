//! What this machine lets hwprof measure, probed for real: a counter is only
//! "available" after it was opened *and* counted over a short busy loop; a probe
//! type only after a BPF program was loaded and attached to it.

#[cfg(target_os = "linux")]
mod bpf_linux;
#[cfg(target_os = "linux")]
mod linux;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Ebpf {
    pub btf: bool,
    pub tracepoints: bool,
    pub kprobes: bool,
    pub uprobes: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Privileges {
    pub euid: u32,
    pub root: bool,
    pub cap_perfmon: bool,
    pub cap_bpf: bool,
    pub cap_sys_admin: bool,
    /// The invoking user under sudo (SUDO_USER), who owns the files hwprof writes.
    pub sudo_user: Option<String>,
}

/// What can be lost. Serialised as the words reports have always carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Capability {
    #[serde(rename = "hardware counters")]
    HardwareCounters,
    #[serde(rename = "software counters")]
    SoftwareCounters,
    #[serde(rename = "BTF (CO-RE type information)")]
    Btf,
    #[serde(rename = "eBPF tracepoints")]
    EbpfTracepoints,
    #[serde(rename = "eBPF kprobes")]
    EbpfKprobes,
    #[serde(rename = "eBPF uprobes")]
    EbpfUprobes,
    /// Platforms without perf_event_open or BPF (macOS).
    #[serde(rename = "hardware and software counters, eBPF probes")]
    CountersAndProbes,
}

impl Capability {
    /// Lost counters change what an experiment can measure: their notes are
    /// printed before a run.
    pub fn is_counters(self) -> bool {
        matches!(
            self,
            Capability::HardwareCounters
                | Capability::SoftwareCounters
                | Capability::CountersAndProbes
        )
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Capability::HardwareCounters => "hardware counters",
            Capability::SoftwareCounters => "software counters",
            Capability::Btf => "BTF (CO-RE type information)",
            Capability::EbpfTracepoints => "eBPF tracepoints",
            Capability::EbpfKprobes => "eBPF kprobes",
            Capability::EbpfUprobes => "eBPF uprobes",
            Capability::CountersAndProbes => "hardware and software counters, eBPF probes",
        })
    }
}

/// A capability hwprof could not get, why, and how to get it back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Loss {
    pub capability: Capability,
    pub reason: String,
    pub remedy: String,
}

impl Loss {
    pub fn line(&self) -> String {
        format!(
            "{} unavailable: {}; {}",
            self.capability, self.reason, self.remedy
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Capabilities {
    /// /proc/sys/kernel/perf_event_paranoid, or null where there is none.
    pub paranoid: Option<i32>,
    pub pmu_hardware: bool,
    pub pmu_software: bool,
    pub ebpf: Ebpf,
    pub privileges: Privileges,
    /// tracefs mount point used for tracepoint ids, if any.
    pub tracefs: Option<String>,
    pub lost: Vec<Loss>,
    /// Things hwprof did to probe (e.g. mounting tracefs), for the record.
    pub actions: Vec<String>,
}

/// Probe everything. `hypervisor` sharpens the explanation of a missing PMU.
pub fn probe(hypervisor: Option<&str>) -> Capabilities {
    #[cfg(target_os = "linux")]
    {
        linux::probe(hypervisor)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = hypervisor;
        Capabilities {
            privileges: Privileges {
                // SAFETY: geteuid has no preconditions.
                euid: unsafe { libc::geteuid() },
                root: unsafe { libc::geteuid() } == 0,
                sudo_user: std::env::var("SUDO_USER").ok(),
                ..Default::default()
            },
            lost: vec![Loss {
                capability: Capability::CountersAndProbes,
                reason: "perf_event_open and eBPF exist only on Linux".into(),
                remedy: "measurements fall back to the portable timer; run on Linux for counters"
                    .into(),
            }],
            ..Default::default()
        }
    }
}

/// The counters a run opens follow from what this machine lets hwprof count
/// (here rather than in measure/, which does not know about capabilities).
impl crate::measure::CounterPlan {
    pub fn from_capabilities(caps: &Capabilities) -> crate::measure::CounterPlan {
        crate::measure::CounterPlan {
            hardware: caps.pmu_hardware,
            software: caps.pmu_software,
            extra: Vec::new(),
            // Without an event map, assume the smallest common PMU (4 counters with
            // SMT on Intel; AMD and Arm have 6).
            group_limit: 4,
            fixed: vec!["cycles".into(), "instructions".into()],
        }
    }
}
