//! Sending the schedule to a target, open loop.
//!
//! In-process targets (`noop`, `embedded`) run on pinned worker threads, each
//! owning a disjoint share of the schedule: it waits for each request's
//! intended time, runs it and records; a worker that falls behind shows it as
//! schedule lag (latency is still measured from the intended time).
//!
//! HTTP targets: one dispatcher thread walks the schedule and hands each
//! request, at its intended time, to a queue that `--connections` keep-alive
//! connections (hyper HTTP/1, on a tokio runtime) drain. Requests are sent
//! whether or not earlier ones returned; beyond `--max-in-flight` a request is
//! dropped and counted. Latency is completion − intended start, so a slow
//! server is never given less load than the schedule says.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use hwprof_workloads::memstore::{MemStore, SpaceId};

use super::record::{ErrorKind, Recorder};
use super::schedule::{OpKind, Plan, Request};

/// Where requests go.
#[derive(Clone)]
pub enum Target {
    /// Does nothing: the generator's own ceiling.
    Noop,
    /// The memstore in-process.
    Embedded(Arc<MemStore>),
    Http(HttpTarget),
}

#[derive(Debug, Clone)]
pub struct HttpTarget {
    pub addr: SocketAddr,
    pub host: String,
}

/// Embeddings and queries near the target's clusters, from a request's seed.
pub struct Payloads {
    centres: Vec<Vec<f32>>,
    sigma: f32,
    pub dim: usize,
}

impl Payloads {
    pub fn new(seed: u64, clusters: u32, dim: usize, sigma: f32) -> Self {
        Self {
            centres: hwprof_workloads::memstore::cluster_centres(seed, clusters, dim),
            sigma,
            dim,
        }
    }

    /// The embedding a request with this seed carries (or queries near).
    pub fn embedding(&self, cluster: u32, seed: u64, jitter: bool) -> Vec<f32> {
        let c = &self.centres[cluster as usize % self.centres.len()];
        let mut rng = SmallRng::seed_from_u64(seed);
        let s = self.sigma / (self.dim as f32).sqrt();
        let mut v: Vec<f32> = c
            .iter()
            .map(|x| x + s * (rng.random::<f32>() * 2.0 - 1.0) * 1.7)
            .collect();
        if jitter {
            // A recall near a stored embedding, not the same vector.
            let mut j = SmallRng::seed_from_u64(seed ^ 0x0123_4567);
            v.iter_mut()
                .for_each(|x| *x += 0.1 * s * (j.random::<f32>() - 0.5));
        }
        hwprof_workloads::memstore::normalise_vec(&mut v);
        v
    }

    /// `[0.0123,-0.0456,…]` with four decimals (what a client would send).
    pub fn json_array(v: &[f32]) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(v.len() * 8 + 2);
        s.push('[');
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{x:.4}");
        }
        s.push(']');
        s
    }
}

/// Live counters the progress line and the end of the run read.
#[derive(Default)]
pub struct Live {
    pub offered: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
    pub in_flight: AtomicUsize,
    pub in_flight_peak: AtomicUsize,
    /// The target stopped answering (connection refused for a second): the run ends.
    pub target_down: AtomicBool,
}

impl Live {
    fn enter(&self) {
        let n = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.in_flight_peak.fetch_max(n, Ordering::Relaxed);
    }
}

fn ns_since(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// Wait until `t` without burning a CPU the target may need: sleep while more
/// than 20 µs remain (the thread's timer slack is 1 ns, see [`precise_timers`]),
/// then yield until due.
fn wait_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > Duration::from_micros(20) {
            std::thread::sleep(left - Duration::from_micros(10));
        } else {
            std::thread::yield_now();
        }
    }
}

/// Ask the kernel to wake this thread's sleeps on time: the default timer
/// slack (50 µs) would add up to 50 µs of schedule lag to every request.
pub fn precise_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects this thread only.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Whether request `r` belongs to shard `shard`/`shards`, worker `w`/`workers`.
pub fn mine(r: &Request, shard: u64, shards: u64, w: u64, workers: u64) -> bool {
    r.index % shards == shard && (r.index / shards) % workers == w
}

/// The first error of a set of threads; any of them may report it.
#[derive(Default)]
struct FirstError(Mutex<Option<String>>);

