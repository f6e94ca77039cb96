//! Aggregation of memory samples by cache line and classification of each shared
//! line: false sharing (threads write different bytes of one line), true sharing
//! (a written byte is touched by another thread), or read-mostly.

use std::collections::BTreeMap;

use super::sample::{MemOp, MemSample};

/// Below this share of stores a line shared by several threads is read-mostly.
pub const READ_MOSTLY_STORE_SHARE: f64 = 0.05;

pub use crate::report::schema::{LineClass, LineReport, ThreadAccess};

fn byte_mask(offset: u64, size: u8, line: u64) -> u64 {
    let end = (offset + u64::from(size.max(1))).min(line);
    (offset..end).fold(0u64, |m, b| m | (1u64 << b))
}

#[derive(Debug, Clone, Default)]
struct LineAcc {
    hitm: u64,
    remote_hitm: u64,
    weight: u64,
    threads: BTreeMap<u32, ThreadAccess>,
    ips: BTreeMap<u64, u64>,
}

/// Accumulates samples; line size from the topology (64 unless told otherwise).
pub struct Aggregator {
    line: u64,
    lines: BTreeMap<u64, LineAcc>,
    pub total: u64,
}

impl Aggregator {
    pub fn new(line_bytes: u64) -> Aggregator {
        assert!(
            line_bytes.is_power_of_two() && line_bytes <= 64,
            "line size {line_bytes}"
        );
        Aggregator {
            line: line_bytes,
            lines: BTreeMap::new(),
            total: 0,
        }
    }

    pub fn add(&mut self, s: &MemSample) {
        self.total += 1;
        let base = s.addr & !(self.line - 1);
        let offset = s.addr - base;
        let acc = self.lines.entry(base).or_default();
        if s.hitm {
            acc.hitm += 1;
            if s.remote {
                acc.remote_hitm += 1;
            }
        }
        acc.weight += s.weight;
        *acc.ips.entry(s.ip).or_default() += 1;
        let t = acc.threads.entry(s.tid).or_default();
        let mask = byte_mask(offset, s.size, self.line);
        match s.op {
            MemOp::Load => {
                t.loads += 1;
                t.offsets_read.insert(offset as u8);
                t.read_bytes |= mask;
            }
            MemOp::Store => {
                t.stores += 1;
                t.offsets_written.insert(offset as u8);
                t.written_bytes |= mask;
            }
        }
    }

    /// Classified lines, flagged ones first (most HITM, then most samples).
    pub fn finish(self) -> Vec<LineReport> {
        let mut out: Vec<LineReport> = self
            .lines
            .into_iter()
            .map(|(address, acc)| classify(address, acc))
            .collect();
        out.sort_by(|a, b| {
            b.class
                .flagged()
                .cmp(&a.class.flagged())
                .then(b.hitm.cmp(&a.hitm))
                .then(b.samples.cmp(&a.samples))
                .then(a.address.cmp(&b.address))
        });
        out
    }
}

fn classify(address: u64, acc: LineAcc) -> LineReport {
    let loads: u64 = acc.threads.values().map(|t| t.loads).sum();
    let stores: u64 = acc.threads.values().map(|t| t.stores).sum();
    let samples = loads + stores;
    let writers: Vec<u32> = acc
        .threads
        .iter()
        .filter(|(_, t)| t.stores > 0)
        .map(|(tid, _)| *tid)
        .collect();
    let (class, explanation) = if acc.threads.len() < 2 {
        (LineClass::Private, "one thread".to_string())
    } else if writers.is_empty() || (stores as f64) < READ_MOSTLY_STORE_SHARE * samples as f64 {
        (
            LineClass::ReadMostly,
            format!(
                "{} threads, {:.1}% stores",
                acc.threads.len(),
                100.0 * stores as f64 / samples.max(1) as f64
            ),
        )
    } else {
        // A written byte touched by any other thread is true sharing.
        let mut overlap = None;
        for &w in &writers {
            let wb = acc.threads[&w].written_bytes;
            for (&tid, t) in &acc.threads {
                if tid != w && (t.read_bytes | t.written_bytes) & wb != 0 {
                    overlap = Some((w, tid));
                }
            }
        }
        match overlap {
            Some((w, t)) => (
                LineClass::TrueSharing,
                format!("thread {w} writes bytes that thread {t} also touches"),
            ),
            None => (
                LineClass::FalseSharing,
                format!(
                    "{} threads touch disjoint bytes ({} writing): pad or separate the fields",
                    acc.threads.len(),
                    writers.len()
                ),
            ),
        }
    };
    let mut code: Vec<(u64, u64)> = acc.ips.into_iter().collect();
    code.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    LineReport {
        address,
        class,
        samples,
        loads,
        stores,
        hitm: acc.hitm,
        remote_hitm: acc.remote_hitm,
        weight: acc.weight,
        threads: acc.threads,
        code,
        explanation,
    }
}
