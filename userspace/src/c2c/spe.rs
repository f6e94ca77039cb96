//! Arm Statistical Profiling Extension (SPE) record decoding.
//!
//! SPE writes sampled operations as packet streams into the perf AUX buffer. A
//! record is a sequence of packets ending with a timestamp (or End) packet.
//! Packet formats follow the Arm ARM (chapter D10, "Statistical Profiling
//! Extension") as implemented by Linux' arm-spe-pkt-decoder; data-source codes
//! are the Neoverse ones (N1/V1/N2/V2 TRMs).

use super::sample::{MemOp, MemSample};

const PAD: u8 = 0x00;
const END: u8 = 0x01;
const TIMESTAMP: u8 = 0x71;
const EXTENDED: u8 = 0x20;
const MASK1: u8 = 0b1100_1111; // bits 7:6 and 3:0
const EVENTS: u8 = 0x42;
const DATA_SOURCE: u8 = 0x43;
const MASK2: u8 = 0b1111_1100; // bits 7:2
const CONTEXT: u8 = 0x64;
const OP_TYPE: u8 = 0x48;
const MASK3: u8 = 0b1111_1000; // bits 7:3
const ADDRESS: u8 = 0xb0;
const COUNTER: u8 = 0x98;

const ADDR_PC: u8 = 0;
const ADDR_DATA_VA: u8 = 2;
const ADDR_DATA_PA: u8 = 3;

const EV_REMOTE_ACCESS: u64 = 1 << 10;
const EV_L1D_REFILL: u64 = 1 << 3;

/// Neoverse data-source codes.
pub const SRC_L1D: u64 = 0x0;
pub const SRC_L2: u64 = 0x8;
pub const SRC_PEER_CORE: u64 = 0x9;
pub const SRC_LOCAL_CLUSTER: u64 = 0xa;
pub const SRC_SYS_CACHE: u64 = 0xb;
pub const SRC_PEER_CLUSTER: u64 = 0xc;
pub const SRC_REMOTE: u64 = 0xd;
pub const SRC_DRAM: u64 = 0xe;

/// One decoded SPE record (one sampled operation).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpeRecord {
    pub pc: Option<u64>,
    pub data_va: Option<u64>,
    pub data_pa: Option<u64>,
    /// Load/store operation (None for branches and other ops).
    pub op: Option<MemOp>,
    pub events: u64,
    pub source: Option<u64>,
    /// CONTEXTIDR_EL1: the PID when the kernel publishes it there.
    pub context: Option<u32>,
    pub total_latency: Option<u16>,
    pub timestamp: Option<u64>,
}

impl SpeRecord {
    /// Served by another core's cache (the SPE counterpart of a snoop HITM).
    pub fn from_peer(&self) -> bool {
        matches!(
            self.source,
            Some(SRC_PEER_CORE) | Some(SRC_LOCAL_CLUSTER) | Some(SRC_PEER_CLUSTER)
        )
    }

    pub fn level(&self) -> Option<String> {
        Some(
            match self.source? {
                SRC_L1D => "L1",
                SRC_L2 => "L2",
                SRC_PEER_CORE => "peer core",
                SRC_LOCAL_CLUSTER => "local cluster",
                SRC_SYS_CACHE => "system cache",
                SRC_PEER_CLUSTER => "peer cluster",
                SRC_REMOTE => "remote socket",
                SRC_DRAM => "DRAM",
                _ => "other",
            }
            .to_string(),
        )
    }

    /// A memory sample, for load/store records with a data address.
    pub fn to_sample(&self, pid: u32, tid: u32) -> Option<MemSample> {
        Some(MemSample {
            pid,
            tid,
            cpu: None,
            ip: self.pc.unwrap_or(0),
            addr: self.data_va?,
            op: self.op?,
            size: 8,
            hitm: self.from_peer(),
            remote: self.events & EV_REMOTE_ACCESS != 0 || self.source == Some(SRC_REMOTE),
            level: self.level(),
            weight: u64::from(self.total_latency.unwrap_or(0)),
        })
    }
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |v, &b| (v << 8) | u64::from(b))
}

