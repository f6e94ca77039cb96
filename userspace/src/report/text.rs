//! Plain words for human output: maps, optional values, lists and matrices as
//! a person writes them, never Rust's Debug text (`Some(25)`, `{"a": 1}`).

use std::collections::BTreeMap;
use std::fmt::Display;

/// `a 1, b 2`, or `none`.
pub fn map<V: Display>(m: &BTreeMap<String, V>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `k=v k=v` for attribute maps (hwloc's CPU kind infos).
pub fn attrs(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value, or `?` where it is unknown.
pub fn opt<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "?".into(), |x| x.to_string())
}

/// `1, 5, 9`.
pub fn list<T: Display>(v: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = v.into_iter().map(|x| x.to_string()).collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// `name (count), …`.
pub fn counted(v: &[(String, u64)]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|(n, c)| format!("{n} ({c})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Matrix rows, one per line, indented: `    10 21`.
pub fn matrix<T: Display>(m: &[Vec<T>], indent: &str) -> String {
    m.iter()
        .map(|row| {
            format!(
                "{indent}{}",
                row.iter()
                    .map(|v| format!("{v:>4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_debug_text() {
        let mut m = BTreeMap::new();
        m.insert("cross-l3".to_string(), 2u64);
        assert_eq!(map(&m), "cross-l3 2");
        assert_eq!(opt(Some(25)), "25");
        assert_eq!(opt::<u8>(None), "?");
        assert_eq!(counted(&[("f".into(), 12)]), "f (12)");
        assert_eq!(
            matrix(&[vec![10, 21], vec![21, 10]], "  "),
            "    10   21\n    21   10"
        );
        assert_eq!(list([1, 5]), "1, 5");
    }
}

/// The pair matrix in lines (terminal table and Markdown alike).
pub fn pair_lines(m: &super::schema::PairMatrix) -> Vec<String> {
    let mut v: Vec<String> = m
        .pairs
        .iter()
        .map(|p| {
            format!(
                "CPUs {}-{} ({}): {:.1} ns one way [{:.1}–{:.1}]",
                p.cpus.0,
                p.cpus.1,
                p.class.map_or("unclassified", |c| c.name()),
                p.one_way_ns,
                p.ci95.lo,
                p.ci95.hi
            )
        })
        .collect();
    v.push(format!("verdict: {}", m.verdict));
    v
}

/// What the probes saw, in lines (terminal table and Markdown alike).
pub fn probe_lines(p: &crate::probes::ProbesReport) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(sc) = &p.sched {
        v.push(format!(
            "sched (probe, experiment threads only: {}): {} migrations ({}), off-CPU {:.1} ms, on-CPU {:.1} ms, run-queue p99 <= {} ns",
            sc.threads.len(),
            sc.total_migrations,
            map(&sc.migrations_by_class),
            sc.total_off_cpu_ns as f64 / 1e6,
            sc.total_on_cpu_ns as f64 / 1e6,
            sc.runq_latency.p99_ns_le
        ));
    }
    if let Some(f) = &p.futex {
        v.push(format!(
            "futex (probe): {} waits, {:.1} ms waiting",
            f.total_waits,
            f.total_wait_ns as f64 / 1e6
        ));
    }
    if let Some(l) = &p.locks {
        v.push(format!(
            "locks (probe): {} kernel lock contentions, {:.1} ms waiting",
            l.total_contentions,
            l.total_wait_ns as f64 / 1e6
        ));
    }
    if let Some(m) = &p.memory {
        v.push(format!(
            "memory (probe): {} user page faults",
            m.page_faults
        ));
    }
    if let Some(pr) = &p.profile {
        v.push(format!(
            "profile (probe): {} samples at {} Hz",
            pr.samples, pr.frequency_hz
        ));
    }
    for w in &p.warnings {
        v.push(format!("probe warning: {w}"));
    }
    v
}
