//! Live metrics: `--metrics ADDR` on `load`, `serve`, `attach`, `run` and `suite`
//! serves an OpenMetrics text exposition at `http://ADDR/metrics` for Prometheus.
//!
//! This module is the foundation the commands build on: the HTTP endpoint, the
//! address syntax, the conversions every collector needs (an HdrHistogram or a
//! kernel log2 histogram into Prometheus buckets), the verdict gauges and the
//! reference figures of other systems. What each command exports lives beside
//! it (`load/metrics.rs`, `probes/metrics.rs`, `serve/metrics.rs`).
//!
//! Conventions (Prometheus's): base units (`_seconds`, `_bytes`), counters end in
//! `_total`, every label set bounded (operation, outcome, error kind, top-N
//! symbols with `other`): never one series per request, thread or address.

pub mod references;
pub mod verdicts;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::registry::Registry;

/// The content type of the OpenMetrics text format, as Prometheus asks for it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Histogram bucket bounds for latencies, in seconds: 50 µs × 1.5^k up to
/// ~73 s (36 buckets). Fine enough that `histogram_quantile` moves by a few
/// percent when a tail does (a 5% regression alert needs that), coarse enough
/// to keep four operations' histograms under 500 series.
pub fn latency_buckets() -> Vec<f64> {
    // Rounded to three significant digits: `le` labels people can read.
    (0..36)
        .map(|k| {
            let x = 50e-6 * 1.5f64.powi(k);
            format!("{x:.2e}").parse().unwrap_or(x)
        })
        .collect()
}

/// `--metrics` values: `HOST:PORT`, `:PORT` or `PORT` (127.0.0.1), port 0 for
/// any free port (the address is printed).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    let with_host = if let Some(p) = t.strip_prefix(':') {
        format!("127.0.0.1:{p}")
    } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        format!("127.0.0.1:{t}")
    } else {
        t.to_string()
    };
    let (_, port) = with_host
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: expected HOST:PORT, :PORT or PORT"))?;
    port.parse::<u16>()
        .map_err(|_| format!("{s:?}: the port must be a number from 0 to 65535"))?;
    with_host
        .to_socket_addrs()
        .map_err(|e| format!("{s:?}: cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?}: no address"))
}

/// A registry shared by the exporter and whoever fills it; collectors are
/// registered before the first scrape and may be added later (a suite adds an
/// experiment's verdicts as it finishes).
pub type SharedRegistry = Arc<RwLock<Registry>>;

pub fn registry() -> SharedRegistry {
    Arc::new(RwLock::new(Registry::with_prefix("hwprof")))
}

/// Encode a registry as OpenMetrics text.
pub fn encode(reg: &SharedRegistry) -> String {
    let mut s = String::new();
    let g = reg.read().unwrap_or_else(|e| e.into_inner());
    // Writing into a String cannot fail; a collector's own error is dropped
    // with what it wrote so far rather than failing the scrape.
    let _ = prometheus_client::encoding::text::encode(&mut s, &g);
    s
}

/// The `/metrics` endpoint on its own thread and runtime, so a slow scrape
/// never shares a CPU queue with the work it observes.
pub struct Exporter {
    pub addr: SocketAddr,
    pub registry: SharedRegistry,
    /// Scrapes answered so far.
    scrapes: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    /// Bind `addr` (bad input if it cannot be bound: exit 2) and serve.
    pub fn start(addr: SocketAddr, registry: SharedRegistry) -> anyhow::Result<Exporter> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start the metrics runtime: {e}"))?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| {
                crate::error::usage(format!(
                    "--metrics {addr}: cannot listen: {}",
                    crate::input::io_reason(&e)
                ))
            })?;
        let bound = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (stop2, reg, n) = (
            Arc::clone(&stop),
            Arc::clone(&registry),
            Arc::clone(&scrapes),
        );
        let thread = std::thread::Builder::new()
            .name("hwprof-metrics".into())
            .spawn(move || {
                use axum::routing::get;
                let app = axum::Router::new()
                    .route(
                        "/metrics",
                        get(move || {
                            n.fetch_add(1, Ordering::Relaxed);
                            scrape(Arc::clone(&reg))
                        }),
                    )
                    .fallback(|| async {
                        (
                            axum::http::StatusCode::NOT_FOUND,
                            "hwprof exports its metrics at /metrics\n",
                        )
                    });
                rt.block_on(async move {
                    let shutdown = async move {
                        while !stop2.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await;
                });
            })
            .map_err(|e| anyhow::anyhow!("cannot start the metrics thread: {e}"))?;
        Ok(Exporter {
            addr: bound,
            registry,
            scrapes,
            stop,
            thread: Some(thread),
        })
    }
}

