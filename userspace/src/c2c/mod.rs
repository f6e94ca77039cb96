//! `hwprof c2c`: false-sharing detection from address samples, in the spirit of
//! `perf c2c`. Samples come from a [`source`] (PEBS/IBS through perf, or a
//! recorded JSON-lines stream), are aggregated by cache line, classified, and
//! symbolised.

pub mod aggregate;
#[cfg(target_os = "linux")]
pub mod perf_linux;
pub mod sample;
pub mod spe;
#[cfg(target_os = "linux")]
pub mod spe_linux;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use aggregate::{Aggregator, LineClass};
use sample::MemSample;

use crate::error::usage;
use crate::symbols::Symbolizer;

/// First line of a recording may describe the process the samples came from.
#[derive(Debug, Deserialize, Serialize)]
pub struct RecordingHeader {
    /// Text of /proc/PID/maps at recording time, for symbolisation.
    pub maps: String,
}

/// Read a JSON-lines recording: optional header, then one [`MemSample`] per line.
pub fn read_recording(path: &Path) -> anyhow::Result<(Option<RecordingHeader>, Vec<MemSample>)> {
    let f = std::fs::File::open(path).map_err(|e| {
        usage(format!(
            "--replay {}: {}",
            path.display(),
            crate::input::io_reason(&e)
        ))
    })?;
    parse_recording(
        std::io::BufReader::new(f),
        &format!("--replay {}", path.display()),
    )
}

/// A recording from any reader (`what` names it in messages): the optional
/// header line, then one sample per line; bounded per line and in samples.
pub fn parse_recording(
    reader: impl std::io::BufRead,
    what: &str,
) -> anyhow::Result<(Option<RecordingHeader>, Vec<MemSample>)> {
    use crate::input::{BoundedLines, MAX_RECORD_BYTES};
    let mut header = None;
    let mut samples = Vec::new();
    for line in BoundedLines::new(reader, MAX_RECORD_BYTES) {
        let (n, line) = line.map_err(|e| usage(format!("{what}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        if n == 1 {
            if let Ok(h) = serde_json::from_str::<RecordingHeader>(&line) {
                header = Some(h);
                continue;
            }
        }
        if samples.len() >= MAX_REPLAY_SAMPLES {
            return Err(usage(format!(
                "{what}: more than {MAX_REPLAY_SAMPLES} samples; split the recording"
            )));
        }
        let s: MemSample = serde_json::from_str(&line)
            .map_err(|e| usage(format!("{what}: line {n}: not a memory sample ({e})")))?;
        samples.push(s);
    }
    Ok((header, samples))
}

/// Samples one replay may hold (about 1.5 GB in memory at this bound).
pub const MAX_REPLAY_SAMPLES: usize = 20_000_000;

pub use crate::report::schema::{C2cReport, CodeSite, LineOut};

/// Aggregate, classify, symbolise and summarise.
pub fn analyse(
    samples: &[MemSample],
    lost: u64,
    line_bytes: u64,
    mut symbolizer: Option<Symbolizer>,
    source: String,
    target: String,
    top: usize,
) -> C2cReport {
    let mut agg = Aggregator::new(line_bytes);
    for s in samples {
        agg.add(s);
    }
    let total = agg.total;
    let lines = agg.finish();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in &lines {
        let key = serde_json::to_value(l.class)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *counts.entry(key).or_default() += 1;
    }
    let shown: Vec<LineOut> = lines
        .into_iter()
        .filter(|l| l.class != LineClass::Private)
        .take(top)
        .map(|l| {
            let data = symbolizer.as_mut().map(|s| s.resolve(l.address));
            let code_sites = l
                .code
                .iter()
                .take(5)
                .map(|(ip, n)| CodeSite {
                    ip: format!("{ip:#x}"),
                    samples: *n,
                    symbol: symbolizer.as_mut().and_then(|s| s.resolve(*ip).symbol),
                })
                .collect();
            LineOut {
                data,
                line: l,
                code_sites,
            }
        })
        .collect();
    let verdict = verdict(&shown, total);
    C2cReport {
        schema_version: 1,
        kind: "c2c".into(),
        source,
        target,
        line_bytes,
        samples: total,
        lost,
        counts,
        verdict,
        lines: shown,
    }
}

fn verdict(lines: &[LineOut], total: u64) -> String {
    if total == 0 {
        return "no samples: nothing to say (did the target touch memory during the window?)"
            .into();
    }
    let flagged: Vec<&LineOut> = lines.iter().filter(|l| l.line.class.flagged()).collect();
    let Some(top) = flagged.first() else {
        return format!("no contended cache line among {total} samples");
    };
    let name = top
        .data
        .as_ref()
        .map_or(String::new(), |d| format!(" ({})", d.describe()));
    let threads: Vec<String> = top
        .line
        .threads
        .iter()
        .map(|(tid, t)| {
            let w: Vec<String> = t.offsets_written.iter().map(|o| o.to_string()).collect();
            let r: Vec<String> = t.offsets_read.iter().map(|o| o.to_string()).collect();
            format!("tid {tid} writes [{}] reads [{}]", w.join(","), r.join(","))
        })
        .collect();
    let fs = flagged
        .iter()
        .filter(|l| l.line.class == LineClass::FalseSharing)
        .count();
    let ts = flagged.len() - fs;
    format!(
        "{fs} false-sharing and {ts} true-sharing line(s); hottest: {}{name}, {}: {}; {}",
        format!("{:#x}", top.line.address),
        match top.line.class {
            LineClass::FalseSharing => "false sharing",
            _ => "true sharing",
        },
        threads.join("; "),
        top.line.explanation
    )
}

#[cfg(test)]
mod tests;
