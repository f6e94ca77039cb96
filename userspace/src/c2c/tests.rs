//! Aggregation, classification and symbolisation on synthetic streams with
//! planted sharing patterns.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::aggregate::LineClass;
use super::sample::{MemOp, MemSample};
use super::*;

fn s(tid: u32, addr: u64, op: MemOp, hitm: bool) -> MemSample {
    MemSample {
        pid: 100,
        tid,
        cpu: None,
        ip: 0x1000 + u64::from(tid),
        addr,
        op,
        size: 8,
        hitm,
        remote: false,
        level: None,
        weight: 0,
    }
}

const FS_LINE: u64 = 0x7000_0000;
const TS_LINE: u64 = 0x7000_0040;
const RM_LINE: u64 = 0x7000_0080;

/// Two threads each increment their own counter at offsets 0 and 8 of one line.
fn false_sharing(n: usize) -> Vec<MemSample> {
    let mut v = Vec::new();
    for i in 0..n {
        for (tid, off) in [(1, 0), (2, 8)] {
            v.push(s(tid, FS_LINE + off, MemOp::Load, i % 2 == 0));
            v.push(s(tid, FS_LINE + off, MemOp::Store, false));
        }
    }
    v
}

/// Two threads increment the same counter at offset 16.
fn true_sharing(n: usize) -> Vec<MemSample> {
    let mut v = Vec::new();
    for _ in 0..n {
        for tid in [3, 4] {
            v.push(s(tid, TS_LINE + 16, MemOp::Load, true));
            v.push(s(tid, TS_LINE + 16, MemOp::Store, false));
        }
    }
    v
}

/// Three readers; one rare writer.
fn read_mostly(n: usize) -> Vec<MemSample> {
    let mut v = Vec::new();
    for i in 0..n {
        for tid in [5, 6, 7] {
            v.push(s(tid, RM_LINE + 8 * u64::from(tid % 4), MemOp::Load, false));
        }
        if i % 100 == 0 {
            v.push(s(5, RM_LINE, MemOp::Store, false));
        }
    }
    v
}

/// Every thread touches only its own lines.
fn clean(rng: &mut StdRng, n: usize) -> Vec<MemSample> {
    (0..n)
        .map(|_| {
            let tid = rng.random_range(10..18u32);
            let line = 0x9000_0000 + u64::from(tid) * 0x1000 + rng.random_range(0..16u64) * 64;
            let op = if rng.random_bool(0.5) {
                MemOp::Load
            } else {
                MemOp::Store
            };
            s(tid, line + rng.random_range(0..8u64) * 8, op, false)
        })
        .collect()
}

fn class_of(r: &C2cReport, addr: u64) -> Option<LineClass> {
    r.lines
        .iter()
        .find(|l| l.line.address == addr)
        .map(|l| l.line.class)
}

#[test]
fn finds_planted_false_sharing_with_threads_and_offsets() {
    let r = analyse(
        &false_sharing(200),
        0,
        64,
        None,
        "test".into(),
        "t".into(),
        10,
    );
    let top = &r.lines[0];
    assert_eq!(top.line.address, FS_LINE);
    assert_eq!(top.line.class, LineClass::FalseSharing);
    assert_eq!(top.line.threads.len(), 2);
    assert_eq!(
        top.line.threads[&1]
            .offsets_written
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![0]
    );
    assert_eq!(
        top.line.threads[&2]
            .offsets_written
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![8]
    );
    assert_eq!(top.line.hitm, 200);
    assert!(
        r.verdict.starts_with("1 false-sharing and 0 true-sharing"),
        "{}",
        r.verdict
    );
    assert!(
        r.verdict.contains("tid 1 writes [0]") && r.verdict.contains("tid 2 writes [8]"),
        "{}",
        r.verdict
    );
}

#[test]
fn classifies_true_sharing_and_read_mostly() {
    let mut all = true_sharing(50);
    all.extend(read_mostly(300));
    let r = analyse(&all, 0, 64, None, "test".into(), "t".into(), 10);
    assert_eq!(class_of(&r, TS_LINE), Some(LineClass::TrueSharing));
    assert_eq!(class_of(&r, RM_LINE), Some(LineClass::ReadMostly));
    assert_eq!(r.counts.get("true-sharing"), Some(&1));
    assert_eq!(r.counts.get("false-sharing"), None);
}

