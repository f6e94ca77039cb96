//! The schedule: every request of a run with its intended start time, its
//! operation and what it carries, generated lazily and deterministically from
//! the scenario and the seed. A shard `i/N` keeps the requests whose index is
//! i mod N, so N generators send disjoint parts of one schedule.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::pattern::{self, Arrivals, Shape};
use super::scenario::{Scenario, Weights};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Store,
    Recall,
    Search,
    /// Pattern completion (Engram's /api/v1/complete; spreading activation).
    Completion,
}

impl OpKind {
    pub const ALL: [OpKind; 4] = [
        OpKind::Store,
        OpKind::Recall,
        OpKind::Search,
        OpKind::Completion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Store => "store",
            OpKind::Recall => "recall",
            OpKind::Search => "search",
            OpKind::Completion => "completion",
        }
    }

    pub fn parse(s: &str) -> Option<OpKind> {
        match s {
            "store" => Some(OpKind::Store),
            "recall" => Some(OpKind::Recall),
            "search" | "embedding_search" => Some(OpKind::Search),
            "completion" | "pattern_completion" => Some(OpKind::Completion),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One request of the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// Position in the whole (unsharded) schedule.
    pub index: u64,
    /// Intended start, ns after the run's start.
    pub at_ns: u64,
    pub op: OpKind,
    pub space: u32,
    /// The cluster its embedding or query is drawn near.
    pub cluster: u32,
    /// Seed of its embedding (stores: distinct per store; a correlated recall
    /// carries its store's seed, so it queries near the stored embedding).
    pub seed: u64,
    /// Index of the store this recall follows (temporal correlation).
    pub follows: Option<u64>,
}

fn weights_of(w: &Weights) -> [f64; 4] {
    [
        w.store_weight,
        w.recall_weight,
        w.embedding_search_weight,
        w.pattern_completion_weight,
    ]
}

/// What the generator needs from a scenario to lay out requests.
#[derive(Debug, Clone)]
pub struct Plan {
    pub shape: Shape,
    pub poisson: bool,
    pub duration_s: f64,
    pub seed: u64,
    pub mix: [f64; 4],
    pub peak_mix: Option<[f64; 4]>,
    /// previous op → next op weights.
    pub transitions: Option<[Option<[f64; 4]>; 4]>,
    pub correlation: Option<(f64, f64)>,
    pub spaces: u32,
    pub clusters: u32,
}

impl Plan {
    pub fn from_scenario(s: &Scenario, duration_s: f64, seed: u64) -> Plan {
        let o = &s.operations;
        let mix = [
            o.store_weight,
            o.recall_weight,
            o.embedding_search_weight,
            o.pattern_completion_weight,
        ];
        let transitions = o.transitions.as_ref().map(|t| {
            let mut rows = [None; 4];
            for (k, w) in t {
                if let Some(op) = OpKind::parse(k) {
                    rows[op.index()] = Some(weights_of(w));
                }
            }
            rows
        });
        Plan {
            shape: pattern::shape_of(&s.arrival, duration_s, seed),
            poisson: pattern::is_poisson(&s.arrival),
            duration_s,
            seed,
            mix,
            peak_mix: o.peak.as_ref().map(weights_of),
            transitions,
            correlation: s
                .correlation
                .as_ref()
                .filter(|c| c.probability > 0.0)
                .map(|c| (c.probability, c.mean_delay_ms / 1000.0)),
            spaces: s.data.memory_spaces.max(1),
            clusters: s.data.clusters().max(1),
        }
    }

    /// Weights at run time t: blended toward the peak mix by time of day.
    fn mix_at(&self, t: f64) -> [f64; 4] {
        match (&self.peak_mix, &self.shape) {
            (
                Some(peak),
                Shape::Diurnal {
                    peak_hour,
                    start_hour,
                    speed,
                    ..
                },
            ) => {
                let h = start_hour + t * speed;
                let blend = 0.5 * (1.0 + ((h - peak_hour) * std::f64::consts::PI / 12.0).cos());
                let mut w = [0.0; 4];
                for i in 0..4 {
                    w[i] = (1.0 - blend) * self.mix[i] + blend * peak[i];
                }
                w
            }
            _ => self.mix,
        }
    }

    pub fn iter(&self) -> Schedule {
        Schedule {
            plan: self.clone(),
            arrivals: Arrivals::new(self.shape.clone(), self.poisson, self.duration_s, self.seed),
            next_arrival: None,
            rng: StdRng::seed_from_u64(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED),
            follow_ups: BinaryHeap::new(),
            index: 0,
            prev: None,
            done: false,
        }
    }
}

fn pick(weights: &[f64; 4], rng: &mut StdRng) -> OpKind {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return OpKind::Recall;
    }
    let mut x = rng.random::<f64>() * total;
    for op in OpKind::ALL {
        x -= weights[op.index()];
        if x < 0.0 {
            return op;
        }
    }
    OpKind::ALL
        .into_iter()
        .rev()
        .find(|o| weights[o.index()] > 0.0)
        .unwrap_or(OpKind::Recall)
}

