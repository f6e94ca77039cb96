//! The prefetch experiment's reading of its results: the staircase's knees
//! against the declared cache sizes, the hardware prefetchers' effect, and the
//! best software-prefetch distance for the list and the scan.

use super::knees::{knees, median_of_3};
use super::*;

/// A knee agrees with a declared cache size when within a factor of 1.5 (one
/// sample step of the sweep).
fn agrees(knee: f64, cache: f64) -> bool {
    (knee / cache).log2().abs() <= 1.5f64.log2() + 1e-9
}

pub(super) fn interpret(m: &MachineFacts, groups: &[GroupOutcome]) -> Findings {
    let mut f = Findings::default();
    let Some(g) = groups.first() else {
        return f;
    };
    let Ok(variants) = Prefetch.variants(m) else {
        return f;
    };
    let curve = |series: &str, y: &dyn Fn(&crate::findings::VariantOutcome) -> Estimate| Curve {
        name: series.to_string(),
        points: variants
            .iter()
            .filter_map(|v| {
                let p = v.point.as_ref().filter(|p| p.series == series)?;
                let o = g.variant(&v.name)?;
                Some(CurvePoint { x: p.x, y: y(o) })
            })
            .collect(),
    };
    let ns = |o: &crate::findings::VariantOutcome| o.ns_per_op;
    let mut markers = Vec::new();
    let declared: Vec<(&str, u64)> = [
        ("L1d", m.l1d_bytes),
        ("L2", m.l2_bytes),
        ("LLC", m.llc_bytes),
    ]
    .into_iter()
    .filter_map(|(n, b)| Some((n, b?)))
    // L2 is the LLC where there is no L3: mark it once.
    .fold(Vec::new(), |mut acc, (n, b)| {
        if !acc.iter().any(|&(_, x)| x == b) {
            acc.push((n, b));
        }
        acc
    });
    for &(n, b) in &declared {
        markers.push((format!("{n} {}", format_bytes(b as f64)), b as f64));
    }
    let curves: Vec<Curve> = Layout::ALL.iter().map(|l| curve(l.series(), &ns)).collect();
    let random = curves[2].clone();
    let top = random.points.last().map(|p| p.x).unwrap_or(0.0);
    f.charts.push(Chart {
        id: "staircase".into(),
        title:
            "hwprof prefetch: pointer-chase latency vs working set (dashed: declared cache sizes)"
                .into(),
        x_label: "working set".into(),
        y_label: "ns per access (dependent load)".into(),
        x_bytes: true,
        log_x: true,
        log_y: true,
        curves: curves.clone(),
        markers,
        secondary: None,
    });

    // Knees of the random curve against the declared caches.
    let pts: Vec<(f64, f64)> = random.points.iter().map(|p| (p.x, p.y.median)).collect();
    let found = knees(&median_of_3(&pts));
    if !found.is_empty() {
        let list: Vec<String> = found
            .iter()
            .map(|k| {
                format!(
                    "{} ({:.1} -> {:.1} ns; {} still fits)",
                    format_bytes(k.bytes),
                    k.before_ns,
                    k.after_ns,
                    format_bytes(k.last_fit)
                )
            })
            .collect();
        f.verdict.push(format!(
            "random-access latency steps up at {} [timer]",
            list.join(", ")
        ));
    }
    let mut checks = Vec::new();
    for &(n, b) in &declared {
        let b = b as f64;
        if b * 1.5 > top {
            checks.push(format!(
                "{n} {}: beyond the swept range (up to {}), not checked",
                format_bytes(b),
                format_bytes(top)
            ));
            continue;
        }
        match found.iter().find(|k| agrees(k.bytes, b)) {
            Some(k) => checks.push(format!(
                "{n} {}: knee at {} agrees",
                format_bytes(b),
                format_bytes(k.bytes)
            )),
            None => {
                checks.push(format!("{n} {}: no knee near it", format_bytes(b)));
                f.warnings.push(format!(
                    "the topology declares {n} = {} but the random chase shows no knee within 1.5x of it; \
                     the cache the hardware has differs from what {} reports (in a VM, the hypervisor's CPUID \
                     cache description need not match the host)",
                    format_bytes(b),
                    m.source
                ));
            }
        }
    }
    for k in &found {
        if !declared.iter().any(|&(_, b)| agrees(k.bytes, b as f64)) {
            f.warnings.push(format!(
                "the random chase shows a knee at {} ({:.1} -> {:.1} ns) where the topology declares no cache: \
                 a cache level it does not report (or reports at another size), or the reach of the TLB \
                 (random pages; 4 KiB unless transparent huge pages apply)",
                format_bytes(k.bytes),
                k.before_ns,
                k.after_ns
            ));
        }
    }
    if !checks.is_empty() {
        f.verdict
            .push(format!("declared caches: {} [timer]", checks.join("; ")));
    }
    if (4 * m.llc_bytes.unwrap_or(0)) > MAX_WORKING_SET {
        f.warnings.push(format!(
            "the sweep stops at {} (4 x LLC would be {})",
            format_bytes(MAX_WORKING_SET as f64),
            format_bytes(4.0 * m.llc_bytes.unwrap_or(0) as f64)
        ));
    }
    // Hardware prefetch: sequential vs random at the largest size.
    if let (Some(s), Some(r)) = (curves[0].points.last(), random.points.last()) {
        f.verdict.push(format!(
            "hardware prefetch: at {} a sequential chase costs {:.1} ns per access, a random one {:.1} ns ({:.0}x); stride {:.1} ns (95% CIs: sequential {:.1}-{:.1}, random {:.1}-{:.1}) [timer]",
            format_bytes(r.x),
            s.y.median,
            r.y.median,
            r.y.median / s.y.median,
            curves[1].points.last().map_or(f64::NAN, |p| p.y.median),
            s.y.lo,
            s.y.hi,
            r.y.lo,
            r.y.hi,
        ));
    }

    // Software prefetch distance sweep.
    let dist = |series: &str| curve(series, &ns);
    f.charts.push(Chart {
        id: "prefetch-distance".into(),
        title: format!(
            "hwprof prefetch: software prefetch distance ({} working set)",
            format_bytes(top)
        ),
        x_label: "prefetch distance (nodes / neighbours ahead; 0 = none)".into(),
        y_label: "ns per access".into(),
        x_bytes: false,
        log_x: false,
        log_y: true,
        curves: vec![dist("list"), dist("scan")],
        markers: vec![],
        secondary: None,
    });
    for (names, what) in [
        (LIST_NAMES, "the random list"),
        (SCAN_NAMES, "the 768-d neighbour scan"),
    ] {
        // The shortest distance within 5% of the best median: farther only costs
        // cache space and fill buffers.
        let by_distance: Vec<(usize, &crate::findings::RatioOutcome)> = names[1..]
            .iter()
            .zip(&DISTANCES[1..])
            .filter_map(|(n, &d)| {
                let r = g
                    .ratios
                    .iter()
                    .find(|r| r.treatment == names[0] && r.baseline == *n)?;
                Some((d, r))
            })
            .collect();
        let Some(&(top_d, top)) = by_distance
            .iter()
            .max_by(|a, b| a.1.ratio.median.total_cmp(&b.1.ratio.median))
        else {
            continue;
        };
        let Some(&(d, best)) = by_distance
            .iter()
            .find(|(_, r)| r.ratio.median >= 0.95 * top.ratio.median)
        else {
            continue;
        };
        // Whether prefetch pays is the best distance's call (its CI above 1.05);
        // the recommendation is the shortest distance within 5% of it.
        let ci = |r: &Estimate| format!("{:.2}x [{:.2}-{:.2}]", r.median, r.lo, r.hi);
        if top.ratio.lo <= 1.05 {
            f.verdict.push(format!(
                "software prefetch does not pay on {what}: the best distance, {top_d} ahead, gives {} [timer]",
                ci(&top.ratio)
            ));
        } else if d == top_d {
            f.verdict.push(format!(
                "software prefetch {d} ahead: {} on {what} (best of distances 1-32) [timer]",
                ci(&best.ratio)
            ));
        } else {
            f.verdict.push(format!(
                "software prefetch {d} ahead: {} on {what} (within 5% of the best, {top_d} ahead: {}) [timer]",
                ci(&best.ratio),
                ci(&top.ratio)
            ));
        }
    }
    f
}
