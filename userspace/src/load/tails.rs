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

use super::record::KeptRequest;

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

/// Delays at least this long are a cause worth naming.
pub const ATTRIBUTION_MIN_DELAY_NS: u64 = 1_000_000;

/// The causes a request can be lined up with, as the probes stream them.
const CAUSES: [(u32, &str); 4] = [
    (hwprof_probes_common::EVENT_RUNQ, "run-queue delay"),
    (hwprof_probes_common::EVENT_FUTEX, "futex wait"),
    (
        hwprof_probes_common::EVENT_OFF_CPU,
        "off-CPU sleep (futex waits included)",
    ),
    (hwprof_probes_common::EVENT_MIGRATION, "migration"),
];

/// The name of an event kind.
pub fn cause_name(kind: u32) -> &'static str {
    CAUSES
        .iter()
        .find(|c| c.0 == kind)
        .map_or("unknown", |c| c.1)
}

/// One cause, and how many slow and control requests it overlapped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CauseOverlap {
    pub cause: String,
    /// Events of this kind streamed (delays of any length, migrations).
    pub events: u64,
    pub slow_overlapping: u64,
    pub control_overlapping: u64,
}

/// The slow requests lined up with the target threads' delays.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attribution {
    /// Which requests are slow: at or above this quantile of latency.
    pub slow_quantile: String,
    pub slow_threshold_ms: f64,
    pub slow: u64,
    /// The control: requests at or below the median, same test (chance).
    pub control: u64,
    /// A delay counts when it lasted `min_delay_ms` and, for a run-queue
    /// wait, overlapped the request's time at the target (sent → done); a
    /// futex wait or off-CPU sleep must lie within it (the serving thread
    /// slept and woke while the request waited: an idle worker woken by the
    /// request, or going idle once it has answered, is no cause); a
    /// migration counts when it happened within it.
    pub min_delay_ms: f64,
    /// "serving thread" when the target named the thread of each request
    /// (`x-hwprof-thread`, as hwprof serve does), otherwise "any of the
    /// target's threads".
    pub joined_on: String,
    /// Per cause, in the order run-queue, futex, off-CPU, migration; only
    /// the causes whose probe ran.
    pub causes: Vec<CauseOverlap>,
    /// Events streamed, and those lost (ring buffer full or over the cap).
    pub events: u64,
    pub events_lost: u64,
    pub source: String,
    pub line: String,
}

