//! Types shared between hwprof's eBPF programs and userspace. Plain `#[repr(C)]`
//! data, no_std, no logic: the kernel side writes them into maps, userspace reads
//! them back.
#![no_std]

/// log2 histogram buckets: bucket i counts values in [2^i, 2^(i+1)) ns (0 in bucket 0).
pub const HIST_BUCKETS: u32 = 64;

/// Histogram slots in the HISTS array (each HIST_BUCKETS wide).
pub const HIST_RUNQ: u32 = 0;
pub const HIST_FUTEX_WAIT: u32 = 1;
pub const HIST_LOCK_WAIT: u32 = 2;
pub const HIST_OFF_CPU: u32 = 3;
/// Uprobe i uses slot HIST_UPROBE0 + i.
pub const HIST_UPROBE0: u32 = 4;
pub const MAX_UPROBES: u32 = 4;
pub const HIST_SLOTS: u32 = HIST_UPROBE0 + MAX_UPROBES;

/// Indexes of the DROPS array: map updates that failed because a map was full.
pub const DROP_THREADS: u32 = 0;
pub const DROP_FUTEX: u32 = 1;
pub const DROP_LOCKS: u32 = 2;
pub const DROP_STACKS: u32 = 3;
pub const DROP_UPROBE: u32 = 4;
pub const DROP_MIGRATIONS: u32 = 5;
/// Delay events the ring buffer had no room for.
pub const DROP_EVENTS: u32 = 6;

/// A delay of one tracked thread with its start and end (CLOCK_MONOTONIC ns),
/// or a point event (a migration, start = end),
/// streamed through the EVENTS ring buffer so userspace can line it up with
/// slow requests. Only delays of at least [`EVENT_MIN_NS`] are sent.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct DelayEvent {
    pub tid: u32,
    /// [`EVENT_RUNQ`], [`EVENT_FUTEX`], [`EVENT_OFF_CPU`], [`EVENT_MIGRATION`].
    pub kind: u32,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Runnable but waiting for a CPU (wakeup or preemption → switched in).
pub const EVENT_RUNQ: u32 = 1;
/// In a futex wait (sys_enter → sys_exit of a FUTEX_WAIT*/LOCK_PI*).
pub const EVENT_FUTEX: u32 = 2;
/// Asleep off CPU (switched out not runnable → woken): a futex wait, I/O,
/// a poll for the network, a sleep.
pub const EVENT_OFF_CPU: u32 = 3;
/// Moved to another CPU: a point in time (start = end), sent whatever its length.
pub const EVENT_MIGRATION: u32 = 4;
/// Shortest delay streamed as an event (100 µs): shorter ones are only counted.
pub const EVENT_MIN_NS: u64 = 100_000;
/// Size of the EVENTS ring buffer (4 MiB: 170 000 events between reads).
pub const EVENTS_BYTES: u32 = 1 << 22;
pub const DROP_SLOTS: u32 = 8;

/// Per-thread scheduler and memory statistics.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    pub tgid: u32,
    pub _pad: u32,
    pub on_cpu_ns: u64,
    pub off_cpu_ns: u64,
    /// Times the thread was switched out.
    pub switches: u64,
    /// Switched out while still runnable (preempted).
    pub preempted: u64,
    pub wakeups: u64,
    pub runq_ns: u64,
    pub migrations: u64,
    pub page_faults: u64,
    pub numa_moves: u64,
    pub numa_swaps: u64,
    pub numa_sticks: u64,
    pub migrated_pages: u64,
    /// Futex waits of this thread (futex probe) and their total time.
    pub futex_waits: u64,
    pub futex_wait_ns: u64,
    /// Internal: when the thread last went on / off CPU (ns), and when woken.
    pub last_on: u64,
    pub last_off: u64,
    pub last_wakeup: u64,
    /// Internal: the thread's futex call in flight (ts 0: none). Kept here
    /// rather than in a map of its own: the thread's entry is looked up
    /// anyway, and every map operation is on the traced code's path.
    pub futex: FutexStart,
}

/// A migration of a tracked thread between two CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MigrationKey {
    pub orig_cpu: u32,
    pub dest_cpu: u32,
}

/// A futex word of one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FutexKey {
    pub tgid: u32,
    pub _pad: u32,
    pub uaddr: u64,
}

/// Wait time at one futex word from one user stack (the code that waits).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FutexStackKey {
    pub tgid: u32,
    /// Id in STACKS, or negative when the walk failed.
    pub user_stack: i32,
    pub uaddr: u64,
}

/// Futex waits shorter than this are not stack-walked (an uncontended
/// return costs the target less that way).
pub const FUTEX_STACK_MIN_NS: u64 = 10_000;
/// One wait in this many (chosen at random) is stack-walked, its time counted
/// this many times over: a user stack walk costs more than the rest of the
/// probe's work per wait, and which code waits on a hot word shows in a
/// sample as well as in every wait.
pub const FUTEX_STACK_EVERY: u32 = 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FutexStats {
    pub waits: u64,
    pub wait_ns: u64,
    pub max_wait_ns: u64,
    pub wakes: u64,
    /// Threads woken (return value of wake operations).
    pub woken: u64,
    /// Bitmask of waiting thread ids mod 64, for a count of distinct waiters.
    pub waiter_mask: u64,
}

/// A futex call in flight on one thread (in its [`ThreadStats`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FutexStart {
    pub uaddr: u64,
    pub ts: u64,
    pub op: u32,
    pub tgid: u32,
    /// `futex-blocked` only: the user stack taken when the thread went to
    /// sleep (the waiting code), -1 when the walk failed, -2 when this wait
    /// was not in the stack sample.
    pub user_stack: i32,
    pub _pad: u32,
}

