//! `hwprof run prefetch`: what the memory hierarchy costs per access, and what
//! prefetching (hardware and software) buys back.
//!
//! 1. Latency staircase: a pointer chase (each load's address is the previous
//!    load's value, so nothing overlaps) over working sets from half the L1d to
//!    4x the LLC, in three layouts on 4 KiB pages: `seq` (next line), `stride`
//!    (4 lines ahead, 256 B) and `random` (one random cycle through every line),
//!    and the random layout again on 2 MiB pages (`random-2M`). The random curves
//!    climb at each cache's capacity and, on 4 KiB pages, at the TLB's reach too:
//!    a knee on both page sizes is a cache, one on 4 KiB pages only is page
//!    walks. Knees are checked against the sizes the topology declares.
//! 2. Software-prefetch distance sweep on the random list at the largest size:
//!    every node carries jump pointers to the nodes 1, 2, 4, 8, 16 and 32 ahead
//!    (Roth & Sohi's jump-pointer prefetching), and the chase prefetches one of
//!    them while it walks `next`.
//! 3. The same sweep on a neighbour scan shaped like an HNSW search over 768-d f32
//!    vectors (Engram's recall): fixed-degree adjacency, one distance per neighbour,
//!    and the whole vector of the neighbour `d` ahead prefetched.

mod interpret;
pub mod knees;
mod scan;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

pub use crate::chase::DISTANCES;
use crate::chase::{ChaseTrial, Layout, List, STRIDE_LINES};
use crate::experiment::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, ThreadShape, Trial, Variant,
};
use crate::findings::{format_bytes, Chart, Curve, CurvePoint, Estimate, Findings, GroupOutcome};
use crate::pages::{Backing, PageSize};
use crate::simd::Kernel;
pub use knees::{knees, median_of_3, Knee};
use scan::{ScanTrial, VectorSet};

/// Random lists: drawn from this seed (fixed, so every run walks the same cycle).
const LIST_SEED: u64 = 0x5eed;
const LIST_NAMES: [&str; 7] = [
    "list-pf0",
    "list-pf1",
    "list-pf2",
    "list-pf4",
    "list-pf8",
    "list-pf16",
    "list-pf32",
];
const SCAN_NAMES: [&str; 7] = [
    "scan-pf0",
    "scan-pf1",
    "scan-pf2",
    "scan-pf4",
    "scan-pf8",
    "scan-pf16",
    "scan-pf32",
];

/// The sweep stops here even when 4x the LLC is larger: building and walking a
/// multi-GiB random list per repetition would take minutes. The report says so.
pub const MAX_WORKING_SET: u64 = 512 << 20;
const CHASE_STEPS_PER_BATCH: usize = 4096;
/// Engram's embeddings.
pub const DIMS: usize = 768;
/// Neighbours per node (HNSW's layer-0 degree 2M with M = 16).
pub const DEGREE: usize = 32;
const SCAN_NODES_PER_BATCH: usize = 4;

/// Random lists and vector sets are built once per run and shared by every
/// repetition (a random cycle over 512 MiB takes about a second to build, and the
/// sizes of one layout add up to twice the largest); each walk resumes where the
/// last stopped. Released by `release` when the run ends.
type Cache<K, T> = Mutex<HashMap<K, Arc<T>>>;
static LISTS: std::sync::LazyLock<Cache<(Layout, u64, PageSize), List>> =
    std::sync::LazyLock::new(Default::default);
/// What the kernel gave each 2 MiB-page list (by working set), read from smaps
/// once the list is written: the report states it rather than assuming it.
static HUGE_BACKING: std::sync::LazyLock<Mutex<HashMap<u64, Backing>>> =
    std::sync::LazyLock::new(Default::default);

/// The staircase's curves: (series, layout, page size).
const STAIRCASE: [(&str, Layout, PageSize); 4] = [
    ("seq", Layout::Sequential, PageSize::Base),
    ("stride", Layout::Stride, PageSize::Base),
    ("random", Layout::Random, PageSize::Base),
    (HUGE_SERIES, Layout::Random, PageSize::Huge),
];
/// The random chase on 2 MiB pages.
pub const HUGE_SERIES: &str = "random-2M";

fn staircase_series(series: &str) -> Option<(Layout, PageSize)> {
    STAIRCASE
        .iter()
        .find(|(s, ..)| *s == series)
        .map(|&(_, l, p)| (l, p))
}

