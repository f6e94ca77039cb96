//! Pair-by-pair results (`ThreadShape::AllPairs`, e.g. `hwprof run c2c`): one-way
//! latency per pair, medians per pair class, and contradictions between what a
//! pair measures and the class the topology declares (in a VM the host may have
//! placed "same-L3" vCPUs on different dies).

use std::collections::BTreeMap;

use super::analysis::GroupResult;
use crate::placement::PairClass;
pub use crate::report::schema::{ClassSummary, PairLatency, PairMatrix};
use crate::stats::{median, Interval};

/// Contradictions named one by one in the verdict and warnings; beyond this many
/// they are summarised per class.
const MAX_NAMED_CONTRADICTIONS: usize = 3;

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
    let (contradictions, warnings) = contradictions(&pairs);
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
            warnings.join("; ")
        )
    };
    Some(PairMatrix {
        pairs,
        classes,
        contradictions,
        warnings,
        verdict,
        source: "timer".into(),
    })
}

/// Pairs slower than their declared class allows (one line each), and what the
/// report warns: those lines when there are few, else one summary per class (a
/// big VM whose vCPUs the host spread over dies contradicts on most pairs).
fn contradictions(pairs: &[PairLatency]) -> (Vec<String>, Vec<String>) {
    let mut contradictions = Vec::new();
    let mut slow_by_class: BTreeMap<PairClass, Vec<f64>> = BTreeMap::new();
    for p in pairs {
        let Some(class) = p.class else { continue };
        let (limit, like) = too_slow_for(class);
        if p.ci95.lo > limit {
            slow_by_class.entry(class).or_default().push(p.one_way_ns);
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
    // A few contradictions are named pair by pair; many (a big VM whose vCPUs
    // the host spread over dies) are summarised per class, the list stays in
    // `contradictions`.
    let warnings: Vec<String> = if contradictions.len() <= MAX_NAMED_CONTRADICTIONS {
        contradictions.clone()
    } else {
        slow_by_class
            .iter()
            .map(|(class, slow)| {
                let (limit, like) = too_slow_for(*class);
                let of = pairs.iter().filter(|p| p.class == Some(*class)).count();
                let (lo, hi) = slow
                    .iter()
                    .fold((f64::INFINITY, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
                format!(
                    "{} of {of} pairs declared {} transfer a line slower than {limit:.0} ns one way                      (95% CI above it; median {:.0} ns, {lo:.0}-{hi:.0}), {like}; each pair is listed in                      pair_matrix.contradictions",
                    slow.len(),
                    class.name(),
                    median(slow),
                )
            })
            .collect()
    };
    (contradictions, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: usize, b: usize, ns: f64) -> PairLatency {
        PairLatency {
            cpus: (a, b),
            class: Some(PairClass::SameL3),
            one_way_ns: ns,
            ci95: Interval {
                lo: ns - 2.0,
                hi: ns + 2.0,
            },
        }
    }

    #[test]
    fn few_contradictions_are_named_many_are_summarised() {
        let few = [pair(0, 1, 40.0), pair(0, 2, 120.0)];
        let (all, warn) = contradictions(&few);
        assert_eq!(all.len(), 1);
        assert_eq!(warn, all);
        assert!(
            all[0].starts_with("CPUs 0-2 are declared same-l3"),
            "{all:?}"
        );

        // Measured on a 16-vCPU KVM guest: 88 of 120 "same-L3" pairs at 76-128 ns.
        let many: Vec<PairLatency> = (0..10)
            .map(|i| pair(0, i + 1, 80.0 + 5.0 * i as f64))
            .chain([pair(5, 6, 50.0)])
            .collect();
        let (all, warn) = contradictions(&many);
        assert_eq!(all.len(), 10);
        assert_eq!(warn.len(), 1, "{warn:?}");
        assert!(
            warn[0]
                .starts_with("10 of 11 pairs declared same-l3 transfer a line slower than 75 ns")
                && warn[0].contains("80-125"),
            "{warn:?}"
        );
    }
}
