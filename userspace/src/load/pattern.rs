//! Arrival patterns: a rate shape r(t) (requests/s at t seconds into the run)
//! and a process that places arrivals under it, evenly spaced (`constant`) or
//! Poisson. Both work in the cumulative-rate domain Λ(t) = ∫ r: arrival k sits
//! at Λ⁻¹(k) (even spacing) or Λ⁻¹(u_k) with unit-rate exponential gaps
//! (Poisson, exact for time-varying rates by the time-rescaling theorem).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::scenario::Arrival;

/// A rate over time.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Constant(f64),
    /// Engram's periodic_burst: `burst` during the first `len` s of each `period`.
    PeriodicBurst {
        base: f64,
        burst: f64,
        len: f64,
        period: f64,
    },
    /// base·(1 + (m − 1)·cos((h − peak)·π/12)), h the hour of day at run time t
    /// with `speed` hours of day per second of run.
    Diurnal {
        base: f64,
        m: f64,
        peak_hour: f64,
        start_hour: f64,
        speed: f64,
    },
    /// base, multiplied inside each burst window (start, end, multiplier).
    Bursts {
        base: f64,
        windows: Vec<(f64, f64, f64)>,
    },
    Ramp {
        from: f64,
        to: f64,
        over: f64,
    },
    /// (from t, rate) in time order; rate 0 before the first step.
    Step(Vec<(f64, f64)>),
    Sum(Vec<Shape>),
}

impl Shape {
    pub fn rate(&self, t: f64) -> f64 {
        match self {
            Shape::Constant(r) => *r,
            Shape::PeriodicBurst {
                base,
                burst,
                len,
                period,
            } => {
                if t.rem_euclid(*period) < *len {
                    *burst
                } else {
                    *base
                }
            }
            Shape::Diurnal {
                base,
                m,
                peak_hour,
                start_hour,
                speed,
            } => {
                let h = start_hour + t * speed;
                (base * (1.0 + (m - 1.0) * ((h - peak_hour) * std::f64::consts::PI / 12.0).cos()))
                    .max(0.0)
            }
            Shape::Bursts { base, windows } => windows
                .iter()
                .find(|(a, b, _)| t >= *a && t < *b)
                .map_or(*base, |w| base * w.2),
            Shape::Ramp { from, to, over } => from + (to - from) * (t / over).clamp(0.0, 1.0),
            Shape::Step(steps) => steps
                .iter()
                .rev()
                .find(|(at, _)| t >= *at)
                .map_or(0.0, |s| s.1),
            Shape::Sum(parts) => parts.iter().map(|p| p.rate(t)).sum(),
        }
    }

    /// The bursts in [0, duration): (start, end, multiplier of the base rate),
    /// for the recovery analysis.
    pub fn bursts(&self, duration: f64) -> Vec<(f64, f64, f64)> {
        match self {
            Shape::PeriodicBurst {
                base,
                burst,
                len,
                period,
            } if *len > 0.0 && *period > 0.0 && burst > base && *base > 0.0 => {
                let mut v = Vec::new();
                let mut t = 0.0;
                while t < duration {
                    v.push((t, (t + len).min(duration), burst / base));
                    t += period;
                }
                v
            }
            Shape::Bursts { windows, .. } => windows
                .iter()
                .filter(|w| w.0 < duration && w.2 > 1.0)
                .map(|w| (w.0, w.1.min(duration), w.2))
                .collect(),
            // Steps: the first step's rate is the base; a step above it that
            // later returns to it (or below) is a burst.
            Shape::Step(steps) if !steps.is_empty() && steps[0].1 > 0.0 => {
                let base = steps[0].1;
                let mut v = Vec::new();
                let mut open: Option<(f64, f64)> = None;
                for &(at, rate) in &steps[1..] {
                    match open {
                        None if rate > base => open = Some((at, rate)),
                        Some((start, peak)) if rate <= base => {
                            if start < duration {
                                v.push((start, at.min(duration), peak / base));
                            }
                            open = None;
                        }
                        Some((start, peak)) => open = Some((start, peak.max(rate))),
                        None => {}
                    }
                }
                if let Some((start, peak)) = open {
                    if start < duration {
                        v.push((start, duration, peak / base));
                    }
                }
                v
            }
            Shape::Sum(parts) => {
                let mut v: Vec<_> = parts.iter().flat_map(|p| p.bursts(duration)).collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v
            }
            _ => vec![],
        }
    }

