//! The PMU event maps (hwprofiles/events/*.toml, embedded at build time) and the
//! abstract metric catalogue: parsing, validation, selection by CPU identity and
//! resolution of a metric to the raw events it needs on one microarchitecture.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::formula;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/event_maps.rs"));
}

/// How raw event fields pack into perf_event_attr.config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// event[7:0], umask[15:8], edge 18, inv 23, cmask[31:24].
    Intel,
    /// As Intel, plus event[11:8] in config[35:32].
    Amd,
    /// Arm PMUv3: the event number is the whole config.
    Arm,
}

/// One abstract event on one microarchitecture.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventDef {
    /// Vendor event name, e.g. `MEM_LOAD_L3_HIT_RETIRED.XSNP_FWD`.
    pub name: Option<String>,
    pub event: Option<u64>,
    pub umask: Option<u64>,
    pub cmask: Option<u64>,
    pub inv: Option<bool>,
    pub edge: Option<bool>,
    /// A generic perf event (`cycles`, `instructions`) instead of a raw encoding.
    pub generic: Option<String>,
    /// Derived from other abstract events of this map.
    pub formula: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricDef {
    pub formula: String,
    pub unit: Option<String>,
    pub description: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventMap {
    pub name: String,
    pub display: String,
    pub vendor: String,
    pub microarchitectures: Vec<String>,
    /// PMU the raw events belong to (`cpu`, `cpu_core`).
    pub pmu: String,
    pub encoding: Encoding,
    pub general_counters: usize,
    /// Largest group hwprof schedules (some events only fit counters 0-3).
    pub group_limit: usize,
    /// Abstract events served by fixed counters (do not use a general counter).
    pub fixed: Vec<String>,
    pub source: String,
    pub events: BTreeMap<String, EventDef>,
    #[serde(default)]
    pub metric_overrides: BTreeMap<String, MetricDef>,
    #[serde(default)]
    pub unavailable_metrics: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    metrics: BTreeMap<String, MetricDef>,
}

/// Generic perf events an event map may name.
pub const GENERIC_HARDWARE: &[&str] = &[
    "cycles",
    "instructions",
    "cache-references",
    "cache-misses",
    "branch-instructions",
    "branch-misses",
    "ref-cycles",
];

/// A raw or generic event ready to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub enum Encoded {
    Generic(String),
    Raw { pmu: String, config: u64 },
}

impl Encoded {
    /// perf-style spelling: `cycles`, `r1d2`, `cpu_core/config=0x4d2/`.
    pub fn perf_syntax(&self) -> String {
        match self {
            Encoded::Generic(g) => g.clone(),
            Encoded::Raw { pmu, config } if pmu == "cpu" => format!("r{config:x}"),
            Encoded::Raw { pmu, config } => format!("{pmu}/config={config:#x}/"),
        }
    }
}

/// A metric resolved on one map: what to count and how to combine it.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedMetric {
    pub name: String,
    pub formula: String,
    pub unit: String,
    pub note: Option<String>,
    /// Abstract events to count (leaves), with their encodings.
    pub events: BTreeMap<String, Encoded>,
    /// Derived events (abstract name → formula over leaves/derived), evaluated first.
    pub derived: Vec<(String, String)>,
}

impl EventMap {
    pub fn encode(&self, key: &str) -> Result<Encoded, String> {
        let d = self
            .events
            .get(key)
            .ok_or_else(|| format!("{} maps no event `{key}`", self.name))?;
        if let Some(g) = &d.generic {
            return Ok(Encoded::Generic(g.clone()));
        }
        let event = d
            .event
            .ok_or_else(|| format!("{}: event `{key}` has no encoding", self.name))?;
        let umask = d.umask.unwrap_or(0);
        let cmask = d.cmask.unwrap_or(0);
        let flags = (u64::from(d.edge.unwrap_or(false)) << 18)
            | (u64::from(d.inv.unwrap_or(false)) << 23)
            | (cmask << 24);
        let config = match self.encoding {
            Encoding::Intel => (event & 0xff) | (umask << 8) | flags,
            Encoding::Amd => (event & 0xff) | (((event >> 8) & 0xf) << 32) | (umask << 8) | flags,
            Encoding::Arm => event,
        };
        Ok(Encoded::Raw {
            pmu: self.pmu.clone(),
            config,
        })
    }

