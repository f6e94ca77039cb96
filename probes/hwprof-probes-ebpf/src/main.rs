//! hwprof's eBPF programs. Every program first checks that the current (or
//! affected) thread is tracked: TIDS holds the target's threads, filled by
//! userspace and extended on fork. Aggregation happens here, in maps; userspace
//! reads the maps at the end. Tracepoint field offsets are the stable layouts of
//! the tracefs `format` files; userspace checks them before attaching.
#![no_std]
#![no_main]
// 64-bit atomic add (BPF_ATOMIC_ADD) is not exposed through core::sync on bpfel.
#![feature(core_intrinsics)]
#![allow(internal_features)]

use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::bindings::BPF_F_USER_STACK;
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, gen::bpf_ktime_get_ns};
use aya_ebpf::macros::{map, perf_event, tracepoint, uprobe, uretprobe};
use aya_ebpf::maps::{Array, HashMap, StackTrace};
use aya_ebpf::programs::{PerfEventContext, ProbeContext, RetProbeContext, TracePointContext};
use hwprof_probes_common::*;

const MAX_THREADS: u32 = 16384;

#[map]
static TIDS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_THREADS, 0);
#[map]
static THREADS: HashMap<u32, ThreadStats> = HashMap::with_max_entries(MAX_THREADS, 0);
#[map]
static MIGRATIONS: HashMap<MigrationKey, u64> = HashMap::with_max_entries(4096, 0);
#[map]
static HISTS: Array<u64> = Array::with_max_entries(HIST_SLOTS * HIST_BUCKETS, 0);
#[map]
static DROPS: Array<u64> = Array::with_max_entries(DROP_SLOTS, 0);
#[map]
static FUTEX_START: HashMap<u32, FutexStart> = HashMap::with_max_entries(MAX_THREADS, 0);
#[map]
static FUTEXES: HashMap<FutexKey, FutexStats> = HashMap::with_max_entries(16384, 0);
#[map]
static LOCK_START: HashMap<u32, LockStart> = HashMap::with_max_entries(MAX_THREADS, 0);
#[map]
static LOCKS: HashMap<LockKey, LockStats> = HashMap::with_max_entries(8192, 0);
#[map]
static UPROBE_START: HashMap<u64, u64> = HashMap::with_max_entries(MAX_THREADS, 0);
#[map]
static UPROBES: Array<UprobeStats> = Array::with_max_entries(MAX_UPROBES, 0);
#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(16384, 0);
#[map]
static STACK_COUNTS: HashMap<StackKey, u64> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn now() -> u64 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
fn tracked(tid: u32) -> Option<u32> {
    // SAFETY: read-only lookup of a plain u32.
    unsafe { TIDS.get(&tid).copied() }
}

#[inline(always)]
fn atomic_add(p: *mut u64, v: u64) {
    // SAFETY: p points into a map value that lives as long as the map.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, v) };
}

#[inline(always)]
fn dropped(slot: u32) {
    if let Some(p) = DROPS.get_ptr_mut(slot) {
        atomic_add(p, 1);
    }
}

#[inline(always)]
fn hist(slot: u32, v: u64) {
    let idx = slot * HIST_BUCKETS + log2_bucket(v);
    if let Some(p) = HISTS.get_ptr_mut(idx) {
        atomic_add(p, 1);
    }
}

#[inline(always)]
fn thread_stats(tid: u32, tgid: u32) -> Option<*mut ThreadStats> {
    if let Some(p) = THREADS.get_ptr_mut(&tid) {
        return Some(p);
    }
    let fresh = ThreadStats { tgid, ..Default::default() };
    if THREADS.insert(&tid, &fresh, 0).is_err() {
        dropped(DROP_THREADS);
        return None;
    }
    THREADS.get_ptr_mut(&tid)
}

// ---- sched ----------------------------------------------------------------