/// The list for one staircase point, recording what backs a huge-page one.
fn list(layout: Layout, bytes: u64, pages: PageSize) -> Arc<List> {
    let build = || {
        let l = List::build(layout, bytes, LIST_SEED, layout == Layout::Random, pages);
        if pages == PageSize::Huge {
            HUGE_BACKING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(bytes, l.nodes.backing());
        }
        l
    };
    match layout {
        Layout::Random => cached(&LISTS, (layout, bytes, pages), build),
        // Sequential and strided lists are cheap to build (one pass of stores):
        // built per repetition, so only the random ones stay resident.
        _ => Arc::new(build()),
    }
}
static VECTOR_SETS: std::sync::LazyLock<Cache<u64, VectorSet>> =
    std::sync::LazyLock::new(Default::default);

fn cached<K: std::hash::Hash + Eq, T>(
    cache: &Cache<K, T>,
    key: K,
    build: impl FnOnce() -> T,
) -> Arc<T> {
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    c.entry(key).or_insert_with(|| Arc::new(build())).clone()
}

/// Working-set sizes of the staircase: 2^k and 1.5 x 2^k from L1d/2 to 4 x LLC
/// (capped at [`MAX_WORKING_SET`]).
pub fn staircase_sizes(l1d: u64, llc: u64) -> Vec<u64> {
    let (lo, hi) = (l1d / 2, (4 * llc).min(MAX_WORKING_SET));
    let mut v = Vec::new();
    let mut p = 1024u64;
    while p <= hi {
        for s in [p, p + p / 2] {
            if (lo..=hi).contains(&s) {
                v.push(s);
            }
        }
        p *= 2;
    }
    v
}

fn size_label(b: u64) -> String {
    if b & ((1 << 20) - 1) == 0 {
        format!("{}M", b >> 20)
    } else {
        format!("{}K", b >> 10)
    }
}

pub struct Prefetch;

impl Prefetch {
    /// The staircase's sizes and the largest of them (the distance sweeps' working set).
    fn sizes(m: &MachineFacts) -> Result<(Vec<u64>, u64), String> {
        let (Some(l1d), Some(llc)) = (m.l1d_bytes, m.llc_bytes) else {
            return Err(format!(
                "the topology ({}) reports no {} size; the staircase is sized from the caches \
                 (use a topology that has them: --topology xml:FILE from `lstopo --of xml`)",
                m.source,
                if m.l1d_bytes.is_none() {
                    "L1d"
                } else {
                    "last-level cache"
                }
            ));
        };
        let sizes = staircase_sizes(l1d, llc);
        let top = *sizes
            .last()
            .ok_or_else(|| format!("cache sizes L1d {l1d} B / LLC {llc} B give no sweep"))?;
        Ok((sizes, top))
    }
}

const INFO: ExperimentInfo = ExperimentInfo {
    name: "prefetch",
    summary: "pointer-chase latency staircase (seq/stride/random) against the cache sizes, and the software-prefetch distance sweep on a random list and an HNSW-like 768-d neighbour scan",
    operation: "access",
    thread_shape: ThreadShape::Threads { default: 1 },
    records_latency: false,
    sweeps_threads: false,
    // ~100 variants: short windows, enough repetitions for a CI.
    quick:     Some((0.03, 5)),
    metrics: &[
            "prefetch_coverage",
            "prefetch_accuracy",
            "late_sw_prefetch_share",
            "l1d_miss_rate",
            "l2_miss_rate",
            "dtlb_misses_per_kilo_load",
        ],
};

impl Experiment for Prefetch {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn variants(&self, m: &MachineFacts) -> Result<Vec<Variant>, String> {
        let (sizes, top) = Prefetch::sizes(m)?;
        let mut v = Vec::new();
        for (series, layout, pages) in STAIRCASE {
            for &s in &sizes {
                let mut p = Variant::point(
                    series,
                    s as f64,
                    &size_label(s),
                    format!(
                        "{} chase over {} on {} pages",
                        layout.series(),
                        format_bytes(s as f64),
                        pages.label()
                    ),
                );
                p.working_set = Some(s);
                v.push(p);
            }
        }
        let top_text = format_bytes(top as f64);
        for d in DISTANCES {
            for (series, description) in [
                (
                    "list",
                    format!("random chase over {top_text}, prefetching the node {d} ahead (0: none)"),
                ),
                (
                    "scan",
                    format!(
                        "HNSW-like scan of {DIMS}-d vectors (degree {DEGREE}) over {top_text}, prefetching the vector {d} neighbours ahead"
                    ),
                ),
            ] {
                // Named `list-pfD` / `scan-pfD`, as LIST_NAMES / SCAN_NAMES.
                let mut p = Variant::point(series, d as f64, &format!("pf{d}"), description);
                p.working_set = Some(top);
                v.push(p);
            }
        }
        Ok(v)
    }

