//! Buffers on a chosen page size. Latency beyond the TLB's reach is mostly page
//! walks on 4 KiB pages; on 2 MiB pages the same chase measures the caches and
//! memory (Intel MLC quotes latency on huge pages for that reason). A buffer
//! asks for its page size and then checks, in /proc/self/smaps, what the kernel
//! actually gave: a request is not a fact.

use std::ptr::NonNull;

/// 2 MiB: the x86-64 and aarch64 (4 KiB granule) PMD page.
pub const HUGE_PAGE: usize = 2 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageSize {
    /// 4 KiB pages, transparent huge pages refused for this buffer
    /// (MADV_NOHUGEPAGE), whatever the system setting.
    Base,
    /// 2 MiB pages: transparent huge pages asked for (MADV_HUGEPAGE), or
    /// hugetlbfs pages (MAP_HUGETLB) where THP is off and some are reserved.
    Huge,
}

impl PageSize {
    pub fn label(self) -> &'static str {
        match self {
            PageSize::Base => "4 KiB",
            PageSize::Huge => "2 MiB",
        }
    }
}

/// What backs a buffer, read after it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Transparent huge pages: `huge_bytes` of the mapping's `bytes` are on them.
    Thp { huge_bytes: u64, bytes: u64 },
    /// hugetlbfs pages: all of it, by construction.
    Hugetlb { bytes: u64 },
    /// Base pages only (asked for, or all the system allows).
    Base { bytes: u64 },
    /// Not a Linux mapping, or smaps could not be read.
    Unknown,
}

impl Backing {
    /// Share of the buffer on 2 MiB pages (None: unknown).
    pub fn huge_share(self) -> Option<f64> {
        match self {
            Backing::Thp { huge_bytes, bytes } => Some(huge_bytes as f64 / bytes.max(1) as f64),
            Backing::Hugetlb { .. } => Some(1.0),
            Backing::Base { .. } => Some(0.0),
            Backing::Unknown => None,
        }
    }
}

/// Element types for which all-zero bytes are a valid value (fresh anonymous
/// pages are zero-filled).
///
/// # Safety
/// Implement only for types whose all-zero bit pattern is a valid value.
pub unsafe trait ZeroValid {}

/// A fixed-length, zero-initialised array of `T` on its own mapping, aligned to
/// 2 MiB and rounded up to a whole 2 MiB so that even a small buffer can sit on
/// one huge page.
pub struct PageBuffer<T: ZeroValid> {
    ptr: NonNull<T>,
    len: usize,
    map: Mapping,
    pub pages: PageSize,
}

// SAFETY: the buffer owns its memory exclusively, like a Vec<T>.
unsafe impl<T: ZeroValid + Send> Send for PageBuffer<T> {}
unsafe impl<T: ZeroValid + Sync> Sync for PageBuffer<T> {}

impl<T: ZeroValid> PageBuffer<T> {
    /// `len` zeroed elements on `pages`-sized pages where the system gives them.
    /// Nothing is touched yet: pages are allocated by the first writes, on the
    /// node of the writing thread's memory policy.
    pub fn zeroed(len: usize, pages: PageSize) -> PageBuffer<T> {
        let bytes = (len.max(1) * std::mem::size_of::<T>()).max(1);
        let map = Mapping::new(bytes, std::mem::align_of::<T>(), pages);
        PageBuffer {
            ptr: map.base.cast(),
            len,
            map,
            pages,
        }
    }

    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// What the kernel gave for this buffer (read it after writing it).
    pub fn backing(&self) -> Backing {
        self.map.backing()
    }
}

impl<T: ZeroValid> std::ops::Deref for PageBuffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the mapping holds `len` zero-initialised (hence valid) T.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroValid> std::ops::DerefMut for PageBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroValid> Drop for PageBuffer<T> {
    fn drop(&mut self) {
        // SAFETY: T is ZeroValid (plain data); the elements are dropped in place
        // before the memory goes.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ))
        };
    }
}

#[cfg(target_os = "linux")]
struct Mapping {
    base: NonNull<u8>,
    /// The whole mmap (with the alignment slack), for munmap.
    raw: *mut libc::c_void,
    raw_len: usize,
    /// The aligned part in use.
    len: usize,
    hugetlb: bool,
}

