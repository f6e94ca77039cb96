//! Plain-language verdicts for A/B comparisons, including "inconclusive".

use serde::Serialize;

use super::bootstrap::Interval;

/// Ratios within ±3% of 1 count as "no practical difference": run-to-run drift
/// on a quiet machine is of that order.
pub const EQUIVALENCE_BAND: f64 = 0.03;
/// Fewer repetitions than this cannot support a bootstrap CI worth reporting.
pub const MIN_REPETITIONS: usize = 3;

/// What a comparison found. Serialised in kebab case (`no-difference`, …),
/// the report's contract since schema 1.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Slower,
    Faster,
    NoDifference,
    MeetsTarget,
    MissesTarget,
    Inconclusive,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Slower => "slower",
            Outcome::Faster => "faster",
            Outcome::NoDifference => "no-difference",
            Outcome::MeetsTarget => "meets-target",
            Outcome::MissesTarget => "misses-target",
            Outcome::Inconclusive => "inconclusive",
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub conclusive: bool,
    pub text: String,
}

/// Verdict on `ratio` = baseline throughput / treatment throughput (> 1: the
/// treatment is slower), with its 95% CI.
pub fn ab_verdict(
    treatment: &str,
    baseline: &str,
    ratio: f64,
    ci: Interval,
    n: usize,
    cv_treatment: f64,
    cv_baseline: f64,
) -> Verdict {
    let ci_text = format!("95% CI {:.2}–{:.2}, {n} repetitions each", ci.lo, ci.hi);
    let v = |outcome: Outcome, conclusive: bool, text: String| Verdict {
        outcome,
        conclusive,
        text,
    };
    if n < MIN_REPETITIONS {
        return v(
            Outcome::Inconclusive,
            false,
            format!(
                "inconclusive: only {n} repetition(s) per variant; at least {MIN_REPETITIONS} are needed for a confidence interval"
            ),
        );
    }
    if !(ratio.is_finite() && ci.lo.is_finite() && ci.hi.is_finite()) || ratio <= 0.0 {
        return v(
            Outcome::Inconclusive,
            false,
            "inconclusive: a variant did no work, so there is no ratio".into(),
        );
    }
    if ci.lo > 1.0 && ratio >= 1.0 + EQUIVALENCE_BAND {
        return v(
            Outcome::Slower,
            true,
            format!("{treatment} is {ratio:.2}x slower than {baseline} ({ci_text})"),
        );
    }
    if ci.hi < 1.0 && ratio <= 1.0 - EQUIVALENCE_BAND {
        // Speak in the speed-up's own terms: its CI is the inverted ratio CI.
        return v(
            Outcome::Faster,
            true,
            format!(
                "{treatment} is {:.2}x faster than {baseline} (95% CI {:.2}–{:.2}, {n} repetitions each)",
                1.0 / ratio,
                1.0 / ci.hi,
                1.0 / ci.lo
            ),
        );
    }
    if ci.lo >= 1.0 - EQUIVALENCE_BAND && ci.hi <= 1.0 + EQUIVALENCE_BAND {
        return v(
            Outcome::NoDifference,
            true,
            format!(
                "no measurable difference between {treatment} and {baseline}: ratio {ratio:.3} within ±{:.0}% ({ci_text})",
                EQUIVALENCE_BAND * 100.0
            ),
        );
    }
    let noise = cv_treatment.max(cv_baseline);
    v(
        Outcome::Inconclusive,
        false,
        format!(
            "inconclusive: ratio {ratio:.2} but the {ci_text} does not settle it; run-to-run CV up to {:.0}%: \
             raise --repetitions or --duration, or quiet the machine",
            noise * 100.0
        ),
    )
}

/// One comparison's figures from its measured values: `worse` is the series
/// expected to be worse (the baseline's throughput, or the treatment's p99),
/// `better` the other. Shared by the analysis and by the runner's adaptive
/// repetitions, which stop once this verdict is conclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    /// median(worse) / median(better): > 1 means the treatment is worse.
    pub ratio: f64,
    pub ci: Interval,
    /// better / worse, the share the treatment retains, with its CI.
    pub retained_ci: Interval,
    pub verdict: Verdict,
}

/// The verdict for `cmp` from the treatment's and the baseline's values
/// (throughputs or p99s, as `cmp.on` says), one per repetition.
pub fn compare(cmp: &hwprof_workloads::Comparison, treat: &[f64], base: &[f64]) -> Compared {
    use hwprof_workloads::CompareOn;
    // ratio > 1 always means "the treatment is worse": lower throughput, or
    // higher latency.
    let (worse, better) = match cmp.on {
        CompareOn::Throughput => (base, treat),
        CompareOn::LatencyP99 => (treat, base),
    };
    let ratio = super::median(worse) / super::median(better);
    let ci = super::ratio_of_medians_ci(worse, better, 0.95);
    let retained_ci = super::ratio_of_medians_ci(better, worse, 0.95);
    let cv = |v: &[f64]| super::Summary::of(v).map_or(f64::NAN, |s| s.cv);
    let n = treat.len().min(base.len());
    let verdict = match cmp.target {
        Some(t) => target_verdict_on(
            cmp.treatment,
            cmp.baseline,
            1.0 / ratio,
            retained_ci,
            t,
            n,
            cmp.on == CompareOn::LatencyP99,
        ),
        None => ab_verdict(
            cmp.treatment,
            cmp.baseline,
            ratio,
            ci,
            n,
            cv(treat),
            cv(base),
        ),
    };
    Compared {
        ratio,
        ci,
        retained_ci,
        verdict,
    }
}

