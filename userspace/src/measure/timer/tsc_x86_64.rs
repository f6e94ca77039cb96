//! rdtsc on x86_64, usable only when the TSC is invariant (constant rate across
//! P-states and C-states), calibrated against CLOCK_MONOTONIC_RAW.

use super::clock_gettime;

#[inline(always)]
pub fn read() -> u64 {
    // SAFETY: rdtsc is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC ticks per second, or why the TSC must not be used.
pub fn calibrate() -> Result<f64, String> {
    let cpuid = raw_cpuid::CpuId::new();
    let invariant = cpuid
        .get_advanced_power_mgmt_info()
        .is_some_and(|p| p.has_invariant_tsc());
    if !invariant {
        return Err("the TSC is not invariant (CPUID 80000007h EDX[8] clear)".into());
    }
    // Three 10 ms windows; the median rejects one disturbed by preemption.
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let (t0, c0) = (clock_gettime::read_ns(), read());
            while clock_gettime::read_ns() - t0 < 10_000_000 {
                std::hint::spin_loop();
            }
            let (t1, c1) = (clock_gettime::read_ns(), read());
            (c1 - c0) as f64 * 1e9 / (t1 - t0) as f64
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    let hz = rates[1];
    if !(1e8..1e11).contains(&hz) {
        return Err(format!("implausible TSC rate {hz:.0} Hz"));
    }
    Ok(hz)
}