impl FirstError {
    fn set(&self, msg: String, stop: &AtomicBool) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(msg);
        stop.store(true, Ordering::Relaxed);
    }

    fn into_result(self) -> anyhow::Result<()> {
        match self.0.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(anyhow::anyhow!(e)),
            None => Ok(()),
        }
    }
}

/// Run an in-process target on `workers` threads (pinned by `pin`).
#[allow(clippy::too_many_arguments)]
pub fn run_inline(
    plan: &Plan,
    target: &Target,
    payloads: &Payloads,
    shard: (u64, u64),
    workers: usize,
    recorders: &[Arc<Mutex<Recorder>>],
    live: &Live,
    t0: Instant,
    stop: &AtomicBool,
    pin: &(dyn Fn(usize) + Sync),
) -> anyhow::Result<()> {
    let errors = FirstError::default();
    std::thread::scope(|s| {
        for w in 0..workers {
            let rec = Arc::clone(&recorders[w]);
            let errors = &errors;
            let spawned = std::thread::Builder::new()
                .name(format!("hwprof-load-{w}"))
                .spawn_scoped(s, move || {
                    pin(w);
                    precise_timers();
                    let mut rng = SmallRng::seed_from_u64(plan.seed ^ w as u64);
                    let nodes = match target {
                        Target::Embedded(m) => m.config().nodes_per_space.max(1),
                        _ => 1,
                    };
                    for r in plan
                        .iter()
                        .filter(|r| mine(r, shard.0, shard.1, w as u64, workers as u64))
                    {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        wait_until(t0 + Duration::from_nanos(r.at_ns));
                        let sent = ns_since(t0);
                        live.offered.fetch_add(1, Ordering::Relaxed);
                        live.enter();
                        match target {
                            Target::Noop => {
                                std::hint::black_box(&r);
                            }
                            Target::Embedded(m) => {
                                let space = SpaceId(r.space % m.spaces());
                                match r.op {
                                    OpKind::Store => {
                                        let e = payloads.embedding(r.cluster, r.seed, false);
                                        m.store(space, nodes + r.index, &e);
                                    }
                                    OpKind::Recall => {
                                        let q = payloads.embedding(
                                            r.cluster,
                                            r.seed,
                                            r.follows.is_some(),
                                        );
                                        std::hint::black_box(
                                            m.recall(space, &q, 10, 256, &mut rng),
                                        );
                                    }
                                    OpKind::Search => {
                                        std::hint::black_box(m.search(space, r.seed % nodes));
                                    }
                                    OpKind::Completion => {
                                        std::hint::black_box(m.spread(
                                            space,
                                            r.seed % nodes,
                                            2,
                                            1.0,
                                            0.5,
                                        ));
                                    }
                                }
                            }
                            Target::Http(_) => unreachable!("HTTP targets use run_http"),
                        }
                        let done = ns_since(t0);
                        live.in_flight.fetch_sub(1, Ordering::Relaxed);
                        live.completed.fetch_add(1, Ordering::Relaxed);
                        let mut g = rec.lock().unwrap_or_else(|e| e.into_inner());
                        g.offered(r.at_ns);
                        g.dispatched(sent.saturating_sub(r.at_ns));
                        g.complete(r.op, r.at_ns, sent, done, None);
                    }
                });
            if let Err(e) = spawned {
                errors.set(
                    format!(
                        "cannot start load worker {w}: {} (ulimit -u?)",
                        crate::input::io_reason(&e)
                    ),
                    stop,
                );
                break;
            }
        }
    });
    errors.into_result()
}

/// How HTTP requests are sent.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Busy-wait (yielding to the connections) this long before each request.
    pub spin: Duration,
    pub connections: usize,
    pub max_in_flight: usize,
    pub timeout: Duration,
    pub threads: usize,
}

