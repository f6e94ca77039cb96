//! Machine topology: where the CPUs, caches and memory are.
//!
//! hwprof's own plain model ([`Topology`]) is built once from a source (the host,
//! an hwloc XML export, or an hwloc synthetic description) by a backend (hwloc, or
//! sysfs/sysctl where hwloc is not built in). Placement and reports only ever see
//! the model, which is why planning for a lab machine from its XML behaves exactly
//! like planning on the host.

pub mod cpulist;
#[cfg(all(feature = "hwloc", target_os = "linux"))]
mod hwloc;
#[cfg(target_os = "linux")]
pub mod linux_sysfs;
#[cfg(target_os = "macos")]
mod macos_sysctl;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::usage;

/// Where a topology comes from (`--topology SOURCE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologySource {
    Host,
    Xml(PathBuf),
    Synthetic(String),
}

impl TopologySource {
    /// Parse `host`, `xml:FILE` or `synthetic:DESC`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        if text == "host" {
            return Ok(Self::Host);
        }
        if let Some(path) = text.strip_prefix("xml:") {
            if path.is_empty() {
                return Err(usage("--topology xml: needs a file name, e.g. xml:lab.xml"));
            }
            return Ok(Self::Xml(PathBuf::from(path)));
        }
        if let Some(desc) = text.strip_prefix("synthetic:") {
            let desc = desc.trim().trim_matches('"').trim();
            if desc.is_empty() {
                return Err(usage(
                    "--topology synthetic: needs a description, e.g. synthetic:\"pack:2 core:4 pu:2\"",
                ));
            }
            check_synthetic_size(desc)?;
            return Ok(Self::Synthetic(desc.to_string()));
        }
        Err(usage(format!(
            "--topology {text:?}: expected host, xml:FILE or synthetic:DESC"
        )))
    }

    pub fn is_host(&self) -> bool {
        matches!(self, Self::Host)
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Host => "host".into(),
            Self::Xml(p) => format!("xml:{}", p.display()),
            Self::Synthetic(d) => format!("synthetic:{d}"),
        }
    }
}

/// Most PUs a synthetic description may build: Linux's NR_CPUS tops out at 8192
/// (x86 MAXSMP). hwloc's synthetic build grows faster than linearly (8192 PUs:
/// about 3 s here, 16384: 30 s), and `pack:100000 core:100000` would be 10^10.
pub const MAX_SYNTHETIC_PUS: u128 = 8_192;

/// Refuse a synthetic description whose levels multiply to more than
/// [`MAX_SYNTHETIC_PUS`] leaves, before hwloc builds it. Levels are
/// `TYPE:COUNT` tokens, optionally with `(attributes)`; anything else is left to
/// hwloc to judge.
fn check_synthetic_size(desc: &str) -> anyhow::Result<()> {
    let mut leaves: u128 = 1;
    let mut depth = 0usize;
    let mut token = String::new();
    // Split on whitespace outside parentheses (attributes may contain spaces).
    let mut tokens = Vec::new();
    for c in desc.chars() {
        match c {
            '(' => {
                depth += 1;
                token.push(c)
            }
            ')' => {
                depth = depth.saturating_sub(1);
                token.push(c)
            }
            c if c.is_whitespace() && depth == 0 => {
                if !token.is_empty() {
                    tokens.push(std::mem::take(&mut token));
                }
            }
            c => token.push(c),
        }
    }
    if !token.is_empty() {
        tokens.push(token);
    }
    for t in tokens {
        let Some((_, count)) = t.split_once(':') else {
            continue;
        };
        let digits: String = count.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            continue;
        }
        let n: u128 = digits.parse().unwrap_or(u128::MAX);
        leaves = leaves.saturating_mul(n);
    }
    if leaves > MAX_SYNTHETIC_PUS {
        return Err(usage(format!(
            "--topology synthetic:{desc:?}: describes {} PUs, more than the {MAX_SYNTHETIC_PUS} hwprof models",
            if leaves == u128::MAX { "too many".to_string() } else { leaves.to_string() }
        )));
    }
    Ok(())
}

