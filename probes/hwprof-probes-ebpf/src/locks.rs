//! `locks`: kernel lock contention (lock:contention_begin/end) of tracked threads.

use aya_ebpf::macros::{map, tracepoint};
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::TracePointContext;
use hwprof_probes_common::fields::*;
use hwprof_probes_common::*;

use crate::*;

#[map]
static LOCK_START: HashMap<u32, LockStart> = HashMap::with_max_entries(MAX_THREADS, 0);
#[map]
static LOCKS: HashMap<LockKey, LockStats> = HashMap::with_max_entries(8192, 0);

#[tracepoint]
pub fn hwp_lock_begin(ctx: TracePointContext) -> u32 {
    let tid = current_tid();
    if tracked(tid).is_none() {
        return 0;
    }
    // SAFETY: lock:contention_begin: lock_addr at 8, flags at 16.
    let (lock, flags) = unsafe {
        (
            ctx.read_at::<u64>(LOCK_BEGIN_ADDR.offset).unwrap_or(0),
            ctx.read_at::<u32>(LOCK_BEGIN_FLAGS.offset).unwrap_or(0),
        )
    };
    // SAFETY: kernel stack walk of the current context.
    let stack = unsafe { STACKS.get_stackid(&ctx, 0).unwrap_or(-1) } as i32;
    if LOCK_START
        .insert(
            &tid,
            &LockStart {
                lock,
                ts: now(),
                flags,
                stack,
            },
            0,
        )
        .is_err()
    {
        dropped(DROP_LOCKS);
    }
    0
}

#[tracepoint]
pub fn hwp_lock_end(_ctx: TracePointContext) -> u32 {
    let tid = current_tid();
    // SAFETY: copied out before removal.
    let Some(start) = (unsafe { LOCK_START.get(&tid).copied() }) else {
        return 0;
    };
    let _ = LOCK_START.remove(&tid);
    let dt = now() - start.ts;
    let key = LockKey {
        lock: start.lock,
        flags: start.flags,
        stack: start.stack,
    };
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
            let v = LockStats {
                count: 1,
                wait_ns: dt,
                max_wait_ns: dt,
            };
            if LOCKS.insert(&key, &v, 0).is_err() {
                dropped(DROP_LOCKS);
            }
        }
    }
    hist(HIST_LOCK_WAIT, dt);
    0
}
