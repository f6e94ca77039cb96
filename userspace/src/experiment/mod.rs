//! The one path from experiment to report:
//! discover → plan placement → run variants (interleaved, repeated) → measure →
//! statistics → report. Every `hwprof run NAME` goes through [`run`].

pub mod analysis;
pub mod c2c_matrix;
pub mod findings;
pub mod runner;
pub mod scaling;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::usage;
use crate::events::{self, catalog::Catalog, spec};
use crate::machine::{self, MachineProfile};
use crate::measure::timer::TimerKind;
use crate::measure::CounterPlan;
use crate::placement::{self, MemoryPolicy, Policy, Request};
use crate::report::{self, ExperimentInfo, Measurement, Report, RunSettings};
use crate::topology::TopologySource;

/// Everything `hwprof run` takes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub experiment: String,
    pub placement: placement::Request,
    pub duration: Option<f64>,
    pub repetitions: Option<usize>,
    pub warmup: Option<usize>,
    pub quick: bool,
    pub membind: Option<String>,
    /// `--events`: extra counters (perf names, event-map names, rNNNN, pmu/…/).
    pub events: Option<String>,
    /// `--probes`: eBPF probes on the experiment's own threads.
    pub probes: Option<String>,
    /// Write files only (the suite prints its own summary).
    pub quiet: bool,
    pub json: bool,
    pub out: Option<PathBuf>,
    pub plan_only: bool,
    pub topology: TopologySource,
    pub command: Vec<String>,
    /// Draw the run's progress bar under these (the suite's overall bar).
    pub progress: Option<indicatif::MultiProgress>,
}

/// Defaults: a full run, or `--quick` for CI and a first look.
fn settings(o: &RunOptions, quick: Option<(f64, usize)>) -> anyhow::Result<RunSettings> {
    let (d, r, w) = match (o.quick, quick) {
        (true, Some((d, r))) => (d, r, 1),
        (true, None) => (0.15, 7, 1),
        (false, _) => (0.5, 15, 2),
    };
    let duration = o.duration.unwrap_or(d);
    if !(duration.is_finite() && duration > 0.0) {
        return Err(usage(format!(
            "--duration must be a positive number of seconds, got {duration}"
        )));
    }
    if duration > 3600.0 {
        return Err(usage(
            "--duration is per repetition and variant; keep it under 3600 s",
        ));
    }
    let repetitions = o.repetitions.unwrap_or(r);
    if repetitions == 0 {
        return Err(usage("--repetitions must be at least 1"));
    }
    Ok(RunSettings {
        duration_s: duration,
        repetitions,
        warmup: o.warmup.unwrap_or(w),
        quick: o.quick,
        order: "interleaved (A B A B …) within each repetition".into(),
    })
}

