//! `hwprof run false-sharing-layout`: "does padding this struct pay?", asked of a
//! real two-field struct rather than of an array of counters. Two threads update
//! different fields of one shared `NodeStats` (thread 0 counts reads, thread 1
//! counts writes, as two request paths of a store would), laid out three ways:
//! as written (`#[repr(C)]`, fields adjacent), each field `#[repr(align(64))]`,
//! and each field in crossbeam's `CachePadded` (128 bytes on x86_64/aarch64,
//! covering the adjacent-line prefetcher that pulls lines in pairs).
//!
//! Updates run `false-sharing`'s kernel (a never-inlined relaxed `fetch_add` loop),
//! so the three layouts execute the same instructions; see that module for why.

use std::sync::atomic::AtomicU64;

use crossbeam_utils::CachePadded;

use crate::experiment::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, ThreadShape, Trial, Variant,
};
use crate::false_sharing::increment_batch;

/// The struct as it is usually written: both counters in 16 bytes.
#[repr(C)]
#[derive(Default)]
pub struct NodeStatsAsWritten {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
}

/// One 64-byte line per field: the usual hand fix.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Line64(pub AtomicU64);

#[repr(C)]
#[derive(Default)]
pub struct NodeStatsAligned64 {
    pub reads: Line64,
    pub writes: Line64,
}

#[repr(C)]
#[derive(Default)]
pub struct NodeStatsCachePadded {
    pub reads: CachePadded<AtomicU64>,
    pub writes: CachePadded<AtomicU64>,
}

/// The two fields of one layout, in the order workers take them.
trait TwoFields: Send + Sync {
    fn field(&self, i: usize) -> &AtomicU64;
}

impl TwoFields for NodeStatsAsWritten {
    fn field(&self, i: usize) -> &AtomicU64 {
        if i == 0 {
            &self.reads
        } else {
            &self.writes
        }
    }
}

impl TwoFields for NodeStatsAligned64 {
    fn field(&self, i: usize) -> &AtomicU64 {
        if i == 0 {
            &self.reads.0
        } else {
            &self.writes.0
        }
    }
}

impl TwoFields for NodeStatsCachePadded {
    fn field(&self, i: usize) -> &AtomicU64 {
        if i == 0 {
            &self.reads
        } else {
            &self.writes
        }
    }
}

/// One shared struct per pair of workers: workers 2k and 2k+1 share struct k, so
/// more threads mean more pairs, each contending only within itself.
struct Shared<T> {
    structs: Vec<Box<T>>,
}

impl<T: TwoFields + Default> Shared<T> {
    fn new(threads: usize) -> Self {
        Shared {
            structs: (0..threads.div_ceil(2).max(1))
                .map(|_| Box::default())
                .collect(),
        }
    }
}

impl<T: TwoFields> Trial for Shared<T> {
    fn run_batch(&self, worker: usize, _timer: &mut dyn OpTimer) -> u64 {
        increment_batch(self.structs[worker / 2].field(worker % 2))
    }
}

