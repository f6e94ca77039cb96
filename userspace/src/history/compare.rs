//! `hwprof history compare --competitor NAME`: measured P99 and throughput
//! against another system's published figures, as ratios with CIs, flagged
//! beyond the competitive threshold, and with every way the scenario measured
//! here differs from the competitor's benchmark stated plainly.

use serde::Serialize;

use super::rows::Row;
use crate::error::usage;
use crate::metrics::references::{self, Reference};
use crate::stats::bootstrap::median_ci;
use crate::stats::median;

/// Worse than the competitor by more than this is flagged (Engram's 10%).
pub const COMPETITIVE_THRESHOLD: f64 = 0.10;

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub metric: String,
    pub unit: String,
    pub runs: usize,
    pub commit: String,
    pub measured: f64,
    pub measured_ci95: (f64, f64),
    pub competitor: f64,
    /// The competitor's published range, where it gave one.
    pub competitor_range: Option<(f64, f64)>,
    /// How many times worse than the competitor (>1 worse), with its CI.
    pub worse_ratio: f64,
    pub worse_ratio_ci: (f64, f64),
    /// `worse`, `possibly-worse`, `not-worse` or `better`.
    pub flag: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompetitiveReport {
    pub competitor: String,
    pub benchmark: String,
    pub source: String,
    pub scenario: String,
    pub machine: String,
    /// Every way the scenario here is not the competitor's benchmark.
    pub differences: Vec<String>,
    pub comparable: bool,
    pub comparisons: Vec<Comparison>,
}

