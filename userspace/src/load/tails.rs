//! Latency tails (Engram's task 006, first half): p99, p99.9, p99.99 and the
//! maximum, each with a 95% confidence interval and the samples it needs.
//!
//! The interval is the distribution-free one from order statistics: with n
//! samples, the number below the true q-quantile is Binomial(n, q), so the
//! ranks nq ∓ 1.96·√(nq(1−q)) bound it at 95% (normal approximation, fair once
//! ten samples lie beyond the quantile, which is also when one is reported).
//! A bootstrap of the histogram would need no more data and does worse at the
//! extremes: resamples cannot go beyond the largest value seen. A quantile with
//! fewer than 10 samples beyond it is refused, with the samples it needs and
//! how long that takes at the run's achieved rate. The maximum is the largest
//! of n samples: it has no interval (it only grows with n) and is given as such.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// z for a two-sided 95% interval.
const Z: f64 = 1.96;
/// Samples beyond a quantile before it is reported.
pub const BEYOND: f64 = 10.0;

/// One tail figure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tail {
    /// p99, p99.9, p99.99, max.
    pub quantile: String,
    pub value_ms: Option<f64>,
    pub ci_lo_ms: Option<f64>,
    pub ci_hi_ms: Option<f64>,
    /// Samples at or beyond it.
    pub beyond: u64,
    /// Samples the figure needs (10 beyond it), and the seconds more at the
    /// achieved rate to get them (0 when it has them).
    pub needs_samples: u64,
    pub more_seconds: f64,
    pub line: String,
}

/// The tails of `h` (latencies in ns) from a run that achieved `rate` req/s.
pub fn tails(h: &Histogram<u64>, rate: f64) -> Vec<Tail> {
    let n = h.len();
    let ms = |v: u64| v as f64 / 1e6;
    let at_rank = |r: f64| -> u64 {
        // Rank r (1-based) as a quantile of the histogram.
        let q = (r / n as f64).clamp(0.0, 1.0);
        h.value_at_quantile(q)
    };
    let mut out = Vec::new();
    for (name, q) in [("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999)] {
        let needs = (BEYOND / (1.0 - q)).round() as u64;
        let beyond = ((1.0 - q) * n as f64).floor() as u64;
        if n < needs {
            let more = if rate > 0.0 {
                (needs - n) as f64 / rate
            } else {
                f64::INFINITY
            };
            out.push(Tail {
                quantile: name.into(),
                value_ms: None,
                ci_lo_ms: None,
                ci_hi_ms: None,
                beyond,
                needs_samples: needs,
                more_seconds: more,
                line: format!(
                    "{name}: refused: {n} samples, {needs} needed (10 beyond it){}",
                    if more.is_finite() {
                        format!(
                            "; about {} more at {rate:.0} req/s",
                            crate::text::duration(more)
                        )
                    } else {
                        String::new()
                    }
                ),
            });
            continue;
        }
        let nf = n as f64;
        let sd = (nf * q * (1.0 - q)).sqrt();
        let lo_rank = (nf * q - Z * sd).floor().max(1.0);
        let hi_rank = (nf * q + Z * sd).ceil() + 1.0;
        let value = ms(h.value_at_quantile(q));
        let lo = ms(at_rank(lo_rank));
        let hi = ms(at_rank(hi_rank.min(nf)));
        out.push(Tail {
            quantile: name.into(),
            value_ms: Some(value),
            ci_lo_ms: Some(lo),
            ci_hi_ms: Some(hi),
            beyond,
            needs_samples: needs,
            more_seconds: 0.0,
            line: format!(
                "{name}: {value:.3} ms (95% CI {lo:.3}–{hi:.3}{}), {beyond} samples beyond it",
                if hi_rank > nf {
                    ", the upper end is the max"
                } else if lo == hi {
                    ", narrower than the histogram's 3 significant digits"
                } else {
                    ""
                }
            ),
        });
    }
    if n > 0 {
        out.push(Tail {
            quantile: "max".into(),
            value_ms: Some(ms(h.max())),
            ci_lo_ms: None,
            ci_hi_ms: None,
            beyond: 1,
            needs_samples: 1,
            more_seconds: 0.0,
            line: format!(
                "max: {:.3} ms, the largest of {n} samples (no interval: a maximum only grows with the samples)",
                ms(h.max())
            ),
        });
    }
    out
}

/// Run-queue delays at least this long are a cause worth naming.
pub const ATTRIBUTION_MIN_DELAY_NS: u64 = 1_000_000;

/// The slow requests lined up with the target threads' run-queue delays.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attribution {
    /// Which requests are slow: at or above this quantile of latency.
    pub slow_quantile: String,
    pub slow_threshold_ms: f64,
    pub slow: u64,
    /// Slow requests whose time at the target (sent → done) overlapped a
    /// run-queue delay ≥ `min_delay_ms` of one of the target's threads.
    pub slow_overlapping: u64,
    /// The control: requests at or below the median, same test (chance).
    pub control: u64,
    pub control_overlapping: u64,
    pub min_delay_ms: f64,
    /// Delay events streamed, and those lost (ring buffer full or over the cap).
    pub events: u64,
    pub events_lost: u64,
    pub source: String,
    pub line: String,
}

