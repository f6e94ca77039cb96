//! The probes' figures as OpenMetrics (`--metrics` on attach and load): the
//! "why" beside the latency — futex wait time by the hottest symbols, run-queue
//! latency, on/off-CPU time, migrations by distance, page faults, lost events.
//!
//! The run's sampler collects the session once per interval into `latest`;
//! a scrape encodes that snapshot (reading BPF maps and symbolising stays on
//! the sampler's thread, never on a scrape).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::ProbesReport;
use crate::metrics::{enc, log2_buckets};

/// Futex symbols with a series of their own; the rest are summed in `other`.
pub const TOP_SYMBOLS: usize = 5;

#[derive(Debug, Default)]
pub struct ProbesCollector {
    pub latest: Arc<Mutex<Option<ProbesReport>>>,
    /// Futex wait seconds per exported symbol label. A label keeps its series
    /// once given one (series must not come and go with the ranking), and
    /// every value only grows (counters).
    futex: Mutex<BTreeMap<String, f64>>,
}

impl ProbesCollector {
    pub fn new(latest: Arc<Mutex<Option<ProbesReport>>>) -> Self {
        Self {
            latest,
            futex: Mutex::default(),
        }
    }

    /// Futex wait seconds by symbol label: the first TOP_SYMBOLS distinct
    /// symbols seen get a label, the rest go to `other`.
    fn futex_by_symbol(&self, r: &super::futex::Report) -> Vec<(String, f64)> {
        let mut named: BTreeMap<String, f64> = BTreeMap::new();
        for a in &r.top {
            let label = a
                .resolved
                .as_ref()
                .map(|x| {
                    x.symbol
                        .as_deref()
                        .map(|s| s.split('+').next().unwrap_or(s).to_string())
                        .unwrap_or_else(|| x.mapping.clone())
                })
                .unwrap_or_else(|| "unresolved".into());
            // Bounded label values, too.
            let label: String = label.chars().take(120).collect();
            *named.entry(label).or_default() += a.wait_ns as f64 / 1e9;
        }
        let total = r.total_wait_ns as f64 / 1e9;
        let mut kept = self.futex.lock().unwrap_or_else(|e| e.into_inner());
        let mut in_named = 0.0;
        for (label, secs) in named {
            let slots_left = kept.keys().filter(|k| *k != "other").count() < TOP_SYMBOLS;
            if kept.contains_key(&label) || slots_left {
                let v = kept.entry(label).or_default();
                *v = v.max(secs);
                in_named += secs;
            }
        }
        let other = kept.entry("other".into()).or_default();
        *other = other.max(total - in_named);
        kept.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

impl Collector for ProbesCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(r) = self.latest.lock().ok().and_then(|g| g.clone()) else {
            return Ok(());
        };
        let one = |v: f64| vec![(Vec::new(), v)];
        if let Some(s) = &r.sched {
            enc::counter(
                &mut e,
                "probe_on_cpu",
                "On-CPU time of the traced threads",
                Some(Unit::Seconds),
                &one(s.total_on_cpu_ns as f64 / 1e9),
            )?;
            enc::counter(
                &mut e,
                "probe_off_cpu",
                "Off-CPU time of the traced threads (blocked or preempted)",
                Some(Unit::Seconds),
                &one(s.total_off_cpu_ns as f64 / 1e9),
            )?;
            let runq: Vec<(u64, u64)> = s.runq_latency.buckets.clone();
            enc::histogram(
                &mut e,
                "probe_runqueue_latency",
                "Run-queue latency of the traced threads: wakeup to on-CPU (kernel log2 histogram)",
                Some(Unit::Seconds),
                &[(vec![], log2_buckets(&runq))],
            )?;
            // The distance classes sched::classify_migration names; anything
            // else counts as unknown.
            const CLASSES: [&str; 4] = ["same-core", "same-l3", "cross-l3", "cross-numa"];
            let count = |c: &str| s.migrations_by_class.get(c).copied().unwrap_or(0);
            let unknown: u64 = s
                .migrations_by_class
                .iter()
                .filter(|(k, _)| !CLASSES.contains(&k.as_str()))
                .map(|(_, v)| v)
                .sum();
            let by: Vec<(enc::Labels, f64)> = CLASSES
                .iter()
                .map(|c| (c.to_string(), count(c)))
                .chain(std::iter::once(("unknown".to_string(), unknown)))
                .map(|(c, n)| (vec![("distance", c)], n as f64))
                .collect();
            enc::counter(
                &mut e,
                "probe_migrations",
                "CPU migrations of the traced threads by distance",
                None,
                &by,
            )?;
        }
        if let Some(f) = &r.futex {
            let by: Vec<(enc::Labels, f64)> = self
                .futex_by_symbol(f)
                .into_iter()
                .map(|(k, v)| (vec![("symbol", k)], v))
                .collect();
            enc::counter(
                &mut e,
                "probe_futex_wait",
                "Time the traced threads waited in futex, by the hottest futex words' symbols (the rest: other)",
                Some(Unit::Seconds),
                &by,
            )?;
            enc::counter(
                &mut e,
                "probe_futex_waits",
                "Futex waits of the traced threads",
                None,
                &one(f.total_waits as f64),
            )?;
        }
        if let Some(m) = &r.memory {
            enc::counter(
                &mut e,
                "probe_page_faults",
                "User page faults of the traced threads",
                None,
                &one(m.page_faults as f64),
            )?;
            enc::counter(
                &mut e,
                "probe_numa_migrated_pages",
                "Pages moved by NUMA balancing for the traced threads",
                None,
                &one(m.migrated_pages as f64),
            )?;
        }
        // The total always (zero is a figure), each map that lost any beside it.
        let lost: Vec<(enc::Labels, f64)> = std::iter::once((
            vec![("map", "total".to_string())],
            r.drops.values().sum::<u64>() as f64,
        ))
        .chain(
            r.drops
                .iter()
                .map(|(k, v)| (vec![("map", k.clone())], *v as f64)),
        )
        .collect();
        enc::counter(
            &mut e,
            "probe_lost_events",
            "Events the kernel side could not record (a map or ring buffer full), by map",
            None,
            &lost,
        )?;
        enc::gauge(
            &mut e,
            "probe_threads_traced",
            "Threads the probes trace",
            None,
            &one(r.threads_tracked as f64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::futex::{AddressReport, Report};
    use crate::probes::hist::Log2Hist;
    use crate::symbols::Resolved;

    fn addr(sym: &str, wait_ns: u64) -> AddressReport {
        AddressReport {
            tgid: 1,
            uaddr: "0x1".into(),
            resolved: Some(Resolved {
                symbol: Some(format!("{sym}+0x8")),
                mapping: "/bin/x".into(),
            }),
            waits: 1,
            wait_ns,
            mean_wait_ns: wait_ns,
            max_wait_ns: wait_ns,
            wakes: 0,
            woken: 0,
            waiting_threads: 1,
            stacks: vec![],
        }
    }

    #[test]
    fn futex_labels_are_bounded_stable_and_monotonic() {
        let c = ProbesCollector::default();
        let report = |top: Vec<AddressReport>, total: u64| Report {
            seen_from: crate::probes::futex::SeenFrom::Syscalls,
            total_waits: 0,
            total_wait_ns: total,
            total_wakes: 0,
            top,
            wait_time: Log2Hist::from_counts(&[]),
            finding: None,
        };
        let first: Vec<_> = (0..8)
            .map(|i| addr(&format!("lock{i}"), 1_000_000_000))
            .collect();
        let v = c.futex_by_symbol(&report(first, 10_000_000_000));
        // Five symbols and other, never more.
        assert_eq!(v.len(), TOP_SYMBOLS + 1);
        let other = v.iter().find(|x| x.0 == "other").unwrap().1;
        assert!((other - 5.0).abs() < 1e-9, "other {other}");
        // lock7 grows past the named ones later: it stays in other, and no
        // value goes down.
        let later = vec![addr("lock7", 9_000_000_000), addr("lock0", 1_500_000_000)];
        let w = c.futex_by_symbol(&report(later, 20_000_000_000));
        assert_eq!(w.len(), TOP_SYMBOLS + 1);
        assert!(!w.iter().any(|x| x.0 == "lock7"));
        for (k, x) in &v {
            let y = w.iter().find(|p| &p.0 == k).unwrap().1;
            assert!(y >= *x, "{k} went down: {x} -> {y}");
        }
    }
}
