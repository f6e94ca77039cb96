//! Markdown summary written next to report.json.

use std::fmt::Write as _;

use super::schema::SuiteReport;
use super::table::{machine_line, metric_cell};
use super::Report;

impl super::export::Exporter<Report> for super::export::Markdown {
    fn file_name(&self) -> Option<&'static str> {
        Some(self.0)
    }
    fn render(&self, r: &Report) -> String {
        render(r)
    }
}

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# hwprof {}\n", r.experiment.name);
    let _ = writeln!(s, "{}\n", r.experiment.summary);
    let _ = writeln!(s, "- machine: {}", machine_line(&r.machine));
    let _ = writeln!(s, "- measurement: {}", r.measurement.fallback);
    let _ = writeln!(s, "- timer: {}", r.machine.timer.description);
    let _ = writeln!(
        s,
        "- runs: {} repetitions x {:.2} s per variant, {} warm-up, {}",
        r.settings.repetitions, r.settings.duration_s, r.settings.warmup, r.settings.order
    );
    let _ = writeln!(s, "- binding: {}", r.measurement.binding);
    let _ = writeln!(s, "- started {}, finished {}", r.started_at, r.finished_at);
    for n in &r.experiment.notes {
        let _ = writeln!(s, "- {n}");
    }
    for l in &r.measurement.lost {
        let _ = writeln!(s, "- lost: {l}");
    }
    if r.interrupted {
        let _ = writeln!(s, "\n**Interrupted**: partial results.");
    }
    let _ = writeln!(s, "\n## Verdicts\n");
    let _ = writeln!(
        s,
        "| pair / group | CPUs | {} [95% CI] | verdict |",
        r.experiment.effect
    );
    let _ = writeln!(s, "|---|---|---|---|");
    for g in &r.groups {
        match &g.comparison {
            Some(c) => {
                let adaptive = g
                    .headline_rounds
                    .filter(|h| !h.conclusive_before)
                    .map_or(String::new(), |h| format!(" ({h})"));
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.2} [{:.2}–{:.2}] | {}{adaptive} |",
                    g.label,
                    crate::placement::cpulist::format(&g.cpus),
                    c.ratio,
                    c.ci95.lo,
                    c.ci95.hi,
                    c.verdict.text
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {} | {} | – | not measured |",
                    g.label,
                    crate::placement::cpulist::format(&g.cpus)
                );
            }
        }
    }
    for u in &r.placement.unavailable {
        let _ = writeln!(
            s,
            "| {} | – | – | not available on this machine: {} |",
            u.label, u.reason
        );
    }
    for g in &r.groups {
        let _ = writeln!(s, "\n## {}\n", g.label);
        // One row per variant: sweeps have dozens of variants and a handful of metrics.
        if let Some(first) = g.variants.first() {
            // Metrics no variant could measure are named once, by reason, below
            // the table instead of filling every cell with the same "n/a".
            let measured = |n: &String| {
                g.variants
                    .iter()
                    .any(|v| v.metrics.get(n).is_some_and(|m| m.available))
            };
            let names: Vec<&String> = first.metrics.keys().filter(|n| measured(n)).collect();
            let mut missing: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for (n, m) in first.metrics.iter().filter(|(n, _)| !measured(n)) {
                missing
                    .entry(m.reason.as_deref().unwrap_or("not measured"))
                    .or_default()
                    .push(n);
            }
            let _ = writeln!(
                s,
                "| variant | {} |",
                names
                    .iter()
                    .map(|n| format!("{n} ({})", first.metrics[*n].unit))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(s, "|---|{}", "---|".repeat(names.len()));
            for v in &g.variants {
                let cells: Vec<String> = names
                    .iter()
                    .map(|n| v.metrics.get(*n).map_or("–".into(), metric_cell))
                    .collect();
                let _ = writeln!(s, "| {} | {} |", v.name, cells.join(" | "));
            }
            for (reason, metrics) in &missing {
                let _ = writeln!(s, "\nNot measured: {} ({reason}).", metrics.join(", "));
            }
        }
        let _ = writeln!(
            s,
            "\nPlacement checks: {} getcpu samples off the planned CPU, {} migrations seen.",
            g.off_cpu_samples, g.migrations_seen
        );
    }
    if !r.scaling.is_empty() {
        let _ = writeln!(s, "\n## Scaling\n");
        let _ = writeln!(
            s,
            "| variant | policy | threads: ops/s (speedup, efficiency) | USL σ | κ | R² | peak |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for sc in &r.scaling {
            let pts: Vec<String> = sc
                .points
                .iter()
                .map(|p| {
                    format!(
                        "{}: {:.0} ({:.2}, {:.2})",
                        p.threads, p.ops_per_sec, p.speedup, p.efficiency
                    )
                })
                .collect();
            let (sg, kp, r2, peak) = sc.usl.as_ref().map_or(
                ("–".into(), "–".into(), "–".into(), "–".into()),
                |u| {
                    (
                        format!("{:.4}", u.sigma),
                        format!("{:.5}", u.kappa),
                        format!("{:.3}", u.r2),
                        u.peak_threads
                            .map_or("none".into(), |p| format!("{p:.1} (extrapolated)")),
                    )
                },
            );
            let _ = writeln!(
                s,
                "| {} | {} | {} | {sg} | {kp} | {r2} | {peak} |",
                sc.variant,
                sc.policy,
                pts.join("; ")
            );
        }
    }
    if let Some(f) = &r.findings {
        let _ = writeln!(s, "\n## Findings\n");
        for v in &f.verdict {
            let _ = writeln!(s, "- {v}");
        }
        for m in &f.matrices {
            let _ = writeln!(s, "\n### {} ({})\n", m.title, m.unit);
            let _ = writeln!(
                s,
                "| {} \\ {} | {} |",
                m.row_label,
                m.col_label,
                m.cols.join(" | ")
            );
            let _ = writeln!(s, "|---|{}", "---|".repeat(m.cols.len()));
            for (row, cells) in m.rows.iter().zip(&m.cells) {
                let cells: Vec<String> = cells
                    .iter()
                    .map(|c| {
                        c.map_or("–".into(), |e| {
                            format!("{:.3} [{:.3}–{:.3}]", e.median, e.lo, e.hi)
                        })
                    })
                    .collect();
                let _ = writeln!(s, "| {row} | {} |", cells.join(" | "));
            }
        }
    }
    if let Some(m) = &r.pair_matrix {
        let _ = writeln!(s, "\n## Pairs (timer)\n");
        for l in super::table::pair_lines(m) {
            let _ = writeln!(s, "- {l}");
        }
    }
    if let Some(p) = &r.probes {
        let _ = writeln!(s, "\n## Probes\n");
        for l in p.lines() {
            let _ = writeln!(s, "- {l}");
        }
        for w in &p.warnings {
            let _ = writeln!(s, "- probe warning: {w}");
        }
    }
    // SVG inline; the PNG twins are for pasting elsewhere.
    for p in &r.plots {
        if p.ends_with(".png") {
            continue;
        }
        let png = p.strip_suffix(".svg").map(|stem| format!("{stem}.png"));
        match png.filter(|png| r.plots.contains(png)) {
            Some(png) => {
                let _ = writeln!(s, "\n![{p}]({p}) ([PNG]({png}))");
            }
            None => {
                let _ = writeln!(s, "\n![{p}]({p})");
            }
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "\n> warning: {w}");
    }
    s
}

