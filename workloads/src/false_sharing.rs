//! False sharing: threads increment their own counters, either packed into one
//! cache line or each on its own padded line.
//!
//! Each increment is a relaxed `fetch_add` (`lock xadd` on x86_64, `ldadd` or an
//! LL/SC loop on aarch64), the way concurrent counters are written. Both layouts
//! run one shared, never-inlined kernel, so they execute the same instructions and
//! differ only in the address. Two earlier choices measured the compiler, not the
//! cache: a relaxed load + store inlined per layout compiled to `incq (%rsi)` for
//! one layout and `incq (%rdi,%rsi,8)` for the other, and only the base-register
//! form got zero-latency store forwarding here (0.25 vs 1.8 ns, a 7.6x "slowdown"
//! that was not false sharing); with identical plain load + store code the store
//! buffer absorbs the line transfers (1.09x here). A locked RMW needs the line in
//! exclusive state for every operation, so each bounce is paid and seen.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::experiment::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, ThreadShape, Trial, Variant,
};
use crate::findings::{Chart, Curve, CurvePoint, Findings, GroupOutcome};

/// The slowdown of `treatment` against `baseline` per pair class and thread
/// count: one curve per class (the group label where there is no class) and one
/// verdict line each.
pub(crate) fn slowdown_by_class(
    groups: &[GroupOutcome],
    treatment: &str,
    baseline: &str,
) -> Findings {
    let mut curves: Vec<Curve> = Vec::new();
    for g in groups {
        let Some(r) = g
            .ratios
            .iter()
            .find(|r| r.treatment == treatment && r.baseline == baseline)
        else {
            continue;
        };
        let class = g.pair_class.clone().unwrap_or_else(|| g.label.clone());
        let point = CurvePoint {
            x: g.cpus.len() as f64,
            y: r.ratio,
        };
        match curves.iter_mut().find(|c| c.name == class) {
            Some(c) => c.points.push(point),
            None => curves.push(Curve {
                name: class,
                points: vec![point],
            }),
        }
    }
    let mut f = Findings::default();
    for c in &mut curves {
        c.points.sort_by(|a, b| a.x.total_cmp(&b.x));
        let pts: Vec<String> = c
            .points
            .iter()
            .map(|p| {
                format!(
                    "{} threads {:.2}x [{:.2}-{:.2}]",
                    p.x, p.y.median, p.y.lo, p.y.hi
                )
            })
            .collect();
        f.verdict.push(format!(
            "{}: {treatment} vs {baseline} slowdown {} [timer]",
            c.name,
            pts.join(", ")
        ));
    }
    if !curves.is_empty() {
        f.charts.push(Chart {
            id: "false-sharing-by-class".into(),
            title: format!("hwprof: {treatment} vs {baseline} slowdown by pair class and threads"),
            x_label: "threads".into(),
            y_label: format!("slowdown ({baseline} throughput / {treatment} throughput)"),
            x_bytes: false,
            log_x: false,
            log_y: false,
            curves,
            markers: vec![],
            secondary: None,
        });
    }
    f
}

/// Increments per batch: ~36 µs (padded, ~4.4 ns each here) to ~350 µs (packed,
/// ~43 ns) of work, so the runner's per-batch stop-flag and getcpu() checks
/// (~50 ns) cost well under 1% while a window still ends within a millisecond.
pub(crate) const INCREMENTS_PER_BATCH: u64 = 1 << 13;

/// Counters per line in the packed layout: 64-byte line / 8-byte counter.
const PACKED_SLOTS: usize = 8;

/// All counters in one 64-byte aligned line. With more threads than slots the
/// extra threads share lines with neighbours the same way.
#[repr(C, align(64))]
struct PackedLine([AtomicU64; PACKED_SLOTS]);

struct Packed {
    lines: Vec<PackedLine>,
}

struct Padded {
    counters: Vec<CachePadded<AtomicU64>>,
}

