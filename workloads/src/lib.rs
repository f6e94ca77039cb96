//! Workload kernels for hwprof.
//!
//! This crate holds *what runs on each pinned thread* and each experiment's own
//! reading of its results ([`Experiment::interpret`]: knees, best distances,
//! node penalties — from the statistics hwprof hands it). No CLI, no printing,
//! no counters or timers: the `hwprof` crate discovers the machine, places
//! threads, measures, computes statistics and reports.
//!
//! Adding an experiment = one new module here implementing [`Experiment`]
//! (with its `const INFO: ExperimentInfo`), plus one line in [`EXPERIMENTS`].

pub mod c2c_latency;
pub mod chase;
pub mod contention;
pub mod experiment;
pub mod false_sharing;
pub mod false_sharing_layout;
pub mod findings;
pub mod keys;
pub mod memstore;
pub mod numa;
pub mod pages;
pub mod prefetch;
pub mod scaling;
pub mod simd;
pub mod simd_similarity;
pub mod tenants;

pub use experiment::{
    CompareOn, Comparison, Experiment, ExperimentInfo, MachineFacts, NoTimer, OpTimer, SweepPoint,
    ThreadShape, Trial, Variant, VariantMemory,
};

/// Every experiment `hwprof run NAME` and `hwprof suite` know about, in suite
/// order: one line each.
pub static EXPERIMENTS: &[&dyn Experiment] = &[
    &false_sharing::FalseSharing,
    &false_sharing_layout::FalseSharingLayout,
    &c2c_latency::CoreToCore,
    &prefetch::Prefetch,
    &numa::Numa,
    &simd_similarity::SimdSimilarity,
    &contention::Contention,
    &scaling::Scaling,
    &tenants::Tenants,
];

/// [`EXPERIMENTS`], as a function for callers that iterate it.
pub fn registry() -> &'static [&'static dyn Experiment] {
    EXPERIMENTS
}

/// Look an experiment up by its CLI name.
pub fn find(name: &str) -> Option<&'static dyn Experiment> {
    registry().iter().copied().find(|e| e.name() == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_names_are_unique_and_found() {
        let mut names: Vec<&str> = super::EXPERIMENTS.iter().map(|e| e.name()).collect();
        for n in &names {
            assert_eq!(super::find(n).map(|e| e.name()), Some(*n));
            assert!(!super::find(n).unwrap().summary().is_empty(), "{n}");
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), super::EXPERIMENTS.len(), "duplicate names");
    }
}
