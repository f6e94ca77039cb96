//! `hwprof load --metrics ADDR`: the run's figures as OpenMetrics, read at each
//! scrape from the same HdrHistograms and counters the report is built from
//! (so the dashboard and report.json agree, and a request costs nothing extra).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::exec::Live;
use super::record::{OpStats, Recorder};
use super::schedule::OpKind;
use crate::measure::process::Resources;
use crate::metrics::{enc, encode_resources, hdr_buckets, latency_buckets};

/// Quantiles of a previous run (`--baseline REPORT`), the reference line of the
/// latency panels and the P99 regression alert.
///
/// Two estimates per quantile: `exact` (the HdrHistogram's, 3 significant
/// digits, as in the report) and `buckets` (Prometheus's `histogram_quantile`
/// over this exporter's buckets, computed from the same histogram). Alerts
/// compare live `histogram_quantile` output with the `buckets` one: both carry
/// the same interpolation error, which would otherwise read as a regression.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Baseline {
    /// (operation or `all`, quantile, seconds): exact.
    pub latency: Vec<(String, &'static str, f64)>,
    /// The same quantiles as `histogram_quantile` would estimate them.
    pub latency_buckets: Vec<(String, &'static str, f64)>,
    pub throughput: Option<f64>,
    /// Where it came from (the report's path and start time).
    pub source: String,
}

impl Baseline {
    /// From a `hwprof load` report.json (or its --out directory), or an
    /// Engram-format results JSON (`p50_latency_ms`, …, `overall_throughput`).
    pub fn load(path: &std::path::Path) -> anyhow::Result<Baseline> {
        use crate::error::usage;
        let (file, v) = crate::input::read_report_json("--baseline", path)?;
        let mut b = Baseline {
            source: file.display().to_string(),
            ..Default::default()
        };
        let ms = |x: &serde_json::Value| x.as_f64().map(|m| m / 1e3);
        if v["kind"] == "load" {
            for (q, key) in [("0.5", "p50_ms"), ("0.9", "p90_ms"), ("0.99", "p99_ms")] {
                if let Some(s) = ms(&v["latency"][key]) {
                    b.latency.push(("all".into(), q, s));
                }
                if let Some(ops) = v["operations"].as_object() {
                    for (op, o) in ops {
                        if let Some(s) = ms(&o["latency"][key]) {
                            b.latency.push((op.clone(), q, s));
                        }
                    }
                }
            }
            b.throughput = v["achieved"]["rate"].as_f64();
            b.latency_buckets = bucket_quantiles(&v);
        } else if v.get("p99_latency_ms").is_some() {
            for (q, key) in [
                ("0.5", "p50_latency_ms"),
                ("0.95", "p95_latency_ms"),
                ("0.99", "p99_latency_ms"),
            ] {
                if let Some(s) = ms(&v[key]) {
                    b.latency.push(("all".into(), q, s));
                }
            }
            b.throughput = v["overall_throughput"].as_f64();
        }
        if b.latency.is_empty() {
            return Err(usage(format!(
                "--baseline {}: neither a hwprof load report nor Engram results (no latency quantiles)",
                file.display()
            )));
        }
        Ok(b)
    }
}

/// Prometheus's `histogram_quantile(q, …)` on cumulative-free buckets (upper
/// bound, count): the bucket holding rank q·n, interpolated linearly from its
/// lower bound (0 for the first); the +Inf bucket answers its lower bound.
pub fn prometheus_quantile(q: f64, buckets: &[(f64, u64)]) -> Option<f64> {
    let total: u64 = buckets.iter().map(|b| b.1).sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &(upper, n)) in buckets.iter().enumerate() {
        if (below + n) as f64 >= rank && n > 0 {
            let lower = if i == 0 { 0.0 } else { buckets[i - 1].0 };
            if upper.is_infinite() {
                return Some(lower);
            }
            return Some(lower + (upper - lower) * (rank - below as f64) / n as f64);
        }
        below += n;
    }
    buckets.iter().rev().nth(1).map(|b| b.0)
}

/// The quantiles a baseline carries, as labels and as numbers.
const QUANTILES: [(&str, f64); 3] = [("0.5", 0.5), ("0.9", 0.9), ("0.99", 0.99)];

