//! History rows: one figure of one report, keyed by commit, branch, machine,
//! scenario (or experiment) and metric, with its CI and source where the
//! report has them.

use std::path::Path;

use serde::Serialize;

use crate::error::usage;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub commit: String,
    pub branch: String,
    pub machine: String,
    pub scenario: String,
    pub metric: String,
    pub value: f64,
    pub ci_lo: Option<f64>,
    pub ci_hi: Option<f64>,
    pub unit: String,
    /// `pmu`, `software`, `timer` or `probe`, as the report says.
    pub source: String,
    /// When the run started (RFC 3339), from the report or the file's mtime.
    pub run_at: String,
    pub report: String,
}

impl Row {
    /// A row for tests of the history's parts.
    #[cfg(test)]
    pub fn sample(commit: &str, metric: &str, value: f64) -> Row {
        Row {
            commit: commit.into(),
            branch: "main".into(),
            machine: "m".into(),
            scenario: "s".into(),
            metric: metric.into(),
            value,
            ci_lo: None,
            ci_hi: None,
            unit: "ms".into(),
            source: "timer".into(),
            run_at: format!("t-{commit}"),
            report: "/nonexistent".into(),
        }
    }
}

/// What `history add` knows besides the report.
#[derive(Debug, Clone, Default)]
pub struct RowContext {
    pub commit: String,
    pub branch: String,
    /// Overrides the report's own machine section.
    pub machine: Option<String>,
    /// Overrides the report's scenario or experiment name.
    pub scenario: Option<String>,
}

/// A machine profile's slug from its JSON (a saved profile or a report's
/// `machine` section), as `hwprof info --save` names the file.
pub fn machine_slug(v: &serde_json::Value) -> Option<String> {
    let t = &v["topology"];
    let arch = v["cpu"]["microarchitecture"]
        .as_str()
        .or_else(|| v["cpu"]["vendor"].as_str())?;
    let n = |k: &str| t[k].as_u64().map(|x| x as usize);
    Some(crate::machine::slug(
        arch,
        n("packages")?,
        n("cores")?,
        n("pus")?,
        v["hostname"].as_str()?,
    ))
}

fn mtime(path: &Path) -> String {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default()
}

/// Latency quantiles of a load report's `latency` object (ms) by metric name.
const LOAD_QUANTILES: [(&str, &str); 5] = [
    ("p50", "p50_ms"),
    ("p90", "p90_ms"),
    ("p95", "p95_ms"),
    ("p99", "p99_ms"),
    ("p999", "p999_ms"),
];