/// Virtual addresses carry a tag byte in bits 63:56; sign-extend from bit 55.
fn va(payload: u64) -> u64 {
    let a = payload & ((1 << 56) - 1);
    if a & (1 << 55) != 0 {
        a | 0xff00_0000_0000_0000
    } else {
        a
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub header: u8,
}

/// Decode every complete record in `buf`. Returns the records and how many bytes
/// were consumed (a trailing partial record is left for the next read). Unknown
/// packets end decoding with an error at their offset.
pub fn decode(buf: &[u8]) -> (Vec<SpeRecord>, usize, Option<DecodeError>) {
    let mut records = Vec::new();
    let mut cur = SpeRecord::default();
    let mut i = 0;
    let mut consumed = 0;
    while i < buf.len() {
        let start = i;
        let mut hdr = buf[i];
        let mut ext_index_hi = 0u8;
        if hdr & 0xfc == EXTENDED {
            // Extended header: index bits 9:8 in the first byte's low bits.
            ext_index_hi = hdr & 0x3;
            i += 1;
            if i >= buf.len() {
                break;
            }
            hdr = buf[i];
        }
        let payload_len = |h: u8| 1usize << ((h >> 4) & 0x3);
        let take = |i: usize, n: usize| -> Option<&[u8]> { buf.get(i + 1..i + 1 + n) };
        match hdr {
            PAD => {
                i += 1;
                consumed = i.max(consumed);
                continue;
            }
            END => {
                records.push(std::mem::take(&mut cur));
                i += 1;
                consumed = i;
                continue;
            }
            TIMESTAMP => {
                let Some(p) = take(i, 8) else { break };
                cur.timestamp = Some(le(p));
                records.push(std::mem::take(&mut cur));
                i += 9;
                consumed = i;
                continue;
            }
            _ => {}
        }
        if hdr & MASK3 == ADDRESS {
            let index = (ext_index_hi << 3) | (hdr & 0x7);
            let Some(p) = take(i, 8) else { break };
            let v = le(p);
            match index {
                ADDR_PC => cur.pc = Some(va(v)),
                ADDR_DATA_VA => cur.data_va = Some(va(v)),
                ADDR_DATA_PA => cur.data_pa = Some(v & ((1 << 56) - 1)),
                _ => {}
            }
            i += 9;
        } else if hdr & MASK3 == COUNTER {
            let Some(p) = take(i, 2) else { break };
            if hdr & 0x7 == 0 {
                cur.total_latency = Some(le(p) as u16);
            }
            i += 3;
        } else if hdr & MASK1 == EVENTS {
            let n = payload_len(hdr);
            let Some(p) = take(i, n) else { break };
            cur.events = le(p);
            i += 1 + n;
        } else if hdr & MASK1 == DATA_SOURCE {
            let n = payload_len(hdr);
            let Some(p) = take(i, n) else { break };
            cur.source = Some(le(p));
            i += 1 + n;
        } else if hdr & MASK2 == CONTEXT {
            let n = payload_len(hdr);
            let Some(p) = take(i, n) else { break };
            cur.context = Some(le(p) as u32);
            i += 1 + n;
        } else if hdr & MASK2 == OP_TYPE {
            let Some(p) = take(i, 1) else { break };
            // Class 1 = load/store/atomic; payload bit 0 set = store.
            cur.op = match hdr & 0x3 {
                1 => Some(if p[0] & 1 == 1 {
                    MemOp::Store
                } else {
                    MemOp::Load
                }),
                _ => None,
            };
            i += 2;
        } else {
            return (
                records,
                consumed,
                Some(DecodeError {
                    offset: start,
                    header: hdr,
                }),
            );
        }
    }
    (records, consumed, None)
}

/// Encoders for tests and recordings (the inverse of `decode`).
pub mod encode {
    use super::*;

    pub fn address(index: u8, addr: u64) -> Vec<u8> {
        let mut v = vec![ADDRESS | index];
        v.extend_from_slice(&addr.to_le_bytes());
        v
    }
    pub fn op(store: bool) -> Vec<u8> {
        vec![OP_TYPE | 1, u8::from(store)]
    }
    pub fn events(bits: u16) -> Vec<u8> {
        let mut v = vec![EVENTS | 0x10];
        v.extend_from_slice(&bits.to_le_bytes());
        v
    }
    pub fn source(code: u8) -> Vec<u8> {
        vec![DATA_SOURCE, code]
    }
    pub fn context(pid: u32) -> Vec<u8> {
        // 0x64: size field 2 → 4-byte payload.
        let mut v = vec![CONTEXT];
        v.extend_from_slice(&pid.to_le_bytes());
        v
    }
    pub fn latency(cycles: u16) -> Vec<u8> {
        let mut v = vec![COUNTER];
        v.extend_from_slice(&cycles.to_le_bytes());
        v
    }
    pub fn timestamp(t: u64) -> Vec<u8> {
        let mut v = vec![TIMESTAMP];
        v.extend_from_slice(&t.to_le_bytes());
        v
    }
    /// One load/store record.
    pub fn record(pc: u64, va: u64, store: bool, src: u8, pid: u32, ts: u64) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(context(pid));
        v.extend(address(ADDR_PC, pc));
        v.extend(op(store));
        let retired = 1 << 1;
        let remote = if u64::from(src) == SRC_REMOTE {
            EV_REMOTE_ACCESS
        } else {
            0
        };
        let refill = if store { 0 } else { EV_L1D_REFILL };
        v.extend(events((retired | remote | refill) as u16));
        v.extend(latency(42));
        v.extend(address(ADDR_DATA_VA, va));
        v.extend(source(src));
        v.extend(timestamp(ts));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_load_record() {
        let buf = encode::record(
            0x4000_1000,
            0x7f00_0000_1008,
            false,
            SRC_PEER_CORE as u8,
            321,
            99,
        );
        let (recs, used, err) = decode(&buf);
        assert_eq!(err, None);
        assert_eq!(used, buf.len());
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.pc, Some(0x4000_1000));
        assert_eq!(r.data_va, Some(0x7f00_0000_1008));
        assert_eq!(r.op, Some(MemOp::Load));
        assert_eq!(r.context, Some(321));
        assert_eq!(r.total_latency, Some(42));
        assert_eq!(r.timestamp, Some(99));
        assert!(r.from_peer());
        let s = r.to_sample(321, 321).unwrap();
        assert!(s.hitm && !s.remote);
        assert_eq!(s.level.as_deref(), Some("peer core"));
    }

    #[test]
    fn stores_remote_padding_and_partial_records() {
        let mut buf = vec![PAD, PAD];
        buf.extend(encode::record(0x10, 0x2000, true, SRC_REMOTE as u8, 1, 1));
        let first = buf.len();
        buf.extend(encode::record(0x20, 0x3000, false, SRC_DRAM as u8, 1, 2));
        buf.truncate(buf.len() - 3); // second record cut mid-timestamp
        let (recs, used, err) = decode(&buf);
        assert_eq!(err, None);
        assert_eq!(recs.len(), 1, "the partial record waits for more data");
        assert_eq!(used, first);
        assert_eq!(recs[0].op, Some(MemOp::Store));
        assert!(recs[0].to_sample(1, 1).unwrap().remote);
    }

    #[test]
    fn kernel_addresses_are_sign_extended_and_branches_are_not_samples() {
        let mut buf = encode::address(ADDR_PC, 0x00ff_8000_0000_1234 | (0xab << 56));
        buf.extend(vec![OP_TYPE | 2, 0]); // branch class
        buf.push(END);
        let (recs, _, err) = decode(&buf);
        assert_eq!(err, None);
        assert_eq!(recs[0].pc, Some(0xffff_8000_0000_1234));
        assert_eq!(recs[0].op, None);
        assert!(recs[0].to_sample(1, 1).is_none());
    }

    #[test]
    fn unknown_headers_stop_with_their_offset() {
        let mut buf = encode::record(0x10, 0x2000, true, 0, 1, 1);
        let at = buf.len();
        buf.push(0xff);
        let (recs, used, err) = decode(&buf);
        assert_eq!(recs.len(), 1);
        assert_eq!(used, at);
        assert_eq!(
            err,
            Some(DecodeError {
                offset: at,
                header: 0xff
            })
        );
    }
}
