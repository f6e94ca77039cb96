//! macOS without hwloc: topology from sysctl (hw.*, hw.perflevelN.*).
//!
//! macOS offers no thread affinity, so the model serves planning and reports; CPU
//! numbers are hwprof's own (performance cores first), not OS identifiers.

use super::{Cache, CpuKind, Loaded, NumaNode, Pu, Topology, TopologySource};
use crate::error::usage;
use crate::sysctl;

pub fn load(source: &TopologySource) -> anyhow::Result<Loaded> {
    if !source.is_host() {
        return Err(usage(format!(
            "--topology {}: reading XML or synthetic topologies needs hwprof built with hwloc \
             (brew install hwloc; cargo build --features hwloc)",
            source.describe()
        )));
    }
    let logical = sysctl::u64("hw.logicalcpu").unwrap_or(1) as usize;
    let levels = sysctl::u64("hw.nperflevels").unwrap_or(1) as usize;
    let mut cpus = Vec::new();
    let mut caches = Vec::new();
    let mut kinds = Vec::new();
    let mut next_cpu = 0usize;
    let mut next_core = 0usize;
    for level in 0..levels.max(1) {
        let key = |k: &str| sysctl::u64(&format!("hw.perflevel{level}.{k}"));
        let phys = key("physicalcpu")
            .or_else(|| sysctl::u64("hw.physicalcpu"))
            .unwrap_or(1) as usize;
        let log = key("logicalcpu").unwrap_or(phys as u64) as usize;
        let per_l2 = key("cpusperl2").unwrap_or(log as u64).max(1) as usize;
        let l1d = key("l1dcachesize").or_else(|| sysctl::u64("hw.l1dcachesize"));
        let l2 = key("l2cachesize").or_else(|| sysctl::u64("hw.l2cachesize"));
        let smt = (log / phys.max(1)).max(1);
        let kind_cpus: Vec<usize> = (next_cpu..next_cpu + log).collect();
        for (i, &cpu) in kind_cpus.iter().enumerate() {
            let core = next_core + i / smt;
            cpus.push(Pu {
                os_index: cpu,
                core,
                package: Some(0),
                numa: Some(0),
                l3: None,
                l2: Some(caches.len() + i / per_l2),
                kind: Some(level),
            });
        }
        for chunk in kind_cpus.chunks(per_l2) {
            caches.push(Cache {
                level: 2,
                kind: "unified".into(),
                size_bytes: l2,
                line_bytes: sysctl::u64("hw.cachelinesize").map(|v| v as usize),
                cpus: chunk.to_vec(),
            });
        }
        for &cpu in &kind_cpus {
            caches.push(Cache {
                level: 1,
                kind: "data".into(),
                size_bytes: l1d,
                line_bytes: sysctl::u64("hw.cachelinesize").map(|v| v as usize),
                cpus: vec![cpu],
            });
        }
        kinds.push(CpuKind {
            cpus: kind_cpus,
            // perflevel0 is the fastest.
            efficiency: Some((levels - 1 - level) as u32),
            info: [("perflevel".to_string(), level.to_string())]
                .into_iter()
                .collect(),
        });
        next_cpu += log;
        next_core += phys;
    }
    let _ = logical;
    let memory = sysctl::u64("hw.memsize");
    let model = Topology {
        packages: 1,
        numa_nodes: 1,
        cores: next_core,
        cores_recorded: true,
        pus: cpus.len(),
        l3_domains: 0,
        numa_distances: None,
        source: "host".into(),
        backend: "sysctl".into(),
        numa: vec![NumaNode {
            os_index: 0,
            memory_bytes: memory,
            cpus: cpus.iter().map(|p| p.os_index).collect(),
        }],
        cpus,
        caches,
        offline_cpus: vec![],
        disallowed_cpus: vec![],
        cpu_kinds: if levels > 1 { kinds } else { vec![] },
    };
    Ok(Loaded {
        model,
        xml: None,
        host: super::HostHandle::Os,
    })
}
