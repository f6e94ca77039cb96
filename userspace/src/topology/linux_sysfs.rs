//! Linux without hwloc: topology from sysfs (/sys/devices/system/{cpu,node}).
//!
//! Also the independent cross-check of the hwloc backend in the tests: both must
//! describe the host the same way.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::cpulist;
use super::{Cache, Loaded, NumaNode, Pu, Topology, TopologySource};
use crate::error::usage;

fn read(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn list(path: impl AsRef<Path>) -> Vec<usize> {
    read(path)
        .filter(|s| !s.is_empty())
        .and_then(|s| cpulist::parse(&s).ok())
        .unwrap_or_default()
}

/// "32K" / "1024K" / "32M" → bytes.
fn size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 1u64 << 10),
        'M' => (&t[..t.len() - 1], 1 << 20),
        'G' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data filled by sched_getaffinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(
            (0..8 * std::mem::size_of::<libc::cpu_set_t>())
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect(),
        )
    }
}

/// The host topology as sysfs describes it.
pub fn host() -> anyhow::Result<Topology> {
    let root = Path::new("/sys/devices/system/cpu");
    let online = list(root.join("online"));
    if online.is_empty() {
        anyhow::bail!("cannot read /sys/devices/system/cpu/online");
    }
    let present = list(root.join("present"));

    // Caches, de-duplicated by (level, type, sharing set).
    let mut caches: Vec<Cache> = Vec::new();
    let mut cores: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut cpus = Vec::new();
    let mut packages = BTreeMap::new();
    for &cpu in &online {
        let dir = root.join(format!("cpu{cpu}"));
        let pkg: usize = read(dir.join("topology/physical_package_id"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let core_id: usize = read(dir.join("topology/core_id"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(cpu);
        let n = cores.len();
        let core = *cores.entry((pkg, core_id)).or_insert(n);
        let n = packages.len();
        let package = *packages.entry(pkg).or_insert(n);
        let (mut l2, mut l3) = (None, None);
        for idx in 0.. {
            let c = dir.join(format!("cache/index{idx}"));
            if !c.exists() {
                break;
            }
            let level: u8 = read(c.join("level"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let kind = match read(c.join("type")).as_deref() {
                Some("Data") => "data",
                Some("Instruction") => "instruction",
                _ => "unified",
            };
            let shared = list(c.join("shared_cpu_list"));
            let pos = match caches
                .iter()
                .position(|x| x.level == level && x.kind == kind && x.cpus == shared)
            {
                Some(p) => p,
                None => {
                    caches.push(Cache {
                        level,
                        kind: kind.into(),
                        size_bytes: read(c.join("size")).and_then(|s| size(&s)),
                        line_bytes: read(c.join("coherency_line_size"))
                            .and_then(|s| s.parse().ok()),
                        cpus: shared,
                    });
                    caches.len() - 1
                }
            };
            let same_level_before = caches[..pos]
                .iter()
                .filter(|x| x.level == level && x.kind != "instruction")
                .count();
            match level {
                2 => l2 = Some(same_level_before),
                3 => l3 = Some(same_level_before),
                _ => {}
            }
        }
        cpus.push(Pu {
            os_index: cpu,
            core,
            package: Some(package),
            numa: None,
            l3,
            l2,
            kind: None,
        });
    }

    let mut numa = Vec::new();
    let node_root = Path::new("/sys/devices/system/node");
    for node in list(node_root.join("online")) {
        let dir = node_root.join(format!("node{node}"));
        let mem = read(dir.join("meminfo")).and_then(|m| {
            m.lines()
                .find(|l| l.contains("MemTotal"))
                .and_then(|l| {
                    l.split_whitespace()
                        .rev()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
                .map(|kb| kb * 1024)
        });
        numa.push(NumaNode {
            os_index: node,
            memory_bytes: mem,
            cpus: list(dir.join("cpulist")),
        });
    }
    if numa.is_empty() {
        numa.push(NumaNode {
            os_index: 0,
            memory_bytes: None,
            cpus: online.clone(),
        });
    }
    let distances: Option<Vec<Vec<u64>>> = numa
        .iter()
        .map(|n| {
            read(node_root.join(format!("node{}/distance", n.os_index))).map(|d| {
                d.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    for p in &mut cpus {
        p.numa = numa
            .iter()
            .find(|n| n.cpus.contains(&p.os_index))
            .map(|n| n.os_index);
    }
    let allowed = allowed_cpus().unwrap_or_else(|| online.clone());
    let model = Topology {
        packages: packages.len(),
        numa_nodes: numa.len(),
        cores: cores.len(),
        cores_recorded: true,
        pus: cpus.len(),
        l3_domains: caches.iter().filter(|c| c.level == 3).count(),
        // hwloc drops a 1x1 matrix too: one node has no distances worth reporting.
        numa_distances: distances
            .filter(|d| d.len() > 1 && d.iter().all(|r| r.len() == numa.len())),
        source: "host".into(),
        backend: "sysfs".into(),
        offline_cpus: present
            .iter()
            .copied()
            .filter(|c| !online.contains(c))
            .collect(),
        disallowed_cpus: online
            .iter()
            .copied()
            .filter(|c| !allowed.contains(c))
            .collect(),
        cpus,
        caches,
        numa,
        cpu_kinds: vec![],
    };
    model
        .check_consistency()
        .map_err(|e| anyhow::anyhow!("inconsistent topology from sysfs: {e}"))?;
    Ok(model)
}

#[allow(dead_code)]
pub fn load(source: &TopologySource) -> anyhow::Result<Loaded> {
    if !source.is_host() {
        return Err(usage(format!(
            "--topology {}: reading XML or synthetic topologies needs hwprof built with hwloc \
             (apt-get install libhwloc-dev; cargo build --features hwloc)",
            source.describe()
        )));
    }
    Ok(Loaded {
        model: host()?,
        xml: None,
        host: super::HostHandle::Os,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size("48K"), Some(48 << 10));
        assert_eq!(size("2048K"), Some(2 << 20));
        assert_eq!(size("32M"), Some(32 << 20));
        assert_eq!(size("512"), Some(512));
        assert_eq!(size("x"), None);
    }

    #[test]
    fn host_is_consistent() {
        let t = host().unwrap();
        assert!(t.pus >= 1 && t.cores >= 1 && t.packages >= 1);
        assert!(t.cpus.iter().all(|p| p.numa.is_some()));
    }
}
