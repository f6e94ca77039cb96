//! User-space function probes: four slots, one entry/return program pair per `--uprobe`.

use aya_ebpf::macros::{map, uprobe, uretprobe};
use aya_ebpf::maps::{Array, HashMap};
use aya_ebpf::programs::{ProbeContext, RetProbeContext};
use hwprof_probes_common::*;

use crate::*;

#[map]
static UPROBE_START: HashMap<u64, u64> = HashMap::with_max_entries(MAX_THREADS, 0);
#[map]
static UPROBES: Array<UprobeStats> = Array::with_max_entries(MAX_UPROBES, 0);

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
    let Some(t0) = (unsafe { UPROBE_START.get(&key).copied() }) else {
        return;
    };
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
