//! Which figure of a report a gate judges, which way is worse, and how it is
//! read from the report formats hwprof knows (its load report, Engram's results
//! JSON, any hwprof JSON by a dotted path).

use serde::Serialize;

use crate::error::usage;

/// Which direction is a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Better {
    /// Latencies, error rates: higher is a regression.
    Lower,
    /// Throughput: lower is a regression.
    Higher,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSpec {
    /// As given: `p99`, `throughput`, or a dotted path into the report.
    pub name: String,
    pub better: Better,
    /// Unit for display.
    pub unit: &'static str,
}

/// The gate's default metrics: the median and the tail latency, and throughput.
pub const DEFAULT_METRICS: [&str; 3] = ["p50", "p99", "throughput"];

/// Latency quantiles by short name → (hwprof load key, Engram key).
const QUANTILES: [(&str, &str, &str); 6] = [
    ("p50", "p50_ms", "p50_latency_ms"),
    ("p90", "p90_ms", "p90_latency_ms"),
    ("p95", "p95_ms", "p95_latency_ms"),
    ("p99", "p99_ms", "p99_latency_ms"),
    ("p999", "p999_ms", "p999_latency_ms"),
    ("max", "max_ms", "max_latency_ms"),
];

impl MetricSpec {
    /// `NAME` or `NAME:higher` / `NAME:lower` (for paths whose direction the
    /// name does not say).
    pub fn parse(s: &str) -> anyhow::Result<MetricSpec> {
        let (name, dir) = match s.rsplit_once(':') {
            Some((n, d)) => (n.trim(), Some(d.trim())),
            None => (s.trim(), None),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(usage(format!(
                "--metric {s:?}: expected p50, p99, throughput, error_rate or a dotted path like operations.recall.latency.p99_ms"
            )));
        }
        let better = match dir {
            Some("higher") => Better::Higher,
            Some("lower") => Better::Lower,
            Some(d) => {
                return Err(usage(format!(
                    "--metric {s:?}: direction {d:?} is neither higher nor lower"
                )))
            }
            None => guess_direction(name),
        };
        let unit = if QUANTILES.iter().any(|q| q.0 == name) || name.ends_with("_ms") {
            "ms"
        } else if name == "throughput" || name.ends_with("rate") && name != "error_rate" {
            "req/s"
        } else {
            ""
        };
        Ok(MetricSpec {
            name: name.to_string(),
            better,
            unit,
        })
    }

    /// This metric's value in one report, if the report has it.
    pub fn read(&self, v: &serde_json::Value) -> Option<f64> {
        let hwprof_load = v["kind"] == "load";
        if let Some(&(_, key, engram)) = QUANTILES.iter().find(|q| q.0 == self.name) {
            return if hwprof_load {
                v["latency"][key].as_f64()
            } else {
                v[engram].as_f64()
            };
        }
        match self.name.as_str() {
            "throughput" if hwprof_load => v["achieved"]["rate"].as_f64(),
            "throughput" => v["overall_throughput"].as_f64(),
            "error_rate" if hwprof_load => {
                let n = v["achieved"]["requests"].as_f64()?;
                let errors: f64 = v["operations"]
                    .as_object()?
                    .values()
                    .filter_map(|o| o["errors"].as_f64())
                    .sum();
                Some(if n > 0.0 { errors / n } else { 0.0 })
            }
            "error_rate" => v["overall_error_rate"].as_f64(),
            // A dotted path; a number indexes an array (groups.0.variants.1.…).
            path => path
                .split('.')
                .try_fold(v, |node, key| match node {
                    serde_json::Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => node.get(key),
                })
                .and_then(|x| x.as_f64()),
        }
    }
}

/// Latency-like names get worse upwards; throughput-like names downwards.
fn guess_direction(name: &str) -> Better {
    let n = name.to_ascii_lowercase();
    let higher = [
        "throughput",
        "qps",
        "ops_per_s",
        "ops_sec",
        "bandwidth",
        "speedup",
    ];
    if n.contains("error") || n.contains("latency") || n.ends_with("_ms") {
        Better::Lower
    } else if higher.iter().any(|h| n.contains(h)) || n.ends_with("rate") {
        Better::Higher
    } else {
        Better::Lower
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_formats_and_paths() {
        let hw = json!({"kind": "load", "latency": {"p99_ms": 2.5, "p50_ms": 1.0},
            "achieved": {"rate": 200.0, "requests": 100},
            "operations": {"store": {"errors": 1, "latency": {"p99_ms": 3.0}}, "recall": {"errors": 1}}});
        let engram =
            json!({"p99_latency_ms": 4.0, "overall_throughput": 626.0, "overall_error_rate": 0.01});
        let m = |s: &str| MetricSpec::parse(s).unwrap();
        assert_eq!(m("p99").read(&hw), Some(2.5));
        assert_eq!(m("p99").read(&engram), Some(4.0));
        assert_eq!(m("throughput").read(&hw), Some(200.0));
        assert_eq!(m("throughput").read(&engram), Some(626.0));
        assert_eq!(m("error_rate").read(&hw), Some(0.02));
        assert_eq!(m("operations.store.latency.p99_ms").read(&hw), Some(3.0));
        assert_eq!(m("operations.nothing.p99_ms").read(&hw), None);
        let exp = json!({"groups": [{"variants": [{}, {"metrics": {"ops": {"median": 7.5}}}]}]});
        assert_eq!(
            m("groups.0.variants.1.metrics.ops.median:higher").read(&exp),
            Some(7.5)
        );
        assert_eq!(m("groups.3.variants").read(&exp), None);
    }

    #[test]
    fn directions() {
        let b = |s: &str| MetricSpec::parse(s).unwrap().better;
        assert_eq!(b("p99"), Better::Lower);
        assert_eq!(b("throughput"), Better::Higher);
        assert_eq!(b("error_rate"), Better::Lower);
        assert_eq!(b("achieved.rate"), Better::Higher);
        assert_eq!(b("results.x.value:higher"), Better::Higher);
        assert!(MetricSpec::parse("p99:sideways").is_err());
        assert!(MetricSpec::parse("a b").is_err());
        assert!(MetricSpec::parse("").is_err());
    }
}
