//! Plots (plotters), each written twice: SVG for the HTML index and PNG for
//! everything else (chat, tickets, slides). Scaling curves with their fitted model,
//! latency percentiles per variant, CPU x CPU heatmaps, and the charts and matrices
//! experiments return as findings. Each function returns the paths it wrote.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;

use hwprof_workloads::findings::{Chart, Matrix};

use super::schema::{GroupResult, ScalingSeries, Warning};
use super::Report;
use crate::output::is_write_error;

/// Text is laid out with an embedded DejaVu Sans (ab_glyph), so plots look the
/// same on every machine and need no fontconfig or system fonts.
fn ensure_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The embedded font is valid TrueType; a failure here is a build defect.
            plotters::style::register_font("sans-serif", style, dejavu::sans::regular())
                .unwrap_or_else(|_| panic!("embedded DejaVu Sans is not a valid font"));
        }
    });
}

/// Draw the same picture as SVG into `path` and beside it as PNG; evaluates to
/// the two paths. Both are rendered in memory and written through
/// [`crate::output::write_atomic`] (no symlink followed, no partial file
/// on a write error, owned by the invoking user under sudo). The body draws on
/// `$root` and may use `?` with [`err`].
macro_rules! svg_and_png {
    ($path:expr, $size:expr, |$root:ident| $body:block) => {{
        ensure_font();
        let svg: &Path = $path;
        let png = svg.with_extension("png");
        let mut svg_text = String::new();
        {
            let $root = SVGBackend::with_string(&mut svg_text, $size).into_drawing_area();
            $body
            $root.present().map_err(err)?;
        }
        let (w, h): (u32, u32) = $size;
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        {
            let $root = BitMapBackend::with_buffer(&mut rgb, $size).into_drawing_area();
            $body
            $root.present().map_err(err)?;
        }
        crate::output::write_atomic(svg, svg_text.as_bytes())?;
        crate::output::write_atomic(&png, &encode_png(&rgb, w, h)?)?;
        vec![svg.to_path_buf(), png]
    }};
}

