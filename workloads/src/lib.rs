//! Workload kernels for hwprof.
//!
//! This crate holds *what runs on each pinned thread* and nothing else: no CLI,
//! no printing, no measurement. The `hwprof` crate discovers the machine, places
//! threads, opens counters, times the run, computes statistics and reports.
//!
//! Adding an experiment = one new module here implementing [`Experiment`], plus one
//! line in [`registry`].

pub mod c2c_latency;
pub mod contention;
pub mod experiment;
pub mod false_sharing;
pub mod false_sharing_layout;
pub mod findings;
pub mod keys;
pub mod memstore;
pub mod numa;
pub mod prefetch;
pub mod scaling;
pub mod simd;
pub mod simd_similarity;
pub mod tenants;

pub use experiment::{
    CompareOn, Comparison, Experiment, MachineFacts, NoTimer, OpTimer, SweepPoint, ThreadShape,
    Trial, Variant, VariantMemory,
};

/// Every experiment `hwprof run NAME` and `hwprof suite` know about, in suite order.
pub fn registry() -> &'static [&'static dyn Experiment] {
    static REGISTRY: [&dyn Experiment; 9] = [
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
    &REGISTRY
}

/// Look an experiment up by its CLI name.
pub fn find(name: &str) -> Option<&'static dyn Experiment> {
    registry().iter().copied().find(|e| e.name() == name)
}
