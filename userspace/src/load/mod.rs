//! `hwprof load`: open-loop, coordinated-omission-free load against an
//! Engram-compatible server (`hwprof serve`, or a live Engram), the embedded
//! memstore, or a no-op target (the generator's own ceiling).
//!
//! scenario (TOML) → plan (pattern, mix, correlation) → schedule (requests with
//! intended start times, deterministic from the seed, sharded by index) →
//! exec (in-process workers, or a dispatcher and HTTP connections) → record
//! (HdrHistograms per operation and window) → report (JSON in hwprof's schema,
//! Engram-compatible JSON, .hlog, plots, summary).

pub mod exec;
pub mod metrics;
pub mod output;
pub mod pattern;
pub mod ramp;
pub mod record;
pub mod recovery;
pub mod scenario;
pub mod schedule;
pub mod tails;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::usage;
use exec::{HttpSettings, HttpTarget, Live, Payloads, Target};
use record::Recorder;
use scenario::Scenario;
use schedule::Plan;

/// What `hwprof load` was asked for.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `embedded`, `noop` or `http://HOST:PORT`.
    pub target: String,
    pub scenario: Option<PathBuf>,
    pub duration: Option<f64>,
    pub rate: Option<f64>,
    pub pattern: Option<String>,
    pub seed: Option<u64>,
    pub connections: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub threads: Option<usize>,
    pub timeout: Option<f64>,
    /// Busy-wait window before each request (seconds; HTTP targets).
    pub spin: Option<f64>,
    pub interval: Option<f64>,
    pub shard: (u64, u64),
    pub preload: Option<u64>,
    pub target_pid: Option<u32>,
    /// eBPF probes on the target for the run (`sched,futex`, …).
    pub probes: Option<String>,
    pub cpus: Option<Vec<usize>>,
    pub json: bool,
    pub out: Option<PathBuf>,
    pub quiet: bool,
    pub command: Vec<String>,
    /// Serve the run's live metrics (OpenMetrics) at http://ADDR/metrics.
    pub metrics: Option<SocketAddr>,
    /// Previous runs' reports (or Engram results) exported as the baseline.
    pub baseline: Vec<PathBuf>,
    /// The baseline from the history instead: this scenario's latest runs on
    /// this machine (their reports), from the history database given.
    pub baseline_history: Option<String>,
}

/// Runs of the history taken as the baseline (`--baseline-history`).
pub const BASELINE_HISTORY_RUNS: usize = 5;

/// The latest [`BASELINE_HISTORY_RUNS`] reports of `scenario` on `machine`
/// recorded in the history, newest first, that still exist on disk.
fn baseline_reports_from_history(
    db: &str,
    scenario: &str,
    machine: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut store = crate::history::open(Some(db))?;
    let rows = store.query(&crate::history::Filter {
        scenario: Some(scenario.into()),
        machine: Some(machine.into()),
        metric: Some("p99".into()),
        ..Default::default()
    })?;
    let mut out: Vec<PathBuf> = Vec::new();
    for r in rows.iter().rev() {
        let p = PathBuf::from(&r.report);
        if p.is_file() && !out.contains(&p) {
            out.push(p);
        }
        if out.len() == BASELINE_HISTORY_RUNS {
            break;
        }
    }
    if out.is_empty() {
        return Err(usage(format!(
            "--baseline-history {db}: no runs of scenario {scenario:?} on {machine} with their reports still on disk \
             (record them with `hwprof history add`)"
        )));
    }
    Ok(out)
}

/// Schedule lag (dispatch − intended) above which the generator, not the
/// target, limited the run: well above the kernel's timer slack (50 µs) and
/// scheduling noise on a busy 2-vCPU guest, well below the latencies a
/// production tail is judged on.
pub const GENERATOR_LAG_LIMIT_MS: f64 = 1.0;

