//! The numa experiment's reading of its results: the CPU node x memory node
//! matrices, the remote penalty and the page-placement comparison.

use super::*;

fn gb(e: Estimate) -> Estimate {
    Estimate {
        median: e.median / 1e9,
        lo: e.lo / 1e9,
        hi: e.hi / 1e9,
    }
}

pub(super) fn interpret(m: &MachineFacts, groups: &[GroupOutcome]) -> Findings {
    let mut f = Findings::default();
    let nodes = &m.numa_nodes;
    // Per-node groups (the all-nodes group, if any, has no single CPU node).
    let per_node: Vec<&GroupOutcome> = groups.iter().filter(|g| g.cpu_node.is_some()).collect();
    if per_node.is_empty() {
        return f;
    }
    let rows: Vec<String> = per_node
        .iter()
        .map(|g| format!("CPU node {} (x{})", g.cpu_node.unwrap_or(0), g.cpus.len()))
        .collect();
    let cols: Vec<String> = nodes.iter().map(|n| format!("mem node {n}")).collect();
    for k in Kernel::MATRIX {
        let cells: Vec<Vec<Option<Estimate>>> = per_node
            .iter()
            .map(|g| {
                nodes
                    .iter()
                    .map(|n| {
                        let o = g.variant(&format!("{}-node{n}", k.name()))?;
                        Some(match k {
                            Kernel::Latency => o.ns_per_op,
                            _ => gb(o.ops_per_sec),
                        })
                    })
                    .collect()
            })
            .collect();
        let (title, unit) = match k {
            Kernel::Latency => (
                "hwprof numa: pointer-chase latency".to_string(),
                "ns per access",
            ),
            _ => (
                format!(
                    "hwprof numa: {} bandwidth (all cores of the CPU node)",
                    k.name()
                ),
                "GB/s",
            ),
        };
        // Local vs remote, per CPU node: the penalty ratio.
        for (g, row) in per_node.iter().zip(&cells) {
            let Some(cpu_node) = g.cpu_node else { continue };
            let Some(local_i) = nodes.iter().position(|&n| n == cpu_node) else {
                continue;
            };
            let Some(local) = row[local_i] else { continue };
            let remote: Vec<(usize, Estimate)> = nodes
                .iter()
                .zip(row)
                .filter(|(&n, _)| n != cpu_node)
                .filter_map(|(&n, c)| Some((n, (*c)?)))
                .collect();
            let worst = remote.iter().max_by(|a, b| {
                let pen = |e: &Estimate| match k {
                    Kernel::Latency => e.median / local.median,
                    _ => local.median / e.median,
                };
                pen(&a.1).total_cmp(&pen(&b.1))
            });
            match (k, worst) {
                (Kernel::Latency, Some((n, r))) => f.verdict.push(format!(
                    "latency from CPU node {cpu_node}: local {:.0} ns, node {n} {:.0} ns: remote costs {:.2}x (95% CIs: local {:.0}-{:.0}, remote {:.0}-{:.0}){} [timer]",
                    local.median,
                    r.median,
                    r.median / local.median,
                    local.lo,
                    local.hi,
                    r.lo,
                    r.hi,
                    pages_said()
                )),
                (_, Some((n, r))) => f.verdict.push(format!(
                    "{} bandwidth from CPU node {cpu_node}: local {:.1} GB/s, node {n} {:.1} GB/s: remote keeps {:.0}% (95% CIs: local {:.1}-{:.1}, remote {:.1}-{:.1}) [timer]",
                    k.name(),
                    local.median,
                    r.median,
                    100.0 * r.median / local.median,
                    local.lo,
                    local.hi,
                    r.lo,
                    r.hi
                )),
                (Kernel::Latency, None) => f.verdict.push(format!(
                    "local latency (CPU node {cpu_node}): {:.0} ns [{:.0}-{:.0}] per dependent access{} [timer]",
                    local.median,
                    local.lo,
                    local.hi,
                    pages_said()
                )),
                (_, None) => f.verdict.push(format!(
                    "local {} bandwidth (CPU node {cpu_node}, {} thread(s)): {:.1} GB/s [{:.1}-{:.1}] [timer]",
                    k.name(),
                    g.cpus.len(),
                    local.median,
                    local.lo,
                    local.hi
                )),
            }
        }
        f.matrices.push(Matrix {
            id: format!("numa-{}", k.name()),
            title,
            row_label: "CPU node".into(),
            col_label: "memory node".into(),
            unit: unit.into(),
            rows: rows.clone(),
            cols: cols.clone(),
            cells,
        });
    }
    if nodes.len() < 2 {
        f.warnings.push(format!(
            "one NUMA node ({}): there is no remote memory here, so only the local column is measured and first-touch vs interleaved placement cannot differ; run on a multi-socket host (or plan one: --plan-only --topology xml:FILE)",
            m.source
        ));
        return f;
    }
    if let Some(all) = groups.iter().find(|g| g.cpu_node.is_none()) {
        let bw = |n: &str| all.variant(n).map(|o| gb(o.ops_per_sec));
        if let (Some(par), Some(ser), Some(il)) = (
            bw("scan-parallel-init"),
            bw("scan-serial-init"),
            bw("scan-interleave"),
        ) {
            f.verdict.push(format!(
                "multi-threaded scan on {} threads over every node: parallel first-touch {:.1} GB/s, interleaved {:.1} GB/s ({:.0}%), serial init {:.1} GB/s ({:.0}%): {} (95% CIs: parallel {:.1}-{:.1}, interleaved {:.1}-{:.1}, serial {:.1}-{:.1}) [timer]",
                all.cpus.len(),
                par.median,
                il.median,
                100.0 * il.median / par.median,
                ser.median,
                100.0 * ser.median / par.median,
                if ser.hi < par.lo {
                    "initialise data on the threads that will use it"
                } else {
                    "placement did not matter for this scan"
                },
                par.lo,
                par.hi,
                il.lo,
                il.hi,
                ser.lo,
                ser.hi
            ));
        }
    }
    f
}

/// What the latency lists ran on, as smaps said: the latency means memory only
/// when page walks are out of it.
fn pages_said() -> String {
    match *super::HUGE_SHARE.lock().unwrap_or_else(|e| e.into_inner()) {
        Some(s) if s >= 0.9 => format!(", on 2 MiB pages ({:.0}% per smaps)", 100.0 * s),
        Some(s) => format!(
            ", only {:.0}% on 2 MiB pages (per smaps): includes page walks",
            100.0 * s
        ),
        None => String::new(),
    }
}
