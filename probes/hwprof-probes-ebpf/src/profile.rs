//! `profile`: sampled user and kernel stacks of tracked threads (perf cpu-clock).

use aya_ebpf::bindings::BPF_F_USER_STACK;
use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use aya_ebpf::macros::{map, perf_event};
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::PerfEventContext;
use hwprof_probes_common::*;

use crate::*;

#[map]
static STACK_COUNTS: HashMap<StackKey, u64> = HashMap::with_max_entries(16384, 0);

#[perf_event]
pub fn hwp_profile(ctx: PerfEventContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(tgid) = tracked(pid_tgid as u32) else {
        return 0;
    };
    // SAFETY: stack walks of the interrupted context.
    let (user, kernel) = unsafe {
        (
            STACKS
                .get_stackid(&ctx, BPF_F_USER_STACK as u64)
                .unwrap_or(-1) as i32,
            STACKS.get_stackid(&ctx, 0).unwrap_or(-1) as i32,
        )
    };
    if user < 0 && kernel < 0 {
        dropped(DROP_STACKS);
    }
    let key = StackKey {
        tgid,
        user_stack: user,
        kernel_stack: kernel,
        _pad: 0,
    };
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
