//! hwprof's eBPF programs: the shared maps and helpers here, one module per
//! probe (sched, futex, locks, memory, profile, uprobe), matching the probe's
//! folder in userspace/src/probes/. Every program first checks that the current
//! (or affected) thread is tracked: TIDS holds the target's threads, filled by
//! userspace and extended on fork (below). Aggregation happens here, in maps;
//! userspace reads the maps at the end. Tracepoint field offsets are the shared
//! constants of hwprof-probes-common's `fields`, which userspace checks against
//! tracefs before attaching.
#![no_std]
#![no_main]
// 64-bit atomic add (BPF_ATOMIC_ADD) is not exposed through core::sync on bpfel.
#![feature(core_intrinsics)]
#![allow(internal_features)]

use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, gen::bpf_ktime_get_ns};
use aya_ebpf::macros::{map, tracepoint};
#[cfg(not(feature = "no-events"))]
use aya_ebpf::maps::RingBuf;
use aya_ebpf::maps::{Array, HashMap, StackTrace};
use aya_ebpf::programs::TracePointContext;
use hwprof_probes_common::fields::SCHED_FORK_CHILD_PID;
use hwprof_probes_common::*;

pub(crate) const MAX_THREADS: u32 = 16384;

#[map]
pub(crate) static TIDS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_THREADS, 0);
#[map]
pub(crate) static THREADS: HashMap<u32, ThreadStats> = HashMap::with_max_entries(MAX_THREADS, 0);
#[map]
pub(crate) static HISTS: Array<u64> = Array::with_max_entries(HIST_SLOTS * HIST_BUCKETS, 0);
#[map]
pub(crate) static DROPS: Array<u64> = Array::with_max_entries(DROP_SLOTS, 0);
#[map]
pub(crate) static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);
/// Delays long enough to explain a slow request, with their times. Built
/// without it (feature `no-events`) for kernels before 5.8, which have no BPF
/// ring buffer: userspace falls back to that object.
#[cfg(not(feature = "no-events"))]
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Stream a delay of `tid` over [start, end) if it is long enough; counted as
/// dropped when the ring buffer is full.
#[inline(always)]
pub(crate) fn delay_event(tid: u32, kind: u32, start: u64, end: u64) {
    if end.saturating_sub(start) < EVENT_MIN_NS {
        return;
    }
    send_event(tid, kind, start, end);
}

#[inline(always)]
#[cfg(feature = "no-events")]
pub(crate) fn send_event(_tid: u32, _kind: u32, _start: u64, _end: u64) {}

/// Stream one event whatever its length (a point event: start = end).
#[inline(always)]
#[cfg(not(feature = "no-events"))]
pub(crate) fn send_event(tid: u32, kind: u32, start: u64, end: u64) {
    match EVENTS.reserve::<DelayEvent>(0) {
        Some(mut e) => {
            e.write(DelayEvent {
                tid,
                kind,
                start_ns: start,
                end_ns: end,
            });
            e.submit(0);
        }
        None => dropped(DROP_EVENTS),
    }
}

#[inline(always)]
pub(crate) fn now() -> u64 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
pub(crate) fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
pub(crate) fn tracked(tid: u32) -> Option<u32> {
    // SAFETY: read-only lookup of a plain u32.
    unsafe { TIDS.get(&tid).copied() }
}

#[inline(always)]
pub(crate) fn atomic_add(p: *mut u64, v: u64) {
    // SAFETY: p points into a map value that lives as long as the map.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, v) };
}

#[inline(always)]
pub(crate) fn dropped(slot: u32) {
    if let Some(p) = DROPS.get_ptr_mut(slot) {
        atomic_add(p, 1);
    }
}

#[inline(always)]
pub(crate) fn hist(slot: u32, v: u64) {
    let idx = slot * HIST_BUCKETS + log2_bucket(v);
    if let Some(p) = HISTS.get_ptr_mut(idx) {
        atomic_add(p, 1);
    }
}

/// sched:sched_switch's prev_pid, prev_state (-1 if unreadable: neither
/// runnable nor asleep) and next_pid.
#[inline(always)]
pub(crate) fn switch_fields(ctx: &TracePointContext) -> (u32, i64, u32) {
    use hwprof_probes_common::fields::*;
    // SAFETY: offsets of sched:sched_switch, checked by userspace against tracefs.
    unsafe {
        (
            ctx.read_at::<i32>(SCHED_SWITCH_PREV_PID.offset)
                .unwrap_or(0) as u32,
            ctx.read_at::<i64>(SCHED_SWITCH_PREV_STATE.offset)
                .unwrap_or(-1),
            ctx.read_at::<i32>(SCHED_SWITCH_NEXT_PID.offset)
                .unwrap_or(0) as u32,
        )
    }
}

/// The stats of `tid` if it is tracked: one lookup once its entry exists.
#[inline(always)]
pub(crate) fn tracked_stats(tid: u32) -> Option<*mut ThreadStats> {
    if let Some(p) = THREADS.get_ptr_mut(&tid) {
        return Some(p);
    }
    thread_stats(tid, tracked(tid)?)
}

#[inline(always)]
pub(crate) fn thread_stats(tid: u32, tgid: u32) -> Option<*mut ThreadStats> {
    if let Some(p) = THREADS.get_ptr_mut(&tid) {
        return Some(p);
    }
    let fresh = ThreadStats {
        tgid,
        ..Default::default()
    };
    if THREADS.insert(&tid, &fresh, 0).is_err() {
        dropped(DROP_THREADS);
        return None;
    }
    THREADS.get_ptr_mut(&tid)
}

mod futex;
mod locks;
mod memory;
mod profile;
mod sched;
mod uprobe;

/// Threads (and processes) created by a tracked thread are tracked too.
#[tracepoint]
pub fn hwp_sched_fork(ctx: TracePointContext) -> u32 {
    // SAFETY: sched_process_fork: child_pid at 20.
    let child = unsafe { ctx.read_at::<i32>(SCHED_FORK_CHILD_PID.offset).unwrap_or(0) } as u32;
    if let Some(tgid) = tracked(current_tid()) {
        if TIDS.insert(&child, &tgid, 0).is_err() {
            dropped(DROP_THREADS);
        }
    }
    0
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
