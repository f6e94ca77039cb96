//! `hwprof run prefetch`: what the memory hierarchy costs per access, and what
//! prefetching (hardware and software) buys back.
//!
//! 1. Latency staircase: a pointer chase (each load's address is the previous
//!    load's value, so nothing overlaps) over working sets from half the L1d to
//!    4x the LLC, in three layouts: `seq` (next line), `stride` (4 lines ahead,
//!    256 B) and `random` (one random cycle through every line). The random curve
//!    climbs at each cache's capacity; its knees are checked against the sizes the
//!    topology declares.
//! 2. Software-prefetch distance sweep on the random list at the largest size:
//!    every node carries jump pointers to the nodes 1, 2, 4, 8, 16 and 32 ahead
//!    (Roth & Sohi's jump-pointer prefetching), and the chase prefetches one of
//!    them while it walks `next`.
//! 3. The same sweep on a neighbour scan shaped like an HNSW search over 768-d f32
//!    vectors (Engram's recall): fixed-degree adjacency, one distance per neighbour,
//!    and the whole vector of the neighbour `d` ahead prefetched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::experiment::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, ThreadShape, Trial, Variant,
};
use crate::findings::{format_bytes, Chart, Curve, CurvePoint, Estimate, Findings, GroupOutcome};
use crate::simd::Kernel;

/// Software-prefetch distances swept (0 = no prefetch instruction at all).
pub const DISTANCES: [usize; 7] = [0, 1, 2, 4, 8, 16, 32];
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
/// Stride of the `stride` layout, in lines (256 B: within reach of the L1 IP-stride
/// prefetcher, 16 accesses per 4 KiB page).
const STRIDE_LINES: usize = 4;
const CHASE_STEPS_PER_BATCH: usize = 4096;
/// Engram's embeddings.
pub const DIMS: usize = 768;
/// Neighbours per node (HNSW's layer-0 degree 2M with M = 16).
pub const DEGREE: usize = 32;
const SCAN_NODES_PER_BATCH: usize = 4;

/// One cache line of the list: `next`, and jump pointers to the nodes
/// DISTANCES[1..] ahead in the same cycle (null in the seq/stride layouts).
#[repr(C, align(64))]
struct Node {
    next: *const Node,
    ahead: [*const Node; 6],
}

/// A cyclic list laid out in its own buffer; the pointers point into it.
struct List {
    nodes: Vec<Node>,
}

// SAFETY: the pointers only point into `nodes`, which is never modified or moved
// after construction and lives as long as the List.
unsafe impl Send for List {}
unsafe impl Sync for List {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Layout {
    Sequential,
    Stride,
    Random,
}

impl Layout {
    const ALL: [Layout; 3] = [Layout::Sequential, Layout::Stride, Layout::Random];

    fn series(self) -> &'static str {
        match self {
            Layout::Sequential => "seq",
            Layout::Stride => "stride",
            Layout::Random => "random",
        }
    }

    fn from_series(s: &str) -> Option<Layout> {
        Layout::ALL.into_iter().find(|l| l.series() == s)
    }
}

impl List {
    fn build(layout: Layout, bytes: u64) -> List {
        let n = (bytes as usize / std::mem::size_of::<Node>()).max(2);
        if layout != Layout::Random {
            return List::build_regular(layout, n);
        }
        let order: Vec<u32> = match layout {
            Layout::Sequential | Layout::Stride => unreachable!("built above"),
            Layout::Random => {
                // Sattolo's algorithm: a uniformly random single cycle, so the
                // chase visits every line before it repeats.
                let mut v: Vec<u32> = (0..n as u32).collect();
                let mut rng = SmallRng::seed_from_u64(0x5eed ^ n as u64);
                for i in (1..n).rev() {
                    let j = rng.random_range(0..i);
                    v.swap(i, j);
                }
                v
            }
        };
        let mut nodes: Vec<Node> = Vec::with_capacity(n);
        // All writes and stored pointers derive from this one raw pointer (no
        // element reference is made while linking), so they stay valid for reads.
        let base = nodes.as_mut_ptr();
        let at = |k: usize| -> *const Node {
            // SAFETY: order holds indexes < n = capacity.
            unsafe { base.add(order[k % n] as usize) }
        };
        for k in 0..n {
            let mut ahead = [std::ptr::null(); 6];
            for (slot, d) in ahead.iter_mut().zip(&DISTANCES[1..]) {
                *slot = at(k + d);
            }
            // SAFETY: order is a permutation of 0..n: each slot written once.
            unsafe {
                base.add(order[k] as usize).write(Node {
                    next: at(k + 1),
                    ahead,
                });
            }
        }
        // SAFETY: all n slots were initialised above.
        unsafe { nodes.set_len(n) };
        List { nodes }
    }

