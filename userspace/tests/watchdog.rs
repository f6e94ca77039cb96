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
    Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, ThreadShape, Trial, Variant,
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

const INFO: ExperimentInfo = ExperimentInfo {
    name: "stalling",
    summary: "test: one worker stalls",
    operation: "op",
    thread_shape: ThreadShape::Threads { default: 2 },
    records_latency: false,
    sweeps_threads: false,
    quick: None,
    metrics: &[],
};

impl Experiment for Stalling {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
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
fn a_worker_that_never_returns_fails_the_run_without_ending_the_process() {
    // The worker sleeps far longer than the test runs: before the runner's
    // workers were owned threads, this ended the whole process (exit 1).
    let err = run(
        &Stalling {
            stall: Duration::from_secs(3600),
        },
        Duration::from_millis(200),
    )
    .expect_err("the hung worker must fail the run");
    let stuck = err
        .downcast_ref::<hwprof::experiment::runner::StuckWorker>()
        .expect("a typed StuckWorker error");
    assert_eq!(stuck.worker, 1);
    assert_eq!(stuck.still_running, 1, "{stuck}");
    assert!(err.to_string().contains("left running"), "{err}");
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
