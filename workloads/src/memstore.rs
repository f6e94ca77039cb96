//! `memstore`: a model of Engram's hot tier, the system under test when no
//! external server is given.
//!
//! What it keeps from Engram, because it decides contention and cache behaviour:
//! a DashMap per memory space (tenant) with a configurable shard count; nodes
//! holding a 768-d f32 embedding (3 KiB, the cache footprint per node),
//! activation, confidence and timestamps; weighted edges with a fixed fan-out;
//! recall = top-k cosine over candidate nodes, spreading activation = bounded
//! breadth-first walk along edges writing activation. What it leaves out (see
//! docs/memstore.md): persistence, the HNSW index (recall scans a candidate set
//! drawn from the query's cluster instead), HTTP, eviction to colder tiers.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use dashmap::DashMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::simd::Kernel;

pub type NodeId = u64;

/// A memory space (tenant). Spaces never share nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpaceId(pub u32);

#[derive(Debug)]
pub struct MemoryNode {
    pub id: NodeId,
    pub space: SpaceId,
    pub embedding: Box<[f32]>,
    /// f32 bits, updated atomically by spreading activation.
    activation: AtomicU32,
    pub confidence: f32,
    pub created_ns: u64,
    pub accessed_ns: AtomicU64,
    /// (target, weight), same space only.
    pub edges: Vec<(NodeId, f32)>,
    /// Cluster the embedding was drawn around (for candidate selection).
    pub cluster: u32,
}

impl MemoryNode {
    pub fn activation(&self) -> f32 {
        f32::from_bits(self.activation.load(Ordering::Relaxed))
    }

    fn add_activation(&self, delta: f32) {
        let _ = self
            .activation
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((f32::from_bits(b) + delta).min(1.0).to_bits())
            });
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub spaces: u32,
    pub nodes_per_space: u64,
    pub dim: usize,
    pub clusters: u32,
    /// Spread of embeddings around their cluster centre.
    pub sigma: f32,
    pub fan_out: usize,
    /// DashMap shards per space (power of two; DashMap's default is 4 x cores).
    pub shards: usize,
    pub seed: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            spaces: 1,
            nodes_per_space: 10_000,
            dim: 768,
            clusters: 50,
            sigma: 0.15,
            fan_out: 8,
            shards: 64,
            seed: 42,
        }
    }
}

struct Space {
    nodes: DashMap<NodeId, MemoryNode>,
    /// Node ids by cluster, for recall candidates.
    by_cluster: Vec<Vec<NodeId>>,
}

pub struct MemStore {
    config: StoreConfig,
    spaces: Vec<Space>,
    centres: Vec<Vec<f32>>,
    kernel: Kernel,
    clock: AtomicU64,
}

