//! E-Divisive means change-point detection (Matteson & James 2014, with α = 1
//! and a permutation significance test), as MongoDB's performance CI (Daly et
//! al., ICPE 2020) and Apache Otava/Hunter use it on benchmark histories.
//!
//! Bisection: in every segment of the series the split τ maximising the
//! energy statistic Q̂ is found; the best split over all segments is kept when
//! a permutation test (values shuffled within their segments, the same search
//! rerun) gives p below the significance level; then the segments are searched
//! again. Distances are |xᵢ − xⱼ| and every Q̂ is O(1) from 2-D prefix sums of
//! the distance matrix, so a series of a few hundred points takes milliseconds.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Keep a change when its permutation p-value is below this.
    pub significance: f64,
    pub permutations: usize,
    /// Fewest points on either side of a split.
    pub min_size: usize,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            // Every accepted split leads to another test on the pieces; 0.01
            // keeps the whole search's false alarms near a few percent.
            significance: 0.01,
            permutations: 499,
            min_size: 4,
            seed: 0x6877_7072_6f66,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ChangePoint {
    /// First index after the change.
    pub index: usize,
    pub p: f64,
    /// Means of the neighbouring segments (after all splits).
    pub mean_before: f64,
    pub mean_after: f64,
    /// mean_after / mean_before − 1.
    pub change: f64,
}

/// Prefix sums of |xᵢ − xⱼ|: s[i][j] = Σ_{a<i, b<j} D[a][b].
struct Prefix {
    n: usize,
    s: Vec<f64>,
}

impl Prefix {
    fn new(x: &[f64]) -> Prefix {
        let n = x.len();
        let w = n + 1;
        let mut s = vec![0.0; w * w];
        for i in 0..n {
            let mut row = 0.0;
            for j in 0..n {
                row += (x[i] - x[j]).abs();
                s[(i + 1) * w + j + 1] = s[i * w + j + 1] + row;
            }
        }
        Prefix { n, s }
    }

    /// Σ D[a][b] for a in a0..a1, b in b0..b1.
    fn block(&self, a0: usize, a1: usize, b0: usize, b1: usize) -> f64 {
        let w = self.n + 1;
        self.s[a1 * w + b1] - self.s[a0 * w + b1] - self.s[a1 * w + b0] + self.s[a0 * w + b0]
    }

    /// Q̂ of splitting [s, e) at t.
    fn q(&self, s: usize, t: usize, e: usize) -> f64 {
        let (m, k) = ((t - s) as f64, (e - t) as f64);
        let cross = self.block(s, t, t, e);
        // The within-blocks count every pair twice (D is symmetric, diagonal 0).
        let within_x = self.block(s, t, s, t);
        let within_y = self.block(t, e, t, e);
        let energy =
            2.0 * cross / (m * k) - within_x / (m * (m - 1.0)) - within_y / (k * (k - 1.0));
        m * k / (m + k) * energy
    }
}

/// The best split over all segments: (segment index, τ, Q̂).
fn best_split(p: &Prefix, bounds: &[usize], min: usize) -> Option<(usize, usize, f64)> {
    let mut best: Option<(usize, usize, f64)> = None;
    for (si, w) in bounds.windows(2).enumerate() {
        let (s, e) = (w[0], w[1]);
        if e - s < 2 * min {
            continue;
        }
        for t in s + min..=e - min {
            let q = p.q(s, t, e);
            if best.is_none_or(|b| q > b.2) {
                best = Some((si, t, q));
            }
        }
    }
    best
}

