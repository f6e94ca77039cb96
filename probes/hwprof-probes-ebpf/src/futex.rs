//! `futex`: wait time per futex word from the futex syscall's entry and exit in
//! tracked threads. Two ways in, the same work: BTF raw tracepoints on
//! sys_enter/sys_exit (`tp_btf`: the program gets the registers directly, no
//! trace record is built; it checks the syscall number, then the thread), or
//! the classic syscalls:sys_enter_futex/sys_exit_futex tracepoints where BTF
//! programs cannot load. Userspace attaches one pair.

use aya_ebpf::bindings::BPF_F_USER_STACK;
use aya_ebpf::helpers::bpf_probe_read_kernel;
use aya_ebpf::macros::{btf_tracepoint, map, tracepoint};
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::{BtfTracePointContext, TracePointContext};
use aya_ebpf::EbpfContext;
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
    let tid = current_tid();
    let Some(tgid) = tracked(tid) else { return 0 };
    // SAFETY: sys_enter_futex: uaddr at 16, op at 24.
    let (uaddr, op) = unsafe {
        (
            ctx.read_at::<u64>(FUTEX_ENTER_UADDR.offset).unwrap_or(0),
            ctx.read_at::<u64>(FUTEX_ENTER_OP.offset).unwrap_or(0),
        )
    };
    on_enter(tid, tgid, uaddr, op);
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
    let tid = current_tid();
    let Some(tgid) = tracked(tid) else { return 0 };
    // SAFETY: argument 0 of sys_enter is the task's pt_regs.
    let regs: *const u8 = unsafe { ctx.arg(0) };
    on_enter(
        tid,
        tgid,
        reg(regs, global(&HWP_REGS_ARG0)),
        reg(regs, global(&HWP_REGS_ARG1)),
    );
    0
}

#[inline(always)]
fn on_enter(tid: u32, tgid: u32, uaddr: u64, op: u64) {
    // FUTEX_CMD_MASK: drop FUTEX_PRIVATE_FLAG (128) and FUTEX_CLOCK_REALTIME (256).
    let cmd = (op as u32) & 0x7f;
    if !is_wait(cmd) && !is_wake(cmd) {
        return;
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
    // SAFETY: read-only lookup, copied out before removal.
    let Some(start) = (unsafe { FUTEX_START.get(&tid).copied() }) else {
        return 0;
    };
    let _ = FUTEX_START.remove(&tid);
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
                    .get_stackid(ctx, BPF_F_USER_STACK as u64)
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
