//! `hwprof history`: results over time, by commit, branch and machine.
//!
//! Rows come from reports hwprof already writes (a load report, Engram's
//! results JSON, an experiment report with medians and CIs), are kept in
//! SQLite (`results/history.db`, the default) or PostgreSQL (`--history
//! postgres://…`, the same schema, for a fleet of lab machines), and are read
//! back for tables and plots (`show`), change points (`changes`, E-Divisive
//! means) and competitive positioning (`compare`).

pub mod compare;
pub mod rows;
pub mod store;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::usage;
use crate::stats::changepoint::{self, ChangePoint};
pub use rows::{rows_of_report, Row, RowContext};
pub use store::{open, Filter, Store};

/// The default history database.
pub const DEFAULT_DB: &str = "results/history.db";

/// A series: one machine, scenario and metric, in the order it was recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub machine: String,
    pub scenario: String,
    pub metric: String,
    pub unit: String,
    pub source: String,
    pub rows: Vec<Row>,
}

/// Group rows (already in recording order) into series.
pub fn series_of(rows: Vec<Row>) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for r in rows {
        match out
            .iter_mut()
            .find(|s| s.machine == r.machine && s.scenario == r.scenario && s.metric == r.metric)
        {
            Some(s) => s.rows.push(r),
            None => out.push(Series {
                machine: r.machine.clone(),
                scenario: r.scenario.clone(),
                metric: r.metric.clone(),
                unit: r.unit.clone(),
                source: r.source.clone(),
                rows: vec![r],
            }),
        }
    }
    out
}

/// A change found in a series, with the commit it arrived at.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub machine: String,
    pub scenario: String,
    pub metric: String,
    pub unit: String,
    /// The first commit after the change, and the last before it.
    pub commit: String,
    pub previous_commit: String,
    pub branch: String,
    pub run_at: String,
    /// mean after / mean before − 1.
    pub change: f64,
    pub mean_before: f64,
    pub mean_after: f64,
    pub p: f64,
    /// Points in the series and index of the first after the change.
    pub points: usize,
    pub index: usize,
}

/// E-Divisive means over every series.
pub fn changes(series: &[Series], settings: changepoint::Settings) -> Vec<Change> {
    let mut out = Vec::new();
    for s in series {
        let x: Vec<f64> = s.rows.iter().map(|r| r.value).collect();
        for ChangePoint {
            index,
            p,
            mean_before,
            mean_after,
            change,
        } in changepoint::e_divisive(&x, settings)
        {
            let at = &s.rows[index];
            out.push(Change {
                machine: s.machine.clone(),
                scenario: s.scenario.clone(),
                metric: s.metric.clone(),
                unit: s.unit.clone(),
                commit: at.commit.clone(),
                previous_commit: s.rows[index - 1].commit.clone(),
                branch: at.branch.clone(),
                run_at: at.run_at.clone(),
                change,
                mean_before,
                mean_after,
                p,
                points: x.len(),
                index,
            });
        }
    }
    out
}

