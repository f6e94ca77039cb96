//! `hwprof serve`'s own metrics, at `/metrics/prometheus` (Engram's route) and,
//! with `--metrics ADDR`, on a separate port: requests by route and status,
//! service time by route, memories held, the faults in force and the server
//! process's resources.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Unit;

use super::AppState;
use crate::metrics::{enc, latency_buckets, SharedRegistry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    route: String,
}

type Durations = Family<Route, Histogram, fn() -> Histogram>;

pub struct ServeMetrics {
    pub registry: SharedRegistry,
    requests: Family<RouteStatus, Counter>,
    duration: Durations,
}

fn duration_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

impl ServeMetrics {
    pub fn new() -> Self {
        let registry = crate::metrics::registry();
        let requests = Family::<RouteStatus, Counter>::default();
        let duration: Durations = Family::new_with_constructor(duration_histogram);
        {
            let mut g = registry.write().unwrap_or_else(|e| e.into_inner());
            g.register(
                "serve_requests",
                "HTTP requests answered, by route (as registered; unmatched for 404s) and status",
                requests.clone(),
            );
            g.register_with_unit(
                "serve_request_duration",
                "Time from a request's arrival at the router to its response (service time, server side)",
                Unit::Seconds,
                duration.clone(),
            );
        }
        Self {
            registry,
            requests,
            duration,
        }
    }
}

impl Default for ServeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The state-reading part: memories, faults, the process (a weak reference:
/// the registry lives inside the state it reads).
struct StateCollector(Weak<AppState>);

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateCollector")
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(st) = self.0.upgrade() else {
            return Ok(());
        };
        let one = |v: f64| vec![(Vec::new(), v)];
        enc::gauge(
            &mut e,
            "serve_memories",
            "Memories held, over all memory spaces",
            None,
            &one(st.store.total_len() as f64),
        )?;
        let on = st.faults.on(st.started.elapsed());
        let f = &st.faults;
        enc::gauge(
            &mut e,
            "serve_fault_slowdown_percent",
            "Injected slowdown in force (--slowdown, after --faults-after): the planted regression",
            None,
            &one(if on { f.slowdown_pct } else { 0.0 }),
        )?;
        enc::gauge(
            &mut e,
            "serve_fault_error_rate",
            "Injected error rate in force (--error-rate)",
            None,
            &one(if on { f.error_rate } else { 0.0 }),
        )?;
        enc::gauge(
            &mut e,
            "serve_fault_leak_bytes_per_request",
            "Injected leak in force (--leak-bytes-per-op)",
            None,
            &one(if on { f.leak_bytes_per_op as f64 } else { 0.0 }),
        )?;
        enc::counter(
            &mut e,
            "serve_received_requests",
            "Requests that reached an operation handler",
            None,
            &one(st.requests.load(Ordering::Relaxed) as f64),
        )?;
        if let Some(r) = crate::measure::process::sample_process(std::process::id()) {
            crate::metrics::encode_resources(&mut e, &r)?;
        }
        Ok(())
    }
}

/// Register the state collector once the state exists.
pub fn register(state: &Arc<AppState>) {
    let mut g = state
        .metrics
        .registry
        .write()
        .unwrap_or_else(|e| e.into_inner());
    g.register_collector(Box::new(StateCollector(Arc::downgrade(state))));
}

/// Middleware: count and time every request by its route (the time includes
/// an injected --slowdown: it is service time as the client sees it).
pub async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let t0 = Instant::now();
    let resp = next.run(req).await;
    let secs = t0.elapsed().as_secs_f64();
    st.metrics
        .requests
        .get_or_create(&RouteStatus {
            route: route.clone(),
            status: resp.status().as_u16().to_string(),
        })
        .inc();
    st.metrics
        .duration
        .get_or_create(&Route { route })
        .observe(secs);
    resp
}
