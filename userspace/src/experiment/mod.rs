//! The experiment pipeline, one stage per module, output only at the edge:
//!
//! ```text
//! Host::discover ─▶ plan::plan ─▶ execute::execute ─▶ analysis::analyse ─▶ export (report/)
//!  (machine)        (RunPlan)      (raw trials)        (Report)             (files, terminal)
//! ```
//!
//! `hwprof run NAME` is [`run`]; `hwprof suite` discovers once and runs every
//! registered experiment's plan through the same stages ([`run_planned`]).

pub mod analysis;
pub mod c2c_matrix;
pub mod execute;
pub mod findings;
pub mod plan;
pub mod runner;
pub mod scaling;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::usage;
use crate::machine::{self, MachineProfile};
use crate::placement::{self, bind::Binder};
use crate::report::{self, Report};
use crate::topology::TopologySource;
pub use plan::RunPlan;

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

/// The machine, discovered once per command: its profile and, for this host,
/// the means to pin threads and bind memory.
pub struct Host {
    pub profile: MachineProfile,
    /// None for a topology read from a file (it can be planned, not run).
    pub binder: Option<Binder>,
    pub is_host: bool,
}

impl Host {
    pub fn discover(topology: &TopologySource) -> anyhow::Result<Host> {
        let (profile, loaded) = machine::discover(topology)?;
        Ok(Host {
            binder: Binder::for_loaded(&loaded),
            profile,
            is_host: topology.is_host(),
        })
    }

    /// What this machine cannot measure, each with its remedy: printed once per
    /// command, however many experiments it runs.
    pub fn notes(&self) -> Vec<String> {
        self.profile
            .capabilities
            .lost
            .iter()
            .filter(|l| l.capability.is_counters())
            .map(|l| l.line())
            .collect()
    }
}

/// `hwprof run`: discover, plan, and either print the plan or run, analyse and
/// export. Returns the report (None for --plan-only).
pub fn run(o: &RunOptions, interrupted: Arc<AtomicBool>) -> anyhow::Result<Option<Report>> {
    // The experiment's name is checked before the (slower) discovery.
    plan::find(&o.experiment)?;
    let host = Host::discover(&o.topology)?;
    let p = plan::plan(&host.profile, o)?;
    if o.plan_only {
        if o.json {
            println!("{}", report::json::to_string(&p.to_json(&host.profile)));
        } else {
            print!("{}", p.render(&host.profile));
        }
        return Ok(None);
    }
    let out_dir = prepare(&host, o)?;
    if !o.quiet {
        for n in host.notes() {
            eprintln!("hwprof: note: {n}");
        }
    }
    run_planned(&p, &host, o, out_dir.as_deref(), interrupted).map(Some)
}

/// Checks before running anything: this host, and a writable --out directory
/// (returned, created if needed).
pub fn prepare(host: &Host, o: &RunOptions) -> anyhow::Result<Option<PathBuf>> {
    if !host.is_host {
        return Err(usage(format!(
            "--topology {} describes another machine: it can be planned (--plan-only) but not run here",
            o.topology.describe()
        )));
    }
    o.out
        .as_deref()
        .map(|d| crate::output::prepare_dir("--out", d))
        .transpose()
}

/// Execute, analyse and export one plan on an already discovered host, into
/// `out_dir` (from [`prepare`]).
pub fn run_planned(
    p: &RunPlan,
    host: &Host,
    o: &RunOptions,
    out_dir: Option<&Path>,
    interrupted: Arc<AtomicBool>,
) -> anyhow::Result<Report> {
    for n in &p.notes {
        eprintln!("hwprof: note: {n}");
    }
    let name = p.experiment.name();
    let adaptive = p.settings.adaptive.map_or(String::new(), |a| {
        format!(
            ", then up to {:.0} s more on each group's headline comparison until it is conclusive",
            a.per_group_s * p.placement.groups.len() as f64
        )
    });
    eprintln!(
        "hwprof: running {name}: {} group(s) x {} variants x {} repetitions (+{} warm-up), about {:.0} s{adaptive}",
        p.placement.groups.len(),
        p.variants.len(),
        p.settings.repetitions,
        p.settings.warmup,
        p.trials() as f64 * p.settings.duration_s
    );
    let bar = progress_bar(o, name, p.trials() as u64);
    let executed = execute::execute(p, host, out_dir, &interrupted, &bar);
    bar.finish_and_clear();
    let executed = executed?;
    for w in &executed.warnings {
        if matches!(w, report::schema::Warning::ProbesUnavailable(_)) {
            eprintln!("hwprof: note: {w}");
        }
    }
    let binding = host
        .binder
        .as_ref()
        .map_or("none".into(), |b| b.mechanism().to_string());
    let mut r = analysis::analyse(p, &host.profile, binding, executed, o.command.clone());
    export(&mut r, o, out_dir)?;
    Ok(r)
}

fn progress_bar(o: &RunOptions, name: &str, total: u64) -> ProgressBar {
    let bar = match &o.progress {
        Some(all) => all.add(ProgressBar::new(total)),
        None => ProgressBar::new(total),
    };
    if o.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(name.to_string());
    bar
}

/// The edge: plots and files under --out, the table or JSON on stdout.
fn export(r: &mut Report, o: &RunOptions, out: Option<&Path>) -> anyhow::Result<()> {
    if let Some(dir) = out {
        report::plots::for_report(r, dir)?;
    }
    if o.quiet {
        if let Some(dir) = out {
            report::export::write_files(r, dir)?;
        }
        Ok(())
    } else {
        report::export::emit(r, o.json, out)
    }
}