/// Merged spans of delays of one kind (and one thread), on the run's clock.
fn merged(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Some span of `spans` (sorted, disjoint) overlaps [a, b].
fn overlaps(spans: &[(u64, u64)], a: u64, b: u64) -> bool {
    let i = spans.partition_point(|s| s.1 <= a);
    spans.get(i).is_some_and(|s| s.0 < b)
}

/// Some span of `spans` (sorted by start) lies within [a, b].
fn within(spans: &[(u64, u64)], a: u64, b: u64) -> bool {
    let i = spans.partition_point(|s| s.0 < a);
    spans[i..].iter().take_while(|s| s.0 < b).any(|s| s.1 <= b)
}

/// Line up `requests` (ns since the run's start, the run's start being
/// `t0_mono` in CLOCK_MONOTONIC ns) with the probes' `events` (CLOCK_MONOTONIC,
/// the clock of bpf_ktime_get_ns) of the kinds in `streamed`. Slow: latency at
/// or above p99.9 (p99 with fewer than 10 000 requests). Each request is
/// joined with the events of the thread that served it when the target named
/// it for nearly all requests, else with those of all the target's threads.
/// None without 1000 requests.
pub fn attribute(
    requests: &[KeptRequest],
    events: &[hwprof_probes_common::DelayEvent],
    streamed: &[u32],
    t0_mono: u64,
    lost: u64,
) -> Option<Attribution> {
    use std::collections::HashMap;
    if requests.len() < 1000 {
        return None;
    }
    let latency = |r: &KeptRequest| r.done_ns.saturating_sub(r.intended_ns);
    let mut lat: Vec<u64> = requests.iter().map(latency).collect();
    lat.sort_unstable();
    let (name, q) = if requests.len() >= 10_000 {
        ("p99.9", 0.999)
    } else {
        ("p99", 0.99)
    };
    let at = |q: f64| lat[((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1];
    let (threshold, median) = (at(q), at(0.5));
    let named = requests.iter().filter(|r| r.thread != 0).count();
    let by_thread = named as f64 >= 0.99 * requests.len() as f64;
    let key = |tid: u32| if by_thread { tid } else { 0 };
    let mut causes = Vec::new();
    for &(kind, cause) in CAUSES.iter().filter(|c| streamed.contains(&c.0)) {
        let of_kind = events.iter().filter(|e| e.kind == kind);
        let point = kind == hwprof_probes_common::EVENT_MIGRATION;
        let waits = kind == hwprof_probes_common::EVENT_FUTEX
            || kind == hwprof_probes_common::EVENT_OFF_CPU;
        let mut spans: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
        for e in of_kind.clone() {
            if point || e.end_ns.saturating_sub(e.start_ns) >= ATTRIBUTION_MIN_DELAY_NS {
                spans.entry(key(e.tid)).or_default().push((
                    e.start_ns.saturating_sub(t0_mono),
                    e.end_ns.saturating_sub(t0_mono),
                ));
            }
        }
        // Run-queue waits merge into the time the thread was held up; waits
        // and points are judged by where each began.
        let spans: HashMap<u32, Vec<(u64, u64)>> = spans
            .into_iter()
            .map(|(k, mut v)| {
                if point || waits {
                    v.sort_unstable();
                    (k, v)
                } else {
                    (k, merged(v))
                }
            })
            .collect();
        let hit = |r: &KeptRequest| {
            let Some(s) = spans.get(&key(r.thread)) else {
                return false;
            };
            if point || waits {
                within(s, r.sent_ns, r.done_ns)
            } else {
                overlaps(s, r.sent_ns, r.done_ns)
            }
        };
        let (mut slow_hit, mut control_hit) = (0u64, 0u64);
        for r in requests {
            let l = latency(r);
            if l >= threshold {
                slow_hit += u64::from(hit(r));
            } else if l <= median {
                control_hit += u64::from(hit(r));
            }
        }
        causes.push(CauseOverlap {
            cause: cause.into(),
            events: of_kind.count() as u64,
            slow_overlapping: slow_hit,
            control_overlapping: control_hit,
        });
    }
    let slow = requests.iter().filter(|r| latency(r) >= threshold).count() as u64;
    let control = requests
        .iter()
        .filter(|r| latency(r) < threshold && latency(r) <= median)
        .count() as u64;
    let pct = |a: u64, b: u64| a as f64 / b.max(1) as f64 * 100.0;
    let joined_on = if by_thread {
        "serving thread"
    } else {
        "any of the target's threads"
    };
    // Lead with the cause that stands furthest above its chance level.
    let mut order: Vec<&CauseOverlap> = causes.iter().collect();
    order.sort_by(|a, b| {
        let ex =
            |c: &CauseOverlap| pct(c.slow_overlapping, slow) - pct(c.control_overlapping, control);
        ex(b).total_cmp(&ex(a))
    });
    let what = |c: &CauseOverlap| {
        let ms = ATTRIBUTION_MIN_DELAY_NS as f64 / 1e6;
        if c.cause == "migration" {
            "a migration".to_string()
        } else if c.cause == "run-queue delay" {
            format!("a run-queue delay ≥ {ms} ms")
        } else {
            let a = if c.cause.starts_with('o') { "an" } else { "a" };
            format!("{a} {} ≥ {ms} ms within it", c.cause)
        }
    };
    let mut line = match order.first() {
        Some(c) => format!(
            "{:.0}% of the {slow} requests at or above {name} ({:.2} ms) overlapped {} on {} \
             while at the target; {:.0}% of the {control} requests at or below the median did (chance)",
            pct(c.slow_overlapping, slow),
            threshold as f64 / 1e6,
            what(c),
            if by_thread { "their serving thread" } else { "one of the target's threads (the target does not name its serving threads)" },
            pct(c.control_overlapping, control),
        ),
        None => format!("{slow} requests at or above {name}: no cause was streamed"),
    };
    for c in order.iter().skip(1) {
        line.push_str(&format!(
            "; {}: {:.0}% (chance {:.0}%)",
            c.cause,
            pct(c.slow_overlapping, slow),
            pct(c.control_overlapping, control)
        ));
    }
    if lost > 0 {
        line.push_str(&format!(
            "; {lost} events were lost, so these are lower bounds"
        ));
    }
    Some(Attribution {
        slow_quantile: name.into(),
        slow_threshold_ms: threshold as f64 / 1e6,
        slow,
        control,
        min_delay_ms: ATTRIBUTION_MIN_DELAY_NS as f64 / 1e6,
        joined_on: joined_on.into(),
        causes,
        events: events.len() as u64,
        events_lost: lost,
        source: "probe (sched_switch/sched_wakeup/sched_migrate_task, sys_enter/exit_futex; ring buffer) joined with timer".into(),
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

    fn ev(tid: u32, kind: u32, start_ns: u64, end_ns: u64) -> hwprof_probes_common::DelayEvent {
        hwprof_probes_common::DelayEvent {
            tid,
            kind,
            start_ns,
            end_ns,
        }
    }

    const ALL: [u32; 4] = [
        hwprof_probes_common::EVENT_RUNQ,
        hwprof_probes_common::EVENT_FUTEX,
        hwprof_probes_common::EVENT_OFF_CPU,
        hwprof_probes_common::EVENT_MIGRATION,
    ];

    /// 20 000 requests 10 ms apart, each 0.2 ms at the target, served by
    /// thread 9 (or unnamed: 0); every 100th is slow (5 ms).
    fn requests(thread: u32) -> Vec<KeptRequest> {
        (0..20_000u64)
            .map(|i| {
                let sent = i * 10_000_000;
                let slow = i % 100 == 0;
                KeptRequest {
                    intended_ns: sent,
                    sent_ns: sent,
                    done_ns: sent + if slow { 5_000_000 } else { 200_000 },
                    thread,
                }
            })
            .collect()
    }

    #[test]
    fn slow_requests_that_overlapped_a_delay_are_attributed_and_fast_ones_are_the_control() {
        use hwprof_probes_common::*;
        let t0 = 5_000_000_000u64;
        let reqs = requests(9);
        let mut events = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let slow = i % 100 == 0;
            // Every slow request sits on a 2 ms run-queue delay of its thread;
            // one fast request does too.
            if slow || i == 7 {
                events.push(ev(
                    9,
                    EVENT_RUNQ,
                    t0 + r.sent_ns + 10_000,
                    t0 + r.sent_ns + 2_010_000,
                ));
            }
            // The worker went idle 50 µs before the last request's client had
            // its answer, until this one woke it 20 µs in: no cause of either.
            let idle_from = if i == 0 {
                0
            } else {
                reqs[i - 1].done_ns - 50_000
            };
            events.push(ev(
                9,
                EVENT_OFF_CPU,
                t0 + idle_from,
                t0 + r.sent_ns + 20_000,
            ));
            // The slow requests of the second half waited 2 ms while their
            // thread slept mid-request (I/O, say).
            if slow && i >= 10_000 {
                events.push(ev(
                    9,
                    EVENT_OFF_CPU,
                    t0 + r.sent_ns + 1_000_000,
                    t0 + r.sent_ns + 3_000_000,
                ));
            }
            // Every slow request of the first half saw a migration of its thread.
            if slow && i < 10_000 {
                events.push(ev(
                    9,
                    EVENT_MIGRATION,
                    t0 + r.sent_ns + 3_000_000,
                    t0 + r.sent_ns + 3_000_000,
                ));
            }
            // Another thread's futex waits during every slow request: not the
            // serving thread's, so no cause.
            if slow {
                events.push(ev(
                    11,
                    EVENT_FUTEX,
                    t0 + r.sent_ns,
                    t0 + r.sent_ns + 4_000_000,
                ));
            }
        }
        // A short delay is not a cause.
        events.push(ev(9, EVENT_RUNQ, t0 + 3_000_001, t0 + 3_500_000));
        let a = attribute(&reqs, &events, &ALL, t0, 0).unwrap();
        assert_eq!(a.slow_quantile, "p99.9");
        assert_eq!(a.joined_on, "serving thread");
        let c = |name: &str| a.causes.iter().find(|c| c.cause.starts_with(name)).unwrap();
        assert_eq!((a.slow, c("run-queue").slow_overlapping), (200, 200));
        assert_eq!(c("run-queue").control_overlapping, 1, "{}", a.line);
        assert_eq!(c("migration").slow_overlapping, 100);
        assert_eq!(c("migration").control_overlapping, 0);
        assert_eq!(c("futex").slow_overlapping, 0, "{}", a.line);
        assert_eq!(c("off-CPU").slow_overlapping, 100, "{}", a.line);
        assert_eq!(c("off-CPU").control_overlapping, 0, "{}", a.line);
        assert!(
            a.line.starts_with(
                "100% of the 200 requests at or above p99.9 (5.00 ms) overlapped a run-queue delay ≥ 1 ms"
            ),
            "{}",
            a.line
        );
        assert!(a.line.contains("on their serving thread"), "{}", a.line);
        assert!(
            a.line.contains("; migration: 50% (chance 0%)"),
            "{}",
            a.line
        );
        // Unnamed serving threads: every thread's delays count, so the other
        // thread's futex waits now line up with the slow requests.
        let any = attribute(&requests(0), &events, &ALL, t0, 0).unwrap();
        assert_eq!(any.joined_on, "any of the target's threads");
        let f = any.causes.iter().find(|c| c.cause == "futex wait").unwrap();
        assert_eq!(f.slow_overlapping, 200);
        assert!(
            any.line.contains("the target does not name"),
            "{}",
            any.line
        );
        // Only the causes whose probe ran are reported.
        let runq_only = attribute(&reqs, &events, &[EVENT_RUNQ], t0, 0).unwrap();
        assert_eq!(runq_only.causes.len(), 1);
        // Without the events nothing is attributed.
        let none = attribute(&reqs, &[], &ALL, t0, 0).unwrap();
        assert!(none.causes.iter().all(|c| c.slow_overlapping == 0));
        assert!(attribute(&reqs[..999], &events, &ALL, t0, 0).is_none());
    }

    #[test]
    fn spans_overlap_or_lie_within_a_window() {
        let s = merged(vec![(10, 20), (15, 30), (40, 50)]);
        assert_eq!(s, vec![(10, 30), (40, 50)]);
        assert!(overlaps(&s, 25, 45) && overlaps(&s, 0, 11));
        assert!(!overlaps(&s, 30, 40), "touching ends do not overlap");
        assert!(within(&s, 35, 55));
        assert!(!within(&s, 15, 35), "a span begun before does not");
        assert!(!within(&s, 35, 45), "nor one that ends after");
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