/// `i/N` for `--shard`.
pub fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected i/N, e.g. 0/2"))?;
    let n: u64 = crate::input::whole_number(n, "a shard count", 1, 1024)?;
    let i: u64 = crate::input::whole_number(i, "a shard index", 0, 1023)?;
    if i >= n {
        return Err(format!("{s:?}: shard index {i} is not below the count {n}"));
    }
    Ok((i, n))
}

/// The built-in scenario when none is given: constant 1000 req/s for 10 s,
/// Engram's default mix.
fn default_scenario() -> Scenario {
    scenario::parse(
        "name = \"constant\"\n[duration]\ntotal_seconds = 10\n[arrival]\npattern = \"constant\"\nrate = 1000\n",
        "(built in)",
    )
    .expect("the built-in scenario parses")
}

fn parse_target(t: &str) -> anyhow::Result<(&'static str, Option<HttpTarget>)> {
    match t {
        "embedded" => Ok(("embedded", None)),
        "noop" => Ok(("noop", None)),
        _ => {
            let rest = t.strip_prefix("http://").ok_or_else(|| {
                usage(format!(
                    "--target {t:?}: expected embedded, noop or http://HOST:PORT"
                ))
            })?;
            let hostport = rest.trim_end_matches('/');
            if hostport.contains('/') {
                return Err(usage(format!(
                    "--target {t:?}: give the server's root, http://HOST:PORT"
                )));
            }
            let with_port = if hostport.contains(':') {
                hostport.to_string()
            } else {
                format!("{hostport}:80")
            };
            let addr: SocketAddr = with_port
                .to_socket_addrs()
                .map_err(|e| usage(format!("--target {t:?}: cannot resolve: {e}")))?
                .next()
                .ok_or_else(|| usage(format!("--target {t:?}: no address")))?;
            Ok((
                "http",
                Some(HttpTarget {
                    addr,
                    host: hostport.to_string(),
                }),
            ))
        }
    }
}

