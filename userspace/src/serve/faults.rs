//! Faults `hwprof serve` injects on request, each off by default, so the load
//! engine, soak and gate can be shown to find what they claim.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// The whole server stops serving for `.1` every `.0` (requests arriving
    /// meanwhile wait until the stall ends).
    pub stall: Option<(Duration, Duration)>,
    /// Percent added to every service time (busy: the CPU is held).
    pub slowdown_pct: f64,
    /// Bytes leaked (allocated, touched, never freed) per request.
    pub leak_bytes_per_op: usize,
    /// Probability that a request fails with 500.
    pub error_rate: f64,
    /// Every request's work (and its --slowdown) serialised on one mutex.
    pub global_lock: bool,
    /// The faults above start this long after the server does (a regression
    /// switched on mid-run: alerts and gates must see the change, not a level).
    pub after: Duration,
}

impl Faults {
    /// Whether the faults are on at `since_start` (after their onset).
    pub fn on(&self, since_start: Duration) -> bool {
        since_start >= self.after
    }

    /// How long a request arriving at `since_start` waits for a stall to end.
    pub fn stall_remaining(&self, since_start: Duration) -> Option<Duration> {
        let (every, length) = self.stall?;
        if !self.on(since_start) {
            return None;
        }
        let every_ns = every.as_nanos().max(1);
        let phase = since_start.as_nanos() % every_ns;
        // The stall sits at the end of each period, so a server starts serving.
        let start = every_ns - length.as_nanos().min(every_ns);
        (phase >= start).then(|| Duration::from_nanos((every_ns - phase) as u64))
    }

    /// What the startup line says.
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some((e, f)) = self.stall {
            v.push(format!(
                "stall {} every {}",
                humantime::format_duration(f),
                humantime::format_duration(e)
            ));
        }
        if self.slowdown_pct > 0.0 {
            v.push(format!("slowdown +{}%", self.slowdown_pct));
        }
        if self.leak_bytes_per_op > 0 {
            v.push(format!("leak {} B/op", self.leak_bytes_per_op));
        }
        if self.error_rate > 0.0 {
            v.push(format!("error rate {}", self.error_rate));
        }
        if self.global_lock {
            v.push("global lock".into());
        }
        if v.is_empty() {
            "none".into()
        } else if !self.after.is_zero() {
            format!(
                "{} from {} after start",
                v.join(", "),
                humantime::format_duration(self.after)
            )
        } else {
            v.join(", ")
        }
    }
}

/// `--leak-bytes-per-op`: memory allocated, written and never freed, at
/// exactly the bytes asked per request. The bytes go into 1 MiB chunks that
/// are filled in order (zeroed chunks come from mmap untouched, so RSS grows
/// page by page as they fill), so the planted rate is the rate RSS grows: a
/// box per request would add the allocator's header and a pointer to keep it,
/// several times the bytes asked for small leaks.
#[derive(Default)]
pub struct Leak {
    chunks: Vec<Vec<u8>>,
    /// Bytes written into the last chunk.
    fill: usize,
    /// Bytes leaked so far.
    pub total: u64,
}

/// Size of one chunk of the leak.
const LEAK_CHUNK: usize = 1 << 20;

impl Leak {
    /// Leak `bytes` more: written (so resident), never freed while the server runs.
    pub fn add(&mut self, mut bytes: usize) {
        self.total += bytes as u64;
        while bytes > 0 {
            if self.chunks.is_empty() || self.fill == LEAK_CHUNK {
                // Reserved once, so the list's own growth is negligible.
                if self.chunks.capacity() == self.chunks.len() {
                    self.chunks.reserve(self.chunks.len().max(64));
                }
                self.chunks.push(vec![0u8; LEAK_CHUNK]);
                self.fill = 0;
            }
            let n = bytes.min(LEAK_CHUNK - self.fill);
            let chunk = self.chunks.last_mut().expect("a chunk was just pushed");
            chunk[self.fill..self.fill + n].fill(0xA5);
            self.fill += n;
            bytes -= n;
        }
    }
}

