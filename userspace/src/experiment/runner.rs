//! Runs one trial: one variant of one experiment on one placement group, with
//! every worker pinned, counted and timed, for a fixed window.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hwprof_workloads::{Experiment, NoTimer, OpTimer, Trial, Variant};

use crate::measure::counters::ThreadCounters;
use crate::measure::cpu_time;
use crate::measure::timer::Timer;
use crate::measure::CounterPlan;
use crate::placement::bind::{current_cpu, Binder, MemoryPolicy};
pub use crate::report::schema::{LatencySummary, TrialResult, WorkerResult};

/// What every trial of a run shares.
pub struct Context<'a> {
    pub timer: &'a Timer,
    pub binder: Option<&'a Binder>,
    pub counters: &'a CounterPlan,
    pub duration: Duration,
    /// Set by SIGINT/SIGTERM: end the current window early and stop.
    pub interrupted: &'a AtomicBool,
    /// eBPF probes (`--probes`): each worker registers its thread before running.
    /// Shared (not borrowed) because workers are owned threads: see [`run_trial`].
    pub probes: Option<&'a Arc<Mutex<crate::probes::Session>>>,
    /// A worker whose operation count does not move for this long fails the run.
    pub watchdog: Duration,
}

/// The start line of a trial: every worker reports in, then all start together,
/// or, when a worker could not be started at all, all give up. (A `Barrier`
/// would wait forever for a thread that was never spawned.)
struct StartGate {
    state: Mutex<(usize, GateState)>,
    cv: Condvar,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GateState {
    Waiting,
    Go,
    Abort,
}

impl StartGate {
    fn new() -> Self {
        Self {
            state: Mutex::new((0, GateState::Waiting)),
            cv: Condvar::new(),
        }
    }

    /// A worker: report in and wait for the start. False: abandon the trial.
    fn arrive_and_wait(&self) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        self.cv.notify_all();
        while g.1 == GateState::Waiting {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        g.1 == GateState::Go
    }

    /// The coordinator: wait for `n` workers, then start them.
    fn start_when(&self, n: usize) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while g.0 < n {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        g.1 = GateState::Go;
        self.cv.notify_all();
    }

    fn abort(&self) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.1 = GateState::Abort;
        self.cv.notify_all();
    }
}

/// A worker made no progress (or did not end its batch) within the watchdog
/// period. The run is invalid; threads that never came back are left running
/// detached (`still_running`), so a caller that goes on measuring should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckWorker {
    pub message: String,
    pub worker: usize,
    /// Workers still not finished when the run gave up on them.
    pub still_running: usize,
}

impl std::fmt::Display for StuckWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if self.still_running > 0 {
            write!(
                f,
                " ({} worker thread(s) never returned and are left running)",
                self.still_running
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for StuckWorker {}

/// Default watchdog: no progress for 5 s.
pub const WATCHDOG: Duration = Duration::from_secs(5);

/// Times operations with the run's timer into an HdrHistogram (ns, 3 significant digits).
struct LatencyRecorder<'a> {
    timer: &'a Timer,
    hist: Histogram<u64>,
}

impl OpTimer for LatencyRecorder<'_> {
    #[inline(always)]
    fn start(&mut self) -> u64 {
        self.timer.now()
    }
    #[inline(always)]
    fn stop(&mut self, started: u64) {
        let ns = self
            .timer
            .ticks_to_ns(self.timer.now().wrapping_sub(started));
        self.hist.saturating_record(ns.round().max(1.0) as u64);
    }
}

impl TrialResult {
    /// Sum of a counter over workers, None if no worker has it.
    pub fn counter_sum(&self, name: &str) -> Option<(f64, f64)> {
        let mut total = 0.0;
        let mut min_running = 1.0f64;
        let mut found = false;
        for w in &self.workers {
            if let Some(r) = w.counters.iter().find(|r| r.name == name) {
                total += r.value;
                min_running = min_running.min(r.running_fraction());
                found = true;
            }
        }
        found.then_some((total, min_running))
    }
}

