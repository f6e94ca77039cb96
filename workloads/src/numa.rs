//! `hwprof run numa`: what memory costs by where it lives. For every CPU node
//! (one placement group: one thread per core of that node) and every memory node
//! (each variant's allocations bound to it):
//!
//! - `latency-nodeM`: one thread's random pointer chase (dependent loads) over a
//!   list far larger than the LLC, ns per access;
//! - `read-nodeM`, `write-nodeM`, `copy-nodeM`: every thread of the group streams
//!   its own share of the arrays, bytes per second (a copy counts the bytes read
//!   and the bytes written, as likwid-bench and STREAM do).
//!
//! With two or more nodes, a multi-threaded read scan over every node's cores
//! compares page placement: `scan-parallel-init` (each thread first-touches its own
//! share: local), `scan-serial-init` (one thread initialises everything, the
//! classic NUMA bug: every page on one node) and `scan-interleave`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::experiment::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, SweepPoint, ThreadShape, Trial,
    Variant, VariantMemory,
};
use crate::findings::{format_bytes, Estimate, Findings, GroupOutcome, Matrix};

/// Total bytes the bandwidth kernels stream over (split between the threads):
/// far beyond any LLC this tool meets, small enough to allocate per repetition.
pub const STREAM_BYTES: usize = 512 << 20;
/// Bytes one batch streams per thread (about 25 µs at 10 GB/s).
const BATCH_BYTES: usize = 256 << 10;
const CHASE_STEPS_PER_BATCH: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Latency,
    Read,
    Write,
    Copy,
}

impl Kernel {
    const MATRIX: [Kernel; 4] = [Kernel::Latency, Kernel::Read, Kernel::Write, Kernel::Copy];

    fn name(self) -> &'static str {
        match self {
            Kernel::Latency => "latency",
            Kernel::Read => "read",
            Kernel::Write => "write",
            Kernel::Copy => "copy",
        }
    }

    fn from_name(s: &str) -> Option<Kernel> {
        Kernel::MATRIX.into_iter().find(|k| k.name() == s)
    }
}

/// Working set of the latency chase: 4 x LLC, at least 256 MiB, at most 512 MiB.
fn chase_bytes(m: &MachineFacts) -> u64 {
    m.llc_bytes
        .map_or(256 << 20, |l| 4 * l)
        .clamp(256 << 20, 512 << 20)
}

// ---- the latency chase ----------------------------------------------------

/// One 64-byte line of a random cyclic list.
#[repr(C, align(64))]
struct Node {
    next: *const Node,
}

struct List {
    nodes: Vec<Node>,
}

// SAFETY: the pointers point into `nodes`, never modified after construction.
unsafe impl Send for List {}
unsafe impl Sync for List {}

impl List {
    /// A random single cycle (Sattolo) through every line; allocated and written
    /// on the calling thread, so under its memory policy.
    fn random(bytes: u64) -> List {
        use rand::{Rng, SeedableRng};
        let n = (bytes as usize / 64).max(2);
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x7e57 ^ n as u64);
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..i));
        }
        let mut nodes: Vec<Node> = Vec::with_capacity(n);
        // Every write and every stored pointer derives from this one raw pointer
        // (no reference to an element is made while linking), so the pointers stay
        // valid for the reads of the chase.
        let base = nodes.as_mut_ptr();
        for k in 0..n {
            // SAFETY: indexes < n = capacity; each slot is written exactly once
            // (order is a permutation) before set_len.
            unsafe {
                base.add(order[k] as usize).write(Node {
                    next: base.add(order[(k + 1) % n] as usize),
                });
            }
        }
        // SAFETY: all n slots were initialised above.
        unsafe { nodes.set_len(n) };
        List { nodes }
    }
}

#[inline(never)]
fn chase(mut p: *const Node, steps: usize) -> *const Node {
    for _ in 0..steps {
        // SAFETY: p points into a live List.
        p = unsafe { (*p).next };
    }
    p
}

