//! Pair-by-pair results (`ThreadShape::AllPairs`, e.g. `hwprof run c2c`): one-way
//! latency per pair, medians per pair class, and contradictions between what a
//! pair measures and the class the topology declares (in a VM the host may have
//! placed "same-L3" vCPUs on different dies).

use std::collections::BTreeMap;

use serde::Serialize;

use super::analysis::GroupResult;
use crate::placement::PairClass;
use crate::stats::{median, Interval};

#[derive(Debug, Clone, Serialize)]
pub struct PairLatency {
    pub cpus: (usize, usize),
    pub class: Option<PairClass>,
    /// Median round trip / 2, ns [timer].
    pub one_way_ns: f64,
    pub ci95: Interval,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassSummary {
    pub class: String,
    pub pairs: usize,
    pub median_one_way_ns: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairMatrix {
    pub pairs: Vec<PairLatency>,
    pub classes: Vec<ClassSummary>,
    pub contradictions: Vec<String>,
    pub verdict: String,
    pub source: String,
}

/// A pair measuring slower than this for its declared class behaves like a
/// farther class. From published figures: SMT siblings ~6-9 ns; same L3 ~16-25 ns
/// (Zen CCX, client ring) up to ~45-50 ns (server mesh); across Zen CCDs ~85-110 ns;
/// across sockets ~110-200 ns.
fn too_slow_for(class: PairClass) -> (f64, &'static str) {
    match class {
        PairClass::SmtSiblings => (30.0, "like two separate cores"),
        PairClass::SameL3 => (
            75.0,
            "like a cross-CCD or cross-socket pair: the host placed them apart",
        ),
        PairClass::CrossL3 => (160.0, "like a cross-socket pair"),
        PairClass::CrossPackage => (f64::INFINITY, ""),
    }
}

pub fn analyse(groups: &[GroupResult]) -> Option<PairMatrix> {
    let mut pairs = Vec::new();
    for g in groups {
        let (&[a, b], Some(v)) = (g.cpus.as_slice(), g.variants.first()) else {
            continue;
        };
        let Some(s) = v
            .metrics
            .get("latency_p50_ns")
            .and_then(|m| m.summary.as_ref())
        else {
            continue;
        };
        pairs.push(PairLatency {
            cpus: (a, b),
            class: g.pair_class,
            one_way_ns: s.median / 2.0,
            ci95: Interval {
                lo: s.ci95.lo / 2.0,
                hi: s.ci95.hi / 2.0,
            },
        });
    }
    if pairs.is_empty() {
        return None;
    }
    let mut by_class: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in &pairs {
        by_class
            .entry(
                p.class
                    .map_or("unclassified".to_string(), |c| c.name().to_string()),
            )
            .or_default()
            .push(p.one_way_ns);
    }
    let classes: Vec<ClassSummary> = by_class
        .iter()
        .map(|(c, v)| ClassSummary {
            class: c.clone(),
            pairs: v.len(),
            median_one_way_ns: median(v),
        })
        .collect();
    let mut contradictions = Vec::new();
    for p in &pairs {
        let Some(class) = p.class else { continue };
        let (limit, like) = too_slow_for(class);
        if p.ci95.lo > limit {
            contradictions.push(format!(
                "CPUs {}-{} are declared {} but transfer a line in {:.0} ns one way (95% CI {:.0}-{:.0}), {like}",
                p.cpus.0,
                p.cpus.1,
                class.name(),
                p.one_way_ns,
                p.ci95.lo,
                p.ci95.hi
            ));
        }
    }
    let summary: Vec<String> = classes
        .iter()
        .map(|c| {
            format!(
                "{} {:.0} ns ({} pair{})",
                c.class,
                c.median_one_way_ns,
                c.pairs,
                if c.pairs == 1 { "" } else { "s" }
            )
        })
        .collect();
    let verdict = if contradictions.is_empty() {
        format!(
            "one-way latency by class (median of pair medians, timer): {}; consistent with the declared topology",
            summary.join(", ")
        )
    } else {
        format!(
            "one-way latency by class (median of pair medians, timer): {}; {}",
            summary.join(", "),
            contradictions.join("; ")
        )
    };
    Some(PairMatrix {
        pairs,
        classes,
        contradictions,
        verdict,
        source: "timer".into(),
    })
}
