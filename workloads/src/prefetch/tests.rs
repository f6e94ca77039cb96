//! The prefetch experiment's tests: variants, batches, knees and interpretation.

use super::*;
use crate::experiment::NoTimer;
use crate::pages::Backing;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

fn facts() -> MachineFacts {
    MachineFacts {
        l1d_bytes: Some(32 << 10),
        l2_bytes: Some(512 << 10),
        llc_bytes: Some(32 << 20),
        numa_nodes: vec![0],
        source: "test".into(),
    }
}

#[test]
fn sizes_span_half_l1d_to_four_llc_at_two_per_octave() {
    let s = staircase_sizes(32 << 10, 32 << 20);
    assert_eq!(s.first(), Some(&(16 << 10)));
    assert_eq!(s.last(), Some(&(128 << 20)));
    assert!(s.contains(&(48 << 10)) && s.contains(&(512 << 10)));
    assert_eq!(s.len(), 2 * 13 + 1);
    // A 480 MiB LLC is capped.
    assert_eq!(
        staircase_sizes(48 << 10, 480 << 20).last(),
        Some(&MAX_WORKING_SET)
    );
}

#[test]
fn unknown_cache_sizes_are_an_error_naming_what_is_missing() {
    let m = MachineFacts {
        l1d_bytes: None,
        ..facts()
    };
    let e = Prefetch.variants(&m).unwrap_err();
    assert!(e.contains("L1d") && e.contains("--topology"), "{e}");
    let m = MachineFacts {
        llc_bytes: None,
        ..facts()
    };
    assert!(Prefetch.variants(&m).unwrap_err().contains("last-level"));
}

#[test]
fn variants_cover_layouts_sizes_and_distances_and_batches_run() {
    let v = Prefetch.variants(&facts()).unwrap();
    assert_eq!(v.len(), 4 * 27 + 14);
    assert!(v.iter().any(|v| v.name == "random-2M-32K"));
    assert!(v.iter().any(|v| v.name == "random-32K"));
    assert!(v.iter().any(|v| v.name == "seq-128M"));
    let names: Vec<&str> = v.iter().map(|v| v.name.as_ref()).collect();
    for c in Prefetch.comparisons() {
        assert!(
            names.contains(&c.treatment) && names.contains(&c.baseline),
            "{c:?}"
        );
    }
    // Small ones actually run (the big ones are exercised by `hwprof run`).
    for name in ["seq-16K", "stride-24K", "random-64K"] {
        let var = v.iter().find(|v| v.name == name).unwrap();
        let t = Prefetch.prepare(var, 1);
        assert_eq!(t.run_batch(0, &mut NoTimer), CHASE_STEPS_PER_BATCH as u64);
    }
    let pf8 = v.iter().find(|v| v.name == "list-pf8").unwrap();
    assert_eq!(pf8.working_set, Some(128 << 20));
}

#[test]
fn scan_visits_fresh_nodes_and_prefetch_does_not_change_the_walk() {
    let set = Arc::new(VectorSet::build(3 * 1024 * 2000));
    let walk = |d: usize| {
        let t = ScanTrial {
            set: set.clone(),
            query: set.vector(0).to_vec(),
            kernel: Kernel::Scalar,
            distance: d,
            at: vec![AtomicU32::new(0)],
        };
        let mut nodes = std::collections::HashSet::new();
        for _ in 0..50 {
            assert_eq!(
                t.run_batch(0, &mut NoTimer),
                (SCAN_NODES_PER_BATCH * DEGREE) as u64
            );
            nodes.insert(t.at[0].load(Ordering::Relaxed));
        }
        nodes
    };
    let plain = walk(0);
    assert!(
        plain.len() > 40,
        "the walk settles: {} distinct nodes",
        plain.len()
    );
    assert_eq!(walk(8), plain, "prefetching changed where the walk goes");
}