/// An RGB buffer as PNG bytes.
fn encode_png(rgb: &[u8], w: u32, h: u32) -> anyhow::Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(rgb, w, h, image::ColorType::Rgb8)
        .map_err(err)?;
    Ok(out)
}

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
pub fn scaling(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<Vec<PathBuf>> {
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
    Ok(svg_and_png!(path, (900, 560), |root| {
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
    }))
}

/// Latency percentiles (p50, p99, p99.9) per variant, one line each, log scale.
pub fn latency(
    path: &Path,
    title: &str,
    variants: &[(String, f64, f64, f64)],
) -> anyhow::Result<Vec<PathBuf>> {
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
    Ok(svg_and_png!(path, (1000, 560), |root| {
        root.fill(&WHITE).map_err(err)?;
        let names: Vec<String> = variants.iter().map(|v| v.0.clone()).collect();
        // Names side by side overlap once there are more than a few: then they
        // stand vertically, in an axis area as tall as the longest needs.
        let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let vertical = n > 4 || longest * n > 90;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(if vertical {
                (longest as u32 * 9 + 24).max(90)
            } else {
                90
            })
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (y_min..y_max).log_scale())
            .map_err(err)?;
        let label_font = if vertical {
            ("sans-serif", 13)
                .into_font()
                .transform(FontTransform::Rotate90)
        } else {
            ("sans-serif", 13).into_font()
        };
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_style(label_font)
            .x_label_formatter(&|x| {
                let i = x.round() as i64;
                if (0..names.len() as i64).contains(&i) && (x - i as f64).abs() < 1e-6 {
                    let name = &names[i as usize];
                    if vertical {
                        // plotters centres a rotated label on its tick: as many
                        // figure spaces before it push the name below the axis.
                        format!("{}{name}", "\u{2007}".repeat(name.chars().count() + 2))
                    } else {
                        name.clone()
                    }
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
    }))
}

/// A symmetric CPU x CPU matrix of values (e.g. one-way latency), shaded from
/// light (lowest) to dark (highest), each cell labelled.
pub fn heatmap(
    path: &Path,
    title: &str,
    cells: &[(usize, usize, f64)],
) -> anyhow::Result<Vec<PathBuf>> {
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
    Ok(svg_and_png!(path, (side + 120, side + 120), |root| {
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
    }))
}

/// A tick label: at most three decimals, trailing zeros dropped (0.1 + 0.2
/// is labelled 0.3, not 0.30000000000000004).
fn tick(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// A findings chart: curves with 95% CI bars, log axes where asked, and dashed
/// vertical markers (cache sizes). Writes `dir/<id>.svg` and `.png`; returns file names.
pub fn chart(dir: &Path, c: &Chart) -> anyhow::Result<Vec<String>> {
    let pts = || c.curves.iter().flat_map(|k| k.points.iter());
    if pts().next().is_none() {
        anyhow::bail!("chart {} has no points", c.id);
    }
    let xs = pts().map(|p| p.x).chain(c.markers.iter().map(|m| m.1));
    let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
        (l.min(x), h.max(x))
    });
    let (y_lo, y_hi) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
        (l.min(p.y.lo.min(p.y.median)), h.max(p.y.hi.max(p.y.median)))
    });
    // Log axes need positive bounds; linear ones start at zero.
    let (x_lo, x_hi) = if c.log_x {
        ((x_lo / 1.3).max(1e-9), x_hi * 1.3)
    } else {
        (x_lo - 0.5, x_hi + 0.5)
    };
    let (y_lo, y_hi) = if c.log_y {
        ((y_lo / 1.5).max(1e-9), y_hi * 1.5)
    } else {
        (0.0, y_hi * 1.1)
    };
    // Byte axes tick at powers of two (32 KiB, 1 MiB), others at powers of ten.
    let x_base = if c.x_bytes { 2.0 } else { 10.0 };
    let fmt_x = |x: &f64| {
        if c.x_bytes {
            hwprof_workloads::findings::format_bytes(*x)
        } else {
            tick(*x)
        }
    };
    let path = dir.join(format!("{}.svg", c.id));
    let files = svg_and_png!(&path, (1000, 600), |root| {
        root.fill(&WHITE).map_err(err)?;
        let mut b = ChartBuilder::on(&root);
        b.caption(&c.title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .right_y_label_area_size(if c.secondary.is_some() { 75 } else { 0 });
        // The four axis combinations are distinct types in plotters; `$x` is
        // the x axis again, for a secondary (right-hand) y axis.
        macro_rules! draw {
            ($chart:expr, $x:expr) => {{
                let mut chart = $chart.map_err(err)?;
                // The primary axes, curves and markers; on a dual chart after
                // set_secondary_coord, which moves the right label area to the
                // secondary axis (else the primary labels both sides).
                macro_rules! primary {
                    ($c:ident) => {{
                        $c.configure_mesh()
                            .x_desc(c.x_label.as_str())
                            .y_desc(c.y_label.as_str())
                            .x_label_formatter(&fmt_x)
                            .draw()
                            .map_err(err)?;
                        for (label, x) in &c.markers {
                            $c.draw_series(DashedLineSeries::new(
                                [(*x, y_lo), (*x, y_hi)],
                                6,
                                4,
                                BLACK.mix(0.5).stroke_width(1),
                            ))
                            .map_err(err)?;
                            $c.draw_series(std::iter::once(Text::new(
                                label.clone(),
                                (*x, y_hi),
                                ("sans-serif", 14),
                            )))
                            .map_err(err)?;
                        }
                        for (i, k) in c.curves.iter().enumerate() {
                            let col = palette(i);
                            let line: Vec<(f64, f64)> =
                                k.points.iter().map(|p| (p.x, p.y.median)).collect();
                            $c.draw_series(LineSeries::new(line.clone(), col.stroke_width(2)))
                                .map_err(err)?
                                .label(k.name.as_str())
                                .legend(move |(x, y)| {
                                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                                });
                            $c.draw_series(line.iter().map(|&p| Circle::new(p, 3, col.filled())))
                                .map_err(err)?;
                            $c.draw_series(k.points.iter().map(|p| {
                                PathElement::new(
                                    vec![(p.x, p.y.lo), (p.x, p.y.hi)],
                                    col.stroke_width(1),
                                )
                            }))
                            .map_err(err)?;
                        }
                    }};
                }
                macro_rules! legend {
                    ($c:expr) => {
                        $c.configure_series_labels()
                            .position(SeriesLabelPosition::UpperLeft)
                            .background_style(WHITE.mix(0.8))
                            .border_style(BLACK)
                            .draw()
                            .map_err(err)?
                    };
                }
                match &c.secondary {
                    None => {
                        primary!(chart);
                        legend!(chart)
                    }
                    Some(sec) => {
                        let y2_hi = sec
                            .curves
                            .iter()
                            .flat_map(|k| k.points.iter())
                            .fold(0.0f64, |h, p| h.max(p.y.hi.max(p.y.median)))
                            .max(1e-9)
                            * 1.1;
                        let mut dual = chart.set_secondary_coord($x, 0.0..y2_hi);
                        primary!(dual);
                        dual.configure_secondary_axes()
                            .y_desc(sec.y_label.as_str())
                            .draw()
                            .map_err(err)?;
                        for (i, k) in sec.curves.iter().enumerate() {
                            // Colours after the primary curves', dashed: another axis.
                            let col = palette(c.curves.len() + i);
                            let line: Vec<(f64, f64)> =
                                k.points.iter().map(|p| (p.x, p.y.median)).collect();
                            dual.draw_secondary_series(DashedLineSeries::new(
                                line,
                                8,
                                4,
                                col.stroke_width(2),
                            ))
                            .map_err(err)?
                            .label(format!("{} (right axis)", k.name))
                            .legend(move |(x, y)| {
                                PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                            });
                        }
                        legend!(dual)
                    }
                }
            }};
        }
        match (c.log_x, c.log_y) {
            (true, true) => draw!(
                b.build_cartesian_2d(
                    (x_lo..x_hi).log_scale().base(x_base),
                    (y_lo..y_hi).log_scale()
                ),
                (x_lo..x_hi).log_scale().base(x_base)
            ),
            (true, false) => draw!(
                b.build_cartesian_2d((x_lo..x_hi).log_scale().base(x_base), y_lo..y_hi),
                (x_lo..x_hi).log_scale().base(x_base)
            ),
            (false, true) => draw!(
                b.build_cartesian_2d(x_lo..x_hi, (y_lo..y_hi).log_scale()),
                x_lo..x_hi
            ),
            (false, false) => draw!(b.build_cartesian_2d(x_lo..x_hi, y_lo..y_hi), x_lo..x_hi),
        }
    });
    Ok(file_names(&files))
}

/// A findings matrix (CPU node x memory node, …): one labelled cell per value,
/// shaded light (lowest) to dark (highest); unmeasured cells left blank.
pub fn matrix(dir: &Path, m: &Matrix) -> anyhow::Result<Vec<String>> {
    let (rows, cols) = (m.rows.len().max(1), m.cols.len().max(1));
    let values = m.cells.iter().flatten().flatten().map(|e| e.median);
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        anyhow::bail!("matrix {} has no measured cell", m.id);
    }
    let w = (150 * cols as u32).clamp(400, 1400) + 160;
    let h = (90 * rows as u32).clamp(260, 1000) + 140;
    let label = |names: &[String], v: &f64| -> String {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 {
            names.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let path = dir.join(format!("{}.svg", m.id));
    let files = svg_and_png!(&path, (w, h), |root| {
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{} ({})", m.title, m.unit), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(110)
            .build_cartesian_2d(-0.5f64..(cols as f64 - 0.5), (rows as f64 - 0.5)..-0.5f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(cols)
            .y_labels(rows)
            .x_label_formatter(&|v| label(&m.cols, v))
            .y_label_formatter(&|v| label(&m.rows, v))
            .x_desc(m.col_label.as_str())
            .y_desc(m.row_label.as_str())
            .draw()
            .map_err(err)?;
        for (r, row) in m.cells.iter().enumerate() {
            for (k, cell) in row.iter().enumerate() {
                let Some(e) = cell else { continue };
                let t = if hi > lo {
                    (e.median - lo) / (hi - lo)
                } else {
                    0.5
                };
                let shade = (230.0 - 170.0 * t) as u8;
                let (x, y) = (k as f64, r as f64);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                        RGBColor(shade, shade, 255).filled(),
                    )))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{:.3}", e.median)
                            .trim_end_matches('0')
                            .trim_end_matches('.')
                            .to_string(),
                        (x - 0.2, y),
                        ("sans-serif", 16),
                    )))
                    .map_err(err)?;
            }
        }
    });
    Ok(file_names(&files))
}