/// One processing unit (hardware thread) that is online and in the topology.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pu {
    /// OS CPU number, as in `--cpus` and `taskset`.
    pub os_index: usize,
    /// Index of the core it belongs to (unique across the machine).
    pub core: usize,
    /// Package (socket) index, if the topology records packages.
    pub package: Option<usize>,
    /// Nearest NUMA node (os index), if any.
    pub numa: Option<usize>,
    /// Index of the L3 cache it sits under, if the topology records one.
    pub l3: Option<usize>,
    /// Index of the L2 cache it sits under, if the topology records one.
    pub l2: Option<usize>,
    /// Index into [`Topology::cpu_kinds`], for hybrid machines.
    pub kind: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cache {
    pub level: u8,
    /// `data`, `unified` or `instruction`.
    pub kind: String,
    pub size_bytes: Option<u64>,
    pub line_bytes: Option<usize>,
    /// OS CPU numbers sharing this cache.
    pub cpus: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NumaNode {
    pub os_index: usize,
    pub memory_bytes: Option<u64>,
    pub cpus: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CpuKind {
    pub cpus: Vec<usize>,
    /// hwloc's efficiency rank: higher = faster, more power-hungry.
    pub efficiency: Option<u32>,
    /// e.g. `CoreType = IntelCore` / `IntelAtom`.
    pub info: BTreeMap<String, String>,
}

/// hwprof's model of a machine. The first six count fields are part of the JSON
/// contract (docs/report-schema.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Topology {
    pub packages: usize,
    pub numa_nodes: usize,
    /// Cores as the source records them (0 where it records none, as lstopo says).
    pub cores: usize,
    /// False where the source has no cores: each PU then stands for its own core
    /// in placement, and reports say "cores not recorded" instead of a count.
    #[serde(default = "recorded")]
    pub cores_recorded: bool,
    pub pus: usize,
    pub l3_domains: usize,
    /// NUMA distance matrix (row = from node, column = to node, in the order of
    /// `numa`), or null where the source records none.
    pub numa_distances: Option<Vec<Vec<u64>>>,
    /// `host`, `xml:FILE` or `synthetic:DESC`.
    pub source: String,
    /// What read it: `hwloc 2.9.0`, `sysfs`, `sysctl`.
    pub backend: String,
    pub cpus: Vec<Pu>,
    pub caches: Vec<Cache>,
    pub numa: Vec<NumaNode>,
    /// CPUs that exist but are offline.
    pub offline_cpus: Vec<usize>,
    /// CPUs online but not allowed to this process (cgroup cpuset, taskset).
    pub disallowed_cpus: Vec<usize>,
    pub cpu_kinds: Vec<CpuKind>,
}

fn recorded() -> bool {
    true
}

impl Topology {
    pub fn pu(&self, os_index: usize) -> Option<&Pu> {
        self.cpus.iter().find(|p| p.os_index == os_index)
    }

    /// Online, allowed CPUs in OS order.
    pub fn usable_cpus(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .cpus
            .iter()
            .map(|p| p.os_index)
            .filter(|c| !self.disallowed_cpus.contains(c))
            .collect();
        v.sort_unstable();
        v
    }

    /// Largest number of hardware threads on one core.
    pub fn max_smt(&self) -> usize {
        let mut per_core: BTreeMap<usize, usize> = BTreeMap::new();
        for p in &self.cpus {
            *per_core.entry(p.core).or_default() += 1;
        }
        per_core.values().copied().max().unwrap_or(0)
    }

    /// Size of the data (or unified) cache at `level` seen by CPU `cpu`.
    pub fn cache_size_for(&self, level: u8, cpu: usize) -> Option<u64> {
        self.caches
            .iter()
            .find(|c| c.level == level && c.kind != "instruction" && c.cpus.contains(&cpu))
            .and_then(|c| c.size_bytes)
    }

    /// Check that the counts agree with the per-object lists (a backend bug guard).
    pub fn check_consistency(&self) -> Result<(), String> {
        if self.pus != self.cpus.len() {
            return Err(format!(
                "{} PUs counted but {} listed",
                self.pus,
                self.cpus.len()
            ));
        }
        if self.numa_nodes != self.numa.len() {
            return Err(format!(
                "{} NUMA nodes counted but {} listed",
                self.numa_nodes,
                self.numa.len()
            ));
        }
        if let Some(m) = &self.numa_distances {
            if m.len() != self.numa.len() || m.iter().any(|r| r.len() != self.numa.len()) {
                return Err("NUMA distance matrix does not match the node count".into());
            }
        }
        Ok(())
    }
}

/// A loaded topology, plus what only the host can do with it.
pub struct Loaded {
    pub model: Topology,
    /// hwloc XML of the topology, for `info --save` (None where hwloc is absent).
    pub xml: Option<String>,
    /// What binding threads and memory on this host needs (placement builds
    /// its binder from it); `NotHost` for a described machine.
    pub host: HostHandle,
}

/// The host's handle for thread and memory binding, or none for a topology
/// that describes another machine. Topology hands it over; placement binds.
#[derive(Clone)]
pub enum HostHandle {
    NotHost,
    /// Bind through the OS calls (no hwloc in this build).
    Os,
    #[cfg(all(feature = "hwloc", target_os = "linux"))]
    Hwloc(std::sync::Arc<hwlocality::Topology>),
}

/// Load a topology from `source` with the backend this build has.
pub fn load(source: &TopologySource) -> anyhow::Result<Loaded> {
    #[cfg(all(feature = "hwloc", target_os = "linux"))]
    {
        hwloc::load(source)
    }
    #[cfg(all(target_os = "linux", not(feature = "hwloc")))]
    {
        linux_sysfs::load(source)
    }
    #[cfg(target_os = "macos")]
    {
        macos_sysctl::load(source)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = source;
        Err(anyhow::anyhow!(
            "no topology backend on this platform: build with the `hwloc` feature"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!(TopologySource::parse("host").unwrap(), TopologySource::Host);
        assert_eq!(
            TopologySource::parse("xml:a.xml").unwrap(),
            TopologySource::Xml("a.xml".into())
        );
        assert_eq!(
            TopologySource::parse("synthetic:\"pack:2 pu:2\"").unwrap(),
            TopologySource::Synthetic("pack:2 pu:2".into())
        );
        // At the bound is fine.
        assert!(TopologySource::parse("synthetic:pack:2 core:2048 pu:2").is_ok());
        for bad in [
            "",
            "xml:",
            "synthetic:",
            "file.xml",
            "Host",
            "synthetic:pack:100000 core:100000 pu:100",
            "synthetic:pack:99999999999999999999999999999999999999999 pu:2",
            "synthetic:pack:2(memory=1GB) core:4097 pu:2",
        ] {
            let err = TopologySource::parse(bad).unwrap_err();
            assert!(crate::error::is_usage(&err), "{bad:?}");
        }
    }
}