impl super::export::Exporter<SuiteReport> for super::export::Markdown {
    fn file_name(&self) -> Option<&'static str> {
        Some(self.0)
    }
    fn render(&self, s: &SuiteReport) -> String {
        suite(s)
    }
}

/// The suite's summary (suite.md).
pub fn suite(s: &SuiteReport) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# hwprof suite{}\n",
        if s.quick { " (quick)" } else { "" }
    );
    if let Some(p) = &s.machine {
        let _ = writeln!(m, "Machine: {}\n", machine_line(p));
    }
    let _ = writeln!(m, "| experiment | status | time | answer |");
    let _ = writeln!(m, "|---|---|---|---|");
    for e in &s.experiments {
        let _ = writeln!(
            m,
            "| {} | {} | {:.1} s | {} |",
            e.experiment,
            e.status,
            e.seconds,
            e.headline.as_deref().unwrap_or("–")
        );
    }
    for e in &s.experiments {
        if e.look_at.is_empty() && e.verdicts.is_empty() {
            continue;
        }
        let _ = writeln!(m, "\n## {}\n", e.experiment);
        if !e.look_at.is_empty() {
            let _ = writeln!(m, "What to look at:\n");
            for (i, l) in e.look_at.iter().enumerate() {
                let _ = writeln!(m, "{}. {l}", i + 1);
            }
            let _ = writeln!(m);
        }
        if !e.verdicts.is_empty() {
            let _ = writeln!(
                m,
                "<details><summary>All {} verdicts</summary>\n",
                e.verdicts.len()
            );
            for (g, t) in &e.verdicts {
                let _ = writeln!(m, "- {g}: {t}");
            }
            let _ = writeln!(m, "\n</details>");
        }
    }
    m
}

