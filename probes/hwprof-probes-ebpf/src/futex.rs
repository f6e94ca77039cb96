//! `futex`: wait time per futex word from the futex syscall's entry and exit in
//! tracked threads. Two ways in, the same work: the classic
//! syscalls:sys_enter_futex/sys_exit_futex tracepoints (the default), or BTF
//! raw tracepoints on sys_enter/sys_exit (`tp_btf`: the program gets the
//! registers directly, no trace record is built; it checks the syscall number,
//! then the thread) where the classic pair cannot attach. Userspace attaches
//! one pair. A third way, probe `futex-blocked` (below), fills the same maps
//! from the scheduler's events, with no syscall hook.

use aya_ebpf::bindings::BPF_F_USER_STACK;
use aya_ebpf::helpers::gen::{bpf_get_current_task_btf, bpf_task_pt_regs};
use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_probe_read_kernel};
use aya_ebpf::macros::{btf_tracepoint, map, tracepoint};
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::{BtfTracePointContext, TracePointContext};
use aya_ebpf::EbpfContext;
use hwprof_probes_common::fields::*;
use hwprof_probes_common::*;

use crate::*;

#[map]
static FUTEXES: HashMap<FutexKey, FutexStats> = HashMap::with_max_entries(16384, 0);
/// Wait time per (futex word, user stack): which code waits on each word.
#[map]
static FUTEX_STACKS: HashMap<FutexStackKey, u64> = HashMap::with_max_entries(16384, 0);

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
    matches!(
        cmd,
        FUTEX_WAIT | FUTEX_WAIT_BITSET | FUTEX_LOCK_PI | FUTEX_LOCK_PI2 | FUTEX_WAIT_REQUEUE_PI
    )
}

#[inline(always)]
fn is_wake(cmd: u32) -> bool {
    matches!(
        cmd,
        FUTEX_WAKE
            | FUTEX_WAKE_BITSET
            | FUTEX_UNLOCK_PI
            | FUTEX_WAKE_OP
            | FUTEX_REQUEUE
            | FUTEX_CMP_REQUEUE
    )
}

/// The host's syscall numbering and pt_regs layout, set by userspace at load
/// time (the object is one for every architecture): futex's number, and the
/// byte offsets in struct pt_regs of the first two arguments and of the
/// syscall number (x86-64: di, si, orig_ax; arm64: regs[0], regs[1], syscallno).
#[no_mangle]
static HWP_NR_FUTEX: i64 = 202;
#[no_mangle]
static HWP_REGS_ARG0: u64 = 112;
#[no_mangle]
static HWP_REGS_ARG1: u64 = 104;
#[no_mangle]
static HWP_REGS_NR: u64 = 120;

#[inline(always)]
fn global<T: Copy>(g: &T) -> T {
    // SAFETY: a read of a global userspace set before load; volatile so the
    // compiler does not fold the default in.
    unsafe { core::ptr::read_volatile(g) }
}

/// Read a u64 at `off` in the kernel's pt_regs at `regs`.
#[inline(always)]
fn reg(regs: *const u8, off: u64) -> u64 {
    // SAFETY: bpf_probe_read_kernel checks the address; 0 on failure.
    unsafe { bpf_probe_read_kernel(regs.add(off as usize) as *const u64).unwrap_or(0) }
}

#[tracepoint]
pub fn hwp_futex_enter(ctx: TracePointContext) -> u32 {
    let Some(s) = tracked_stats(current_tid()) else {
        return 0;
    };
    // SAFETY: sys_enter_futex: uaddr at 16, op at 24.
    let (uaddr, op) = unsafe {
        (
            ctx.read_at::<u64>(FUTEX_ENTER_UADDR.offset).unwrap_or(0),
            ctx.read_at::<u64>(FUTEX_ENTER_OP.offset).unwrap_or(0),
        )
    };
    on_enter(s, uaddr, op);
    0
}

/// sys_enter(struct pt_regs *regs, long id): every syscall of every task comes
/// here, so the syscall number is checked first, then the thread.
#[btf_tracepoint(function = "sys_enter")]
pub fn hwp_futex_enter_btf(ctx: BtfTracePointContext) -> i32 {
    // SAFETY: argument 1 of sys_enter is the syscall number.
    let id: i64 = unsafe { ctx.arg(1) };
    if id != global(&HWP_NR_FUTEX) {
        return 0;
    }
    let Some(s) = tracked_stats(current_tid()) else {
        return 0;
    };
    // SAFETY: argument 0 of sys_enter is the task's pt_regs.
    let regs: *const u8 = unsafe { ctx.arg(0) };
    on_enter(
        s,
        reg(regs, global(&HWP_REGS_ARG0)),
        reg(regs, global(&HWP_REGS_ARG1)),
    );
    0
}

