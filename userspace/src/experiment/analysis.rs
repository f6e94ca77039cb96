//! From trials to metrics: per-variant summaries with their source, and the
//! headline A/B ratio with its verdict.

use std::collections::BTreeMap;

use hwprof_workloads::{CompareOn, Experiment, ThreadShape, Variant};

use super::execute::Executed;
use super::plan::RunPlan;
use super::runner::TrialResult;
use crate::capabilities::Capabilities;
use crate::events::Selection;
use crate::machine::MachineProfile;
use crate::measure::timer::TimerKind;
use crate::measure::Source;
use crate::placement::Group;
use crate::report::schema::Warning;
pub use crate::report::schema::{ComparisonResult, GroupResult, Metric, VariantResult};
use crate::report::{ExperimentInfo, Measurement, Report};
use crate::stats::verdict::{compare, Compared};
use crate::stats::Summary;

impl Metric {
    fn measured(unit: &str, source: Source, values: &[f64]) -> Metric {
        Metric {
            unit: unit.into(),
            source,
            method: None,
            available: true,
            reason: None,
            summary: Summary::of(values),
            running_fraction: None,
        }
    }

    fn unavailable(unit: &str, source: Source, reason: String) -> Metric {
        Metric {
            unit: unit.into(),
            source,
            method: None,
            available: false,
            reason: Some(reason),
            summary: None,
            running_fraction: None,
        }
    }

    fn with_method(mut self, m: impl Into<String>) -> Metric {
        self.method = Some(m.into());
        self
    }
}

fn pmu_reason(caps: &Capabilities) -> String {
    caps.lost
        .iter()
        .find(|l| l.capability == crate::capabilities::Capability::HardwareCounters)
        .map(|l| format!("hardware counters unavailable: {}", l.reason))
        .unwrap_or_else(|| "the event could not be opened on this CPU".into())
}

