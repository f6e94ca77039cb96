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
    /// A bare library or program name (`libc.so.6`, `postgres`) is looked up in
    /// what `pid` maps, then the system library directories, then PATH.
    pub fn parse(text: &str, pid: Option<u32>) -> Result<UprobeSpec, String> {
        let (bin, sym) = text
            .split_once(':')
            .filter(|(b, s)| !b.is_empty() && !s.is_empty())
            .ok_or_else(|| format!("--uprobe {text:?}: expected BINARY:SYMBOL"))?;
        let binary = find_binary(bin, pid).ok_or_else(|| {
            format!(
                "--uprobe {text:?}: no file {bin}{}",
                if bin.contains('/') {
                    String::new()
                } else {
                    " mapped by the target, in the library directories or on PATH".to_string()
                }
            )
        })?;
        let offset = crate::symbols::Symbolizer::symbol_file_offset(&binary, sym)
            .map_err(|e| format!("--uprobe {text:?}: {e}"))?;
        Ok(UprobeSpec {
            binary,
            symbol: sym.to_string(),
            offset,
        })
    }
}

/// Where `bin` is: a path as given, or a bare name found in the target's
/// mappings (the library it really uses), the library directories, or PATH.
fn find_binary(bin: &str, pid: Option<u32>) -> Option<PathBuf> {
    let p = PathBuf::from(bin);
    if bin.contains('/') {
        return p.is_file().then_some(p);
    }
    if let Some(pid) = pid {
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            for line in maps.lines() {
                if let Some(path) = line.split_whitespace().nth(5) {
                    let path = PathBuf::from(path);
                    if path.file_name().is_some_and(|n| n == bin) && path.is_file() {
                        return Some(path);
                    }
                }
            }
        }
    }
    let multiarch = format!("{}-linux-gnu", std::env::consts::ARCH);
    let mut dirs: Vec<PathBuf> = [
        format!("/lib/{multiarch}"),
        format!("/usr/lib/{multiarch}"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
        "/usr/local/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter().map(|d| d.join(bin)).find(|c| c.is_file())
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