fn file_names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .collect()
}

/// Every plot of an experiment's report into `dir` (SVG and PNG each): the
/// scaling curves, latency per group, the pair heatmap and the experiment's own
/// charts and matrices. The file names go into `r.plots`; a plot that cannot
/// be drawn is a warning, a file that cannot be written fails.
pub fn for_report(r: &mut Report, dir: &Path) -> anyhow::Result<()> {
    let name = r.experiment.name.clone();
    let mut warnings = Vec::new();
    // Pair-by-pair runs have one group per pair: the heatmap is their plot.
    let latency_groups: &[GroupResult] = if r.pair_matrix.is_some() {
        &[]
    } else {
        &r.groups
    };
    let mut files = standard_plots(&name, dir, latency_groups, &r.scaling, &mut warnings)?;
    // A file that cannot be written fails the run; a plot that cannot be drawn
    // is a warning naming it.
    let mut keep = |plot: &str, drawn: anyhow::Result<Vec<String>>| -> anyhow::Result<()> {
        match drawn {
            Ok(names) => files.extend(names),
            Err(e) if is_write_error(&e) => return Err(e),
            Err(e) => warnings.push(Warning::PlotNotWritten {
                plot: plot.to_string(),
                reason: e.to_string(),
            }),
        }
        Ok(())
    };
    if let Some(m) = &r.pair_matrix {
        let drawn = heatmap(
            &dir.join("c2c-heatmap.svg"),
            &format!("hwprof {name}: one-way cache-line transfer latency (ns)"),
            &m.pairs
                .iter()
                .map(|p| (p.cpus.0, p.cpus.1, p.one_way_ns))
                .collect::<Vec<_>>(),
        )
        .map(|_| vec!["c2c-heatmap.svg".into(), "c2c-heatmap.png".into()]);
        keep("", drawn)?;
    }
    if let Some(found) = &r.findings {
        for c in &found.charts {
            keep(&c.id, chart(dir, c))?;
        }
        for m in &found.matrices {
            keep(&m.id, matrix(dir, m))?;
        }
    }
    r.plots = files;
    r.warnings.extend(warnings);
    Ok(())
}