/// One group whose sweep variants take `ns(series, x)` ns per access (None:
/// not measured).
fn group(
    vars: &[crate::experiment::Variant],
    ns: impl Fn(&str, f64) -> Option<f64>,
    ratios: Vec<crate::findings::RatioOutcome>,
) -> GroupOutcome {
    GroupOutcome {
        label: "compact x1".into(),
        cpus: vec![0],
        pair_class: None,
        cpu_node: Some(0),
        variants: vars
            .iter()
            .filter_map(|v| {
                let p = v.point.as_ref()?;
                Some(outcome(&v.name, ns(&p.series, p.x)?))
            })
            .collect(),
        ratios,
    }
}

fn outcome(name: &str, ns: f64) -> crate::findings::VariantOutcome {
    let e = Estimate {
        median: ns,
        lo: ns * 0.98,
        hi: ns * 1.02,
    };
    crate::findings::VariantOutcome {
        name: name.into(),
        ops_per_sec: Estimate {
            median: 1e9 / ns,
            lo: 1e9 / e.hi,
            hi: 1e9 / e.lo,
        },
        ns_per_op: e,
    }
}

/// A staircase with steps at 32 KiB, 512 KiB and 32 MiB (the acceptance's
/// machine) read against a topology that declares 48 KiB / 2 MiB / 480 MiB.
#[test]
fn knees_are_found_and_checked_against_the_declared_caches() {
    let lat = |b: u64| -> f64 {
        match b {
            b if b <= 32 << 10 => 1.2,
            b if b <= 512 << 10 => 4.0,
            b if b <= 32 << 20 => 14.0,
            _ => 95.0,
        }
    };
    let pts: Vec<(f64, f64)> = staircase_sizes(32 << 10, 32 << 20)
        .into_iter()
        .map(|b| (b as f64, lat(b)))
        .collect();
    let k: Vec<f64> = knees(&pts).iter().map(|k| k.last_fit).collect();
    assert_eq!(k, [32768.0, 524288.0, 33554432.0]);
    // A sharp step between two samples 1.5x apart: half height is midway (log).
    for k in knees(&pts) {
        assert!((k.bytes / k.last_fit - 1.5f64.sqrt()).abs() < 1e-9, "{k:?}");
    }
    // Measured on this VM: a gradual L2 climb (1 MiB fits, 1.5 MiB partly),
    // then an L3 climb with no flat step in between (every step > 12%).
    let vm = [
        (0.75, 5.1),
        (1.0, 5.6),
        (1.5, 9.0),
        (2.0, 20.0),
        (3.0, 37.0),
        (4.0, 42.0),
        (6.0, 48.0),
        (8.0, 55.0),
        (12.0, 91.0),
        (16.0, 118.0),
        (24.0, 140.0),
        (32.0, 150.0),
    ]
    .map(|(m, ns)| (m * 1048576.0, ns));
    let k = knees(&vm);
    assert_eq!(k.len(), 2, "{k:?}");
    assert_eq!(k[0].last_fit, 1048576.0);
    let mib = |b: f64| b / 1048576.0;
    assert!((1.7..1.85).contains(&mib(k[0].bytes)), "{k:?}");
    assert!((10.5..11.2).contains(&mib(k[1].bytes)), "{k:?}");
    assert_eq!((k[0].before_ns, k[0].after_ns), (5.6, 37.0));
    assert_eq!((k[1].before_ns, k[1].after_ns), (55.0, 118.0));
    // A one-size spike (measured here: 234, 745, 288 ns at 32/48/64 MiB) is
    // smoothed away; the step it sits on stays.
    let spiky = [
        (16.0, 171.0),
        (24.0, 222.0),
        (32.0, 234.0),
        (48.0, 745.0),
        (64.0, 288.0),
        (96.0, 199.0),
        (128.0, 309.0),
        (192.0, 261.0),
    ]
    .map(|(m, ns)| (m * 1048576.0, ns));
    assert!(!knees(&spiky).is_empty(), "raw: the spike reads as a knee");
    assert!(
        knees(&median_of_3(&spiky)).is_empty(),
        "{:?}",
        knees(&median_of_3(&spiky))
    );
    let smoothed = median_of_3(&vm);
    assert_eq!(knees(&smoothed).len(), 2, "{:?}", knees(&smoothed));
    // Noise inside one climb is one knee.
    let one = [
        (1.0, 10.0),
        (1.5, 10.2),
        (2.0, 15.0),
        (3.0, 21.0),
        (4.0, 33.0),
        (6.0, 34.0),
    ];
    assert_eq!(knees(&one).len(), 1, "{:?}", knees(&one));

    let declared = MachineFacts {
        l1d_bytes: Some(48 << 10),
        l2_bytes: Some(2 << 20),
        llc_bytes: Some(480 << 20),
        ..facts()
    };
    let vars = Prefetch.variants(&declared).unwrap();
    let g = group(
        &vars,
        |series, x| {
            Some(match series {
                "seq" => 0.8,
                "stride" => 1.5,
                "random" => lat(x as u64),
                _ => 50.0,
            })
        },
        vec![crate::findings::RatioOutcome {
            treatment: "list-pf0".into(),
            baseline: "list-pf8".into(),
            ratio: Estimate {
                median: 2.5,
                lo: 2.3,
                hi: 2.7,
            },
        }],
    );
    // No page record: the 2 MiB series (flat here) attributes nothing.
    let f = super::interpret::interpret(&declared, &[g], &HashMap::new());
    let text = f.verdict.join("\n");
    assert!(
        text.contains("on 4 KiB pages steps up at 39.2 KiB (1.2 -> 4.0 ns; 32 KiB still fits)"),
        "{text}"
    );
    assert!(
        text.contains("L1d 48 KiB: knee at 39.2 KiB agrees"),
        "{text}"
    );
    assert!(text.contains("L2 2 MiB: no knee near it"), "{text}");
    assert!(
        text.contains("LLC 480 MiB: beyond the swept range"),
        "{text}"
    );
    assert!(text.contains("software prefetch 8 ahead: 2.50x"), "{text}");
    let w = f.warnings.join("\n");
    assert!(w.contains("declares L2 = 2 MiB"), "{w}");
    // 14 ns from 512 KiB to 32 MiB: no L2 level ends near 2 MiB at all.
    assert!(
        text.contains("L2 2 MiB: no knee near it (latency flat at 14-14 ns from 768 KiB to 6 MiB)")
            && w.contains("is flat across it"),
        "{text}\n{w}"
    );
    assert!(
        w.contains("knee at 627.1 KiB") && w.contains("knee at 39.2 MiB"),
        "{w}"
    );
    assert_eq!(f.charts.len(), 2);
    assert_eq!(f.charts[0].curves.len(), 4);
    assert!(
        w.contains("page size of the random-2M lists could not be read"),
        "{w}"
    );
    assert!(
        !text.contains("knees:"),
        "attributed without a page record: {text}"
    );
    assert_eq!(f.charts[0].markers.len(), 3);
}

