//! `hwprof serve`: an Engram-compatible HTTP server over the embedded memstore,
//! the default system under test of `hwprof load`. It speaks the Engram REST
//! subset hwprof loads (remember, recall, search, complete, health) with JSON
//! errors (400 for bad requests, 404 for unknown routes), keeps connections
//! alive, and can inject faults for testing the tools themselves: a periodic
//! stall of the whole server, a slowdown of every service time, a memory leak
//! per operation, an error rate, one global lock.

pub mod child;
pub mod faults;
pub mod metrics;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use hwprof_workloads::memstore::{MemStore, SpaceId, StoreConfig};

pub use faults::Faults;

/// What `hwprof serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Nodes generated before serving (per memory space).
    pub preload: u64,
    pub dim: usize,
    pub spaces: u32,
    pub clusters: u32,
    pub seed: u64,
    /// Tokio worker threads (default: one per CPU).
    pub threads: Option<usize>,
    pub faults: Faults,
    /// Also serve the metrics at http://ADDR/metrics (they are always at
    /// /metrics/prometheus on the server's own port, as Engram has them).
    pub metrics: Option<SocketAddr>,
}

/// `--global-lock`: every request's work under this one mutex. A static, as
/// such locks usually are, so a futex probe names it by its symbol.
pub static GLOBAL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The store and the fault state every request shares.
pub struct AppState {
    store: MemStore,
    dim: usize,
    next_id: AtomicU64,
    faults: Faults,
    started: Instant,
    leaked: std::sync::Mutex<faults::Leak>,
    pub requests: AtomicU64,
    pub metrics: metrics::ServeMetrics,
}

/// A running server: its address, and how to stop it.
pub struct ServerHandle {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    pub state: Arc<AppState>,
    /// `--metrics ADDR`: the exporter, stopped with the server.
    pub exporter: Option<crate::metrics::Exporter>,
}

impl ServerHandle {
    /// Stop accepting, finish in-flight requests, join the server's runtime.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Generate the store (with `progress(done, total)`), bind, and serve on a
/// runtime of its own thread until `stop` (or the returned handle) says so.
pub fn start(
    opts: &ServeOptions,
    stop: Arc<AtomicBool>,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<(ServerHandle, Duration)> {
    let t0 = Instant::now();
    let store = MemStore::generate_with(
        StoreConfig {
            spaces: opts.spaces.max(1),
            nodes_per_space: opts.preload,
            dim: opts.dim,
            clusters: opts.clusters.max(1),
            seed: opts.seed,
            ..StoreConfig::default()
        },
        progress,
    );
    let preload_time = t0.elapsed();
    let state = Arc::new(AppState {
        store,
        dim: opts.dim,
        next_id: AtomicU64::new(opts.preload),
        faults: opts.faults.clone(),
        started: Instant::now(),
        leaked: std::sync::Mutex::new(faults::Leak::default()),
        requests: AtomicU64::new(0),
        metrics: metrics::ServeMetrics::new(),
    });
    metrics::register(&state);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all().thread_name("hwprof-serve");
    if let Some(n) = opts.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the server's runtime: {e}"))?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(opts.addr))
        .map_err(|e| crate::error::usage(format!("--addr {}: cannot listen: {e}", opts.addr)))?;
    let addr = listener.local_addr()?;
    let app = router(Arc::clone(&state));
    let stop2 = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("hwprof-serve".into())
        .spawn(move || -> anyhow::Result<()> {
            rt.block_on(async move {
                let shutdown = async move {
                    while !stop2.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .map_err(|e| anyhow::anyhow!("server: {e}"))
            })
        })
        .map_err(|e| anyhow::anyhow!("cannot start the server thread: {e}"))?;
    let exporter = crate::metrics::start_if(opts.metrics, &state.metrics.registry, false)?;
    Ok((
        ServerHandle {
            addr,
            stop,
            thread: Some(thread),
            state,
            exporter,
        },
        preload_time,
    ))
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/system/health", get(health))
        .route("/api/v1/memories/remember", post(remember))
        .route("/api/v1/memories/recall", get(recall))
        .route("/api/v1/memories/search", get(search))
        .route("/api/v1/complete", post(complete))
        .route("/metrics/prometheus", get(prometheus))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(serving_thread))
        // Inner: the injected slowdown; outer: the metrics, which time it too.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            faults::stretch,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            metrics::track,
        ))
        .with_state(state)
}

/// Response header naming the kernel thread that finished the request's work,
/// so `hwprof load` can join a slow request with that thread's probe events.
pub const SERVING_THREAD_HEADER: &str = "x-hwprof-thread";

