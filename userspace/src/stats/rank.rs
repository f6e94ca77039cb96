//! Rank tests for gates: the Mann–Whitney U test and Holm–Bonferroni.
//!
//! Per-run figures (a run's p99, its throughput) are few and not normal; a
//! rank test assumes neither. Exact p-values for small samples without ties
//! (the gate's usual 5–20 runs a side), the normal approximation with the tie
//! correction otherwise.

use serde::Serialize;

/// Largest n1 + n2 for the exact null distribution (the DP is O(n1·n2·(n1+n2))).
const EXACT_LIMIT: usize = 40;

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: pairs (a, b) with a > b, ties counting ½.
    pub u: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// `exact` or `normal` (with tie and continuity corrections).
    pub method: &'static str,
}

/// Two-sided Mann–Whitney U test of `a` against `b`; None if either is empty.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 || a.iter().chain(b).any(|x| !x.is_finite()) {
        return None;
    }
    // Midranks over the pooled sample.
    let mut pooled: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = pooled.len();
    let (mut rank_sum_a, mut tie_term, mut ties) = (0.0, 0.0, false);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        if t > 1.0 {
            ties = true;
            tie_term += t * t * t - t;
        }
        let midrank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_a += pooled[i..=j].iter().filter(|p| p.1).count() as f64 * midrank;
        i = j + 1;
    }
    let (f1, f2) = (n1 as f64, n2 as f64);
    let u = rank_sum_a - f1 * (f1 + 1.0) / 2.0;
    let mean = f1 * f2 / 2.0;
    if !ties && n <= EXACT_LIMIT {
        // P(U ≤ min(u, n1n2 − u)) doubled, from the exact null distribution.
        let counts = u_distribution(n1, n2);
        let total: f64 = counts.iter().sum();
        let lower = u.min(f1 * f2 - u) as usize;
        let tail: f64 = counts[..=lower].iter().sum::<f64>() / total;
        return Some(MannWhitney {
            u,
            p: (2.0 * tail).min(1.0),
            method: "exact",
        });
    }
    let var = f1 * f2 / 12.0 * ((n as f64 + 1.0) - tie_term / (n as f64 * (n as f64 - 1.0)));
    if var <= 0.0 {
        // Every value equal: no evidence of a shift.
        return Some(MannWhitney {
            u,
            p: 1.0,
            method: "normal",
        });
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    Some(MannWhitney {
        u,
        p: (2.0 * normal_sf(z)).min(1.0),
        method: "normal",
    })
}

/// The smallest two-sided p-value the exact test can give for these sizes
/// (complete separation): 2 / C(n1 + n2, n1).
pub fn smallest_two_sided_p(n1: usize, n2: usize) -> f64 {
    let mut c = 1.0f64;
    for i in 0..n1.min(n2) {
        c = c * (n1 + n2 - i) as f64 / (i + 1) as f64;
    }
    (2.0 / c).min(1.0)
}

/// Number of arrangements giving each U in 0..=n1·n2 (no ties): the classic
/// recurrence f(n1, n2, u) = f(n1 − 1, n2, u − n2) + f(n1, n2 − 1, u).
fn u_distribution(n1: usize, n2: usize) -> Vec<f64> {
    let max = n1 * n2;
    // table[j][u] for the current i (first sample size), j in 0..=n2.
    let mut prev: Vec<Vec<f64>> = (0..=n2)
        .map(|_| {
            let mut v = vec![0.0; max + 1];
            v[0] = 1.0;
            v
        })
        .collect();
    for _i in 1..=n1 {
        let mut cur: Vec<Vec<f64>> = vec![vec![0.0; max + 1]; n2 + 1];
        cur[0][0] = 1.0;
        for j in 1..=n2 {
            for u in 0..=max {
                let from_a = if u >= j { prev[j][u - j] } else { 0.0 };
                cur[j][u] = from_a + cur[j - 1][u];
            }
        }
        prev = cur;
    }
    prev.swap_remove(n2)
}

