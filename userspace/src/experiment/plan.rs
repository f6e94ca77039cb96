//! Stage 1, plan: from the machine profile and the options to a [`RunPlan`] —
//! variants, placement groups, memory policy, counters and probes — with every
//! option checked before anything runs. Prints nothing.

use hwprof_workloads::{Experiment, MachineFacts, Variant};
use serde::Serialize;

use super::{findings, RunOptions};
use crate::error::usage;
use crate::events::{self, catalog::Catalog, spec, Selection};
use crate::machine::MachineProfile;
use crate::measure::{CounterPlan, Source};
use crate::placement::{self, MemoryPolicy, Plan, Policy, Request};
use crate::probes::ProbeKind;
use crate::report::{AdaptiveBudget, RunSettings};

/// Everything one experiment's run needs, decided before it starts.
pub struct RunPlan {
    pub experiment: &'static dyn Experiment,
    pub settings: RunSettings,
    pub facts: MachineFacts,
    pub variants: Vec<Variant>,
    pub placement: Plan,
    pub memory: MemoryPolicy,
    /// NUMA node os indexes of the machine.
    pub nodes: Vec<usize>,
    pub selection: Selection,
    pub counters: CounterPlan,
    pub probes: Vec<ProbeKind>,
    /// What the plan could not honour, for stderr (e.g. `--events` without a PMU).
    pub notes: Vec<String>,
}

/// Defaults: a full run, or `--quick` for CI and a first look.
fn settings(o: &RunOptions, quick: Option<(f64, usize)>) -> anyhow::Result<RunSettings> {
    let (d, r, w) = match (o.quick, quick) {
        (true, Some((d, r))) => (d, r, 1),
        (true, None) => (0.15, 7, 1),
        (false, _) => (0.5, 15, 2),
    };
    let duration = o.duration.unwrap_or(d);
    if !(duration.is_finite() && duration > 0.0) {
        return Err(usage(format!(
            "--duration must be a positive number of seconds, got {duration}"
        )));
    }
    if duration > 3600.0 {
        return Err(usage(
            "--duration is per repetition and variant; keep it under 3600 s",
        ));
    }
    let repetitions = o.repetitions.unwrap_or(r);
    if repetitions == 0 {
        return Err(usage("--repetitions must be at least 1"));
    }
    Ok(RunSettings {
        duration_s: duration,
        repetitions,
        warmup: o.warmup.unwrap_or(w),
        quick: o.quick,
        order: "interleaved (A B A B …) within each repetition".into(),
        // Filled in by `plan` once the variants and groups are known; a fixed
        // --repetitions means exactly that many.
        adaptive: None,
    })
}

/// The headline rounds may take half the fixed repetitions' window time (at
/// least 2 s, at most 2 min for the whole run), shared evenly by the groups.
pub fn adaptive_budget(settings: &RunSettings, variants: usize, groups: usize) -> AdaptiveBudget {
    let fixed = settings.duration_s * (settings.repetitions * variants * groups) as f64;
    let total = (0.5 * fixed).clamp(2.0, 120.0);
    AdaptiveBudget {
        per_group_s: total / groups.max(1) as f64,
        max_rounds: 4 * settings.repetitions.max(5),
    }
}

