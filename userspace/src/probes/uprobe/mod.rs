//! `--uprobe BINARY:SYMBOL`: entry + return probes on a named function (demangled
//! Rust/C++ names matched), call counts and a latency histogram. Four slots.

use std::path::PathBuf;

use serde::Serialize;

use super::hist::Log2Hist;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UprobeSpec {
    pub binary: PathBuf,
    pub symbol: String,
    /// File offset of the symbol (what the uprobe PMU takes).
    pub offset: u64,
}

impl UprobeSpec {
    /// Parse and resolve `BINARY:SYMBOL` (the last `:` splits, so `a::b` symbols
    /// need the binary first: `/usr/bin/x:crate::module::func`).
    pub fn parse(text: &str) -> Result<UprobeSpec, String> {
        let (bin, sym) = text
            .split_once(':')
            .filter(|(b, s)| !b.is_empty() && !s.is_empty())
            .ok_or_else(|| format!("--uprobe {text:?}: expected BINARY:SYMBOL"))?;
        let binary = PathBuf::from(bin);
        if !binary.is_file() {
            return Err(format!("--uprobe {text:?}: {bin} is not a file"));
        }
        let offset = crate::symbols::Symbolizer::symbol_file_offset(&binary, sym)
            .map_err(|e| format!("--uprobe {text:?}: {e}"))?;
        Ok(UprobeSpec {
            binary,
            symbol: sym.to_string(),
            offset,
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub binary: String,
    pub symbol: String,
    pub calls: u64,
    pub total_ns: u64,
    pub mean_ns: u64,
    pub latency: Log2Hist,
}