/// One scrape: the registry's text with OpenMetrics' content type.
pub async fn scrape(reg: SharedRegistry) -> axum::response::Response {
    use axum::response::IntoResponse;
    // Collectors read /proc and lock recorders: off the runtime's thread.
    let body = tokio::task::spawn_blocking(move || encode(&reg))
        .await
        .unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

impl Exporter {
    /// After the last figures are set: keep serving until one more scrape has
    /// taken them (at most `limit`, or until `interrupted`), so a command that
    /// ends between two scrapes does not lose its final verdicts.
    pub fn hold_for_one_scrape(&self, limit: Duration, interrupted: &AtomicBool) -> bool {
        let seen = self.scrapes.load(Ordering::Relaxed);
        let t0 = std::time::Instant::now();
        while t0.elapsed() < limit && !interrupted.load(Ordering::Relaxed) {
            if self.scrapes.load(Ordering::Relaxed) > seen {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start an exporter where `--metrics` asked for one, saying where on stderr.
pub fn start_if(
    addr: Option<SocketAddr>,
    registry: &SharedRegistry,
    quiet: bool,
) -> anyhow::Result<Option<Exporter>> {
    let Some(a) = addr else { return Ok(None) };
    let e = Exporter::start(a, Arc::clone(registry))?;
    if !quiet {
        eprintln!("hwprof: metrics on http://{}/metrics", e.addr);
    }
    Ok(Some(e))
}

/// Prometheus buckets (upper bound in seconds, count in that bucket, not
/// cumulative; the last bound is +Inf) from an HdrHistogram of nanoseconds.
/// Sum and count come from the same histogram, so the exposition and the
/// report agree exactly.
pub fn hdr_buckets(
    h: &hdrhistogram::Histogram<u64>,
    bounds_s: &[f64],
) -> (f64, u64, Vec<(f64, u64)>) {
    let mut counts = vec![0u64; bounds_s.len() + 1];
    let mut sum_ns = 0f64;
    for v in h.iter_recorded() {
        let n = v.count_at_value();
        // value_iterated_to is the highest value equivalent to the recorded
        // ones (3 significant digits): the bucket is chosen on that.
        let x_s = v.value_iterated_to() as f64 / 1e9;
        sum_ns += h.median_equivalent(v.value_iterated_to()) as f64 * n as f64;
        let i = bounds_s.partition_point(|&b| b < x_s);
        counts[i] += n;
    }
    let buckets = bounds_s
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .zip(counts)
        .collect();
    (sum_ns / 1e9, h.len(), buckets)
}

/// Prometheus buckets from a kernel log2 histogram (bucket i = [2^i, 2^(i+1)) ns,
/// given as (lower bound, count)): upper bounds 2^(i+1) ns in seconds.
pub fn log2_buckets(buckets_ns: &[(u64, u64)]) -> (f64, u64, Vec<(f64, u64)>) {
    let mut out: Vec<(f64, u64)> = (0..40)
        .map(|i| ((1u64 << (i + 1)) as f64 / 1e9, 0))
        .chain(std::iter::once((f64::INFINITY, 0)))
        .collect();
    let (mut sum, mut count) = (0f64, 0u64);
    for &(lo, n) in buckets_ns {
        let i = if lo == 0 { 0 } else { lo.ilog2() as usize };
        let slot = i.min(out.len() - 1);
        out[slot].1 += n;
        count += n;
        // Each value sits in [lo, 2lo): its midpoint stands for it in the sum.
        sum += (lo.max(1) as f64 * 1.5) * n as f64 / 1e9;
    }
    (sum, count, out)
}

/// A gauge, counter or histogram family encoded by a collector: the shared
/// boilerplate of describing it and writing one sample per label set.
pub mod enc {
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::metrics::MetricType;
    use prometheus_client::registry::Unit;
    use std::fmt::Error;

    pub type Labels<'a> = Vec<(&'static str, String)>;

    pub fn gauge(
        e: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        samples: &[(Labels, f64)],
    ) -> Result<(), Error> {
        plain(e, MetricType::Gauge, name, help, unit, samples)
    }

    pub fn counter(
        e: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        samples: &[(Labels, f64)],
    ) -> Result<(), Error> {
        plain(e, MetricType::Counter, name, help, unit, samples)
    }

    /// One value per label set, as a gauge or a counter (`_total`).
    fn plain(
        e: &mut DescriptorEncoder,
        kind: MetricType,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        samples: &[(Labels, f64)],
    ) -> Result<(), Error> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut m = e.encode_descriptor(name, help, unit.as_ref(), kind)?;
        for (l, v) in samples {
            let f = m.encode_family(l)?;
            match kind {
                MetricType::Counter => ConstCounter::new(*v).encode(f)?,
                _ => ConstGauge::new(*v).encode(f)?,
            }
        }
        Ok(())
    }

    pub type HistSample<'a> = (Labels<'a>, (f64, u64, Vec<(f64, u64)>));

    pub fn histogram(
        e: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        samples: &[HistSample],
    ) -> Result<(), Error> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut m = e.encode_descriptor(name, help, unit.as_ref(), MetricType::Histogram)?;
        for (l, (sum, count, buckets)) in samples {
            m.encode_family(l)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    *sum, *count, buckets, None,
                )?;
        }
        Ok(())
    }
}

