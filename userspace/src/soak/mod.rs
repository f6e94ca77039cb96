//! `hwprof soak`: the load engine run for hours against one target, sampled
//! every interval, checkpointed, and judged for leaks and drift.
//!
//! A soak is a chain of `hwprof load` segments, each `--checkpoint` long, into
//! `DIR/segments/NNNN/` (report.json, load.hlog, plots). After each, soak.json
//! (the checkpoint and the report at once) is rewritten atomically: a crash or
//! kill of hwprof loses at most the segment in flight, and `--resume DIR`
//! continues from the last checkpoint. At the end: soak.json, soak.md,
//! soak.hlog (every interval's histograms, on the soak's clock) and the plots.
//! Verdicts are per resource (`analysis.rs`): RSS, p99, open fds, threads.

pub mod analysis;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::usage;
use crate::report::schema::soak::{
    Limits, Sample, Segment, SoakReport, SoakSettings, TrendVerdict, WindowPoint,
};

/// The default scenario: read-only, constant 200 req/s (stores would grow RSS by design).
pub const DEFAULT_SCENARIO: &str = include_str!("../../../workloads/scenarios/soak.toml");

/// What `hwprof soak` was asked for.
#[derive(Debug, Clone, Default)]
pub struct SoakOptions {
    pub target: String,
    pub serve_args: Vec<String>,
    pub target_pid: Option<u32>,
    pub scenario: Option<PathBuf>,
    pub rate: Option<f64>,
    pub duration: Option<f64>,
    pub interval: Option<f64>,
    pub checkpoint: Option<f64>,
    pub warmup: Option<f64>,
    pub seed: Option<u64>,
    pub leak_limit: Option<f64>,
    pub drift_limit: Option<f64>,
    pub out: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    /// Clean soaks (directories or soak.json) to take the server's own drift from.
    pub baseline: Vec<PathBuf>,
    /// Judge the soak in DIR again (other limits, warm-up or baselines), running nothing.
    pub analyse: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
}

/// Shortest interval: /proc sampling and a window's histogram each interval.
const MIN_INTERVAL_S: f64 = 0.1;

