//! `hwprof suite`'s combined report (suite.json).

use serde::Serialize;

use super::Warning;

/// How one experiment of a suite ended. Serialised as `ok`, `interrupted`,
/// `failed: REASON` or `not run: REASON` (the suite schema's string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryStatus {
    Ok,
    Interrupted,
    Failed(String),
    /// Not started: an earlier experiment left a worker thread running, which
    /// would disturb every later measurement.
    NotRun(String),
}

impl EntryStatus {
    pub fn is_ok(&self) -> bool {
        *self == EntryStatus::Ok
    }
    pub fn is_failed(&self) -> bool {
        matches!(self, EntryStatus::Failed(_) | EntryStatus::NotRun(_))
    }
}

impl std::fmt::Display for EntryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryStatus::Ok => f.write_str("ok"),
            EntryStatus::Interrupted => f.write_str("interrupted"),
            EntryStatus::Failed(why) => write!(f, "failed: {why}"),
            EntryStatus::NotRun(why) => write!(f, "not run: {why}"),
        }
    }
}

impl Serialize for EntryStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One experiment of `hwprof suite`.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteEntry {
    pub experiment: String,
    pub summary: String,
    pub status: EntryStatus,
    pub seconds: f64,
    /// The answer first: the headline comparison (the first conclusive one of
    /// any group, else the first), or the pair matrix's or first finding's line.
    pub headline: Option<String>,
    /// What to look at, most important first: what bends the figures (a busy
    /// machine, pinning that did not hold), then the experiment's own findings
    /// and the headline comparisons that miss their target.
    pub look_at: Vec<String>,
    /// Every comparison's verdict, per placement group: (group, text); then the
    /// experiment's own findings as ("finding", text).
    pub verdicts: Vec<(String, String)>,
    /// What the reader must know to trust them (VM, single NUMA node, …).
    pub warnings: Vec<Warning>,
    /// Paths relative to the suite directory.
    pub report: Option<String>,
    pub plots: Vec<String>,
}

/// `hwprof suite`'s combined report (suite.json).
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub schema_version: u32,
    pub kind: String,
    pub quick: bool,
    pub started_at: String,
    pub seconds: f64,
    pub experiments: Vec<SuiteEntry>,
    pub machine: Option<crate::machine::MachineProfile>,
}