/// Commit and branch for rows being added: flags, then CI's variables
/// (GitHub, GitLab), then git in the working directory, else "unknown".
pub fn commit_and_branch(commit: Option<String>, branch: Option<String>) -> (String, String) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let git = |args: &[&str]| -> Option<String> {
        let o = std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = commit
        .or_else(|| env("GITHUB_SHA"))
        .or_else(|| env("CI_COMMIT_SHA"))
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let branch = branch
        .or_else(|| env("GITHUB_HEAD_REF"))
        .or_else(|| env("GITHUB_REF_NAME"))
        .or_else(|| env("CI_COMMIT_REF_NAME"))
        .or_else(|| git(&["rev-parse", "--abbrev-ref", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    (commit, branch)
}

/// The machine name for rows: a profile saved by `hwprof info --save` (its
/// file, or the name itself), else the report's own machine section.
pub fn machine_flag(m: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(m) = m else { return Ok(None) };
    let p = Path::new(m);
    if p.extension().is_some_and(|e| e == "json") {
        let text = crate::input::read_text("--machine", p, crate::input::MAX_FILE_BYTES)?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| usage(format!("--machine {m}: not JSON: {e}")))?;
        return rows::machine_slug(&v).map(Some).ok_or_else(|| {
            usage(format!(
                "--machine {m}: not a machine profile (hwprof info --save)"
            ))
        });
    }
    if m.is_empty() || m.len() > 200 || m.chars().any(|c| c.is_control()) {
        return Err(usage(format!("--machine {m:?}: not a machine name")));
    }
    Ok(Some(m.to_string()))
}

/// `hwprof history add`: rows of every report, inserted once each.
pub fn add(
    store: &mut dyn Store,
    reports: &[PathBuf],
    ctx: &RowContext,
) -> anyhow::Result<(usize, usize)> {
    let mut rows = Vec::new();
    for p in reports {
        let (file, v) = crate::input::read_report_json("history add", p)?;
        let r = rows_of_report(&v, &file, ctx)?;
        if r.is_empty() {
            return Err(usage(format!(
                "history add {}: no figures found (a hwprof load or experiment report, or Engram results)",
                file.display()
            )));
        }
        rows.extend(r);
    }
    let added = store.add(&rows)?;
    Ok((rows.len(), added))
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

/// " ms", or nothing for a unitless figure.
fn unit_suffix(unit: &str, sep: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!("{sep}{unit}")
    }
}

/// `hwprof history show`: a table per machine, and one plot with a curve per
/// machine (x: the run's position in the history).
pub fn show(rows: Vec<Row>, out: Option<&Path>, json: bool) -> anyhow::Result<String> {
    use hwprof_workloads::findings::{Chart, Curve, CurvePoint, Estimate};
    let series = series_of(rows);
    if series.is_empty() {
        return Err(usage(
            "history show: no rows match (see `hwprof history show --json` without filters)",
        ));
    }
    let scenarios: std::collections::BTreeSet<(&str, &str)> = series
        .iter()
        .map(|s| (s.scenario.as_str(), s.metric.as_str()))
        .collect();
    if scenarios.len() > 1 {
        return Err(usage(format!(
            "history show: {} series match; narrow with --metric and --scenario (e.g. --metric {} --scenario {})",
            scenarios.len(),
            series[0].metric,
            series[0].scenario
        )));
    }
    let mut text = String::new();
    for s in &series {
        text.push_str(&format!(
            "{} — {} — {} [{}{}]\n",
            s.machine,
            s.scenario,
            s.metric,
            s.source,
            unit_suffix(&s.unit, ", ")
        ));
        text.push_str(
            "    #  commit        branch            run at                         value  95% CI\n",
        );
        for (i, r) in s.rows.iter().enumerate() {
            let ci = match (r.ci_lo, r.ci_hi) {
                (Some(lo), Some(hi)) => format!("{lo:.4}–{hi:.4}"),
                _ => "(one run)".into(),
            };
            text.push_str(&format!(
                "  {:>3}  {:<12}  {:<16}  {:<25}  {:>12.4}  {ci}\n",
                i + 1,
                short(&r.commit),
                r.branch,
                r.run_at,
                r.value
            ));
        }
    }
    if let Some(dir) = out {
        let dir = crate::output::prepare_dir("--out", dir)?;
        let chart = Chart {
            id: "history".into(),
            title: format!("{} — {} over time", series[0].scenario, series[0].metric),
            x_label: "run (in recording order)".into(),
            y_label: format!(
                "{}{}",
                series[0].metric,
                unit_suffix(&series[0].unit, " in ")
            ),
            x_bytes: false,
            log_x: false,
            log_y: false,
            curves: series
                .iter()
                .map(|s| Curve {
                    name: s.machine.clone(),
                    points: s
                        .rows
                        .iter()
                        .enumerate()
                        .map(|(i, r)| CurvePoint {
                            x: (i + 1) as f64,
                            y: Estimate {
                                median: r.value,
                                lo: r.ci_lo.unwrap_or(r.value),
                                hi: r.ci_hi.unwrap_or(r.value),
                            },
                        })
                        .collect(),
                })
                .collect(),
            markers: vec![],
            secondary: None,
        };
        let files = crate::report::plots::chart(&dir, &chart)?;
        crate::output::write_atomic(
            &dir.join("history.json"),
            crate::report::json::to_string(&series).as_bytes(),
        )?;
        text.push_str(&format!(
            "wrote {}/history.json, {}\n",
            dir.display(),
            files.join(", ")
        ));
    }
    Ok(if json {
        crate::report::json::to_string(&series) + "\n"
    } else {
        text
    })
}

/// `hwprof history changes` as text.
pub fn render_changes(cs: &[Change], series: usize) -> String {
    let mut s = format!(
        "{} change point(s) in {series} series (E-Divisive means, permutation test)\n",
        cs.len()
    );
    for c in cs {
        s.push_str(&format!(
            "  {} — {} — {}: {:+.1}% at {} (after {}; run {} of {}), {:.4} → {:.4}{}, p = {:.3}\n",
            c.machine,
            c.scenario,
            c.metric,
            c.change * 100.0,
            short(&c.commit),
            short(&c.previous_commit),
            c.index + 1,
            c.points,
            c.mean_before,
            c.mean_after,
            unit_suffix(&c.unit, " "),
            c.p
        ));
    }
    s
}
