//! A soak's verdicts: per resource, the Mann–Kendall trend (Hamed–Rao
//! corrected) and the Sen slope per hour over the samples after the warm-up,
//! against the limit.

use crate::report::schema::soak::{
    BaselineDifference, Limits, Resource, ResourceTrend, Sample, SoakReport, TrendVerdict,
    WindowPoint,
};
use crate::stats::trend::{bin, mann_kendall};

/// Points tested at most (consecutive samples binned to their medians): keeps
/// a day of 10 s samples to O(500²) pairs.
pub const MAX_TESTED: usize = 500;

/// Fewest samples after the warm-up for a verdict.
pub const MIN_SAMPLES: usize = 10;

/// Times (s) at which the target's pid changed.
pub fn restarts(samples: &[Sample]) -> Vec<f64> {
    samples
        .windows(2)
        .filter(|w| w[0].pid != w[1].pid)
        .map(|w| w[1].t_s)
        .collect()
}

/// Every resource's trend.
pub fn trends(r: &SoakReport) -> Vec<ResourceTrend> {
    let restarts = restarts(&r.samples);
    // Process resources restart with the process: only the last lifetime
    // counts, after a warm-up of its own (a fresh server settles again).
    let since = restarts.last().copied().unwrap_or(0.0) + r.settings.warmup_s;
    let proc_samples: Vec<&Sample> = r.samples.iter().filter(|s| s.t_s >= since).collect();
    let windows: Vec<&WindowPoint> = r
        .windows
        .iter()
        .filter(|w| w.t_s >= r.settings.warmup_s)
        .collect();
    Resource::ALL
        .iter()
        .map(|&res| {
            let (points, from) = match res {
                Resource::Rss => (
                    proc_samples
                        .iter()
                        .map(|s| (s.t_s, s.rss_bytes as f64 / 1e6))
                        .collect(),
                    since,
                ),
                Resource::OpenFds => (
                    proc_samples
                        .iter()
                        .map(|s| (s.t_s, s.open_fds as f64))
                        .collect(),
                    since,
                ),
                Resource::Threads => (
                    proc_samples
                        .iter()
                        .map(|s| (s.t_s, s.threads as f64))
                        .collect(),
                    since,
                ),
                Resource::P99 => (
                    windows
                        .iter()
                        .filter_map(|w| w.p99_ms.map(|p| (w.t_s, p)))
                        .collect::<Vec<_>>(),
                    r.settings.warmup_s,
                ),
            };
            judge(res, &points, from, &r.settings.limits)
        })
        .collect()
}

/// One resource's verdict over `(t_s, value)` points (values in MB for RSS,
/// ms for p99, counts otherwise).
pub fn judge(res: Resource, points: &[(f64, f64)], from_s: f64, limits: &Limits) -> ResourceTrend {
    let limit = match res {
        Resource::Rss => limits.rss_mb_per_h,
        Resource::P99 => limits.p99_pct_per_h,
        Resource::OpenFds => limits.fds_per_h,
        Resource::Threads => limits.threads_per_h,
    };
    let source = match res {
        Resource::P99 => "timer",
        _ => "software",
    };
    let tested = bin(points, MAX_TESTED);
    let test = (points.len() >= MIN_SAMPLES)
        .then(|| mann_kendall(&tested))
        .flatten();
    let Some(t) = test else {
        return ResourceTrend {
            resource: res,
            verdict: TrendVerdict::TooFewSamples,
            slope: None,
            slope_lo: None,
            slope_hi: None,
            unit: res.unit().into(),
            limit,
            test: None,
            samples: points.len(),
            from_s,
            source: source.into(),
            line: format!(
                "{res}: not tested: {} sample(s) after {from_s:.0} s, {MIN_SAMPLES} needed (run longer or sample more often)",
                points.len()
            ),
        };
    };
    // Per second → per hour; p99 relative to its median level, in percent.
    let scale = match res {
        Resource::P99 => {
            let level = crate::stats::median(&points.iter().map(|p| p.1).collect::<Vec<_>>());
            if level > 0.0 {
                3600.0 / level * 100.0
            } else {
                0.0
            }
        }
        _ => 3600.0,
    };
    let (slope, lo, hi) = (t.slope * scale, t.slope_lo * scale, t.slope_hi * scale);
    let verdict = if !t.significant() || slope == 0.0 {
        TrendVerdict::NoTrend
    } else if slope < 0.0 {
        TrendVerdict::Falling
    } else if slope >= limit {
        TrendVerdict::OverLimit
    } else {
        TrendVerdict::RisingBelowLimit
    };
    let unit = res.unit();
    let what = match verdict {
        TrendVerdict::OverLimit => format!("{}, over the {limit} {unit} limit", res.growth_name()),
        TrendVerdict::RisingBelowLimit => format!("rising, below the {limit} {unit} limit"),
        TrendVerdict::NoTrend => "no trend".into(),
        TrendVerdict::Falling => "falling".into(),
        TrendVerdict::TooFewSamples => unreachable!("handled above"),
    };
    ResourceTrend {
        resource: res,
        verdict,
        slope: Some(slope),
        slope_lo: Some(lo),
        slope_hi: Some(hi),
        unit: unit.into(),
        limit,
        line: format!(
            "{res}: {what}: {slope:+.3} {unit} (95% CI {lo:+.3} to {hi:+.3}); Mann–Kendall p = {:.2e} \
             (variance ×{:.2} for autocorrelation), {} samples from {from_s:.0} s",
            t.p,
            t.autocorrelation_factor,
            points.len()
        ),
        test: Some(t),
        samples: points.len(),
        from_s,
        source: source.into(),
    }
}