#[test]
fn prefetch_verdict_names_the_shortest_distance_near_the_best() {
    let r = |t: &str, b: &str, m: f64, lo: f64, hi: f64| crate::findings::RatioOutcome {
        treatment: t.into(),
        baseline: b.into(),
        ratio: Estimate { median: m, lo, hi },
    };
    // The device run: scan pf1 1.33x with a wide CI, pf2 1.38x the best.
    let g = GroupOutcome {
        label: "compact x1".into(),
        cpus: vec![0],
        pair_class: None,
        cpu_node: None,
        variants: vec![],
        ratios: vec![
            r("scan-pf0", "scan-pf1", 1.33, 1.03, 1.51),
            r("scan-pf0", "scan-pf2", 1.38, 1.20, 1.50),
            r("scan-pf0", "scan-pf4", 1.36, 1.25, 1.45),
            r("list-pf0", "list-pf1", 0.98, 0.95, 1.01),
            r("list-pf0", "list-pf2", 1.02, 0.99, 1.04),
        ],
    };
    let f = Prefetch.interpret(&facts(), &[g]);
    let text = f.verdict.join("\n");
    assert!(
        text.contains("software prefetch 1 ahead: 1.33x [1.03-1.51] on the 768-d neighbour scan (within 5% of the best, 2 ahead: 1.38x [1.20-1.50])"),
        "{text}"
    );
    assert!(
        text.contains("software prefetch does not pay on the random list: the best distance, 2 ahead, gives 1.02x"),
        "{text}"
    );
}

