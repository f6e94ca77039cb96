//! `hwprof scale` (Engram's task 004): the same load against stores of growing
//! size — per size the server's RSS and bytes per node, the preload time, p50
//! and p99 per operation at a fixed offered rate, the highest sustainable rate
//! (a short `load --ramp`), and where latency's growth departs from its trend.
//!
//! Each size gets a fresh `hwprof serve --preload N` child (its RSS is the
//! store's alone). Sizes are checked against the memory available first, from
//! the bytes per node measured at the smallest size: one that would not fit is
//! refused with the largest that would, and `--dim` can show the curve's shape
//! on a smaller embedding (the report says so).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::error::usage;
use crate::serve::child::ServeChild;

/// What `hwprof scale` was asked for.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    pub sizes: Vec<u64>,
    pub dim: usize,
    pub rate: f64,
    pub duration: f64,
    /// Find each size's highest sustainable rate with a short ramp.
    pub max_throughput: bool,
    pub slo_p99_ms: f64,
    /// The generator's busy-wait before each request (seconds; `load --spin`).
    pub spin: Option<f64>,
    pub out: Option<PathBuf>,
    pub json: bool,
}

/// Memory kept free beyond the estimate (the generator, page cache, slack).
const HEADROOM: f64 = 1.15;
/// Engram's target at 10M nodes.
pub const TARGET_P99_MS: f64 = 15.0;

/// One size's figures.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SizeResult {
    pub nodes: u64,
    pub rss_bytes: u64,
    pub bytes_per_node: f64,
    pub preload_s: f64,
    /// Per operation: p50 and p99 (ms) at the fixed rate.
    pub operations: Vec<(String, Option<f64>, Option<f64>)>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub achieved_rate: f64,
    pub max_rate: Option<f64>,
    pub max_rate_note: String,
    pub dir: String,
}

/// scale.json.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    pub schema_version: u32,
    pub kind: String,
    pub dim: usize,
    pub rate: f64,
    pub duration_s: f64,
    pub empty_rss_bytes: u64,
    pub available_bytes: u64,
    pub measured: Vec<SizeResult>,
    /// Sizes not run: (nodes, estimated bytes, why).
    pub refused: Vec<(u64, u64, String)>,
    /// Log–log slope of p99 against nodes between consecutive sizes.
    pub slopes: Vec<(u64, u64, f64)>,
    pub inflection: String,
    pub target: String,
    pub files: Vec<String>,
    pub warnings: Vec<String>,
}

/// `100k`, `1m`, `10M`, `250000`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1_000.0),
        Some('m') => (&t[..t.len() - 1], 1_000_000.0),
        Some('g') | Some('b') => (&t[..t.len() - 1], 1_000_000_000.0),
        _ => (t.as_str(), 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a node count such as 100k, 1m or 250000"))?;
    let n = (v * mult).round();
    if !(1.0..=1e11).contains(&n) {
        return Err(format!("{s:?}: between 1 and 100 billion nodes"));
    }
    Ok(n as u64)
}

/// MemAvailable from /proc/meminfo (bytes).
fn available_memory() -> Option<u64> {
    crate::measure::process::kb_field(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable:",
    )
}

fn rss_of(pid: u32) -> u64 {
    crate::measure::process::sample_process(pid).map_or(0, |r| r.rss_bytes)
}

