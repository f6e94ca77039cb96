//! The smallest possible BPF program load, for the capability probe only.
//!
//! The probes themselves are built and loaded with aya; here a two-instruction
//! program ("return 0") loaded through the raw bpf(2) syscall answers the one
//! question the probe asks, "may this process load and attach BPF?", without
//! shipping a BPF object.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

pub const PROG_TYPE_KPROBE: u32 = 2;
pub const PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_PROG_LOAD: libc::c_long = 5;

/// The BPF_PROG_LOAD member of `union bpf_attr` up to `prog_name`, zero-padded.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    _rest: [u8; 64],
}

/// LINUX_VERSION_CODE of the running kernel; kprobe programs needed it before 5.0.
fn kernel_version_code() -> u32 {
    // SAFETY: utsname is plain data filled by uname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return 0;
    }
    let release: String = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    (a << 16) + (b << 8) + c.min(255)
}

/// Load `r0 = 0; exit` as a program of `prog_type`.
pub fn load_trivial(prog_type: u32) -> io::Result<OwnedFd> {
    // mov64 r0, 0 ; exit
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ];
    let license = b"GPL\0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"hwprof_probe");
    let attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: kernel_version_code(),
        prog_flags: 0,
        prog_name: name,
        _rest: [0; 64],
    };
    // SAFETY: attr points to a properly sized, zero-padded bpf_attr; the kernel
    // copies it (and the instructions) before returning.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>() as u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
