//! The gate's decision: per metric a ratio with a bootstrap CI and a
//! Mann–Whitney p-value, Holm–Bonferroni across metrics, and one of four
//! outcomes; plus Engram's one-run ±5% rule on the same runs, for comparison.
//!
//! Rule (docs/gate.md): a metric regressed when its Holm-adjusted p is below
//! the look's α, the CI of the change lies wholly on the worse side of no
//! change, and the CI reaches the threshold (a change of the threshold's size
//! is among the plausible ones). Significant but wholly below the threshold is
//! a pass ("worse by 1.2%, under the 5% threshold"). Not significant with the
//! CI below the threshold is a pass; not significant with the CI reaching the
//! threshold is inconclusive, with the repetitions that would likely decide it.

use serde::Serialize;

use super::metric::{Better, MetricSpec};
use crate::stats::bootstrap::{median_ci_with, ratio_of_medians_ci_with, Interval};
use crate::stats::median;
use crate::stats::rank::{holm, mann_whitney};

/// Bootstrap resamples per CI (a gate computes one per metric per look).
const RESAMPLES: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Improvement,
    Inconclusive,
    Regression,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Improvement => "improvement",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Regression => "regression",
        }
    }

    /// Documented exit codes: pass and improvement 0, regression 1,
    /// inconclusive 3 (2 is bad input everywhere in hwprof).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Pass | Outcome::Improvement => 0,
            Outcome::Regression => 1,
            Outcome::Inconclusive => 3,
        }
    }
}

/// Thresholds and error rates of one decision.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    /// Smallest change that matters (0.05 = 5%).
    pub threshold: f64,
    /// Family-wise α over the whole gate (every metric and every look).
    pub alpha: f64,
    /// α at this look: alpha / planned looks (Bonferroni over looks, so
    /// stopping early does not inflate the false-positive rate).
    pub alpha_look: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricJudgement {
    pub metric: String,
    pub better: Better,
    pub unit: &'static str,
    pub n_a: usize,
    pub n_b: usize,
    pub median_a: f64,
    pub median_b: f64,
    pub ci_a: Interval,
    pub ci_b: Interval,
    /// median(B) / median(A).
    pub ratio: f64,
    /// CI of the ratio at level 1 − alpha_look.
    pub ratio_ci: Interval,
    pub ci_level: f64,
    /// The change in the regression's direction: +0.05 = 5% worse.
    pub worse_by: f64,
    pub worse_by_ci: Interval,
    pub p: f64,
    pub p_holm: f64,
    pub test: &'static str,
    pub outcome: Outcome,
    pub text: String,
}

/// Judge every metric on runs A (baseline) and B (candidate).
pub fn judge(
    metrics: &[MetricSpec],
    a: &[Vec<f64>],
    b: &[Vec<f64>],
    rule: Rule,
) -> Vec<MetricJudgement> {
    let tests: Vec<_> = metrics
        .iter()
        .zip(a.iter().zip(b))
        .map(|(_, (x, y))| mann_whitney(x, y))
        .collect();
    let p: Vec<f64> = tests.iter().map(|t| t.map_or(1.0, |t| t.p)).collect();
    let p_holm = holm(&p);
    let level = 1.0 - rule.alpha_look;
    metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (x, y) = (&a[i], &b[i]);
            let (ma, mb) = (median(x), median(y));
            let ratio = mb / ma;
            let ci = ratio_of_medians_ci_with(y, x, level, RESAMPLES);
            let (worse_by, worse_by_ci) = match m.better {
                Better::Lower => (
                    ratio - 1.0,
                    Interval {
                        lo: ci.lo - 1.0,
                        hi: ci.hi - 1.0,
                    },
                ),
                Better::Higher => (
                    1.0 - ratio,
                    Interval {
                        lo: 1.0 - ci.hi,
                        hi: 1.0 - ci.lo,
                    },
                ),
            };
            let significant = p_holm[i] < rule.alpha_look;
            let (outcome, text) = decide(
                &m.name,
                worse_by,
                worse_by_ci,
                significant,
                rule,
                x.len().min(y.len()),
            );
            MetricJudgement {
                metric: m.name.clone(),
                better: m.better,
                unit: m.unit,
                n_a: x.len(),
                n_b: y.len(),
                median_a: ma,
                median_b: mb,
                ci_a: median_ci_with(x, 0.95, RESAMPLES),
                ci_b: median_ci_with(y, 0.95, RESAMPLES),
                ratio,
                ratio_ci: ci,
                ci_level: level,
                worse_by,
                worse_by_ci,
                p: p[i],
                p_holm: p_holm[i],
                test: tests[i].map_or("none", |t| t.method),
                outcome,
                text,
            }
        })
        .collect()
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

