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
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("hwprof: error: {first}");
            return ExitCode::from(2);
        }
    };

    // SIGINT/SIGTERM end the run early; the report is still written. A second
    // signal exits at once.
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ =
            signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&interrupted));
        let _ = signal_hook::flag::register(sig, Arc::clone(&interrupted));
    }

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
        Command::List => {
            for e in hwprof_workloads::registry() {
                println!("{:<16} {}", e.name(), e.summary());
            }
        }
        Command::Info(a) => {
            let save_dir = a
                .save
                .as_deref()
                .map(report::output::prepare_dir)
                .transpose()?;
            let (profile, loaded) = machine::discover(&a.topology)?;
            let json = report::json::to_string(&profile);
            if let Some(dir) = save_dir {
                let stem = profile.slug();
                report::output::write_atomic(&dir.join(format!("{stem}.json")), json.as_bytes())?;
                if let Some(xml) = &loaded.xml {
                    report::output::write_atomic(&dir.join(format!("{stem}.xml")), xml.as_bytes())?;
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
            if a.threads == Some(0) {
                return Err(usage("--threads must be at least 1"));
            }
            let opts = RunOptions {
                experiment: a.experiment,
                placement: placement::Request {
                    threads: a.threads,
                    pairs: a.pairs.map(|p| p.0),
                    cpus: a.cpus.map(|c| c.0),
                    policy: a.placement,
                },
                duration: a.duration,
                repetitions: a.repetitions,
                warmup: a.warmup,
                quick: a.quick,
                membind: a.membind,
                events: a.events,
                json: a.json,
                out: a.out,
                plan_only: a.plan_only,
                topology: a.topology,
                command: std::env::args().collect(),
            };
            let report = experiment::run(&opts, interrupted)?;
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
        .find(|l| l.capability == "hardware counters")
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