/// Change points of `x`, in index order.
pub fn e_divisive(x: &[f64], st: Settings) -> Vec<ChangePoint> {
    let min = st.min_size.max(2);
    if x.len() < 2 * min || x.iter().any(|v| !v.is_finite()) {
        return vec![];
    }
    let mut rng = StdRng::seed_from_u64(st.seed);
    let prefix = Prefix::new(x);
    let mut bounds = vec![0, x.len()];
    let mut found: Vec<(usize, f64)> = Vec::new();
    while let Some((si, t, q)) = best_split(&prefix, &bounds, min) {
        // Permutation test: shuffle within the current segments, search again.
        let mut exceed = 0usize;
        let mut y = x.to_vec();
        for _ in 0..st.permutations {
            for w in bounds.windows(2) {
                y[w[0]..w[1]].shuffle(&mut rng);
            }
            let pp = Prefix::new(&y);
            if best_split(&pp, &bounds, min).is_some_and(|b| b.2 >= q) {
                exceed += 1;
            }
            y.copy_from_slice(x);
        }
        let pval = (exceed + 1) as f64 / (st.permutations + 1) as f64;
        if pval >= st.significance {
            break;
        }
        found.push((t, pval));
        bounds.insert(si + 1, t);
    }
    found.sort_by_key(|f| f.0);
    let mean = |a: usize, b: usize| x[a..b].iter().sum::<f64>() / (b - a) as f64;
    found
        .iter()
        .map(|&(t, p)| {
            let i = bounds
                .iter()
                .position(|&b| b == t)
                .expect("a found split is a bound");
            let (before, after) = (mean(bounds[i - 1], t), mean(t, bounds[i + 1]));
            ChangePoint {
                index: t,
                p,
                mean_before: before,
                mean_after: after,
                change: after / before - 1.0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    fn series(n: usize, step_at: Option<usize>, step: f64, noise: f64, seed: u64) -> Vec<f64> {
        let d = Normal::new(0.0, noise).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let level = if step_at.is_some_and(|s| i >= s) {
                    100.0 * (1.0 + step)
                } else {
                    100.0
                };
                level * (1.0 + d.sample(&mut rng))
            })
            .collect()
    }

    /// The brute-force Q̂ and the prefix-sum one agree.
    #[test]
    fn prefix_q_matches_definition() {
        let x = [1.0, 4.0, 2.0, 8.0, 7.0, 9.0, 3.0];
        let p = Prefix::new(&x);
        let (s, t, e) = (1, 3, 7);
        let (a, b) = (&x[s..t], &x[t..e]);
        let (m, k) = (a.len() as f64, b.len() as f64);
        let cross: f64 = a
            .iter()
            .flat_map(|u| b.iter().map(move |v| (u - v).abs()))
            .sum();
        let pairs = |v: &[f64]| -> f64 {
            let mut t = 0.0;
            for i in 0..v.len() {
                for j in i + 1..v.len() {
                    t += (v[i] - v[j]).abs();
                }
            }
            t
        };
        let e_stat = 2.0 * cross / (m * k)
            - pairs(a) / (m * (m - 1.0) / 2.0)
            - pairs(b) / (k * (k - 1.0) / 2.0);
        let want = m * k / (m + k) * e_stat;
        assert!(
            (p.q(s, t, e) - want).abs() < 1e-9,
            "{} vs {want}",
            p.q(s, t, e)
        );
    }

    /// A 5% step in 1.5% noise is found where it was planted (±1) in at least
    /// 19 of 20 series; noise-only series of the same length are flagged in
    /// at most 10% (the rate itself is measured in docs/benchmarks.md).
    #[test]
    fn planted_step_found_and_noise_stays_clean() {
        let mut hits = 0;
        let mut false_series = 0;
        let trials = 20;
        for seed in 0..trials {
            let x = series(40, Some(20), 0.05, 0.015, seed);
            let cps = e_divisive(&x, Settings::default());
            if cps.len() == 1 && cps[0].index.abs_diff(20) <= 1 {
                hits += 1;
                assert!((cps[0].change - 0.05).abs() < 0.02, "{cps:?}");
            }
            let clean = series(40, None, 0.0, 0.015, 1000 + seed);
            false_series += usize::from(!e_divisive(&clean, Settings::default()).is_empty());
        }
        assert!(hits >= 19, "found {hits}/{trials}");
        assert!(
            false_series <= 2,
            "{false_series}/{trials} noise-only series flagged"
        );
    }

    /// The figures in docs/benchmarks.md: `cargo test --release -p hwprof --lib
    /// changepoint::tests::measure_rates -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure_rates() {
        let trials = 500;
        for (n, step, noise) in [(40, 0.05, 0.015), (40, 0.05, 0.03), (100, 0.05, 0.03)] {
            let (mut exact, mut near, mut fp) = (0, 0, 0);
            for seed in 0..trials {
                let cps = e_divisive(
                    &series(n, Some(n / 2), step, noise, seed),
                    Settings::default(),
                );
                exact += usize::from(cps.len() == 1 && cps[0].index == n / 2);
                near += usize::from(cps.iter().any(|c| c.index.abs_diff(n / 2) <= 1));
                let clean = e_divisive(
                    &series(n, None, 0.0, noise, 10_000 + seed),
                    Settings::default(),
                );
                fp += usize::from(!clean.is_empty());
            }
            println!(
                "n={n} step={step} noise={noise}: exactly one at the step {exact}/{trials}, one within ±1 {near}/{trials}, noise-only flagged {fp}/{trials}"
            );
        }
    }

    #[test]
    fn two_steps_and_short_series() {
        let mut x = series(30, Some(10), 0.10, 0.01, 3);
        for v in &mut x[20..] {
            *v *= 0.8;
        }
        let idx: Vec<usize> = e_divisive(&x, Settings::default())
            .iter()
            .map(|c| c.index)
            .collect();
        assert_eq!(idx, vec![10, 20]);
        assert!(e_divisive(&[1.0, 2.0, 3.0], Settings::default()).is_empty());
    }
}
