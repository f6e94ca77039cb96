//! `hwprof gate`: a CI performance gate as a statistical instrument.
//!
//! Repetitions of a baseline (A) and a candidate (B) run interleaved ABBA,
//! each a fresh process, after discarded warm-up; after every ABBA block past
//! the minimum the runs so far are judged (judge.rs) and the gate stops as
//! soon as the answer is clear, or at --repetitions, or when --budget would be
//! exceeded. Reports already made can be judged instead (--baseline/--current).
//! Outputs (output.rs): Markdown for a pull request, JUnit XML, Bencher Metric
//! Format JSON and hwprof's JSON. docs/gate.md has the rule and its measured
//! error rates.

pub mod judge;
pub mod metric;
pub mod output;
pub mod runner;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::error::usage;
use judge::{MetricJudgement, OneRunRule, Outcome, Rule};
use metric::MetricSpec;
use runner::Produce;

/// Where the runs come from.
#[derive(Debug)]
pub enum Source {
    /// Run A and B interleaved (commands, or servers under a scenario).
    Interleaved {
        a: Box<dyn Produce>,
        b: Box<dyn Produce>,
    },
    /// Reports already run, one directory per side.
    Dirs { baseline: PathBuf, current: PathBuf },
}

#[derive(Debug)]
pub struct GateOptions {
    pub source: Source,
    pub metrics: Vec<MetricSpec>,
    /// Most repetitions a side (rounded up to whole ABBA blocks).
    pub repetitions: usize,
    /// Repetitions a side before the first look.
    pub min_repetitions: usize,
    /// Wall-clock budget in seconds for the interleaved runs.
    pub budget: f64,
    pub threshold: f64,
    pub alpha: f64,
    /// Discarded runs of each side before the interleaved ones (commands).
    pub warmup_runs: usize,
    pub out: PathBuf,
    pub json: bool,
    pub quiet: bool,
    pub names: (String, String),
    pub command: Vec<String>,
    /// Serve the verdicts as gauges (hwprof_verdict_*) at http://ADDR/metrics,
    /// updated at every look and held until scraped once at the end.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// The judgements as verdict gauges: experiment `gate`, one comparison per
/// metric; "target met" is "not a regression" where the gate decided.
fn verdict_samples(
    js: &[MetricJudgement],
    names: &(String, String),
) -> Vec<crate::metrics::verdicts::VerdictSample> {
    let at_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let machine = crate::metrics::machine_name();
    js.iter()
        .map(|j| crate::metrics::verdicts::VerdictSample {
            experiment: "gate".into(),
            comparison: format!("{} vs {} [{}]", names.1, names.0, j.metric),
            machine: machine.clone(),
            ratio: j.ratio,
            ci_low: j.ratio_ci.lo,
            ci_high: j.ratio_ci.hi,
            conclusive: j.outcome != Outcome::Inconclusive,
            target_met: Some(match j.outcome {
                Outcome::Inconclusive => None,
                o => Some(o != Outcome::Regression),
            }),
            at_s,
        })
        .collect()
}

/// Above this share of the machine's CPU time going to other work (other
/// processes and hypervisor steal) while a run was measured, the run is bent
/// and discarded. Higher than the experiments' 10%: on the 2-vCPU guest an
/// A/A gate's quiet 0.6 s runs measured 1-30% (mostly steal: the host runs
/// other guests on our vCPUs, on both sides alike), while a CPU hog on one of
/// the two CPUs alone takes 50% (docs/benchmarks.md).
pub const BENT_RUN_SHARE: f64 = 0.40;

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub side: String,
    /// 1-based per side.
    pub index: usize,
    /// Position in the whole interleaved order (1-based; 0 for warm-up).
    pub order: usize,
    pub report: String,
    pub values: Vec<(String, f64)>,
    pub wall_s: f64,
    pub warmup: bool,
    /// Share of the machine's CPU time that went to other work (other
    /// processes, steal) while this run was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_share: Option<f64>,
    /// Why the run's values were not used (the machine was not quiet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discarded: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    pub schema_version: u32,
    pub kind: &'static str,
    pub mode: &'static str,
    pub a: String,
    pub b: String,
    pub command: Vec<String>,
    pub started_at: String,
    pub threshold: f64,
    pub alpha: f64,
    pub looks_planned: usize,
    pub looks_done: usize,
    pub alpha_per_look: f64,
    /// `decided`, `repetitions`, `budget`, `interrupted` or `reports` (dirs).
    pub stopped_by: String,
    pub budget_s: f64,
    pub elapsed_s: f64,
    pub outcome: Outcome,
    pub exit_code: u8,
    pub summary: String,
    pub metrics: Vec<MetricJudgement>,
    /// Engram's one-run ±threshold rule on the first measured A and B.
    pub one_run_rule: Option<OneRunRule>,
    pub runs: Vec<RunRecord>,
    pub warnings: Vec<String>,
    pub interrupted: bool,
}