#[inline(always)]
fn on_enter(s: *mut ThreadStats, uaddr: u64, op: u64) {
    // FUTEX_CMD_MASK: drop FUTEX_PRIVATE_FLAG (128) and FUTEX_CLOCK_REALTIME (256).
    let cmd = (op as u32) & 0x7f;
    if !is_wait(cmd) && !is_wake(cmd) {
        return;
    }
    // SAFETY: s points into the THREADS map value of the current thread.
    unsafe {
        (*s).futex = FutexStart {
            uaddr,
            ts: now(),
            op: cmd,
            tgid: (*s).tgid,
            user_stack: -2,
            _pad: 0,
        };
    }
}

#[tracepoint]
pub fn hwp_futex_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: sys_exit_futex: ret at 16.
    let ret = unsafe { ctx.read_at::<i64>(FUTEX_EXIT_RET.offset).unwrap_or(0) };
    on_exit(&ctx, current_tid(), ret);
    0
}

/// sys_exit(struct pt_regs *regs, long ret): the syscall number is read back
/// from the registers (futex's is checked before any map work).
#[btf_tracepoint(function = "sys_exit")]
pub fn hwp_futex_exit_btf(ctx: BtfTracePointContext) -> i32 {
    // SAFETY: argument 0 of sys_exit is the task's pt_regs, 1 the return value.
    let (regs, ret): (*const u8, i64) = unsafe { (ctx.arg(0), ctx.arg(1)) };
    // arm64's syscallno is an s32; the low 32 bits are the number on both.
    if reg(regs, global(&HWP_REGS_NR)) as u32 as i64 != global(&HWP_NR_FUTEX) {
        return 0;
    }
    on_exit(&ctx, current_tid(), ret);
    0
}

#[inline(always)]
fn on_exit<C: EbpfContext>(ctx: &C, tid: u32, ret: i64) -> u32 {
    let Some(s) = THREADS.get_ptr_mut(&tid) else {
        return 0;
    };
    // SAFETY: s points into the THREADS map value of the current thread.
    let start = unsafe { (*s).futex };
    if start.ts == 0 {
        return 0;
    }
    // SAFETY: as above.
    unsafe { (*s).futex.ts = 0 };
    // Back from the syscall: the user stack is the waiting code's.
    account(&start, tid, s, ret, || {
        in_stack_sample().then(|| user_stack(ctx))
    });
    0
}

/// Whether this wait is one of the 1 in FUTEX_STACK_EVERY stack-walked.
#[inline(always)]
fn in_stack_sample() -> bool {
    // SAFETY: helper without preconditions.
    unsafe { bpf_get_prandom_u32() }.is_multiple_of(FUTEX_STACK_EVERY)
}

/// The current task's user stack id in STACKS, or -1.
#[inline(always)]
fn user_stack<C: EbpfContext>(ctx: &C) -> i32 {
    // SAFETY: the stack map is ours; the context is the program's.
    unsafe {
        STACKS
            .get_stackid(ctx, BPF_F_USER_STACK as u64)
            .unwrap_or(-1) as i32
    }
}

/// One finished futex call of `tid` into its word's stats: a wait's time (and
/// its waiting code's stack, asked of `user_stack` only for waits long enough
/// to matter: None when the wait is not in the stack sample), or a wake and
/// how many it woke.
#[inline(always)]
fn account<F: FnOnce() -> Option<i32>>(
    start: &FutexStart,
    tid: u32,
    thread: *mut ThreadStats,
    ret: i64,
    user_stack: F,
) {
    let key = FutexKey {
        tgid: start.tgid,
        _pad: 0,
        uaddr: start.uaddr,
    };
    let Some(p) = word_stats(&key) else { return };
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
            delay_event(tid, EVENT_FUTEX, start.ts, start.ts + dt);
            (*thread).futex_waits += 1;
            (*thread).futex_wait_ns += dt;
            let sampled = if dt >= FUTEX_STACK_MIN_NS {
                user_stack()
            } else {
                None
            };
            if let Some(user_stack) = sampled {
                let sk = FutexStackKey {
                    tgid: start.tgid,
                    user_stack,
                    uaddr: start.uaddr,
                };
                // Each sampled wait stands for FUTEX_STACK_EVERY of them.
                let weighted = dt * FUTEX_STACK_EVERY as u64;
                match FUTEX_STACKS.get_ptr_mut(&sk) {
                    Some(p) => atomic_add(p, weighted),
                    None => {
                        if FUTEX_STACKS.insert(&sk, &weighted, 0).is_err() {
                            dropped(DROP_STACKS);
                        }
                    }
                }
            }
        } else {
            atomic_add(&mut (*p).wakes, 1);
            if ret > 0 {
                atomic_add(&mut (*p).woken, ret as u64);
            }
        }
    }
}