/// Upper tail of the standard normal.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' erfcc, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Holm–Bonferroni adjusted p-values (same order as given): controls the
/// family-wise error over every metric a gate judges.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (k, &i) in order.iter().enumerate() {
        running = running.max(((m - k) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// Reference values computed by hand: the first pair separates completely,
    /// so U = 0 and the exact p = 2 / C(9, 4) = 0.015873; the second has one
    /// tie (3), U = 2.5, and the normal approximation with tie and continuity
    /// corrections gives z = 9.5 / 4.7726, p = 0.04654.
    #[test]
    fn matches_hand_computed_values() {
        let r = mann_whitney(&[1.1, 2.2, 3.3, 4.4], &[5.5, 6.6, 7.7, 8.8, 9.9]).unwrap();
        assert_eq!((r.u, r.method), (0.0, "exact"));
        assert!((r.p - 0.015_873).abs() < 1e-5, "{r:?}");
        let r = mann_whitney(&[1., 2., 3., 4., 5.], &[3., 6., 7., 8., 9.]).unwrap();
        assert_eq!((r.u, r.method), (2.5, "normal"));
        assert!((r.p - 0.046_54).abs() < 2e-4, "{r:?}");
    }

    #[test]
    fn symmetric_and_bounded() {
        let a = [3.0, 1.0, 4.0, 1.5, 5.0];
        let b = [9.0, 2.0, 6.0, 5.5];
        let (x, y) = (mann_whitney(&a, &b).unwrap(), mann_whitney(&b, &a).unwrap());
        assert!((x.p - y.p).abs() < 1e-12);
        assert_eq!(x.u + y.u, 20.0);
        assert!(mann_whitney(&[1.0; 4], &[1.0; 4]).unwrap().p == 1.0);
        assert!(mann_whitney(&[], &[1.0]).is_none());
    }

    /// Under the null, P(p < 0.05) must be about 0.05 (the exact test is
    /// conservative: ≤ 0.05); under a 1.75σ shift with 10 a side, power is high.
    #[test]
    fn size_and_power() {
        let d = Normal::new(0.0, 1.0).unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let trials = 2000;
        let mut reject_null = 0;
        let mut reject_shift = 0;
        for _ in 0..trials {
            let a: Vec<f64> = (0..10).map(|_| d.sample(&mut rng)).collect();
            let b: Vec<f64> = (0..10).map(|_| d.sample(&mut rng)).collect();
            let c: Vec<f64> = b.iter().map(|x| x + 1.75).collect();
            reject_null += usize::from(mann_whitney(&a, &b).unwrap().p < 0.05);
            reject_shift += usize::from(mann_whitney(&a, &c).unwrap().p < 0.05);
        }
        let size = reject_null as f64 / trials as f64;
        let power = reject_shift as f64 / trials as f64;
        assert!((0.03..=0.06).contains(&size), "size {size}");
        assert!(power > 0.85, "power {power}");
    }

    #[test]
    fn smallest_p_is_complete_separation() {
        assert!((smallest_two_sided_p(3, 3) - 0.1).abs() < 1e-12);
        assert!((smallest_two_sided_p(6, 6) - 2.0 / 924.0).abs() < 1e-12);
        let r = mann_whitney(&[1., 2., 3., 4., 5.], &[6., 7., 8., 9., 10.]).unwrap();
        assert!((r.p - smallest_two_sided_p(5, 5)).abs() < 1e-12);
    }

    #[test]
    fn holm_adjusts_stepwise() {
        // Classic example: p = (0.01, 0.04, 0.03, 0.005) → (0.03, 0.06, 0.06, 0.02).
        let a = holm(&[0.01, 0.04, 0.03, 0.005]);
        let want = [0.03, 0.06, 0.06, 0.02];
        for (x, w) in a.iter().zip(want) {
            assert!((x - w).abs() < 1e-12, "{a:?}");
        }
        assert_eq!(holm(&[0.9, 0.8]), vec![1.0, 1.0]);
        assert_eq!(holm(&[0.2, 0.6]), vec![0.4, 0.6]);
    }
}
