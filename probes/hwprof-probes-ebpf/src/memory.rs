//! `memory`: user page faults and NUMA balancing events of tracked threads.

use aya_ebpf::macros::tracepoint;
use aya_ebpf::programs::TracePointContext;
use hwprof_probes_common::fields::*;
use hwprof_probes_common::*;

use crate::*;

#[inline(always)]
fn bump(tid: u32, f: impl FnOnce(&mut ThreadStats)) {
    if let Some(s) = tracked_stats(tid) {
        // SAFETY: map value pointer.
        f(unsafe { &mut *s });
    }
}

#[tracepoint]
pub fn hwp_page_fault(_ctx: TracePointContext) -> u32 {
    bump(current_tid(), |s| s.page_faults += 1);
    0
}

#[tracepoint]
pub fn hwp_migrate_pages(ctx: TracePointContext) -> u32 {
    // SAFETY: mm_migrate_pages: succeeded at 8.
    let n = unsafe {
        ctx.read_at::<u64>(MIGRATE_PAGES_SUCCEEDED.offset)
            .unwrap_or(0)
    };
    bump(current_tid(), |s| s.migrated_pages += n);
    0
}

#[tracepoint]
pub fn hwp_numa_move(ctx: TracePointContext) -> u32 {
    // SAFETY: sched_move_numa: pid at 8.
    let pid = unsafe { ctx.read_at::<i32>(NUMA_MOVE_PID.offset).unwrap_or(0) } as u32;
    bump(pid, |s| s.numa_moves += 1);
    0
}

#[tracepoint]
pub fn hwp_numa_swap(ctx: TracePointContext) -> u32 {
    // SAFETY: sched_swap_numa: src_pid at 8, dst_pid at 28.
    let (src, dst) = unsafe {
        (
            ctx.read_at::<i32>(NUMA_SWAP_SRC_PID.offset).unwrap_or(0) as u32,
            ctx.read_at::<i32>(NUMA_SWAP_DST_PID.offset).unwrap_or(0) as u32,
        )
    };
    bump(src, |s| s.numa_swaps += 1);
    bump(dst, |s| s.numa_swaps += 1);
    0
}

#[tracepoint]
pub fn hwp_numa_stick(ctx: TracePointContext) -> u32 {
    // SAFETY: sched_stick_numa: src_pid at 8.
    let src = unsafe { ctx.read_at::<i32>(NUMA_STICK_SRC_PID.offset).unwrap_or(0) } as u32;
    bump(src, |s| s.numa_sticks += 1);
    0
}
