//! `hwprof suite`: every registered experiment in turn on one discovered host,
//! one combined report — JSON, Markdown and a static HTML index with every
//! verdict and plot — plus the machine profile. A new experiment joins by
//! registering in workloads, nothing else. After the experiments, the server
//! checks (`server.rs`): a short soak, a burst run and a ramp against an
//! `hwprof serve` started for each.

pub mod server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::experiment::{self, runner::StuckWorker, Host, RunOptions};
pub use crate::report::schema::{EntryStatus, SuiteEntry, SuiteReport};
use crate::report::{self, Report};
use crate::topology::TopologySource;

fn failed_entry(
    exp: &dyn hwprof_workloads::Experiment,
    status: EntryStatus,
    seconds: f64,
) -> SuiteEntry {
    SuiteEntry {
        experiment: exp.name().into(),
        summary: exp.summary().into(),
        status,
        seconds,
        headline: None,
        look_at: vec![],
        verdicts: vec![],
        warnings: vec![],
        report: None,
        plots: vec![],
    }
}

/// The headline: the first conclusive headline comparison of any group (else
/// the first), else the pair matrix's verdict, else the first finding.
fn headline(r: &Report) -> Option<String> {
    let heads: Vec<&crate::report::schema::GroupResult> =
        r.groups.iter().filter(|g| g.comparison.is_some()).collect();
    let pick = heads
        .iter()
        .find(|g| g.comparison.as_ref().is_some_and(|c| c.verdict.conclusive))
        .or(heads.first());
    if let Some(g) = pick {
        let c = g.comparison.as_ref()?;
        // An answer still open after the adaptive rounds says what was tried.
        let rounds = g
            .headline_rounds
            .filter(|h| !c.verdict.conclusive && h.rounds > 0)
            .map_or(String::new(), |h| format!(" ({h})"));
        return Some(format!("{}: {}{rounds}", g.label, c.verdict.text));
    }
    if let Some(m) = &r.pair_matrix {
        return Some(m.verdict.clone());
    }
    r.findings.as_ref().and_then(|f| f.verdict.first().cloned())
}

/// What to look at, ranked: what bends every figure first, then the
/// experiment's findings, then comparisons that miss their target.
fn look_at(r: &Report) -> Vec<String> {
    use crate::report::schema::Warning;
    use crate::stats::verdict::Outcome;
    let mut v: Vec<String> = r
        .warnings
        .iter()
        .filter(|w| {
            matches!(
                w,
                Warning::NotQuiet { .. } | Warning::PinningDidNotHold { .. }
            )
        })
        .map(|w| w.to_string())
        .collect();
    if let Some(f) = &r.findings {
        v.extend(f.verdict.iter().cloned());
    }
    for g in &r.groups {
        for c in &g.comparisons {
            if c.verdict.outcome == Outcome::MissesTarget {
                v.push(format!("{}: {}", g.label, c.verdict.text));
            }
        }
    }
    v
}

fn entry_from(name: &str, summary: &str, r: &Report, seconds: f64) -> SuiteEntry {
    let mut verdicts: Vec<(String, String)> = r
        .groups
        .iter()
        .flat_map(|g| {
            g.comparisons
                .iter()
                .map(move |c| (g.label.clone(), c.verdict.text.clone()))
        })
        .collect();
    if let Some(m) = &r.pair_matrix {
        verdicts.push(("all pairs".into(), m.verdict.clone()));
    }
    if let Some(f) = &r.findings {
        verdicts.extend(f.verdict.iter().map(|v| ("finding".to_string(), v.clone())));
    }
    SuiteEntry {
        experiment: name.into(),
        summary: summary.into(),
        status: if r.interrupted {
            EntryStatus::Interrupted
        } else {
            EntryStatus::Ok
        },
        seconds,
        headline: headline(r),
        look_at: look_at(r),
        verdicts,
        warnings: r.warnings.clone(),
        report: Some(format!("{name}/report.json")),
        plots: r.plots.iter().map(|p| format!("{name}/{p}")).collect(),
    }
}

