//! hwprof: discover the machine → plan placement → run variants → measure →
//! statistics → report. See docs/architecture.md for the map.

pub mod attach;
pub mod c2c;
pub mod capabilities;
pub mod cli;
pub mod cpu;
pub mod error;
pub mod events;
pub mod experiment;
pub mod gate;
pub mod history;
pub mod input;
pub mod interrupt;
pub mod load;
pub mod machine;
pub mod measure;
pub mod metrics;
pub mod output;
pub mod placement;
pub mod probes;
pub mod report;
pub mod scale;
pub mod serve;
pub mod soak;
pub mod stats;
pub mod suite;
pub mod symbols;
#[cfg(target_os = "macos")]
pub mod sysctl;
pub mod text;
pub mod topology;
pub mod virt;