/// Discover, plan, and either print the plan or run and report.
/// Returns the report (None for --plan-only), already printed/written.
pub fn run(o: &RunOptions, interrupted: Arc<AtomicBool>) -> anyhow::Result<Option<Report>> {
    let exp = hwprof_workloads::find(&o.experiment).ok_or_else(|| {
        usage(format!(
            "unknown experiment {:?}: available: {}",
            o.experiment,
            hwprof_workloads::registry()
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let settings = settings(o, exp.quick())?;

    let (profile, loaded) = machine::discover(&o.topology)?;
    let topo = &profile.topology;
    let facts = findings::machine_facts(topo);
    let variants = exp
        .variants(&facts)
        .map_err(|e| usage(format!("{}: {e}", exp.name())))?;
    let r = &o.placement;
    let plan = match &r.thread_sweep {
        Some(counts) => placement::plan_sweep(topo, exp.thread_shape(), r, counts)?,
        None if exp.sweeps_threads()
            && r.threads.is_none()
            && r.cpus.is_none()
            && r.pairs.is_none() =>
        {
            let n = topo.usable_cpus().len();
            let mut counts = placement::default_sweep(n);
            if r.oversubscribe {
                counts.push(2 * n);
            }
            match r.policy {
                Some(_) => placement::plan_sweep(topo, exp.thread_shape(), r, &counts)?,
                // Both policies; scatter groups only where they differ from compact.
                None => {
                    let compact = Request {
                        policy: Some(Policy::Compact),
                        ..r.clone()
                    };
                    let scatter = Request {
                        policy: Some(Policy::Scatter),
                        ..r.clone()
                    };
                    let mut p = placement::plan_sweep(topo, exp.thread_shape(), &compact, &counts)?;
                    let s = placement::plan_sweep(topo, exp.thread_shape(), &scatter, &counts)?;
                    let sorted = |v: &[usize]| {
                        let mut v = v.to_vec();
                        v.sort_unstable();
                        v
                    };
                    for g in s.groups {
                        if !p.groups.iter().any(|c| sorted(&c.cpus) == sorted(&g.cpus)) {
                            p.groups.push(g);
                        }
                    }
                    p.policy = "sweep (compact, scatter)".into();
                    p
                }
            }
        }
        None => placement::plan(topo, exp.thread_shape(), r)?,
    };
    let nodes: Vec<usize> = topo.numa.iter().map(|n| n.os_index).collect();
    let memory = match &o.membind {
        Some(m) => MemoryPolicy::parse(m, &nodes).map_err(usage)?,
        None => MemoryPolicy::FirstTouch,
    };

    // Every option is checked before anything runs, --plan-only included.
    let catalog = Catalog::builtin();
    let host_map = events::host_map(&catalog, &profile.cpu).ok();
    let encoding = events::host_encoding(&profile.cpu);
    let sysfs = std::path::Path::new("/sys/bus/event_source/devices");
    let user_events = match &o.events {
        Some(list) => spec::split_list(list)
            .iter()
            .map(|e| spec::parse(e, host_map, encoding, Some(sysfs)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| usage(format!("--events: {e}")))?,
        None => vec![],
    };
    let probe_kinds = match &o.probes {
        Some(p) => {
            crate::probes::ProbeKind::parse_list(p).map_err(|e| usage(format!("--probes: {e}")))?
        }
        None => vec![],
    };

    if o.plan_only {
        if o.json {
            println!(
                "{}",
                report::json::to_string(&serde_json::json!({
                    "experiment": exp.name(),
                    "topology": { "source": topo.source, "backend": topo.backend },
                    "placement": plan,
                    "memory": memory,
                    "variants": variants.iter().map(|v| serde_json::json!({
                        "name": v.name,
                        "memory": findings::variant_memory(v, &memory, &nodes),
                        "workers": v.workers,
                    })).collect::<Vec<_>>(),
                }))
            );
        } else {
            println!(
                "placement plan for {} on {} ({}):",
                exp.name(),
                topo.source,
                topo.backend
            );
            print!("{}", plan.render(topo));
            println!("memory: {memory}");
            println!("variants ({}, each run on every group):", variants.len());
            for v in &variants {
                let m = findings::variant_memory(v, &memory, &nodes);
                let w = v
                    .workers
                    .map_or(String::new(), |n| format!(", first {n} worker(s)"));
                println!("  {:<28} memory {m}{w}", v.name);
            }
        }
        return Ok(None);
    }
    if !o.topology.is_host() {
        return Err(usage(format!(
            "--topology {} describes another machine: it can be planned (--plan-only) but not run here",
            o.topology.describe()
        )));
    }
    let binder = crate::placement::bind::Binder::for_loaded(&loaded);
    let out_dir = o
        .out
        .as_deref()
        .map(|d| crate::output::prepare_dir("--out", d))
        .transpose()?;

    let caps = &profile.capabilities;
    let selection = events::select(&catalog, &profile.cpu, caps, exp.metrics(), user_events);
    let mut counters = CounterPlan::from_capabilities(caps);
    counters.extra = selection.events.clone();
    counters.group_limit = selection.group_limit;
    counters.fixed = selection.fixed.clone();
    if !caps.pmu_hardware && !selection.user_events.is_empty() {
        let hw: Vec<&str> = selection
            .user_events
            .iter()
            .filter(|e| e.source == crate::measure::Source::Pmu)
            .map(|e| e.label.as_str())
            .collect();
        if !hw.is_empty() {
            eprintln!(
                "hwprof: note: --events {} not counted: hardware counters unavailable on this machine",
                hw.join(",")
            );
        }
    }
    let lost: Vec<String> = caps.lost.iter().map(|l| l.line()).collect();
    for l in &caps.lost {
        if l.capability.contains("counters") {
            eprintln!("hwprof: note: {}", l.line());
        }
    }
    let timer = &profile.timer;
    let tsc_hz = (timer.kind == TimerKind::Tsc).then_some(timer.ticks_per_second);

    let total = plan.groups.len() * (settings.warmup + settings.repetitions) * variants.len();
    eprintln!(
        "hwprof: running {}: {} group(s) x {} variants x {} repetitions (+{} warm-up), about {:.0} s",
        exp.name(),
        plan.groups.len(),
        variants.len(),
        settings.repetitions,
        settings.warmup,
        total as f64 * settings.duration_s
    );
    let mut warnings = Vec::new();
    let probe_session = if probe_kinds.is_empty() {
        None
    } else {
        let opts = crate::probes::ProbeOptions {
            probes: probe_kinds,
            uprobes: vec![],
            frequency: 99,
        };
        match crate::probes::Session::start(&opts, &[]) {
            Ok(s) => Some(std::sync::Mutex::new(s)),
            Err(e) => {
                eprintln!("hwprof: note: --probes unavailable: {e}");
                warnings.push(format!("--probes unavailable: {e}"));
                None
            }
        }
    };
    let started_at = now();
    let probes_started = std::time::Instant::now();
    let ctx = runner::Context {
        timer,
        binder: binder.as_ref(),
        counters: &counters,
        duration: Duration::from_secs_f64(settings.duration_s),
        interrupted: &interrupted,
        probes: probe_session.as_ref(),
        watchdog: runner::WATCHDOG,
    };
    let bar = match &o.progress {
        Some(all) => all.add(ProgressBar::new(total as u64)),
        None => ProgressBar::new(total as u64),
    };
    if o.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(exp.name());

    let mut groups = Vec::new();
    'groups: for g in &plan.groups {
        let mut trials = Vec::new();
        for rep in 0..settings.warmup + settings.repetitions {
            for v in &variants {
                if interrupted.load(Ordering::Relaxed) {
                    groups.push(analysis::analyse_group(
                        exp, &variants, g, trials, caps, tsc_hz, &selection,
                    ));
                    break 'groups;
                }
                bar.set_message(format!("{} {}", g.label, v.name));
                let warm = rep < settings.warmup;
                let mem = findings::variant_memory(v, &memory, &nodes);
                let t = runner::run_trial(exp, v, &mem, &g.cpus, rep, warm, &ctx)?;
                // A window cut short by a signal is not a comparable repetition.
                if !t.cut_short {
                    trials.push(t);
                }
                bar.inc(1);
            }
        }
        let r = analysis::analyse_group(exp, &variants, g, trials, caps, tsc_hz, &selection);
        if r.off_cpu_samples > 0 {
            warnings.push(format!(
                "{}: workers were seen off their planned CPUs {} time(s): pinning did not hold",
                r.label, r.off_cpu_samples
            ));
        }
        groups.push(r);
    }
    bar.finish_and_clear();
    exp.release();
    let probes_report = probe_session.map(|m| {
        let mut s = m.into_inner().unwrap_or_else(|e| e.into_inner());
        s.collect(&crate::probes::CollectContext {
            topology: &profile.topology,
            pid: std::process::id(),
            duration_s: probes_started.elapsed().as_secs_f64(),
            profile_out: out_dir.as_deref(),
        })
    });
    if let Some(w) = vm_warning(&profile) {
        warnings.push(w);
    }

    let scaling = if exp.sweeps_threads() {
        scaling::analyse(&groups)
    } else {
        vec![]
    };
    let pair_matrix = if exp.thread_shape() == hwprof_workloads::ThreadShape::AllPairs {
        c2c_matrix::analyse(&groups)
    } else {
        None
    };
    if let Some(m) = &pair_matrix {
        warnings.extend(m.warnings.iter().cloned());
    }
    let found = exp.interpret(&facts, &findings::outcomes(&groups, topo));
    warnings.extend(found.warnings.iter().cloned());
    let plots = match &out_dir {
        Some(dir) => {
            // Pair-by-pair runs have one group per pair: the heatmap is their plot.
            let latency_groups: &[analysis::GroupResult] =
                if exp.thread_shape() == hwprof_workloads::ThreadShape::AllPairs {
                    &[]
                } else {
                    &groups
                };
            let mut files = write_plots(exp.name(), dir, latency_groups, &scaling, &mut warnings)?;
            if let Some(m) = &pair_matrix {
                match crate::report::plots::heatmap(
                    &dir.join("c2c-heatmap.svg"),
                    &format!(
                        "hwprof {}: one-way cache-line transfer latency (ns)",
                        exp.name()
                    ),
                    &m.pairs
                        .iter()
                        .map(|p| (p.cpus.0, p.cpus.1, p.one_way_ns))
                        .collect::<Vec<_>>(),
                ) {
                    Ok(_) => files.extend(["c2c-heatmap.svg".into(), "c2c-heatmap.png".into()]),
                    Err(e) if crate::output::is_write_error(&e) => return Err(e),
                    Err(e) => warnings.push(format!("plot not written: {e}")),
                }
            }
            findings::write_plots(&found, dir, &mut files, &mut warnings)?;
            files
        }
        None => vec![],
    };
    let cmp = exp.comparison();
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        experiment: ExperimentInfo {
            name: exp.name().into(),
            summary: exp.summary().into(),
            operation: exp.op_name().into(),
            variants: variants
                .iter()
                .map(|v| (v.name.to_string(), v.description.to_string()))
                .collect(),
            treatment: cmp.treatment.into(),
            baseline: cmp.baseline.into(),
            effect: cmp.effect.into(),
            notes: exp.notes(),
        },
        command: o.command.clone(),
        started_at,
        finished_at: now(),
        interrupted: interrupted.load(Ordering::Relaxed),
        settings,
        measurement: Measurement {
            fallback: counters.describe(),
            multiplexed: crate::events::schedule::multiplexed(&counters.groups()),
            counter_groups: counters
                .groups()
                .iter()
                .map(|g| g.iter().map(|e| e.label.clone()).collect())
                .collect(),
            events: selection,
            counters,
            lost,
            binding: binder
                .as_ref()
                .map_or("none".into(), |b| b.mechanism().to_string()),
            memory,
        },
        placement: plan,
        groups,
        probes: probes_report,
        scaling,
        pair_matrix,
        findings: (!found.is_empty()).then_some(found),
        plots,
        warnings,
        machine: profile,
    };
    if o.quiet {
        if let Some(dir) = out_dir.as_deref() {
            write_files(&report, dir)?;
        }
    } else {
        emit(&report, o.json, out_dir.as_deref())?;
    }
    Ok(Some(report))
}

/// SVG plots for the report: scaling curves with the USL fit (thread sweeps) and
/// latency percentiles per group (experiments that time operations).
fn write_plots(
    name: &str,
    dir: &std::path::Path,
    groups: &[analysis::GroupResult],
    scaling: &[scaling::ScalingSeries],
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<String>> {
    use crate::report::plots;
    let mut files = Vec::new();
    // A file that cannot be written fails the run; a plot that cannot be drawn
    // is a warning.
    let mut fatal: Option<anyhow::Error> = None;
    let mut keep = |r: anyhow::Result<Vec<std::path::PathBuf>>| match r {
        Ok(paths) => files.extend(
            paths
                .iter()
                .filter_map(|p| p.file_name())
                .map(|f| f.to_string_lossy().into_owned()),
        ),
        Err(e) if crate::output::is_write_error(&e) => {
            fatal.get_or_insert(e);
        }
        Err(e) => warnings.push(format!("plot not written: {e}")),
    };
    if !scaling.is_empty() {
        // A readable chart holds a handful of series: the first six (by variant order).
        const MAX_SERIES: usize = 6;
        let title = if scaling.len() > MAX_SERIES {
            format!("hwprof {name}: throughput vs threads, USL fit (first {MAX_SERIES} of {} series; all in report.json)", scaling.len())
        } else {
            format!("hwprof {name}: throughput vs threads, USL fit")
        };
        let series: Vec<plots::Series> = scaling
            .iter()
            .take(MAX_SERIES)
            .map(|s| plots::Series {
                name: format!("{} ({})", s.variant, s.policy),
                points: s
                    .points
                    .iter()
                    .map(|p| (p.threads as f64, p.ops_per_sec))
                    .collect(),
                fitted: s
                    .predicted
                    .iter()
                    .copied()
                    .take_while(|p| p.0 <= (4 * s.measured_max_threads).max(8) as f64)
                    .collect(),
            })
            .collect();
        keep(plots::scaling(&dir.join("scaling.svg"), &title, &series));
    }
    for g in groups {
        let lat: Vec<(String, f64, f64, f64)> = g
            .variants
            .iter()
            .filter_map(|v| {
                let m = |k: &str| {
                    v.metrics
                        .get(k)
                        .and_then(|m| m.summary.as_ref())
                        .map(|s| s.median)
                };
                Some((
                    v.name.clone(),
                    m("latency_p50_ns")?,
                    m("latency_p99_ns")?,
                    m("latency_p999_ns")?,
                ))
            })
            .collect();
        if !lat.is_empty() {
            let slug: String = g
                .label
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
                .split('-')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("-");
            let file = format!("latency-{slug}.svg");
            keep(plots::latency(
                &dir.join(file),
                &format!("hwprof {name} ({}): latency per operation", g.label),
                &lat,
            ));
        }
    }
    match fatal {
        Some(e) => Err(e),
        None => Ok(files),
    }
}

fn vm_warning(p: &MachineProfile) -> Option<String> {
    p.virtualization.as_ref().map(|v| {
        format!(
            "{v} guest: the topology is the one the hypervisor declares; vCPUs may share or \
             change physical cores without notice, so pair classes describe the guest's view"
        )
    })
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Print (table or JSON) and write --out files.
/// report.json and summary.md into `dir`.
pub fn write_files(report: &Report, dir: &std::path::Path) -> anyhow::Result<()> {
    crate::output::write_atomic(
        &dir.join("report.json"),
        report::json::to_string(report).as_bytes(),
    )?;
    crate::output::write_atomic(
        &dir.join("summary.md"),
        report::markdown::render(report).as_bytes(),
    )
}

pub fn emit(report: &Report, json: bool, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let text = report::json::to_string(report);
    if let Some(dir) = out {
        write_files(report, dir)?;
    }
    if json {
        println!("{text}");
    } else {
        print!("{}", report::table::render(report));
        if let Some(dir) = out {
            println!("\nwrote {0}/report.json and {0}/summary.md", dir.display());
        }
    }
    Ok(())
}
