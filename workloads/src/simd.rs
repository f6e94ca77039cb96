//! Dot product and cosine similarity of f32 vectors (Engram's 768-d embeddings):
//! a scalar reference and SSE2 / AVX2+FMA / AVX-512F (x86_64) and NEON (aarch64)
//! kernels, chosen at run time by CPU feature detection.
//!
//! Every kernel widens to f64 before multiplying and accumulates in f64. That is
//! what makes them all agree with the scalar reference to 1e-6 (relative to
//! Σ|aᵢbᵢ|) whatever the summation order, and keeps denormal products (which f32
//! would flush to 0) and huge products (which f32 would overflow) exact enough.
//! The price is half the lanes of an f32 kernel; the numbers say what it costs.
//! Defined results on degenerate input: cosine of a zero vector is 0, never NaN.

/// A kernel implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kernel {
    Scalar,
    /// SSE2 is the x86_64 baseline; SSE4.2 machines run this one.
    Sse2,
    Avx2Fma,
    Avx512,
    Neon,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Sse2 => "sse2",
            Kernel::Avx2Fma => "avx2-fma",
            Kernel::Avx512 => "avx512f",
            Kernel::Neon => "neon",
        }
    }

    /// Whether this CPU (and OS) can run the kernel, detected at run time.
    pub fn available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 => std::arch::is_x86_feature_detected!("sse2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every kernel this machine can run, slowest first.
    pub fn available_kernels() -> Vec<Kernel> {
        [
            Kernel::Scalar,
            Kernel::Sse2,
            Kernel::Neon,
            Kernel::Avx2Fma,
            Kernel::Avx512,
        ]
        .into_iter()
        .filter(|k| k.available())
        .collect()
    }

    /// The widest available kernel and why it was chosen.
    pub fn dispatch() -> (Kernel, String) {
        let k = *Self::available_kernels()
            .last()
            .expect("scalar is always available");
        let why = match k {
            Kernel::Avx512 => "AVX-512F detected at run time (is_x86_feature_detected!)",
            Kernel::Avx2Fma => "AVX2 and FMA detected at run time; no AVX-512F",
            Kernel::Sse2 => "x86_64 baseline SSE2; no AVX2+FMA",
            Kernel::Neon => "NEON detected at run time (is_aarch64_feature_detected!)",
            Kernel::Scalar => "no SIMD kernel for this architecture",
        };
        (k, why.to_string())
    }

    /// Σ aᵢbᵢ. Panics if the lengths differ or the kernel is not available.
    pub fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        self.dot_f64(a, b) as f32
    }

    /// Both kernels' preconditions: equal lengths, and a kernel this CPU runs (the
    /// unsafe target-feature calls below rely on it).
    fn check(self, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "vectors of different lengths");
        assert!(
            self.available(),
            "kernel {} is not available on this CPU",
            self.name()
        );
    }

    /// Σ aᵢbᵢ in f64 (before the final rounding to f32).
    pub fn dot_f64(self, a: &[f32], b: &[f32]) -> f64 {
        self.check(a, b);
        match self {
            Kernel::Scalar => scalar::dot(a, b),
            // SAFETY: availability of the target features was checked above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 => unsafe { x86::dot_sse2(a, b) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => unsafe { x86::dot_avx2(a, b) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { x86::dot_avx512(a, b) },
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => unsafe { arm::dot_neon(a, b) },
            #[allow(unreachable_patterns)]
            _ => unreachable!("availability checked"),
        }
    }

    /// (a·b, a·a, b·b) in one pass over both vectors.
    pub fn dot3(self, a: &[f32], b: &[f32]) -> (f64, f64, f64) {
        self.check(a, b);
        match self {
            Kernel::Scalar => scalar::dot3(a, b),
            // SAFETY: availability of the target features was checked above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 => unsafe { x86::dot3_sse2(a, b) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => unsafe { x86::dot3_avx2(a, b) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { x86::dot3_avx512(a, b) },
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => unsafe { arm::dot3_neon(a, b) },
            #[allow(unreachable_patterns)]
            _ => unreachable!("availability checked"),
        }
    }

    /// cos(a, b) = a·b / (|a||b|); 0 when either vector is zero.
    pub fn cosine(self, a: &[f32], b: &[f32]) -> f32 {
        let (ab, aa, bb) = self.dot3(a, b);
        if aa == 0.0 || bb == 0.0 {
            return 0.0;
        }
        (ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0) as f32
    }
}