/// Tag each response with the thread that completed it: the handler's work
/// runs synchronously in the poll that completes it, on this thread.
async fn serving_thread(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        SERVING_THREAD_HEADER,
        axum::http::HeaderValue::from(crate::probes::gettid()),
    );
    resp
}

/// Engram's metrics route: the same exposition as `--metrics ADDR`.
async fn prometheus(State(st): State<Arc<AppState>>) -> Response {
    crate::metrics::scrape(st.metrics.registry.clone()).await
}

fn error(status: StatusCode, code: &str, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into(), "code": code }))).into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no route {}", uri.path()),
    )
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    Json(json!({
        "status": "healthy",
        "server": "hwprof serve",
        "version": env!("CARGO_PKG_VERSION"),
        "memories": st.store.total_len(),
        "memory_spaces": st.store.spaces(),
        "embedding_dim": st.dim,
        "uptime_seconds": st.started.elapsed().as_secs_f64(),
    }))
    .into_response()
}

/// A space name (body, query or `X-Memory-Space`) → one of the store's spaces.
/// `default` is space 0; other names hash onto the configured spaces.
fn space_of(st: &AppState, name: Option<&str>) -> SpaceId {
    match name {
        None | Some("") | Some("default") => SpaceId(0),
        Some(n) => {
            let mut h = DefaultHasher::new();
            n.hash(&mut h);
            SpaceId((h.finish() % u64::from(st.store.spaces())) as u32)
        }
    }
}

/// The space a query names (`space=`, `memory_space_id=`, or the header).
fn query_space(st: &AppState, q: &RecallQuery, h: &HeaderMap) -> SpaceId {
    let name = q
        .space
        .clone()
        .or_else(|| q.memory_space_id.clone())
        .or_else(|| header_space(h));
    space_of(st, name.as_deref())
}

fn header_space(h: &HeaderMap) -> Option<String> {
    h.get("x-memory-space")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Run one request's work under the injected faults: wait out a stall, fail
/// at the error rate, hold the global lock, stretch the service time, leak.
async fn serve_op<T>(st: &AppState, work: impl FnOnce() -> T) -> Result<T, Response> {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let since = st.started.elapsed();
    if let Some(wait) = st.faults.stall_remaining(since) {
        tokio::time::sleep(wait).await;
        let _ = faults::STALL_WAITED.try_with(|w| w.set(w.get() + wait));
    }
    if !st.faults.on(since) {
        return Ok(work());
    }
    if st.faults.error_rate > 0.0 && rand::rng().random_bool(st.faults.error_rate.min(1.0)) {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INJECTED_FAULT",
            "injected fault (--error-rate)",
        ));
    }
    let _guard = st
        .faults
        .global_lock
        .then(|| GLOBAL_LOCK.lock().unwrap_or_else(|e| e.into_inner()));
    // --slowdown stretches the whole service time (parsing, work, the
    // response): faults::stretch applies it around the handler.
    let out = work();
    if st.faults.leak_bytes_per_op > 0 {
        st.leaked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(st.faults.leak_bytes_per_op);
    }
    Ok(out)
}

/// A JSON body of type `T` carrying an embedding of the server's dimension, or
/// the 400 that says what is wrong with it.
fn parse_body<T: serde::de::DeserializeOwned>(
    st: &AppState,
    body: &[u8],
    what: &str,
    embedding: impl Fn(&T) -> &[f32],
) -> Result<T, Response> {
    let b: T = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            format!("not a {what} request: {e}"),
        )
    })?;
    check_dim(st, embedding(&b))?;
    Ok(b)
}

fn check_dim(st: &AppState, e: &[f32]) -> Result<(), Response> {
    if e.len() != st.dim {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_EMBEDDING",
            format!(
                "embedding has {} dimensions; this server stores {}-d embeddings",
                e.len(),
                st.dim
            ),
        ));
    }
    if e.iter().any(|x| !x.is_finite()) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_EMBEDDING",
            "embedding holds a non-finite value",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct RememberBody {
    #[serde(default)]
    content: String,
    embedding: Vec<f32>,
    #[serde(default)]
    confidence: Option<f32>,
    #[serde(default)]
    memory_space_id: Option<String>,
}

