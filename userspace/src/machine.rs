//! The machine profile: topology, CPU identity, virtualization, capabilities,
//! timer. `hwprof info` prints it; every report embeds it.

use serde::{Deserialize, Serialize};

use crate::capabilities::{self, Capabilities};
use crate::cpu::{self, CpuIdentity};
use crate::measure::timer::Timer;
use crate::topology::{self, Loaded, Topology, TopologySource};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineProfile {
    pub hwprof_version: String,
    pub collected_at: String,
    pub hostname: String,
    pub kernel: String,
    pub topology: Topology,
    /// CPU identity of the host hwprof ran on (even with --topology xml:…, whose
    /// topology describes another machine: see `topology.source`).
    pub cpu: CpuIdentity,
    pub virtualization: Option<String>,
    pub capabilities: Capabilities,
    pub timer: Timer,
}

/// Discover everything about this machine (topology from `source`).
pub fn discover(source: &TopologySource) -> anyhow::Result<(MachineProfile, Loaded)> {
    // Nothing to write yet: Ctrl-C during discovery exits at once.
    let _discovering = crate::interrupt::Discovering::begin();
    let loaded = topology::load(source)?;
    let virtualization = crate::virt::detect();
    let capabilities = capabilities::probe(virtualization.as_deref());
    let mut cpu = cpu::identify();
    if let Some(hv) = &virtualization {
        cpu.notes.push(format!(
            "identified through the CPUID/MIDR a {hv} guest sees: the hypervisor may present \
             another model than the physical CPU, so the microarchitecture is the guest's view"
        ));
    }
    let profile = MachineProfile {
        hwprof_version: env!("CARGO_PKG_VERSION").to_string(),
        collected_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        hostname: hostname(),
        kernel: kernel(),
        topology: loaded.model.clone(),
        cpu,
        virtualization,
        capabilities,
        timer: Timer::best(),
    };
    Ok((profile, loaded))
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn kernel() -> String {
    // SAFETY: utsname is plain data filled by uname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    let field = |f: &[libc::c_char]| -> String {
        f.iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8 as char)
            .collect()
    };
    format!("{} {}", field(&u.sysname), field(&u.release))
}

impl MachineProfile {
    /// File-name stem for a saved profile: `rocket-lake-1p2c2t-vm`.
    pub fn slug(&self) -> String {
        let t = &self.topology;
        let arch = self
            .cpu
            .microarchitecture
            .clone()
            .unwrap_or_else(|| self.cpu.vendor.clone());
        slug(&arch, t.packages, t.cores, t.pus, &self.hostname)
    }
}

/// The profile's slug from its parts (also used on profiles read back from JSON).
pub fn slug(arch: &str, packages: usize, cores: usize, pus: usize, hostname: &str) -> String {
    let raw = format!("{arch}-{packages}p{cores}c{pus}t-{hostname}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}
