//! `hwprof events list`: what each microarchitecture's map provides, with encodings.

use std::fmt::Write as _;

use serde_json::json;

use super::catalog::{Catalog, Encoded, EventMap};

/// Text table of one map: events with encodings, then every metric's status.
pub fn render_map(catalog: &Catalog, map: &EventMap) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ({}): PMU `{}`, {} general counters (groups of {} scheduled), fixed: {}",
        map.display,
        map.name,
        map.pmu,
        map.general_counters,
        map.group_limit,
        if map.fixed.is_empty() {
            "none".to_string()
        } else {
            map.fixed.join(", ")
        }
    );
    let _ = writeln!(s, "source: {}\n", map.source);
    let _ = writeln!(s, "{:<22} {:<48} {}", "event", "vendor name", "encoding");
    for (key, d) in &map.events {
        let enc = match (&d.formula, map.encode(key)) {
            (Some(f), _) => format!("= {f}"),
            (None, Ok(Encoded::Generic(g))) => format!("generic {g}"),
            (None, Ok(e @ Encoded::Raw { .. })) => {
                let fields = match (d.event, d.umask) {
                    (Some(ev), Some(u)) => format!("event={ev:#x},umask={u:#x}"),
                    (Some(ev), None) => format!("event={ev:#x}"),
                    _ => String::new(),
                };
                format!("{fields}  ({})", e.perf_syntax())
            }
            (None, Err(e)) => e,
        };
        let _ = writeln!(
            s,
            "{:<22} {:<48} {}",
            key,
            d.name.as_deref().unwrap_or("-"),
            enc
        );
    }
    let _ = writeln!(
        s,
        "\n{:<34} {:<12} {}",
        "metric", "status", "formula / reason"
    );
    for name in catalog.metrics.keys() {
        match map.resolve(catalog, name) {
            Ok(r) => {
                let _ = writeln!(
                    s,
                    "{:<34} {:<12} {}{}",
                    name,
                    "available",
                    r.formula,
                    r.note.map_or(String::new(), |n| format!("  [{n}]"))
                );
            }
            Err(e) => {
                let _ = writeln!(s, "{:<34} {:<12} {}", name, "unavailable", e);
            }
        }
    }
    s
}

pub fn map_json(catalog: &Catalog, map: &EventMap) -> serde_json::Value {
    let metrics: serde_json::Map<String, serde_json::Value> = catalog
        .metrics
        .keys()
        .map(|name| {
            let v = match map.resolve(catalog, name) {
                Ok(r) => json!({"available": true, "formula": r.formula, "note": r.note,
                    "events": r.events.iter().map(|(k, e)| (k.clone(), json!(e.perf_syntax()))).collect::<serde_json::Map<_, _>>()}),
                Err(e) => json!({"available": false, "reason": e}),
            };
            (name.clone(), v)
        })
        .collect();
    json!({ "map": map, "metrics": metrics })
}