    /// Expected arrivals in [a, b), by the midpoint rule on 1 ms steps.
    pub fn expected(&self, a: f64, b: f64) -> f64 {
        let steps = (((b - a) / 0.001).ceil() as usize).max(1);
        let dt = (b - a) / steps as f64;
        (0..steps)
            .map(|i| self.rate(a + (i as f64 + 0.5) * dt) * dt)
            .sum()
    }
}

/// `24h=10m`: a day of rate shape played in ten minutes. Returns hours of day
/// per second of run.
pub fn parse_compress(s: &str) -> Result<f64, String> {
    let (day, run) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected e.g. 24h=10m"))?;
    let day = crate::input::parse_seconds(day)?;
    let run = crate::input::parse_seconds(run)?;
    Ok(day / 3600.0 / run)
}

/// Build the shape an `[arrival]` table describes. Burst windows are drawn from
/// `seed` (Poisson arrivals of bursts), so the same seed gives the same run.
pub fn shape_of(a: &Arrival, duration: f64, seed: u64) -> Shape {
    let base = a.base_rate.or(a.rate).unwrap_or(0.0);
    match a.pattern.as_str() {
        "constant" | "poisson" => Shape::Constant(a.rate.unwrap_or(0.0)),
        "exponential" => Shape::Constant(a.lambda.or(a.rate).unwrap_or(0.0)),
        "periodic_burst" => Shape::PeriodicBurst {
            base,
            burst: a.burst_rate.unwrap_or(base),
            len: a.burst_duration_sec.unwrap_or(0.0),
            period: a.burst_period_sec.unwrap_or(1.0),
        },
        "diurnal" => Shape::Diurnal {
            base,
            m: a.peak_multiplier.unwrap_or(2.0),
            peak_hour: a.peak_hour.unwrap_or(14.0),
            start_hour: a.start_hour.unwrap_or(0.0),
            speed: a
                .compress
                .as_deref()
                .and_then(|c| parse_compress(c).ok())
                .unwrap_or(1.0 / 3600.0),
        },
        "bursts" => {
            let mean = a.mean_burst_interval_sec.unwrap_or(10.0);
            let len = a.burst_length_sec.unwrap_or(1.0);
            let mut rng = StdRng::seed_from_u64(seed ^ 0xB0B5_7EED);
            // Multipliers cycle through burst_multipliers (x2, x5, x10, …) or
            // stay at burst_multiplier.
            let mults = a
                .burst_multipliers
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| vec![a.burst_multiplier.unwrap_or(2.0)]);
            let mut windows = Vec::new();
            let mut t = 0.0;
            loop {
                t += -mean * (1.0 - rng.random::<f64>()).ln();
                if t >= duration {
                    break;
                }
                let m = mults[windows.len() % mults.len()];
                windows.push((t, (t + len).min(duration), m));
                t += len;
            }
            Shape::Bursts { base, windows }
        }
        "ramp" => Shape::Ramp {
            from: a.start_rate.unwrap_or(0.0),
            to: a.end_rate.unwrap_or(0.0),
            over: duration,
        },
        "step" => {
            let mut s = a.steps.clone().unwrap_or_default();
            s.sort_by(|x, y| x.0.total_cmp(&y.0));
            Shape::Step(s)
        }
        "composite" => Shape::Sum(
            a.components
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, c)| shape_of(c, duration, seed.wrapping_add(i as u64 + 1)))
                .collect(),
        ),
        _ => Shape::Constant(0.0),
    }
}