/// Run the suite into `out` (required: the HTML index lives there).
pub fn run(
    quick: bool,
    out: &Path,
    json: bool,
    metrics: Option<std::net::SocketAddr>,
    interrupted: Arc<AtomicBool>,
) -> anyhow::Result<SuiteReport> {
    let out = crate::output::prepare_dir("--out", out)?;
    // --metrics: each experiment's verdicts as gauges as soon as it finishes.
    let verdicts = crate::metrics::verdicts::Verdicts::default();
    let machine_name = crate::metrics::machine_name();
    let exporter = verdicts.exporter(metrics, json)?;
    let started = std::time::Instant::now();
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // One discovery (topology, capabilities, timer calibration) for every
    // experiment, and its notes printed once.
    let host = Host::discover(&TopologySource::Host)?;
    for n in host.notes() {
        eprintln!("hwprof: note: {n}");
    }
    let registry = hwprof_workloads::registry();
    let mut entries = Vec::new();
    // One bar for the suite (which experiment, how many done) and, under it, the
    // running experiment's own (variants x repetitions). Hidden off a terminal.
    let bars = indicatif::MultiProgress::new();
    if json {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let overall = bars.add(indicatif::ProgressBar::new(registry.len() as u64));
    overall.set_style(
        indicatif::ProgressStyle::with_template(
            "suite [{bar:30}] {pos}/{len} experiments, {elapsed} {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    // Set when an experiment left a hung worker behind: what runs after it
    // would share the CPU with that thread, so nothing more is measured.
    let mut left_running: Option<String> = None;
    for (i, exp) in registry.iter().enumerate() {
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        if let Some(why) = &left_running {
            entries.push(failed_entry(*exp, EntryStatus::NotRun(why.clone()), 0.0));
            continue;
        }
        overall.set_message(exp.name());
        let line = format!(
            "hwprof suite: [{}/{}] {} — {}",
            i + 1,
            registry.len(),
            exp.name(),
            exp.summary()
        );
        if bars.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = bars.println(line);
        }
        let dir: PathBuf = out.join(exp.name());
        let t = std::time::Instant::now();
        // Tests shrink every window to check the plumbing quickly.
        let test_duration = std::env::var("HWPROF_SUITE_TEST_DURATION")
            .ok()
            .and_then(|d| d.parse::<f64>().ok());
        let opts = RunOptions {
            experiment: exp.name().into(),
            placement: Default::default(),
            duration: test_duration,
            repetitions: test_duration.map(|_| 3),
            warmup: None,
            quick,
            membind: None,
            events: None,
            probes: None,
            quiet: true,
            json: false,
            out: Some(dir),
            plan_only: false,
            topology: TopologySource::Host,
            command: std::env::args().collect(),
            progress: Some(bars.clone()),
        };
        let result = experiment::plan::plan(&host.profile, &opts).and_then(|p| {
            let dir = experiment::prepare(&host, &opts)?;
            experiment::run_planned(&p, &host, &opts, dir.as_deref(), Arc::clone(&interrupted))
        });
        match result {
            Ok(r) => {
                verdicts.set(
                    exp.name(),
                    report::metrics::verdict_samples(&r, &machine_name),
                );
                entries.push(entry_from(
                    exp.name(),
                    exp.summary(),
                    &r,
                    t.elapsed().as_secs_f64(),
                ));
            }
            Err(e) => {
                if let Some(stuck) = e.downcast_ref::<StuckWorker>() {
                    if stuck.still_running > 0 {
                        left_running = Some(format!("{} left a stuck worker running", exp.name()));
                    }
                }
                entries.push(failed_entry(
                    *exp,
                    EntryStatus::Failed(e.to_string()),
                    t.elapsed().as_secs_f64(),
                ));
            }
        }
        overall.inc(1);
    }
    overall.finish_and_clear();
    if !interrupted.load(Ordering::Relaxed) {
        let test_duration = std::env::var("HWPROF_SUITE_TEST_DURATION")
            .ok()
            .and_then(|d| d.parse::<f64>().ok());
        for (i, name) in server::CHECKS.iter().enumerate() {
            if interrupted.load(Ordering::Relaxed) {
                break;
            }
            let line = format!(
                "hwprof suite: [server {}/{}] {name}",
                i + 1,
                server::CHECKS.len()
            );
            if bars.is_hidden() {
                eprintln!("{line}");
            } else {
                let _ = bars.println(line);
            }
            entries.push(server::run_check(
                name,
                quick,
                test_duration,
                &out,
                &interrupted,
            ));
        }
    }
    let suite = SuiteReport {
        schema_version: 1,
        kind: "suite".into(),
        quick,
        started_at,
        seconds: started.elapsed().as_secs_f64(),
        experiments: entries,
        machine: Some(host.profile),
    };
    report::export::emit(&suite, json, Some(&out))?;
    if let Some(e) = &exporter {
        e.hold_for_one_scrape(std::time::Duration::from_secs(60), &interrupted);
    }
    Ok(suite)
}