/// Run (or resume) a soak; returns its report (also written under its directory).
pub fn run(o: &SoakOptions, interrupted: Arc<AtomicBool>) -> anyhow::Result<SoakReport> {
    let baselines = o
        .baseline
        .iter()
        .map(|p| load_soak("--baseline", p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(d) = &o.analyse {
        return reanalyse(o, d, &baselines);
    }
    let (dir, mut rep) = match &o.resume {
        Some(d) => resume(o, d)?,
        None => start(o)?,
    };
    let s = rep.settings.clone();
    let scenario_path = dir.join("scenario.toml");

    // The target: a live server, or an `hwprof serve` child of ours.
    let mut server = None;
    let (url, pid) = if s.target == "embedded" {
        let sc = crate::load::scenario::load(&scenario_path)?;
        let child = crate::serve::child::ServeChild::start(&embedded_args(&sc, &s.serve_args))?;
        let out = (child.url.clone(), Some(child.pid));
        server = Some(child);
        out
    } else {
        (s.target.clone(), o.target_pid)
    };
    if !o.quiet {
        eprintln!(
            "hwprof: soak {} on {url}{}: {} of {}, interval {}, checkpoint {} into {}",
            s.scenario,
            if server.is_some() {
                " (hwprof serve, started for the soak)"
            } else {
                ""
            },
            crate::text::duration(rep.load_s),
            crate::text::duration(s.duration_s),
            crate::text::duration(s.interval_s),
            crate::text::duration(s.checkpoint_s),
            dir.display()
        );
    }

    let start_unix = rep.start_unix_s;
    let now_s = || unix_now() - start_unix;
    while rep.load_s + 1e-6 < s.duration_s && !interrupted.load(Ordering::Relaxed) {
        let length = s.checkpoint_s.min(s.duration_s - rep.load_s);
        let index = rep.segments.len();
        let seg_dir = next_segment_dir(&dir, index);
        let offset = now_s();
        let r = crate::load::run(
            &crate::load::LoadOptions {
                target: url.clone(),
                scenario: Some(scenario_path.clone()),
                duration: Some(length),
                rate: s.rate,
                seed: Some(s.seed.wrapping_add(index as u64)),
                interval: Some(s.interval_s),
                shard: (0, 1),
                target_pid: pid,
                out: Some(seg_dir.clone()),
                quiet: true,
                command: std::env::args().collect(),
                ..Default::default()
            },
            Arc::clone(&interrupted),
        )?;
        absorb(&mut rep, &r, index, offset, length, &seg_dir, &dir);
        rep.status = match r.ended_by.as_str() {
            "target-down" => "target-down",
            "signal" => "interrupted",
            _ if rep.load_s + 1e-6 >= s.duration_s => "complete",
            _ => "running",
        }
        .into();
        rep.target_restarts = analysis::restarts(&rep.samples);
        rep.trends = analysis::trends(&rep);
        write_checkpoint(&rep, &dir)?;
        if !o.quiet {
            eprintln!("hwprof: soak {}", progress_line(&rep));
        }
        if rep.status != "running" {
            break;
        }
    }
    if rep.status == "running" && interrupted.load(Ordering::Relaxed) {
        rep.status = "interrupted".into();
    }
    if let Some(srv) = server.take() {
        srv.stop();
    }
    finish(&mut rep, &dir)?;
    rep.vs_baseline = analysis::versus(&rep.trends, &baselines);
    if o.quiet {
        crate::report::export::write_files(&rep, &dir)?;
    } else {
        crate::report::export::emit(&rep, o.json, Some(&dir))?;
    }
    Ok(rep)
}

/// A new soak: settings checked, directory prepared, scenario copied in.
fn start(o: &SoakOptions) -> anyhow::Result<(PathBuf, SoakReport)> {
    let duration = o.duration.ok_or_else(|| {
        usage("hwprof soak: give --duration (e.g. 24h), or --resume DIR to continue one")
    })?;
    let interval = o.interval.unwrap_or(10.0);
    let checkpoint = o.checkpoint.unwrap_or(300.0);
    if interval < MIN_INTERVAL_S {
        return Err(usage(format!(
            "--interval {interval}: at least {MIN_INTERVAL_S} s"
        )));
    }
    if checkpoint < interval * 2.0 {
        return Err(usage(format!(
            "--checkpoint {checkpoint}: at least two intervals ({} s)",
            interval * 2.0
        )));
    }
    if duration < interval * 2.0 {
        return Err(usage(format!(
            "--duration {duration}: at least two intervals ({} s)",
            interval * 2.0
        )));
    }
    if let Some(r) = o.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(usage(format!(
                "--rate {r}: must be a positive number of requests/s"
            )));
        }
    }
    let warmup = o.warmup.unwrap_or((duration * 0.1).min(1800.0));
    if warmup >= duration {
        return Err(usage(format!(
            "--warmup {warmup}: must be shorter than the soak ({duration} s)"
        )));
    }
    if o.target != "embedded" && !o.target.starts_with("http://") {
        return Err(usage(format!(
            "--target {:?}: embedded (an hwprof serve started for the soak) or http://HOST:PORT",
            o.target
        )));
    }
    if o.target != "embedded" && !o.serve_args.is_empty() {
        return Err(usage(
            "--serve-args: only for --target embedded (a live server is started by you)",
        ));
    }
    let (text, file) = match &o.scenario {
        Some(p) => (
            crate::input::read_text("--scenario", p, 1 << 20)?,
            Some(p.display().to_string()),
        ),
        None => (DEFAULT_SCENARIO.to_string(), None),
    };
    let sc = crate::load::scenario::parse(&text, file.as_deref().unwrap_or("(built in)"))?;
    let mut limits = Limits::default();
    if let Some(l) = o.leak_limit {
        limits.rss_mb_per_h = positive("--leak-limit", l)?;
    }
    if let Some(l) = o.drift_limit {
        limits.p99_pct_per_h = positive("--drift-limit", l)?;
    }
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let dir = match &o.out {
        Some(d) => d.clone(),
        None => PathBuf::from(format!("results/soak-{}", stamp.replace(':', ""))),
    };
    let dir = crate::output::prepare_dir("--out", &dir)?;
    if dir.join("soak.json").exists() {
        return Err(usage(format!(
            "--out {}: holds a soak already (continue it with --resume {0})",
            dir.display()
        )));
    }
    crate::output::write_atomic(&dir.join("scenario.toml"), text.as_bytes())?;
    let mut warnings = Vec::new();
    // load withholds a window's p99 without 10 requests beyond it.
    if let Some(rate) = o.rate.or(sc.arrival.rate) {
        if rate * interval < 1000.0 {
            warnings.push(format!(
                "at {rate} req/s an interval of {interval} s holds {:.0} requests, too few for its p99 \
                 (1000 needed): p99 drift is not tested; use --interval {:.0} or more",
                rate * interval,
                (1000.0 / rate).ceil()
            ));
        }
    }
    let rep = SoakReport {
        schema_version: crate::report::SCHEMA_VERSION,
        kind: "soak".into(),
        settings: SoakSettings {
            target: o.target.clone(),
            serve_args: o.serve_args.clone(),
            scenario: sc.name.clone(),
            scenario_file: file,
            rate: o.rate,
            duration_s: duration,
            interval_s: interval,
            checkpoint_s: checkpoint,
            warmup_s: warmup,
            seed: o.seed.or(sc.seed).unwrap_or(42),
            limits,
        },
        started_at: stamp,
        start_unix_s: unix_now(),
        status: "running".into(),
        load_s: 0.0,
        segments: vec![],
        samples: vec![],
        windows: vec![],
        trends: vec![],
        target_restarts: vec![],
        vs_baseline: vec![],
        files: vec![],
        warnings,
    };
    write_checkpoint(&rep, &dir)?;
    Ok((dir, rep))
}

