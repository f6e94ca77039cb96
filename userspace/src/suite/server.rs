//! The suite's server checks, after the experiments: a short soak, a run with
//! bursts and a ramp, each against an `hwprof serve` started for it, each an
//! entry of the suite with its answer first. Short in `--quick` (about a
//! minute together), longer otherwise.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::report::schema::{EntryStatus, SuiteEntry};
use crate::serve::child::ServeChild;

/// The checks, in the order they run.
pub const CHECKS: [&str; 3] = ["server-soak", "server-bursts", "server-ramp"];

fn summary(name: &str) -> &'static str {
    match name {
        "server-soak" => "hwprof serve under steady read-only load: leaks and drift per resource (Mann–Kendall, Sen slope)",
        "server-bursts" => "hwprof serve under ×5 bursts: how far the tail rises and how fast it settles",
        _ => "hwprof serve under a geometric ramp: the last sustainable rate and the bottleneck at the break",
    }
}

/// Lengths of each check: (soak s, soak interval s, burst run s, ramp step s, ramp max rate).
fn lengths(quick: bool, test: Option<f64>) -> (f64, f64, f64, f64, f64) {
    match (test, quick) {
        (Some(_), _) => (3.0, 0.5, 4.0, 1.0, 200.0),
        (None, true) => (20.0, 1.0, 24.0, 3.0, 3200.0),
        (None, false) => (300.0, 5.0, 120.0, 10.0, 1e6),
    }
}

/// Run one check into `out/NAME/` and make its suite entry.
pub fn run_check(
    name: &str,
    quick: bool,
    test: Option<f64>,
    out: &Path,
    interrupted: &Arc<AtomicBool>,
) -> SuiteEntry {
    let t = Instant::now();
    let dir = out.join(name);
    let result = match name {
        "server-soak" => soak(quick, test, &dir, interrupted),
        "server-bursts" => bursts(quick, test, &dir, interrupted),
        _ => ramp(quick, test, &dir, interrupted),
    };
    let mut e = match result {
        Ok(e) => e,
        Err(err) => SuiteEntry {
            experiment: String::new(),
            summary: String::new(),
            status: EntryStatus::Failed(err.to_string()),
            seconds: 0.0,
            headline: None,
            look_at: vec![],
            verdicts: vec![],
            warnings: vec![],
            report: None,
            plots: vec![],
        },
    };
    e.experiment = name.into();
    e.summary = summary(name).into();
    e.seconds = t.elapsed().as_secs_f64();
    if interrupted.load(std::sync::atomic::Ordering::Relaxed) && e.status.is_ok() {
        e.status = EntryStatus::Interrupted;
    }
    e
}

fn entry(
    headline: Option<String>,
    look_at: Vec<String>,
    verdicts: Vec<(String, String)>,
    report: String,
    plots: Vec<String>,
) -> SuiteEntry {
    SuiteEntry {
        experiment: String::new(),
        summary: String::new(),
        status: EntryStatus::Ok,
        seconds: 0.0,
        headline,
        look_at,
        verdicts,
        warnings: vec![],
        report: Some(report),
        plots,
    }
}

fn soak(
    quick: bool,
    test: Option<f64>,
    dir: &Path,
    interrupted: &Arc<AtomicBool>,
) -> anyhow::Result<SuiteEntry> {
    let (length, interval, ..) = lengths(quick, test);
    let r = crate::soak::run(
        &crate::soak::SoakOptions {
            target: "embedded".into(),
            duration: Some(length),
            interval: Some(interval),
            checkpoint: Some(length),
            warmup: Some(length * 0.2),
            out: Some(dir.to_path_buf()),
            quiet: true,
            ..Default::default()
        },
        Arc::clone(interrupted),
    )?;
    use crate::report::schema::soak::{Resource, TrendVerdict};
    let rss = r.trends.iter().find(|t| t.resource == Resource::Rss);
    Ok(entry(
        rss.map(|t| t.line.clone()),
        r.trends
            .iter()
            .filter(|t| t.verdict == TrendVerdict::OverLimit)
            .map(|t| t.line.clone())
            .chain(r.warnings.iter().cloned())
            .collect(),
        r.trends
            .iter()
            .map(|t| (t.resource.to_string(), t.line.clone()))
            .collect(),
        "server-soak/soak.json".into(),
        plots(&r.files, "server-soak"),
    ))
}