/// Build the metrics of one variant from its measured trials.
fn variant_metrics(
    trials: &[&TrialResult],
    caps: &Capabilities,
    tsc_hz: Option<f64>,
    op: &str,
) -> BTreeMap<String, Metric> {
    let mut m = BTreeMap::new();
    let per_op = format!("/{op}");
    let ops: Vec<f64> = trials.iter().map(|t| t.ops as f64).collect();
    let threads = trials.first().map_or(1, |t| t.workers.len()) as f64;

    let tput: Vec<f64> = trials.iter().map(|t| t.ops_per_sec).collect();
    m.insert(
        "ops_per_sec".into(),
        Metric::measured(&format!("{op}s/s"), Source::Timer, &tput)
            .with_method("sum over threads of ops / thread's own window"),
    );
    m.insert(
        "ns_per_op".into(),
        Metric::measured(
            &format!("ns{per_op}"),
            Source::Timer,
            &tput.iter().map(|t| threads * 1e9 / t).collect::<Vec<_>>(),
        )
        .with_method("wall time per operation per thread"),
    );

    // Per-op counter metric from the sum over workers, if every trial has it.
    let counter_per_op = |name: &str| -> Option<(Vec<f64>, f64)> {
        let mut v = Vec::new();
        let mut running = 1.0f64;
        for (t, &o) in trials.iter().zip(&ops) {
            let (sum, r) = t.counter_sum(name)?;
            running = running.min(r);
            v.push(if o > 0.0 { sum / o } else { f64::NAN });
        }
        Some((v, running))
    };
    let pmu_metric = |name: &str, unit: &str| -> Metric {
        match counter_per_op(name) {
            Some((v, running)) => {
                let mut metric = Metric::measured(unit, Source::Pmu, &v);
                metric.running_fraction = Some(running);
                metric
            }
            None => Metric::unavailable(unit, Source::Pmu, pmu_reason(caps)),
        }
    };

    // cycles per op: hardware counter, else software task-clock × TSC rate, else
    // wall time × TSC rate (the fallback chain, each step labelled).
    let cycles = if caps.pmu_hardware {
        pmu_metric("cycles", &format!("cycles{per_op}"))
    } else if let (Some((v, _)), Some(hz)) = (counter_per_op("task-clock"), tsc_hz) {
        Metric::measured(
            &format!("cycles{per_op}"),
            Source::Software,
            &v.iter().map(|ns| ns * hz / 1e9).collect::<Vec<_>>(),
        )
        .with_method(format!(
            "estimate: task-clock ns x TSC rate {:.2} GHz (no cycle counter; turbo and throttling not seen)",
            hz / 1e9
        ))
    } else if let Some(hz) = tsc_hz {
        Metric::measured(
            &format!("cycles{per_op}"),
            Source::Timer,
            &tput.iter().map(|t| threads * hz / t).collect::<Vec<_>>(),
        )
        .with_method("estimate: wall time x TSC rate (no counters at all)")
    } else {
        Metric::unavailable(
            &format!("cycles{per_op}"),
            Source::Pmu,
            format!("{}; no invariant TSC to estimate from", pmu_reason(caps)),
        )
    };
    m.insert("cycles_per_op".into(), cycles);
    // Throughput per thread, and fairness: the least / the most productive worker.
    m.insert(
        "ops_per_sec_per_thread".into(),
        Metric::measured(
            &format!("{op}s/s"),
            Source::Timer,
            &tput.iter().map(|t| t / threads).collect::<Vec<_>>(),
        ),
    );
    if threads > 1.0 {
        let fairness: Vec<f64> = trials
            .iter()
            .map(|t| {
                let rates: Vec<f64> = t
                    .workers
                    .iter()
                    .map(|w| w.ops as f64 / w.elapsed_ns.max(1.0))
                    .collect();
                let max = rates.iter().copied().fold(0.0, f64::max);
                if max > 0.0 {
                    rates.iter().copied().fold(f64::INFINITY, f64::min) / max
                } else {
                    0.0
                }
            })
            .collect();
        m.insert(
            "fairness_min_max".into(),
            Metric::measured("min/max worker share", Source::Timer, &fairness).with_method(
                "slowest worker's op rate / fastest worker's, per repetition (1 = fair)",
            ),
        );
    }
    // Per-operation latency percentiles, for experiments that time each operation.
    let lat: Option<Vec<&crate::experiment::runner::LatencySummary>> =
        trials.iter().map(|t| t.latency.as_ref()).collect();
    if let Some(lat) = lat.filter(|l| !l.is_empty()) {
        for (key, pick) in [
            (
                "latency_p50_ns",
                (|l: &crate::experiment::runner::LatencySummary| l.p50_ns) as fn(&_) -> f64,
            ),
            ("latency_p99_ns", |l| l.p99_ns),
            ("latency_p999_ns", |l| l.p999_ns),
        ] {
            m.insert(
                key.into(),
                Metric::measured(&format!("ns/{op}"), Source::Timer, &lat.iter().map(|l| pick(l)).collect::<Vec<_>>())
                    .with_method("per-operation timer brackets, HdrHistogram over all workers per repetition (includes one timer read)"),
            );
        }
    }
    for (key, event) in [
        ("instructions_per_op", "instructions"),
        ("cache_misses_per_op", "cache-misses"),
        ("l1d_load_misses_per_op", "L1-dcache-load-misses"),
        ("llc_load_misses_per_op", "LLC-load-misses"),
    ] {
        m.insert(key.into(), pmu_metric(event, &format!("{event}{per_op}")));
    }

    match counter_per_op("task-clock") {
        Some((v, _)) => {
            m.insert(
                "cpu_ns_per_op".into(),
                Metric::measured(&format!("ns CPU{per_op}"), Source::Software, &v),
            );
        }
        None => {
            m.insert(
                "cpu_ns_per_op".into(),
                Metric::unavailable(
                    &format!("ns CPU{per_op}"),
                    Source::Software,
                    "software counters unavailable".into(),
                ),
            );
        }
    }
    for (key, event) in [
        ("context_switches", "context-switches"),
        ("cpu_migrations", "cpu-migrations"),
    ] {
        let v: Option<Vec<f64>> = trials
            .iter()
            .map(|t| t.counter_sum(event).map(|s| s.0))
            .collect();
        m.insert(
            key.into(),
            match v {
                Some(v) => Metric::measured("per trial", Source::Software, &v),
                None => Metric::unavailable(
                    "per trial",
                    Source::Software,
                    "software counters unavailable".into(),
                ),
            },
        );
    }
    m
}

pub use crate::measure::cpu_time::NOT_QUIET_SHARE;

