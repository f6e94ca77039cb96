//! The bridge between the runner's results and an experiment's own reading of
//! them ([`hwprof_workloads::Experiment::interpret`]): what the experiment may know
//! of the machine, the per-group outcomes it reads, the memory each variant asks
//! for. (Its charts and matrices are drawn at the edge, report::plots.)

use hwprof_workloads::findings::{Estimate, GroupOutcome, RatioOutcome, VariantOutcome};
use hwprof_workloads::{MachineFacts, Variant, VariantMemory};

use super::analysis::GroupResult;
use crate::placement::MemoryPolicy;
use crate::topology::Topology;

/// Cache sizes (as CPU `cpu` sees them, the first usable one by default) and NUMA
/// nodes of `topo`.
pub fn machine_facts(topo: &Topology) -> MachineFacts {
    let cpu = topo.usable_cpus().first().copied().unwrap_or(0);
    let l1d = topo.cache_size_for(1, cpu);
    let l2 = topo.cache_size_for(2, cpu);
    let l3 = topo.cache_size_for(3, cpu);
    MachineFacts {
        l1d_bytes: l1d,
        l2_bytes: l2,
        llc_bytes: l3.or(l2),
        numa_nodes: topo.numa.iter().map(|n| n.os_index).collect(),
        source: format!("{} ({})", topo.source, topo.backend),
    }
}

/// The memory policy one trial of `v` runs under: the variant's own binding if it
/// has one, else the run's. With a single node a binding changes nothing, so the
/// run's policy stands (and builds without hwloc, which cannot bind, still run).
pub fn variant_memory(v: &Variant, run: &MemoryPolicy, nodes: &[usize]) -> MemoryPolicy {
    match v.memory {
        VariantMemory::Inherit => run.clone(),
        _ if nodes.len() <= 1 => run.clone(),
        VariantMemory::Node(n) => MemoryPolicy::Bind(vec![n]),
        VariantMemory::Interleave => MemoryPolicy::Interleave(nodes.to_vec()),
    }
}

fn estimate(r: &GroupResult, variant: &str, metric: &str) -> Option<Estimate> {
    let v = r.variants.iter().find(|v| v.name == variant)?;
    let s = v.metrics.get(metric)?.summary.as_ref()?;
    Some(Estimate {
        median: s.median,
        lo: s.ci95.lo,
        hi: s.ci95.hi,
    })
}

/// What `interpret` reads: medians and CIs per variant, the comparisons, and the
/// NUMA node of each group's CPUs.
pub fn outcomes(groups: &[GroupResult], topo: &Topology) -> Vec<GroupOutcome> {
    groups
        .iter()
        .map(|g| {
            let nodes: Vec<Option<usize>> = g
                .cpus
                .iter()
                .map(|&c| topo.pu(c).and_then(|p| p.numa))
                .collect();
            let cpu_node = match nodes.first() {
                Some(&Some(n)) if nodes.iter().all(|&m| m == Some(n)) => Some(n),
                _ => None,
            };
            GroupOutcome {
                label: g.label.clone(),
                cpus: g.cpus.clone(),
                pair_class: g.pair_class.map(|c| c.name().to_string()),
                cpu_node,
                variants: g
                    .variants
                    .iter()
                    .filter_map(|v| {
                        Some(VariantOutcome {
                            name: v.name.clone(),
                            ops_per_sec: estimate(g, &v.name, "ops_per_sec")?,
                            ns_per_op: estimate(g, &v.name, "ns_per_op")?,
                        })
                    })
                    .collect(),
                ratios: g
                    .comparisons
                    .iter()
                    .map(|c| RatioOutcome {
                        treatment: c.treatment.clone(),
                        baseline: c.baseline.clone(),
                        ratio: Estimate {
                            median: c.ratio,
                            lo: c.ci95.lo,
                            hi: c.ci95.hi,
                        },
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_bind_memory_only_where_there_is_a_choice() {
        let mut v = Variant::new("read-node1", "");
        v.memory = VariantMemory::Node(1);
        let run = MemoryPolicy::FirstTouch;
        assert_eq!(
            variant_memory(&v, &run, &[0, 1]),
            MemoryPolicy::Bind(vec![1])
        );
        v.memory = VariantMemory::Interleave;
        assert_eq!(
            variant_memory(&v, &run, &[0, 1, 2]),
            MemoryPolicy::Interleave(vec![0, 1, 2])
        );
        // One node: binding changes nothing, the run's policy stands.
        v.memory = VariantMemory::Node(0);
        assert_eq!(variant_memory(&v, &run, &[0]), run);
        v.memory = VariantMemory::Inherit;
        let bound = MemoryPolicy::Bind(vec![0]);
        assert_eq!(variant_memory(&v, &bound, &[0, 1]), bound);
    }
}
