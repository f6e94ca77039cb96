//! The kernel programs read tracepoint fields at fixed offsets; before attaching,
//! check them against this kernel's tracefs `format` files, so a changed layout
//! disables that program with a warning instead of reading garbage.

/// (category/event, field, offset, size) the programs rely on.
pub const EXPECTED: &[(&str, &str, usize, usize)] = &[
    ("sched/sched_switch", "prev_pid", 24, 4),
    ("sched/sched_switch", "prev_state", 32, 8),
    ("sched/sched_switch", "next_pid", 56, 4),
    ("sched/sched_wakeup", "pid", 24, 4),
    ("sched/sched_wakeup_new", "pid", 24, 4),
    ("sched/sched_migrate_task", "pid", 12, 4),
    ("sched/sched_migrate_task", "orig_cpu", 20, 4),
    ("sched/sched_migrate_task", "dest_cpu", 24, 4),
    ("sched/sched_process_fork", "child_pid", 20, 4),
    ("syscalls/sys_enter_futex", "uaddr", 16, 8),
    ("syscalls/sys_enter_futex", "op", 24, 8),
    ("syscalls/sys_exit_futex", "ret", 16, 8),
    ("lock/contention_begin", "lock_addr", 8, 8),
    ("lock/contention_begin", "flags", 16, 4),
    ("migrate/mm_migrate_pages", "succeeded", 8, 8),
    ("sched/sched_move_numa", "pid", 8, 4),
    ("sched/sched_swap_numa", "src_pid", 8, 4),
    ("sched/sched_swap_numa", "dst_pid", 28, 4),
    ("sched/sched_stick_numa", "src_pid", 8, 4),
];

/// Find `field`'s (offset, size) in a tracefs format file's text.
pub fn field_layout(format: &str, field: &str) -> Option<(usize, usize)> {
    for line in format.lines() {
        let line = line.trim();
        let Some(decl) = line.strip_prefix("field:") else {
            continue;
        };
        let (decl, rest) = decl.split_once(';')?;
        let name = decl.split_whitespace().last()?.split('[').next()?;
        if name != field {
            continue;
        }
        let get = |key: &str| -> Option<usize> {
            rest.split(';')
                .find_map(|p| p.trim().strip_prefix(key)?.trim().parse().ok())
        };
        return Some((get("offset:")?, get("size:")?));
    }
    None
}

/// Check the fields of `event` (e.g. `sched/sched_switch`); Err names the mismatch.
pub fn check(tracefs: &str, event: &str) -> Result<(), String> {
    let path = format!("{tracefs}/events/{event}/format");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("tracepoint {event} is missing ({path}: {e})"))?;
    for (ev, field, off, size) in EXPECTED.iter().filter(|(e, ..)| *e == event) {
        match field_layout(&text, field) {
            Some((o, s)) if o == *off && s == *size => {}
            Some((o, s)) => {
                return Err(format!(
                    "{ev}:{field} is at offset {o} size {s}, the probe expects {off}/{size}"
                ));
            }
            None => return Err(format!("{ev} has no field {field}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCH: &str = "name: sched_switch\nID: 316\nformat:\n\
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
        \tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
        \tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
        \tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n";

    #[test]
    fn parses_format_files() {
        assert_eq!(field_layout(SWITCH, "prev_pid"), Some((24, 4)));
        assert_eq!(field_layout(SWITCH, "prev_comm"), Some((8, 16)));
        assert_eq!(field_layout(SWITCH, "prev_state"), Some((32, 8)));
        assert_eq!(field_layout(SWITCH, "next_pid"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_kernel_matches_when_tracefs_is_readable() {
        for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
            if std::path::Path::new(dir)
                .join("events/sched/sched_switch/format")
                .exists()
            {
                check(dir, "sched/sched_switch").unwrap();
                check(dir, "syscalls/sys_enter_futex").unwrap();
                return;
            }
        }
        eprintln!("tracefs not readable here (not root?)");
    }
}