#[tracepoint]
pub fn hwp_sched_switch(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets of sched:sched_switch, checked by userspace against tracefs.
    let (prev, prev_state, next) = unsafe {
        (
            ctx.read_at::<i32>(24).unwrap_or(0) as u32,
            ctx.read_at::<i64>(32).unwrap_or(-1),
            ctx.read_at::<i32>(56).unwrap_or(0) as u32,
        )
    };
    let ts = now();
    if let Some(tgid) = tracked(prev) {
        if let Some(s) = thread_stats(prev, tgid) {
            // SAFETY: s points into the THREADS map value.
            unsafe {
                if (*s).last_on != 0 {
                    (*s).on_cpu_ns += ts - (*s).last_on;
                }
                (*s).last_off = ts;
                (*s).switches += 1;
                // Still runnable: preempted, and waiting on the run queue from now.
                if prev_state == 0 {
                    (*s).preempted += 1;
                    (*s).last_wakeup = ts;
                }
            }
        }
    }
    if let Some(tgid) = tracked(next) {
        if let Some(s) = thread_stats(next, tgid) {
            // SAFETY: as above.
            unsafe {
                if (*s).last_off != 0 {
                    let off = ts - (*s).last_off;
                    (*s).off_cpu_ns += off;
                    hist(HIST_OFF_CPU, off);
                }
                if (*s).last_wakeup != 0 {
                    let rq = ts - (*s).last_wakeup;
                    (*s).runq_ns += rq;
                    hist(HIST_RUNQ, rq);
                    (*s).last_wakeup = 0;
                }
                (*s).last_on = ts;
            }
        }
    }
    0
}

#[inline(always)]
fn wakeup(ctx: &TracePointContext) {
    // SAFETY: pid at offset 24 in sched_wakeup and sched_wakeup_new.
    let pid = unsafe { ctx.read_at::<i32>(24).unwrap_or(0) } as u32;
    if let Some(tgid) = tracked(pid) {
        if let Some(s) = thread_stats(pid, tgid) {
            // SAFETY: map value pointer.
            unsafe {
                (*s).wakeups += 1;
                (*s).last_wakeup = now();
            }
        }
    }
}

#[tracepoint]
pub fn hwp_sched_wakeup(ctx: TracePointContext) -> u32 {
    wakeup(&ctx);
    0
}

#[tracepoint]
pub fn hwp_sched_wakeup_new(ctx: TracePointContext) -> u32 {
    wakeup(&ctx);
    0
}

#[tracepoint]
pub fn hwp_sched_migrate(ctx: TracePointContext) -> u32 {
    // SAFETY: sched_migrate_task: pid 12, orig_cpu 20, dest_cpu 24.
    let (pid, orig, dest) = unsafe {
        (
            ctx.read_at::<i32>(12).unwrap_or(0) as u32,
            ctx.read_at::<i32>(20).unwrap_or(0) as u32,
            ctx.read_at::<i32>(24).unwrap_or(0) as u32,
        )
    };
    if let Some(tgid) = tracked(pid) {
        if let Some(s) = thread_stats(pid, tgid) {
            // SAFETY: map value pointer.
            unsafe { (*s).migrations += 1 };
        }
        let key = MigrationKey { orig_cpu: orig, dest_cpu: dest };
        match MIGRATIONS.get_ptr_mut(&key) {
            Some(p) => atomic_add(p, 1),
            None => {
                if MIGRATIONS.insert(&key, &1, 0).is_err() {
                    dropped(DROP_MIGRATIONS);
                }
            }
        }
    }
    0
}

/// Threads (and processes) created by a tracked thread are tracked too.
#[tracepoint]
pub fn hwp_sched_fork(ctx: TracePointContext) -> u32 {
    // SAFETY: sched_process_fork: child_pid at 20.
    let child = unsafe { ctx.read_at::<i32>(20).unwrap_or(0) } as u32;
    if let Some(tgid) = tracked(current_tid()) {
        if TIDS.insert(&child, &tgid, 0).is_err() {
            dropped(DROP_THREADS);
        }
    }
    0
}

// ---- futex ----------------------------------------------------------------

const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;
const FUTEX_REQUEUE: u32 = 3;
const FUTEX_CMP_REQUEUE: u32 = 4;
const FUTEX_WAKE_OP: u32 = 5;
const FUTEX_LOCK_PI: u32 = 6;
const FUTEX_UNLOCK_PI: u32 = 7;
const FUTEX_WAIT_BITSET: u32 = 9;
const FUTEX_WAKE_BITSET: u32 = 10;
const FUTEX_WAIT_REQUEUE_PI: u32 = 11;
const FUTEX_LOCK_PI2: u32 = 13;

#[inline(always)]
fn is_wait(cmd: u32) -> bool {
    matches!(cmd, FUTEX_WAIT | FUTEX_WAIT_BITSET | FUTEX_LOCK_PI | FUTEX_LOCK_PI2 | FUTEX_WAIT_REQUEUE_PI)
}

#[inline(always)]
fn is_wake(cmd: u32) -> bool {
    matches!(cmd, FUTEX_WAKE | FUTEX_WAKE_BITSET | FUTEX_UNLOCK_PI | FUTEX_WAKE_OP | FUTEX_REQUEUE | FUTEX_CMP_REQUEUE)
}

