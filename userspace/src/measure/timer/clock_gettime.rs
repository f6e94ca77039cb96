//! clock_gettime: the portable fallback, in nanoseconds.

#[cfg(target_os = "linux")]
const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC_RAW;
#[cfg(target_os = "linux")]
pub const CLOCK_NAME: &str = "CLOCK_MONOTONIC_RAW";
#[cfg(not(target_os = "linux"))]
const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;
#[cfg(not(target_os = "linux"))]
pub const CLOCK_NAME: &str = "CLOCK_MONOTONIC";

#[inline(always)]
pub fn read_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; CLOCK is supported on the target.
    unsafe { libc::clock_gettime(CLOCK, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