/// Each resource's slope against the baselines' (clean soaks of the same
/// scenario). This run's own background drift is unknown: it is one more draw
/// from the baselines' distribution, so the difference's CI combines this
/// run's slope CI (as a normal standard error, half-width / 1.96) with the
/// baselines' run-to-run spread as a prediction, sd·√(1 + 1/k) — not the
/// standard error of their mean, which only says how well their mean is known.
/// With one baseline, its own CI stands in for the spread.
pub fn versus(trends: &[ResourceTrend], baselines: &[SoakReport]) -> Vec<BaselineDifference> {
    const Z: f64 = 1.96;
    let mut out = Vec::new();
    for t in trends {
        let (Some(s), Some(lo), Some(hi)) = (t.slope, t.slope_lo, t.slope_hi) else {
            continue;
        };
        let theirs: Vec<&ResourceTrend> = baselines
            .iter()
            .filter_map(|b| b.trends.iter().find(|x| x.resource == t.resource))
            .filter(|x| x.slope.is_some())
            .collect();
        if theirs.is_empty() {
            continue;
        }
        let slopes: Vec<f64> = theirs.iter().filter_map(|x| x.slope).collect();
        let k = slopes.len() as f64;
        let mean = slopes.iter().sum::<f64>() / k;
        let se_base = if slopes.len() >= 2 {
            let var = slopes.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0);
            (var * (1.0 + 1.0 / k)).sqrt()
        } else {
            let b = theirs[0];
            (b.slope_hi.unwrap_or(mean) - b.slope_lo.unwrap_or(mean)) / (2.0 * Z)
        };
        let se_this = (hi - lo) / (2.0 * Z);
        let d = s - mean;
        let half = Z * (se_this * se_this + se_base * se_base).sqrt();
        out.push(BaselineDifference {
            resource: t.resource,
            unit: t.unit.clone(),
            baseline_runs: slopes.len(),
            baseline_slope: mean,
            slope: s,
            difference: d,
            lo: d - half,
            hi: d + half,
            line: format!(
                "{}: {d:+.3} {} against {} clean baseline soak(s) (theirs {mean:+.3}, this {s:+.3}; 95% CI {:+.3} to {:+.3})",
                t.resource,
                t.unit,
                slopes.len(),
                d - half,
                d + half
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            rss_mb_per_h: 1.0,
            ..Limits::default()
        }
    }

    /// RSS sampled every 10 s for 15 min around 50 MB with allocator-like
    /// wobble (a deterministic pseudo-random walk that returns to its level).
    fn rss(leak_mb_per_h: f64) -> Vec<(f64, f64)> {
        let mut x = 0.0f64;
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        (0..90)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                x = 0.7 * x + 0.02 * u;
                let t = i as f64 * 10.0;
                (t, 50.0 + x + leak_mb_per_h * t / 3600.0)
            })
            .collect()
    }

    #[test]
    fn a_planted_leak_is_over_the_limit_with_its_rate_in_the_interval() {
        let v = judge(Resource::Rss, &rss(5.0), 0.0, &limits());
        assert_eq!(v.verdict, TrendVerdict::OverLimit, "{}", v.line);
        let (lo, hi) = (v.slope_lo.unwrap(), v.slope_hi.unwrap());
        assert!(lo <= 5.0 && 5.0 <= hi, "{}", v.line);
        assert!(
            v.line.starts_with("RSS: leak, over the 1 MB/h limit: +"),
            "{}",
            v.line
        );
    }

    #[test]
    fn a_flat_series_is_not_a_leak_and_a_slow_rise_is_below_the_limit() {
        assert_eq!(
            judge(Resource::Rss, &rss(0.0), 0.0, &limits()).verdict,
            TrendVerdict::NoTrend
        );
        let slow = judge(Resource::Rss, &rss(0.5), 0.0, &limits());
        assert_eq!(
            slow.verdict,
            TrendVerdict::RisingBelowLimit,
            "{}",
            slow.line
        );
    }

    #[test]
    fn p99_drift_is_relative_to_its_level() {
        // 10 ms rising 0.5 ms/h = 5 %/h: over a 2 %/h limit.
        let pts: Vec<(f64, f64)> = (0..100)
            .map(|i| {
                (
                    i as f64 * 60.0,
                    10.0 + 0.5 * i as f64 / 60.0 + if i % 2 == 0 { 0.01 } else { -0.01 },
                )
            })
            .collect();
        let v = judge(Resource::P99, &pts, 0.0, &Limits::default());
        assert_eq!(v.verdict, TrendVerdict::OverLimit, "{}", v.line);
        assert!((v.slope.unwrap() - 4.9).abs() < 0.3, "{}", v.line);
        assert!(v.line.starts_with("p99: drift"), "{}", v.line);
    }

    #[test]
    fn constant_counts_have_no_trend_and_short_runs_are_not_judged() {
        let fds: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, 12.0)).collect();
        assert_eq!(
            judge(Resource::OpenFds, &fds, 0.0, &limits()).verdict,
            TrendVerdict::NoTrend
        );
        let v = judge(Resource::Threads, &fds[..5], 0.0, &limits());
        assert_eq!(v.verdict, TrendVerdict::TooFewSamples);
        assert!(v.line.contains("5 sample(s)"), "{}", v.line);
    }

    #[test]
    fn the_difference_from_clean_baselines_takes_out_the_servers_own_drift() {
        let lim = limits();
        let leak = judge(
            Resource::Rss,
            &rss(5.0)
                .iter()
                .map(|&(t, x)| (t, x + 0.5 * t / 3600.0))
                .collect::<Vec<_>>(),
            0.0,
            &lim,
        );
        let base = |drift: f64| {
            let t = judge(
                Resource::Rss,
                &rss(0.0)
                    .iter()
                    .map(|&(t, x)| (t, x + drift * t / 3600.0))
                    .collect::<Vec<_>>(),
                0.0,
                &lim,
            );
            SoakReport {
                schema_version: 1,
                kind: "soak".into(),
                settings: crate::report::schema::soak::SoakSettings {
                    target: "embedded".into(),
                    serve_args: vec![],
                    scenario: "soak".into(),
                    scenario_file: None,
                    rate: None,
                    duration_s: 900.0,
                    interval_s: 10.0,
                    checkpoint_s: 300.0,
                    warmup_s: 0.0,
                    seed: 1,
                    limits: lim.clone(),
                },
                started_at: String::new(),
                start_unix_s: 0.0,
                status: "complete".into(),
                load_s: 900.0,
                segments: vec![],
                samples: vec![],
                windows: vec![],
                trends: vec![t],
                target_restarts: vec![],
                vs_baseline: vec![],
                files: vec![],
                warnings: vec![],
            }
        };
        let d = versus(&[leak], &[base(0.4), base(0.5), base(0.6)]);
        assert_eq!(d.len(), 1);
        assert!((d[0].baseline_slope - 0.5).abs() < 0.1, "{}", d[0].line);
        assert!(d[0].lo <= 5.0 && 5.0 <= d[0].hi, "{}", d[0].line);
        assert!(d[0].line.starts_with("RSS: +"), "{}", d[0].line);
    }

    #[test]
    fn a_restart_is_found_where_the_pid_changes() {
        let s = |t: f64, pid: u32| Sample {
            t_s: t,
            pid,
            rss_bytes: 0,
            cpu_user_s: 0.0,
            cpu_sys_s: 0.0,
            threads: 0,
            open_fds: 0,
            ctx_voluntary: 0,
            ctx_involuntary: 0,
        };
        assert_eq!(
            restarts(&[s(0.0, 1), s(10.0, 1), s(20.0, 2), s(30.0, 2)]),
            vec![20.0]
        );
    }
}
