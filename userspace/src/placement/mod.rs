//! Placement: which CPU each worker thread runs on, and where memory goes.
//!
//! The planner only reads the [`Topology`] model, so a plan for a lab machine's
//! XML export is computed exactly as on the host (`--plan-only`).

pub mod bind;
/// The CPU list syntax lives with the topology model (sysfs reads it too).
pub use crate::topology::cpulist;
pub mod pairs;
pub mod policy;

use std::fmt::Write as _;

use serde::Serialize;

pub use bind::MemoryPolicy;
pub use pairs::PairClass;
pub use policy::Policy;

use crate::error::usage;
use crate::topology::Topology;
use hwprof_workloads::ThreadShape;

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub threads: Option<usize>,
    /// Several thread counts: one placement group each (`--threads 1,2,4`).
    pub thread_sweep: Option<Vec<usize>>,
    /// Allow more threads than CPUs (workers share CPUs round-robin).
    pub oversubscribe: bool,
    pub pairs: Option<Vec<PairClass>>,
    pub cpus: Option<Vec<usize>>,
    pub policy: Option<Policy>,
}

/// One set of CPUs an experiment runs all its variants on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Group {
    /// `same-l3`, `compact x4`, `cpus 0,2`, …
    pub label: String,
    pub pair_class: Option<PairClass>,
    /// Worker i runs on `cpus[i]`.
    pub cpus: Vec<usize>,
    /// The policy that chose the CPUs (`compact`, `scatter`), for groups of a
    /// thread-count sweep; None for pairs, nodes and explicit lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Unavailable {
    pub label: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// `pair-classes`, `compact`, `scatter` or `explicit`.
    pub policy: String,
    pub groups: Vec<Group>,
    /// Pair classes this machine lacks, each with the reason.
    pub unavailable: Vec<Unavailable>,
}

fn check_cpus(topo: &Topology, cpus: &[usize]) -> anyhow::Result<()> {
    for &c in cpus {
        if topo.offline_cpus.contains(&c) {
            return Err(usage(format!("--cpus: CPU {c} is offline")));
        }
        if topo.disallowed_cpus.contains(&c) {
            return Err(usage(format!(
                "--cpus: CPU {c} is not allowed to this process (cgroup cpuset or affinity mask)"
            )));
        }
        if topo.pu(c).is_none() {
            return Err(usage(format!(
                "--cpus: CPU {c} does not exist on this machine (CPUs: {})",
                cpulist::format(&topo.usable_cpus())
            )));
        }
    }
    Ok(())
}

/// Plan placement for an experiment of `shape` on `topo`.
pub fn plan(topo: &Topology, shape: ThreadShape, req: &Request) -> anyhow::Result<Plan> {
    if let Some(cpus) = &req.cpus {
        check_cpus(topo, cpus)?;
    }
    if req.threads == Some(0) {
        return Err(usage("--threads must be at least 1"));
    }
    let usable = topo.usable_cpus();
    if usable.is_empty() {
        return Err(usage("the topology has no usable CPU"));
    }

    if shape == ThreadShape::AllPairs {
        return plan_all_pairs(topo, req, &usable);
    }
    if shape == ThreadShape::PerNode {
        return plan_per_node(topo, req, &usable);
    }
    let pair_mode = match shape {
        ThreadShape::Pair | ThreadShape::PairSweep => {
            req.threads.is_none() || req.threads == Some(2) || req.pairs.is_some()
        }
        ThreadShape::Threads { .. } | ThreadShape::AllPairs | ThreadShape::PerNode => false,
    };
    if req.pairs.is_some() && req.threads.is_some_and(|t| t != 2) {
        return Err(usage(
            "--pairs places exactly two threads; drop --threads or use --placement",
        ));
    }
    if req.pairs.is_some() && !matches!(shape, ThreadShape::Pair | ThreadShape::PairSweep) {
        return Err(usage("--pairs applies to two-party experiments only"));
    }

    if pair_mode && req.policy.is_none() {
        let sweep = shape == ThreadShape::PairSweep && req.threads.is_none();
        return plan_pairs(topo, req, &usable, sweep);
    }

    // Thread-count placement: explicit list, or a policy over the usable CPUs.
    let (policy_name, order) = match (&req.cpus, req.policy) {
        (Some(cpus), None) => ("explicit".to_string(), cpus.clone()),
        (cpus, policy) => {
            let p = policy.unwrap_or(Policy::Compact);
            (p.name().to_string(), p.order(topo, cpus.as_deref()))
        }
    };
    let default_threads = match shape {
        ThreadShape::Threads { default } => default,
        ThreadShape::Pair
        | ThreadShape::PairSweep
        | ThreadShape::AllPairs
        | ThreadShape::PerNode => 2,
    };
    let threads = req
        .threads
        .unwrap_or(if req.cpus.is_some() && req.policy.is_none() {
            order.len()
        } else {
            default_threads.min(order.len())
        });
    if threads > order.len() && !req.oversubscribe {
        return Err(usage(format!(
            "--threads {threads}: only {} CPU(s) available ({}); add --oversubscribe to share CPUs",
            order.len(),
            cpulist::format(&order)
        )));
    }
    let cpus: Vec<usize> = order.iter().copied().cycle().take(threads).collect();
    let pair_class = (cpus.len() == 2)
        .then(|| pairs::classify(topo, cpus[0], cpus[1]))
        .flatten();
    let label = match (policy_name.as_str(), pair_class) {
        ("explicit", Some(c)) => format!("cpus {} ({})", cpulist::format(&cpus), c.name()),
        ("explicit", None) => format!("cpus {}", cpulist::format(&cpus)),
        (p, _) => format!("{p} x{threads}"),
    };
    let label = if threads > order.len() {
        format!(
            "{label} (oversubscribed {:.1}x)",
            threads as f64 / order.len() as f64
        )
    } else {
        label
    };
    Ok(Plan {
        groups: vec![Group {
            label,
            pair_class,
            cpus,
            policy: (policy_name != "explicit").then(|| policy_name.clone()),
        }],
        policy: policy_name,
        unavailable: vec![],
    })
}

