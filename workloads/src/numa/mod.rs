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

mod interpret;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::chase::{ChaseTrial, Layout, List};
use crate::pages::PageSize;
use stream::{Buffer, StreamTrial};

use crate::experiment::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, SweepPoint, ThreadShape, Trial, Variant,
    VariantMemory,
};
use crate::findings::{format_bytes, Estimate, Findings, GroupOutcome, Matrix};

/// Total bytes the bandwidth kernels stream over (split between the threads):
/// far beyond any LLC this tool meets, small enough to allocate per repetition.
pub const STREAM_BYTES: usize = 512 << 20;
/// Bytes one batch streams per thread (about 25 µs at 10 GB/s).
const BATCH_BYTES: usize = 256 << 10;
const CHASE_STEPS_PER_BATCH: usize = 2048;
/// The latency chase's random cycle is drawn from this seed (fixed per size).
const LIST_SEED: u64 = 0x7e57;

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

/// Lists are costly to build (a random cycle over 512 MiB takes about a second):
/// one per memory node per run, shared by the repetitions. Released at the end.
type ListCache = Mutex<HashMap<(usize, u64), Arc<List>>>;
static LISTS: std::sync::LazyLock<ListCache> = std::sync::LazyLock::new(Default::default);
/// The smallest share of 2 MiB pages any latency list got (read from smaps
/// after it was written): the latency verdict states it.
static HUGE_SHARE: Mutex<Option<f64>> = Mutex::new(None);

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
            "latency: one thread, random single-cycle pointer chase over 4 x LLC (256-512 MiB) on 2 MiB pages (as Intel MLC measures, so page walks do not inflate it; the share the kernel gave is read from /proc/self/smaps); the list is built once per node and run".into(),
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
                .or_insert_with(|| {
                    let l = List::build(Layout::Random, bytes, LIST_SEED, false, PageSize::Huge);
                    if let Some(share) = l.nodes.backing().huge_share() {
                        let mut min = HUGE_SHARE.lock().unwrap_or_else(|e| e.into_inner());
                        *min = Some(min.map_or(share, |m: f64| m.min(share)));
                    }
                    Arc::new(l)
                })
                .clone();
            return Box::new(ChaseTrial::new(list, threads, None, CHASE_STEPS_PER_BATCH));
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
        Box::new(StreamTrial::new(kernel, src, dst, threads, first_touch))
    }

    fn release(&self) {
        LISTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn interpret(&self, m: &MachineFacts, groups: &[GroupOutcome]) -> Findings {
        interpret::interpret(m, groups)
    }
}