/// Every figure of a report as rows.
pub fn rows_of_report(
    v: &serde_json::Value,
    path: &Path,
    ctx: &RowContext,
) -> anyhow::Result<Vec<Row>> {
    let machine = ctx
        .machine
        .clone()
        .or_else(|| machine_slug(&v["machine"]))
        .ok_or_else(|| {
            usage(format!(
                "history add {}: the report names no machine; give --machine (a profile from hwprof info --save, or a name)",
                path.display()
            ))
        })?;
    let run_at = v["started_at"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| mtime(path));
    let mut rows = Vec::new();
    let mut push = |scenario: &str,
                    metric: String,
                    value: f64,
                    ci: Option<(f64, f64)>,
                    unit: &str,
                    source: &str| {
        if value.is_finite() {
            rows.push(Row {
                commit: ctx.commit.clone(),
                branch: ctx.branch.clone(),
                machine: machine.clone(),
                scenario: ctx.scenario.clone().unwrap_or_else(|| scenario.to_string()),
                metric,
                value,
                ci_lo: ci.map(|c| c.0),
                ci_hi: ci.map(|c| c.1),
                unit: unit.into(),
                source: source.into(),
                run_at: run_at.clone(),
                report: path.display().to_string(),
            });
        }
    };
    if v["kind"] == "load" {
        let scenario = v["scenario"]["name"].as_str().unwrap_or("load");
        for (name, key) in LOAD_QUANTILES {
            if let Some(x) = v["latency"][key].as_f64() {
                push(scenario, name.into(), x, None, "ms", "timer");
            }
        }
        if let Some(x) = v["achieved"]["rate"].as_f64() {
            push(scenario, "throughput".into(), x, None, "req/s", "timer");
        }
        if let (Some(n), Some(ops)) = (
            v["achieved"]["requests"].as_f64(),
            v["operations"].as_object(),
        ) {
            let errors: f64 = ops.values().filter_map(|o| o["errors"].as_f64()).sum();
            if n > 0.0 {
                push(
                    scenario,
                    "error_rate".into(),
                    errors / n,
                    None,
                    "",
                    "software",
                );
            }
            for (op, o) in ops {
                for (name, key) in LOAD_QUANTILES {
                    if let Some(x) = o["latency"][key].as_f64() {
                        push(scenario, format!("{op}.{name}"), x, None, "ms", "timer");
                    }
                }
            }
        }
    } else if v.get("p99_latency_ms").is_some() || v.get("overall_throughput").is_some() {
        let scenario = v["scenario"].as_str().unwrap_or("engram");
        for (name, key) in [
            ("p50", "p50_latency_ms"),
            ("p95", "p95_latency_ms"),
            ("p99", "p99_latency_ms"),
        ] {
            if let Some(x) = v[key].as_f64() {
                push(scenario, name.into(), x, None, "ms", "timer");
            }
        }
        if let Some(x) = v["overall_throughput"].as_f64() {
            push(scenario, "throughput".into(), x, None, "req/s", "timer");
        }
        if let Some(x) = v["overall_error_rate"].as_f64() {
            push(scenario, "error_rate".into(), x, None, "", "software");
        }
    } else if let (Some(exp), Some(groups)) =
        (v["experiment"]["name"].as_str(), v["groups"].as_array())
    {
        for g in groups {
            let label = g["label"].as_str().unwrap_or("");
            for var in g["variants"].as_array().into_iter().flatten() {
                let vname = var["name"].as_str().unwrap_or("");
                for (m, x) in var["metrics"].as_object().into_iter().flatten() {
                    if x["available"] != true {
                        continue;
                    }
                    let Some(median) = x["median"].as_f64() else {
                        continue;
                    };
                    let ci = x["ci95"]["lo"].as_f64().zip(x["ci95"]["hi"].as_f64());
                    push(
                        exp,
                        format!("{label}/{vname}/{m}"),
                        median,
                        ci,
                        x["unit"].as_str().unwrap_or(""),
                        x["source"].as_str().unwrap_or("timer"),
                    );
                }
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> RowContext {
        RowContext {
            commit: "abc".into(),
            branch: "main".into(),
            machine: None,
            scenario: None,
        }
    }

    fn machine() -> serde_json::Value {
        json!({"hostname": "lab1", "cpu": {"vendor": "GenuineIntel", "microarchitecture": "Sapphire Rapids"},
               "topology": {"packages": 2, "cores": 56, "pus": 112}})
    }

    #[test]
    fn load_engram_and_experiment_reports() {
        let load = json!({"kind": "load", "started_at": "2026-12-01T10:00:00Z", "scenario": {"name": "ci-fast"},
            "latency": {"p50_ms": 1.0, "p99_ms": 3.0, "p999_ms": null}, "achieved": {"rate": 200.0, "requests": 100},
            "operations": {"store": {"errors": 2, "latency": {"p99_ms": 4.0}}}, "machine": machine()});
        let rows = rows_of_report(&load, Path::new("r.json"), &ctx()).unwrap();
        let get = |m: &str| rows.iter().find(|r| r.metric == m).map(|r| r.value);
        assert_eq!(get("p99"), Some(3.0));
        assert_eq!(get("p999"), None);
        assert_eq!(get("throughput"), Some(200.0));
        assert_eq!(get("error_rate"), Some(0.02));
        assert_eq!(get("store.p99"), Some(4.0));
        assert_eq!(rows[0].machine, "sapphire-rapids-2p56c112t-lab1");
        assert_eq!(rows[0].scenario, "ci-fast");
        assert_eq!(rows[0].run_at, "2026-12-01T10:00:00Z");

        let engram =
            json!({"scenario": "m17", "p99_latency_ms": 0.458, "overall_throughput": 999.88});
        assert!(
            rows_of_report(&engram, Path::new("e.json"), &ctx()).is_err(),
            "no machine"
        );
        let c = RowContext {
            machine: Some("lab2".into()),
            ..ctx()
        };
        let rows = rows_of_report(&engram, Path::new("e.json"), &c).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].machine.as_str(), rows[0].scenario.as_str()),
            ("lab2", "m17")
        );

        let exp = json!({"experiment": {"name": "simd"}, "started_at": "x", "machine": machine(), "groups": [
            {"label": "compact x1", "variants": [{"name": "avx2", "metrics": {
                "cpu_ns_per_op": {"available": true, "median": 12.0, "ci95": {"lo": 11.0, "hi": 13.0}, "unit": "ns CPU/call", "source": "software"},
                "cycles_per_op": {"available": false, "source": "pmu"}}}]}]});
        let rows = rows_of_report(&exp, Path::new("x.json"), &ctx()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].metric, "compact x1/avx2/cpu_ns_per_op");
        assert_eq!((rows[0].ci_lo, rows[0].ci_hi), (Some(11.0), Some(13.0)));
        assert_eq!(rows[0].source, "software");
    }
}