struct ChaseTrial {
    list: Arc<List>,
    at: AtomicPtr<Node>,
}

impl Trial for ChaseTrial {
    fn run_batch(&self, _worker: usize, _timer: &mut dyn OpTimer) -> u64 {
        let end = chase(self.at.load(Ordering::Relaxed), CHASE_STEPS_PER_BATCH);
        self.at.store(end as *mut Node, Ordering::Relaxed);
        let _ = &self.list;
        CHASE_STEPS_PER_BATCH as u64
    }
}

/// Lists are costly to build (a random cycle over 512 MiB takes about a second):
/// one per memory node per run, shared by the repetitions. Released at the end.
type ListCache = Mutex<HashMap<(usize, u64), Arc<List>>>;
static LISTS: std::sync::LazyLock<ListCache> = std::sync::LazyLock::new(Default::default);

// ---- the bandwidth kernels --------------------------------------------------

/// A zeroed buffer whose pages are not touched until someone writes them (calloc
/// maps fresh zero pages), so where they land depends on who touches them first.
///
/// Workers write their own disjoint shares concurrently through a shared trial,
/// so the buffer is a raw allocation (never a `&Vec` written through).
struct Buffer {
    ptr: *mut f64,
    len: usize,
}

// SAFETY: workers only touch disjoint ranges (see `share`), through `range_mut`.
unsafe impl Send for Buffer {}
unsafe impl Sync for Buffer {}

