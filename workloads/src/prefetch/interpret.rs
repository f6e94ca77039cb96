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

/// `huge_backing`: what backed each 2 MiB-page list, by working set.
pub(super) fn interpret(
    m: &MachineFacts,
    groups: &[GroupOutcome],
    huge_backing: &HashMap<u64, Backing>,
) -> Findings {
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
    let curves: Vec<Curve> = STAIRCASE
        .iter()
        .map(|(series, ..)| curve(series, &ns))
        .filter(|c| !c.points.is_empty())
        .collect();
    let by_name = |n: &str| curves.iter().find(|c| c.name == n).cloned();
    let random = by_name("random").unwrap_or_else(|| curve("random", &ns));
    let huge = by_name(HUGE_SERIES).filter(|c| c.points.len() >= 3);
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

    // Knees of the random curves: on 4 KiB pages they mix caches and the TLB's
    // reach; on 2 MiB pages (reach 512x larger) they are the caches.
    let knees_of = |c: &Curve| {
        let pts: Vec<(f64, f64)> = c.points.iter().map(|p| (p.x, p.y.median)).collect();
        knees(&median_of_3(&pts))
    };
    let describe = |ks: &[Knee]| -> String {
        ks.iter()
            .map(|k| {
                format!(
                    "{} ({:.1} -> {:.1} ns; {} still fits)",
                    format_bytes(k.bytes),
                    k.before_ns,
                    k.after_ns,
                    format_bytes(k.last_fit)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let base_knees = knees_of(&random);
    if !base_knees.is_empty() {
        f.verdict.push(format!(
            "random-access latency on 4 KiB pages steps up at {} [timer]",
            describe(&base_knees)
        ));
    }
    let share = huge_share(huge.as_ref(), huge_backing);
    // The 2 MiB series attributes knees only when its pages were verified.
    let huge_knees = match (&huge, share) {
        (Some(h), Some(s)) if s >= 0.5 => Some(knees_of(h)),
        (Some(_), Some(s)) => {
            f.warnings.push(format!(
                "the {HUGE_SERIES} lists got only {:.0}% of their bytes on 2 MiB pages (/proc/self/smaps): \
                 knees are not attributed to caches or the TLB. To regain huge pages: \
                 `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled`, compact memory \
                 (`echo 1 > /proc/sys/vm/compact_memory`), or reserve hugetlbfs pages (`sysctl vm.nr_hugepages=N`)",
                100.0 * s
            ));
            None
        }
        (Some(_), None) => {
            f.warnings.push(format!(
                "the page size of the {HUGE_SERIES} lists could not be read (no /proc/self/smaps): \
                 knees are not attributed to caches or the TLB"
            ));
            None
        }
        (None, _) => None,
    };
    if let Some(hk) = &huge_knees {
        if !hk.is_empty() {
            f.verdict.push(format!(
                "random-access latency on 2 MiB pages steps up at {} [timer]",
                describe(hk)
            ));
        }
        // A knee on both page sizes is a cache; on 4 KiB pages only, the TLB.
        let near = |a: &Knee, ks: &[Knee]| ks.iter().any(|k| agrees(a.bytes, k.bytes));
        let mut attributed: Vec<String> = base_knees
            .iter()
            .map(|k| {
                if near(k, hk) {
                    format!("{}: a cache (on both page sizes)", format_bytes(k.bytes))
                } else {
                    format!(
                        "{}: the TLB's reach (on 4 KiB pages only: page walks)",
                        format_bytes(k.bytes)
                    )
                }
            })
            .collect();
        attributed.extend(hk.iter().filter(|k| !near(k, &base_knees)).map(|k| {
            format!(
                "{}: a cache (on 2 MiB pages only: page walks hide it on 4 KiB pages)",
                format_bytes(k.bytes)
            )
        }));
        if !attributed.is_empty() {
            f.verdict
                .push(format!("knees: {} [timer]", attributed.join("; ")));
        }
        // Memory latency as Intel MLC quotes it: random chase on huge pages.
        if let (Some(h), Some(b)) = (
            huge.as_ref().and_then(|h| h.points.last()),
            random.points.last(),
        ) {
            if h.x == b.x {
                f.verdict.push(format!(
                    "latency at {}: {:.1} ns [{:.1}-{:.1}] per access on 2 MiB pages ({:.0}% of the lists on huge pages, per smaps), \
                     {:.1} ns [{:.1}-{:.1}] on 4 KiB pages: page walks add {:.1} ns ({:+.0}%) [timer]",
                    format_bytes(h.x),
                    h.y.median,
                    h.y.lo,
                    h.y.hi,
                    100.0 * share.unwrap_or(0.0),
                    b.y.median,
                    b.y.lo,
                    b.y.hi,
                    b.y.median - h.y.median,
                    100.0 * (b.y.median / h.y.median - 1.0)
                ));
            }
        }
    }
    // Declared caches are checked against the 2 MiB knees where they exist.
    let (found, pages, cache_curve) = match huge_knees {
        Some(k) => (
            k,
            "2 MiB pages",
            huge.clone().unwrap_or_else(|| random.clone()),
        ),
        None => (base_knees, "4 KiB pages", random.clone()),
    };
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
            None => match flat_across(&cache_curve, b) {
                // A flat curve across the declared size: the level is there on
                // paper but no access hits it.
                Some(flat) => {
                    checks.push(format!("{n} {}: no knee near it ({flat})", format_bytes(b)));
                    f.warnings.push(format!(
                        "the topology declares {n} = {} but the random chase on {pages} is flat across it ({flat}): \
                         this CPU gets no hits from that cache at any size swept. In a VM the host may partition it \
                         (Intel CAT, AMD L3 QoS) or other guests may keep it full; on bare metal, check resctrl",
                        format_bytes(b),
                    ));
                }
                None => {
                    checks.push(format!("{n} {}: no knee near it", format_bytes(b)));
                    f.warnings.push(format!(
                        "the topology declares {n} = {} but the random chase on {pages} shows no knee within 1.5x of it; \
                         the cache the hardware has differs from what {} reports (in a VM, the hypervisor's CPUID \
                         cache description need not match the host)",
                        format_bytes(b),
                        m.source
                    ));
                }
            },
        }
    }
    for k in &found {
        if !declared.iter().any(|&(_, b)| agrees(k.bytes, b as f64)) {
            let why = if pages == "2 MiB pages" {
                "a cache level it does not report (or reports at another size); on 2 MiB pages the TLB's \
                 reach is 512x larger, so it is less likely the TLB"
            } else {
                "a cache level it does not report (or reports at another size), or the reach of the TLB \
                 (4 KiB pages; the 2 MiB series tells them apart)"
            };
            f.warnings.push(format!(
                "the random chase on {pages} shows a knee at {} ({:.1} -> {:.1} ns) where the topology declares no cache: {why}",
                format_bytes(k.bytes),
                k.before_ns,
                k.after_ns
            ));
        }
    }
    if !checks.is_empty() {
        f.verdict.push(format!(
            "declared caches (knees on {pages}): {} [timer]",
            checks.join("; ")
        ));
    }
    if (4 * m.llc_bytes.unwrap_or(0)) > MAX_WORKING_SET {
        f.warnings.push(format!(
            "the sweep stops at {} (4 x LLC would be {})",
            format_bytes(MAX_WORKING_SET as f64),
            format_bytes(4.0 * m.llc_bytes.unwrap_or(0) as f64)
        ));
    }
    // Hardware prefetch: sequential vs random at the largest size.
    let seq = by_name("seq").unwrap_or_else(|| curve("seq", &ns));
    let stride = by_name("stride").unwrap_or_else(|| curve("stride", &ns));
    if let (Some(s), Some(r)) = (seq.points.last(), random.points.last()) {
        f.verdict.push(format!(
            "hardware prefetch: at {} a sequential chase costs {:.1} ns per access, a random one {:.1} ns ({:.0}x); stride {:.1} ns (95% CIs: sequential {:.1}-{:.1}, random {:.1}-{:.1}) [timer]",
            format_bytes(r.x),
            s.y.median,
            r.y.median,
            r.y.median / s.y.median,
            stride.points.last().map_or(f64::NAN, |p| p.y.median),
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

/// The smallest share of 2 MiB pages among the huge-page lists this run built
/// for the curve's sizes (None: not recorded, or unknown on this platform).
fn huge_share(curve: Option<&Curve>, record: &HashMap<u64, Backing>) -> Option<f64> {
    let curve = curve?;
    curve
        .points
        .iter()
        .map(|p| record.get(&(p.x as u64)).and_then(|b| b.huge_share()))
        .try_fold(f64::INFINITY, |acc, s| Some(acc.min(s?)))
        .filter(|s| s.is_finite())
}

/// "latency flat at 157-167 ns from 3 MiB to 384 MiB" when the curve varies by
/// less than 25% over a third of `bytes` to three times it (at least 3 points).
fn flat_across(curve: &Curve, bytes: f64) -> Option<String> {
    let span: Vec<&CurvePoint> = curve
        .points
        .iter()
        .filter(|p| p.x >= bytes / 3.0 && p.x <= bytes * 3.0)
        .collect();
    let (first, last) = (span.first()?, span.last()?);
    let lo = span
        .iter()
        .map(|p| p.y.median)
        .fold(f64::INFINITY, f64::min);
    let hi = span.iter().map(|p| p.y.median).fold(0.0, f64::max);
    (span.len() >= 3 && hi < 1.25 * lo).then(|| {
        format!(
            "latency flat at {lo:.0}-{hi:.0} ns from {} to {}",
            format_bytes(first.x),
            format_bytes(last.x)
        )
    })
}