/// The report's whole-run latency histograms, as `histogram_quantile` would
/// see them through this exporter's buckets: per operation and over all.
fn bucket_quantiles(v: &serde_json::Value) -> Vec<(String, &'static str, f64)> {
    let bounds = latency_buckets();
    let mut out = Vec::new();
    let mut all: Vec<(f64, u64)> = Vec::new();
    if let Some(hs) = v["histograms"].as_object() {
        for (op, h) in hs {
            let Some(b64) = h["latency"].as_str() else {
                continue;
            };
            let Ok(hist) = super::output::decode(b64) else {
                continue;
            };
            let (_, _, b) = hdr_buckets(&hist, &bounds);
            if all.is_empty() {
                all = b.clone();
            } else {
                all.iter_mut().zip(&b).for_each(|(a, x)| a.1 += x.1);
            }
            for (q, qf) in QUANTILES {
                if let Some(x) = prometheus_quantile(qf, &b) {
                    out.push((op.clone(), q, x));
                }
            }
        }
    }
    for (q, qf) in QUANTILES {
        if let Some(x) = prometheus_quantile(qf, &all) {
            out.push(("all".into(), q, x));
        }
    }
    out
}

/// What the collector reads; shared with the run.
pub struct LoadCollector {
    pub recorders: Vec<Arc<Mutex<Recorder>>>,
    pub live: Arc<Live>,
    /// The target's last /proc sample (the run's sampler writes it each interval).
    pub resources: Arc<Mutex<Option<Resources>>>,
    /// Baseline runs (`--baseline`, repeatable): one run's tail moves by tens
    /// of percent from run to run on a busy host, so several may be given.
    pub baseline: Vec<Baseline>,
    pub scenario: String,
    pub target: String,
}

/// The baselines' quantiles, per (operation, quantile, estimate): the median
/// and the highest over the baseline runs (`bound`); the regression alert
/// compares with the highest, so a clean run as noisy as the noisiest baseline
/// run does not fire it.
fn encode_baselines(e: &mut DescriptorEncoder, runs: &[Baseline]) -> Result<(), std::fmt::Error> {
    let mut by: BTreeMap<(String, &'static str, &'static str), Vec<f64>> = BTreeMap::new();
    for b in runs {
        for (est, list) in [("exact", &b.latency), ("buckets", &b.latency_buckets)] {
            for (o, q, v) in list {
                by.entry((o.clone(), q, est)).or_default().push(*v);
            }
        }
    }
    let mut samples = Vec::new();
    for ((o, q, est), mut v) in by {
        v.sort_by(f64::total_cmp);
        let median = crate::stats::median(&v);
        let max = *v.last().unwrap_or(&median);
        for (bound, x) in [("median", median), ("max", max)] {
            samples.push((
                vec![
                    ("operation", o.clone()),
                    ("quantile", q.to_string()),
                    ("estimate", est.to_string()),
                    ("bound", bound.to_string()),
                ],
                x,
            ));
        }
    }
    enc::gauge(
        e,
        "baseline_latency",
        "Latency quantiles of the baseline runs (--baseline): median and highest (bound) over the runs; exact (HdrHistogram) or as histogram_quantile estimates them (estimate)",
        Some(Unit::Seconds),
        &samples,
    )?;
    let one = |v: f64| vec![(Vec::new(), v)];
    enc::gauge(
        e,
        "baseline_runs",
        "Baseline runs behind hwprof_baseline_latency_seconds",
        None,
        &one(runs.len() as f64),
    )?;
    let mut t: Vec<f64> = runs.iter().filter_map(|b| b.throughput).collect();
    if !t.is_empty() {
        t.sort_by(f64::total_cmp);
        enc::gauge(
            e,
            "baseline_throughput_requests_per_second",
            "Median achieved throughput of the baseline runs (--baseline)",
            None,
            &one(crate::stats::median(&t)),
        )?;
    }
    Ok(())
}

// The registry wants Debug; the recorders' histograms are no reading matter.
impl std::fmt::Debug for LoadCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadCollector")
            .field("scenario", &self.scenario)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Per operation, summed over recorders: the three histograms as Prometheus
/// buckets, completed and failed counts.
struct OpTotals {
    latency: (f64, u64, Vec<(f64, u64)>),
    service: (f64, u64, Vec<(f64, u64)>),
    lag: (f64, u64, Vec<(f64, u64)>),
    completed: u64,
    errors: u64,
}

fn add(into: &mut (f64, u64, Vec<(f64, u64)>), from: (f64, u64, Vec<(f64, u64)>)) {
    if into.2.is_empty() {
        *into = from;
        return;
    }
    into.0 += from.0;
    into.1 += from.1;
    for (a, b) in into.2.iter_mut().zip(from.2) {
        a.1 += b.1;
    }
}

