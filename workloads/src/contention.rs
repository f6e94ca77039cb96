//! `hwprof run contention`: a DashMap hot tier (Engram's structure) under uniform
//! keys, bounded Zipf hot spots (s = 0.8, 1.0, 1.2) and a celebrity key taking 50%
//! of accesses, at read/write mixes 90/10, 50/50, 10/90, plus a shard-count sweep;
//! thread counts swept 1 → all hardware threads. Every operation is timed. Each
//! hot-spot scenario is compared with uniform at the same mix against the
//! engineering targets: Zipf keeps ≥ 90%, celebrity ≥ 70% of uniform throughput.

use std::sync::Mutex;

use dashmap::DashMap;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::experiment::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, ThreadShape, Trial, Variant,
};
use crate::keys::{KeyDist, KeySampler};

/// Keys in the map: enough that uniform access rarely collides, few enough to
/// build quickly for every repetition.
pub const KEYS: u64 = 100_000;
/// DashMap shards unless a variant says otherwise.
pub const DEFAULT_SHARDS: usize = 64;
const OPS_PER_BATCH: usize = 256;

/// A 64-byte value: one cache line per entry, like a small node header.
type Value = [u64; 8];

/// What the variant hammers: a plain DashMap, or the memstore's hot tier (3 KiB
/// nodes: reads touch, writes replace the embedding under the shard lock).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    DashMap,
    MemStore,
}

#[derive(Debug, Clone, Copy)]
struct Spec {
    target: Target,
    name: &'static str,
    description: &'static str,
    dist: KeyDist,
    read_share: f64,
    shards: usize,
}

macro_rules! spec {
    ($name:expr, $dist:expr, $read:expr, $shards:expr, $desc:expr) => {
        Spec {
            target: Target::DashMap,
            name: $name,
            description: $desc,
            dist: $dist,
            read_share: $read,
            shards: $shards,
        }
    };
}

macro_rules! mem {
    ($name:expr, $dist:expr, $desc:expr) => {
        Spec {
            target: Target::MemStore,
            name: $name,
            description: $desc,
            dist: $dist,
            read_share: 0.9,
            shards: DEFAULT_SHARDS,
        }
    };
}