/// The terminal text in a fenced block: attach and c2c reports are read as
/// they print.
fn fenced(title: &str, text: &str) -> String {
    format!("# {title}\n\n```\n{text}```\n")
}

impl super::export::Exporter<super::schema::AttachReport> for super::export::Markdown {
    fn file_name(&self) -> Option<&'static str> {
        Some(self.0)
    }
    fn render(&self, r: &super::schema::AttachReport) -> String {
        fenced("hwprof attach", &super::table::attach(r))
    }
}

impl super::export::Exporter<super::schema::soak::SoakReport> for super::export::Markdown {
    fn file_name(&self) -> Option<&'static str> {
        Some(self.0)
    }
    fn render(&self, r: &super::schema::soak::SoakReport) -> String {
        soak(r)
    }
}

/// A soak's summary (soak.md, and the terminal): verdicts first.
pub fn soak(r: &super::schema::soak::SoakReport) -> String {
    use crate::text::duration;
    let s = &r.settings;
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# hwprof soak: {} on {}\n\n{} of load of {} ({}), {} segment(s), sampled every {}; \
         trends tested after a {} warm-up. Started {}.\n",
        s.scenario,
        s.target,
        duration(r.load_s),
        duration(s.duration_s),
        r.status,
        r.segments.len(),
        duration(s.interval_s),
        duration(s.warmup_s),
        r.started_at
    );
    for t in &r.trends {
        let _ = writeln!(m, "- {}", t.line);
    }
    let _ = writeln!(
        m,
        "\n| resource | verdict | slope | 95% CI | limit | p | samples | source |\n|---|---|---|---|---|---|---|---|"
    );
    for t in &r.trends {
        let f = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:+.3}"));
        let _ = writeln!(
            m,
            "| {} | {} | {} {} | {} to {} | {} {} | {} | {} | {} |",
            t.resource,
            serde_json::to_value(t.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            f(t.slope),
            t.unit,
            f(t.slope_lo),
            f(t.slope_hi),
            t.limit,
            t.unit,
            t.test
                .as_ref()
                .map_or("n/a".into(), |x| format!("{:.2e}", x.p)),
            t.samples,
            t.source
        );
    }
    for d in &r.vs_baseline {
        let _ = writeln!(m, "\n- against the baseline: {}", d.line);
    }
    let completed: u64 = r.segments.iter().map(|x| x.completed).sum();
    let errors: u64 = r.segments.iter().map(|x| x.errors).sum();
    let rss = |i: Option<&super::schema::soak::Sample>| {
        i.map_or("n/a".into(), |x| {
            format!("{:.1} MB", x.rss_bytes as f64 / 1e6)
        })
    };
    let _ = writeln!(
        m,
        "\nRequests: {completed} completed, {errors} errors. RSS: {} at the first sample, {} at the last.",
        rss(r.samples.first()),
        rss(r.samples.last())
    );
    if !r.target_restarts.is_empty() {
        let _ = writeln!(
            m,
            "The target restarted at {} s: process trends use the samples since the last restart.",
            crate::text::list(r.target_restarts.iter().map(|t| format!("{t:.0}")))
        );
    }
    for w in &r.warnings {
        let _ = writeln!(m, "\nwarning: {w}");
    }
    if !r.files.is_empty() {
        let _ = writeln!(m, "\nFiles: {}", r.files.join(", "));
    }
    m
}

impl super::export::Exporter<super::schema::C2cReport> for super::export::Markdown {
    fn file_name(&self) -> Option<&'static str> {
        Some(self.0)
    }
    fn render(&self, r: &super::schema::C2cReport) -> String {
        fenced("hwprof c2c", &super::table::c2c(r))
    }
}