/// Verdict against an engineering target: `retained` = treatment throughput /
/// baseline throughput with its 95% CI; the target is met when the whole CI is at
/// or above it, missed when the whole CI is below, otherwise inconclusive.
pub fn target_verdict(
    treatment: &str,
    baseline: &str,
    retained: f64,
    ci: Interval,
    target: f64,
    n: usize,
) -> Verdict {
    target_verdict_on(treatment, baseline, retained, ci, target, n, false)
}

/// As [`target_verdict`]; with `latency` the figures read as added latency
/// ("interference"): `retained` = baseline p99 / treatment p99.
pub fn target_verdict_on(
    treatment: &str,
    baseline: &str,
    retained: f64,
    ci: Interval,
    target: f64,
    n: usize,
    latency: bool,
) -> Verdict {
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let added = |r: f64| format!("{:+.1}%", (1.0 / r - 1.0) * 100.0);
    let (head, goal) = if latency {
        (
            format!(
                "{treatment}'s p99 latency is {} vs {baseline} (95% CI {} to {}, {n} repetitions each)",
                added(retained),
                added(ci.hi),
                added(ci.lo)
            ),
            format!("≤ {} interference target", added(target)),
        )
    } else {
        (
            format!(
                "{treatment} keeps {} of {baseline}'s throughput (95% CI {}–{}, {n} repetitions each)",
                pct(retained),
                pct(ci.lo),
                pct(ci.hi)
            ),
            format!("≥ {} target", pct(target)),
        )
    };
    let v = |outcome: Outcome, conclusive: bool, text: String| Verdict {
        outcome,
        conclusive,
        text,
    };
    if n < MIN_REPETITIONS || !(retained.is_finite() && ci.lo.is_finite() && ci.hi.is_finite()) {
        return v(
            Outcome::Inconclusive,
            false,
            format!("{head}: too few repetitions to judge the {goal}"),
        );
    }
    if ci.lo >= target {
        v(
            Outcome::MeetsTarget,
            true,
            format!("{head}: meets the {goal}"),
        )
    } else if ci.hi < target {
        v(
            Outcome::MissesTarget,
            true,
            format!("{head}: misses the {goal}"),
        )
    } else {
        v(
            Outcome::Inconclusive,
            false,
            format!("{head}: the CI straddles the {goal}; raise --repetitions"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(lo: f64, hi: f64) -> Interval {
        Interval { lo, hi }
    }

    #[test]
    fn clear_slowdown() {
        let v = ab_verdict("packed", "padded", 3.2, iv(2.9, 3.6), 5, 0.05, 0.04);
        assert_eq!(v.outcome, Outcome::Slower);
        assert!(v.conclusive);
        assert!(
            v.text.starts_with("packed is 3.20x slower than padded"),
            "{}",
            v.text
        );
    }

    #[test]
    fn clear_speedup_and_equivalence() {
        assert_eq!(
            ab_verdict("a", "b", 0.5, iv(0.45, 0.55), 5, 0.0, 0.0).outcome,
            Outcome::Faster
        );
        assert_eq!(
            ab_verdict("a", "b", 1.01, iv(0.99, 1.02), 5, 0.0, 0.0).outcome,
            Outcome::NoDifference
        );
    }

    #[test]
    fn targets() {
        assert_eq!(
            target_verdict("z", "u", 0.95, iv(0.93, 0.97), 0.9, 5).outcome,
            Outcome::MeetsTarget
        );
        assert_eq!(
            target_verdict("z", "u", 0.6, iv(0.55, 0.65), 0.7, 5).outcome,
            Outcome::MissesTarget
        );
        assert_eq!(
            target_verdict("z", "u", 0.9, iv(0.85, 0.95), 0.9, 5).outcome,
            Outcome::Inconclusive
        );
        assert_eq!(
            target_verdict("z", "u", 0.95, iv(0.93, 0.97), 0.9, 2).outcome,
            Outcome::Inconclusive
        );
    }

    #[test]
    fn noise_and_small_samples_are_inconclusive() {
        let v = ab_verdict("a", "b", 1.3, iv(0.8, 1.9), 5, 0.4, 0.1);
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert!(v.text.contains("40%"), "{}", v.text);
        assert!(!ab_verdict("a", "b", 3.0, iv(3.0, 3.0), 2, 0.0, 0.0).conclusive);
        assert!(!ab_verdict("a", "b", f64::INFINITY, iv(1.0, 2.0), 5, 0.0, 0.0).conclusive);
    }
}
