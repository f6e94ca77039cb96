//! Linux capability probe: perf_event_open for hardware and software events,
//! BPF load + attach for tracepoints, kprobes and uprobes.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use perf_event::events::{Event, EventData, Hardware, KProbe, Software, Tracepoint};
use perf_event::Builder;

use crate::measure::counters::open_group;
use crate::measure::Source;

use super::bpf_linux::{load_trivial, PROG_TYPE_KPROBE, PROG_TYPE_TRACEPOINT};
use super::{Capabilities, Capability, Ebpf, Loss, Privileges};

pub fn probe(hypervisor: Option<&str>) -> Capabilities {
    let mut caps = Capabilities {
        paranoid: std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        privileges: privileges(),
        ..Default::default()
    };
    let paranoid = caps.paranoid;
    let privileged = caps.privileges.root || caps.privileges.cap_perfmon;

    match count_over_busy_loop(&[Hardware::CPU_CYCLES, Hardware::INSTRUCTIONS]) {
        Ok(()) => caps.pmu_hardware = true,
        Err(e) => caps.lost.push(pmu_loss(
            Capability::HardwareCounters,
            &e,
            paranoid,
            privileged,
            hypervisor,
        )),
    }
    match count_over_busy_loop(&[Software::TASK_CLOCK]) {
        Ok(()) => caps.pmu_software = true,
        Err(e) => caps.lost.push(pmu_loss(
            Capability::SoftwareCounters,
            &e,
            paranoid,
            privileged,
            None,
        )),
    }

    caps.ebpf.btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    if !caps.ebpf.btf {
        caps.lost.push(Loss {
            capability: Capability::Btf,
            reason: "/sys/kernel/btf/vmlinux is missing".into(),
            remedy: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y".into(),
        });
    }
    probe_ebpf(&mut caps);
    caps
}

fn privileges() -> Privileges {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    Privileges {
        euid,
        root: euid == 0,
        cap_sys_admin: has(21),
        cap_perfmon: has(38),
        cap_bpf: has(39),
        sudo_user: std::env::var("SUDO_USER").ok(),
    }
}

/// Why a probe failed, kept as data so the message can be specific.
#[derive(Debug)]
pub enum ProbeError {
    Open(io::Error),
    DidNotCount { value: u64, running_ns: u64 },
}

/// Open `events` as one group on this thread, run a busy loop, and require that
/// the group was scheduled (time_running > 0) and every event counted (> 0), so
/// pass only events a busy loop must produce (cycles, instructions, task-clock).
pub fn count_over_busy_loop<E: perf_event::events::Event + Clone + 'static>(
    events: &[E],
) -> Result<(), ProbeError> {
    let mut failures = Vec::new();
    let spec = events
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("event{i}"), Source::Pmu, Builder::new(e.clone())))
        .collect();
    let Some((mut group, members)) = open_group(spec, &mut failures) else {
        return Err(ProbeError::Open(first_error(events)));
    };
    if members.len() != events.len() {
        return Err(ProbeError::Open(first_error(events)));
    }
    group.enable().map_err(ProbeError::Open)?;
    let mut x = 0u64;
    for i in 0..2_000_000u64 {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    group.disable().map_err(ProbeError::Open)?;
    let data = group.read().map_err(ProbeError::Open)?;
    let running = data.time_running().map_or(0, |d| d.as_nanos() as u64);
    for (_, _, c) in &members {
        let c = c.as_ref().unwrap_or(group.as_counter());
        let v = data.get(c).map_or(0, |e| e.value());
        if v == 0 || running == 0 {
            return Err(ProbeError::DidNotCount {
                value: v,
                running_ns: running,
            });
        }
    }
    Ok(())
}

/// The OS error of opening the first event that fails on its own.
fn first_error<E: perf_event::events::Event + Clone>(events: &[E]) -> io::Error {
    events
        .iter()
        .find_map(|e| Builder::new(e.clone()).build().err())
        .unwrap_or_else(|| io::Error::other("the events open alone but not as one group"))
}