/// The Zen 4 guest's shape: on 4 KiB pages the random chase steps at the L1d,
/// at the L1 dTLB's reach (~256 KiB) and at the LLC; on 2 MiB pages only at the
/// caches (L1d, L2, LLC). The TLB knee is attributed to the TLB, the L2 knee
/// (hidden by page walks on 4 KiB pages) to a cache, and the declared caches
/// are checked against the 2 MiB knees.
#[test]
fn knees_on_both_page_sizes_are_caches_and_the_rest_is_the_tlb() {
    let base = |b: u64| -> f64 {
        match b {
            b if b <= 32 << 10 => 1.0,
            b if b <= 256 << 10 => 4.0,
            b if b <= 32 << 20 => 16.0,
            _ => 120.0,
        }
    };
    let huge = |b: u64| -> f64 {
        match b {
            b if b <= 32 << 10 => 1.0,
            b if b <= 1 << 20 => 3.5,
            b if b <= 32 << 20 => 11.0,
            _ => 80.0,
        }
    };
    let declared = MachineFacts {
        l1d_bytes: Some(32 << 10),
        l2_bytes: Some(1 << 20),
        llc_bytes: Some(32 << 20),
        ..facts()
    };
    let vars = Prefetch.variants(&declared).unwrap();
    let g = group(
        &vars,
        |series, x| match series {
            "random" => Some(base(x as u64)),
            "random-2M" => Some(huge(x as u64)),
            "seq" => Some(0.8),
            "stride" => Some(1.5),
            _ => None,
        },
        vec![],
    );
    let mut backing: HashMap<u64, Backing> = vars
        .iter()
        .filter(|v| v.point.as_ref().unwrap().series == "random-2M")
        .map(|v| {
            let b = v.working_set.unwrap();
            (
                b,
                Backing::Thp {
                    huge_bytes: b.next_multiple_of(2 << 20),
                    bytes: b.next_multiple_of(2 << 20),
                },
            )
        })
        .collect();
    let f = super::interpret::interpret(&declared, std::slice::from_ref(&g), &backing);
    let text = f.verdict.join("\n");
    assert!(text.contains("a cache (on both page sizes)"), "{text}");
    assert!(
        text.contains("KiB: the TLB's reach (on 4 KiB pages only: page walks)"),
        "{text}"
    );
    assert!(
        text.contains("a cache (on 2 MiB pages only: page walks hide it on 4 KiB pages)"),
        "{text}"
    );
    assert!(
        text.contains("declared caches (knees on 2 MiB pages): L1d 32 KiB: knee at")
            && text.contains("L2 1 MiB: knee at")
            && !text.contains("no knee near it"),
        "{text}"
    );
    assert!(
        text.contains("latency at 128 MiB: 80.0 ns [78.4-81.6] per access on 2 MiB pages (100% of the lists on huge pages, per smaps), 120.0 ns [117.6-122.4] on 4 KiB pages: page walks add 40.0 ns (+50%)"),
        "{text}"
    );
    // Pages the kernel refused: no attribution, and a warning that says how to get them.
    for b in backing.values_mut() {
        *b = Backing::Base { bytes: 4 << 20 };
    }
    let f = super::interpret::interpret(&declared, &[g], &backing);
    assert!(!f.verdict.join("\n").contains("knees:"));
    let w = f.warnings.join("\n");
    assert!(
        w.contains("only 0% of their bytes on 2 MiB pages") && w.contains("nr_hugepages"),
        "{w}"
    );
}