    fn comparison(&self) -> Comparison {
        self.comparisons()[0]
    }

    /// Every distance against no prefetch, on both kernels: the ratio is the
    /// speed-up prefetching buys (the verdict picks the best).
    fn comparisons(&self) -> Vec<Comparison> {
        let mut v = Vec::new();
        for names in [LIST_NAMES, SCAN_NAMES] {
            for &b in &names[1..] {
                v.push(Comparison {
                    effect: "prefetch speed-up",
                    ..Comparison::slowdown(names[0], b)
                });
            }
        }
        // Headline: 8 ahead on the list.
        v.swap(0, 3);
        v
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "an access is one dependent load of a 64-byte node (list variants) or one 768-d dot product (scan variants)".into(),
            format!("staircase: 2 sizes per octave from L1d/2 to 4 x LLC, capped at {}; layouts seq (next line), stride ({STRIDE_LINES} lines = {} B), random (Sattolo single cycle) on 4 KiB pages (MADV_NOHUGEPAGE), and random again on 2 MiB pages ({HUGE_SERIES}: MADV_HUGEPAGE, or hugetlbfs where THP is off; what the kernel gave is read from /proc/self/smaps)", format_bytes(MAX_WORKING_SET as f64), STRIDE_LINES * 64),
            "list-pfD: the random list at the largest size, prefetching the jump pointer D nodes ahead (T0 hint); list-pf0 issues no prefetch".into(),
            format!("scan-pfD: greedy walk over {DIMS}-d f32 vectors with {DEGREE} random neighbours per node, prefetching all 48 lines of the vector D neighbours ahead"),
            "random lists and vector sets are built once per run and shared by the repetitions (the walk resumes elsewhere); list-pfD on 4 KiB pages, vector sets on pages as the kernel gives them (transparent huge pages per its setting)".into(),
        ]
    }

    fn prepare(&self, variant: &Variant, threads: usize) -> Box<dyn Trial> {
        let (Some(point), Some(bytes)) = (variant.point.as_ref(), variant.working_set) else {
            panic!(
                "prefetch variant {:?} has no sweep point or working set",
                variant.name
            )
        };
        let name = variant.name.as_ref();
        let d_index = |names: &[&str; 7]| names.iter().position(|n| *n == name);
        if let Some(i) = d_index(&LIST_NAMES) {
            let list = list(Layout::Random, bytes, PageSize::Base);
            return Box::new(ChaseTrial::new(
                list,
                threads,
                (i > 0).then(|| i - 1),
                CHASE_STEPS_PER_BATCH,
            ));
        }
        if let Some(i) = d_index(&SCAN_NAMES) {
            let set = cached(&VECTOR_SETS, bytes, || VectorSet::build(bytes));
            let n = set.n as u32;
            return Box::new(ScanTrial {
                query: set.vector(0).to_vec(),
                kernel: Kernel::dispatch().0,
                distance: DISTANCES[i],
                at: (0..threads)
                    .map(|w| AtomicU32::new(w as u32 * (n / threads.max(1) as u32)))
                    .collect(),
                set,
            });
        }
        let (layout, pages) = staircase_series(&point.series)
            .unwrap_or_else(|| panic!("prefetch has no series {:?}", point.series));
        let list = list(layout, bytes, pages);
        Box::new(ChaseTrial::new(list, threads, None, CHASE_STEPS_PER_BATCH))
    }

    fn release(&self) {
        LISTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
        VECTOR_SETS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn interpret(&self, m: &MachineFacts, groups: &[GroupOutcome]) -> Findings {
        let backing = HUGE_BACKING.lock().unwrap_or_else(|e| e.into_inner());
        interpret::interpret(m, groups, &backing)
    }
}
