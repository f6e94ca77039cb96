//! The kernel programs read tracepoint fields at fixed offsets; before attaching,
//! check them against this kernel's tracefs `format` files, so a changed layout
//! disables that program with a warning instead of reading garbage.

/// The fields the programs rely on (hwprof-probes-common's `fields`).
pub use hwprof_probes_common::fields::ALL as EXPECTED;

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
    for f in EXPECTED.iter().filter(|f| f.event == event) {
        let (ev, field, off, size) = (f.event, f.name, f.offset, f.size);
        match field_layout(&text, field) {
            Some((o, s)) if o == off && s == size => {}
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
