//! `hwprof run tenants`: memory spaces on the memstore. Noisy neighbour: worker 0
//! serves space B at a fixed rate and times every operation; the other workers
//! drive space A at 10x B's rate (variant `b-with-noisy-a`) or stay idle
//! (`b-alone`). Interference = B's p99 with A / B's p99 alone, with its CI,
//! against the engineering target (under 1%). `balanced-10`: ten spaces at equal
//! load, every operation timed.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::experiment::{
    CompareOn, Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, ThreadShape, Trial,
    Variant,
};
use crate::memstore::{MemStore, SpaceId, StoreConfig};

pub const SPACES: u32 = 10;
pub const NODES_PER_SPACE: u64 = 2_000;
/// B's offered load, operations per second; A gets ten times that.
pub const B_RATE: f64 = 2_000.0;
pub const A_FACTOR: f64 = 10.0;
const SPACE_A: SpaceId = SpaceId(0);
const SPACE_B: SpaceId = SpaceId(1);

fn store() -> &'static MemStore {
    static STORE: OnceLock<MemStore> = OnceLock::new();
    STORE.get_or_init(|| {
        MemStore::generate(StoreConfig {
            spaces: SPACES,
            nodes_per_space: NODES_PER_SPACE,
            ..StoreConfig::default()
        })
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    BAlone,
    BWithNoisyA,
    Balanced,
}

/// One tenant operation: 90% recall, 10% touch.
fn op(store: &MemStore, space: SpaceId, rng: &mut SmallRng) {
    if rng.random_bool(0.9) {
        let q = store.query_near(rng.random_range(0..50), rng);
        std::hint::black_box(store.recall(space, &q, 10, 16, rng));
    } else {
        std::hint::black_box(store.touch(space, rng.random_range(0..NODES_PER_SPACE)));
    }
}

struct Pacer {
    next: Instant,
    interval: Duration,
}

impl Pacer {
    /// Wait for the next slot. If far behind (a stall), restart the schedule
    /// rather than burst to catch up.
    fn wait(&mut self) {
        let now = Instant::now();
        if now > self.next + self.interval * 100 {
            self.next = now;
        }
        while Instant::now() < self.next {
            std::hint::spin_loop();
        }
        self.next += self.interval;
    }
}

struct TenantTrial {
    store: &'static MemStore,
    mode: Mode,
    rngs: Vec<Mutex<(SmallRng, Pacer)>>,
    threads: usize,
}

impl Trial for TenantTrial {
    fn run_batch(&self, worker: usize, timer: &mut dyn OpTimer) -> u64 {
        let mut guard = self.rngs[worker].lock().expect("per-worker state");
        let (rng, pacer) = &mut *guard;
        match (self.mode, worker) {
            (Mode::Balanced, w) => {
                for i in 0..8 {
                    let space = SpaceId(((w * 8 + i) % SPACES as usize) as u32);
                    let t = timer.start();
                    op(self.store, space, rng);
                    timer.stop(t);
                }
                8
            }
            (_, 0) => {
                // B: paced, timed.
                for _ in 0..4 {
                    pacer.wait();
                    let t = timer.start();
                    op(self.store, SPACE_B, rng);
                    timer.stop(t);
                }
                4
            }
            (Mode::BAlone, _) => {
                std::thread::sleep(Duration::from_micros(200));
                0
            }
            (Mode::BWithNoisyA, _) => {
                // A: paced at A_FACTOR x B's rate, split over the other workers; not timed.
                for _ in 0..8 {
                    pacer.wait();
                    op(self.store, SPACE_A, rng);
                }
                let _ = self.threads;
                8
            }
        }
    }
}

pub struct Tenants;

const VARIANTS: [(&str, &str); 3] = [
    (
        "b-alone",
        "space B alone at its offered load; other workers idle",
    ),
    (
        "b-with-noisy-a",
        "space B at its offered load while space A runs at 10x B's load",
    ),
    ("balanced-10", "ten spaces at equal load, closed loop"),
];

const INFO: ExperimentInfo = ExperimentInfo {
    name: "tenants",
    summary: "memory-space isolation on the memstore: noisy neighbour (B's p99 with A at 10x load vs alone) and ten balanced spaces",
    operation: "op",
    thread_shape: ThreadShape::Threads { default: 2 },
    records_latency: true,
    sweeps_threads: false,
    quick: None,
    metrics: &[],
};

impl Experiment for Tenants {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn variants(&self, _machine: &MachineFacts) -> Result<Vec<Variant>, String> {
        Ok(VARIANTS
            .iter()
            .map(|(name, description)| Variant::new(name, description))
            .collect())
    }

    fn comparison(&self) -> Comparison {
        Comparison {
            treatment: "b-with-noisy-a",
            baseline: "b-alone",
            effect: "interference",
            // B keeps >= 99% of its alone-p99 performance: under 1% added latency.
            target: Some(1.0 / 1.01),
            on: CompareOn::LatencyP99,
        }
    }

    fn notes(&self) -> Vec<String> {
        vec![
            format!("memstore: {SPACES} spaces x {NODES_PER_SPACE} nodes of 768 f32; op = 90% recall (top-10 of 16 candidates), 10% touch"),
            format!("B offered {B_RATE:.0} ops/s on worker 0 (paced, every op timed); A offered {:.0} ops/s on the other workers (not timed)", B_RATE * A_FACTOR),
            "latency is service time from the paced start (closed per slot): queueing behind a late slot is not included".into(),
            "the isolation property (no operation reads, returns or activates another space's node) is a 1000-case test in workloads/src/memstore.rs".into(),
        ]
    }

    fn prepare(&self, variant: &Variant, threads: usize) -> Box<dyn Trial> {
        let variant = variant.name.as_ref();
        let mode = match variant {
            "b-alone" => Mode::BAlone,
            "b-with-noisy-a" => Mode::BWithNoisyA,
            "balanced-10" => Mode::Balanced,
            other => panic!("tenants has no variant {other:?}"),
        };
        let threads = threads.max(1);
        let a_workers = (threads - 1).max(1) as f64;
        let rngs = (0..threads)
            .map(|w| {
                let rate = if w == 0 {
                    B_RATE
                } else {
                    B_RATE * A_FACTOR / a_workers
                };
                Mutex::new((
                    SmallRng::seed_from_u64(w as u64 + 7),
                    Pacer {
                        next: Instant::now(),
                        interval: Duration::from_secs_f64(1.0 / rate),
                    },
                ))
            })
            .collect();
        Box::new(TenantTrial {
            store: store(),
            mode,
            rngs,
            threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tenant_operation_does_real_work() {
        let s = MemStore::generate(StoreConfig {
            spaces: 2,
            nodes_per_space: 200,
            ..StoreConfig::default()
        });
        let mut rng = SmallRng::seed_from_u64(1);
        let q = s.query_near(3, &mut rng);
        assert!(
            !s.recall(SPACE_B, &q, 10, 16, &mut rng).is_empty(),
            "recall finds the cluster's nodes"
        );
        for _ in 0..20 {
            op(&s, SPACE_B, &mut rng);
        }
    }
}