#[tracepoint]
pub fn hwp_futex_enter(ctx: TracePointContext) -> u32 {
    let tid = current_tid();
    let Some(tgid) = tracked(tid) else { return 0 };
    // SAFETY: sys_enter_futex: uaddr at 16, op at 24.
    let (uaddr, op) = unsafe { (ctx.read_at::<u64>(16).unwrap_or(0), ctx.read_at::<u64>(24).unwrap_or(0)) };
    // FUTEX_CMD_MASK: drop FUTEX_PRIVATE_FLAG (128) and FUTEX_CLOCK_REALTIME (256).
    let cmd = (op as u32) & 0x7f;
    if !is_wait(cmd) && !is_wake(cmd) {
        return 0;
    }
    let start = FutexStart { uaddr, ts: now(), op: cmd, tgid };
    if FUTEX_START.insert(&tid, &start, 0).is_err() {
        dropped(DROP_FUTEX);
    }
    0
}

#[tracepoint]
pub fn hwp_futex_exit(ctx: TracePointContext) -> u32 {
    let tid = current_tid();
    // SAFETY: read-only lookup, copied out before removal.
    let Some(start) = (unsafe { FUTEX_START.get(&tid).copied() }) else { return 0 };
    let _ = FUTEX_START.remove(&tid);
    // SAFETY: sys_exit_futex: ret at 16.
    let ret = unsafe { ctx.read_at::<i64>(16).unwrap_or(0) };
    let key = FutexKey { tgid: start.tgid, _pad: 0, uaddr: start.uaddr };
    let p = match FUTEXES.get_ptr_mut(&key) {
        Some(p) => p,
        None => {
            if FUTEXES.insert(&key, &FutexStats::default(), 0).is_err() {
                dropped(DROP_FUTEX);
                return 0;
            }
            match FUTEXES.get_ptr_mut(&key) {
                Some(p) => p,
                None => return 0,
            }
        }
    };
    // SAFETY: p points into the FUTEXES map value; fields updated atomically.
    unsafe {
        if is_wait(start.op) {
            let dt = now() - start.ts;
            atomic_add(&mut (*p).waits, 1);
            atomic_add(&mut (*p).wait_ns, dt);
            if dt > (*p).max_wait_ns {
                (*p).max_wait_ns = dt;
            }
            (*p).waiter_mask |= 1u64 << (tid % 64);
            hist(HIST_FUTEX_WAIT, dt);
        } else {
            atomic_add(&mut (*p).wakes, 1);
            if ret > 0 {
                atomic_add(&mut (*p).woken, ret as u64);
            }
        }
    }
    0
}

// ---- kernel locks ---------------------------------------------------------

#[tracepoint]
pub fn hwp_lock_begin(ctx: TracePointContext) -> u32 {
    let tid = current_tid();
    if tracked(tid).is_none() {
        return 0;
    }
    // SAFETY: lock:contention_begin: lock_addr at 8, flags at 16.
    let (lock, flags) = unsafe { (ctx.read_at::<u64>(8).unwrap_or(0), ctx.read_at::<u32>(16).unwrap_or(0)) };
    // SAFETY: kernel stack walk of the current context.
    let stack = unsafe { STACKS.get_stackid(&ctx, 0).unwrap_or(-1) } as i32;
    if LOCK_START.insert(&tid, &LockStart { lock, ts: now(), flags, stack }, 0).is_err() {
        dropped(DROP_LOCKS);
    }
    0
}

#[tracepoint]
pub fn hwp_lock_end(_ctx: TracePointContext) -> u32 {
    let tid = current_tid();
    // SAFETY: copied out before removal.
    let Some(start) = (unsafe { LOCK_START.get(&tid).copied() }) else { return 0 };
    let _ = LOCK_START.remove(&tid);
    let dt = now() - start.ts;
    let key = LockKey { lock: start.lock, flags: start.flags, stack: start.stack };
    match LOCKS.get_ptr_mut(&key) {
        // SAFETY: map value pointer.
        Some(p) => unsafe {
            atomic_add(&mut (*p).count, 1);
            atomic_add(&mut (*p).wait_ns, dt);
            if dt > (*p).max_wait_ns {
                (*p).max_wait_ns = dt;
            }
        },
        None => {
            let v = LockStats { count: 1, wait_ns: dt, max_wait_ns: dt };
            if LOCKS.insert(&key, &v, 0).is_err() {
                dropped(DROP_LOCKS);
            }
        }
    }
    hist(HIST_LOCK_WAIT, dt);
    0
}