impl Buffer {
    fn untouched(bytes: usize) -> Buffer {
        let b: Box<[f64]> = vec![0.0; bytes / 8].into_boxed_slice();
        let len = b.len();
        Buffer {
            ptr: Box::into_raw(b) as *mut f64,
            len,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Touch every page now, on this thread (under its memory policy).
    fn touch_all(&mut self) {
        // SAFETY: &mut self: nobody else holds a range.
        unsafe { self.range_mut(0..self.len) }.fill(1.0);
    }

    /// # Safety
    /// No mutable range overlapping `r` may be alive.
    unsafe fn range(&self, r: std::ops::Range<usize>) -> &[f64] {
        assert!(r.end <= self.len);
        std::slice::from_raw_parts(self.ptr.add(r.start), r.len())
    }

    /// # Safety
    /// No other range overlapping `r` may be alive.
    #[allow(clippy::mut_from_ref)]
    unsafe fn range_mut(&self, r: std::ops::Range<usize>) -> &mut [f64] {
        assert!(r.end <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.len())
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from Box::into_raw of a boxed slice of this length.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

/// The share of `len` elements worker `w` of `n` streams over.
fn share(len: usize, w: usize, n: usize) -> std::ops::Range<usize> {
    (w * len / n)..((w + 1) * len / n)
}

struct StreamTrial {
    kernel: Kernel,
    src: Buffer,
    /// Copy destination (empty otherwise).
    dst: Buffer,
    threads: usize,
    /// Each worker's position inside its share, in elements.
    at: Vec<AtomicUsize>,
    /// Pages are first-touched by the workers in `setup` (else already placed).
    first_touch: bool,
}

/// Sum with 8 independent accumulators: no loop-carried dependency on one add, so
/// the compiler vectorises it and the loads, not the adds, set the pace.
#[inline(never)]
fn read_kernel(x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Regular (write-allocate) stores: `fill` is memset, which at this size stays
/// below glibc's non-temporal threshold.
#[inline(never)]
fn write_kernel(x: &mut [f64], v: f64) {
    x.fill(v);
}

#[inline(never)]
fn copy_kernel(dst: &mut [f64], src: &[f64]) {
    dst.copy_from_slice(src);
}

impl StreamTrial {
    /// The next BATCH_BYTES window of worker `w`'s share, wrapping around.
    fn window(&self, w: usize) -> std::ops::Range<usize> {
        let s = share(self.src.len(), w, self.threads);
        let len = (BATCH_BYTES / 8).min(s.len());
        let mut off = self.at[w].load(Ordering::Relaxed);
        if off + len > s.len() {
            off = 0;
        }
        self.at[w].store(off + len, Ordering::Relaxed);
        (s.start + off)..(s.start + off + len)
    }
}

impl Trial for StreamTrial {
    fn setup(&self, worker: usize) {
        if self.first_touch {
            let r = share(self.src.len(), worker, self.threads);
            // SAFETY: the worker's own share; no batch runs yet.
            unsafe { self.src.range_mut(r.clone()) }.fill(1.0);
            if self.dst.len() > 0 {
                unsafe { self.dst.range_mut(r) }.fill(0.0);
            }
        }
    }

    fn run_batch(&self, worker: usize, _timer: &mut dyn OpTimer) -> u64 {
        let r = self.window(worker);
        let bytes = (r.len() * 8) as u64;
        match self.kernel {
            // SAFETY (all three): the window lies in this worker's own share.
            Kernel::Read => {
                std::hint::black_box(read_kernel(unsafe { self.src.range(r) }));
                bytes
            }
            Kernel::Write => {
                write_kernel(unsafe { self.src.range_mut(r) }, (worker + 2) as f64);
                bytes
            }
            Kernel::Copy => {
                let dst = unsafe { self.dst.range_mut(r.clone()) };
                copy_kernel(dst, unsafe { self.src.range(r) });
                2 * bytes
            }
            Kernel::Latency => unreachable!("latency runs a ChaseTrial"),
        }
    }
}

// ---- the experiment -----------------------------------------------------------

pub struct Numa;

const PLACEMENT: [(&str, &str); 3] = [
    (
        "scan-parallel-init",
        "every thread first-touches its own share, then all read: pages local to their reader",
    ),
    (
        "scan-serial-init",
        "one thread initialises the whole array (pages on its node), then all read",
    ),
    (
        "scan-interleave",
        "pages interleaved round-robin over every node, then all read",
    ),
];

const INFO: ExperimentInfo = ExperimentInfo {
    name: "numa",
    summary: "latency and read/write/copy bandwidth per CPU node x memory node, and first-touch vs serial-init vs interleaved pages for a multi-threaded scan",
    operation: "access (latency-*) or byte moved (read/write/copy/scan-*: ops/s = bytes/s)",
    thread_shape: ThreadShape::PerNode,
    records_latency: false,
    sweeps_threads: false,
    quick: Some((0.1, 5)),
    metrics: &["remote_dram_share", "llc_misses_per_kilo_load"],
};

impl Experiment for Numa {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn variants(&self, m: &MachineFacts) -> Result<Vec<Variant>, String> {
        if m.numa_nodes.is_empty() {
            return Err(format!(
                "the topology ({}) reports no NUMA node; on macOS there is no NUMA API",
                m.source
            ));
        }
        let chase = chase_bytes(m);
        let mut v = Vec::new();
        for k in Kernel::MATRIX {
            for &node in &m.numa_nodes {
                let (description, workers, bytes) = match k {
                    Kernel::Latency => (
                        format!(
                            "one thread chases a random list over {} on node {node}",
                            format_bytes(chase as f64)
                        ),
                        Some(1),
                        chase,
                    ),
                    _ => (
                        format!(
                            "every thread of the group {} its share of {} on node {node}",
                            match k {
                                Kernel::Read => "reads",
                                Kernel::Write => "writes",
                                _ => "copies",
                            },
                            format_bytes(STREAM_BYTES as f64)
                        ),
                        None,
                        STREAM_BYTES as u64,
                    ),
                };
                v.push(Variant {
                    name: format!("{}-node{node}", k.name()).into(),
                    description: description.into(),
                    memory: VariantMemory::Node(node),
                    workers,
                    point: Some(SweepPoint {
                        series: k.name().into(),
                        x: node as f64,
                    }),
                    working_set: Some(bytes),
                });
            }
        }
        // Placement only differs with more than one node.
        if m.numa_nodes.len() > 1 {
            for (name, description) in PLACEMENT {
                let mut p = Variant::new(name, description);
                p.memory = if name == "scan-interleave" {
                    VariantMemory::Interleave
                } else {
                    VariantMemory::Inherit
                };
                p.working_set = Some(STREAM_BYTES as u64);
                v.push(p);
            }
        }
        Ok(v)
    }

    fn comparison(&self) -> Comparison {
        // Node 0 is everywhere; remote columns are read by `interpret`.
        Comparison::slowdown("write-node0", "read-node0")
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "memory nodes: each variant's allocations are bound to its node before they are first written (hwloc membind on the allocating thread)".into(),
            format!("bandwidth: {} split between the group's threads (one per core), streamed {} per batch; read = 8-accumulator f64 sum (vectorised), write = memset (regular stores), copy = memcpy (counts bytes read + written)", format_bytes(STREAM_BYTES as f64), format_bytes(BATCH_BYTES as f64)),
            "latency: one thread, random single-cycle pointer chase over 4 x LLC (256-512 MiB); the list is built once per node and run".into(),
        ]
    }

    fn prepare(&self, variant: &Variant, threads: usize) -> Box<dyn Trial> {
        let name = variant.name.as_ref();
        let bytes = variant
            .working_set
            .unwrap_or_else(|| panic!("numa variant {name:?} has no working set"));
        let node = match variant.memory {
            VariantMemory::Node(n) => Some(n),
            _ => None,
        };
        let kernel = match &variant.point {
            Some(p) => Kernel::from_name(&p.series)
                .unwrap_or_else(|| panic!("numa has no kernel {:?}", p.series)),
            None => Kernel::Read,
        };
        if kernel == Kernel::Latency {
            let node = node.expect("latency variants are bound to a node");
            let list = LISTS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((node, bytes))
                .or_insert_with(|| Arc::new(List::random(bytes)))
                .clone();
            return Box::new(ChaseTrial {
                at: AtomicPtr::new(&list.nodes[0] as *const Node as *mut Node),
                list,
            });
        }
        let bytes = bytes as usize;
        let (src_bytes, dst_bytes) = match kernel {
            Kernel::Copy => (bytes / 2, bytes / 2),
            _ => (bytes, 0),
        };
        let mut src = Buffer::untouched(src_bytes);
        let mut dst = Buffer::untouched(dst_bytes);
        // Node-bound and interleaved arrays (and the serial-init scan) are placed
        // here, by this thread's policy; the parallel-init scan by its workers.
        let first_touch = name == "scan-parallel-init";
        if !first_touch {
            src.touch_all();
            dst.touch_all();
        }
        Box::new(StreamTrial {
            kernel,
            src,
            dst,
            threads,
            at: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            first_touch,
        })
    }

    fn release(&self) {
        LISTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn interpret(&self, m: &MachineFacts, groups: &[GroupOutcome]) -> Findings {
        interpret(m, groups)
    }
}

fn gb(e: Estimate) -> Estimate {
    Estimate {
        median: e.median / 1e9,
        lo: e.lo / 1e9,
        hi: e.hi / 1e9,
    }
}

fn interpret(m: &MachineFacts, groups: &[GroupOutcome]) -> Findings {
    let mut f = Findings::default();
    let nodes = &m.numa_nodes;
    // Per-node groups (the all-nodes group, if any, has no single CPU node).
    let per_node: Vec<&GroupOutcome> = groups.iter().filter(|g| g.cpu_node.is_some()).collect();
    if per_node.is_empty() {
        return f;
    }
    let rows: Vec<String> = per_node
        .iter()
        .map(|g| format!("CPU node {} (x{})", g.cpu_node.unwrap_or(0), g.cpus.len()))
        .collect();
    let cols: Vec<String> = nodes.iter().map(|n| format!("mem node {n}")).collect();
    for k in Kernel::MATRIX {
        let cells: Vec<Vec<Option<Estimate>>> = per_node
            .iter()
            .map(|g| {
                nodes
                    .iter()
                    .map(|n| {
                        let o = g.variant(&format!("{}-node{n}", k.name()))?;
                        Some(match k {
                            Kernel::Latency => o.ns_per_op,
                            _ => gb(o.ops_per_sec),
                        })
                    })
                    .collect()
            })
            .collect();
        let (title, unit) = match k {
            Kernel::Latency => (
                "hwprof numa: pointer-chase latency".to_string(),
                "ns per access",
            ),
            _ => (
                format!(
                    "hwprof numa: {} bandwidth (all cores of the CPU node)",
                    k.name()
                ),
                "GB/s",
            ),
        };
        // Local vs remote, per CPU node: the penalty ratio.
        for (g, row) in per_node.iter().zip(&cells) {
            let Some(cpu_node) = g.cpu_node else { continue };
            let Some(local_i) = nodes.iter().position(|&n| n == cpu_node) else {
                continue;
            };
            let Some(local) = row[local_i] else { continue };
            let remote: Vec<(usize, Estimate)> = nodes
                .iter()
                .zip(row)
                .filter(|(&n, _)| n != cpu_node)
                .filter_map(|(&n, c)| Some((n, (*c)?)))
                .collect();
            let worst = remote.iter().max_by(|a, b| {
                let pen = |e: &Estimate| match k {
                    Kernel::Latency => e.median / local.median,
                    _ => local.median / e.median,
                };
                pen(&a.1).total_cmp(&pen(&b.1))
            });
            match (k, worst) {
                (Kernel::Latency, Some((n, r))) => f.verdict.push(format!(
                    "latency from CPU node {cpu_node}: local {:.0} ns, node {n} {:.0} ns: remote costs {:.2}x (95% CIs: local {:.0}-{:.0}, remote {:.0}-{:.0}) [timer]",
                    local.median,
                    r.median,
                    r.median / local.median,
                    local.lo,
                    local.hi,
                    r.lo,
                    r.hi
                )),
                (_, Some((n, r))) => f.verdict.push(format!(
                    "{} bandwidth from CPU node {cpu_node}: local {:.1} GB/s, node {n} {:.1} GB/s: remote keeps {:.0}% (95% CIs: local {:.1}-{:.1}, remote {:.1}-{:.1}) [timer]",
                    k.name(),
                    local.median,
                    r.median,
                    100.0 * r.median / local.median,
                    local.lo,
                    local.hi,
                    r.lo,
                    r.hi
                )),
                (Kernel::Latency, None) => f.verdict.push(format!(
                    "local latency (CPU node {cpu_node}): {:.0} ns [{:.0}-{:.0}] per dependent access [timer]",
                    local.median, local.lo, local.hi
                )),
                (_, None) => f.verdict.push(format!(
                    "local {} bandwidth (CPU node {cpu_node}, {} thread(s)): {:.1} GB/s [{:.1}-{:.1}] [timer]",
                    k.name(),
                    g.cpus.len(),
                    local.median,
                    local.lo,
                    local.hi
                )),
            }
        }
        f.matrices.push(Matrix {
            id: format!("numa-{}", k.name()),
            title,
            row_label: "CPU node".into(),
            col_label: "memory node".into(),
            unit: unit.into(),
            rows: rows.clone(),
            cols: cols.clone(),
            cells,
        });
    }
    if nodes.len() < 2 {
        f.warnings.push(format!(
            "one NUMA node ({}): there is no remote memory here, so only the local column is measured and first-touch vs interleaved placement cannot differ; run on a multi-socket host (or plan one: --plan-only --topology xml:FILE)",
            m.source
        ));
        return f;
    }
    if let Some(all) = groups.iter().find(|g| g.cpu_node.is_none()) {
        let bw = |n: &str| all.variant(n).map(|o| gb(o.ops_per_sec));
        if let (Some(par), Some(ser), Some(il)) = (
            bw("scan-parallel-init"),
            bw("scan-serial-init"),
            bw("scan-interleave"),
        ) {
            f.verdict.push(format!(
                "multi-threaded scan on {} threads over every node: parallel first-touch {:.1} GB/s, interleaved {:.1} GB/s ({:.0}%), serial init {:.1} GB/s ({:.0}%): {} (95% CIs: parallel {:.1}-{:.1}, interleaved {:.1}-{:.1}, serial {:.1}-{:.1}) [timer]",
                all.cpus.len(),
                par.median,
                il.median,
                100.0 * il.median / par.median,
                ser.median,
                100.0 * ser.median / par.median,
                if ser.hi < par.lo {
                    "initialise data on the threads that will use it"
                } else {
                    "placement did not matter for this scan"
                },
                par.lo,
                par.hi,
                il.lo,
                il.hi,
                ser.lo,
                ser.hi
            ));
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::NoTimer;

    fn facts(nodes: &[usize]) -> MachineFacts {
        MachineFacts {
            l1d_bytes: Some(32 << 10),
            l2_bytes: Some(1 << 20),
            llc_bytes: Some(32 << 20),
            numa_nodes: nodes.to_vec(),
            source: "test".into(),
        }
    }

    #[test]
    fn variants_bind_every_kernel_to_every_node() {
        let v = Numa.variants(&facts(&[0, 1])).unwrap();
        assert_eq!(v.len(), 4 * 2 + 3);
        let l1 = v.iter().find(|v| v.name == "latency-node1").unwrap();
        assert_eq!(l1.memory, VariantMemory::Node(1));
        assert_eq!(l1.workers, Some(1));
        assert_eq!(l1.working_set, Some(256 << 20));
        let c0 = v.iter().find(|v| v.name == "copy-node0").unwrap();
        assert_eq!(
            (c0.memory.clone(), c0.workers),
            (VariantMemory::Node(0), None)
        );
        let il = v.iter().find(|v| v.name == "scan-interleave").unwrap();
        assert_eq!(il.memory, VariantMemory::Interleave);
        // One node: the local column only, no placement variants.
        assert_eq!(Numa.variants(&facts(&[0])).unwrap().len(), 4);
        assert!(Numa.variants(&facts(&[])).is_err());
    }

    #[test]
    fn stream_kernels_count_bytes_and_stay_in_their_share() {
        for (kernel, per_batch) in [
            (Kernel::Read, BATCH_BYTES),
            (Kernel::Write, BATCH_BYTES),
            (Kernel::Copy, 2 * BATCH_BYTES),
        ] {
            let bytes = 4 * BATCH_BYTES;
            let (s, d) = if kernel == Kernel::Copy {
                (bytes, bytes)
            } else {
                (bytes, 0)
            };
            let t = StreamTrial {
                kernel,
                src: Buffer::untouched(s),
                dst: Buffer::untouched(d),
                threads: 2,
                at: (0..2).map(|_| AtomicUsize::new(0)).collect(),
                first_touch: true,
            };
            t.setup(0);
            t.setup(1);
            for _ in 0..5 {
                assert_eq!(t.run_batch(1, &mut NoTimer), per_batch as u64);
            }
            // SAFETY: no batch runs any more.
            let (src, dst) = unsafe { (t.src.range(0..t.src.len()), t.dst.range(0..t.dst.len())) };
            if kernel == Kernel::Write {
                // Worker 1 wrote its value (3.0) only into its half.
                let half = src.len() / 2;
                assert!(src[..half].iter().all(|&x| x == 1.0));
                assert!(src[half..].contains(&3.0));
            }
            if kernel == Kernel::Copy {
                assert!(dst.iter().all(|&x| x == 1.0 || x == 0.0));
                assert!(dst[dst.len() / 2..].contains(&1.0));
                assert!(!dst[..dst.len() / 2].contains(&1.0));
            }
        }
        assert_eq!(read_kernel(&[1.0; 37]), 37.0);
    }

    #[test]
    fn latency_variant_runs_one_chase() {
        let mut v = Numa.variants(&facts(&[0])).unwrap().remove(0);
        assert_eq!(v.name, "latency-node0");
        v.working_set = Some(1 << 20);
        let t = Numa.prepare(&v, 1);
        assert_eq!(t.run_batch(0, &mut NoTimer), CHASE_STEPS_PER_BATCH as u64);
        Numa.release();
    }

    fn outcome(name: &str, ops: f64, ns: f64) -> crate::findings::VariantOutcome {
        let e = |x: f64| Estimate {
            median: x,
            lo: x * 0.97,
            hi: x * 1.03,
        };
        crate::findings::VariantOutcome {
            name: name.into(),
            ops_per_sec: e(ops),
            ns_per_op: e(ns),
        }
    }

    #[test]
    fn matrices_and_penalties_from_two_nodes_and_the_single_node_warning() {
        let m = facts(&[0, 1]);
        let group = |node: usize| GroupOutcome {
            label: format!("node {node} x8"),
            cpus: (0..8).collect(),
            pair_class: None,
            cpu_node: Some(node),
            variants: vec![
                outcome("latency-node0", 1e7, if node == 0 { 90.0 } else { 150.0 }),
                outcome("latency-node1", 1e7, if node == 1 { 90.0 } else { 150.0 }),
                outcome("read-node0", if node == 0 { 40e9 } else { 20e9 }, 0.0),
                outcome("read-node1", if node == 1 { 40e9 } else { 20e9 }, 0.0),
            ],
            ratios: vec![],
        };
        let all = GroupOutcome {
            label: "all nodes x16".into(),
            cpus: (0..16).collect(),
            cpu_node: None,
            variants: vec![
                outcome("scan-parallel-init", 80e9, 0.0),
                outcome("scan-serial-init", 40e9, 0.0),
                outcome("scan-interleave", 60e9, 0.0),
            ],
            ..group(0)
        };
        let f = Numa.interpret(&m, &[group(0), group(1), all]);
        let text = f.verdict.join("\n");
        assert!(
            text.contains("local 90 ns, node 1 150 ns: remote costs 1.67x"),
            "{text}"
        );
        assert!(text.contains("read bandwidth from CPU node 1: local 40.0 GB/s, node 0 20.0 GB/s: remote keeps 50%"), "{text}");
        assert!(
            text.contains("serial init 40.0 GB/s (50%)")
                && text.contains("initialise data on the threads"),
            "{text}"
        );
        let lat = &f.matrices[0];
        assert_eq!((lat.rows.len(), lat.cols.len()), (2, 2));
        assert_eq!(lat.cells[0][1].unwrap().median, 150.0);
        assert_eq!(f.matrices[1].cells[1][1].unwrap().median, 40.0, "GB/s");
        // Write/copy were not measured: cells are None, not zero.
        assert!(f.matrices[2].cells.iter().flatten().all(|c| c.is_none()));
        assert!(f.warnings.is_empty());

        let one = Numa.interpret(
            &facts(&[0]),
            &[GroupOutcome {
                cpu_node: Some(0),
                ..group(0)
            }],
        );
        assert!(
            one.warnings[0].contains("one NUMA node"),
            "{:?}",
            one.warnings
        );
        assert!(
            one.verdict
                .iter()
                .any(|v| v.contains("local read bandwidth (CPU node 0, 8 thread(s)): 40.0 GB/s")),
            "{:?}",
            one.verdict
        );
    }
}
