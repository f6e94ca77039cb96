//! `sched`: on/off-CPU time, switches, wakeups, run-queue latency and migrations of tracked threads.

use aya_ebpf::macros::{map, tracepoint};
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::TracePointContext;
use hwprof_probes_common::fields::*;
use hwprof_probes_common::*;

use crate::*;

#[map]
static MIGRATIONS: HashMap<MigrationKey, u64> = HashMap::with_max_entries(4096, 0);

#[tracepoint]
pub fn hwp_sched_switch(ctx: TracePointContext) -> u32 {
    let (prev, prev_state, next) = switch_fields(&ctx);
    let ts = now();
    if let Some(s) = tracked_stats(prev) {
        // SAFETY: s points into the THREADS map value.
        unsafe {
            if (*s).last_on != 0 {
                (*s).on_cpu_ns += ts - (*s).last_on;
            }
            (*s).last_off = ts;
            (*s).switches += 1;
            // Still runnable (no sleep state bits; TASK_REPORT_MAX marks a
            // preemption in the kernel): waiting on the run queue from now.
            if prev_state & (crate::futex::PREEMPTED_STATE - 1) == 0 {
                (*s).preempted += 1;
                (*s).last_wakeup = ts;
            }
        }
    }
    if let Some(s) = tracked_stats(next) {
        // SAFETY: as above.
        unsafe {
            if (*s).last_off != 0 {
                let off = ts - (*s).last_off;
                (*s).off_cpu_ns += off;
                hist(HIST_OFF_CPU, off);
            }
            // Asleep from switching out to the wakeup (a preempted
            // thread's wakeup is its switch-out: no sleep).
            if (*s).last_off != 0 && (*s).last_wakeup > (*s).last_off {
                delay_event(next, EVENT_OFF_CPU, (*s).last_off, (*s).last_wakeup);
            }
            if (*s).last_wakeup != 0 {
                let rq = ts - (*s).last_wakeup;
                (*s).runq_ns += rq;
                hist(HIST_RUNQ, rq);
                delay_event(next, EVENT_RUNQ, (*s).last_wakeup, ts);
                (*s).last_wakeup = 0;
            }
            (*s).last_on = ts;
        }
    }
    0
}

#[inline(always)]
fn wakeup(ctx: &TracePointContext) {
    // SAFETY: pid at offset 24 in sched_wakeup and sched_wakeup_new.
    let pid = unsafe { ctx.read_at::<i32>(SCHED_WAKEUP_PID.offset).unwrap_or(0) } as u32;
    if let Some(s) = tracked_stats(pid) {
        // SAFETY: map value pointer.
        unsafe {
            (*s).wakeups += 1;
            (*s).last_wakeup = now();
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
            ctx.read_at::<i32>(SCHED_MIGRATE_PID.offset).unwrap_or(0) as u32,
            ctx.read_at::<i32>(SCHED_MIGRATE_ORIG_CPU.offset)
                .unwrap_or(0) as u32,
            ctx.read_at::<i32>(SCHED_MIGRATE_DEST_CPU.offset)
                .unwrap_or(0) as u32,
        )
    };
    if let Some(s) = tracked_stats(pid) {
        // SAFETY: map value pointer.
        unsafe { (*s).migrations += 1 };
        let ts = now();
        send_event(pid, EVENT_MIGRATION, ts, ts);
        let key = MigrationKey {
            orig_cpu: orig,
            dest_cpu: dest,
        };
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
