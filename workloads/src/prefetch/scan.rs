//! The neighbour scan: an HNSW-like layer-0 walk over 768-d f32 vectors, each
//! neighbour scored with the dispatched SIMD kernel, the vectors of the
//! neighbour `d` ahead prefetched.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{DEGREE, DIMS, SCAN_NODES_PER_BATCH};
use crate::chase::prefetch;
use crate::experiment::{OpTimer, Trial};
use crate::simd::Kernel;

/// Vectors and fixed-degree adjacency, like HNSW's layer 0.
pub(super) struct VectorSet {
    vectors: Vec<f32>,
    adjacency: Vec<u32>,
    pub(super) n: usize,
}

impl VectorSet {
    pub(super) fn build(bytes: u64) -> VectorSet {
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

    pub(super) fn vector(&self, i: u32) -> &[f32] {
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

pub(super) struct ScanTrial {
    pub(super) set: Arc<VectorSet>,
    pub(super) query: Vec<f32>,
    pub(super) kernel: Kernel,
    pub(super) distance: usize,
    pub(super) at: Vec<AtomicU32>,
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