    /// Sequential and strided lists in one pass of stores (they are rebuilt for
    /// every repetition): node i's successor is computed, not looked up.
    /// Stride order visits offset 0, S, 2S, … then 1, 1+S, … and wraps to 0.
    fn build_regular(layout: Layout, n: usize) -> List {
        let succ = |i: usize| -> usize {
            match layout {
                Layout::Sequential => (i + 1) % n,
                _ if i + STRIDE_LINES < n => i + STRIDE_LINES,
                _ => {
                    let off = i % STRIDE_LINES + 1;
                    if off < STRIDE_LINES.min(n) {
                        off
                    } else {
                        0
                    }
                }
            }
        };
        let mut nodes: Vec<Node> = Vec::with_capacity(n);
        let base = nodes.as_mut_ptr();
        for i in 0..n {
            // SAFETY: i, succ(i) < n = capacity; written through `base` only.
            unsafe {
                base.add(i).write(Node {
                    next: base.add(succ(i)),
                    ahead: [std::ptr::null(); 6],
                });
            }
        }
        // SAFETY: all n slots were initialised above.
        unsafe { nodes.set_len(n) };
        List { nodes }
    }

    fn start(&self, worker: usize, workers: usize) -> *mut Node {
        let i = worker * self.nodes.len() / workers.max(1);
        &self.nodes[i] as *const Node as *mut Node
    }
}

