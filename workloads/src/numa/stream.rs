//! The bandwidth kernels: every thread streams its own share of a buffer
//! (read, write, copy), bytes per second, on pages placed by who touched them
//! first.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Kernel, BATCH_BYTES};
use crate::experiment::{OpTimer, Trial};

/// A zeroed buffer whose pages are not touched until someone writes them (calloc
/// maps fresh zero pages), so where they land depends on who touches them first.
///
/// Workers write their own disjoint shares concurrently through a shared trial,
/// so the buffer is a raw allocation (never a `&Vec` written through).
pub(super) struct Buffer {
    ptr: *mut f64,
    len: usize,
}

// SAFETY: workers only touch disjoint ranges (see `share`), through `range_mut`.
unsafe impl Send for Buffer {}
unsafe impl Sync for Buffer {}

impl Buffer {
    pub(super) fn untouched(bytes: usize) -> Buffer {
        let b: Box<[f64]> = vec![0.0; bytes / 8].into_boxed_slice();
        let len = b.len();
        Buffer {
            ptr: Box::into_raw(b) as *mut f64,
            len,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Touch every page now, on this thread (under its memory policy).
    pub(super) fn touch_all(&mut self) {
        // SAFETY: &mut self: nobody else holds a range.
        unsafe { self.range_mut(0..self.len) }.fill(1.0);
    }

    /// # Safety
    /// No mutable range overlapping `r` may be alive.
    unsafe fn range(&self, r: std::ops::Range<usize>) -> &[f64] {
        assert!(r.end <= self.len);
        std::slice::from_raw_parts(self.ptr.add(r.start), r.len())
    }

    /// # Safety
    /// No other range overlapping `r` may be alive.
    #[allow(clippy::mut_from_ref)]
    unsafe fn range_mut(&self, r: std::ops::Range<usize>) -> &mut [f64] {
        assert!(r.end <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.len())
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from Box::into_raw of a boxed slice of this length.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

/// The share of `len` elements worker `w` of `n` streams over.
fn share(len: usize, w: usize, n: usize) -> std::ops::Range<usize> {
    (w * len / n)..((w + 1) * len / n)
}

pub(super) struct StreamTrial {
    kernel: Kernel,
    src: Buffer,
    /// Copy destination (empty otherwise).
    dst: Buffer,
    threads: usize,
    /// Each worker's position inside its share, in elements.
    at: Vec<AtomicUsize>,
    /// Pages are first-touched by the workers in `setup` (else already placed).
    first_touch: bool,
}

/// Sum with 8 independent accumulators: no loop-carried dependency on one add, so
/// the compiler vectorises it and the loads, not the adds, set the pace.
#[inline(never)]
fn read_kernel(x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Regular (write-allocate) stores: `fill` is memset, which at this size stays
/// below glibc's non-temporal threshold.
#[inline(never)]
fn write_kernel(x: &mut [f64], v: f64) {
    x.fill(v);
}

#[inline(never)]
fn copy_kernel(dst: &mut [f64], src: &[f64]) {
    dst.copy_from_slice(src);
}

impl StreamTrial {
    pub(super) fn new(
        kernel: Kernel,
        src: Buffer,
        dst: Buffer,
        threads: usize,
        first_touch: bool,
    ) -> StreamTrial {
        StreamTrial {
            kernel,
            src,
            dst,
            threads,
            at: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            first_touch,
        }
    }

    /// The next BATCH_BYTES window of worker `w`'s share, wrapping around.
    fn window(&self, w: usize) -> std::ops::Range<usize> {
        let s = share(self.src.len(), w, self.threads);
        let len = (BATCH_BYTES / 8).min(s.len());
        let mut off = self.at[w].load(Ordering::Relaxed);
        if off + len > s.len() {
            off = 0;
        }
        self.at[w].store(off + len, Ordering::Relaxed);
        (s.start + off)..(s.start + off + len)
    }
}

impl Trial for StreamTrial {
    fn setup(&self, worker: usize) {
        if self.first_touch {
            let r = share(self.src.len(), worker, self.threads);
            // SAFETY: the worker's own share; no batch runs yet.
            unsafe { self.src.range_mut(r.clone()) }.fill(1.0);
            if self.dst.len() > 0 {
                unsafe { self.dst.range_mut(r) }.fill(0.0);
            }
        }
    }

    fn run_batch(&self, worker: usize, _timer: &mut dyn OpTimer) -> u64 {
        let r = self.window(worker);
        let bytes = (r.len() * 8) as u64;
        match self.kernel {
            // SAFETY (all three): the window lies in this worker's own share.
            Kernel::Read => {
                std::hint::black_box(read_kernel(unsafe { self.src.range(r) }));
                bytes
            }
            Kernel::Write => {
                write_kernel(unsafe { self.src.range_mut(r) }, (worker + 2) as f64);
                bytes
            }
            Kernel::Copy => {
                let dst = unsafe { self.dst.range_mut(r.clone()) };
                copy_kernel(dst, unsafe { self.src.range(r) });
                2 * bytes
            }
            Kernel::Latency => unreachable!("latency runs a ChaseTrial"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::NoTimer;

    #[test]
    fn stream_kernels_count_bytes_and_stay_in_their_share() {
        for (kernel, per_batch) in [
            (Kernel::Read, BATCH_BYTES),
            (Kernel::Write, BATCH_BYTES),
            (Kernel::Copy, 2 * BATCH_BYTES),
        ] {
            let bytes = 4 * BATCH_BYTES;
            let (s, d) = if kernel == Kernel::Copy {
                (bytes, bytes)
            } else {
                (bytes, 0)
            };
            let t = StreamTrial {
                kernel,
                src: Buffer::untouched(s),
                dst: Buffer::untouched(d),
                threads: 2,
                at: (0..2).map(|_| AtomicUsize::new(0)).collect(),
                first_touch: true,
            };
            t.setup(0);
            t.setup(1);
            for _ in 0..5 {
                assert_eq!(t.run_batch(1, &mut NoTimer), per_batch as u64);
            }
            // SAFETY: no batch runs any more.
            let (src, dst) = unsafe { (t.src.range(0..t.src.len()), t.dst.range(0..t.dst.len())) };
            if kernel == Kernel::Write {
                // Worker 1 wrote its value (3.0) only into its half.
                let half = src.len() / 2;
                assert!(src[..half].iter().all(|&x| x == 1.0));
                assert!(src[half..].contains(&3.0));
            }
            if kernel == Kernel::Copy {
                assert!(dst.iter().all(|&x| x == 1.0 || x == 0.0));
                assert!(dst[dst.len() / 2..].contains(&1.0));
                assert!(!dst[..dst.len() / 2].contains(&1.0));
            }
        }
        assert_eq!(read_kernel(&[1.0; 37]), 37.0);
    }
}