/// Stage 3, analyse: the executed trials into the report — per-group
/// statistics and verdicts, scaling fits, the pair matrix and the experiment's
/// own findings. Writes nothing; plots are drawn at the edge (report::plots).
pub fn analyse(
    plan: &RunPlan,
    machine: &MachineProfile,
    binding: String,
    executed: Executed,
    command: Vec<String>,
) -> Report {
    let exp = plan.experiment;
    let tsc_hz = (machine.timer.kind == TimerKind::Tsc).then_some(machine.timer.ticks_per_second);
    let mut warnings = Vec::new();
    let groups: Vec<GroupResult> = executed
        .groups
        .into_iter()
        .map(|g| {
            let mut r = analyse_group(
                exp,
                &plan.variants,
                &g.group,
                g.trials,
                &machine.capabilities,
                tsc_hz,
                &plan.selection,
            );
            r.headline_rounds = g.headline_rounds;
            if r.off_cpu_samples > 0 {
                warnings.push(Warning::PinningDidNotHold {
                    group: r.label.clone(),
                    times: r.off_cpu_samples,
                });
            }
            if let Some(i) = r.interference.filter(|i| i.share() > NOT_QUIET_SHARE) {
                warnings.push(Warning::NotQuiet {
                    group: r.label.clone(),
                    share: i.share(),
                    steal_share: i.steal_ns as f64 / i.available_ns.max(1) as f64,
                });
            }
            r
        })
        .collect();
    warnings.extend(executed.warnings);
    let scaling = if exp.sweeps_threads() {
        super::scaling::analyse(&groups)
    } else {
        vec![]
    };
    let pair_matrix = if exp.thread_shape() == ThreadShape::AllPairs {
        super::c2c_matrix::analyse(&groups)
    } else {
        None
    };
    if let Some(m) = &pair_matrix {
        warnings.extend(m.warnings.iter().cloned().map(Warning::Experiment));
    }
    let found = exp.interpret(
        &plan.facts,
        &super::findings::outcomes(&groups, &machine.topology),
    );
    warnings.extend(found.warnings.iter().cloned().map(Warning::Experiment));
    let cmp = exp.comparison();
    let counters = plan.counters.clone();
    Report {
        schema_version: crate::report::SCHEMA_VERSION,
        experiment: ExperimentInfo {
            name: exp.name().into(),
            summary: exp.summary().into(),
            operation: exp.op_name().into(),
            variants: plan
                .variants
                .iter()
                .map(|v| (v.name.to_string(), v.description.to_string()))
                .collect(),
            treatment: cmp.treatment.into(),
            baseline: cmp.baseline.into(),
            effect: cmp.effect.into(),
            notes: exp.notes(),
        },
        command,
        started_at: executed.started_at,
        finished_at: executed.finished_at,
        interrupted: executed.interrupted,
        settings: plan.settings.clone(),
        measurement: Measurement {
            fallback: counters.describe(),
            multiplexed: crate::events::schedule::multiplexed(&counters.groups()),
            counter_groups: counters
                .groups()
                .iter()
                .map(|g| g.iter().map(|e| e.label.clone()).collect())
                .collect(),
            events: plan.selection.clone(),
            counters,
            lost: machine.capabilities.lost.iter().map(|l| l.line()).collect(),
            binding,
            memory: plan.memory.clone(),
        },
        placement: plan.placement.clone(),
        groups,
        probes: executed.probes,
        scaling,
        pair_matrix,
        findings: (!found.is_empty()).then_some(found),
        plots: vec![],
        warnings,
        machine: machine.clone(),
    }
}