async fn remember(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let b: RememberBody = match parse_body(&st, &body, "remember", |b: &RememberBody| &b.embedding)
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    let confidence = b.confidence.unwrap_or(0.8);
    if !(0.0..=1.0).contains(&confidence) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_CONFIDENCE",
            "confidence must lie in 0..1",
        );
    }
    let space_name = b.memory_space_id.clone().or_else(|| header_space(&headers));
    let space = space_of(&st, space_name.as_deref());
    let st2 = Arc::clone(&st);
    let id = match serve_op(&st, move || {
        let id = st2.next_id.fetch_add(1, Ordering::Relaxed);
        st2.store.store(space, id, &b.embedding);
        id
    })
    .await
    {
        Ok(id) => id,
        Err(r) => return r,
    };
    (
        StatusCode::CREATED,
        Json(json!({
            "memory_id": format!("mem_{id}"),
            "storage_confidence": { "value": confidence, "category": "High" },
            "memory_space_id": space_name.unwrap_or_else(|| "default".into()),
            "content_bytes": b.content.len(),
            "message": "memory stored",
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct RecallQuery {
    embedding: Option<String>,
    query: Option<String>,
    threshold: Option<f32>,
    max_results: Option<usize>,
    limit: Option<usize>,
    space: Option<String>,
    memory_space_id: Option<String>,
}

/// Top matches of `query` in `space` above `threshold`, at most `k`.
fn do_recall(
    st: &AppState,
    space: SpaceId,
    query: &[f32],
    threshold: f32,
    k: usize,
) -> serde_json::Value {
    let mut rng = rand::rng();
    let hits = st
        .store
        .recall(space, query, k.clamp(1, 100), 256, &mut rng);
    let memories: Vec<_> = hits
        .into_iter()
        .filter(|(_, sim)| *sim >= threshold)
        .map(|(id, sim)| {
            json!({
                "id": format!("mem_{id}"),
                "confidence": { "value": sim.clamp(0.0, 1.0) },
                "similarity": sim,
            })
        })
        .collect();
    json!({ "total": memories.len(), "memories": { "vivid": memories, "associated": [], "reconstructed": [] } })
}

async fn recall(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<RecallQuery>,
) -> Response {
    let Some(text) = q.embedding.as_deref() else {
        return error(
            StatusCode::BAD_REQUEST,
            "MISSING_EMBEDDING",
            "recall needs embedding=<JSON array>",
        );
    };
    let e: Vec<f32> = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_EMBEDDING",
                format!("embedding is not a JSON array of numbers: {e}"),
            )
        }
    };
    if let Err(r) = check_dim(&st, &e) {
        return r;
    }
    let space = query_space(&st, &q, &headers);
    let threshold = q.threshold.unwrap_or(0.0);
    let k = q.max_results.or(q.limit).unwrap_or(10);
    let st2 = Arc::clone(&st);
    match serve_op(&st, move || do_recall(&st2, space, &e, threshold, k)).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

/// A text query as an embedding: a deterministic unit vector from the text,
/// so the same query always asks the same question of the store.
fn text_embedding(text: &str, dim: usize) -> Vec<f32> {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let mut x = h.finish() | 1;
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            ((x.wrapping_mul(0x2545F4914F6CDD1D) >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    hwprof_workloads::memstore::normalise_vec(&mut v);
    v
}

async fn search(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<RecallQuery>,
) -> Response {
    let Some(text) = q.query.clone().filter(|t| !t.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MISSING_QUERY",
            "search needs query=<text>",
        );
    };
    let space = query_space(&st, &q, &headers);
    let k = q.limit.or(q.max_results).unwrap_or(10);
    let st2 = Arc::clone(&st);
    match serve_op(&st, move || {
        let e = text_embedding(&text, st2.dim);
        do_recall(&st2, space, &e, 0.0, k)
    })
    .await
    {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct CompleteBody {
    embedding: Vec<f32>,
    #[serde(default)]
    memory_space_id: Option<String>,
}

/// Pattern completion: spreading activation from the best match of the partial
/// pattern, returning what it reached.
async fn complete(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let b: CompleteBody =
        match parse_body(&st, &body, "completion", |b: &CompleteBody| &b.embedding) {
            Ok(b) => b,
            Err(r) => return r,
        };
    let space = space_of(
        &st,
        b.memory_space_id
            .clone()
            .or_else(|| header_space(&headers))
            .as_deref(),
    );
    let st2 = Arc::clone(&st);
    match serve_op(&st, move || {
        let mut rng = rand::rng();
        let best = st2.store.recall(space, &b.embedding, 1, 64, &mut rng);
        best.first()
            .map(|(seed, _)| st2.store.spread(space, *seed, 2, 1.0, 0.5))
            .unwrap_or_default()
    })
    .await
    {
        Ok(reached) => Json(json!({
            "completed": reached.iter().take(20).map(|id| format!("mem_{id}")).collect::<Vec<_>>(),
            "activated": reached.len(),
        }))
        .into_response(),
        Err(r) => r,
    }
}