/// A kernel lock contention in flight on one thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockStart {
    pub lock: u64,
    pub ts: u64,
    pub flags: u32,
    /// Kernel stack id (STACKS) at contention_begin: who was waiting.
    pub stack: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockKey {
    pub lock: u64,
    pub flags: u32,
    pub stack: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockStats {
    pub count: u64,
    pub wait_ns: u64,
    pub max_wait_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UprobeStats {
    pub calls: u64,
    pub total_ns: u64,
}

/// A sampled stack: user and kernel stack ids in the STACKS map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct StackKey {
    pub tgid: u32,
    pub user_stack: i32,
    pub kernel_stack: i32,
    pub _pad: u32,
}

/// log2 bucket of `v`.
#[inline(always)]
pub fn log2_bucket(v: u64) -> u32 {
    if v == 0 {
        0
    } else {
        63 - v.leading_zeros()
    }
}

/// Tracepoint fields the kernel programs read at fixed offsets: one constant
/// per field, read by the programs (`ctx.read_at(F.offset)`) and checked by
/// userspace against this kernel's tracefs `format` files before attaching.
pub mod fields {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Field {
        /// `category/event`, as under tracefs `events/`.
        pub event: &'static str,
        pub name: &'static str,
        pub offset: usize,
        pub size: usize,
    }

    const fn f(event: &'static str, name: &'static str, offset: usize, size: usize) -> Field {
        Field {
            event,
            name,
            offset,
            size,
        }
    }

    pub const SCHED_SWITCH_PREV_PID: Field = f("sched/sched_switch", "prev_pid", 24, 4);
    pub const SCHED_SWITCH_PREV_STATE: Field = f("sched/sched_switch", "prev_state", 32, 8);
    pub const SCHED_SWITCH_NEXT_PID: Field = f("sched/sched_switch", "next_pid", 56, 4);
    pub const SCHED_WAKEUP_PID: Field = f("sched/sched_wakeup", "pid", 24, 4);
    pub const SCHED_WAKING_PID: Field = f("sched/sched_waking", "pid", 24, 4);
    pub const SCHED_WAKEUP_NEW_PID: Field = f("sched/sched_wakeup_new", "pid", 24, 4);
    pub const SCHED_MIGRATE_PID: Field = f("sched/sched_migrate_task", "pid", 12, 4);
    pub const SCHED_MIGRATE_ORIG_CPU: Field = f("sched/sched_migrate_task", "orig_cpu", 20, 4);
    pub const SCHED_MIGRATE_DEST_CPU: Field = f("sched/sched_migrate_task", "dest_cpu", 24, 4);
    pub const SCHED_FORK_CHILD_PID: Field = f("sched/sched_process_fork", "child_pid", 20, 4);
    pub const FUTEX_ENTER_UADDR: Field = f("syscalls/sys_enter_futex", "uaddr", 16, 8);
    pub const FUTEX_ENTER_OP: Field = f("syscalls/sys_enter_futex", "op", 24, 8);
    pub const FUTEX_EXIT_RET: Field = f("syscalls/sys_exit_futex", "ret", 16, 8);
    pub const LOCK_BEGIN_ADDR: Field = f("lock/contention_begin", "lock_addr", 8, 8);
    pub const LOCK_BEGIN_FLAGS: Field = f("lock/contention_begin", "flags", 16, 4);
    pub const MIGRATE_PAGES_SUCCEEDED: Field = f("migrate/mm_migrate_pages", "succeeded", 8, 8);
    pub const NUMA_MOVE_PID: Field = f("sched/sched_move_numa", "pid", 8, 4);
    pub const NUMA_SWAP_SRC_PID: Field = f("sched/sched_swap_numa", "src_pid", 8, 4);
    pub const NUMA_SWAP_DST_PID: Field = f("sched/sched_swap_numa", "dst_pid", 28, 4);
    pub const NUMA_STICK_SRC_PID: Field = f("sched/sched_stick_numa", "src_pid", 8, 4);

    /// Every field above, for the tracefs check.
    pub const ALL: &[Field] = &[
        SCHED_SWITCH_PREV_PID,
        SCHED_SWITCH_PREV_STATE,
        SCHED_SWITCH_NEXT_PID,
        SCHED_WAKEUP_PID,
        SCHED_WAKING_PID,
        SCHED_WAKEUP_NEW_PID,
        SCHED_MIGRATE_PID,
        SCHED_MIGRATE_ORIG_CPU,
        SCHED_MIGRATE_DEST_CPU,
        SCHED_FORK_CHILD_PID,
        FUTEX_ENTER_UADDR,
        FUTEX_ENTER_OP,
        FUTEX_EXIT_RET,
        LOCK_BEGIN_ADDR,
        LOCK_BEGIN_FLAGS,
        MIGRATE_PAGES_SUCCEEDED,
        NUMA_MOVE_PID,
        NUMA_SWAP_SRC_PID,
        NUMA_SWAP_DST_PID,
        NUMA_STICK_SRC_PID,
    ];
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain #[repr(C)] integers, every bit pattern valid, explicit padding.
    unsafe impl aya::Pod for ThreadStats {}
    unsafe impl aya::Pod for MigrationKey {}
    unsafe impl aya::Pod for FutexKey {}
    unsafe impl aya::Pod for FutexStats {}
    unsafe impl aya::Pod for FutexStart {}
    unsafe impl aya::Pod for FutexStackKey {}
    unsafe impl aya::Pod for LockStart {}
    unsafe impl aya::Pod for LockKey {}
    unsafe impl aya::Pod for LockStats {}
    unsafe impl aya::Pod for UprobeStats {}
    unsafe impl aya::Pod for StackKey {}
    unsafe impl aya::Pod for DelayEvent {}
}
