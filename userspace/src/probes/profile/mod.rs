//! `profile`: CPU sampling with a software cpu-clock perf event at a chosen
//! frequency on every CPU, filtered in the kernel to the target's threads; user
//! and kernel stack ids counted in a map, symbolised here into folded stacks (the
//! input of inferno and flamegraph.pl) and an SVG flame graph (inferno).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::symbols::Symbolizer;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub frequency_hz: u64,
    pub samples: u64,
    /// Folded stacks, hottest first: `frame;frame;frame count`.
    pub folded: Vec<String>,
    /// Functions by self samples (leaf frames), hottest first.
    pub top_functions: Vec<(String, u64)>,
    pub folded_file: Option<String>,
    pub svg_file: Option<String>,
}

/// Kernel symbols from /proc/kallsyms (addresses are zero without privilege).
pub struct Kallsyms(Vec<(u64, String)>);

impl Kallsyms {
    pub fn load() -> Kallsyms {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let mut v: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let addr = u64::from_str_radix(f.next()?, 16).ok()?;
                let _ty = f.next()?;
                Some((addr, f.next()?.to_string()))
            })
            .filter(|(a, _)| *a != 0)
            .collect();
        v.sort();
        Kallsyms(v)
    }

    pub fn resolve(&self, addr: u64) -> Option<&str> {
        let i = self.0.partition_point(|(a, _)| *a <= addr).checked_sub(1)?;
        Some(&self.0[i].1)
    }
}

/// Fold symbolised stacks. `stacks` = (user frames leaf-first, kernel frames
/// leaf-first, count).
pub fn fold(
    stacks: &[(Vec<u64>, Vec<u64>, u64)],
    sym: &mut Option<Symbolizer>,
    ksyms: &Kallsyms,
    comm: &str,
) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let mut folded: BTreeMap<String, u64> = BTreeMap::new();
    let mut leaf: BTreeMap<String, u64> = BTreeMap::new();
    for (user, kernel, n) in stacks {
        let mut frames: Vec<String> = vec![comm.to_string()];
        for ip in user.iter().rev() {
            let name = sym
                .as_mut()
                .and_then(|s| s.resolve(*ip).symbol)
                .map(|s| s.split('+').next().unwrap_or(&s).to_string())
                .unwrap_or_else(|| format!("{ip:#x}"));
            frames.push(name);
        }
        for ip in kernel.iter().rev() {
            frames.push(format!("{}_[k]", ksyms.resolve(*ip).unwrap_or("kernel")));
        }
        if let Some(l) = frames.last() {
            *leaf.entry(l.clone()).or_default() += n;
        }
        *folded.entry(frames.join(";")).or_default() += n;
    }
    (folded, leaf)
}

/// Write `name.folded` and `name.svg` into `dir`; returns their paths.
pub fn write_outputs(
    dir: &Path,
    folded: &[String],
    title: &str,
) -> anyhow::Result<(String, Option<String>)> {
    let folded_path = dir.join("profile.folded");
    crate::output::write_atomic(&folded_path, (folded.join("\n") + "\n").as_bytes())?;
    let mut svg = Vec::new();
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    let svg_path = if folded.is_empty() {
        None
    } else {
        inferno::flamegraph::from_lines(&mut opts, folded.iter().map(String::as_str), &mut svg)
            .map_err(|e| anyhow::anyhow!("flame graph: {e}"))?;
        let p = dir.join("profile.svg");
        crate::output::write_atomic(&p, &svg)?;
        Some(p.display().to_string())
    };
    Ok((folded_path.display().to_string(), svg_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_and_renders() {
        let ks = Kallsyms(vec![
            (0x1000, "do_syscall_64".into()),
            (0x2000, "schedule".into()),
        ]);
        let stacks = vec![
            (vec![0xdead, 0xbeef], vec![0x2010, 0x1010], 5),
            (vec![0xdead, 0xbeef], vec![], 3),
        ];
        let (folded, leaf) = fold(&stacks, &mut None, &ks, "app");
        assert_eq!(
            folded["app;0xbeef;0xdead;do_syscall_64_[k];schedule_[k]"],
            5
        );
        assert_eq!(folded["app;0xbeef;0xdead"], 3);
        assert_eq!(leaf["0xdead"], 3);
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = folded.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let (f, svg) = write_outputs(dir.path(), &lines, "test").unwrap();
        assert!(std::fs::read_to_string(f)
            .unwrap()
            .contains("app;0xbeef;0xdead 3"));
        assert!(std::fs::read_to_string(svg.unwrap())
            .unwrap()
            .contains("<svg"));
    }
}
