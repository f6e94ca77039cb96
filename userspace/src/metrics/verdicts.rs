//! The last verdicts of experiments (and, later, gates) as gauges with their
//! CI bounds, labelled by experiment, comparison and machine: a dashboard shows
//! the answer and its uncertainty, an alert can fire on a target missed.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::enc;

/// One comparison's outcome, as the exporter needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictSample {
    pub experiment: String,
    /// `treatment vs baseline` (and the group where an experiment has several).
    pub comparison: String,
    pub machine: String,
    pub ratio: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub conclusive: bool,
    /// Whether the engineering target is met (None: the CI straddles it),
    /// where the comparison has a target at all.
    pub target_met: Option<Option<bool>>,
    /// Unix time of the measurement.
    pub at_s: f64,
}

/// The latest sample per (experiment, comparison, machine); cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct Verdicts(Arc<Mutex<Vec<VerdictSample>>>);

impl Verdicts {
    /// Replace an experiment's verdicts with its latest run's.
    pub fn set(&self, experiment: &str, samples: Vec<VerdictSample>) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.retain(|s| s.experiment != experiment);
        g.extend(samples);
    }

    pub fn snapshot(&self) -> Vec<VerdictSample> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `--metrics ADDR` of `run` and `suite`: an exporter of these verdicts.
    pub fn exporter(
        &self,
        addr: Option<std::net::SocketAddr>,
        quiet: bool,
    ) -> anyhow::Result<Option<super::Exporter>> {
        if addr.is_none() {
            return Ok(None);
        }
        let reg = super::registry();
        reg.write()
            .unwrap_or_else(|e| e.into_inner())
            .register_collector(Box::new(self.clone()));
        super::start_if(addr, &reg, quiet)
    }
}

impl Collector for Verdicts {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let v = self.snapshot();
        let labels = |s: &VerdictSample| {
            vec![
                ("experiment", s.experiment.clone()),
                ("comparison", s.comparison.clone()),
                ("machine", s.machine.clone()),
            ]
        };
        let each = |f: &dyn Fn(&VerdictSample) -> Option<f64>| -> Vec<(enc::Labels, f64)> {
            v.iter()
                .filter_map(|s| f(s).map(|x| (labels(s), x)))
                .collect()
        };
        enc::gauge(
            &mut e,
            "verdict_ratio",
            "Last measured ratio of a comparison (treatment cost / baseline cost; > 1: the treatment is slower)",
            None,
            &each(&|s| Some(s.ratio)),
        )?;
        enc::gauge(
            &mut e,
            "verdict_ratio_ci_low",
            "Lower bound of the ratio's 95% bootstrap CI",
            None,
            &each(&|s| Some(s.ci_low)),
        )?;
        enc::gauge(
            &mut e,
            "verdict_ratio_ci_high",
            "Upper bound of the ratio's 95% bootstrap CI",
            None,
            &each(&|s| Some(s.ci_high)),
        )?;
        enc::gauge(
            &mut e,
            "verdict_conclusive",
            "1 when the CI decides the comparison, 0 when it is inconclusive",
            None,
            &each(&|s| Some(f64::from(u8::from(s.conclusive)))),
        )?;
        enc::gauge(
            &mut e,
            "verdict_target_met",
            "1 when the comparison meets its engineering target, 0 when it misses it, NaN when the CI straddles it (comparisons with a target only)",
            None,
            &each(&|s| {
                s.target_met
                    .map(|m| m.map_or(f64::NAN, |met| f64::from(u8::from(met))))
            }),
        )?;
        enc::gauge(
            &mut e,
            "verdict_timestamp_seconds",
            "Unix time the verdict was measured",
            None,
            &each(&|s| Some(s.at_s)),
        )
    }
}
