//! `hwprof load --ramp` (Engram's task 005): the offered rate stepped
//! geometrically until a service-level objective breaks, the last sustainable
//! rate with its CI, the capacity curve, and the bottleneck at the break.
//!
//! Each step is an ordinary `hwprof load` run at a constant rate into
//! `OUT/steps/NN-RATE/`, with the target watched: its CPU time from /proc
//! against the CPUs it may run on, and (with `--probes`, default `sched,futex`
//! where eBPF works) its threads' run-queue and off-CPU time and futex waits
//! per address. A step breaks when its p99 is above `--slo-p99`, its error rate
//! above `--slo-errors`, it achieved under 95% of what was offered, or the
//! generator itself fell behind. The bottleneck is read from the breaking step
//! against the first (`classify`): the generator first (never blamed on the
//! target), then CPU, a lock, the scheduler, memory, waiting outside locks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::output::LoadReport;
use crate::error::usage;

/// What the ramp was asked for.
#[derive(Debug, Clone)]
pub struct RampOptions {
    pub from: f64,
    pub factor: f64,
    pub step_s: f64,
    pub max_rate: f64,
    pub slo_p99_ms: f64,
    pub slo_error_rate: f64,
}

impl Default for RampOptions {
    fn default() -> Self {
        RampOptions {
            from: 100.0,
            factor: 1.5,
            step_s: 10.0,
            max_rate: 1e6,
            slo_p99_ms: 50.0,
            slo_error_rate: 0.01,
        }
    }
}

/// Achieved below this share of the offered rate breaks a step.
pub const MIN_ACHIEVED: f64 = 0.95;

/// What one step measured of the load and of the target.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Step {
    pub offered_rate: f64,
    pub achieved_rate: f64,
    /// Median and 95% CI of the achieved rate over the step's 1 s windows.
    pub achieved_median: Option<f64>,
    pub achieved_lo: Option<f64>,
    pub achieved_hi: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub error_rate: f64,
    /// Highest p99 over operations of the service time (send → response) and
    /// the schedule lag (intended start → send).
    pub service_p99_ms: Option<f64>,
    pub schedule_lag_p99_ms: Option<f64>,
    /// The dispatcher itself fell behind its schedule.
    pub generator_limited: bool,
    /// The target's CPU time over the step per second (cores), and the CPUs it may use.
    pub target_cores: Option<f64>,
    pub target_cpus: Option<usize>,
    pub rss_growth_bytes: Option<i64>,
    pub rss_bytes: Option<u64>,
    /// From the probes (None without them): shares of the target threads' time.
    pub runq_share: Option<f64>,
    pub off_cpu_share: Option<f64>,
    pub futex_share: Option<f64>,
    /// Futex wait time per address: (address, what it is, share of thread time).
    pub futex_addresses: Vec<(String, String, f64)>,
    /// Why the step broke the SLO (empty: it held).
    pub broke: Vec<String>,
    pub dir: String,
}

/// What limited the target at the break.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Bottleneck {
    /// The generator, not the target: its schedule slipped or requests waited in it.
    Generator,
    CpuSaturated,
    LockContended,
    Scheduler,
    Memory,
    /// Off-CPU outside futexes: I/O or network.
    IoOrNetworkWait,
    Unclassified,
}

impl std::fmt::Display for Bottleneck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Bottleneck::Generator => "generator-bound",
            Bottleneck::CpuSaturated => "CPU-saturated",
            Bottleneck::LockContended => "lock-contended",
            Bottleneck::Scheduler => "scheduler",
            Bottleneck::Memory => "memory",
            Bottleneck::IoOrNetworkWait => "I/O or network wait",
            Bottleneck::Unclassified => "unclassified",
        })
    }
}

