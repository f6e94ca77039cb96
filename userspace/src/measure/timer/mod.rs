//! Portable timers, one file per platform mechanism, and the choice between them.
//!
//! `Timer::best()` picks, in order: the invariant TSC (x86_64, calibrated against
//! CLOCK_MONOTONIC_RAW), the generic timer's virtual count CNTVCT_EL0 (aarch64),
//! mach_absolute_time (macOS), clock_gettime (anything else).

mod clock_gettime;
#[cfg(target_arch = "aarch64")]
mod cntvct_aarch64;
#[cfg(target_os = "macos")]
mod mach_macos;
#[cfg(target_arch = "x86_64")]
mod tsc_x86_64;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    Tsc,
    Cntvct,
    MachAbsoluteTime,
    ClockGettime,
}

/// A calibrated tick source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timer {
    pub kind: TimerKind,
    /// How it was chosen and calibrated, in words.
    pub description: String,
    pub ticks_per_second: f64,
    /// Smallest non-zero difference between two back-to-back reads, in ns.
    pub resolution_ns: f64,
    /// Median cost of one read, in ns.
    pub overhead_ns: f64,
}

impl Timer {
    /// Ticks now.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        match self.kind {
            #[cfg(target_arch = "x86_64")]
            TimerKind::Tsc => tsc_x86_64::read(),
            #[cfg(target_arch = "aarch64")]
            TimerKind::Cntvct => cntvct_aarch64::read(),
            #[cfg(target_os = "macos")]
            TimerKind::MachAbsoluteTime => mach_macos::read(),
            _ => clock_gettime::read_ns(),
        }
    }

    pub fn ticks_to_ns(&self, ticks: u64) -> f64 {
        ticks as f64 * 1e9 / self.ticks_per_second
    }

    /// The best timer this machine offers.
    pub fn best() -> Timer {
        #[allow(unused_mut)]
        let mut why_not: Vec<String> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        match tsc_x86_64::calibrate() {
            Ok(hz) => {
                return Timer::characterised(
                    TimerKind::Tsc,
                    hz,
                    format!(
                        "rdtsc: invariant TSC at {:.1} MHz, calibrated against CLOCK_MONOTONIC_RAW",
                        hz / 1e6
                    ),
                )
            }
            Err(e) => why_not.push(e),
        }
        #[cfg(target_arch = "aarch64")]
        {
            let hz = cntvct_aarch64::frequency();
            if hz > 0 {
                return Timer::characterised(
                    TimerKind::Cntvct,
                    hz as f64,
                    format!(
                        "CNTVCT_EL0: generic timer at {:.1} MHz (CNTFRQ_EL0)",
                        hz as f64 / 1e6
                    ),
                );
            }
            why_not.push("CNTFRQ_EL0 reads 0".into());
        }
        #[cfg(target_os = "macos")]
        {
            let hz = mach_macos::ticks_per_second();
            return Timer::characterised(
                TimerKind::MachAbsoluteTime,
                hz,
                format!("mach_absolute_time, timebase {:.1} MHz", hz / 1e6),
            );
        }
        #[allow(unreachable_code)]
        {
            let mut d = format!("clock_gettime({})", clock_gettime::CLOCK_NAME);
            if !why_not.is_empty() {
                d.push_str(&format!(" (no cycle timer: {})", why_not.join("; ")));
            }
            Timer::characterised(TimerKind::ClockGettime, 1e9, d)
        }
    }

    /// The portable fallback, always available.
    pub fn clock_gettime() -> Timer {
        Timer::characterised(
            TimerKind::ClockGettime,
            1e9,
            format!("clock_gettime({})", clock_gettime::CLOCK_NAME),
        )
    }

    fn characterised(kind: TimerKind, hz: f64, description: String) -> Timer {
        let mut t = Timer {
            kind,
            description,
            ticks_per_second: hz,
            resolution_ns: 0.0,
            overhead_ns: 0.0,
        };
        let (res, overhead) = t.characterise();
        t.resolution_ns = res;
        t.overhead_ns = overhead;
        t
    }

    /// Resolution (smallest non-zero step) and per-read cost, from back-to-back reads.
    fn characterise(&self) -> (f64, f64) {
        const N: usize = 2000;
        let mut min_step = u64::MAX;
        let mut reads = Vec::with_capacity(N);
        let mut last = self.now();
        for _ in 0..N {
            let now = self.now();
            let d = now.wrapping_sub(last);
            if d > 0 && d < min_step {
                min_step = d;
            }
            last = now;
        }
        for _ in 0..21 {
            let t0 = self.now();
            for _ in 0..100 {
                std::hint::black_box(self.now());
            }
            reads.push(self.ticks_to_ns(self.now().wrapping_sub(t0)) / 101.0);
        }
        reads.sort_by(|a, b| a.total_cmp(b));
        let res = if min_step == u64::MAX {
            f64::NAN
        } else {
            self.ticks_to_ns(min_step)
        };
        (res, reads[reads.len() / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chosen timer must agree with the OS monotonic clock over a window.
    #[test]
    fn best_timer_agrees_with_the_os_clock() {
        let t = Timer::best();
        let os = Timer::clock_gettime();
        let (a0, b0) = (t.now(), os.now());
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let (a1, b1) = (t.now(), os.now());
        let ta = t.ticks_to_ns(a1 - a0);
        let tb = os.ticks_to_ns(b1 - b0);
        let rel = (ta - tb).abs() / tb;
        assert!(rel < 0.02, "{:?}: {ta} ns vs clock_gettime {tb} ns", t.kind);
        assert!(
            t.resolution_ns > 0.0 && t.resolution_ns < 10_000.0,
            "{}",
            t.resolution_ns
        );
        assert!(
            t.overhead_ns > 0.0 && t.overhead_ns < 10_000.0,
            "{}",
            t.overhead_ns
        );
    }

    #[test]
    fn timer_is_monotonic() {
        let t = Timer::best();
        let mut last = t.now();
        for _ in 0..100_000 {
            let now = t.now();
            assert!(now >= last);
            last = now;
        }
    }
}