/// A request's HTTP form.
pub fn http_request(r: &Request, payloads: &Payloads, host: &str) -> hyper::Request<Full<Bytes>> {
    let space = if r.space == 0 {
        "default".to_string()
    } else {
        format!("space-{}", r.space)
    };
    let (method, uri, body) = match r.op {
        OpKind::Store => {
            let e = payloads.embedding(r.cluster, r.seed, false);
            (
                "POST",
                "/api/v1/memories/remember".to_string(),
                format!(
                    r#"{{"content":"hwprof load {} cluster {}","embedding":{},"confidence":0.9,"memory_space_id":"{space}"}}"#,
                    r.index,
                    r.cluster,
                    Payloads::json_array(&e)
                ),
            )
        }
        OpKind::Recall => {
            let q = payloads.embedding(r.cluster, r.seed, r.follows.is_some());
            (
                "GET",
                format!(
                    "/api/v1/memories/recall?embedding={}&threshold=0.0&max_results=10&space={space}",
                    url_encode(&Payloads::json_array(&q))
                ),
                String::new(),
            )
        }
        OpKind::Search => (
            "GET",
            format!(
                "/api/v1/memories/search?query=topic-{}-{}&limit=10&space={space}",
                r.cluster,
                r.seed % 1000
            ),
            String::new(),
        ),
        OpKind::Completion => {
            let q = payloads.embedding(r.cluster, r.seed, true);
            (
                "POST",
                "/api/v1/complete".to_string(),
                format!(
                    r#"{{"embedding":{},"memory_space_id":"{space}"}}"#,
                    Payloads::json_array(&q)
                ),
            )
        }
    };
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", host)
        .header("x-memory-space", &space);
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    b.body(Full::new(Bytes::from(body)))
        .expect("a well-formed request")
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        match b {
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn classify_io(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectionRefused,
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::UnexpectedEof => ErrorKind::ConnectionReset,
        std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, ErrorKind> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| classify_io(&e))?;
    let _ = stream.set_nodelay(true);
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|_| ErrorKind::ConnectionReset)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on a connection: status and body, or how it failed.
async fn send(
    sender: &mut Sender,
    req: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(u16, u32), ErrorKind> {
    let fut = async {
        sender
            .ready()
            .await
            .map_err(|_| ErrorKind::ConnectionReset)?;
        let resp = sender.send_request(req).await.map_err(|e| {
            if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
                ErrorKind::ConnectionReset
            } else {
                ErrorKind::Other
            }
        })?;
        let status = resp.status().as_u16();
        let thread = resp
            .headers()
            .get(crate::serve::SERVING_THREAD_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        resp.into_body()
            .collect()
            .await
            .map_err(|_| ErrorKind::ConnectionReset)?;
        Ok((status, thread))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ErrorKind::Timeout),
    }
}

/// A single request outside the run (health check, preflight, preload).
pub fn one_request(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    req: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    rt.block_on(async {
        let mut s = connect(addr).await.map_err(|e| e.name().to_string())?;
        let fut = async {
            let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| "timed out".to_string())?
    })
}

/// A µs-precise async sleep: a timerfd armed at an absolute CLOCK_MONOTONIC
/// time (what `Instant` reads), registered in tokio's epoll.
#[cfg(target_os = "linux")]
struct PreciseTimer(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>);

#[cfg(target_os = "linux")]
impl PreciseTimer {
    fn new() -> Option<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the descriptor is owned below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: fd was just created and is owned only here.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        #[allow(deprecated)] // AsyncFd::register is not in every tokio 1.x the lock may pick
        tokio::io::unix::AsyncFd::new(owned).ok().map(PreciseTimer)
    }

    async fn sleep_until(&mut self, due: Instant) {
        use std::os::fd::AsRawFd;
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let at_ns =
            now.tv_sec as i128 * 1_000_000_000 + now.tv_nsec as i128 + left.as_nanos() as i128;
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (at_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (at_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: valid descriptor and spec.
        let armed = unsafe {
            libc::timerfd_settime(
                self.0.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if armed != 0 {
            return;
        }
        loop {
            let Ok(mut guard) = self.0.readable().await else {
                return;
            };
            let mut buf = [0u8; 8];
            // SAFETY: reading the expiration count into an 8-byte buffer.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            if n == 8 {
                return;
            }
            guard.clear_ready();
            if Instant::now() >= due {
                return;
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
struct PreciseTimer;

#[cfg(not(target_os = "linux"))]
impl PreciseTimer {
    fn new() -> Option<Self> {
        None
    }
    async fn sleep_until(&mut self, _due: Instant) {}
}

/// The dispatcher's timer is armed at most this often (see `generator_thread`).
pub const TIMER_GRANULARITY: Duration = Duration::from_micros(100);

/// Run the schedule against an HTTP target.
///
/// Each generator thread runs its own single-threaded tokio runtime holding
/// its share of the connections and a dispatcher task for its share of the
/// schedule (wrk2's layout). The dispatcher and the I/O it triggers never wait
/// for each other's CPU: with a separate dispatcher thread on a shared CPU the
/// scheduler let the I/O thread finish its slice first (~3-4 ms of lag here).
/// The dispatcher sleeps on tokio's timer while a request is more than 1.5 ms
/// away and yields to the connection tasks for the last stretch.
#[allow(clippy::too_many_arguments)]
pub fn run_http(
    plan: &Plan,
    target: &HttpTarget,
    payloads: Arc<Payloads>,
    shard: (u64, u64),
    settings: &HttpSettings,
    recorder: &Arc<Mutex<Recorder>>,
    live: &Arc<Live>,
    t0: Instant,
    stop: &Arc<AtomicBool>,
    pin: &(dyn Fn(usize) + Sync),
) -> anyhow::Result<()> {
    let threads = settings.threads.clamp(1, settings.connections.max(1));
    let failure = FirstError::default();
    std::thread::scope(|sc| {
        for w in 0..threads {
            let (payloads, recorder, live, stop_w) = (
                Arc::clone(&payloads),
                Arc::clone(recorder),
                Arc::clone(live),
                Arc::clone(stop),
            );
            let failure = &failure;
            let conns =
                settings.connections / threads + usize::from(w < settings.connections % threads);
            let spawned = std::thread::Builder::new()
                .name(format!("hwprof-load-{w}"))
                .spawn_scoped(sc, move || {
                    pin(w);
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        // The dispatcher yields while it waits: poll I/O every few ticks, not every 61.
                        .event_interval(4)
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            failure.set(format!("cannot start the load runtime: {e}"), &stop_w);
                            return;
                        }
                    };
                    let local = tokio::task::LocalSet::new();
                    local.block_on(
                        &rt,
                        generator_thread(
                            plan,
                            target,
                            payloads,
                            shard,
                            (w as u64, threads as u64),
                            conns.max(1),
                            settings,
                            recorder,
                            live,
                            t0,
                            stop_w,
                        ),
                    );
                });
            if let Err(e) = spawned {
                failure.set(
                    format!(
                        "cannot start load thread {w}: {} (ulimit -u?)",
                        crate::input::io_reason(&e)
                    ),
                    stop,
                );
                break;
            }
        }
    });
    failure.into_result()
}

/// One generator thread: `conns` connections and the dispatcher of its share.
#[allow(clippy::too_many_arguments)]
async fn generator_thread(
    plan: &Plan,
    target: &HttpTarget,
    payloads: Arc<Payloads>,
    shard: (u64, u64),
    worker: (u64, u64),
    conns: usize,
    settings: &HttpSettings,
    recorder: Arc<Mutex<Recorder>>,
    live: Arc<Live>,
    t0: Instant,
    stop: Arc<AtomicBool>,
) {
    // Each request travels with the time the dispatcher handed it over.
    let (tx, rx) = flume::bounded::<(Request, u64)>(settings.max_in_flight.max(1));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let rx = rx.clone();
        let target = target.clone();
        let payloads = Arc::clone(&payloads);
        let recorder = Arc::clone(&recorder);
        let live = Arc::clone(&live);
        let timeout = settings.timeout;
        tasks.push(tokio::task::spawn_local(async move {
            let mut sender: Option<Sender> = None;
            let mut refused_since: Option<Instant> = None;
            let timeout_ns = timeout.as_nanos() as u64;
            while let Ok((r, handed)) = rx.recv_async().await {
                // A request still waiting here after its whole timeout (intended
                // start + timeout) has timed out: fail it without sending, or a
                // stuck target would make the queue drain for hours.
                // A request that failed before it was sent, at `now`.
                let fail_unsent = |now: u64, e: ErrorKind| {
                    live.in_flight.fetch_sub(1, Ordering::Relaxed);
                    live.completed.fetch_add(1, Ordering::Relaxed);
                    live.errors.fetch_add(1, Ordering::Relaxed);
                    let mut g = recorder.lock().unwrap_or_else(|e| e.into_inner());
                    g.offered(r.at_ns);
                    g.dispatched(handed.saturating_sub(r.at_ns));
                    g.complete(r.op, r.at_ns, now, now, Some(e));
                };
                let now = ns_since(t0);
                if now >= r.at_ns.saturating_add(timeout_ns) {
                    fail_unsent(now, ErrorKind::Timeout);
                    continue;
                }
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    // Connecting is bounded by what is left of the request's timeout:
                    // a target that stops accepting drops SYNs, and the kernel
                    // retries them for minutes.
                    let left = Duration::from_nanos(
                        r.at_ns.saturating_add(timeout_ns).saturating_sub(now),
                    );
                    let attempt = match tokio::time::timeout(left, connect(target.addr)).await {
                        Ok(c) => c,
                        Err(_) => Err(ErrorKind::Timeout),
                    };
                    match attempt {
                        Ok(s) => {
                            sender = Some(s);
                            refused_since = None;
                        }
                        Err(e) => {
                            let now = ns_since(t0);
                            if e == ErrorKind::ConnectionRefused {
                                let since = *refused_since.get_or_insert_with(Instant::now);
                                if since.elapsed() > Duration::from_secs(1) {
                                    live.target_down.store(true, Ordering::Relaxed);
                                }
                            }
                            fail_unsent(now, e);
                            // Do not spin on a dead target.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let req = http_request(&r, &payloads, &target.host);
                let sent = ns_since(t0);
                let result = match sender.as_mut() {
                    Some(s) => send(s, req, timeout).await,
                    None => Err(ErrorKind::Other),
                };
                let done = ns_since(t0);
                let thread = result.as_ref().map_or(0, |r| r.1);
                let error = match result {
                    Ok((s, _)) if s >= 500 => Some(ErrorKind::Http5xx),
                    Ok((s, _)) if s >= 400 => Some(ErrorKind::Http4xx),
                    Ok(_) => None,
                    Err(e) => {
                        // The connection may be unusable now: open a new one.
                        sender = None;
                        Some(e)
                    }
                };
                live.in_flight.fetch_sub(1, Ordering::Relaxed);
                live.completed.fetch_add(1, Ordering::Relaxed);
                if error.is_some() {
                    live.errors.fetch_add(1, Ordering::Relaxed);
                }
                let mut g = recorder.lock().unwrap_or_else(|e| e.into_inner());
                g.offered(r.at_ns);
                g.dispatched(handed.saturating_sub(r.at_ns));
                g.complete_on(r.op, r.at_ns, sent, done, error, thread);
            }
        }));
    }
    drop(rx);
    // The dispatcher, at each intended time: a timerfd (an hrtimer, µs
    // precise) in the runtime's epoll, where tokio's own timer has 1 ms ticks.
    let mut timer = PreciseTimer::new();
    let coarse = Duration::from_micros(1500);
    // Arm the timer at most once per TIMER_GRANULARITY: arming it is a VM exit
    // on a guest (it took 31% of the generator's CPU at 40k req/s, once per
    // request); a request due sooner after the last arming goes with the next
    // wake, at most that much late (its lag is recorded; latency still counts
    // from its intended start).
    let mut next_arm = Instant::now();
    for r in plan
        .iter()
        .filter(|r| mine(r, shard.0, shard.1, worker.0, worker.1))
    {
        if stop.load(Ordering::Relaxed) || live.target_down.load(Ordering::Relaxed) {
            break;
        }
        let due = t0 + Duration::from_nanos(r.at_ns);
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            // Within the spin window: yield to the connections until due (a
            // VM's wakeup from idle can take milliseconds; this CPU stays busy).
            if due - now <= settings.spin {
                tokio::task::yield_now().await;
                continue;
            }
            match timer.as_mut() {
                Some(t) => {
                    let at = (due - settings.spin).max(next_arm);
                    next_arm = at + TIMER_GRANULARITY;
                    t.sleep_until(at).await
                }
                None if due - now > coarse => {
                    // tokio's timer wheel has 1 ms ticks: wake a little early.
                    tokio::time::sleep(due - now - Duration::from_millis(1)).await;
                }
                None => tokio::task::yield_now().await,
            }
        }
        let now = ns_since(t0);
        live.offered.fetch_add(1, Ordering::Relaxed);
        if live.in_flight.load(Ordering::Relaxed) >= settings.max_in_flight {
            let mut g = recorder.lock().unwrap_or_else(|e| e.into_inner());
            g.offered(r.at_ns);
            g.drop_request();
            live.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        live.enter();
        if tx.send_async((r, now)).await.is_err() {
            break;
        }
    }
    drop(tx);
    // Let in-flight requests finish (each is bounded by the timeout).
    for t in tasks {
        let _ = t.await;
    }
}
