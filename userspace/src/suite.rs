//! `hwprof suite`: every registered experiment in turn, one combined report —
//! JSON, Markdown and a static HTML index with every verdict and plot — plus the
//! machine profile. A new experiment joins by registering in workloads, nothing else.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::experiment::{self, RunOptions};
use crate::machine::MachineProfile;
use crate::report::{self, Report};
use crate::topology::TopologySource;

#[derive(Debug, Clone, Serialize)]
pub struct SuiteEntry {
    pub experiment: String,
    pub summary: String,
    /// `ok`, `failed: …`, or `interrupted`.
    pub status: String,
    pub seconds: f64,
    /// Every comparison's verdict, per placement group: (group, text); then the
    /// experiment's own findings as ("finding", text).
    pub verdicts: Vec<(String, String)>,
    /// What the reader must know to trust them (VM, single NUMA node, …).
    pub warnings: Vec<String>,
    /// Paths relative to the suite directory.
    pub report: Option<String>,
    pub plots: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub schema_version: u32,
    pub kind: String,
    pub quick: bool,
    pub started_at: String,
    pub seconds: f64,
    pub experiments: Vec<SuiteEntry>,
    pub machine: Option<MachineProfile>,
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
            "interrupted".into()
        } else {
            "ok".into()
        },
        seconds,
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
    let registry = hwprof_workloads::registry();
    let mut entries = Vec::new();
    let mut machine = None;
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
    for (i, exp) in registry.iter().enumerate() {
        if interrupted.load(Ordering::Relaxed) {
            break;
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
        match experiment::run(&opts, Arc::clone(&interrupted)) {
            Ok(Some(r)) => {
                if machine.is_none() {
                    machine = Some(r.machine.clone());
                }
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
            Ok(None) => {}
            Err(e) => entries.push(SuiteEntry {
                experiment: exp.name().into(),
                summary: exp.summary().into(),
                status: format!("failed: {e}"),
                seconds: t.elapsed().as_secs_f64(),
                verdicts: vec![],
                warnings: vec![],
                report: None,
                plots: vec![],
            }),
        }
        overall.inc(1);
    }
    overall.finish_and_clear();
    let suite = SuiteReport {
        schema_version: 1,
        kind: "suite".into(),
        quick,
        started_at,
        seconds: started.elapsed().as_secs_f64(),
        experiments: entries,
        machine,
    };
    let text = report::json::to_string(&suite);
    crate::output::write_atomic(&out.join("suite.json"), text.as_bytes())?;
    crate::output::write_atomic(&out.join("suite.md"), markdown(&suite).as_bytes())?;
    crate::output::write_atomic(&out.join("index.html"), html(&suite).as_bytes())?;
    if json {
        println!("{text}");
    } else {
        print!("{}", markdown(&suite));
        println!(
            "\nwrote {0}/index.html, {0}/suite.json, {0}/suite.md",
            out.display()
        );
    }
    if let Some(e) = &exporter {
        e.hold_for_one_scrape(std::time::Duration::from_secs(60), &interrupted);
    }
    Ok(suite)
}

pub fn markdown(s: &SuiteReport) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# hwprof suite{}\n",
        if s.quick { " (quick)" } else { "" }
    );
    if let Some(p) = &s.machine {
        let _ = writeln!(m, "Machine: {}\n", report::table::machine_line(p));
    }
    let _ = writeln!(m, "| experiment | status | time | verdicts |");
    let _ = writeln!(m, "|---|---|---|---|");
    for e in &s.experiments {
        let v: Vec<String> = e
            .verdicts
            .iter()
            .map(|(g, t)| format!("{g}: {t}"))
            .collect();
        let _ = writeln!(
            m,
            "| {} | {} | {:.1} s | {} |",
            e.experiment,
            e.status,
            e.seconds,
            v.join("<br>")
        );
    }
    m
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn html(s: &SuiteReport) -> String {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>hwprof suite</title>\n<style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}\
         .ok{color:#060}.bad{color:#a00}img{max-width:100%;border:1px solid #eee;margin:6px 0}\
         </style></head><body>\n",
    );
    let _ = writeln!(
        h,
        "<h1>hwprof suite{}</h1>",
        if s.quick { " (quick)" } else { "" }
    );
    let _ = writeln!(
        h,
        "<p>Started {}, {:.0} s in all.</p>",
        esc(&s.started_at),
        s.seconds
    );
    if let Some(p) = &s.machine {
        let _ = writeln!(
            h,
            "<h2>Machine</h2><p>{}</p><p>Timer: {}. Measurement: {}.</p>",
            esc(&report::table::machine_line(p)),
            esc(&p.timer.description),
            if p.capabilities.pmu_hardware {
                "hardware counters"
            } else {
                "no hardware counters: software counters and timer"
            }
        );
        let _ = writeln!(h, "<ul>");
        for l in &p.capabilities.lost {
            let _ = writeln!(h, "<li>{}</li>", esc(&l.line()));
        }
        let _ = writeln!(h, "</ul>");
    }
    let _ = writeln!(h, "<h2>Verdicts</h2><table><tr><th>experiment</th><th>status</th><th>time</th><th>verdicts</th></tr>");
    for e in &s.experiments {
        let class = if e.status == "ok" { "ok" } else { "bad" };
        let v: Vec<String> = e
            .verdicts
            .iter()
            .map(|(g, t)| format!("<b>{}</b>: {}", esc(g), esc(t)))
            .collect();
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#{0}\">{0}</a></td><td class=\"{class}\">{1}</td><td>{2:.1} s</td><td>{3}</td></tr>",
            esc(&e.experiment),
            esc(&e.status),
            e.seconds,
            v.join("<br>")
        );
    }
    let _ = writeln!(h, "</table>");
    for e in &s.experiments {
        let _ = writeln!(
            h,
            "<h2 id=\"{0}\">{0}</h2><p>{1}</p>",
            esc(&e.experiment),
            esc(&e.summary)
        );
        if let Some(r) = &e.report {
            let _ = writeln!(
                h,
                "<p><a href=\"{0}\">{0}</a> · <a href=\"{1}/summary.md\">summary.md</a></p>",
                esc(r),
                esc(&e.experiment)
            );
        }
        if !e.verdicts.is_empty() {
            let _ = writeln!(h, "<ul>");
            for (g, t) in &e.verdicts {
                let _ = writeln!(h, "<li><b>{}</b>: {}</li>", esc(g), esc(t));
            }
            let _ = writeln!(h, "</ul>");
        }
        for w in &e.warnings {
            let _ = writeln!(h, "<p class=\"bad\">warning: {}</p>", esc(w));
        }
        // SVGs inline; each PNG twin is linked under its picture.
        for p in e.plots.iter().filter(|p| !p.ends_with(".png")) {
            let png = p.strip_suffix(".svg").map(|s| format!("{s}.png"));
            let link = match png.filter(|png| e.plots.contains(png)) {
                Some(png) => format!(" <a href=\"{0}\">PNG</a>", esc(&png)),
                None => String::new(),
            };
            let _ = writeln!(h, "<div><img src=\"{0}\" alt=\"{0}\">{link}</div>", esc(p));
        }
    }
    h.push_str("</body></html>\n");
    h
}
