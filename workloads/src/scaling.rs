//! `hwprof run scaling`: memstore throughput from 1 thread to all hardware
//! threads (compact and scatter), for read-heavy (90% recall), write-heavy (90%
//! store) and mixed (50/50) workloads. The runner turns the sweep into speedup,
//! parallel efficiency and a Universal Scalability Law fit.

use std::sync::{Mutex, OnceLock};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::experiment::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, ThreadShape, Trial, Variant,
};
use crate::memstore::{MemStore, SpaceId, StoreConfig};

/// Nodes in the store: 20,000 x 3 KiB embeddings = 60 MiB, beyond most L2s and
/// many L3 slices, like a real hot tier.
pub const NODES: u64 = 20_000;
const OPS_PER_BATCH: usize = 8;
const RECALL_K: usize = 10;
const RECALL_CANDIDATES: usize = 32;

/// Built once per process: generation takes a while, and every variant and
/// thread count must see the same data.
pub fn store() -> &'static MemStore {
    static STORE: OnceLock<MemStore> = OnceLock::new();
    STORE.get_or_init(|| {
        MemStore::generate(StoreConfig {
            nodes_per_space: NODES,
            ..StoreConfig::default()
        })
    })
}

const VARIANTS: [(&str, &str, f64); 3] = [
    (
        "read-heavy",
        "90% recall (top-10 cosine over 32 candidates), 10% store",
        0.9,
    ),
    ("mixed", "50% recall, 50% store", 0.5),
    (
        "write-heavy",
        "10% recall, 90% store (embedding replaced under the shard's write lock)",
        0.1,
    ),
];

struct ScalingTrial {
    store: &'static MemStore,
    recall_share: f64,
    rngs: Vec<Mutex<SmallRng>>,
    embedding: Vec<f32>,
}

impl Trial for ScalingTrial {
    fn run_batch(&self, worker: usize, timer: &mut dyn OpTimer) -> u64 {
        let mut rng = self.rngs[worker].lock().expect("per-worker RNG");
        for _ in 0..OPS_PER_BATCH {
            let t = timer.start();
            if rng.random_bool(self.recall_share) {
                let q = self.store.query_near(rng.random_range(0..50), &mut *rng);
                std::hint::black_box(self.store.recall(
                    SpaceId(0),
                    &q,
                    RECALL_K,
                    RECALL_CANDIDATES,
                    &mut *rng,
                ));
            } else {
                self.store
                    .store(SpaceId(0), rng.random_range(0..NODES), &self.embedding);
            }
            timer.stop(t);
        }
        OPS_PER_BATCH as u64
    }
}

pub struct Scaling;

const INFO: ExperimentInfo = ExperimentInfo {
    name: "scaling",
    summary: "memstore throughput vs threads (read-heavy, mixed, write-heavy; compact and scatter) with a USL fit",
    operation: "op",
    thread_shape: ThreadShape::Threads { default: 1 },
    records_latency: true,
    sweeps_threads: true,
    quick: None,
    metrics: &[],
};

impl Experiment for Scaling {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn variants(&self, _machine: &MachineFacts) -> Result<Vec<Variant>, String> {
        Ok(VARIANTS
            .iter()
            .map(|(name, description, _)| Variant::new(name, description))
            .collect())
    }

    fn comparison(&self) -> Comparison {
        Comparison::slowdown("write-heavy", "read-heavy")
    }

    fn notes(&self) -> Vec<String> {
        vec![
            format!("memstore: 1 space, {NODES} nodes of 768 f32 (60 MiB), 50 clusters, 8 edges per node, 64 DashMap shards"),
            "the USL fit extrapolates beyond the measured thread counts: treat predictions there as a model, not a measurement".into(),
        ]
    }

    fn prepare(&self, variant: &Variant, threads: usize) -> Box<dyn Trial> {
        let variant = variant.name.as_ref();
        let (_, _, recall_share) = *VARIANTS
            .iter()
            .find(|v| v.0 == variant)
            .unwrap_or_else(|| panic!("scaling has no variant {variant:?}"));
        let mut e = vec![0.0f32; 768];
        e[0] = 1.0;
        Box::new(ScalingTrial {
            store: store(),
            recall_share,
            rngs: (0..threads.max(1))
                .map(|w| Mutex::new(SmallRng::seed_from_u64(w as u64 + 99)))
                .collect(),
            embedding: e,
        })
    }
}