/// Analyse the trials of one placement group.
pub fn analyse_group(
    exp: &dyn Experiment,
    variants: &[Variant],
    group: &Group,
    trials: Vec<TrialResult>,
    caps: &Capabilities,
    tsc_hz: Option<f64>,
    selection: &Selection,
) -> GroupResult {
    let measured = |name: &str| -> Vec<&TrialResult> {
        trials
            .iter()
            .filter(|t| !t.warmup && t.variant == name)
            .collect()
    };
    let variants: Vec<VariantResult> = variants
        .iter()
        .map(|v| VariantResult {
            name: v.name.to_string(),
            description: v.description.to_string(),
            metrics: {
                let t = measured(&v.name);
                let mut m = variant_metrics(&t, caps, tsc_hz, exp.op_name());
                m.extend(pmu_metrics(&t, selection, exp.op_name()));
                m
            },
        })
        .collect();

    let values = |name: &str, on: CompareOn| -> Vec<f64> {
        measured(name)
            .iter()
            .filter_map(|t| t.compared_value(on))
            .collect()
    };
    let comparisons: Vec<ComparisonResult> = exp
        .comparisons()
        .into_iter()
        .filter_map(|cmp| {
            let (treat, base) = (values(cmp.treatment, cmp.on), values(cmp.baseline, cmp.on));
            if treat.is_empty() || base.is_empty() {
                return None;
            }
            let Compared {
                ratio,
                ci,
                retained_ci,
                verdict,
            } = compare(&cmp, &treat, &base);
            let what = match cmp.on {
                CompareOn::Throughput => "throughput",
                CompareOn::LatencyP99 => "p99 latency",
            };
            Some(ComparisonResult {
                treatment: cmp.treatment.into(),
                baseline: cmp.baseline.into(),
                effect: cmp.effect.into(),
                retained: 1.0 / ratio,
                retained_ci95: retained_ci,
                target: cmp.target,
                definition: match cmp.on {
                    CompareOn::Throughput => format!(
                        "median {b} throughput / median {t} throughput (> 1: {t} is slower)",
                        b = cmp.baseline,
                        t = cmp.treatment
                    ),
                    CompareOn::LatencyP99 => format!(
                        "median {t} {what} / median {b} {what} (> 1: {t} is slower)",
                        b = cmp.baseline,
                        t = cmp.treatment
                    ),
                },
                source: Source::Timer,
                ratio,
                ci95: ci,
                verdict,
            })
        })
        .collect();
    let comparison = comparisons.first().cloned();
    let interference = trials
        .iter()
        .filter(|t| !t.warmup)
        .filter_map(|t| t.interference)
        .reduce(|mut a, b| {
            a.add(&b);
            a
        });
    GroupResult {
        label: group.label.clone(),
        pair_class: group.pair_class,
        cpus: group.cpus.clone(),
        policy: group.policy.clone(),
        variants,
        comparison,
        comparisons,
        off_cpu_samples: trials
            .iter()
            .flat_map(|t| &t.workers)
            .map(|w| w.off_cpu_samples)
            .sum(),
        interference,
        migrations_seen: trials
            .iter()
            .flat_map(|t| &t.workers)
            .map(|w| w.migrations_seen)
            .sum(),
        headline_rounds: None,
        trials,
    }
}

/// The experiment's abstract metrics (through the event maps) and `--events`.
fn pmu_metrics(
    trials: &[&TrialResult],
    selection: &Selection,
    op: &str,
) -> BTreeMap<String, Metric> {
    let mut out = BTreeMap::new();
    for plan in &selection.metrics {
        let metric = match &plan.resolved {
            Err(reason) => Metric::unavailable(&plan.unit, Source::Pmu, reason.clone()),
            Ok(r) => {
                let mut running = 1.0f64;
                let values: Result<Vec<f64>, String> = trials
                    .iter()
                    .map(|t| {
                        let mut counts = BTreeMap::new();
                        for label in r.events.keys() {
                            if let Some((sum, frac)) = t.counter_sum(label) {
                                counts.insert(label.clone(), sum);
                                running = running.min(frac);
                            }
                        }
                        crate::events::evaluate(r, &counts)
                    })
                    .collect();
                match values {
                    Ok(v) => {
                        let mut m =
                            Metric::measured(&plan.unit, Source::Pmu, &v).with_method(format!(
                                "{} on {}{}",
                                r.formula,
                                selection.map.as_deref().unwrap_or("?"),
                                r.note
                                    .as_deref()
                                    .map_or(String::new(), |n| format!(" ({n})"))
                            ));
                        m.running_fraction = Some(running);
                        m
                    }
                    Err(e) => Metric::unavailable(&plan.unit, Source::Pmu, e),
                }
            }
        };
        out.insert(plan.name.clone(), metric);
    }
    for e in &selection.user_events {
        let unit = format!("{}/{op}", e.label);
        let v: Option<Vec<(f64, f64)>> = trials
            .iter()
            .map(|t| {
                t.counter_sum(&e.label)
                    .map(|(s, f)| (s / t.ops.max(1) as f64, f))
            })
            .collect();
        let m = match v {
            Some(v) => {
                let mut m =
                    Metric::measured(&unit, e.source, &v.iter().map(|x| x.0).collect::<Vec<_>>());
                m.running_fraction = v.iter().map(|x| x.1).reduce(f64::min);
                m
            }
            None => Metric::unavailable(
                &unit,
                e.source,
                match (&selection.pmu_unavailable, e.source) {
                    (Some(why), Source::Pmu) => why.clone(),
                    _ => "not counted: the counter could not be opened on this machine".into(),
                },
            ),
        };
        out.insert(format!("event:{}", e.label), m);
    }
    out
}