/// Line up `requests` ((intended, sent, done) ns since the run's start, the
/// run's start being `t0_mono` in CLOCK_MONOTONIC ns) with run-queue `events`
/// (CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns). Slow: latency at or above
/// p99.9 (p99 with fewer than 10 000 requests). None without 1000 requests.
pub fn attribute(
    requests: &[[u64; 3]],
    events: &[hwprof_probes_common::DelayEvent],
    t0_mono: u64,
    lost: u64,
) -> Option<Attribution> {
    if requests.len() < 1000 {
        return None;
    }
    let mut lat: Vec<u64> = requests.iter().map(|r| r[2].saturating_sub(r[0])).collect();
    lat.sort_unstable();
    let (name, q) = if requests.len() >= 10_000 {
        ("p99.9", 0.999)
    } else {
        ("p99", 0.99)
    };
    let at = |q: f64| lat[((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1];
    let (threshold, median) = (at(q), at(0.5));
    // The union of long delays, on the run's clock, sorted and merged.
    let mut spans: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| {
            e.kind == hwprof_probes_common::EVENT_RUNQ
                && e.end_ns.saturating_sub(e.start_ns) >= ATTRIBUTION_MIN_DELAY_NS
        })
        .map(|e| {
            (
                e.start_ns.saturating_sub(t0_mono),
                e.end_ns.saturating_sub(t0_mono),
            )
        })
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let overlaps = |a: u64, b: u64| {
        // The first merged span ending after a; it overlaps if it starts before b.
        let i = merged.partition_point(|s| s.1 <= a);
        merged.get(i).is_some_and(|s| s.0 < b)
    };
    let (mut slow, mut slow_hit, mut control, mut control_hit) = (0u64, 0u64, 0u64, 0u64);
    for r in requests {
        let l = r[2].saturating_sub(r[0]);
        let hit = overlaps(r[1], r[2]);
        if l >= threshold {
            slow += 1;
            slow_hit += u64::from(hit);
        } else if l <= median {
            control += 1;
            control_hit += u64::from(hit);
        }
    }
    let pct = |a: u64, b: u64| a as f64 / b.max(1) as f64 * 100.0;
    let line = format!(
        "{:.0}% of the {slow} requests at or above {name} ({:.2} ms) overlapped a run-queue delay ≥ {} ms \
         of one of the target's threads while at the target; {:.0}% of the {control} requests at or \
         below the median did (chance){}",
        pct(slow_hit, slow),
        threshold as f64 / 1e6,
        ATTRIBUTION_MIN_DELAY_NS as f64 / 1e6,
        pct(control_hit, control),
        if lost > 0 {
            format!("; {lost} delay events were lost, so these are lower bounds")
        } else {
            String::new()
        }
    );
    Some(Attribution {
        slow_quantile: name.into(),
        slow_threshold_ms: threshold as f64 / 1e6,
        slow,
        slow_overlapping: slow_hit,
        control,
        control_overlapping: control_hit,
        min_delay_ms: ATTRIBUTION_MIN_DELAY_NS as f64 / 1e6,
        events: events.len() as u64,
        events_lost: lost,
        source: "probe (sched_switch/sched_wakeup, ring buffer) joined with timer".into(),
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(n: u64) -> Histogram<u64> {
        // Latencies 1 µs … n µs, one each.
        let mut h = crate::load::record::histogram();
        for i in 1..=n {
            h.record(i * 1000).unwrap();
        }
        h
    }

    #[test]
    fn a_tail_with_enough_samples_has_an_interval_around_it() {
        let t = tails(&uniform(100_000), 1000.0);
        let p999 = t.iter().find(|x| x.quantile == "p99.9").unwrap();
        // True p99.9 of 1..100000 µs is 99.9 ms; sd of the rank is √99.9 ≈ 10.
        let (lo, v, hi) = (
            p999.ci_lo_ms.unwrap(),
            p999.value_ms.unwrap(),
            p999.ci_hi_ms.unwrap(),
        );
        assert!((v - 99.9).abs() < 0.1, "{}", p999.line);
        // ±10 ranks are ±10 µs here, below the histogram's resolution at 100 ms.
        assert!(lo <= v && v <= hi && hi - lo <= 0.1, "{}", p999.line);
        assert!(p999.line.contains("3 significant digits"), "{}", p999.line);
        let p9999 = t.iter().find(|x| x.quantile == "p99.99").unwrap();
        assert!(
            p9999.value_ms.is_some(),
            "100000 samples are enough: {}",
            p9999.line
        );
        assert!(t.last().unwrap().line.contains("largest of 100000"));
    }

    #[test]
    fn slow_requests_that_overlapped_a_delay_are_attributed_and_fast_ones_are_the_control() {
        use hwprof_probes_common::{DelayEvent, EVENT_RUNQ};
        let t0 = 5_000_000_000u64;
        // 20 000 requests 10 ms apart, each 0.2 ms at the target; every 100th is
        // slow (5 ms) and sits on a 2 ms run-queue delay; one fast request does too.
        let mut reqs = Vec::new();
        let mut events = Vec::new();
        for i in 0..20_000u64 {
            let sent = i * 10_000_000;
            let slow = i % 100 == 0;
            let done = sent + if slow { 5_000_000 } else { 200_000 };
            reqs.push([sent, sent, done]);
            if slow || i == 7 {
                events.push(DelayEvent {
                    tid: 9,
                    kind: EVENT_RUNQ,
                    start_ns: t0 + sent + 10_000,
                    end_ns: t0 + sent + 2_010_000,
                });
            }
        }
        // A short delay is not a cause.
        events.push(DelayEvent {
            tid: 9,
            kind: EVENT_RUNQ,
            start_ns: t0 + 1_000_000 * 3 + 1,
            end_ns: t0 + 1_000_000 * 3 + 500_000,
        });
        let a = attribute(&reqs, &events, t0, 0).unwrap();
        assert_eq!(a.slow_quantile, "p99.9");
        assert_eq!((a.slow, a.slow_overlapping), (200, 200));
        assert_eq!(a.control_overlapping, 1, "{}", a.line);
        assert!(
            a.line
                .starts_with("100% of the 200 requests at or above p99.9 (5.00 ms)"),
            "{}",
            a.line
        );
        // Without the events nothing is attributed.
        let none = attribute(&reqs, &[], t0, 0).unwrap();
        assert_eq!(none.slow_overlapping, 0);
        assert!(attribute(&reqs[..999], &events, t0, 0).is_none());
    }

    #[test]
    fn an_extreme_tail_from_too_few_samples_is_refused_with_how_long_to_run() {
        let t = tails(&uniform(20_000), 500.0);
        let p9999 = t.iter().find(|x| x.quantile == "p99.99").unwrap();
        assert_eq!(p9999.value_ms, None);
        assert_eq!(p9999.needs_samples, 100_000);
        assert!((p9999.more_seconds - 160.0).abs() < 1e-9);
        assert!(
            p9999.line.contains("about 3 min more at 500 req/s"),
            "{}",
            p9999.line
        );
        assert!(t
            .iter()
            .find(|x| x.quantile == "p99.9")
            .unwrap()
            .value_ms
            .is_some());
    }

    #[test]
    fn the_interval_covers_the_true_quantile_about_95_percent_of_the_time() {
        // Exponential latencies (mean 1 ms), 20 000 per run: p99's true value is
        // ln(100) ms. Count the runs whose interval holds it.
        use rand::{Rng, SeedableRng};
        let truth = 100f64.ln();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let runs = 200;
        let mut covered = 0;
        for _ in 0..runs {
            let mut h = crate::load::record::histogram();
            for _ in 0..20_000 {
                let u: f64 = rng.random();
                h.record((-(1.0 - u).ln() * 1e6) as u64 + 1000).unwrap();
            }
            let t = &tails(&h, 1000.0)[0];
            let shift = 0.001; // the +1 µs floor above
            if t.ci_lo_ms.unwrap() - shift <= truth && truth <= t.ci_hi_ms.unwrap() - shift + 0.005
            {
                covered += 1;
            }
        }
        // 95% nominal; 200 runs give a binomial sd of 1.5 points.
        assert!(
            (180..=199).contains(&covered),
            "covered {covered} of {runs}"
        );
    }
}
