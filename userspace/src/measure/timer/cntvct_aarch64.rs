//! The Arm generic timer's virtual count, readable from EL0 on Linux and macOS.

#[inline(always)]
pub fn read() -> u64 {
    let v: u64;
    // SAFETY: CNTVCT_EL0 is readable at EL0 on Linux and macOS (CNTKCTL_EL1.EL0VCTEN).
    // The isb keeps the read from being hoisted above earlier instructions.
    unsafe { core::arch::asm!("isb", "mrs {v}, cntvct_el0", v = out(reg) v, options(nostack)) };
    v
}

pub fn frequency() -> u64 {
    let f: u64;
    // SAFETY: CNTFRQ_EL0 is readable at EL0.
    unsafe { core::arch::asm!("mrs {f}, cntfrq_el0", f = out(reg) f, options(nomem, nostack)) };
    f
}