fn positive(flag: &str, v: f64) -> anyhow::Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(usage(format!("{flag} {v}: must be a positive number")))
    }
}

/// `--analyse DIR`: the verdicts of a soak already run, with this call's
/// limits, warm-up and baselines; soak.json, soak.md and the plots rewritten.
fn reanalyse(o: &SoakOptions, dir: &Path, baselines: &[SoakReport]) -> anyhow::Result<SoakReport> {
    if o.duration.is_some() || o.resume.is_some() || o.scenario.is_some() || o.rate.is_some() {
        return Err(usage(
            "--analyse DIR judges a soak already run: give only --leak-limit, --drift-limit, --warmup, --baseline, --json",
        ));
    }
    let mut rep = load_soak("--analyse", dir)?;
    let dir = crate::output::prepare_dir("--analyse", dir)?;
    if let Some(l) = o.leak_limit {
        rep.settings.limits.rss_mb_per_h = positive("--leak-limit", l)?;
    }
    if let Some(l) = o.drift_limit {
        rep.settings.limits.p99_pct_per_h = positive("--drift-limit", l)?;
    }
    if let Some(w) = o.warmup {
        rep.settings.warmup_s = w;
    }
    finish(&mut rep, &dir)?;
    rep.vs_baseline = analysis::versus(&rep.trends, baselines);
    if o.quiet {
        crate::report::export::write_files(&rep, &dir)?;
    } else {
        crate::report::export::emit(&rep, o.json, Some(&dir))?;
    }
    Ok(rep)
}

/// A soak's report from its directory or its soak.json.
fn load_soak(flag: &str, p: &Path) -> anyhow::Result<SoakReport> {
    let path = if p.is_dir() {
        p.join("soak.json")
    } else {
        p.to_path_buf()
    };
    let text = crate::input::read_text(flag, &path, 256 << 20)?;
    let rep: SoakReport = serde_json::from_str(&text)
        .map_err(|e| usage(format!("{flag} {}: not a soak report: {e}", path.display())))?;
    if rep.kind != "soak" {
        return Err(usage(format!(
            "{flag} {}: not a soak report",
            path.display()
        )));
    }
    Ok(rep)
}