/// ramp.json.
#[derive(Debug, Clone, Serialize)]
pub struct RampReport {
    pub schema_version: u32,
    pub kind: String,
    pub target: String,
    pub slo: Value,
    pub steps: Vec<Step>,
    /// The highest offered rate whose step held, and the first that broke.
    pub sustainable_rate: Option<f64>,
    pub breaking_rate: Option<f64>,
    pub bottleneck: Option<Bottleneck>,
    /// The evidence for the bottleneck, in words.
    pub evidence: Vec<String>,
    pub verdict: String,
    pub files: Vec<String>,
    pub warnings: Vec<String>,
}

/// Run the ramp: `base` gives the target, scenario (its mix and data), probes, out.
pub fn run(
    base: &super::LoadOptions,
    ro: &RampOptions,
    interrupted: Arc<AtomicBool>,
) -> anyhow::Result<RampReport> {
    for (flag, v) in [
        ("--ramp-from", ro.from),
        ("--ramp-step", ro.step_s),
        ("--ramp-max", ro.max_rate),
        ("--slo-p99", ro.slo_p99_ms),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(usage(format!("{flag} {v}: must be positive")));
        }
    }
    if !(ro.factor.is_finite() && ro.factor > 1.0 && ro.factor <= 10.0) {
        return Err(usage(format!(
            "--ramp-factor {}: between 1 (exclusive) and 10",
            ro.factor
        )));
    }
    if !(0.0..1.0).contains(&ro.slo_error_rate) {
        return Err(usage(format!(
            "--slo-errors {}: a rate in [0, 1)",
            ro.slo_error_rate
        )));
    }
    if ro.from > ro.max_rate {
        return Err(usage("--ramp-from is above --ramp-max"));
    }
    let out = base
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/ramp"));
    let out = crate::output::prepare_dir("--out", &out)?;
    let mut warnings = Vec::new();
    // Some("") asks for none.
    let probes = match &base.probes {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(p.clone()),
        None if base.target.starts_with("http://") => Some("sched,futex".to_string()),
        None => None,
    };
    // A short warm-up at the first rate, not judged: the first connections,
    // page faults and an idle VM's wake-ups would otherwise land in step 0.
    if !interrupted.load(Ordering::Relaxed) {
        super::run(
            &super::LoadOptions {
                rate: Some(ro.from),
                pattern: Some("constant".into()),
                duration: Some(ro.step_s.min(3.0)),
                interval: Some(1.0),
                out: Some(out.join("steps").join("warmup")),
                quiet: true,
                json: false,
                metrics: None,
                probes: None,
                ..base.clone()
            },
            Arc::clone(&interrupted),
        )?;
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut rate = ro.from;
    let mut k = 0;
    while rate <= ro.max_rate * (1.0 + 1e-9) && !interrupted.load(Ordering::Relaxed) {
        let dir = out.join("steps").join(format!("{k:02}-{rate:.0}"));
        eprintln!("hwprof: ramp step {k}: {rate:.0} req/s for {} s", ro.step_s);
        let r = super::run(
            &super::LoadOptions {
                rate: Some(rate),
                pattern: Some(base.pattern.clone().unwrap_or_else(|| "constant".into())),
                duration: Some(ro.step_s),
                interval: Some(1.0),
                out: Some(dir.clone()),
                quiet: true,
                json: false,
                metrics: None,
                probes: probes.clone(),
                ..base.clone()
            },
            Arc::clone(&interrupted),
        )?;
        for w in &r.warnings {
            let w = format!("step {k}: {w}");
            if !warnings.contains(&w) && w.contains("--probes") {
                warnings.push(w);
            }
        }
        let mut s = observe(&r, ro);
        s.dir = dir.strip_prefix(&out).unwrap_or(&dir).display().to_string();
        eprintln!(
            "hwprof: ramp step {k}: achieved {:.0}/s, p99 {}, errors {:.2}%{}",
            s.achieved_rate,
            s.p99_ms.map_or("n/a".into(), |v| format!("{v:.2} ms")),
            s.error_rate * 100.0,
            if s.broke.is_empty() {
                String::new()
            } else {
                format!(" — broke: {}", s.broke.join("; "))
            }
        );
        let broke = !s.broke.is_empty();
        steps.push(s);
        if broke || r.ended_by != "duration" {
            break;
        }
        rate *= ro.factor;
        k += 1;
    }
    let mut rep = conclude(base.target.clone(), ro, steps, warnings);
    write(&mut rep, &out)?;
    Ok(rep)
}

