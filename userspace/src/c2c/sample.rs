//! One memory-access sample, whatever produced it (PEBS, IBS, SPE, a recording).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemOp {
    Load,
    Store,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemSample {
    pub pid: u32,
    pub tid: u32,
    #[serde(default)]
    pub cpu: Option<u32>,
    /// Code address of the access.
    pub ip: u64,
    /// Data (virtual) address.
    pub addr: u64,
    pub op: MemOp,
    /// Bytes accessed (8 when the source cannot tell).
    #[serde(default = "default_size")]
    pub size: u8,
    /// Served by a modified line in another core's cache (snoop HITM / FWD).
    #[serde(default)]
    pub hitm: bool,
    /// Served from another socket (cache or DRAM).
    #[serde(default)]
    pub remote: bool,
    /// Where it was served from, in words (`L1`, `LFB`, `L3`, `local DRAM`, …).
    #[serde(default)]
    pub level: Option<String>,
    /// Latency weight (cycles) where the source reports it.
    #[serde(default)]
    pub weight: u64,
}

fn default_size() -> u8 {
    8
}

// perf_mem_data_src bit layout (include/uapi/linux/perf_event.h).
const OP_LOAD: u64 = 0x02;
const OP_STORE: u64 = 0x04;
const LVL_SHIFT: u32 = 5;
const SNOOP_SHIFT: u32 = 19;
const SNOOP_HITM: u64 = 0x10;
const REMOTE_SHIFT: u32 = 37;
const SNOOPX_SHIFT: u32 = 38;
const SNOOPX_FWD: u64 = 0x01;

/// Decoded `data_src` of a perf sample.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    pub op: Option<MemOp>,
    pub hitm: bool,
    pub remote: bool,
    pub level: Option<String>,
}

impl DataSource {
    pub fn decode(bits: u64) -> DataSource {
        let op = bits & 0x1f;
        let lvl = (bits >> LVL_SHIFT) & 0x3fff;
        let snoop = (bits >> SNOOP_SHIFT) & 0x1f;
        let snoopx = (bits >> SNOOPX_SHIFT) & 0x3;
        let remote_lvl = lvl & (0x100 | 0x200 | 0x400 | 0x800) != 0;
        let level = [
            (0x08, "L1"),
            (0x10, "LFB"),
            (0x20, "L2"),
            (0x40, "L3"),
            (0x80, "local DRAM"),
            (0x100, "remote DRAM (1 hop)"),
            (0x200, "remote DRAM (2 hops)"),
            (0x400, "remote cache (1 hop)"),
            (0x800, "remote cache (2 hops)"),
            (0x1000, "I/O"),
            (0x2000, "uncached"),
        ]
        .iter()
        .find(|(bit, _)| lvl & bit != 0)
        .map(|(_, name)| {
            let miss = lvl & 0x04 != 0;
            format!("{name}{}", if miss { " miss" } else { "" })
        });
        DataSource {
            op: if op & OP_LOAD != 0 {
                Some(MemOp::Load)
            } else if op & OP_STORE != 0 {
                Some(MemOp::Store)
            } else {
                None
            },
            hitm: snoop & SNOOP_HITM != 0 || snoopx & SNOOPX_FWD != 0 && lvl & 0x40 != 0,
            remote: (bits >> REMOTE_SHIFT) & 1 == 1 || remote_lvl,
            level,
        }
    }

    /// Inverse of `decode` for the fields hwprof uses (for tests and recordings).
    pub fn encode(op: MemOp, level_bits: u64, hitm: bool, remote: bool) -> u64 {
        let op = match op {
            MemOp::Load => OP_LOAD,
            MemOp::Store => OP_STORE,
        };
        op | ((level_bits | 0x02) << LVL_SHIFT)
            | (if hitm { SNOOP_HITM } else { 0x02 }) << SNOOP_SHIFT
            | u64::from(remote) << REMOTE_SHIFT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_hitm_and_remote() {
        let d = DataSource::decode(DataSource::encode(MemOp::Load, 0x40, true, false));
        assert_eq!(d.op, Some(MemOp::Load));
        assert!(d.hitm && !d.remote);
        assert_eq!(d.level.as_deref(), Some("L3"));
        let d = DataSource::decode(DataSource::encode(MemOp::Load, 0x400, true, true));
        assert!(d.hitm && d.remote);
        let d = DataSource::decode(DataSource::encode(MemOp::Store, 0x08, false, false));
        assert_eq!(d.op, Some(MemOp::Store));
        assert!(!d.hitm);
        assert_eq!(DataSource::decode(0).op, None);
    }
}