/// A soak continued from its directory's checkpoint.
fn resume(o: &SoakOptions, dir: &Path) -> anyhow::Result<(PathBuf, SoakReport)> {
    let shaping = [
        o.duration.is_some(),
        o.scenario.is_some(),
        o.rate.is_some(),
        o.interval.is_some(),
        o.checkpoint.is_some(),
        o.warmup.is_some(),
        o.seed.is_some(),
        o.leak_limit.is_some(),
        o.drift_limit.is_some(),
        o.out.is_some(),
        !o.serve_args.is_empty(),
    ];
    if shaping.iter().any(|&b| b) {
        return Err(usage(
            "--resume DIR continues a soak with its own settings: give only --resume (and --target-pid, --json)",
        ));
    }
    let path = dir.join("soak.json");
    let text = crate::input::read_text("--resume", &path, 256 << 20)?;
    let mut rep: SoakReport = serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "--resume {}: not a soak checkpoint: {e}",
            path.display()
        ))
    })?;
    if rep.kind != "soak" {
        return Err(usage(format!(
            "--resume {}: not a soak checkpoint",
            path.display()
        )));
    }
    if rep.load_s + 1e-6 >= rep.settings.duration_s {
        return Err(usage(format!(
            "--resume {}: this soak is complete ({} of load)",
            dir.display(),
            crate::text::duration(rep.load_s)
        )));
    }
    if o.target != "embedded" && o.target != rep.settings.target {
        return Err(usage(format!(
            "--target {}: this soak's target is {} (a resumed soak keeps its target)",
            o.target, rep.settings.target
        )));
    }
    rep.status = "running".into();
    rep.warnings.push(format!(
        "resumed at {:.0} s after {} of load",
        unix_now() - rep.start_unix_s,
        crate::text::duration(rep.load_s)
    ));
    let dir = crate::output::prepare_dir("--resume", dir)?;
    Ok((dir, rep))
}

/// The embedded server's arguments: the scenario's data (dimension, spaces,
/// clusters, memories generated in process) unless `--serve-args` sets them.
fn embedded_args(sc: &crate::load::scenario::Scenario, given: &[String]) -> Vec<String> {
    let d = &sc.data;
    let spaces = d.memory_spaces.max(1);
    let mut v = Vec::new();
    for (flag, value) in [
        ("--dim", d.embedding_dim.to_string()),
        ("--spaces", spaces.to_string()),
        ("--clusters", d.clusters().to_string()),
        (
            "--preload",
            d.num_nodes.div_ceil(u64::from(spaces)).to_string(),
        ),
    ] {
        if !given
            .iter()
            .any(|g| g == flag || g.starts_with(&format!("{flag}=")))
        {
            v.push(flag.to_string());
            v.push(value);
        }
    }
    v.extend(given.iter().cloned());
    v
}

/// `DIR/segments/NNNN`, skipping any a killed soak left half-written.
fn next_segment_dir(dir: &Path, index: usize) -> PathBuf {
    let mut n = index;
    loop {
        let d = dir.join("segments").join(format!("{n:04}"));
        if !d.exists() {
            return d;
        }
        n += 1;
    }
}

