//! The target's RSS as soak reads it is exact to the page. Alone in its test
//! binary: a test process's RSS is the sum of every running test's memory, so
//! nothing else may allocate or free while this one measures.

#[test]
fn rss_is_exact_to_the_page() {
    use hwprof::measure::process::sample_process;
    let pid = std::process::id();
    if !std::path::Path::new(&format!("/proc/{pid}/smaps_rollup")).exists() {
        eprintln!("skipped: no /proc/PID/smaps_rollup on this kernel (before 4.14)");
        return;
    }
    // 3 MiB + one page, touched: RSS rises by that, within the page tables
    // and the allocator's own pages.
    let before = sample_process(pid).unwrap().rss_bytes;
    let n = 3 * 1024 * 1024 + 4096;
    let mut v = vec![0u8; n];
    for i in (0..n).step_by(4096) {
        v[i] = 1;
    }
    let after = sample_process(pid).unwrap();
    let grew = after.rss_bytes as i64 - before as i64;
    assert!(
        (n as i64 - 256 * 1024..=n as i64 + 256 * 1024).contains(&grew),
        "grew {grew} for {n} touched"
    );
    assert_eq!(std::hint::black_box(&v)[4096], 1);
    assert!(after.threads >= 1 && after.open_fds >= 3);
    assert!(after.ctx_voluntary + after.ctx_involuntary > 0);
}