impl LoadCollector {
    fn totals(&self) -> (BTreeMap<OpKind, OpTotals>, Recorder) {
        let bounds = latency_buckets();
        let mut per: BTreeMap<OpKind, OpTotals> = BTreeMap::new();
        // Error kinds, drops and the dispatcher's lag: small, merged as they are.
        let mut rest = Recorder::new(1);
        for r in &self.recorders {
            let g = r.lock().unwrap_or_else(|e| e.into_inner());
            for (op, s) in &g.ops {
                let OpStats {
                    latency,
                    service,
                    lag,
                    completed,
                    errors,
                } = s;
                let t = per.entry(*op).or_insert_with(|| OpTotals {
                    latency: (0.0, 0, vec![]),
                    service: (0.0, 0, vec![]),
                    lag: (0.0, 0, vec![]),
                    completed: 0,
                    errors: 0,
                });
                add(&mut t.latency, hdr_buckets(latency, &bounds));
                add(&mut t.service, hdr_buckets(service, &bounds));
                add(&mut t.lag, hdr_buckets(lag, &bounds));
                t.completed += completed;
                t.errors += errors;
            }
            for (k, n) in &g.errors {
                *rest.errors.entry(*k).or_default() += n;
            }
            rest.dropped += g.dropped;
            rest.clamped += g.clamped;
            let _ = rest.dispatch_lag.add(&g.dispatch_lag);
        }
        (per, rest)
    }
}