/// A step's figures from its load report.
pub fn observe(r: &LoadReport, ro: &RampOptions) -> Step {
    let ms = |v: &Value, k: &str| v[k].as_f64();
    let offered = r.offered["rate"].as_f64().unwrap_or(0.0);
    let achieved = r.achieved["rate"].as_f64().unwrap_or(0.0);
    let wall = r.achieved["wall_s"].as_f64().unwrap_or(0.0).max(1e-9);
    let completed: u64 = r.operations.values().map(|o| o.completed).sum();
    let errors: u64 = r.operations.values().map(|o| o.errors).sum();
    let error_rate = errors as f64 / completed.max(1) as f64;
    let max_over_ops = |k: &str| {
        r.operations
            .values()
            .filter_map(|o| {
                let v = if k == "service" {
                    &o.service
                } else {
                    &o.schedule_lag
                };
                v["p99_ms"].as_f64().or(v["max_ms"].as_f64())
            })
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    // Whole windows only: the last may be partial.
    let rates: Vec<f64> = r
        .windows
        .iter()
        .take(r.windows.len().saturating_sub(1))
        .map(|w| w.achieved_rate)
        .collect();
    let (achieved_median, ci) = if rates.len() >= 3 {
        (
            Some(crate::stats::median(&rates)),
            Some(crate::stats::median_ci(&rates, 0.95)),
        )
    } else {
        (None, None)
    };
    let res = &r.resources;
    let cpu = |v: &Value| Some(v["cpu_user_s"].as_f64()? + v["cpu_sys_s"].as_f64()?);
    let target_cores = match (cpu(&res["before"]), cpu(&res["after"])) {
        (Some(a), Some(b)) => Some(((b - a) / wall).max(0.0)),
        _ => None,
    };
    let target_cpus = r.target["pid"]
        .as_u64()
        .and_then(|p| super::output::cpus_of_pid(p as u32))
        .map(|c| c.len());
    let rss_before = res["before"]["rss_bytes"].as_u64();
    let rss_after = res["after"]["rss_bytes"].as_u64();
    let rss_growth_bytes = match (rss_before, rss_after) {
        (Some(a), Some(b)) => Some(b as i64 - a as i64),
        _ => None,
    };
    // Probes: shares of the target threads' time (on + off CPU).
    let sched = r
        .probes
        .as_ref()
        .map(|p| &p["sched"])
        .filter(|s| s.is_object());
    let futex = r
        .probes
        .as_ref()
        .map(|p| &p["futex"])
        .filter(|s| s.is_object());
    let thread_ns =
        sched.and_then(|s| Some(s["total_on_cpu_ns"].as_f64()? + s["total_off_cpu_ns"].as_f64()?));
    let share = |ns: f64| thread_ns.filter(|&t| t > 0.0).map(|t| ns / t);
    let runq_ns: Option<f64> = sched.map(|s| {
        s["threads"].as_array().map_or(0.0, |t| {
            t.iter().filter_map(|x| x["runq_ns"].as_f64()).sum()
        })
    });
    let futex_ns = futex.and_then(|f| f["total_wait_ns"].as_f64());
    let futex_addresses = futex
        .and_then(|f| f["top"].as_array())
        .map(|top| {
            top.iter()
                .filter_map(|a| {
                    let ns = a["wait_ns"].as_f64()?;
                    let what = match &a["resolved"] {
                        Value::Object(o) => match (o.get("symbol"), o.get("mapping")) {
                            (Some(Value::String(s)), _) => s.clone(),
                            (_, Some(Value::String(m))) => m.clone(),
                            _ => String::new(),
                        },
                        _ => String::new(),
                    };
                    Some((a["uaddr"].as_str()?.to_string(), what, share(ns)?))
                })
                .collect()
        })
        .unwrap_or_default();
    let p99 = ms(&r.latency, "p99_ms");
    let mut broke = Vec::new();
    match p99 {
        Some(v) if v > ro.slo_p99_ms => broke.push(format!("p99 {v:.2} ms > {} ms", ro.slo_p99_ms)),
        None if r.latency["max_ms"]
            .as_f64()
            .is_some_and(|m| m > ro.slo_p99_ms) =>
        {
            broke.push(format!(
                "p99 withheld (too few samples) and max above {} ms",
                ro.slo_p99_ms
            ))
        }
        _ => {}
    }
    if error_rate > ro.slo_error_rate {
        broke.push(format!(
            "errors {:.2}% > {:.2}%",
            error_rate * 100.0,
            ro.slo_error_rate * 100.0
        ));
    }
    if offered > 0.0 && achieved < MIN_ACHIEVED * offered {
        broke.push(format!(
            "achieved {achieved:.0}/s < 95% of {offered:.0}/s offered"
        ));
    }
    if r.generator_limited {
        broke.push("the generator fell behind its schedule".into());
    }
    Step {
        offered_rate: offered,
        achieved_rate: achieved,
        achieved_median,
        achieved_lo: ci.map(|c| c.lo),
        achieved_hi: ci.map(|c| c.hi),
        p50_ms: ms(&r.latency, "p50_ms"),
        p99_ms: p99,
        error_rate,
        service_p99_ms: max_over_ops("service"),
        schedule_lag_p99_ms: max_over_ops("lag"),
        generator_limited: r.generator_limited,
        target_cores,
        target_cpus,
        rss_growth_bytes,
        rss_bytes: rss_after,
        runq_share: runq_ns.and_then(share),
        off_cpu_share: sched
            .and_then(|s| s["total_off_cpu_ns"].as_f64())
            .and_then(share),
        futex_share: futex_ns.and_then(share),
        futex_addresses,
        broke,
        dir: String::new(),
    }
}

/// Target CPU use at or above this share of its CPUs is saturation.
const CPU_SATURATED: f64 = 0.85;
/// A futex address is the lock when its share of thread time rose this much.
const LOCK_RISE: f64 = 0.10;
/// Run-queue time this share of thread time (and doubled) is the scheduler.
const RUNQ_SHARE: f64 = 0.20;

/// The bottleneck at `at` (the breaking step), against `first` (the lightest).
pub fn classify(first: &Step, at: &Step) -> (Bottleneck, Vec<String>) {
    let mut ev = Vec::new();
    // The generator: its dispatcher fell behind, or requests waited in it for a
    // connection while the target answered as fast as at the lightest step.
    let lag = at.schedule_lag_p99_ms.unwrap_or(0.0);
    let service_flat = match (first.service_p99_ms, at.service_p99_ms) {
        (Some(a), Some(b)) => b <= (2.0 * a).max(a + 1.0),
        _ => false,
    };
    if at.generator_limited {
        ev.push("the generator's dispatcher fell behind its schedule (dispatch lag p99 above 1 ms): give it more CPUs (--threads, --cpus) or --shard".into());
        return (Bottleneck::Generator, ev);
    }
    if lag > 1.0 && service_flat && lag > 2.0 * at.service_p99_ms.unwrap_or(0.0) {
        ev.push(format!(
            "requests waited in the generator for a free connection (schedule lag p99 {lag:.2} ms) while the target answered as fast as at the lightest step (service p99 {:.2} ms, was {:.2} ms): give it more --connections",
            at.service_p99_ms.unwrap_or(0.0),
            first.service_p99_ms.unwrap_or(0.0)
        ));
        return (Bottleneck::Generator, ev);
    }
    if let (Some(c), Some(n)) = (at.target_cores, at.target_cpus) {
        let share = c / n.max(1) as f64;
        if share >= CPU_SATURATED {
            ev.push(format!(
                "the target was on CPU {c:.2} cores of the {n} it may use ({:.0}%) [software, /proc]",
                share * 100.0
            ));
            return (Bottleneck::CpuSaturated, ev);
        }
        ev.push(format!(
            "the target used {c:.2} of its {n} CPUs ({:.0}%): not CPU-saturated",
            share * 100.0
        ));
    }
    // The futex address whose share of thread time rose most.
    let rise = at
        .futex_addresses
        .iter()
        .map(|(addr, what, s)| {
            let before = first
                .futex_addresses
                .iter()
                .find(|f| &f.0 == addr)
                .map_or(0.0, |f| f.2);
            (addr, what, *s, s - before)
        })
        .max_by(|a, b| a.3.total_cmp(&b.3));
    if let Some((addr, what, s, d)) = rise {
        if d >= LOCK_RISE {
            ev.push(format!(
                "futex waits on {addr}{} took {:.0}% of the target threads' time (up {:.0} points from the lightest step) [probe]",
                if what.is_empty() { String::new() } else { format!(" ({what})") },
                s * 100.0,
                d * 100.0
            ));
            return (Bottleneck::LockContended, ev);
        }
    }
    if let (Some(q), q0) = (at.runq_share, first.runq_share.unwrap_or(0.0)) {
        if q >= RUNQ_SHARE && q >= 2.0 * q0 {
            ev.push(format!(
                "the target's threads waited to run {:.0}% of their time (was {:.0}%) [probe]",
                q * 100.0,
                q0 * 100.0
            ));
            return (Bottleneck::Scheduler, ev);
        }
    }
    if let (Some(g), Some(rss)) = (at.rss_growth_bytes, at.rss_bytes) {
        if g > 0 && g as f64 >= 0.10 * rss as f64 {
            ev.push(format!(
                "the target's RSS grew {:.1} MB ({:.0}%) during the step [software]",
                g as f64 / 1e6,
                g as f64 / rss as f64 * 100.0
            ));
            return (Bottleneck::Memory, ev);
        }
    }
    if let (Some(off), Some(fx)) = (at.off_cpu_share, at.futex_share) {
        let outside = off - fx;
        if outside >= 0.5 && at.service_p99_ms > first.service_p99_ms {
            ev.push(format!(
                "the target's threads were off CPU outside futex waits {:.0}% of their time while service time rose: waiting on I/O or the network [probe]",
                outside * 100.0
            ));
            return (Bottleneck::IoOrNetworkWait, ev);
        }
    }
    if at.runq_share.is_none() {
        ev.push("without probes (sched, futex) lock and scheduler causes were not checked (run as root with eBPF)".into());
    }
    (Bottleneck::Unclassified, ev)
}

fn conclude(
    target: String,
    ro: &RampOptions,
    steps: Vec<Step>,
    warnings: Vec<String>,
) -> RampReport {
    let held: Vec<Step> = steps
        .iter()
        .filter(|s| s.broke.is_empty())
        .cloned()
        .collect();
    let breaking = steps.iter().find(|s| !s.broke.is_empty()).cloned();
    let sustainable = held.last().map(|s| s.offered_rate);
    let (bottleneck, evidence) = match (steps.first(), breaking.as_ref()) {
        (Some(f), Some(b)) => {
            let (k, e) = classify(f, b);
            (Some(k), e)
        }
        _ => (None, vec![]),
    };
    let ci = |s: &Step| match (s.achieved_median, s.achieved_lo, s.achieved_hi) {
        (Some(m), Some(lo), Some(hi)) => {
            format!(" (achieved median {m:.0}/s, 95% CI {lo:.0}–{hi:.0} over 1 s windows)")
        }
        _ => String::new(),
    };
    let verdict = match (held.last(), breaking.as_ref()) {
        (Some(h), Some(b)) => format!(
            "sustainable up to {:.0} req/s{}; broke at {:.0} req/s ({}); bottleneck: {}",
            h.offered_rate,
            ci(h),
            b.offered_rate,
            b.broke.join("; "),
            bottleneck.map_or("n/a".into(), |k| k.to_string())
        ),
        (None, Some(b)) => format!(
            "the first step ({:.0} req/s) already broke the SLO ({}); bottleneck: {}; start lower (--ramp-from)",
            b.offered_rate,
            b.broke.join("; "),
            bottleneck.map_or("n/a".into(), |k| k.to_string())
        ),
        (Some(h), None) => format!(
            "no step broke the SLO up to {:.0} req/s{}: raise --ramp-max",
            h.offered_rate,
            ci(h)
        ),
        (None, None) => "no step ran".into(),
    };
    RampReport {
        schema_version: crate::report::SCHEMA_VERSION,
        kind: "ramp".into(),
        target,
        slo: serde_json::json!({
            "p99_ms": ro.slo_p99_ms, "error_rate": ro.slo_error_rate,
            "achieved_share": MIN_ACHIEVED, "generator_lag_ms": super::GENERATOR_LAG_LIMIT_MS,
            "from": ro.from, "factor": ro.factor, "step_s": ro.step_s, "max_rate": ro.max_rate,
        }),
        steps,
        sustainable_rate: sustainable,
        breaking_rate: breaking.map(|b| b.offered_rate),
        bottleneck,
        evidence,
        verdict,
        files: vec![],
        warnings,
    }
}

/// ramp.json, ramp.md and the capacity curve.
fn write(rep: &mut RampReport, out: &std::path::Path) -> anyhow::Result<()> {
    use hwprof_workloads::findings::{Chart, Curve, CurvePoint, Estimate, SecondaryAxis};
    let pt = |x: f64, y: f64| CurvePoint {
        x,
        y: Estimate {
            median: y,
            lo: y,
            hi: y,
        },
    };
    let chart = Chart {
        id: "ramp-capacity".into(),
        title: "hwprof load --ramp: achieved rate and p99 per offered rate".into(),
        x_label: "offered requests/s".into(),
        y_label: "achieved requests/s".into(),
        x_bytes: false,
        log_x: true,
        log_y: true,
        curves: vec![
            Curve {
                name: "achieved".into(),
                points: rep
                    .steps
                    .iter()
                    .map(|s| CurvePoint {
                        x: s.offered_rate,
                        y: Estimate {
                            median: s.achieved_median.unwrap_or(s.achieved_rate),
                            lo: s.achieved_lo.unwrap_or(s.achieved_rate),
                            hi: s.achieved_hi.unwrap_or(s.achieved_rate),
                        },
                    })
                    .collect(),
            },
            Curve {
                name: "offered".into(),
                points: rep
                    .steps
                    .iter()
                    .map(|s| pt(s.offered_rate, s.offered_rate))
                    .collect(),
            },
        ],
        markers: rep
            .breaking_rate
            .map(|b| {
                vec![(
                    format!(
                        "broke ({})",
                        rep.bottleneck.map_or("?".into(), |k| k.to_string())
                    ),
                    b,
                )]
            })
            .unwrap_or_default(),
        secondary: Some(SecondaryAxis {
            y_label: "p99 (ms)".into(),
            curves: vec![Curve {
                name: "p99".into(),
                points: rep
                    .steps
                    .iter()
                    .filter_map(|s| s.p99_ms.map(|p| pt(s.offered_rate, p)))
                    .collect(),
            }],
        }),
    };
    let mut files = vec!["ramp.json".to_string(), "ramp.md".to_string()];
    if !rep.steps.is_empty() {
        match crate::report::plots::chart(out, &chart) {
            Ok(n) => files.extend(n),
            Err(e) if crate::output::is_write_error(&e) => return Err(e),
            Err(e) => rep.warnings.push(format!("plot not written: {e}")),
        }
    }
    rep.files = files;
    crate::output::write_atomic(&out.join("ramp.md"), markdown(rep).as_bytes())?;
    crate::output::write_atomic(
        &out.join("ramp.json"),
        crate::report::json::to_string(rep).as_bytes(),
    )?;
    Ok(())
}

/// The ramp in Markdown (also the terminal summary).
pub fn markdown(r: &RampReport) -> String {
    use std::fmt::Write;
    let mut m = format!(
        "# hwprof load --ramp: {}\n\n{}\n\nSources: rates and latencies [timer]; target CPU and RSS [software, /proc]; run queue and futex shares [probe].\n\n",
        r.target, r.verdict
    );
    for e in &r.evidence {
        let _ = writeln!(m, "- {e}");
    }
    let _ = writeln!(
        m,
        "\n| offered/s | achieved/s (1 s windows: median, 95% CI) | p99 ms | errors | service p99 ms | lag p99 ms | target CPU | run queue | futex | broke |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let pct = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{:.0}%", v * 100.0));
    let f2 = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.2}"));
    for s in &r.steps {
        let _ = writeln!(
            m,
            "| {:.0} | {:.0}{} | {} | {:.2}% | {} | {} | {} | {} | {} | {} |",
            s.offered_rate,
            s.achieved_rate,
            // The whole step's rate, then its 1 s windows' median with CI: a
            // step that stalled has windows far from its average.
            match (s.achieved_median, s.achieved_lo, s.achieved_hi) {
                (Some(m), Some(lo), Some(hi)) => format!(" ({m:.0}, {lo:.0}–{hi:.0})"),
                _ => String::new(),
            },
            f2(s.p99_ms),
            s.error_rate * 100.0,
            f2(s.service_p99_ms),
            f2(s.schedule_lag_p99_ms),
            match (s.target_cores, s.target_cpus) {
                (Some(c), Some(n)) => format!("{c:.2}/{n}"),
                _ => "n/a".into(),
            },
            pct(s.runq_share),
            pct(s.futex_share),
            if s.broke.is_empty() {
                "—".into()
            } else {
                s.broke.join("; ")
            }
        );
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

    fn light() -> Step {
        Step {
            offered_rate: 100.0,
            achieved_rate: 100.0,
            service_p99_ms: Some(1.0),
            schedule_lag_p99_ms: Some(0.1),
            target_cores: Some(0.1),
            target_cpus: Some(2),
            rss_bytes: Some(100_000_000),
            rss_growth_bytes: Some(0),
            runq_share: Some(0.01),
            off_cpu_share: Some(0.9),
            futex_share: Some(0.8),
            // Idle runtime workers park on their own condvars.
            futex_addresses: vec![("0x1000".into(), "[heap]".into(), 0.4)],
            ..Step::default()
        }
    }

    fn broken(f: impl FnOnce(&mut Step)) -> Step {
        let mut s = light();
        s.offered_rate = 5000.0;
        s.broke = vec!["p99".into()];
        f(&mut s);
        s
    }

    #[test]
    fn a_server_using_its_cpus_is_cpu_saturated() {
        let (k, ev) = classify(
            &light(),
            &broken(|s| {
                s.target_cores = Some(0.97);
                s.target_cpus = Some(1);
                s.service_p99_ms = Some(30.0);
            }),
        );
        assert_eq!(k, Bottleneck::CpuSaturated);
        assert!(ev[0].contains("0.97 cores of the 1"), "{ev:?}");
    }

    #[test]
    fn a_rising_futex_address_is_the_lock_and_is_named() {
        let (k, ev) = classify(
            &light(),
            &broken(|s| {
                s.target_cores = Some(1.0);
                s.futex_addresses = vec![
                    ("0x1000".into(), "[heap]".into(), 0.05),
                    ("0x5000".into(), "hwprof::serve::GLOBAL_LOCK".into(), 0.45),
                ];
            }),
        );
        assert_eq!(k, Bottleneck::LockContended, "{ev:?}");
        assert!(
            ev.last().unwrap().contains("hwprof::serve::GLOBAL_LOCK"),
            "{ev:?}"
        );
        // Idle parking that falls under load is not a lock.
        let (k, _) = classify(
            &light(),
            &broken(|s| {
                s.futex_addresses = vec![("0x1000".into(), "[heap]".into(), 0.1)];
            }),
        );
        assert_ne!(k, Bottleneck::LockContended);
    }

    #[test]
    fn the_generator_is_blamed_before_the_target() {
        // Its dispatcher fell behind, even with the target's CPUs full.
        let (k, _) = classify(
            &light(),
            &broken(|s| {
                s.generator_limited = true;
                s.target_cores = Some(2.0);
            }),
        );
        assert_eq!(k, Bottleneck::Generator);
        // Requests queued for a connection while the target stayed fast.
        let (k, ev) = classify(
            &light(),
            &broken(|s| {
                s.schedule_lag_p99_ms = Some(40.0);
                s.service_p99_ms = Some(1.2);
            }),
        );
        assert_eq!(k, Bottleneck::Generator);
        assert!(ev[0].contains("--connections"), "{ev:?}");
        // Queueing behind a slow target is the target's.
        let (k, _) = classify(
            &light(),
            &broken(|s| {
                s.schedule_lag_p99_ms = Some(40.0);
                s.service_p99_ms = Some(25.0);
                s.target_cores = Some(1.9);
            }),
        );
        assert_eq!(k, Bottleneck::CpuSaturated);
    }

    #[test]
    fn run_queue_memory_and_waiting_outside_locks() {
        let (k, _) = classify(&light(), &broken(|s| s.runq_share = Some(0.3)));
        assert_eq!(k, Bottleneck::Scheduler);
        let (k, _) = classify(&light(), &broken(|s| s.rss_growth_bytes = Some(20_000_000)));
        assert_eq!(k, Bottleneck::Memory);
        let (k, _) = classify(
            &light(),
            &broken(|s| {
                s.futex_share = Some(0.1);
                s.off_cpu_share = Some(0.85);
                s.service_p99_ms = Some(20.0);
            }),
        );
        assert_eq!(k, Bottleneck::IoOrNetworkWait);
        let (k, ev) = classify(
            &light(),
            &broken(|s| {
                s.runq_share = None;
                s.off_cpu_share = None;
                s.futex_share = None;
            }),
        );
        assert_eq!(k, Bottleneck::Unclassified);
        assert!(ev.iter().any(|e| e.contains("without probes")), "{ev:?}");
    }

    #[test]
    fn the_verdict_names_the_last_sustainable_rate_and_the_break() {
        let mut held = light();
        held.achieved_median = Some(99.0);
        held.achieved_lo = Some(97.0);
        held.achieved_hi = Some(101.0);
        let brk = broken(|s| {
            s.target_cores = Some(1.95);
            s.broke = vec!["p99 80.00 ms > 50 ms".into()];
        });
        let r = conclude(
            "http://x".into(),
            &RampOptions::default(),
            vec![held, brk],
            vec![],
        );
        assert_eq!(r.sustainable_rate, Some(100.0));
        assert_eq!(r.breaking_rate, Some(5000.0));
        assert_eq!(r.bottleneck, Some(Bottleneck::CpuSaturated));
        assert!(
            r.verdict
                .starts_with("sustainable up to 100 req/s (achieved median 99/s, 95% CI 97–101"),
            "{}",
            r.verdict
        );
        assert!(r
            .verdict
            .contains("broke at 5000 req/s (p99 80.00 ms > 50 ms); bottleneck: CPU-saturated"));
    }
}
