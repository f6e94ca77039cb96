//! log2 histograms aggregated in the kernel: bucket i holds values in [2^i, 2^(i+1)).

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Log2Hist {
    /// (bucket lower bound in ns, count), non-empty buckets only.
    pub buckets: Vec<(u64, u64)>,
    pub count: u64,
    /// Upper bounds of the buckets holding the 50th and 99th percentiles (ns).
    pub p50_ns_le: u64,
    pub p99_ns_le: u64,
}

impl Log2Hist {
    pub fn from_counts(counts: &[u64]) -> Log2Hist {
        let count: u64 = counts.iter().sum();
        let bound = |q: f64| -> u64 {
            if count == 0 {
                return 0;
            }
            let want = (q * count as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    return if i >= 63 {
                        u64::MAX
                    } else {
                        (1u64 << (i + 1)) - 1
                    };
                }
            }
            u64::MAX
        };
        Log2Hist {
            buckets: counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (if i == 0 { 0 } else { 1u64 << i }, *c))
                .collect(),
            count,
            p50_ns_le: bound(0.5),
            p99_ns_le: bound(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_buckets() {
        let mut c = vec![0u64; 64];
        c[10] = 98; // [1024, 2048)
        c[20] = 2; // [1M, 2M)
        let h = Log2Hist::from_counts(&c);
        assert_eq!(h.count, 100);
        assert_eq!(h.p50_ns_le, 2047);
        assert_eq!(h.p99_ns_le, (1 << 21) - 1);
        assert_eq!(h.buckets, vec![(1024, 98), (1 << 20, 2)]);
        assert_eq!(Log2Hist::from_counts(&[0; 64]).p99_ns_le, 0);
    }
}