impl Collector for LoadCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (per, rest) = self.totals();
        let op = |o: &OpKind| vec![("operation", o.name().to_string())];
        let mut requests = Vec::new();
        for (o, t) in &per {
            let mut ok = op(o);
            ok.push(("outcome", "ok".into()));
            requests.push((ok, (t.completed - t.errors) as f64));
            let mut err = op(o);
            err.push(("outcome", "error".into()));
            requests.push((err, t.errors as f64));
        }
        enc::counter(
            &mut e,
            "load_requests",
            "Requests completed, by operation and outcome (error: any failure, see hwprof_load_errors_total)",
            None,
            &requests,
        )?;
        // Every kind, zero or not: a series that appears only on the first
        // error would leave rate() blind to it.
        let errors: Vec<_> = super::record::ErrorKind::ALL
            .iter()
            .map(|k| {
                (
                    vec![("kind", k.name().to_string())],
                    rest.errors.get(k).copied().unwrap_or(0) as f64,
                )
            })
            .collect();
        enc::counter(
            &mut e,
            "load_errors",
            "Failed requests by kind (timeout, connection-refused, connection-reset, http-4xx, http-5xx, other)",
            None,
            &errors,
        )?;
        let hist = |f: &dyn Fn(&OpTotals) -> &(f64, u64, Vec<(f64, u64)>)| -> Vec<enc::HistSample> {
            per.iter().map(|(o, t)| (op(o), f(t).clone())).collect()
        };
        enc::histogram(
            &mut e,
            "load_latency",
            "Latency from each request's intended start to its completion (coordinated-omission free)",
            Some(Unit::Seconds),
            &hist(&|t| &t.latency),
        )?;
        enc::histogram(
            &mut e,
            "load_service",
            "Service time: completion minus the actual send",
            Some(Unit::Seconds),
            &hist(&|t| &t.service),
        )?;
        enc::histogram(
            &mut e,
            "load_schedule_lag",
            "Schedule lag: actual send minus intended start (the generator's own delay)",
            Some(Unit::Seconds),
            &hist(&|t| &t.lag),
        )?;
        let bounds = latency_buckets();
        enc::histogram(
            &mut e,
            "load_dispatch_lag",
            "The dispatcher's lag behind the schedule as it hands requests over (above 1 ms: the generator limits the run)",
            Some(Unit::Seconds),
            &[(vec![], hdr_buckets(&rest.dispatch_lag, &bounds))],
        )?;
        let live = &self.live;
        let one = |v: f64| vec![(Vec::new(), v)];
        enc::counter(
            &mut e,
            "load_offered_requests",
            "Requests whose intended start has come (the offered load)",
            None,
            &one(live.offered.load(Ordering::Relaxed) as f64),
        )?;
        enc::counter(
            &mut e,
            "load_dropped_requests",
            "Requests not sent: the in-flight limit was reached (the run was saturated)",
            None,
            &one(live.dropped.load(Ordering::Relaxed) as f64),
        )?;
        enc::counter(
            &mut e,
            "load_clamped_samples",
            "Samples above the histograms' top (1 h), recorded at the top",
            None,
            &one(rest.clamped as f64),
        )?;
        enc::gauge(
            &mut e,
            "load_in_flight_requests",
            "Requests sent or queued and not yet completed",
            None,
            &one(live.in_flight.load(Ordering::Relaxed) as f64),
        )?;
        enc::gauge(
            &mut e,
            "load_info",
            "The run: scenario and target (value 1)",
            None,
            &[(
                vec![
                    ("scenario", self.scenario.clone()),
                    ("target", self.target.clone()),
                ],
                1.0,
            )],
        )?;
        if let Some(r) = self.resources.lock().ok().and_then(|g| g.clone()) {
            encode_resources(&mut e, &r)?;
        }
        if !self.baseline.is_empty() {
            encode_baselines(&mut e, &self.baseline)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_as_prometheus_does() {
        // 980 in (0, 5 ms], 20 in (5, 10 ms]: rank 990 sits half-way into the second.
        let b = [(0.005, 980), (0.01, 20), (0.02, 0), (f64::INFINITY, 0)];
        assert!((prometheus_quantile(0.99, &b).unwrap() - 0.0075).abs() < 1e-12);
        assert!((prometheus_quantile(0.5, &b).unwrap() - 0.005 * 500.0 / 980.0).abs() < 1e-12);
        // A rank in the +Inf bucket answers the highest finite bound.
        let t = [(0.005, 1), (f64::INFINITY, 99)];
        assert_eq!(prometheus_quantile(0.99, &t), Some(0.005));
        assert_eq!(
            prometheus_quantile(0.99, &[(1.0, 0), (f64::INFINITY, 0)]),
            None
        );
    }

    #[test]
    fn the_exposition_carries_the_recorders_counts() {
        let rec = Arc::new(Mutex::new(Recorder::new(1_000_000_000)));
        {
            let mut g = rec.lock().unwrap();
            for i in 0..99u64 {
                g.complete(
                    OpKind::Search,
                    i * 1000,
                    i * 1000,
                    i * 1000 + 2_000_000,
                    None,
                );
            }
            g.complete(
                OpKind::Search,
                0,
                0,
                300_000_000,
                Some(super::super::record::ErrorKind::Http5xx),
            );
        }
        let live = Arc::new(Live::default());
        live.offered.store(100, Ordering::Relaxed);
        let c = LoadCollector {
            recorders: vec![rec],
            live,
            resources: Arc::new(Mutex::new(Some(Resources {
                rss_bytes: 4096,
                cpu_user_s: 1.5,
                cpu_sys_s: 0.5,
                threads: 3,
                open_fds: 9,
                ctx_voluntary: 0,
                ctx_involuntary: 0,
            }))),
            baseline: vec![
                Baseline {
                    latency: vec![("all".into(), "0.99", 0.002)],
                    latency_buckets: vec![],
                    throughput: Some(1000.0),
                    source: "test".into(),
                },
                Baseline {
                    latency: vec![("all".into(), "0.99", 0.003)],
                    latency_buckets: vec![],
                    throughput: Some(900.0),
                    source: "test".into(),
                },
                Baseline {
                    latency: vec![("all".into(), "0.99", 0.0025)],
                    latency_buckets: vec![],
                    throughput: Some(950.0),
                    source: "test".into(),
                },
            ],
            scenario: "s".into(),
            target: "http://127.0.0.1:1".into(),
        };
        let reg = crate::metrics::registry();
        reg.write().unwrap().register_collector(Box::new(c));
        let text = crate::metrics::encode(&reg);
        for line in [
            "hwprof_load_requests_total{operation=\"search\",outcome=\"ok\"} 99",
            "hwprof_load_requests_total{operation=\"search\",outcome=\"error\"} 1",
            "hwprof_load_errors_total{kind=\"http-5xx\"} 1",
            "hwprof_load_latency_seconds_count{operation=\"search\"} 100",
            "hwprof_load_latency_seconds_bucket{le=\"+Inf\",operation=\"search\"} 100",
            "hwprof_load_offered_requests_total 100",
            "hwprof_target_resident_memory_bytes 4096",
            "hwprof_target_cpu_seconds_total{mode=\"user\"} 1.5",
            "hwprof_baseline_latency_seconds{operation=\"all\",quantile=\"0.99\",estimate=\"exact\",bound=\"median\"} 0.0025",
            "hwprof_baseline_latency_seconds{operation=\"all\",quantile=\"0.99\",estimate=\"exact\",bound=\"max\"} 0.003",
            "hwprof_baseline_runs 3",
            "hwprof_baseline_throughput_requests_per_second 950",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            text.trim_end().ends_with("# EOF"),
            "not OpenMetrics: {text}"
        );
    }
}
