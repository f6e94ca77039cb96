//! A load run's report (hwprof's JSON schema, kind "load"), the
//! Engram-compatible summary, the HdrHistogram interval log, plots and the
//! Markdown summary; and `hwprof load merge`, which adds shards' histograms.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::record::{self, percentiles, ErrorKind, Recorder, Window};
use super::scenario::Scenario;
use super::schedule::OpKind;
use super::GENERATOR_LAG_LIMIT_MS;
use crate::error::usage;
use crate::machine::MachineProfile;
use crate::output::write_atomic;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Preload {
    pub nodes: u64,
    pub seconds: f64,
    pub how: String,
}

pub use crate::measure::process::{sample_process, Resources};

/// What the run knew besides its histograms.
pub struct Meta {
    pub scenario: Scenario,
    pub scenario_file: Option<String>,
    pub target: String,
    pub target_kind: String,
    pub target_pid: Option<u32>,
    pub command: Vec<String>,
    pub started_at: String,
    pub wall_start: std::time::SystemTime,
    pub duration_s: f64,
    pub wall_s: f64,
    pub seed: u64,
    pub shard: (u64, u64),
    pub connections: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub generator_cpus: Vec<usize>,
    pub shares_cpus_with_target: bool,
    pub interval_s: f64,
    pub interrupted: bool,
    pub ended_by: String,
    pub preload: Preload,
    pub in_flight_peak: usize,
    pub resources_before: Option<Resources>,
    pub resources_after: Option<Resources>,
    pub resource_timeline: Vec<(f64, Resources)>,
    pub warnings: Vec<String>,
    pub machine: Option<MachineProfile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OpReport {
    pub completed: u64,
    pub errors: u64,
    /// completion − intended start [timer].
    pub latency: PercentilesDoc,
    /// completion − actual send [timer].
    pub service: PercentilesDoc,
    /// actual send − intended start [timer].
    pub schedule_lag: PercentilesDoc,
}

/// Percentiles as stored in the report (serde both ways, for merge).
pub type PercentilesDoc = serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WindowReport {
    pub start_s: f64,
    pub offered: u64,
    pub completed: u64,
    pub errors: u64,
    pub offered_rate: f64,
    pub achieved_rate: f64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    /// Per-operation latency histograms of the window (V2 deflate, base64).
    pub histograms: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub check: String,
    pub expected: f64,
    pub measured: Option<f64>,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadReport {
    pub schema_version: u32,
    pub kind: String,
    pub scenario: serde_json::Value,
    pub scenario_file: Option<String>,
    pub target: serde_json::Value,
    pub command: Vec<String>,
    pub started_at: String,
    pub interrupted: bool,
    pub ended_by: String,
    pub settings: serde_json::Value,
    pub generator: serde_json::Value,
    pub preload: Preload,
    pub offered: serde_json::Value,
    pub achieved: serde_json::Value,
    pub dropped: u64,
    pub saturated: bool,
    pub generator_limited: bool,
    pub in_flight_peak: usize,
    pub clamped_samples: u64,
    pub latency: PercentilesDoc,
    pub operations: BTreeMap<String, OpReport>,
    pub dispatch_lag: PercentilesDoc,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub windows: Vec<WindowReport>,
    pub resources: serde_json::Value,
    pub validation: Vec<Check>,
    pub verdict: Vec<String>,
    pub engram: serde_json::Value,
    /// Whole-run histograms per operation (V2 deflate, base64): what merge adds.
    pub histograms: BTreeMap<String, BTreeMap<String, String>>,
    pub files: Vec<String>,
    pub warnings: Vec<String>,
    /// eBPF probes on the target for the run (`--probes`), as in attach.
    pub probes: Option<serde_json::Value>,
    pub machine: Option<serde_json::Value>,
    /// Burst recovery, for a run whose arrivals have bursts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<super::recovery::Recovery>,
    /// p99, p99.9, p99.99 and max of all operations with 95% CIs, or refused
    /// with the samples they need.
    #[serde(default)]
    pub tails: Vec<super::tails::Tail>,
    /// The slow requests lined up with the target's run-queue delays (`--probes sched`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<super::tails::Attribution>,
}

pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serialising to memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

pub fn decode(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("histogram does not decode: {e:?}"))
}

fn pct(h: &Histogram<u64>) -> serde_json::Value {
    serde_json::to_value(percentiles(h)).unwrap_or_default()
}

/// Turn the merged recorder and the run's metadata into the report.
pub fn build(m: &Meta, rec: &Recorder) -> LoadReport {
    let all = rec.all_latency();
    let lat = percentiles(&all);
    let completed: u64 = rec.ops.values().map(|s| s.completed).sum();
    let errors: u64 = rec.ops.values().map(|s| s.errors).sum();
    let offered: u64 = rec.windows.iter().map(|w| w.offered).sum();
    let span = m.duration_s.min(m.wall_s).max(1e-9);
    let offered_rate = offered as f64 / span;
    let achieved_rate = completed as f64 / m.wall_s.max(1e-9);
    let lag = percentiles(&rec.dispatch_lag);
    let generator_limited = lag
        .p99_ms
        .or(lag.max_ms)
        .is_some_and(|v| v > GENERATOR_LAG_LIMIT_MS);
    let saturated = rec.dropped > 0;
    let interval = m.interval_s;
    let windows: Vec<WindowReport> = rec
        .windows
        .iter()
        .enumerate()
        .map(|(i, w)| window_report(i, w, interval))
        .collect();
    let mut operations = BTreeMap::new();
    let mut histograms = BTreeMap::new();
    for (op, s) in &rec.ops {
        operations.insert(
            op.name().to_string(),
            OpReport {
                completed: s.completed,
                errors: s.errors,
                latency: pct(&s.latency),
                service: pct(&s.service),
                schedule_lag: pct(&s.lag),
            },
        );
        histograms.insert(
            op.name().to_string(),
            BTreeMap::from([
                ("latency".to_string(), encode(&s.latency)),
                ("service".to_string(), encode(&s.service)),
                ("schedule_lag".to_string(), encode(&s.lag)),
            ]),
        );
    }
    histograms.insert(
        "generator".into(),
        BTreeMap::from([("dispatch_lag".to_string(), encode(&rec.dispatch_lag))]),
    );
    let error_rate = if completed > 0 {
        errors as f64 / completed as f64
    } else {
        0.0
    };
    let v = &m.scenario.validation;
    let mut validation = Vec::new();
    if let Some(p) = v.expected_p99_latency_ms {
        validation.push(Check {
            check: "p99 latency (ms) at most".into(),
            expected: p,
            measured: lat.p99_ms,
            pass: lat.p99_ms.is_some_and(|x| x <= p),
        });
    }
    if let Some(t) = v.expected_throughput_ops_sec {
        validation.push(Check {
            check: "achieved throughput (ops/s) at least".into(),
            expected: t,
            measured: Some(achieved_rate),
            pass: achieved_rate >= t,
        });
    }
    if let Some(e) = v.max_error_rate {
        validation.push(Check {
            check: "error rate at most".into(),
            expected: e,
            measured: Some(error_rate),
            pass: error_rate <= e,
        });
    }
    let mut verdict = Vec::new();
    let f = |x: Option<f64>| {
        x.map_or("n/a (too few samples)".to_string(), |v| {
            format!("{v:.3} ms")
        })
    };
    verdict.push(format!(
        "{completed} requests in {:.1} s: achieved {achieved_rate:.0}/s of {offered_rate:.0}/s offered; \
         latency from the intended start p50 {}, p99 {}, p99.9 {} [timer]",
        m.wall_s,
        f(lat.p50_ms),
        f(lat.p99_ms),
        f(lat.p999_ms)
    ));
    if errors > 0 {
        verdict.push(format!(
            "{errors} errors ({:.2}%): {}",
            100.0 * error_rate,
            rec.errors
                .iter()
                .map(|(k, n)| format!("{} {n}", k.name()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if saturated {
        verdict.push(format!(
            "saturated: {} requests dropped at the in-flight limit ({}); the target could not keep up with the offered rate",
            rec.dropped,
            m.max_in_flight.unwrap_or(0)
        ));
    }
    if generator_limited {
        verdict.push(format!(
            "the generator, not the target, was the limit: it fell behind its own schedule by p99 {} (limit {GENERATOR_LAG_LIMIT_MS} ms), \
             and that delay is inside the latency figures; give it CPUs of its own (--cpus), --spin 2ms on a VM, more --threads, or shard the load (--shard i/N)",
            f(lag.p99_ms.or(lag.max_ms))
        ));
    }
    if rec.clamped > 0 {
        verdict.push(format!(
            "{} samples were above an hour and are counted at the top of the histograms",
            rec.clamped
        ));
    }
    for c in &validation {
        verdict.push(format!(
            "validation: {} {}: measured {} — {}",
            c.check,
            c.expected,
            c.measured.map_or("n/a".into(), |x| format!("{x:.3}")),
            if c.pass { "pass" } else { "FAIL" }
        ));
    }
    // Engram's compare script reads plain numbers: the histogram's quantiles,
    // whatever the sample count (hwprof's own figures above withhold thin tails).
    let raw = |q: f64| (all.len() > 0).then(|| all.value_at_quantile(q) as f64 / 1e6);
    let engram = serde_json::json!({
        "scenario": m.scenario.name,
        "duration_seconds": m.wall_s,
        "total_operations": completed,
        "p50_latency_ms": raw(0.5),
        "p95_latency_ms": raw(0.95),
        "p99_latency_ms": raw(0.99),
        "overall_throughput": achieved_rate,
        "total_errors": errors,
        "overall_error_rate": error_rate,
    });
    let resources = serde_json::json!({
        "pid": m.target_pid,
        "before": m.resources_before,
        "after": m.resources_after,
        "timeline": m.resource_timeline.iter().map(|(t, r)| serde_json::json!({"t_s": t, "rss_bytes": r.rss_bytes, "cpu_user_s": r.cpu_user_s, "cpu_sys_s": r.cpu_sys_s, "threads": r.threads, "open_fds": r.open_fds, "ctx_voluntary": r.ctx_voluntary, "ctx_involuntary": r.ctx_involuntary})).collect::<Vec<_>>(),
        "source": "software (/proc/PID/stat, status, fd)",
    });
    LoadReport {
        schema_version: crate::report::SCHEMA_VERSION,
        kind: "load".into(),
        scenario: serde_json::to_value(&m.scenario).unwrap_or_default(),
        scenario_file: m.scenario_file.clone(),
        target: serde_json::json!({"url": m.target, "kind": m.target_kind, "pid": m.target_pid}),
        command: m.command.clone(),
        started_at: m.started_at.clone(),
        interrupted: m.interrupted,
        ended_by: m.ended_by.clone(),
        settings: serde_json::json!({
            "duration_s": m.duration_s, "seed": m.seed, "shard": format!("{}/{}", m.shard.0, m.shard.1),
            "connections": m.connections, "max_in_flight": m.max_in_flight, "interval_s": m.interval_s,
            "histogram": "HdrHistogram, 1 µs to 1 h, 3 significant digits, values in ns",
            "sources": "latency, service time and schedule lag: timer (CLOCK_MONOTONIC via Instant); rates: counts over the run's wall time; resources: software (/proc)",
        }),
        generator: serde_json::json!({
            "cpus": m.generator_cpus,
            "shares_cpus_with_target": m.shares_cpus_with_target,
            "lag_limit_ms": GENERATOR_LAG_LIMIT_MS,
        }),
        preload: m.preload.clone(),
        offered: serde_json::json!({"requests": offered, "rate": offered_rate}),
        achieved: serde_json::json!({"requests": completed, "rate": achieved_rate, "wall_s": m.wall_s}),
        dropped: rec.dropped,
        saturated,
        generator_limited,
        in_flight_peak: m.in_flight_peak,
        clamped_samples: rec.clamped,
        latency: serde_json::to_value(&lat).unwrap_or_default(),
        operations,
        dispatch_lag: serde_json::to_value(&lag).unwrap_or_default(),
        errors_by_kind: rec
            .errors
            .iter()
            .map(|(k, n)| (k.name().to_string(), *n))
            .collect(),
        windows,
        resources,
        validation,
        verdict,
        engram,
        histograms,
        files: vec![],
        warnings: m.warnings.clone(),
        probes: None,
        machine: m
            .machine
            .as_ref()
            .and_then(|p| serde_json::to_value(p).ok()),
        recovery: None,
        tails: super::tails::tails(&all, achieved_rate),
        attribution: None,
    }
}

fn window_report(i: usize, w: &Window, interval: f64) -> WindowReport {
    let mut h = record::histogram();
    for x in w.latency.values() {
        let _ = h.add(x);
    }
    let p = percentiles(&h);
    WindowReport {
        start_s: i as f64 * interval,
        offered: w.offered,
        completed: w.completed,
        errors: w.errors,
        offered_rate: w.offered as f64 / interval,
        achieved_rate: w.completed as f64 / interval,
        p50_ms: p.p50_ms,
        p90_ms: p.p90_ms,
        p99_ms: p.p99_ms,
        p999_ms: p.p999_ms,
        histograms: w
            .latency
            .iter()
            .map(|(op, h)| (op.name().to_string(), encode(h)))
            .collect(),
    }
}

/// Rebuild a recorder from a report's histograms (for merge).
pub fn recorder_of(r: &LoadReport) -> Result<Recorder, String> {
    let interval = r.settings["interval_s"].as_f64().unwrap_or(1.0);
    let mut rec = Recorder::new((interval * 1e9) as u64);
    for (name, hs) in &r.histograms {
        if name == "generator" {
            if let Some(s) = hs.get("dispatch_lag") {
                rec.dispatch_lag = decode(s)?;
            }
            continue;
        }
        let op = OpKind::parse(name).ok_or_else(|| format!("unknown operation {name:?}"))?;
        let o = r
            .operations
            .get(name)
            .ok_or_else(|| format!("operation {name} has histograms but no summary"))?;
        let get = |k: &str| -> Result<Histogram<u64>, String> {
            decode(
                hs.get(k)
                    .ok_or_else(|| format!("{name}: no {k} histogram"))?,
            )
        };
        rec.ops.insert(
            op,
            record::OpStats {
                latency: get("latency")?,
                service: get("service")?,
                lag: get("schedule_lag")?,
                completed: o.completed,
                errors: o.errors,
            },
        );
    }
    for w in &r.windows {
        let mut win = Window {
            offered: w.offered,
            completed: w.completed,
            errors: w.errors,
            latency: BTreeMap::new(),
        };
        for (name, s) in &w.histograms {
            if let Some(op) = OpKind::parse(name) {
                win.latency.insert(op, decode(s)?);
            }
        }
        rec.windows.push(win);
    }
    for (k, n) in &r.errors_by_kind {
        let kind = match k.as_str() {
            "timeout" => ErrorKind::Timeout,
            "connection-refused" => ErrorKind::ConnectionRefused,
            "connection-reset" => ErrorKind::ConnectionReset,
            "http-4xx" => ErrorKind::Http4xx,
            "http-5xx" => ErrorKind::Http5xx,
            _ => ErrorKind::Other,
        };
        *rec.errors.entry(kind).or_default() += n;
    }
    rec.dropped = r.dropped;
    rec.clamped = r.clamped_samples;
    Ok(rec)
}

/// `hwprof load merge REPORT...`: the shards' histograms added exactly.
pub fn merge(paths: &[std::path::PathBuf]) -> anyhow::Result<(LoadReport, Recorder)> {
    if paths.len() < 2 {
        return Err(usage("load merge needs at least two reports"));
    }
    let mut merged: Option<(LoadReport, Recorder)> = None;
    let mut shards = Vec::new();
    for p in paths {
        let file = if p.is_dir() {
            p.join("report.json")
        } else {
            p.clone()
        };
        let text = crate::input::read_text("load merge", &file, 1 << 30)?;
        let r: LoadReport = serde_json::from_str(&text).map_err(|e| {
            usage(format!(
                "load merge {}: not a hwprof load report ({e})",
                file.display()
            ))
        })?;
        if r.kind != "load" {
            return Err(usage(format!(
                "load merge {}: a {} report, not a load report",
                file.display(),
                r.kind
            )));
        }
        let rec =
            recorder_of(&r).map_err(|e| usage(format!("load merge {}: {e}", file.display())))?;
        shards.push(r.settings["shard"].as_str().unwrap_or("?").to_string());
        merged = Some(match merged {
            None => (r, rec),
            Some((first, mut acc)) => {
                if first.settings["seed"] != r.settings["seed"] {
                    return Err(usage(format!(
                        "load merge {}: seed {} differs from {}: not shards of one schedule",
                        file.display(),
                        r.settings["seed"],
                        first.settings["seed"]
                    )));
                }
                acc.merge(&rec);
                (first, acc)
            }
        });
    }
    let (first, rec) = merged.expect("two or more reports");
    let wall = first.achieved["wall_s"].as_f64().unwrap_or(1.0);
    let scenario: Scenario = serde_json::from_value(first.scenario.clone())
        .map_err(|e| usage(format!("load merge: scenario does not parse back: {e}")))?;
    let meta = Meta {
        scenario,
        scenario_file: first.scenario_file.clone(),
        target: first.target["url"].as_str().unwrap_or("").to_string(),
        target_kind: first.target["kind"].as_str().unwrap_or("").to_string(),
        target_pid: None,
        command: std::env::args().collect(),
        started_at: first.started_at.clone(),
        wall_start: std::time::SystemTime::now(),
        duration_s: first.settings["duration_s"].as_f64().unwrap_or(wall),
        wall_s: wall,
        seed: first.settings["seed"].as_u64().unwrap_or(0),
        shard: (0, 1),
        connections: first.settings["connections"].as_u64().map(|v| v as usize),
        max_in_flight: first.settings["max_in_flight"].as_u64().map(|v| v as usize),
        generator_cpus: vec![],
        shares_cpus_with_target: false,
        interval_s: first.settings["interval_s"].as_f64().unwrap_or(1.0),
        interrupted: false,
        ended_by: format!("merge of shards {}", shards.join(", ")),
        preload: first.preload.clone(),
        in_flight_peak: first.in_flight_peak,
        resources_before: None,
        resources_after: None,
        resource_timeline: vec![],
        warnings: vec![],
        machine: None,
    };
    let mut report = build(&meta, &rec);
    report.settings["merged_from"] = serde_json::json!(paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>());
    Ok((report, rec))
}

/// The .hlog: one interval histogram per operation per window, tagged by
/// operation, V2 deflate; HistogramLogProcessor reads it (values in ns:
/// `-outputValueUnitRatio 1e6` prints milliseconds).
pub fn hlog(rec: &Recorder, interval_s: f64, start: std::time::SystemTime) -> Vec<u8> {
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    {
        let mut b = IntervalLogWriterBuilder::new();
        b.add_comment("hwprof load: latency from the intended start, values in nanoseconds")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1e6);
        let mut w = b
            .begin_log_with(&mut out, &mut ser)
            .expect("writing to memory cannot fail");
        for (i, win) in rec.windows.iter().enumerate() {
            for (op, h) in &win.latency {
                let _ = w.write_histogram(
                    h,
                    std::time::Duration::from_secs_f64(i as f64 * interval_s),
                    std::time::Duration::from_secs_f64(interval_s),
                    Tag::new(op.name()),
                );
            }
        }
    }
    out
}

/// Print and write what was asked.
pub fn emit(
    report: &LoadReport,
    rec: &Recorder,
    json: bool,
    out: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut report = report.clone();
    if let Some(dir) = out {
        let start =
            humantime::parse_rfc3339(&report.started_at).unwrap_or(std::time::SystemTime::now());
        let interval = report.settings["interval_s"].as_f64().unwrap_or(1.0);
        write_atomic(&dir.join("load.hlog"), &hlog(rec, interval, start))?;
        write_atomic(
            &dir.join("engram-results.json"),
            (serde_json::to_string_pretty(&report.engram)? + "\n").as_bytes(),
        )?;
        let mut files = vec!["load.hlog".to_string(), "engram-results.json".to_string()];
        for c in charts(&report, rec) {
            match crate::report::plots::chart(dir, &c) {
                Ok(names) => files.extend(names),
                Err(e) if crate::output::is_write_error(&e) => return Err(e),
                Err(e) => report
                    .warnings
                    .push(format!("plot {} not written: {e}", c.id)),
            }
        }
        files.push("summary.md".into());
        files.push("report.json".into());
        report.files = files;
        write_atomic(&dir.join("summary.md"), markdown(&report).as_bytes())?;
        write_atomic(
            &dir.join("report.json"),
            crate::report::json::to_string(&report).as_bytes(),
        )?;
    }
    if json {
        println!("{}", crate::report::json::to_string(&report));
    } else if !quiet {
        print!("{}", render(&report));
        if let Some(dir) = out {
            println!(
                "wrote {}/report.json, load.hlog, engram-results.json, plots",
                dir.display()
            );
        }
    }
    Ok(())
}

fn charts(r: &LoadReport, rec: &Recorder) -> Vec<hwprof_workloads::findings::Chart> {
    use hwprof_workloads::findings::{Chart, Curve, CurvePoint, Estimate};
    let pt = |x: f64, y: f64| CurvePoint {
        x,
        y: Estimate {
            median: y,
            lo: y,
            hi: y,
        },
    };
    let series = |name: &str, f: &dyn Fn(&WindowReport) -> Option<f64>| Curve {
        name: name.into(),
        points: r
            .windows
            .iter()
            .filter_map(|w| f(w).map(|y| pt(w.start_s, y)))
            .collect(),
    };
    let over_time = Chart {
        id: "load-latency-over-time".into(),
        title: format!(
            "hwprof load {}: latency from the intended start per {} s window, offered rate {:.0}/s on the right",
            r.scenario["name"].as_str().unwrap_or(""),
            r.settings["interval_s"],
            r.offered["rate"].as_f64().unwrap_or(0.0)
        ),
        x_label: "seconds into the run".into(),
        y_label: "latency (ms)".into(),
        x_bytes: false,
        log_x: false,
        log_y: true,
        curves: vec![
            series("p50", &|w| w.p50_ms),
            // Each tail only in windows with enough samples beyond it.
            series("p90", &|w| w.p90_ms),
            series("p99", &|w| w.p99_ms),
            series("p99.9", &|w| w.p999_ms),
        ]
        .into_iter()
        .filter(|c| !c.points.is_empty())
        .collect(),
        // Each burst's start, and where its tail settled.
        markers: r
            .recovery
            .iter()
            .flat_map(|rc| rc.bursts.iter())
            .flat_map(|b| {
                let mut v = vec![(format!("×{}", b.multiplier), b.start_s)];
                if let Some(s) = b.settling_s {
                    v.push(("settled".to_string(), b.end_s + s));
                }
                v
            })
            .collect(),
        // The load beside the latency it produced, on the right axis.
        secondary: Some(hwprof_workloads::findings::SecondaryAxis {
            y_label: "requests/s".into(),
            curves: vec![
                series("offered rate", &|w| Some(w.offered_rate)),
                series("achieved rate", &|w| Some(w.achieved_rate)),
            ],
        }),
    };
    let rates = Chart {
        id: "load-rate".into(),
        title: "hwprof load: offered vs achieved rate per window".into(),
        x_label: "seconds into the run".into(),
        y_label: "requests/s".into(),
        x_bytes: false,
        log_x: false,
        log_y: false,
        curves: vec![
            series("offered", &|w| Some(w.offered_rate)),
            series("achieved", &|w| Some(w.achieved_rate)),
        ],
        markers: vec![],
        secondary: None,
    };
    // The percentile plot: x = 1/(1 − q), log.
    let mut dist = Vec::new();
    for (op, s) in &rec.ops {
        let n = s.latency.len();
        if n == 0 {
            continue;
        }
        let mut points = Vec::new();
        for q in [
            0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999,
        ] {
            if ((1.0 - q) * n as f64) < 10.0 {
                break;
            }
            points.push(pt(
                1.0 / (1.0 - q),
                s.latency.value_at_quantile(q) as f64 / 1e6,
            ));
        }
        dist.push(Curve {
            name: op.name().into(),
            points,
        });
    }
    let distribution = Chart {
        id: "load-latency-distribution".into(),
        title:
            "hwprof load: latency by percentile (x = 1/(1 − q): 10 = p90, 100 = p99, 1000 = p99.9)"
                .into(),
        x_label: "1/(1 − quantile)".into(),
        y_label: "latency (ms)".into(),
        x_bytes: false,
        log_x: true,
        log_y: true,
        curves: dist.into_iter().filter(|c| c.points.len() >= 2).collect(),
        markers: vec![],
        secondary: None,
    };
    [over_time, rates, distribution]
        .into_iter()
        .filter(|c| c.curves.iter().any(|k| k.points.len() >= 2))
        .collect()
}

fn fmt_ms(v: &serde_json::Value, k: &str) -> String {
    v[k].as_f64().map_or("n/a".into(), |x| format!("{x:.3}"))
}

/// The terminal summary.
pub fn render(r: &LoadReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "hwprof load — {} on {} — ended by {}",
        r.scenario["name"].as_str().unwrap_or(""),
        r.target["url"].as_str().unwrap_or(""),
        r.ended_by
    );
    let _ = writeln!(
        s,
        "{:<11} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation",
        "requests",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "lag p99"
    );
    for (op, o) in &r.operations {
        let _ = writeln!(
            s,
            "{:<11} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            op,
            o.completed,
            o.errors,
            fmt_ms(&o.latency, "p50_ms"),
            fmt_ms(&o.latency, "p90_ms"),
            fmt_ms(&o.latency, "p99_ms"),
            fmt_ms(&o.latency, "p999_ms"),
            fmt_ms(&o.latency, "max_ms"),
            fmt_ms(&o.schedule_lag, "p99_ms"),
        );
    }
    for v in &r.verdict {
        let _ = writeln!(s, "- {v}");
    }
    if !r.tails.is_empty() {
        let _ = writeln!(
            s,
            "tails (all operations, 95% CIs from order statistics) [timer]:"
        );
        for t in &r.tails {
            let _ = writeln!(s, "  {}", t.line);
        }
    }
    if let Some(a) = &r.attribution {
        let _ = writeln!(s, "tail causes [probe]: {}", a.line);
    }
    if let Some(rc) = &r.recovery {
        let _ = writeln!(s, "{}", rc.summary());
        for b in &rc.bursts {
            let _ = writeln!(s, "- {}", b.line);
        }
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

pub fn markdown(r: &LoadReport) -> String {
    let mut s = format!(
        "# hwprof load: {}\n\nTarget `{}`, started {}, ended by {}.\n\n```\n{}```\n",
        r.scenario["name"].as_str().unwrap_or(""),
        r.target["url"].as_str().unwrap_or(""),
        r.started_at,
        r.ended_by,
        render(r)
    );
    for f in &r.files {
        if f.ends_with(".svg") {
            s.push_str(&format!("\n![{f}]({f})\n"));
        }
    }
    s
}

/// The process listening on a loopback TCP port, from /proc/net/tcp{,6} and
/// the processes' socket descriptors.
pub fn pid_listening_on(addr: SocketAddr) -> Option<u32> {
    if !addr.ip().is_loopback() {
        return None;
    }
    let port = format!("{:04X}", addr.port());
    let mut inodes = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is col 1 (ADDR:PORT), state col 3 (0A = LISTEN), inode col 9.
            if cols.len() > 9 && cols[3] == "0A" && cols[1].ends_with(&format!(":{port}")) {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(l) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| l.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// CPUs a process may run on (Cpus_allowed_list).
pub fn cpus_of_pid(pid: u32) -> Option<Vec<usize>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    crate::placement::cpulist::parse(l.trim()).ok()
}
