//! A report's comparisons as verdict gauges for the exporter (`--metrics` on
//! `run` and `suite`): one sample per comparison of every group.

use crate::metrics::verdicts::VerdictSample;
use crate::stats::verdict::Outcome;

use super::Report;

pub fn verdict_samples(r: &Report, machine: &str) -> Vec<VerdictSample> {
    let at_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut out = Vec::new();
    for g in &r.groups {
        for c in &g.comparisons {
            out.push(VerdictSample {
                experiment: r.experiment.name.clone(),
                comparison: format!("{} vs {} [{}]", c.treatment, c.baseline, g.label),
                machine: machine.to_string(),
                ratio: c.ratio,
                ci_low: c.ci95.lo,
                ci_high: c.ci95.hi,
                conclusive: c.verdict.conclusive,
                target_met: c.target.map(|_| match c.verdict.outcome {
                    Outcome::MeetsTarget => Some(true),
                    Outcome::MissesTarget => Some(false),
                    _ => None,
                }),
                at_s,
            });
        }
    }
    out
}
