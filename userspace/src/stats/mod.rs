//! Statistics for repeated, interleaved measurements: medians with bootstrap
//! confidence intervals, coefficients of variation, A/B ratios and verdicts.

pub mod bootstrap;
pub mod changepoint;
pub mod rank;
pub mod summary;
pub mod trend;
pub mod usl;
pub mod verdict;

pub use bootstrap::{median_ci, ratio_of_medians_ci, Interval};
pub use summary::{median, quantile, Summary};
pub use verdict::{ab_verdict, target_verdict, target_verdict_on, Verdict};