fn decide(
    name: &str,
    worse: f64,
    ci: Interval,
    significant: bool,
    rule: Rule,
    n: usize,
) -> (Outcome, String) {
    let t = rule.threshold;
    // Spoken in the regression's direction: "+3.1% worse" / "-2.0% worse" reads
    // badly, so the sign picks the word.
    let change = if worse >= 0.0 {
        format!(
            "{name} {:.1}% worse (CI {} to {})",
            worse * 100.0,
            pct(ci.lo),
            pct(ci.hi)
        )
    } else {
        format!(
            "{name} {:.1}% better (CI of the change {} to {}, + is worse)",
            -worse * 100.0,
            pct(ci.lo),
            pct(ci.hi)
        )
    };
    if !(worse.is_finite() && ci.lo.is_finite() && ci.hi.is_finite()) {
        return (
            Outcome::Inconclusive,
            format!("{name}: no ratio (a side measured zero or nothing)"),
        );
    }
    if significant && ci.lo > 0.0 {
        if ci.hi >= t {
            return (
                Outcome::Regression,
                format!(
                    "regression: {change}; the CI reaches the {:.0}% threshold",
                    t * 100.0
                ),
            );
        }
        return (
            Outcome::Pass,
            format!(
                "pass: {change}, significant but wholly under the {:.0}% threshold",
                t * 100.0
            ),
        );
    }
    if significant && ci.hi < 0.0 {
        let outcome = if ci.lo <= -t {
            Outcome::Improvement
        } else {
            Outcome::Pass
        };
        return (
            outcome,
            format!(
                "{}: {name} {} better (CI {} to {})",
                outcome.as_str(),
                pct(-worse),
                pct(-ci.hi),
                pct(-ci.lo)
            ),
        );
    }
    if ci.hi < t {
        return (
            Outcome::Pass,
            format!(
                "pass: {change}; a {:.0}% regression is outside the CI",
                t * 100.0
            ),
        );
    }
    // The CI half-width shrinks like 1/√n: repetitions a side for the upper
    // bound to fall below the threshold (or the lower above zero).
    let half = (ci.hi - ci.lo) / 2.0;
    let room = (t - worse).abs().max(worse.abs()).max(1e-9);
    let need = ((half / room).powi(2) * n as f64).ceil() as usize;
    (
        Outcome::Inconclusive,
        format!(
            "inconclusive: {change}; neither a {:.0}% regression nor its absence is shown — \
             about {} repetitions a side would likely decide it",
            t * 100.0,
            need.max(n + 2)
        ),
    )
}

/// The gate's overall outcome: any regression; else any inconclusive; else
/// any improvement; else pass.
pub fn overall(js: &[MetricJudgement]) -> Outcome {
    // Outcome's order is the precedence.
    js.iter()
        .map(|j| j.outcome)
        .max()
        .unwrap_or(Outcome::Inconclusive)
}

/// Engram's compare script: one run before, one after, "regression" when a
/// metric is worse by more than `threshold` (±5%).
#[derive(Debug, Clone, Serialize)]
pub struct OneRunRule {
    pub outcome: Outcome,
    /// Per metric: the change in the regression's direction.
    pub worse_by: Vec<(String, f64)>,
}

