use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;

use hwprof::cli::{Cli, Command, EventsCommand};
use hwprof::error::{is_usage, usage};
use hwprof::experiment::{self, RunOptions};
use hwprof::{machine, placement, report};

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`hwprof info --json | head`), like other Unix tools.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A panic is a bug: say so in one line, no backtrace spew.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("hwprof: internal error: {msg}{at} (please report this bug)");
    }));

    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("hwprof: error: {}", hwprof::cli::one_line_error(&e));
            return ExitCode::from(2);
        }
    };

    // SIGINT/SIGTERM end the run early; the report is still written. A second
    // signal, or one during discovery, exits at once.
    let interrupted = hwprof::interrupt::install();

    match dispatch(cli, interrupted) {
        Ok(code) => code,
        Err(e) => {
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("hwprof: error: {msg}");
            if is_usage(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn dispatch(cli: Cli, interrupted: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Events(EventsCommand::List(a)) => events_list(a)?,
        Command::C2c(a) => return c2c(a, interrupted),
        Command::Suite(a) => {
            let r =
                hwprof::suite::run(a.quick, &a.out, a.json, a.metrics, Arc::clone(&interrupted))?;
            if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(ExitCode::from(130));
            }
            if r.experiments.iter().any(|e| e.status.is_failed()) {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Attach(a) => {
            let r = hwprof::attach::run(
                &hwprof::attach::AttachOptions {
                    targets: hwprof::attach::targets::TargetSpec {
                        pids: a.pid,
                        children: a.children,
                        cgroup: a.cgroup,
                        comm: a.comm,
                    },
                    probes: a.probes,
                    uprobes: a.uprobe,
                    duration: a.duration,
                    frequency: a.frequency,
                    probe_cost: a.probe_cost,
                    json: a.json,
                    out: a.out,
                    metrics: a.metrics,
                },
                &interrupted,
            )?;
            if r.interrupted {
                return Ok(ExitCode::from(130));
            }
        }
        Command::Serve(a) => return serve(a, interrupted),
        Command::Load(a) => return load(a, interrupted),
        Command::Gate(a) => return gate(a, interrupted),
        Command::Soak(a) => return soak(a, interrupted),
        Command::Scale(a) => {
            let r = hwprof::scale::run(
                &hwprof::scale::ScaleOptions {
                    sizes: a.sizes,
                    dim: a.dim,
                    rate: a.rate,
                    duration: a.duration,
                    max_throughput: !a.no_max_throughput,
                    slo_p99_ms: a.slo_p99,
                    spin: a.spin,
                    out: a.out,
                    json: a.json,
                },
                Arc::clone(&interrupted),
            )?;
            if a.json {
                println!("{}", hwprof::report::json::to_string(&r));
            } else {
                print!("{}", hwprof::scale::markdown(&r));
            }
            if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(ExitCode::from(130));
            }
        }
        Command::History(c) => history(c)?,
        Command::List => {
            for e in hwprof_workloads::registry() {
                println!("{:<22} {}", e.name(), e.summary());
            }
            println!("\nprobes (--probes NAME,… or all):");
            for p in hwprof::probes::PROBES {
                println!("{:<22} {}", p.name(), p.summary());
            }
        }
        Command::Info(a) => {
            let save_dir = a
                .save
                .as_deref()
                .map(|d| hwprof::output::prepare_dir("--save", d))
                .transpose()?;
            let (profile, loaded) = machine::discover(&a.topology)?;
            let json = report::json::to_string(&profile);
            if let Some(dir) = save_dir {
                let stem = profile.slug();
                hwprof::output::write_atomic(&dir.join(format!("{stem}.json")), json.as_bytes())?;
                if let Some(xml) = &loaded.xml {
                    hwprof::output::write_atomic(&dir.join(format!("{stem}.xml")), xml.as_bytes())?;
                }
                eprintln!(
                    "hwprof: saved {}/{stem}.json{}",
                    dir.display(),
                    if loaded.xml.is_some() {
                        " and .xml"
                    } else {
                        ""
                    }
                );
            }
            if a.json {
                println!("{json}");
            } else {
                print!("{}", report::table::render_info(&profile));
            }
        }
        Command::Run(a) => {
            let (threads, thread_sweep) = match a.threads.map(|t| t.0) {
                Some(v) if v.len() == 1 => (Some(v[0]), None),
                Some(v) => (None, Some(v)),
                None => (None, None),
            };
            let experiment = match (a.layout, a.experiment.as_str()) {
                (false, _) => a.experiment,
                (true, "false-sharing") => "false-sharing-layout".to_string(),
                (true, other) => {
                    return Err(hwprof::error::usage(format!(
                        "--layout applies to false-sharing only, not {other}"
                    )))
                }
            };
            let opts = RunOptions {
                progress: None,
                experiment,
                placement: placement::Request {
                    threads,
                    thread_sweep,
                    oversubscribe: a.oversubscribe,
                    pairs: a.pairs.and_then(|p| p.0),
                    cpus: a.cpus.map(|c| c.0),
                    policy: a.placement,
                },
                duration: a.duration,
                repetitions: a.repetitions,
                warmup: a.warmup,
                quick: a.quick,
                membind: a.membind,
                events: a.events,
                probes: a.probes,
                quiet: false,
                json: a.json,
                out: a.out,
                plan_only: a.plan_only,
                topology: a.topology,
                command: std::env::args().collect(),
            };
            // --metrics: the verdicts as gauges, served until scraped once.
            let verdicts = hwprof::metrics::verdicts::Verdicts::default();
            let exporter = verdicts.exporter(a.metrics, a.json)?;
            let report = experiment::run(&opts, Arc::clone(&interrupted))?;
            if let (Some(e), Some(r)) = (&exporter, &report) {
                verdicts.set(
                    &r.experiment.name,
                    hwprof::report::metrics::verdict_samples(r, &hwprof::metrics::machine_name()),
                );
                e.hold_for_one_scrape(std::time::Duration::from_secs(60), &interrupted);
            }
            if report.is_some_and(|r| r.interrupted) {
                eprintln!("hwprof: interrupted: partial report written");
                return Ok(ExitCode::from(130));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn events_list(a: hwprof::cli::EventsListArgs) -> anyhow::Result<()> {
    use hwprof::events::{catalog::Catalog, list};
    let catalog = Catalog::builtin();
    if let Some(name) = &a.microarch {
        let map = catalog.find(name).ok_or_else(|| {
            usage(format!(
                "--microarch {name:?}: no event map; available: {}",
                catalog.names().join(", ")
            ))
        })?;
        if a.json {
            println!(
                "{}",
                report::json::to_string(&list::map_json(&catalog, map))
            );
        } else {
            print!("{}", list::render_map(&catalog, map));
        }
        return Ok(());
    }
    // This machine: what its CPU is, whether hardware events count, which map.
    let cpu = hwprof::cpu::identify();
    let virt = hwprof::virt::detect();
    let caps = hwprof::capabilities::probe(virt.as_deref());
    let map = hwprof::events::host_map(&catalog, &cpu);
    let hw_reason = caps
        .lost
        .iter()
        .find(|l| l.capability == hwprof::capabilities::Capability::HardwareCounters)
        .map(|l| format!("{}; {}", l.reason, l.remedy));
    if a.json {
        let v = serde_json::json!({
            "cpu": cpu,
            "virtualization": virt,
            "hardware_events_available": caps.pmu_hardware,
            "reason": hw_reason,
            "software_events_available": caps.pmu_software,
            "map": map.as_ref().map(|m| list::map_json(&catalog, m)).ok(),
            "map_error": map.as_ref().err(),
            "maps": catalog.names(),
        });
        println!("{}", report::json::to_string(&v));
        return Ok(());
    }
    println!(
        "host CPU: {} ({}){}",
        cpu.model_name,
        cpu.microarchitecture
            .as_deref()
            .unwrap_or("unknown microarchitecture"),
        virt.as_deref()
            .map_or(String::new(), |v| format!(", {v} guest"))
    );
    match &hw_reason {
        Some(r) => println!("hardware events unavailable: {r}"),
        None => println!("hardware events: available"),
    }
    println!(
        "software events: {}",
        if caps.pmu_software {
            "available (task-clock, context-switches, cpu-migrations, page-faults)"
        } else {
            "unavailable"
        }
    );
    match map {
        Ok(m) => {
            if hw_reason.is_some() {
                println!("(the {} map below applies to this CPU, but its events cannot be counted here)\n", m.name);
            } else {
                println!();
            }
            print!("{}", list::render_map(&catalog, m));
        }
        Err(e) => println!("{e}; see one with --microarch NAME"),
    }
    Ok(())
}

fn c2c(a: hwprof::cli::C2cArgs, interrupted: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    use hwprof::c2c;
    if !(a.duration.is_finite() && a.duration > 0.0) {
        return Err(usage(format!(
            "--duration must be a positive number of seconds, got {}",
            a.duration
        )));
    }
    let modes = usize::from(a.pid.is_some())
        + usize::from(a.replay.is_some())
        + usize::from(!a.command.is_empty());
    if modes != 1 {
        return Err(usage(
            "c2c needs exactly one of --pid PID, --replay FILE or -- CMD ARGS",
        ));
    }
    let out_dir = a
        .out
        .as_deref()
        .map(|d| hwprof::output::prepare_dir("--out", d))
        .transpose()?;
    let line_bytes = 64;
    let r = if let Some(path) = &a.replay {
        let (header, samples) = c2c::read_recording(path)?;
        let sym = header.map(|h| {
            hwprof::symbols::Symbolizer::from_maps(hwprof::symbols::parse_maps(&h.maps), "/".into())
        });
        c2c::analyse(
            &samples,
            0,
            line_bytes,
            sym,
            format!("replay:{}", path.display()),
            "recorded process".into(),
            a.top,
        )
    } else {
        record_live(&a, line_bytes, &interrupted)?
    };
    report::export::emit(&r, a.json, out_dir.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(target_os = "linux")]
fn record_live(
    a: &hwprof::cli::C2cArgs,
    line_bytes: u64,
    interrupted: &AtomicBool,
) -> anyhow::Result<hwprof::c2c::C2cReport> {
    use hwprof::c2c::{self, perf_linux};
    if let Some(pid) = a.pid {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(usage(format!("--pid {pid}: no such process")));
        }
    }
    let virt = hwprof::virt::detect();
    let caps = hwprof::capabilities::probe(virt.as_deref());
    let mech = perf_linux::detect(&caps, virt.as_deref()).map_err(usage)?;
    let mut child = None;
    let pid = match a.pid {
        Some(p) => p,
        None => {
            let c = std::process::Command::new(&a.command[0])
                .args(&a.command[1..])
                .spawn()
                .map_err(|e| usage(format!("cannot run {:?}: {e}", a.command[0])))?;
            let id = c.id();
            child = Some(c);
            id
        }
    };
    let topo = hwprof::topology::load(&hwprof::topology::TopologySource::Host)?;
    let cpus = topo.model.usable_cpus();
    let mut sym = hwprof::symbols::Symbolizer::for_pid(pid).ok();
    let mut ticks = 0u32;
    let mut refresh = || {
        ticks += 1;
        if ticks % 100 == 0 {
            if let Ok(s) = hwprof::symbols::Symbolizer::for_pid(pid) {
                sym = Some(s);
            }
        }
    };
    let (samples, lost) = perf_linux::record(
        mech,
        pid,
        &cpus,
        std::time::Duration::from_secs_f64(a.duration),
        interrupted,
        &mut refresh,
    )
    .map_err(|e| anyhow::anyhow!("address sampling with {}: {e}", mech.name()))?;
    if let Ok(s) = hwprof::symbols::Symbolizer::for_pid(pid) {
        sym = Some(s);
    }
    if let Some(mut c) = child {
        let _ = c.wait();
    }
    if lost > 0 {
        eprintln!("hwprof: note: the kernel lost {lost} sample record(s) (ring buffer full); counts are lower bounds");
    }
    let target = a
        .pid
        .map_or_else(|| a.command.join(" "), |p| format!("pid {p}"));
    Ok(c2c::analyse(
        &samples,
        lost,
        line_bytes,
        sym,
        mech.name().to_string(),
        target,
        a.top,
    ))
}

#[cfg(not(target_os = "linux"))]
fn record_live(
    _: &hwprof::cli::C2cArgs,
    _: u64,
    _: &AtomicBool,
) -> anyhow::Result<hwprof::c2c::C2cReport> {
    Err(usage("address sampling needs PEBS/IBS/SPE through Linux perf; not available on this OS (use --replay)"))
}

fn serve(a: hwprof::cli::ServeArgs, interrupted: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    use hwprof::serve::{self, Faults, ServeOptions};
    let addr = match a.port {
        Some(p) => std::net::SocketAddr::from(([127, 0, 0, 1], p)),
        None => a.addr,
    };
    let opts = ServeOptions {
        addr,
        preload: a.preload,
        dim: a.dim,
        spaces: a.spaces,
        clusters: a.clusters,
        seed: a.seed,
        threads: a.threads,
        faults: Faults {
            stall: a.stall,
            slowdown_pct: a.slowdown.unwrap_or(0.0),
            leak_bytes_per_op: a.leak_bytes_per_op.unwrap_or(0),
            error_rate: a.error_rate.unwrap_or(0.0),
            global_lock: a.global_lock,
            after: std::time::Duration::from_secs_f64(a.faults_after.unwrap_or(0.0)),
        },
        metrics: a.metrics,
    };
    let bar = if a.preload > 0 && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let b = indicatif::ProgressBar::new(a.preload * u64::from(a.spaces));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "preload [{bar:40}] {pos}/{len} memories, {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (handle, preload) = {
        let _d = hwprof::interrupt::Discovering::begin();
        serve::start(&opts, Arc::clone(&stop), &mut |done, _| {
            bar.set_position(done)
        })?
    };
    bar.finish_and_clear();
    use std::io::Write;
    println!(
        "hwprof serve: listening on http://{} ({} memories in {} space(s), {}-d, preloaded in {:.2} s; faults: {})",
        handle.addr,
        a.preload * u64::from(a.spaces),
        a.spaces,
        a.dim,
        preload.as_secs_f64(),
        opts.faults.describe()
    );
    let _ = std::io::stdout().flush();
    while !interrupted.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    eprintln!(
        "hwprof serve: shutting down after {} requests",
        handle
            .state
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    handle.shutdown()?;
    Ok(ExitCode::SUCCESS)
}

fn load(a: hwprof::cli::LoadArgs, interrupted: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    use hwprof::load;
    if let Some(hwprof::cli::LoadCommand::Merge(m)) = a.merge {
        let out = m
            .out
            .as_deref()
            .map(|d| hwprof::output::prepare_dir("--out", d))
            .transpose()?;
        let (r, rec) = load::output::merge(&m.reports)?;
        load::output::emit(&r, &rec, m.json, out.as_deref(), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    let opts = load::LoadOptions {
        target: a.target,
        scenario: a.scenario,
        duration: a.duration,
        rate: a.rate,
        pattern: a.pattern,
        seed: a.seed,
        connections: a.connections,
        max_in_flight: a.max_in_flight,
        threads: a.threads,
        timeout: a.timeout,
        spin: a.spin,
        interval: a.interval,
        shard: a.shard.unwrap_or((0, 1)),
        preload: a.preload,
        target_pid: a.target_pid,
        probes: a.probes,
        cpus: a.cpus.map(|c| c.0),
        json: a.json,
        out: a.out,
        quiet: false,
        command: std::env::args().collect(),
        metrics: a.metrics,
        baseline: a.baseline,
        baseline_history: a.baseline_history,
    };
    if a.ramp {
        let d = load::ramp::RampOptions::default();
        let rep = load::ramp::run(
            &opts,
            &load::ramp::RampOptions {
                from: a.ramp_from.unwrap_or(d.from),
                factor: a.ramp_factor.unwrap_or(d.factor),
                step_s: a.ramp_step.unwrap_or(d.step_s),
                max_rate: a.ramp_max.unwrap_or(d.max_rate),
                slo_p99_ms: a.slo_p99.unwrap_or(d.slo_p99_ms),
                slo_error_rate: a.slo_errors.unwrap_or(d.slo_error_rate),
            },
            Arc::clone(&interrupted),
        )?;
        if a.json {
            println!("{}", hwprof::report::json::to_string(&rep));
        } else {
            print!("{}", load::ramp::markdown(&rep));
        }
        if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(ExitCode::from(130));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let r = load::run(&opts, Arc::clone(&interrupted))?;
    if r.interrupted {
        eprintln!("hwprof: interrupted: partial report written");
        return Ok(ExitCode::from(130));
    }
    if r.validation.iter().any(|c| !c.pass) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn soak(a: hwprof::cli::SoakArgs, interrupted: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    let r = hwprof::soak::run(
        &hwprof::soak::SoakOptions {
            target: a.target,
            serve_args: a
                .serve_args
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect(),
            target_pid: a.target_pid,
            scenario: a.scenario,
            rate: a.rate,
            duration: a.duration,
            interval: a.interval,
            checkpoint: a.checkpoint,
            warmup: a.warmup,
            seed: a.seed,
            leak_limit: a.leak_limit,
            drift_limit: a.drift_limit,
            out: a.out,
            resume: a.resume,
            baseline: a.baseline,
            analyse: a.analyse,
            json: a.json,
            quiet: false,
        },
        Arc::clone(&interrupted),
    )?;
    if r.status == "interrupted" {
        eprintln!("hwprof: interrupted: the soak so far is written (continue it with --resume)");
        return Ok(ExitCode::from(130));
    }
    if hwprof::soak::failed(&r) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn gate(a: hwprof::cli::GateArgs, interrupted: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    use hwprof::gate::{self, metric::MetricSpec, runner::Producer, Source};
    // Server repetitions discard their own warm-up load; whole warm-up runs are for --ab.
    let warmup_runs = if a.ab.is_some() { a.warmup_runs } else { 0 };
    let source = if let Some(ab) = a.ab {
        Source::Interleaved {
            a: Box::new(Producer::Command(ab[0].clone())),
            b: Box::new(Producer::Command(ab[1].clone())),
        }
    } else if let (Some(baseline), Some(current)) = (a.baseline, a.current) {
        Source::Dirs { baseline, current }
    } else {
        let load_args: Vec<String> = a
            .load_args
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect();
        let server = |command: String| Producer::Server {
            command,
            scenario: a.scenario.clone().expect("clap requires --scenario"),
            warmup: a.warmup,
            load_args: load_args.clone(),
        };
        Source::Interleaved {
            a: Box::new(server(a.server_a.expect("clap's group requires a mode"))),
            b: Box::new(server(a.server_b.expect("clap requires --server-b"))),
        }
    };
    let names: Vec<String> = if a.metric.is_empty() {
        gate::metric::DEFAULT_METRICS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        a.metric
    };
    let metrics = names
        .iter()
        .map(|m| MetricSpec::parse(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let threshold = a
        .threshold
        .unwrap_or(if a.competitive { 10.0 } else { 5.0 })
        / 100.0;
    let r = gate::run(
        &gate::GateOptions {
            source,
            metrics,
            repetitions: a.repetitions,
            min_repetitions: a.min_repetitions,
            budget: a.budget,
            threshold,
            alpha: a.alpha,
            warmup_runs,
            out: a.out,
            json: a.json,
            quiet: a.quiet,
            names: (a.name_a, a.name_b),
            command: std::env::args().collect(),
            metrics_addr: a.metrics,
        },
        Arc::clone(&interrupted),
    )?;
    if r.interrupted {
        eprintln!("hwprof: interrupted: the gate's outputs hold the runs made");
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::from(r.exit_code))
}

fn history(c: hwprof::cli::HistoryCommand) -> anyhow::Result<()> {
    use hwprof::cli::{HistoryCommand as H, SeriesFilter};
    use hwprof::history;
    let filter = |f: SeriesFilter| history::Filter {
        machine: f.machine,
        scenario: f.scenario,
        metric: f.metric,
        branch: f.branch,
    };
    match c {
        H::Add {
            reports,
            commit,
            branch,
            machine,
            scenario,
            db,
        } => {
            let machine = history::machine_flag(machine.as_deref())?;
            let (commit, branch) = history::commit_and_branch(commit, branch);
            let mut store = history::open(db.history.as_deref())?;
            let ctx = history::RowContext {
                commit,
                branch,
                machine,
                scenario,
            };
            let (rows, added) = history::add(store.as_mut(), &reports, &ctx)?;
            eprintln!(
                "hwprof: {added} new row(s) of {rows} from {} report(s) at commit {} into {}",
                reports.len(),
                ctx.commit,
                store.location()
            );
        }
        H::Show {
            filter: f,
            out,
            json,
            db,
        } => {
            let mut store = history::open(db.history.as_deref())?;
            let rows = store.query(&filter(f))?;
            print!("{}", history::show(rows, out.as_deref(), json)?);
        }
        H::Changes {
            filter: f,
            significance,
            min_size,
            json,
            db,
        } => {
            let mut store = history::open(db.history.as_deref())?;
            let series = history::series_of(store.query(&filter(f))?);
            let settings = hwprof::stats::changepoint::Settings {
                significance,
                min_size,
                ..Default::default()
            };
            let cs = history::changes(&series, settings);
            if json {
                println!("{}", report::json::to_string(&cs));
            } else {
                print!("{}", history::render_changes(&cs, series.len()));
            }
        }
        H::Compare {
            competitor,
            scenario,
            machine,
            json,
            db,
        } => {
            let r = history::compare::reference(&competitor)?;
            let mut store = history::open(db.history.as_deref())?;
            let rows = store.query(&history::Filter {
                scenario: Some(scenario.clone()),
                machine: machine.clone(),
                ..Default::default()
            })?;
            // Default machine: the one that recorded the scenario last.
            let machine = machine
                .or_else(|| rows.last().map(|r| r.machine.clone()))
                .ok_or_else(|| {
                    usage(format!(
                        "history compare: no rows for scenario {scenario:?}"
                    ))
                })?;
            let rows: Vec<_> = rows.into_iter().filter(|r| r.machine == machine).collect();
            let c = history::compare::compare(&r, &scenario, &machine, &rows)?;
            if json {
                println!("{}", report::json::to_string(&c));
            } else {
                print!("{}", history::compare::render(&c));
            }
        }
    }
    Ok(())
}
