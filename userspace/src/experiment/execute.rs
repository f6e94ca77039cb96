//! Stage 2, execute: run a [`RunPlan`] on this host — every group, repetition
//! and variant interleaved, pinned, counted, optionally probed — and hand back
//! the raw trials. No statistics, no printing beyond the progress bar.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;

use super::plan::RunPlan;
use super::{findings, runner, Host};
use crate::placement::Group;
use crate::probes::{CollectContext, ProbeOptions, ProbesReport, Session};
use crate::report::schema::{TrialResult, Warning};

/// One placement group's measured trials (warm-ups included, windows cut short
/// by a signal left out).
pub struct GroupTrials {
    pub group: Group,
    pub trials: Vec<TrialResult>,
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
        groups.push(GroupTrials {
            group: g.clone(),
            trials,
        });
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
