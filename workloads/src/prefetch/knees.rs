//! Knees of the latency staircase: where the chase's latency climbs from one
//! plateau to the next (a cache's capacity, or the TLB's reach).

/// A knee of the staircase: where latency climbs from one plateau to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Knee {
    /// Capacity estimate: where the climb crosses half its height. Caches lose
    /// hits gradually (conflicts, replacement, page colouring), so the last size
    /// that still fits underestimates the capacity and the first that misses
    /// overestimates it; a broad climb's steepest step is noise-prone.
    pub bytes: f64,
    /// Largest sampled size still on the lower plateau.
    pub last_fit: f64,
    pub before_ns: f64,
    pub after_ns: f64,
}

/// Knees of a latency curve (sizes ascending). A knee is the steepest step of a
/// climb: a step rising at least 1.3x that is a local maximum of the rise. Two
/// maxima count as two knees only if the curve flattens between them (a step
/// rising less than the square root of the smaller maximum); otherwise they are
/// one climb and the steeper wins. A climb extends from its steepest step over
/// the neighbouring steps that rise more than 20%; the capacity estimate is where
/// it crosses half its height (geometric mean of the plateaus at its ends).
pub fn knees(points: &[(f64, f64)]) -> Vec<Knee> {
    const MIN_KNEE_RISE: f64 = 1.3;
    const CLIMBING: f64 = 1.2;
    let rise: Vec<f64> = points.windows(2).map(|w| w[1].1 / w[0].1).collect();
    let mut peaks: Vec<usize> = (0..rise.len())
        .filter(|&i| {
            rise[i] >= MIN_KNEE_RISE
                && (i == 0 || rise[i] >= rise[i - 1])
                && rise.get(i + 1).is_none_or(|&n| rise[i] > n)
        })
        .collect();
    // Merge maxima that belong to one climb.
    let mut merged: Vec<usize> = Vec::new();
    for i in peaks.drain(..) {
        if let Some(&last) = merged.last() {
            let dip = rise[last..=i].iter().copied().fold(f64::INFINITY, f64::min);
            if dip >= rise[last].min(rise[i]).sqrt() {
                if rise[i] > rise[last] {
                    *merged.last_mut().expect("non-empty") = i;
                }
                continue;
            }
        }
        merged.push(i);
    }
    merged
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            // The climb: from the peak step outwards while steps rise > 20%,
            // never into a neighbouring knee's peak.
            let floor = if k == 0 { 0 } else { merged[k - 1] + 1 };
            let ceil = merged.get(k + 1).copied().unwrap_or(rise.len());
            let mut start = i;
            while start > floor && rise[start - 1] > CLIMBING {
                start -= 1;
            }
            let mut end = i + 1;
            while end < ceil && rise[end] > CLIMBING {
                end += 1;
            }
            let (before, after) = (points[start].1, points[end].1);
            // Half height (geometric) of the climb, interpolated in log-log.
            let half = (before * after).sqrt();
            let j = (start + 1..=end)
                .find(|&j| points[j].1 >= half)
                .unwrap_or(end);
            let ((x0, y0), (x1, y1)) = (points[j - 1], points[j]);
            let t = ((half / y0).ln() / (y1 / y0).ln()).clamp(0.0, 1.0);
            Knee {
                bytes: x0 * (x1 / x0).powf(t),
                last_fit: points[start].0,
                before_ns: before,
                after_ns: after,
            }
        })
        .collect()
}

/// Running median of three (ends kept): one disturbed size (a host burst in a VM,
/// page compaction) must not read as a cache boundary. A real step spans several
/// sizes and survives it.
pub fn median_of_3(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|i| {
            if i == 0 || i + 1 == points.len() {
                return points[i];
            }
            let mut y = [points[i - 1].1, points[i].1, points[i + 1].1];
            y.sort_by(f64::total_cmp);
            (points[i].0, y[1])
        })
        .collect()
}