/// The reference named `name` (case-insensitive).
pub fn reference(name: &str) -> anyhow::Result<Reference> {
    let all = references::all();
    all.iter()
        .find(|r| r.system.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| {
            usage(format!(
                "--competitor {name}: unknown; known: {}",
                all.iter()
                    .map(|r| r.system.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// How the scenario behind `report` differs from the reference's benchmark.
pub fn differences(
    r: &Reference,
    report: Option<&serde_json::Value>,
    machine: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let Some(v) = report else {
        out.push("the scenario's report is no longer readable: its dataset and operations cannot be compared".into());
        return out;
    };
    let sc = &v["scenario"];
    let nodes = sc["data"]["num_nodes"].as_u64();
    if let (Some(theirs), Some(ours)) = (r.nodes, nodes) {
        if theirs != ours {
            out.push(format!(
                "dataset: {ours} memories here vs {theirs} in {}'s benchmark",
                r.system
            ));
        }
    }
    let dim = sc["data"]["embedding_dim"].as_u64();
    if let (Some(theirs), Some(ours)) = (r.dim, dim) {
        if theirs != ours {
            out.push(format!("dimension: {ours} here vs {theirs}"));
        }
    }
    let ops = &sc["operations"];
    let w = |k: &str| ops[k].as_f64().unwrap_or(0.0);
    let mix = [
        ("store", w("store_weight")),
        ("recall", w("recall_weight")),
        ("search", w("embedding_search_weight")),
        (
            "pattern completion (traversal)",
            w("pattern_completion_weight"),
        ),
    ];
    let total: f64 = mix.iter().map(|m| m.1).sum();
    let wanted = match r.operation.as_deref() {
        Some("search") => Some("search"),
        Some("traversal") => Some("pattern completion (traversal)"),
        _ => None,
    };
    if let Some(want) = wanted {
        let share = mix.iter().find(|m| m.0 == want).map_or(0.0, |m| m.1) / total.max(1e-12);
        if share < 0.999 {
            out.push(format!(
                "operations: {} here vs {want} only",
                mix.iter()
                    .filter(|m| m.1 > 0.0)
                    .map(|m| format!("{} {:.0}%", m.0, 100.0 * m.1 / total))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if let Some(rt) = &r.recall_target {
        out.push(format!(
            "recall: not measured here (hwprof serve searches exactly within a cluster); {}: {rt}",
            r.system
        ));
    }
    if let Some(hw) = &r.hardware {
        out.push(format!("hardware: {machine} here; {}'s: {hw}", r.system));
    }
    out
}

/// Compare the latest commit's runs (p99, throughput) with the reference.
pub fn compare(
    r: &Reference,
    scenario: &str,
    machine: &str,
    rows: &[Row],
) -> anyhow::Result<CompetitiveReport> {
    let latest_commit = rows
        .last()
        .map(|r| r.commit.clone())
        .ok_or_else(|| usage(format!("no history for scenario {scenario:?} on {machine}")))?;
    let mut comparisons = Vec::new();
    for (metric, theirs, range, higher_better, unit) in [
        (
            "p99",
            r.p99_latency_ms,
            r.p99_latency_range_ms.map(|a| (a[0], a[1])),
            false,
            "ms",
        ),
        ("throughput", r.throughput_qps, None, true, "req/s"),
    ] {
        let Some(theirs) = theirs else { continue };
        let ours: Vec<f64> = rows
            .iter()
            .filter(|x| x.metric == metric && x.commit == latest_commit)
            .map(|x| x.value)
            .collect();
        if ours.is_empty() {
            continue;
        }
        let m = median(&ours);
        let ci = median_ci(&ours, 0.95);
        // Against a published range, the CI uses its far ends (the least
        // favourable pairing either way).
        let (t_lo, t_hi) = range.unwrap_or((theirs, theirs));
        let (ratio, lo, hi) = if higher_better {
            (theirs / m, t_lo / ci.hi, t_hi / ci.lo)
        } else {
            (m / theirs, ci.lo / t_hi, ci.hi / t_lo)
        };
        let limit = 1.0 + COMPETITIVE_THRESHOLD;
        let flag = if lo > limit {
            "worse"
        } else if hi > limit {
            "possibly-worse"
        } else if hi < 1.0 {
            "better"
        } else {
            "not-worse"
        };
        let text = format!(
            "{metric}: {m:.3} {unit} here (median of {} run(s) at {}, 95% CI {:.3}–{:.3}) vs {} {theirs} {unit}: \
             {:.2}× {} (CI {lo:.2}–{hi:.2}){}",
            ours.len(),
            short(&latest_commit),
            ci.lo,
            ci.hi,
            r.system,
            ratio,
            if higher_better { "their throughput over ours" } else { "ours over theirs" },
            match flag {
                "worse" => format!(" — more than {:.0}% worse", COMPETITIVE_THRESHOLD * 100.0),
                "possibly-worse" => format!(" — possibly more than {:.0}% worse; more runs would tell", COMPETITIVE_THRESHOLD * 100.0),
                "better" => " — better".into(),
                _ => format!(" — not more than {:.0}% worse", COMPETITIVE_THRESHOLD * 100.0),
            }
        );
        comparisons.push(Comparison {
            metric: metric.into(),
            unit: unit.into(),
            runs: ours.len(),
            commit: latest_commit.clone(),
            measured: m,
            measured_ci95: (ci.lo, ci.hi),
            competitor: theirs,
            competitor_range: range,
            worse_ratio: ratio,
            worse_ratio_ci: (lo, hi),
            flag: flag.into(),
            text,
        });
    }
    if comparisons.is_empty() {
        return Err(usage(format!(
            "no p99 or throughput rows for scenario {scenario:?} on {machine} to compare with {}",
            r.system
        )));
    }
    let report_json = rows
        .iter()
        .rev()
        .find_map(|x| std::fs::read_to_string(&x.report).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let differences = differences(r, report_json.as_ref(), machine);
    Ok(CompetitiveReport {
        competitor: r.system.clone(),
        benchmark: r.benchmark.clone(),
        source: r.source.clone(),
        scenario: scenario.into(),
        machine: machine.into(),
        comparable: differences.is_empty(),
        differences,
        comparisons,
    })
}

fn short(c: &str) -> &str {
    &c[..c.len().min(12)]
}

pub fn render(c: &CompetitiveReport) -> String {
    let mut s = format!(
        "{} on {} vs {} ({}; source: {})\n",
        c.scenario, c.machine, c.competitor, c.benchmark, c.source
    );
    for x in &c.comparisons {
        s.push_str(&format!("  {}\n", x.text));
    }
    if c.comparable {
        s.push_str("  the scenario matches the benchmark's shape as far as hwprof can tell\n");
    } else {
        s.push_str(&format!(
            "  NOT the same benchmark — these ratios position, they do not rank ({} difference(s)):\n",
            c.differences.len()
        ));
        for d in &c.differences {
            s.push_str(&format!("    - {d}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(metric: &str, v: f64, commit: &str) -> Row {
        Row::sample(commit, metric, v)
    }

    #[test]
    fn ratios_flags_and_differences() {
        let q = reference("Qdrant").unwrap();
        let mut rows: Vec<Row> = (0..5).map(|i| row("p99", 40.0 + i as f64, "old")).collect();
        rows.extend((0..5).map(|i| row("p99", 30.0 + 0.1 * i as f64, "new")));
        rows.extend((0..5).map(|i| row("throughput", 900.0 + i as f64, "new")));
        let c = compare(&q, "s", "m", &rows).unwrap();
        let p99 = &c.comparisons[0];
        assert_eq!(p99.runs, 5, "only the latest commit's runs");
        assert!((p99.worse_ratio - 30.2 / 23.0).abs() < 1e-9);
        assert_eq!(p99.flag, "worse");
        let t = &c.comparisons[1];
        assert_eq!(t.flag, "better", "{t:?}");
        assert!(!c.comparable);
        assert!(c.differences[0].contains("no longer readable"));
        assert!(reference("nobody").is_err());
        let scen = serde_json::json!({"scenario": {"data": {"num_nodes": 5000, "embedding_dim": 768},
            "operations": {"recall_weight": 0.5, "embedding_search_weight": 0.5}}});
        let d = differences(&q, Some(&scen), "m");
        assert!(
            d.iter()
                .any(|x| x.contains("5000 memories here vs 1000000")),
            "{d:?}"
        );
        assert!(
            d.iter().any(|x| x.contains("recall 50%, search 50%")),
            "{d:?}"
        );
        assert!(!d.iter().any(|x| x.contains("dimension")));
    }
}