/// Byte distance between the two fields of each layout on this target.
pub fn field_distances() -> [(&'static str, usize, usize); 3] {
    fn gap<T: TwoFields + Default>() -> (usize, usize) {
        let s = T::default();
        let a = s.field(0) as *const AtomicU64 as usize;
        let b = s.field(1) as *const AtomicU64 as usize;
        (b - a, std::mem::size_of::<T>())
    }
    let (w, ws) = gap::<NodeStatsAsWritten>();
    let (a, as_) = gap::<NodeStatsAligned64>();
    let (p, ps) = gap::<NodeStatsCachePadded>();
    [
        ("as-written", w, ws),
        ("align64", a, as_),
        ("cache-padded", p, ps),
    ]
}

pub struct FalseSharingLayout;

const VARIANTS: [Variant; 3] = [
    Variant::new(
        "as-written",
        "#[repr(C)] struct { reads: AtomicU64, writes: AtomicU64 }: both fields in one line",
    ),
    Variant::new(
        "align64",
        "each field wrapped in a #[repr(align(64))] newtype",
    ),
    Variant::new("cache-padded", "each field in crossbeam_utils::CachePadded"),
];

const INFO: ExperimentInfo = ExperimentInfo {
    name: "false-sharing-layout",
    summary: "two threads update two fields of one struct: as written vs #[repr(align(64))] vs CachePadded",
    operation: "field update",
    thread_shape: ThreadShape::Pair,
    records_latency: false,
    sweeps_threads: false,
    quick: None,
    metrics: crate::false_sharing::FALSE_SHARING_METRICS,
};

impl Experiment for FalseSharingLayout {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn variants(&self, _machine: &MachineFacts) -> Result<Vec<Variant>, String> {
        Ok(VARIANTS.to_vec())
    }

    fn comparison(&self) -> Comparison {
        Comparison::slowdown("as-written", "align64")
    }

    fn comparisons(&self) -> Vec<Comparison> {
        vec![
            self.comparison(),
            Comparison::slowdown("as-written", "cache-padded"),
            // Whether the second line CachePadded adds buys anything over align(64)
            // (the adjacent-line prefetcher): ~1.0 means align(64) is enough.
            Comparison::slowdown("align64", "cache-padded"),
        ]
    }

    fn interpret(
        &self,
        _machine: &MachineFacts,
        groups: &[crate::findings::GroupOutcome],
    ) -> crate::findings::Findings {
        crate::false_sharing::slowdown_by_class(groups, "as-written", "align64")
    }

    fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = field_distances()
            .iter()
            .map(|(name, gap, size)| {
                format!("{name}: fields {gap} bytes apart, struct {size} bytes on this target")
            })
            .collect();
        notes.push(
            "update: relaxed fetch_add of the thread's own field (false-sharing's kernel); workers 2k and 2k+1 share struct k"
                .to_string(),
        );
        notes
    }

    fn prepare(&self, variant: &Variant, threads: usize) -> Box<dyn Trial> {
        let variant = variant.name.as_ref();
        match variant {
            "as-written" => Box::new(Shared::<NodeStatsAsWritten>::new(threads)),
            "align64" => Box::new(Shared::<NodeStatsAligned64>::new(threads)),
            "cache-padded" => Box::new(Shared::<NodeStatsCachePadded>::new(threads)),
            other => panic!("false-sharing-layout has no variant {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoTimer;
    use std::sync::atomic::Ordering;

    #[test]
    fn only_the_layout_as_written_shares_a_line() {
        let d = field_distances();
        assert_eq!(d[0].1, 8, "as written, the fields are adjacent");
        assert!(d[1].1 >= 64 && d[2].1 >= 64, "{d:?}");
        assert_eq!(d[1].1 % 64, 0);
        let s = NodeStatsAsWritten::default();
        let line = |p: &AtomicU64| p as *const AtomicU64 as usize / 64;
        assert_eq!(line(&s.reads), line(&s.writes));
    }

    #[test]
    fn each_worker_updates_its_own_field_of_its_pairs_struct() {
        let t = Shared::<NodeStatsAligned64>::new(4);
        assert_eq!(t.structs.len(), 2);
        assert_eq!(
            t.run_batch(1, &mut NoTimer),
            crate::false_sharing::INCREMENTS_PER_BATCH
        );
        assert_eq!(
            t.run_batch(2, &mut NoTimer),
            crate::false_sharing::INCREMENTS_PER_BATCH
        );
        assert_eq!(t.structs[0].reads.0.load(Ordering::Relaxed), 0);
        assert_eq!(
            t.structs[0].writes.0.load(Ordering::Relaxed),
            crate::false_sharing::INCREMENTS_PER_BATCH
        );
        assert_eq!(
            t.structs[1].reads.0.load(Ordering::Relaxed),
            crate::false_sharing::INCREMENTS_PER_BATCH
        );
        assert_eq!(t.structs[1].writes.0.load(Ordering::Relaxed), 0);
    }
}
