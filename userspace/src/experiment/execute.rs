//! Stage 2, execute: run a [`RunPlan`] on this host — every group, repetition
//! and variant interleaved, pinned, counted, optionally probed — and hand back
//! the raw trials. No statistics, no printing beyond the progress bar.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hwprof_workloads::Comparison;
use indicatif::ProgressBar;

use super::plan::RunPlan;
use super::{findings, runner, Host};
use crate::placement::Group;
use crate::probes::{CollectContext, ProbeOptions, ProbesReport, Session};
use crate::report::schema::{HeadlineRounds, RoundsStopped, TrialResult, Warning};
use crate::report::AdaptiveBudget;
use crate::stats::verdict::compare;

/// One placement group's measured trials (warm-ups included, windows cut short
/// by a signal left out).
pub struct GroupTrials {
    pub group: Group,
    pub trials: Vec<TrialResult>,
    pub headline_rounds: Option<HeadlineRounds>,
}

/// What executing a plan produced.
pub struct Executed {
    pub groups: Vec<GroupTrials>,
    pub probes: Option<ProbesReport>,
    pub warnings: Vec<Warning>,
    pub started_at: String,
    pub finished_at: String,
    pub interrupted: bool,
}

pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Stage 2. `profile_out` is where the profile probe may write its flame graph.
pub fn execute(
    plan: &RunPlan,
    host: &Host,
    profile_out: Option<&Path>,
    interrupted: &Arc<AtomicBool>,
    bar: &ProgressBar,
) -> anyhow::Result<Executed> {
    let exp = plan.experiment;
    let settings = &plan.settings;
    let mut warnings = Vec::new();
    let probe_session = if plan.probes.is_empty() {
        None
    } else {
        let opts = ProbeOptions {
            probes: plan.probes.clone(),
            uprobes: vec![],
            frequency: 99,
            cost: false,
        };
        match Session::start(&opts, &[]) {
            Ok(s) => Some(Arc::new(Mutex::new(s))),
            Err(e) => {
                warnings.push(Warning::ProbesUnavailable(e.to_string()));
                None
            }
        }
    };
    let timer = &host.profile.timer;
    let started_at = now();
    let probes_started = std::time::Instant::now();
    let ctx = runner::Context {
        timer,
        binder: host.binder.as_ref(),
        counters: &plan.counters,
        duration: Duration::from_secs_f64(settings.duration_s),
        interrupted,
        probes: probe_session.as_ref(),
        watchdog: runner::WATCHDOG,
    };
    let mut groups = Vec::new();
    'groups: for g in &plan.placement.groups {
        let mut trials = Vec::new();
        for rep in 0..settings.warmup + settings.repetitions {
            for v in &plan.variants {
                if interrupted.load(Ordering::Relaxed) {
                    groups.push(GroupTrials {
                        group: g.clone(),
                        trials,
                        headline_rounds: None,
                    });
                    break 'groups;
                }
                bar.set_message(format!("{} {}", g.label, v.name));
                let warm = rep < settings.warmup;
                let mem = findings::variant_memory(v, &plan.memory, &plan.nodes);
                let t = runner::run_trial(exp, v, &mem, &g.cpus, rep, warm, &ctx)?;
                // A window cut short by a signal is not a comparable repetition.
                if !t.cut_short {
                    trials.push(t);
                }
                bar.inc(1);
            }
        }
        let headline_rounds = match settings.adaptive {
            Some(budget) => headline_rounds(plan, g, budget, &ctx, &mut trials, bar)?,
            None => None,
        };
        groups.push(GroupTrials {
            group: g.clone(),
            trials,
            headline_rounds,
        });
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
    }
    exp.release();
    let probes = probe_session.map(|m| {
        let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
        s.collect(&CollectContext {
            topology: &host.profile.topology,
            pid: std::process::id(),
            duration_s: probes_started.elapsed().as_secs_f64(),
            profile_out,
        })
    });
    if let Some(hv) = &host.profile.virtualization {
        warnings.push(Warning::VirtualMachine(hv.clone()));
    }
    Ok(Executed {
        groups,
        probes,
        warnings,
        started_at,
        finished_at: now(),
        interrupted: interrupted.load(Ordering::Relaxed),
    })
}

