//! Burst recovery (Engram's task 003): for each burst of a run, how far the
//! tail rose and how long after the burst it took to settle.
//!
//! Latency is grouped by completion into the run's intervals (all operations
//! merged). The pre-burst p99 is that of the quiet stretch before the burst (at
//! most `pre_s`, after the previous burst settled). The tail is back at time T
//! when the p99 of everything completed in [T, T + hold) is inside the band:
//! within `tolerance` (10%) of the pre-burst p99, or within the pre-burst
//! stretch's own spread where that is wider (the 90th percentile of the same
//! hold-long p99 taken across the stretch: on a shared machine a quiet tail
//! already wanders more than 10% from one hold to the next). The hold looks
//! forward from T, so nothing from before T is in it: the settling time (T −
//! the burst's end) has the interval's resolution and no lag from a trailing
//! window. The hold is `hold_s` (2 s) or long enough for 1000 requests at the
//! pre-burst rate (a p99 with 10 samples beyond it), whichever is longer. A
//! burst whose tail is not back before the next burst (or the run's end) is
//! "not recovered within X". The peak is the highest p99 over `window_s` (1 s)
//! from the burst's start until it settled.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::record::{histogram, Recorder};

/// How recovery is judged (stated in the report).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecoveryRule {
    /// Window of the peak p99.
    pub window_s: f64,
    /// Shortest hold (longer where 1000 requests take longer to arrive).
    pub hold_s: f64,
    pub tolerance: f64,
    pub pre_s: f64,
    /// Engram's target for the settling time.
    pub target_s: f64,
}

impl Default for RecoveryRule {
    fn default() -> Self {
        RecoveryRule {
            window_s: 1.0,
            hold_s: 2.0,
            tolerance: 0.10,
            pre_s: 10.0,
            target_s: 5.0,
        }
    }
}

/// One burst's recovery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BurstRecovery {
    pub start_s: f64,
    pub end_s: f64,
    pub multiplier: f64,
    /// p99 of the stretch before the burst, and the band the tail must return to.
    pub pre_p99_ms: Option<f64>,
    pub band_ms: Option<f64>,
    /// The hold used (seconds).
    pub hold_s: f64,
    /// Highest p99 over `window_s` from the burst's start until it settled (or the horizon).
    pub peak_p99_ms: Option<f64>,
    /// (peak − pre) / pre, percent.
    pub peak_deviation_pct: Option<f64>,
    /// Seconds from the burst's end until the tail stayed in the band; None: not
    /// recovered, or not judged (`judged` false).
    pub settling_s: Option<f64>,
    /// A pre-burst p99 existed and at least one hold fitted before the horizon.
    pub judged: bool,
    /// Seconds after the burst's end that were watched (to the next burst or the run's end).
    pub watched_s: f64,
    pub within_target: bool,
    pub line: String,
}

/// A run's bursts and how the tail recovered from each (report.json `recovery`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recovery {
    pub rule: RecoveryRule,
    pub bursts: Vec<BurstRecovery>,
}

impl Recovery {
    /// Bursts settled within the target, of those judged.
    pub fn summary(&self) -> String {
        let judged: Vec<&BurstRecovery> = self.bursts.iter().filter(|b| b.judged).collect();
        let within = judged.iter().filter(|b| b.within_target).count();
        let not = judged.iter().filter(|b| b.settling_s.is_none()).count();
        format!(
            "burst recovery [timer]: {within} of {} burst(s) settled within {} s, {not} not recovered \
             (tail back when the p99 over a {}+ s hold is within {:.0}% of the pre-burst p99 or its own spread)",
            judged.len(),
            self.rule.target_s,
            self.rule.hold_s,
            self.rule.tolerance * 100.0
        )
    }
}

/// A pre-burst stretch whose p99 is this many times its holds' median was
/// disturbed by something other than the burst.
const DISTURBED: f64 = 2.0;
/// Fewest requests behind a p99 that is judged (10 beyond it).
const P99_SAMPLES: u64 = 1000;
/// Fewest behind the peak's 1 s p99 (one beyond it: a peak, not a verdict).
const PEAK_SAMPLES: u64 = 100;

