//! Arm SPE through perf's AUX buffer: one per-thread SPE event for each thread of
//! the target (SPE records carry no thread id unless the kernel writes PIDs to
//! CONTEXTIDR, so the buffer tells the thread), rescanned as threads appear.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use perf_event::{Builder, Counter};

use super::sample::MemSample;
use super::spe;
use crate::events::catalog::Encoding;
use crate::events::spec::encode_terms;
use crate::measure::counters::PmuEvent;

const DATA_PAGES: usize = 8;
const AUX_PAGES: usize = 256;
// Offsets in struct perf_event_mmap_page (include/uapi/linux/perf_event.h).
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;
const DATA_OFFSET: usize = 1040;
const DATA_SIZE: usize = 1048;
const AUX_HEAD: usize = 1056;
const AUX_TAIL: usize = 1064;
const AUX_OFFSET: usize = 1072;
const AUX_SIZE: usize = 1080;
const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_AUX: u32 = 11;
const AUX_FLAG_TRUNCATED: u64 = 0x1;
const AUX_FLAG_COLLISION: u64 = 0x8;

struct Mapped {
    ptr: *mut u8,
    len: usize,
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

fn map(fd: i32, len: usize, offset: usize) -> std::io::Result<Mapped> {
    // SAFETY: mapping a perf fd as the kernel documents; failure is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Mapped {
        ptr: p as *mut u8,
        len,
    })
}

struct ThreadSpe {
    tid: u32,
    counter: Counter,
    header: Mapped,
    aux: Mapped,
    pending: Vec<u8>,
}

impl ThreadSpe {
    fn field(&self, off: usize) -> &AtomicU64 {
        // SAFETY: the header page is mapped and these offsets are 8-aligned u64s.
        unsafe { &*(self.header.ptr.add(off) as *const AtomicU64) }
    }

    /// Copy new AUX bytes and decode complete records; count kernel-side losses.
    fn drain(&mut self, pid: u32, out: &mut Vec<MemSample>, lost: &mut u64) {
        let head = self.field(AUX_HEAD).load(Ordering::Acquire);
        let tail = self.field(AUX_TAIL).load(Ordering::Relaxed);
        let size = self.aux.len as u64;
        let mut pos = tail;
        while pos < head {
            let at = (pos % size) as usize;
            let n = ((head - pos) as usize).min(self.aux.len - at);
            // SAFETY: [at, at+n) lies inside the AUX mapping.
            self.pending
                .extend_from_slice(unsafe { std::slice::from_raw_parts(self.aux.ptr.add(at), n) });
            pos += n as u64;
        }
        self.field(AUX_TAIL).store(head, Ordering::Release);
        let (records, used, err) = spe::decode(&self.pending);
        for r in records {
            if let Some(s) = r.to_sample(pid, self.tid) {
                out.push(s);
            }
        }
        if err.is_some() {
            // Resynchronise at the next record boundary: drop the undecodable rest.
            *lost += 1;
            self.pending.clear();
        } else {
            self.pending.drain(..used);
        }
        // The data ring carries PERF_RECORD_AUX (with truncation flags) and LOST.
        let dhead = self.field(DATA_HEAD).load(Ordering::Acquire);
        let mut dtail = self.field(DATA_TAIL).load(Ordering::Relaxed);
        let doff = self.field(DATA_OFFSET).load(Ordering::Relaxed) as usize;
        let dsize = self.field(DATA_SIZE).load(Ordering::Relaxed) as usize;
        let byte = |i: u64| -> u8 {
            // SAFETY: the data area is mapped right after the header page.
            unsafe { *self.header.ptr.add(doff + (i as usize % dsize)) }
        };
        let u64_at = |i: u64| (0..8).fold(0u64, |v, k| v | (u64::from(byte(i + k)) << (8 * k)));
        while dtail + 8 <= dhead && dsize > 0 {
            let ty = u32::from(byte(dtail))
                | u32::from(byte(dtail + 1)) << 8
                | u32::from(byte(dtail + 2)) << 16
                | u32::from(byte(dtail + 3)) << 24;
            let rsize = u64::from(byte(dtail + 6)) | u64::from(byte(dtail + 7)) << 8;
            if rsize == 0 {
                break;
            }
            match ty {
                PERF_RECORD_AUX
                    if u64_at(dtail + 24) & (AUX_FLAG_TRUNCATED | AUX_FLAG_COLLISION) != 0 =>
                {
                    *lost += 1
                }
                PERF_RECORD_LOST => *lost += u64_at(dtail + 16),
                _ => {}
            }
            dtail += rsize;
        }
        self.field(DATA_TAIL).store(dtail, Ordering::Release);
    }
}

fn open_thread(pmu_type: u32, config: u64, tid: u32) -> std::io::Result<ThreadSpe> {
    let mut b = Builder::new(PmuEvent {
        type_: pmu_type,
        config,
        config1: 0,
    });
    b.observe_pid(tid as i32)
        .any_cpu()
        .sample_period(4096)
        .exclude_kernel(true);
    let mut counter = b.build()?;
    let page = 4096usize.max(unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize);
    let fd = counter.as_raw_fd();
    let header = map(fd, (1 + DATA_PAGES) * page, 0)?;
    let aux_off = (1 + DATA_PAGES) * page;
    let aux_len = AUX_PAGES * page;
    // SAFETY: writing the AUX geometry into the mapped control page before mapping AUX.
    unsafe {
        *(header.ptr.add(AUX_OFFSET) as *mut u64) = aux_off as u64;
        *(header.ptr.add(AUX_SIZE) as *mut u64) = aux_len as u64;
    }
    let aux = map(fd, aux_len, aux_off)?;
    counter.enable()?;
    Ok(ThreadSpe {
        tid,
        counter,
        header,
        aux,
        pending: Vec::new(),
    })
}

use crate::probes::threads_of;

/// Record SPE samples of every thread of `pid`.
pub fn record(
    pmu: &str,
    pmu_type: u32,
    pid: u32,
    duration: Duration,
    interrupted: &AtomicBool,
    on_tick: &mut dyn FnMut(),
) -> std::io::Result<(Vec<MemSample>, u64)> {
    let sysfs = std::path::Path::new("/sys/bus/event_source/devices");
    let (config, _) = encode_terms(
        pmu,
        "ts_enable=1,load_filter=1,store_filter=1,jitter=1",
        Encoding::Arm,
        Some(sysfs),
    )
    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut per_thread: BTreeMap<u32, ThreadSpe> = BTreeMap::new();
    let mut out = Vec::new();
    let mut lost = 0u64;
    let start = Instant::now();
    let mut last_scan = Instant::now() - Duration::from_secs(1);
    loop {
        if last_scan.elapsed() >= Duration::from_millis(500) {
            for tid in threads_of(pid) {
                if let std::collections::btree_map::Entry::Vacant(e) = per_thread.entry(tid) {
                    match open_thread(pmu_type, config, tid) {
                        Ok(t) => {
                            e.insert(t);
                        }
                        // A thread that exited between the scan and the open.
                        Err(err) if err.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(err) => return Err(err),
                    }
                }
            }
            last_scan = Instant::now();
        }
        let done = start.elapsed() >= duration
            || interrupted.load(Ordering::Relaxed)
            || !std::path::Path::new(&format!("/proc/{pid}")).exists();
        for t in per_thread.values_mut() {
            if done {
                let _ = t.counter.disable();
            }
            t.drain(pid, &mut out, &mut lost);
        }
        if done {
            break;
        }
        on_tick();
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((out, lost))
}
