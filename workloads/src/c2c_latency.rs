//! `hwprof run c2c`: core-to-core cache-line transfer latency over every pair of
//! the selected CPUs. Two threads ping-pong one cache line with compare-and-swap:
//! worker 0 turns an even value odd, worker 1 turns it back; worker 0 times each
//! round trip, and one-way latency is half of it. Every repetition allocates a
//! fresh page, so no line left resident in a third cache skews a pair.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::experiment::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, ThreadShape, Trial, Variant,
};

const ROUNDS_PER_BATCH: u64 = 500;
/// Give up waiting for the partner after this many spins (it may have seen the
/// end of the window and stopped): the batch returns what it completed.
const MAX_SPINS: u64 = 2_000_000;
const PAGE: usize = 4096;

struct Line {
    ptr: *mut u8,
}

// SAFETY: the page is only accessed through the AtomicU64 at its start.
unsafe impl Send for Line {}
unsafe impl Sync for Line {}

impl Line {
    fn fresh() -> Line {
        // SAFETY: non-zero size, valid alignment.
        let ptr =
            unsafe { alloc_zeroed(Layout::from_size_align(PAGE, PAGE).expect("page layout")) };
        assert!(!ptr.is_null(), "out of memory allocating a page");
        Line { ptr }
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: page-aligned, zeroed, lives as long as self.
        unsafe { &*(self.ptr as *const AtomicU64) }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        // SAFETY: allocated in `fresh` with this layout.
        unsafe {
            dealloc(
                self.ptr,
                Layout::from_size_align(PAGE, PAGE).expect("page layout"),
            )
        };
    }
}

struct PingPong {
    line: Line,
}

impl PingPong {
    /// Wait until the word has `parity`, then advance it. False if the partner left.
    #[inline(always)]
    fn turn(&self, parity: u64) -> bool {
        let w = self.line.word();
        let mut spins = 0u64;
        loop {
            let v = w.load(Ordering::Acquire);
            if v & 1 == parity
                && w.compare_exchange(v, v + 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return true;
            }
            spins += 1;
            if spins > MAX_SPINS {
                return false;
            }
            std::hint::spin_loop();
        }
    }
}

impl Trial for PingPong {
    fn run_batch(&self, worker: usize, timer: &mut dyn OpTimer) -> u64 {
        let mut done = 0;
        for _ in 0..ROUNDS_PER_BATCH {
            if worker == 0 {
                let t = timer.start();
                // Ping, then wait for the pong to make the value even again.
                if !self.turn(0) {
                    break;
                }
                let w = self.line.word();
                let mut spins = 0u64;
                while w.load(Ordering::Acquire) & 1 == 1 {
                    spins += 1;
                    if spins > MAX_SPINS {
                        return done;
                    }
                    std::hint::spin_loop();
                }
                timer.stop(t);
                done += 1;
            } else if !self.turn(1) {
                break;
            }
        }
        // Only worker 0's round trips are operations.
        if worker == 0 {
            done
        } else {
            0
        }
    }
}

pub struct CoreToCore;

const VARIANTS: [Variant; 1] = [Variant::new(
    "cas-round-trip",
    "compare-and-swap ping-pong on one cache line of a fresh page",
)];

const INFO: ExperimentInfo = ExperimentInfo {
    name: "c2c",
    summary: "core-to-core cache-line transfer latency (CAS ping-pong) for every pair of CPUs, by pair class",
    operation: "round-trip",
    thread_shape: ThreadShape::AllPairs,
    records_latency: true,
    sweeps_threads: false,
    quick: Some((0.05, 7)),
    metrics: &[],
};

impl Experiment for CoreToCore {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn variants(&self, _machine: &MachineFacts) -> Result<Vec<Variant>, String> {
        Ok(VARIANTS.to_vec())
    }

    fn comparison(&self) -> Comparison {
        Comparison {
            treatment: "cas-round-trip",
            baseline: "cas-round-trip",
            effect: "none",
            target: None,
            on: Default::default(),
        }
    }

    fn comparisons(&self) -> Vec<Comparison> {
        // The result is the pair matrix (one-way latency per pair), not an A/B.
        vec![]
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "one-way latency = median round trip / 2 (worker 0 times each round trip; each includes one timer read)".into(),
            "a fresh 4 KiB page per repetition and pair".into(),
        ]
    }

    fn prepare(&self, _variant: &Variant, _threads: usize) -> Box<dyn Trial> {
        Box::new(PingPong {
            line: Line::fresh(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::NoTimer;

    #[test]
    fn two_threads_complete_round_trips() {
        let t = CoreToCore.prepare(&VARIANTS[0], 2);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| t.run_batch(0, &mut NoTimer));
            let b = s.spawn(|| t.run_batch(1, &mut NoTimer));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!((a, b), (ROUNDS_PER_BATCH, 0));
    }
}
