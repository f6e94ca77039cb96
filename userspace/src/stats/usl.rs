//! Universal Scalability Law (Gunther): X(N) = λN / (1 + σ(N−1) + κN(N−1)).
//! σ is contention (serialisation), κ coherency (crosstalk). With λ = X(1),
//! λN/X(N) − 1 = σ(N−1) + κN(N−1) is linear in (σ, κ): least squares without
//! intercept, constrained to σ, κ ≥ 0 (a negative σ would claim super-linear
//! scaling the model cannot produce; with two parameters the constrained optimum
//! is the unconstrained one or lies on an axis, so no iterative solver is needed).

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UslFit {
    pub lambda: f64,
    pub sigma: f64,
    pub kappa: f64,
    /// R² of the fitted X(N) against the measured throughput.
    pub r2: f64,
    /// N* = sqrt((1 − σ)/κ): where throughput peaks (None: no peak, κ ≤ 0).
    pub peak_threads: Option<f64>,
    pub points: usize,
    /// What the fit can and cannot say from these points.
    pub note: String,
    /// The largest thread count predictions may be stated for: the measured
    /// maximum when the points cannot pin both parameters down (None: no bound).
    pub predicts_up_to: Option<f64>,
}

impl UslFit {
    pub fn predict(&self, n: f64) -> f64 {
        self.lambda * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }
}

/// Fit (threads, throughput) points. Needs the single-thread point (λ) and at
/// least one more; with only two thread counts κ cannot be told apart from σ and
/// is fixed at 0 (said in `note`).
pub fn fit(points: &[(f64, f64)]) -> Option<UslFit> {
    let lambda = points.iter().find(|p| p.0 == 1.0)?.1;
    if lambda <= 0.0 {
        return None;
    }
    let rest: Vec<(f64, f64, f64)> = points
        .iter()
        .filter(|p| p.0 > 1.0 && p.1 > 0.0)
        .map(|&(n, x)| (n - 1.0, n * (n - 1.0), lambda * n / x - 1.0))
        .collect();
    if rest.is_empty() {
        return None;
    }
    let (saa, sab, sbb, say, sby) =
        rest.iter()
            .fold((0.0, 0.0, 0.0, 0.0, 0.0), |acc, &(a, b, y)| {
                (
                    acc.0 + a * a,
                    acc.1 + a * b,
                    acc.2 + b * b,
                    acc.3 + a * y,
                    acc.4 + b * y,
                )
            });
    let det = saa * sbb - sab * sab;
    let distinct: std::collections::BTreeSet<u64> = rest.iter().map(|r| r.0 as u64).collect();
    let measured_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    // Squared residual of the linearised model, to choose among feasible fits.
    let sse = |s: f64, k: f64| -> f64 {
        rest.iter()
            .map(|&(a, b, y)| (y - s * a - k * b).powi(2))
            .sum()
    };
    let sigma_only = (say / saa).max(0.0);
    let (sigma, kappa, note, predicts_up_to) = if distinct.len() >= 2 && det.abs() > 1e-12 {
        let (s_free, k_free) = ((say * sbb - sby * sab) / det, (saa * sby - sab * say) / det);
        let (sigma, kappa) = if s_free >= 0.0 && k_free >= 0.0 {
            (s_free, k_free)
        } else {
            let kappa_only = (sby / sbb).max(0.0);
            if sse(sigma_only, 0.0) <= sse(0.0, kappa_only) {
                (sigma_only, 0.0)
            } else {
                (0.0, kappa_only)
            }
        };
        let bound = if s_free < 0.0 || k_free < 0.0 {
            format!(
                " (the unconstrained fit gave σ {s_free:.4}, κ {k_free:.5}: held at 0, the model \
                 has no super-linear term)"
            )
        } else {
            String::new()
        };
        (
            sigma,
            kappa,
            format!(
                "σ and κ fitted from {} thread counts{bound}",
                distinct.len() + 1
            ),
            None,
        )
    } else {
        (
            sigma_only,
            0.0,
            "only two thread counts: κ (coherency) cannot be separated from σ and is set to 0; \
             no prediction is made beyond the measured threads"
                .to_string(),
            Some(measured_max),
        )
    };
    let fitted = UslFit {
        lambda,
        sigma,
        kappa,
        r2: 0.0,
        peak_threads: None,
        points: points.len(),
        note,
        predicts_up_to,
    };
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let ss_tot: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let ss_res: f64 = points
        .iter()
        .map(|p| (p.1 - fitted.predict(p.0)).powi(2))
        .sum();
    Some(UslFit {
        r2: if ss_tot > 0.0 {
            1.0 - ss_res / ss_tot
        } else {
            1.0
        },
        peak_threads: (kappa > 0.0 && sigma < 1.0).then(|| ((1.0 - sigma) / kappa).sqrt()),
        ..fitted
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usl(n: f64, s: f64, k: f64) -> f64 {
        1000.0 * n / (1.0 + s * (n - 1.0) + k * n * (n - 1.0))
    }

    #[test]
    fn recovers_known_parameters() {
        let pts: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
            .iter()
            .map(|&n| (n, usl(n, 0.05, 0.002)))
            .collect();
        let f = fit(&pts).unwrap();
        assert!(
            (f.sigma - 0.05).abs() < 1e-9 && (f.kappa - 0.002).abs() < 1e-9,
            "{f:?}"
        );
        assert!((f.r2 - 1.0).abs() < 1e-9);
        let peak = f.peak_threads.unwrap();
        assert!((peak - (0.95f64 / 0.002).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn noisy_points_still_fit_well() {
        let noise = [1.02, 0.97, 1.01, 0.99, 1.03, 0.98];
        let pts: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
            .iter()
            .zip(noise)
            .map(|(&n, e)| (n, usl(n, 0.1, 0.001) * e))
            .collect();
        let f = fit(&pts).unwrap();
        assert!((f.sigma - 0.1).abs() < 0.05 && f.kappa > 0.0, "{f:?}");
        assert!(f.r2 > 0.95);
    }

    #[test]
    fn two_points_fit_sigma_only_and_say_so() {
        let f = fit(&[(1.0, 100.0), (2.0, 160.0)]).unwrap();
        assert!((f.sigma - 0.25).abs() < 1e-12, "{f:?}");
        assert_eq!(f.kappa, 0.0);
        assert_eq!(f.peak_threads, None);
        assert!(f.note.contains("no prediction"), "{}", f.note);
        assert_eq!(f.predicts_up_to, Some(2.0));
        assert!(
            fit(&[(2.0, 100.0), (4.0, 150.0)]).is_none(),
            "needs the 1-thread point"
        );
        assert!(fit(&[(1.0, 100.0)]).is_none());
    }

    /// Two points that scale better than linearly (noise, or a cache effect)
    /// must not turn into a negative σ and a super-linear curve.
    #[test]
    fn super_linear_points_give_no_negative_parameters() {
        let f = fit(&[(1.0, 100.0), (2.0, 230.0)]).unwrap();
        assert_eq!((f.sigma, f.kappa), (0.0, 0.0), "{f:?}");
        assert!(f.predict(8.0) <= 8.0 * 100.0 + 1e-9);
        let f = fit(&[(1.0, 100.0), (2.0, 230.0), (4.0, 300.0), (8.0, 280.0)]).unwrap();
        assert!(f.sigma >= 0.0 && f.kappa >= 0.0, "{f:?}");
        assert!(f.note.contains("held at 0"), "{}", f.note);
        assert_eq!(f.predicts_up_to, None);
    }
}