mod scalar {
    pub fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum()
    }

    pub fn dot3(a: &[f32], b: &[f32]) -> (f64, f64, f64) {
        a.iter()
            .zip(b)
            .fold((0.0, 0.0, 0.0), |(ab, aa, bb), (&x, &y)| {
                let (x, y) = (f64::from(x), f64::from(y));
                (ab + x * y, aa + x * x, bb + y * y)
            })
    }

    pub fn add3(t: (f64, f64, f64), u: (f64, f64, f64)) -> (f64, f64, f64) {
        (t.0 + u.0, t.1 + u.1, t.2 + u.2)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::scalar;

    #[target_feature(enable = "sse2")]
    pub unsafe fn dot_sse2(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() / 4 * 4;
        let (mut lo, mut hi) = (_mm_setzero_pd(), _mm_setzero_pd());
        let mut i = 0;
        while i < n {
            let x = _mm_loadu_ps(a.as_ptr().add(i));
            let y = _mm_loadu_ps(b.as_ptr().add(i));
            lo = _mm_add_pd(lo, _mm_mul_pd(_mm_cvtps_pd(x), _mm_cvtps_pd(y)));
            // Upper two floats: move them down, then widen.
            let xh = _mm_movehl_ps(x, x);
            let yh = _mm_movehl_ps(y, y);
            hi = _mm_add_pd(hi, _mm_mul_pd(_mm_cvtps_pd(xh), _mm_cvtps_pd(yh)));
            i += 4;
        }
        let mut out = [0f64; 2];
        _mm_storeu_pd(out.as_mut_ptr(), _mm_add_pd(lo, hi));
        out[0] + out[1] + scalar::dot(&a[n..], &b[n..])
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() / 8 * 8;
        let (mut s0, mut s1) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        let mut i = 0;
        while i < n {
            let x0 = _mm256_cvtps_pd(_mm_loadu_ps(a.as_ptr().add(i)));
            let y0 = _mm256_cvtps_pd(_mm_loadu_ps(b.as_ptr().add(i)));
            let x1 = _mm256_cvtps_pd(_mm_loadu_ps(a.as_ptr().add(i + 4)));
            let y1 = _mm256_cvtps_pd(_mm_loadu_ps(b.as_ptr().add(i + 4)));
            s0 = _mm256_fmadd_pd(x0, y0, s0);
            s1 = _mm256_fmadd_pd(x1, y1, s1);
            i += 8;
        }
        let mut out = [0f64; 4];
        _mm256_storeu_pd(out.as_mut_ptr(), _mm256_add_pd(s0, s1));
        out.iter().sum::<f64>() + scalar::dot(&a[n..], &b[n..])
    }

    #[target_feature(enable = "sse2")]
    pub unsafe fn dot3_sse2(a: &[f32], b: &[f32]) -> (f64, f64, f64) {
        let n = a.len() / 2 * 2;
        let (mut ab, mut aa, mut bb) = (_mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd());
        let mut i = 0;
        while i < n {
            // Two floats at a time, widened (movsd-style 64-bit loads).
            let x = _mm_cvtps_pd(_mm_castpd_ps(_mm_load_sd(a.as_ptr().add(i) as *const f64)));
            let y = _mm_cvtps_pd(_mm_castpd_ps(_mm_load_sd(b.as_ptr().add(i) as *const f64)));
            ab = _mm_add_pd(ab, _mm_mul_pd(x, y));
            aa = _mm_add_pd(aa, _mm_mul_pd(x, x));
            bb = _mm_add_pd(bb, _mm_mul_pd(y, y));
            i += 2;
        }
        let h = |v: __m128d| {
            let mut o = [0f64; 2];
            _mm_storeu_pd(o.as_mut_ptr(), v);
            o[0] + o[1]
        };
        scalar::add3((h(ab), h(aa), h(bb)), scalar::dot3(&a[n..], &b[n..]))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot3_avx2(a: &[f32], b: &[f32]) -> (f64, f64, f64) {
        let n = a.len() / 4 * 4;
        let (mut ab, mut aa, mut bb) = (
            _mm256_setzero_pd(),
            _mm256_setzero_pd(),
            _mm256_setzero_pd(),
        );
        let mut i = 0;
        while i < n {
            let x = _mm256_cvtps_pd(_mm_loadu_ps(a.as_ptr().add(i)));
            let y = _mm256_cvtps_pd(_mm_loadu_ps(b.as_ptr().add(i)));
            ab = _mm256_fmadd_pd(x, y, ab);
            aa = _mm256_fmadd_pd(x, x, aa);
            bb = _mm256_fmadd_pd(y, y, bb);
            i += 4;
        }
        let h = |v: __m256d| {
            let mut o = [0f64; 4];
            _mm256_storeu_pd(o.as_mut_ptr(), v);
            o.iter().sum::<f64>()
        };
        scalar::add3((h(ab), h(aa), h(bb)), scalar::dot3(&a[n..], &b[n..]))
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot3_avx512(a: &[f32], b: &[f32]) -> (f64, f64, f64) {
        let n = a.len() / 8 * 8;
        let (mut ab, mut aa, mut bb) = (
            _mm512_setzero_pd(),
            _mm512_setzero_pd(),
            _mm512_setzero_pd(),
        );
        let mut i = 0;
        while i < n {
            let x = _mm512_cvtps_pd(_mm256_loadu_ps(a.as_ptr().add(i)));
            let y = _mm512_cvtps_pd(_mm256_loadu_ps(b.as_ptr().add(i)));
            ab = _mm512_fmadd_pd(x, y, ab);
            aa = _mm512_fmadd_pd(x, x, aa);
            bb = _mm512_fmadd_pd(y, y, bb);
            i += 8;
        }
        scalar::add3(
            (
                _mm512_reduce_add_pd(ab),
                _mm512_reduce_add_pd(aa),
                _mm512_reduce_add_pd(bb),
            ),
            scalar::dot3(&a[n..], &b[n..]),
        )
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() / 16 * 16;
        let (mut s0, mut s1) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let mut i = 0;
        while i < n {
            let x0 = _mm512_cvtps_pd(_mm256_loadu_ps(a.as_ptr().add(i)));
            let y0 = _mm512_cvtps_pd(_mm256_loadu_ps(b.as_ptr().add(i)));
            let x1 = _mm512_cvtps_pd(_mm256_loadu_ps(a.as_ptr().add(i + 8)));
            let y1 = _mm512_cvtps_pd(_mm256_loadu_ps(b.as_ptr().add(i + 8)));
            s0 = _mm512_fmadd_pd(x0, y0, s0);
            s1 = _mm512_fmadd_pd(x1, y1, s1);
            i += 16;
        }
        _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) + scalar::dot(&a[n..], &b[n..])
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::scalar;

    #[target_feature(enable = "neon")]
    pub unsafe fn dot_neon(a: &[f32], b: &[f32]) -> f64 {
        let n = a.len() / 4 * 4;
        let (mut s0, mut s1) = (vdupq_n_f64(0.0), vdupq_n_f64(0.0));
        let mut i = 0;
        while i < n {
            let x = vld1q_f32(a.as_ptr().add(i));
            let y = vld1q_f32(b.as_ptr().add(i));
            s0 = vfmaq_f64(
                s0,
                vcvt_f64_f32(vget_low_f32(x)),
                vcvt_f64_f32(vget_low_f32(y)),
            );
            s1 = vfmaq_f64(s1, vcvt_high_f64_f32(x), vcvt_high_f64_f32(y));
            i += 4;
        }
        vaddvq_f64(vaddq_f64(s0, s1)) + scalar::dot(&a[n..], &b[n..])
    }

    #[target_feature(enable = "neon")]
    pub unsafe fn dot3_neon(a: &[f32], b: &[f32]) -> (f64, f64, f64) {
        let n = a.len() / 4 * 4;
        let (mut ab, mut aa, mut bb) = (vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0));
        let mut i = 0;
        while i < n {
            let x = vld1q_f32(a.as_ptr().add(i));
            let y = vld1q_f32(b.as_ptr().add(i));
            let (xl, yl) = (vcvt_f64_f32(vget_low_f32(x)), vcvt_f64_f32(vget_low_f32(y)));
            let (xh, yh) = (vcvt_high_f64_f32(x), vcvt_high_f64_f32(y));
            ab = vfmaq_f64(vfmaq_f64(ab, xl, yl), xh, yh);
            aa = vfmaq_f64(vfmaq_f64(aa, xl, xl), xh, xh);
            bb = vfmaq_f64(vfmaq_f64(bb, yl, yl), yh, yh);
            i += 4;
        }
        scalar::add3(
            (vaddvq_f64(ab), vaddvq_f64(aa), vaddvq_f64(bb)),
            scalar::dot3(&a[n..], &b[n..]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic inputs without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// |got − reference| ≤ 1e-6 · Σ|aᵢbᵢ| (the scale of the rounding any order
    /// of summation may legitimately differ by), plus exact agreement on zeros.
    fn check(a: &[f32], b: &[f32], what: &str) {
        let reference = Kernel::Scalar.dot_f64(a, b);
        let scale: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) * f64::from(y)).abs())
            .sum();
        let cos_ref = Kernel::Scalar.cosine(a, b);
        for k in Kernel::available_kernels() {
            let got = k.dot_f64(a, b);
            assert!(
                (got - reference).abs() <= 1e-6 * scale,
                "{what}: {} dot {got} vs scalar {reference} (scale {scale})",
                k.name()
            );
            let (ab, aa, bb) = k.dot3(a, b);
            let (rab, raa, rbb) = Kernel::Scalar.dot3(a, b);
            let sq = |v: &[f32]| v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
            assert!(
                (ab - rab).abs() <= 1e-6 * scale,
                "{what}: {} dot3.ab",
                k.name()
            );
            assert!(
                (aa - raa).abs() <= 1e-6 * sq(a) && (bb - rbb).abs() <= 1e-6 * sq(b),
                "{what}: {} dot3 norms",
                k.name()
            );
            let c = k.cosine(a, b);
            assert!(!c.is_nan(), "{what}: {} cosine is NaN", k.name());
            assert!(
                (c - cos_ref).abs() <= 1e-6,
                "{what}: {} cosine {c} vs {cos_ref}",
                k.name()
            );
            assert_eq!(
                k.dot(a, b).is_finite(),
                (reference as f32).is_finite(),
                "{what}: {}",
                k.name()
            );
        }
    }

    #[test]
    fn kernels_match_the_reference_on_random_vectors() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for len in [768, 1, 3, 7, 15, 17, 767, 769, 1536] {
            for _ in 0..20 {
                let a: Vec<f32> = (0..len).map(|_| r.unit()).collect();
                let b: Vec<f32> = (0..len).map(|_| r.unit()).collect();
                check(&a, &b, &format!("random len {len}"));
            }
        }
    }

    #[test]
    fn kernels_match_on_adversarial_inputs() {
        let n = 768;
        let denormal = f32::MIN_POSITIVE / 1024.0;
        let cases: Vec<(&str, Vec<f32>, Vec<f32>)> = vec![
            ("zero", vec![0.0; n], vec![1.0; n]),
            ("both zero", vec![0.0; n], vec![0.0; n]),
            ("denormals", vec![denormal; n], vec![denormal; n]),
            ("huge", vec![1e38; n], vec![3e38; n]),
            ("tiny", vec![1e-38; n], vec![1e-30; n]),
            ("huge x tiny", vec![1e38; n], vec![1e-38; n]),
            (
                "cancellation",
                (0..n)
                    .map(|i| if i % 2 == 0 { 1e20 } else { -1e20 })
                    .collect(),
                vec![1.0; n],
            ),
            (
                "mixed magnitudes",
                (0..n).map(|i| 10f32.powi((i % 60) as i32 - 30)).collect(),
                (0..n)
                    .map(|i| if i % 3 == 0 { -1.5 } else { 0.25 })
                    .collect(),
            ),
        ];
        for (what, a, b) in cases {
            check(&a, &b, what);
        }
        // Defined results: a zero vector's cosine is 0, not NaN.
        for k in Kernel::available_kernels() {
            assert_eq!(k.cosine(&[0.0; 768], &[1.0; 768]), 0.0);
            assert_eq!(k.cosine(&[2.0; 768], &[2.0; 768]), 1.0);
            assert_eq!(k.cosine(&[2.0; 768], &[-2.0; 768]), -1.0);
        }
    }

    #[test]
    fn dispatch_picks_the_widest_available_kernel() {
        let (k, why) = Kernel::dispatch();
        assert!(k.available());
        assert!(!why.is_empty());
        assert_eq!(Kernel::available_kernels().last(), Some(&k));
        #[cfg(target_arch = "aarch64")]
        assert_eq!(k, Kernel::Neon, "every aarch64 Linux CPU has NEON");
        #[cfg(target_arch = "x86_64")]
        assert!(Kernel::available_kernels().contains(&Kernel::Sse2));
    }

    #[test]
    #[should_panic(expected = "different lengths")]
    fn mismatched_lengths_are_rejected() {
        Kernel::Scalar.dot(&[1.0], &[1.0, 2.0]);
    }
}