fn pmu_loss(
    what: Capability,
    err: &ProbeError,
    paranoid: Option<i32>,
    privileged: bool,
    hypervisor: Option<&str>,
) -> Loss {
    let (reason, remedy) = match err {
        ProbeError::Open(e) => match e.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) if !privileged => (
                format!(
                    "perf_event_open: {e} (perf_event_paranoid={})",
                    paranoid.map_or("?".into(), |p| p.to_string())
                ),
                "run with sudo, grant CAP_PERFMON, or set kernel.perf_event_paranoid to 1 \
                 (sysctl -w kernel.perf_event_paranoid=1)"
                    .to_string(),
            ),
            Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) => match hypervisor {
                Some(hv) => (
                    format!("{hv} guest without a virtual PMU (perf_event_open: {e})"),
                    "run on bare metal or enable the vPMU (QEMU/KVM: -cpu host,pmu=on; cloud: \
                     an instance type that exposes the PMU); timers and software counters are used instead"
                        .to_string(),
                ),
                None => (
                    format!("no PMU driver for this CPU (perf_event_open: {e})"),
                    "use a kernel with this CPU's perf driver; timers are used instead".to_string(),
                ),
            },
            _ => (
                format!("perf_event_open: {e}"),
                "check `perf stat -e cycles true`; timers are used instead".to_string(),
            ),
        },
        ProbeError::DidNotCount { value, running_ns } => (
            format!(
                "the counter opened but did not count over a busy loop (value={value}, \
                 time_running={running_ns} ns)"
            ),
            "another agent may own the PMU (NMI watchdog: sysctl kernel.nmi_watchdog=0; another \
             perf session), or the hypervisor virtualizes it without counting"
                .to_string(),
        ),
    };
    Loss {
        capability: what,
        reason,
        remedy,
    }
}

/// Find tracefs; mount it at /sys/kernel/tracing when root and it is not mounted
/// (what perf and libtracefs do too).
fn tracefs(caps: &mut Capabilities) -> Option<String> {
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(dir).join("events").is_dir() {
            return Some(dir.to_string());
        }
    }
    if caps.privileges.root && Path::new("/sys/kernel/tracing").is_dir() {
        let src = c"nodev";
        let target = c"/sys/kernel/tracing";
        let fstype = c"tracefs";
        // SAFETY: all pointers are valid NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc == 0 && Path::new("/sys/kernel/tracing/events").is_dir() {
            caps.actions
                .push("mounted tracefs at /sys/kernel/tracing (it was not mounted)".into());
            return Some("/sys/kernel/tracing".into());
        }
    }
    None
}

fn bpf_loss(capability: Capability, e: &io::Error, caps: &Capabilities) -> Loss {
    let denied = matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES));
    Loss {
        capability,
        reason: format!("loading a BPF program failed: {e}"),
        remedy: if denied && !caps.privileges.root {
            "run with sudo, or grant CAP_BPF and CAP_PERFMON (setcap cap_bpf,cap_perfmon+ep)".into()
        } else {
            "the kernel needs CONFIG_BPF_SYSCALL and CONFIG_BPF_EVENTS".into()
        },
    }
}

fn probe_ebpf(caps: &mut Capabilities) {
    let tracefs = tracefs(caps);
    caps.tracefs = tracefs.clone();
    let mut ebpf = Ebpf {
        btf: caps.ebpf.btf,
        ..Default::default()
    };

    // Tracepoints: a BPF program attached to syscalls:sys_enter_getpid.
    let tp = || -> Result<(), Loss> {
        let dir = tracefs.as_ref().ok_or_else(|| {
            let mounted = std::fs::read_to_string("/proc/mounts")
                .unwrap_or_default()
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some("tracefs"));
            if mounted {
                Loss {
                    capability: Capability::EbpfTracepoints,
                    reason: "tracefs is mounted but not readable by this user".into(),
                    remedy: "run with sudo".into(),
                }
            } else {
                Loss {
                    capability: Capability::EbpfTracepoints,
                    reason: "tracefs is not mounted".into(),
                    remedy: "run with sudo (hwprof mounts it), or mount -t tracefs nodev /sys/kernel/tracing"
                        .into(),
                }
            }
        })?;
        let id_path = format!("{dir}/events/syscalls/sys_enter_getpid/id");
        let id: u64 = std::fs::read_to_string(&id_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Loss {
                capability: Capability::EbpfTracepoints,
                reason: format!("cannot read {id_path}"),
                remedy: "run as root (tracefs event ids are root-readable) and use a kernel \
                         with CONFIG_FTRACE_SYSCALLS"
                    .into(),
            })?;
        attach(Builder::new(Tracepoint::with_id(id)), PROG_TYPE_TRACEPOINT)
            .map_err(|e| bpf_or_perf_loss(Capability::EbpfTracepoints, e, caps))
    };
    match tp() {
        Ok(()) => ebpf.tracepoints = true,
        Err(l) => caps.lost.push(l),
    }

    // Kprobes: the kprobe PMU (perf_event_open type "kprobe") on vfs_read.
    let kp = || -> Result<(), Loss> {
        let probe = KProbe::probe("vfs_read", 0).map_err(|e| Loss {
            capability: Capability::EbpfKprobes,
            reason: if Path::new("/sys/bus/event_source/devices/kprobe").exists() {
                format!("kprobe PMU: {e}")
            } else {
                "the kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe) and no \
                 kprobe_events: built without CONFIG_KPROBES/CONFIG_KPROBE_EVENTS"
                    .into()
            },
            remedy: "probes use tracepoints instead; for kprobes use a kernel with CONFIG_KPROBE_EVENTS=y"
                .into(),
        })?;
        attach(Builder::new(probe), PROG_TYPE_KPROBE)
            .map_err(|e| bpf_or_perf_loss(Capability::EbpfKprobes, e, caps))
    };
    match kp() {
        Ok(()) => ebpf.kprobes = true,
        Err(l) => caps.lost.push(l),
    }

    // Uprobes: a uprobe on a function of this very binary.
    let up = || -> Result<(), Loss> {
        let offset =
            file_offset_of(hwprof_uprobe_target as *const () as usize).ok_or_else(|| Loss {
                capability: Capability::EbpfUprobes,
                reason: "cannot map hwprof's own code address to a file offset (/proc/self/maps)"
                    .into(),
                remedy: "run hwprof from a regular file".into(),
            })?;
        let exe = std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| "/proc/self/exe".into());
        let probe = UprobeEvent::new(&exe, offset).map_err(|e| Loss {
            capability: Capability::EbpfUprobes,
            reason: format!("uprobe PMU: {e}"),
            remedy: "use a kernel with CONFIG_UPROBE_EVENTS=y".into(),
        })?;
        attach(Builder::new(probe), PROG_TYPE_KPROBE)
            .map_err(|e| bpf_or_perf_loss(Capability::EbpfUprobes, e, caps))
    };
    match up() {
        Ok(()) => ebpf.uprobes = true,
        Err(l) => caps.lost.push(l),
    }
    std::hint::black_box(uprobe_target());
    caps.ebpf = ebpf;
}