#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; PRFM has no architectural effect.
    unsafe {
        core::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

/// `steps` dependent loads. Never inlined so every layout runs the same code.
#[inline(never)]
fn chase(mut p: *const Node, steps: usize) -> *const Node {
    for _ in 0..steps {
        // SAFETY: p always points at a node of a live List.
        p = unsafe { (*p).next };
    }
    p
}

/// The chase, prefetching the node `DISTANCES[slot + 1]` ahead at every step.
#[inline(never)]
fn chase_prefetching(mut p: *const Node, steps: usize, slot: usize) -> *const Node {
    for _ in 0..steps {
        // SAFETY: as in `chase`; jump pointers point into the same List.
        unsafe {
            prefetch((*p).ahead[slot] as *const u8);
            p = (*p).next;
        }
    }
    p
}

struct ChaseTrial {
    list: Arc<List>,
    /// Where each worker's chase stands between batches.
    at: Vec<AtomicPtr<Node>>,
    /// Jump-pointer slot to prefetch, None for the plain chase.
    slot: Option<usize>,
}

impl Trial for ChaseTrial {
    fn run_batch(&self, worker: usize, _timer: &mut dyn OpTimer) -> u64 {
        let p = self.at[worker].load(Ordering::Relaxed);
        let end = match self.slot {
            None => chase(p, CHASE_STEPS_PER_BATCH),
            Some(s) => chase_prefetching(p, CHASE_STEPS_PER_BATCH, s),
        };
        self.at[worker].store(end as *mut Node, Ordering::Relaxed);
        // Keep the list alive in the trial (the pointer is into it).
        let _ = &self.list;
        CHASE_STEPS_PER_BATCH as u64
    }
}

/// Vectors and fixed-degree adjacency, like HNSW's layer 0.
struct VectorSet {
    vectors: Vec<f32>,
    adjacency: Vec<u32>,
    n: usize,
}

impl VectorSet {
    fn build(bytes: u64) -> VectorSet {
        let n = (bytes as usize / (DIMS * 4)).max(DEGREE + 1);
        // Cheap deterministic pseudo-random contents (xorshift), so scores differ.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let vectors = (0..n * DIMS)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let mut rng = SmallRng::seed_from_u64(0xad1);
        let adjacency = (0..n * DEGREE)
            .map(|_| rng.random_range(0..n as u32))
            .collect();
        VectorSet {
            vectors,
            adjacency,
            n,
        }
    }

    fn vector(&self, i: u32) -> &[f32] {
        let i = i as usize;
        &self.vectors[i * DIMS..(i + 1) * DIMS]
    }

    fn prefetch_vector(&self, i: u32) {
        let v = self.vector(i);
        for line in (0..DIMS).step_by(16) {
            prefetch(v[line..].as_ptr() as *const u8);
        }
    }
}

struct ScanTrial {
    set: Arc<VectorSet>,
    query: Vec<f32>,
    kernel: Kernel,
    distance: usize,
    at: Vec<AtomicU32>,
}

impl Trial for ScanTrial {
    fn run_batch(&self, worker: usize, _timer: &mut dyn OpTimer) -> u64 {
        let set = &*self.set;
        let d = self.distance;
        let mut node = self.at[worker].load(Ordering::Relaxed);
        for step in 0..SCAN_NODES_PER_BATCH {
            let nb = &set.adjacency[node as usize * DEGREE..(node as usize + 1) * DEGREE];
            for &j in &nb[..d.min(DEGREE)] {
                set.prefetch_vector(j);
            }
            let (mut best, mut best_j) = (f32::NEG_INFINITY, 0);
            for (j, &v) in nb.iter().enumerate() {
                if d > 0 && j + d < DEGREE {
                    set.prefetch_vector(nb[j + d]);
                }
                let s = self.kernel.dot(&self.query, set.vector(v));
                if s > best {
                    (best, best_j) = (s, j);
                }
            }
            // The next node depends on the scores (no run-ahead), rotated by the
            // step so the walk never settles where a real search would stop.
            node = nb[(best_j + step + node as usize) % DEGREE];
        }
        self.at[worker].store(node, Ordering::Relaxed);
        (SCAN_NODES_PER_BATCH * DEGREE) as u64
    }
}

/// Random lists and vector sets are built once per run and shared by every
/// repetition (a random cycle over 512 MiB takes about a second to build, and the
/// sizes of one layout add up to twice the largest); each walk resumes where the
/// last stopped. Released by `release` when the run ends.
type Cache<K, T> = Mutex<HashMap<K, Arc<T>>>;
static LISTS: std::sync::LazyLock<Cache<(Layout, u64), List>> =
    std::sync::LazyLock::new(Default::default);
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
        for layout in Layout::ALL {
            for &s in &sizes {
                let mut p = Variant::point(
                    layout.series(),
                    s as f64,
                    &size_label(s),
                    format!("{} chase over {}", layout.series(), format_bytes(s as f64)),
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
            format!("staircase: 2 sizes per octave from L1d/2 to 4 x LLC, capped at {}; layouts seq (next line), stride ({STRIDE_LINES} lines = {} B), random (Sattolo single cycle)", format_bytes(MAX_WORKING_SET as f64), STRIDE_LINES * 64),
            "list-pfD: the random list at the largest size, prefetching the jump pointer D nodes ahead (T0 hint); list-pf0 issues no prefetch".into(),
            format!("scan-pfD: greedy walk over {DIMS}-d f32 vectors with {DEGREE} random neighbours per node, prefetching all 48 lines of the vector D neighbours ahead"),
            "random lists and vector sets are built once per run and shared by the repetitions (the walk resumes elsewhere); pages as the kernel gives them (transparent huge pages per its setting)".into(),
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
            let list = cached(&LISTS, (Layout::Random, bytes), || {
                List::build(Layout::Random, bytes)
            });
            return Box::new(ChaseTrial {
                at: (0..threads)
                    .map(|w| AtomicPtr::new(list.start(w, threads)))
                    .collect(),
                list,
                slot: (i > 0).then(|| i - 1),
            });
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
        let layout = Layout::from_series(&point.series)
            .unwrap_or_else(|| panic!("prefetch has no layout {:?}", point.series));
        // Sequential and strided lists are cheap to build (one pass of stores):
        // built per repetition, so only the random ones stay resident.
        let list = match layout {
            Layout::Random => cached(&LISTS, (layout, bytes), || List::build(layout, bytes)),
            _ => Arc::new(List::build(layout, bytes)),
        };
        Box::new(ChaseTrial {
            at: (0..threads)
                .map(|w| AtomicPtr::new(list.start(w, threads)))
                .collect(),
            list,
            slot: None,
        })
    }

    fn release(&self) {
        LISTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
        VECTOR_SETS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn interpret(&self, m: &MachineFacts, groups: &[GroupOutcome]) -> Findings {
        interpret(m, groups)
    }
}

/// A knee of the staircase: where latency climbs from one plateau to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Knee {
    /// Capacity estimate: where the climb crosses half its height. Caches lose
    /// hits gradually (conflicts, replacement, page colouring), so the last size
    /// that still fits underestimates the capacity and the first that misses
    /// overestimates it; a broad climb's steepest step is noise-prone.
    pub bytes: f64,
    /// Largest sampled size still on the lower plateau.
    pub last_fit: f64,
    pub before_ns: f64,
    pub after_ns: f64,
}

/// Knees of a latency curve (sizes ascending). A knee is the steepest step of a
/// climb: a step rising at least 1.3x that is a local maximum of the rise. Two
/// maxima count as two knees only if the curve flattens between them (a step
/// rising less than the square root of the smaller maximum); otherwise they are
/// one climb and the steeper wins. A climb extends from its steepest step over
/// the neighbouring steps that rise more than 20%; the capacity estimate is where
/// it crosses half its height (geometric mean of the plateaus at its ends).
pub fn knees(points: &[(f64, f64)]) -> Vec<Knee> {
    const MIN_KNEE_RISE: f64 = 1.3;
    const CLIMBING: f64 = 1.2;
    let rise: Vec<f64> = points.windows(2).map(|w| w[1].1 / w[0].1).collect();
    let mut peaks: Vec<usize> = (0..rise.len())
        .filter(|&i| {
            rise[i] >= MIN_KNEE_RISE
                && (i == 0 || rise[i] >= rise[i - 1])
                && rise.get(i + 1).is_none_or(|&n| rise[i] > n)
        })
        .collect();
    // Merge maxima that belong to one climb.
    let mut merged: Vec<usize> = Vec::new();
    for i in peaks.drain(..) {
        if let Some(&last) = merged.last() {
            let dip = rise[last..=i].iter().copied().fold(f64::INFINITY, f64::min);
            if dip >= rise[last].min(rise[i]).sqrt() {
                if rise[i] > rise[last] {
                    *merged.last_mut().expect("non-empty") = i;
                }
                continue;
            }
        }
        merged.push(i);
    }
    merged
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            // The climb: from the peak step outwards while steps rise > 20%,
            // never into a neighbouring knee's peak.
            let floor = if k == 0 { 0 } else { merged[k - 1] + 1 };
            let ceil = merged.get(k + 1).copied().unwrap_or(rise.len());
            let mut start = i;
            while start > floor && rise[start - 1] > CLIMBING {
                start -= 1;
            }
            let mut end = i + 1;
            while end < ceil && rise[end] > CLIMBING {
                end += 1;
            }
            let (before, after) = (points[start].1, points[end].1);
            // Half height (geometric) of the climb, interpolated in log-log.
            let half = (before * after).sqrt();
            let j = (start + 1..=end)
                .find(|&j| points[j].1 >= half)
                .unwrap_or(end);
            let ((x0, y0), (x1, y1)) = (points[j - 1], points[j]);
            let t = ((half / y0).ln() / (y1 / y0).ln()).clamp(0.0, 1.0);
            Knee {
                bytes: x0 * (x1 / x0).powf(t),
                last_fit: points[start].0,
                before_ns: before,
                after_ns: after,
            }
        })
        .collect()
}

