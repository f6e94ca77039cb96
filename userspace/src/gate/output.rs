//! A gate's outputs: gate.json (hwprof's schema), gate.md (a benchstat-like
//! table for a pull-request comment), gate.junit.xml (one test case per
//! metric) and gate.bmf.json (Bencher Metric Format), all through the one
//! atomic write path.

use std::fmt::Write as _;
use std::path::Path;

use super::judge::{MetricJudgement, Outcome};
use super::GateReport;
use crate::output::write_atomic;

pub fn summary_line(
    outcome: Outcome,
    js: &[MetricJudgement],
    stopped_by: &str,
    names: &(String, String),
    n: usize,
) -> String {
    let how = match stopped_by {
        "decided" => format!("decided after {n} runs a side"),
        "budget" => format!("the time budget ran out after {n} runs a side"),
        "interrupted" => format!("interrupted after {n} runs a side"),
        "not-quiet" => format!(
            "stopped after {n} runs a side: too many runs were bent by other work on the machine"
        ),
        "reports" => "from existing reports".to_string(),
        _ => format!("all {n} runs a side done"),
    };
    let worst = js
        .iter()
        .filter(|j| j.outcome == outcome)
        .map(|j| j.text.as_str())
        .next()
        .unwrap_or("no metric could be judged");
    format!(
        "{}: {} vs {} — {worst} ({how})",
        outcome.as_str().to_uppercase(),
        names.1,
        names.0
    )
}

fn num(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.4}")
    }
}

pub fn markdown(r: &GateReport) -> String {
    let mut s = String::new();
    let icon = match r.outcome {
        Outcome::Pass => "✅",
        Outcome::Improvement => "🚀",
        Outcome::Inconclusive => "❔",
        Outcome::Regression => "❌",
    };
    let _ = writeln!(s, "### hwprof gate: {icon} {}\n", r.outcome.as_str());
    let _ = writeln!(s, "{}\n", r.summary);
    let _ = writeln!(
        s,
        "| metric | {} (median, 95% CI) | {} (median, 95% CI) | change | CI of change | p (Holm) | verdict |",
        r.a, r.b
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for j in &r.metrics {
        let unit = if j.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", j.unit)
        };
        let _ = writeln!(
            s,
            "| {} | {}{unit} [{}, {}] n={} | {}{unit} [{}, {}] n={} | {:+.2}% | {:+.2}% … {:+.2}% ({:.1}%) | {:.4} | {} |",
            j.metric,
            num(j.median_a),
            num(j.ci_a.lo),
            num(j.ci_a.hi),
            j.n_a,
            num(j.median_b),
            num(j.ci_b.lo),
            num(j.ci_b.hi),
            j.n_b,
            (j.ratio - 1.0) * 100.0,
            (j.ratio_ci.lo - 1.0) * 100.0,
            (j.ratio_ci.hi - 1.0) * 100.0,
            j.ci_level * 100.0,
            j.p_holm,
            j.outcome.as_str()
        );
    }
    let how = if r.mode == "reports" {
        "Runs from existing reports, not interleaved: drift between the two sets is not controlled."
            .to_string()
    } else {
        format!(
            "Runs interleaved ABBA, each a fresh process; stopped: {}; {:.0} s.",
            r.stopped_by, r.elapsed_s
        )
    };
    let _ = writeln!(
        s,
        "\nRule: regression when the Holm-adjusted Mann–Whitney p < {:.4} (α {} over {} planned look(s)), \
         the change's CI lies wholly on the worse side and reaches the {:.0}% threshold. {how}",
        r.alpha_per_look,
        r.alpha,
        r.looks_planned,
        r.threshold * 100.0,
    );
    if let Some(one) = &r.one_run_rule {
        let _ = writeln!(
            s,
            "\nFor comparison, a one-run ±5% rule on the first {} and {} runs says: {} ({}).",
            r.a,
            r.b,
            one.outcome.as_str(),
            one.worse_by
                .iter()
                .map(|(m, w)| if *w >= 0.0 {
                    format!("{m} {:.1}% worse", w * 100.0)
                } else {
                    format!("{m} {:.1}% better", -w * 100.0)
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for w in &r.warnings {
        let _ = writeln!(s, "\n> warning: {w}");
    }
    s
}

fn xml(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// JUnit XML: one test case per metric; a regression is a failure, an
/// inconclusive metric is skipped (with what would decide it).
pub fn junit(r: &GateReport) -> String {
    let failures = r
        .metrics
        .iter()
        .filter(|j| j.outcome == Outcome::Regression)
        .count();
    let skipped = r
        .metrics
        .iter()
        .filter(|j| j.outcome == Outcome::Inconclusive)
        .count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"hwprof gate\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">",
        r.metrics.len(),
        r.elapsed_s
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\">",
        xml(&format!("{} vs {}", r.b, r.a)),
        r.metrics.len(),
        r.elapsed_s,
        xml(&r.started_at)
    );
    for j in &r.metrics {
        let _ = write!(
            s,
            "    <testcase classname=\"hwprof.gate\" name=\"{}\" time=\"0\"",
            xml(&j.metric)
        );
        match j.outcome {
            Outcome::Regression => {
                let _ = writeln!(
                    s,
                    ">\n      <failure message=\"{}\" type=\"regression\"/>\n    </testcase>",
                    xml(&j.text)
                );
            }
            Outcome::Inconclusive => {
                let _ = writeln!(
                    s,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    xml(&j.text)
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    xml(&j.text)
                );
            }
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

/// Bencher Metric Format: the candidate's medians with their 95% CIs, and the
/// ratio to the baseline with its CI, per metric.
pub fn bmf(r: &GateReport) -> serde_json::Value {
    let mut measures = serde_json::Map::new();
    for j in &r.metrics {
        measures.insert(
            j.metric.clone(),
            serde_json::json!({"value": j.median_b, "lower_value": j.ci_b.lo, "upper_value": j.ci_b.hi}),
        );
        measures.insert(
            format!("{}_ratio", j.metric),
            serde_json::json!({"value": j.ratio, "lower_value": j.ratio_ci.lo, "upper_value": j.ratio_ci.hi}),
        );
    }
    serde_json::json!({ r.b.clone(): measures })
}

pub fn write_all(r: &GateReport, dir: &Path) -> anyhow::Result<()> {
    write_atomic(
        &dir.join("gate.json"),
        crate::report::json::to_string(r).as_bytes(),
    )?;
    write_atomic(&dir.join("gate.md"), markdown(r).as_bytes())?;
    write_atomic(&dir.join("gate.junit.xml"), junit(r).as_bytes())?;
    write_atomic(
        &dir.join("gate.bmf.json"),
        crate::report::json::to_string(&bmf(r)).as_bytes(),
    )?;
    Ok(())
}
