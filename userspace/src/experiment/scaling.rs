//! Thread scalability across the groups of a thread-count sweep: speedup,
//! parallel efficiency (two ways) and a Universal Scalability Law fit per
//! variant and placement policy.

use super::analysis::GroupResult;
pub use crate::report::schema::{ScalePoint, ScalingSeries};
use crate::stats::usl;
use crate::stats::Interval;

/// A sweep group's placement policy and thread count, as placement planned them.
fn policy_of(g: &GroupResult) -> Option<(String, usize)> {
    Some((g.policy.clone()?, g.cpus.len()))
}

pub fn analyse(groups: &[GroupResult]) -> Vec<ScalingSeries> {
    let mut out = Vec::new();
    let mut policies: Vec<String> = groups
        .iter()
        .filter_map(|g| policy_of(g).map(|p| p.0))
        .collect();
    policies.dedup();
    let variants: Vec<String> = groups
        .first()
        .map(|g| g.variants.iter().map(|v| v.name.clone()).collect())
        .unwrap_or_default();
    for policy in &policies {
        for variant in &variants {
            let mut pts: Vec<(usize, f64, Interval, Option<f64>)> = groups
                .iter()
                .filter_map(|g| {
                    let (p, n) = policy_of(g)?;
                    if &p != policy && !(n == 1) {
                        return None;
                    }
                    let v = g.variants.iter().find(|v| &v.name == variant)?;
                    let t = v.metrics.get("ops_per_sec")?.summary.as_ref()?;
                    let cpu = v
                        .metrics
                        .get("cpu_ns_per_op")
                        .and_then(|m| m.summary.as_ref())
                        .map(|c| c.median * t.median / 1e9 / n as f64);
                    Some((n, t.median, t.ci95, cpu))
                })
                .collect();
            pts.sort_by_key(|p| p.0);
            pts.dedup_by_key(|p| p.0);
            let Some(base) = pts.iter().find(|p| p.0 == 1).map(|p| p.1) else {
                continue;
            };
            if pts.len() < 2 {
                continue;
            }
            let points: Vec<ScalePoint> = pts
                .iter()
                .map(|&(n, x, ci, cpu)| ScalePoint {
                    threads: n,
                    ops_per_sec: x,
                    ci95: ci,
                    speedup: x / base,
                    efficiency: x / base / n as f64,
                    cpu_efficiency: cpu,
                })
                .collect();
            let fit = usl::fit(&pts.iter().map(|p| (p.0 as f64, p.1)).collect::<Vec<_>>());
            let predicted = fit
                .as_ref()
                .map(|f| {
                    (1..=64)
                        .map(|n| n as f64)
                        .take_while(|&n| f.predicts_up_to.is_none_or(|max| n <= max))
                        .map(|n| (n, f.predict(n)))
                        .collect()
                })
                .unwrap_or_default();
            out.push(ScalingSeries {
                variant: variant.clone(),
                policy: policy.clone(),
                measured_max_threads: pts.last().map_or(1, |p| p.0),
                points,
                usl: fit,
                predicted,
                source: "timer (throughput); software (CPU efficiency)".into(),
            });
        }
    }
    out
}