#[inline(never)]
pub(crate) fn increment_batch(counter: &AtomicU64) -> u64 {
    for _ in 0..INCREMENTS_PER_BATCH {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    INCREMENTS_PER_BATCH
}

impl Trial for Packed {
    fn run_batch(&self, worker: usize, _timer: &mut dyn OpTimer) -> u64 {
        let line = &self.lines[worker / PACKED_SLOTS];
        increment_batch(&line.0[worker % PACKED_SLOTS])
    }
}

impl Trial for Padded {
    fn run_batch(&self, worker: usize, _timer: &mut dyn OpTimer) -> u64 {
        increment_batch(&self.counters[worker])
    }
}

impl Packed {
    fn new(threads: usize) -> Self {
        let lines = threads.div_ceil(PACKED_SLOTS).max(1);
        Packed {
            lines: (0..lines)
                .map(|_| PackedLine(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }
}

impl Padded {
    fn new(threads: usize) -> Self {
        Padded {
            counters: (0..threads.max(1))
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        }
    }
}

/// Padding used by the `padded` variant, in bytes (crossbeam-utils' choice for the
/// target: 128 on x86_64 and aarch64, enough to defeat the adjacent-line prefetcher
/// that pulls lines in 128-byte pairs on Intel).
pub fn padded_stride_bytes() -> usize {
    std::mem::size_of::<CachePadded<AtomicU64>>()
}

/// Counter metrics for false-sharing experiments. HITM loads are the direct
/// signature of a line bouncing between writers.
pub(crate) const FALSE_SHARING_METRICS: &[&str] =
    &["hitm_loads_per_kilo_load", "l1d_miss_rate", "ipc"];

pub struct FalseSharing;

const VARIANTS: [Variant; 2] = [
    Variant::new("packed", "every thread's counter in one 64-byte cache line"),
    Variant::new(
        "padded",
        "each counter on its own line (crossbeam_utils::CachePadded)",
    ),
];

const INFO: ExperimentInfo = ExperimentInfo {
    name: "false-sharing",
    summary: "threads increment their own counters, packed in one cache line vs padded apart",
    operation: "increment",
    thread_shape: ThreadShape::PairSweep,
    records_latency: false,
    sweeps_threads: false,
    quick: None,
    metrics: FALSE_SHARING_METRICS,
};

impl Experiment for FalseSharing {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn variants(&self, _machine: &MachineFacts) -> Result<Vec<Variant>, String> {
        Ok(VARIANTS.to_vec())
    }

    fn comparison(&self) -> Comparison {
        Comparison::slowdown("packed", "padded")
    }

    fn interpret(&self, _machine: &MachineFacts, groups: &[GroupOutcome]) -> Findings {
        slowdown_by_class(groups, "packed", "padded")
    }

    fn notes(&self) -> Vec<String> {
        vec![
            format!("packed: {PACKED_SLOTS} x 8-byte counters in one 64-byte aligned line"),
            format!(
                "padded: crossbeam_utils::CachePadded, {} bytes per counter on this target",
                padded_stride_bytes()
            ),
            "increment: relaxed fetch_add of the thread's own counter, one never-inlined kernel for both layouts"
                .to_string(),
        ]
    }

    fn prepare(&self, variant: &Variant, threads: usize) -> Box<dyn Trial> {
        let variant = variant.name.as_ref();
        match variant {
            "packed" => Box::new(Packed::new(threads)),
            "padded" => Box::new(Padded::new(threads)),
            other => panic!("false-sharing has no variant {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_counters_share_one_line_and_padded_do_not() {
        let packed = Packed::new(2);
        let a = &packed.lines[0].0[0] as *const _ as usize;
        let b = &packed.lines[0].0[1] as *const _ as usize;
        assert_eq!(a / 64, b / 64, "packed counters must share a 64-byte line");

        let padded = Padded::new(2);
        let a = &*padded.counters[0] as *const _ as usize;
        let b = &*padded.counters[1] as *const _ as usize;
        assert!(b - a >= 128, "padded counters {} bytes apart", b - a);
        assert_eq!(a % 128, 0);
    }

    #[test]
    fn batches_count_every_increment() {
        let fs = FalseSharing;
        for v in fs.variants(&MachineFacts::default()).unwrap() {
            let trial = fs.prepare(&v, 3);
            let mut ops = 0;
            for w in 0..3 {
                ops += trial.run_batch(w, &mut crate::experiment::NoTimer);
                ops += trial.run_batch(w, &mut crate::experiment::NoTimer);
            }
            assert_eq!(ops, 6 * INCREMENTS_PER_BATCH, "variant {}", v.name);
        }
    }

    #[test]
    fn more_threads_than_slots_get_more_lines() {
        assert_eq!(Packed::new(9).lines.len(), 2);
        assert_eq!(Packed::new(8).lines.len(), 1);
    }
}
