//! The runner's watchdog: a worker that stops making progress fails the run, and
//! the error names it.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hwprof::capabilities::Capabilities;
use hwprof::experiment::runner::{run_trial, Context};
use hwprof::measure::timer::Timer;
use hwprof::measure::CounterPlan;
use hwprof::placement::MemoryPolicy;
use hwprof_workloads::{
    Comparison, Experiment, MachineFacts, OpTimer, ThreadShape, Trial, Variant,
};

/// Worker 1 blocks for `stall` on its first batch; everyone else spins.
struct Stalling {
    stall: Duration,
}

struct StallTrial {
    stall: Duration,
    stalled: AtomicBool,
}

impl Trial for StallTrial {
    fn run_batch(&self, worker: usize, _t: &mut dyn OpTimer) -> u64 {
        if worker == 1
            && !self
                .stalled
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            std::thread::sleep(self.stall);
        }
        std::hint::black_box((0..1000u64).sum::<u64>());
        1
    }
}

impl Experiment for Stalling {
    fn name(&self) -> &'static str {
        "stalling"
    }
    fn summary(&self) -> &'static str {
        "test: one worker stalls"
    }
    fn variants(&self, _machine: &MachineFacts) -> Result<Vec<Variant>, String> {
        Ok(vec![Variant::new("only", "")])
    }
    fn comparison(&self) -> Comparison {
        Comparison {
            treatment: "only",
            baseline: "only",
            effect: "none",
            target: None,
            on: Default::default(),
        }
    }
    fn thread_shape(&self) -> ThreadShape {
        ThreadShape::Threads { default: 2 }
    }
    fn op_name(&self) -> &'static str {
        "op"
    }
    fn notes(&self) -> Vec<String> {
        vec![]
    }
    fn prepare(&self, _: &Variant, _: usize) -> Box<dyn Trial> {
        Box::new(StallTrial {
            stall: self.stall,
            stalled: AtomicBool::new(false),
        })
    }
}

fn run(exp: &Stalling, watchdog: Duration) -> anyhow::Result<()> {
    let timer = Timer::clock_gettime();
    let counters = CounterPlan::from_capabilities(&Capabilities::default());
    let interrupted = AtomicBool::new(false);
    let ctx = Context {
        timer: &timer,
        binder: None,
        counters: &counters,
        duration: Duration::from_millis(800),
        interrupted: &interrupted,
        probes: None,
        watchdog,
    };
    let only = Variant::new("only", "");
    run_trial(
        exp,
        &only,
        &MemoryPolicy::FirstTouch,
        &[0, 0],
        0,
        false,
        &ctx,
    )
    .map(|_| ())
}

#[test]
fn a_stuck_worker_fails_the_run_and_is_named() {
    let err = run(
        &Stalling {
            stall: Duration::from_millis(1500),
        },
        Duration::from_millis(300),
    )
    .expect_err("the stalled worker must fail the run");
    let msg = err.to_string();
    assert!(
        msg.contains("worker 1") && msg.contains("no progress"),
        "{msg}"
    );
}

#[test]
fn a_brief_pause_under_the_watchdog_is_fine() {
    run(
        &Stalling {
            stall: Duration::from_millis(50),
        },
        Duration::from_millis(500),
    )
    .unwrap();
}
