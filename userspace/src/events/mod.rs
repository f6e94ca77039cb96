//! PMU event maps as data, abstract metrics over them, `--events` parsing and
//! group scheduling. Experiments ask for metrics (`hitm_loads_per_kilo_load`);
//! this layer says which raw events that takes on this CPU, or why it cannot.

pub mod catalog;
pub mod formula;
pub mod list;
/// Scheduling counters into groups is measurement's; re-exported where it was.
pub use crate::measure::schedule;
pub mod spec;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::capabilities::Capabilities;
use crate::cpu::CpuIdentity;
use catalog::{Catalog, Encoding, EventMap, ResolvedMetric};
use spec::CounterEvent;

/// Raw-event layout for the host CPU's vendor.
pub fn host_encoding(cpu: &CpuIdentity) -> Encoding {
    match cpu.vendor.as_str() {
        "AuthenticAMD" | "HygonGenuine" => Encoding::Amd,
        "GenuineIntel" => Encoding::Intel,
        _ if cfg!(target_arch = "aarch64") => Encoding::Arm,
        _ => Encoding::Intel,
    }
}

/// The event map for this CPU, or why there is none.
pub fn host_map<'a>(catalog: &'a Catalog, cpu: &CpuIdentity) -> Result<&'a EventMap, String> {
    let uarch = cpu
        .microarchitecture
        .as_deref()
        .ok_or_else(|| format!("microarchitecture of {:?} not identified", cpu.model_name))?;
    catalog.find(uarch).ok_or_else(|| {
        format!(
            "no event map for {uarch} (maps: {})",
            catalog.names().join(", ")
        )
    })
}

/// One requested metric: resolved on this machine, or unavailable with the reason.
#[derive(Debug, Clone, Serialize)]
pub struct MetricPlan {
    pub name: String,
    pub unit: String,
    pub resolved: Result<ResolvedMetric, String>,
}

/// What a run counts beyond the defaults.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    pub map: Option<String>,
    pub metrics: Vec<MetricPlan>,
    /// Raw/extra counter events to open (metric events + --events), deduplicated.
    pub events: Vec<CounterEvent>,
    pub user_events: Vec<CounterEvent>,
    pub group_limit: usize,
    pub fixed: Vec<String>,
    /// Why hardware events cannot be counted here, if they cannot.
    pub pmu_unavailable: Option<String>,
}

/// Resolve `metrics` on the host and add `user_events`.
pub fn select(
    catalog: &Catalog,
    cpu: &CpuIdentity,
    caps: &Capabilities,
    metrics: &[&str],
    user_events: Vec<CounterEvent>,
) -> Selection {
    let map = host_map(catalog, cpu);
    let pmu_reason = || {
        caps.lost
            .iter()
            .find(|l| l.capability == crate::capabilities::Capability::HardwareCounters)
            .map(|l| format!("hardware counters unavailable: {}", l.reason))
            .unwrap_or_else(|| "hardware counters unavailable".into())
    };
    let mut events: Vec<CounterEvent> = Vec::new();
    let mut plans = Vec::new();
    for &name in metrics {
        let unit = catalog
            .metrics
            .get(name)
            .and_then(|m| m.unit.clone())
            .unwrap_or_default();
        let resolved = if !caps.pmu_hardware {
            Err(pmu_reason())
        } else {
            match &map {
                Ok(m) => m.resolve(catalog, name),
                Err(e) => Err(e.clone()),
            }
        };
        if let Ok(r) = &resolved {
            for (label, enc) in &r.events {
                let e = CounterEvent::from_encoded(label, enc);
                if !events.iter().any(|x| x.label == e.label) {
                    events.push(e);
                }
            }
        }
        plans.push(MetricPlan {
            name: name.to_string(),
            unit,
            resolved,
        });
    }
    for e in &user_events {
        if !events.iter().any(|x| x.label == e.label) {
            events.push(e.clone());
        }
    }
    let (group_limit, fixed) = match &map {
        Ok(m) => (m.group_limit, m.fixed.clone()),
        Err(_) => (4, vec!["cycles".to_string(), "instructions".to_string()]),
    };
    Selection {
        map: map.ok().map(|m| m.name.clone()),
        metrics: plans,
        events,
        user_events,
        group_limit,
        fixed,
        pmu_unavailable: (!caps.pmu_hardware).then(pmu_reason),
    }
}

/// Evaluate a resolved metric from summed counter values (by label).
pub fn evaluate(r: &ResolvedMetric, counts: &BTreeMap<String, f64>) -> Result<f64, String> {
    let mut values = BTreeMap::new();
    for label in r.events.keys() {
        let v = counts
            .get(label)
            .ok_or_else(|| format!("event `{label}` was not counted"))?;
        values.insert(label.clone(), *v);
    }
    for (name, f) in &r.derived {
        let v = formula::eval(f, &values)?;
        values.insert(name.clone(), v);
    }
    formula::eval(&r.formula, &values)
}
