//! The runner honours what a variant asks for: how many of the group's workers
//! run, and each worker's `setup` on its own thread before its first batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hwprof::capabilities::Capabilities;
use hwprof::experiment::runner::{run_trial, Context};
use hwprof::measure::timer::Timer;
use hwprof::measure::CounterPlan;
use hwprof::placement::MemoryPolicy;
use hwprof_workloads::{
    Comparison, Experiment, ExperimentInfo, MachineFacts, OpTimer, ThreadShape, Trial, Variant,
};

/// Records which workers were set up and ran, and whether any batch came first.
#[derive(Default)]
struct Log {
    setup: Mutex<Vec<usize>>,
    batches: [AtomicU64; 3],
    batch_before_setup: AtomicBool,
    /// A worker's setup saw another worker's batch already done: setup ran
    /// inside the window instead of before it.
    setup_after_start: AtomicBool,
}

struct Probe(&'static Log);

impl Trial for Probe {
    fn setup(&self, worker: usize) {
        // Later workers take longer to set up: were setup inside the window, worker
        // 0 would have run batches by the time worker 2 looks.
        std::thread::sleep(Duration::from_millis(15 * worker as u64));
        if self.0.batches.iter().any(|b| b.load(Ordering::Relaxed) > 0) {
            self.0.setup_after_start.store(true, Ordering::Relaxed);
        }
        self.0.setup.lock().unwrap().push(worker);
    }
    fn run_batch(&self, worker: usize, _t: &mut dyn OpTimer) -> u64 {
        if !self.0.setup.lock().unwrap().contains(&worker) {
            self.0.batch_before_setup.store(true, Ordering::Relaxed);
        }
        self.0.batches[worker].fetch_add(1, Ordering::Relaxed);
        std::hint::black_box((0..200u64).sum::<u64>());
        1
    }
}

struct Recording(&'static Log);

const INFO: ExperimentInfo = ExperimentInfo {
    name: "recording",
    summary: "test",
    operation: "op",
    thread_shape: ThreadShape::Threads { default: 3 },
    records_latency: false,
    sweeps_threads: false,
    quick: None,
    metrics: &[],
};

impl Experiment for Recording {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }
    fn variants(&self, _: &MachineFacts) -> Result<Vec<Variant>, String> {
        Ok(vec![])
    }
    fn comparison(&self) -> Comparison {
        Comparison::slowdown("a", "a")
    }
    fn notes(&self) -> Vec<String> {
        vec![]
    }
    fn prepare(&self, _: &Variant, threads: usize) -> Box<dyn Trial> {
        assert!(threads <= 3);
        Box::new(Probe(self.0))
    }
}

fn trial(log: &'static Log, variant: &Variant) -> usize {
    let timer = Timer::clock_gettime();
    let counters = CounterPlan::from_capabilities(&Capabilities::default());
    let interrupted = AtomicBool::new(false);
    let ctx = Context {
        timer: &timer,
        binder: None,
        counters: &counters,
        duration: Duration::from_millis(100),
        interrupted: &interrupted,
        probes: None,
        watchdog: Duration::from_secs(5),
    };
    let r = run_trial(
        &Recording(log),
        variant,
        &MemoryPolicy::FirstTouch,
        &[0, 0, 0],
        0,
        false,
        &ctx,
    )
    .unwrap();
    r.workers.len()
}

#[test]
fn a_variant_runs_only_the_workers_it_asks_for() {
    let log: &'static Log = Box::leak(Box::default());
    let mut one = Variant::new("a", "");
    one.workers = Some(1);
    assert_eq!(trial(log, &one), 1);
    assert_eq!(*log.setup.lock().unwrap(), [0]);
    assert!(log.batches[0].load(Ordering::Relaxed) > 0);
    assert_eq!(log.batches[1].load(Ordering::Relaxed), 0);
    assert_eq!(log.batches[2].load(Ordering::Relaxed), 0);
    assert!(!log.batch_before_setup.load(Ordering::Relaxed));

    let log: &'static Log = Box::leak(Box::default());
    assert_eq!(trial(log, &Variant::new("a", "")), 3);
    let mut set = log.setup.lock().unwrap().clone();
    set.sort();
    assert_eq!(set, [0, 1, 2], "every worker set up once");
    assert!(log.batches.iter().all(|b| b.load(Ordering::Relaxed) > 0));
    assert!(!log.batch_before_setup.load(Ordering::Relaxed));
    assert!(
        !log.setup_after_start.load(Ordering::Relaxed),
        "every setup finishes before any worker's first batch"
    );
}
