//! Key distributions for contention experiments: uniform, bounded Zipf (rank 1 =
//! id 0, the hottest), and a "celebrity" key taking a fixed share of accesses.

use rand::Rng;
use rand_distr::{Distribution, Zipf};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDist {
    Uniform,
    /// Zipf with exponent s over the n ids.
    Zipf(f64),
    /// Id 0 takes `share` of accesses; the rest are uniform over the other ids.
    Celebrity(f64),
}

#[derive(Debug, Clone)]
pub struct KeySampler {
    n: u64,
    dist: KeyDist,
    zipf: Option<Zipf<f64>>,
}

impl KeySampler {
    pub fn new(n: u64, dist: KeyDist) -> Result<KeySampler, String> {
        if n == 0 {
            return Err("a key space needs at least one key".into());
        }
        let zipf = match dist {
            KeyDist::Zipf(s) => {
                Some(Zipf::new(n as f64, s).map_err(|e| format!("Zipf(n={n}, s={s}): {e}"))?)
            }
            KeyDist::Celebrity(share) if !(0.0..=1.0).contains(&share) => {
                return Err(format!("celebrity share {share} is not a probability"));
            }
            _ => None,
        };
        Ok(KeySampler { n, dist, zipf })
    }

    pub fn n(&self) -> u64 {
        self.n
    }

    /// An id in 0..n.
    #[inline]
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        match self.dist {
            KeyDist::Uniform => rng.random_range(0..self.n),
            // rand_distr's Zipf yields ranks 1..=n as floats; clamp guards the edge.
            KeyDist::Zipf(_) => {
                let r = self.zipf.as_ref().expect("built in new").sample(rng);
                (r as u64).clamp(1, self.n) - 1
            }
            KeyDist::Celebrity(share) => {
                if self.n == 1 || rng.random_bool(share) {
                    0
                } else {
                    rng.random_range(1..self.n)
                }
            }
        }
    }

    /// Probability of id `k` (for goodness-of-fit tests and reports).
    pub fn pmf(&self, k: u64) -> f64 {
        if k >= self.n {
            return 0.0;
        }
        match self.dist {
            KeyDist::Uniform => 1.0 / self.n as f64,
            KeyDist::Zipf(s) => {
                let h: f64 = (1..=self.n).map(|i| (i as f64).powf(-s)).sum();
                ((k + 1) as f64).powf(-s) / h
            }
            KeyDist::Celebrity(share) => {
                if self.n == 1 {
                    1.0
                } else if k == 0 {
                    share
                } else {
                    (1.0 - share) / (self.n - 1) as f64
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Pearson χ² over the 20 hottest ids plus one bucket for the rest (21 buckets,
    /// df = 20). The 0.999 quantile of χ²(20) is 45.31: a correct sampler fails
    /// this one time in a thousand, and the seed is fixed, so the test is stable.
    const CHI2_999_DF20: f64 = 45.31;

    fn chi2(sampler: &KeySampler, draws: usize, seed: u64) -> f64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = vec![0u64; 21];
        for _ in 0..draws {
            let k = sampler.sample(&mut rng);
            assert!(k < sampler.n(), "id {k} out of range 0..{}", sampler.n());
            counts[(k as usize).min(20)] += 1;
        }
        let mut expected: Vec<f64> = (0..20).map(|k| sampler.pmf(k) * draws as f64).collect();
        expected.push(draws as f64 - expected.iter().sum::<f64>());
        counts
            .iter()
            .zip(&expected)
            .filter(|(_, e)| **e > 0.0)
            .map(|(&o, &e)| (o as f64 - e).powi(2) / e)
            .sum()
    }

    #[test]
    fn zipf_fits_its_distribution() {
        for s in [0.8, 1.0, 1.2] {
            let z = KeySampler::new(10_000, KeyDist::Zipf(s)).unwrap();
            let x = chi2(&z, 200_000, 11);
            assert!(x < CHI2_999_DF20, "Zipf s={s}: chi2 {x:.1}");
        }
    }

    #[test]
    fn uniform_and_celebrity_fit() {
        let u = KeySampler::new(1_000, KeyDist::Uniform).unwrap();
        assert!(chi2(&u, 200_000, 3) < CHI2_999_DF20);
        let c = KeySampler::new(1_000, KeyDist::Celebrity(0.5)).unwrap();
        assert!(chi2(&c, 200_000, 5) < CHI2_999_DF20);
    }

    /// A wrong sampler must fail the same test (the test can fail).
    #[test]
    fn the_fit_test_rejects_a_wrong_exponent() {
        let z = KeySampler::new(10_000, KeyDist::Zipf(1.0)).unwrap();
        let claimed = KeySampler::new(10_000, KeyDist::Zipf(1.2)).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        let draws = 200_000;
        let mut counts = vec![0u64; 21];
        for _ in 0..draws {
            counts[(z.sample(&mut rng) as usize).min(20)] += 1;
        }
        let mut expected: Vec<f64> = (0..20).map(|k| claimed.pmf(k) * draws as f64).collect();
        expected.push(draws as f64 - expected.iter().sum::<f64>());
        let x: f64 = counts
            .iter()
            .zip(&expected)
            .map(|(&o, &e)| (o as f64 - e).powi(2) / e)
            .sum();
        assert!(x > CHI2_999_DF20, "chi2 {x:.1} should reject");
    }

    #[test]
    fn ids_stay_in_range_at_the_extremes() {
        let mut rng = StdRng::seed_from_u64(1);
        for (n, dist) in [
            (1, KeyDist::Zipf(1.2)),
            (2, KeyDist::Zipf(0.01)),
            (3, KeyDist::Zipf(50.0)),
            (1, KeyDist::Celebrity(0.5)),
            (5, KeyDist::Celebrity(1.0)),
            (5, KeyDist::Celebrity(0.0)),
        ] {
            let s = KeySampler::new(n, dist).unwrap();
            for _ in 0..100_000 {
                assert!(s.sample(&mut rng) < n, "{dist:?} n={n}");
            }
        }
        assert!(KeySampler::new(0, KeyDist::Uniform).is_err());
        assert!(KeySampler::new(10, KeyDist::Celebrity(1.5)).is_err());
        assert!(KeySampler::new(10, KeyDist::Zipf(-1.0)).is_err());
    }
}