/// "preloaded in 1.11 s" from serve's banner.
fn preload_seconds(banner: &str) -> f64 {
    banner
        .split("preloaded in ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Run every size that fits (smallest first: each size's bytes per node
/// estimates the next).
pub fn run(o: &ScaleOptions, interrupted: Arc<AtomicBool>) -> anyhow::Result<ScaleReport> {
    if o.sizes.is_empty() {
        return Err(usage("--sizes: give at least one size, e.g. 100k,1m,10m"));
    }
    let mut sizes = o.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/scale"));
    let out = crate::output::prepare_dir("--out", &out)?;
    let dim = o.dim.to_string();
    let mut warnings = Vec::new();
    if o.dim != 768 {
        warnings.push(format!(
            "{}-d embeddings, not Engram's 768: the curve's shape, not its figures",
            o.dim
        ));
    }
    // The empty server, then the smallest size: bytes per node.
    let empty = ServeChild::start(&["--dim".into(), dim.clone(), "--preload".into(), "0".into()])?;
    let empty_rss = rss_of(empty.pid);
    empty.stop();
    let available = available_memory().unwrap_or(0);
    let mut measured: Vec<SizeResult> = Vec::new();
    let mut refused = Vec::new();
    let mut bytes_per_node: Option<f64> = None;
    for &n in &sizes {
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        if let Some(bpn) = bytes_per_node {
            let est = empty_rss as f64 + bpn * n as f64;
            if est * HEADROOM > available as f64 {
                let fits = ((available as f64 / HEADROOM - empty_rss as f64) / bpn).max(0.0) as u64;
                refused.push((
                    n,
                    est as u64,
                    format!(
                        "{n} nodes need about {:.1} GB ({:.0} B/node measured at {}), {:.1} GB is available: \
                         the largest that fits is about {fits} nodes (or a smaller --dim shows the curve's shape)",
                        est / 1e9,
                        bpn,
                        measured.last().map_or(0, |m| m.nodes),
                        available as f64 / 1e9
                    ),
                ));
                continue;
            }
        }
        eprintln!("hwprof: scale: {n} nodes of {}-d: preloading", o.dim);
        let srv = ServeChild::start(&[
            "--dim".into(),
            dim.clone(),
            "--preload".into(),
            n.to_string(),
        ])?;
        let rss = rss_of(srv.pid);
        let bpn = (rss.saturating_sub(empty_rss)) as f64 / n as f64;
        // The largest size so far gives the truest bytes per node (fixed
        // overheads weigh less).
        bytes_per_node = Some(bpn);
        let dir = out.join(format!("{n}"));
        let result = measure_size(o, &srv, n, rss, bpn, &dir, &interrupted);
        srv.stop();
        let mut r = result?;
        r.dir = format!("{n}");
        eprintln!(
            "hwprof: scale: {n} nodes: RSS {:.1} MB ({bpn:.0} B/node), p99 {}, max {}",
            rss as f64 / 1e6,
            r.p99_ms.map_or("n/a".into(), |v| format!("{v:.2} ms")),
            r.max_rate.map_or("n/a".into(), |v| format!("{v:.0}/s"))
        );
        measured.push(r);
    }
    let mut rep = conclude(o, empty_rss, available, measured, refused, warnings);
    write(&mut rep, &out)?;
    Ok(rep)
}

/// The fixed-rate load and the ramp against one size's server.
fn measure_size(
    o: &ScaleOptions,
    srv: &ServeChild,
    n: u64,
    rss: u64,
    bpn: f64,
    dir: &Path,
    interrupted: &Arc<AtomicBool>,
) -> anyhow::Result<SizeResult> {
    let scenario = dir.join("scenario.toml");
    crate::output::prepare_dir("--out", dir)?;
    crate::output::write_atomic(
        &scenario,
        format!(
            "name = \"scale-{n}\"\n[duration]\ntotal_seconds = {}\n[arrival]\npattern = \"poisson\"\nrate = {}\n\
             [operations]\nstore_weight = 0.0\nrecall_weight = 0.7\nembedding_search_weight = 0.3\n\
             [data]\nnum_nodes = {n}\nembedding_dim = {}\n",
            o.duration, o.rate, o.dim
        )
        .as_bytes(),
    )?;
    let base = crate::load::LoadOptions {
        target: srv.url.clone(),
        scenario: Some(scenario),
        duration: Some(o.duration),
        shard: (0, 1),
        target_pid: Some(srv.pid),
        spin: o.spin,
        out: Some(dir.join("fixed")),
        quiet: true,
        command: std::env::args().collect(),
        ..Default::default()
    };
    let r = crate::load::run(&base, Arc::clone(interrupted))?;
    let operations = r
        .operations
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.latency["p50_ms"].as_f64(),
                v.latency["p99_ms"].as_f64(),
            )
        })
        .collect();
    let (max_rate, max_rate_note) = if o.max_throughput && !interrupted.load(Ordering::Relaxed) {
        let ramp = crate::load::ramp::run(
            &crate::load::LoadOptions {
                out: Some(dir.join("ramp")),
                probes: Some(String::new()),
                ..base.clone()
            },
            &crate::load::ramp::RampOptions {
                from: o.rate,
                factor: 2.0,
                step_s: 10.0,
                max_rate: o.rate * 64.0,
                slo_p99_ms: o.slo_p99_ms,
                slo_error_rate: 0.01,
            },
            Arc::clone(interrupted),
        )?;
        (ramp.sustainable_rate, ramp.verdict.clone())
    } else {
        (None, "not measured (--no-max-throughput)".into())
    };
    Ok(SizeResult {
        nodes: n,
        rss_bytes: rss,
        bytes_per_node: bpn,
        preload_s: preload_seconds(&srv.banner),
        operations,
        p50_ms: r.latency["p50_ms"].as_f64(),
        p99_ms: r.latency["p99_ms"].as_f64(),
        achieved_rate: r.achieved["rate"].as_f64().unwrap_or(0.0),
        max_rate,
        max_rate_note,
        dir: String::new(),
    })
}