/// Whether arrivals under this pattern are Poisson (else evenly spaced).
pub fn is_poisson(a: &Arrival) -> bool {
    a.poisson.unwrap_or(matches!(
        a.pattern.as_str(),
        "poisson" | "exponential" | "bursts"
    ))
}

/// Arrival times (seconds) under a shape, in order, up to `end`.
pub struct Arrivals {
    shape: Shape,
    poisson: bool,
    rng: StdRng,
    end: f64,
    /// Integration state: time reached and Λ at that time.
    t: f64,
    lambda: f64,
    /// Λ at which the next arrival falls.
    target: f64,
    /// Index of the integration step holding t.
    step: u64,
}

/// Integration step: the rate is taken as constant over 1 ms, finer than any
/// pattern's features (the shortest burst or step is far longer).
const STEP: f64 = 0.001;

impl Arrivals {
    pub fn new(shape: Shape, poisson: bool, end: f64, seed: u64) -> Self {
        let mut a = Self {
            shape,
            poisson,
            rng: StdRng::seed_from_u64(seed),
            end,
            t: 0.0,
            lambda: 0.0,
            target: 0.0,
            step: 0,
        };
        a.target = a.gap();
        a
    }

    fn gap(&mut self) -> f64 {
        if self.poisson {
            -(1.0 - self.rng.random::<f64>()).ln()
        } else {
            1.0
        }
    }
}

impl Iterator for Arrivals {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        // Advance step by step until Λ reaches the target, then interpolate.
        loop {
            if self.t >= self.end {
                return None;
            }
            // Step boundaries by integer index: a float boundary recomputed
            // from t could equal t and never advance.
            let mut step_end = (self.step + 1) as f64 * STEP;
            while step_end <= self.t {
                self.step += 1;
                step_end = (self.step + 1) as f64 * STEP;
            }
            let step_end = step_end.min(self.end);
            let r = self.shape.rate(0.5 * (self.t + step_end));
            let gain = r * (step_end - self.t);
            if self.lambda + gain >= self.target && r > 0.0 {
                let at = self.t + (self.target - self.lambda) / r;
                self.lambda = self.target;
                self.t = at;
                self.target += self.gap();
                return (at < self.end).then_some(at);
            }
            self.lambda += gain;
            self.t = step_end;
            self.step += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_are_listed_from_periodic_bursts_and_steps() {
        let p = Shape::PeriodicBurst {
            base: 100.0,
            burst: 500.0,
            len: 1.0,
            period: 10.0,
        };
        assert_eq!(
            p.bursts(25.0),
            vec![(0.0, 1.0, 5.0), (10.0, 11.0, 5.0), (20.0, 21.0, 5.0)]
        );
        let s = Shape::Step(vec![
            (0.0, 200.0),
            (20.0, 400.0),
            (22.0, 200.0),
            (45.0, 2000.0),
            (47.0, 200.0),
            (70.0, 1000.0),
        ]);
        assert_eq!(
            s.bursts(80.0),
            vec![(20.0, 22.0, 2.0), (45.0, 47.0, 10.0), (70.0, 80.0, 5.0)]
        );
        // A ramp of steps that never comes back down is one long burst from its first rise.
        assert_eq!(Shape::Constant(5.0).bursts(10.0), vec![]);
    }

    fn count(shape: &Shape, poisson: bool, end: f64, a: f64, b: f64) -> usize {
        Arrivals::new(shape.clone(), poisson, end, 7)
            .filter(|t| *t >= a && *t < b)
            .count()
    }

    #[test]
    fn bursts_arrive_as_configured_in_count_and_height() {
        let a = crate::load::scenario::Arrival {
            pattern: "bursts".into(),
            base_rate: Some(100.0),
            burst_multipliers: Some(vec![2.0, 5.0, 10.0]),
            burst_length_sec: Some(1.0),
            mean_burst_interval_sec: Some(10.0),
            ..Default::default()
        };
        let shape = shape_of(&a, 2000.0, 5);
        let Shape::Bursts { windows, .. } = &shape else {
            panic!("{shape:?}")
        };
        // One burst per 11 s on average (10 s gap + 1 s burst): ~182 in 2000 s.
        let n = windows.len() as f64;
        assert!(
            (n - 2000.0 / 11.0).abs() < 4.0 * (2000.0f64 / 11.0).sqrt(),
            "{n} bursts"
        );
        // Heights cycle x2, x5, x10, and the realised rate inside each matches.
        let first: Vec<f64> = Arrivals::new(shape.clone(), false, windows[5].1 + 1.0, 7).collect();
        for (i, (start, end, m)) in windows.iter().take(6).enumerate() {
            assert_eq!(*m, [2.0, 5.0, 10.0][i % 3]);
            let inside = first.iter().filter(|t| **t >= *start && **t < *end).count() as f64;
            let want = 100.0 * m * (end - start);
            assert!(
                (inside - want).abs() <= 2.0,
                "burst {i}: {inside} vs {want}"
            );
        }
    }

    #[test]
    fn constant_spacing_is_exact() {
        let v: Vec<f64> = Arrivals::new(Shape::Constant(1000.0), false, 0.01, 1).collect();
        assert_eq!(v.len(), 9, "{v:?}"); // 1 ms, 2 ms, … 9 ms (10 ms is the end)
        assert!((v[0] - 0.001).abs() < 1e-9 && (v[8] - 0.009).abs() < 1e-9);
    }

    #[test]
    fn poisson_gaps_are_exponential() {
        let v: Vec<f64> = Arrivals::new(Shape::Constant(10_000.0), true, 10.0, 3).collect();
        let n = v.len() as f64;
        assert!((n - 100_000.0).abs() < 4.0 * 100_000f64.sqrt(), "{n}");
        let gaps: Vec<f64> = v.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        // Exponential: standard deviation equals the mean.
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.02,
            "cv {}",
            var.sqrt() / mean
        );
    }