/// Run `variant` of `exp` with worker i on `cpus[i]`.
/// `memory` is where the trial's allocations go (the run's `--membind`, or the
/// variant's own node for NUMA experiments). A variant that runs fewer workers
/// than the group has uses the group's first CPUs.
pub fn run_trial(
    exp: &dyn Experiment,
    variant: &Variant,
    memory: &MemoryPolicy,
    cpus: &[usize],
    repetition: usize,
    warmup: bool,
    ctx: &Context<'_>,
) -> anyhow::Result<TrialResult> {
    let cpus = &cpus[..variant.workers.unwrap_or(cpus.len()).clamp(1, cpus.len())];
    // Allocate under the requested memory policy, on this thread, then restore.
    if let Some(b) = ctx.binder {
        b.bind_memory(memory)
            .map_err(|e| anyhow::anyhow!("memory policy: {e}"))?;
    }
    let trial = exp.prepare(variant, cpus.len());
    if let Some(b) = ctx.binder {
        b.reset_memory();
    }

    // Workers are owned threads, not scoped ones: a worker that hangs inside the
    // experiment's code cannot be joined, and a scope would hang the caller with
    // it. Everything a worker touches is shared by `Arc`, so a hung one can be
    // left behind (detached) while the run fails with a typed error.
    let trial: Arc<dyn Trial> = Arc::from(trial);
    let start = Arc::new(StartGate::new());
    let stop = Arc::new(AtomicBool::new(false));
    // Batches finished so far by each worker (a batch may legitimately do no
    // operation, e.g. an idle tenant; a stuck one never returns), and its kernel
    // thread id, for the watchdog's message.
    let progress: Arc<Vec<AtomicU64>> = Arc::new(cpus.iter().map(|_| Default::default()).collect());
    let tids: Arc<Vec<AtomicU32>> = Arc::new(cpus.iter().map(|_| Default::default()).collect());
    let records_latency = exp.records_latency();
    let mut stuck: Option<String> = None;
    let mut spawn_error: Option<String> = None;
    let mut handles = Vec::with_capacity(cpus.len());
    for (worker, &cpu) in cpus.iter().enumerate() {
        let (trial, start, stop) = (Arc::clone(&trial), Arc::clone(&start), Arc::clone(&stop));
        let (progress, tids) = (Arc::clone(&progress), Arc::clone(&tids));
        let binder = ctx.binder.cloned();
        let plan = ctx.counters.clone();
        let timer = ctx.timer.clone();
        let probes = ctx.probes.cloned();
        let spawned = std::thread::Builder::new()
            .name(format!("hwprof-w{worker}"))
            .spawn(move || -> anyhow::Result<WorkerResult> {
                let bound = match &binder {
                    Some(b) => b.bind_current_thread(cpu),
                    None => Ok(()),
                };
                tids[worker].store(crate::probes::gettid(), Ordering::Relaxed);
                let mut counters = ThreadCounters::open(&plan);
                if let Some(p) = &probes {
                    if let Ok(mut p) = p.lock() {
                        p.track(crate::probes::gettid(), std::process::id());
                    }
                }
                if bound.is_ok() {
                    trial.setup(worker);
                }
                // Report in even on failure so the coordinator is never left hanging.
                if !start.arrive_and_wait() {
                    anyhow::bail!("worker {worker}: trial abandoned");
                }
                bound.map_err(|e| anyhow::anyhow!("worker {worker}: {e}"))?;
                let mut r = WorkerResult {
                    worker,
                    planned_cpu: cpu,
                    ops: 0,
                    elapsed_ns: 0.0,
                    cpu_samples: 0,
                    off_cpu_samples: 0,
                    migrations_seen: 0,
                    counters: vec![],
                    cpu_time_ns: 0,
                    latency: None,
                };
                let mut last_cpu = current_cpu();
                let mut recorder = records_latency.then(|| LatencyRecorder {
                    timer: &timer,
                    // Fixed bounds (1 ns .. 60 s): `saturating_record` never resizes,
                    // and an auto-resizing histogram starts at a max of 2.
                    hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
                });
                counters.enable();
                let cpu0 = cpu_time::thread_cpu_ns();
                let t0 = timer.now();
                loop {
                    r.ops += match recorder.as_mut() {
                        Some(rec) => trial.run_batch(worker, rec),
                        None => trial.run_batch(worker, &mut NoTimer),
                    };
                    progress[worker].fetch_add(1, Ordering::Relaxed);
                    if let Some(c) = current_cpu() {
                        r.cpu_samples += 1;
                        if c != cpu {
                            r.off_cpu_samples += 1;
                        }
                        if last_cpu.is_some_and(|l| l != c) {
                            r.migrations_seen += 1;
                        }
                        last_cpu = Some(c);
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                let t1 = timer.now();
                r.cpu_time_ns = cpu_time::thread_cpu_ns().saturating_sub(cpu0);
                counters.disable();
                r.elapsed_ns = timer.ticks_to_ns(t1.wrapping_sub(t0));
                r.counters = counters.read();
                r.latency = recorder.map(|rec| rec.hist);
                Ok(r)
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                spawn_error = Some(format!(
                    "cannot start worker thread {} of {}: {} (the limit on processes and threads, ulimit -u, may be too low)",
                    worker + 1,
                    cpus.len(),
                    crate::input::io_reason(&e)
                ));
                break;
            }
        }
    }
    if let Some(msg) = spawn_error {
        // The threads that did start are released and joined; none measures.
        start.abort();
        for h in handles {
            let _ = h.join();
        }
        anyhow::bail!(msg);
    }
    let mut distinct: Vec<usize> = cpus.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    start.start_when(cpus.len());
    let busy_before = cpu_time::sample(&distinct);
    let began = Instant::now();
    let mut last: Vec<(u64, Instant)> = cpus.iter().map(|_| (0, began)).collect();
    let check = |last: &mut Vec<(u64, Instant)>| -> Option<(usize, String)> {
        for (w, p) in progress.iter().enumerate() {
            let now = p.load(Ordering::Relaxed);
            if now != last[w].0 {
                last[w] = (now, Instant::now());
            } else if last[w].1.elapsed() >= ctx.watchdog {
                return Some((
                    w,
                    format!(
                        "worker {w} (thread {}, CPU {}) made no progress for {:.1} s: stuck; the run is invalid",
                        tids[w].load(Ordering::Relaxed),
                        cpus[w],
                        ctx.watchdog.as_secs_f64()
                    ),
                ));
            }
        }
        None
    };
    let mut stuck_worker = None;
    while began.elapsed() < ctx.duration && !ctx.interrupted.load(Ordering::Relaxed) {
        let left = ctx.duration.saturating_sub(began.elapsed());
        std::thread::sleep(left.min(Duration::from_millis(20)));
        if let Some((w, msg)) = check(&mut last) {
            stuck_worker = Some(w);
            stuck = Some(msg);
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Every worker should finish its batch promptly now; one that does not
    // within the watchdog period is stuck.
    let grace = Instant::now();
    while !handles.iter().all(|h| h.is_finished()) && grace.elapsed() < ctx.watchdog {
        std::thread::sleep(Duration::from_millis(5));
    }
    if stuck.is_none() {
        if let Some(w) = handles.iter().position(|h| !h.is_finished()) {
            stuck_worker = Some(w);
            stuck = Some(format!(
                "worker {w} (thread {}, CPU {}) did not finish its batch within {:.1} s of the window's end: stuck; the run is invalid",
                tids[w].load(Ordering::Relaxed),
                cpus[w],
                ctx.watchdog.as_secs_f64()
            ));
        }
    }
    if let (Some(msg), Some(worker)) = (stuck, stuck_worker) {
        // A stalled worker may still come back: give it as long again.
        let deadline = Instant::now() + ctx.watchdog.max(Duration::from_secs(1)) * 2;
        while !handles.iter().all(|h| h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let still_running = handles.iter().filter(|h| !h.is_finished()).count();
        // Finished threads are joined; a hung one is left behind (its handle
        // dropped), holding only its own `Arc`s.
        for h in handles.into_iter().filter(|h| h.is_finished()) {
            let _ = h.join();
        }
        return Err(StuckWorker {
            message: msg,
            worker,
            still_running,
        }
        .into());
    }
    let results: Vec<anyhow::Result<WorkerResult>> = handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
        })
        .collect();
    let window_ns = began.elapsed().as_nanos() as u64;
    let busy_after = cpu_time::sample(&distinct);
    let workers = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let interference = busy_before.zip(busy_after).map(|(b, a)| {
        let own = workers.iter().map(|w| w.cpu_time_ns).sum();
        cpu_time::interference(b, a, distinct.len(), window_ns, own)
    });
    let latency = {
        let mut merged: Option<Histogram<u64>> = None;
        for h in workers.iter().filter_map(|w| w.latency.as_ref()) {
            match merged.as_mut() {
                Some(m) => {
                    let _ = m.add(h);
                }
                None => merged = Some(h.clone()),
            }
        }
        merged.filter(|h| !h.is_empty()).map(|h| LatencySummary {
            count: h.len(),
            p50_ns: h.value_at_quantile(0.5) as f64,
            p99_ns: h.value_at_quantile(0.99) as f64,
            p999_ns: h.value_at_quantile(0.999) as f64,
            max_ns: h.max() as f64,
        })
    };
    let ops = workers.iter().map(|w| w.ops).sum();
    let ops_per_sec = workers
        .iter()
        .filter(|w| w.elapsed_ns > 0.0)
        .map(|w| w.ops as f64 * 1e9 / w.elapsed_ns)
        .sum();
    Ok(TrialResult {
        variant: variant.name.to_string(),
        repetition,
        warmup,
        ops,
        ops_per_sec,
        workers,
        cut_short: ctx.interrupted.load(Ordering::Relaxed),
        latency,
        interference,
    })
}