/// SVG plots for the report: scaling curves with the USL fit (thread sweeps) and
/// latency percentiles per group (experiments that time operations).
fn standard_plots(
    name: &str,
    dir: &std::path::Path,
    groups: &[GroupResult],
    scaling: &[ScalingSeries],
    warnings: &mut Vec<Warning>,
) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    // A file that cannot be written fails the run; a plot that cannot be drawn
    // is a warning.
    let mut fatal: Option<anyhow::Error> = None;
    let mut keep = |r: anyhow::Result<Vec<std::path::PathBuf>>| match r {
        Ok(paths) => files.extend(
            paths
                .iter()
                .filter_map(|p| p.file_name())
                .map(|f| f.to_string_lossy().into_owned()),
        ),
        Err(e) if is_write_error(&e) => {
            fatal.get_or_insert(e);
        }
        Err(e) => warnings.push(Warning::PlotNotWritten {
            plot: String::new(),
            reason: e.to_string(),
        }),
    };
    if !scaling.is_empty() {
        // A readable chart holds a handful of series: the first six (by variant order).
        const MAX_SERIES: usize = 6;
        let title = if scaling.len() > MAX_SERIES {
            format!("hwprof {name}: throughput vs threads, USL fit (first {MAX_SERIES} of {} series; all in report.json)", scaling.len())
        } else {
            format!("hwprof {name}: throughput vs threads, USL fit")
        };
        let series: Vec<Series> = scaling
            .iter()
            .take(MAX_SERIES)
            .map(|s| Series {
                name: format!("{} ({})", s.variant, s.policy),
                points: s
                    .points
                    .iter()
                    .map(|p| (p.threads as f64, p.ops_per_sec))
                    .collect(),
                fitted: s
                    .predicted
                    .iter()
                    .copied()
                    .take_while(|p| p.0 <= (4 * s.measured_max_threads).max(8) as f64)
                    .collect(),
            })
            .collect();
        keep(self::scaling(&dir.join("scaling.svg"), &title, &series));
    }
    for g in groups {
        let lat: Vec<(String, f64, f64, f64)> = g
            .variants
            .iter()
            .filter_map(|v| {
                let m = |k: &str| {
                    v.metrics
                        .get(k)
                        .and_then(|m| m.summary.as_ref())
                        .map(|s| s.median)
                };
                Some((
                    v.name.clone(),
                    m("latency_p50_ns")?,
                    m("latency_p99_ns")?,
                    m("latency_p999_ns")?,
                ))
            })
            .collect();
        if !lat.is_empty() {
            let slug: String = g
                .label
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
                .split('-')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("-");
            let file = format!("latency-{slug}.svg");
            keep(latency(
                &dir.join(file),
                &format!("hwprof {name} ({}): latency per operation", g.label),
                &lat,
            ));
        }
    }
    match fatal {
        Some(e) => Err(e),
        None => Ok(files),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick(0.1 + 0.2), "0.3");
        assert_eq!(tick(-0.0001), "0");
        assert_eq!(tick(12.0), "12");
        assert_eq!(tick(1.25), "1.25");
    }

    /// The SVG's text, after checking that its PNG twin is a real, non-trivial PNG.
    fn read_pair(paths: &[PathBuf]) -> String {
        assert_eq!(paths.len(), 2, "{paths:?}");
        let png = std::fs::read(&paths[1]).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{:?} is not a PNG",
            paths[1]
        );
        assert!(png.len() > 2000, "{:?} is nearly empty", paths[1]);
        std::fs::read_to_string(&paths[0]).unwrap()
    }

    #[test]
    fn a_secondary_axis_is_drawn_on_the_right_with_its_curves() {
        use hwprof_workloads::findings::{Curve, CurvePoint, Estimate, SecondaryAxis};
        let dir = tempfile::tempdir().unwrap();
        let curve = |name: &str, ys: &[f64]| Curve {
            name: name.into(),
            points: ys
                .iter()
                .enumerate()
                .map(|(i, &y)| CurvePoint {
                    x: i as f64,
                    y: Estimate {
                        median: y,
                        lo: y,
                        hi: y,
                    },
                })
                .collect(),
        };
        let mut c = Chart {
            id: "over-time".into(),
            title: "latency over time".into(),
            x_label: "seconds".into(),
            y_label: "latency (ms)".into(),
            x_bytes: false,
            log_x: false,
            log_y: true,
            curves: vec![curve("p99", &[1.0, 2.0, 150.0, 3.0])],
            markers: vec![],
            secondary: Some(SecondaryAxis {
                y_label: "requests/s".into(),
                curves: vec![curve("offered rate", &[1000.0, 1000.0, 5000.0, 1000.0])],
            }),
        };
        let files = chart(dir.path(), &c).unwrap();
        let svg = read_pair(&[dir.path().join(&files[0]), dir.path().join(&files[1])]);
        assert!(
            svg.contains("offered rate (right axis)"),
            "no secondary legend"
        );
        assert!(svg.contains("requests/s"), "no secondary axis label");
        // The right axis is scaled to its own curves (up to 5000/s), not the
        // latency's (up to 150 ms): some tick label reads 1000 or more.
        let big_tick = svg
            .split('>')
            .filter_map(|t| t.split('<').next())
            .filter_map(|t| t.trim().replace(',', "").parse::<f64>().ok())
            .any(|v| (1000.0..=6000.0).contains(&v));
        assert!(big_tick, "secondary ticks missing: {svg}");
        c.secondary = None;
        let files = chart(dir.path(), &c).unwrap();
        let svg = std::fs::read_to_string(dir.path().join(&files[0])).unwrap();
        assert!(!svg.contains("requests/s"));
    }

    #[test]
    fn findings_charts_and_matrices_become_svg_and_png() {
        use hwprof_workloads::findings::{Curve, CurvePoint, Estimate};
        let dir = tempfile::tempdir().unwrap();
        let e = |m: f64| Estimate {
            median: m,
            lo: m * 0.95,
            hi: m * 1.05,
        };
        let c = Chart {
            id: "staircase".into(),
            title: "latency staircase".into(),
            x_label: "working set".into(),
            y_label: "ns per access".into(),
            x_bytes: true,
            log_x: true,
            log_y: true,
            curves: vec![Curve {
                name: "random".into(),
                points: [
                    (16384.0, 1.2),
                    (65536.0, 4.0),
                    (1048576.0, 12.0),
                    (67108864.0, 90.0),
                ]
                .iter()
                .map(|&(x, y)| CurvePoint { x, y: e(y) })
                .collect(),
            }],
            markers: vec![("L1d 32 KiB".into(), 32768.0)],
            secondary: None,
        };
        let files = chart(dir.path(), &c).unwrap();
        assert_eq!(files, ["staircase.svg", "staircase.png"]);
        let svg = read_pair(&[dir.path().join(&files[0]), dir.path().join(&files[1])]);
        assert!(svg.contains("L1d 32 KiB") && svg.contains("random") && svg.contains("64 MiB"));
        let m = Matrix {
            id: "numa-read".into(),
            title: "read bandwidth".into(),
            row_label: "CPU node".into(),
            col_label: "memory node".into(),
            unit: "GB/s".into(),
            rows: vec!["node 0".into(), "node 1".into()],
            cols: vec!["node 0".into(), "node 1".into()],
            cells: vec![
                vec![Some(e(20.5)), Some(e(11.25))],
                vec![Some(e(11.0)), None],
            ],
        };
        let files = matrix(dir.path(), &m).unwrap();
        let svg = read_pair(&[dir.path().join(&files[0]), dir.path().join(&files[1])]);
        assert!(svg.contains("20.5") && svg.contains("11.25") && svg.contains("node 1"));
        let empty = Matrix {
            cells: vec![vec![None, None], vec![None, None]],
            ..m
        };
        assert!(
            matrix(dir.path(), &empty).is_err(),
            "a matrix with no value is not drawn"
        );
    }

    #[test]
    fn writes_non_empty_svgs_and_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let s = Series {
            name: "read-heavy".into(),
            points: vec![(1.0, 100.0), (2.0, 180.0)],
            fitted: (1..=8)
                .map(|n| (n as f64, 100.0 * n as f64 / (1.0 + 0.1 * (n as f64 - 1.0))))
                .collect(),
        };
        let p = scaling(&dir.path().join("s.svg"), "scaling", &[s]).unwrap();
        let svg = read_pair(&p);
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
        let svg = read_pair(&p);
        assert!(svg.contains("p99.9") && svg.len() > 1000);
        let p = heatmap(
            &dir.path().join("h.svg"),
            "c2c",
            &[(0, 1, 62.0), (0, 2, 130.0), (1, 2, 128.0)],
        )
        .unwrap();
        let svg = read_pair(&p);
        assert!(
            svg.contains("CPU 2") && svg.contains("\n130\n"),
            "heatmap rows and cells are labelled"
        );
    }
}