/// The experiment named by the options, or the list of names.
pub fn find(name: &str) -> anyhow::Result<&'static dyn Experiment> {
    hwprof_workloads::find(name).ok_or_else(|| {
        usage(format!(
            "unknown experiment {name:?}: available: {}",
            hwprof_workloads::registry()
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// Placement groups: the requested sweep, the experiment's default sweep (both
/// policies, scatter only where it differs), or one group.
fn placement_plan(
    exp: &dyn Experiment,
    machine: &MachineProfile,
    r: &Request,
) -> anyhow::Result<Plan> {
    let topo = &machine.topology;
    Ok(match &r.thread_sweep {
        Some(counts) => placement::plan_sweep(topo, exp.thread_shape(), r, counts)?,
        None if exp.sweeps_threads()
            && r.threads.is_none()
            && r.cpus.is_none()
            && r.pairs.is_none() =>
        {
            let n = topo.usable_cpus().len();
            let mut counts = placement::default_sweep(n);
            if r.oversubscribe {
                counts.push(2 * n);
            }
            match r.policy {
                Some(_) => placement::plan_sweep(topo, exp.thread_shape(), r, &counts)?,
                None => {
                    let with = |policy| Request {
                        policy: Some(policy),
                        ..r.clone()
                    };
                    let mut p = placement::plan_sweep(
                        topo,
                        exp.thread_shape(),
                        &with(Policy::Compact),
                        &counts,
                    )?;
                    let s = placement::plan_sweep(
                        topo,
                        exp.thread_shape(),
                        &with(Policy::Scatter),
                        &counts,
                    )?;
                    let sorted = |v: &[usize]| {
                        let mut v = v.to_vec();
                        v.sort_unstable();
                        v
                    };
                    for g in s.groups {
                        if !p.groups.iter().any(|c| sorted(&c.cpus) == sorted(&g.cpus)) {
                            p.groups.push(g);
                        }
                    }
                    p.policy = "sweep (compact, scatter)".into();
                    p
                }
            }
        }
        None => placement::plan(topo, exp.thread_shape(), r)?,
    })
}

/// Stage 1: everything decided and checked; nothing run, nothing printed.
pub fn plan(machine: &MachineProfile, o: &RunOptions) -> anyhow::Result<RunPlan> {
    let exp = find(&o.experiment)?;
    let settings = settings(o, exp.quick())?;
    let topo = &machine.topology;
    let facts = findings::machine_facts(topo);
    let variants = exp
        .variants(&facts)
        .map_err(|e| usage(format!("{}: {e}", exp.name())))?;
    let placement = placement_plan(exp, machine, &o.placement)?;
    let mut settings = settings;
    if o.repetitions.is_none() {
        settings.adaptive = Some(adaptive_budget(
            &settings,
            variants.len(),
            placement.groups.len(),
        ));
    }
    let nodes: Vec<usize> = topo.numa.iter().map(|n| n.os_index).collect();
    let memory = match &o.membind {
        Some(m) => MemoryPolicy::parse(m, &nodes).map_err(usage)?,
        None => MemoryPolicy::FirstTouch,
    };
    let catalog = Catalog::builtin();
    let host_map = events::host_map(&catalog, &machine.cpu).ok();
    let encoding = events::host_encoding(&machine.cpu);
    let sysfs = std::path::Path::new("/sys/bus/event_source/devices");
    let user_events = match &o.events {
        Some(list) => spec::split_list(list)
            .iter()
            .map(|e| spec::parse(e, host_map, encoding, Some(sysfs)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| usage(format!("--events: {e}")))?,
        None => vec![],
    };
    let probes = match &o.probes {
        Some(p) => ProbeKind::parse_list(p).map_err(|e| usage(format!("--probes: {e}")))?,
        None => vec![],
    };
    let caps = &machine.capabilities;
    let selection = events::select(&catalog, &machine.cpu, caps, exp.metrics(), user_events);
    let mut counters = CounterPlan::from_capabilities(caps);
    counters.extra = selection.events.clone();
    counters.group_limit = selection.group_limit;
    counters.fixed = selection.fixed.clone();
    let mut notes = Vec::new();
    if !caps.pmu_hardware {
        let hw: Vec<&str> = selection
            .user_events
            .iter()
            .filter(|e| e.source == Source::Pmu)
            .map(|e| e.label.as_str())
            .collect();
        if !hw.is_empty() {
            notes.push(format!(
                "--events {} not counted: hardware counters unavailable on this machine",
                hw.join(",")
            ));
        }
    }
    Ok(RunPlan {
        experiment: exp,
        settings,
        facts,
        variants,
        placement,
        memory,
        nodes,
        selection,
        counters,
        probes,
        notes,
    })
}

#[derive(Serialize)]
struct PlanJson<'a> {
    experiment: &'a str,
    topology: serde_json::Value,
    placement: &'a Plan,
    memory: &'a MemoryPolicy,
    variants: Vec<serde_json::Value>,
}

impl RunPlan {
    /// Trials the plan runs (warm-ups included).
    pub fn trials(&self) -> usize {
        self.placement.groups.len()
            * (self.settings.warmup + self.settings.repetitions)
            * self.variants.len()
    }

    /// `--plan-only --json`.
    pub fn to_json(&self, machine: &MachineProfile) -> serde_json::Value {
        let topo = &machine.topology;
        serde_json::to_value(PlanJson {
            experiment: self.experiment.name(),
            topology: serde_json::json!({ "source": topo.source, "backend": topo.backend }),
            placement: &self.placement,
            memory: &self.memory,
            variants: self
                .variants
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "name": v.name,
                        "memory": findings::variant_memory(v, &self.memory, &self.nodes),
                        "workers": v.workers,
                    })
                })
                .collect(),
        })
        .unwrap_or_default()
    }

    /// `--plan-only`: the placement, memory policy and variants in words.
    pub fn render(&self, machine: &MachineProfile) -> String {
        use std::fmt::Write as _;
        let topo = &machine.topology;
        let mut t = format!(
            "placement plan for {} on {} ({}):\n",
            self.experiment.name(),
            topo.source,
            topo.backend
        );
        t.push_str(&self.placement.render(topo));
        let _ = writeln!(t, "memory: {}", self.memory);
        let _ = writeln!(
            t,
            "variants ({}, each run on every group):",
            self.variants.len()
        );
        for v in &self.variants {
            let m = findings::variant_memory(v, &self.memory, &self.nodes);
            let w = v
                .workers
                .map_or(String::new(), |n| format!(", first {n} worker(s)"));
            let _ = writeln!(t, "  {:<28} memory {m}{w}", v.name);
        }
        t
    }
}
