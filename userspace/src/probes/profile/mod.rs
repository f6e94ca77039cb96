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

/// cpu-clock sampling at `hz` on every usable CPU, filtered in the kernel.
#[cfg(hwprof_probes)]
fn attach(ebpf: &mut aya::Ebpf, hz: u64) -> Result<usize, String> {
    use aya::programs::perf_event::{perf_sw_ids, PerfEventScope, PerfTypeId, SamplePolicy};
    use aya::programs::PerfEvent;
    let cpus = crate::topology::linux_sysfs::host()
        .map_err(|e| e.to_string())?
        .usable_cpus();
    let p: &mut PerfEvent = ebpf
        .program_mut("hwp_profile")
        .ok_or("program hwp_profile missing")?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    p.load()
        .map_err(|e| format!("loading the profile program: {e}"))?;
    for &cpu in &cpus {
        p.attach(
            PerfTypeId::Software,
            perf_sw_ids::PERF_COUNT_SW_CPU_CLOCK as u64,
            PerfEventScope::AllProcessesOneCpu { cpu: cpu as u32 },
            SamplePolicy::Frequency(hz),
            false,
        )
        .map_err(|e| format!("cpu-clock sampling on CPU {cpu}: {e}"))?;
    }
    Ok(cpus.len())
}

/// Stack counts into folded stacks, top functions and (with --out) a flame graph.
#[cfg(hwprof_probes)]
fn collect(maps: &super::session::Maps<'_>, ctx: &super::CollectContext<'_>) -> Report {
    use hwprof_probes_common::StackKey;
    let counts = maps.hash::<StackKey, u64>("STACK_COUNTS");
    let frames = |id: i32| maps.stack(id);
    let stacks: Vec<(Vec<u64>, Vec<u64>, u64)> = counts
        .iter()
        .map(|(k, n)| (frames(k.user_stack), frames(k.kernel_stack), *n))
        .collect();
    let mut sym = Symbolizer::for_pid(ctx.pid).ok();
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", ctx.pid))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "target".into());
    let (folded, leaf) = fold(&stacks, &mut sym, &Kallsyms::load(), &comm);
    let mut lines: Vec<(String, u64)> = folded.into_iter().collect();
    lines.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let folded: Vec<String> = lines.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let mut top: Vec<(String, u64)> = leaf.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1));
    top.truncate(20);
    let (folded_file, svg_file) = match ctx.profile_out {
        Some(dir) => match write_outputs(dir, &folded, &format!("hwprof profile: {comm}")) {
            Ok((f, s)) => (Some(f), s),
            Err(_) => (None, None),
        },
        None => (None, None),
    };
    Report {
        frequency_hz: maps.opts.frequency,
        samples: counts.iter().map(|c| c.1).sum(),
        folded,
        top_functions: top,
        folded_file,
        svg_file,
    }
}

const INFO: super::ProbeInfo = super::ProbeInfo {
    name: "profile",
    summary: "sampled user and kernel stacks (cpu-clock) as folded stacks and a flame graph",
    tracepoints: &[],
    btf_tracepoints: &[],
};

/// The `profile` probe (registered in [`super::PROBES`]).
pub struct Profile;

impl super::Probe for Profile {
    fn info(&self) -> &'static super::ProbeInfo {
        &INFO
    }
    #[cfg(hwprof_probes)]
    fn attach_other(
        &self,
        ebpf: &mut aya::Ebpf,
        opts: &super::ProbeOptions,
    ) -> Result<usize, String> {
        attach(ebpf, opts.frequency.max(1))
    }
    #[cfg(hwprof_probes)]
    fn collect(&self, c: &mut super::session::Collect<'_>) {
        c.report.profile = Some(collect(c.maps, c.ctx));
    }
    fn render(&self, report: &super::ProbesReport) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(pr) = &report.profile {
            v.push(format!(
                "profile (probe): {} samples at {} Hz; hottest: {}",
                pr.samples,
                pr.frequency_hz,
                crate::text::counted(&pr.top_functions[..pr.top_functions.len().min(5)])
            ));
            if let Some(svg) = &pr.svg_file {
                v.push(format!("  flame graph: {svg}"));
            }
        }

        v
    }
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