const SPECS: [Spec; 21] = [
    spec!(
        "uniform-r90",
        KeyDist::Uniform,
        0.9,
        DEFAULT_SHARDS,
        "uniform keys, 90% reads"
    ),
    spec!(
        "uniform-r50",
        KeyDist::Uniform,
        0.5,
        DEFAULT_SHARDS,
        "uniform keys, 50% reads"
    ),
    spec!(
        "uniform-r10",
        KeyDist::Uniform,
        0.1,
        DEFAULT_SHARDS,
        "uniform keys, 10% reads"
    ),
    spec!(
        "zipf0.8-r90",
        KeyDist::Zipf(0.8),
        0.9,
        DEFAULT_SHARDS,
        "Zipf s=0.8, 90% reads"
    ),
    spec!(
        "zipf0.8-r50",
        KeyDist::Zipf(0.8),
        0.5,
        DEFAULT_SHARDS,
        "Zipf s=0.8, 50% reads"
    ),
    spec!(
        "zipf0.8-r10",
        KeyDist::Zipf(0.8),
        0.1,
        DEFAULT_SHARDS,
        "Zipf s=0.8, 10% reads"
    ),
    spec!(
        "zipf1.0-r90",
        KeyDist::Zipf(1.0),
        0.9,
        DEFAULT_SHARDS,
        "Zipf s=1.0, 90% reads"
    ),
    spec!(
        "zipf1.0-r50",
        KeyDist::Zipf(1.0),
        0.5,
        DEFAULT_SHARDS,
        "Zipf s=1.0, 50% reads"
    ),
    spec!(
        "zipf1.0-r10",
        KeyDist::Zipf(1.0),
        0.1,
        DEFAULT_SHARDS,
        "Zipf s=1.0, 10% reads"
    ),
    spec!(
        "zipf1.2-r90",
        KeyDist::Zipf(1.2),
        0.9,
        DEFAULT_SHARDS,
        "Zipf s=1.2, 90% reads"
    ),
    spec!(
        "zipf1.2-r50",
        KeyDist::Zipf(1.2),
        0.5,
        DEFAULT_SHARDS,
        "Zipf s=1.2, 50% reads"
    ),
    spec!(
        "zipf1.2-r10",
        KeyDist::Zipf(1.2),
        0.1,
        DEFAULT_SHARDS,
        "Zipf s=1.2, 10% reads"
    ),
    spec!(
        "celebrity-r90",
        KeyDist::Celebrity(0.5),
        0.9,
        DEFAULT_SHARDS,
        "one key takes 50% of accesses, 90% reads"
    ),
    spec!(
        "celebrity-r50",
        KeyDist::Celebrity(0.5),
        0.5,
        DEFAULT_SHARDS,
        "one key takes 50% of accesses, 50% reads"
    ),
    spec!(
        "celebrity-r10",
        KeyDist::Celebrity(0.5),
        0.1,
        DEFAULT_SHARDS,
        "one key takes 50% of accesses, 10% reads"
    ),
    spec!(
        "zipf1.0-r50-shards4",
        KeyDist::Zipf(1.0),
        0.5,
        4,
        "shard sweep: Zipf s=1.0, 50% reads, 4 shards"
    ),
    spec!(
        "zipf1.0-r50-shards16",
        KeyDist::Zipf(1.0),
        0.5,
        16,
        "shard sweep: 16 shards"
    ),
    spec!(
        "zipf1.0-r50-shards256",
        KeyDist::Zipf(1.0),
        0.5,
        256,
        "shard sweep: 256 shards"
    ),
    mem!(
        "memstore-uniform-r90",
        KeyDist::Uniform,
        "memstore hot tier (20k nodes), uniform, 90% touch / 10% store"
    ),
    mem!(
        "memstore-zipf1.0-r90",
        KeyDist::Zipf(1.0),
        "memstore hot tier, Zipf s=1.0, 90% touch / 10% store"
    ),
    mem!(
        "memstore-celebrity-r90",
        KeyDist::Celebrity(0.5),
        "memstore hot tier, celebrity node, 90% touch / 10% store"
    ),
];

struct ContentionTrial {
    map: DashMap<u64, Value>,
    memstore: Option<&'static crate::memstore::MemStore>,
    embedding: Vec<f32>,
    keys: KeySampler,
    read_share: f64,
    /// One RNG per worker (locked once per batch, never contended).
    rngs: Vec<Mutex<SmallRng>>,
}

impl Trial for ContentionTrial {
    fn run_batch(&self, worker: usize, timer: &mut dyn OpTimer) -> u64 {
        let mut rng = self.rngs[worker].lock().expect("per-worker RNG");
        let mut sink = 0u64;
        for _ in 0..OPS_PER_BATCH {
            let key = self.keys.sample(&mut *rng);
            let read = rng.random_bool(self.read_share);
            let t = timer.start();
            if let Some(m) = self.memstore {
                if read {
                    sink = sink
                        .wrapping_add(m.touch(crate::memstore::SpaceId(0), key).is_some() as u64);
                } else {
                    m.store(crate::memstore::SpaceId(0), key, &self.embedding);
                }
            } else if read {
                if let Some(v) = self.map.get(&key) {
                    sink = sink.wrapping_add(v[0] ^ v[7]);
                }
            } else if let Some(mut v) = self.map.get_mut(&key) {
                v[0] = v[0].wrapping_add(1);
                v[7] = v[7].wrapping_add(worker as u64);
            }
            timer.stop(t);
        }
        std::hint::black_box(sink);
        OPS_PER_BATCH as u64
    }
}

pub struct Contention;

const INFO: ExperimentInfo = ExperimentInfo {
    name: "contention",
    summary: "DashMap hot tier under uniform, Zipf and celebrity keys at three read/write mixes, shard sweep, thread sweep",
    operation: "op",
    thread_shape: ThreadShape::Threads { default: 2 },
    records_latency: true,
    sweeps_threads: true,
    // 21 variants x thread counts: keep --quick under a minute.
    quick:     Some((0.06, 5)),
    metrics: &[],
};