/// A segment's samples and windows on the soak's clock, one sample per interval.
fn absorb(
    rep: &mut SoakReport,
    r: &crate::load::output::LoadReport,
    index: usize,
    offset: f64,
    length: f64,
    seg_dir: &Path,
    dir: &Path,
) {
    let interval = rep.settings.interval_s;
    let pid = r.target["pid"].as_u64().map(|p| p as u32);
    let mut last_bucket = None;
    if let (Some(pid), Some(tl)) = (pid, r.resources["timeline"].as_array()) {
        for s in tl {
            let t = s["t_s"].as_f64().unwrap_or(0.0);
            let bucket = (t / interval).floor() as i64;
            if last_bucket == Some(bucket) {
                continue;
            }
            last_bucket = Some(bucket);
            let u = |k: &str| s[k].as_u64().unwrap_or(0);
            rep.samples.push(Sample {
                t_s: offset + t,
                pid,
                rss_bytes: u("rss_bytes"),
                cpu_user_s: s["cpu_user_s"].as_f64().unwrap_or(0.0),
                cpu_sys_s: s["cpu_sys_s"].as_f64().unwrap_or(0.0),
                threads: u("threads"),
                open_fds: u("open_fds"),
                ctx_voluntary: u("ctx_voluntary"),
                ctx_involuntary: u("ctx_involuntary"),
            });
        }
    }
    let mut ran = 0.0f64;
    for w in &r.windows {
        rep.windows.push(WindowPoint {
            t_s: offset + w.start_s,
            completed: w.completed,
            errors: w.errors,
            offered_rate: w.offered_rate,
            achieved_rate: w.achieved_rate,
            p50_ms: w.p50_ms,
            p99_ms: w.p99_ms,
        });
        ran = ran.max(w.start_s + interval);
    }
    let load_s = if r.ended_by == "duration" {
        length
    } else {
        ran.min(length)
    };
    rep.load_s += load_s;
    let completed = r.operations.values().map(|o| o.completed).sum();
    let errors = r.operations.values().map(|o| o.errors).sum();
    rep.segments.push(Segment {
        index,
        offset_s: offset,
        load_s,
        ended_by: r.ended_by.clone(),
        dir: seg_dir
            .strip_prefix(dir)
            .unwrap_or(seg_dir)
            .display()
            .to_string(),
        target_pid: pid,
        completed,
        errors,
    });
    for w in &r.warnings {
        let w = format!("segment {index}: {w}");
        if !rep.warnings.contains(&w) {
            rep.warnings.push(w);
        }
    }
}

/// soak.json, atomically: the checkpoint a resume starts from.
fn write_checkpoint(rep: &SoakReport, dir: &Path) -> anyhow::Result<()> {
    crate::output::write_atomic(
        &dir.join("soak.json"),
        crate::report::json::to_string(rep).as_bytes(),
    )
}

/// One line per checkpoint on stderr.
fn progress_line(rep: &SoakReport) -> String {
    let rss = rep.samples.last().map_or("n/a".into(), |s| {
        format!("{:.1} MB", s.rss_bytes as f64 / 1e6)
    });
    let p99 = rep
        .windows
        .iter()
        .rev()
        .find_map(|w| w.p99_ms)
        .map_or("n/a".into(), |p| format!("{p:.2} ms"));
    let errors: u64 = rep.segments.iter().map(|s| s.errors).sum();
    let trend = rep
        .trends
        .iter()
        .find(|t| t.resource == crate::report::schema::soak::Resource::Rss)
        .and_then(|t| t.slope)
        .map_or(String::new(), |s| format!(" ({s:+.2} MB/h so far)"));
    format!(
        "{} / {}: RSS {rss}{trend}, last p99 {p99}, errors {errors} [{}]",
        crate::text::duration(rep.load_s),
        crate::text::duration(rep.settings.duration_s),
        rep.status
    )
}

/// The final files: soak.hlog and the plots (soak.json and soak.md by emit).
fn finish(rep: &mut SoakReport, dir: &Path) -> anyhow::Result<()> {
    rep.target_restarts = analysis::restarts(&rep.samples);
    rep.trends = analysis::trends(rep);
    let mut files = vec!["soak.json".to_string(), "soak.md".to_string()];
    match hlog(rep, dir) {
        Ok(bytes) => {
            crate::output::write_atomic(&dir.join("soak.hlog"), &bytes)?;
            files.push("soak.hlog".into());
        }
        Err(e) => rep.warnings.push(format!("soak.hlog not written: {e}")),
    }
    for c in charts(rep) {
        match crate::report::plots::chart(dir, &c) {
            Ok(names) => files.extend(names),
            Err(e) if crate::output::is_write_error(&e) => return Err(e),
            Err(e) => rep.warnings.push(format!("plot {} not written: {e}", c.id)),
        }
    }
    rep.files = files;
    Ok(())
}

