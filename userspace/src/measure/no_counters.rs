//! Platforms without perf_event_open: no per-thread counters; reports fall back
//! to the timer and say so.

use super::{CounterPlan, Reading};

pub struct ThreadCounters {
    pub missing: Vec<String>,
}

impl ThreadCounters {
    pub fn open(_plan: &CounterPlan) -> Self {
        ThreadCounters {
            missing: vec!["counters: perf_event_open exists only on Linux".into()],
        }
    }
    pub fn enable(&mut self) {}
    pub fn disable(&mut self) {}
    pub fn read(&mut self) -> Vec<Reading> {
        Vec::new()
    }
}