#[test]
fn mixed_stream_ranks_flagged_lines_first() {
    let mut rng = StdRng::seed_from_u64(42);
    let mut all = clean(&mut rng, 5000);
    all.extend(read_mostly(300));
    all.extend(true_sharing(20));
    all.extend(false_sharing(100));
    // Interleave as a real stream would be.
    for i in (1..all.len()).rev() {
        let j = rng.random_range(0..=i);
        all.swap(i, j);
    }
    let r = analyse(&all, 3, 64, None, "test".into(), "t".into(), 10);
    assert_eq!(r.lines[0].line.address, FS_LINE, "most HITM first");
    assert_eq!(r.lines[1].line.address, TS_LINE);
    assert_eq!(class_of(&r, RM_LINE), Some(LineClass::ReadMostly));
    assert_eq!(r.lost, 3);
    assert_eq!(r.samples, all.len() as u64);
}

#[test]
fn clean_streams_flag_nothing() {
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(seed);
        let r = analyse(
            &clean(&mut rng, 2000),
            0,
            64,
            None,
            "test".into(),
            "t".into(),
            10,
        );
        assert!(
            r.lines.iter().all(|l| !l.line.class.flagged()),
            "seed {seed}"
        );
        assert!(
            r.verdict.starts_with("no contended cache line"),
            "{}",
            r.verdict
        );
        assert_eq!(
            r.counts.get("private").copied().unwrap_or(0),
            r.counts.values().sum::<usize>()
        );
    }
}

#[test]
fn accesses_spanning_offsets_are_compared_byte_by_byte() {
    // A 16-byte store at offset 0 overlaps an 8-byte load at offset 8: true sharing.
    let mut v = vec![
        s(1, FS_LINE, MemOp::Store, false),
        s(2, FS_LINE + 8, MemOp::Load, true),
    ];
    v[0].size = 16;
    let r = analyse(&v, 0, 64, None, "t".into(), "t".into(), 5);
    assert_eq!(class_of(&r, FS_LINE), Some(LineClass::TrueSharing));
    v[0].size = 8;
    let r = analyse(&v, 0, 64, None, "t".into(), "t".into(), 5);
    assert_eq!(class_of(&r, FS_LINE), Some(LineClass::FalseSharing));
}

#[cfg(target_os = "linux")]
#[repr(C, align(64))]
struct Planted {
    a: std::sync::atomic::AtomicU64,
    b: std::sync::atomic::AtomicU64,
}

#[cfg(target_os = "linux")]
#[no_mangle]
static HWPROF_C2C_PLANTED: Planted = Planted {
    a: std::sync::atomic::AtomicU64::new(0),
    b: std::sync::atomic::AtomicU64::new(0),
};

#[cfg(target_os = "linux")]
#[no_mangle]
#[inline(never)]
extern "C" fn hwprof_c2c_writer() -> u64 {
    std::hint::black_box(1)
}

/// A recorded stream of this very process: the line resolves to the static's
/// symbol and the code address to the writer function.
#[cfg(target_os = "linux")]
#[test]
fn recorded_stream_symbolises_data_and_code() {
    use std::io::Write;
    let a = &HWPROF_C2C_PLANTED.a as *const _ as u64;
    let b = &HWPROF_C2C_PLANTED.b as *const _ as u64;
    let ip = hwprof_c2c_writer as *const () as u64;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(
        f,
        "{}",
        serde_json::to_string(&RecordingHeader { maps }).unwrap()
    )
    .unwrap();
    for i in 0..50 {
        for (tid, addr) in [(1u32, a), (2, b)] {
            let mut x = s(tid, addr, MemOp::Store, false);
            x.ip = ip;
            writeln!(f, "{}", serde_json::to_string(&x).unwrap()).unwrap();
            let mut y = s(tid, addr, MemOp::Load, i % 3 == 0);
            y.ip = ip;
            writeln!(f, "{}", serde_json::to_string(&y).unwrap()).unwrap();
        }
    }
    drop(f);
    let (header, samples) = read_recording(&path).unwrap();
    let sym = Symbolizer::from_maps(
        crate::symbols::parse_maps(&header.unwrap().maps),
        "/".into(),
    );
    let r = analyse(&samples, 0, 64, Some(sym), "replay".into(), "t".into(), 5);
    let top = &r.lines[0];
    assert_eq!(top.line.class, LineClass::FalseSharing);
    assert_eq!(
        top.data.as_ref().and_then(|d| d.symbol.as_deref()),
        Some("HWPROF_C2C_PLANTED")
    );
    assert_eq!(
        top.code_sites[0].symbol.as_deref(),
        Some("hwprof_c2c_writer")
    );
    assert!(r.verdict.contains("HWPROF_C2C_PLANTED"), "{}", r.verdict);
    assert_eq!(hwprof_c2c_writer(), 1);
}

#[test]
fn malformed_recordings_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "{\"tid\": 1}\n").unwrap();
    let err = read_recording(&path).unwrap_err();
    assert!(crate::error::is_usage(&err));
    assert!(crate::error::is_usage(
        &read_recording(&dir.path().join("missing")).unwrap_err()
    ));
}
