//! Scenario files (TOML): Engram's format, unchanged, plus hwprof's own keys.
//!
//! Engram's keys: `name`, `description`, `[duration] total_seconds`,
//! `[arrival] pattern = constant|poisson|periodic_burst|exponential` with `rate`,
//! `lambda`, `base_rate`, `burst_rate`, `burst_duration_sec`, `burst_period_sec`;
//! `[operations] store_weight, recall_weight, embedding_search_weight,
//! pattern_completion_weight`; `[data] num_nodes, embedding_dim, memory_spaces,
//! embedding_distribution = { type = "clustered", num_clusters, std_dev }`;
//! `[validation] expected_p99_latency_ms, expected_throughput_ops_sec,
//! max_error_rate`; `[chaos] enabled`.
//!
//! hwprof's: `seed`; patterns `diurnal` (`peak_multiplier`, `peak_hour`,
//! `start_hour`, `compress` = "24h=10m"), `bursts` (`burst_multiplier` or
//! `burst_multipliers = [2, 5, 10]`,
//! `burst_length_sec`, `mean_burst_interval_sec`), `ramp` (`start_rate`,
//! `end_rate`), `step` (`steps = [[at_sec, rate], …]`), `composite`
//! (`components = [ {pattern = …}, … ]`, rates added); `[operations.peak]`
//! (weights at the diurnal peak, blended by time of day);
//! `[operations.transitions]` (next operation by previous one);
//! `[correlation] probability, mean_delay_ms` (a store followed by a recall near
//! its embedding); `[load] connections, max_in_flight, interval_sec,
//! timeout_ms`. Unknown keys and bad values: exit 2 naming the key, file and line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::usage;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub seed: Option<u64>,
    pub duration: DurationSpec,
    pub arrival: Arrival,
    #[serde(default)]
    pub operations: Operations,
    #[serde(default)]
    pub data: Data,
    #[serde(default)]
    pub validation: Validation,
    #[serde(default)]
    pub chaos: Chaos,
    #[serde(default)]
    pub correlation: Option<Correlation>,
    #[serde(default)]
    pub load: LoadSection,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DurationSpec {
    pub total_seconds: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    pub pattern: String,
    pub rate: Option<f64>,
    pub lambda: Option<f64>,
    pub base_rate: Option<f64>,
    pub burst_rate: Option<f64>,
    pub burst_duration_sec: Option<f64>,
    pub burst_period_sec: Option<f64>,
    // diurnal
    pub peak_multiplier: Option<f64>,
    pub peak_hour: Option<f64>,
    pub start_hour: Option<f64>,
    pub compress: Option<String>,
    // bursts
    pub burst_multiplier: Option<f64>,
    /// Multipliers of successive bursts, cycled (e.g. [2, 5, 10]).
    pub burst_multipliers: Option<Vec<f64>>,
    pub burst_length_sec: Option<f64>,
    pub mean_burst_interval_sec: Option<f64>,
    // ramp
    pub start_rate: Option<f64>,
    pub end_rate: Option<f64>,
    // step
    pub steps: Option<Vec<(f64, f64)>>,
    /// Poisson arrivals under any rate shape (constant spacing otherwise).
    pub poisson: Option<bool>,
    // composite
    pub components: Option<Vec<Arrival>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    #[serde(default)]
    pub store_weight: f64,
    #[serde(default)]
    pub recall_weight: f64,
    #[serde(default)]
    pub embedding_search_weight: f64,
    #[serde(default)]
    pub pattern_completion_weight: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Operations {
    #[serde(default = "default_store")]
    pub store_weight: f64,
    #[serde(default = "default_recall")]
    pub recall_weight: f64,
    #[serde(default = "default_search")]
    pub embedding_search_weight: f64,
    #[serde(default)]
    pub pattern_completion_weight: f64,
    #[serde(default)]
    pub peak: Option<Weights>,
    /// previous operation → weights of the next (store, recall, search, completion).
    #[serde(default)]
    pub transitions: Option<BTreeMap<String, Weights>>,
}

fn default_store() -> f64 {
    0.3
}
fn default_recall() -> f64 {
    0.5
}
fn default_search() -> f64 {
    0.2
}

impl Default for Operations {
    fn default() -> Self {
        Self {
            store_weight: default_store(),
            recall_weight: default_recall(),
            embedding_search_weight: default_search(),
            pattern_completion_weight: 0.0,
            peak: None,
            transitions: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Data {
    #[serde(default = "default_nodes")]
    pub num_nodes: u64,
    #[serde(default = "default_dim")]
    pub embedding_dim: usize,
    #[serde(default = "default_spaces")]
    pub memory_spaces: u32,
    #[serde(default)]
    pub embedding_distribution: Option<Distribution>,
}

fn default_nodes() -> u64 {
    1000
}
fn default_dim() -> usize {
    768
}
fn default_spaces() -> u32 {
    1
}

impl Data {
    /// Embedding clusters (`embedding_distribution.num_clusters`, default 10).
    pub fn clusters(&self) -> u32 {
        self.embedding_distribution
            .as_ref()
            .and_then(|d| d.num_clusters)
            .unwrap_or(10)
    }
}

impl Default for Data {
    fn default() -> Self {
        Self {
            num_nodes: default_nodes(),
            embedding_dim: default_dim(),
            memory_spaces: default_spaces(),
            embedding_distribution: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Distribution {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub num_clusters: Option<u32>,
    #[serde(default)]
    pub std_dev: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    pub expected_p99_latency_ms: Option<f64>,
    pub expected_throughput_ops_sec: Option<f64>,
    pub max_error_rate: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    #[serde(default)]
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Correlation {
    pub probability: f64,
    pub mean_delay_ms: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    pub connections: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub interval_sec: Option<f64>,
    pub timeout_ms: Option<f64>,
}

/// 1-based line of `key = …` inside `[table]` (or at top level), for messages.
fn line_of(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            current = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            continue;
        }
        let k = t.split('=').next().unwrap_or("").trim();
        if current == table && k == key {
            return Some(i + 1);
        }
    }
    None
}

/// Parse and check a scenario file; bad input names the file, key and line.
pub fn load(path: &Path) -> anyhow::Result<Scenario> {
    let text = crate::input::read_text("--scenario", path, 1 << 20)?;
    parse(&text, &path.display().to_string())
}

/// Parse and check scenario text (`file` names it in messages).
pub fn parse(text: &str, file: &str) -> anyhow::Result<Scenario> {
    let s: Scenario = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|sp| text[..sp.start.min(text.len())].matches('\n').count() + 1);
        usage(format!(
            "--scenario {file}{}: {}",
            line.map_or(String::new(), |l| format!(":{l}")),
            e.message().trim()
        ))
    })?;
    let bad = |table: &str, key: &str, why: String| {
        let at = line_of(text, table, key).map_or(String::new(), |l| format!(":{l}"));
        let name = if table.is_empty() {
            key.to_string()
        } else {
            format!("{table}.{key}")
        };
        usage(format!("--scenario {file}{at}: {name}: {why}"))
    };
    let positive = |table: &str, key: &str, v: Option<f64>| -> anyhow::Result<()> {
        match v {
            Some(x) if !(x.is_finite() && x > 0.0) => {
                Err(bad(table, key, format!("{x} is not a positive number")))
            }
            _ => Ok(()),
        }
    };
    positive("duration", "total_seconds", Some(s.duration.total_seconds))?;
    if s.duration.total_seconds > crate::input::MAX_DURATION_S {
        return Err(bad(
            "duration",
            "total_seconds",
            "longer than 30 days".into(),
        ));
    }
    check_arrival(&s.arrival, "arrival", &bad, &positive)?;
    let o = &s.operations;
    for (k, v) in [
        ("store_weight", o.store_weight),
        ("recall_weight", o.recall_weight),
        ("embedding_search_weight", o.embedding_search_weight),
        ("pattern_completion_weight", o.pattern_completion_weight),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(bad("operations", k, format!("{v} is not a weight (>= 0)")));
        }
    }
    if o.store_weight + o.recall_weight + o.embedding_search_weight + o.pattern_completion_weight
        <= 0.0
    {
        return Err(bad(
            "operations",
            "store_weight",
            "all operation weights are zero".into(),
        ));
    }
    if let Some(t) = &o.transitions {
        for k in t.keys() {
            if super::schedule::OpKind::parse(k).is_none() {
                return Err(bad(
                    "operations.transitions",
                    k,
                    "unknown operation (store, recall, search, completion)".into(),
                ));
            }
        }
    }
    if s.data.embedding_dim == 0 || s.data.embedding_dim > 65_536 {
        return Err(bad(
            "data",
            "embedding_dim",
            format!("{} is not a dimension (1..65536)", s.data.embedding_dim),
        ));
    }
    if s.data.memory_spaces == 0 || s.data.memory_spaces > 4096 {
        return Err(bad(
            "data",
            "memory_spaces",
            format!("{} is not a space count (1..4096)", s.data.memory_spaces),
        ));
    }
    if let Some(d) = &s.data.embedding_distribution {
        if d.kind != "clustered" && d.kind != "uniform" {
            return Err(bad(
                "data",
                "embedding_distribution",
                format!("type {:?}: expected clustered or uniform", d.kind),
            ));
        }
    }
    if let Some(c) = &s.correlation {
        if !(0.0..=1.0).contains(&c.probability) {
            return Err(bad("correlation", "probability", "must lie in 0..1".into()));
        }
        positive("correlation", "mean_delay_ms", Some(c.mean_delay_ms))?;
    }
    if let Some(v) = s.validation.max_error_rate {
        if !(0.0..=1.0).contains(&v) {
            return Err(bad(
                "validation",
                "max_error_rate",
                "must lie in 0..1".into(),
            ));
        }
    }
    positive(
        "validation",
        "expected_p99_latency_ms",
        s.validation.expected_p99_latency_ms,
    )?;
    positive(
        "validation",
        "expected_throughput_ops_sec",
        s.validation.expected_throughput_ops_sec,
    )?;
    positive("load", "interval_sec", s.load.interval_sec)?;
    positive("load", "timeout_ms", s.load.timeout_ms)?;
    if s.load.connections == Some(0) {
        return Err(bad("load", "connections", "at least 1".into()));
    }
    Ok(s)
}

type Bad<'a> = dyn Fn(&str, &str, String) -> anyhow::Error + 'a;
type Positive<'a> = dyn Fn(&str, &str, Option<f64>) -> anyhow::Result<()> + 'a;

fn check_arrival(
    a: &Arrival,
    table: &str,
    bad: &Bad<'_>,
    positive: &Positive<'_>,
) -> anyhow::Result<()> {
    let need = |key: &str, v: Option<f64>| -> anyhow::Result<f64> {
        match v {
            None => Err(bad(
                table,
                "pattern",
                format!("pattern {:?} needs {key}", a.pattern),
            )),
            Some(x) => {
                positive(table, key, Some(x))?;
                Ok(x)
            }
        }
    };
    for (k, v) in [
        ("rate", a.rate),
        ("lambda", a.lambda),
        ("base_rate", a.base_rate),
        ("burst_rate", a.burst_rate),
        ("burst_duration_sec", a.burst_duration_sec),
        ("burst_period_sec", a.burst_period_sec),
        ("peak_multiplier", a.peak_multiplier),
        ("burst_multiplier", a.burst_multiplier),
        ("burst_length_sec", a.burst_length_sec),
        ("mean_burst_interval_sec", a.mean_burst_interval_sec),
        ("start_rate", a.start_rate),
        ("end_rate", a.end_rate),
    ] {
        positive(table, k, v)?;
    }
    match a.pattern.as_str() {
        "constant" | "poisson" => {
            need("rate", a.rate)?;
        }
        "exponential" => {
            need("lambda", a.lambda.or(a.rate))?;
        }
        "periodic_burst" => {
            need("base_rate", a.base_rate)?;
            need("burst_rate", a.burst_rate)?;
            let d = need("burst_duration_sec", a.burst_duration_sec)?;
            let p = need("burst_period_sec", a.burst_period_sec)?;
            if d >= p {
                return Err(bad(
                    table,
                    "burst_duration_sec",
                    "must be shorter than burst_period_sec".into(),
                ));
            }
        }
        "diurnal" => {
            need("base_rate", a.base_rate.or(a.rate))?;
            if let Some(m) = a.peak_multiplier {
                if m > 2.0 {
                    // rate(h) = base (1 + (m-1) cos(...)) goes negative beyond m = 2.
                    return Err(bad(
                        table,
                        "peak_multiplier",
                        format!("{m}: at most 2 (the trough is base x (2 - m))"),
                    ));
                }
            }
            if let Some(c) = &a.compress {
                super::pattern::parse_compress(c).map_err(|e| bad(table, "compress", e))?;
            }
        }
        "bursts" => {
            need("base_rate", a.base_rate.or(a.rate))?;
            match &a.burst_multipliers {
                Some(m) if !m.is_empty() => {
                    if m.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
                        return Err(bad(table, "burst_multipliers", "each must be positive".into()));
                    }
                }
                _ => {
                    need("burst_multiplier", a.burst_multiplier)?;
                }
            }
            need("burst_length_sec", a.burst_length_sec)?;
            need("mean_burst_interval_sec", a.mean_burst_interval_sec)?;
        }
        "ramp" => {
            need("start_rate", a.start_rate)?;
            need("end_rate", a.end_rate)?;
        }
        "step" => {
            let steps = a.steps.as_ref().filter(|s| !s.is_empty()).ok_or_else(|| {
                bad(table, "pattern", "pattern \"step\" needs steps = [[at_sec, rate], …]".into())
            })?;
            if steps.iter().any(|(t, r)| !(t.is_finite() && *t >= 0.0 && r.is_finite() && *r >= 0.0)) {
                return Err(bad(table, "steps", "times and rates must be >= 0".into()));
            }
        }
        "composite" => {
            let parts = a.components.as_ref().filter(|c| !c.is_empty()).ok_or_else(|| {
                bad(table, "pattern", "pattern \"composite\" needs components".into())
            })?;
            for p in parts {
                if p.pattern == "composite" {
                    return Err(bad(table, "components", "a composite cannot nest another".into()));
                }
                check_arrival(p, table, bad, positive)?;
            }
        }
        other => {
            return Err(bad(
                table,
                "pattern",
                format!(
                    "unknown pattern {other:?}: expected constant, poisson, exponential, periodic_burst, \
                     diurnal, bursts, ramp, step or composite"
                ),
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGRAM: &str = r#"
name = "engram-baseline"
description = "every Engram field"
[duration]
total_seconds = 10
[arrival]
pattern = "periodic_burst"
base_rate = 100.0
burst_rate = 500.0
burst_duration_sec = 1.0
burst_period_sec = 5.0
[operations]
store_weight = 0.3
recall_weight = 0.4
embedding_search_weight = 0.2
pattern_completion_weight = 0.1
[data]
num_nodes = 1000
embedding_dim = 768
memory_spaces = 2
embedding_distribution = { type = "clustered", num_clusters = 10, std_dev = 0.1 }
[validation]
expected_p99_latency_ms = 10.0
expected_throughput_ops_sec = 100.0
max_error_rate = 0.01
[chaos]
enabled = false
"#;

    #[test]
    fn engram_files_parse_unchanged() {
        let s = parse(ENGRAM, "engram.toml").unwrap();
        assert_eq!(s.data.memory_spaces, 2);
        assert_eq!(s.arrival.pattern, "periodic_burst");
        assert_eq!(s.operations.pattern_completion_weight, 0.1);
    }

    #[test]
    fn bad_keys_and_values_name_file_key_and_line() {
        let unknown = ENGRAM.replace(
            "max_error_rate = 0.01",
            "max_error_rate = 0.01\nfrobnicate = 1",
        );
        let e = parse(&unknown, "s.toml").unwrap_err().to_string();
        assert!(e.contains("s.toml:") && e.contains("frobnicate"), "{e}");
        assert!(e.contains("s.toml:26:"), "line of the key: {e}");
        let neg = ENGRAM.replace("base_rate = 100.0", "base_rate = -5");
        let e = parse(&neg, "s.toml").unwrap_err().to_string();
        assert!(e.contains("s.toml:8: arrival.base_rate"), "{e}");
        let zero = ENGRAM.replace("total_seconds = 10", "total_seconds = 0");
        let e = parse(&zero, "s.toml").unwrap_err().to_string();
        assert!(e.contains("s.toml:5: duration.total_seconds"), "{e}");
        let e = parse("[duration\n", "m.toml").unwrap_err().to_string();
        assert!(e.contains("m.toml:1"), "{e}");
    }
}