pub fn one_run_rule(metrics: &[MetricSpec], a: &[f64], b: &[f64], threshold: f64) -> OneRunRule {
    let worse_by: Vec<(String, f64)> = metrics
        .iter()
        .zip(a.iter().zip(b))
        .map(|(m, (&x, &y))| {
            let r = y / x;
            let w = match m.better {
                Better::Lower => r - 1.0,
                Better::Higher => 1.0 - r,
            };
            (m.name.clone(), w)
        })
        .collect();
    let outcome = if worse_by.iter().any(|(_, w)| *w > threshold) {
        Outcome::Regression
    } else if worse_by.iter().any(|(_, w)| *w < -threshold) {
        Outcome::Improvement
    } else {
        Outcome::Pass
    };
    OneRunRule { outcome, worse_by }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use rand_distr::{Distribution, LogNormal};

    fn specs() -> Vec<MetricSpec> {
        ["p99", "throughput"]
            .iter()
            .map(|s| MetricSpec::parse(s).unwrap())
            .collect()
    }

    fn rule() -> Rule {
        Rule {
            threshold: 0.05,
            alpha: 0.05,
            alpha_look: 0.05,
        }
    }

    /// Runs with 2% noise: a 10% slower B is a regression on both metrics;
    /// identical distributions pass; the direction of throughput is respected.
    #[test]
    fn planted_change_is_found_and_control_passes() {
        let mut rng = StdRng::seed_from_u64(9);
        let noise = LogNormal::new(0.0, 0.02).unwrap();
        let mut sample = |scale: f64, n: usize| -> Vec<f64> {
            (0..n).map(|_| scale * noise.sample(&mut rng)).collect()
        };
        let a = vec![sample(10.0, 10), sample(1000.0, 10)];
        let slow = vec![sample(11.0, 10), sample(1000.0 / 1.1, 10)];
        let js = judge(&specs(), &a, &slow, rule());
        assert!(
            js.iter().all(|j| j.outcome == Outcome::Regression),
            "{js:#?}"
        );
        assert_eq!(overall(&js), Outcome::Regression);
        assert!(js[1].worse_by > 0.05 && js[1].ratio < 1.0);
        let same = vec![sample(10.0, 10), sample(1000.0, 10)];
        let js = judge(&specs(), &a, &same, rule());
        assert_eq!(overall(&js), Outcome::Pass, "{js:#?}");
        let fast = vec![sample(9.0, 10), sample(1100.0, 10)];
        let js = judge(&specs(), &a, &fast, rule());
        assert_eq!(overall(&js), Outcome::Improvement, "{js:#?}");
    }

    /// Very noisy runs (20%) and a 5% change with 5 runs a side: neither shown.
    #[test]
    fn noise_gives_inconclusive_with_advice() {
        let mut rng = StdRng::seed_from_u64(4);
        let noise = LogNormal::new(0.0, 0.2).unwrap();
        let a = vec![(0..5).map(|_| 10.0 * noise.sample(&mut rng)).collect()];
        let b = vec![(0..5).map(|_| 10.5 * noise.sample(&mut rng)).collect()];
        let js = judge(&specs()[..1], &a, &b, rule());
        assert_eq!(js[0].outcome, Outcome::Inconclusive, "{js:#?}");
        assert!(js[0].text.contains("repetitions a side"), "{}", js[0].text);
    }

    #[test]
    fn exit_codes_and_one_run_rule() {
        assert_eq!(Outcome::Regression.exit_code(), 1);
        assert_eq!(Outcome::Inconclusive.exit_code(), 3);
        assert_eq!(Outcome::Improvement.exit_code(), 0);
        let r = one_run_rule(&specs(), &[10.0, 1000.0], &[10.2, 940.0], 0.05);
        assert_eq!(r.outcome, Outcome::Regression);
        assert!((r.worse_by[1].1 - 0.06).abs() < 1e-9);
        let r = one_run_rule(&specs(), &[10.0, 1000.0], &[10.4, 990.0], 0.05);
        assert_eq!(r.outcome, Outcome::Pass);
    }
}