#[cfg(target_os = "linux")]
impl Mapping {
    fn new(bytes: usize, _align: usize, pages: PageSize) -> Mapping {
        let len = bytes.div_ceil(HUGE_PAGE) * HUGE_PAGE;
        if pages == PageSize::Huge && !thp_available() {
            if let Some(m) = Mapping::hugetlb(len) {
                return m;
            }
        }
        let raw_len = len + HUGE_PAGE;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                raw_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(raw_len, HUGE_PAGE).expect("valid layout"),
            );
        }
        let aligned = (raw as usize).next_multiple_of(HUGE_PAGE);
        let advice = match pages {
            PageSize::Base => libc::MADV_NOHUGEPAGE,
            PageSize::Huge => libc::MADV_HUGEPAGE,
        };
        // SAFETY: [aligned, aligned + len) lies within the mapping. A refusal
        // (EINVAL on a kernel without THP) leaves base pages, which `backing` reports.
        unsafe { libc::madvise(aligned as *mut libc::c_void, len, advice) };
        Mapping {
            base: NonNull::new(aligned as *mut u8).expect("mmap returned a non-null address"),
            raw,
            raw_len,
            len,
            hugetlb: false,
        }
    }

    /// hugetlbfs pages, when some are reserved (vm.nr_hugepages) and free.
    fn hugetlb(len: usize) -> Option<Mapping> {
        // SAFETY: as above.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
                -1,
                0,
            )
        };
        (raw != libc::MAP_FAILED).then(|| Mapping {
            base: NonNull::new(raw as *mut u8).expect("mmap returned a non-null address"),
            raw,
            raw_len: len,
            len,
            hugetlb: true,
        })
    }

    fn backing(&self) -> Backing {
        if self.hugetlb {
            return Backing::Hugetlb {
                bytes: self.len as u64,
            };
        }
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return Backing::Unknown;
        };
        let (lo, hi) = (
            self.base.as_ptr() as u64,
            (self.base.as_ptr() as usize + self.len) as u64,
        );
        // The kernel may split or merge our range with neighbours: sum the huge
        // pages of every VMA overlapping it, prorated to the overlap.
        let mut huge = 0u64;
        let mut current: Option<(u64, u64)> = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
                    {
                        current = (a < hi && b > lo).then_some((a, b));
                        continue;
                    }
                }
            }
            let (Some((a, b)), Some(rest)) = (current, line.strip_prefix("AnonHugePages:")) else {
                continue;
            };
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            let overlap = b.min(hi) - a.max(lo);
            huge += (kb * 1024).min(overlap);
        }
        let bytes = self.len as u64;
        if huge == 0 {
            Backing::Base { bytes }
        } else {
            Backing::Thp {
                huge_bytes: huge,
                bytes,
            }
        }
    }
}

/// Whether transparent huge pages can be asked for (not `never`).
#[cfg(target_os = "linux")]
fn thp_available() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| !s.contains("[never]"))
}

#[cfg(target_os = "linux")]
impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; the buffer is gone.
        unsafe { libc::munmap(self.raw, self.raw_len) };
    }
}

/// Elsewhere: an ordinary zeroed allocation, aligned to 2 MiB; the page size is
/// whatever the system uses (reported as unknown).
#[cfg(not(target_os = "linux"))]
struct Mapping {
    base: NonNull<u8>,
    layout: std::alloc::Layout,
}

#[cfg(not(target_os = "linux"))]
impl Mapping {
    fn new(bytes: usize, align: usize, _pages: PageSize) -> Mapping {
        let layout = std::alloc::Layout::from_size_align(bytes, align.max(HUGE_PAGE))
            .expect("buffer size fits a Layout");
        // SAFETY: layout has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let base = NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Mapping { base, layout }
    }

    fn backing(&self) -> Backing {
        Backing::Unknown
    }
}

#[cfg(not(target_os = "linux"))]
impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SAFETY: u64 is valid when zero.
    unsafe impl ZeroValid for u64 {}

    #[test]
    fn buffers_are_zeroed_aligned_and_report_their_pages() {
        let mut b: PageBuffer<u64> = PageBuffer::zeroed(3 << 20, PageSize::Base);
        assert_eq!(b.as_ptr() as usize % HUGE_PAGE, 0);
        assert!(b.iter().all(|&x| x == 0));
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u64;
        }
        assert_eq!(b[12345], 12345);
        #[cfg(target_os = "linux")]
        assert_eq!(
            b.backing().huge_share(),
            Some(0.0),
            "MADV_NOHUGEPAGE was ignored"
        );
    }

    /// Where THP can be asked for (this machine: `madvise`), a written 2 MiB
    /// buffer is on huge pages and smaps shows it.
    #[cfg(target_os = "linux")]
    #[test]
    fn huge_buffers_get_huge_pages_where_thp_allows() {
        if !thp_available() {
            eprintln!("skipped: transparent huge pages are `never` on this kernel");
            return;
        }
        // qemu-user passes madvise through to nothing it reports: its emulated
        // smaps shows no huge pages (scripts/test.sh sets this for that run).
        if std::env::var_os("HWPROF_UNDER_EMULATION").is_some() {
            eprintln!("skipped: under qemu-user, smaps does not show the host's huge pages");
            return;
        }
        let mut b: PageBuffer<u64> = PageBuffer::zeroed(8 << 20 >> 3, PageSize::Huge);
        b.iter_mut().for_each(|x| *x = 1);
        let share = b.backing().huge_share().expect("smaps readable");
        // Fragmented memory can refuse some; most of 8 MiB must be huge.
        assert!(
            share >= 0.5,
            "only {share:.2} of the buffer is on 2 MiB pages"
        );
    }
}
