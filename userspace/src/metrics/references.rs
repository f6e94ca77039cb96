//! Reference figures of other systems (hwprofiles/references/competitors.toml),
//! exported beside the measured ones so a dashboard can position Engram's
//! figures against them, with the benchmark each figure comes from.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;
use serde::Deserialize;

use super::enc;

const COMPETITORS: &str = include_str!("../../../hwprofiles/references/competitors.toml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Reference {
    pub system: String,
    pub benchmark: String,
    pub p99_latency_ms: Option<f64>,
    pub p99_latency_range_ms: Option<[f64; 2]>,
    pub throughput_qps: Option<f64>,
    pub source: String,
    /// The benchmark's shape: `search` (ANN), `traversal`, … (history compare
    /// states every difference from the scenario measured here).
    pub operation: Option<String>,
    pub nodes: Option<u64>,
    pub dim: Option<u64>,
    pub recall_target: Option<String>,
    pub hardware: Option<String>,
}

#[derive(Deserialize)]
struct File {
    reference: Vec<Reference>,
}

/// The shipped reference figures.
pub fn all() -> Vec<Reference> {
    toml::from_str::<File>(COMPETITORS)
        .map(|f| f.reference)
        .unwrap_or_default()
}

/// Exports every reference as `hwprof_reference_*` gauges.
#[derive(Debug, Default)]
pub struct References;

impl Collector for References {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let refs = all();
        let labels = |r: &Reference| {
            vec![
                ("system", r.system.clone()),
                ("benchmark", r.benchmark.clone()),
                ("source", r.source.clone()),
            ]
        };
        let p99: Vec<_> = refs
            .iter()
            .filter_map(|r| {
                let mut l = labels(r);
                l.push(("quantile", "0.99".into()));
                r.p99_latency_ms.map(|v| (l, v / 1e3))
            })
            .collect();
        enc::gauge(
            &mut e,
            "reference_latency",
            "Published latency of another system (see its benchmark label: positioning, not equivalence)",
            Some(Unit::Seconds),
            &p99,
        )?;
        let qps: Vec<_> = refs
            .iter()
            .filter_map(|r| r.throughput_qps.map(|v| (labels(r), v)))
            .collect();
        enc::gauge(
            &mut e,
            "reference_throughput_requests_per_second",
            "Published throughput of another system (see its benchmark label)",
            None,
            &qps,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_references_parse_with_their_sources() {
        let r = super::all();
        let q = r.iter().find(|r| r.system == "qdrant").expect("qdrant");
        assert_eq!(q.throughput_qps, Some(626.0));
        assert_eq!(q.p99_latency_range_ms, Some([22.0, 24.0]));
        let n = r.iter().find(|r| r.system == "neo4j").expect("neo4j");
        assert_eq!(n.p99_latency_ms, Some(27.96));
        assert!(r
            .iter()
            .all(|r| !r.source.is_empty() && !r.benchmark.is_empty()));
    }
}