/// Whether the headline comparison is conclusive on the trials so far (None:
/// it cannot be computed, e.g. a variant has no measured trial).
fn headline_conclusive(cmp: &Comparison, trials: &[TrialResult]) -> Option<bool> {
    let values = |name: &str| -> Vec<f64> {
        trials
            .iter()
            .filter(|t| !t.warmup && t.variant == name)
            .filter_map(|t| t.compared_value(cmp.on))
            .collect()
    };
    let (treat, base) = (values(cmp.treatment), values(cmp.baseline));
    if treat.is_empty() || base.is_empty() {
        return None;
    }
    Some(compare(cmp, &treat, &base).verdict.conclusive)
}

/// Extra repetitions of the headline's two variants for group `g`.
fn headline_rounds(
    plan: &RunPlan,
    g: &Group,
    budget: AdaptiveBudget,
    ctx: &runner::Context,
    trials: &mut Vec<TrialResult>,
    bar: &ProgressBar,
) -> anyhow::Result<Option<HeadlineRounds>> {
    let exp = plan.experiment;
    let Some(cmp) = exp.comparisons().into_iter().next() else {
        return Ok(None);
    };
    let find = |name: &str| plan.variants.iter().find(|v| v.name == name);
    let (Some(a), Some(b)) = (find(cmp.treatment), find(cmp.baseline)) else {
        return Ok(None);
    };
    let fixed = plan.settings.warmup + plan.settings.repetitions;
    let started = std::time::Instant::now();
    rounds_until_decided(
        &cmp,
        [a, b],
        budget,
        trials,
        || started.elapsed().as_secs_f64(),
        || ctx.interrupted.load(Ordering::Relaxed),
        |v, round| {
            bar.set_message(format!(
                "{} {} (headline round {})",
                g.label,
                v.name,
                round + 1
            ));
            let mem = findings::variant_memory(v, &plan.memory, &plan.nodes);
            let t = runner::run_trial(exp, v, &mem, &g.cpus, fixed + round, false, ctx)?;
            // A window cut short by a signal is not a comparable repetition.
            Ok((!t.cut_short).then_some(t))
        },
    )
}