    /// Structural checks: each event is exactly one of raw / generic / formula,
    /// fields fit their bit widths, formulas name events of this map, no cycles.
    pub fn validate(&self) -> Result<(), String> {
        let err = |m: String| Err(format!("{}: {m}", self.name));
        if self.group_limit == 0 || self.group_limit > self.general_counters {
            return err(format!(
                "group_limit {} must be 1..=general_counters ({})",
                self.group_limit, self.general_counters
            ));
        }
        for (key, d) in &self.events {
            let kinds = [d.event.is_some(), d.generic.is_some(), d.formula.is_some()]
                .iter()
                .filter(|&&b| b)
                .count();
            if kinds != 1 {
                return err(format!(
                    "event `{key}` must have exactly one of event=, generic=, formula="
                ));
            }
            if let Some(g) = &d.generic {
                if !GENERIC_HARDWARE.contains(&g.as_str()) {
                    return err(format!("event `{key}`: unknown generic event {g:?}"));
                }
            }
            if let Some(e) = d.event {
                if d.name.as_deref().is_none_or(str::is_empty) {
                    return err(format!("raw event `{key}` needs its vendor name"));
                }
                let max_event = match self.encoding {
                    Encoding::Intel => 0xff,
                    Encoding::Amd => 0xfff,
                    Encoding::Arm => 0xffff,
                };
                if e > max_event {
                    return err(format!(
                        "event `{key}`: event code {e:#x} exceeds {max_event:#x}"
                    ));
                }
                if d.umask.unwrap_or(0) > 0xff || d.cmask.unwrap_or(0) > 0xff {
                    return err(format!("event `{key}`: umask/cmask exceed 8 bits"));
                }
                if self.encoding == Encoding::Arm && (d.umask.is_some() || d.cmask.is_some()) {
                    return err(format!("event `{key}`: Arm events have no umask/cmask"));
                }
            }
            if let Some(f) = &d.formula {
                for id in
                    formula::identifiers(f).map_err(|e| format!("{}: `{key}`: {e}", self.name))?
                {
                    if !self.events.contains_key(&id) {
                        return err(format!("derived event `{key}` uses unknown event `{id}`"));
                    }
                }
            }
        }
        for f in &self.fixed {
            if !self.events.contains_key(f) {
                return err(format!("fixed counter event `{f}` is not mapped"));
            }
        }
        // Cycle check through derived events.
        for key in self.events.keys() {
            self.leaves(key, &mut BTreeSet::new(), &mut Vec::new())?;
        }
        Ok(())
    }

    /// Leaf (countable) events behind `key`, recording derived events in
    /// evaluation order.
    fn leaves(
        &self,
        key: &str,
        path: &mut BTreeSet<String>,
        derived: &mut Vec<(String, String)>,
    ) -> Result<BTreeSet<String>, String> {
        let d = self
            .events
            .get(key)
            .ok_or_else(|| format!("needs event `{key}`, which {} does not map", self.display))?;
        let Some(f) = &d.formula else {
            return Ok([key.to_string()].into());
        };
        if !path.insert(key.to_string()) {
            return Err(format!(
                "{}: derived event `{key}` refers to itself",
                self.name
            ));
        }
        let mut out = BTreeSet::new();
        for id in formula::identifiers(f)? {
            out.extend(self.leaves(&id, path, derived)?);
        }
        path.remove(key);
        if !derived.iter().any(|(k, _)| k == key) {
            derived.push((key.to_string(), f.clone()));
        }
        Ok(out)
    }

    /// Resolve `metric` (from `catalog`) on this map, or say why it cannot be.
    pub fn resolve(&self, catalog: &Catalog, metric: &str) -> Result<ResolvedMetric, String> {
        let base = catalog
            .metrics
            .get(metric)
            .ok_or_else(|| format!("unknown metric `{metric}`"))?;
        if let Some(reason) = self.unavailable_metrics.get(metric) {
            return Err(format!("{} on {}: {reason}", metric, self.display));
        }
        let over = self.metric_overrides.get(metric);
        let formula_text = over.map_or(&base.formula, |o| &o.formula).clone();
        let mut events = BTreeMap::new();
        let mut derived = Vec::new();
        for id in formula::identifiers(&formula_text)? {
            for leaf in self.leaves(&id, &mut BTreeSet::new(), &mut derived)? {
                events.insert(leaf.clone(), self.encode(&leaf)?);
            }
        }
        Ok(ResolvedMetric {
            name: metric.to_string(),
            formula: formula_text,
            unit: base.unit.clone().unwrap_or_default(),
            note: over.and_then(|o| o.note.clone()),
            events,
            derived,
        })
    }
}

/// All maps and the metric catalogue.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub maps: Vec<EventMap>,
    pub metrics: BTreeMap<String, MetricDef>,
}

impl Catalog {
    /// The catalogue built into this binary.
    pub fn builtin() -> Catalog {
        Self::parse(embedded::MAPS, embedded::METRICS)
            .expect("built-in event maps are valid (tested)")
    }

    pub fn parse(maps: &[(&str, &str)], metrics: &str) -> Result<Catalog, String> {
        let metrics: MetricsFile =
            toml::from_str(metrics).map_err(|e| format!("metrics.toml: {e}"))?;
        for (name, m) in &metrics.metrics {
            formula::identifiers(&m.formula).map_err(|e| format!("metric {name}: {e}"))?;
        }
        let mut out = Vec::new();
        for (file, text) in maps {
            let map: EventMap = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
            map.validate()?;
            for m in map
                .unavailable_metrics
                .keys()
                .chain(map.metric_overrides.keys())
            {
                if !metrics.metrics.contains_key(m) {
                    return Err(format!("{file}: names unknown metric `{m}`"));
                }
            }
            out.push(map);
        }
        Ok(Catalog {
            maps: out,
            metrics: metrics.metrics,
        })
    }

    /// The map named `name` (file stem) or serving the microarchitecture `name`
    /// (case-insensitive, `-`/`_`/space ignored: `zen3`, `Zen 3`, `icelake-sp`).
    pub fn find(&self, name: &str) -> Option<&EventMap> {
        let norm = |s: &str| {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let n = norm(name);
        self.maps
            .iter()
            .find(|m| norm(&m.name) == n || m.microarchitectures.iter().any(|u| norm(u) == n))
    }

    pub fn names(&self) -> Vec<&str> {
        self.maps.iter().map(|m| m.name.as_str()).collect()
    }
}
