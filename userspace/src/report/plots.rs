//! Plots as SVG (plotters): scaling curves with their fitted model, and latency
//! percentiles per variant. Each function writes one file and returns its path.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

/// One series: name, measured points, optional fitted curve.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub fitted: Vec<(f64, f64)>,
}

fn palette(i: usize) -> RGBColor {
    const C: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    C[i % C.len()]
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// Throughput vs threads: measured points, and the fitted curve dashed.
pub fn scaling(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<PathBuf> {
    let xs = series
        .iter()
        .flat_map(|s| s.points.iter().chain(&s.fitted))
        .map(|p| p.0);
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().chain(&s.fitted))
        .map(|p| p.1);
    let x_max = xs.fold(1.0f64, f64::max) + 0.5;
    let y_max = ys.fold(1.0f64, f64::max) * 1.1;
    {
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0.5f64..x_max, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("threads")
            .y_desc("ops/s")
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let c = palette(i);
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 5, c.filled())),
                )
                .map_err(err)?
                .label(format!("{} (measured)", s.name))
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
            if !s.fitted.is_empty() {
                chart
                    .draw_series(LineSeries::new(s.fitted.iter().copied(), c.stroke_width(2)))
                    .map_err(err)?
                    .label(format!(
                        "{} (USL fit; beyond measured = extrapolation)",
                        s.name
                    ))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                    });
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(path.to_path_buf())
}

/// Latency percentiles (p50, p99, p99.9) per variant, one line each, log scale.
pub fn latency(
    path: &Path,
    title: &str,
    variants: &[(String, f64, f64, f64)],
) -> anyhow::Result<PathBuf> {
    let n = variants.len().max(1);
    let y_max = variants
        .iter()
        .map(|v| v.3.max(v.2).max(v.1))
        .fold(1.0f64, f64::max)
        * 1.5;
    let y_min = variants
        .iter()
        .map(|v| v.1)
        .fold(f64::INFINITY, f64::min)
        .clamp(1.0, y_max)
        / 1.5;
    {
        let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let names: Vec<String> = variants.iter().map(|v| v.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(90)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (y_min..y_max).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round() as i64;
                if (0..names.len() as i64).contains(&i) && (x - i as f64).abs() < 1e-6 {
                    names[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .y_desc("ns per operation")
            .draw()
            .map_err(err)?;
        for (k, (label, pick)) in [
            ("p50", (|v: &(String, f64, f64, f64)| v.1) as fn(&_) -> f64),
            ("p99", |v| v.2),
            ("p99.9", |v| v.3),
        ]
        .into_iter()
        .enumerate()
        {
            let c = palette(k);
            let pts: Vec<(f64, f64)> = variants
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, pick(v).max(y_min)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(path.to_path_buf())
}

/// A symmetric CPU x CPU matrix of values (e.g. one-way latency), shaded from
/// light (lowest) to dark (highest), each cell labelled.
pub fn heatmap(path: &Path, title: &str, cells: &[(usize, usize, f64)]) -> anyhow::Result<PathBuf> {
    let mut cpus: Vec<usize> = cells.iter().flat_map(|c| [c.0, c.1]).collect();
    cpus.sort_unstable();
    cpus.dedup();
    let n = cpus.len().max(1);
    let idx = |c: usize| cpus.iter().position(|&x| x == c).unwrap_or(0) as f64;
    let (lo, hi) = cells.iter().fold((f64::INFINITY, 0.0f64), |(l, h), c| {
        (l.min(c.2), h.max(c.2))
    });
    let side = (60 * n as u32).clamp(300, 1200);
    let name = |v: &f64| -> String {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 {
            cpus.get(i as usize)
                .map_or(String::new(), |c| format!("CPU {c}"))
        } else {
            String::new()
        }
    };
    {
        let root = SVGBackend::new(path, (side + 120, side + 120)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        // Cells centred on integer coordinates, so axis ticks name rows and columns.
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), -0.5f64..(n as f64 - 0.5))
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&name)
            .y_label_formatter(&name)
            .draw()
            .map_err(err)?;
        for &(a, b, v) in cells {
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
            let shade = (230.0 - 180.0 * t) as u8;
            let colour = RGBColor(shade, shade, 255);
            for (x, y) in [(idx(a), idx(b)), (idx(b), idx(a))] {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                        colour.filled(),
                    )))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{v:.0}"),
                        (x - 0.12, y + 0.08),
                        ("sans-serif", 14),
                    )))
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_non_empty_svgs() {
        let dir = tempfile::tempdir().unwrap();
        let s = Series {
            name: "read-heavy".into(),
            points: vec![(1.0, 100.0), (2.0, 180.0)],
            fitted: (1..=8)
                .map(|n| (n as f64, 100.0 * n as f64 / (1.0 + 0.1 * (n as f64 - 1.0))))
                .collect(),
        };
        let p = scaling(&dir.path().join("s.svg"), "scaling", &[s]).unwrap();
        let svg = std::fs::read_to_string(p).unwrap();
        assert!(svg.contains("<svg") && svg.contains("read-heavy"));
        let p = latency(
            &dir.path().join("l.svg"),
            "latency",
            &[
                ("a".into(), 50.0, 90.0, 200.0),
                ("b".into(), 60.0, 300.0, 900.0),
            ],
        )
        .unwrap();
        let svg = std::fs::read_to_string(p).unwrap();
        assert!(svg.contains("p99.9") && svg.len() > 1000);
        let p = heatmap(
            &dir.path().join("h.svg"),
            "c2c",
            &[(0, 1, 62.0), (0, 2, 130.0), (1, 2, 128.0)],
        )
        .unwrap();
        let svg = std::fs::read_to_string(p).unwrap();
        assert!(
            svg.contains("CPU 2") && svg.contains("\n130\n"),
            "heatmap rows and cells are labelled"
        );
    }
}