/// Runs the two variants again, alternating which goes first (A B, B A, …),
/// until the comparison's verdict is conclusive, the budget's seconds are
/// spent, or its round limit is reached. The verdict is the analysis's own
/// (stats::verdict::compare), so "decided" here is decided in the report.
/// None when the comparison cannot be computed from `trials` at all.
fn rounds_until_decided<V>(
    cmp: &Comparison,
    pair: [V; 2],
    budget: AdaptiveBudget,
    trials: &mut Vec<TrialResult>,
    elapsed_s: impl Fn() -> f64,
    interrupted: impl Fn() -> bool,
    mut run: impl FnMut(&V, usize) -> anyhow::Result<Option<TrialResult>>,
) -> anyhow::Result<Option<HeadlineRounds>> {
    let Some(before) = headline_conclusive(cmp, trials) else {
        return Ok(None);
    };
    let mut rounds = 0;
    let stopped = 'rounds: loop {
        if headline_conclusive(cmp, trials) == Some(true) {
            break RoundsStopped::Decided;
        }
        if rounds >= budget.max_rounds {
            break RoundsStopped::MaxRounds;
        }
        if elapsed_s() >= budget.per_group_s {
            break RoundsStopped::BudgetSpent;
        }
        let [a, b] = &pair;
        let order = if rounds % 2 == 0 { [a, b] } else { [b, a] };
        for v in order {
            if interrupted() {
                break 'rounds RoundsStopped::Interrupted;
            }
            if let Some(t) = run(v, rounds)? {
                trials.push(t);
            }
        }
        rounds += 1;
    };
    Ok(Some(HeadlineRounds {
        rounds,
        seconds: elapsed_s(),
        conclusive_before: before,
        stopped,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(variant: &str, ops_per_sec: f64) -> TrialResult {
        TrialResult {
            variant: variant.into(),
            repetition: 0,
            warmup: false,
            ops: 1,
            ops_per_sec,
            workers: vec![],
            cut_short: false,
            latency: None,
            interference: None,
        }
    }

    const BUDGET: AdaptiveBudget = AdaptiveBudget {
        per_group_s: 10.0,
        max_rounds: 40,
    };

    /// A real 1.5x slowdown behind noisy first repetitions: inconclusive on
    /// three, decided after a few alternating rounds, and no further.
    #[test]
    fn rounds_run_until_the_headline_is_conclusive_and_then_stop() {
        let cmp = Comparison::slowdown("packed", "padded");
        let mut trials = vec![
            trial("packed", 100.0),
            trial("packed", 190.0),
            trial("packed", 60.0),
            trial("padded", 150.0),
            trial("padded", 80.0),
            trial("padded", 210.0),
        ];
        assert_eq!(headline_conclusive(&cmp, &trials), Some(false));
        let mut order = Vec::new();
        let mut k = 0;
        let r = rounds_until_decided(
            &cmp,
            ["packed", "padded"],
            BUDGET,
            &mut trials,
            || 0.0,
            || false,
            |v, _| {
                order.push(*v);
                k += 1;
                let wobble = 1.0 + 0.01 * (k % 3) as f64;
                Ok(Some(trial(
                    v,
                    if *v == "packed" { 100.0 } else { 150.0 } * wobble,
                )))
            },
        )
        .unwrap()
        .unwrap();
        assert!(!r.conclusive_before);
        assert_eq!(r.stopped, RoundsStopped::Decided);
        assert!(r.rounds >= 1 && r.rounds < BUDGET.max_rounds, "{r:?}");
        assert_eq!(headline_conclusive(&cmp, &trials), Some(true));
        assert_eq!(order.len(), 2 * r.rounds);
        // A B, then B A.
        if r.rounds >= 2 {
            assert_eq!(&order[..4], ["packed", "padded", "padded", "packed"]);
        }
    }

    /// Pure noise never decides: the rounds stop at the limit or the budget,
    /// and say which.
    #[test]
    fn undecidable_headlines_stop_at_the_limit_or_the_budget() {
        // Each round recomputes the bootstrap verdict: a small budget keeps
        // this quick under qemu-user too.
        const SMALL: AdaptiveBudget = AdaptiveBudget {
            per_group_s: 5.0,
            max_rounds: 8,
        };
        let cmp = Comparison::slowdown("a", "b");
        let noisy = |i: usize| 100.0 * (1.0 + 0.5 * ((i * 7919) % 11) as f64 / 11.0);
        let base: Vec<TrialResult> = (0..3)
            .flat_map(|i| [trial("a", noisy(i)), trial("b", noisy(i + 5))])
            .collect();
        let mut trials = base.clone();
        let mut i = 10;
        let r = rounds_until_decided(
            &cmp,
            ["a", "b"],
            SMALL,
            &mut trials,
            || 0.0,
            || false,
            |v, _| {
                i += 1;
                Ok(Some(trial(v, noisy(i))))
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.stopped, r.rounds), (RoundsStopped::MaxRounds, 8));
        let mut trials = base;
        let clock = std::cell::Cell::new(0.0);
        let r = rounds_until_decided(
            &cmp,
            ["a", "b"],
            SMALL,
            &mut trials,
            || clock.get(),
            || false,
            |v, _| {
                clock.set(clock.get() + 1.0);
                i += 1;
                Ok(Some(trial(v, noisy(i))))
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.stopped, r.rounds), (RoundsStopped::BudgetSpent, 3));
        // Nothing to compare: no rounds at all.
        let mut none = vec![trial("a", 1.0)];
        assert!(rounds_until_decided(
            &cmp,
            ["a", "b"],
            SMALL,
            &mut none,
            || 0.0,
            || false,
            |_, _| unreachable!()
        )
        .unwrap()
        .is_none());
    }
}
