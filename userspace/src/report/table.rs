//! Readable terminal output.

use std::fmt::Write as _;

use super::export::{Exporter, Table};
use super::schema::{AttachReport, C2cReport, Metric};
use super::Report;
use crate::machine::MachineProfile;

/// `12.3M` style for large rates.
pub fn si(x: f64) -> String {
    let a = x.abs();
    if a >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e3 {
        format!("{:.2}k", x / 1e3)
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

pub fn metric_cell(m: &Metric) -> String {
    match (&m.summary, m.available) {
        (Some(s), true) => format!(
            "{} [{}–{}] cv {:.1}% ({})",
            si(s.median),
            si(s.ci95.lo),
            si(s.ci95.hi),
            s.cv * 100.0,
            m.source.name()
        ),
        _ => format!("n/a ({})", m.reason.as_deref().unwrap_or("not measured")),
    }
}

impl super::export::Exporter<Report> for super::export::Table {
    fn file_name(&self) -> Option<&'static str> {
        None
    }
    fn render(&self, r: &Report) -> String {
        render(r)
    }
}

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "hwprof {} — {}", r.experiment.name, r.experiment.summary);
    let _ = writeln!(s, "machine: {}", machine_line(m));
    for n in &r.experiment.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let _ = writeln!(s, "measurement: {}", r.measurement.fallback);
    let _ = writeln!(s, "timer: {}", m.timer.description);
    let _ = writeln!(
        s,
        "runs: {} repetitions x {:.2} s per variant after {} warm-up, {}; binding: {}",
        r.settings.repetitions,
        r.settings.duration_s,
        r.settings.warmup,
        r.settings.order,
        r.measurement.binding
    );
    for g in &r.groups {
        let _ = writeln!(
            s,
            "\n== {} (CPUs {}) ==",
            g.label,
            crate::placement::cpulist::format(&g.cpus)
        );
        let _ = writeln!(s, "  median [95% CI] cv (source)");
        for v in &g.variants {
            let _ = writeln!(s, "  {}: {}", v.name, v.description);
            for (name, metric) in &v.metrics {
                if metric.available || name == "cycles_per_op" || name == "cache_misses_per_op" {
                    let _ = writeln!(s, "    {name:<24} {}", metric_cell(metric));
                }
            }
        }
        if let Some(c) = &g.comparison {
            let _ = writeln!(
                s,
                "  {} = {:.2} [{:.2}–{:.2}] ({})",
                c.effect,
                c.ratio,
                c.ci95.lo,
                c.ci95.hi,
                c.source.name()
            );
            let _ = writeln!(s, "  verdict: {}", c.verdict.text);
            if let Some(h) = g.headline_rounds.filter(|h| !h.conclusive_before) {
                let _ = writeln!(s, "  adaptive: {h}");
            }
        }
        if g.off_cpu_samples > 0 || g.migrations_seen > 0 {
            let _ = writeln!(
                s,
                "  placement: {} getcpu checks off the planned CPU, {} migrations seen",
                g.off_cpu_samples, g.migrations_seen
            );
        }
    }
    if let Some(m) = &r.pair_matrix {
        let _ = writeln!(s, "\npairs [timer]:");
        for l in super::table::pair_lines(m) {
            let _ = writeln!(s, "  {l}");
        }
    }
    if let Some(f) = &r.findings {
        for v in &f.verdict {
            let _ = writeln!(s, "\nfinding: {v}");
        }
    }
    for sc in &r.scaling {
        let pts: Vec<String> = sc
            .points
            .iter()
            .map(|p| {
                format!(
                    "{}t {} ops/s (speedup {:.2}, eff {:.2})",
                    p.threads,
                    si(p.ops_per_sec),
                    p.speedup,
                    p.efficiency
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "\nscaling {} ({}): {} [timer]",
            sc.variant,
            sc.policy,
            pts.join("; ")
        );
        if let Some(u) = &sc.usl {
            let _ = writeln!(
                s,
                "  USL: sigma {:.4}, kappa {:.5}, R² {:.3}, peak {}; {}",
                u.sigma,
                u.kappa,
                u.r2,
                u.peak_threads
                    .map_or("none (no coherency term)".into(), |p| format!(
                        "{p:.1} threads (extrapolated)"
                    )),
                u.note
            );
        }
    }
    if !r.plots.is_empty() {
        let _ = writeln!(s, "plots: {}", r.plots.join(", "));
    }
    if let Some(p) = &r.probes {
        let _ = writeln!(s);
        for l in p.lines() {
            let _ = writeln!(s, "{l}");
        }
        for w in &p.warnings {
            let _ = writeln!(s, "probe warning: {w}");
        }
    }
    for u in &r.placement.unavailable {
        let _ = writeln!(
            s,
            "\nnot available on this machine: {}: {}",
            u.label, u.reason
        );
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    if r.interrupted {
        let _ = writeln!(
            s,
            "\ninterrupted: the report holds what was measured before the signal"
        );
    }
    s
}

pub fn machine_line(m: &MachineProfile) -> String {
    let t = &m.topology;
    format!(
        "{} ({}), {} package(s), {} NUMA node(s), {}, {} PUs, {} L3; {}",
        m.cpu.model_name,
        m.cpu
            .microarchitecture
            .as_deref()
            .unwrap_or("unknown microarchitecture"),
        t.packages,
        t.numa_nodes,
        if t.cores_recorded {
            format!("{} cores", t.cores)
        } else {
            "cores not recorded".to_string()
        },
        t.pus,
        t.l3_domains,
        m.virtualization
            .as_deref()
            .map_or("bare metal".to_string(), |v| format!("{v} guest")),
    )
}

/// `hwprof info` without --json.
pub fn render_info(m: &MachineProfile) -> String {
    let mut s = String::new();
    let t = &m.topology;
    let c = &m.capabilities;
    let _ = writeln!(s, "machine   {}", machine_line(m));
    let _ = writeln!(s, "topology  {} via {}", t.source, t.backend);
    for n in &t.numa {
        let _ = writeln!(
            s,
            "  NUMA node {}: CPUs {}, {}",
            n.os_index,
            crate::placement::cpulist::format(&n.cpus),
            n.memory_bytes
                .map_or("memory not recorded".into(), |b| format!("{} MiB", b >> 20))
        );
    }
    if let Some(d) = &t.numa_distances {
        let _ = writeln!(
            s,
            "  NUMA distances (row: from node, column: to node):\n{}",
            crate::text::matrix(d, "  ")
        );
    }
    for level in 1..=3u8 {
        let caches: Vec<_> = t
            .caches
            .iter()
            .filter(|c| c.level == level && c.kind != "instruction")
            .collect();
        if let Some(first) = caches.first() {
            let _ = writeln!(
                s,
                "  L{level}: {} x {} (shared by {} PU(s) each)",
                caches.len(),
                first
                    .size_bytes
                    .map_or("size not recorded".into(), |b| format!("{} KiB", b >> 10)),
                first.cpus.len()
            );
        }
    }
    if !t.offline_cpus.is_empty() {
        let _ = writeln!(
            s,
            "  offline CPUs: {}",
            crate::placement::cpulist::format(&t.offline_cpus)
        );
    }
    if !t.disallowed_cpus.is_empty() {
        let _ = writeln!(
            s,
            "  disallowed CPUs: {}",
            crate::placement::cpulist::format(&t.disallowed_cpus)
        );
    }
    for (i, k) in t.cpu_kinds.iter().enumerate() {
        let _ = writeln!(
            s,
            "  CPU kind {i}: CPUs {}, efficiency rank {}{}",
            crate::placement::cpulist::format(&k.cpus),
            crate::text::opt(k.efficiency),
            if k.info.is_empty() {
                String::new()
            } else {
                format!(", {}", crate::text::attrs(&k.info))
            }
        );
    }
    let _ = writeln!(
        s,
        "cpu       {} family {} model {} stepping {}; SIMD {}; line {}",
        m.cpu.vendor,
        crate::text::opt(m.cpu.family),
        crate::text::opt(m.cpu.model),
        crate::text::opt(m.cpu.stepping),
        m.cpu.simd.join(" "),
        m.cpu
            .cache_line_bytes
            .map_or("size not recorded".into(), |b| format!("{b} B"))
    );
    let yn = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(
        s,
        "counters  hardware {} | software {} | perf_event_paranoid {}",
        yn(c.pmu_hardware),
        yn(c.pmu_software),
        c.paranoid.map_or("n/a".into(), |p| p.to_string())
    );
    let _ = writeln!(
        s,
        "eBPF      BTF {} | tracepoints {} | kprobes {} | uprobes {}",
        yn(c.ebpf.btf),
        yn(c.ebpf.tracepoints),
        yn(c.ebpf.kprobes),
        yn(c.ebpf.uprobes)
    );
    let p = &c.privileges;
    let _ = writeln!(
        s,
        "privilege euid {} | CAP_PERFMON {} | CAP_BPF {} | CAP_SYS_ADMIN {}",
        p.euid,
        yn(p.cap_perfmon),
        yn(p.cap_bpf),
        yn(p.cap_sys_admin)
    );
    let _ = writeln!(s, "timer     {}", m.timer.description);
    for l in &c.lost {
        let _ = writeln!(s, "lost      {}", l.line());
    }
    for a in &c.actions {
        let _ = writeln!(s, "note      {a}");
    }
    s
}

impl Exporter<AttachReport> for Table {
    fn file_name(&self) -> Option<&'static str> {
        None
    }
    fn render(&self, r: &AttachReport) -> String {
        attach(r)
    }
}

impl Exporter<C2cReport> for Table {
    fn file_name(&self) -> Option<&'static str> {
        None
    }
    fn render(&self, r: &C2cReport) -> String {
        c2c(r)
    }
}

