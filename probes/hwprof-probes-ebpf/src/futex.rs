//! `futex`: wait time per futex word from sys_enter/sys_exit_futex of tracked threads.

use aya_ebpf::bindings::BPF_F_USER_STACK;
use aya_ebpf::macros::{map, tracepoint};
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::TracePointContext;
use hwprof_probes_common::fields::*;
use hwprof_probes_common::*;

use crate::*;

#[map]
static FUTEX_START: HashMap<u32, FutexStart> = HashMap::with_max_entries(MAX_THREADS, 0);
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

#[tracepoint]
pub fn hwp_futex_enter(ctx: TracePointContext) -> u32 {
    let tid = current_tid();
    let Some(tgid) = tracked(tid) else { return 0 };
    // SAFETY: sys_enter_futex: uaddr at 16, op at 24.
    let (uaddr, op) = unsafe {
        (
            ctx.read_at::<u64>(FUTEX_ENTER_UADDR.offset).unwrap_or(0),
            ctx.read_at::<u64>(FUTEX_ENTER_OP.offset).unwrap_or(0),
        )
    };
    // FUTEX_CMD_MASK: drop FUTEX_PRIVATE_FLAG (128) and FUTEX_CLOCK_REALTIME (256).
    let cmd = (op as u32) & 0x7f;
    if !is_wait(cmd) && !is_wake(cmd) {
        return 0;
    }
    let start = FutexStart {
        uaddr,
        ts: now(),
        op: cmd,
        tgid,
    };
    if FUTEX_START.insert(&tid, &start, 0).is_err() {
        dropped(DROP_FUTEX);
    }
    0
}

#[tracepoint]
pub fn hwp_futex_exit(ctx: TracePointContext) -> u32 {
    let tid = current_tid();
    // SAFETY: read-only lookup, copied out before removal.
    let Some(start) = (unsafe { FUTEX_START.get(&tid).copied() }) else {
        return 0;
    };
    let _ = FUTEX_START.remove(&tid);
    // SAFETY: sys_exit_futex: ret at 16.
    let ret = unsafe { ctx.read_at::<i64>(FUTEX_EXIT_RET.offset).unwrap_or(0) };
    let key = FutexKey {
        tgid: start.tgid,
        _pad: 0,
        uaddr: start.uaddr,
    };
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
            delay_event(tid, EVENT_FUTEX, start.ts, start.ts + dt);
            if let Some(s) = thread_stats(tid, start.tgid) {
                (*s).futex_waits += 1;
                (*s).futex_wait_ns += dt;
            }
            if dt >= FUTEX_STACK_MIN_NS {
                // Back from the syscall: the user stack is the waiting code's.
                let user_stack = STACKS
                    .get_stackid(&ctx, BPF_F_USER_STACK as u64)
                    .unwrap_or(-1) as i32;
                let sk = FutexStackKey {
                    tgid: start.tgid,
                    user_stack,
                    uaddr: start.uaddr,
                };
                match FUTEX_STACKS.get_ptr_mut(&sk) {
                    Some(p) => atomic_add(p, dt),
                    None => {
                        if FUTEX_STACKS.insert(&sk, &dt, 0).is_err() {
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
    0
}