/// Running median of three (ends kept): one disturbed size (a host burst in a VM,
/// page compaction) must not read as a cache boundary. A real step spans several
/// sizes and survives it.
pub fn median_of_3(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|i| {
            if i == 0 || i + 1 == points.len() {
                return points[i];
            }
            let mut y = [points[i - 1].1, points[i].1, points[i + 1].1];
            y.sort_by(f64::total_cmp);
            (points[i].0, y[1])
        })
        .collect()
}

/// A knee agrees with a declared cache size when within a factor of 1.5 (one
/// sample step of the sweep).
fn agrees(knee: f64, cache: f64) -> bool {
    (knee / cache).log2().abs() <= 1.5f64.log2() + 1e-9
}

fn interpret(m: &MachineFacts, groups: &[GroupOutcome]) -> Findings {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::NoTimer;

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
    fn every_layout_is_one_cycle_through_every_node() {
        for layout in Layout::ALL {
            let l = List::build(layout, 64 * 1000);
            let mut p = l.nodes.as_ptr();
            let mut seen = vec![false; l.nodes.len()];
            for _ in 0..l.nodes.len() {
                let i = (p as usize - l.nodes.as_ptr() as usize) / 64;
                assert!(!seen[i], "{layout:?} revisits node {i}");
                seen[i] = true;
                p = unsafe { (*p).next };
            }
            assert_eq!(p, l.nodes.as_ptr(), "{layout:?} is not a cycle");
        }
    }

    #[test]
    fn jump_pointers_point_d_nodes_ahead() {
        let l = List::build(Layout::Random, 64 * 500);
        let mut p = l.nodes.as_ptr();
        for _ in 0..50 {
            for (slot, &d) in DISTANCES[1..].iter().enumerate() {
                let mut q = p;
                for _ in 0..d {
                    q = unsafe { (*q).next };
                }
                assert_eq!(unsafe { (*p).ahead[slot] }, q, "distance {d}");
            }
            p = unsafe { (*p).next };
        }
    }

    #[test]
    fn variants_cover_layouts_sizes_and_distances_and_batches_run() {
        let v = Prefetch.variants(&facts()).unwrap();
        assert_eq!(v.len(), 3 * 27 + 14);
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
        let g = GroupOutcome {
            label: "compact x1".into(),
            cpus: vec![0],
            pair_class: None,
            cpu_node: Some(0),
            variants: vars
                .iter()
                .map(|v| {
                    let p = v.point.as_ref().unwrap();
                    let ns = match p.series.as_ref() {
                        "seq" => 0.8,
                        "stride" => 1.5,
                        "random" => lat(p.x as u64),
                        _ => 50.0,
                    };
                    outcome(&v.name, ns)
                })
                .collect(),
            ratios: vec![crate::findings::RatioOutcome {
                treatment: "list-pf0".into(),
                baseline: "list-pf8".into(),
                ratio: Estimate {
                    median: 2.5,
                    lo: 2.3,
                    hi: 2.7,
                },
            }],
        };
        let f = Prefetch.interpret(&declared, &[g]);
        let text = f.verdict.join("\n");
        assert!(
            text.contains("39.2 KiB (1.2 -> 4.0 ns; 32 KiB still fits)"),
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
        assert!(
            w.contains("knee at 627.1 KiB") && w.contains("knee at 39.2 MiB"),
            "{w}"
        );
        assert_eq!(f.charts.len(), 2);
        assert_eq!(f.charts[0].curves.len(), 3);
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
}
