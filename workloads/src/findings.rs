//! What an experiment concludes from its measurements, beyond the A/B
//! comparisons the runner computes: curves (a staircase, a distance sweep), node ×
//! node matrices and verdict lines in plain words. The experiment computes these
//! from [`GroupOutcome`]s (pure, testable without a machine); the `hwprof` crate
//! only renders them (report, plots).

use serde::Serialize;

/// A median with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
}

/// One variant's measurement in one placement group.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantOutcome {
    pub name: String,
    /// Operations per second, summed over the group's workers.
    pub ops_per_sec: Estimate,
    /// Nanoseconds per operation per worker.
    pub ns_per_op: Estimate,
}

/// A comparison the runner computed (baseline throughput / treatment throughput).
#[derive(Debug, Clone, PartialEq)]
pub struct RatioOutcome {
    pub treatment: String,
    pub baseline: String,
    pub ratio: Estimate,
}

/// One placement group's results.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOutcome {
    pub label: String,
    pub cpus: Vec<usize>,
    /// `smt-siblings`, `same-l3`, … for two-party groups.
    pub pair_class: Option<String>,
    /// The NUMA node all of the group's CPUs belong to, if they share one.
    pub cpu_node: Option<usize>,
    pub variants: Vec<VariantOutcome>,
    pub ratios: Vec<RatioOutcome>,
}

impl GroupOutcome {
    pub fn variant(&self, name: &str) -> Option<&VariantOutcome> {
        self.variants.iter().find(|v| v.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    pub x: f64,
    pub y: Estimate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Curve {
    pub name: String,
    pub points: Vec<CurvePoint>,
}

/// A line chart: one or more curves over a shared x axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chart {
    /// File stem of the plot (`staircase` → staircase.svg / .png).
    pub id: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// x values are bytes (axis labelled KiB/MiB/GiB, log scale).
    pub x_bytes: bool,
    pub log_x: bool,
    pub log_y: bool,
    pub curves: Vec<Curve>,
    /// Vertical reference lines (cache sizes, …): label and x.
    pub markers: Vec<(String, f64)>,
    /// Curves on a second, linear y axis at the right (the offered rate under
    /// latency over time), drawn dashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secondary: Option<SecondaryAxis>,
}

/// A chart's right-hand y axis: its label and the curves measured against it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondaryAxis {
    pub y_label: String,
    pub curves: Vec<Curve>,
}

/// A matrix of values: rows × columns (CPU node × memory node, …). None: not measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    pub id: String,
    pub title: String,
    pub row_label: String,
    pub col_label: String,
    pub unit: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub cells: Vec<Vec<Option<Estimate>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Findings {
    /// Plain-words conclusions, most important first.
    pub verdict: Vec<String>,
    /// Things the reader must know to trust the verdict (a knee where the topology
    /// declares no cache, a single NUMA node, …).
    pub warnings: Vec<String>,
    pub charts: Vec<Chart>,
    pub matrices: Vec<Matrix>,
}

impl Findings {
    pub fn is_empty(&self) -> bool {
        self.verdict.is_empty()
            && self.warnings.is_empty()
            && self.charts.is_empty()
            && self.matrices.is_empty()
    }
}

/// `48 KiB`, `2 MiB`, `1.5 GiB`.
pub fn format_bytes(b: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_formatted_in_binary_units() {
        assert_eq!(format_bytes(48.0 * 1024.0), "48 KiB");
        assert_eq!(format_bytes(2.0 * 1024.0 * 1024.0), "2 MiB");
        assert_eq!(format_bytes(1.5 * 1024.0 * 1024.0 * 1024.0), "1.5 GiB");
        assert_eq!(format_bytes(100.0), "100 B");
    }
}