fn normalise(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt() as f32;
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// `clusters` unit-norm centres of `dim` components, the first draws of `rng`.
fn draw_centres(rng: &mut StdRng, clusters: u32, dim: usize) -> Vec<Vec<f32>> {
    (0..clusters.max(1))
        .map(|_| {
            let mut c: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            normalise(&mut c);
            c
        })
        .collect()
}

/// The cluster centres a store generated with `seed` has: a load generator
/// draws its queries and stores near them without asking the server.
pub fn cluster_centres(seed: u64, clusters: u32, dim: usize) -> Vec<Vec<f32>> {
    draw_centres(&mut StdRng::seed_from_u64(seed), clusters, dim)
}

/// Scale `v` to unit length (no-op for the zero vector).
pub fn normalise_vec(v: &mut [f32]) {
    normalise(v)
}

impl MemStore {
    /// Generate a store: per space, `nodes_per_space` nodes around `clusters`
    /// unit-norm centres (N(0, sigma) per component, renormalised), each with
    /// `fan_out` edges, mostly inside its cluster.
    pub fn generate(config: StoreConfig) -> MemStore {
        Self::generate_with(config, &mut |_, _| {})
    }

    /// [`MemStore::generate`], calling `progress(done, total)` every 1024 nodes.
    pub fn generate_with(config: StoreConfig, progress: &mut dyn FnMut(u64, u64)) -> MemStore {
        assert!(
            config.shards.is_power_of_two() && config.shards >= 2,
            "shards must be a power of two >= 2"
        );
        let mut rng = StdRng::seed_from_u64(config.seed);
        let centres = draw_centres(&mut rng, config.clusters, config.dim);
        let noise =
            Normal::new(0.0f32, config.sigma / (config.dim as f32).sqrt()).expect("sigma >= 0");
        let mut spaces = Vec::new();
        for s in 0..config.spaces {
            let nodes = DashMap::with_shard_amount(config.shards);
            let mut by_cluster = vec![Vec::new(); centres.len()];
            let n = config.nodes_per_space;
            for id in 0..n {
                let cluster = rng.random_range(0..centres.len() as u32);
                let mut e: Vec<f32> = centres[cluster as usize]
                    .iter()
                    .map(|c| c + noise.sample(&mut rng))
                    .collect();
                normalise(&mut e);
                if id % 1024 == 0 {
                    progress(u64::from(s) * n + id, u64::from(config.spaces) * n);
                }
                by_cluster[cluster as usize].push(id);
                nodes.insert(
                    id,
                    MemoryNode {
                        id,
                        space: SpaceId(s),
                        embedding: e.into_boxed_slice(),
                        activation: AtomicU32::new(0f32.to_bits()),
                        confidence: rng.random_range(0.5..1.0),
                        created_ns: id,
                        accessed_ns: AtomicU64::new(0),
                        edges: Vec::new(),
                        cluster,
                    },
                );
            }
            // Edges: 3 in 4 inside the node's cluster, the rest anywhere in the space.
            for id in 0..n {
                let cluster = nodes.get(&id).map(|n| n.cluster).unwrap_or(0) as usize;
                let edges: Vec<(NodeId, f32)> = (0..config.fan_out)
                    .map(|_| {
                        let same = &by_cluster[cluster];
                        let target = if rng.random_bool(0.75) && !same.is_empty() {
                            same[rng.random_range(0..same.len())]
                        } else {
                            rng.random_range(0..n)
                        };
                        (target, rng.random_range(0.1..1.0))
                    })
                    .collect();
                if let Some(mut node) = nodes.get_mut(&id) {
                    node.edges = edges;
                }
            }
            spaces.push(Space { nodes, by_cluster });
        }
        MemStore {
            kernel: Kernel::dispatch().0,
            config,
            spaces,
            centres,
            clock: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn centres(&self) -> &[Vec<f32>] {
        &self.centres
    }

    /// Nodes in every space together.
    pub fn total_len(&self) -> usize {
        self.spaces.iter().map(|s| s.nodes.len()).sum()
    }

    pub fn spaces(&self) -> u32 {
        self.spaces.len() as u32
    }

    fn space(&self, s: SpaceId) -> &Space {
        &self.spaces[s.0 as usize]
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    pub fn len(&self, s: SpaceId) -> usize {
        self.space(s).nodes.len()
    }

    pub fn is_empty(&self, s: SpaceId) -> bool {
        self.len(s) == 0
    }

    /// A query vector near cluster `c`.
    pub fn query_near(&self, cluster: u32, rng: &mut impl Rng) -> Vec<f32> {
        let c = &self.centres[cluster as usize % self.centres.len()];
        let mut q: Vec<f32> = c
            .iter()
            .map(|x| x + rng.random_range(-0.02..0.02))
            .collect();
        normalise(&mut q);
        q
    }

    /// Read a node and mark it accessed (a DashMap read plus an atomic store).
    /// Returns its activation, or None if the id is not in that space.
    pub fn touch(&self, s: SpaceId, id: NodeId) -> Option<f32> {
        let node = self.space(s).nodes.get(&id)?;
        node.accessed_ns.store(self.tick(), Ordering::Relaxed);
        Some(node.activation())
    }

    /// Store (insert or replace) a node's embedding: a DashMap write.
    pub fn store(&self, s: SpaceId, id: NodeId, embedding: &[f32]) {
        let space = self.space(s);
        let t = self.tick();
        match space.nodes.get_mut(&id) {
            Some(mut n) => {
                n.embedding.copy_from_slice(embedding);
                n.accessed_ns.store(t, Ordering::Relaxed);
            }
            None => {
                space.nodes.insert(
                    id,
                    MemoryNode {
                        id,
                        space: s,
                        embedding: embedding.to_vec().into_boxed_slice(),
                        activation: AtomicU32::new(0),
                        confidence: 1.0,
                        created_ns: t,
                        accessed_ns: AtomicU64::new(t),
                        edges: Vec::new(),
                        cluster: 0,
                    },
                );
            }
        }
    }

    /// Top-k cosine among `candidates` nodes of the query's nearest cluster.
    pub fn recall(
        &self,
        s: SpaceId,
        query: &[f32],
        k: usize,
        candidates: usize,
        rng: &mut impl Rng,
    ) -> Vec<(NodeId, f32)> {
        let space = self.space(s);
        let cluster = (0..self.centres.len())
            .max_by(|&a, &b| {
                let ca = self.kernel.dot(&self.centres[a], query);
                let cb = self.kernel.dot(&self.centres[b], query);
                ca.total_cmp(&cb)
            })
            .unwrap_or(0);
        let pool = &space.by_cluster[cluster];
        let mut scored: Vec<(NodeId, f32)> = (0..candidates.min(pool.len()))
            .filter_map(|_| {
                let id = pool[rng.random_range(0..pool.len())];
                let n = space.nodes.get(&id)?;
                Some((id, self.kernel.cosine(&n.embedding, query)))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.dedup_by_key(|x| x.0);
        scored.truncate(k);
        scored
    }

    /// Neighbours of a node (read-only graph search step).
    pub fn search(&self, s: SpaceId, id: NodeId) -> Vec<NodeId> {
        self.space(s)
            .nodes
            .get(&id)
            .map(|n| n.edges.iter().map(|e| e.0).collect())
            .unwrap_or_default()
    }

    /// Spreading activation from `seed`: breadth-first along edges up to `depth`,
    /// activating each reached node by `energy × weight × decay^hop`. Returns the
    /// nodes activated (all in space `s`).
    pub fn spread(
        &self,
        s: SpaceId,
        seed: NodeId,
        depth: usize,
        energy: f32,
        decay: f32,
    ) -> Vec<NodeId> {
        let space = self.space(s);
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([(seed, energy, 0usize)]);
        let mut out = Vec::new();
        while let Some((id, e, hop)) = queue.pop_front() {
            if !seen.insert(id) {
                continue;
            }
            let Some(node) = space.nodes.get(&id) else {
                continue;
            };
            node.add_activation(e);
            out.push(id);
            if hop < depth {
                for &(t, w) in &node.edges {
                    queue.push_back((t, e * w * decay, hop + 1));
                }
            }
        }
        out
    }

    /// The space a node handle says it belongs to (for isolation checks).
    pub fn space_of(&self, s: SpaceId, id: NodeId) -> Option<SpaceId> {
        self.space(s).nodes.get(&id).map(|n| n.space)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small(spaces: u32) -> MemStore {
        MemStore::generate(StoreConfig {
            spaces,
            nodes_per_space: 300,
            dim: 32,
            clusters: 5,
            fan_out: 4,
            shards: 8,
            ..Default::default()
        })
    }

    #[test]
    fn recall_finds_the_querys_cluster() {
        let m = small(1);
        let mut rng = StdRng::seed_from_u64(1);
        let q = m.query_near(3, &mut rng);
        let top = m.recall(SpaceId(0), &q, 5, 64, &mut rng);
        assert_eq!(top.len(), 5);
        assert!(
            top.windows(2).all(|w| w[0].1 >= w[1].1),
            "sorted by similarity"
        );
        for (id, sim) in &top {
            let n = m.space(SpaceId(0)).nodes.get(id).unwrap();
            assert_eq!(n.cluster, 3, "top hits come from the query's cluster");
            assert!(*sim > 0.5, "{sim}");
        }
    }

    #[test]
    fn spreading_activation_is_bounded_and_decays() {
        let m = small(1);
        let reached = m.spread(SpaceId(0), 0, 2, 1.0, 0.5);
        assert!(
            reached.len() <= 1 + 4 + 16,
            "fan-out 4, depth 2: {}",
            reached.len()
        );
        assert_eq!(reached[0], 0);
        let seed_act = m.space(SpaceId(0)).nodes.get(&0).unwrap().activation();
        assert!((seed_act - 1.0).abs() < 1e-6);
        assert!(
            m.space(SpaceId(0))
                .nodes
                .get(&reached[1])
                .unwrap()
                .activation()
                < seed_act
        );
    }

    #[test]
    fn store_inserts_and_replaces() {
        let m = small(1);
        let e = vec![0.5f32; 32];
        m.store(SpaceId(0), 5000, &e);
        assert_eq!(m.len(SpaceId(0)), 301);
        m.store(SpaceId(0), 5000, &vec![0.25; 32]);
        assert_eq!(m.len(SpaceId(0)), 301);
        assert_eq!(
            m.space(SpaceId(0)).nodes.get(&5000).unwrap().embedding[0],
            0.25
        );
        assert!(m.touch(SpaceId(0), 5000).is_some());
        assert!(m.touch(SpaceId(0), 99_999).is_none());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Touch(u32, u64),
        Store(u32, u64),
        Recall(u32, u32),
        Search(u32, u64),
        Spread(u32, u64, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4u32, 0..400u64).prop_map(|(s, id)| Op::Touch(s, id)),
            (0..4u32, 0..400u64).prop_map(|(s, id)| Op::Store(s, id)),
            (0..4u32, 0..5u32).prop_map(|(s, c)| Op::Recall(s, c)),
            (0..4u32, 0..300u64).prop_map(|(s, id)| Op::Search(s, id)),
            (0..4u32, 0..300u64, 0..3usize).prop_map(|(s, id, d)| Op::Spread(s, id, d)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        /// No operation on space s ever reads, returns or activates a node of
        /// another space: every node it yields belongs to s, and other spaces'
        /// activations are untouched.
        #[test]
        fn spaces_are_isolated(ops in proptest::collection::vec(op(), 1..12)) {
            // One store for all cases: the property is per operation, and state
            // left by earlier cases only makes the store more varied.
            static STORE: std::sync::OnceLock<MemStore> = std::sync::OnceLock::new();
            let m = STORE.get_or_init(|| MemStore::generate(StoreConfig { spaces: 4, nodes_per_space: 300, dim: 16, clusters: 5, fan_out: 4, shards: 8, ..Default::default() }));
            let mut rng = StdRng::seed_from_u64(7);
            for o in ops {
                let snapshot = |s: u32| -> Vec<f32> { (0..300).map(|id| m.space(SpaceId(s)).nodes.get(&id).map_or(0.0, |n| n.activation())).collect() };
                let before: Vec<Vec<f32>> = (0..4).map(snapshot).collect();
                let s = match &o { Op::Touch(s, _) | Op::Store(s, _) | Op::Recall(s, _) | Op::Search(s, _) | Op::Spread(s, _, _) => *s };
                let yielded: Vec<NodeId> = match o {
                    Op::Touch(s, id) => { m.touch(SpaceId(s), id); vec![] }
                    Op::Store(s, id) => { m.store(SpaceId(s), id, &[0.1; 16]); vec![id] }
                    Op::Recall(s, c) => { let q = m.query_near(c, &mut rng); m.recall(SpaceId(s), &q, 5, 32, &mut rng).into_iter().map(|x| x.0).collect() }
                    Op::Search(s, id) => m.search(SpaceId(s), id),
                    Op::Spread(s, id, d) => m.spread(SpaceId(s), id, d, 1.0, 0.5),
                };
                for id in yielded {
                    prop_assert_eq!(m.space_of(SpaceId(s), id).unwrap_or(SpaceId(s)), SpaceId(s));
                }
                for other in (0..4).filter(|&o| o != s) {
                    prop_assert_eq!(snapshot(other), before[other as usize].clone(), "space {} changed by an op on {}", other, s);
                }
            }
        }
    }
}
