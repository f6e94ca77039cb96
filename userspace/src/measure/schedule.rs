//! Packing counter events into perf groups that the PMU can schedule.
//!
//! A perf group is all-or-nothing: if it needs more counters than the PMU has, it
//! never runs. So hardware events go into groups of at most the map's group limit
//! (events on fixed counters ride along for free); the kernel time-multiplexes the
//! groups, and readings are scaled by time_enabled / time_running.

use super::event::{CounterEvent, EventKind};
use super::Source;

/// Groups to open. `limit` = general-purpose counters a group may use; `fixed` =
/// labels served by fixed counters.
pub fn schedule(events: &[CounterEvent], limit: usize, fixed: &[String]) -> Vec<Vec<CounterEvent>> {
    let limit = limit.max(1);
    let mut unique: Vec<CounterEvent> = Vec::new();
    for e in events {
        if !unique.iter().any(|u| u.kind == e.kind) {
            unique.push(e.clone());
        }
    }
    let (software, hardware): (Vec<_>, Vec<_>) = unique
        .into_iter()
        .partition(|e| e.source == Source::Software);
    let is_fixed = |e: &CounterEvent| {
        fixed.iter().any(|f| *f == e.label)
            || matches!(&e.kind, EventKind::Hardware(g) if fixed.iter().any(|f| f == g))
    };
    let (on_fixed, general): (Vec<_>, Vec<_>) = hardware.into_iter().partition(is_fixed);
    let mut groups: Vec<Vec<CounterEvent>> = general.chunks(limit).map(|c| c.to_vec()).collect();
    if groups.is_empty() && !on_fixed.is_empty() {
        groups.push(Vec::new());
    }
    // Fixed-counter events (cycles, instructions) join every group, so each group
    // carries its own cycles for per-group ratios; one copy is reported.
    for g in &mut groups {
        for f in on_fixed.iter().rev() {
            g.insert(0, f.clone());
        }
    }
    if !software.is_empty() {
        groups.push(software);
    }
    groups
}

/// Number of groups that would be time-multiplexed (hardware groups beyond one).
pub fn multiplexed(groups: &[Vec<CounterEvent>]) -> bool {
    groups
        .iter()
        .filter(|g| g.iter().any(|e| e.source == Source::Pmu))
        .count()
        > 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(label: &str, config: u64) -> CounterEvent {
        CounterEvent {
            label: label.into(),
            source: Source::Pmu,
            kind: EventKind::Pmu {
                pmu: "cpu".into(),
                config,
                config1: 0,
            },
        }
    }

    #[test]
    fn groups_respect_the_counter_limit() {
        let evs: Vec<_> = (0..10).map(|i| raw(&format!("e{i}"), 0x100 + i)).collect();
        let g = schedule(&evs, 4, &[]);
        assert_eq!(g.iter().map(|g| g.len()).collect::<Vec<_>>(), vec![4, 4, 2]);
        assert!(multiplexed(&g));
        let g = schedule(&evs[..3], 4, &[]);
        assert_eq!(g.len(), 1);
        assert!(!multiplexed(&g));
    }

    #[test]
    fn fixed_counter_events_do_not_take_general_counters() {
        let mut evs = vec![CounterEvent {
            label: "cycles".into(),
            source: Source::Pmu,
            kind: EventKind::Hardware("cycles".into()),
        }];
        evs.extend((0..8).map(|i| raw(&format!("e{i}"), 0x200 + i)));
        let g = schedule(&evs, 4, &["cycles".to_string()]);
        assert_eq!(g.len(), 2);
        assert!(g.iter().all(|g| g.len() == 5 && g[0].label == "cycles"));
    }

    #[test]
    fn software_events_get_their_own_group_and_duplicates_merge() {
        let sw = CounterEvent {
            label: "task-clock".into(),
            source: Source::Software,
            kind: EventKind::Software("task-clock".into()),
        };
        let g = schedule(&[raw("a", 1), raw("a2", 1), sw.clone()], 4, &[]);
        assert_eq!(g, vec![vec![raw("a", 1)], vec![sw]]);
    }
}
