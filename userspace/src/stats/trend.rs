//! Monotonic trend in a time series: the Mann–Kendall test with the tie
//! correction and the Hamed–Rao (1998) correction for autocorrelation, and the
//! Theil–Sen slope with its confidence interval (Gilbert 1987). What soak uses
//! to call a leak or a drift: samples a few seconds apart are not independent
//! (RSS, p99 per interval), and the plain test would call trends that are only
//! slow wander. Checked against pymannkendall (`hamed_rao_modification_test`,
//! `sens_slope`) in the tests below.

use super::rank::normal_sf;

/// z for a two-sided 95% interval.
const Z_975: f64 = 1.959_963_984_540_054;

/// A trend test's result over `(t, x)` samples.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trend {
    /// Samples tested.
    pub n: usize,
    /// Mann–Kendall S: concordant minus discordant pairs.
    pub s: f64,
    /// Var(S) with ties, before the autocorrelation correction.
    pub var_s: f64,
    /// n/n*: the Hamed–Rao variance inflation for autocorrelated samples (1 = none).
    pub autocorrelation_factor: f64,
    /// z (continuity-corrected) and two-sided p on the corrected variance.
    pub z: f64,
    pub p: f64,
    /// Theil–Sen slope: x per unit of t.
    pub slope: f64,
    /// Its 95% interval (Gilbert's rank method on the corrected variance).
    pub slope_lo: f64,
    pub slope_hi: f64,
    /// The Sen line's intercept (Conover): median(x) − slope · median(t).
    pub intercept: f64,
}

impl Trend {
    /// A trend at the 5% level, either way.
    pub fn significant(&self) -> bool {
        self.p < 0.05
    }
}

/// The test and slope over `(t, x)` (t strictly increasing; unequal spacing is
/// fine: the test uses order, the slope uses t). None below 4 samples.
pub fn mann_kendall(points: &[(f64, f64)]) -> Option<Trend> {
    let n = points.len();
    if n < 4 || points.iter().any(|(t, x)| !t.is_finite() || !x.is_finite()) {
        return None;
    }
    let nf = n as f64;
    let mut s = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            s += sign(points[j].1 - points[i].1);
        }
    }
    let var_s = variance_with_ties(points.iter().map(|p| p.1).collect());
    let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let dt = points[j].0 - points[i].0;
            if dt > 0.0 {
                slopes.push((points[j].1 - points[i].1) / dt);
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let slope = super::quantile(&slopes, 0.5);
    let ts: Vec<f64> = points.iter().map(|p| p.0).collect();
    let xs: Vec<f64> = points.iter().map(|p| p.1).collect();
    let intercept = super::median(&xs) - slope * super::median(&ts);

    // Hamed–Rao: the ranks of the detrended series, their autocorrelation at
    // every lag, only lags significant at 5% counted.
    let detrended: Vec<f64> = points.iter().map(|(t, x)| x - slope * t).collect();
    let ranks = ranks(&detrended);
    let acf = autocorrelation(&ranks);
    let bound = Z_975 / nf.sqrt();
    let mut sum = 0.0;
    for (k, r) in acf.iter().enumerate().skip(1) {
        if r.abs() > bound {
            let m = nf - k as f64;
            sum += m * (m - 1.0) * (m - 2.0) * r;
        }
    }
    let factor = 1.0 + 2.0 / (nf * (nf - 1.0) * (nf - 2.0)) * sum;
    // A strongly negative autocorrelation could drive the factor to zero or
    // below; the variance is never taken below a tenth of the plain one.
    let factor = factor.max(0.1);
    let var = var_s * factor;
    let z = if s > 0.0 {
        (s - 1.0) / var.sqrt()
    } else if s < 0.0 {
        (s + 1.0) / var.sqrt()
    } else {
        0.0
    };
    let p = (2.0 * normal_sf(z.abs())).min(1.0);

    // Gilbert (1987): the slopes ranked (N − C)/2 and (N + C)/2 + 1.
    let big_n = slopes.len() as f64;
    let c = Z_975 * var.sqrt();
    let at = |rank: f64| {
        // 1-based rank, interpolated, clamped to the slopes there are.
        let r = (rank - 1.0).clamp(0.0, big_n - 1.0);
        let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
        slopes[lo] + (slopes[hi] - slopes[lo]) * (r - r.floor())
    };
    Some(Trend {
        n,
        s,
        var_s,
        autocorrelation_factor: factor,
        z,
        p,
        slope,
        slope_lo: at((big_n - c) / 2.0),
        slope_hi: at((big_n + c) / 2.0 + 1.0),
        intercept,
    })
}

fn sign(d: f64) -> f64 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Var(S) = [n(n−1)(2n+5) − Σ t(t−1)(2t+5)] / 18 over groups of tied values.
fn variance_with_ties(mut x: Vec<f64>) -> f64 {
    let n = x.len() as f64;
    x.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut i = 0;
    while i < x.len() {
        let mut j = i + 1;
        while j < x.len() && x[j] == x[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        ties += t * (t - 1.0) * (2.0 * t + 5.0);
        i = j;
    }
    (n * (n - 1.0) * (2.0 * n + 5.0) - ties) / 18.0
}

/// Ranks 1..n, ties sharing their mean rank.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && x[idx[j]] == x[idx[i]] {
            j += 1;
        }
        let mean = (i + j + 1) as f64 / 2.0;
        for &k in &idx[i..j] {
            r[k] = mean;
        }
        i = j;
    }
    r
}

