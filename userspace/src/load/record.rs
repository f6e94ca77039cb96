//! What the generator records: per operation, latency (completion − intended
//! start), service time (completion − actual send) and schedule lag (actual
//! send − intended start) in HdrHistograms from 1 µs to 1 h at 3 significant
//! digits, in nanoseconds. No sample is discarded: a value above an hour is
//! recorded at the top and counted as clamped. Per interval window, each
//! operation's latency histogram (for the .hlog) and the offered, completed
//! and failed counts.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::schedule::OpKind;

pub const LOWEST_NS: u64 = 1_000;
pub const HIGHEST_NS: u64 = 3_600_000_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, 3).expect("valid bounds")
}

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    Timeout,
    ConnectionRefused,
    ConnectionReset,
    Http4xx,
    Http5xx,
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        Self::Timeout,
        Self::ConnectionRefused,
        Self::ConnectionReset,
        Self::Http4xx,
        Self::Http5xx,
        Self::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::ConnectionRefused => "connection-refused",
            Self::ConnectionReset => "connection-reset",
            Self::Http4xx => "http-4xx",
            Self::Http5xx => "http-5xx",
            Self::Other => "other",
        }
    }
}

#[derive(Clone)]
pub struct OpStats {
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub completed: u64,
    pub errors: u64,
}

impl OpStats {
    fn new() -> Self {
        Self {
            latency: histogram(),
            service: histogram(),
            lag: histogram(),
            completed: 0,
            errors: 0,
        }
    }
}

#[derive(Clone, Default)]
pub struct Window {
    /// Requests whose intended start fell in the window.
    pub offered: u64,
    /// Requests that completed (successfully or not) in the window.
    pub completed: u64,
    pub errors: u64,
    /// Latency of the requests completed in the window, per operation.
    pub latency: BTreeMap<OpKind, Histogram<u64>>,
}

#[derive(Clone)]
pub struct Recorder {
    pub interval_ns: u64,
    pub ops: BTreeMap<OpKind, OpStats>,
    pub windows: Vec<Window>,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Values above an hour, recorded at the top.
    pub clamped: u64,
    pub dropped: u64,
    pub dispatch_lag: Histogram<u64>,
    /// Every request's times and serving thread, kept when the tails are to
    /// be attributed to probe events (`keep_requests`).
    pub requests: Vec<KeptRequest>,
    pub keep_requests: bool,
}

/// One request kept for attribution: times in ns since the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeptRequest {
    pub intended_ns: u64,
    pub sent_ns: u64,
    pub done_ns: u64,
    /// The target's thread that served it, from the response's
    /// `x-hwprof-thread` header (hwprof serve sends it); 0 when unknown.
    pub thread: u32,
}

/// Requests kept for attribution at most (32 B each: 160 MB).
pub const MAX_KEPT_REQUESTS: usize = 5_000_000;

impl Recorder {
    pub fn new(interval_ns: u64) -> Self {
        Self {
            interval_ns: interval_ns.max(1),
            ops: BTreeMap::new(),
            windows: Vec::new(),
            errors: BTreeMap::new(),
            clamped: 0,
            dropped: 0,
            dispatch_lag: histogram(),
            requests: Vec::new(),
            keep_requests: false,
        }
    }

    fn window(&mut self, at_ns: u64) -> &mut Window {
        let i = (at_ns / self.interval_ns) as usize;
        if self.windows.len() <= i {
            self.windows.resize_with(i + 1, Window::default);
        }
        &mut self.windows[i]
    }

    fn put(h: &mut Histogram<u64>, v: u64, clamped: &mut u64) {
        if v > HIGHEST_NS {
            *clamped += 1;
        }
        h.saturating_record(v.max(1));
    }

    /// A request was due at `intended_ns` (offered load, by intended time).
    pub fn offered(&mut self, intended_ns: u64) {
        self.window(intended_ns).offered += 1;
    }

    /// A request could not be sent: the in-flight limit was reached.
    pub fn drop_request(&mut self) {
        self.dropped += 1;
    }

    pub fn dispatched(&mut self, lag_ns: u64) {
        let mut c = self.clamped;
        Self::put(&mut self.dispatch_lag, lag_ns, &mut c);
        self.clamped = c;
    }

    /// A request finished: times in ns since the run's start.
    pub fn complete(
        &mut self,
        op: OpKind,
        intended_ns: u64,
        sent_ns: u64,
        done_ns: u64,
        error: Option<ErrorKind>,
    ) {
        self.complete_on(op, intended_ns, sent_ns, done_ns, error, 0)
    }