/// One group per thread count (a thread-count sweep), each placed like `plan`.
pub fn plan_sweep(
    topo: &Topology,
    shape: ThreadShape,
    req: &Request,
    counts: &[usize],
) -> anyhow::Result<Plan> {
    let mut merged: Option<Plan> = None;
    for &n in counts {
        let r = Request {
            threads: Some(n),
            ..req.clone()
        };
        let p = plan(topo, shape, &r)?;
        match merged.as_mut() {
            Some(m) => m.groups.extend(p.groups),
            None => merged = Some(p),
        }
    }
    merged.ok_or_else(|| usage("--threads: no thread count given"))
}

/// Powers of two up to `max`, and `max` itself: 1, 2, 4, …, max.
pub fn default_sweep(max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |x| x.checked_mul(2))
        .take_while(|&x| x < max)
        .collect();
    v.push(max.max(1));
    v
}

/// One group per NUMA node that has CPUs: one hardware thread per core of that
/// node (SMT siblings would share the core's load/store units and halve what each
/// thread sees), at most `--threads` of them, restricted to `--cpus` when given;
/// plus, where there are several, one group of all of them.
fn plan_per_node(topo: &Topology, req: &Request, usable: &[usize]) -> anyhow::Result<Plan> {
    let among: Vec<usize> = match &req.cpus {
        Some(c) => usable.iter().copied().filter(|u| c.contains(u)).collect(),
        None => usable.to_vec(),
    };
    let mut groups = Vec::new();
    let mut unavailable = Vec::new();
    for node in &topo.numa {
        let mut seen_cores = std::collections::BTreeSet::new();
        let cpus: Vec<usize> = Policy::Compact
            .order(topo, Some(&among))
            .into_iter()
            .filter(|c| node.cpus.contains(c))
            .filter(|&c| topo.pu(c).is_some_and(|p| seen_cores.insert(p.core)))
            .take(req.threads.unwrap_or(usize::MAX))
            .collect();
        if cpus.is_empty() {
            unavailable.push(Unavailable {
                label: format!("node {}", node.os_index),
                reason: if node.cpus.is_empty() {
                    "memory-only node (no CPUs): measured as a memory column only".into()
                } else {
                    "none of its CPUs is selected or usable".into()
                },
            });
            continue;
        }
        groups.push(Group {
            label: format!("node {} x{}", node.os_index, cpus.len()),
            pair_class: None,
            cpus,
            policy: None,
        });
    }
    if groups.is_empty() {
        return Err(usage(
            "no NUMA node has a usable CPU among those selected (--cpus)",
        ));
    }
    // With several nodes, one more group spans them all (whole-machine scans).
    if groups.len() > 1 {
        let cpus: Vec<usize> = groups.iter().flat_map(|g| g.cpus.clone()).collect();
        groups.push(Group {
            label: format!("all nodes x{}", cpus.len()),
            pair_class: None,
            cpus,
            policy: None,
        });
    }
    Ok(Plan {
        policy: "per-node".into(),
        groups,
        unavailable,
    })
}