/// Every interval's histograms from the segments' reports, on the soak's clock.
fn hlog(rep: &SoakReport, dir: &Path) -> anyhow::Result<Vec<u8>> {
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;
    let start = UNIX_EPOCH + Duration::from_secs_f64(rep.start_unix_s);
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let mut b = IntervalLogWriterBuilder::new();
    b.add_comment("hwprof soak: latency from the intended start, values in nanoseconds")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1e6);
    let mut w = b
        .begin_log_with(&mut out, &mut ser)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for seg in &rep.segments {
        let path = dir.join(&seg.dir).join("report.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let r: serde_json::Value = serde_json::from_str(&text)?;
        let Some(windows) = r["windows"].as_array() else {
            continue;
        };
        for win in windows {
            let at = seg.offset_s + win["start_s"].as_f64().unwrap_or(0.0);
            if let Some(hs) = win["histograms"].as_object() {
                for (op, enc) in hs {
                    let Some(h) = enc
                        .as_str()
                        .and_then(|s| crate::load::output::decode(s).ok())
                    else {
                        continue;
                    };
                    let tag = Tag::new(op).ok_or_else(|| anyhow::anyhow!("bad tag {op}"))?;
                    w.write_histogram(
                        &h,
                        Duration::from_secs_f64(at.max(0.0)),
                        Duration::from_secs_f64(rep.settings.interval_s),
                        Some(tag),
                    )
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                }
            }
        }
    }
    drop(w);
    Ok(out)
}

/// RSS over time with the Sen line; p50 and p99 per interval.
fn charts(rep: &SoakReport) -> Vec<hwprof_workloads::findings::Chart> {
    use crate::report::schema::soak::Resource;
    use hwprof_workloads::findings::{Chart, Curve, CurvePoint, Estimate};
    let pt = |x: f64, y: f64| CurvePoint {
        x: x / 60.0,
        y: Estimate {
            median: y,
            lo: y,
            hi: y,
        },
    };
    let mut out = Vec::new();
    let warm = vec![("warm-up ends".to_string(), rep.settings.warmup_s / 60.0)];
    if !rep.samples.is_empty() {
        let mut curves = vec![Curve {
            name: "RSS (MB)".into(),
            points: rep
                .samples
                .iter()
                .map(|s| pt(s.t_s, s.rss_bytes as f64 / 1e6))
                .collect(),
        }];
        if let Some(t) = rep
            .trends
            .iter()
            .find(|t| t.resource == Resource::Rss)
            .and_then(|t| t.test.as_ref().map(|x| (t, x)))
        {
            let (from, to) = (t.0.from_s, rep.samples.last().map_or(0.0, |s| s.t_s));
            let line = |x: f64| t.1.intercept + t.1.slope * x;
            curves.push(Curve {
                name: format!(
                    "Sen line {:+.2} MB/h (95% CI {:+.2} to {:+.2})",
                    t.0.slope.unwrap_or(0.0),
                    t.0.slope_lo.unwrap_or(0.0),
                    t.0.slope_hi.unwrap_or(0.0)
                ),
                points: vec![pt(from, line(from)), pt(to, line(to))],
            });
        }
        out.push(Chart {
            id: "soak-rss".into(),
            title: format!(
                "{}: target RSS over the soak (source: /proc)",
                rep.settings.scenario
            ),
            x_label: "minutes since the soak started".into(),
            y_label: "RSS (MB)".into(),
            x_bytes: false,
            log_x: false,
            log_y: false,
            curves,
            markers: warm.clone(),
            secondary: None,
        });
    }
    let lat = |name: &str, f: &dyn Fn(&WindowPoint) -> Option<f64>| Curve {
        name: name.into(),
        points: rep
            .windows
            .iter()
            .filter_map(|w| f(w).map(|y| pt(w.t_s, y)))
            .collect(),
    };
    let curves = vec![lat("p99", &|w| w.p99_ms), lat("p50", &|w| w.p50_ms)];
    if curves.iter().any(|c| !c.points.is_empty()) {
        out.push(Chart {
            id: "soak-latency".into(),
            title: format!(
                "{}: latency per {} interval (source: timer)",
                rep.settings.scenario,
                crate::text::duration(rep.settings.interval_s)
            ),
            x_label: "minutes since the soak started".into(),
            y_label: "latency (ms)".into(),
            x_bytes: false,
            log_x: false,
            log_y: false,
            curves,
            markers: warm,
            secondary: None,
        });
    }
    out
}

/// Whether any resource is over its limit (a leak or a drift).
pub fn failed(rep: &SoakReport) -> bool {
    rep.trends
        .iter()
        .any(|t| t.verdict == TrendVerdict::OverLimit)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
