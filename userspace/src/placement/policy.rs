//! Orders in which threads take CPUs.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::topology::Topology;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Fill SMT siblings first, then cores under one L3, then the package.
    Compact,
    /// Spread across packages and NUMA nodes first, then L3s, then cores; SMT last.
    Scatter,
}

impl Policy {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "compact" => Ok(Self::Compact),
            "scatter" => Ok(Self::Scatter),
            _ => Err(format!(
                "unknown placement {text:?}: expected compact or scatter"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Compact => "compact",
            Self::Scatter => "scatter",
        }
    }

    /// All usable CPUs of `topo` (restricted to `among` when given) in this policy's order.
    pub fn order(self, topo: &Topology, among: Option<&[usize]>) -> Vec<usize> {
        let usable: Vec<usize> = topo
            .usable_cpus()
            .into_iter()
            .filter(|c| among.is_none_or(|a| a.contains(c)))
            .collect();
        // Hierarchy position of each PU; missing levels sort as one domain.
        let key = |cpu: usize| {
            let p = topo.pu(cpu).expect("usable CPU is in the topology");
            (
                p.package.unwrap_or(0),
                p.numa.unwrap_or(0),
                p.l3.unwrap_or(0),
                p.core,
                p.os_index,
            )
        };
        let mut compact = usable.clone();
        compact.sort_by_key(|&c| key(c));
        match self {
            Self::Compact => compact,
            Self::Scatter => {
                // Rank of each PU inside its parent at every level, then sort by
                // (smt rank, core rank, L3 rank, NUMA rank, package): the deepest
                // level varies slowest, so consecutive threads land in different
                // packages, then NUMA nodes, then L3s, then cores.
                let mut rank: BTreeMap<usize, [usize; 5]> = BTreeMap::new();
                let mut seen: BTreeMap<(u8, Vec<usize>), Vec<usize>> = BTreeMap::new();
                let mut index_in = |level: u8, parent: Vec<usize>, child: usize| -> usize {
                    let list = seen.entry((level, parent)).or_default();
                    match list.iter().position(|&c| c == child) {
                        Some(i) => i,
                        None => {
                            list.push(child);
                            list.len() - 1
                        }
                    }
                };
                for &cpu in &compact {
                    let (pkg, numa, l3, core, pu) = key(cpu);
                    let r_numa = index_in(0, vec![pkg], numa);
                    let r_l3 = index_in(1, vec![pkg, numa], l3);
                    let r_core = index_in(2, vec![pkg, numa, l3], core);
                    let r_smt = index_in(3, vec![pkg, numa, l3, core], pu);
                    rank.insert(cpu, [r_smt, r_core, r_l3, r_numa, pkg]);
                }
                let mut v = compact;
                v.sort_by_key(|c| rank[c]);
                v
            }
        }
    }
}