impl Experiment for Contention {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn variants(&self, _machine: &MachineFacts) -> Result<Vec<Variant>, String> {
        Ok(SPECS
            .iter()
            .map(|s| Variant::new(s.name, s.description))
            .collect())
    }

    fn comparison(&self) -> Comparison {
        self.comparisons()[0]
    }

    fn comparisons(&self) -> Vec<Comparison> {
        SPECS
            .iter()
            .filter(|s| s.shards == DEFAULT_SHARDS && !matches!(s.dist, KeyDist::Uniform))
            .map(|s| {
                let baseline = SPECS
                    .iter()
                    .find(|u| {
                        matches!(u.dist, KeyDist::Uniform)
                            && u.read_share == s.read_share
                            && u.target == s.target
                    })
                    .expect("a uniform variant per mix")
                    .name;
                Comparison {
                    treatment: s.name,
                    baseline,
                    effect: "slowdown",
                    target: Some(if matches!(s.dist, KeyDist::Celebrity(_)) {
                        0.7
                    } else {
                        0.9
                    }),
                    on: Default::default(),
                }
            })
            .collect()
    }

    fn notes(&self) -> Vec<String> {
        vec![
            format!("DashMap<u64, [u64; 8]> with {KEYS} keys, {DEFAULT_SHARDS} shards unless the variant sweeps shards"),
            "read = get + load of the entry; write = get_mut + update (holds the shard's write lock)".into(),
            "Zipf via rand_distr (rank 1 = key 0); celebrity: key 0 takes 50% of accesses".into(),
            "targets: Zipf keeps >= 90% and celebrity >= 70% of uniform throughput at the same mix".into(),
        ]
    }

    fn prepare(&self, variant: &Variant, threads: usize) -> Box<dyn Trial> {
        let variant = variant.name.as_ref();
        let spec = SPECS
            .iter()
            .find(|s| s.name == variant)
            .unwrap_or_else(|| panic!("contention has no variant {variant:?}"));
        let (map, memstore, n) = match spec.target {
            Target::DashMap => {
                let map = DashMap::with_capacity_and_shard_amount(KEYS as usize, spec.shards);
                for k in 0..KEYS {
                    map.insert(k, [k; 8]);
                }
                (map, None, KEYS)
            }
            Target::MemStore => (
                DashMap::new(),
                Some(crate::scaling::store()),
                crate::scaling::NODES,
            ),
        };
        let mut embedding = vec![0.0f32; 768];
        embedding[1] = 1.0;
        Box::new(ContentionTrial {
            map,
            memstore,
            embedding,
            keys: KeySampler::new(n, spec.dist).expect("valid distributions"),
            read_share: spec.read_share,
            rngs: (0..threads.max(1))
                .map(|w| Mutex::new(SmallRng::seed_from_u64(0x5eed + w as u64)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::NoTimer;

    #[test]
    fn every_comparison_has_both_variants_and_a_target() {
        let e = Contention;
        let variants = e.variants(&MachineFacts::default()).unwrap();
        let names: Vec<&str> = variants.iter().map(|v| v.name.as_ref()).collect();
        let cmps = e.comparisons();
        assert_eq!(
            cmps.len(),
            14,
            "4 hot-spot scenarios x 3 mixes on DashMap, 2 on the memstore"
        );
        for c in cmps {
            assert!(names.contains(&c.treatment) && names.contains(&c.baseline));
            let (tm, bm) = (
                c.treatment.starts_with("memstore-"),
                c.baseline.starts_with("memstore-"),
            );
            assert_eq!(tm, bm, "{c:?}: compared on the same target");
            let base = c.baseline.trim_start_matches("memstore-");
            assert!(
                base.starts_with("uniform-") && c.treatment.ends_with(&base["uniform".len()..]),
                "{c:?}"
            );
            assert!(matches!(c.target, Some(t) if t == 0.9 || t == 0.7));
        }
    }

    #[test]
    fn batches_touch_only_existing_keys_and_write_when_asked() {
        let e = Contention;
        let t = e.prepare(&Variant::new("celebrity-r10", ""), 2);
        assert_eq!(t.run_batch(0, &mut NoTimer), OPS_PER_BATCH as u64);
        assert_eq!(t.run_batch(1, &mut NoTimer), OPS_PER_BATCH as u64);
    }
}
