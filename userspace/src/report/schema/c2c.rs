//! `hwprof c2c`'s report (c2c.json): cache lines by class, their threads and code.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::symbols::Resolved;

impl std::fmt::Display for LineClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::FalseSharing => "false sharing",
            Self::TrueSharing => "true sharing",
            Self::ReadMostly => "read-mostly",
            Self::Private => "private",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum LineClass {
    /// Different threads write disjoint bytes of the line: padding fixes it.
    FalseSharing,
    /// Threads write (or write and read) the same bytes: a real data race or
    /// shared variable; padding does not help, the sharing itself must go.
    TrueSharing,
    /// Shared by several threads, (almost) never written: harmless.
    ReadMostly,
    /// Touched by one thread only.
    Private,
}

impl LineClass {
    /// Lines worth an engineer's attention.
    pub fn flagged(self) -> bool {
        matches!(self, LineClass::FalseSharing | LineClass::TrueSharing)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ThreadAccess {
    pub loads: u64,
    pub stores: u64,
    /// Byte offsets within the line (start of each access).
    pub offsets_read: BTreeSet<u8>,
    pub offsets_written: BTreeSet<u8>,
    /// Bytes touched, as bit masks over the line (aggregation only).
    #[serde(skip)]
    pub(crate) read_bytes: u64,
    #[serde(skip)]
    pub(crate) written_bytes: u64,
}

fn hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}

#[derive(Debug, Clone, Serialize)]
pub struct LineReport {
    /// Line base address (hex string in JSON).
    #[serde(serialize_with = "hex")]
    pub address: u64,
    pub class: LineClass,
    pub samples: u64,
    pub loads: u64,
    pub stores: u64,
    pub hitm: u64,
    pub remote_hitm: u64,
    /// Sum of latency weights (cycles).
    pub weight: u64,
    pub threads: BTreeMap<u32, ThreadAccess>,
    /// Code addresses and how many samples each produced, most first.
    pub code: Vec<(u64, u64)>,
    pub explanation: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CodeSite {
    pub ip: String,
    pub samples: u64,
    pub symbol: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LineOut {
    /// What the line's address is: a static's symbol, or its mapping.
    pub data: Option<Resolved>,
    #[serde(flatten)]
    pub line: LineReport,
    pub code_sites: Vec<CodeSite>,
}

#[derive(Debug, Clone, Serialize)]
pub struct C2cReport {
    pub schema_version: u32,
    pub kind: String,
    /// `pebs`, `ibs`, or `replay:FILE`.
    pub source: String,
    pub target: String,
    pub line_bytes: u64,
    pub samples: u64,
    /// Records the kernel dropped (ring buffer full); never dropped silently.
    pub lost: u64,
    pub counts: BTreeMap<String, usize>,
    pub verdict: String,
    /// Flagged lines, then the most sampled shared ones (up to --top).
    pub lines: Vec<LineOut>,
}