/// Every unordered pair of the selected CPUs (default: all usable), one group each.
fn plan_all_pairs(topo: &Topology, req: &Request, usable: &[usize]) -> anyhow::Result<Plan> {
    let cpus: Vec<usize> = req.cpus.clone().unwrap_or_else(|| usable.to_vec());
    if cpus.len() < 2 {
        return Err(usage(format!(
            "--cpus: a pair-by-pair experiment needs at least two CPUs; {} selected ({})",
            cpus.len(),
            cpulist::format(&cpus)
        )));
    }
    let mut groups = Vec::new();
    for (i, &a) in cpus.iter().enumerate() {
        for &b in &cpus[i + 1..] {
            let class = pairs::classify(topo, a, b);
            groups.push(Group {
                label: format!(
                    "cpus {a},{b} ({})",
                    class.map_or("unclassified", |c| c.name())
                ),
                pair_class: class,
                cpus: vec![a, b],
                policy: None,
            });
        }
    }
    Ok(Plan {
        policy: "all-pairs".into(),
        groups,
        unavailable: vec![],
    })
}

/// One group per pair class; with `sweep`, more groups per class with 4, 8, …
/// threads inside the class's domain (see [`pairs::grow`]).
fn plan_pairs(
    topo: &Topology,
    req: &Request,
    usable: &[usize],
    sweep: bool,
) -> anyhow::Result<Plan> {
    let explicit = req.pairs.is_some();
    let classes = req.pairs.clone().unwrap_or_else(|| PairClass::ALL.to_vec());
    let among = Policy::Compact.order(topo, req.cpus.as_deref().or(Some(usable)));
    let mut groups = Vec::new();
    let mut unavailable = Vec::new();
    for class in classes {
        match pairs::find_pair(topo, class, &among) {
            Some((a, b)) => {
                groups.push(Group {
                    label: class.name().to_string(),
                    pair_class: Some(class),
                    cpus: vec![a, b],
                    policy: None,
                });
                if sweep {
                    let all = pairs::grow(topo, class, (a, b), &among);
                    let mut counts = default_sweep(all.len());
                    counts.retain(|&n| n > 2 && n % 2 == 0);
                    for n in counts {
                        groups.push(Group {
                            label: format!("{} x{n}", class.name()),
                            pair_class: Some(class),
                            cpus: all[..n].to_vec(),
                            policy: None,
                        });
                    }
                }
            }
            None => {
                let reason = pairs::why_unavailable(topo, class, req.cpus.is_some());
                if explicit {
                    return Err(usage(format!(
                        "pair class {} is not available on this machine: {reason}",
                        class.name()
                    )));
                }
                unavailable.push(Unavailable {
                    label: class.name().to_string(),
                    reason,
                });
            }
        }
    }
    if groups.is_empty() {
        return Err(usage(format!(
            "no pair of CPUs to run a two-party experiment on ({} usable CPU(s))",
            among.len()
        )));
    }
    Ok(Plan {
        policy: "pair-classes".into(),
        groups,
        unavailable,
    })
}

impl Plan {
    /// Human-readable plan, one line per thread.
    pub fn render(&self, topo: &Topology) -> String {
        let mut s = String::new();
        for g in &self.groups {
            let _ = writeln!(s, "group {}:", g.label);
            for (i, &cpu) in g.cpus.iter().enumerate() {
                let p = topo.pu(cpu);
                let f = |v: Option<usize>| v.map_or("-".to_string(), |x| x.to_string());
                let _ = writeln!(
                    s,
                    "  thread {i} -> CPU {cpu} (core {}, L3 {}, package {}, NUMA node {})",
                    p.map_or("-".into(), |p| p.core.to_string()),
                    f(p.and_then(|p| p.l3)),
                    f(p.and_then(|p| p.package)),
                    f(p.and_then(|p| p.numa)),
                );
            }
        }
        for u in &self.unavailable {
            let _ = writeln!(
                s,
                "not available on this machine: {}: {}",
                u.label, u.reason
            );
        }
        s
    }
}
