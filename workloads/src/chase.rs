//! The pointer chase both memory experiments time latency with (prefetch's
//! staircase and distance sweep, numa's node-by-node latency): each load's
//! address is the previous load's value, so no two loads overlap. One 64-byte
//! node per cache line, laid out sequentially, strided or as one random cycle
//! (Sattolo) through every line; random nodes can carry jump pointers for
//! software prefetching (Roth & Sohi).

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::experiment::{OpTimer, Trial};
use crate::pages::{PageBuffer, PageSize, ZeroValid};

/// Software-prefetch distances (0 = no prefetch instruction at all); a node's
/// jump pointers point DISTANCES[1..] nodes ahead.
pub const DISTANCES: [usize; 7] = [0, 1, 2, 4, 8, 16, 32];
/// The stride layout's step: 4 lines (256 B), past the adjacent-line prefetcher.
pub const STRIDE_LINES: usize = 4;

/// One cache line of the list: `next`, and jump pointers to the nodes
/// DISTANCES[1..] ahead in the same cycle (null unless asked for).
#[repr(C, align(64))]
pub struct Node {
    pub next: *const Node,
    pub ahead: [*const Node; 6],
}

// SAFETY: all-zero is a node with null pointers, a valid value.
unsafe impl ZeroValid for Node {}

/// A cyclic list laid out in its own buffer (on the page size it was built
/// for); the pointers point into it.
pub struct List {
    pub nodes: PageBuffer<Node>,
}

// SAFETY: the pointers only point into `nodes`, which is never modified or moved
// after construction and lives as long as the List.
unsafe impl Send for List {}
unsafe impl Sync for List {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    Sequential,
    Stride,
    Random,
}

impl Layout {
    pub const ALL: [Layout; 3] = [Layout::Sequential, Layout::Stride, Layout::Random];

    pub fn series(self) -> &'static str {
        match self {
            Layout::Sequential => "seq",
            Layout::Stride => "stride",
            Layout::Random => "random",
        }
    }
}

impl List {
    /// A list over `bytes` (one node per line) on `pages`. Random lists are one
    /// cycle drawn from `seed`, with jump pointers when `jump_pointers`; built and
    /// written on the calling thread, so under its memory policy.
    pub fn build(
        layout: Layout,
        bytes: u64,
        seed: u64,
        jump_pointers: bool,
        pages: PageSize,
    ) -> List {
        let n = (bytes as usize / std::mem::size_of::<Node>()).max(2);
        if layout != Layout::Random {
            return List::build_regular(layout, n, pages);
        }
        // Sattolo's algorithm: a uniformly random single cycle, so the chase
        // visits every line before it repeats.
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut rng = SmallRng::seed_from_u64(seed ^ n as u64);
        for i in (1..n).rev() {
            let j = rng.random_range(0..i);
            order.swap(i, j);
        }
        let mut nodes: PageBuffer<Node> = PageBuffer::zeroed(n, pages);
        // All writes and stored pointers derive from this one raw pointer (no
        // element reference is made while linking), so they stay valid for reads.
        let base = nodes.as_mut_ptr();
        let at = |k: usize| -> *const Node {
            // SAFETY: order holds indexes < n = the buffer's length.
            unsafe { base.add(order[k % n] as usize) }
        };
        for k in 0..n {
            let mut ahead = [std::ptr::null(); 6];
            if jump_pointers {
                for (slot, d) in ahead.iter_mut().zip(&DISTANCES[1..]) {
                    *slot = at(k + d);
                }
            }
            // SAFETY: order is a permutation of 0..n: each slot written once.
            unsafe {
                base.add(order[k] as usize).write(Node {
                    next: at(k + 1),
                    ahead,
                });
            }
        }
        List { nodes }
    }

    /// Sequential and strided lists in one pass of stores (they are rebuilt for
    /// every repetition): node i's successor is computed, not looked up.
    /// Stride order visits offset 0, S, 2S, … then 1, 1+S, … and wraps to 0.
    fn build_regular(layout: Layout, n: usize, pages: PageSize) -> List {
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
        let mut nodes: PageBuffer<Node> = PageBuffer::zeroed(n, pages);
        let base = nodes.as_mut_ptr();
        for i in 0..n {
            // SAFETY: i, succ(i) < n = the buffer's length; written through `base` only.
            unsafe {
                base.add(i).write(Node {
                    next: base.add(succ(i)),
                    ahead: [std::ptr::null(); 6],
                });
            }
        }
        List { nodes }
    }

    /// Where worker `worker` of `workers` starts: spread evenly over the cycle.
    pub fn start(&self, worker: usize, workers: usize) -> *mut Node {
        let i = worker * self.nodes.len() / workers.max(1);
        &self.nodes[i] as *const Node as *mut Node
    }
}

/// A prefetch hint for the line at `p` (no effect on other architectures).
#[inline(always)]
pub fn prefetch(p: *const u8) {
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

/// One repetition's chase: each worker walks the shared list from its own
/// point, resuming between batches where it stopped.
pub struct ChaseTrial {
    list: Arc<List>,
    at: Vec<AtomicPtr<Node>>,
    /// Jump-pointer slot to prefetch, None for the plain chase.
    slot: Option<usize>,
    steps_per_batch: usize,
}

impl ChaseTrial {
    pub fn new(
        list: Arc<List>,
        threads: usize,
        slot: Option<usize>,
        steps_per_batch: usize,
    ) -> Self {
        ChaseTrial {
            at: (0..threads.max(1))
                .map(|w| AtomicPtr::new(list.start(w, threads)))
                .collect(),
            list,
            slot,
            steps_per_batch,
        }
    }
}

impl Trial for ChaseTrial {
    fn run_batch(&self, worker: usize, _timer: &mut dyn OpTimer) -> u64 {
        let p = self.at[worker].load(Ordering::Relaxed);
        let end = match self.slot {
            None => chase(p, self.steps_per_batch),
            Some(s) => chase_prefetching(p, self.steps_per_batch, s),
        };
        self.at[worker].store(end as *mut Node, Ordering::Relaxed);
        // The list lives in the trial (the pointers are into it).
        let _ = &self.list;
        self.steps_per_batch as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_is_one_cycle_through_every_node() {
        for layout in Layout::ALL {
            let l = List::build(layout, 64 * 1000, 1, true, PageSize::Base);
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
        let l = List::build(Layout::Random, 64 * 500, 1, true, PageSize::Huge);
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
        let plain = List::build(Layout::Random, 64 * 500, 1, false, PageSize::Base);
        assert!(plain
            .nodes
            .iter()
            .all(|n| n.ahead.iter().all(|a| a.is_null())));
    }
}