/// A uprobe as a perf event (perf-event2 0.7's `UProbe` does not implement `Event`).
struct UprobeEvent {
    pmu_type: u32,
    path: std::ffi::CString,
    offset: u64,
}

impl UprobeEvent {
    fn new(path: &Path, offset: u64) -> io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let pmu_type = std::fs::read_to_string("/sys/bus/event_source/devices/uprobe/type")?
            .trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad uprobe PMU type"))?;
        let path = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        Ok(UprobeEvent {
            pmu_type,
            path,
            offset,
        })
    }
}

impl Event for UprobeEvent {
    fn update_attrs(self, _: &mut perf_event_open_sys::bindings::perf_event_attr) {
        unreachable!("uprobes carry their path as data")
    }

    fn update_attrs_with_data(
        self,
        attr: &mut perf_event_open_sys::bindings::perf_event_attr,
    ) -> Option<std::sync::Arc<dyn EventData>> {
        attr.type_ = self.pmu_type;
        attr.config = 0; // entry probe, not uretprobe
        attr.uprobe_path = self.path.as_ptr() as u64;
        attr.probe_offset = self.offset;
        // The builder keeps the path alive until the event is opened.
        Some(std::sync::Arc::new(self.path))
    }
}

enum AttachError {
    Perf(io::Error),
    Bpf(io::Error),
    SetBpf(io::Error),
}

fn bpf_or_perf_loss(capability: Capability, e: AttachError, caps: &Capabilities) -> Loss {
    match e {
        AttachError::Bpf(e) => bpf_loss(capability, &e, caps),
        AttachError::Perf(e) => Loss {
            capability,
            reason: format!("perf_event_open for the probe: {e}"),
            // The kernel checks CAP_PERFMON for kprobe/uprobe PMU events and BPF
            // attachment whatever perf_event_paranoid says (even -1).
            remedy: "run with sudo, or grant CAP_PERFMON and CAP_BPF \
                     (setcap cap_perfmon,cap_bpf+ep $(which hwprof)); \
                     kernel.perf_event_paranoid does not lift this"
                .into(),
        },
        AttachError::SetBpf(e) => Loss {
            capability,
            reason: format!("PERF_EVENT_IOC_SET_BPF: {e}"),
            remedy: "the kernel needs CONFIG_BPF_EVENTS".into(),
        },
    }
}

/// Open the perf event, load a trivial program and attach it; everything is closed
/// again on return (the descriptors are owned).
fn attach(builder: Builder<'_>, prog_type: u32) -> Result<(), AttachError> {
    let mut counter = builder.build().map_err(AttachError::Perf)?;
    let prog = load_trivial(prog_type).map_err(AttachError::Bpf)?;
    counter
        .set_bpf(prog.as_raw_fd())
        .map_err(AttachError::SetBpf)?;
    Ok(())
}

/// A function of hwprof's own, for the uprobe check.
#[inline(never)]
#[no_mangle]
pub extern "C" fn hwprof_uprobe_target() -> u64 {
    std::hint::black_box(42)
}

fn uprobe_target() -> u64 {
    hwprof_uprobe_target()
}

/// Translate a code address of this process into an offset in its file.
fn file_offset_of(addr: usize) -> Option<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let perms = f.next()?;
        let offset = u64::from_str_radix(f.next()?, 16).ok()?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        if (lo..hi).contains(&addr) && perms.contains('x') {
            return Some((addr - lo) as u64 + offset);
        }
    }
    None
}
