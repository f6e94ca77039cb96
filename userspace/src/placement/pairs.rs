//! Pair classes for two-party experiments: how far apart two CPUs are.

use serde::{Deserialize, Serialize};

use crate::topology::Topology;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairClass {
    /// Two hardware threads of one core.
    SmtSiblings,
    /// Two cores under one L3 (one CCX on AMD, one ring/mesh on Intel).
    SameL3,
    /// Two cores of one package under different L3s (another CCX/CCD, SNC domain).
    CrossL3,
    /// Two packages (sockets).
    CrossPackage,
}

impl PairClass {
    pub const ALL: [PairClass; 4] = [
        PairClass::SmtSiblings,
        PairClass::SameL3,
        PairClass::CrossL3,
        PairClass::CrossPackage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PairClass::SmtSiblings => "smt-siblings",
            PairClass::SameL3 => "same-l3",
            PairClass::CrossL3 => "cross-l3",
            PairClass::CrossPackage => "cross-package",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| {
                format!(
                    "unknown pair class {text:?}: expected one of {}",
                    Self::ALL.map(|c| c.name()).join(", ")
                )
            })
    }

    /// Parse a comma-separated list, e.g. `same-l3,cross-package`, or `all`.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        if text == "all" {
            return Ok(Self::ALL.to_vec());
        }
        let mut v = Vec::new();
        for part in text.split(',') {
            let c = Self::parse(part.trim())?;
            if !v.contains(&c) {
                v.push(c);
            }
        }
        Ok(v)
    }
}

/// The class of the pair (a, b), or None where the topology cannot tell (e.g. two
/// cores of one package and no L3 recorded).
pub fn classify(topo: &Topology, a: usize, b: usize) -> Option<PairClass> {
    let (pa, pb) = (topo.pu(a)?, topo.pu(b)?);
    if a == b {
        return None;
    }
    if pa.core == pb.core {
        return Some(PairClass::SmtSiblings);
    }
    match (pa.package, pb.package) {
        (Some(x), Some(y)) if x != y => return Some(PairClass::CrossPackage),
        _ => {}
    }
    match (pa.l3, pb.l3) {
        (Some(x), Some(y)) if x == y => Some(PairClass::SameL3),
        (Some(_), Some(_)) => Some(PairClass::CrossL3),
        _ => None,
    }
}

/// Why `class` has no pair among `cpus` on this topology.
pub fn why_unavailable(topo: &Topology, class: PairClass, restricted: bool) -> String {
    let scope = if restricted {
        " among the selected CPUs"
    } else {
        ""
    };
    match class {
        PairClass::SmtSiblings if topo.max_smt() < 2 => {
            "no core has two hardware threads (no SMT, or SMT disabled)".into()
        }
        PairClass::SameL3 | PairClass::CrossL3 if topo.l3_domains == 0 => {
            "the topology records no L3 cache".into()
        }
        PairClass::SameL3 => format!("no L3 is shared by two cores{scope}"),
        PairClass::CrossL3 => format!("no package holds two L3 domains{scope}"),
        PairClass::CrossPackage if topo.packages < 2 => {
            format!("the machine has {} package(s)", topo.packages)
        }
        _ => format!("no such pair{scope}"),
    }
}

/// Every CPU a many-thread group of `class` can use, grown from the pair (a, b):
/// the first two are a and b, then alternately one more core from a's side and
/// one from b's side (one hardware thread per core), so any even prefix is
/// balanced. Sides: same L3 = both a's L3; cross L3 = a's L3 and b's L3; cross
/// package = a's package and b's package. SMT siblings stay a pair.
pub fn grow(
    topo: &Topology,
    class: PairClass,
    pair: (usize, usize),
    among: &[usize],
) -> Vec<usize> {
    let (a, b) = pair;
    let (Some(pa), Some(pb)) = (topo.pu(a), topo.pu(b)) else {
        return vec![a, b];
    };
    // One PU per core, in `among` order, excluding a's and b's cores.
    let mut cores_seen = std::collections::BTreeSet::from([pa.core, pb.core]);
    let mut side = |pred: &dyn Fn(&crate::topology::Pu) -> bool| -> Vec<usize> {
        among
            .iter()
            .copied()
            .filter(|&c| {
                topo.pu(c)
                    .is_some_and(|p| pred(p) && cores_seen.insert(p.core))
            })
            .collect()
    };
    let (side_a, side_b) = match class {
        PairClass::SmtSiblings => return vec![a, b],
        PairClass::SameL3 => (side(&|p| p.l3 == pa.l3), vec![]),
        PairClass::CrossL3 => {
            let sa = side(&|p| p.l3 == pa.l3);
            (sa, side(&|p| p.l3 == pb.l3))
        }
        PairClass::CrossPackage => {
            let sa = side(&|p| p.package == pa.package);
            (sa, side(&|p| p.package == pb.package))
        }
    };
    let mut out = vec![a, b];
    if class == PairClass::SameL3 {
        out.extend(side_a);
        return out;
    }
    out.extend(side_a.iter().zip(&side_b).flat_map(|(&x, &y)| [x, y]));
    out
}

/// The first pair of `class` among `cpus`, trying CPUs in the given order.
pub fn find_pair(topo: &Topology, class: PairClass, cpus: &[usize]) -> Option<(usize, usize)> {
    for (i, &a) in cpus.iter().enumerate() {
        for &b in &cpus[i + 1..] {
            if classify(topo, a, b) == Some(class) {
                return Some((a, b));
            }
        }
    }
    None
}