/// The stats of one futex word, created on first use.
#[inline(always)]
fn word_stats(key: &FutexKey) -> Option<*mut FutexStats> {
    if let Some(p) = FUTEXES.get_ptr_mut(key) {
        return Some(p);
    }
    if FUTEXES.insert(key, &FutexStats::default(), 0).is_err() {
        dropped(DROP_FUTEX);
        return None;
    }
    FUTEXES.get_ptr_mut(key)
}

// ---- `futex-blocked`: the same stats from the scheduler, no syscall hook ----
//
// A tracked thread that goes to sleep (sched_switch, prev_state S or D) while
// its saved user registers say it is in a futex wait starts a wait on that
// word; switched back in, it ends it. Waits that return without sleeping
// (the word had changed, or a wake came first) are not seen, nor are wake
// calls that woke nobody; a waking of a waiting thread from inside a futex
// wake counts as woken. Costs a few map operations per context switch of a
// tracked thread instead of the syscall slow path on every syscall.

/// TASK_REPORT_MAX: sched_switch's prev_state for a preempted task; the low
/// bits are the sleep state (0: runnable).
pub(crate) const PREEMPTED_STATE: i64 = 0x100;

/// The futex number and first two arguments the current task entered the
/// kernel with (its saved user registers), if it is in a futex call.
#[inline(always)]
fn current_futex_call() -> Option<(u64, u32)> {
    // SAFETY: helpers without preconditions; the returned pt_regs is read
    // through bpf_probe_read_kernel.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8;
    if regs.is_null() {
        return None;
    }
    if reg(regs, global(&HWP_REGS_NR)) as u32 as i64 != global(&HWP_NR_FUTEX) {
        return None;
    }
    let op = reg(regs, global(&HWP_REGS_ARG1)) as u32 & 0x7f;
    Some((reg(regs, global(&HWP_REGS_ARG0)), op))
}

#[tracepoint]
pub fn hwp_futex_blocked_switch(ctx: TracePointContext) -> u32 {
    let (prev, prev_state, next) = switch_fields(&ctx);
    // Going to sleep (not preempted, not runnable): current is prev.
    if prev_state & (PREEMPTED_STATE - 1) != 0 && prev_state & PREEMPTED_STATE == 0 {
        if let Some(s) = tracked_stats(prev) {
            if let Some((uaddr, op)) = current_futex_call() {
                if is_wait(op) {
                    // SAFETY: s points into prev's THREADS map value.
                    unsafe {
                        (*s).futex = FutexStart {
                            uaddr,
                            ts: now(),
                            op,
                            tgid: (*s).tgid,
                            // Current is the thread going to sleep.
                            user_stack: if in_stack_sample() {
                                user_stack(&ctx)
                            } else {
                                -2
                            },
                            _pad: 0,
                        };
                    }
                }
            }
        }
    }
    // Back on a CPU: the wait (and its run-queue time after the wake) is over.
    if let Some(s) = THREADS.get_ptr_mut(&next) {
        // SAFETY: s points into next's THREADS map value; next is not running.
        let start = unsafe { (*s).futex };
        if start.ts != 0 {
            // SAFETY: as above.
            unsafe { (*s).futex.ts = 0 };
            account(&start, next, s, 0, || {
                (start.user_stack != -2).then_some(start.user_stack)
            });
        }
    }
    0
}

#[tracepoint]
pub fn hwp_futex_blocked_waking(ctx: TracePointContext) -> u32 {
    // sched_waking, not sched_wakeup: it fires in the waker's context, while
    // sched_wakeup of a thread on another CPU may fire there, from its queue.
    // SAFETY: pid of sched_waking, checked by userspace against tracefs.
    let pid = unsafe { ctx.read_at::<i32>(SCHED_WAKING_PID.offset).unwrap_or(0) } as u32;
    let Some(s) = THREADS.get_ptr_mut(&pid) else {
        return 0;
    };
    // SAFETY: s points into the wakee's THREADS map value (read only here).
    let start = unsafe { (*s).futex };
    if start.ts == 0 {
        return 0;
    }
    // Woken from inside a futex wake (current is the waker): the wake of
    // this word; a timeout or a signal is not.
    if let Some((_, op)) = current_futex_call() {
        if is_wake(op) {
            let key = FutexKey {
                tgid: start.tgid,
                _pad: 0,
                uaddr: start.uaddr,
            };
            if let Some(p) = word_stats(&key) {
                // SAFETY: map value pointer.
                unsafe {
                    atomic_add(&mut (*p).wakes, 1);
                    atomic_add(&mut (*p).woken, 1);
                }
            }
        }
    }
    0
}