/// The request sequence; every generator and shard computes the same one.
pub struct Schedule {
    plan: Plan,
    arrivals: Arrivals,
    next_arrival: Option<Option<f64>>,
    rng: StdRng,
    /// (at_ns, store index, seed, cluster, space) of correlated recalls due.
    follow_ups: BinaryHeap<Reverse<(u64, u64, u64, u32, u32)>>,
    index: u64,
    prev: Option<OpKind>,
    done: bool,
}

impl Iterator for Schedule {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        if self.done {
            return None;
        }
        let arrival = *self
            .next_arrival
            .get_or_insert_with(|| self.arrivals.next());
        let arrival_ns = arrival.map(|t| (t * 1e9) as u64);
        let follow = self.follow_ups.peek().map(|r| r.0 .0);
        let take_follow = match (arrival_ns, follow) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(f)) => f < a,
        };
        let index = self.index;
        let req = if take_follow {
            let Reverse((at_ns, store, seed, cluster, space)) = self.follow_ups.pop()?;
            Request {
                index,
                at_ns,
                op: OpKind::Recall,
                space,
                cluster,
                seed,
                follows: Some(store),
            }
        } else {
            let Some(at_ns) = arrival_ns else {
                self.done = true;
                return None;
            };
            self.next_arrival = None;
            let t = at_ns as f64 / 1e9;
            let weights = match (self.prev, &self.plan.transitions) {
                (Some(p), Some(rows)) => rows[p.index()].unwrap_or_else(|| self.plan.mix_at(t)),
                _ => self.plan.mix_at(t),
            };
            let op = pick(&weights, &mut self.rng);
            self.prev = Some(op);
            let space = self.rng.random_range(0..self.plan.spaces);
            let cluster = self.rng.random_range(0..self.plan.clusters);
            let seed = self.rng.random::<u64>();
            if op == OpKind::Store {
                if let Some((p, mean_delay)) = self.plan.correlation {
                    if self.rng.random_bool(p) {
                        let delay = -mean_delay * (1.0 - self.rng.random::<f64>()).ln();
                        let due = at_ns + (delay * 1e9) as u64;
                        if (due as f64) < self.plan.duration_s * 1e9 {
                            self.follow_ups
                                .push(Reverse((due, index, seed, cluster, space)));
                        }
                    }
                }
            }
            Request {
                index,
                at_ns,
                op,
                space,
                cluster,
                seed,
                follows: None,
            }
        };
        self.index += 1;
        Some(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::scenario::parse;

    fn plan(extra: &str) -> Plan {
        let text = format!(
            "[duration]\ntotal_seconds = 20\n[arrival]\npattern = \"poisson\"\nrate = 2000\n{extra}"
        );
        let s = parse(&text, "t.toml").unwrap();
        Plan::from_scenario(&s, 20.0, 11)
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let p = plan("");
        let a: Vec<Request> = p.iter().collect();
        let b: Vec<Request> = p.iter().collect();
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        let mut other = p.clone();
        other.seed = 12;
        assert_ne!(a[..100], other.iter().take(100).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn the_mix_is_realised() {
        let p = plan("[operations]\nstore_weight = 0.1\nrecall_weight = 0.6\nembedding_search_weight = 0.3\n");
        let v: Vec<Request> = p.iter().collect();
        let n = v.len() as f64;
        for (op, w) in [
            (OpKind::Store, 0.1),
            (OpKind::Recall, 0.6),
            (OpKind::Search, 0.3),
        ] {
            let share = v.iter().filter(|r| r.op == op).count() as f64 / n;
            // 40k draws: 4 standard errors.
            let se = (w * (1.0 - w) / n).sqrt();
            assert!((share - w).abs() < 4.0 * se, "{op}: {share} vs {w}");
        }
    }

    #[test]
    fn transitions_decide_the_next_operation() {
        let p = plan(
            "[operations.transitions]\nstore = { recall_weight = 1.0 }\nrecall = { store_weight = 0.5, embedding_search_weight = 0.5 }\nsearch = { store_weight = 1.0 }\n",
        );
        let v: Vec<Request> = p.iter().collect();
        let mut pairs = std::collections::BTreeMap::new();
        for w in v.windows(2) {
            *pairs.entry((w[0].op, w[1].op)).or_insert(0usize) += 1;
        }
        let from = |a: OpKind| -> usize {
            pairs
                .iter()
                .filter(|((x, _), _)| *x == a)
                .map(|(_, n)| n)
                .sum()
        };
        assert_eq!(
            pairs
                .get(&(OpKind::Store, OpKind::Recall))
                .copied()
                .unwrap_or(0),
            from(OpKind::Store)
        );
        let rs = *pairs.get(&(OpKind::Recall, OpKind::Store)).unwrap() as f64
            / from(OpKind::Recall) as f64;
        assert!((rs - 0.5).abs() < 0.03, "{rs}");
        assert_eq!(
            pairs
                .get(&(OpKind::Search, OpKind::Store))
                .copied()
                .unwrap_or(0),
            from(OpKind::Search)
        );
    }

    #[test]
    fn correlated_recalls_follow_their_stores() {
        let p = plan("[operations]\nstore_weight = 1.0\nrecall_weight = 0\nembedding_search_weight = 0\n[correlation]\nprobability = 0.3\nmean_delay_ms = 50\n");
        let v: Vec<Request> = p.iter().collect();
        let stores: Vec<&Request> = v.iter().filter(|r| r.op == OpKind::Store).collect();
        let follows: Vec<&Request> = v.iter().filter(|r| r.follows.is_some()).collect();
        let share = follows.len() as f64 / stores.len() as f64;
        assert!((share - 0.3).abs() < 0.02, "{share}");
        let mut delays = Vec::new();
        for f in &follows {
            let s = v.iter().find(|r| r.index == f.follows.unwrap()).unwrap();
            assert_eq!((s.seed, s.cluster, s.space), (f.seed, f.cluster, f.space));
            delays.push((f.at_ns - s.at_ns) as f64 / 1e6);
        }
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!((mean - 50.0).abs() < 5.0, "mean delay {mean} ms");
    }

    #[test]
    fn shards_partition_the_schedule() {
        let p = plan("");
        let all: Vec<u64> = p.iter().map(|r| r.index).collect();
        let mut merged: Vec<u64> = (0..3)
            .flat_map(|i| p.iter().filter(move |r| r.index % 3 == i).map(|r| r.index))
            .collect();
        merged.sort_unstable();
        assert_eq!(merged, all);
    }
}