    #[test]
    fn periodic_bursts_diurnal_ramp_and_steps_realise_their_rates() {
        let pb = Shape::PeriodicBurst {
            base: 100.0,
            burst: 1000.0,
            len: 1.0,
            period: 5.0,
        };
        // Evenly spaced from 1 ms: the 1000th arrival falls on 1.0 s, a boundary.
        assert!((count(&pb, false, 10.0, 0.0, 1.0) as i64 - 1000).abs() <= 1);
        assert!((count(&pb, false, 10.0, 2.0, 4.0) as i64 - 200).abs() <= 1);
        let d = Shape::Diurnal {
            base: 1000.0,
            m: 2.0,
            peak_hour: 12.0,
            start_hour: 0.0,
            speed: 24.0 / 24.0, // a day in 24 s
        };
        // Peak at 12 s (2000/s), trough at 0 s (0/s).
        let peak = count(&d, false, 24.0, 11.5, 12.5) as f64;
        assert!(
            (peak - d.expected(11.5, 12.5)).abs() <= 1.0 && peak > 1950.0,
            "{peak}"
        );
        assert!(count(&d, false, 24.0, 0.0, 0.5) < 10);
        let r = Shape::Ramp {
            from: 100.0,
            to: 1100.0,
            over: 10.0,
        };
        assert_eq!(
            count(&r, false, 10.0, 9.0, 10.0) as f64,
            r.expected(9.0, 10.0).round()
        );
        let s = Shape::Step(vec![(0.0, 100.0), (5.0, 400.0)]);
        // 500 expected in [0, 5): the 500th falls on 5.0 s exactly (float rounding may put it either side).
        assert!((count(&s, false, 10.0, 0.0, 5.0) as i64 - 500).abs() <= 1);
        assert!((count(&s, false, 10.0, 6.0, 7.0) as i64 - 400).abs() <= 1);
    }
}