/// Sample autocorrelation at lags 0..n−1 (biased, as statsmodels' acf).
fn autocorrelation(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mean = x.iter().sum::<f64>() / n as f64;
    let y: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let c0: f64 = y.iter().map(|v| v * v).sum();
    if c0 == 0.0 {
        return vec![1.0];
    }
    (0..n)
        .map(|k| (0..n - k).map(|i| y[i] * y[i + k]).sum::<f64>() / c0)
        .collect()
}

/// At most `max` points: consecutive samples binned to their median time and
/// value, so a day of 10 s samples is tested in O(max²), not O(n²).
pub fn bin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|c| {
            let t: Vec<f64> = c.iter().map(|p| p.0).collect();
            let x: Vec<f64> = c.iter().map(|p| p.1).collect();
            (super::median(&t), super::median(&x))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexed(x: &[f64]) -> Vec<(f64, f64)> {
        x.iter().enumerate().map(|(i, v)| (i as f64, *v)).collect()
    }

    /// pymannkendall 1.4.3, `hamed_rao_modification_test(x)` and
    /// `sens_slope(x)` on these series (printed by the script in the comment).
    ///   import pymannkendall as mk
    ///   r = mk.hamed_rao_modification_test(x); print(r.s, r.var_s, r.z, r.p, r.slope)
    #[test]
    fn matches_pymannkendall_on_a_trend_with_ties_and_autocorrelation() {
        // A random walk with an upward drift, values rounded so some tie.
        let x = [
            10.0, 11.0, 11.0, 12.0, 11.0, 13.0, 14.0, 13.0, 13.0, 15.0, 16.0, 15.0, 17.0, 17.0,
            16.0, 18.0, 19.0, 18.0, 20.0, 21.0, 20.0, 20.0, 22.0, 23.0, 22.0, 24.0, 23.0, 25.0,
            26.0, 25.0,
        ];
        let t = mann_kendall(&indexed(&x)).unwrap();
        assert_eq!(t.s, PY_TREND.0);
        assert!((t.var_s * t.autocorrelation_factor - PY_TREND.1).abs() < 1e-6 * PY_TREND.1);
        assert!((t.z - PY_TREND.2).abs() < 1e-6);
        assert!((t.p - PY_TREND.3).abs() < 1e-6 + 1e-3 * PY_TREND.3);
        assert!((t.slope - PY_TREND.4).abs() < 1e-9);
        assert!(t.significant() && t.slope_lo <= t.slope && t.slope <= t.slope_hi);
    }

    #[test]
    fn matches_pymannkendall_on_noise_without_a_trend() {
        let x = [
            5.1, 4.8, 5.3, 5.0, 4.9, 5.2, 5.1, 4.7, 5.0, 5.4, 4.9, 5.0, 5.2, 4.8, 5.1, 5.0, 4.9,
            5.3, 5.0, 4.8,
        ];
        let t = mann_kendall(&indexed(&x)).unwrap();
        assert_eq!(t.s, PY_FLAT.0);
        assert!((t.var_s * t.autocorrelation_factor - PY_FLAT.1).abs() < 1e-6 * PY_FLAT.1);
        assert!((t.z - PY_FLAT.2).abs() < 1e-6);
        assert!((t.p - PY_FLAT.3).abs() < 1e-6);
        assert!((t.slope - PY_FLAT.4).abs() < 1e-9);
        assert!(!t.significant());
        assert!(t.slope_lo <= 0.0 && 0.0 <= t.slope_hi);
    }

    // (s, var_s corrected, z, p, slope) from pymannkendall.
    const PY_TREND: (f64, f64, f64, f64, f64) = (
        395.0,
        1181.5961708039822,
        11.46203378894881,
        0.0,
        0.5384615384615384,
    );
    const PY_FLAT: (f64, f64, f64, f64, f64) = (
        -15.0,
        1557.4105118763987,
        -0.3547533333109918,
        0.722774391925584,
        0.0,
    );

    #[test]
    fn autocorrelation_widens_the_variance_of_a_wandering_series() {
        // A slow sine: strongly autocorrelated, no trend over whole periods.
        let x: Vec<f64> = (0..200)
            .map(|i| (i as f64 * std::f64::consts::TAU / 50.0).sin())
            .collect();
        let t = mann_kendall(&indexed(&x)).unwrap();
        assert!(t.autocorrelation_factor > 2.0, "{t:?}");
        assert!(!t.significant(), "{t:?}");
    }

    #[test]
    fn the_slope_uses_time_not_position() {
        // Twice the spacing halves the slope; a gap (a resumed soak) is fine.
        let pts: Vec<(f64, f64)> = (0..20)
            .map(|i| {
                let t = if i < 10 {
                    i as f64 * 2.0
                } else {
                    i as f64 * 2.0 + 100.0
                };
                (t, 3.0 * t + 7.0)
            })
            .collect();
        let t = mann_kendall(&pts).unwrap();
        assert!((t.slope - 3.0).abs() < 1e-12);
        assert!((t.intercept - 7.0).abs() < 1e-9);
        assert_eq!((t.slope_lo, t.slope_hi), (3.0, 3.0));
    }

    #[test]
    fn too_few_or_non_finite_samples_give_nothing() {
        assert!(mann_kendall(&indexed(&[1.0, 2.0, 3.0])).is_none());
        assert!(mann_kendall(&indexed(&[1.0, 2.0, f64::NAN, 3.0])).is_none());
    }

    #[test]
    fn binning_keeps_the_slope_and_bounds_the_count() {
        let pts: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 0.5 * i as f64)).collect();
        let b = bin(&pts, 500);
        assert!(b.len() <= 500 && b.len() >= 400);
        assert!((mann_kendall(&b).unwrap().slope - 0.5).abs() < 1e-9);
        assert_eq!(bin(&pts[..10], 500).len(), 10);
    }
}