/// The target process's resource use (from /proc): `hwprof_target_*`.
pub fn encode_resources(
    e: &mut prometheus_client::encoding::DescriptorEncoder,
    r: &crate::measure::process::Resources,
) -> Result<(), std::fmt::Error> {
    let one = |v: f64| vec![(Vec::new(), v)];
    enc::gauge(
        e,
        "target_resident_memory",
        "Resident set size of the target process",
        Some(prometheus_client::registry::Unit::Bytes),
        &one(r.rss_bytes as f64),
    )?;
    enc::counter(
        e,
        "target_cpu",
        "CPU time of the target process by mode",
        Some(prometheus_client::registry::Unit::Seconds),
        &[
            (vec![("mode", "user".to_string())], r.cpu_user_s),
            (vec![("mode", "system".to_string())], r.cpu_sys_s),
        ],
    )?;
    enc::gauge(
        e,
        "target_threads",
        "Threads of the target process",
        None,
        &one(r.threads as f64),
    )?;
    enc::gauge(
        e,
        "target_open_fds",
        "Open file descriptors of the target process",
        None,
        &one(r.open_fds as f64),
    )
}

/// This machine's name for the `machine` label: the hostname.
pub fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(parse_addr("9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(parse_addr(":0").unwrap().to_string(), "127.0.0.1:0");
        assert_eq!(
            parse_addr("127.0.0.1:9100").unwrap().to_string(),
            "127.0.0.1:9100"
        );
        assert!(parse_addr("").is_err());
        assert!(parse_addr("localhost").is_err());
        assert!(parse_addr("127.0.0.1:99999").unwrap_err().contains("port"));
    }

    #[test]
    fn hdr_buckets_keep_every_sample_and_the_sum() {
        let mut h =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1_000, 3_600_000_000_000, 3).unwrap();
        for _ in 0..90 {
            h.record(1_000_000).unwrap(); // 1 ms
        }
        for _ in 0..10 {
            h.record(200_000_000).unwrap(); // 200 ms
        }
        h.record(7_200_000_000_000).ok(); // beyond the top: refused by record
        let bounds = latency_buckets();
        let (sum, count, b) = hdr_buckets(&h, &bounds);
        assert_eq!(count, 100);
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 100);
        assert!((sum - (0.09 + 2.0)).abs() < 0.01, "sum {sum}");
        // 1 ms falls in the first bucket whose bound is at least 1 ms.
        let first = b.iter().position(|x| x.1 > 0).unwrap();
        assert!(b[first].0 >= 0.001 && (first == 0 || b[first - 1].0 < 0.001));
        assert_eq!(b[first].1, 90);
        assert_eq!(b.last().unwrap().0, f64::INFINITY);
    }

    #[test]
    fn log2_buckets_map_kernel_bins_to_upper_bounds() {
        // 5 values in [1024, 2048) ns, 1 in [1 Mi, 2 Mi) ns.
        let (_, count, b) = log2_buckets(&[(1024, 5), (1 << 20, 1)]);
        assert_eq!(count, 6);
        let at = |bound_ns: u64| {
            b.iter()
                .find(|x| (x.0 - bound_ns as f64 / 1e9).abs() < 1e-15)
                .unwrap()
                .1
        };
        assert_eq!(at(2048), 5);
        assert_eq!(at(1 << 21), 1);
    }
}