/// Log–log slopes of p99 against the node count between consecutive sizes,
/// and the first size where the slope rose by 0.3 or more over the one before
/// (growth departing from its trend).
pub fn inflection(points: &[(u64, f64)]) -> (Vec<(u64, u64, f64)>, String) {
    let slopes: Vec<(u64, u64, f64)> = points
        .windows(2)
        .filter(|w| w[0].1 > 0.0 && w[1].1 > 0.0 && w[1].0 > w[0].0)
        .map(|w| {
            let s = (w[1].1.ln() - w[0].1.ln()) / ((w[1].0 as f64).ln() - (w[0].0 as f64).ln());
            (w[0].0, w[1].0, s)
        })
        .collect();
    if slopes.len() < 2 {
        return (
            slopes,
            "needs p99 at three sizes or more to see a change of slope".into(),
        );
    }
    for w in slopes.windows(2) {
        if w[1].2 - w[0].2 >= 0.3 {
            return (
                slopes.clone(),
                format!(
                    "p99 grows faster from {} nodes: log–log slope {:.2} between {} and {}, after {:.2} between {} and {}",
                    w[1].0, w[1].2, w[1].0, w[1].1, w[0].2, w[0].0, w[0].1
                ),
            );
        }
    }
    (
        slopes,
        "no inflection: the log–log slope of p99 changes by less than 0.3 between consecutive sizes".into(),
    )
}

fn conclude(
    o: &ScaleOptions,
    empty_rss: u64,
    available: u64,
    measured: Vec<SizeResult>,
    refused: Vec<(u64, u64, String)>,
    warnings: Vec<String>,
) -> ScaleReport {
    let pts: Vec<(u64, f64)> = measured
        .iter()
        .filter_map(|m| m.p99_ms.map(|p| (m.nodes, p)))
        .collect();
    let (slopes, inflection) = inflection(&pts);
    let target = match measured.iter().find(|m| m.nodes == 10_000_000) {
        Some(m) => match m.p99_ms {
            Some(p) if p < TARGET_P99_MS => {
                format!("p99 {p:.2} ms at 10M nodes: within Engram's {TARGET_P99_MS} ms")
            }
            Some(p) => format!("p99 {p:.2} ms at 10M nodes: above Engram's {TARGET_P99_MS} ms"),
            None => "10M measured, p99 withheld (too few samples)".into(),
        },
        None => {
            format!("Engram's target (p99 < {TARGET_P99_MS} ms at 10M nodes) was not measured here")
        }
    };
    ScaleReport {
        schema_version: crate::report::SCHEMA_VERSION,
        kind: "scale".into(),
        dim: o.dim,
        rate: o.rate,
        duration_s: o.duration,
        empty_rss_bytes: empty_rss,
        available_bytes: available,
        measured,
        refused,
        slopes,
        inflection,
        target,
        files: vec![],
        warnings,
    }
}

fn write(rep: &mut ScaleReport, out: &Path) -> anyhow::Result<()> {
    use hwprof_workloads::findings::{Chart, Curve, CurvePoint, Estimate, SecondaryAxis};
    let pt = |x: f64, y: f64| CurvePoint {
        x,
        y: Estimate {
            median: y,
            lo: y,
            hi: y,
        },
    };
    let curve = |name: &str, f: &dyn Fn(&SizeResult) -> Option<f64>| Curve {
        name: name.into(),
        points: rep
            .measured
            .iter()
            .filter_map(|m| f(m).map(|y| pt(m.nodes as f64, y)))
            .collect(),
    };
    let charts = [
        Chart {
            id: "scale-latency".into(),
            title: format!(
                "hwprof scale: latency at {:.0} req/s per store size ({}-d)",
                rep.rate, rep.dim
            ),
            x_label: "nodes".into(),
            y_label: "latency (ms)".into(),
            x_bytes: false,
            log_x: true,
            log_y: true,
            curves: vec![curve("p99", &|m| m.p99_ms), curve("p50", &|m| m.p50_ms)],
            markers: vec![],
            secondary: None,
        },
        Chart {
            id: "scale-memory".into(),
            title: "hwprof scale: server RSS and bytes per node".into(),
            x_label: "nodes".into(),
            y_label: "RSS (MB)".into(),
            x_bytes: false,
            log_x: true,
            log_y: true,
            curves: vec![curve("RSS (MB)", &|m| Some(m.rss_bytes as f64 / 1e6))],
            markers: vec![],
            secondary: Some(SecondaryAxis {
                y_label: "bytes per node".into(),
                curves: vec![curve("bytes per node", &|m| Some(m.bytes_per_node))],
            }),
        },
    ];
    let mut files = vec!["scale.json".to_string(), "scale.md".to_string()];
    if !rep.measured.is_empty() {
        for c in &charts {
            match crate::report::plots::chart(out, c) {
                Ok(n) => files.extend(n),
                Err(e) if crate::output::is_write_error(&e) => return Err(e),
                Err(e) => rep.warnings.push(format!("plot {} not written: {e}", c.id)),
            }
        }
    }
    rep.files = files;
    crate::output::write_atomic(&out.join("scale.md"), markdown(rep).as_bytes())?;
    crate::output::write_atomic(
        &out.join("scale.json"),
        crate::report::json::to_string(rep).as_bytes(),
    )?;
    Ok(())
}