/// Repetitions a side at which the gate looks: `min`, then ×1.5 (even, as
/// each ABBA block adds two a side) up to `max`. Few, spread-out looks keep
/// the Bonferroni share of α per look large enough to decide early.
pub fn look_points(min: usize, max: usize) -> Vec<usize> {
    let mut points = vec![min];
    let mut n = min;
    while n < max {
        n = (n * 3).div_ceil(2).next_multiple_of(2).min(max);
        points.push(n);
    }
    points
}

fn read_values(
    metrics: &[MetricSpec],
    v: &serde_json::Value,
    report: &std::path::Path,
) -> anyhow::Result<Vec<f64>> {
    metrics
        .iter()
        .map(|m| {
            m.read(v).filter(|x| x.is_finite()).ok_or_else(|| {
                usage(format!(
                    "--metric {}: {} has no such figure",
                    m.name,
                    report.display()
                ))
            })
        })
        .collect()
}

/// Run the gate and write its outputs.
pub fn run(o: &GateOptions, interrupted: Arc<AtomicBool>) -> anyhow::Result<GateReport> {
    if o.metrics.is_empty() {
        return Err(usage("--metric: at least one metric is needed"));
    }
    if !(o.threshold > 0.0 && o.threshold < 10.0) {
        return Err(usage(format!(
            "--threshold {}%: must be above 0 and below 1000%",
            o.threshold * 100.0
        )));
    }
    if !(o.alpha > 0.0 && o.alpha < 0.5) {
        return Err(usage(format!("--alpha {}: must be in (0, 0.5)", o.alpha)));
    }
    let min = o.min_repetitions.max(2).next_multiple_of(2);
    let max = o.repetitions.max(min).next_multiple_of(2);
    if o.repetitions < 2 {
        return Err(usage("--repetitions: at least 2 a side"));
    }
    let out = crate::output::prepare_dir("--out", &o.out)?;
    let verdicts = crate::metrics::verdicts::Verdicts::default();
    let exporter = verdicts.exporter(o.metrics_addr, o.quiet)?;
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let t0 = Instant::now();
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let m = o.metrics.len();
    let (mut va, mut vb): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (vec![vec![]; m], vec![vec![]; m]);
    let names = |vals: &[f64]| -> Vec<(String, f64)> {
        o.metrics
            .iter()
            .zip(vals)
            .map(|(s, &v)| (s.name.clone(), v))
            .collect()
    };
    let mut judged: Option<Vec<MetricJudgement>> = None;
    let mut looks_done = 0;
    let looks_planned;
    let stopped_by;
    let mode;
    match &o.source {
        Source::Dirs { baseline, current } => {
            mode = "reports";
            looks_planned = 1;
            for (flag, dir, side, store) in [
                ("--baseline", baseline, "A", &mut va),
                ("--current", current, "B", &mut vb),
            ] {
                for (i, (path, v)) in runner::reports_in(flag, dir)?.into_iter().enumerate() {
                    let vals = read_values(&o.metrics, &v, &path)?;
                    for (k, x) in vals.iter().enumerate() {
                        store[k].push(*x);
                    }
                    runs.push(RunRecord {
                        side: side.into(),
                        index: i + 1,
                        order: 0,
                        report: path.display().to_string(),
                        values: names(&vals),
                        wall_s: 0.0,
                        warmup: false,
                        other_share: None,
                        discarded: None,
                    });
                }
            }
            if va[0].len() < 2 || vb[0].len() < 2 {
                return Err(usage(format!(
                    "--baseline/--current: at least 2 reports a side are needed for a CI ({} and {} found)",
                    va[0].len(),
                    vb[0].len()
                )));
            }
            stopped_by = "reports".to_string();
        }
        Source::Interleaved { a, b } => {
            mode = a.mode();
            looks_planned = look_points(min, max).len();
            let looks = look_points(min, max);
            let runs_dir = out.join("runs");
            let say = |s: String| {
                if !o.quiet {
                    eprintln!("hwprof gate: {s}");
                }
            };
            // Warm-up: whole runs of each side, discarded (commands; a server
            // run discards its own warm-up load).
            for w in 0..o.warmup_runs {
                for (side, p) in [("A", a), ("B", b)] {
                    if interrupted.load(Ordering::Relaxed) {
                        break;
                    }
                    let t = Instant::now();
                    let dir = runs_dir.join(format!("warmup-{side}-{:02}", w + 1));
                    let r = p.produce(&dir, side, 0)?;
                    runs.push(RunRecord {
                        side: side.into(),
                        index: w + 1,
                        order: 0,
                        report: r.report.display().to_string(),
                        values: vec![],
                        wall_s: t.elapsed().as_secs_f64(),
                        warmup: true,
                        other_share: r.interference.map(|i| i.share()),
                        discarded: None,
                    });
                }
            }
            let mut order = 0;
            let mut block_s: f64 = 0.0;
            let mut stop = "repetitions".to_string();
            let mut discarded = 0usize;
            let mut last_look = 0usize;
            'blocks: while va[0].len().min(vb[0].len()) < max {
                if interrupted.load(Ordering::Relaxed) {
                    stop = "interrupted".into();
                    break;
                }
                let elapsed = t0.elapsed().as_secs_f64();
                if va[0].len() >= 2 && elapsed + block_s > o.budget {
                    stop = "budget".into();
                    break;
                }
                let tb = Instant::now();
                for side in ["A", "B", "B", "A"] {
                    if interrupted.load(Ordering::Relaxed) {
                        stop = "interrupted".into();
                        break 'blocks;
                    }
                    let (p, store) = if side == "A" {
                        (a, &mut va)
                    } else {
                        (b, &mut vb)
                    };
                    let index = store[0].len() + 1;
                    order += 1;
                    let t = Instant::now();
                    let dir = runs_dir.join(format!("{order:03}-{side}-{index:02}"));
                    let r = p.produce(&dir, side, index)?;
                    let vals = read_values(&o.metrics, &r.json, &r.report)?;
                    warnings.extend(r.warnings);
                    let share = r.interference.map(|i| i.share());
                    // A run bent by other work on the machine is not a sample
                    // of either side: it is recorded, not used, and run again.
                    let discard = share.filter(|&sh| sh > BENT_RUN_SHARE).map(|sh| {
                        format!(
                            "machine not quiet: {:.0}% of the CPUs' time went to other work while it ran (limit {:.0}%)",
                            sh * 100.0,
                            BENT_RUN_SHARE * 100.0
                        )
                    });
                    say(match &discard {
                        Some(why) => format!("{side} #{index}: discarded, {why}"),
                        None => format!(
                            "{side} #{index}: {}",
                            vals.iter()
                                .zip(&o.metrics)
                                .map(|(v, s)| format!("{} {v:.4}", s.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                    let bent = discard.is_some();
                    runs.push(RunRecord {
                        side: side.into(),
                        index,
                        order,
                        report: r.report.display().to_string(),
                        values: names(&vals),
                        wall_s: t.elapsed().as_secs_f64(),
                        warmup: false,
                        other_share: share,
                        discarded: discard,
                    });
                    if bent {
                        discarded += 1;
                        if discarded > max {
                            stop = "not-quiet".into();
                            break 'blocks;
                        }
                        continue;
                    }
                    for (k, x) in vals.iter().enumerate() {
                        store[k].push(*x);
                    }
                }
                block_s = tb.elapsed().as_secs_f64();
                let n = va[0].len().min(vb[0].len());
                // Each planned look once, when both sides have reached it.
                if looks.contains(&n) && n > last_look {
                    last_look = n;
                    looks_done += 1;
                    let rule = Rule {
                        threshold: o.threshold,
                        alpha: o.alpha,
                        alpha_look: o.alpha / looks_planned as f64,
                    };
                    let js = judge::judge(&o.metrics, &va, &vb, rule);
                    let verdict = judge::overall(&js);
                    say(format!(
                        "look {looks_done}/{looks_planned} at {n} a side: {}",
                        verdict.as_str()
                    ));
                    verdicts.set("gate", verdict_samples(&js, &o.names));
                    judged = Some(js);
                    if verdict != Outcome::Inconclusive {
                        stop = "decided".into();
                        break;
                    }
                }
            }
            if discarded > 0 {
                warnings.push(format!(
                    "{discarded} run(s) discarded and run again: the machine was not quiet while they ran \
                     (over {:.0}% of the CPUs' time went to other processes or to the hypervisor; see runs[].discarded){}",
                    BENT_RUN_SHARE * 100.0,
                    if stop == "not-quiet" {
                        "; the gate stopped after more discards than planned runs: quiet the machine and run it again"
                    } else {
                        ""
                    }
                ));
            }
            stopped_by = stop;
        }
    }
    let alpha_look = o.alpha / looks_planned as f64;
    // A gate cut short (budget, interrupt) before a planned look is judged on
    // what it has, at the same per-look α.
    let n = va[0].len().min(vb[0].len());
    let js = match judged {
        Some(js) if js[0].n_a == va[0].len() && js[0].n_b == vb[0].len() => js,
        _ if n >= 2 => {
            looks_done += 1;
            judge::judge(
                &o.metrics,
                &va,
                &vb,
                Rule {
                    threshold: o.threshold,
                    alpha: o.alpha,
                    alpha_look,
                },
            )
        }
        _ => vec![],
    };
    let outcome = if js.is_empty() {
        Outcome::Inconclusive
    } else {
        judge::overall(&js)
    };
    // With few runs a rank test cannot reach the α it is held to: say so,
    // rather than let "inconclusive" look like a property of the change.
    if n >= 1 {
        let smallest_p = crate::stats::rank::smallest_two_sided_p(va[0].len(), vb[0].len());
        if smallest_p * o.metrics.len() as f64 >= alpha_look {
            warnings.push(format!(
                "with {} and {} runs the smallest possible p-value is {smallest_p:.3}: no metric can be \
                 significant at {alpha_look:.4} (after Holm over {} metric(s)); give at least {} runs a side",
                va[0].len(),
                vb[0].len(),
                o.metrics.len(),
                (2..=100)
                    .find(|&k| crate::stats::rank::smallest_two_sided_p(k, k) * (o.metrics.len() as f64) < alpha_look)
                    .unwrap_or(100)
            ));
        }
    }
    let one_run_rule = (!va[0].is_empty() && !vb[0].is_empty()).then(|| {
        let first = |v: &[Vec<f64>]| v.iter().map(|s| s[0]).collect::<Vec<_>>();
        judge::one_run_rule(&o.metrics, &first(&va), &first(&vb), 0.05)
    });
    let summary = output::summary_line(outcome, &js, &stopped_by, &o.names, n);
    let report = GateReport {
        schema_version: 1,
        kind: "gate",
        mode,
        a: o.names.0.clone(),
        b: o.names.1.clone(),
        command: o.command.clone(),
        started_at,
        threshold: o.threshold,
        alpha: o.alpha,
        looks_planned,
        looks_done,
        alpha_per_look: alpha_look,
        interrupted: stopped_by == "interrupted",
        stopped_by,
        budget_s: o.budget,
        elapsed_s: t0.elapsed().as_secs_f64(),
        outcome,
        exit_code: outcome.exit_code(),
        summary,
        metrics: js,
        one_run_rule,
        runs,
        warnings,
    };
    output::write_all(&report, &out)?;
    if let Some(e) = &exporter {
        verdicts.set("gate", verdict_samples(&report.metrics, &o.names));
        e.hold_for_one_scrape(std::time::Duration::from_secs(60), &interrupted);
    }
    if o.json {
        println!("{}", crate::report::json::to_string(&report));
    } else {
        print!("{}", output::markdown(&report));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use rand_distr::{Distribution, LogNormal};
    use runner::Produced;
    use std::sync::Mutex;

    /// Runs drawn from log-normal noise around a level: p50 and p99 each with
    /// `noise` (independent), throughput nearly constant; B is `slower` × A.
    #[derive(Debug)]
    struct Synthetic {
        rng: Mutex<StdRng>,
        noise: f64,
        slower: f64,
        /// Every k-th run happens on a busy machine: 3x slower, and the
        /// machine accounting says half its CPU time went elsewhere.
        bent_every: Option<usize>,
        calls: Mutex<usize>,
    }

    impl Produce for Synthetic {
        fn mode(&self) -> &'static str {
            "synthetic"
        }
        fn produce(&self, dir: &std::path::Path, _: &str, _: usize) -> anyhow::Result<Produced> {
            let mut rng = self.rng.lock().unwrap();
            let n = LogNormal::new(0.0, self.noise).unwrap();
            let t = LogNormal::new(0.0, 0.002).unwrap();
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            let bent = self.bent_every.is_some_and(|k| *calls % k == 0);
            let slower = self.slower * if bent { 3.0 } else { 1.0 };
            Ok(Produced {
                report: dir.join("synthetic.json"),
                json: serde_json::json!({
                    "p50_latency_ms": 1.0 * slower * n.sample(&mut *rng),
                    "p99_latency_ms": 3.0 * slower * n.sample(&mut *rng),
                    "overall_throughput": 700.0 * t.sample(&mut *rng),
                }),
                warnings: vec![],
                interference: Some(crate::measure::cpu_time::Interference {
                    available_ns: 1_000_000_000,
                    other_ns: if bent { 500_000_000 } else { 10_000_000 },
                    steal_ns: 0,
                }),
            })
        }
    }

    /// Outcome counts of `gates` whole gates (default settings: 6 to 20 runs a
    /// side, α 0.05, threshold 5%, p50/p99/throughput) on synthetic runs.
    fn simulate(gates: usize, noise: f64, slower: f64, seed: u64) -> [usize; 4] {
        let mut counts = [0usize; 4];
        for g in 0..gates {
            counts[gate(noise, slower, seed * 1_000_003 + g as u64 * 2, None).outcome as usize] +=
                1;
        }
        counts
    }

    /// One whole gate on synthetic runs; B's every `bent_every`-th run is
    /// bent by a busy machine.
    fn gate(noise: f64, slower: f64, seed: u64, bent_every: Option<usize>) -> GateReport {
        let dir = tempfile::tempdir().unwrap();
        {
            let side = |s: u64| -> Box<dyn Produce> {
                Box::new(Synthetic {
                    rng: Mutex::new(StdRng::seed_from_u64(seed + s)),
                    noise,
                    slower: if s == 1 { slower } else { 1.0 },
                    bent_every: if s == 1 { bent_every } else { None },
                    calls: Mutex::new(0),
                })
            };
            let o = GateOptions {
                source: Source::Interleaved {
                    a: side(0),
                    b: side(1),
                },
                metrics: metric::DEFAULT_METRICS
                    .iter()
                    .map(|m| MetricSpec::parse(m).unwrap())
                    .collect(),
                repetitions: 20,
                min_repetitions: 6,
                budget: 300.0,
                threshold: 0.05,
                alpha: 0.05,
                warmup_runs: 0,
                out: dir.path().join("out"),
                json: true,
                quiet: true,
                names: ("A".into(), "B".into()),
                command: vec![],
                metrics_addr: None,
            };
            run(&o, Arc::new(AtomicBool::new(false))).unwrap()
        }
    }

    /// Runs made while the machine was busy are not samples: an A/A gate whose
    /// B side has every third run bent 3x by other work is not a regression;
    /// those runs are recorded as discarded, run again, and the gate passes.
    /// Judged with the bent runs, the same values do not pass.
    #[test]
    fn runs_on_a_busy_machine_are_discarded_not_judged() {
        let r = gate(0.02, 1.0, 11, Some(3));
        let discarded: Vec<&RunRecord> = r.runs.iter().filter(|x| x.discarded.is_some()).collect();
        assert!(!discarded.is_empty());
        assert!(discarded
            .iter()
            .all(|x| x.side == "B" && x.other_share == Some(0.5)));
        assert_eq!(r.outcome, Outcome::Pass, "{:?}", r.summary);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("discarded and run again")),
            "{:?}",
            r.warnings
        );
        let used = |side: &str| {
            r.runs
                .iter()
                .filter(|x| x.side == side && !x.warmup && x.discarded.is_none())
                .count()
        };
        assert!(
            used("A") >= 6 && used("B") >= 6,
            "{} / {}",
            used("A"),
            used("B")
        );
        // The same runs, bent ones included, do not pass: they read as a
        // slowdown the CI cannot place.
        let all = |side: &str| -> Vec<Vec<f64>> {
            let runs: Vec<&RunRecord> = r
                .runs
                .iter()
                .filter(|x| x.side == side && !x.warmup)
                .collect();
            (0..3)
                .map(|k| runs.iter().map(|x| x.values[k].1).collect())
                .collect()
        };
        let specs: Vec<MetricSpec> = metric::DEFAULT_METRICS
            .iter()
            .map(|m| MetricSpec::parse(m).unwrap())
            .collect();
        let js = judge::judge(
            &specs,
            &all("A"),
            &all("B"),
            Rule {
                threshold: 0.05,
                alpha: 0.05,
                alpha_look: 0.05,
            },
        );
        assert_ne!(judge::overall(&js), Outcome::Pass);
    }

    /// The gate's error rates where its assumptions hold (independent runs with
    /// 2% noise, where most gates decide at the first look — cheap enough for
    /// a debug build): no change is rarely a regression, a 5% change is found.
    /// docs/benchmarks.md has the larger tables (measure_error_rates).
    #[test]
    fn error_rates_on_synthetic_runs() {
        let [pass, improvement, inconclusive, regression] = simulate(100, 0.02, 1.0, 1);
        assert!(regression <= 3, "false positives {regression}/100");
        assert!(
            pass >= 90,
            "passes {pass}/100 ({improvement} improvement, {inconclusive} inconclusive)"
        );
        let [.., regression] = simulate(20, 0.02, 1.05, 2);
        assert!(regression >= 19, "detected {regression}/20");
    }

    /// `cargo test --release -p hwprof --lib gate::tests::measure_error_rates -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn measure_error_rates() {
        for noise in [0.02, 0.05, 0.10] {
            for slower in [1.0, 1.05, 1.10] {
                let [p, i, inc, r] = simulate(400, noise, slower, 7);
                println!(
                    "noise {:.0}%, planted {:+.0}%: regression {r}/400, pass {p}, improvement {i}, inconclusive {inc}",
                    noise * 100.0,
                    (slower - 1.0) * 100.0
                );
            }
        }
    }

    #[test]
    fn looks_are_few_and_even() {
        assert_eq!(look_points(6, 20), vec![6, 10, 16, 20]);
        assert_eq!(look_points(6, 6), vec![6]);
        assert_eq!(look_points(2, 8), vec![2, 4, 6, 8]);
        assert_eq!(look_points(6, 1000).len(), 14);
    }
}
