//! mach_absolute_time on macOS, converted with the mach timebase.

#[repr(C)]
struct TimebaseInfo {
    numer: u32,
    denom: u32,
}

extern "C" {
    fn mach_absolute_time() -> u64;
    fn mach_timebase_info(info: *mut TimebaseInfo) -> i32;
}

#[inline(always)]
pub fn read() -> u64 {
    // SAFETY: no preconditions.
    unsafe { mach_absolute_time() }
}

pub fn ticks_per_second() -> f64 {
    let mut info = TimebaseInfo { numer: 0, denom: 0 };
    // SAFETY: info is a valid out-pointer.
    if unsafe { mach_timebase_info(&mut info) } != 0 || info.numer == 0 {
        return 1e9;
    }
    // One tick = numer/denom ns.
    1e9 * info.denom as f64 / info.numer as f64
}