fn bursts(
    quick: bool,
    test: Option<f64>,
    dir: &Path,
    interrupted: &Arc<AtomicBool>,
) -> anyhow::Result<SuiteEntry> {
    let (_, _, length, ..) = lengths(quick, test);
    let dir = crate::output::prepare_dir("--out", dir)?;
    let scenario = dir.join("scenario.toml");
    let text = if quick || test.is_some() {
        format!(
            "name = \"bursts\"\ndescription = \"x5 bursts of 1 s every 8 s over 300 req/s\"\n[duration]\ntotal_seconds = {length}\n\
             [arrival]\npattern = \"periodic_burst\"\nbase_rate = 300\nburst_rate = 1500\nburst_duration_sec = 1\nburst_period_sec = 8\n\
             [operations]\nstore_weight = 0.0\nrecall_weight = 0.7\nembedding_search_weight = 0.3\n[data]\nnum_nodes = 2000\n"
        )
    } else {
        include_str!("../../../workloads/scenarios/burst-recovery.toml").to_string()
    };
    crate::output::write_atomic(&scenario, text.as_bytes())?;
    let srv = ServeChild::start(&["--preload".into(), "5000".into()])?;
    let r = crate::load::run(
        &crate::load::LoadOptions {
            target: srv.url.clone(),
            scenario: Some(scenario),
            duration: Some(length),
            shard: (0, 1),
            target_pid: Some(srv.pid),
            spin: spin(),
            out: Some(dir.join("load")),
            quiet: true,
            ..Default::default()
        },
        Arc::clone(interrupted),
    );
    srv.stop();
    let r = r?;
    let rc = r.recovery.as_ref();
    Ok(entry(
        rc.map(|x| x.summary()),
        rc.map(|x| {
            x.bursts
                .iter()
                .filter(|b| b.judged && !b.within_target)
                .map(|b| b.line.clone())
                .collect()
        })
        .unwrap_or_default(),
        rc.map(|x| {
            x.bursts
                .iter()
                .map(|b| (format!("×{}", b.multiplier), b.line.clone()))
                .collect()
        })
        .unwrap_or_default(),
        "server-bursts/load/report.json".into(),
        // load::run returns its report before the file list is filled in.
        [
            "load-latency-over-time.svg",
            "load-rate.svg",
            "load-latency-distribution.svg",
        ]
        .iter()
        .filter(|f| dir.join("load").join(f).is_file())
        .map(|f| format!("server-bursts/load/{f}"))
        .collect(),
    ))
}

fn ramp(
    quick: bool,
    test: Option<f64>,
    dir: &Path,
    interrupted: &Arc<AtomicBool>,
) -> anyhow::Result<SuiteEntry> {
    let (.., step, max) = lengths(quick, test);
    let srv = ServeChild::start(&["--preload".into(), "5000".into()])?;
    let d = crate::load::ramp::RampOptions::default();
    let r = crate::load::ramp::run(
        &crate::load::LoadOptions {
            target: srv.url.clone(),
            shard: (0, 1),
            target_pid: Some(srv.pid),
            spin: spin(),
            out: Some(dir.to_path_buf()),
            quiet: true,
            ..Default::default()
        },
        &crate::load::ramp::RampOptions {
            from: 200.0,
            factor: if quick || test.is_some() {
                2.0
            } else {
                d.factor
            },
            step_s: step,
            max_rate: max,
            ..d
        },
        Arc::clone(interrupted),
    );
    srv.stop();
    let r = r?;
    Ok(entry(
        Some(r.verdict.clone()),
        r.evidence.clone(),
        r.steps
            .iter()
            .map(|s| {
                (
                    format!("{:.0}/s", s.offered_rate),
                    if s.broke.is_empty() {
                        format!("held: achieved {:.0}/s", s.achieved_rate)
                    } else {
                        format!("broke: {}", s.broke.join("; "))
                    },
                )
            })
            .collect(),
        "server-ramp/ramp.json".into(),
        plots(&r.files, "server-ramp"),
    ))
}

/// On a VM an idle vCPU can take milliseconds to wake: the generator spins
/// for the last 2 ms before each request there, so its own lag is not what
/// the checks measure (as `hwprof load --spin 2ms`).
fn spin() -> Option<f64> {
    crate::virt::detect().map(|_| 0.002)
}

fn plots(files: &[String], prefix: &str) -> Vec<String> {
    files
        .iter()
        .filter(|f| f.ends_with(".svg"))
        .map(|f| format!("{prefix}/{f}"))
        .collect()
}