// ---- memory ---------------------------------------------------------------

#[inline(always)]
fn bump(tid: u32, f: impl FnOnce(&mut ThreadStats)) {
    if let Some(tgid) = tracked(tid) {
        if let Some(s) = thread_stats(tid, tgid) {
            // SAFETY: map value pointer.
            f(unsafe { &mut *s });
        }
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
    let n = unsafe { ctx.read_at::<u64>(8).unwrap_or(0) };
    bump(current_tid(), |s| s.migrated_pages += n);
    0
}

#[tracepoint]
pub fn hwp_numa_move(ctx: TracePointContext) -> u32 {
    // SAFETY: sched_move_numa: pid at 8.
    let pid = unsafe { ctx.read_at::<i32>(8).unwrap_or(0) } as u32;
    bump(pid, |s| s.numa_moves += 1);
    0
}

#[tracepoint]
pub fn hwp_numa_swap(ctx: TracePointContext) -> u32 {
    // SAFETY: sched_swap_numa: src_pid at 8, dst_pid at 28.
    let (src, dst) = unsafe { (ctx.read_at::<i32>(8).unwrap_or(0) as u32, ctx.read_at::<i32>(28).unwrap_or(0) as u32) };
    bump(src, |s| s.numa_swaps += 1);
    bump(dst, |s| s.numa_swaps += 1);
    0
}

#[tracepoint]
pub fn hwp_numa_stick(ctx: TracePointContext) -> u32 {
    // SAFETY: sched_stick_numa: src_pid at 8.
    let src = unsafe { ctx.read_at::<i32>(8).unwrap_or(0) } as u32;
    bump(src, |s| s.numa_sticks += 1);
    0
}

// ---- uprobes (four slots: one program pair per --uprobe) -------------------

#[inline(always)]
fn uprobe_enter(id: u32) {
    let tid = current_tid();
    if tracked(tid).is_none() {
        return;
    }
    let key = (u64::from(tid) << 8) | u64::from(id);
    if UPROBE_START.insert(&key, &now(), 0).is_err() {
        dropped(DROP_UPROBE);
    }
}

#[inline(always)]
fn uprobe_leave(id: u32) {
    let key = (u64::from(current_tid()) << 8) | u64::from(id);
    // SAFETY: copied out before removal.
    let Some(t0) = (unsafe { UPROBE_START.get(&key).copied() }) else { return };
    let _ = UPROBE_START.remove(&key);
    let dt = now() - t0;
    if let Some(p) = UPROBES.get_ptr_mut(id) {
        // SAFETY: array value pointer.
        unsafe {
            atomic_add(&mut (*p).calls, 1);
            atomic_add(&mut (*p).total_ns, dt);
        }
    }
    hist(HIST_UPROBE0 + id, dt);
}

macro_rules! uprobe_slot {
    ($entry:ident, $ret:ident, $id:expr) => {
        #[uprobe]
        pub fn $entry(_ctx: ProbeContext) -> u32 {
            uprobe_enter($id);
            0
        }
        #[uretprobe]
        pub fn $ret(_ctx: RetProbeContext) -> u32 {
            uprobe_leave($id);
            0
        }
    };
}
uprobe_slot!(hwp_uprobe0, hwp_uret0, 0);
uprobe_slot!(hwp_uprobe1, hwp_uret1, 1);
uprobe_slot!(hwp_uprobe2, hwp_uret2, 2);
uprobe_slot!(hwp_uprobe3, hwp_uret3, 3);

// ---- profile --------------------------------------------------------------

#[perf_event]
pub fn hwp_profile(ctx: PerfEventContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(tgid) = tracked(pid_tgid as u32) else { return 0 };
    // SAFETY: stack walks of the interrupted context.
    let (user, kernel) = unsafe {
        (
            STACKS.get_stackid(&ctx, BPF_F_USER_STACK as u64).unwrap_or(-1) as i32,
            STACKS.get_stackid(&ctx, 0).unwrap_or(-1) as i32,
        )
    };
    if user < 0 && kernel < 0 {
        dropped(DROP_STACKS);
    }
    let key = StackKey { tgid, user_stack: user, kernel_stack: kernel, _pad: 0 };
    match STACK_COUNTS.get_ptr_mut(&key) {
        Some(p) => atomic_add(p, 1),
        None => {
            if STACK_COUNTS.insert(&key, &1, 0).is_err() {
                dropped(DROP_STACKS);
            }
        }
    }
    0
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