/// Run a load test; writes what was asked (JSON on stdout, files in --out).
pub fn run(o: &LoadOptions, interrupted: Arc<AtomicBool>) -> anyhow::Result<output::LoadReport> {
    let mut sc = match &o.scenario {
        Some(p) => scenario::load(p)?,
        None => default_scenario(),
    };
    if let Some(p) = &o.pattern {
        if !matches!(p.as_str(), "constant" | "poisson") {
            return Err(usage(format!(
                "--pattern {p:?}: constant or poisson (other patterns live in scenario files)"
            )));
        }
        sc.arrival = scenario::Arrival {
            pattern: p.clone(),
            rate: Some(o.rate.or(sc.arrival.rate).unwrap_or(1000.0)),
            ..Default::default()
        };
    } else if let Some(r) = o.rate {
        if !matches!(sc.arrival.pattern.as_str(), "constant" | "poisson") {
            return Err(usage(format!(
                "--rate applies to constant or poisson arrivals; this scenario's pattern is {:?}",
                sc.arrival.pattern
            )));
        }
        sc.arrival.rate = Some(r);
    }
    if let Some(r) = o.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(usage(format!(
                "--rate {r}: must be a positive number of requests/s"
            )));
        }
    }
    let duration = o.duration.unwrap_or(sc.duration.total_seconds);
    sc.duration.total_seconds = duration;
    let seed = o.seed.or(sc.seed).unwrap_or(42);
    let (kind, http) = parse_target(&o.target)?;
    let plan = Plan::from_scenario(&sc, duration, seed);
    // Burst recovery is timed to the interval: a finer default where there are bursts.
    let default_interval = if plan.shape.bursts(duration).is_empty() {
        1.0
    } else {
        0.25
    };
    let interval = o
        .interval
        .or(sc.load.interval_sec)
        .unwrap_or(default_interval);
    let connections = o.connections.or(sc.load.connections).unwrap_or(16);
    let max_in_flight = o.max_in_flight.or(sc.load.max_in_flight).unwrap_or(10_000);
    if max_in_flight == 0 || connections == 0 {
        return Err(usage(
            "--connections and --max-in-flight must be at least 1",
        ));
    }
    let timeout = Duration::from_secs_f64(
        o.timeout
            .or(sc.load.timeout_ms.map(|m| m / 1000.0))
            .unwrap_or(10.0),
    );
    let clusters = sc.data.clusters();
    let sigma = sc
        .data
        .embedding_distribution
        .as_ref()
        .and_then(|d| d.std_dev)
        .unwrap_or(0.15) as f32;
    let mut baseline = o
        .baseline
        .iter()
        .map(|p| metrics::Baseline::load(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let payloads = Arc::new(Payloads::new(seed, clusters, sc.data.embedding_dim, sigma));
    let preload_nodes = o.preload.unwrap_or(sc.data.num_nodes);
    let mut warnings: Vec<String> = Vec::new();
    if sc.chaos.enabled {
        warnings.push(
            "[chaos] enabled: hwprof injects faults from the server side (hwprof serve --stall, \
             --error-rate, …); the scenario's chaos switch is recorded, not acted on"
                .into(),
        );
    }

    let (profile, loaded) = {
        let _d = crate::interrupt::Discovering::begin();
        crate::machine::discover(&crate::topology::TopologySource::Host)?
    };
    if let Some(db) = &o.baseline_history {
        for p in baseline_reports_from_history(db, &sc.name, &profile.slug())? {
            baseline.push(metrics::Baseline::load(&p)?);
        }
    }
    let out_dir = o
        .out
        .as_deref()
        .map(|d| crate::output::prepare_dir("--out", d))
        .transpose()?;

    // Generator placement: the first CPUs for the generator; an embedded or
    // loopback server gets the rest where there is a rest.
    let usable = profile.topology.usable_cpus();
    let gen_threads = o.threads.unwrap_or(match kind {
        "http" => usable.len().div_ceil(2).max(1),
        _ => 1,
    });
    let gen_cpus: Vec<usize> = match &o.cpus {
        Some(c) => c.clone(),
        None => usable.iter().copied().take(gen_threads).collect(),
    };
    let binder = crate::placement::bind::Binder::for_loaded(&loaded);

    // The target: built, preloaded, checked.
    // The HTTP client's runtime threads are pinned to the generator's CPUs, one each.
    let next_cpu = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (pin_binder, pin_cpus) = (binder.clone(), gen_cpus.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(gen_threads.max(1))
        .enable_all()
        .thread_name("hwprof-load-io")
        .on_thread_start(move || {
            if let Some(b) = pin_binder.as_ref() {
                if !pin_cpus.is_empty() {
                    let i = next_cpu.fetch_add(1, Ordering::Relaxed);
                    let _ = b.bind_current_thread(pin_cpus[i % pin_cpus.len()]);
                }
            }
        })
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the load runtime: {e}"))?;
    let mut preload = output::Preload::default();
    let target = match (kind, &http) {
        ("noop", _) => Target::Noop,
        ("embedded", _) => {
            let t0 = Instant::now();
            let bar = progress_bar(
                o.quiet,
                preload_nodes * u64::from(sc.data.memory_spaces),
                "preload",
            );
            let store = hwprof_workloads::memstore::MemStore::generate_with(
                hwprof_workloads::memstore::StoreConfig {
                    spaces: sc.data.memory_spaces,
                    nodes_per_space: preload_nodes.max(1),
                    dim: sc.data.embedding_dim,
                    clusters,
                    sigma,
                    seed,
                    ..Default::default()
                },
                &mut |done, _| bar.set_position(done),
            );
            bar.finish_and_clear();
            preload = output::Preload {
                nodes: store.total_len() as u64,
                seconds: t0.elapsed().as_secs_f64(),
                how: "generated in process".into(),
            };
            Target::Embedded(Arc::new(store))
        }
        (_, Some(h)) => {
            preload = preflight_and_preload(
                &rt,
                h,
                &payloads,
                &sc,
                preload_nodes,
                connections,
                timeout,
                o.quiet,
            )?;
            Target::Http(h.clone())
        }
        _ => unreachable!(),
    };
    let target_pid = o
        .target_pid
        .or_else(|| http.as_ref().and_then(|h| output::pid_listening_on(h.addr)));
    let shares_cpus = match (kind, target_pid) {
        ("embedded", _) | ("noop", _) => false,
        (_, Some(pid)) => {
            output::cpus_of_pid(pid).is_some_and(|c| c.iter().any(|x| gen_cpus.contains(x)))
        }
        _ => false,
    };
    if kind == "http" && target_pid.is_some() && usable.len() <= gen_cpus.len() {
        warnings.push(format!(
            "the generator ({} CPU(s)) and the target share this machine's {} CPU(s): what one uses the other cannot",
            gen_cpus.len(),
            usable.len()
        ));
    }

    // Probes on the target: an HTTP target's process (found or --target-pid), or
    // hwprof itself for an in-process target (its worker threads do the work).
    let probe_kinds = match &o.probes {
        Some(p) => {
            crate::probes::ProbeKind::parse_list(p).map_err(|e| usage(format!("--probes: {e}")))?
        }
        None => vec![],
    };
    let probe_pid = match kind {
        "http" => target_pid,
        _ => Some(std::process::id()),
    };
    let mut probe_session = None;
    if !probe_kinds.is_empty() {
        match probe_pid {
            None => warnings.push(
                "--probes: the target's process is unknown (not on loopback): give --target-pid"
                    .into(),
            ),
            Some(pid) => {
                let threads: Vec<(u32, u32)> =
                    threads_of(pid).into_iter().map(|t| (t, pid)).collect();
                let opts = crate::probes::ProbeOptions {
                    probes: probe_kinds.clone(),
                    uprobes: vec![],
                    frequency: 99,
                    cost: false,
                };
                match crate::probes::Session::start(&opts, &threads) {
                    Ok(s) => probe_session = Some((s, pid)),
                    Err(e) => {
                        if !o.quiet {
                            eprintln!("hwprof: note: --probes unavailable: {e}");
                        }
                        warnings.push(format!("--probes unavailable: {e}"));
                    }
                }
            }
        }
    }

    let interval_ns = (interval * 1e9) as u64;
    let live = Arc::new(Live::default());
    let stop = Arc::new(AtomicBool::new(false));
    let resources_before = target_pid.and_then(output::sample_process);
    let workers = match kind {
        "http" => 1,
        _ => gen_cpus.len().max(1),
    };
    // With the sched or futex probe on, every request's times are kept so the
    // slow ones can be lined up with the target's delays (tails::attribute).
    let streamed: Vec<u32> = probe_kinds
        .iter()
        .flat_map(|k| match k.name() {
            "sched" => vec![
                hwprof_probes_common::EVENT_RUNQ,
                hwprof_probes_common::EVENT_OFF_CPU,
                hwprof_probes_common::EVENT_MIGRATION,
            ],
            "futex" => vec![hwprof_probes_common::EVENT_FUTEX],
            _ => vec![],
        })
        .collect();
    let attribute = !streamed.is_empty()
        && probe_session
            .as_ref()
            .is_some_and(|(s, _)| s.streams_events());
    let recorders: Vec<Arc<Mutex<Recorder>>> = (0..workers)
        .map(|_| {
            let mut r = Recorder::new(interval_ns);
            r.keep_requests = attribute;
            Arc::new(Mutex::new(r))
        })
        .collect();
    // Live metrics read the run's own recorders at each scrape.
    let last_resources = Arc::new(Mutex::new(resources_before.clone()));
    let latest_probes = Arc::new(Mutex::new(None));
    let _exporter = match o.metrics {
        None => None,
        Some(addr) => {
            let reg = crate::metrics::registry();
            {
                let mut g = reg.write().unwrap_or_else(|e| e.into_inner());
                g.register_collector(Box::new(metrics::LoadCollector {
                    recorders: recorders.clone(),
                    live: Arc::clone(&live),
                    resources: Arc::clone(&last_resources),
                    baseline: baseline.clone(),
                    scenario: sc.name.clone(),
                    target: o.target.clone(),
                }));
                g.register_collector(Box::new(crate::metrics::references::References));
                if probe_session.is_some() {
                    g.register_collector(Box::new(crate::probes::metrics::ProbesCollector::new(
                        Arc::clone(&latest_probes),
                    )));
                }
            }
            crate::metrics::start_if(Some(addr), &reg, o.quiet)?
        }
    };
    if !o.quiet {
        eprintln!(
            "hwprof: load {} on {}: {} pattern, {:.0} s, seed {}, shard {}/{}{}",
            sc.name,
            o.target,
            sc.arrival.pattern,
            duration,
            seed,
            o.shard.0,
            o.shard.1,
            if kind == "http" {
                format!(", {connections} connections, max {max_in_flight} in flight")
            } else {
                format!(", {} worker thread(s)", workers)
            }
        );
    }
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let t0 = Instant::now();
    let t0_mono = crate::measure::monotonic_ns();
    let wall_start = std::time::SystemTime::now();
    let mut resources = Vec::new();
    let probe_session = probe_session.map(|(s, pid)| (Mutex::new(s), pid));
    let probe_session_ref = probe_session.as_ref();
    let result = std::thread::scope(|s| -> anyhow::Result<()> {
        // Progress and resource sampling, once per interval.
        let progress = s.spawn(|| {
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let mut samples = Vec::new();
            let mut last_print = Instant::now();
            let mut prev = (0u64, 0u64);
            loop {
                let tick = Duration::from_secs_f64(interval.min(1.0));
                let mut slept = Duration::ZERO;
                while slept < tick && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                    slept += Duration::from_millis(20);
                    if interrupted.load(Ordering::Relaxed) {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let el = t0.elapsed().as_secs_f64();
                if let Some(pid) = target_pid {
                    if let Some(r) = output::sample_process(pid) {
                        if let Ok(mut g) = last_resources.lock() {
                            *g = Some(r.clone());
                        }
                        samples.push((el, r));
                    }
                }
                // Threads the target started meanwhile are traced too.
                if let Some((sess, pid)) = probe_session_ref {
                    if let Ok(mut g) = sess.lock() {
                        for t in threads_of(*pid) {
                            g.track(t, *pid);
                        }
                        g.drain_events();
                        // The exporter's snapshot of the probes, once per interval.
                        if o.metrics.is_some() {
                            let snap = g.collect(&crate::probes::CollectContext {
                                topology: &profile.topology,
                                pid: *pid,
                                duration_s: el,
                                profile_out: None,
                            });
                            if let Ok(mut l) = latest_probes.lock() {
                                *l = Some(snap);
                            }
                        }
                    }
                }
                if o.quiet {
                    continue;
                }
                let off = live.offered.load(Ordering::Relaxed);
                let done = live.completed.load(Ordering::Relaxed);
                let dt = slept.as_secs_f64().max(1e-3);
                let p99 = last_window_p99(&recorders, (el / interval) as usize);
                let line = format!(
                    "hwprof: load {:>5.0}/{:.0} s  offered {:>8.0}/s  achieved {:>8.0}/s  p99 {}  errors {}  dropped {}",
                    el,
                    duration,
                    (off - prev.0) as f64 / dt,
                    (done - prev.1) as f64 / dt,
                    p99.map_or("   n/a".into(), |v| format!("{v:>6.2} ms")),
                    live.errors.load(Ordering::Relaxed),
                    live.dropped.load(Ordering::Relaxed),
                );
                prev = (off, done);
                if tty {
                    eprint!("\r{line}");
                } else if last_print.elapsed() >= Duration::from_secs(5) {
                    eprintln!("{line}");
                    last_print = Instant::now();
                }
            }
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !o.quiet {
                eprintln!();
            }
            samples
        });
        let pin = |w: usize| {
            if let (Some(b), Some(&cpu)) =
                (binder.as_ref(), gen_cpus.get(w % gen_cpus.len().max(1)))
            {
                let _ = b.bind_current_thread(cpu);
            }
            exec::precise_timers();
        };
        let r = match &target {
            Target::Http(h) => exec::run_http(
                &plan,
                h,
                Arc::clone(&payloads),
                o.shard,
                &HttpSettings {
                    spin: Duration::from_secs_f64(o.spin.unwrap_or(0.0)),
                    connections,
                    max_in_flight,
                    timeout,
                    threads: gen_threads,
                },
                &recorders[0],
                &live,
                t0,
                &stop,
                &pin,
            ),
            _ => exec::run_inline(
                &plan, &target, &payloads, o.shard, workers, &recorders, &live, t0, &stop, &pin,
            ),
        };
        stop.store(true, Ordering::Relaxed);
        resources = progress.join().unwrap_or_default();
        r
    });
    result?;
    let wall = t0.elapsed().as_secs_f64();
    let mut rec = Recorder::new(interval_ns);
    for r in &recorders {
        rec.merge(&r.lock().unwrap_or_else(|e| e.into_inner()));
    }
    let ended_by = if live.target_down.load(Ordering::Relaxed) {
        warnings.push(
            "the target stopped accepting connections: the run ended with what was gathered".into(),
        );
        "target-down"
    } else if interrupted.load(Ordering::Relaxed) {
        "signal"
    } else {
        "duration"
    };
    let report_topology = profile.topology.clone();
    let meta = output::Meta {
        scenario: sc.clone(),
        scenario_file: o.scenario.as_ref().map(|p| p.display().to_string()),
        target: o.target.clone(),
        target_kind: kind.to_string(),
        target_pid,
        command: o.command.clone(),
        started_at,
        wall_start,
        duration_s: duration,
        wall_s: wall,
        seed,
        shard: o.shard,
        connections: (kind == "http").then_some(connections),
        max_in_flight: (kind == "http").then_some(max_in_flight),
        generator_cpus: gen_cpus.clone(),
        shares_cpus_with_target: shares_cpus,
        interval_s: interval,
        interrupted: ended_by == "signal",
        ended_by: ended_by.into(),
        preload,
        in_flight_peak: live.in_flight_peak.load(Ordering::Relaxed),
        resources_before,
        resources_after: target_pid.and_then(output::sample_process),
        resource_timeline: resources,
        warnings,
        machine: Some(profile),
    };
    let mut report = output::build(&meta, &rec);
    let bursts = plan.shape.bursts(duration);
    if !bursts.is_empty() {
        let rule = recovery::RecoveryRule::default();
        report.recovery = Some(recovery::Recovery {
            bursts: recovery::analyse(&rec, &bursts, &rule),
            rule,
        });
    }
    if let Some((sess, pid)) = probe_session {
        let mut sess = sess.into_inner().unwrap_or_else(|e| e.into_inner());
        sess.drain_events();
        let p = sess.collect(&crate::probes::CollectContext {
            topology: &report_topology,
            pid,
            duration_s: wall,
            profile_out: out_dir.as_deref(),
        });
        if attribute {
            let (events, over) = sess.events();
            let lost = over + p.drops.get("events").copied().unwrap_or(0);
            report.attribution = tails::attribute(&rec.requests, events, &streamed, t0_mono, lost);
        }
        drop(sess);
        report.warnings.extend(p.warnings.iter().cloned());
        report.probes = serde_json::to_value(&p).ok();
    }
    output::emit(&report, &rec, o.json, out_dir.as_deref(), o.quiet)?;
    Ok(report)
}

use crate::probes::threads_of;

fn progress_bar(quiet: bool, total: u64, what: &str) -> indicatif::ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(total);
    b.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} nodes, {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b.set_message(what.to_string());
    b
}

fn last_window_p99(recorders: &[Arc<Mutex<Recorder>>], current: usize) -> Option<f64> {
    let w = current.checked_sub(1)?;
    let mut h = record::histogram();
    for r in recorders {
        let g = r.lock().ok()?;
        if let Some(win) = g.windows.get(w) {
            for x in win.latency.values() {
                let _ = h.add(x);
            }
        }
    }
    (h.len() > 0).then(|| h.value_at_quantile(0.99) as f64 / 1e6)
}

/// Check the target answers like Engram (health, and a recall of the
/// scenario's dimension), then bring it to `nodes` memories unless it holds
/// them already. Failures are bad input (exit 2), before the run.
#[allow(clippy::too_many_arguments)]
fn preflight_and_preload(
    rt: &tokio::runtime::Runtime,
    h: &HttpTarget,
    payloads: &Arc<Payloads>,
    sc: &Scenario,
    nodes: u64,
    connections: usize,
    timeout: Duration,
    quiet: bool,
) -> anyhow::Result<output::Preload> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let get = |path: &str| {
        hyper::Request::builder()
            .method("GET")
            .uri(path)
            .header("host", &h.host)
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let (status, body) = exec::one_request(rt, h.addr, get("/health"), Duration::from_secs(5))
        .map_err(|e| {
            usage(format!(
                "--target http://{}: {e} (is the server running?)",
                h.host
            ))
        })?;
    if status != 200 {
        return Err(usage(format!(
            "--target http://{}: GET /health answered {status}: not an Engram-compatible server",
            h.host
        )));
    }
    let held: u64 = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["memories"].as_u64())
        .unwrap_or(0);
    // The scenario's dimension must be the server's.
    let probe = schedule::Request {
        index: 0,
        at_ns: 0,
        op: schedule::OpKind::Recall,
        space: 0,
        cluster: 0,
        seed: 1,
        follows: None,
    };
    let (status, body) = exec::one_request(
        rt,
        h.addr,
        exec::http_request(&probe, payloads, &h.host),
        Duration::from_secs(5),
    )
    .map_err(|e| usage(format!("--target http://{}: recall: {e}", h.host)))?;
    if status == 400 || status == 422 {
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(body);
        return Err(usage(format!(
            "--target http://{}: rejects {}-d embeddings ([data] embedding_dim): {msg}",
            h.host, sc.data.embedding_dim
        )));
    }
    if held >= nodes {
        return Ok(output::Preload {
            nodes: held,
            seconds: 0.0,
            how: format!("the target already held {held} memories; none added"),
        });
    }
    let need = nodes - held;
    let t0 = Instant::now();
    let bar = progress_bar(quiet, need, "preload");
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let spaces = sc.data.memory_spaces;
    let clusters = sc.data.clusters();
    let tasks: Vec<_> = (0..connections.clamp(1, 16))
        .map(|_| {
            let (payloads, h, bar) = (Arc::clone(payloads), h.clone(), bar.clone());
            let (next, failures) = (Arc::clone(&next), Arc::clone(&failures));
            rt.spawn(async move {
                let Ok(mut s) = exec_connect(h.addr).await else {
                    failures.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= need {
                        break;
                    }
                    let r = schedule::Request {
                        index: u64::MAX - i,
                        at_ns: 0,
                        op: schedule::OpKind::Store,
                        space: (i % u64::from(spaces)) as u32,
                        cluster: (i % u64::from(clusters)) as u32,
                        seed: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        follows: None,
                    };
                    let req = exec::http_request(&r, &payloads, &h.host);
                    let ok = match tokio::time::timeout(timeout, s.send_request(req)).await {
                        Ok(Ok(resp)) => {
                            let good = resp.status().is_success();
                            let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                            good
                        }
                        _ => false,
                    };
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                        match exec_connect(h.addr).await {
                            Ok(n) => s = n,
                            Err(_) => return,
                        }
                    }
                    bar.inc(1);
                }
            })
        })
        .collect();
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
    bar.finish_and_clear();
    let failed = failures.load(Ordering::Relaxed);
    if failed > need / 10 + 1 {
        return Err(anyhow::anyhow!(
            "preload: {failed} of {need} stores to http://{} failed",
            h.host
        ));
    }
    Ok(output::Preload {
        nodes: held + need - failed,
        seconds: t0.elapsed().as_secs_f64(),
        how: format!("{need} stores over HTTP ({failed} failed) on top of {held} held"),
    })
}

async fn exec_connect(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>, ()> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|_| ())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|_| ())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
