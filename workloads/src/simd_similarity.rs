//! `hwprof run simd`: cosine similarity and dot product of 768-d f32 vectors with
//! every kernel this CPU runs (simd.rs), single-threaded, each call timed. The
//! headline compares the scalar reference with the kernel dispatch would choose.

use std::hint::black_box;

use crate::experiment::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, ThreadShape, Trial, Variant,
};
use crate::simd::Kernel;

/// Engram's embedding width.
pub const DIM: usize = 768;
/// Vector pairs cycled through: 64 x 2 x 3 KiB = 384 KiB, cache-resident, so the
/// figure is the kernel's, not memory's.
const PAIRS: usize = 64;
const CALLS_PER_BATCH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Dot,
    Cosine,
}

const ALL: [(&str, &str, Kernel, Op); 10] = [
    (
        "scalar-dot",
        "scalar reference, f64 accumulation",
        Kernel::Scalar,
        Op::Dot,
    ),
    ("sse2-dot", "SSE2, 2 f64 lanes", Kernel::Sse2, Op::Dot),
    (
        "avx2-fma-dot",
        "AVX2 + FMA, 4 f64 lanes x 2 accumulators",
        Kernel::Avx2Fma,
        Op::Dot,
    ),
    (
        "avx512f-dot",
        "AVX-512F, 8 f64 lanes x 2 accumulators",
        Kernel::Avx512,
        Op::Dot,
    ),
    (
        "neon-dot",
        "NEON, 2 f64 lanes x 2 accumulators",
        Kernel::Neon,
        Op::Dot,
    ),
    (
        "scalar-cosine",
        "scalar reference, one fused pass",
        Kernel::Scalar,
        Op::Cosine,
    ),
    (
        "sse2-cosine",
        "SSE2, one fused pass",
        Kernel::Sse2,
        Op::Cosine,
    ),
    (
        "avx2-fma-cosine",
        "AVX2 + FMA, one fused pass",
        Kernel::Avx2Fma,
        Op::Cosine,
    ),
    (
        "avx512f-cosine",
        "AVX-512F, one fused pass",
        Kernel::Avx512,
        Op::Cosine,
    ),
    (
        "neon-cosine",
        "NEON, one fused pass",
        Kernel::Neon,
        Op::Cosine,
    ),
];

fn cosine_name(k: Kernel) -> &'static str {
    ALL.iter()
        .find(|(_, _, kk, op)| *kk == k && *op == Op::Cosine)
        .map(|e| e.0)
        .expect("every kernel has a cosine variant")
}

struct SimdTrial {
    kernel: Kernel,
    op: Op,
    a: Vec<f32>,
    b: Vec<f32>,
    next: std::sync::atomic::AtomicUsize,
}

impl Trial for SimdTrial {
    fn run_batch(&self, _worker: usize, timer: &mut dyn OpTimer) -> u64 {
        let first = self
            .next
            .fetch_add(CALLS_PER_BATCH, std::sync::atomic::Ordering::Relaxed);
        for i in 0..CALLS_PER_BATCH {
            let p = (first + i) % PAIRS;
            let (a, b) = (
                &self.a[p * DIM..(p + 1) * DIM],
                &self.b[p * DIM..(p + 1) * DIM],
            );
            let t = timer.start();
            match self.op {
                Op::Dot => black_box(self.kernel.dot(black_box(a), black_box(b))),
                Op::Cosine => black_box(self.kernel.cosine(black_box(a), black_box(b))),
            };
            timer.stop(t);
        }
        CALLS_PER_BATCH as u64
    }
}

/// Clustered-looking inputs from a fixed seed (xorshift; no dependency).
fn vectors(seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    (0..PAIRS * DIM)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub struct SimdSimilarity;

const INFO: ExperimentInfo = ExperimentInfo {
    name: "simd",
    summary: "768-d f32 dot product and cosine similarity: scalar reference vs every SIMD kernel this CPU runs",
    operation: "call",
    thread_shape: ThreadShape::Threads { default: 1 },
    records_latency: true,
    sweeps_threads: false,
    quick: None,
    metrics: &[],
};

impl Experiment for SimdSimilarity {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn variants(&self, _machine: &MachineFacts) -> Result<Vec<Variant>, String> {
        Ok(ALL
            .iter()
            .filter(|(_, _, k, _)| k.available())
            .map(|(name, description, _, _)| Variant::new(name, description))
            .collect())
    }

    fn comparison(&self) -> Comparison {
        Comparison::slowdown("scalar-cosine", cosine_name(Kernel::dispatch().0))
    }

    fn notes(&self) -> Vec<String> {
        let (k, why) = Kernel::dispatch();
        vec![
            format!("dispatched kernel: {} ({why})", k.name()),
            format!(
                "available here: {}",
                Kernel::available_kernels().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            ),
            "all kernels widen to f64 and accumulate in f64: equal to the scalar reference within 1e-6 of Σ|aᵢbᵢ|".into(),
            format!("{PAIRS} vector pairs of {DIM} f32 cycled (cache-resident); each call timed"),
        ]
    }

    fn prepare(&self, variant: &Variant, _threads: usize) -> Box<dyn Trial> {
        let variant = variant.name.as_ref();
        let (_, _, kernel, op) = *ALL
            .iter()
            .find(|e| e.0 == variant)
            .unwrap_or_else(|| panic!("simd has no variant {variant:?}"));
        Box::new(SimdTrial {
            kernel,
            op,
            a: vectors(0x51ad),
            b: vectors(0xc0de),
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::NoTimer;

    #[test]
    fn variants_are_the_available_kernels_and_the_comparison_is_valid() {
        let e = SimdSimilarity;
        let variants = e.variants(&MachineFacts::default()).unwrap();
        let names: Vec<&str> = variants.iter().map(|v| v.name.as_ref()).collect();
        assert!(names.contains(&"scalar-dot") && names.contains(&"scalar-cosine"));
        let c = e.comparison();
        assert!(
            names.contains(&c.treatment) && names.contains(&c.baseline),
            "{c:?} in {names:?}"
        );
        for v in &variants {
            assert_eq!(
                e.prepare(v, 1).run_batch(0, &mut NoTimer),
                CALLS_PER_BATCH as u64
            );
        }
    }
}