/// scale.md, also the terminal summary.
pub fn markdown(r: &ScaleReport) -> String {
    use std::fmt::Write;
    let mut m = format!(
        "# hwprof scale: {}-d, {:.0} req/s for {} s per size\n\nSources: RSS [software, /proc smaps_rollup]; preload time [timer, the server's own]; latencies and rates [timer].\n\n- {}\n- {}\n",
        r.dim, r.rate, r.duration_s, r.inflection, r.target
    );
    for (_, _, why) in &r.refused {
        let _ = writeln!(m, "- refused: {why}");
    }
    let _ = writeln!(
        m,
        "\n| nodes | RSS MB | B/node | preload s | p50 ms | p99 ms | achieved/s | max sustainable/s |\n|---|---|---|---|---|---|---|---|"
    );
    let f = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.3}"));
    for s in &r.measured {
        let _ = writeln!(
            m,
            "| {} | {:.1} | {:.0} | {:.2} | {} | {} | {:.0} | {} |",
            s.nodes,
            s.rss_bytes as f64 / 1e6,
            s.bytes_per_node,
            s.preload_s,
            f(s.p50_ms),
            f(s.p99_ms),
            s.achieved_rate,
            s.max_rate.map_or("n/a".into(), |v| format!("{v:.0}"))
        );
    }
    for s in &r.measured {
        let ops: Vec<String> = s
            .operations
            .iter()
            .map(|(k, p50, p99)| format!("{k} p50 {} p99 {}", f(*p50), f(*p99)))
            .collect();
        let _ = writeln!(
            m,
            "\n{} nodes: {}; ramp: {}",
            s.nodes,
            ops.join(", "),
            s.max_rate_note
        );
    }
    for (a, b, s) in &r.slopes {
        let _ = writeln!(m, "\nlog–log slope of p99 from {a} to {b} nodes: {s:.2}");
    }
    for w in &r.warnings {
        let _ = writeln!(m, "\nwarning: {w}");
    }
    let _ = writeln!(m, "\nFiles: {}", r.files.join(", "));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("100k"), Ok(100_000));
        assert_eq!(parse_size("1M"), Ok(1_000_000));
        assert_eq!(parse_size("2.5m"), Ok(2_500_000));
        assert_eq!(parse_size("250000"), Ok(250_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn an_inflection_is_where_the_log_log_slope_rises() {
        // p99 ∝ N^0.1 up to 1M, then ∝ N^0.8.
        let p = |n: f64| {
            if n <= 1e6 {
                n.powf(0.1)
            } else {
                1e6f64.powf(0.1) * (n / 1e6).powf(0.8)
            }
        };
        let pts: Vec<(u64, f64)> = [1e5, 3e5, 1e6, 3e6, 1e7]
            .iter()
            .map(|&n| (n as u64, p(n)))
            .collect();
        let (slopes, line) = inflection(&pts);
        assert_eq!(slopes.len(), 4);
        assert!(
            line.starts_with("p99 grows faster from 1000000 nodes"),
            "{line}"
        );
        let flat: Vec<(u64, f64)> = pts
            .iter()
            .map(|&(n, _)| (n, (n as f64).powf(0.1)))
            .collect();
        assert!(inflection(&flat).1.starts_with("no inflection"));
        assert!(inflection(&pts[..2])
            .1
            .starts_with("needs p99 at three sizes"));
    }

    #[test]
    fn the_banner_gives_the_preload_time() {
        assert_eq!(
            preload_seconds("hwprof serve: listening on http://127.0.0.1:1 (5 memories in 1 space(s), 768-d, preloaded in 1.11 s; faults: none)"),
            1.11
        );
    }
}