/// `hwprof attach` on the terminal.
pub fn attach(r: &AttachReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "hwprof attach — pid {} ({}){} — {:.1} s, ended by {}, {} threads seen",
        r.target.get("pid").map(String::as_str).unwrap_or("?"),
        r.target.get("comm").map(String::as_str).unwrap_or("?"),
        // The whole traced set when it is more than one process.
        match (r.target.get("traced"), r.target.get("processes")) {
            (Some(t), Some(n)) if n != "1" => format!(", traced: {t}, {n} processes"),
            _ => String::new(),
        },
        r.duration_s,
        r.ended_by,
        r.threads_seen
    );
    for (name, c) in &r.counters {
        let _ = writeln!(s, "  {name:<18} {:>14.0} ({})", c.value, c.source.name());
    }
    for l in r.probes.lines() {
        let _ = writeln!(s, "{l}");
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

/// `hwprof c2c` on the terminal.
pub fn c2c(r: &C2cReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "hwprof c2c — {} — {}", r.source, r.target);
    let _ = writeln!(
        out,
        "{} samples ({} lost), {}-byte lines; classes: {}",
        r.samples,
        r.lost,
        r.line_bytes,
        crate::text::map(&r.counts)
    );
    let _ = writeln!(out, "verdict: {}\n", r.verdict);
    for l in &r.lines {
        let _ = writeln!(
            out,
            "{:#x} {}: {} samples ({} loads, {} stores), {} HITM ({} remote){}",
            l.line.address,
            l.line.class,
            l.line.samples,
            l.line.loads,
            l.line.stores,
            l.line.hitm,
            l.line.remote_hitm,
            l.data
                .as_ref()
                .map_or(String::new(), |d| format!(" — {}", d.describe()))
        );
        for (tid, t) in &l.line.threads {
            let _ = writeln!(
                out,
                "    tid {tid}: {} loads at offsets {}, {} stores at offsets {}",
                t.loads,
                crate::text::list(&t.offsets_read),
                t.stores,
                crate::text::list(&t.offsets_written)
            );
        }
        for c in &l.code_sites {
            let _ = writeln!(
                out,
                "    code {} x{} {}",
                c.ip,
                c.samples,
                c.symbol.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(out, "    {}", l.line.explanation);
    }
    out
}

/// The pair matrix in lines (terminal table and Markdown alike).
pub fn pair_lines(m: &super::schema::PairMatrix) -> Vec<String> {
    let mut v: Vec<String> = m
        .pairs
        .iter()
        .map(|p| {
            format!(
                "CPUs {}-{} ({}): {:.1} ns one way [{:.1}–{:.1}]",
                p.cpus.0,
                p.cpus.1,
                p.class.map_or("unclassified", |c| c.name()),
                p.one_way_ns,
                p.ci95.lo,
                p.ci95.hi
            )
        })
        .collect();
    v.push(format!("verdict: {}", m.verdict));
    v
}