tokio::task_local! {
    /// Time the current request spent waiting out a --stall (not service).
    pub static STALL_WAITED: std::cell::Cell<Duration>;
}

/// Middleware for `--slowdown PCT`: PCT% more of each request's whole service
/// time (parsing, the work, the response), busy like real extra work. A stall
/// waited out inside the handler is not service and is not stretched.
pub async fn stretch(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let f = &st.faults;
    let exempt = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str() == "/metrics/prometheus");
    if f.slowdown_pct <= 0.0 || exempt {
        return next.run(req).await;
    }
    let t0 = Instant::now();
    let (resp, stalled) = STALL_WAITED
        .scope(std::cell::Cell::new(Duration::ZERO), async {
            let r = next.run(req).await;
            (r, STALL_WAITED.with(|w| w.get()))
        })
        .await;
    if f.on(st.started.elapsed()) {
        let served = t0.elapsed().saturating_sub(stalled);
        // With --global-lock the extra work is under the lock too: one big
        // lock around everything a request does, as such locks are.
        let _guard = f
            .global_lock
            .then(|| super::GLOBAL_LOCK.lock().unwrap_or_else(|e| e.into_inner()));
        let until = Instant::now() + served.mul_f64(f.slowdown_pct / 100.0);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
    resp
}

/// `--stall EVERY:FOR`, e.g. `2s:200ms`.
pub fn parse_stall(s: &str) -> Result<(Duration, Duration), String> {
    let (every, length) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected EVERY:FOR, e.g. 2s:200ms"))?;
    let every = crate::input::parse_seconds(every)?;
    let length = crate::input::parse_seconds(length)?;
    if length >= every {
        return Err(format!(
            "{s:?}: the stall ({length} s) must be shorter than its period ({every} s)"
        ));
    }
    Ok((
        Duration::from_secs_f64(every),
        Duration::from_secs_f64(length),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leak_holds_exactly_the_bytes_asked_for_across_chunks() {
        let mut l = Leak::default();
        for _ in 0..1000 {
            l.add(7);
        }
        assert_eq!(l.total, 7000);
        assert_eq!((l.chunks.len(), l.fill), (1, 7000));
        l.add(2 * LEAK_CHUNK + 5);
        assert_eq!(l.chunks.len(), 3);
        assert_eq!(l.fill, 7000 + 5);
        let written: usize = l.chunks[..2]
            .iter()
            .map(|c| c.iter().filter(|&&b| b == 0xA5).count())
            .sum::<usize>()
            + l.chunks[2][..l.fill].iter().filter(|&&b| b == 0xA5).count();
        assert_eq!(written as u64, l.total);
    }

    #[test]
    fn a_stall_covers_the_end_of_each_period() {
        let f = Faults {
            stall: Some(parse_stall("2s:200ms").unwrap()),
            ..Faults::default()
        };
        let ms = Duration::from_millis;
        assert_eq!(f.stall_remaining(ms(0)), None);
        assert_eq!(f.stall_remaining(ms(1799)), None);
        assert_eq!(f.stall_remaining(ms(1800)), Some(ms(200)));
        assert_eq!(f.stall_remaining(ms(1950)), Some(ms(50)));
        assert_eq!(f.stall_remaining(ms(3900)), Some(ms(100)));
        assert!(parse_stall("200ms:2s").is_err());
        // An onset delays the stalls too.
        let late = Faults {
            after: ms(5000),
            ..f.clone()
        };
        assert_eq!(late.stall_remaining(ms(1900)), None);
        assert_eq!(late.stall_remaining(ms(5900)), Some(ms(100)));
        assert!(late.describe().ends_with("from 5s after start"));
        assert!(parse_stall("2s").is_err());
    }
}