    /// [`Recorder::complete`] for a request the target says `thread` served.
    pub fn complete_on(
        &mut self,
        op: OpKind,
        intended_ns: u64,
        sent_ns: u64,
        done_ns: u64,
        error: Option<ErrorKind>,
        thread: u32,
    ) {
        if self.keep_requests && self.requests.len() < MAX_KEPT_REQUESTS {
            self.requests.push(KeptRequest {
                intended_ns,
                sent_ns,
                done_ns,
                thread,
            });
        }
        let latency = done_ns.saturating_sub(intended_ns);
        let service = done_ns.saturating_sub(sent_ns);
        let lag = sent_ns.saturating_sub(intended_ns);
        let mut clamped = self.clamped;
        let s = self.ops.entry(op).or_insert_with(OpStats::new);
        Self::put(&mut s.latency, latency, &mut clamped);
        Self::put(&mut s.service, service, &mut clamped);
        Self::put(&mut s.lag, lag, &mut clamped);
        s.completed += 1;
        if let Some(e) = error {
            s.errors += 1;
            *self.errors.entry(e).or_default() += 1;
        }
        let w = self.window(done_ns);
        w.completed += 1;
        if error.is_some() {
            w.errors += 1;
        }
        let mut c2 = 0;
        Self::put(
            w.latency.entry(op).or_insert_with(histogram),
            latency,
            &mut c2,
        );
        self.clamped = clamped;
    }

    /// Add another recorder's counts (shards, worker threads): histograms add
    /// exactly, windows by index.
    pub fn merge(&mut self, o: &Recorder) {
        for (op, s) in &o.ops {
            let m = self.ops.entry(*op).or_insert_with(OpStats::new);
            let _ = m.latency.add(&s.latency);
            let _ = m.service.add(&s.service);
            let _ = m.lag.add(&s.lag);
            m.completed += s.completed;
            m.errors += s.errors;
        }
        if self.windows.len() < o.windows.len() {
            self.windows.resize_with(o.windows.len(), Window::default);
        }
        for (i, w) in o.windows.iter().enumerate() {
            let m = &mut self.windows[i];
            m.offered += w.offered;
            m.completed += w.completed;
            m.errors += w.errors;
            for (op, h) in &w.latency {
                let _ = m.latency.entry(*op).or_insert_with(histogram).add(h);
            }
        }
        for (k, n) in &o.errors {
            *self.errors.entry(*k).or_default() += n;
        }
        self.clamped += o.clamped;
        self.dropped += o.dropped;
        let _ = self.dispatch_lag.add(&o.dispatch_lag);
        let room = MAX_KEPT_REQUESTS.saturating_sub(self.requests.len());
        self.requests.extend(o.requests.iter().take(room).copied());
        self.keep_requests |= o.keep_requests;
    }

    /// Latency over every operation.
    pub fn all_latency(&self) -> Histogram<u64> {
        let mut h = histogram();
        for s in self.ops.values() {
            let _ = h.add(&s.latency);
        }
        h
    }
}

/// Percentiles of one histogram in milliseconds, each tail figure only where
/// enough samples lie beyond it (at least 10: p99 needs 1,000 samples, p99.99
/// 100,000), with the count behind each.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub p9999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    /// Samples at or beyond each reported tail figure.
    pub tail_samples: BTreeMap<String, u64>,
    /// Quantiles left out for want of samples.
    pub withheld: Vec<String>,
}

pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let n = h.len();
    let ms = |v: u64| v as f64 / 1e6;
    let mut tail_samples = BTreeMap::new();
    let mut withheld = Vec::new();
    let mut q = |name: &str, q: f64| -> Option<f64> {
        if n == 0 {
            return None;
        }
        let beyond = ((1.0 - q) * n as f64).floor() as u64;
        if q > 0.5 && beyond < 10 {
            withheld.push(name.to_string());
            return None;
        }
        if q > 0.5 {
            tail_samples.insert(name.to_string(), beyond);
        }
        Some(ms(h.value_at_quantile(q)))
    };
    let p50 = q("p50", 0.5);
    let p90 = q("p90", 0.9);
    let p95 = q("p95", 0.95);
    let p99 = q("p99", 0.99);
    let p999 = q("p99.9", 0.999);
    let p9999 = q("p99.99", 0.9999);
    Percentiles {
        count: n,
        p50_ms: p50,
        p90_ms: p90,
        p95_ms: p95,
        p99_ms: p99,
        p999_ms: p999,
        p9999_ms: p9999,
        max_ms: (n > 0).then(|| ms(h.max())),
        mean_ms: (n > 0).then(|| h.mean() / 1e6),
        tail_samples,
        withheld,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_discarded_and_tails_need_samples() {
        let mut r = Recorder::new(1_000_000_000);
        for i in 0..999u64 {
            r.complete(OpKind::Recall, 0, 0, 1_000_000 + i, None);
        }
        // Two hours: above the top, kept and counted.
        r.complete(OpKind::Recall, 0, 0, 7_200_000_000_000, None);
        let s = &r.ops[&OpKind::Recall];
        assert_eq!(s.latency.len(), 1000);
        assert_eq!(r.clamped, 2, "latency and service; lag is 0");
        let p = percentiles(&s.latency);
        assert!(p.p99_ms.is_some() && p.p999_ms.is_none());
        assert_eq!(p.withheld, vec!["p99.9", "p99.99"]);
        assert!(p.max_ms.unwrap() >= 3_599_000.0);
    }
}