/// The recoveries of `bursts` ((start, end, multiplier), seconds) in a run recorded in `rec`.
pub fn analyse(
    rec: &Recorder,
    bursts: &[(f64, f64, f64)],
    rule: &RecoveryRule,
) -> Vec<BurstRecovery> {
    let dt = rec.interval_ns as f64 / 1e9;
    let n = rec.windows.len();
    let run_end = n as f64 * dt;
    let merged: Vec<Histogram<u64>> = rec
        .windows
        .iter()
        .map(|w| {
            let mut h = histogram();
            for x in w.latency.values() {
                let _ = h.add(x);
            }
            h
        })
        .collect();
    // p99 (ms) of the intervals [a, b), given at least `min` requests.
    let p99 = |a: usize, b: usize, min: u64| -> Option<f64> {
        let mut h = histogram();
        for x in &merged[a.min(n)..b.min(n)] {
            let _ = h.add(x);
        }
        (h.len() >= min).then(|| h.value_at_quantile(0.99) as f64 / 1e6)
    };
    let idx = |t: f64| ((t / dt).round().max(0.0) as usize).min(n);
    let mut sorted: Vec<(f64, f64, f64)> =
        bursts.iter().copied().filter(|b| b.0 < run_end).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let peak_span = ((rule.window_s / dt).round() as usize).max(1);
    let mut out = Vec::new();
    let mut quiet_from = 0.0f64;
    // Whether the previous burst is known to have settled (none before the first).
    let mut previous_settled = true;
    for (k, &(start, end, mult)) in sorted.iter().enumerate() {
        let horizon = sorted.get(k + 1).map_or(run_end, |b| b.0).min(run_end);
        let pre_from = quiet_from.max(start - rule.pre_s).min(start);
        let (a, b) = (idx(pre_from), idx(start));
        let pre_count: u64 = merged[a..b].iter().map(|h| h.len()).sum();
        let pre_rate = pre_count as f64 / ((b - a) as f64 * dt).max(dt);
        let hold_s = rule.hold_s.max(if pre_rate > 0.0 {
            P99_SAMPLES as f64 / pre_rate
        } else {
            0.0
        });
        let hold = ((hold_s / dt).ceil() as usize).max(1);
        let whole_p99 = p99(a, b, P99_SAMPLES);
        let mut spread: Vec<f64> = (a..b.saturating_sub(hold))
            .filter_map(|i| p99(i, i + hold, P99_SAMPLES))
            .collect();
        spread.sort_by(f64::total_cmp);
        // A stretch disturbed by something else (a stall, a GC pause) has a
        // p99 far above its typical hold's: judge against the typical one, or
        // the disturbance would pass for the level to recover to.
        let typical = (spread.len() >= 3).then(|| crate::stats::quantile(&spread, 0.5));
        let disturbed = match (whole_p99, typical) {
            (Some(w), Some(t)) if w > DISTURBED * t => Some((w, t)),
            _ => None,
        };
        let pre_p99 = match disturbed {
            Some((_, t)) => Some(t),
            None => whole_p99,
        };
        let band = pre_p99.map(|p| {
            let wander = match (disturbed, spread.is_empty()) {
                (Some(_), _) | (None, true) => 0.0,
                (None, false) => crate::stats::quantile(&spread, 0.9),
            };
            (p * (1.0 + rule.tolerance)).max(wander)
        });
        let (e, h) = (idx(end), idx(horizon));
        let settled_at = band.and_then(|band| {
            (e..h.saturating_sub(hold).max(e))
                .filter(|&i| i + hold <= h)
                .find(|&i| p99(i, i + hold, P99_SAMPLES).is_some_and(|v| v <= band))
        });
        let settled = settled_at.map(|i| (i as f64 * dt - end).max(0.0));
        let peak_to = settled_at.unwrap_or(h).max(idx(start) + 1);
        let peak = (idx(start)..peak_to)
            .filter_map(|i| p99(i, i + peak_span, PEAK_SAMPLES))
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        let watched = (horizon - end).max(0.0);
        let deviation = match (peak, pre_p99) {
            (Some(pk), Some(p)) if p > 0.0 => Some((pk - p) / p * 100.0),
            _ => None,
        };
        // Not one hold fits between the burst's end and the horizon: not judged.
        let fits = e + hold <= h;
        let line = match (pre_p99, settled) {
            (Some(p), None) if !fits => format!(
                "burst ×{mult} at {start:.1}–{end:.1} s: p99 {p:.2} ms before, peak {:.2} ms ({:+.0}%), recovery not judged: \
                 {watched:.1} s to the {} is shorter than the {:.1} s hold",
                peak.unwrap_or(p),
                deviation.unwrap_or(0.0),
                if k + 1 < sorted.len() { "next burst" } else { "run's end" },
                hold as f64 * dt
            ),
            (None, _) => format!(
                "burst ×{mult} at {start:.1}–{end:.1} s: no pre-burst p99 (fewer than {P99_SAMPLES} requests in the {:.1} s before it)",
                start - pre_from
            ),
            (Some(p), Some(s)) => format!(
                "burst ×{mult} at {start:.1}–{end:.1} s: p99 {p:.2} ms before, peak {:.2} ms ({:+.0}%), settled {s:.1} s after it ({} the {} s target)",
                peak.unwrap_or(p),
                deviation.unwrap_or(0.0),
                if s <= rule.target_s { "within" } else { "beyond" },
                rule.target_s
            ),
            (Some(p), None) => format!(
                "burst ×{mult} at {start:.1}–{end:.1} s: p99 {p:.2} ms before, peak {:.2} ms ({:+.0}%), not recovered within {watched:.1} s",
                peak.unwrap_or(p),
                deviation.unwrap_or(0.0)
            ),
        };
        // A stretch after a burst that never settled (or whose recovery is
        // unknown) may still carry it: its p99 and band may be raised.
        let line = if previous_settled || pre_p99.is_none() {
            line
        } else {
            format!(
                "{line} [the stretch before it follows a burst not known to have settled: its pre-burst p99 may be raised]"
            )
        };
        let line = match disturbed {
            Some((w, t)) => format!(
                "{line} [the stretch before it was disturbed: its p99 was {w:.2} ms, {:.0}× the median {t:.2} ms of its {:.1} s holds, which is the level used]",
                w / t,
                hold as f64 * dt
            ),
            None => line,
        };
        previous_settled = settled.is_some();
        out.push(BurstRecovery {
            start_s: start,
            end_s: end,
            multiplier: mult,
            pre_p99_ms: pre_p99,
            band_ms: band,
            hold_s: hold as f64 * dt,
            peak_p99_ms: peak,
            peak_deviation_pct: deviation,
            settling_s: settled,
            watched_s: watched,
            within_target: settled.is_some_and(|s| s <= rule.target_s),
            judged: pre_p99.is_some() && fits,
            line,
        });
        // A burst that could not be judged leaves the next one the stretch after it.
        quiet_from = match (pre_p99, settled) {
            (None, _) => end,
            (_, Some(s)) => end + s,
            (_, None) => end + watched,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::schedule::OpKind;

    /// A recorder of 0.1 s intervals: 200 requests each (2000/s), latency
    /// `f(t)` ms ± a little so quantiles are not degenerate.
    fn recorded(seconds: f64, f: impl Fn(f64) -> f64) -> Recorder {
        let mut r = Recorder::new(100_000_000);
        let n = (seconds * 10.0) as u64;
        for i in 0..n {
            let t = i as f64 * 0.1;
            for k in 0..200u64 {
                let ms = f(t) * (1.0 + (k % 10) as f64 * 0.01);
                let done = (t * 1e9) as u64 + k * 400_000;
                let lat = (ms * 1e6) as u64;
                r.complete(
                    OpKind::Recall,
                    done.saturating_sub(lat),
                    done.saturating_sub(lat),
                    done,
                    None,
                );
            }
        }
        r
    }

    #[test]
    fn a_tail_that_decays_settles_when_it_is_back_in_the_band() {
        // 1 ms; burst at 10–12 s; 20 ms at its end decaying back over 3 s.
        let rec = recorded(30.0, |t| {
            if t < 10.0 {
                1.0
            } else if t < 12.0 {
                20.0
            } else {
                (20.0 - (t - 12.0) * 19.0 / 3.0).max(1.0)
            }
        });
        let v = analyse(&rec, &[(10.0, 12.0, 5.0)], &RecoveryRule::default());
        assert_eq!(v.len(), 1);
        let s = v[0].settling_s.expect("recovered");
        // Within 10% of 1 ms from about 14.98 s: settled 3.0 s after the end.
        assert!((2.8..=3.1).contains(&s), "{}", v[0].line);
        assert!(v[0].within_target, "{}", v[0].line);
        assert!(v[0].peak_p99_ms.unwrap() > 19.0);
        assert!(v[0].line.contains("settled"), "{}", v[0].line);
    }

    #[test]
    fn a_tail_that_stays_high_is_not_recovered_within_the_watch() {
        let rec = recorded(20.0, |t| if t < 10.0 { 1.0 } else { 8.0 });
        let v = analyse(&rec, &[(10.0, 12.0, 10.0)], &RecoveryRule::default());
        assert_eq!(v[0].settling_s, None);
        assert!(!v[0].within_target);
        assert!(
            v[0].line.contains("not recovered within 8.0 s"),
            "{}",
            v[0].line
        );
    }

    #[test]
    fn a_stall_before_the_burst_is_not_the_level_to_recover_to() {
        // 1 ms, a 2 s stall at 6–8 s (1000 ms), a burst at 10–12 s that leaves
        // 5 ms for 6 s: the stall's p99 would have passed that for recovered.
        let rec = recorded(30.0, |t| {
            if (6.0..8.0).contains(&t) {
                1000.0
            } else if (10.0..18.0).contains(&t) {
                5.0
            } else {
                1.0
            }
        });
        let v = analyse(&rec, &[(10.0, 12.0, 5.0)], &RecoveryRule::default());
        let b = &v[0];
        assert!(b.pre_p99_ms.unwrap() < 1.2, "{}", b.line);
        let s = b.settling_s.expect("recovered");
        assert!((5.8..=6.2).contains(&s), "{}", b.line);
        assert!(
            b.line.contains("the stretch before it was disturbed"),
            "{}",
            b.line
        );
        // A quiet stretch is not called disturbed.
        let quiet = analyse(
            &recorded(20.0, |_| 1.0),
            &[(10.0, 12.0, 2.0)],
            &RecoveryRule::default(),
        );
        assert!(!quiet[0].line.contains("disturbed"), "{}", quiet[0].line);
    }

    #[test]
    fn a_burst_that_does_not_move_the_tail_settles_at_once() {
        let rec = recorded(20.0, |_| 1.0);
        let v = analyse(&rec, &[(5.0, 7.0, 2.0)], &RecoveryRule::default());
        assert_eq!(v[0].settling_s, Some(0.0), "{}", v[0].line);
    }

    #[test]
    fn the_next_burst_is_the_horizon_and_a_burst_without_history_says_so() {
        let rec = recorded(20.0, |t| if t < 5.0 { 1.0 } else { 8.0 });
        let v = analyse(
            &rec,
            &[(0.0, 1.0, 2.0), (5.0, 6.0, 5.0), (12.0, 13.0, 10.0)],
            &RecoveryRule::default(),
        );
        assert!(v[0].line.contains("no pre-burst p99"), "{}", v[0].line);
        assert!(
            v[1].line.contains("not recovered within 6.0 s"),
            "{}",
            v[1].line
        );
        assert!(!v[0].judged && v[1].judged);
        // The second never settled, so the third has no quiet stretch before it.
        assert!(
            !v[2].judged && v[2].line.contains("no pre-burst p99"),
            "{}",
            v[2].line
        );
        let flat = recorded(20.0, |_| 1.0);
        let late = analyse(
            &flat,
            &[(5.0, 6.0, 5.0), (18.5, 19.5, 2.0)],
            &RecoveryRule::default(),
        );
        assert!(!late[1].judged);
        assert!(
            late[1].line.contains("shorter than the 2.0 s hold"),
            "{}",
            late[1].line
        );
    }
}
